"""The Ray engine on a real local Ray cluster (2 CPUs, no dashboard), started once for this module.

Features via Ray must equal the local job's; a scrape via Ray must store what the local
engine stores; a driver killed with SIGKILL leaves whole shards that the re-run ingests
instead of recomputing; every shard is ingested exactly once.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from hashtag_workbench.infra.http import FetchLimits as DownloadLimits
from hashtag_workbench.jobs.engines import shardfiles
from hashtag_workbench.jobs.engines.cluster import worker_env
from hashtag_workbench.jobs.features import compute_features
from hashtag_workbench.jobs.scrape_images import ScrapeSettings, scrape_images
from hashtag_workbench.warehouse import runs
from hashtag_workbench.warehouse.check import check_warehouse
from hashtag_workbench.warehouse.db import connect
from hashtag_workbench.warehouse.features import feature_matrix
from hashtag_workbench.warehouse.shards import ingest_feature_shards
from tests.conftest import ROOT, small_demo_tree
from tests.fake_sites import truncated_jpeg

BACKBONE = "efficientnet_lite0"
N = 12  # photos in the test warehouse: few, since each forward pass is slow on 2 loaded cores


@pytest.fixture
def home(seeded_home):
    """A pre-seeded warehouse copy (the vocabulary already in)."""
    return seeded_home


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray for the module (its start-up takes several seconds on 2 loaded cores)."""
    import ray
    ctx = ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, runtime_env=worker_env())
    yield ctx.address_info["address"]
    ray.shutdown()


@pytest.fixture(scope="module")
def photos_template(tmp_path_factory) -> Path:
    from hashtag_workbench.jobs.import_folder import import_folder
    base = tmp_path_factory.mktemp("ray")
    import_folder(base / "home", small_demo_tree(base / "tree", words=("bird", "fruit", "flowers"), per_word=4))
    return base / "home"


@pytest.fixture
def photos(photos_template, tmp_path) -> Path:
    """A private copy of a warehouse with N demo photos."""
    shutil.copytree(photos_template, tmp_path / "photos")
    return tmp_path / "photos"


def _features(home: Path) -> dict[int, np.ndarray]:
    ids, X = feature_matrix(home, BACKBONE)
    return dict(zip(ids.tolist(), X))


def _shard_rows(home: Path) -> list[tuple]:
    with connect(home, read_only=True) as con:
        return con.execute("SELECT path, run_id, ingest_run_id, n_rows, inserted, failed FROM feature_shards "
                           "ORDER BY path").fetchall()


def test_features_on_ray_equal_local_and_each_shard_is_ingested_once(photos, tmp_path, ray_address):
    local_home = tmp_path / "local"
    shutil.copytree(photos, local_home)
    compute_features(local_home, backbone=BACKBONE)
    counts = compute_features(photos, backbone=BACKBONE, engine="ray", workers=2, batch_size=4)
    assert counts["done"] == N and counts.get("failed", 0) == 0
    assert counts["ray_address"] == "already connected" and counts["pca_images"] == N
    # the thread budget: 2 workers split the module's 2-CPU Ray, and the run's config says so
    config = runs.get_run(photos, counts["run_id"])["config"]
    assert config["workers"] == 2 and config["threads"] == 1
    assert config["thread_budget"]["node_cpus"] == [2] and "split" in config["thread_budget"]["chosen_by"]

    ray_vecs, local_vecs = _features(photos), _features(local_home)
    assert sorted(ray_vecs) == sorted(local_vecs) and len(ray_vecs) == N
    cos = [float(a @ local_vecs[i] / np.linalg.norm(a) / np.linalg.norm(local_vecs[i])) for i, a in ray_vecs.items()]
    assert min(cos) >= 0.999
    with connect(photos, read_only=True) as con:
        assert con.execute("SELECT DISTINCT run_id FROM features").fetchall() == [(counts["run_id"],)]
        assert con.execute("SELECT count(*) FROM features WHERE logits IS NULL").fetchone()[0] == 0

    shards = _shard_rows(photos)
    assert len(shards) == 3                                 # 12 images in batches of 4
    assert sum(s[3] for s in shards) == N and sum(s[4] for s in shards) == N
    assert all(s[1] == s[2] == counts["run_id"] for s in shards)
    assert shardfiles.shard_files(photos) == []          # ingested shards are deleted
    # Ingesting the same shards again does nothing; a re-run has nothing to compute.
    again = ingest_feature_shards(photos, [s[0] for s in shards], ingest_run_id=999)
    assert again["shards"] == 0 and _shard_rows(photos) == shards
    rerun = compute_features(photos, backbone=BACKBONE, engine="ray", workers=2)
    assert rerun.get("done", 0) == 0 and rerun["skipped"] == N and _shard_rows(photos) == shards


def _wt(budget) -> tuple[int, int]:
    return budget.workers, budget.threads


def test_thread_budget_fits_the_workers_on_the_nodes():
    """Pure arithmetic (no Ray): each worker asks for the CPUs it uses, and all must fit at once."""
    from hashtag_workbench.jobs.engines.budget import plan_threads
    from hashtag_workbench.jobs.engines.cluster import ClusterError
    assert _wt(plan_threads(1, None, [2], own_cluster=True)) == (1, 2)       # one worker gets both cores
    assert _wt(plan_threads(2, None, [2], own_cluster=True)) == (2, 1)
    assert _wt(plan_threads(2, None, [1, 1], own_cluster=False)) == (2, 1)   # two one-CPU nodes
    assert _wt(plan_threads(2, None, [8, 2], own_cluster=False)) == (2, 4)   # a worker cannot span nodes
    assert plan_threads(2, 1, [16], own_cluster=False).chosen_by == "as asked"
    reduced = plan_threads(3, 2, [2], own_cluster=True)                       # a Ray this job started: reduced
    assert _wt(reduced) == (2, 1) and "reduced" in reduced.chosen_by
    assert reduced.workers * reduced.threads <= 2
    with pytest.raises(ClusterError, match="do not fit"):                     # someone else's cluster: refused
        plan_threads(2, 2, [2, 1], own_cluster=False)


def test_shards_are_large_but_every_worker_gets_several():
    from hashtag_workbench.jobs.engines.ray_features import SHARD_MAX, shard_size
    assert shard_size(15_000, 2, 16) == SHARD_MAX                # big jobs: the measured size
    assert shard_size(12, 2, 4) == 4 and shard_size(100, 1, 16) == 32   # small ones: 4+ shards per worker
    assert all(shard_size(n, w, 16) % 16 == 0 for n in (1, 50, 999) for w in (1, 3))   # whole batches


def test_shard_ingestion_skips_present_rows_and_duplicates(photos):
    """Pure warehouse logic (no Ray): a shard twice, an image in two shards, a failure then a success."""
    d = shardfiles.run_shard_dir(photos, 7)
    v = np.arange(8, dtype=np.float32).reshape(2, 4)
    a = shardfiles.write_shard(d, shardfiles.shard_table(run_id=7, backbone="b", image_ids=[1, 2], vecs=v,
                                                         logits=v, failures=[(3, "unreadable")]), name_hint="a")
    b = shardfiles.write_shard(d, shardfiles.shard_table(run_id=7, backbone="b", image_ids=[2, 3], vecs=v + 1,
                                                         logits=v, failures=[]), name_hint="b")
    rel = [str(p.relative_to(photos)) for p in (a, b)]
    first = ingest_feature_shards(photos, rel[:1] * 2, ingest_run_id=8)
    assert first == {"shards": 1, "rows": 3, "inserted": 2, "failed": 1, "skipped": 0}
    second = ingest_feature_shards(photos, rel, ingest_run_id=9)
    assert second == {"shards": 1, "rows": 2, "inserted": 1, "failed": 0, "skipped": 1}
    with connect(photos, read_only=True) as con:
        feats = con.execute("SELECT image_id, vec FROM features WHERE backbone = 'b' ORDER BY 1").fetchall()
        assert [(i, list(vec)) for i, vec in feats] == [(1, [0, 1, 2, 3]), (2, [4, 5, 6, 7]), (3, [5, 6, 7, 8])]
        assert con.execute("SELECT count(*) FROM feature_failures WHERE backbone = 'b'").fetchone()[0] == 0
    assert [r[0] for r in _shard_rows(photos)] == sorted(rel)
    assert pq.read_table(a).num_rows == 3     # the files stay until the job deletes them


def test_killed_driver_leaves_shards_that_the_rerun_ingests(photos, ray_address):
    env = {**os.environ, "HASHTAG_HOME": str(photos), "RAY_ADDRESS": ray_address,
           "HASHTAG_CRASH_AFTER": "features:shard:3", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "hashtag_workbench", "--threads", "1", "features", "--engine", "ray",
                           "--workers", "1", "--batch-size", "1"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    killed = runs.recent_runs(photos, 1, kind="features")[0]
    assert killed["status"] == "running"
    # the global --threads reached the Ray engine: 1 thread, although 1 worker could have had both CPUs
    assert killed["config"]["threads"] == 1 and killed["config"]["thread_budget"]["chosen_by"] == "as asked"
    assert _shard_rows(photos) == []                     # 3 shards received, none ingested yet
    left = shardfiles.shard_files(photos)
    assert len(left) >= 3

    counts = compute_features(photos, backbone=BACKBONE, engine="ray", workers=2, batch_size=4)
    assert runs.get_run(photos, killed["run_id"])["status"] == "interrupted"
    with connect(photos, read_only=True) as con:
        by_run = dict(con.execute("SELECT run_id, count(*) FROM features GROUP BY run_id").fetchall())
    # The killed run's shards were ingested, not computed again; the rest was computed once.
    assert by_run[killed["run_id"]] == counts["recovered"] >= 6
    assert by_run[killed["run_id"]] + by_run.get(counts["run_id"], 0) == N == sum(by_run.values())
    assert counts.get("done", 0) == N - counts["recovered"]
    shards = _shard_rows(photos)
    assert len({s[0] for s in shards}) == len(shards) and set(left) <= {s[0] for s in shards}
    assert shardfiles.shard_files(photos) == []
    assert [f.line() for f in check_warehouse(photos).problems] == []


# ----------------------------------------------------------------------------- scrape



def _fast(**kw) -> ScrapeSettings:
    return ScrapeSettings(search_delay=0.0, block_backoff=0.01, workers=2,
                          limits=DownloadLimits(connect_timeout=2.0, read_timeout=2.0, retries=1, backoff=0.01,
                                                deadline=10.0), **kw)


def _stored(home: Path) -> set[tuple]:
    with connect(home, read_only=True) as con:
        return set(con.execute("SELECT word, source_url, status, sha256, path, width, height, error, query "
                               "FROM images").fetchall())


def test_scrape_on_ray_stores_the_same_images_as_local(home, seeded_template, tmp_path, ddg, ray_address):
    urls = ddg.add_photos("b", 8) + [ddg.add_image("cut.jpg", truncated_jpeg()), ddg.url("missing.jpg")]
    ddg.set_results("bird", [urls[:6] + [urls[0]], urls[6:]])
    local_home = tmp_path / "local"
    shutil.copytree(seeded_template, local_home)
    local = scrape_images(local_home, words=["bird"], settings=_fast(per_class=20))
    ddg.image_hits.clear()
    counts = scrape_images(home, words=["bird"], settings=_fast(per_class=20), engine="ray")
    assert counts["done"] == local["done"] == 8 and counts["failed"] == local["failed"] == 2
    assert counts["ray_address"] == "already connected"
    assert _stored(home) == _stored(local_home) and len(_stored(home)) == 10
    assert max(ddg.image_hits.values()) == 1                 # each URL fetched once
    files = sorted(p.relative_to(home) for p in (home / "images").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(local_home) for p in (local_home / "images").rglob("*") if p.is_file())
    assert len(files) == 8
    assert runs.get_run(home, counts["run_id"])["status"] == "ok"
    assert [f.line() for f in check_warehouse(home).problems] == []


def test_dead_download_worker_is_retried_and_one_that_keeps_dying_is_a_failed_row(home, ddg, ray_address,
                                                                                  monkeypatch):
    from hashtag_workbench.jobs.engines import ray_scrape
    from tests.ray_faults import dying_download

    monkeypatch.setattr(ray_scrape, "download_and_store", dying_download)
    ddg.add_image("die-once.jpg", ddg.images[ddg.add_photos("b", 1)[0].rsplit("/", 1)[1]][1])
    urls = [ddg.url("die-once.jpg"), ddg.url("die-always.jpg")]
    ddg.set_results("bird", [urls])
    counts = scrape_images(home, words=["bird"], settings=_fast(per_class=5, max_attempts=1), engine="ray")
    assert counts["done"] == 1 and counts["failed"] == 1
    rows = {r[1]: r for r in _stored(home)}
    assert rows[urls[0]][2] == "ok" and (home / rows[urls[0]][4]).is_file()
    assert rows[urls[1]][2] == "failed" and "download worker failed 3 times" in rows[urls[1]][7]
    assert ddg.image_hits["die-once.jpg"] == 1 and ddg.image_hits.get("die-always.jpg", 0) == 0
    assert runs.get_run(home, counts["run_id"])["status"] == "ok"
