"""A small warehouse with every pipeline step run for real, shared by the dashboard tests.

The demo fixture's 32 photos (8 x bird, fruit, flowers, music), then whatever pipeline
jobs this build has (features, outliers, train, evaluate), run through the real CLI.
Built once per test session under pytest's base temp dir; tests copy it before writing.
"""
from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

# Small but real: every model kind the Predict and Evaluation pages show, with a short fine-tune
# (2 epochs, so learning curves exist) and plain ConSE only.
PIPELINE = (["features"], ["outliers"], ["map"],
            ["train", "--models", "probe,conse,finetune", "--epochs", "2", "--plain-conse-only"],
            ["evaluate"])


def _commands() -> set[str]:
    from hashtag_workbench.jobs.cli import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return set(sub.choices)


def build_seeded(template: Path, base: Path) -> Path:
    """Copy `template` (the demo warehouse) to base/seeded and run the pipeline jobs on it (once)."""
    home = base / "seeded"
    done = base / "seeded.done"
    if done.exists():
        return home
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(template, home)
    from hashtag_workbench.jobs.cli import main
    have = _commands()
    log = io.StringIO()
    for args in PIPELINE:
        if args[0] not in have:
            continue
        with contextlib.redirect_stdout(log):
            rc = main(["--home", str(home), *args])
        if rc:
            raise RuntimeError(f"`hashtags {' '.join(args)}` failed with {rc}:\n{log.getvalue()[-3000:]}")
    done.write_text(log.getvalue())
    return home


def copy_home(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("thumbs"))
    return dest
