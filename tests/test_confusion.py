"""core.confusion: the most confused pairs of a confusion matrix and their word-vector similarity."""
from __future__ import annotations

import numpy as np
import pytest

from hashtag_workbench.core.confusion import pair_cosines, support, top_confused_pairs

CELLS = [{"true_word": "cat", "pred_word": "cat", "n": 6}, {"true_word": "cat", "pred_word": "dog", "n": 3},
         {"true_word": "cat", "pred_word": "car", "n": 1}, {"true_word": "dog", "pred_word": "cat", "n": 3},
         {"true_word": "dog", "pred_word": "dog", "n": 1}, {"true_word": "car", "pred_word": "car", "n": 0}]


def test_pairs_ranked_by_count_then_rate_and_diagonal_left_out():
    assert support(CELLS) == {"cat": 10, "dog": 4, "car": 0}
    pairs = top_confused_pairs(CELLS, 2)
    assert [(p["true_word"], p["pred_word"], p["n"]) for p in pairs] == [("dog", "cat", 3), ("cat", "dog", 3)]
    assert pairs[0]["rate"] == pytest.approx(0.75) and pairs[1]["rate"] == pytest.approx(0.3)
    assert len(top_confused_pairs(CELLS, 10)) == 3
    with pytest.raises(ValueError):
        top_confused_pairs(CELLS, 0)


class _Vectors:
    name, spec, dim = "toy", "toy", 2
    table = {"cat": [1.0, 0.0], "dog": [1.0, 1.0], "car": [0.0, 1.0]}

    def encode(self, phrases):
        vecs = np.array([self.table.get(p, [0.0, 0.0]) for p in phrases], dtype=np.float32)
        return vecs, np.array([p in self.table for p in phrases])


def test_pair_cosines_and_words_without_a_vector():
    cos = pair_cosines(_Vectors(), [("cat", "dog"), ("cat", "car"), ("cat", "selfie")])
    assert cos[0] == pytest.approx(2 ** -0.5) and cos[1] == pytest.approx(0.0) and cos[2] is None


def test_pair_cosines_with_the_default_zero_shot_vectors():
    from hashtag_workbench.core.conse import default_config
    from hashtag_workbench.core.wordvectors import load_word_vectors
    cat_kitten, cat_car = pair_cosines(load_word_vectors(default_config().word_vectors),
                                       [("cat", "kitten"), ("cat", "car")])
    assert cat_kitten > cat_car                     # semantically closer words, higher cosine
