"""Predicted words -> hashtags a person can paste, and the original study's sampling.

`ranked_hashtags` (what predict gives by default): up to N distinct tags from the confident
words only (probability at or above the model's measured threshold), each tag scored by its
word's probability x 1/(its rank in that word's list), best first; a tag listed under several
words keeps its best score. A prediction with no confident word gives no tags ("none of these").

`sample_hashtags` (the study's way, `predict --sample-study`): the supervised model samples from
its top 2 words, zero-shot from its top 5. Each draw picks a word with probability proportional
to its (renormalised) probability and takes that word's next unused hashtag in the map's rank
order, so a confident prediction gives the word's most popular tags and an unsure one mixes words.
"""
from __future__ import annotations

import re

import numpy as np

from hashtag_workbench.core.errors import InputError

SUPERVISED_K = 2
ZERO_SHOT_K = 5
DEFAULT_N_TAGS = 15      # predict --hashtags
STUDY_N_TAGS = 3         # the study's sampled hashtags per photo


def word_tag(word: str) -> str:
    """A hashtag for a word missing from the map: its letters and digits only ('hot dog' -> 'hotdog')."""
    return re.sub(r"[^0-9a-z]", "", word.lower()) or word


def _check_top(top) -> tuple[list[str], np.ndarray]:
    words = [str(w) for w, _ in top]
    probs = np.asarray([float(p) for _, p in top], dtype=np.float64)
    if not words:
        raise InputError("no predicted words to sample from")
    if np.any(~np.isfinite(probs)) or np.any(probs < 0):
        raise InputError(f"probabilities must be finite and non-negative, got {probs.tolist()}")
    return words, probs


def sample_words(top: list[tuple[str, float]], *, k: int, n: int, rng: np.random.Generator) -> list[str]:
    """`n` words drawn with replacement from the first `k` of `top`, weighted by probability."""
    if k < 1 or n < 0:
        raise InputError(f"k must be >= 1 and n >= 0, got k={k}, n={n}")
    words, probs = _check_top(top)
    words, probs = words[:k], probs[:k]
    total = probs.sum()
    # All-zero probabilities carry no preference: fall back to uniform rather than fail.
    p = probs / total if total > 0 else np.full(len(words), 1 / len(words))
    return [words[i] for i in rng.choice(len(words), size=n, p=p)]


def confident_words(top: list[tuple[str, float]], threshold: float | None) -> list[tuple[str, float]]:
    """The words at or above the threshold (every word when the model has no measured threshold)."""
    words, probs = _check_top(top)
    return [(w, float(p)) for w, p in zip(words, probs) if threshold is None or p >= threshold]


def ranked_hashtags(top: list[tuple[str, float]], hashtags: dict[str, list[str]], *, n_tags: int = DEFAULT_N_TAGS,
                    threshold: float | None = None) -> list[str]:
    """Up to `n_tags` distinct hashtags (without '#') from the confident words of `top`, best first."""
    if n_tags < 0:
        raise InputError(f"the number of hashtags must be 0 or more, got {n_tags}")
    best: dict[str, float] = {}
    for word, p in confident_words(top, threshold):
        for rank, tag in enumerate(dict.fromkeys(hashtags.get(word) or [word_tag(word)]), start=1):
            best[tag] = max(best.get(tag, 0.0), p / rank)
    # sorted() is stable: equal scores keep the order words and tags were listed in
    return sorted(best, key=lambda t: -best[t])[:n_tags]


def sample_hashtags(top: list[tuple[str, float]], hashtags: dict[str, list[str]], *, k: int,
                    n_tags: int = STUDY_N_TAGS, seed: int | np.random.Generator | None = None) -> list[str]:
    """`n_tags` distinct hashtags (without '#') for a prediction `top` = [(word, prob), ...] best first."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    words, _ = _check_top(top)
    pools = {w: list(dict.fromkeys(hashtags.get(w) or [word_tag(w)])) for w in words[:k]}
    out: list[str] = []
    available = sum(len(v) for v in pools.values())
    # Draw one word at a time; a word whose tags are used up is skipped (bounded, never loops forever).
    for _ in range(50 * max(n_tags, 1)):
        if len(out) >= n_tags or available == 0:
            break
        word = sample_words(top, k=k, n=1, rng=rng)[0]
        while pools[word]:
            tag = pools[word].pop(0)
            available -= 1
            if tag not in out:
                out.append(tag)
                break
    return out
