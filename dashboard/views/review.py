"""Review: one word's images, most suspicious first; keep, reject or relabel them (one or many), undo.

Keyboard: K keep the current image, X reject it, N next, B back, U undo the last decision.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.review_order import group_duplicates, page_bounds
from dashboard.common import empty_state, fmt_score, home, thumb, word_status, words
from dashboard.review_grid import data_uri, review_grid
from warehouse import curation
from warehouse import dashboard_queries as q
from warehouse.db import WarehouseLocked

PER_PAGE_CHOICES = (24, 60, 120)
COLS = 6
NO_DETECTOR = "(no outlier scores)"

st.title("Review")
HOME = home()
H = str(HOME)
ss = st.session_state


@st.cache_data(ttl=30, show_spinner=False)
def _items(h: str, word: str, detector: str | None, show: str) -> list[dict]:
    return group_duplicates(q.review_items(h, word, detector, show=show))


@st.cache_data(ttl=30, show_spinner=False)
def _detectors(h: str, word: str) -> list[str]:
    return q.detectors(h, word)


@st.cache_data(ttl=10, show_spinner=False)
def _recent(h: str) -> list[dict]:
    return curation.recent_decisions(h, limit=30)


def _after_write() -> None:
    _items.clear()
    _recent.clear()
    word_status.clear()


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


def _move(delta: int, page_ids: list[int]) -> None:
    if not page_ids:
        return
    cur = ss.get("review_current")
    idx = page_ids.index(cur) if cur in page_ids else 0
    idx = idx + delta
    if idx >= len(page_ids):
        ss["review_page"] = ss.get("review_page", 1) + 1
        ss.pop("review_current", None)
    elif idx < 0:
        if ss.get("review_page", 1) > 1:
            ss["review_page"] = ss["review_page"] - 1
            ss["review_current_last"] = True
        ss.pop("review_current", None)
    else:
        ss["review_current"] = page_ids[idx]


def _set_page(p: int) -> None:
    ss["review_page"] = p
    ss.pop("review_current", None)


def _select_all(ids: list[int], value: bool) -> None:
    chosen = [i for i in ss.get("review_selected", []) if i not in ids]
    ss["review_selected"] = chosen + list(ids) if value else chosen


def _cell_action(iid: int, act: str, relabel_to: str | None) -> None:
    """One image's grid button: keep / reject / relabel it now, or toggle it in the selection."""
    ss["review_current"] = iid
    if act == "select":
        chosen = list(ss.get("review_selected", []))
        ss["review_selected"] = [i for i in chosen if i != iid] if iid in chosen else chosen + [iid]
    elif act == "relabel":
        if relabel_to:
            _decide([iid], "relabel", relabel_to)
    elif act in ("keep", "reject"):
        _decide([iid], act)


# ---------------------------------------------------------------- choices
status = pd.DataFrame(word_status(H))
with_images = status[status["stored"] > 0] if not status.empty else status
if with_images.empty:
    empty_state("No images to review yet.", "python -m jobs demo        # or: python -m jobs import-folder PATH")
    st.stop()

msg = ss.pop("review_msg", None)
if msg:
    (st.success if msg[0] == "ok" else st.error)(msg[1])

label = {r.word: f"{r.word} ({r.flagged} flagged / {r.kept} kept)" for r in with_images.itertuples()}
c1, c2, c3, c4 = st.columns([3, 3, 2, 1])
word = c1.selectbox("Word", list(label), format_func=label.get, key="review_word", on_change=_set_page, args=(1,))
dets = _detectors(H, word)
PREFERRED = "kmeans_2sigma"  # the original study's detector first, when scored
detector = c2.selectbox("Outlier detector", dets or [NO_DETECTOR], key="review_detector",
                        index=dets.index(PREFERRED) if PREFERRED in dets else 0, on_change=_set_page, args=(1,))
show = c3.selectbox("Show", q.REVIEW_FILTERS, key="review_show", on_change=_set_page, args=(1,),
                    format_func={"all": "all but rejected", "unreviewed": "unreviewed",
                                 "flagged": "flagged, unreviewed", "rejected": "rejected"}.get)
per_page = c4.selectbox("Per page", PER_PAGE_CHOICES, index=1, key="review_per_page", on_change=_set_page, args=(1,))
if not dets:
    st.info("No outlier scores for this word yet, so images are in import order. Score them with:\n\n"
            "```\npython -m jobs features && python -m jobs outliers\n```")
    detector = None

items = _items(H, word, detector, show)
start, stop, n_pages = page_bounds(len(items), ss.get("review_page", 1), per_page)
page = start // per_page + 1
ss["review_page"] = page
page_items = items[start:stop]
page_ids = [it["image_id"] for it in page_items]
if ss.pop("review_current_last", False) and page_ids:
    ss["review_current"] = page_ids[-1]
current = ss.get("review_current")
if current not in page_ids:
    current = page_ids[0] if page_ids else None
    ss["review_current"] = current
cur_idx = page_ids.index(current) if current is not None else -1
next_id = page_ids[cur_idx + 1] if 0 <= cur_idx < len(page_ids) - 1 else None

others = [w for w in words(H) if w != word]
relabel_to = st.selectbox("Relabel target (for the relabel buttons)", others, key="review_relabel_to") if others \
    else None

# ---------------------------------------------------------------- toolbar (keyboard shortcuts)
bar = st.container(horizontal=True)
bar.button("Keep current", shortcut="K", key="kb_keep", disabled=current is None, icon=":material/check:",
           on_click=_decide, args=([current], "keep", None, next_id))
bar.button("Reject current", shortcut="X", key="kb_reject", disabled=current is None, icon=":material/close:",
           on_click=_decide, args=([current], "reject", None, next_id))
bar.button("Previous", shortcut="B", key="kb_prev", on_click=_move, args=(-1, page_ids),
           icon=":material/arrow_back:")
bar.button("Next", shortcut="N", key="kb_next", on_click=_move, args=(1, page_ids), icon=":material/arrow_forward:",
           disabled=not page_ids or (cur_idx == len(page_ids) - 1 and page >= n_pages))
bar.button("Undo last", shortcut="U", key="kb_undo", on_click=_undo, icon=":material/undo:")

st.caption(f"{len(items)} images · page {page} of {n_pages} · flagged first, then by outlier score "
           "(higher = more unusual for this word); near-duplicates are shown next to each other. "
           "Keys: K keep · X reject · N next · B back · U undo.")

if not items:
    st.info(f"No images match '{show}' for {word!r}.")
else:
    # ------------------------------------------------------------ grid (one component: see dashboard/review_grid.py)
    selected = [i for i in ss.get("review_selected", []) if i in page_ids]
    cells = []
    for it in page_items:
        iid = it["image_id"]
        bits = [f"#{iid}", fmt_score(it["score"])]
        if it["flagged"]:
            bits.append("FLAGGED")
        if it["review"] != "unreviewed":
            bits.append(it["review"])
        if it["group_id"] is not None:
            bits.append(f"dup group {it['group_id']}")
        if it["word"] != it["original_word"]:
            bits.append(f"was {it['original_word']}")
        cells.append({"id": iid, "src": data_uri(thumb(H, it["sha256"], it["path"])), "caption": " · ".join(bits),
                      "flagged": bool(it["flagged"]), "current": iid == current, "selected": iid in selected})
    action = review_grid(cells, relabel=relabel_to, cols=COLS)
    if action and int(action["id"]) in page_ids:
        _cell_action(int(action["id"]), action["act"], relabel_to)
        st.rerun()

    # ------------------------------------------------------------ paging and bulk actions
    pc = st.container(horizontal=True)
    pc.button("◀ Previous page", key="page_prev", disabled=page <= 1, on_click=_set_page, args=(page - 1,))
    pc.button("Next page ▶", key="page_next", disabled=page >= n_pages, on_click=_set_page, args=(page + 1,))
    pc.button("Select all on page", key="sel_all", on_click=_select_all, args=(page_ids, True))
    pc.button("Clear selection", key="sel_none", on_click=_select_all, args=(page_ids, False))

    st.subheader(f"Apply to selected ({len(selected)})")
    ac = st.container(horizontal=True)
    ac.button("Keep selected", key="bulk_keep", disabled=not selected, on_click=_decide, args=(selected, "keep"))
    ac.button("Reject selected", key="bulk_reject", disabled=not selected, on_click=_decide,
              args=(selected, "reject"))
    ac.button(f"Relabel selected to {relabel_to}", key="bulk_relabel", disabled=not selected or not relabel_to,
              on_click=_decide, args=(selected, "relabel", relabel_to))

    if current is not None:
        cur = page_items[cur_idx]
        with st.expander(f"Current image #{current}", expanded=False):
            st.text(f"label: {cur['word']} (collected as {cur['original_word']}) · review: {cur['review']}")
            if cur.get("title"):
                st.text(f"title: {cur['title']}")
            if cur.get("source_url"):
                st.text(f"source: {cur['source_url']}")

# ---------------------------------------------------------------- undo
st.subheader("Recent decisions")
recent = _recent(H)
if not recent:
    st.write("No decisions yet.")
else:
    df = pd.DataFrame(recent)[["decision_id", "image_id", "decision", "old_word", "new_word", "decided_at"]]
    st.dataframe(df, hide_index=True, width="stretch", height=min(400, 38 + 35 * len(df)))
    chosen = st.multiselect("Decisions to undo", [r["decision_id"] for r in recent], key="undo_pick",
                            format_func=lambda d: next(f"#{r['decision_id']}: {r['decision']} image {r['image_id']}"
                                                       for r in recent if r["decision_id"] == d))
    st.button("Undo selected decisions", key="undo_selected", disabled=not chosen, on_click=_undo, args=(chosen,))
