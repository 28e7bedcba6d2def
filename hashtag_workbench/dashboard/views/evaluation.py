"""Evaluation: model comparison (with the original study's figures), learning curves, confusion, per-word metrics."""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from hashtag_workbench.core.confusion import pair_cosines, support, top_confused_pairs
from hashtag_workbench.core.metrics import SCOPE_TITLES, STUDY_TOP1
from hashtag_workbench.dashboard.common import default_zero_shot, empty_state, home, n_images, thumb
from hashtag_workbench.dashboard.curve_chart import render_curve
from hashtag_workbench.dashboard.image_panel import image_panel, open_in_review
from hashtag_workbench.dashboard.lightbox import info_lines
from hashtag_workbench.dashboard.review_grid import apply_grid_events, data_uri, review_grid
from hashtag_workbench.warehouse import curation
from hashtag_workbench.warehouse import dashboard_queries as q

# Top-1 accuracy in the original study (76 classes, 200 images each, 80:20 split).
STUDY = pd.DataFrame([{"model": name, "kind": kind, "study top-1": top1}
                      for kind, (name, top1) in STUDY_TOP1.items()])
GRID = 6
TOP_PAIRS = 15
STUDY_COLUMN = "in the study (top-1)"

st.title("Evaluation")
HOME = home()
H = str(HOME)
ss = st.session_state


@st.cache_data(ttl=30, show_spinner=False)
def _comparison(h: str) -> pd.DataFrame:
    """Every model's latest evaluation per scope, best top-1 first (within a scope the tables keep this order)."""
    comp = pd.DataFrame(q.model_comparison(h))
    if comp.empty:
        return comp
    return comp.sort_values(["top1", "top5", "model_id"], ascending=False, kind="stable").reset_index(drop=True)


@st.cache_resource(show_spinner="Loading the zero-shot model's word vectors ...")
def _vectors():
    """The word vectors the default zero-shot model uses (spaCy's by default), remembered per process."""
    from hashtag_workbench.core.wordvectors import cached_word_vectors
    return cached_word_vectors(default_zero_shot()[1].word_vectors)


@st.cache_data(ttl=300, show_spinner=False)
def _pairs(h: str, run_id: int, model_id: int, scope: str) -> tuple[pd.DataFrame, str]:
    """The most confused pairs of one evaluation, with each pair's word-vector cosine."""
    cells = q.confusion(h, run_id, model_id, scope)
    pairs = pd.DataFrame(top_confused_pairs(cells, TOP_PAIRS))
    try:
        enc = _vectors()
    except Exception as exc:  # vectors not installed: the pairs still show, without the similarity
        return pairs, f"no word vectors ({exc})"
    if not pairs.empty:
        pairs["cosine"] = pair_cosines(enc, list(zip(pairs["true_word"], pairs["pred_word"])))
    return pairs, enc.name


@st.cache_data(ttl=30, show_spinner=False)
def _curves(h: str) -> pd.DataFrame:
    return pd.DataFrame(q.learning_curves(h))


@st.cache_data(ttl=30, show_spinner=False)
def _confusion(h: str, run_id: int, model_id: int, scope: str) -> pd.DataFrame:
    return pd.DataFrame(q.confusion(h, run_id, model_id, scope))


@st.cache_data(ttl=30, show_spinner=False)
def _per_word(h: str, run_id: int, model_id: int, scope: str) -> pd.DataFrame:
    return pd.DataFrame(q.per_word_metrics(h, run_id, model_id, scope))


@st.cache_data(ttl=30, show_spinner=False)
def _examples(h: str, run_id: int, model_id: int, scope: str, true_word, pred_word, wrong: bool) -> list[dict]:
    return q.eval_examples(h, run_id, model_id, scope, true_word=true_word, pred_word=pred_word,
                           misclassified_only=wrong, limit=GRID * 4)


def _after_write() -> None:
    st.cache_data.clear()  # labels changed: every page's counts and lists


def _grid(rows: list[dict], key: str) -> None:
    """Evaluated images; click one to open it large (keep / reject / relabel), ↗ opens it in Review."""
    if not rows:
        st.write("No images.")
        return
    apply_grid_events(H, key, "evaluation", on_write=_after_write)   # K / X in its lightbox, once each
    labels = curation.current_labels(H, [r["image_id"] for r in rows])
    cells = [{"id": r["image_id"], "src": data_uri(thumb(H, r["sha256"], r["path"])), "flagged": False,
              "review": labels.get(r["image_id"], {}).get("review"), "word": r["true_word"], "info": info_lines(r),
              "caption": f"#{r['image_id']} {r['true_word']} → {r['pred_word']}"
                         + ("" if r["prob"] is None else f" ({r['prob']:.0%})")} for r in rows]
    action = review_grid(cells, relabel=None, cols=GRID, key=key, acts=("review",))
    if action and action["act"] == "review":   # the grid's only action back (a click opens the lightbox)
        open_in_review(int(action["id"]))


def best_model(comp: pd.DataFrame) -> int:
    """Row of the best evaluation: highest top-1 on held-out images (scope other than 'all') when there are any."""
    held = comp[comp["scope"] != "all"]
    pool = held if not held.empty else comp
    ranked = pool.sort_values(["top1", "n_images", "model_id"], ascending=False, kind="stable")
    return int(comp.index.get_loc(ranked.index[0]))


def _heatmap(mat: pd.DataFrame, normalise: bool) -> go.Figure:
    """The confusion heatmap with counts in its cells and an invisible marker on every cell centre:
    heatmaps cannot be selected in Streamlit, scatter points can, so a click on a cell selects its marker."""
    rows, cols = list(mat.index), list(mat.columns)
    z = mat.div(mat.sum(axis=1).replace(0, 1), axis=0) if normalise else mat
    text = mat.where(mat > 0).map(lambda v: "" if pd.isna(v) else f"{int(v)}")   # zeros left blank: less noise
    fig = go.Figure(go.Heatmap(z=z.values, x=cols, y=rows, colorscale="Blues", text=text.values,
                               texttemplate="%{text}", hoverinfo="skip", showscale=False))
    cx = [p for _ in rows for p in cols]
    cy = [t for t in rows for _ in cols]
    n = [int(mat.loc[t, p]) for t, p in zip(cy, cx)]
    size = max(8, min(60, 420 // max(1, len(cols))))
    fig.add_trace(go.Scatter(x=cx, y=cy, mode="markers", customdata=n, showlegend=False,
                             marker=dict(symbol="square", size=size, color="rgba(0,0,0,0)", opacity=0.01),
                             hovertemplate="true %{y} → predicted %{x}: %{customdata} images<extra></extra>"))
    fig.update_layout(height=max(350, 16 * len(rows) + 140), margin=dict(l=10, r=10, t=10, b=10),
                      yaxis=dict(autorange="reversed", title="true word", tickfont=dict(size=10)),
                      xaxis=dict(side="top", title="predicted", tickfont=dict(size=10), tickangle=-60),
                      clickmode="event+select", dragmode=False)
    return fig


def _learning_curves(curves: pd.DataFrame) -> go.Figure:
    """Loss and accuracy per epoch side by side, each with its own labelled axis (train solid, val dashed)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"), horizontal_spacing=0.1)
    palette = px.colors.qualitative.D3
    for n, (name, part) in enumerate(curves.groupby("name", sort=False)):
        colour = palette[n % len(palette)]
        for col, metric in ((1, "loss"), (2, "acc")):
            for split, dash in (("train", "solid"), ("val", "dash")):
                y = part[f"{split}_{metric}"]
                if y.isna().all():
                    continue
                fig.add_trace(go.Scatter(x=part["epoch"], y=y, mode="lines+markers", name=f"{name} · {split}",
                                         legendgroup=f"{name}{split}", showlegend=col == 1,
                                         line=dict(color=colour, dash=dash)), row=1, col=col)
    fig.update_xaxes(title_text="epoch", dtick=1)
    fig.update_yaxes(title_text="cross-entropy loss", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="top-1 accuracy", tickformat=".0%", rangemode="tozero", row=1, col=2)
    fig.update_layout(height=380, margin=dict(l=60, r=10, t=30, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def _comparison_table(part: pd.DataFrame, best_top1: float) -> pd.DataFrame:
    """One scope's rows as shown: best first and marked, the study's matching model named with its figure."""
    study = part["kind"].map(lambda k: f"{STUDY_TOP1[k][0]} ({STUDY_TOP1[k][1]:.0%})" if k in STUDY_TOP1
                             else "not in the study")
    # the backbone is named when the model's own name does not say it; every column fits the page's width
    names = [n if str(b).replace("_", "").lower()[:9] in n.replace("-", "").lower() else f"{n}, {b}"
             for n, b in zip(part["name"], part["backbone"])]
    return pd.DataFrame({"": ["★ best" if v == best_top1 else "" for v in part["top1"]],
                         "model": [f"#{m} {n}" for n, m in zip(names, part["model_id"])],
                         "top-1": part["top1"], "top-5": part["top5"], "words": part["n_words"],
                         "images": part["n_images"], STUDY_COLUMN: study})


def _pairs_section(run_id: int, model_id: int, scope: str) -> None:
    """The most confused pairs; choosing one shows its images in the cell view below."""
    pairs, vectors = _pairs(H, run_id, model_id, scope)
    st.markdown(f"**Most confused pairs** (word-vector cosine from {vectors}, the default zero-shot model's "
                "vectors: a high cosine means the words are semantically close, a low one a visual confusion)")
    if pairs.empty:
        st.write("No confusions: every evaluated image was predicted as its own word.")
        return
    shown = pairs.rename(columns={"true_word": "true word", "pred_word": "predicted as", "n": "images",
                                  "rate": "share of the true word"})
    ev = st.dataframe(shown, hide_index=True, width="stretch", key=f"eval_pairs_{run_id}_{model_id}_{scope}",
                      on_select="rerun", selection_mode="single-row",
                      column_config={"share of the true word": st.column_config.NumberColumn(format="percent"),
                                     "cosine": st.column_config.NumberColumn(format="%.2f")})
    rows = ev.selection.rows if ev else []
    if rows and ss.get("eval_pair_last") != (run_id, model_id, scope, rows[0]):
        ss["eval_pair_last"] = (run_id, model_id, scope, rows[0])
        ss["cell_true"], ss["cell_pred"] = pairs.iloc[rows[0]]["true_word"], pairs.iloc[rows[0]]["pred_word"]
    st.caption("Choose a row to see that pair's images below.")


def _cell_from_click(ev, key: str) -> None:
    """A newly clicked cell becomes the chosen cell (an old selection never overrides the select boxes)."""
    pts = (ev or {}).get("selection", {}).get("points", []) if ev else []
    if not pts:
        return
    cell = (pts[0].get("y"), pts[0].get("x"))
    if ss.get("eval_heat_last") != (key, cell):
        ss["eval_heat_last"] = (key, cell)
        ss["cell_true"], ss["cell_pred"] = cell


comp = _comparison(H)
if comp.empty:
    empty_state("No evaluated models yet.", "hashtags train      # then: hashtags evaluate\n"
                                            "# or the whole pipeline: hashtags demo")
    st.subheader("The original study's figures (top-1, 76 words)")
    st.dataframe(STUDY, hide_index=True)
    st.stop()

st.subheader("Model comparison")
for scope, title in SCOPE_TITLES.items():  # one table per scope, so nobody compares across them
    part = comp[comp["scope"] == scope]
    if part.empty:
        continue
    st.markdown(f"**{scope}**: {title}")
    st.dataframe(_comparison_table(part, part["top1"].max()), hide_index=True, width="stretch",
                 column_config={"": st.column_config.TextColumn(width=60),
                                "top-1": st.column_config.NumberColumn(format="percent", width=70),
                                "top-5": st.column_config.NumberColumn(format="percent", width=70),
                                "words": st.column_config.NumberColumn(width=60),
                                "images": st.column_config.NumberColumn(width=60)})
st.caption("Sorted by top-1; ★ marks the best in each table. The study's figures: 76 classes × 200 images, "
           "80:20 split. Here: the words and images in this warehouse.")

curves = _curves(H)
if not curves.empty:
    st.subheader("Learning curves")
    st.plotly_chart(_learning_curves(curves), key="curves")

render_curve(H)

st.subheader("One model in detail")
opts = list(comp.itertuples(index=False))
label = {i: f"{r.name} · {r.scope} (model {r.model_id}, eval run {r.eval_run_id})" for i, r in enumerate(opts)}
pick = st.selectbox("Model and scope", list(label), format_func=label.get, key="eval_pick", index=best_model(comp))
st.caption("Chosen first: the best top-1 on held-out images.")
sel = opts[pick]
run_id, model_id, scope = int(sel.eval_run_id), int(sel.model_id), str(sel.scope)

conf = _confusion(H, run_id, model_id, scope)
_pairs_section(run_id, model_id, scope)
left, right = st.columns([3, 2])
with left:
    st.markdown("**Confusion matrix** (rows: true word, columns: predicted; choose a cell to see its images)")
    if conf.empty:
        st.write("No confusion counts stored for this evaluation.")
    else:
        sup = support(conf.to_dict("records"))
        rows = sorted(w for w, n in sup.items() if n > 0)              # words with no evaluated image: hidden
        mat = conf.pivot_table(index="true_word", columns="pred_word", values="n", fill_value=0, aggfunc="sum")
        cols = sorted(set(rows) | {p for p in mat.columns if mat[p].sum() > 0})
        mat = mat.reindex(index=rows, columns=cols, fill_value=0)
        labels = cols                                                   # every word the cell boxes may name
        hidden = len((set(conf["true_word"]) | set(conf["pred_word"])) - set(rows))
        normalise = st.toggle("Row-normalise colours", value=False, key="eval_norm")
        heat_key = f"eval_heat_{model_id}_{scope}_{run_id}"
        ev = st.plotly_chart(_heatmap(mat, normalise), key=heat_key, on_select="rerun",
                             selection_mode=("points",))
        st.caption(f"{len(rows)} true words with evaluated images" + (
            f"; {hidden} words with none have no row" if hidden > 0 else "") + ".")
        _cell_from_click(ev, heat_key)
        for k in ("cell_true", "cell_pred"):
            if ss.get(k) not in labels:  # words of another model's evaluation
                ss.pop(k, None)
        c1, c2 = st.columns(2)
        tw = c1.selectbox("True word", labels, key="cell_true")
        pw = c2.selectbox("Predicted word", labels, key="cell_pred")
        n = int(mat.loc[tw, pw]) if tw in mat.index and pw in mat.columns else 0
        st.caption(f"{n_images(n)}: true {tw}, predicted {pw} · click an image to open it, ↗ to open it in Review")
        _grid(_examples(H, run_id, model_id, scope, tw, pw, False), "eval_cell_grid")
with right:
    st.markdown("**Per-word precision and recall**")
    pw_df = _per_word(H, run_id, model_id, scope)
    if pw_df.empty:
        st.write("No per-word metrics stored for this evaluation.")
    else:
        st.dataframe(pw_df, hide_index=True, width="stretch", height=min(500, 38 + 35 * len(pw_df)),
                     column_config={c: st.column_config.NumberColumn(format="percent")
                                    for c in ("precision", "recall")})
        bars = px.bar(pw_df.melt(id_vars="word", value_vars=["precision", "recall"]), x="word", y="value",
                      color="variable", barmode="group")
        bars.update_layout(height=300, margin=dict(l=10, r=10, t=10, b=10), legend_title=None)
        st.plotly_chart(bars, key="eval_bars")

if ss.get("eval_open") is not None:
    st.subheader("Opened image")
    image_panel(H, ss["eval_open"], key="eval_panel", after_write=_after_write,
                on_close=lambda: ss.pop("eval_open", None))

st.subheader("Misclassified examples")
_grid(_examples(H, run_id, model_id, scope, None, None, True), "eval_wrong_grid")
