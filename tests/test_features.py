"""Feature extraction: the batch pipeline, PCA, and the features job on a real small warehouse."""
from __future__ import annotations

import duckdb
import numpy as np
import pytest
import torch

from hashtag_workbench.core.backbones import load_backbone
from hashtag_workbench.core.features import PcaFit, fit_pca, iter_batches
from hashtag_workbench.jobs.features import compute_features
from hashtag_workbench.warehouse import features as wh
from hashtag_workbench.warehouse.db import connect
from hashtag_workbench.warehouse.images import labelled_images
from hashtag_workbench.warehouse.store import image_file


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_pca_caps_components_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 50))
    fit = fit_pca(X, n_components=128)
    assert fit.n_components == 20
    P = fit.transform(X)
    assert P.shape == (20, 20) and P.dtype == np.float32
    fit.save(tmp_path / "p.npz")
    again = PcaFit.load(tmp_path / "p.npz")
    np.testing.assert_allclose(again.transform(X), P, atol=1e-4)
    assert fit_pca(X, n_components=5).transform(X).shape == (20, 5)


def test_pca_checks_its_input():
    with pytest.raises(ValueError, match="2-d"):
        fit_pca(np.zeros(5))
    with pytest.raises(ValueError, match="at least 2 images"):
        fit_pca(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="NaN"):
        fit_pca(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="n_components"):
        fit_pca(np.zeros((3, 3)), n_components=0)
    with pytest.raises(ValueError, match="columns"):
        fit_pca(np.random.default_rng(0).normal(size=(4, 3))).transform(np.zeros((2, 5)))


def test_batches_keep_order_and_report_unreadable_files(demo_home, tmp_path):
    paths = [image_file(demo_home, im["path"]) for im in labelled_images(demo_home)[:5]]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    paths.insert(2, bad)
    bb = load_backbone()
    batches = list(iter_batches(paths, bb.preprocess, batch_size=4, workers=2))
    assert [b.indices for b in batches] == [[0, 1, 3], [4, 5]]
    assert batches[0].failures and batches[0].failures[0][0] == 2
    assert "not an image" in batches[0].failures[0][1]
    assert batches[0].array.shape == (3, 224, 224, 3) and batches[0].array.dtype == np.uint8
    with pytest.raises(ValueError, match="batch_size"):
        next(iter_batches(paths, bb.preprocess, batch_size=0))


def _feature_rows(home):
    with connect(home, read_only=True) as con:
        return con.execute("SELECT image_id, backbone, run_id, len(vec), len(logits) FROM features "
                           "ORDER BY image_id").fetchall()


def test_features_job_stores_rows_pca_and_does_not_recompute(demo_home):
    images = labelled_images(demo_home)
    # One stored file goes bad: it must become a failure row, not a crash.
    broken = images[3]
    image_file(demo_home, broken["path"]).write_bytes(b"garbage")

    first = compute_features(demo_home, batch_size=8, threads=1)
    assert first["done"] == len(images) - 1 and first["failed"] == 1
    rows = _feature_rows(demo_home)
    assert len(rows) == len(images) - 1
    assert {r[1:] for r in rows} == {("efficientnet_lite0", first["run_id"], 1280, 1000)}
    failures = wh.feature_failures(demo_home)
    assert [f["image_id"] for f in failures] == [broken["image_id"]]
    assert failures[0]["run_id"] == first["run_id"]

    fit = wh.latest_pca_fit(demo_home, "efficientnet_lite0")
    assert fit["run_id"] == first["run_id"] and fit["n_images"] == len(images) - 1
    assert fit["n_components"] == min(128, len(images) - 1)
    assert (demo_home / fit["artifact"]).is_file()
    ids, P = wh.projection_matrix(demo_home, fit["run_id"])
    assert P.shape == (len(images) - 1, fit["n_components"])
    # The stored projections are the saved artifact applied to the stored features.
    fids, X = wh.feature_matrix(demo_home, "efficientnet_lite0")
    np.testing.assert_allclose(PcaFit.load(demo_home / fit["artifact"]).transform(X), P, atol=1e-3)

    second = compute_features(demo_home, threads=1)
    assert second.get("done", 0) == 0 and second["skipped"] == len(images)
    assert _feature_rows(demo_home) == rows            # nothing rewritten: same run ids
    assert wh.latest_pca_fit(demo_home)["run_id"] == first["run_id"]
    assert second["pca_run_id"] == first["run_id"]

    # Resume: as if a later run had been killed part-way, five images lost their rows.
    with connect(demo_home) as con:
        con.execute("DELETE FROM features WHERE image_id IN (SELECT unnest(?))",
                    [[im["image_id"] for im in images[5:10]]])
    third = compute_features(demo_home, threads=1)
    assert third["done"] == 5 and third["skipped"] == len(images) - 5
    assert {r[2] for r in _feature_rows(demo_home)} == {first["run_id"], third["run_id"]}
    assert wh.latest_pca_fit(demo_home)["run_id"] == third["run_id"]


def test_cli_reports_bad_weights(demo_home, tmp_path, capsys):
    from hashtag_workbench.jobs.cli import main
    junk = tmp_path / "w.pth"
    junk.write_text("nope")
    assert main(["--home", str(demo_home), "features", "--backbone", "resnet18", "--weights", str(junk)]) == 2
    assert "not a PyTorch weights file" in capsys.readouterr().err
    with duckdb.connect(str(demo_home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT status FROM runs WHERE kind = 'features'").fetchall() == [("failed",)]


def test_a_failed_warehouse_write_fails_the_run_and_keeps_the_rows_before_it(demo_home, monkeypatch):
    """Writes run in a background thread; an error there still ends the job, in the job's own thread."""
    import hashtag_workbench.jobs.features as jf
    from hashtag_workbench.warehouse import runs
    monkeypatch.setattr(jf, "WRITE_EVERY", 8)
    real, calls = wh.write_features, []

    def write_features(*args, **kwargs):
        calls.append(len(args[3]))
        if len(calls) == 2:
            raise duckdb.IOException("IO Error: No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(wh, "write_features", write_features)
    with pytest.raises(duckdb.IOException, match="No space left"):
        compute_features(demo_home, batch_size=8, threads=1)
    assert len(_feature_rows(demo_home)) == 8                       # the first write landed, nothing after
    assert runs.recent_runs(demo_home, 1, kind="features")[0]["status"] == "failed"
    monkeypatch.setattr(wh, "write_features", real)
    again = compute_features(demo_home, batch_size=8, threads=1)
    assert again["done"] == len(labelled_images(demo_home)) - 8 and again["skipped"] == 8


def test_an_interrupted_features_job_keeps_every_image_it_finished(demo_home, monkeypatch):
    """Ctrl-C (or SIGTERM) between batches: the rows held for the next write are written first."""
    import hashtag_workbench.core.features as cf
    import hashtag_workbench.jobs.features as jf
    from hashtag_workbench.warehouse import runs
    monkeypatch.setattr(jf, "WRITE_EVERY", 1000)                  # nothing written before the interrupt
    real, batches = cf.run_batch, []

    def run_batch(backbone, batch):
        batches.append(batch)
        if len(batches) == 3:
            raise KeyboardInterrupt
        return real(backbone, batch)

    monkeypatch.setattr(cf, "run_batch", run_batch)
    with pytest.raises(KeyboardInterrupt):
        compute_features(demo_home, batch_size=8, threads=1)
    last = runs.recent_runs(demo_home, 1, kind="features")[0]
    assert last["status"] == "interrupted"
    assert len(_feature_rows(demo_home)) == 16 == last["counts"]["done"]   # two whole batches, as counted
    monkeypatch.setattr(cf, "run_batch", real)
    again = compute_features(demo_home, batch_size=8, threads=1)
    assert again["done"] == len(labelled_images(demo_home)) - 16


@pytest.fixture
def _restore_threads():
    from hashtag_workbench.infra import runtime
    before = runtime.requested_threads()
    yield
    runtime.configure_threads(before)
    torch.set_num_threads(1)


def test_the_global_threads_option_reaches_the_features_job(demo_home, _restore_threads):
    """`hashtags --threads 1 features`: the subcommand must not overwrite the global option (issue 22)."""
    from hashtag_workbench.jobs.cli import main
    from hashtag_workbench.warehouse import runs
    assert main(["--home", str(demo_home), "--threads", "1", "features", "--pca-components", "4"]) == 0
    run = runs.recent_runs(demo_home, 1, kind="features")[0]
    assert run["config"]["threads"] == 1 and run["status"] == "ok"
    assert "onnx, 1 thread(s)" in run["log"]
    # after the command it means the same; a re-run with nothing to do still records what it would use
    assert main(["--home", str(demo_home), "features", "--threads", "1", "--pca-components", "4"]) == 0
    assert runs.recent_runs(demo_home, 1, kind="features")[0]["config"]["threads"] == 1
