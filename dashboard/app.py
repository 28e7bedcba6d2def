"""Dashboard entry point: `streamlit run dashboard/app.py` (data dir from $HASHTAG_HOME, else ./data)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import streamlit as st  # noqa: E402

PAGES = Path(__file__).resolve().parent / "pages"

st.set_page_config(page_title="Hashtag workbench", page_icon="#", layout="wide")
nav = st.navigation([
    st.Page(PAGES / "overview.py", title="Overview", icon=":material/dashboard:", default=True),
])
nav.run()
