"""Shared bits for pages: the data directory, cached reads, empty states."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import streamlit as st

# `streamlit run dashboard/app.py` puts dashboard/ on the path, not the project root.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from warehouse.store import resolve_home  # noqa: E402


def home() -> Path:
    """The data directory the dashboard reads ($HASHTAG_HOME or ./data)."""
    return resolve_home(os.environ.get("HASHTAG_HOME"))


def empty_state(message: str, command: str) -> None:
    st.info(f"{message}\n\nRun:\n\n```\n{command}\n```")
