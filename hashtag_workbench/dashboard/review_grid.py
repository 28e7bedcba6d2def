"""The image grid (Review, Evaluation, Embedding) as one custom component: Streamlit components v2 with its
JavaScript and CSS read from components/ (plain files, no build step).

A page of 60 images drawn as native Streamlit cells costs hundreds of widgets; here the whole grid
is one element: images inline (data URIs of the on-disk thumbnails), captions set as text (never HTML).
Decisions are events made in the browser ({id, kind, ids, word}; the cursor, selection and queue
live there, see components/image_grid.js). `apply_grid_events` applies them at the top of a page run,
each event id at most once (warehouse.curation.apply_events), before the page reads its images, so
the grid drawn next already shows them; the ids handled go back to the browser as `acked`.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from hashtag_workbench.core.errors import InputError
from hashtag_workbench.dashboard import lightbox
from hashtag_workbench.dashboard.lightbox import data_uri  # noqa: F401 - the pages' import of it
from hashtag_workbench.warehouse import curation
from hashtag_workbench.warehouse.db import WarehouseLocked

HERE = Path(__file__).parent / "components"
_grid = st.components.v2.component(
    "hashtag_image_grid", html="", css=(HERE / "image_grid.css").read_text(),
    js=lightbox.JS_FILE.read_text() + "\n" + (HERE / "image_grid.js").read_text())

ACTS = ("keep", "reject", "relabel", "select", "review")
BULK = ("keep", "reject", "relabel")


def session_id() -> str:
    """This browser session's id: actions are undone per session and page ("what this page did")."""
    return st.session_state.setdefault("curation_session", uuid.uuid4().hex[:12])


def _state(key: str) -> dict:
    """The component's state as the browser last sent it (read before the component is drawn)."""
    try:
        raw = st.session_state.get(key)
    except Exception:  # noqa: BLE001 - no state yet in this session
        return {}
    if raw is None:
        return {}
    try:
        return {k: raw[k] for k in ("events", "open") if k in raw}
    except TypeError:
        return {k: getattr(raw, k, None) for k in ("events", "open")}


def apply_grid_events(h: str, key: str, page: str, on_write: Callable[[], None] | None = None) -> list[dict]:
    """Apply the decisions the browser queued in grid `key` that this session has not handled yet.

    Returns the results newly handled in this run ({event_id, status, message, new}). A busy
    warehouse leaves the events unacknowledged: the browser sends them again.
    """
    ss = st.session_state
    done: dict = ss.setdefault(f"{key}__done", {})
    events = [e for e in (_state(key).get("events") or []) if isinstance(e, dict)]
    fresh = [e for e in events if e.get("id") not in done]
    if not fresh:
        return []
    try:
        results = curation.apply_events(h, fresh, session=session_id(), page=page)
    except WarehouseLocked as exc:
        ss[f"{key}__msg"] = {"text": f"Not applied yet, will retry: {exc}", "bad": True}
        return []
    for r in results:
        done[r["event_id"]] = r
    if results:   # the newest first; a refusal is shown in red
        lines = [r["message"] for r in results[::-1]]
        text = " ".join(lines[:3]) + (f" (+{len(lines) - 3} more)" if len(lines) > 3 else "")
        ss[f"{key}__msg"] = {"text": text, "bad": any(r["status"] != "applied" for r in results)}
    if on_write and any(r["status"] == "applied" for r in results):
        on_write()
    return results


def image_grid(h: str, cells: list[dict], *, key: str, relabel: str | None = None, cols: int = 6,
               acts: tuple[str, ...] = ACTS[:4], bulk: tuple[str, ...] = BULK, keys: bool = False,
               view: str = "", scope: str = "", current: int | None = None, matching: list[int] | None = None,
               page: dict | None = None) -> dict:
    """Draw the grid; returns {"action": {id, act} or None (a one-shot click: 'review'), "nav": {page, at} or None}.

    cells: {id, src (data URI or None), caption (plain text), flagged, review, word, info (lightbox lines)}.
    acts: the buttons under each image; bulk: the sticky bar's actions on the selection (() = no bar);
    keys: this grid owns the page's keys (K X R N B U Space Enter Esc); view: the cursor goes back to
    `current` when it changes; scope: the selection is cleared when it changes; matching: every id
    "select all matching" selects; page: {page, n_pages} for N / B past the page's ends.
    """
    unknown = (set(acts) - set(ACTS)) | (set(bulk) - set(BULK))
    if unknown:
        raise InputError(f"unknown grid actions: {sorted(unknown)}")
    ss = st.session_state
    done = ss.get(f"{key}__done", {})
    st_now = _state(key)
    opened = st_now.get("open")
    ids = {c["id"] for c in cells}
    data = {"gid": key, "cells": cells, "relabel": relabel, "cols": cols, "acts": list(acts), "bulk": list(bulk),
            "keys": keys, "view": view, "scope": scope, "current": current, "matching": matching, "page": page,
            "acked": [e.get("id") for e in (st_now.get("events") or []) if isinstance(e, dict) and e.get("id") in done],
            "message": ss.get(f"{key}__msg"),
            "large": lightbox.large_image(h, opened) if isinstance(opened, int) and opened in ids else None}
    res = _grid(data=data, key=key, on_events_change=lambda: None, on_open_change=lambda: None,
                on_action_change=lambda: None, on_nav_change=lambda: None)
    out = {}
    for name in ("action", "nav"):
        try:
            v = res.get(name) if hasattr(res, "get") else getattr(res, name, None)
        except Exception:  # noqa: BLE001 - an empty result in bare mode
            v = None
        out[name] = v if isinstance(v, dict) else None
    return out


def review_grid(cells: list[dict], *, relabel: str | None, cols: int = 6, key: str = "review_grid",
                acts: tuple[str, ...] = ACTS[:4], keys: bool = False, h: str | None = None) -> dict | None:
    """A grid without the bulk bar whose one-shot clicks come back as {id, act} (act 'review'); for
    pages that only show images (decisions there go through `apply_grid_events` with the page's name)."""
    from hashtag_workbench.dashboard.common import home
    out = image_grid(h or str(home()), cells, key=key, relabel=relabel, cols=cols, acts=acts, bulk=(), keys=keys)
    act = out["action"]
    return act if act and "id" in act and "act" in act else None
