"""Evaluation: model comparison (with the original study's figures), learning curves, confusion, per-word metrics."""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from core.metrics import STUDY_TOP1
from dashboard.common import empty_state, home, thumb
from dashboard.curve_chart import render_curve
from warehouse import dashboard_queries as q

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


def _grid(rows: list[dict]) -> None:
    if not rows:
        st.write("No images.")
        return
    for r0 in range(0, len(rows), GRID):
        cols = st.columns(GRID)
        for col, r in zip(cols, rows[r0:r0 + GRID]):
            with col:
                p = thumb(H, r["sha256"], r["path"])
                if p:
                    st.image(p, width="stretch")
                prob = "" if r["prob"] is None else f" ({r['prob']:.0%})"
                st.text(f"#{r['image_id']} {r['true_word']} → {r['pred_word']}{prob}")


comp = _comparison(H)
if comp.empty:
    empty_state("No evaluated models yet.", "python -m jobs train      # then: python -m jobs evaluate\n"
                                            "# or the whole pipeline: python -m jobs demo")
    st.subheader("The original study's figures (top-1, 76 words)")
    st.dataframe(STUDY, hide_index=True)
    st.stop()

st.subheader("Model comparison")
table = comp.merge(STUDY[["kind", "study top-1"]], on="kind", how="left")
st.dataframe(table[["model_id", "name", "kind", "backbone", "scope", "n_images", "top1", "top5", "study top-1"]],
             hide_index=True, width="stretch",
             column_config={c: st.column_config.NumberColumn(format="percent") for c in ("top1", "top5", "study top-1")})
st.caption("Study figures: 76 classes × 200 images, 80:20 split. Here: the words and images in this warehouse.")

curves = _curves(H)
if not curves.empty:
    st.subheader("Learning curves")
    long = curves.melt(id_vars=["model_id", "name", "epoch"], value_vars=["train_loss", "val_loss", "train_acc", "val_acc"],
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
pick = st.selectbox("Model and scope", list(label), format_func=label.get, key="eval_pick")
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
        normalise = st.toggle("Row-normalise", value=False, key="eval_norm")
        z = mat.div(mat.sum(axis=1).replace(0, 1), axis=0) if normalise else mat
        heat = go.Figure(go.Heatmap(z=z.values, x=labels, y=labels, colorscale="Blues",
                                    customdata=mat.values, hovertemplate="true %{y} → predicted %{x}: %{customdata}"
                                                                         "<extra></extra>"))
        heat.update_layout(height=max(350, 18 * len(labels) + 120), margin=dict(l=10, r=10, t=10, b=10),
                           yaxis=dict(autorange="reversed"), xaxis=dict(side="top"))
        ev = st.plotly_chart(heat, key="eval_heat", on_select="rerun", selection_mode=("points",))
        pts = (ev or {}).get("selection", {}).get("points", []) if ev else []
        if pts:
            ss["cell_true"], ss["cell_pred"] = pts[0].get("y"), pts[0].get("x")
        c1, c2 = st.columns(2)
        tw = c1.selectbox("True word", labels, key="cell_true")
        pw = c2.selectbox("Predicted word", labels, key="cell_pred")
        n = int(mat.loc[tw, pw]) if tw in mat.index and pw in mat.columns else 0
        st.caption(f"{n} images: true {tw}, predicted {pw}")
        _grid(_examples(H, run_id, model_id, scope, tw, pw, False))
with right:
    st.markdown("**Per-word precision and recall**")
    pw_df = _per_word(H, run_id, model_id, scope)
    if pw_df.empty:
        st.write("No per-word metrics stored for this evaluation.")
    else:
        st.dataframe(pw_df, hide_index=True, width="stretch", height=min(500, 38 + 35 * len(pw_df)),
                     column_config={c: st.column_config.NumberColumn(format="percent") for c in ("precision", "recall")})
        bars = px.bar(pw_df.melt(id_vars="word", value_vars=["precision", "recall"]), x="word", y="value",
                      color="variable", barmode="group")
        bars.update_layout(height=300, margin=dict(l=10, r=10, t=10, b=10), legend_title=None)
        st.plotly_chart(bars, key="eval_bars")

st.subheader("Misclassified examples")
_grid(_examples(H, run_id, model_id, scope, None, None, True))
