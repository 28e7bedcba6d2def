"""`demo`: the whole pipeline on the bundled photos, end to end."""
from __future__ import annotations

import time
from pathlib import Path

from jobs.curve import print_curve
from jobs.evaluate import evaluate
from jobs.features import compute_features
from jobs.import_folder import import_folder
from jobs.outliers import find_outliers
from jobs.stats import format_counts
from jobs.train import train
from warehouse.images import word_counts

DEMO_DIR = Path(__file__).resolve().parent.parent / "datasets" / "demo" / "photos"


def run_demo(home: Path, *, fast: bool = False) -> int:
    """Import the bundled photos, then run every later pipeline step on them."""
    t0 = time.monotonic()
    print(f"[demo] data directory: {home}")
    print(f"[demo] 1. import bundled photos from {DEMO_DIR}")
    import_folder(home, DEMO_DIR)
    print(format_counts(word_counts(home)))
    print("[demo] 2. features (EfficientNet-Lite0) and PCA-128")
    compute_features(home)
    print("[demo] 3. outlier flags and duplicate groups")
    find_outliers(home)
    print(f"[demo] 4. train BoVW SVM, fine-tuned CNN ({2 if fast else 13} epochs), linear probe, ConSE variants")
    trained = train(home, epochs=2 if fast else 13, skip_existing=True)
    print("[demo] 5. evaluate and compare with the original study")
    evaluate(home)
    print_curve(home, title="[demo] 6. data-efficiency curve: photos per word needed to beat zero-shot")
    print(f"[demo] done. Open the dashboard: `make dashboard` (or HASHTAG_HOME={home} "
          "streamlit run dashboard/app.py), then http://127.0.0.1:8501")
    print(f"[demo] wall time of the whole demo: {time.monotonic() - t0:.0f} s")
    return 1 if trained["failed"] else 0


def _cmd(args) -> int:
    return run_demo(args.home, fast=args.fast)


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on the bundled demo photos",
                       description="Import the bundled demo photos and run every pipeline step on them "
                                   "(features, outlier flags, models, evaluation). Safe to re-run: finished "
                                   "work is skipped.")
    p.add_argument("--fast", action="store_true", help="fewer training epochs (for smoke tests)")
    p.set_defaults(func=_cmd)
