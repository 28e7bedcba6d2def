"""Reading a confusion matrix: the most confused word pairs, and how close the two words are in word-vector space.

The original study's next step: "analyse a confusion matrix for visually and semantically similar words".
A pair confused often whose words are also close in word-vector space is semantically similar (ConSE
cannot tell them apart either); a pair confused often but far apart is a visual confusion.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.wordvectors import PhraseEncoder


def support(cells: list[dict]) -> dict[str, int]:
    """true word -> how many evaluated images it has (the row sum); cells are {true_word, pred_word, n}."""
    out: dict[str, int] = defaultdict(int)
    for c in cells:
        out[c["true_word"]] += int(c["n"])
    return dict(out)


def top_confused_pairs(cells: list[dict], k: int = 15) -> list[dict]:
    """The k off-diagonal cells with the most images: {true_word, pred_word, n, rate}, where rate is
    the share of the true word's images predicted as the other word; ties broken by rate, then by name."""
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    sup = support(cells)
    pairs = [{"true_word": c["true_word"], "pred_word": c["pred_word"], "n": int(c["n"]),
              "rate": int(c["n"]) / sup[c["true_word"]]}
             for c in cells if c["true_word"] != c["pred_word"] and int(c["n"]) > 0]
    pairs.sort(key=lambda p: (-p["n"], -p["rate"], p["true_word"], p["pred_word"]))
    return pairs[:k]


def pair_cosines(encoder: PhraseEncoder, pairs: list[tuple[str, str]]) -> list[float | None]:
    """Cosine similarity of each (word, word) pair's vectors; None where either word has no vector."""
    words = sorted({w for p in pairs for w in p})
    if not words:
        return []
    vecs, mask = encoder.encode(words)
    norms = np.linalg.norm(vecs, axis=1)
    row = {w: i for i, w in enumerate(words)}
    out: list[float | None] = []
    for a, b in pairs:
        i, j = row[a], row[b]
        if not (mask[i] and mask[j]) or norms[i] == 0 or norms[j] == 0:
            out.append(None)
        else:
            out.append(float(vecs[i] @ vecs[j] / (norms[i] * norms[j])))
    return out
