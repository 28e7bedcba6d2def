"""The data-efficiency curve: how many photos per word before a supervised model beats zero-shot.

For each k, a linear probe is trained on k photos per word drawn from the train split
(one draw per seed) and scored on the untouched val split. The zero-shot model is the
0-photo point; "zero-shot + photos" (core.fewshot) is the third line. Arrays in, numbers
out: the caller reads features and zero-shot scores from the warehouse.
"""
from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.fewshot import (
    PRIOR_STRENGTH,
    choose_strength,
    log_mix,
    photos_per_word,
    zero_shot_weight,
)
from hashtag_workbench.core.metrics import evaluate_scores
from hashtag_workbench.core.probe import ProbeConfig, ProbeModel

ALL = "all"
DEFAULT_PER_WORD = "1,2,5,10,20,all"
PROBE, MIX, ZERO_SHOT = "probe", "zero_shot_plus_photos", "zero_shot"
UNLABELLED = "zero_shot_plus_unlabelled"
METHOD_LABELS = {ZERO_SHOT: "zero-shot (0 photos)", PROBE: "supervised (linear probe)",
                 MIX: "zero-shot + photos", UNLABELLED: "zero-shot + unlabelled photos (0 labelled)"}


def parse_per_word(text: str) -> list[int | None]:
    """'1,2,5,all' -> [1, 2, 5, None] (None: every train photo), sorted, without repeats."""
    out: set[int | None] = set()
    for part in (p.strip().lower() for p in str(text).split(",")):
        if not part:
            continue
        if part == ALL:
            out.add(None)
            continue
        if not part.isdigit() or int(part) < 1:
            raise InputError(f"--per-word takes whole numbers of at least 1 or 'all', got {part!r}")
        out.add(int(part))
    if not out:
        raise InputError("--per-word is empty: give sizes such as 1,2,5,10,all")
    return sorted(k for k in out if k is not None) + ([None] if None in out else [])


def label(k: int | None) -> str:
    return ALL if k is None else str(k)


def sample_per_word(words: Sequence[str], k: int | None, *, seed: int) -> np.ndarray:
    """Indices of k photos per word (all of a word's photos when it has fewer), grouped by word.

    Each word is shuffled by its own generator seeded with (seed, word), so seeds give
    different draws and, for one seed, the k-photo draw is the start of the (k+1)-photo one.
    """
    if k is not None and k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    by_word: dict[str, list[int]] = defaultdict(list)
    for i, w in enumerate(words):
        by_word[w].append(i)
    out: list[int] = []
    for w in sorted(by_word):
        idx = np.array(by_word[w])
        idx = idx[np.random.default_rng([int(seed), *w.encode()]).permutation(len(idx))]
        out.extend(idx[:k].tolist() if k is not None else idx.tolist())
    return np.array(out, dtype=int)


def coverage(words: Sequence[str], k: int | None) -> dict:
    """{'words': n, 'words_with_k': how many words have at least k train photos, 'photos_per_word': mean used}."""
    counts: dict[str, int] = defaultdict(int)
    for w in words:
        counts[w] += 1
    n = len(counts)
    used = [c if k is None else min(c, k) for c in counts.values()]
    return {"words": n, "words_with_k": n if k is None else sum(c >= k for c in counts.values()),
            "photos_per_word": round(float(np.mean(used)), 2) if used else 0.0}


@dataclass
class CurveData:
    """Everything the curve needs: features of the train and val photos and the zero-shot scores of both.

    Zero-shot scores are aligned to `classes` (core.fewshot.align_probs).
    """
    classes: list[str]
    train_feats: np.ndarray
    train_words: list[str]
    val_feats: np.ndarray
    val_words: list[str]
    zs_train: np.ndarray
    zs_val: np.ndarray

    def __post_init__(self):
        if len(self.train_feats) != len(self.train_words) or len(self.zs_train) != len(self.train_words):
            raise InputError("train features, words and zero-shot scores must have one row per photo")
        if len(self.val_feats) != len(self.val_words) or len(self.zs_val) != len(self.val_words):
            raise InputError("val features, words and zero-shot scores must have one row per photo")
        if not self.val_words:
            raise InputError("the split has no val photos to score the curve on")
        missing = sorted(set(self.classes) - set(self.train_words))
        if missing:
            raise InputError(f"no train photos for {missing}; every word needs at least one")


def _scores(probs: np.ndarray, classes: list[str], words: list[str]) -> tuple[float, float]:
    res = evaluate_scores(probs, classes, words)
    return res["top1"], res["top5"]


def one_draw(data: CurveData, k: int | None, seed: int, probe_config: ProbeConfig,
             mix_strength: float | None = PRIOR_STRENGTH) -> dict:
    """Probe and zero-shot + photos for one k and one seed: {'probe': (top1, top5), 'mix': (...), 'weight', ...}."""
    idx = sample_per_word(data.train_words, k, seed=seed)
    feats, words, zs = data.train_feats[idx], [data.train_words[i] for i in idx], data.zs_train[idx]
    cfg = ProbeConfig(**{**probe_config.to_dict(), "seed": seed})

    def fit(f, w):
        return ProbeModel(cfg, data.classes).fit_features(f, w)
    p_probe = fit(feats, words).predict_features(data.val_feats)
    # None: how many photos the zero-shot model is worth is cross-validated on these photos alone
    strength, cv = ((mix_strength, {"folds": 0}) if mix_strength is not None
                    else choose_strength(feats, words, zs, data.classes, fit=fit))
    weight = zero_shot_weight(strength, photos_per_word(words))
    p_mix = log_mix(p_probe, data.zs_val, weight)
    return {"probe": _scores(p_probe, data.classes, data.val_words),
            "mix": _scores(p_mix, data.classes, data.val_words), "weight": weight, "strength": strength,
            "cv_folds": cv["folds"]}


def _mean_point(k: int | None, cover: dict, draws: list[dict], key: str) -> dict:
    top1 = np.array([d[key][0] for d in draws])
    top5 = np.array([d[key][1] for d in draws])
    point = {"per_word": label(k), "top1": round(float(top1.mean()), 4), "top5": round(float(top5.mean()), 4),
             "seeds": len(draws), "top1_std": round(float(top1.std()), 4), "top5_std": round(float(top5.std()), 4),
             **cover}
    if key == "mix":
        point["weight"] = round(float(np.mean([d["weight"] for d in draws])), 3)
        point["weights"] = [round(d["weight"], 3) for d in draws]
        point["strengths"] = [d["strength"] if np.isfinite(d["strength"]) else None for d in draws]
    return point


def compute_curve(data: CurveData, *, per_word: Sequence[int | None], seeds: int = 3,
                  probe_config: ProbeConfig | None = None, mix_strength: float | None = PRIOR_STRENGTH,
                  progress: Callable[[str], None] | None = None) -> dict:
    """{'points': [probe point per k], 'mix_points': [zero-shot + photos point per k]}; means over seeds."""
    if seeds < 1:
        raise InputError(f"--seeds must be at least 1, got {seeds}")
    if not per_word:
        raise InputError("no photo counts given")
    probe_config = probe_config or ProbeConfig()
    points, mix_points = [], []
    import sklearn.linear_model  # noqa: F401  (its BLAS must be loaded for the thread limit to reach it)
    from threadpoolctl import threadpool_limits
    for k in per_word:
        # Many small fits: BLAS threads cost far more than they give (25x slower on a loaded 2-core machine).
        with threadpool_limits(1), warnings.catch_warnings():
            # one photo per word: sklearn warns that there are as many classes as samples, which is the point
            warnings.filterwarnings("ignore", message="The number of unique classes", category=UserWarning)
            draws = [one_draw(data, k, s, probe_config, mix_strength) for s in range(seeds)]
        cover = coverage(data.train_words, k)
        points.append(_mean_point(k, cover, draws, "probe"))
        mix_points.append(_mean_point(k, cover, draws, "mix"))
        if progress:
            progress(f"{label(k)} per word: probe top-1 {points[-1]['top1']:.1%}, "
                     f"zero-shot + photos {mix_points[-1]['top1']:.1%} "
                     f"({cover['words_with_k']}/{cover['words']} words had {label(k)})")
    return {"points": points, "mix_points": mix_points}


def unlabelled_point(data: CurveData, config=None) -> dict:
    """Zero-shot + every split photo without its label (core.transductive), scored on the val photos.

    The point at 0 labelled photos: the zero-shot scores are self-trained on the train and val
    photos' features (labels are not read), then the val photos are scored as `predict` would.
    """
    from hashtag_workbench.core.transductive import TransductiveConfig, TransductiveModel, self_train
    cfg = config or TransductiveConfig()
    feats, seed = np.concatenate([data.train_feats, data.val_feats]), np.concatenate([data.zs_train, data.zs_val])
    protos, mean, has, _ = self_train(feats, seed, cfg)
    probs = TransductiveModel(cfg, data.classes, protos, mean, has).predict_features(data.val_feats, data.zs_val)
    top1, top5 = _scores(probs, data.classes, data.val_words)
    return {"per_word": "0", "photos_per_word": 0.0, "words": len(data.classes), "words_with_k": len(data.classes),
            "seeds": 1, "top1": round(top1, 4), "top5": round(top5, 4), "unlabelled_photos": len(feats),
            "name": f"zero-shot + {len(feats)} unlabelled photos"}


def as_sentence(text: str) -> str:
    """'supervised passes ...' -> 'Supervised passes ....' (str.capitalize would lower-case 'ConSE')."""
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def crossing(points: Sequence[dict], zero_shot_top1: float) -> dict | None:
    """The first point (fewest photos) whose top-1 beats zero-shot, or None."""
    for p in sorted(points, key=lambda p: p["photos_per_word"]):
        if p["top1"] > zero_shot_top1:
            return p
    return None


def _photos(p: dict) -> str:
    n = p["per_word"]
    if n == ALL:
        return f"all photos (about {p['photos_per_word']:g} per word)"
    return f"{n} photo{'' if n == '1' else 's'} per word"


def crossing_sentence(points: Sequence[dict], zero_shot_top1: float) -> str:
    """'supervised passes zero-shot at 2 photos per word' (or that it never does, up to the largest size)."""
    if not points:
        return "no curve points"
    hit = crossing(points, zero_shot_top1)
    if hit is None:
        last = max(points, key=lambda p: p["photos_per_word"])
        return (f"supervised does not pass zero-shot ({zero_shot_top1:.1%} top-1) at any size tried, "
                f"up to {_photos(last)}")
    first = min(points, key=lambda p: p["photos_per_word"])
    already = "already " if hit is first else ""
    return (f"supervised passes zero-shot {already}at {_photos(hit)} "
            f"({hit['top1']:.1%} vs {zero_shot_top1:.1%} top-1)")


def mix_sentence(points: Sequence[dict], mix_points: Sequence[dict], zero_shot_top1: float) -> str:
    """How often zero-shot + photos is at least as good as the better of the two alone (top-1)."""
    if not mix_points:
        return "no zero-shot + photos points"
    best = [max(p["top1"], zero_shot_top1) for p in points]
    ok = [m["top1"] >= b - 1e-9 for m, b in zip(mix_points, best)]
    worse = [f"{m['per_word']} ({m['top1']:.1%} vs {b:.1%})" for m, b, good in zip(mix_points, best, ok) if not good]
    text = (f"zero-shot + photos is at least as good as the better of the two alone at {sum(ok)} of "
            f"{len(mix_points)} sizes")
    return text + (f"; below it at {', '.join(worse)}" if worse else "")
