"""Photos in, the per-image objects `hashtags predict --json` prints out: the one place for the CLI and the API.

Callers bring the bytes (a file, an upload, a fetched URL) and the loaded models; here each
photo is decoded with the project's image rules and the models predict the whole batch at
once. The rows to record in the `predictions` table come back too, so each caller decides
when to write them (the CLI at once, the API in the background).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from hashtag_workbench.core.images import ImageRejected, decode_rgb, sha256_bytes
from hashtag_workbench.core.predictor import ImageBatch, LoadedModel, predict_batch
from hashtag_workbench.warehouse import models as wh
from hashtag_workbench.warehouse.words import hashtags_for, list_words

ROLES = ("supervised", "zero_shot")
MIN_SIDE = 8  # the smallest photo `predict` accepts (the CNN resizes anything up)
NO_SUPERVISED = ("no supervised model trained yet (it needs labelled photos: `hashtags import-folder PATH` "
                 "or `hashtags demo`, then `hashtags train`)")


@dataclass(frozen=True)
class Photo:
    """One input: a decoded picture and its SHA-256, or the reason it is unusable."""
    name: str
    image: Image.Image | None = None
    sha256: str | None = None
    error: str | None = None


def read_photo(name: str, data: bytes, *, max_bytes: int | None = None) -> Photo:
    """Decode `data` with core.images' rules (format, truncation, pixel limit, size); never raises for bad bytes."""
    try:
        opts = {"max_bytes": max_bytes} if max_bytes else {}
        return Photo(name, decode_rgb(data, min_side=MIN_SIDE, **opts), sha256_bytes(data))
    except ImageRejected as exc:
        return Photo(name, error=str(exc))


def predict_photos(photos: Sequence[Photo], *, supervised: LoadedModel | None, zero_shot: LoadedModel | None,
                   hashtags: dict[str, list[str]], seed: int | None = None,
                   **options) -> tuple[list[dict], list[dict]]:
    """(results, rows): results[i] is what `predict --json` prints for photos[i] ({image, supervised,
    zero_shot[, supervised_reason]} or {image, error}); rows are the predictions to record.
    `options` go to core.predictor.predict_batch unchanged (e.g. n_tags)."""
    good = [p for p in photos if p.error is None]
    preds = iter(predict_batch(ImageBatch.of([p.image for p in good]), supervised=supervised, zero_shot=zero_shot,
                               hashtags=hashtags, seed=seed, **options) if good else [])
    models = {"supervised": supervised, "zero_shot": zero_shot}
    results, rows = [], []
    for p in photos:
        if p.error is not None:
            results.append({"image": p.name, "error": p.error})
            continue
        pred = next(preds)
        result = {"image": p.name, "supervised": pred["supervised"], "zero_shot": pred["zero_shot"]}
        if pred["supervised"] is None:
            result["supervised_reason"] = NO_SUPERVISED
        results.append(result)
        rows += [{"model_id": m.model_id, "sha256": p.sha256, **pred[role]}
                 for role, m in models.items() if m is not None]
    return results, rows


def stored_zero_shot(home: Path, config=None, kind: str | None = None) -> dict | None:
    """The newest stored zero-shot model of `config` (default: the best-measured kind and config) built over
    exactly the current active words and hashtags, or None (then `train.ensure_zero_shot` builds one). Reads only."""
    from hashtag_workbench.core.kinds import DEFAULT_ZERO_SHOT, KINDS, default_zero_shot_config, vocabulary_fingerprint
    kind = kind or DEFAULT_ZERO_SHOT
    k, cfg = KINDS[kind], config or default_zero_shot_config()
    fingerprint = vocabulary_fingerprint([w["word"] for w in list_words(home, active_only=True)], hashtags_for(home))
    for rec in reversed(wh.models(home, kinds=[k.name])):
        if k.matches(rec, cfg, None, fingerprint) and wh.model_dir(home, rec["model_id"]).is_dir():
            return rec
    return None
