"""Rebuild any stored model from its record (kind + config + classes + artifact) and predict for photos.

Callers read the record from the warehouse (warehouse.models.get_model / best_models)
and pass it in; nothing here touches the database. The dashboard's Predict page calls:

    sup = load_model(best["supervised"]); zs = load_model(best["zero_shot"])
    predict_image(img, supervised=sup, zero_shot=zs, hashtags=warehouse.words.hashtags_for(home))
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from hashtag_workbench.core.backbones import compute_features, get_backbone
from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.hashtags import DEFAULT_N_TAGS, SUPERVISED_K, ZERO_SHOT_K, ranked_hashtags, sample_hashtags
from hashtag_workbench.core.kinds import KINDS, ZERO_SHOT

# torch is imported only where a CNN runs, so predicting from stored or ONNX outputs needs no torch


class ModelLoadError(InputError):
    """A stored model cannot be rebuilt (unknown kind, missing or mismatched artifact)."""


@dataclass
class ImageBatch:
    """Photos plus their backbone outputs, computed at most once per backbone.

    `known` may pre-fill (features, logits) per backbone from the features table, so
    stored images skip the CNN; `loader` decodes image i on demand.
    """
    n: int
    loader: Callable[[int], Image.Image]
    known: dict[str, tuple[np.ndarray, np.ndarray | None]] = field(default_factory=dict)
    _images: dict[int, Image.Image] = field(default_factory=dict)

    @classmethod
    def of(cls, images: Sequence[Image.Image]) -> ImageBatch:
        images = list(images)
        return cls(len(images), lambda i: images[i])

    def image(self, i: int) -> Image.Image:
        if i not in self._images:
            self._images[i] = self.loader(i)
        return self._images[i]

    def images(self) -> list[Image.Image]:
        return [self.image(i) for i in range(self.n)]

    def part(self, start: int, stop: int) -> ImageBatch:
        """Photos start..stop-1 as a batch of their own, with the outputs known so far (views, not copies)."""
        stop = min(stop, self.n)
        known = {bb: (f[start:stop], None if lg is None else lg[start:stop]) for bb, (f, lg) in self.known.items()}
        return ImageBatch(max(stop - start, 0), lambda i: self.image(start + i), known)

    def outputs(self, backbone_name: str, *, need_logits: bool = True,
                weights: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        have = self.known.get(backbone_name)
        if have is None or (need_logits and have[1] is None):
            self.known[backbone_name] = compute_features(get_backbone(backbone_name, weights), self.images())
        return self.known[backbone_name]


@dataclass
class LoadedModel:
    """A rebuilt model (a core.kinds.KindModel) and its record: `predict(batch)` -> (n, len(classes))."""
    model_id: int | None
    kind: str
    name: str
    classes: list[str]
    model: object
    backbone: str | None = None

    @property
    def role(self) -> str:
        return KINDS[self.kind].role

    @property
    def threshold(self) -> float | None:
        """The calibrated top probability under which an answer is "none of these" (None: not measured)."""
        t = getattr(self.model, "threshold", None)
        return float(t) if t is not None else None

    def predict(self, batch: ImageBatch, words: Sequence[str] | None = None) -> np.ndarray:
        """Probabilities over `classes`, or only over `words` (a zero-shot model answering a smaller question)."""
        probs = self.model.predict_proba(batch)
        return probs if words is None else restrict(probs, self.classes, words)


def restrict(probs: np.ndarray, classes: Sequence[str], words: Sequence[str]) -> np.ndarray:
    """Columns of `words` (in that order), renormalised; a word the model lacks scores 0.

    For a softmax over similarities, renormalising a subset is exactly the softmax over that subset.
    """
    index = {w: i for i, w in enumerate(classes)}
    out = np.zeros((len(probs), len(words)), dtype=np.float64)
    for j, w in enumerate(words):
        if w in index:
            out[:, j] = probs[:, index[w]]
    total = out.sum(axis=1, keepdims=True)
    return out / np.where(total > 0, total, 1.0)


def load_model(record: dict, artifact_path: Path | str | None = None) -> LoadedModel:
    """Rebuild a model from its warehouse record (kind, config, classes, artifact_path) alone."""
    for key in ("kind", "config", "classes"):
        if key not in record:
            raise ModelLoadError(f"the model record lacks {key!r}")
    kind, cfg, classes = record["kind"], dict(record["config"]), list(record["classes"])
    if kind not in KINDS:
        raise ModelLoadError(f"unknown model kind {kind!r}; known: {', '.join(KINDS)}")
    folder = Path(artifact_path or record.get("artifact_path") or "")
    path = folder / KINDS[kind].artifact if folder.is_dir() else folder
    if not path.is_file():
        raise ModelLoadError(f"the artifact of model {record.get('model_id')} ({record.get('name')}) is missing: "
                             f"{path}; train it again with `hashtags train`")
    try:
        model = KINDS[kind].load(path, cfg, classes)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"cannot rebuild model {record.get('model_id')} ({kind}) from {path}: "
                             f"{type(exc).__name__}: {exc}") from None
    return LoadedModel(record.get("model_id"), kind, record.get("name") or kind, classes, model,
                       cfg.get("backbone"))


def top_words(probs: np.ndarray, classes: list[str], k: int = 5) -> list[list]:
    """[[word, prob], ...] best first, for one image's probability row."""
    order = np.argsort(-probs, kind="stable")[:k]
    return [[classes[i], round(float(probs[i]), 4)] for i in order]


def model_result(probs: np.ndarray, model: LoadedModel, hashtags: dict[str, list[str]], *, top_k: int = 5,
                 n_tags: int = DEFAULT_N_TAGS, sample_k: int | None = None,
                 rng: np.random.Generator | None = None) -> dict:
    """One model's answer for one photo, the one place it is built: {'top': [[word, prob], ...], 'hashtags': [...],
    'confident': bool | None, 'threshold': float | None}.

    confident is False when the calibrated top probability is under the model's measured threshold ("none of
    these"; then no hashtags come out), None for a model without one. Hashtags are ranked from the confident
    words (core.hashtags.ranked_hashtags), or sampled the study's way from the top `sample_k` words."""
    top = top_words(probs, model.classes, top_k)
    thr = model.threshold
    confident = None if thr is None else bool(top[0][1] >= thr)
    if sample_k is not None:
        tags = sample_hashtags(top, hashtags, k=sample_k, n_tags=n_tags, seed=rng)
    else:
        tags = ranked_hashtags(top, hashtags, n_tags=n_tags, threshold=thr)
    return {"top": top, "hashtags": tags, "confident": confident, "threshold": thr}


def predict_batch(batch: ImageBatch, *, supervised: LoadedModel | None, zero_shot: LoadedModel | None,
                  hashtags: dict[str, list[str]], seed: int | None = None, top_k: int = 5,
                  n_tags: int = DEFAULT_N_TAGS, sample_study: bool = False) -> list[dict]:
    """Per image: {'supervised': model_result | None, 'zero_shot': model_result | None} (None: no such model).

    sample_study: hashtags sampled as the original study did (supervised top 2, zero-shot top 5)."""
    rng = np.random.default_rng(seed)
    out = [dict(supervised=None, zero_shot=None) for _ in range(batch.n)]
    for role, model, k in (("supervised", supervised, SUPERVISED_K), (ZERO_SHOT, zero_shot, ZERO_SHOT_K)):
        if model is None:
            continue
        probs = model.predict(batch)
        for i in range(batch.n):
            out[i][role] = model_result(probs[i], model, hashtags, top_k=top_k, n_tags=n_tags,
                                        sample_k=k if sample_study else None, rng=rng)
    return out


def predict_image(image: Image.Image, *, supervised: LoadedModel | None, zero_shot: LoadedModel | None,
                  hashtags: dict[str, list[str]], seed: int | None = None, top_k: int = 5,
                  n_tags: int = DEFAULT_N_TAGS, sample_study: bool = False) -> dict:
    """One photo -> {'supervised': {'top', 'hashtags', 'confident', 'threshold'}, 'zero_shot': {...}}."""
    return predict_batch(ImageBatch.of([image]), supervised=supervised, zero_shot=zero_shot, hashtags=hashtags,
                         seed=seed, top_k=top_k, n_tags=n_tags, sample_study=sample_study)[0]
