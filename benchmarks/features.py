"""Feature extraction speed, in one process on the same photos and batch size: the bare torch forward
pass, the bare ONNX Runtime forward pass (both on preloaded arrays), and the project's own features job
end to end (read, decode, resize, forward, write: jobs.features.extract_and_store). Also the time per
image of each stage run alone, an ONNX batch-size sweep, and peak RSS.

    python benchmarks/features.py [--batch-size 16] [--limit 0] [--repeats 3] [--sweep 1,8,16,32] [--json]
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from hashtag_workbench.core.backbones import DEFAULT_BACKBONE
from hashtag_workbench.core.features import load_photo
from hashtag_workbench.core.images import decode_rgb
from hashtag_workbench.infra.onnxrt import load_for_runtime
from hashtag_workbench.infra.runtime import available_cores
from hashtag_workbench.jobs import features as job
from hashtag_workbench.jobs.import_folder import import_folder
from hashtag_workbench.jobs.runner import job_run
from hashtag_workbench.warehouse import features as wh
from hashtag_workbench.warehouse.images import labelled_images
from hashtag_workbench.warehouse.store import image_file

ROOT = Path(__file__).resolve().parent.parent

DEMO = ROOT / "datasets" / "demo" / "photos"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bare_forward(bb, arrays: list[np.ndarray], batch_size: int) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(arrays), batch_size):
        bb.features_and_logits(np.stack(arrays[i:i + batch_size]))
    return time.perf_counter() - t0


def make_home(base: Path, limit: int) -> Path:
    """A warehouse holding the demo photos (or the first `limit` per word), imported outside any timing."""
    tree = base / "tree"
    for word in sorted(p for p in DEMO.iterdir() if p.is_dir()):
        files = sorted(word.glob("*.jpg"))
        (tree / word.name).mkdir(parents=True)
        for f in files[:limit] if limit else files:
            shutil.copy(f, tree / word.name / f.name)
    home = base / "home"
    import_folder(home, tree)
    return home


def end_to_end(template: Path, work: Path, bb, batch_size: int, workers: int) -> tuple[float, int]:
    """The features job's own loop on a fresh copy of the warehouse: (seconds, images)."""
    home = work / f"e2e-{time.perf_counter_ns()}"
    shutil.copytree(template, home, ignore=shutil.ignore_patterns("onnx"))
    todo = labelled_images(home, include_rejected=True)
    with job_run(home, "features", {"benchmark": True}) as run:
        t0 = time.perf_counter()
        job.extract_and_store(home, run, bb, todo, batch_size=batch_size, workers=workers)
        seconds = time.perf_counter() - t0
    shutil.rmtree(home)
    return seconds, len(todo)


def stage_times(home: Path, bb, batch_size: int) -> dict:
    """Milliseconds per image of each stage run alone, one thread (the forward pass, which normalises the
    pixels inside the network, at its own threads)."""
    paths = [image_file(home, im["path"]) for im in labelled_images(home)]
    prep = bb.preprocess
    t = {}
    t0 = time.perf_counter()
    blobs = [p.read_bytes() for p in paths]
    t["read"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    imgs = [decode_rgb(b, min_side=1, reduce_to=prep.resize) for b in blobs]
    t["decode"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    crops = [prep.crop_image(im) for im in imgs]
    t["resize+crop"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    arrays = [np.array(c) for c in crops]
    t["to pixels"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    outs = [bb.features_and_logits(np.stack(arrays[i:i + batch_size])) for i in range(0, len(arrays), batch_size)]
    t["forward"] = time.perf_counter() - t0
    feats, logits = np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs])
    ids = [im["image_id"] for im in labelled_images(home)]
    t0 = time.perf_counter()
    for i in range(0, len(ids), job.WRITE_EVERY):
        sl = slice(i, i + job.WRITE_EVERY)
        wh.write_features(home, 1, bb.name, ids[sl], feats[sl], logits[sl])
    t["write"] = time.perf_counter() - t0
    return {k: round(1000 * v / len(paths), 2) for k, v in t.items()}


def sweep(bb, arrays: list[np.ndarray], sizes: list[int]) -> dict:
    out = {}
    for b in sizes:
        bare_forward(bb, arrays[:b], b)                                    # warm-up at this shape
        out[b] = round(len(arrays) / bare_forward(bb, arrays, b), 1)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default=DEFAULT_BACKBONE)
    ap.add_argument("--batch-size", type=int, default=job.DEFAULT_BATCH)
    ap.add_argument("--limit", type=int, default=0, help="photos per demo word (default 0: all of them)")
    ap.add_argument("--threads", type=int, default=available_cores(), help="forward-pass threads (default: all cores)")
    ap.add_argument("--workers", type=int, default=job.DECODE_THREADS,
                    help=f"decode threads of the features job (default {job.DECODE_THREADS})")
    ap.add_argument("--repeats", type=int, default=3, help="alternating rounds; medians reported (default 3)")
    ap.add_argument("--sweep", default="", help="ONNX batch sizes to time as well, e.g. 1,8,16,32")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        res = run(Path(tmp), args)
    if args.json:
        print(json.dumps(res))
    else:
        print_table(res)
    return 0


def run(tmp: Path, args) -> dict:
    template = make_home(tmp, args.limit)
    bb_torch = load_for_runtime(template, args.backbone, runtime="torch", threads=args.threads)
    bb_onnx = load_for_runtime(template, args.backbone, runtime="onnx", threads=args.threads)
    if bb_onnx.runtime != "onnx":
        raise SystemExit("ONNX export failed here (see the note above); nothing to compare")
    rss_models = peak_rss_mb()
    paths = [image_file(template, im["path"]) for im in labelled_images(template)]
    arrays = [bb_onnx.preprocess(load_photo(p, reduce_to=bb_onnx.preprocess.resize)) for p in paths]
    for bb in (bb_torch, bb_onnx):
        bare_forward(bb, arrays[:args.batch_size], args.batch_size)        # warm-up
    times = {"torch": [], "onnx": [], "e2e": []}
    for _ in range(args.repeats):            # rounds alternate the paths so load drift hits all alike
        times["torch"].append(bare_forward(bb_torch, arrays, args.batch_size))
        times["onnx"].append(bare_forward(bb_onnx, arrays, args.batch_size))
        times["e2e"].append(end_to_end(template, tmp, bb_onnx, args.batch_size, args.workers)[0])
    n = len(arrays)
    ips = {k: n / statistics.median(v) for k, v in times.items()}
    res = {"backbone": args.backbone, "photos": n, "batch_size": args.batch_size, "threads": args.threads,
           "workers": args.workers, "repeats": args.repeats,
           "torch_forward_ips": round(ips["torch"], 1), "onnx_forward_ips": round(ips["onnx"], 1),
           "end_to_end_ips": round(ips["e2e"], 1),
           "end_to_end_over_onnx": round(ips["e2e"] / ips["onnx"], 3),
           "end_to_end_over_torch": round(ips["e2e"] / ips["torch"], 2),
           "stage_ms_per_image": stage_times(template, bb_onnx, args.batch_size),
           "peak_rss_mb": round(peak_rss_mb()), "rss_after_models_mb": round(rss_models)}
    if args.sweep:
        res["onnx_batch_sweep_ips"] = sweep(bb_onnx, arrays, [int(b) for b in args.sweep.split(",")])
    return res


def print_table(res: dict) -> None:
    print(f"\n{res['backbone']}, {res['photos']} photos, batch {res['batch_size']}, {res['threads']} threads, "
          f"{res['workers']} decode threads, median of {res['repeats']} alternating rounds\n")
    print(f"| {'path':<52} | images/s |\n|{'-' * 54}|----------|")
    for key, name in (("torch_forward_ips", "bare torch forward (preloaded arrays)"),
                      ("onnx_forward_ips", "bare ONNX Runtime forward (preloaded arrays)"),
                      ("end_to_end_ips", "features job end to end (ONNX; read..write)")):
        print(f"| {name:<52} | {res[key]:8.1f} |")
    print(f"\nend-to-end / ONNX forward: {res['end_to_end_over_onnx']:.2f} (goal >= 0.85); "
          f"end-to-end / torch forward: {res['end_to_end_over_torch']:.1f} (goal >= 4)")
    print("stage ms/image, each alone: " + ", ".join(f"{k} {v}" for k, v in res["stage_ms_per_image"].items()))
    if "onnx_batch_sweep_ips" in res:
        print("ONNX batch sweep (images/s): " + ", ".join(f"{b}: {v}" for b, v in res["onnx_batch_sweep_ips"].items()))
    print(f"peak RSS: {res['peak_rss_mb']} MB (both models loaded: {res['rss_after_models_mb']} MB)")


if __name__ == "__main__":
    raise SystemExit(main())
