"""`features --engine ray`: the images still to do go through a Ray Data actor pool.

Each actor loads the model once and asks Ray for exactly the CPUs its forward pass uses
(the thread budget, engines/budget.py). An actor call takes one shard's worth of images
and runs the local job's own pipeline on it (core.features.extract: decoding and resizing
in as many threads as the forward pass has, beside it), then writes one Parquet shard
under the run's folder in the data dir. Two calls run in each actor at once and take turns
on the model, so one call's first decodes and the other's shard write overlap a forward
pass: the actor's cores never wait for input or output. The driver ingests the shards a
few per transaction (warehouse.shards) in a background thread, so collecting results never
waits on DuckDB; workers never open the warehouse.
"""
from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from hashtag_workbench.core.features import extract
from hashtag_workbench.infra.onnxrt import load_for_runtime
from hashtag_workbench.infra.runtime import available_cores
from hashtag_workbench.jobs.engines import shardfiles
from hashtag_workbench.jobs.engines.budget import ThreadBudget, plan_threads
from hashtag_workbench.jobs.engines.cluster import ray_cluster
from hashtag_workbench.jobs.engines.ingest import INGEST_EVERY, ingest
from hashtag_workbench.warehouse import features as wh
from hashtag_workbench.warehouse.store import image_file

TASK_RETRIES = 2        # a batch whose actor died is retried this often, then its images fail
SHARD_MAX = 256         # images per shard (one actor call). benchmarks/scale.py measures the driver's ingest
                        # per image: 2.3 ms in shards of 16 (one per batch, as before), 0.9 ms of 64, 0.4 ms
                        # of 256 (2 shared cores); larger shards only delay progress and lose more to a kill
SHARDS_PER_WORKER = 4   # a small job is cut into at least this many shards per worker, so all stay busy
CALLS_PER_ACTOR = 2     # concurrent calls in one actor: one runs the model while the other decodes or writes


def shard_size(n_images: int, workers: int, batch_size: int) -> int:
    """Images per shard: up to SHARD_MAX, small enough to give every worker several, a multiple of the batch."""
    want = min(SHARD_MAX, max(1, math.ceil(n_images / (workers * SHARDS_PER_WORKER))))
    return max(batch_size, math.ceil(want / batch_size) * batch_size)


class _Turn:
    """The actor's model for one call: the call takes the model at its first forward pass and keeps it
    until its last, so shards come out one after another while the next call decodes its first batches
    (they wait, prefetched) and the previous one writes its shard."""

    def __init__(self, model, lock: threading.Lock):
        self._model, self._lock, self._held = model, lock, False

    def __getattr__(self, name):
        return getattr(self._model, name)

    def features_and_logits(self, pixels):
        if not self._held:
            self._lock.acquire()
            self._held = True
        return self._model.features_and_logits(pixels)

    def release(self) -> None:
        if self._held:
            self._held = False
            self._lock.release()


class FeatureActor:
    """One Ray Data worker: loads the backbone once, then turns each block of images into a shard file."""

    def __init__(self, *, home: str, run_id: int, backbone: str, weights: str | None, threads: int,
                 batch_size: int, runtime: str = "onnx"):
        self.home, self.run_id, self.backbone, self.batch_size = Path(home), run_id, backbone, batch_size
        # decoding threads of each call: as many as the forward pass has, so decoding keeps up with it (the
        # local job's 2 beside 2 inference threads); a call that is ahead waits on its full prefetch queue
        self.decoders = threads
        # the driver exported and checked the ONNX file already, so a worker only opens it
        self.model = load_for_runtime(self.home, backbone, weights, runtime=runtime, threads=threads)
        self._model_lock = threading.Lock()
        self.out_dir = shardfiles.run_shard_dir(home, run_id)

    def __call__(self, batch: dict) -> dict:
        ids = [int(i) for i in batch["image_id"]]
        paths = [image_file(self.home, str(p)) for p in batch["path"]]
        done, vecs, logits, failures = [], [], [], []
        model = _Turn(self.model, self._model_lock)
        try:
            for positions, f, lg, bad in extract(paths, model, batch_size=self.batch_size, workers=self.decoders):
                done += [ids[p] for p in positions]
                vecs.append(f)
                logits.append(lg)
                failures += [(ids[p], reason) for p, reason in bad]
        except Exception as exc:  # a model error on one block becomes failed rows, not a lost job
            done, vecs, logits = [], [], []
            failures = [(i, f"features failed for its batch ({type(exc).__name__}: {exc})") for i in ids]
        finally:
            model.release()     # before the shard is written: the next call runs the model meanwhile
        table = shardfiles.shard_table(
            run_id=self.run_id, backbone=self.backbone, image_ids=done, failures=failures,
            vecs=np.concatenate(vecs) if vecs else np.zeros((0, self.model.feature_dim), np.float32),
            logits=np.concatenate(logits) if logits else np.zeros((0, 1000), np.float32))
        path = shardfiles.write_shard(self.out_dir, table, name_hint=f"{self.backbone}-{ids[0]}")
        return {"shard": [str(path.relative_to(self.home))], "images": [len(ids)]}


@contextlib.contextmanager
def ray_with_budget(*, address: str | None, workers: int, threads: int | None) -> Iterator[tuple[dict, ThreadBudget]]:
    """Join (or start, with this machine's cores) Ray, and plan the workers' threads on what it has."""
    with ray_cluster(address=address, cpus=available_cores()) as info:
        yield info, plan_threads(workers, threads, info["node_cpus"], own_cluster=info["started"])


def compute_on_ray(home: Path, run, todo: list[dict], *, info: dict, budget: ThreadBudget, backbone: str,
                   weights, batch_size: int, runtime: str = "onnx") -> None:
    """Features for the images in `todo` on Ray; every one ends as a feature row or a failure row."""
    import ray
    import ray.data

    runtime = load_for_runtime(home, backbone, weights, runtime=runtime, threads=1, say=run.log).runtime
    run.extra["runtime_used"] = runtime
    run.extra["ray_address"] = info["address"]
    shard = shard_size(len(todo), budget.workers, batch_size)
    run.log(f"{backbone}: {len(todo)} images on Ray ({info['address']}) in shards of {shard} images")
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # the job prints its own progress
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False      # the job's own bar counts images
    ctx.max_errored_blocks = -1           # a block that keeps failing becomes failed rows below
    items = [{"image_id": im["image_id"], "path": im["path"]} for im in todo]
    ds = ray.data.from_items(items, override_num_blocks=math.ceil(len(items) / shard))
    # no queue beyond the calls that run: a shard waiting behind a busy actor would idle the others at the end
    pool = ray.data.ActorPoolStrategy(size=budget.workers, max_concurrent_calls_per_actor=CALLS_PER_ACTOR,
                                      max_tasks_in_flight_per_actor=CALLS_PER_ACTOR, enable_true_multi_threading=True)
    with warnings.catch_warnings():
        # Ray 2.60 warns that actor restart options passed this way go away in 2.64; they are pinned here.
        warnings.simplefilter("ignore", DeprecationWarning)
        # batch_size None: each block is one call and one shard (a batch size would merge and re-cut blocks)
        out = ds.map_batches(FeatureActor, batch_size=None, batch_format="numpy", compute=pool,
                             num_cpus=budget.threads, max_restarts=TASK_RETRIES, max_task_retries=TASK_RETRIES,
                             fn_constructor_kwargs={"home": str(home), "run_id": run.run_id, "backbone": backbone,
                                                    "threads": budget.threads, "batch_size": batch_size,
                                                    "runtime": runtime,
                                                    "weights": str(weights) if weights else None})
    _collect(home, run, out, total=len(todo), desc=f"features {backbone} (ray)")
    _record_lost(home, run, todo, backbone)


class _BackgroundIngest:
    """Ingests shards INGEST_EVERY at a time in one background thread (one transaction in flight);
    an ingest that failed raises in the driver's thread at the next hand-over or at the end."""

    def __init__(self, home: Path, run):
        self.home, self.run, self.pending = home, run, []
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shard-ingest")
        self._in_flight: Future | None = None

    def add(self, shard: str) -> None:
        self.pending.append(shard)
        if len(self.pending) >= INGEST_EVERY and (self._in_flight is None or self._in_flight.done()):
            self._hand_over()

    def close(self) -> None:
        try:
            self._hand_over()
            self._settle()
        finally:
            self._thread.shutdown()

    def _hand_over(self) -> None:
        self._settle()
        if self.pending:
            self._in_flight = self._thread.submit(self._ingest, self.pending)
            self.pending = []

    def _ingest(self, shards: list[str]) -> None:
        t0 = time.perf_counter()
        ingest(self.home, self.run, shards)
        # the driver's cost per shard, off the critical path but still one of the machine's cores
        extra = self.run.extra
        extra["ingest_s"] = round(extra.get("ingest_s", 0.0) + time.perf_counter() - t0, 2)
        extra["shards"] = extra.get("shards", 0) + len(shards)

    def _settle(self) -> None:
        if self._in_flight is not None:
            done, self._in_flight = self._in_flight, None
            done.result()


def _collect(home: Path, run, out, *, total: int, desc: str) -> None:
    """Take shards as the workers report them, ingesting behind; note the steady rate."""
    from hashtag_workbench.jobs.features import SteadyRate
    bar = run.progress(total=total, desc=desc)
    ingester, rate = _BackgroundIngest(home, run), SteadyRate(run)
    try:
        for row in out.iter_rows():
            bar.update(int(row["images"]))
            rate.add(int(row["images"]))
            run.crash_point("shard")
            ingester.add(row["shard"])
    finally:
        ingester.close()
    bar.close()
    rate.close()


def _record_lost(home: Path, run, todo: list[dict], backbone: str) -> None:
    """Images whose block failed on every try (its worker kept dying) become failure rows with the reason."""
    have = wh.feature_ids(home, backbone, include_failed=True)
    lost = [im["image_id"] for im in todo if im["image_id"] not in have]
    if lost:
        reason = f"its Ray worker failed {TASK_RETRIES + 1} times on this image's batch"
        wh.write_features(home, run.run_id, backbone, [], np.zeros((0, 1)), None, [(i, reason) for i in lost])
        run.count("failed", len(lost))
        run.log(f"{len(lost)} image(s) failed: {reason}")
