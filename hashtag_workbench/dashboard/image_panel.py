"""One image opened large: its provenance, scores and decisions, and the actions a person takes on it.

Shared by Review, Evaluation and the Embedding map, so an image found anywhere can be
kept, rejected or relabelled where it is seen, or opened in Review.
"""
from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from hashtag_workbench.dashboard.common import fmt_score, md_escape, words
from hashtag_workbench.warehouse import curation
from hashtag_workbench.warehouse import dashboard_queries as q
from hashtag_workbench.warehouse.db import WarehouseLocked
from hashtag_workbench.warehouse.store import image_file

REVIEW_PAGE = "views/review.py"
PAGES = {"review": "review", "eval": "evaluation", "emb": "embedding"}   # panel key prefix -> the page's name


def open_in_review(image_id: int) -> None:
    """Go to the Review page with this image chosen (its word, its page, opened large)."""
    st.session_state["review_focus"] = int(image_id)
    try:
        st.switch_page(REVIEW_PAGE)
    except Exception:  # a page run on its own (tests, bare mode) has no navigation to switch in
        st.session_state["panel_msg"] = ("ok", f"Image #{image_id} will open on the Review page.")


def relabel_targets(h: str, current: str | None) -> list[str]:
    """Words an image may be relabelled to: the active ones, except the label it has."""
    return [w for w in words(h, active_only=True) if w != current]


def act(h: str, ids: list[int], decision: str, new_word: str | None = None, *, page: str | None = None) -> str | None:
    """Record one decision for these images (one action of this session on `page`); an error line, or None."""
    from hashtag_workbench.dashboard.review_grid import session_id
    try:
        curation.decide(h, ids, decision, new_word if decision == "relabel" else None, session=session_id(),
                        page=page)
    except (ValueError, WarehouseLocked) as exc:
        return str(exc)
    return None


def _provenance(d: dict) -> pd.DataFrame:
    fields = [("label now", d["word"]), ("collected as", d["original_word"]), ("review", d["review"]),
              ("origin", d["origin"]), ("title", d.get("title")), ("source URL", d.get("source_url")),
              ("page URL", d.get("page_url")), ("search query", d.get("query")), ("search source", d.get("source")),
              ("local file", d.get("source_path")),
              ("size", f"{d['width']} × {d['height']}" if d.get("width") else None),
              ("added", d.get("added_at")), ("import run", d.get("run_id")), ("stored as", d["path"])]
    return pd.DataFrame([{"field": k, "value": str(v)} for k, v in fields if v not in (None, "")])


def _actions(h: str, d: dict, key: str, after_write: Callable[[], None], review_link: bool) -> None:
    iid = d["image_id"]
    page = PAGES.get(key.split("_")[0])
    targets = relabel_targets(h, d["word"])
    bar = st.container(horizontal=True)
    if bar.button("Keep", key=f"{key}_keep", icon=":material/check:"):
        _done(act(h, [iid], "keep", page=page), f"Kept image #{iid}.", after_write)
    if bar.button("Reject", key=f"{key}_reject", icon=":material/close:"):
        _done(act(h, [iid], "reject", page=page), f"Rejected image #{iid}.", after_write)
    to = bar.selectbox("Relabel to", targets, index=None, placeholder="choose a target word", key=f"{key}_to",
                       label_visibility="collapsed")
    if bar.button(f"Relabel to {to}" if to else "Relabel", key=f"{key}_relabel", disabled=not to,
                  icon=":material/redo:"):
        _done(act(h, [iid], "relabel", to, page=page), f"Relabelled image #{iid} to {to!r}.", after_write)
    if review_link and bar.button("Open in Review", key=f"{key}_review", icon=":material/fact_check:"):
        open_in_review(iid)


def _done(error: str | None, ok: str, after_write: Callable[[], None]) -> None:
    st.session_state["panel_msg"] = ("error", error) if error else ("ok", ok)
    if not error:
        after_write()
    st.rerun()


def image_panel(h: str, image_id: int, *, key: str, after_write: Callable[[], None], review_link: bool = True,
                on_close: Callable[[], None] | None = None) -> bool:
    """Draw one image large with its provenance and actions; False when the image is not stored (any more)."""
    msg = st.session_state.pop("panel_msg", None)
    if msg:
        (st.success if msg[0] == "ok" else st.error)(msg[1])
    d = q.image_detail(h, image_id)
    if d is None:
        return False
    with st.container(border=True, key=f"{key}_box"):
        head = st.container(horizontal=True)
        head.markdown(f"**Image #{image_id}** · {md_escape(d['word'])} · {d['review']}")
        if on_close is not None:
            head.button("Close", key=f"{key}_close", on_click=on_close, icon=":material/close:")
        left, right = st.columns([3, 2])
        path = image_file(h, d["path"])
        if path.exists():
            left.image(str(path), width="stretch")
        else:
            left.warning(f"The stored file is missing: {d['path']} (run `hashtags check`).")
        with right:
            _actions(h, d, key, after_write, review_link)
            st.dataframe(_provenance(d), hide_index=True, width="stretch")
            if d["scores"]:
                st.caption("Outlier scores (latest finished run per detector)")
                st.dataframe(pd.DataFrame([{"detector": s["detector"], "score": fmt_score(s["score"]),
                                            "flagged": bool(s["flagged"]), "run": s["run_id"]}
                                           for s in d["scores"]]), hide_index=True, width="stretch")
            st.caption("Decisions (newest first)" if d["decisions"] else "No decisions yet.")
            if d["decisions"]:
                st.dataframe(pd.DataFrame(d["decisions"]), hide_index=True, width="stretch")
    return True
