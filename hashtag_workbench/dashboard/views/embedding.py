"""Embedding map: every image's features in 2-D, coloured by word, flagged points marked; select points to see
their images and act on them (keep, reject, relabel, open in Review)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from hashtag_workbench.core.maps import to_2d
from hashtag_workbench.dashboard.common import empty_state, home, n_images, thumb
from hashtag_workbench.dashboard.image_panel import act, open_in_review, relabel_targets
from hashtag_workbench.warehouse import dashboard_queries as q

TSNE_MAX = 3000
SHOW_MAX = 60

st.title("Embedding map")
HOME = home()
H = str(HOME)
ss = st.session_state


@st.cache_data(ttl=60, show_spinner="Reading features ...")
def _points(h: str) -> dict | None:
    return q.embedding(h) or q.embedding(h, source="features")


@st.cache_data(ttl=3600, show_spinner="Computing the map (t-SNE takes a while) ...", max_entries=8)
def _coords(h: str, run_id: int, n: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    pts = _points(h)
    X, keep = pts["X"], np.arange(len(pts["image_ids"]))
    if method == "tsne" and len(keep) > TSNE_MAX:
        keep = np.sort(np.random.default_rng(0).choice(len(keep), TSNE_MAX, replace=False))
    if method == "pca" and X.shape[1] >= 2:
        # projections are PCA already: their first two components are the 2-D PCA map
        return X[keep, :2], keep
    return to_2d(X[keep], method=method), keep


pts = _points(H)
if not pts:
    empty_state("No image features yet.", "hashtags features      # then: hashtags outliers")
    st.stop()

c1, c2, c3 = st.columns([2, 4, 2])
method = c1.radio("Projection", ["pca", "tsne"], format_func={"pca": "PCA", "tsne": "t-SNE"}.get, horizontal=True,
                  key="emb_method")
all_words = sorted(set(pts["words"]))
chosen = c2.multiselect("Words (empty = all)", all_words, key="emb_words")
only_flagged = c3.toggle("Only flagged", key="emb_flagged")

xy, keep = _coords(H, pts["run_id"], len(pts["image_ids"]), method)
df = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1],
                   "image_id": np.asarray(pts["image_ids"])[keep],
                   "word": np.asarray(pts["words"], dtype=object)[keep],
                   "review": np.asarray(pts["reviews"], dtype=object)[keep],
                   "flagged": np.asarray(pts["flagged"])[keep]})
df = df[df["review"] != "reject"]
if chosen:
    df = df[df["word"].isin(chosen)]
if only_flagged:
    df = df[df["flagged"]]
st.caption(f"{n_images(len(df))} · {pts['backbone'] or 'features'} (run {pts['run_id']})"
           + (f" · t-SNE on a sample of {TSNE_MAX}" if method == "tsne" and len(pts["image_ids"]) > TSNE_MAX else "")
           + " · flagged outliers have a black ring · drag a box or lasso to see the images")

fig = go.Figure()
for word, part in df.groupby("word", sort=True):
    fig.add_trace(go.Scattergl(
        x=part["x"], y=part["y"], mode="markers", name=str(word),
        customdata=part["image_id"].to_numpy(),
        marker=dict(size=np.where(part["flagged"], 11, 7),
                    line=dict(width=np.where(part["flagged"], 2, 0).tolist(), color="black"),
                    symbol=np.where(part["flagged"], "diamond", "circle").tolist()),
        hovertemplate=f"{word}" + " · image %{customdata}<extra></extra>"))
fig.update_layout(height=600, margin=dict(l=10, r=10, t=10, b=10), dragmode="lasso",
                  legend=dict(itemsizing="constant"))
# a new key after an action drops the old selection (its points may have moved or gone)
event = st.plotly_chart(fig, key=f"emb_chart_{ss.get('emb_gen', 0)}", on_select="rerun",
                        selection_mode=("points", "box", "lasso"))

ids: list[int] = []
points = (event or {}).get("selection", {}).get("points", []) if event else []
traces = [t for t in fig.data]
for p in points:
    cd = p.get("customdata")
    if isinstance(cd, list):
        cd = cd[0] if cd else None
    if cd is None and p.get("curve_number") is not None:
        cd = traces[p["curve_number"]].customdata[p.get("point_index", p.get("point_number", 0))]
    if cd is not None and int(cd) not in ids:
        ids.append(int(cd))



def _apply(ids: list[int], decision: str, new_word: str | None = None) -> None:
    error = act(H, ids, decision, new_word)
    verb = {"keep": "Kept", "reject": "Rejected", "relabel": f"Relabelled to {new_word!r}:"}[decision]
    ss["emb_msg"] = ("error", error) if error else ("ok", f"{verb} {len(ids)} image{'s' * (len(ids) != 1)}.")
    if not error:
        st.cache_data.clear()
        ss["emb_gen"] = ss.get("emb_gen", 0) + 1
    ss.pop("emb_confirm", None)


def _actions(ids: list[int]) -> None:
    """Act on every selected image at once; relabelling asks for a target and confirms the count."""
    n = len(ids)
    bar = st.container(horizontal=True)
    bar.button(f"Keep {n} selected", key="emb_keep", on_click=_apply, args=(ids, "keep"), icon=":material/check:")
    bar.button(f"Reject {n} selected", key="emb_reject", on_click=_apply, args=(ids, "reject"),
               icon=":material/close:")
    to = bar.selectbox("Relabel to", relabel_targets(H, None), index=None, placeholder="relabel to ...",
                       key="emb_to", label_visibility="collapsed")
    if bar.button(f"Relabel {n} to {to}…" if to else "Relabel", key="emb_relabel", disabled=not to):
        ss["emb_confirm"] = {"ids": ids, "to": to}
    pending = ss.get("emb_confirm")
    if pending and pending["ids"] == ids:
        st.warning(f"Relabel {n} image{'s' * (n != 1)} to {pending['to']!r}?")
        cc = st.container(horizontal=True)
        cc.button(f"Relabel {n}", key="emb_relabel_confirm", type="primary", on_click=_apply,
                  args=(ids, "relabel", pending["to"]))
        cc.button("Cancel", key="emb_relabel_cancel", on_click=lambda: ss.pop("emb_confirm", None))
    one = st.container(horizontal=True)
    pick = one.selectbox("Open one in Review", ids, key="emb_open_pick", format_func=lambda i: f"image #{i}")
    if one.button("Open in Review", key="emb_open", icon=":material/fact_check:"):
        open_in_review(pick)


msg = ss.pop("emb_msg", None)
if msg:
    (st.success if msg[0] == "ok" else st.error)(msg[1])
st.subheader(f"Selected images ({len(ids)})")
if not ids:
    st.write("Select points on the map (box or lasso) to see their images here, then keep, reject or relabel them.")
else:
    _actions(ids)
    rows = q.images_by_id(H, ids[:SHOW_MAX])
    cols = st.columns(6)
    for n, r in enumerate(rows):
        with cols[n % 6]:
            p = thumb(H, r["sha256"], r["path"])
            if p:
                st.image(p, width="stretch")
            st.text(f"#{r['image_id']} {r['word']} · {r['review']}")
    if len(ids) > SHOW_MAX:
        st.caption(f"Showing the first {SHOW_MAX} of {len(ids)}.")
