"""Classification metrics over word labels: top-k accuracy, per-word precision/recall, confusion counts."""
from __future__ import annotations

from collections import Counter

import numpy as np

from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.kinds import KINDS

# The original study's reference figures (76 words x 200 web images, 80:20 split, top-1):
# model kind -> (how the study named the model, top-1 accuracy); each kind carries its own.
STUDY_TOP1 = {name: k.study for name, k in KINDS.items() if k.study}

# Evaluation scopes (the `scope` of stored evaluations), worded so nobody mistakes one for another.
SCOPE_TITLES = {
    "val": "same words and val images as the supervised models (the study's comparison)",
    "open": "open vocabulary: the same val images against every active word (zero-shot only)",
    "all": "open vocabulary on every stored image (zero-shot needs no training data)",
}


def evaluate_scores(probs: np.ndarray, classes: list[str], true_words: list[str], *, k: int = 5) -> dict:
    """Metrics for (n, len(classes)) scores against true words.

    A true word the model does not know (e.g. a ConSE target with no vector) counts as
    wrong at every k, so models with fewer classes are not flattered.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape != (len(true_words), len(classes)):
        raise InputError(f"scores must be (n_images, n_classes) = ({len(true_words)}, {len(classes)}), "
                         f"got {probs.shape}")
    if not true_words:
        raise InputError("no images to evaluate")
    index = {w: i for i, w in enumerate(classes)}
    order = np.argsort(-probs, axis=1, kind="stable")
    pred = [classes[r[0]] for r in order]
    hit1 = [p == t for p, t in zip(pred, true_words)]
    hitk = [t in index and index[t] in order[i, :k] for i, t in enumerate(true_words)]
    pairs = Counter(zip(true_words, pred))
    words = sorted(set(true_words) | set(pred))
    per_word = []
    for w in words:
        tp = pairs.get((w, w), 0)
        n_pred = sum(n for (t, p), n in pairs.items() if p == w)
        support = sum(n for (t, p), n in pairs.items() if t == w)
        per_word.append({"word": w, "support": support,
                         "precision": tp / n_pred if n_pred else None,
                         "recall": tp / support if support else None})
    predictions = [{"pred_word": pred[i], "prob": float(probs[i, order[i, 0]]),
                    "top5": [[classes[j], round(float(probs[i, j]), 4)] for j in order[i, :k]]}
                   for i in range(len(true_words))]
    return {"n": len(true_words), "top1": float(np.mean(hit1)), "top5": float(np.mean(hitk)),
            "per_word": per_word, "confusion": sorted((t, p, n) for (t, p), n in pairs.items()),
            "predictions": predictions}
