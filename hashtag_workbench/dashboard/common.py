"""Shared bits for pages: the data directory, cached reads, thumbnails, empty states.

Pages never hold a DuckDB connection: every read goes through a warehouse function
that opens a short read-only connection; results are cached with a short TTL.
"""
from __future__ import annotations

import os
import shlex
from pathlib import Path

import streamlit as st

from hashtag_workbench.dashboard import launcher
from hashtag_workbench.warehouse import dashboard_queries as q
from hashtag_workbench.warehouse import words as wh_words
from hashtag_workbench.warehouse.db import WarehouseLocked
from hashtag_workbench.warehouse.store import resolve_home
from hashtag_workbench.warehouse.thumbs import thumbnail

THUMB_SIZE = 192
JOBS_PAGE = "views/jobs.py"


def home() -> Path:
    """The data directory the dashboard reads ($HASHTAG_HOME or ./data)."""
    return resolve_home(os.environ.get("HASHTAG_HOME"))


def empty_state(message: str, command: str) -> None:
    st.info(f"{message}\n\nRun:\n\n```\n{command}\n```")


def clear_caches() -> None:
    """After a write: drop cached query results so every page shows the new state."""
    st.cache_data.clear()


@st.cache_data(ttl=10, show_spinner=False)
def words(h: str, active_only: bool = False) -> list[str]:
    return [w["word"] for w in wh_words.list_words(h, active_only=active_only)]


@st.cache_data(ttl=10, show_spinner=False)
def word_status(h: str) -> list[dict]:
    return q.word_status(h)


def default_zero_shot() -> tuple[str, object]:
    """(kind, config) of the zero-shot model predict builds when none is named."""
    from hashtag_workbench.core.kinds import DEFAULT_ZERO_SHOT, default_zero_shot_config
    return DEFAULT_ZERO_SHOT, default_zero_shot_config()


def thumb(h: str, sha256: str, relpath: str, size: int = THUMB_SIZE) -> str | None:
    """Path (as text) of the on-disk thumbnail of a stored image; made once, then reused (a stat when warm)."""
    p = thumbnail(h, sha256, relpath, size)
    return str(p) if p else None


def n_images(n: int) -> str:
    """'1 image', '3 images'."""
    return f"{n} image" if n == 1 else f"{n} images"


def fmt_score(score) -> str:
    return "no score" if score is None else f"{score:.2f}"


_MD_SPECIAL = "\\`*_{}[]()<>#+-.!|~:$"


def md_escape(text: str) -> str:
    """Text from users or scraped pages, made inert for a markdown context (no links, images or HTML)."""
    return "".join("\\" + c if c in _MD_SPECIAL else c for c in str(text)).replace("\n", " ")


# Jobs that download or write a lot ask first: start_job opens the Jobs page's form for them instead.
CONFIRM_FIRST = ("scrape-images",)
COLLECT_REQUEST = "collect_request"


def toast_ok(message: str) -> None:
    """An action's confirmation: a toast, which never pushes the page's layout down."""
    st.toast(message, icon=":material/check_circle:")


def start_job(args: list[str]) -> dict | None:
    """Start `hashtags ARGS...` in the background and open the Jobs page, where its progress shows.

    A job in CONFIRM_FIRST is not started here: the Jobs page asks for its choices and a confirmation."""
    h = home()
    if args and args[0] in CONFIRM_FIRST:
        st.session_state[COLLECT_REQUEST] = True
        st.session_state["jobs_msg"] = "Choose the words and how many photos per word, then confirm."
        _open_jobs()
        return None
    try:
        rec = launcher.start_job(h, args, before_run_id=q.max_run_id(str(h)))
    except (ValueError, OSError, WarehouseLocked) as exc:
        st.error(f"Cannot start `hashtags {shlex.join(args)}`: {exc}")
        return None
    st.session_state["jobs_msg"] = (f"Started `hashtags {shlex.join(args)}` (process {rec['pid']}); "
                                    f"its output goes to logs/{rec['log']}.")
    _open_jobs()
    return rec


def _open_jobs() -> None:
    try:
        st.switch_page(JOBS_PAGE)
    except Exception:  # a page run on its own (tests, bare mode) has no navigation to switch in
        st.toast(st.session_state.pop("jobs_msg"))
