"""`hashtags map`: the Embedding map's 2-D coordinates (t-SNE) of the newest PCA fit, computed once and stored.

The features job stores the PCA map with every fit (free: the first two components). t-SNE takes
from seconds to minutes (a fixed sample of MAP_SAMPLE images when there are more), so it is a job of
its own: the Embedding page offers to start it, and reads the stored result from then on.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hashtag_workbench.core.config import option
from hashtag_workbench.core.maps import MAP_SAMPLE, maps_2d
from hashtag_workbench.jobs.common import ensure_ready
from hashtag_workbench.jobs.runner import JobError, JobResult, job_run
from hashtag_workbench.warehouse import features as wh

HELP = "compute the Embedding map's t-SNE layout once and store it"
DESCRIPTION = (
    "Lay out the newest PCA fit's projections in 2-D with t-SNE (a fixed sample "
    f"of {MAP_SAMPLE} images when there are more) and store it with the PCA map, "
    "so the dashboard's Embedding map opens at once. Needs `features` first."
)


@dataclass(frozen=True)
class MapConfig:
    sample: int = option(MAP_SAMPLE, "at most this many images in the t-SNE map")
    force: bool = option(False, "recompute a map that is stored already")


CONFIGS = (MapConfig,)


def compute_map(home: Path, *, sample: int = MAP_SAMPLE, force: bool = False) -> dict:
    """Store the t-SNE (and PCA) map of the newest PCA fit; skipped when it is stored already (unless force)."""
    ensure_ready(home)
    if sample < 10:
        raise JobError(f"--sample must be at least 10, got {sample}")
    fit = wh.latest_pca_fit(home)
    if fit is None:
        raise JobError("no PCA fit yet: run `hashtags features` first")
    with job_run(home, "map", {"pca_run_id": fit["run_id"], "sample": sample, "force": force}) as run:
        if not force and "tsne" in wh.embedding_map_methods(home, fit["run_id"]):
            run.log(f"the t-SNE map of PCA run {fit['run_id']} is stored already (--force recomputes it)")
            run.count("skipped", fit["n_images"])
            return {"run_id": run.run_id, **run.all_counts()}
        ids, P = wh.projection_matrix(home, fit["run_id"])
        t = time.perf_counter()
        bar = run.progress(total=2, desc="maps", unit="map")
        for method, (rows, xy) in maps_2d(P, sample=sample).items():
            wh.write_embedding_map(home, fit["run_id"], method, np.asarray(ids)[rows], xy)
            run.count(f"{method}_points", len(rows))
            bar.update(1)
        bar.close()
        run.count("done", len(ids))
        run.log(f"PCA and t-SNE maps of PCA run {fit['run_id']} stored in {time.perf_counter() - t:.1f} s")
        return {"run_id": run.run_id, **run.all_counts()}


def run_command(args) -> JobResult:
    return JobResult(data=compute_map(args.home, sample=args.sample, force=args.force))
