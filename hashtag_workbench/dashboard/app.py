"""Dashboard entry point: `streamlit run dashboard/app.py` (data dir from $HASHTAG_HOME, else ./data)."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).resolve().parent / "views"  # not "pages/": that name turns on the old auto-discovered navigation

st.set_page_config(page_title="Hashtag workbench", page_icon="#", layout="wide")
nav = st.navigation({
    "Data": [
        st.Page(PAGES / "overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page(PAGES / "words.py", title="Words & hashtags", icon=":material/tag:"),
        st.Page(PAGES / "review.py", title="Review", icon=":material/fact_check:"),
        st.Page(PAGES / "embedding.py", title="Embedding map", icon=":material/scatter_plot:"),
    ],
    "Models": [
        st.Page(PAGES / "evaluation.py", title="Evaluation", icon=":material/analytics:"),
        st.Page(PAGES / "predict.py", title="Predict", icon=":material/photo_camera:"),
        st.Page(PAGES / "word_space.py", title="Word space", icon=":material/hub:"),
    ],
    "Operations": [
        st.Page(PAGES / "jobs.py", title="Jobs", icon=":material/play_circle:"),
    ],
})
nav.run()
