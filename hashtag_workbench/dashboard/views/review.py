"""Review: one word's images, most suspicious first; keep, reject or relabel them (one or many), undo.

Keyboard: K keep the current image, X reject it, N next, B back, U undo the last decision.

Every action works out its images when it runs, from the word, filter and page the person
chose (kept in session state by value), never from ids captured when the buttons were
drawn: a click or key that arrives while the page is still redrawing for a new word lands
on that word's images.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from hashtag_workbench.core.review_order import group_duplicates, page_bounds
from hashtag_workbench.dashboard.common import empty_state, fmt_score, home, n_images, thumb, word_status
from hashtag_workbench.dashboard.image_panel import image_panel, relabel_targets
from hashtag_workbench.dashboard.review_grid import data_uri, review_grid
from hashtag_workbench.warehouse import curation
from hashtag_workbench.warehouse import dashboard_queries as q
from hashtag_workbench.warehouse.db import WarehouseLocked

PER_PAGE_CHOICES = (24, 60, 120)
COLS = 6
NO_DETECTOR = "(no outlier scores)"
PREFERRED = "kmeans_2sigma"  # the original study's detector first, when scored
SHOW_LABELS = {"all": "all but rejected", "unreviewed": "unreviewed", "flagged": "flagged, unreviewed",
               "rejected": "rejected"}

st.title("Review")
HOME = home()
H = str(HOME)
ss = st.session_state


@st.cache_data(ttl=30, show_spinner=False)
def _items(h: str, word: str, detector: str | None, show: str) -> list[dict]:
    return group_duplicates(q.review_items(h, word, detector, show=show))


@st.cache_data(ttl=30, show_spinner=False)
def _detectors(h: str) -> list[str]:
    return q.detectors(h)


@st.cache_data(ttl=10, show_spinner=False)
def _status(h: str, detector: str | None) -> list[dict]:
    return q.word_status(h, detector)


@st.cache_data(ttl=10, show_spinner=False)
def _recent(h: str) -> list[dict]:
    return curation.recent_decisions(h, limit=30)


def _after_write() -> None:
    _items.clear()
    _recent.clear()
    _status.clear()
    word_status.clear()  # the Overview's counts; not every cache: a key press must not drop a t-SNE map


# ---------------------------------------------------------------- the view the person chose, worked out now

def _detector() -> str | None:
    dets = _detectors(H)
    v = ss.get("review_detector")
    if v in dets:
        return v
    return PREFERRED if PREFERRED in dets else (dets[0] if dets else None)


def _word(choices: list[str]) -> str:
    """The chosen word: the box's value when it names a word (a fresh choice), else the one kept by value."""
    for v in (ss.get("review_word_box"), ss.get("review_word")):
        if v in choices:
            return v
    return choices[0]


def _view() -> dict:
    det = _detector()
    status = {r["word"]: r for r in _status(H, det) if r["labelled"] > 0}
    choices = list(status)
    if not choices:
        return {"choices": [], "status": status}
    word = _word(choices)
    show = ss.get("review_show", "all")
    per_page = ss.get("review_per_page", 60)
    items = _items(H, word, det, show)
    asked = ss.get("review_page", 1) if ss.get("review_page_of") == word else 1
    start, stop, n_pages = page_bounds(len(items), asked, per_page)
    page_items = items[start:stop]
    ids = [it["image_id"] for it in page_items]
    current = ss.get("review_current")
    if current not in ids:
        current = ids[0] if ids else None
    return {"choices": choices, "status": status, "word": word, "detector": det, "show": show,
            "per_page": per_page, "items": items, "page": start // per_page + 1, "n_pages": n_pages,
            "page_items": page_items, "page_ids": ids, "current": current}


# ---------------------------------------------------------------- actions (callbacks)

def _decide(ids: list[int], decision: str, new_word: str | None = None, next_id: int | None = None) -> None:
    try:
        curation.decide(H, ids, decision, new_word if decision == "relabel" else None)
    except (ValueError, WarehouseLocked) as exc:
        ss["review_msg"] = ("error", str(exc))
        return
    verb = {"keep": "Kept", "reject": "Rejected", "relabel": f"Relabelled to {new_word!r}:"}[decision]
    ss["review_msg"] = ("ok", f"{verb} {len(ids)} image{'s' if len(ids) != 1 else ''} "
                              f"(#{', #'.join(map(str, ids[:8]))}{' ...' if len(ids) > 8 else ''}).")
    if next_id is not None:
        ss["review_current"] = next_id
    ss["review_selected"] = [i for i in ss.get("review_selected", []) if i not in ids]
    _after_write()


def _decide_current(decision: str) -> None:
    """K / X: the current image of the word chosen now; the cursor moves to the next one."""
    v = _view()
    cur = v.get("current")
    if cur is None:
        return
    ids = v["page_ids"]
    nxt = ids[ids.index(cur) + 1] if ids.index(cur) + 1 < len(ids) else None
    _remember(v)
    _decide([cur], decision, next_id=nxt)


def _remember(v: dict) -> None:
    ss["review_word"] = v["word"]
    ss["review_page"], ss["review_page_of"] = v["page"], v["word"]


def _undo(decision_ids: list[int] | None = None) -> None:
    try:
        done = curation.undo(H, decision_ids) if decision_ids else curation.undo(H, last=1)
    except (ValueError, WarehouseLocked) as exc:
        ss["review_msg"] = ("error", str(exc))
        return
    ss["undo_pick"] = []
    ss["review_msg"] = ("ok", f"Undid {len(done)} decision{'s' if len(done) != 1 else ''}." if done
                        else "Nothing to undo.")
    _after_write()


def _move(delta: int) -> None:
    v = _view()
    ids = v.get("page_ids")
    if not ids:
        return
    _remember(v)
    idx = (ids.index(v["current"]) if v["current"] in ids else 0) + delta
    if idx >= len(ids):
        if v["page"] < v["n_pages"]:
            _set_page(v["page"] + 1)
    elif idx < 0:
        if v["page"] > 1:
            _set_page(v["page"] - 1)
            ss["review_current_last"] = True
    else:
        ss["review_current"] = ids[idx]


def _set_page(p: int) -> None:
    ss["review_page"] = p
    ss["review_page_of"] = ss.get("review_word")
    ss.pop("review_current", None)


def _word_changed() -> None:
    if ss.get("review_word_box") in _view()["choices"]:
        ss["review_word"] = ss["review_word_box"]
    ss.pop("review_confirm", None)
    _set_page(1)


def _select_all(value: bool) -> None:
    ids = _view().get("page_ids", [])
    chosen = [i for i in ss.get("review_selected", []) if i not in ids]
    ss["review_selected"] = chosen + list(ids) if value else chosen


def _selected_now() -> list[int]:
    ids = _view().get("page_ids", [])
    return [i for i in ss.get("review_selected", []) if i in ids]


def _bulk(decision: str) -> None:
    ids = _selected_now()
    if not ids:
        return
    if decision != "relabel":
        _decide(ids, decision)
        return
    to = ss.get("review_relabel_to")
    if to:  # relabelling many images is confirmed with their count first
        ss["review_confirm"] = {"ids": ids, "to": to, "word": _view()["word"]}


def _confirm_relabel(yes: bool) -> None:
    pending = ss.pop("review_confirm", None)
    if yes and pending:
        _decide(pending["ids"], "relabel", pending["to"])


def _cell_action(iid: int, act: str, relabel_to: str | None) -> None:
    """One image's grid button: keep / reject / relabel it now, toggle it in the selection, or open it."""
    ss["review_current"] = iid
    if act == "select":
        chosen = list(ss.get("review_selected", []))
        ss["review_selected"] = [i for i in chosen if i != iid] if iid in chosen else chosen + [iid]
    elif act == "open":
        ss["review_open"] = iid
    elif act == "relabel":
        if relabel_to:
            _decide([iid], "relabel", relabel_to)
    elif act in ("keep", "reject"):
        _decide([iid], act)


def _focus_from_elsewhere() -> None:
    """Another page asked to open an image here: choose its word, filter and page, and open it."""
    iid = ss.pop("review_focus", None)
    d = q.image_detail(H, iid) if iid is not None else None
    if d is None:
        return
    ss["review_word"] = d["word"]
    ss["review_show"] = "rejected" if d["review"] == "reject" else "all"
    ids = [it["image_id"] for it in _items(H, d["word"], _detector(), ss["review_show"])]
    per_page = ss.get("review_per_page", 60)
    ss["review_page"] = ids.index(iid) // per_page + 1 if iid in ids else 1
    ss["review_page_of"] = d["word"]
    ss["review_current"] = ss["review_open"] = iid


# ---------------------------------------------------------------- page parts

def _choose(v: dict) -> None:
    status = v["status"]
    det = v["detector"]

    def label(w: str) -> str:
        r = status[w]
        return f"{w} ({r['flagged']} flagged / {r['kept_reviewed']} kept / {r['unreviewed']} unreviewed)"

    ss["review_word_box"] = v["word"]  # the choice by value, whatever the labels' counts say now
    c1, c2, c3, c4 = st.columns([4, 3, 2, 1])
    c1.selectbox("Word", v["choices"], format_func=label, key="review_word_box", on_change=_word_changed)
    dets = _detectors(H)
    c2.selectbox("Outlier detector", dets or [NO_DETECTOR], key="review_detector",
                 index=dets.index(det) if det in dets else 0, on_change=_set_page, args=(1,))
    c3.selectbox("Show", q.REVIEW_FILTERS, key="review_show", on_change=_set_page, args=(1,),
                 format_func=SHOW_LABELS.get)
    c4.selectbox("Per page", PER_PAGE_CHOICES, index=1, key="review_per_page", on_change=_set_page, args=(1,))
    r = status[v["word"]]
    st.caption(f"{v['word']}: {r['labelled']} images labelled now · {r['kept_reviewed']} kept by a person · "
               f"{r['unreviewed']} unreviewed, {r['flagged']} of them flagged"
               f"{f' by {det}' if det else ''} · {r['rejected']} rejected")


def _toolbar(v: dict) -> None:
    current, ids = v["current"], v["page_ids"]
    last = not ids or (ids.index(current) == len(ids) - 1 and v["page"] >= v["n_pages"])
    bar = st.container(horizontal=True)
    bar.button("Keep current", shortcut="K", key="kb_keep", disabled=current is None, icon=":material/check:",
               on_click=_decide_current, args=("keep",))
    bar.button("Reject current", shortcut="X", key="kb_reject", disabled=current is None, icon=":material/close:",
               on_click=_decide_current, args=("reject",))
    bar.button("Previous", shortcut="B", key="kb_prev", on_click=_move, args=(-1,), icon=":material/arrow_back:")
    bar.button("Next", shortcut="N", key="kb_next", on_click=_move, args=(1,), icon=":material/arrow_forward:",
               disabled=last)
    bar.button("Undo last", shortcut="U", key="kb_undo", on_click=_undo, icon=":material/undo:")
    st.caption(f"{n_images(len(v['items']))} · page {v['page']} of {v['n_pages']} · flagged first, then by outlier "
               "score (higher = more unusual for this word); near-duplicates are shown next to each other. "
               "Keys: K keep · X reject · N next · B back · U undo · click an image to open it large.")


def _cells(v: dict) -> list[dict]:
    selected = set(ss.get("review_selected", []))
    cells = []
    for it in v["page_items"]:
        iid = it["image_id"]
        unreviewed = it["review"] == "unreviewed"
        bits = [f"#{iid}", fmt_score(it["score"])]
        if it["flagged"]:
            bits.append("FLAGGED" if unreviewed else "was flagged")
        if not unreviewed:
            bits.append(it["review"])
        if it["group_id"] is not None:
            bits.append(f"dup group {it['group_id']}")
        if it["word"] != it["original_word"]:
            bits.append(f"was {it['original_word']}")
        cells.append({"id": iid, "src": data_uri(thumb(H, it["sha256"], it["path"])), "caption": " · ".join(bits),
                      "flagged": bool(it["flagged"]) and unreviewed, "current": iid == v["current"],
                      "selected": iid in selected})
    return cells


def _bulk_bar(v: dict, relabel_to: str | None) -> None:
    pc = st.container(horizontal=True)
    pc.button("◀ Previous page", key="page_prev", disabled=v["page"] <= 1, on_click=_set_page, args=(v["page"] - 1,))
    pc.button("Next page ▶", key="page_next", disabled=v["page"] >= v["n_pages"], on_click=_set_page,
              args=(v["page"] + 1,))
    pc.button("Select all on page", key="sel_all", on_click=_select_all, args=(True,))
    pc.button("Clear selection", key="sel_none", on_click=_select_all, args=(False,))
    selected = [i for i in ss.get("review_selected", []) if i in v["page_ids"]]
    st.subheader(f"Apply to selected ({len(selected)})")
    ac = st.container(horizontal=True)
    ac.button("Keep selected", key="bulk_keep", disabled=not selected, on_click=_bulk, args=("keep",))
    ac.button("Reject selected", key="bulk_reject", disabled=not selected, on_click=_bulk, args=("reject",))
    ac.button(f"Relabel selected to {relabel_to}…" if relabel_to else "Relabel selected (choose a target word)",
              key="bulk_relabel", disabled=not selected or not relabel_to, on_click=_bulk, args=("relabel",))
    pending = ss.get("review_confirm")
    if pending and pending["word"] == v["word"]:
        n = len(pending["ids"])
        st.warning(f"Relabel {n} image{'s' if n != 1 else ''} from {pending['word']!r} to {pending['to']!r}?")
        cc = st.container(horizontal=True)
        cc.button(f"Relabel {n}", key="bulk_relabel_confirm", type="primary", on_click=_confirm_relabel,
                  args=(True,))
        cc.button("Cancel", key="bulk_relabel_cancel", on_click=_confirm_relabel, args=(False,))


def _recent_section() -> None:
    st.subheader("Recent decisions")
    recent = _recent(H)
    if not recent:
        st.write("No decisions yet.")
        return
    df = pd.DataFrame(recent)[["decision_id", "image_id", "decision", "old_word", "new_word", "decided_at"]]
    st.dataframe(df, hide_index=True, width="stretch", height=min(400, 38 + 35 * len(df)))
    chosen = st.multiselect("Decisions to undo", [r["decision_id"] for r in recent], key="undo_pick",
                            format_func=lambda d: next(f"#{r['decision_id']}: {r['decision']} image {r['image_id']}"
                                                       for r in recent if r["decision_id"] == d))
    st.button("Undo selected decisions", key="undo_selected", disabled=not chosen, on_click=_undo, args=(chosen,))


def _main() -> None:
    _focus_from_elsewhere()
    v = _view()
    if not v["choices"]:
        empty_state("No images to review yet.", "hashtags demo        # or: hashtags import-folder PATH")
        st.stop()
    msg = ss.pop("review_msg", None)
    if msg:
        (st.success if msg[0] == "ok" else st.error)(msg[1])
    _choose(v)
    if ss.pop("review_current_last", False) and v["page_ids"]:
        ss["review_current"] = v["page_ids"][-1]
    v = _view()
    _remember(v)
    ss["review_current"] = v["current"]
    if v["detector"] is None:
        st.info("No outlier scores yet, so images are in import order. Score them with:\n\n"
                "```\nhashtags features && hashtags outliers\n```")
    targets = relabel_targets(H, v["word"])
    relabel_to = st.selectbox("Relabel target (for the ↪ buttons and Relabel selected)", targets, index=None,
                              placeholder="choose a target word", key="review_relabel_to")
    relabel_to = relabel_to if relabel_to in targets else None
    _toolbar(v)
    if ss.get("review_open") is not None:
        image_panel(H, ss["review_open"], key="review_panel", after_write=_after_write, review_link=False,
                    on_close=lambda: ss.pop("review_open", None))
    if not v["items"]:
        st.info(f"No images match '{SHOW_LABELS[v['show']]}' for {v['word']!r}.")
    action = review_grid(_cells(v), relabel=relabel_to, cols=COLS, keys=True)
    if action and int(action["id"]) in v["page_ids"]:
        _cell_action(int(action["id"]), action["act"], relabel_to)
        st.rerun()
    if v["items"]:
        _bulk_bar(v, relabel_to)
    _recent_section()


_main()
