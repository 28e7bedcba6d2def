"""Fusing the hierarchy and word-vector evidence per word, fitting the fusion by cross-validation, calibrating it.

Per image x and word w, a log-linear score:

    z(x, w) = cos(x, w) / 0.05  +  weight * (log(H(x, w) + eps)  if w has ImageNet classes beneath it
                                             else baseline)

cos is ConSE's cosine (core.conse), H the size-normalised ImageNet mass under w's sense
(core.hierarchy, exponent alpha). `baseline` is the hierarchy evidence a word without classes
beneath it is credited with, so scene words ("sky", "night") compete with object words on the
word-vector evidence alone. alpha, eps, weight and baseline are chosen by cross-validated top-1
on labelled photos, never typed in; the probabilities are then softmax(z / temperature) with the
temperature fitted by likelihood (calibration), and a prediction whose calibrated top probability
is under `threshold` (chosen by measurement) is not confident: "none of these".
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import numpy as np

from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.hierarchy import WordSenses, hierarchy_scores, membership
from hashtag_workbench.core.linalg import softmax

COSINE_SCALE = 0.05        # ConSE's own cosine -> logit scale (ConSEConfig.score_temperature)
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
EPSILONS = (1e-4, 1e-3, 1e-2)
WEIGHTS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
BASELINE_QUANTILES = (0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995)
TEMPERATURES = tuple(np.exp(np.linspace(np.log(0.05), np.log(50.0), 121)))
ECE_BINS = 15


@dataclass(frozen=True)
class FusionParams:
    alpha: float = 0.5
    eps: float = 1e-3
    weight: float = 1.0
    baseline: float = -5.0
    temperature: float = 1.0     # calibration: probabilities = softmax(z / temperature)
    threshold: float = 0.0       # calibrated top probability under this: not confident
    cosine: bool = True          # False: hierarchy evidence alone (the benchmark's "hierarchy only")

    def to_dict(self) -> dict:
        return asdict(self)


def hierarchy_evidence(probs: np.ndarray, member: np.ndarray, eps: float, baseline: float) -> np.ndarray:
    """(n, n_words) log(H + eps) for words with classes beneath them (a non-zero column of `member`),
    `baseline` for the others."""
    has = member.any(axis=0)
    h = np.log(hierarchy_scores(probs, member) + eps)
    return np.where(has[None, :], h, baseline)


def fused_scores(cosines: np.ndarray | None, hier: np.ndarray, params: FusionParams) -> np.ndarray:
    """The uncalibrated log-linear score z (see the module notes)."""
    z = params.weight * hier
    if params.cosine and cosines is not None:
        z = z + np.asarray(cosines, dtype=np.float64) / COSINE_SCALE
    return z


def calibrated(z: np.ndarray, temperature: float) -> np.ndarray:
    return softmax(np.asarray(z, dtype=np.float64) / float(temperature), axis=1)


def expected_calibration_error(probs: np.ndarray, truth: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE of the top prediction: the gap between confidence and accuracy, averaged over equal-width bins."""
    conf = probs.max(axis=1)
    right = probs.argmax(axis=1) == truth
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    return float(sum(abs(conf[which == b].mean() - right[which == b].mean()) * (which == b).mean()
                     for b in range(bins) if (which == b).any()))


def fit_temperature(z: np.ndarray, truth: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of the true words (a 1-d grid, log-spaced)."""
    rows = np.arange(len(truth))
    nll = [-np.log(np.maximum(calibrated(z, t)[rows, truth], 1e-12)).mean() for t in TEMPERATURES]
    return float(TEMPERATURES[int(np.argmin(nll))])


def fit_threshold(probs: np.ndarray, truth: np.ndarray) -> float:
    """The top-probability cut that best separates right top-1 answers from wrong ones (most agreements)."""
    conf = probs.max(axis=1)
    right = probs.argmax(axis=1) == truth
    cands = np.unique(np.round(conf, 3))
    agree = [((conf >= c) == right).mean() for c in cands]
    return float(cands[int(np.argmax(agree))])


def folds_of(truth: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """A fold number per photo, stratified by true word (each word's photos dealt round the folds)."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(truth), dtype=int)
    for w in np.unique(truth):
        idx = rng.permutation(np.flatnonzero(truth == w))
        fold[idx] = np.arange(len(idx)) % k
    return fold


def candidates(probs: np.ndarray, senses: list[WordSenses], cosine: bool = True) -> list[FusionParams]:
    """The grid the fit searches; baselines are quantiles of the photos' own hierarchy evidence, so the grid
    follows the data's scale rather than typed-in numbers."""
    has = np.array([s.has_hierarchy for s in senses], dtype=bool)
    if not has.any():
        raise InputError("no word has ImageNet classes beneath it: nothing for the hierarchy to add")
    out = []
    for alpha, eps in itertools.product(ALPHAS, EPSILONS):
        vals = np.log(hierarchy_scores(probs, membership(senses, alpha))[:, has] + eps)
        for q in BASELINE_QUANTILES:
            base = round(float(np.quantile(vals, q)), 4)
            out += [FusionParams(alpha, eps, w, base, cosine=cosine) for w in (WEIGHTS if cosine else (1.0,))]
    return out


def _hits(z: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per photo: 1 for a top-1 hit plus 0.01 for a top-5 hit (top-1 decides, top-5 breaks ties)."""
    rank = true_rank(z, truth)
    return (rank == 0) + 0.01 * (rank < 5)


def true_rank(z: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per photo: how many words rank above the true one (a tie goes to the earlier word, as argmax does)."""
    zt = z[np.arange(len(truth)), truth][:, None]
    earlier = np.arange(z.shape[1])[None, :] < truth[:, None]
    return (z > zt).sum(axis=1) + ((z == zt) & earlier).sum(axis=1)


def _scores(params: FusionParams, probs, cosines, senses) -> np.ndarray:
    member = membership(senses, params.alpha)
    return fused_scores(cosines, hierarchy_evidence(probs, member, params.eps, params.baseline), params)


def _fit_on(idx: np.ndarray, grid: list[FusionParams], hits: np.ndarray, zs: list[np.ndarray],
            truth: np.ndarray) -> tuple[int, float, float]:
    """(best candidate, temperature, threshold) fitted on the photos `idx` alone."""
    best = int(np.argmax(hits[:, idx].sum(axis=1)))
    temp = fit_temperature(zs[best][idx], truth[idx])
    return best, temp, fit_threshold(calibrated(zs[best][idx], temp), truth[idx])


def fit_fusion(probs: np.ndarray, cosines: np.ndarray | None, senses: list[WordSenses], truth: np.ndarray, *,
               folds: int = 5, seed: int = 0) -> tuple[FusionParams, dict]:
    """Fusion weights, calibration temperature and threshold from labelled photos, with a cross-validated report.

    probs: (n, 1000) ImageNet probabilities; cosines: (n, n_words) ConSE cosines (None: hierarchy alone);
    truth: (n,) index of each photo's true word. The report's cv_* figures come from photos the fit did not see.
    """
    truth = np.asarray(truth)
    grid = candidates(probs, senses, cosine=cosines is not None)
    zs = [_scores(p, probs, cosines, senses) for p in grid]
    hits = np.stack([_hits(z, truth) for z in zs])
    fold = folds_of(truth, folds, seed)
    oof_z, oof_raw = np.zeros_like(zs[0]), np.zeros_like(zs[0])
    oof_conf_right = []
    for f in range(folds):
        train, test = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        best, temp, thr = _fit_on(train, grid, hits, zs, truth)
        oof_raw[test], oof_z[test] = zs[best][test], zs[best][test] / temp
        p = calibrated(zs[best][test], temp)
        oof_conf_right += list(zip(p.max(axis=1) >= thr, p.argmax(axis=1) == truth[test]))
    best, temp, thr = _fit_on(np.arange(len(truth)), grid, hits, zs, truth)
    params = FusionParams(**{**grid[best].to_dict(), "temperature": round(temp, 4), "threshold": thr})
    return params, _report(params, zs[best], oof_raw, oof_z, truth, oof_conf_right, len(grid), folds)


def _report(params, z, oof_raw, oof_z, truth, conf_right, n_grid, folds) -> dict:
    rank = true_rank(oof_z, truth)
    conf = np.array(conf_right, dtype=bool).reshape(-1, 2)
    return {
        "photos": int(len(truth)), "words": int(z.shape[1]), "grid_size": n_grid, "folds": folds,
        "cv_top1": float((rank == 0).mean()), "cv_top5": float((rank < 5).mean()),
        "cv_ece_uncalibrated": expected_calibration_error(calibrated(oof_raw, 1.0), truth),
        "cv_ece_calibrated": expected_calibration_error(calibrated(oof_z, 1.0), truth),
        "ece_before": expected_calibration_error(calibrated(z, 1.0), truth),
        "ece_after": expected_calibration_error(calibrated(z, params.temperature), truth),
        "top1": float((z.argmax(axis=1) == truth).mean()),
        "cv_confident_share": float(conf[:, 0].mean()),
        "cv_confident_precision": float(conf[conf[:, 0], 1].mean()) if conf[:, 0].any() else None,
        "cv_unconfident_precision": float(conf[~conf[:, 0], 1].mean()) if (~conf[:, 0]).any() else None,
    }
