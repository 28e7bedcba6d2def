"""Hashtag sampling: frequencies follow the probabilities; seeded runs repeat; tags come from the map."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from hashtag_workbench.core.hashtags import sample_hashtags, sample_words, word_tag

TOP = [("dog", 0.5), ("beach", 0.3), ("food", 0.15), ("sunset", 0.04), ("cat", 0.01)]


@pytest.mark.parametrize("k", [2, 5])
def test_sampling_frequencies_match_renormalised_probabilities(k):
    rng = np.random.default_rng(1234)
    n = 20000
    counts = Counter(sample_words(TOP, k=k, n=n, rng=rng))
    p = np.array([q for _, q in TOP[:k]])
    p = p / p.sum()
    for (word, _), expected in zip(TOP[:k], p):
        assert abs(counts[word] / n - expected) < 0.015, (word, counts[word] / n, expected)
    assert set(counts) <= {w for w, _ in TOP[:k]}


def test_seeded_sampling_repeats_and_uses_the_map_in_rank_order():
    tags = {"dog": ["dog", "puppy", "dogsofinstagram"], "beach": ["beach", "sea", "summer"]}
    a = sample_hashtags(TOP, tags, k=2, n_tags=3, seed=7)
    assert a == sample_hashtags(TOP, tags, k=2, n_tags=3, seed=7)
    assert len(a) == 3 and len(set(a)) == 3
    for word in ("dog", "beach"):
        used = [t for t in a if t in tags[word]]
        assert used == tags[word][:len(used)]           # each word's tags are taken best first
    certain = sample_hashtags([("dog", 1.0), ("beach", 0.0)], tags, k=2, n_tags=2, seed=0)
    assert certain == ["dog", "puppy"]


def test_words_missing_from_the_map_and_bad_input():
    assert sample_hashtags([("hot dog", 1.0)], {}, k=2, n_tags=3, seed=0) == ["hotdog"]
    assert word_tag("Hot Dog!") == "hotdog"
    with pytest.raises(ValueError, match="no predicted words"):
        sample_hashtags([], {}, k=2)
    with pytest.raises(ValueError, match="non-negative"):
        sample_words([("a", -1.0)], k=1, n=1, rng=np.random.default_rng(0))
