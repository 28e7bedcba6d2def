"""Embedding map: every image's features in 2-D (PCA or t-SNE, computed once per features run and stored),
one distinct colour per word (or coloured by flag or decision), a thumbnail on hover; select points to see
their images, open any one large (lightbox) and keep, reject or relabel them, one or all at once."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from hashtag_workbench.core.maps import MAP_SAMPLE, distinct_colours, to_2d
from hashtag_workbench.dashboard.common import empty_state, home, n_images, start_job, thumb
from hashtag_workbench.dashboard.image_panel import act, open_in_review, relabel_targets
from hashtag_workbench.dashboard.lightbox import data_uri, info_lines
from hashtag_workbench.dashboard.review_grid import apply_grid_events, image_grid
from hashtag_workbench.warehouse import dashboard_queries as q

SHOW_MAX = 60
HOVER_MAX = 600       # points with a hover thumbnail (each ~2 KB inline: 600 keep the page light)
HOVER_SIZE = 48
GRID = "emb_grid"
DECISION_COLOURS = {"unreviewed": "#9aa0a6", "keep": "#1b7f3a", "relabel": "#6a3fb5"}
FLAG_COLOURS = {"flagged": "#d62728", "not flagged": "#9aa0a6"}

st.title("Embedding map")
HOME = home()
H = str(HOME)
ss = st.session_state

# Plotly's hover label cannot hold an image: this small component (no HTML of its own) listens to the
# chart's plotly_hover events in the page and shows the hovered point's thumbnail beside the cursor.
_HOVER_JS = """
export default function ({ data }) {
  let tip = document.getElementById('emb-hover-thumb');
  if (!tip) {
    tip = document.createElement('div');
    tip.id = 'emb-hover-thumb';
    tip.style.cssText = 'position:fixed;z-index:100000;pointer-events:none;display:none;background:#fff;' +
      'border:1px solid #ccc;border-radius:6px;padding:4px;box-shadow:0 2px 10px rgba(0,0,0,.3);font:12px sans-serif';
    tip.innerHTML = '<img style="display:block;max-width:128px;max-height:128px"><div></div>';
    document.body.appendChild(tip);
  }
  const [img, cap] = [tip.querySelector('img'), tip.querySelector('div')];
  const attach = () => {
    const gd = document.querySelector('.st-key-' + data.chart + ' .js-plotly-plot');
    if (!gd || !gd.on || gd.__thumbHover === data.chart) return;
    gd.__thumbHover = data.chart;
    gd.on('plotly_hover', (ev) => {
      const pt = ev.points && ev.points[0];
      const id = pt && (Array.isArray(pt.customdata) ? pt.customdata[0] : pt.customdata);
      const src = data.thumbs[String(id)];
      if (!src) { tip.style.display = 'none'; return; }
      img.src = src;
      cap.textContent = '#' + id + ' ' + (data.words[String(id)] || '');
      const e = ev.event || {};
      tip.style.left = ((e.clientX || 0) + 16) + 'px';
      tip.style.top = ((e.clientY || 0) + 16) + 'px';
      tip.style.display = 'block';
    });
    gd.on('plotly_unhover', () => { tip.style.display = 'none'; });
  };
  attach();
  const timer = setInterval(attach, 400);       // the chart may be drawn after this component
  return () => { clearInterval(timer); tip.style.display = 'none'; };
}
"""
_hover = st.components.v2.component("hashtag_map_hover", js=_HOVER_JS)


@st.cache_data(ttl=60, show_spinner="Reading the map ...")
def _stored(h: str, method: str) -> dict | None:
    return q.embedding_map(h, method)


@st.cache_data(ttl=60, show_spinner="Reading features ...")
def _points(h: str) -> dict | None:
    return q.embedding(h) or q.embedding(h, source="features")


@st.cache_data(ttl=3600, show_spinner="Computing the map (not stored yet for these features) ...", max_entries=8)
def _computed(h: str, run_id: int, n: int, method: str) -> dict:
    """A map for a warehouse whose features run did not store one (older runs): computed here, cached."""
    pts = _points(h)
    X, keep = pts["X"], np.arange(len(pts["image_ids"]))
    if method == "tsne" and len(keep) > MAP_SAMPLE:
        keep = np.sort(np.random.default_rng(0).choice(len(keep), MAP_SAMPLE, replace=False))
    xy = X[keep, :2] if method == "pca" and X.shape[1] >= 2 else to_2d(X[keep], method=method)
    pick = lambda k: [pts[k][i] for i in keep]  # noqa: E731
    return {**pts, "xy": xy, "image_ids": pick("image_ids"), "words": pick("words"), "reviews": pick("reviews"),
            "flagged": pick("flagged"), "method": method}


@st.cache_data(ttl=600, show_spinner=False, max_entries=4)
def _hover_thumbs(h: str, ids: tuple[int, ...]) -> dict[str, str]:
    return {str(r["image_id"]): data_uri(thumb(h, r["sha256"], r["path"], HOVER_SIZE))
            for r in q.images_by_id(h, list(ids))}


def _frame(m: dict) -> pd.DataFrame:
    return pd.DataFrame({"x": m["xy"][:, 0], "y": m["xy"][:, 1], "image_id": m["image_ids"],
                         "word": m["words"], "review": m["reviews"], "flagged": m["flagged"]})


def _figure(df: pd.DataFrame, colour_by: str, all_words: list[str]) -> go.Figure:
    """One trace per colour group; every word keeps its colour whatever the filter."""
    if colour_by == "word":
        colours = dict(zip(all_words, distinct_colours(len(all_words))))
        groups = [(w, part, colours[w]) for w, part in df.groupby("word", sort=True)]
    elif colour_by == "flag":
        flag = df["flagged"].map({True: "flagged", False: "not flagged"})
        groups = [(k, df[flag == k], c) for k, c in FLAG_COLOURS.items()]
    else:
        groups = [(k, df[df["review"] == k], c) for k, c in DECISION_COLOURS.items()]
    fig = go.Figure()
    for name, part, colour in groups:
        if part.empty:
            continue
        # scalar marker styles: a per-point array for 15,000 points makes the chart's JSON several times larger
        fig.add_trace(go.Scattergl(
            x=part["x"], y=part["y"], mode="markers", name=str(name), customdata=part["image_id"].to_numpy(),
            text=part["word"], marker=dict(size=7, color=colour),
            hovertemplate="%{text} · image %{customdata}<extra></extra>"))
    flagged = df[df["flagged"]]
    if not flagged.empty:   # flagged outliers drawn once more on top: a black ring
        fig.add_trace(go.Scattergl(
            x=flagged["x"], y=flagged["y"], mode="markers", name="flagged (ring)", text=flagged["word"],
            customdata=flagged["image_id"].to_numpy(),
            marker=dict(size=12, color="rgba(0,0,0,0)", symbol="diamond-open", line=dict(width=2, color="black")),
            hovertemplate="%{text} · image %{customdata} · flagged<extra></extra>"))
    fig.update_layout(height=600, margin=dict(l=10, r=10, t=10, b=10), dragmode="lasso",
                      legend=dict(itemsizing="constant"))
    return fig


def _selected_ids(event, fig: go.Figure) -> list[int]:
    ids: list[int] = []
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    for p in points:
        cd = p.get("customdata")
        if isinstance(cd, list):
            cd = cd[0] if cd else None
        if cd is None and p.get("curve_number") is not None:
            cd = fig.data[p["curve_number"]].customdata[p.get("point_index", p.get("point_number", 0))]
        if cd is not None and int(cd) not in ids:
            ids.append(int(cd))
    return ids


def _apply(ids: list[int], decision: str, new_word: str | None = None) -> None:
    error = act(H, ids, decision, new_word, page="embedding")
    verb = {"keep": "Kept", "reject": "Rejected", "relabel": f"Relabelled to {new_word!r}:"}[decision]
    ss["emb_msg"] = ("error", error) if error else ("ok", f"{verb} {len(ids)} image{'s' * (len(ids) != 1)}.")
    if not error:
        st.cache_data.clear()
        ss["emb_gen"] = ss.get("emb_gen", 0) + 1
    ss.pop("emb_confirm", None)


def _actions(ids: list[int]) -> str | None:
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
    return to


def _selection_grid(ids: list[int], relabel_to: str | None) -> None:
    """The selected images as the shared grid: ✓ ✗ ↪ per image, ↗ open in Review, a click opens the lightbox."""
    rows = q.images_by_id(H, ids[:SHOW_MAX])
    cells = [{"id": r["image_id"], "src": data_uri(thumb(H, r["sha256"], r["path"])), "flagged": False,
              "review": r["review"], "word": r["word"], "info": info_lines(r),
              "caption": f"#{r['image_id']} {r['word']}"} for r in rows]
    out = image_grid(H, cells, key=GRID, relabel=relabel_to, acts=("keep", "reject", "relabel", "review"), bulk=())
    if out["action"] and out["action"].get("act") == "review":
        open_in_review(int(out["action"]["id"]))
    if len(ids) > SHOW_MAX:
        st.caption(f"Showing the first {SHOW_MAX} of {len(ids)}.")


def _main() -> None:
    # Per-image decisions from the selection grid, once each; the map keeps its selection (badges show them).
    apply_grid_events(H, GRID, "embedding")
    c1, c2, c3, c4 = st.columns([2, 4, 2, 2])
    method = c1.radio("Projection", ["pca", "tsne"], format_func={"pca": "PCA", "tsne": "t-SNE"}.get,
                      horizontal=True, key="emb_method")
    stored = _stored(H, method)
    if stored is None and method == "tsne" and _stored(H, "pca") is not None:
        # t-SNE takes from seconds to minutes: a job computes it once per features run, never this page
        st.info("The t-SNE layout of these features is not stored yet; showing PCA until it is.")
        if st.button("Compute the t-SNE map (`hashtags map`)", key="emb_start_map", icon=":material/play_arrow:"):
            start_job(["map"])
        method, stored = "pca", _stored(H, "pca")
    m = stored
    if m is None:   # a warehouse whose features run stored no map (older runs): PCA from its projections
        pts = _points(H)
        if not pts:
            empty_state("No image features yet.", "hashtags features      # then: hashtags outliers")
            st.stop()
        m = _computed(H, pts["run_id"], len(pts["image_ids"]), method)
    all_words = sorted(set(m["words"]))
    chosen = c2.multiselect("Words (empty = all)", all_words, key="emb_words")
    colour_by = c3.radio("Colour by", ["word", "flag", "decision"], horizontal=True, key="emb_colour")
    only_flagged = c4.toggle("Only flagged", key="emb_flagged")
    df = _frame(m)
    df = df[df["review"] != "reject"]
    if chosen:
        df = df[df["word"].isin(chosen)]
    if only_flagged:
        df = df[df["flagged"]]
    where = (f"stored by features run {m['run_id']}" if stored else
             f"computed now: features run {m['run_id']} stored no map (re-run `hashtags features` to store it)")
    st.caption(f"{n_images(len(df))} · {m['backbone'] or 'features'} · {where}"
               + (f" · t-SNE of a sample of {MAP_SAMPLE}" if method == "tsne" and len(m["image_ids"]) >= MAP_SAMPLE
                  else "") + " · flagged outliers have a black ring · hover for a thumbnail · "
               "drag a box or lasso to see the images")
    fig = _figure(df, colour_by, all_words)
    chart_key = f"emb_chart_{ss.get('emb_gen', 0)}"   # a new key after an action drops the old selection
    event = st.plotly_chart(fig, key=chart_key, on_select="rerun", selection_mode=("points", "box", "lasso"))
    hover_ids = tuple(int(i) for i in df["image_id"].head(HOVER_MAX))
    _hover(data={"chart": chart_key, "thumbs": _hover_thumbs(H, hover_ids),
                 "words": {str(i): w for i, w in zip(df["image_id"].head(HOVER_MAX), df["word"])}}, key="emb_hover",
           height=0)
    if len(df) > HOVER_MAX:
        st.caption(f"Hover thumbnails for the first {HOVER_MAX} points; choose words to see the others'.")
    ids = _selected_ids(event, fig)
    msg = ss.pop("emb_msg", None)
    if msg:
        (st.success if msg[0] == "ok" else st.error)(msg[1])
    st.subheader(f"Selected images ({len(ids)})")
    if not ids:
        st.write("Select points on the map (box or lasso) to see their images here, then keep, reject or relabel "
                 "them (all at once, or one by one; click an image to open it large).")
        return
    to = _actions(ids)
    _selection_grid(ids, to)


_main()
