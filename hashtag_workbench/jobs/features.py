"""`features`: penultimate-layer CNN features for every stored image, then PCA-128 projections."""
from __future__ import annotations

import argparse
import dataclasses
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hashtag_workbench.core.backbones import DEFAULT_BACKBONE, available_backbones
from hashtag_workbench.core.config import option
from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.features import DEFAULT_PCA_COMPONENTS, extract, fit_pca
from hashtag_workbench.core.maps import maps_2d
from hashtag_workbench.infra.onnxrt import DEFAULT_RUNTIME, load_for_runtime
from hashtag_workbench.infra.runtime import requested_threads
from hashtag_workbench.infra.runtime import threads as configured_threads
from hashtag_workbench.jobs.common import RuntimeConfig, ensure_ready
from hashtag_workbench.jobs.engines.ingest import ingest_leftovers
from hashtag_workbench.jobs.engines.options import EngineConfig, check_engine
from hashtag_workbench.jobs.options import config_from
from hashtag_workbench.jobs.runner import JobResult, job_run
from hashtag_workbench.warehouse import features as wh
from hashtag_workbench.warehouse.images import labelled_images
from hashtag_workbench.warehouse.store import image_file

HELP = "CNN features and PCA-128 projections for every stored image"
DESCRIPTION = (
    "Compute penultimate-layer features (and ImageNet logits) for every stored "
    "image that has none for the backbone yet, then fit PCA and store the "
    "projections. Safe to interrupt and re-run: finished images are skipped."
)

WRITE_EVERY = 256  # rows per warehouse transaction: ~0.15 s of CPU each for 256 rows (open 20 ms, insert
                   # 35 ms, the checkpoint at close 75 ms); rows written are kept if a run is killed
DEFAULT_BATCH = 16
DECODE_THREADS = 2  # local engine: decoding threads beside the forward pass (2 measured best on 2 cores)


def pca_artifact(run_id: int) -> str:
    """Where a features run's PCA fit is saved, relative to the data dir."""
    return f"models/pca/{run_id}.npz"


def fit_and_store_pca(home: Path, run, backbone: str, *, n_components: int = DEFAULT_PCA_COMPONENTS) -> dict | None:
    """Fit PCA on every stored feature vector of `backbone`; save the artifact and all projections."""
    ids, X = wh.feature_matrix(home, backbone)
    if len(ids) < 2:
        run.log(f"PCA skipped: {len(ids)} image(s) with {backbone} features; need at least 2")
        return None
    fit = fit_pca(X, n_components=n_components)
    rel = pca_artifact(run.run_id)
    fit.save(home / rel)
    explained = float(fit.explained_variance_ratio.sum())
    P = fit.transform(X)
    wh.write_pca_fit(home, run.run_id, backbone, n_components=fit.n_components, explained_variance=explained,
                     artifact=rel, image_ids=ids, projections=P)
    if fit.n_components < n_components:
        run.log(f"PCA: {fit.n_components} components (capped by {len(ids)} images x {X.shape[1]} dims)")
    store_maps(home, run, run.run_id, ids, P)
    return {"pca_run_id": run.run_id, "pca_components": fit.n_components,
            "pca_explained_variance": round(explained, 4), "pca_images": int(len(ids))}


class _Pending:
    """Rows waiting for the warehouse, written every WRITE_EVERY images in one transaction.

    The write runs in a background thread (at most one in flight), so the forward pass
    never waits on DuckDB. Images count as done once their write has landed; a failed
    write raises in the job's thread at the next flush, and nothing is written after it.
    """

    def __init__(self, home: Path, run, backbone, todo: list[dict]):
        self.home, self.run, self.backbone, self.todo = home, run, backbone, todo
        self.ids, self.vecs, self.logits, self.failures = [], [], [], []
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="features-writer")
        self._in_flight: tuple[Future, int, int] | None = None     # (the write, images done, images failed)
        self._broken = False

    def add(self, positions, feats, logits, failures) -> None:
        self.ids.extend(self.todo[p]["image_id"] for p in positions)
        self.vecs.append(feats)
        self.logits.append(logits)
        for p, reason in failures:
            self.failures.append((self.todo[p]["image_id"], reason))
            self.run.log(f"failed image {self.todo[p]['image_id']} ({self.todo[p]['path']}): {reason}")
        if len(self.ids) + len(self.failures) >= WRITE_EVERY:
            self.flush()

    def flush(self, *, wait: bool = False) -> None:
        """Start writing the rows held so far (after the previous write has landed)."""
        self._settle()
        if (self.ids or self.failures) and not self._broken:
            dim = self.backbone.feature_dim
            vecs = np.concatenate(self.vecs) if self.vecs else np.zeros((0, dim))
            logits = np.concatenate(self.logits) if self.logits else np.zeros((0, 1000))
            write = self._writer.submit(wh.write_features, self.home, self.run.run_id, self.backbone.name,
                                        self.ids, vecs, logits, self.failures)
            self._in_flight = (write, len(self.ids), len(self.failures))
            self.ids, self.vecs, self.logits, self.failures = [], [], [], []
        if wait:
            self._settle()

    def close(self) -> None:
        """Write everything held and wait for it: a stopped run keeps every image it finished."""
        try:
            self.flush(wait=True)
        finally:
            self._writer.shutdown()

    def _settle(self) -> None:
        if self._in_flight is None:
            return
        (write, done, failed), self._in_flight = self._in_flight, None
        try:
            write.result()
        except BaseException:
            self._broken = True
            raise
        self.run.count("done", done)
        self.run.count("failed", failed)
        self.run.checkpoint()


def extract_and_store(home: Path, run, model, todo: list[dict], *, batch_size: int = DEFAULT_BATCH,
                      workers: int = DECODE_THREADS) -> None:
    """The job's core: read, decode, resize and forward (pipelined), then write rows in batches."""
    paths = [image_file(home, im["path"]) for im in todo]
    pending = _Pending(home, run, model, todo)
    bar = run.progress(total=len(todo), desc=f"features {model.name} ({model.runtime})")
    rate = SteadyRate(run)
    try:
        for positions, feats, logits, failures in extract(paths, model, batch_size=batch_size, workers=workers,
                                                          progress=bar.update):
            rate.add(len(positions) + len(failures))
            pending.add(positions, feats, logits, failures)
    finally:
        pending.close()
    bar.close()
    rate.close()


class SteadyRate:
    """Notes in the run the seconds to the first result and the images/s after it (model loaded, pipeline
    full): the rate a longer job would keep, the same measure for the local and the Ray engine."""

    def __init__(self, run):
        self.run, self.started, self.first_at, self.after_first = run, time.monotonic(), None, 0

    def add(self, n: int) -> None:
        if self.first_at is None:
            self.first_at = time.monotonic()
            self.run.extra["first_result_s"] = round(self.first_at - self.started, 1)
        else:
            self.after_first += n

    def close(self) -> None:
        if self.after_first and time.monotonic() > self.first_at:
            self.run.extra["steady_images_per_s"] = round(self.after_first / (time.monotonic() - self.first_at), 2)


@dataclass
class FeaturesConfig:
    """The `features` job's settings (where it runs: RuntimeConfig and the engine options)."""
    backbone: str = option(DEFAULT_BACKBONE, "CNN to use (resnet18/alexnet need --weights or torchvision's cache)",
                           choices=available_backbones)
    weights: str | None = option(None, "weights file for the backbone (a torchvision state dict)")
    batch_size: int = option(DEFAULT_BATCH, "images per forward pass (chosen by benchmarks/features.py)")
    workers: int | None = option(None, f"local: decoding threads beside the forward pass (default {DECODE_THREADS}, "
                                 "chosen by benchmarks/features.py); ray: model workers, each loading the model once "
                                 "(default 1). The global --threads (before the command) sets the forward pass's "
                                 "threads: local default all cores; ray: per worker, default the cluster's cores "
                                 "split between the workers, never more than Ray has")
    pca_components: int = option(DEFAULT_PCA_COMPONENTS, "PCA dimensions (capped by the number of images)")
    retry_failed: bool = option(False, "try again images that failed before")


CONFIGS = (FeaturesConfig, RuntimeConfig, EngineConfig)


def compute_features(home: Path, *, backbone: str = FeaturesConfig.backbone, weights: Path | str | None = None,
                     batch_size: int = FeaturesConfig.batch_size, workers: int | None = None,
                     threads: int | None = None, retry_failed: bool = False,
                     pca_components: int = FeaturesConfig.pca_components, runtime: str = DEFAULT_RUNTIME,
                     engine: str = "local", address: str | None = None) -> dict:
    """Features for every stored image not yet done for `backbone`, then PCA if anything changed.

    Resumable: rows are written every WRITE_EVERY images, and a re-run only does
    images without a row (and, with `retry_failed`, those that failed before).
    `engine="ray"` computes them on a Ray cluster (jobs/engines/ray_features.py). `workers`: decoding
    threads (local, default DECODE_THREADS) or model workers (ray, default 1). `threads`: inference
    threads (local: default the configured ones; ray: per worker, default the cores split between
    the workers, see jobs/engines/budget.py). The threads used are recorded in the run's config.
    """
    if backbone not in available_backbones():
        raise InputError(f"unknown backbone {backbone!r}; choose one of {', '.join(available_backbones())}")
    if batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {batch_size}")
    if workers is None:
        workers = 1 if engine == "ray" else DECODE_THREADS
    check_engine(engine, workers)
    ensure_ready(home)
    config = {"backbone": backbone, "weights": str(weights) if weights else None, "batch_size": batch_size,
              "workers": workers, "threads": threads or configured_threads(), "retry_failed": retry_failed,
              "pca_components": pca_components, "runtime": runtime, "engine": engine}
    job = dict(backbone=backbone, weights=weights, batch_size=batch_size, workers=workers, threads=threads,
               retry_failed=retry_failed, pca_components=pca_components, runtime=runtime)
    if engine != "ray" or not _todo(home, backbone, retry_failed)[1]:
        return _features_run(home, config, **job)
    from hashtag_workbench.jobs.engines.ray_features import ray_with_budget
    with ray_with_budget(address=address, workers=workers, threads=threads) as (info, budget):
        # the budget is chosen on the cluster's CPUs, so the run's config names what really ran
        config.update(workers=budget.workers, threads=budget.threads, thread_budget=budget.as_config())
        return _features_run(home, config, ray=(info, budget), **job)


def _todo(home: Path, backbone: str, retry_failed: bool) -> tuple[list[dict], list[dict]]:
    """(every stored image, those still without a row for `backbone`)."""
    images = labelled_images(home, include_rejected=True)
    done = wh.feature_ids(home, backbone, include_failed=not retry_failed)
    return images, [im for im in images if im["image_id"] not in done]


def _features_run(home: Path, config: dict, *, backbone, weights, batch_size, workers, threads, retry_failed,
                  pca_components, runtime, ray=None) -> dict:
    """The recorded run: leftover shards first, then the images to do (here or on Ray), then PCA."""
    with job_run(home, "features", config) as run:
        ingest_leftovers(home, run)  # shards a killed Ray run wrote are kept, not computed again
        images, todo = _todo(home, backbone, retry_failed)
        run.count("skipped", len(images) - len(todo))
        if ray is not None:
            run.log(f"thread budget: {ray[1].line()}")
        if todo and ray is not None:
            from hashtag_workbench.jobs.engines.ray_features import compute_on_ray
            compute_on_ray(home, run, todo, info=ray[0], budget=ray[1], backbone=backbone, weights=weights,
                           batch_size=batch_size, runtime=runtime)
        elif todo:
            model = load_for_runtime(home, backbone, weights, runtime=runtime, threads=threads, say=run.log)
            run.extra["runtime_used"] = model.runtime
            run.log(f"{backbone} ({model.runtime}, {config['threads']} thread(s)): {len(todo)} images to do, "
                    f"{len(images) - len(todo)} done before")
            extract_and_store(home, run, model, todo, batch_size=batch_size, workers=workers)
        _refresh_pca(home, run, backbone, pca_components)
        return {"run_id": run.run_id, **run.all_counts()}


def store_maps(home: Path, run, fit_run_id: int, ids, P: np.ndarray) -> None:
    """The Embedding map's PCA layout of one fit (its first two components), stored with the fit;
    t-SNE takes longer and is the `map` job's."""
    for method, (rows, xy) in maps_2d(P, methods=("pca",)).items():
        wh.write_embedding_map(home, fit_run_id, method, np.asarray(ids)[rows], xy)
    run.log(f"Embedding map (PCA) stored for PCA run {fit_run_id}; `hashtags map` adds the t-SNE layout")


def _refresh_pca(home: Path, run, backbone: str, pca_components: int) -> None:
    """Refit only when the set of images changed: a re-run with nothing new recomputes nothing."""
    if run.counts.get("done") or not wh.pca_is_current(home, backbone):
        info = fit_and_store_pca(home, run, backbone, n_components=pca_components)
        if info:
            run.extra.update(info)
    else:
        fit = wh.latest_pca_fit(home, backbone)
        run.extra["pca_run_id"] = fit["run_id"]
        if "pca" not in wh.embedding_map_methods(home, fit["run_id"]):   # a warehouse from before stored maps
            store_maps(home, run, fit["run_id"], *wh.projection_matrix(home, fit["run_id"]))
        run.log(f"PCA up to date (fitted in run {fit['run_id']}, {fit['n_images']} images)")


def run_command(args) -> JobResult:
    # the global --threads (None when not given: local then uses every core, Ray splits the cores)
    cfg = config_from(args, FeaturesConfig)
    out = compute_features(args.home, **dataclasses.asdict(cfg), threads=requested_threads(), runtime=args.runtime,
                           engine=args.engine, address=args.address)
    return JobResult(data=out)


def add_options(p) -> None:
    # --threads after the command too; SUPPRESS: when absent here it leaves the global value alone
    p.add_argument("--threads", type=int, default=argparse.SUPPRESS,
                   help="the same as the global --threads (CPU threads of the forward pass)")
