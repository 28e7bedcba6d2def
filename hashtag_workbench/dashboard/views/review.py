"""Review: one word's images (or the flagged queue across words), most suspicious first; keep, reject or
relabel them, one or many; undo by action.

Keys (handled in the browser by the grid, components/image_grid.js): K keep · X reject · R relabel to
the chosen target · N / → next · B / ← back · U undo this page's last action · Space select ·
Enter open large (lightbox: ←/→ move, K/X/R act on the image shown, Esc closes) · Esc clear.

Every press is an event bound to the image on screen when it was pressed, queued in the browser
and applied here once (by its id) at the top of the next run, before the page reads its images.
"""
from __future__ import annotations

import streamlit as st

from hashtag_workbench.core.review_order import group_duplicates, page_bounds
from hashtag_workbench.dashboard.common import empty_state, fmt_score, home, n_images, thumb, word_status
from hashtag_workbench.dashboard.image_panel import image_panel, relabel_targets
from hashtag_workbench.dashboard.lightbox import info_lines
from hashtag_workbench.dashboard.review_grid import apply_grid_events, data_uri, image_grid, session_id
from hashtag_workbench.warehouse import curation
from hashtag_workbench.warehouse import dashboard_queries as q
from hashtag_workbench.warehouse.db import WarehouseLocked

PER_PAGE_CHOICES = (24, 60, 120)
COLS = 6
GRID = "review_grid"
PAGE = "review"
ANY = "(any detector)"
PREFERRED = "kmeans_2sigma"  # the original study's detector: its score orders the images when scored
SHOW_LABELS = {"all": "all but rejected", "unreviewed": "unreviewed", "flagged": "flagged, unreviewed",
               "rejected": "rejected"}
MODES = {"word": "One word", "queue": "Flagged queue, all words"}

st.title("Review")
HOME = home()
H = str(HOME)
ss = st.session_state


@st.cache_data(ttl=30, show_spinner=False)
def _items(h: str, word: str, detector: str | None, show: str, any_flag: bool) -> list[dict]:
    return group_duplicates(q.review_items(h, word, detector, show=show, any_flag=any_flag))


@st.cache_data(ttl=30, show_spinner=False)
def _queue(h: str, detector: str | None, score_detector: str | None, words: tuple, min_score) -> list[dict]:
    return q.flagged_queue(h, detector, score_detector=score_detector, words=list(words) or None,
                           min_score=min_score)


@st.cache_data(ttl=30, show_spinner=False)
def _detectors(h: str) -> list[str]:
    return q.detectors(h)


@st.cache_data(ttl=10, show_spinner=False)
def _status(h: str, detector: str | None) -> list[dict]:
    return q.word_status(h, detector)


def _after_write() -> None:
    _items.clear()
    _queue.clear()
    _status.clear()
    word_status.clear()  # the Overview's counts; not every cache: a key press must not drop the map


# ---------------------------------------------------------------- the view the person chose, worked out now

def _rule() -> tuple[str | None, str | None, bool]:
    """(score detector, flag detector or None for any, any_flag) from the 'Flagged by' box."""
    dets = _detectors(H)
    v = ss.get("review_detector", ANY)
    one = v if v in dets else None
    score_det = one or (PREFERRED if PREFERRED in dets else (dets[0] if dets else None))
    return score_det, one, one is None


def _word(choices: list[str]) -> str:
    """The chosen word: the box's value when it names a word (a fresh choice), else the one kept by value."""
    for v in (ss.get("review_word_box"), ss.get("review_word")):
        if v in choices:
            return v
    return choices[0]


def _view() -> dict:
    score_det, one, any_flag = _rule()
    status = {r["word"]: r for r in _status(H, one) if r["labelled"] > 0}
    mode = ss.get("review_mode") or "word"
    v = {"choices": list(status), "status": status, "detector": score_det, "flag_det": one, "mode": mode}
    if not status:
        return v
    if mode == "queue":
        v["word"], v["show"] = None, "flagged"
        items = _queue(H, one, score_det, tuple(ss.get("review_q_words") or ()), ss.get("review_q_min"))
    else:
        v["word"], v["show"] = _word(v["choices"]), ss.get("review_show", "all")
        items = _items(H, v["word"], score_det, v["show"], any_flag)
    per_page = ss.get("review_per_page", 60)
    where = f"{mode}|{v['word']}"
    asked = ss.get("review_page", 1) if ss.get("review_page_of") == where else 1
    start, stop, n_pages = page_bounds(len(items), asked, per_page)
    page_items = items[start:stop]
    ids = [it["image_id"] for it in page_items]
    current = ss.get("review_current")
    if current not in ids:
        current = ids[0] if ids else None
    return {**v, "per_page": per_page, "items": items, "page": start // per_page + 1, "n_pages": n_pages,
            "where": where, "page_items": page_items, "page_ids": ids, "current": current}


# ---------------------------------------------------------------- actions (callbacks)

def _set_page(p: int, at: str = "first") -> None:
    v = _view()
    ss["review_page"], ss["review_page_of"] = p, v.get("where")
    ss.pop("review_current", None)
    ss["review_current_last"] = at == "last"


def _word_changed() -> None:
    if ss.get("review_word_box") in _view()["choices"]:
        ss["review_word"] = ss["review_word_box"]
    _set_page(1)


def _undo(action_id: int | None = None) -> None:
    """Undo one of this page's actions (the last one when no id): every image it touched."""
    try:
        lines = (curation.undo_action(H, action_id) if action_id is not None
                 else curation.undo_last_action(H, session_id(), PAGE))
    except (ValueError, WarehouseLocked) as exc:
        ss[f"{GRID}__msg"] = {"text": str(exc), "bad": True}
        return
    ss[f"{GRID}__msg"] = ({"text": "Undid " + "; ".join(lines) + ".", "bad": False} if lines
                         else {"text": "Nothing to undo on this page.", "bad": False})
    _after_write()


def _focus_from_elsewhere() -> None:
    """Another page asked to open an image here: choose its word, filter and page, and open it."""
    iid = ss.pop("review_focus", None)
    d = q.image_detail(H, iid) if iid is not None else None
    if d is None:
        return
    ss["review_mode"] = "word"
    ss["review_word"] = ss["review_word_box"] = d["word"]
    ss["review_show"] = "rejected" if d["review"] == "reject" else "all"
    score_det, _, any_flag = _rule()
    ids = [it["image_id"] for it in _items(H, d["word"], score_det, ss["review_show"], any_flag)]
    per_page = ss.get("review_per_page", 60)
    ss["review_page"] = ids.index(iid) // per_page + 1 if iid in ids else 1
    ss["review_page_of"] = f"word|{d['word']}"
    ss["review_current"] = ss["review_open"] = iid


# ---------------------------------------------------------------- page parts

def _rule_box(c) -> None:
    dets = _detectors(H)
    c.selectbox("Flagged by", [ANY, *dets], key="review_detector", on_change=_set_page, args=(1,),
                help="any detector: the count the Overview shows; one detector: only its flags")


def _choose(v: dict) -> None:
    status = v["status"]

    def label(w: str) -> str:
        r = status[w]
        return f"{w} ({r['flagged']} flagged / {r['kept_reviewed']} kept / {r['unreviewed']} unreviewed)"

    ss["review_word_box"] = v["word"]  # the choice by value, whatever the labels' counts say now
    c1, c2, c3, c4 = st.columns([4, 3, 2, 1])
    c1.selectbox("Word", v["choices"], format_func=label, key="review_word_box", on_change=_word_changed)
    _rule_box(c2)
    c3.selectbox("Show", q.REVIEW_FILTERS, key="review_show", on_change=_set_page, args=(1,),
                 format_func=SHOW_LABELS.get)
    c4.selectbox("Per page", PER_PAGE_CHOICES, index=1, key="review_per_page", on_change=_set_page, args=(1,))
    r = status[v["word"]]
    st.caption(f"{v['word']}: {r['labelled']} images labelled now · {r['kept_reviewed']} kept by a person · "
               f"{r['unreviewed']} unreviewed, {r['flagged']} of them {q.flag_rule(v['flag_det'])} · "
               f"{r['rejected']} rejected")


def _queue_filters(v: dict) -> None:
    c1, c2, c3 = st.columns([4, 3, 2])
    c1.multiselect("Words (empty = all)", v["choices"], key="review_q_words", on_change=_set_page, args=(1,))
    _rule_box(c2)
    c3.number_input(f"Min score ({v['detector'] or 'no scores'})", value=None, step=0.1, key="review_q_min",
                    on_change=_set_page, args=(1,), placeholder="any score")
    total = sum(r["flagged"] for r in v["status"].values())
    st.caption(f"{n_images(len(v['items']))} in the queue of {total} {q.flag_rule(v['flag_det'])}, unreviewed "
               f"(the Overview counts the same) · highest {v['detector'] or 'outlier'} score first")


def _cells(v: dict) -> list[dict]:
    cells = []
    for it in v["page_items"]:
        iid = it["image_id"]
        bits = [f"#{iid}"] + ([it["word"]] if v["mode"] == "queue" else []) + [fmt_score(it["score"])]
        if it["flagged"]:
            bits.append("FLAGGED" if it["review"] == "unreviewed" else "was flagged")
        if it.get("flagged_by") and v["flag_det"] is None:
            bits.append("by " + ", ".join(it["flagged_by"]))
        if it["group_id"] is not None:
            bits.append(f"dup group {it['group_id']}")
        if it["word"] != it["original_word"]:
            bits.append(f"was {it['original_word']}")
        cells.append({"id": iid, "src": data_uri(thumb(H, it["sha256"], it["path"])), "caption": " · ".join(bits),
                      "flagged": bool(it["flagged"]), "review": it["review"], "word": it["word"],
                      "info": info_lines(it)})
    return cells


def _pager(v: dict) -> None:
    pc = st.container(horizontal=True)
    pc.button("◀ Previous page", key="page_prev", disabled=v["page"] <= 1, on_click=_set_page, args=(v["page"] - 1,))
    pc.button("Next page ▶", key="page_next", disabled=v["page"] >= v["n_pages"], on_click=_set_page,
              args=(v["page"] + 1,))
    pc.caption(f"{n_images(len(v['items']))} · page {v['page']} of {v['n_pages']} · flagged first, then by outlier "
               "score (higher = more unusual for this word); near-duplicates next to each other.")


def _actions_section() -> None:
    st.subheader("Recent actions on this page")
    acts = curation.session_actions(H, session_id(), PAGE, limit=15)
    if not acts:
        st.caption("Nothing yet. Each key press or bulk action is one action here; U undoes the last one.")
        return
    st.button("Undo last action", key="undo_last", on_click=_undo, icon=":material/undo:",
              disabled=all(a["undone_at"] is not None for a in acts))
    for a in acts:
        row = st.container(horizontal=True, key=f"act_{a['action_id']}")
        done = a["undone_at"] is not None
        row.markdown(("~~" if done else "") + f"{a['created_at']:%H:%M:%S} · {curation.describe_action(a)}"
                     + ("~~ (undone)" if done else ""))
        row.button("Undo", key=f"undo_{a['action_id']}", disabled=done, on_click=_undo, args=(a["action_id"],))


def _grid(v: dict, relabel_to: str | None) -> None:
    if ss.pop("review_current_last", False) and v["page_ids"]:
        v["current"] = v["page_ids"][-1]
    view = f"{v['where']}|{v['show']}|{v['flag_det']}|{v['page']}"
    out = image_grid(H, _cells(v), key=GRID, relabel=relabel_to, cols=COLS, keys=True, view=view,
                     scope=f"{v['where']}|{v['show']}|{v['flag_det']}", current=v["current"],
                     matching=[it["image_id"] for it in v["items"]], page={"page": v["page"], "n_pages": v["n_pages"]})
    nav = out["nav"]
    if nav and isinstance(nav.get("page"), int) and nav["page"] != v["page"]:
        _set_page(nav["page"], nav.get("at", "first"))
        st.rerun()


def _main() -> None:
    apply_grid_events(H, GRID, PAGE, on_write=_after_write)   # first: the images read below show them
    _focus_from_elsewhere()
    v = _view()
    if not v["choices"]:
        empty_state("No images to review yet.", "hashtags demo        # or: hashtags import-folder PATH")
        st.stop()
    ss.setdefault("review_mode", "word")
    st.segmented_control("Queue", list(MODES), format_func=MODES.get, key="review_mode", on_change=_set_page,
                         args=(1,), label_visibility="collapsed")
    (_queue_filters if v["mode"] == "queue" else _choose)(v)
    v = _view()
    ss["review_word"] = v["word"] or ss.get("review_word")
    if v["detector"] is None:
        st.info("No outlier scores yet, so images are in import order. Score them with:\n\n"
                "```\nhashtags features && hashtags outliers\n```")
    targets = relabel_targets(H, v["word"])
    relabel_to = st.selectbox("Relabel target (R, the ↪ buttons and Relabel selected)", targets, index=None,
                              placeholder="choose a target word", key="review_relabel_to")
    relabel_to = relabel_to if relabel_to in targets else None
    st.caption("Keys: K keep · X reject · R relabel · N/→ next · B/← back · U undo · Space select "
               "(shift-click a range) · Enter open large (←/→ move, K/X/R act on it, Esc closes) · Esc clear")
    if ss.get("review_open") is not None:
        image_panel(H, ss["review_open"], key="review_panel", after_write=_after_write, review_link=False,
                    on_close=lambda: ss.pop("review_open", None))
    if not v["items"]:
        st.info("The flagged queue is empty for these filters." if v["mode"] == "queue"
                else f"No images match '{SHOW_LABELS[v['show']]}' for {v['word']!r}.")
    _grid(v, relabel_to)
    if v["items"]:
        _pager(v)
    _actions_section()


_main()
