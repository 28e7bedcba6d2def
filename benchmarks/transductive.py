"""Zero-shot + unlabelled photos vs zero-shot alone, on a data directory's photos (labels hidden from it).

The self-training (core.transductive) reads every stored photo's features and the seed zero-shot
model's scores of it, never a label; the labels are read here only to score the result, and, in
the rows that say so, to pick settings on the other folds or to draw a ceiling. Reported per seed
model, side by side: top-1/top-5 over the photos' own words ("demo words": scores restricted to
the words that have photos) and over the whole vocabulary, and the expected calibration error of
the whole-vocabulary probabilities.

- defaults, transductive: self-trained on all photos, scored on the same photos;
- defaults, new photos: self-trained on 4/5 of the photos, scored on the other fifth (5 folds),
  which is what `predict` does with a single new photo;
- previous settings: the settings before issue 23's measurement (seed weight 0.4, temperature
  0.05, 3 rounds, every vote makes a prototype, no confidence matching);
- nested CV: for each fifth, the grid setting with the best demo-words top-1 on the OTHER four
  fifths' labels is used to score it (the scored fifth's labels pick nothing);
- tiny pool: self-trained on 20 random photos, scored on all the others (10 draws: mean, worst);
- candidates measured for issue 23, each at one fixed setting: EM word priors (Saerens et al. 2002),
  label propagation over the kNN graph (Zhou et al. 2004), k-means (40 clusters) pooling each photo
  with its cluster's mean log-scores, and a linear probe self-trained on the most confident half of
  each word's pseudo-labels (class-balanced), pooled half and half with the seed;
- ceilings (labels read, not methods): the per-word bias fitted ON THE LABELS (the best any prior or
  bias method can do), the share of photos whose true word is the seed's second choice among the
  demo words (what fixing every such photo, and breaking none, would gain), and the purity of k-means
  clusters of the features (one cluster per demo word, each named by its majority TRUE word): how well
  the features alone separate the words, whatever names the clusters get.

    hashtags --home DIR demo                # or: import-folder datasets/demo/photos && features
    python benchmarks/transductive.py --home DIR [--seed-models 3,4] [--json]
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

from hashtag_workbench.core.fusion import expected_calibration_error
from hashtag_workbench.core.linalg import softmax, unit
from hashtag_workbench.core.metrics import evaluate_scores
from hashtag_workbench.core.predictor import restrict
from hashtag_workbench.core.transductive import EPS, TransductiveConfig, TransductiveModel, self_train
from hashtag_workbench.jobs._unlabelled import unlabelled_photos
from hashtag_workbench.warehouse import models as wh
from hashtag_workbench.warehouse import splits as wh_splits

GRID = {"seed_weight": (0.4, 0.6, 0.8), "temperature": (0.05, 0.1, 0.2), "rounds": (1, 3)}
PREVIOUS = TransductiveConfig(seed_weight=0.4, temperature=0.05, rounds=3, min_votes=1, match_confidence=False)
FOLDS, TINY, DRAWS = 5, 20, 10


def scores(probs: np.ndarray, classes: list[str], truth: list[str], words: list[str]) -> dict:
    """top-1/top-5 over `words` (scores restricted and renormalised) and over every class; ECE over every class."""
    own = evaluate_scores(restrict(probs, classes, words), words, truth)
    full = evaluate_scores(probs, classes, truth)
    ece = expected_calibration_error(probs, np.array([classes.index(t) for t in truth]))
    return {"words_top1": own["top1"], "words_top5": own["top5"], "vocab_top1": full["top1"],
            "vocab_top5": full["top5"], "ece": round(ece, 4)}


def transductive(feats, seed, cfg, new_feats=None, new_seed=None) -> np.ndarray:
    """Self-train on (feats, seed); score (new_feats, new_seed), by default the same photos."""
    protos, mean, has, rep = self_train(feats, seed, cfg)
    model = TransductiveModel(cfg, [""] * seed.shape[1], protos, mean, has, report=rep)
    return model.predict_features(feats if new_feats is None else new_feats, seed if new_seed is None else new_seed)


def new_photos(feats, seed, cfg) -> np.ndarray:
    """Each fold scored by a model self-trained on the other folds only."""
    out = np.zeros_like(seed)
    part = np.arange(len(feats)) % FOLDS
    for f in range(FOLDS):
        out[part == f] = transductive(feats[part != f], seed[part != f], cfg, feats[part == f], seed[part == f])
    return out


def nested_cv(feats, seed, classes, truth, words) -> tuple[np.ndarray, list[dict]]:
    """Each fifth scored with the grid setting whose demo-words top-1 is best on the other fifths' labels."""
    settings = [dict(zip(GRID, v)) for v in itertools.product(*GRID.values())]
    runs = [transductive(feats, seed, TransductiveConfig(**s)) for s in settings]
    part, truth = np.arange(len(feats)) % FOLDS, np.array(truth)
    out, picks = np.zeros_like(seed), []
    for f in range(FOLDS):
        rest = part != f
        best = max(range(len(settings)), key=lambda i: evaluate_scores(
            restrict(runs[i][rest], classes, words), words, list(truth[rest]))["top1"])
        out[part == f] = runs[best][part == f]
        picks.append(settings[best])
    return out, picks


def tiny_pool(feats, seed, classes, truth, words, cfg: TransductiveConfig) -> dict:
    """Demo-words top-1 gain over the seed when only 20 random photos are the pool (the others scored)."""
    rng, truth, gains = np.random.default_rng(0), np.array(truth), []
    for _ in range(DRAWS):
        order = rng.permutation(len(feats))
        fit, rest = order[:TINY], order[TINY:]
        got = transductive(feats[fit], seed[fit], cfg, feats[rest], seed[rest])
        score = [evaluate_scores(restrict(p, classes, words), words, list(truth[rest]))["top1"]
                 for p in (got, seed[rest])]
        gains.append(score[0] - score[1])
    return {"photos": TINY, "draws": DRAWS, "mean_gain": round(float(np.mean(gains)), 4),
            "worst_gain": round(float(np.min(gains)), 4)}


def em_priors(seed: np.ndarray, rounds: int = 100) -> np.ndarray:
    """Saerens et al. 2002: re-estimate the word priors of the pool by EM (the seed assumes uniform ones)."""
    old = np.full(seed.shape[1], 1.0 / seed.shape[1])
    prior = old
    for _ in range(rounds):
        post = seed * (prior / old)
        post /= post.sum(axis=1, keepdims=True)
        prior = post.mean(axis=0)
    return post


def label_propagation(feats, seed, k: int = 10, alpha: float = 0.8) -> np.ndarray:
    """Zhou et al. 2004 over the symmetric kNN graph of the centred, unit features, the seed as the prior."""
    z = unit(feats - feats.mean(axis=0))
    sim = z @ z.T
    np.fill_diagonal(sim, -np.inf)
    near = np.argsort(-sim, axis=1)[:, :k]
    w = np.zeros_like(sim)
    rows = np.arange(len(z))[:, None]
    w[rows, near] = np.maximum(sim[rows, near], 0.0)
    w = w + w.T
    d = 1.0 / np.sqrt(w.sum(axis=1) + EPS)
    f = np.linalg.solve(np.eye(len(z)) - alpha * d[:, None] * w * d[None], seed)
    f = np.maximum(f, EPS)
    return f / f.sum(axis=1, keepdims=True)


def cluster_pooling(feats, seed, clusters: int = 40) -> np.ndarray:
    """k-means on the centred, unit features; each photo's log-scores pooled with its cluster's mean log-scores."""
    from sklearn.cluster import KMeans
    z, logp = unit(feats - feats.mean(axis=0)), np.log(seed + EPS)
    which = KMeans(min(clusters, len(z)), n_init=4, random_state=0).fit_predict(z)
    means = np.stack([logp[which == c].mean(axis=0) for c in range(which.max() + 1)])
    return softmax(0.5 * logp + 0.5 * means[which], axis=1)


def probe_self_training(feats, seed, share: float = 0.5) -> np.ndarray:
    """A class-balanced logistic regression on each word's most confident pseudo-labels, pooled with the seed."""
    from sklearn.linear_model import LogisticRegression
    z, pick, conf = unit(feats - feats.mean(axis=0)), seed.argmax(axis=1), seed.max(axis=1)
    chosen = np.concatenate([rows[np.argsort(-conf[rows])][:max(1, int(np.ceil(share * len(rows))))]
                             for rows in (np.flatnonzero(pick == c) for c in np.unique(pick))])
    clf = LogisticRegression(max_iter=1000, class_weight="balanced").fit(z[chosen], pick[chosen])
    logq = np.full(seed.shape, np.log(EPS))
    logq[:, clf.classes_] = clf.predict_log_proba(z)
    return softmax(0.5 * np.log(seed + EPS) + 0.5 * logq, axis=1)


def second_choice_share(seed, classes, truth, words) -> float:
    """Share of photos whose true word is the seed's second choice among `words` (a ceiling, labels read)."""
    own = restrict(seed, classes, words)
    rank = (own > own[np.arange(len(own)), [words.index(t) for t in truth]][:, None]).sum(axis=1)
    return round(float((rank == 1).mean()), 4)


def cluster_purity(feats, truth, words) -> float:
    """k-means, one cluster per word, each named by its majority true word: the share right (labels read)."""
    from sklearn.cluster import KMeans
    which = KMeans(len(words), n_init=4, random_state=0).fit_predict(unit(feats - feats.mean(axis=0)))
    truth = np.array(truth)
    right = sum(np.unique(truth[which == c], return_counts=True)[1].max() for c in np.unique(which))
    return round(float(right / len(truth)), 4)


def bias_ceiling(seed, classes, truth) -> np.ndarray:
    """NOT a method: the per-word log-bias fitted on the labels (cross-entropy), the best any prior method can do."""
    logp, onehot = np.log(seed + EPS), np.eye(len(classes))[[classes.index(t) for t in truth]]
    bias = np.zeros(len(classes))
    for _ in range(2000):
        bias -= 0.5 * (softmax(logp + bias, axis=1) - onehot).mean(axis=0)
    return softmax(logp + bias, axis=1)


def one_seed(home: Path, rec: dict | None, labels: dict[int, str]) -> dict:
    pool = unlabelled_photos(home, TransductiveConfig().backbone, lambda m: print(m, file=sys.stderr), seed=rec)
    keep = [i for i, image_id in enumerate(pool["image_ids"]) if image_id in labels]
    feats, seed = pool["features"][keep].astype(np.float64), pool["probs"][keep].astype(np.float64)
    truth = [labels[pool["image_ids"][i]] for i in keep]
    classes, words = list(pool["seed"]["classes"]), sorted(set(truth))
    t0 = time.perf_counter()
    refined = transductive(feats, seed, TransductiveConfig())
    seconds = time.perf_counter() - t0
    cv, picks = nested_cv(feats, seed, classes, truth, words)
    rows = {"zero-shot alone": seed, "+ unlabelled photos, defaults (transductive)": refined,
            "+ unlabelled photos, defaults, new photos (5-fold)": new_photos(feats, seed, TransductiveConfig()),
            "+ unlabelled photos, settings by nested CV": cv,
            "+ unlabelled photos, previous settings": transductive(feats, seed, PREVIOUS),
            "candidate: EM word priors (Saerens)": em_priors(seed),
            "candidate: label propagation (Zhou, k=10)": label_propagation(feats, seed),
            "candidate: k-means (40) cluster pooling": cluster_pooling(feats, seed),
            "candidate: self-trained linear probe": probe_self_training(feats, seed),
            "ceiling: per-word bias fitted on labels": bias_ceiling(seed, classes, truth)}
    return {"seed": {k: pool["seed"][k] for k in ("model_id", "name")}, "photos": len(truth), "words": len(words),
            "vocabulary": len(classes), "defaults": TransductiveConfig().to_dict(),
            "rows": {name: scores(p, classes, truth, words) for name, p in rows.items()},
            "nested_cv_picks": picks, "tiny_pool": tiny_pool(feats, seed, classes, truth, words, TransductiveConfig()),
            "tiny_pool_previous": tiny_pool(feats, seed, classes, truth, words, PREVIOUS),
            "second_choice_share": second_choice_share(seed, classes, truth, words),
            "cluster_purity": cluster_purity(feats, truth, words),
            "self_train_seconds": round(seconds, 3)}


def report(r: dict) -> str:
    line = "{:<52}| {:>11.1%} | {:>6.1%} | {:>11.1%} | {:>6.1%} | {:>5.3f}"
    base, tiny, old = r["rows"]["zero-shot alone"], r["tiny_pool"], r["tiny_pool_previous"]
    new = r["rows"]["+ unlabelled photos, defaults (transductive)"]
    picks = ", ".join("{seed_weight}/{temperature}/{rounds}".format(**p) for p in r["nested_cv_picks"])
    return "\n".join([
        f"seed: model {r['seed']['model_id']} {r['seed']['name']}; {r['photos']} photos, labels hidden; "
        f"{r['words']} words with photos, {r['vocabulary']} in the vocabulary",
        f"{'':<52}| {'words top-1':>11} | {'top-5':>6} | {'vocab top-1':>11} | {'top-5':>6} | {'ECE':>5}",
        *[line.format(name, s["words_top1"], s["words_top5"], s["vocab_top1"], s["vocab_top5"], s["ece"])
          for name, s in r["rows"].items()],
        f"gain of the defaults, words top-1: {100 * (new['words_top1'] - base['words_top1']):+.1f} points, vocab "
        f"top-1: {100 * (new['vocab_top1'] - base['vocab_top1']):+.1f} points; nested-CV picks (seed weight/"
        f"temperature/rounds) per fold: {picks}",
        f"tiny pool ({tiny['photos']} photos, {tiny['draws']} draws, the other photos scored): words top-1 gain "
        f"mean {100 * tiny['mean_gain']:+.1f}, worst {100 * tiny['worst_gain']:+.1f} points (previous settings "
        f"{100 * old['mean_gain']:+.1f}, worst {100 * old['worst_gain']:+.1f}); "
        f"self-training took {r['self_train_seconds']:.2f} s",
        f"ceiling: the true word is the seed's second choice among the demo words for "
        f"{r['second_choice_share']:.1%} of the photos; fixing all of them and breaking none would gain "
        f"{100 * r['second_choice_share']:+.1f} points; k-means with {r['words']} clusters, each named by its "
        f"majority true word, is right for {r['cluster_purity']:.1%} of the photos"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", required=True, type=Path, help="data directory with imported photos (and features)")
    ap.add_argument("--seed-models", default="",
                    help="comma-separated zero-shot model ids to seed from (default: the default zero-shot model)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    labels = {r["image_id"]: r["word"] for r in wh_splits.all_labelled(args.home)}
    ids = [int(x) for x in args.seed_models.split(",") if x.strip()]
    recs = [wh.get_model(args.home, i) for i in ids] or [None]
    results = [one_seed(args.home, rec, labels) for rec in recs]
    print(json.dumps(results, indent=1) if args.json else "\n\n".join(report(r) for r in results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
