"""Overview: per-word image states, what to do next (as buttons), export, recent job runs, the last scrape."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from hashtag_workbench.core.next_steps import next_steps
from hashtag_workbench.dashboard.common import empty_state, home, start_job, word_status
from hashtag_workbench.warehouse import dashboard_queries as q
from hashtag_workbench.warehouse.runs import recent_runs

try:  # provided by the collectors (warehouse/collect.py); optional until it exists
    from hashtag_workbench.warehouse.collect import last_scrape_counts
except ImportError:  # pragma: no cover - depends on the collectors' module
    last_scrape_counts = None

COLUMNS = {"word": "word", "collected": "collected", "labelled": "labelled now", "kept_reviewed": "kept (reviewed)",
           "unreviewed": "unreviewed", "flagged": "flagged, unreviewed", "rejected": "rejected", "failed": "failed"}

st.title("Overview")
HOME = home()
H = str(HOME)
st.caption(f"Data directory: `{HOME}`")


@st.cache_data(ttl=5, show_spinner=False)
def _runs(h: str) -> pd.DataFrame:
    return pd.DataFrame(recent_runs(h, limit=30))


@st.cache_data(ttl=10, show_spinner=False)
def _last_scrape(h: str):
    return last_scrape_counts(h) if last_scrape_counts else None


@st.cache_data(ttl=10, show_spinner=False)
def _state(h: str) -> dict:
    return q.pipeline_state(h)


def _metrics(c: pd.DataFrame) -> None:
    m = st.columns(6)
    m[0].metric("Stored images", int(c["labelled"].sum()), help="every usable file, whatever its label")
    m[1].metric("Kept (reviewed)", int(c["kept_reviewed"].sum()), help="a person kept or relabelled them")
    m[2].metric("Unreviewed", int(c["unreviewed"].sum()), help="nobody has looked yet; training uses them")
    m[3].metric("Flagged, to review", int(c["flagged"].sum()), help=f"unreviewed, {q.flag_rule(None)}")
    m[4].metric("Rejected", int(c["rejected"].sum()))
    m[5].metric("Failed items", int(c["failed"].sum()), help="downloads or files that could not be used")
    st.caption(f"Flagged = unreviewed and {q.flag_rule(None)}. Review → \"Flagged queue, all words\" lists "
               "the same images.")


def _warnings(counts: pd.DataFrame, min_images: int) -> int:
    """Warn about active words with too few usable (kept or unreviewed) images; returns how many."""
    active = counts[counts["active"].fillna(True).astype(bool)]
    few = active[(active["kept"] > 0) & (active["kept"] < min_images)]
    none = active[active["kept"] == 0]
    if not few.empty:
        names = ", ".join(f"{w} ({k})" for w, k in zip(few["word"].head(30), few["kept"].head(30)))
        more = f" and {len(few) - 30} more" if len(few) > 30 else ""
        st.warning(f"{len(few)} words have fewer than {min_images} usable images (kept or unreviewed): "
                   f"{names}{more}. Collect more with `hashtags scrape-images` or import a folder.")
    if not none.empty:
        st.warning(f"{len(none)} active words have no usable images yet (e.g. {', '.join(none['word'].head(8))}). "
                   "Collect them with `hashtags scrape-images --words WORD,...`, or deactivate them on "
                   "the Words page.")
    return len(few) + len(none)


def _next_steps(counts: pd.DataFrame, few_words: int) -> None:
    s = _state(H)
    steps = next_steps(images=s["images"], featured=s["featured"], scored=s["scored"],
                       flagged=int(counts["flagged"].sum()) if not counts.empty else 0, models=s["models"],
                       evaluated=s["evaluated"], few_words=few_words)
    st.subheader("Next steps")
    if not steps:
        st.caption("Nothing pressing: every image has features and scores, every model an evaluation.")
        return
    for n, step in enumerate(steps):
        c1, c2 = st.columns([2, 5])
        what = f"`hashtags {' '.join(step.job)}`" if step.job else "the Review page"
        c2.caption(f"{step.why} · {what}")
        if c1.button(step.label, key=f"next_{n}", type="primary" if n == 0 else "secondary", width="stretch"):
            if step.job:
                start_job(list(step.job))
            else:
                st.switch_page(f"views/{step.page}.py")


def _export(words: list[str]) -> None:
    with st.expander("Export the curated data (images per word, CSV, Parquet)"):
        with st.form("export_form"):
            to = st.text_input("Folder", value=str(HOME / "export"), key="export_to",
                               help="a new or empty folder, or an earlier export (updated safely)")
            chosen = st.multiselect("Words (empty = all)", words, key="export_words")
            rejected = st.checkbox("Also export rejected images (under rejected/)", key="export_rejected")
            go = st.form_submit_button("Export", type="primary")
        if go:
            args = ["export", "--to", to.strip()] + (["--words", ",".join(chosen)] if chosen else [])
            start_job(args + (["--include-rejected"] if rejected else []))


def _runs_table() -> None:
    st.subheader("Recent runs")
    runs = _runs(H)
    if runs.empty:
        st.write("No job has run yet.")
        return
    runs["duration"] = runs["duration_s"].map(lambda s: "" if pd.isna(s) else f"{s:.1f} s")
    runs["counts"] = runs["counts"].map(lambda c: ", ".join(f"{k} {v}" for k, v in c.items()
                                                            if not isinstance(v, (list, dict))))
    runs["error"] = runs["error"].map(lambda e: (e or "").strip().splitlines()[0] if e else "")
    st.dataframe(runs[["run_id", "kind", "status", "started_at", "duration", "counts", "error"]],
                 hide_index=True, width="stretch")
    st.caption("Every job that records a run is listed; the Jobs page has each run's config and log.")


def _last_scrape_section() -> None:
    st.subheader("Last scrape")
    scrape = _last_scrape(H)
    if last_scrape_counts is None:
        st.caption("The scrape job is not installed in this build.")
        return
    if not scrape:
        st.caption("No scrape has run yet: `hashtags scrape-images`.")
        return
    if isinstance(scrape, dict) and "per_word" in scrape:
        meta = {k: v for k, v in scrape.items() if k != "per_word"}
        if meta:
            st.caption(" · ".join(f"{k}: {v}" for k, v in meta.items()))
        scrape = scrape["per_word"]
    if isinstance(scrape, dict):
        scrape = [{"word": w, **(v if isinstance(v, dict) else {"count": v})} for w, v in scrape.items()]
    st.dataframe(pd.DataFrame(scrape), hide_index=True, width="stretch")


counts = pd.DataFrame(word_status(H))
with_images = counts[(counts["labelled"] > 0) | (counts["collected"] > 0) | (counts["failed"] > 0)] \
    if not counts.empty else counts
if with_images.empty:
    empty_state("No images yet.", "hashtags demo        # or: hashtags import-folder PATH")
    _next_steps(with_images, 0)
else:
    _metrics(with_images)
    min_images = st.number_input("Warn when a word has fewer usable images than", min_value=1, value=20, step=5)
    few_words = _warnings(counts, min_images)
    _next_steps(with_images, few_words)
    st.subheader("Images per word")
    st.caption("collected = images collected for the word; labelled now = images with the word as their label "
               "after relabelling (= kept + unreviewed + rejected); kept = a person kept it or relabelled it here; "
               "flagged = not reviewed yet and flagged by any outlier detector (the rule above); "
               "failed = downloads or files that could not be used. The totals of collected and labelled now agree.")
    st.dataframe(with_images[list(COLUMNS)].rename(columns=COLUMNS), hide_index=True, width="stretch")
    _export(sorted(with_images[with_images["labelled"] > 0]["word"]))

_runs_table()
_last_scrape_section()
