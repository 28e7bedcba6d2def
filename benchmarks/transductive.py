"""Zero-shot + unlabelled photos vs zero-shot alone, on a data directory's photos (labels hidden from it).

The self-training (core.transductive) reads every stored photo's features and the seed zero-shot
model's scores of it, never a label; the labels are read here only to score the result. Reported per
seed model, side by side:

- transductive: self-trained on all photos, scored on the same photos, over the photos' own words
  ("demo words": each model's scores restricted to the words that have photos) and over the whole
  vocabulary;
- new photos: self-trained on 4/5 of the photos, scored on the other fifth (5 folds), which is what
  `predict` does with a single new photo;
- sensitivity: the gain at every setting of a small grid (seed weight x temperature x rounds), so the
  default is not a lucky pick.

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

from hashtag_workbench.core.metrics import evaluate_scores
from hashtag_workbench.core.predictor import restrict
from hashtag_workbench.core.transductive import TransductiveConfig, TransductiveModel, self_train
from hashtag_workbench.jobs._unlabelled import unlabelled_photos
from hashtag_workbench.warehouse import models as wh
from hashtag_workbench.warehouse import splits as wh_splits

GRID = {"seed_weight": (0.3, 0.4, 0.5), "temperature": (0.03, 0.05, 0.1), "rounds": (1, 3)}


def scores(probs: np.ndarray, classes: list[str], truth: list[str], words: list[str]) -> dict:
    """top-1/top-5 over `words` (scores restricted and renormalised) and over every class."""
    own = evaluate_scores(restrict(probs, classes, words), words, truth)
    full = evaluate_scores(probs, classes, truth)
    return {"words_top1": own["top1"], "words_top5": own["top5"], "vocab_top1": full["top1"],
            "vocab_top5": full["top5"]}


def transductive(feats, seed, cfg) -> np.ndarray:
    protos, mean, has, _ = self_train(feats, seed, cfg)
    return TransductiveModel(cfg, [""] * seed.shape[1], protos, mean, has).predict_features(feats, seed)


def new_photos(feats, seed, cfg, folds: int = 5) -> np.ndarray:
    """Each fold scored by a model self-trained on the other folds only."""
    out = np.zeros_like(seed)
    part = np.arange(len(feats)) % folds
    for f in range(folds):
        fit, held = part != f, part == f
        protos, mean, has, _ = self_train(feats[fit], seed[fit], cfg)
        model = TransductiveModel(cfg, [""] * seed.shape[1], protos, mean, has)
        out[held] = model.predict_features(feats[held], seed[held])
    return out


def one_seed(home: Path, rec: dict | None, labels: dict[int, str]) -> dict:
    pool = unlabelled_photos(home, TransductiveConfig().backbone, lambda m: print(m, file=sys.stderr), seed=rec)
    keep = [i for i, image_id in enumerate(pool["image_ids"]) if image_id in labels]
    feats, seed = pool["features"][keep], pool["probs"][keep]
    truth = [labels[pool["image_ids"][i]] for i in keep]
    classes, words = list(pool["seed"]["classes"]), sorted(set(truth))
    t0 = time.perf_counter()
    refined = transductive(feats, seed, TransductiveConfig())
    seconds = time.perf_counter() - t0
    base = scores(seed, classes, truth, words)
    grid = []
    for sw, temp, rounds in itertools.product(*GRID.values()):
        cfg = TransductiveConfig(seed_weight=sw, temperature=temp, rounds=rounds)
        got = scores(transductive(feats, seed, cfg), classes, truth, words)
        grid.append({"seed_weight": sw, "temperature": temp, "rounds": rounds,
                     "gain_words_top1": round(got["words_top1"] - base["words_top1"], 4)})
    gains = [g["gain_words_top1"] for g in grid]
    return {"seed": {k: pool["seed"][k] for k in ("model_id", "name")}, "photos": len(truth), "words": len(words),
            "vocabulary": len(classes), "zero_shot": base, "transductive": scores(refined, classes, truth, words),
            "new_photos": scores(new_photos(feats, seed, TransductiveConfig()), classes, truth, words),
            "self_train_seconds": round(seconds, 3), "grid": grid,
            "grid_gain_words_top1": {"min": min(gains), "max": max(gains)}}


def report(r: dict) -> str:
    z, t, n = r["zero_shot"], r["transductive"], r["new_photos"]
    line = "{:<42}| {:>11.1%} | {:>6.1%} | {:>11.1%} | {:>6.1%}"

    def pts(x: float) -> str:
        return f"{100 * x:+.1f} points"
    return "\n".join([
        f"seed: model {r['seed']['model_id']} {r['seed']['name']}; {r['photos']} photos, labels hidden; "
        f"{r['words']} words with photos, {r['vocabulary']} in the vocabulary",
        f"{'':<42}| {'words top-1':>11} | {'top-5':>6} | {'vocab top-1':>11} | {'top-5':>6}",
        line.format("zero-shot alone", z["words_top1"], z["words_top5"], z["vocab_top1"], z["vocab_top5"]),
        line.format(f"+ {r['photos']} unlabelled photos (transductive)", t["words_top1"], t["words_top5"],
                    t["vocab_top1"], t["vocab_top5"]),
        line.format("+ unlabelled photos, new photos (5-fold)", n["words_top1"], n["words_top5"], n["vocab_top1"],
                    n["vocab_top5"]),
        f"gain, words top-1: {pts(t['words_top1'] - z['words_top1'])} (new photos "
        f"{pts(n['words_top1'] - z['words_top1'])}); over the {len(r['grid'])}-setting grid "
        f"{pts(r['grid_gain_words_top1']['min'])} to {pts(r['grid_gain_words_top1']['max'])}; "
        f"self-training took {r['self_train_seconds']:.2f} s"])


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
