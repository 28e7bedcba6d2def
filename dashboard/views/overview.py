"""Overview: per-word image states, recent job runs, warnings, the last scrape's outcome."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.common import empty_state, home, word_status
from warehouse.runs import recent_runs

try:  # provided by the collectors (warehouse/collect.py); optional until it exists
    from warehouse.collect import last_scrape_counts
except ImportError:  # pragma: no cover - depends on the collectors' module
    last_scrape_counts = None

st.title("Overview")
HOME = home()
st.caption(f"Data directory: `{HOME}`")


@st.cache_data(ttl=5, show_spinner=False)
def _runs(h: str) -> pd.DataFrame:
    return pd.DataFrame(recent_runs(h, limit=30))


@st.cache_data(ttl=10, show_spinner=False)
def _last_scrape(h: str):
    return last_scrape_counts(h) if last_scrape_counts else None


counts = pd.DataFrame(word_status(str(HOME)))
with_images = counts[(counts["stored"] > 0) | (counts["failed"] > 0)] if not counts.empty else counts
if with_images.empty:
    empty_state("No images yet.", "python -m jobs demo        # or: python -m jobs import-folder PATH")
else:
    c1, c2, c3, c4, c5 = st.columns(5)
    c1.metric("Stored images", int(with_images["stored"].sum()))
    c2.metric("Kept", int(with_images["kept"].sum()))
    c3.metric("Flagged, to review", int(with_images["flagged"].sum()))
    c4.metric("Rejected", int(with_images["rejected"].sum()))
    c5.metric("Failed items", int(with_images["failed"].sum()))

    min_images = st.number_input("Warn when a word has fewer kept images than", min_value=1, value=20, step=5)
    active = counts[counts["active"].fillna(True).astype(bool)]
    few = active[(active["kept"] > 0) & (active["kept"] < min_images)]
    none = active[active["kept"] == 0]
    if not few.empty:
        names = ", ".join(f"{w} ({k})" for w, k in zip(few["word"].head(30), few["kept"].head(30)))
        more = f" and {len(few) - 30} more" if len(few) > 30 else ""
        st.warning(f"{len(few)} words have fewer than {min_images} kept images: {names}{more}. "
                   "Collect more with `python -m jobs scrape-images` or import a folder.")
    if not none.empty:
        st.warning(f"{len(none)} active words have no kept images yet (e.g. {', '.join(none['word'].head(8))}). "
                   "Collect them with `python -m jobs scrape-images --words WORD,...`, or deactivate them on "
                   "the Words page.")

    st.subheader("Images per word")
    st.caption("kept = current label and not rejected; flagged = flagged by an outlier detector and not "
               "reviewed yet; failed = downloads or files that could not be used.")
    st.dataframe(with_images[["word", "stored", "kept", "flagged", "rejected", "reviewed", "failed"]],
                 hide_index=True, width="stretch")

st.subheader("Last scrape")
scrape = _last_scrape(str(HOME))
if last_scrape_counts is None:
    st.caption("The scrape job is not installed in this build.")
elif not scrape:
    st.caption("No scrape has run yet: `python -m jobs scrape-images`.")
else:
    if isinstance(scrape, dict) and "per_word" in scrape:
        meta = {k: v for k, v in scrape.items() if k != "per_word"}
        if meta:
            st.caption(" · ".join(f"{k}: {v}" for k, v in meta.items()))
        scrape = scrape["per_word"]
    if isinstance(scrape, dict):
        scrape = [{"word": w, **(v if isinstance(v, dict) else {"count": v})} for w, v in scrape.items()]
    st.dataframe(pd.DataFrame(scrape), hide_index=True, width="stretch")

st.subheader("Recent runs")
runs = _runs(str(HOME))
if runs.empty:
    st.write("No job has run yet.")
else:
    runs["duration"] = runs["duration_s"].map(lambda s: "" if pd.isna(s) else f"{s:.1f} s")
    runs["counts"] = runs["counts"].map(lambda c: ", ".join(f"{k} {v}" for k, v in c.items()
                                                            if not isinstance(v, (list, dict))))
    st.dataframe(runs[["run_id", "kind", "status", "started_at", "duration", "counts", "error"]],
                 hide_index=True, width="stretch")
