"""`features --engine ray`: the images still to do go through a Ray Data actor pool.

Each actor loads the model once and runs the local job's own per-batch compute
(core.features.extract) on its batches, writing one Parquet shard per batch under the
run's folder in the data dir. The driver ingests the shards as they arrive, a few per
transaction (warehouse.shards); workers never open the warehouse.
"""
from __future__ import annotations

import logging
import math
import time
import warnings
from pathlib import Path

import numpy as np

from hashtag_workbench.core.features import extract
from hashtag_workbench.infra.onnxrt import load_for_runtime
from hashtag_workbench.jobs.engines import shardfiles
from hashtag_workbench.jobs.engines.cluster import ray_cluster, require_cpus
from hashtag_workbench.jobs.engines.ingest import INGEST_EVERY, ingest
from hashtag_workbench.warehouse import features as wh
from hashtag_workbench.warehouse.store import image_file

TASK_RETRIES = 2        # a batch whose actor died is retried this often, then its images fail


class FeatureActor:
    """One Ray Data worker: loads the backbone once, then turns each batch into a shard file."""

    def __init__(self, *, home: str, run_id: int, backbone: str, weights: str | None, threads: int,
                 runtime: str = "onnx"):
        self.home, self.run_id, self.backbone = Path(home), run_id, backbone
        # the driver exported and checked the ONNX file already, so a worker only opens it
        self.model = load_for_runtime(self.home, backbone, weights, runtime=runtime, threads=threads)
        self.out_dir = shardfiles.run_shard_dir(home, run_id)

    def __call__(self, batch: dict) -> dict:
        ids = [int(i) for i in batch["image_id"]]
        paths = [image_file(self.home, str(p)) for p in batch["path"]]
        done, vecs, logits, failures = [], [], [], []
        try:
            for positions, f, lg, bad in extract(paths, self.model, batch_size=len(paths), workers=1):
                done += [ids[p] for p in positions]
                vecs.append(f)
                logits.append(lg)
                failures += [(ids[p], reason) for p, reason in bad]
        except Exception as exc:  # a model error on one batch becomes failed rows, not a lost job
            done, vecs, logits = [], [], []
            failures = [(i, f"features failed for its batch ({type(exc).__name__}: {exc})") for i in ids]
        table = shardfiles.shard_table(
            run_id=self.run_id, backbone=self.backbone, image_ids=done, failures=failures,
            vecs=np.concatenate(vecs) if vecs else np.zeros((0, self.model.feature_dim), np.float32),
            logits=np.concatenate(logits) if logits else np.zeros((0, 1000), np.float32))
        path = shardfiles.write_shard(self.out_dir, table, name_hint=f"{self.backbone}-{ids[0]}")
        return {"shard": [str(path.relative_to(self.home))], "images": [len(ids)]}


def compute_on_ray(home: Path, run, todo: list[dict], *, backbone: str, weights, batch_size: int, workers: int,
                   threads: int | None, address: str | None, runtime: str = "onnx") -> None:
    """Features for the images in `todo` on Ray; every one ends as a feature row or a failure row."""
    import ray
    import ray.data

    threads = threads or 1
    runtime = load_for_runtime(home, backbone, weights, runtime=runtime, threads=1, say=run.log).runtime
    run.extra["runtime_used"] = runtime
    with ray_cluster(address=address, cpus=workers * threads) as info:
        require_cpus(info, workers * threads, f"{workers} feature worker(s) x {threads} thread(s)")
        run.extra["ray_address"] = info["address"]
        run.log(f"{backbone}: {len(todo)} images on Ray ({info['address']}, {info['cpus']} CPUs), "
                f"{workers} worker(s) x {threads} thread(s)")
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # the job prints its own progress
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False      # the job's own bar counts images
        ctx.max_errored_blocks = -1           # a batch that keeps failing becomes failed rows below
        items = [{"image_id": im["image_id"], "path": im["path"]} for im in todo]
        ds = ray.data.from_items(items, override_num_blocks=math.ceil(len(items) / batch_size))
        with warnings.catch_warnings():
            # Ray 2.60 warns that actor restart options passed this way go away in 2.64; they are pinned here.
            warnings.simplefilter("ignore", DeprecationWarning)
            out = ds.map_batches(FeatureActor, batch_size=batch_size, batch_format="numpy",
                                 compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=threads,
                                 max_restarts=TASK_RETRIES, max_task_retries=TASK_RETRIES,
                                 fn_constructor_kwargs={"home": str(home), "run_id": run.run_id,
                                                        "backbone": backbone, "threads": threads,
                                                        "runtime": runtime,
                                                        "weights": str(weights) if weights else None})
        _collect(home, run, out, total=len(todo), desc=f"features {backbone} (ray)")
    _record_lost(home, run, todo, backbone)


def _collect(home: Path, run, out, *, total: int, desc: str) -> None:
    """Ingest shards as the workers report them, a few per transaction; note the steady rate."""
    bar = run.progress(total=total, desc=desc)
    pending: list[str] = []
    started, first_at, after_first = time.monotonic(), None, 0
    for row in out.iter_rows():
        pending.append(row["shard"])
        bar.update(int(row["images"]))
        if first_at is None:
            first_at = time.monotonic()     # workers have loaded the model: the rate from here on is the steady one
            run.extra["ray_first_shard_s"] = round(first_at - started, 1)
        else:
            after_first += int(row["images"])
        run.crash_point("shard")
        if len(pending) >= INGEST_EVERY:
            ingest(home, run, pending)
            pending = []
    ingest(home, run, pending)
    bar.close()
    if after_first and time.monotonic() > first_at:
        run.extra["ray_steady_images_per_s"] = round(after_first / (time.monotonic() - first_at), 2)


def _record_lost(home: Path, run, todo: list[dict], backbone: str) -> None:
    """Images whose batch failed on every try (its worker kept dying) become failure rows with the reason."""
    have = wh.feature_ids(home, backbone, include_failed=True)
    lost = [im["image_id"] for im in todo if im["image_id"] not in have]
    if lost:
        reason = f"its Ray worker failed {TASK_RETRIES + 1} times on this image's batch"
        wh.write_features(home, run.run_id, backbone, [], np.zeros((0, 1)), None, [(i, reason) for i in lost])
        run.count("failed", len(lost))
        run.log(f"{len(lost)} image(s) failed: {reason}")
