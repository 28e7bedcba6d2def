"""The data-efficiency curve on the Evaluation page: accuracy against photos per word, one line per method."""
from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from hashtag_workbench.core.curve import (
    METHOD_LABELS,
    MIX,
    PROBE,
    UNLABELLED,
    ZERO_SHOT,
    as_sentence,
    crossing_sentence,
    mix_sentence,
)
from hashtag_workbench.warehouse import curve as wh_curve

COLOURS = {PROBE: "#1f77b4", MIX: "#2ca02c", ZERO_SHOT: "#d62728", UNLABELLED: "#9467bd"}


@st.cache_data(ttl=30, show_spinner=False)
def _latest(h: str) -> dict | None:
    return wh_curve.latest_curve(h)


def curve_figure(points: list[dict]) -> go.Figure:
    """Top-1 and top-5 side by side; x is the mean number of photos per word actually used."""
    zs = next((p for p in points if p["method"] == ZERO_SHOT and p["best"]), None)
    unl = next((p for p in points if p["method"] == UNLABELLED), None)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("top-1", "top-5"), shared_xaxes=True)
    for col, metric in ((1, "top1"), (2, "top5")):
        for method in (PROBE, MIX):
            line = sorted((p for p in points if p["method"] == method), key=lambda p: p["photos_per_word"])
            if not line:
                continue
            fig.add_trace(go.Scatter(
                x=[p["photos_per_word"] for p in line], y=[p[metric] for p in line], mode="lines+markers",
                name=METHOD_LABELS[method], legendgroup=method, showlegend=col == 1,
                line=dict(color=COLOURS[method]),
                error_y=dict(type="data", array=[p.get(f"{metric}_std") or 0 for p in line], visible=True),
                customdata=[[p["per_word"], p["words_with_k"], p["words"], p["seeds"]] for p in line],
                hovertemplate="%{customdata[0]} per word (%{x:.1f} used on average; %{customdata[1]}/"
                              "%{customdata[2]} words had that many), %{customdata[3]} seeds: %{y:.1%}"
                              "<extra></extra>"), row=1, col=col)
        if zs is not None:
            fig.add_hline(y=zs[metric], line=dict(color=COLOURS[ZERO_SHOT], dash="dash"), row=1, col=col,
                          annotation_text=f"zero-shot {zs[metric]:.0%}", annotation_position="bottom right")
        if unl is not None:  # 0 labelled photos: a level on the log axis, like zero-shot's
            fig.add_hline(y=unl[metric], line=dict(color=COLOURS[UNLABELLED], dash="dot"), row=1, col=col,
                          annotation_text=f"{unl['name']} {unl[metric]:.0%}", annotation_position="top left")
    ticks = sorted({p["photos_per_word"] for p in points if p["method"] == PROBE})
    labels = {p["photos_per_word"]: p["per_word"] for p in points if p["method"] == PROBE}
    fig.update_xaxes(type="log", title_text="photos per word", tickvals=ticks,
                     ticktext=[labels[t] if labels[t] != "all" else f"all (~{t:.0f})" for t in ticks])
    # numbers on both panels' axes (subplots that share an axis would hide the second one's)
    fig.update_yaxes(tickformat=".0%", rangemode="tozero", showticklabels=True)
    fig.update_yaxes(title_text="top-1 accuracy", row=1, col=1)
    fig.update_yaxes(title_text="top-5 accuracy", row=1, col=2)
    fig.update_layout(height=400, margin=dict(l=60, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.3))
    return fig


def render_curve(home: Path | str) -> None:
    """The latest `curve` run: the chart, where supervised passes zero-shot, and the zero-shot models tried."""
    st.subheader("With vs without data: photos per word")
    curve = _latest(str(home))
    if curve is None:
        st.info("No data-efficiency curve yet.\n\nRun:\n\n```\nhashtags curve\n```")
        return
    points = curve["points"]
    probe = [p for p in points if p["method"] == PROBE]
    mix = [p for p in points if p["method"] == MIX]
    zs = next((p for p in points if p["method"] == ZERO_SHOT and p["best"]), None)
    zs_top1 = zs["top1"] if zs else 0.0
    crossing, mixed = as_sentence(crossing_sentence(probe, zs_top1)), as_sentence(mix_sentence(probe, mix, zs_top1))
    st.markdown(f"**{crossing}** {mixed}")
    st.plotly_chart(curve_figure(points), key="data_curve")
    cfg = curve["config"]
    others = [p for p in points if p["method"] == ZERO_SHOT]
    st.caption(f"Curve run {curve['run_id']} on split run {cfg.get('split_run_id')}: the linear probe trained on "
               f"k train photos per word ({cfg.get('seeds')} draws each, bars: spread), scored on the val photos; "
               f"zero-shot on the same words and photos ("
               + "; ".join(f"{p['name']} {p['top1']:.0%}{' (used)' if p['best'] else ''}" for p in others)
               + "); zero-shot + photos pools both, the zero-shot prior worth "
               f"{cfg.get('mix_strength')} photos per word. Words with fewer than k train photos use all they have.")
