"""`split`: a stratified, seeded 80:20 train/val split of the curated images, recorded with its run."""
from __future__ import annotations

from pathlib import Path

from hashtag_workbench.core.split import VAL, stratified_split
from hashtag_workbench.jobs.common import ensure_ready
from hashtag_workbench.jobs.runner import job_run
from hashtag_workbench.warehouse import models as wh
from hashtag_workbench.warehouse import runs


def make_split(home: Path, *, val_fraction: float = 0.2, seed: int = 0, exclude_flagged: bool = False) -> int:
    """Split the usable images (rejected out, relabelled under their new word); returns the split's run id."""
    ensure_ready(home)
    config = {"val_fraction": val_fraction, "seed": seed, "exclude_flagged": exclude_flagged}
    with job_run(home, "split", config) as run:
        rows = wh.training_images(home, exclude_flagged=False)
        flagged = [r for r in rows if r["flagged"]]
        if exclude_flagged:
            rows = [r for r in rows if not r["flagged"]]
            run.count("excluded_flagged", len(flagged))
        if not rows:
            raise ValueError("no labelled images to split: run `hashtags demo` or "
                             "`hashtags import-folder PATH` first")
        parts = stratified_split([r["image_id"] for r in rows], [r["word"] for r in rows],
                                 val_fraction=val_fraction, seed=seed)
        wh.save_split(home, run.run_id, [(r["image_id"], r["word"], parts[r["image_id"]]) for r in rows])
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


def current_split(home: Path, *, val_fraction: float = 0.2, seed: int = 0, exclude_flagged: bool = False,
                  new: bool = False, log=print) -> int:
    """The latest split if it still matches the curated labels and settings, else a new one."""
    latest = wh.latest_split_run(home)
    if latest is not None and not new:
        cfg = (runs.get_run(home, latest) or {}).get("config", {})
        same_cfg = (cfg.get("val_fraction") == val_fraction and cfg.get("seed") == seed
                    and bool(cfg.get("exclude_flagged")) == exclude_flagged)
        stored = {(r["image_id"], r["word"]) for r in wh.split_rows(home, latest)}
        now = {(r["image_id"], r["word"]) for r in wh.training_images(home, exclude_flagged=exclude_flagged)}
        if same_cfg and stored == now:
            return latest
        log(f"[split] making a new split: {'settings changed' if not same_cfg else 'images or labels changed'} "
            f"since split run {latest}")
    return make_split(home, val_fraction=val_fraction, seed=seed, exclude_flagged=exclude_flagged)


def _cmd(args) -> int:
    make_split(args.home, val_fraction=args.val_fraction, seed=args.seed, exclude_flagged=args.exclude_flagged)
    return 0


def add_split_args(p) -> None:
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of each word's images for val (0.2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--exclude-flagged", action="store_true",
                   help="leave out images flagged as outliers and not yet reviewed")


def register(sub) -> None:
    p = sub.add_parser("split", help="stratified 80:20 train/val split of the curated images",
                       description="Split every usable image (rejected ones left out, relabelled ones under "
                                   "their new word) into train and val per word, seeded, and record it.")
    add_split_args(p)
    p.set_defaults(func=_cmd)
