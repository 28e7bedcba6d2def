"""Shared by split/train/evaluate/predict: reading stored photos and their stored CNN outputs."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from hashtag_workbench.core.features import load_photo
from hashtag_workbench.core.predictor import ImageBatch
from hashtag_workbench.warehouse.models import stored_features

# Decoded photos are kept at most this short side: enough for the 256-px resize every model does.
KEEP_SIDE = 320


def read_photo(home: Path, relpath: str) -> Image.Image:
    """A stored photo, decoded (raises core.images.ImageRejected saying why)."""
    img = load_photo(Path(home) / relpath)
    w, h = img.size
    if min(w, h) > KEEP_SIDE:
        s = KEEP_SIDE / min(w, h)
        img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BILINEAR)
    return img


def stored_batch(home: Path, rows: list[dict], backbones: tuple[str, ...] = ()) -> tuple[ImageBatch, dict]:
    """An ImageBatch over stored images; backbone outputs come from the features table when all are there.

    Returns the batch and {backbone: number of images found in the features table}.
    """
    batch = ImageBatch(len(rows), lambda i: read_photo(home, rows[i]["path"]))
    found = {}
    for bb in backbones:
        have = stored_features(home, bb, [r["image_id"] for r in rows])
        found[bb] = len(have)
        # Partial coverage would need the CNN anyway; then compute all, consistently, in one pass.
        if rows and len(have) == len(rows) and all(v[1] is not None for v in have.values()):
            import numpy as np
            batch.known[bb] = (np.stack([have[r["image_id"]][0] for r in rows]),
                               np.stack([have[r["image_id"]][1] for r in rows]))
    return batch, found
