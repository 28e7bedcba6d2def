"""Word space: the target words and their nearest ImageNet class names in word-vector space, in 2-D (t-SNE).

This is the original study's figure 2: ConSE works when a word's vector lies near the
vectors of ImageNet classes the CNN recognises.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from hashtag_workbench.core.maps import nearest, to_2d
from hashtag_workbench.dashboard.common import empty_state, home, words

st.title("Word space")
HOME = home()
H = str(HOME)


@st.cache_resource(show_spinner="Loading word vectors ...")
def _encoder(spec: str):
    from hashtag_workbench.core.wordvectors import load_word_vectors
    return load_word_vectors(spec)


@st.cache_resource(show_spinner=False)
def _imagenet() -> list[str]:
    from hashtag_workbench.core.backbones import imagenet_classes
    return imagenet_classes()


@st.cache_data(ttl=3600, show_spinner="Placing words (t-SNE) ...", max_entries=8)
def _layout(spec: str, targets: tuple[str, ...], k: int, method: str) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    enc = _encoder(spec)
    names = _imagenet()
    tv, tmask = enc.encode(list(targets))
    nv, nmask = enc.encode(names)
    known_t = [t for t, m in zip(targets, tmask) if m]
    missing = [t for t, m in zip(targets, tmask) if not m]
    tv = tv[tmask]
    name_idx = np.flatnonzero(nmask)
    idx, sims = nearest(tv, nv[name_idx], k=k)
    neigh_rows = []
    for t, row, srow in zip(known_t, idx, sims):
        for j, s in zip(row, srow):
            neigh_rows.append({"word": t, "imagenet class": names[name_idx[j]], "cosine": float(s)})
    neigh = pd.DataFrame(neigh_rows)
    chosen = sorted(set(int(name_idx[j]) for j in idx.ravel()))
    X = np.vstack([tv, nv[chosen]])
    xy = to_2d(X, method=method, perplexity=15)
    pts = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1],
                        "label": known_t + [names[c] for c in chosen],
                        "kind": ["target word"] * len(known_t) + ["ImageNet class"] * len(chosen)})
    return pts, neigh, missing


def _figure(pts: pd.DataFrame, label_names: bool) -> go.Figure:
    """Target words: large red diamonds, always labelled; ImageNet classes: small grey-blue dots, named on hover
    (or labelled, small and light, with the toggle), so the words the study cares about stay readable."""
    names = pts[pts["kind"] == "ImageNet class"]
    tgt = pts[pts["kind"] == "target word"]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=names["x"], y=names["y"], mode="markers+text" if label_names else "markers",
                             name="ImageNet class", text=names["label"], textposition="bottom center",
                             textfont=dict(size=9, color="#7f8c9a"),
                             marker=dict(size=7, color="#8fb3d9", line=dict(width=0)),
                             hovertemplate="ImageNet class: %{text}<extra></extra>"))
    fig.add_trace(go.Scatter(x=tgt["x"], y=tgt["y"], mode="markers+text", name="target word", text=tgt["label"],
                             textposition="top center", textfont=dict(size=13, color="#b71c1c"),
                             marker=dict(size=13, color="#d62728", symbol="diamond",
                                         line=dict(width=1, color="white")),
                             hovertemplate="target word: %{text}<extra></extra>"))
    fig.update_layout(height=700, margin=dict(l=10, r=10, t=10, b=10), xaxis_title=None, yaxis_title=None,
                      legend=dict(orientation="h", y=1.02, x=0))
    return fig


targets = words(H, active_only=True)
if not targets:
    empty_state("No words yet.", "hashtags stats      # loads the shipped vocabulary (or: hashtags demo)")
    st.stop()

c1, c2, c3 = st.columns(3)
spec = c1.selectbox("Word vectors", ["glove", "minilm"], format_func={"glove": "GloVe 6B 50-d",
                                                                     "minilm": "MiniLM (384-d)"}.get, key="ws_spec")
k = c2.slider("Nearest ImageNet classes per word", 1, 5, 3, key="ws_k")
method = c3.radio("Layout", ["tsne", "pca"], format_func={"tsne": "t-SNE", "pca": "PCA"}.get, horizontal=True,
                  key="ws_method")
try:
    pts, neigh, missing = _layout(spec, tuple(targets), k, method)
except Exception as exc:  # a missing word-vector package or file: say so instead of a traceback
    st.error(f"Cannot load the word vectors {spec!r}: {exc}")
    st.stop()
if missing:
    st.caption(f"No vector for: {', '.join(missing)}")

label_names = st.toggle("Label the ImageNet classes too (otherwise: hover to see them)", key="ws_label_names")
st.plotly_chart(_figure(pts, label_names), key="ws_chart")

st.subheader("Nearest ImageNet classes")
pick = st.selectbox("Word", sorted(set(neigh["word"])) if not neigh.empty else [], key="ws_word")
if pick:
    st.dataframe(neigh[neigh["word"] == pick], hide_index=True)
with st.expander("All words"):
    st.dataframe(neigh, hide_index=True, width="stretch")
