"""`split`: a stratified, seeded 80:20 train/val split of the curated images, recorded with its run."""
from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.split import VAL, SplitConfig, stratified_split
from hashtag_workbench.jobs.common import ensure_ready
from hashtag_workbench.jobs.options import config_from
from hashtag_workbench.jobs.runner import JobResult, job_run
from hashtag_workbench.warehouse import runs
from hashtag_workbench.warehouse import splits as wh_splits

HELP = "stratified 80:20 train/val split of the curated images"
DESCRIPTION = (
    "Split every usable image (rejected ones left out, relabelled ones under "
    "their new word) into train and val per word, seeded, and record it."
)
CONFIGS = (SplitConfig,)


def make_split(home: Path, config: SplitConfig | None = None, **settings) -> int:
    """Split the usable images (rejected out, relabelled under their new word); returns the split's run id."""
    cfg = config or SplitConfig(**settings)
    ensure_ready(home)
    with job_run(home, "split", asdict(cfg)) as run:
        rows = wh_splits.training_images(home, exclude_flagged=False)
        flagged = [r for r in rows if r["flagged"]]
        if cfg.exclude_flagged:
            rows = [r for r in rows if not r["flagged"]]
            run.count("excluded_flagged", len(flagged))
        if not rows:
            raise InputError("no labelled images to split: run `hashtags demo` or "
                             "`hashtags import-folder PATH` first")
        parts = stratified_split([r["image_id"] for r in rows], [r["word"] for r in rows],
                                 val_fraction=cfg.val_fraction, seed=cfg.seed)
        wh_splits.save_split(home, run.run_id, [(r["image_id"], r["word"], parts[r["image_id"]]) for r in rows])
        n_val = sum(p == VAL for p in parts.values())
        run.count("train", len(parts) - n_val)
        run.count("val", n_val)
        words = {r["word"] for r in rows}
        run.extra["words"] = len(words)
        single = sorted(w for w in words if sum(r["word"] == w for r in rows) < 2)
        if single:
            run.log(f"words with a single image (train only, not validated): {', '.join(single)}")
        run.count("done", len(parts))
        return run.run_id


def current_split(home: Path, config: SplitConfig | None = None, *, new: bool = False, log=None,
                  **settings) -> int:
    """The latest split if it still matches the curated labels and settings, else a new one."""
    cfg = config or SplitConfig(**settings)
    log = log or (lambda message: print(message, file=sys.stderr))  # a note, like every job's log: never stdout
    latest = wh_splits.latest_split_run(home)
    if latest is not None and not new:
        stored_cfg = (runs.get_run(home, latest) or {}).get("config", {})
        same_cfg = all(stored_cfg.get(k) == v for k, v in asdict(cfg).items())
        stored = {(r["image_id"], r["word"]) for r in wh_splits.split_rows(home, latest)}
        now = {(r["image_id"], r["word"]) for r in wh_splits.training_images(home, exclude_flagged=cfg.exclude_flagged)}
        if same_cfg and stored == now:
            return latest
        log(f"[split] making a new split: {'settings changed' if not same_cfg else 'images or labels changed'} "
            f"since split run {latest}")
    return make_split(home, cfg)


def run_command(args) -> JobResult:
    return JobResult(data={"run_id": make_split(args.home, config_from(args, SplitConfig))})
