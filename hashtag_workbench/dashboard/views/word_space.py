"""Word space: the target words and their nearest ImageNet class names in the zero-shot model's own word vectors.

This is the original study's figure 2: ConSE works when a word's vector lies near the
vectors of ImageNet classes the CNN recognises. The vectors, centring and hashtag expansion
are the default zero-shot model's (spaCy's 300-d vectors unless configured otherwise); the
layout is cached per vocabulary fingerprint, so it is computed once per set of words.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from hashtag_workbench.core.maps import nearest, to_2d
from hashtag_workbench.dashboard.common import default_zero_shot, empty_state, home, words
from hashtag_workbench.warehouse import words as wh_words

st.title("Word space")
HOME = home()
H = str(HOME)
VECTOR_NAMES = {"spacy": "spaCy en_core_web_md (300-d)", "glove": "GloVe 6B (50-d)", "minilm": "MiniLM (384-d)"}


def _default_config():
    return default_zero_shot()[1]


@st.cache_resource(show_spinner="Loading word vectors ...")
def _encoder(spec: str):
    from hashtag_workbench.core.wordvectors import cached_word_vectors
    return cached_word_vectors(spec)


@st.cache_resource(show_spinner="Embedding the ImageNet class names ...")
def _names(spec: str, mode: str) -> tuple[list[str], np.ndarray]:
    """The ImageNet names that have a vector, and their vectors, as the zero-shot model embeds them (once)."""
    from hashtag_workbench.core.backbones import imagenet_classes
    from hashtag_workbench.core.conse import name_vectors
    names = imagenet_classes()
    vecs, mask = name_vectors(_encoder(spec), names, mode)
    return [n for n, m in zip(names, mask) if m], vecs[mask]


@st.cache_data(ttl=10, show_spinner=False)
def _vocabulary(h: str) -> tuple[tuple[str, ...], str, dict]:
    from hashtag_workbench.core.kinds import vocabulary_fingerprint
    targets = words(h, active_only=True)
    tags = wh_words.hashtags_for(h)
    return tuple(targets), vocabulary_fingerprint(targets, tags), {w: tags.get(w, []) for w in targets}


@st.cache_data(show_spinner="Placing the words ...", max_entries=16)
def _layout(spec: str, fingerprint: str, k: int, method: str, _targets: tuple[str, ...],
            _tags: dict) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Keyed by the vectors and the vocabulary's fingerprint (words + hashtags): a page visit after the
    first, or a slider moved back, costs nothing; only the words and their neighbours are projected."""
    from hashtag_workbench.core.conse import target_vectors
    cfg = _default_config()  # read with defaults: every zero-shot kind's config names its vectors, not all the rest
    names, nv = _names(spec, getattr(cfg, "names", "mean"))
    tv, tmask, _ = target_vectors(_encoder(spec), list(_targets), hashtags=_tags,
                                  expand_k=cfg.expand_k if getattr(cfg, "expand", False) else 0)
    known_t = [t for t, m in zip(_targets, tmask) if m]
    missing = [t for t, m in zip(_targets, tmask) if not m]
    tv = tv[tmask]
    if getattr(cfg, "centre", False):  # the model compares vectors after subtracting the mean ImageNet name vector
        centre = nv.mean(axis=0)
        tv, nv = tv - centre, nv - centre
    idx, sims = nearest(tv, nv, k=k)
    neigh = pd.DataFrame([{"word": t, "imagenet class": names[j], "cosine": float(s)}
                          for t, row, srow in zip(known_t, idx, sims) for j, s in zip(row, srow)])
    chosen = sorted(set(int(j) for j in idx.ravel()))
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):  # a few hundred points: a second BLAS thread only waits (measured 8x slower)
        xy = to_2d(np.vstack([tv, nv[chosen]]), method=method, perplexity=15)
    pts = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "label": known_t + [names[c] for c in chosen],
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


targets, fingerprint, tags = _vocabulary(H)
if not targets:
    empty_state("No words yet.", "hashtags stats      # loads the shipped vocabulary (or: hashtags demo)")
    st.stop()

default_spec = _default_config().word_vectors
st.caption("What it is for: zero-shot (ConSE) can only answer a word whose vector lies near ImageNet classes "
           "the CNN recognises; a word far from all of them is one to collect photos for.")
c1, c2, c3 = st.columns(3)
specs = [default_spec] + [v for v in VECTOR_NAMES if v != default_spec]
spec = c1.selectbox("Word vectors", specs, key="ws_spec",
                    format_func=lambda v: VECTOR_NAMES.get(v, v) + (" — the zero-shot model's" if v == default_spec
                                                                    else ""))
k = c2.slider("Nearest ImageNet classes per word", 1, 5, 3, key="ws_k")
method = c3.radio("Layout", ["tsne", "pca"], format_func={"tsne": "t-SNE", "pca": "PCA"}.get, horizontal=True,
                  key="ws_method")
try:
    pts, neigh, missing = _layout(spec, fingerprint, k, method, targets, tags)
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
