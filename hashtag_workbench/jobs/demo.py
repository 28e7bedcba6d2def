"""`demo`: the whole pipeline on the bundled photos, end to end."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from hashtag_workbench.core.config import option
from hashtag_workbench.jobs.curve import format_curve, run_curve
from hashtag_workbench.jobs.evaluate import comparison_table, evaluate
from hashtag_workbench.jobs.features import compute_features
from hashtag_workbench.jobs.import_folder import import_folder
from hashtag_workbench.jobs.outliers import find_outliers
from hashtag_workbench.jobs.runner import JobError, JobResult
from hashtag_workbench.jobs.stats import format_counts
from hashtag_workbench.jobs.train import TrainConfig, train
from hashtag_workbench.warehouse.evaluations import evaluations
from hashtag_workbench.warehouse.images import word_counts

HELP = "run the whole pipeline on the bundled demo photos"
DESCRIPTION = (
    "Import the bundled demo photos and run every pipeline step on them "
    "(features, outlier flags, models, evaluation). Safe to re-run: finished "
    "work is skipped."
)

DEMO_ENV = "HASHTAG_DEMO_PHOTOS"
# The demo photos (25 MB) live in the source tree, not in the wheel: a source checkout finds them beside
# the package, an installed copy in ./datasets/demo/photos or wherever $HASHTAG_DEMO_PHOTOS points.
_CANDIDATES = (Path(__file__).resolve().parents[2] / "datasets" / "demo" / "photos",
               Path("datasets") / "demo" / "photos")


@dataclass(frozen=True)
class DemoConfig:
    fast: bool = option(False, "fewer training epochs (for smoke tests)")
    photos: str | None = option(None, f"the demo photos folder (default: ${DEMO_ENV}, else datasets/demo/photos of "
                                      "the source checkout)", metavar="DIR")


CONFIGS = (DemoConfig,)


def demo_dir(photos: str | Path | None = None) -> Path:
    """The folder of demo photos: `photos` if given, else $HASHTAG_DEMO_PHOTOS, else the source tree's."""
    chosen = photos or os.environ.get(DEMO_ENV)
    if chosen:
        folder = Path(chosen)
        if not folder.is_dir():
            raise JobError(f"demo photos folder not found: {folder}")
        return folder
    for folder in _CANDIDATES:
        if folder.is_dir():
            return folder
    raise JobError("the demo photos are not here: run `hashtags demo` from a source checkout (they are in "
                   f"datasets/demo/photos), pass --photos DIR or set ${DEMO_ENV}")


FAST_EPOCHS = 2  # --fast: enough to show the curve of a fine-tune, for smoke tests


def run_demo(home: Path, *, fast: bool = False, photos: str | Path | None = None) -> JobResult:
    """Import the bundled photos, then run every later pipeline step on them, telling each step as it goes
    (stdout: the demo is a walk through the pipeline); the result is its closing lines."""
    t0 = time.monotonic()
    folder = demo_dir(photos)
    print(f"[demo] data directory: {home}")
    print(f"[demo] 1. import bundled photos from {folder}")
    import_folder(home, folder)
    print(format_counts(word_counts(home)))
    print("[demo] 2. features (EfficientNet-Lite0) and PCA-128")
    compute_features(home)
    print("[demo] 3. outlier flags and duplicate groups")
    find_outliers(home)
    epochs = FAST_EPOCHS if fast else TrainConfig().epochs
    print(f"[demo] 4. train BoVW SVM, fine-tuned CNN ({epochs} epochs), linear probe, ConSE variants")
    trained = train(home, epochs=epochs, skip_existing=True)
    print("[demo] 5. evaluate and compare with the original study")
    print(comparison_table(evaluations(home, evaluate(home))))
    print("[demo] 6. data-efficiency curve: photos per word needed to beat zero-shot")
    print(format_curve(run_curve(home)))
    done = (f"[demo] done. Open the dashboard: `make dashboard` (or `hashtags --home {home} dashboard`), "
            f"then http://127.0.0.1:8501\n[demo] wall time of the whole demo: {time.monotonic() - t0:.0f} s")
    return JobResult(text=done, exit_code=1 if trained["failed"] else 0)


def run_command(args) -> JobResult:
    return run_demo(args.home, fast=args.fast, photos=args.photos)
