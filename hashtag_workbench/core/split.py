"""Stratified, seeded train/val split: each word's images are shuffled and divided on their own."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from hashtag_workbench.core.config import option
from hashtag_workbench.core.errors import InputError

TRAIN, VAL = "train", "val"


@dataclass
class SplitConfig:
    """How the curated images are split into train and val (the `split` job's and train's flags)."""
    val_fraction: float = option(0.2, "share of each word's images for val")
    seed: int = option(0, "random seed of the split")
    exclude_flagged: bool = option(False, "leave out images flagged as outliers and not yet reviewed")


def stratified_split(image_ids: list[int], words: list[str], *, val_fraction: float = 0.2,
                     seed: int = 0) -> dict[int, str]:
    """image_id -> 'train' | 'val', with round(val_fraction * n) of each word's n images in val.

    A word with 2+ images always keeps at least one image on each side; a word with a
    single image goes to train (it cannot be validated). Same inputs and seed, same split.
    """
    if len(image_ids) != len(words):
        raise InputError(f"got {len(image_ids)} image ids but {len(words)} words")
    if not 0 < val_fraction < 1:
        raise InputError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    if len(set(image_ids)) != len(image_ids):
        raise InputError("image ids must be unique")
    by_word: dict[str, list[int]] = defaultdict(list)
    for i, w in zip(image_ids, words):
        by_word[w].append(int(i))
    out: dict[int, str] = {}
    for w in sorted(by_word):
        ids = sorted(by_word[w])
        # One generator per word, seeded by (seed, word): adding a word never reshuffles the others.
        rng = np.random.default_rng([seed, *w.encode()])
        rng.shuffle(ids)
        n = len(ids)
        n_val = 0 if n < 2 else min(max(1, round(val_fraction * n)), n - 1)
        for j, i in enumerate(ids):
            out[i] = VAL if j < n_val else TRAIN
    return out
