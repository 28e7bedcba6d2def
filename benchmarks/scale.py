"""Scaling out: the features job locally and on Ray, on the same photos, in one run.

    python benchmarks/scale.py [--photos DIR] [--limit 0] [--batch-size 16] [--repeats 3] [--no-two-node]

Rows (images/s = photos / job wall time, model loading and the driver's PCA included):
local job with 1 thread (the same CPU budget as one Ray worker) and with the job's
default threads; Ray with 1 and 2 workers of 1 thread each on a local cluster of 2 CPUs;
Ray with 2 workers on a two-node cluster on this machine (two `ray start` processes with
--num-cpus 1). Ray start-up is outside the timing (a cluster is up before a job joins it), and so
is the one-off ONNX export (the warm-up job makes it; every timed job loads it).
Goals: Ray 1 worker >= 0.8 x local (1 thread); Ray 2 workers >= 1.7 x Ray 1 worker.
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

from hashtag_workbench.jobs.engines.cluster import init_options
from hashtag_workbench.jobs.features import DEFAULT_BATCH, compute_features
from hashtag_workbench.jobs.import_folder import import_folder, scan_folder
from hashtag_workbench.warehouse.images import labelled_images

ROOT = Path(__file__).resolve().parent.parent

DEMO = ROOT / "datasets" / "demo" / "photos"
RAY_BIN = Path(sys.executable).with_name("ray")


def photo_home(base: Path, limit: int, source: Path = DEMO) -> Path:
    """A warehouse holding the first `limit` photos (0: all) of `source` (one folder per word, read as
    import-folder reads it), spread over the words."""
    if not source.is_dir():
        raise SystemExit(f"{source} is not a folder")
    by_word, _ = scan_folder(source)
    photos = sorted((f for files in by_word.values() for f in files), key=lambda p: (p.name, p.parent.name))
    photos = photos[:limit] if limit else photos
    if not photos:
        raise SystemExit(f"no files in {source}/<word>/")
    tree = base / "tree"
    for p in photos:
        target = tree / p.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, target)
    import_folder(base / "template", tree)
    return base / "template"


def timed_job(template: Path, work: Path, **kw) -> tuple[float, float, float]:
    """Images/s of one features job on a fresh copy of the template warehouse: over the whole job,
    and (Ray) after the first shard, when every worker has loaded its model; and (Ray) the seconds
    until that first shard (worker processes, torch and the model starting)."""
    home = work / f"run-{time.monotonic_ns()}"
    shutil.copytree(template, home)
    t0 = time.perf_counter()
    counts = compute_features(home, **kw)
    elapsed = time.perf_counter() - t0
    shutil.rmtree(home, ignore_errors=True)
    nan = float("nan")
    return (counts["done"] / elapsed, counts.get("ray_steady_images_per_s", nan),
            counts.get("ray_first_shard_s", nan))


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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, default=DEMO,
                    help="a folder with one sub-folder of photos per word (default: the bundled demo photos)")
    ap.add_argument("--limit", type=int, default=0, help="photos to use (default 0: all)")
    ap.add_argument("--batch-size", type=int, default=DEFAULT_BATCH,
                    help=f"images per batch and per shard (default {DEFAULT_BATCH}, as the features job)")
    ap.add_argument("--repeats", type=int, default=3, help="alternating rounds; medians are reported (default 3)")
    ap.add_argument("--no-two-node", action="store_true", help="skip the two-node cluster")
    args = ap.parse_args(argv)
    import ray

    rates: dict[str, list[tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # One ONNX cache for every job (and, inherited, every Ray worker): the warm-up exports the model
        # once, as a user's first job does; timed jobs load it, as every later job does.
        os.environ["HASHTAG_ONNX_CACHE"] = str(tmp / "onnx-cache")
        template = photo_home(tmp, args.limit, args.photos)
        photos = len(labelled_images(template))
        job = {"batch_size": args.batch_size}
        runs = {"local job, 1 thread": {"threads": 1},
                "local job, default threads": {},
                "ray, 1 worker (local cluster, 2 CPUs)": {"engine": "ray", "workers": 1, "threads": 1},
                "ray, 2 workers (local cluster, 2 CPUs)": {"engine": "ray", "workers": 2, "threads": 1}}
        ray.init(**init_options(address=None, cpus=2))
        try:
            timed_job(template, tmp, threads=1, **job)        # warm-up: file cache, lazy imports
            for _ in range(args.repeats):                      # rounds alternate, so load drift hits all alike
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
                    rates.setdefault("ray, 2 workers (two nodes x 1 CPU)", []).append(
                        timed_job(template, tmp, engine="ray", workers=2, threads=1, **job))
            finally:
                ray.shutdown()
                stop_nodes(procs)
    med = {k: statistics.median(r[0] for r in v) for k, v in rates.items()}
    steady = {k: statistics.median(r[1] for r in v) for k, v in rates.items()}
    first = {k: statistics.median(r[2] for r in v) for k, v in rates.items()}
    print(f"\n{photos} photos, batch {args.batch_size}, efficientnet_lite0, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}, median of {args.repeats} round(s)\n")
    print(f"| {'job':<42} | images/s (whole job) | images/s (after first shard) | s to first shard |")
    print(f"|{'-' * 44}|----------------------|------------------------------|------------------|")
    for name, rate in med.items():
        after = "" if steady[name] != steady[name] else f"{steady[name]:.2f}"
        wait = "" if first[name] != first[name] else f"{first[name]:.1f}"
        print(f"| {name:<42} | {rate:20.2f} | {after:>28} | {wait:>16} |")
    one, two = med["ray, 1 worker (local cluster, 2 CPUs)"], med["ray, 2 workers (local cluster, 2 CPUs)"]
    print(f"\nray 1 worker / local 1 thread: {one / med['local job, 1 thread']:.2f} (goal >= 0.8)")
    print(f"ray 2 workers / ray 1 worker: {two / one:.2f} (goal >= 1.7)")
    if "ray, 2 workers (two nodes x 1 CPU)" in med:
        print(f"two nodes, 2 workers / ray 1 worker: {med['ray, 2 workers (two nodes x 1 CPU)'] / one:.2f}")
    s1, s2 = steady["ray, 1 worker (local cluster, 2 CPUs)"], steady["ray, 2 workers (local cluster, 2 CPUs)"]
    print(f"after the first shard: ray 1 worker / local 1 thread {s1 / med['local job, 1 thread']:.2f}, "
          f"ray 2 workers / 1 worker {s2 / s1:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
