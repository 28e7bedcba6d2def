"""Zero-shot + a few photos: a linear probe's log-probabilities pooled with a zero-shot model's.

    score(word) = (1 - w) * log p_probe(word | photo) + w * log p_zeroshot(word | photo)
    w = s / (s + photos per word)

The zero-shot model acts as a prior worth s photos per word (like a Dirichlet prior's
pseudo-counts): with no photos it decides alone (w = 1), and its say fades as photos
arrive, while the probe's own probabilities also grow sharper with more photos.
s is either a fixed prior (PRIOR_STRENGTH) or chosen by cross-validation on the few
training photos only (never on validation images, `choose_strength`). The zero-shot model
needs no training, so its scores of the training photos are honest held-out scores;
only the probe is refitted per fold.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.linalg import softmax

# How many photos per word the zero-shot model is worth; its weight is strength / (strength + photos).
STRENGTHS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, float("inf"))
PRIOR_STRENGTH = 2.0      # one photo per word: nothing to hold out, so this prior is used
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
        raise InputError(f"scores must have one column per model class ({len(model_classes)}), got {probs.shape}")
    index = {w: i for i, w in enumerate(model_classes)}
    out = np.full((len(probs), len(classes)), float(floor))
    for j, w in enumerate(classes):
        if w in index:
            out[:, j] = np.maximum(probs[:, index[w]], floor)
    return out / out.sum(axis=1, keepdims=True)


def log_mix(p_probe: np.ndarray, p_zero_shot: np.ndarray, weight: float) -> np.ndarray:
    """Normalised probabilities of the weighted product of the two models (a log-linear pool)."""
    if not 0.0 <= weight <= 1.0:
        raise InputError(f"the mixing weight must be between 0 and 1, got {weight}")
    p_probe, p_zero_shot = np.asarray(p_probe, dtype=np.float64), np.asarray(p_zero_shot, dtype=np.float64)
    if p_probe.shape != p_zero_shot.shape:
        raise InputError(f"both models must score the same photos and words: {p_probe.shape} vs {p_zero_shot.shape}")
    return softmax((1.0 - weight) * np.log(p_probe + EPS) + weight * np.log(p_zero_shot + EPS), axis=1)


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


def zero_shot_weight(strength: float, photos_per_word: float) -> float:
    """The zero-shot model's weight when it is worth `strength` photos and the probe saw `photos_per_word`."""
    if strength < 0 or photos_per_word < 0:
        raise InputError(f"strength and photos per word must be 0 or more, got {strength}, {photos_per_word}")
    if np.isinf(strength):
        return 1.0
    return float(strength / (strength + photos_per_word)) if strength + photos_per_word > 0 else 1.0


def photos_per_word(words: Sequence[str]) -> float:
    return len(words) / max(1, len(set(words)))


def choose_strength(feats: np.ndarray, words: Sequence[str], zero_shot: np.ndarray, classes: Sequence[str], *,
                    fit: Callable[[np.ndarray, list[str]], object], strengths: Sequence[float] = STRENGTHS,
                    max_folds: int = MAX_FOLDS) -> tuple[float, dict]:
    """How many photos the zero-shot model is worth, by cross-validation on the training photos only.

    Each fold's probe sees fewer photos than the final one, so a strength (not a weight) is
    chosen: fold f scores weight zero_shot_weight(s, photos per word in f's training part),
    and the final model then uses zero_shot_weight(s, all photos per word). Best cross-validated
    top-1 wins (ties: lower log-loss, then the strength nearest the prior). `fit(feats, words)`
    returns a model with `predict_features(feats)` over `classes`; `zero_shot` holds the zero-shot
    scores of the same photos, aligned to `classes`. Returns (strength, {'folds', 'held_out', 'top1'}).
    """
    words = list(words)
    folds = fold_ids(words, max_folds)
    held = np.flatnonzero(folds >= 0)
    if len(held) == 0:
        return PRIOR_STRENGTH, {"folds": 0, "held_out": 0, "top1": {}}
    index = {w: i for i, w in enumerate(classes)}
    truth = np.array([index[w] for w in words])
    p_probe = np.zeros((len(words), len(classes)))
    seen = np.zeros(len(words))
    for f in sorted(set(folds[held])):
        test = folds == f
        train_words = [w for w, t in zip(words, test) if not t]
        p_probe[test] = fit(feats[~test], train_words).predict_features(feats[test])
        seen[test] = photos_per_word(train_words)
    best, best_key, table = PRIOR_STRENGTH, None, {}
    for s in strengths:
        w = np.array([zero_shot_weight(float(s), n) for n in seen[held]])
        z = (1 - w[:, None]) * np.log(p_probe[held] + EPS) + w[:, None] * np.log(zero_shot[held] + EPS)
        p = softmax(z, axis=1)
        acc = float(np.mean(p.argmax(axis=1) == truth[held]))
        nll = float(-np.mean(np.log(p[np.arange(len(held)), truth[held]] + EPS)))
        table[float(s)] = acc
        key = (acc, -nll, -abs(np.log1p(min(s, 1e6)) - np.log1p(PRIOR_STRENGTH)))
        if best_key is None or key > best_key:
            best, best_key = float(s), key
    return best, {"folds": int(folds.max() + 1), "held_out": len(held), "top1": table}
