"""`outliers`: per-word outlier scores and flags from every detector, and duplicate groups."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from hashtag_workbench.core.duplicates import find_duplicates, phash_hex
from hashtag_workbench.core.features import load_photo
from hashtag_workbench.core.images import ImageRejected
from hashtag_workbench.core.outliers import OutliersConfig, run_detectors
from hashtag_workbench.jobs.common import ensure_ready
from hashtag_workbench.jobs.options import config_from
from hashtag_workbench.jobs.runner import JobError, JobResult, job_run
from hashtag_workbench.warehouse import features as wh
from hashtag_workbench.warehouse import outliers as wh_outliers
from hashtag_workbench.warehouse.images import labelled_images
from hashtag_workbench.warehouse.store import image_file

HELP = "flag likely outliers per word, and find duplicate photos"
DESCRIPTION = (
    "Score every stored image with each detector (higher = more suspicious) and "
    "flag outliers: kmeans_2sigma (the original K-means + 2 sigma on PCA-128), "
    "knn_cosine (distance to nearest same-word images) and confident_learning "
    "(cross-validated label-issue detection). Also groups exact and near "
    "duplicates by perceptual hash and feature cosine. Needs `features` first."
)
CONFIGS = (OutliersConfig,)


class NotReady(JobError):
    """An earlier pipeline step has not been run yet."""


def _phash(path: Path) -> str | None:
    try:
        return phash_hex(load_photo(path))
    except ImageRejected:
        return None


def ensure_hashes(home: Path, run, images: list[dict], *, workers: int = 2) -> dict[int, str]:
    """Perceptual hashes of `images`, computing (in threads) and storing only the missing ones."""
    known = wh_outliers.image_hashes(home)
    todo = [im for im in images if im["image_id"] not in known]
    if todo:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            hashes = list(run.progress(pool.map(lambda im: _phash(image_file(home, im["path"])), todo),
                                       total=len(todo), desc="phash"))
        new = {im["image_id"]: h for im, h in zip(todo, hashes) if h}
        for im, h in zip(todo, hashes):
            if h is None:
                run.log(f"could not hash image {im['image_id']} ({im['path']}); left out of duplicate search")
        wh_outliers.write_image_hashes(home, run.run_id, new)
        known.update(new)
    run.extra["hashed_now"] = len(todo)
    return known


def find_outliers(home: Path, config: OutliersConfig | None = None, **settings) -> dict:
    """Score and flag every stored, non-rejected image with each detector; find duplicate groups.

    `config` (or its fields as keywords) says which detectors and thresholds. Reads the latest PCA fit
    and features of the config's backbone (run `features` first).
    """
    cfg = config or OutliersConfig(**settings)
    backbone = cfg.backbone
    ensure_ready(home)
    fit = wh.latest_pca_fit(home, backbone)
    if fit is None:
        raise NotReady(f"no {backbone} features with a PCA fit yet: run `hashtags features "
                       f"--backbone {backbone}` first")
    with job_run(home, "outliers", {**asdict(cfg), "pca_run_id": fit["run_id"]}) as run:
        pids, P = wh.projection_matrix(home, fit["run_id"])
        fids, X = wh.feature_matrix(home, backbone)
        images = labelled_images(home)                      # rejected images are out of every class
        have = set(pids.tolist()) & set(fids.tolist())
        missing = [im for im in images if im["image_id"] not in have]
        if missing:
            run.log(f"{len(missing)} images have no {backbone} projection in PCA run {fit['run_id']}; "
                    "run `hashtags features` to include them")
            run.count("skipped", len(missing))
        images = [im for im in images if im["image_id"] in have]
        if not images:
            raise NotReady("no images to score: every stored image is rejected or lacks features")
        ids = np.array([im["image_id"] for im in images], np.int64)
        words = [im["word"] for im in images]
        P_rows = P[np.searchsorted(pids, ids)]
        X_rows = X[np.searchsorted(fids, ids)]
        with _one_thread():
            results = _detected(home, run, cfg, ids, words, P_rows, X_rows)
            n_groups = _record_duplicates(home, run, images, X_rows, max_hash_distance=cfg.max_hash_distance,
                                          min_cosine=cfg.min_cosine)
        summary = ", ".join(f"{r.detector} {int(r.flagged.sum())}" for r in results)
        run.log(f"flagged of {len(ids)}: {summary}; duplicate groups: {n_groups}")
        return {"run_id": run.run_id, **run.all_counts()}


def _one_thread():
    """One BLAS / OpenMP thread for the detectors and the duplicate search: idle OpenBLAS threads spin between
    their many small products. `--augment 9` (4,824 photos, hashes already stored), one run after the other on
    2 shared cores: 23.0 s CPU, 31.0 s wall with the default two threads; 5.7 s CPU, 6.4 s wall with one. The
    same flags and duplicate groups, scores within 4e-13."""
    import sklearn.linear_model  # noqa: F401  (its BLAS and OpenMP must be loaded for the limit to reach them)
    from threadpoolctl import threadpool_limits
    return threadpool_limits(1)


def _detected(home: Path, run, cfg: OutliersConfig, ids: np.ndarray, words: list[str], P_rows: np.ndarray,
              X_rows: np.ndarray) -> list:
    """Each detector's result, its scores and flags stored as it finishes."""
    results = []
    # one detector at a time through the run's progress bar, so the Jobs page shows how far it got
    for det in run.progress(cfg.detectors, desc="outlier detectors", unit="detector"):
        res, = run_detectors(projections=P_rows, features=X_rows, labels=words, config=replace(cfg, detectors=(det,)))
        results.append(res)
        wh_outliers.write_outlier_scores(home, run.run_id, res.detector, ids, words, res.scores, res.flagged)
        run.extra[f"flagged_{res.detector}"] = int(res.flagged.sum())
        for note in res.notes:
            run.log(f"{res.detector}: {note}")
    run.count("done", len(ids))
    return results


def _record_duplicates(home: Path, run, images: list[dict], X_rows: np.ndarray, *, max_hash_distance: int,
                       min_cosine: float) -> int:
    """Group exact and near duplicates among `images` (rows of X_rows) and store the groups; returns how many."""
    hashes = ensure_hashes(home, run, images)
    hashed = [i for i, im in enumerate(images) if im["image_id"] in hashes]
    groups = find_duplicates(hashes=[hashes[images[i]["image_id"]] for i in hashed],
                             shas=[images[i]["sha256"] for i in hashed], features=X_rows[hashed],
                             max_hash_distance=max_hash_distance, min_cosine=min_cosine)
    rows = [{"group_id": g_no, "image_id": int(images[hashed[m]]["image_id"]), "kind": g.kind, "distance": d}
            for g_no, g in enumerate(groups, start=1) for m, d in zip(g.members, g.distances)]
    wh_outliers.write_duplicate_groups(home, run.run_id, rows)
    run.extra["duplicate_groups"] = len(groups)
    run.extra["duplicate_images"] = len(rows)
    return len(groups)


def run_command(args) -> JobResult:
    return JobResult(data=find_outliers(args.home, config_from(args, OutliersConfig)))
