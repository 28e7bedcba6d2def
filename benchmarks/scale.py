"""Scaling out: the features job locally and on Ray, on the same photos, side by side in one run.

    python benchmarks/scale.py [--augment N | --photos DIR] [--limit 0] [--batch-size 16] [--repeats 1]
                               [--no-two-node] [--keep DIR]

Photos: the bundled demo photos as they are, `--augment N` (N distinct variants of each demo
photo, made by `augment_demo`: random crop, flip, brightness, 512 px on the long side; N=28
gives ~15k photos), or `--photos DIR` (any folder of word sub-folders). They are imported once;
each timed job runs on a fresh copy of that warehouse (the image store shared, read-only).

Rows: the local job with its default threads; Ray with 1 and 2 workers on a local cluster of
this machine's cores; Ray with 2 workers on a two-node cluster on this machine (`ray start
--head --num-cpus 1` + `ray start --address ... --num-cpus 1`, stopped afterwards). Each row
shows its thread budget (read from the run's config), images/s over the whole job (model loading
and the driver's PCA included) and in the steady state (after the first result: every worker has
loaded its model), the driver's seconds spent ingesting shards and its CPU seconds (for the local job,
all its work). A per-image cosine against the local job's features checks that the engines agree.
Ray start-up is outside the timing (a cluster is up before a job joins it), and
so is the one-off ONNX export (the warm-up job makes it; every timed job loads it).
Goals: Ray 1 worker >= 0.9 x local; Ray 2 workers >= 1.0 x Ray 1 worker.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from hashtag_workbench.jobs.engines.cluster import init_options
from hashtag_workbench.jobs.features import DEFAULT_BATCH, compute_features
from hashtag_workbench.jobs.import_folder import import_folder, scan_folder
from hashtag_workbench.warehouse.features import feature_matrix
from hashtag_workbench.warehouse.images import labelled_images
from hashtag_workbench.warehouse.runs import get_run

ROOT = Path(__file__).resolve().parent.parent

DEMO = ROOT / "datasets" / "demo" / "photos"
RAY_BIN = Path(sys.executable).with_name("ray")
AUGMENT_SIZE = 512      # long side of an augmented photo, as in the figures issue 26 reported


def _variant(im: Image.Image, rng: np.random.Generator, size: int) -> Image.Image:
    """One random variant: a crop of 75-100 % of each side, maybe mirrored, brightness +-15 %, `size` px."""
    w, h = im.size
    cw, ch = max(1, int(w * rng.uniform(0.75, 1.0))), max(1, int(h * rng.uniform(0.75, 1.0)))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    out = im.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        out = ImageOps.mirror(out)
    out = ImageEnhance.Brightness(out).enhance(float(rng.uniform(0.85, 1.15)))
    scale = size / max(out.size)
    return out.resize((max(1, round(out.width * scale)), max(1, round(out.height * scale))), Image.BILINEAR)


def augment_demo(dest: Path, n: int, seed: int = 0, *, source: Path = DEMO, size: int = AUGMENT_SIZE) -> int:
    """Write `n` distinct variants of every photo in `source` (one folder per word) as JPEG files under
    dest/<word>/, ready for import-folder; returns how many were written. Same seed, same files."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    by_word, _ = scan_folder(source)
    rng, written = np.random.default_rng(seed), 0
    for word, files in sorted(by_word.items()):
        (Path(dest) / word).mkdir(parents=True, exist_ok=True)
        for f in files:
            try:
                im = Image.open(f).convert("RGB")
            except OSError:
                continue            # not a photo (import-folder would reject it too)
            for k in range(n):
                _variant(im, rng, size).save(Path(dest) / word / f"{f.stem}-{k:03d}.jpg", quality=90)
                written += 1
    return written


def photo_home(base: Path, limit: int, source: Path = DEMO, augment: int = 0) -> Path:
    """A warehouse holding the first `limit` photos (0: all) of `source` (one folder per word, read as
    import-folder reads it), or `augment` variants of each demo photo."""
    tree = base / "tree"
    if augment:
        t0 = time.perf_counter()
        made = augment_demo(tree, augment)
        print(f"augment: {made} photos in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    else:
        if not source.is_dir():
            raise SystemExit(f"{source} is not a folder")
        by_word, _ = scan_folder(source)
        photos = sorted((f for files in by_word.values() for f in files), key=lambda p: (p.name, p.parent.name))
        photos = photos[:limit] if limit else photos
        if not photos:
            raise SystemExit(f"no files in {source}/<word>/")
        for p in photos:
            target = tree / p.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(p, target)
    import_folder(base / "template", tree)
    shutil.rmtree(tree)
    return base / "template"


def reused(keep: Path | None) -> Path | None:
    """The warehouse an earlier run with --keep imported, if it is complete."""
    if keep is None or not (keep / "template" / "warehouse.duckdb").is_file() or (keep / "tree").exists():
        return None
    print(f"reusing the photos imported in {keep / 'template'}", file=sys.stderr)
    return keep / "template"


def fresh_copy(template: Path, work: Path) -> Path:
    """The template warehouse copied, its image store linked (read-only for `features`, and large)."""
    home = work / f"run-{time.monotonic_ns()}"
    shutil.copytree(template, home, ignore=lambda d, names: ["images"] if Path(d) == template else [])
    (home / "images").symlink_to(template / "images")
    return home


def timed_job(template: Path, work: Path, **kw) -> dict:
    """One features job on a fresh copy of the template: images/s over the whole job and after the
    first result, seconds to the first result (Ray), and the thread budget from the run's config."""
    home = fresh_copy(template, work)
    t0, cpu0 = time.perf_counter(), time.process_time()
    counts = compute_features(home, **kw)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    config = get_run(home, counts["run_id"])["config"]
    ids, X = feature_matrix(home, config["backbone"])
    shutil.rmtree(home, ignore_errors=True)
    nan = float("nan")
    return {"rate": counts["done"] / elapsed, "steady": counts.get("steady_images_per_s", nan),
            "first": counts.get("first_result_s", nan), "done": counts["done"], "budget": _budget(config),
            "ingest_s": counts.get("ingest_s", nan), "driver_cpu_s": cpu, "features": _unit_rows(ids, X)}


def _unit_rows(ids, X) -> tuple[np.ndarray, np.ndarray]:
    """(image ids sorted, their feature vectors scaled to length 1), to compare engines by cosine."""
    order = np.argsort(ids)
    X = np.asarray(X, np.float64)[order]
    return np.asarray(ids)[order], X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def min_cosine(a: tuple, b: tuple) -> float:
    """The lowest per-image cosine between two runs' features (NaN when they hold different images)."""
    if len(a[0]) != len(b[0]) or (a[0] != b[0]).any():
        return float("nan")
    return float((a[1] * b[1]).sum(axis=1).min())


def _budget(config: dict) -> str:
    if "thread_budget" in config:
        b = config["thread_budget"]
        return f"{b['workers']} x {b['threads']} thr ({'+'.join(map(str, b['node_cpus']))} CPU)"
    return f"{config['threads']} thr + {config['workers']} decode"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_two_nodes(tmp: Path) -> tuple[str, list[subprocess.Popen]]:
    """A head and a worker node of 1 CPU each, as their own `ray start --block` processes."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus", "1", "--block", "--disable-usage-stats"]
    head = subprocess.Popen([str(RAY_BIN), "start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1",
                             "--include-dashboard", "false", "--temp-dir", str(tmp / "ray"), *common],
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = [head]
    time.sleep(8)  # the head must be listening before the second node joins it
    procs.append(subprocess.Popen([str(RAY_BIN), "start", "--address", address, "--node-ip-address", "127.0.0.1",
                                   *common], start_new_session=True, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL))
    return address, procs


def wait_for_nodes(n: int, timeout: float = 120.0) -> None:
    import ray
    deadline = time.monotonic() + timeout
    while len([x for x in ray.nodes() if x["Alive"]]) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the two-node cluster did not come up: {len(ray.nodes())} node(s)")
        time.sleep(1)


def stop_nodes(procs: list[subprocess.Popen]) -> None:
    """Stop the nodes this benchmark started (their own process groups only)."""
    for p in reversed(procs):
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


def ingest_cost(template: Path, work: Path, sizes=(16, 64, 256), images: int = 1024) -> dict[int, float]:
    """The driver's ingest cost per image (ms) for shards of each size, INGEST_EVERY shards per transaction,
    on a copy of the template: the measurement behind ray_features.SHARD_MAX."""
    from hashtag_workbench.jobs.engines import shardfiles
    from hashtag_workbench.jobs.engines.ingest import INGEST_EVERY
    from hashtag_workbench.warehouse.shards import ingest_feature_shards
    ids = [im["image_id"] for im in labelled_images(template)][:images]
    rng, cost = np.random.default_rng(0), {}
    for size in sizes:
        home = fresh_copy(template, work)
        rel = []
        for i in range(0, len(ids), size):
            chunk = ids[i:i + size]
            table = shardfiles.shard_table(run_id=1, backbone="efficientnet_lite0", image_ids=chunk, failures=[],
                                           vecs=rng.random((len(chunk), 1280), np.float32),
                                           logits=rng.random((len(chunk), 1000), np.float32))
            rel.append(str(shardfiles.write_shard(home / "shards", table, name_hint=str(i)).relative_to(home)))
        t0 = time.perf_counter()
        for i in range(0, len(rel), INGEST_EVERY):
            ingest_feature_shards(home, rel[i:i + INGEST_EVERY], ingest_run_id=1)
        cost[size] = 1000 * (time.perf_counter() - t0) / len(ids)
        shutil.rmtree(home, ignore_errors=True)
    return cost


LOCAL, RAY1, RAY2, TWO_NODES = ("local job", "ray, 1 worker (local cluster)", "ray, 2 workers (local cluster)",
                                "ray, 2 workers (two nodes x 1 CPU)")


def measure(template: Path, tmp: Path, args) -> dict[str, list[dict]]:
    """Every row, `repeats` alternating rounds (so load drift hits all alike); the two-node rows last."""
    import ray
    job = {"batch_size": args.batch_size}
    runs = {LOCAL: {}, RAY1: {"engine": "ray", "workers": 1}, RAY2: {"engine": "ray", "workers": 2}}
    rates: dict[str, list[dict]] = {}
    ray.init(**init_options(address=None, cpus=os.cpu_count()))
    try:
        for _ in range(args.repeats):
            for name, kw in runs.items():
                rates.setdefault(name, []).append(timed_job(template, tmp, **job, **kw))
    finally:
        ray.shutdown()
    if not args.no_two_node:
        address, procs = start_two_nodes(tmp)
        try:
            ray.init(**init_options(address=address, cpus=0))
            wait_for_nodes(2)
            for _ in range(args.repeats):
                rates.setdefault(TWO_NODES, []).append(timed_job(template, tmp, engine="ray", workers=2, **job))
        finally:
            ray.shutdown()
            stop_nodes(procs)
    return rates


def report(rates: dict[str, list[dict]], photos: int, args, ingest: dict[int, float]) -> None:
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("rate", "steady", "first", "ingest_s", "driver_cpu_s")}
           for k, v in rates.items()}
    print(f"\n{photos} photos, batch {args.batch_size}, efficientnet_lite0 (ONNX), {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} (1 min) at the end, median of {args.repeats} round(s)\n")
    print(f"| {'job':<36} | {'thread budget':<24} | img/s (whole job) | img/s (steady) | s to first result "
          "| driver ingest s | driver CPU s |")
    print(f"|{'-' * 38}|{'-' * 26}|-------------------|----------------|-------------------|-----------------|"
          "--------------|")
    for name, m in med.items():
        steady, first, ing = ("" if v != v else f"{v:.1f}" for v in (m["steady"], m["first"], m["ingest_s"]))
        print(f"| {name:<36} | {rates[name][0]['budget']:<24} | {m['rate']:17.1f} | {steady:>14} | {first:>17} "
              f"| {ing:>15} | {m['driver_cpu_s']:12.1f} |")
    print("\ndriver ingest per image, by shard size: "
          + ", ".join(f"{size}: {ms:.2f} ms" for size, ms in ingest.items()))
    one, two, local = med[RAY1], med[RAY2], med[LOCAL]
    print(f"\nray 1 worker / local: whole job {one['rate'] / local['rate']:.2f}, steady "
          f"{one['steady'] / local['steady']:.2f} (goal >= 0.9)")
    print(f"ray 2 workers / ray 1 worker: whole job {two['rate'] / one['rate']:.2f}, steady "
          f"{two['steady'] / one['steady']:.2f} (goal >= 1.0)")
    if TWO_NODES in med:
        print(f"two nodes, 2 workers / ray 1 worker: whole job {med[TWO_NODES]['rate'] / one['rate']:.2f}")
    base = rates[LOCAL][0]["features"]
    cos = {k: min(min_cosine(base, r["features"]) for r in v) for k, v in rates.items() if k != LOCAL}
    print("same features as the local job, lowest cosine per image: "
          + ", ".join(f"{k} {c:.6f}" for k, c in cos.items()) + " (goal >= 0.999)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--photos", type=Path, default=DEMO,
                     help="a folder with one sub-folder of photos per word (default: the bundled demo photos)")
    src.add_argument("--augment", type=int, default=0,
                     help="use N distinct variants of each demo photo instead (28: ~15k photos)")
    ap.add_argument("--limit", type=int, default=0, help="photos of --photos to use (default 0: all)")
    ap.add_argument("--batch-size", type=int, default=DEFAULT_BATCH,
                    help=f"images per forward pass (default {DEFAULT_BATCH}, as the features job)")
    ap.add_argument("--repeats", type=int, default=1, help="alternating rounds; medians are reported (default 1)")
    ap.add_argument("--no-two-node", action="store_true", help="skip the two-node cluster")
    ap.add_argument("--keep", type=Path, default=None,
                    help="build the imported photos in this folder and reuse them when it holds them already "
                         "(import-folder of ~15k photos takes minutes; it is not what is measured)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
        tmp = Path(tmp)
        # One ONNX cache for every job (and, inherited, every Ray worker): the warm-up exports the model
        # once, as a user's first job does; timed jobs load it, as every later job does.
        os.environ["HASHTAG_ONNX_CACHE"] = str(tmp / "onnx-cache")
        template = reused(args.keep) or photo_home(args.keep or tmp, args.limit, args.photos, args.augment)
        photos = len(labelled_images(template))
        warm = photo_home(tmp / "warm", 32)
        compute_features(warm, batch_size=args.batch_size)     # warm-up: the ONNX export, lazy imports
        ingest = ingest_cost(template, tmp)
        rates = measure(template, tmp, args)
    report(rates, photos, args, ingest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
