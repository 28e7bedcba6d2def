"""Outlier detectors against known outliers in the bundled photos.

Two modes:
- injected (default): for each seed, copy the demo photos into a temp folder tree, move 10 % of each
  word's photos into other words' folders (mislabelled photos) and add a few non-photos (noise, flat
  colour, gradient, stripes). The photos the demo set already plants under a wrong word count as
  outliers too (MANIFEST.csv's true_word), unless a move happens to bring one home.
- planted (`--planted`): the demo set exactly as shipped; the truth is MANIFEST.csv's true_word
  (about 5 % of the photos are real photos of another word, filed under a wrong one on purpose).
Both import, run the real `features` and `outliers` jobs, and compare the stored flags with the truth.
cleanlab's `find_label_issues` on the same out-of-sample probabilities is the external reference when
cleanlab is installed.

    python -m benchmarks.outliers [--seeds 3] [--fraction 0.1] [--non-photos 5]
    python -m benchmarks.outliers --planted [--seeds 3]
"""
from __future__ import annotations

import argparse
import csv
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from hashtag_workbench.core.linalg import l2_rows
from hashtag_workbench.core.outliers import DETECTORS, out_of_sample_probs, precision_recall_f1
from hashtag_workbench.jobs.features import compute_features
from hashtag_workbench.jobs.import_folder import import_folder
from hashtag_workbench.jobs.outliers import find_outliers
from hashtag_workbench.warehouse import features as wh
from hashtag_workbench.warehouse import outliers as wh_outliers
from hashtag_workbench.warehouse.db import connect

ROOT = Path(__file__).resolve().parent.parent

DEMO = ROOT / "datasets" / "demo" / "photos"
MANIFEST = ROOT / "datasets" / "demo" / "MANIFEST.csv"


def true_words(manifest: Path = MANIFEST) -> dict[str, str]:
    """'word/name' -> the word the photo really shows (differs from its folder where noise was planted)."""
    with open(manifest, newline="") as fh:
        return {r["file"]: r["true_word"] for r in csv.DictReader(fh)}


def non_photo(kind: int, rng: np.random.Generator) -> Image.Image:
    """Pictures that are not photos of anything: noise, flat colour, gradient, stripes."""
    if kind % 4 == 0:
        return Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8))
    if kind % 4 == 1:
        return Image.new("RGB", (256, 256), tuple(int(v) for v in rng.integers(0, 256, 3)))
    if kind % 4 == 2:
        ramp = np.linspace(0, 255, 256, dtype=np.uint8)
        return Image.fromarray(np.dstack([np.tile(ramp, (256, 1))] * 3))
    stripes = ((np.arange(256) // 16) % 2 * 255).astype(np.uint8)
    return Image.fromarray(np.dstack([np.tile(stripes, (256, 1)), np.zeros((256, 256), np.uint8),
                                      np.tile(stripes[:, None], (1, 256))]))


def build_tree(dest: Path, *, seed: int, fraction: float, non_photos: int) -> set[str]:
    """The demo tree with injected outliers; returns the 'word/name' keys of every mislabelled file
    (injected here or planted in the demo set) and of the non-photos."""
    rng = np.random.default_rng(seed)
    words = sorted(p.name for p in DEMO.iterdir() if p.is_dir())
    files = {w: sorted((DEMO / w).glob("*.jpg")) for w in words}
    truth = true_words()
    injected: set[str] = set()
    for w in words:
        (dest / w).mkdir(parents=True)
    for w in words:
        n = max(1, round(fraction * len(files[w])))
        moved = set(rng.choice(len(files[w]), n, replace=False).tolist())
        for i, f in enumerate(files[w]):
            target = w if i not in moved else rng.choice([v for v in words if v != w])
            shutil.copy(f, dest / target / f.name)
            if truth.get(f"{w}/{f.name}", w) != target:
                injected.add(f"{target}/{f.name}")
    for j in range(non_photos):
        w = rng.choice(words)
        name = f"nonphoto-{j}.png"
        non_photo(j, rng).save(dest / w / name)
        injected.add(f"{w}/{name}")
    return injected


def truth_by_image(home: Path, injected: set[str]) -> dict[int, bool]:
    with connect(home, read_only=True) as con:
        rows = con.execute("SELECT image_id, word, source_path FROM images WHERE status = 'ok'").fetchall()
    return {i: f"{w}/{Path(p).name}" in injected for i, w, p in rows}


def cleanlab_reference(home: Path, image_ids: np.ndarray, seed: int) -> np.ndarray | None:
    try:
        from cleanlab.filter import find_label_issues
    except ImportError:
        return None
    fids, X = wh.feature_matrix(home, "efficientnet_lite0")
    with connect(home, read_only=True) as con:
        words = dict(con.execute("SELECT image_id, word FROM image_labels").fetchall())
    X = l2_rows(X[np.searchsorted(fids, image_ids)])
    labels = np.array([words[i] for i in image_ids])
    probs, classes = out_of_sample_probs(X, labels, seed=seed)
    y = np.searchsorted(np.asarray(classes), labels)
    return find_label_issues(y, probs)


def score_seed(home: Path, truth: dict[int, bool], *, seed: int, k: int, sigma: float,
               scores: dict[str, list]) -> None:
    """Run the real outliers job once and add each detector's (precision, recall, F1) to `scores`."""
    out = find_outliers(home, k=k, sigma=sigma, seed=seed)
    for det in DETECTORS:
        rows = wh_outliers.outlier_scores(home, out["run_id"], detector=det)
        flags = np.array([r["flagged"] for r in rows])
        scores.setdefault(det, []).append(precision_recall_f1(flags, [truth[r["image_id"]] for r in rows]))
    ids = np.array(sorted(truth))
    ref = cleanlab_reference(home, ids, seed)
    if ref is not None:
        scores.setdefault("cleanlab find_label_issues", []).append(precision_recall_f1(ref, [truth[i] for i in ids]))


def run_injected(args, scores: dict[str, list]) -> tuple[int, int]:
    n_images = n_out = 0
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            injected = build_tree(tmp / "tree", seed=seed, fraction=args.fraction, non_photos=args.non_photos)
            home = tmp / "home"
            import_folder(home, tmp / "tree")
            compute_features(home, threads=2)
            truth = truth_by_image(home, injected)
            score_seed(home, truth, seed=seed, k=args.k, sigma=args.sigma, scores=scores)
            n_images, n_out = len(truth), sum(truth.values())
    return n_images, n_out


def run_planted(args, scores: dict[str, list]) -> tuple[int, int]:
    """The shipped demo set, imported once; K-means seeds vary."""
    planted = {f for f, true in true_words().items() if true != f.split("/", 1)[0]}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        import_folder(home, DEMO)
        compute_features(home, threads=2)
        truth = truth_by_image(home, planted)
        for seed in range(args.seeds):
            score_seed(home, truth, seed=seed, k=args.k, sigma=args.sigma, scores=scores)
    return len(truth), sum(truth.values())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--fraction", type=float, default=0.1, help="share of each word replaced (default 0.1)")
    ap.add_argument("--non-photos", type=int, default=5)
    ap.add_argument("--sigma", type=float, default=2.0)
    ap.add_argument("--k", type=int, default=1)
    ap.add_argument("--planted", action="store_true",
                    help="score on the demo set's own planted noise (MANIFEST.csv true_word), nothing injected")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(2)
    scores: dict[str, list] = {}
    t0 = time.monotonic()
    n_images, n_out = (run_planted if args.planted else run_injected)(args, scores)
    what = ("photos planted under a wrong word in the shipped set (MANIFEST.csv true_word)" if args.planted else
            f"outliers: {args.fraction:.0%} of each word moved to other words + {args.non_photos} non-photos "
            "+ the set's planted photos")
    print(f"\nOutlier detection on the bundled photos: {n_images} images, {n_out} {what}, "
          f"mean over {args.seeds} seeds; K-means k={args.k}, sigma={args.sigma}; {time.monotonic() - t0:.0f} s\n")
    width = max(len(k) for k in scores)
    print(f"| {'detector':<{width}} | precision | recall |   F1  |")
    print(f"|{'-' * (width + 2)}|-----------|--------|-------|")
    for name, vals in scores.items():
        p, r, f = np.mean(vals, axis=0)
        print(f"| {name:<{width}} |   {p:.3f}   | {r:.3f}  | {f:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
