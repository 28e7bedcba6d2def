"""The lightbox: one image large in a modal over an image grid, with keys (←/→, N/B move; K/X/R act on the
image shown; Esc closes) and a caption with the word, scores and provenance.

It lives inside the grid component (components/lightbox.js, drawn by components/image_grid.js), so
it opens at once from the thumbnail it was clicked on; the server adds the large picture
(`large_image`) when the browser asks for it. Used by Review, the Evaluation cells and the
Embedding selection: any page that draws `review_grid.image_grid` gets it.
"""
from __future__ import annotations

import base64
from pathlib import Path

from hashtag_workbench.dashboard.common import fmt_score
from hashtag_workbench.warehouse import dashboard_queries as q
from hashtag_workbench.warehouse.thumbs import thumbnail

LARGE_SIZE = 1024
JS_FILE = Path(__file__).parent / "components" / "lightbox.js"


def data_uri(path: str | Path | None) -> str | None:
    """An image file inline (the grid's thumbnails and the lightbox's large picture)."""
    if not path:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def large_image(h: str, image_id: int) -> dict | None:
    """{id, src} of one stored image at LARGE_SIZE px (a cached JPEG beside the thumbnails), or None."""
    rows = q.images_by_id(h, [int(image_id)])
    if not rows:
        return None
    p = thumbnail(h, rows[0]["sha256"], rows[0]["path"], LARGE_SIZE)
    return {"id": int(image_id), "src": data_uri(p)} if p else None


def info_lines(it: dict) -> list[str]:
    """The lightbox caption of one image row (any query's row: the fields it has are shown)."""
    lines = []
    if it.get("original_word") and it.get("original_word") != it.get("word"):
        lines.append(f"collected as {it['original_word']}, now {it['word']}")
    if "score" in it:
        det = f" ({it['detector']})" if it.get("detector") else ""
        lines.append(f"outlier score {fmt_score(it.get('score'))}{det}" + (" · FLAGGED" if it.get("flagged") else ""))
    if it.get("true_word"):
        prob = "" if it.get("prob") is None else f" ({it['prob']:.0%})"
        lines.append(f"true {it['true_word']} · predicted {it['pred_word']}{prob}")
    if it.get("width"):
        lines.append(f"{it['width']} × {it['height']} px")
    prov = [it.get("origin"), it.get("title"), it.get("source_url") or it.get("source_path")]
    lines += [str(p) for p in prov if p]
    if it.get("run_id") is not None:
        lines.append(f"added by run {it['run_id']}")
    return lines
