"""Overview: images per word and recent job runs."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.common import empty_state, home
from warehouse.images import word_counts
from warehouse.runs import recent_runs

st.title("Overview")
HOME = home()
st.caption(f"Data directory: `{HOME}`")


@st.cache_data(ttl=5, show_spinner=False)
def _counts(h: str) -> pd.DataFrame:
    return pd.DataFrame(word_counts(h))


@st.cache_data(ttl=5, show_spinner=False)
def _runs(h: str) -> pd.DataFrame:
    return pd.DataFrame(recent_runs(h, limit=30))


counts = _counts(str(HOME))
with_images = counts[(counts["stored"] > 0) | (counts["failed"] > 0)] if not counts.empty else counts
if with_images.empty:
    empty_state("No images yet.", "python -m jobs demo        # or: python -m jobs import-folder PATH")
else:
    c1, c2, c3 = st.columns(3)
    c1.metric("Stored images", int(with_images["stored"].sum()))
    c2.metric("Failed items", int(with_images["failed"].sum()))
    c3.metric("Words with images", int((with_images["stored"] > 0).sum()))
    st.subheader("Images per word")
    st.dataframe(with_images[["word", "stored", "failed"]], hide_index=True, width="stretch")

st.subheader("Recent runs")
runs = _runs(str(HOME))
if runs.empty:
    st.write("No job has run yet.")
else:
    st.dataframe(runs[["run_id", "kind", "status", "started_at", "duration_s", "counts", "error"]],
                 hide_index=True, width="stretch")
