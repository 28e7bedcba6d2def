"""Shared by split/train/evaluate/predict: reading stored photos and their stored CNN outputs."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image

from hashtag_workbench.core.features import load_photo
from hashtag_workbench.core.predictor import ImageBatch
from hashtag_workbench.warehouse.features import feature_ids, stored_features

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


class LazyPhotos(Sequence):
    """Stored photos decoded when read, never kept: 15k decoded photos would take ~6 GB of memory,
    while each model needs only a batch at a time. Slicing gives another lazy sequence; `on_read`
    (not pickled: worker processes get none) is told of each photo decoded, e.g. a progress bar."""

    def __init__(self, home: Path, rows: list[dict], on_read: Callable[[], None] | None = None):
        self.home, self.rows, self.on_read = Path(home), list(rows), on_read

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return LazyPhotos(self.home, self.rows[i], self.on_read)
        img = read_photo(self.home, self.rows[i]["path"])
        if self.on_read is not None:
            self.on_read()
        return img

    def subset(self, idx) -> LazyPhotos:
        return LazyPhotos(self.home, [self.rows[int(i)] for i in idx], self.on_read)

    def __getstate__(self):
        return {"home": self.home, "rows": self.rows, "on_read": None}


class LazyBatch(ImageBatch):
    """An ImageBatch whose photos are decoded when a model reads them and not kept (see LazyPhotos)."""

    def __init__(self, home: Path, rows: list[dict]):
        self.photos = LazyPhotos(home, rows)
        super().__init__(len(rows), self.photos.__getitem__)

    def image(self, i: int) -> Image.Image:
        return self.photos[i]

    def images(self) -> LazyPhotos:
        return self.photos


def readable_rows(home: Path, rows: list[dict], backbone: str, log: Callable[[str], None]) -> list[dict]:
    """The rows whose photo decodes. Photos with stored `backbone` features were decoded by the features
    job, so only the others are tried (and not kept); each unreadable one is logged."""
    known = feature_ids(home, backbone, include_failed=False)
    ok = []
    for r in rows:
        try:
            if r["image_id"] not in known:
                read_photo(home, r["path"])
            ok.append(r)
        except Exception as exc:  # one unreadable file must not stop the job
            log(f"skipped image {r['image_id']} ({r['path']}): {exc}")
    return ok


def stored_batch(home: Path, rows: list[dict], backbones: tuple[str, ...] = ()) -> tuple[ImageBatch, dict]:
    """An ImageBatch over stored images; backbone outputs come from the features table when all are there.

    Returns the batch and {backbone: number of images found in the features table}.
    """
    batch = LazyBatch(home, rows)
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
