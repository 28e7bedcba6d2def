"""Cached fine-tuning vs naive full fine-tuning, side by side on the same split, same epochs.

    .venv/bin/python benchmarks/finetune.py [--epochs 13] [--threads 2] [--per-word N]

Naive: every layer trained, the whole network run forward and backward from the raw
(preprocessed) image every epoch. Cached: the frozen front runs once per image (its
mirror images are the cached maps flipped); each epoch trains only the last blocks and the head. Both use the same
optimiser, schedule, augmentation and seed. Reports wall time and final val accuracy
for each, and the speed-up; both measured here, now.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from PIL import Image

from hashtag_workbench.core.backbones import load_backbone
from hashtag_workbench.core.finetune import FinetuneConfig, finetune
from hashtag_workbench.core.split import TRAIN, stratified_split

ROOT = Path(__file__).resolve().parent.parent

DEMO = ROOT / "datasets" / "demo" / "photos"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=13)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--per-word", type=int, default=0, help="cap photos per word (0: all demo photos)")
    ap.add_argument("--train-blocks", type=int, default=3)
    ap.add_argument("--modes", default="cached,full", help="which modes to run (default cached,full)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    items = []
    for folder in sorted(p for p in DEMO.iterdir() if p.is_dir()):
        files = sorted(folder.glob("*.jpg"))
        items += [(f, folder.name) for f in (files[:args.per_word] if args.per_word else files)]
    parts = stratified_split(list(range(len(items))), [w for _, w in items], seed=0)
    images = [Image.open(f).convert("RGB") for f, _ in items]
    tr = [i for i in range(len(items)) if parts[i] == TRAIN]
    va = [i for i in range(len(items)) if parts[i] != TRAIN]
    classes = sorted({w for _, w in items})
    print(f"{len(tr)} train / {len(va)} val photos, {len(classes)} words, {args.epochs} epochs, "
          f"{args.threads} threads")
    bb = load_backbone("efficientnet_lite0")
    results = {}
    modes = args.modes.split(",")
    for mode in modes:
        cfg = FinetuneConfig(epochs=args.epochs, mode=mode, train_blocks=args.train_blocks)
        t0 = time.perf_counter()
        _, curve = finetune(bb, cfg, classes, [images[i] for i in tr], [items[i][1] for i in tr],
                            [images[i] for i in va], [items[i][1] for i in va], progress=print,
                            on_epoch=lambda s, m=mode: print(f"  {m} epoch {s.epoch}: val acc {s.val_acc:.1%} "
                                                              f"({s.seconds:.1f} s)", flush=True))
        secs = time.perf_counter() - t0
        results[mode] = {"seconds": round(secs, 1), "val_acc": round(curve[-1].val_acc, 4),
                         "best_val_acc": round(max(c.val_acc for c in curve), 4)}
        print(f"{mode}: {secs:.1f} s, final val acc {curve[-1].val_acc:.1%}", flush=True)
    if len(modes) < 2:
        return 0
    ratio = results["full"]["seconds"] / results["cached"]["seconds"]
    results["speedup"] = round(ratio, 2)
    results["cached_at_least_as_accurate"] = results["cached"]["val_acc"] >= results["full"]["val_acc"]
    print("\nmode    | seconds | final val acc\n--------+---------+--------------")
    for mode in ("full", "cached"):
        print(f"{mode:<8}| {results[mode]['seconds']:7.1f} | {results[mode]['val_acc']:.1%}")
    print(f"speed-up (full / cached): {ratio:.1f}x; cached val acc >= full: {results['cached_at_least_as_accurate']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
