"""Zero-shot + a few photos: a linear probe's log-probabilities mixed with a zero-shot model's.

    score(word) = (1 - w) * log p_probe(word | photo) + w * log p_zeroshot(word | photo)

w = 1 is the zero-shot model alone, w = 0 the probe alone. The weight is chosen by
cross-validation on the few training photos only (never on validation images): the probe
is refitted on each fold's training part and every weight on a grid scores the held-out
photos. With one photo per word there is nothing to hold out, so a fixed prior weight is
used. The zero-shot model needs no training, so its scores for the training photos are
honest held-out scores; only the probe needs the folds.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

WEIGHTS = tuple(float(w) for w in np.round(np.linspace(0.0, 1.0, 11), 2))
PRIOR_WEIGHT = 0.5        # one photo per word: nothing to cross-validate; trust both equally
MAX_FOLDS = 5
EPS = 1e-9


def align_probs(probs: np.ndarray, model_classes: Sequence[str], classes: Sequence[str],
                floor: float = 1e-6) -> np.ndarray:
    """A zero-shot model's (n, len(model_classes)) scores as (n, len(classes)), renormalised.

    A word the zero-shot model lacks (e.g. no word vector) gets `floor`, so it can still
    be predicted when the photos support it.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(model_classes):
        raise ValueError(f"scores must have one column per model class ({len(model_classes)}), got {probs.shape}")
    index = {w: i for i, w in enumerate(model_classes)}
    out = np.full((len(probs), len(classes)), float(floor))
    for j, w in enumerate(classes):
        if w in index:
            out[:, j] = np.maximum(probs[:, index[w]], floor)
    return out / out.sum(axis=1, keepdims=True)


def log_mix(p_probe: np.ndarray, p_zero_shot: np.ndarray, weight: float) -> np.ndarray:
    """Normalised probabilities of the weighted product of the two models (a log-linear pool)."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the mixing weight must be between 0 and 1, got {weight}")
    p_probe, p_zero_shot = np.asarray(p_probe, dtype=np.float64), np.asarray(p_zero_shot, dtype=np.float64)
    if p_probe.shape != p_zero_shot.shape:
        raise ValueError(f"both models must score the same photos and words: {p_probe.shape} vs {p_zero_shot.shape}")
    z = (1.0 - weight) * np.log(p_probe + EPS) + weight * np.log(p_zero_shot + EPS)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fold_ids(words: Sequence[str], max_folds: int = MAX_FOLDS) -> np.ndarray:
    """Fold of each photo (-1: never held out); every word keeps at least one photo in every fold's training part.

    The j-th photo of a word goes to fold j mod F; a word with a single photo is never held out.
    """
    counts: dict[str, int] = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    n_folds = min(max_folds, max(counts.values(), default=0))
    seen: dict[str, int] = {}
    out = np.full(len(words), -1, dtype=int)
    if n_folds < 2:
        return out
    for i, w in enumerate(words):
        j = seen.get(w, 0)
        seen[w] = j + 1
        if counts[w] >= 2:
            out[i] = j % n_folds
    return out


def choose_weight(feats: np.ndarray, words: Sequence[str], zero_shot: np.ndarray, classes: Sequence[str], *,
                  fit: Callable[[np.ndarray, list[str]], object], weights: Sequence[float] = WEIGHTS,
                  max_folds: int = MAX_FOLDS) -> tuple[float, dict]:
    """The grid weight with the best cross-validated top-1 on the training photos (ties: lower log-loss).

    `fit(feats, words)` returns a model with `predict_proba(feats)` over `classes`;
    `zero_shot` holds the zero-shot scores of the same photos, aligned to `classes`.
    Returns (weight, {'folds', 'held_out', 'top1': {w: acc}}).
    """
    words = list(words)
    folds = fold_ids(words, max_folds)
    held = np.flatnonzero(folds >= 0)
    if len(held) == 0:
        return PRIOR_WEIGHT, {"folds": 0, "held_out": 0, "top1": {}}
    index = {w: i for i, w in enumerate(classes)}
    truth = np.array([index[w] for w in words])
    p_probe = np.zeros((len(words), len(classes)))
    for f in sorted(set(folds[held])):
        test = folds == f
        model = fit(feats[~test], [w for w, t in zip(words, test) if not t])
        p_probe[test] = model.predict_proba(feats[test])
    best, best_key, table = PRIOR_WEIGHT, None, {}
    for w in weights:
        p = log_mix(p_probe[held], zero_shot[held], float(w))
        acc = float(np.mean(p.argmax(axis=1) == truth[held]))
        nll = float(-np.mean(np.log(p[np.arange(len(held)), truth[held]] + EPS)))
        table[float(w)] = acc
        key = (acc, -nll)
        if best_key is None or key > best_key:
            best, best_key = float(w), key
    return best, {"folds": int(folds.max() + 1), "held_out": int(len(held)), "top1": table}
