"""Feature extraction speed: end to end (read, decode, resize, forward, write) against the bare
forward pass on preloaded tensors, at the same batch size, in one process.

    python -m benchmarks.features [--backbone efficientnet_lite0] [--batch-size 16] [--limit 96] [--compile]
"""
from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from core.backbones import DEFAULT_BACKBONE, load_backbone
from core.features import extract, load_photo
from warehouse import features as wh
from warehouse.db import connect

ROOT = Path(__file__).resolve().parent.parent

DEMO = ROOT / "datasets" / "demo" / "photos"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bare_forward(bb, tensors: list[torch.Tensor], batch_size: int) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(tensors), batch_size):
        bb.features_and_logits(torch.stack(tensors[i:i + batch_size]))
    return time.perf_counter() - t0


def end_to_end(bb, paths: list[Path], home: Path, batch_size: int, workers: int) -> float:
    """The features job's own path: threaded decode + forward + batched warehouse writes."""
    t0 = time.perf_counter()
    ids, vecs, logits = [], [], []
    for positions, f, lg, _ in extract(paths, bb, batch_size=batch_size, workers=workers):
        ids.extend(positions)
        vecs.append(f)
        logits.append(lg)
        if len(ids) >= 64:
            wh.write_features(home, 1, bb.name, ids, np.concatenate(vecs), np.concatenate(logits))
            ids, vecs, logits = [], [], []
    if ids:
        wh.write_features(home, 1, bb.name, ids, np.concatenate(vecs), np.concatenate(logits))
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default=DEFAULT_BACKBONE)
    ap.add_argument("--weights")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--limit", type=int, default=96, help="photos to use (default 96)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3,
                    help="alternating rounds of both paths; medians are reported (default 3)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile on the bare forward pass")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    paths = sorted(DEMO.rglob("*.jpg"))[:args.limit]
    bb = load_backbone(args.backbone, args.weights)
    rss0 = peak_rss_mb()
    tensors = [bb.preprocess(load_photo(p)) for p in paths]
    bare_forward(bb, tensors[:args.batch_size], args.batch_size)            # warm-up
    # Rounds alternate the two paths so drift in machine load hits both alike.
    bare_times, e2e_times = [], []
    for _ in range(args.repeats):
        bare_times.append(bare_forward(bb, tensors, args.batch_size))
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            with connect(home):
                pass                                                       # migrate outside the timing
            e2e_times.append(end_to_end(bb, paths, home, args.batch_size, args.workers))
    t_bare, t_e2e = statistics.median(bare_times), statistics.median(e2e_times)
    n = len(paths)
    rows = [("bare forward (preloaded tensors)", n / t_bare), ("end to end (read, decode, resize, forward, write)",
                                                              n / t_e2e)]
    if args.compile:
        try:
            # Compile the feature/logit split itself: compiling the module would only wrap its
            # forward(), which the split never calls.
            compiled_split = torch.compile(bb.split)
            cbb = type(bb)(bb.name, bb.feature_dim, bb.model, bb.preprocess, compiled_split)
            t0 = time.perf_counter()
            bare_forward(cbb, tensors[:args.batch_size], args.batch_size)
            warm = time.perf_counter() - t0
            rows.append((f"bare forward, torch.compile (compile {warm:.0f} s)",
                         n / bare_forward(cbb, tensors, args.batch_size)))
        except Exception as exc:
            rows.append((f"torch.compile failed: {type(exc).__name__}: {str(exc)[:60]}", float("nan")))
    print(f"\n{args.backbone}, {n} photos, batch {args.batch_size}, {args.threads} torch threads, "
          f"{args.workers} decode threads, median of {args.repeats} alternating rounds\n")
    print(f"| {'path':<52} | images/s |")
    print(f"|{'-' * 54}|----------|")
    for name, rate in rows:
        print(f"| {name:<52} | {rate:8.1f} |")
    print(f"\nratio end-to-end / bare forward: {t_bare / t_e2e:.2f} (goal >= 0.85)")
    print(f"peak RSS: {peak_rss_mb():.0f} MB (model loaded: {rss0:.0f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
