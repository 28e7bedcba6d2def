"""Evaluation: model comparison (with the original study's figures), learning curves, confusion, per-word metrics."""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from hashtag_workbench.core.metrics import SCOPE_TITLES, STUDY_TOP1
from hashtag_workbench.dashboard.common import empty_state, home, n_images, thumb
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

st.title("Evaluation")
HOME = home()
H = str(HOME)
ss = st.session_state


@st.cache_data(ttl=30, show_spinner=False)
def _comparison(h: str) -> pd.DataFrame:
    return pd.DataFrame(q.model_comparison(h))


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
    if action and action["act"] == "review":
        open_in_review(int(action["id"]))
    elif action and action["act"] == "open":
        ss["eval_open"] = int(action["id"])
        st.rerun()


def best_model(comp: pd.DataFrame) -> int:
    """Row of the best evaluation: highest top-1 on held-out images (scope other than 'all') when there are any."""
    held = comp[comp["scope"] != "all"]
    pool = held if not held.empty else comp
    ranked = pool.sort_values(["top1", "n_images", "model_id"], ascending=False, kind="stable")
    return int(comp.index.get_loc(ranked.index[0]))


def _heatmap(mat: pd.DataFrame, labels: list[str], normalise: bool) -> go.Figure:
    """The confusion heatmap with counts in its cells and an invisible marker on every cell centre:
    heatmaps cannot be selected in Streamlit, scatter points can, so a click on a cell selects its marker."""
    z = mat.div(mat.sum(axis=1).replace(0, 1), axis=0) if normalise else mat
    fig = go.Figure(go.Heatmap(z=z.values, x=labels, y=labels, colorscale="Blues", text=mat.values,
                               texttemplate="%{text}", hoverinfo="skip"))
    cx = [p for _ in labels for p in labels]
    cy = [t for t in labels for _ in labels]
    n = [int(mat.loc[t, p]) for t, p in zip(cy, cx)]
    size = max(12, min(60, 420 // max(1, len(labels))))
    fig.add_trace(go.Scatter(x=cx, y=cy, mode="markers", customdata=n, showlegend=False,
                             marker=dict(symbol="square", size=size, color="rgba(0,0,0,0)", opacity=0.01),
                             hovertemplate="true %{y} → predicted %{x}: %{customdata} images<extra></extra>"))
    fig.update_layout(height=max(350, 18 * len(labels) + 120), margin=dict(l=10, r=10, t=10, b=10),
                      yaxis=dict(autorange="reversed"), xaxis=dict(side="top"), clickmode="event+select",
                      dragmode=False)
    return fig


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
table = comp.merge(STUDY[["kind", "study top-1"]], on="kind", how="left")
# a kind the study did not train (the linear probe, CLIP) says so instead of showing an empty cell as "None"
table["study top-1"] = table["study top-1"].map(lambda v: f"{v:.0%}" if pd.notna(v) else "not in the study")
for scope, title in SCOPE_TITLES.items():  # one table per scope, so nobody compares across them
    part = table[table["scope"] == scope]
    if part.empty:
        continue
    st.markdown(f"**{scope}**: {title}")
    st.dataframe(part[["model_id", "name", "kind", "backbone", "n_words", "n_images", "top1", "top5", "study top-1"]],
                 hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="percent")
                                for c in ("top1", "top5")})
st.caption("Study figures: 76 classes × 200 images, 80:20 split. Here: the words and images in this warehouse.")

curves = _curves(H)
if not curves.empty:
    st.subheader("Learning curves")
    long = curves.melt(id_vars=["model_id", "name", "epoch"],
                       value_vars=["train_loss", "val_loss", "train_acc", "val_acc"],
                       var_name="series", value_name="value").dropna()
    long["metric"] = long["series"].str.split("_").str[1]
    long["split"] = long["series"].str.split("_").str[0]
    fig = px.line(long, x="epoch", y="value", color="name", line_dash="split", facet_col="metric", markers=True)
    fig.update_yaxes(matches=None)
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=30, b=10))
    st.plotly_chart(fig, key="curves")

render_curve(H)

st.subheader("One model in detail")
opts = list(comp.itertuples(index=False))
label = {i: f"{r.name} · {r.scope} (model {r.model_id}, eval run {r.eval_run_id})" for i, r in enumerate(opts)}
pick = st.selectbox("Model and scope", list(label), format_func=label.get, key="eval_pick", index=best_model(comp))
st.caption("Chosen first: the best top-1 on held-out images.")
sel = opts[pick]
run_id, model_id, scope = int(sel.eval_run_id), int(sel.model_id), str(sel.scope)

conf = _confusion(H, run_id, model_id, scope)
left, right = st.columns([3, 2])
with left:
    st.markdown("**Confusion matrix** (rows: true word, columns: predicted; choose a cell to see its images)")
    if conf.empty:
        st.write("No confusion counts stored for this evaluation.")
    else:
        mat = conf.pivot_table(index="true_word", columns="pred_word", values="n", fill_value=0, aggfunc="sum")
        labels = sorted(set(mat.index) | set(mat.columns))
        mat = mat.reindex(index=labels, columns=labels, fill_value=0)
        normalise = st.toggle("Row-normalise colours", value=False, key="eval_norm")
        heat_key = f"eval_heat_{model_id}_{scope}_{run_id}"
        ev = st.plotly_chart(_heatmap(mat, labels, normalise), key=heat_key, on_select="rerun",
                             selection_mode=("points",))
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
