"""The fine-tune's own CPU cost on a kept data directory, split into caching and epochs.

    PYTHONPATH=TREE python benchmarks/finetune_cost.py --home DIR --cache NEWDIR [--set field=value ...]

Runs the fine-tune as `train` does (the split's photos, the frozen front in ONNX Runtime, the
activation cache on disk under --cache, which it keeps) and prints one JSON object: CPU seconds
(user + system, this process) of the caching and of the epochs, epochs run and kept, the kept
epoch's val top-1, resident memory at the first epoch and the peak, and per epoch (val top-1,
stop-set loss, CPU seconds since caching ended). `--set` overrides FinetuneConfig fields (e.g.
train_blocks=2). Run it for two code trees side by side (PYTHONPATH picks the tree; a data
directory from `benchmarks/pipeline.py --keep DIR`), each with its own new --cache folder.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

from hashtag_workbench.core import finetune as ft
from hashtag_workbench.infra.arrays import NpyStore
from hashtag_workbench.infra.onnxrt import use_runtime
from hashtag_workbench.jobs.train import _Data
from hashtag_workbench.warehouse import splits as wh_splits


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _rss_mb() -> int:
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() >> 20


def _overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, value = pair.split("=", 1)
        kind = type(getattr(ft.FinetuneConfig(), key))
        out[key] = value == "True" if kind is bool else kind(value)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True, help="a data directory with a split (pipeline.py --keep)")
    ap.add_argument("--cache", type=Path, required=True, help="a new folder for the activation cache")
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="FinetuneConfig overrides")
    args = ap.parse_args(argv)
    use_runtime(args.home, "onnx", None)
    data = _Data(args.home, wh_splits.latest_split_run(args.home), "onnx")
    cfg = ft.FinetuneConfig(**_overrides(args.set))
    marks, epochs = {"start": _cpu()}, []

    def say(msg):
        if msg.startswith("cached frozen"):
            marks["cached"] = _cpu()
        print(msg, file=sys.stderr, flush=True)

    def on_epoch(s):
        marks.setdefault("rss_epoch1", _rss_mb())
        epochs.append([s.epoch, round(s.val_acc, 4), round(s.stop_loss or 0, 4), round(_cpu() - marks["cached"], 1)])
        print("epoch", epochs[-1], file=sys.stderr, flush=True)

    model, curve = ft.finetune(data.backbone(cfg.backbone, cfg.weights), cfg, data.classes, data.train_images(),
                               data.train_words, data.val_images(), data.val_words, on_epoch=on_epoch, progress=say,
                               front=data.frozen_front(cfg), store=NpyStore(args.cache))
    end = _cpu()
    print(json.dumps({"config": _overrides(args.set), "n_train": len(data.train), "n_val": len(data.val),
                      "caching_cpu_s": round(marks["cached"] - marks["start"], 1),
                      "epochs_cpu_s": round(end - marks["cached"], 1), "epochs_run": len(curve),
                      "epoch_kept": model.epoch_kept, "val_top1_kept": round(curve[model.epoch_kept - 1].val_acc, 4),
                      "rss_mb_at_epoch1": marks["rss_epoch1"],
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10, "epochs": epochs}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
