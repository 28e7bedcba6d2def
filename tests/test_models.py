"""Every model trains, is stored with its config, evaluates and can be rebuilt from the warehouse alone."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from hashtag_workbench.core.conse import default_config, standard_variants
from hashtag_workbench.core.fused import fused_configs
from hashtag_workbench.core.kinds import KINDS, SUPERVISED, ZERO_SHOT
from hashtag_workbench.core.split import stratified_split
from hashtag_workbench.core.vocabulary import load_vocabulary
from hashtag_workbench.warehouse import evaluations as wh_evaluations
from hashtag_workbench.warehouse import models as wh
from hashtag_workbench.warehouse import splits as wh_splits
from hashtag_workbench.warehouse.db import connect

torch.set_num_threads(1)  # the test machine is shared; one thread avoids oversubscription


@pytest.fixture(scope="module")
def trained_home(demo_home_template, tmp_path_factory):
    """The 8-photos x 4-words warehouse with every model trained (1 epoch) and evaluated once."""
    from hashtag_workbench.jobs.evaluate import evaluate
    from hashtag_workbench.jobs.train import train
    home = tmp_path_factory.mktemp("trained") / "home"
    shutil.copytree(demo_home_template, home)
    out = train(home, epochs=1, threads=1)
    assert out["failed"] == []
    evaluate(home, threads=1)
    return home


def test_split_is_stratified_seeded_and_recorded(trained_home):
    run = wh_splits.latest_split_run(trained_home)
    rows = wh_splits.split_rows(trained_home, run)
    assert len(rows) == 32
    for word in ("bird", "fruit", "flowers", "music"):
        parts = [r["part"] for r in rows if r["word"] == word]
        assert parts.count("val") == 2 and parts.count("train") == 6   # round(0.2 * 8) per word
    ids, words = [r["image_id"] for r in rows], [r["word"] for r in rows]
    assert stratified_split(ids, words, seed=0) == stratified_split(ids, words, seed=0)
    assert stratified_split(ids, words, seed=0) != stratified_split(ids, words, seed=1)
    with pytest.raises(ValueError, match="val_fraction"):
        stratified_split(ids, words, val_fraction=1.5)


def test_every_model_is_stored_with_config_curve_and_evaluation(trained_home):
    recs = wh.models(trained_home)
    kinds = sorted({r["kind"] for r in recs})
    assert kinds == ["bovw_svm", "conse", "finetune", "fused", "linear_probe"]
    n_conse = len(standard_variants(default_config().word_vectors))  # plain + each variant + the default
    assert sum(r["kind"] == "conse" for r in recs) == n_conse
    for r in recs:
        # supervised models know the words with photos; zero-shot ones every active vocabulary word
        assert r["classes"] == (["bird", "flowers", "fruit", "music"] if KINDS[r["kind"]].role == SUPERVISED
                                else sorted(load_vocabulary()))
        assert (trained_home / r["artifact"] / "config.json").is_file()
    ft = next(r for r in recs if r["kind"] == "finetune")
    curve = wh.learning_curve(trained_home, ft["model_id"])
    assert [c["epoch"] for c in curve] == [1] and curve[0]["val_acc"] is not None
    evals = wh_evaluations.evaluations(trained_home)
    assert {(e["model_id"], e["scope"]) for e in evals} >= {(r["model_id"], "val") for r in recs}
    n_zero_shot = n_conse + len(fused_configs())                     # ConSE's and every fitted fused variant
    assert sum(r["kind"] == "fused" for r in recs) == len(fused_configs())
    assert sum(e["scope"] == "all" for e in evals) == n_zero_shot    # zero-shot on every stored image
    assert sum(e["scope"] == "open" for e in evals) == n_zero_shot   # zero-shot over all 76 words, val images
    for e in evals:
        assert e["n_images"] == (32 if e["scope"] == "all" else 8)
        assert e["n_words"] == (4 if e["scope"] == "val" else 76)
        assert 0 <= e["top1"] <= e["top5"] <= 1
    with connect(trained_home, read_only=True) as con:
        run_id = evals[0]["run_id"]
        kind = con.execute("SELECT kind, status FROM runs WHERE run_id = ?", [run_id]).fetchone()
        assert kind == ("evaluate", "ok")
        n_pred = con.execute("SELECT count(*) FROM eval_predictions WHERE run_id = ? AND scope = 'val'",
                             [run_id]).fetchone()[0]
        n_pw = con.execute("SELECT count(*) FROM per_word_metrics WHERE run_id = ?", [run_id]).fetchone()[0]
        n_conf = con.execute("SELECT sum(n) FROM confusion WHERE run_id = ? AND scope = 'val'", [run_id]).fetchone()[0]
    assert n_pred == 8 * len(recs) and n_conf == 8 * len(recs) and n_pw >= 4 * len(recs)
    # the supervised models learn something even from 6 photos per word in 1 epoch
    probe = next(e for e in evals if e["kind"] == "linear_probe")
    assert probe["top1"] >= 0.5


def test_model_rebuilt_from_the_warehouse_alone_predicts_like_the_evaluation(trained_home):
    import json

    from hashtag_workbench.core.predictor import ImageBatch, load_model
    from hashtag_workbench.jobs._modeldata import read_photo
    evals = wh_evaluations.evaluations(trained_home)
    run_id = evals[0]["run_id"]
    for rec in wh.models(trained_home):
        model = load_model(wh.get_model(trained_home, rec["model_id"]))   # record + artifact, nothing else
        rows = [r for r in wh_splits.split_rows(trained_home, rec["split_run_id"]) if r["part"] == "val"]
        probs = model.predict(ImageBatch.of([read_photo(trained_home, r["path"]) for r in rows]))
        # a zero-shot model's own (all-word) answers are its 'open' scope; 'val' restricts it to the split's words
        scope = "open" if KINDS[rec["kind"]].role == ZERO_SHOT else "val"
        with connect(trained_home, read_only=True) as con:
            stored = dict(con.execute("SELECT image_id, top5 FROM eval_predictions WHERE run_id = ? AND "
                                      "model_id = ? AND scope = ?", [run_id, rec["model_id"], scope]).fetchall())
        for r, p in zip(rows, probs):
            top = json.loads(stored[r["image_id"]])
            assert top[0][0] == model.classes[int(np.argmax(p))], rec["name"]
            assert abs(top[0][1] - float(p.max())) < 2e-3, rec["name"]


def test_curation_shapes_the_split(demo_home):
    from hashtag_workbench.jobs.split import make_split
    from hashtag_workbench.warehouse.curation import decide
    imgs = wh_splits.training_images(demo_home)
    bird = [r["image_id"] for r in imgs if r["word"] == "bird"]
    decide(demo_home, bird[:2], "reject")
    decide(demo_home, bird[2:3], "relabel", new_word="fruit")
    from hashtag_workbench.warehouse import runs
    finished, killed = runs.start_run(demo_home, "outliers", {}), runs.start_run(demo_home, "outliers", {})
    runs.finish_run(demo_home, finished, "ok", {})
    runs.finish_run(demo_home, killed, "interrupted", {})
    with connect(demo_home) as con:   # a finished outliers run flags one unreviewed image, a killed one another
        con.executemany("INSERT INTO outlier_scores (image_id, run_id, detector, word, score, flagged) "
                        "VALUES (?, ?, 'kmeans_2sigma', 'bird', 3.0, TRUE)", [[bird[3], finished], [bird[4], killed]])
    run = make_split(demo_home)
    rows = {r["image_id"]: r for r in wh_splits.split_rows(demo_home, run)}
    assert bird[0] not in rows and bird[1] not in rows
    assert rows[bird[2]]["word"] == "fruit"
    assert bird[3] in rows                                           # flagged kept by default
    run2 = make_split(demo_home, exclude_flagged=True)
    kept = {r["image_id"] for r in wh_splits.split_rows(demo_home, run2)}
    assert bird[3] not in kept and bird[4] in kept                   # a killed run's flags count nowhere


def test_bovw_and_probe_refuse_bad_training_data():
    from hashtag_workbench.core.bovw import BoVWConfig, BoVWModel
    from hashtag_workbench.core.probe import ProbeConfig, ProbeModel
    with pytest.raises(ValueError, match="no training images for"):
        ProbeModel(ProbeConfig(), ["a", "b"]).fit_features(np.zeros((2, 3)), ["a", "a"])
    with pytest.raises(ValueError, match="descriptor sets"):
        BoVWModel(BoVWConfig(), ["a", "b"]).fit_descriptors([np.zeros((4, 104))], ["a", "b"])


def test_finetune_resnet18_with_a_given_weights_file(tmp_path):
    """ResNet-18 fine-tuning runs when its weights are given (a real state dict, randomly initialised here)."""
    from PIL import Image
    from torchvision.models import resnet18

    from hashtag_workbench.core.backbones import load_backbone
    from hashtag_workbench.core.finetune import FinetuneConfig, FinetuneError, FinetuneModel, finetune
    torch.save(resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    bb = load_backbone("resnet18", tmp_path / "r18.pth")
    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(4)]
    cfg = FinetuneConfig(backbone="resnet18", weights=str(tmp_path / "r18.pth"), epochs=2, train_blocks=1,
                         batch_size=2)
    model, curve = finetune(bb, cfg, ["a", "b"], imgs[:2], ["a", "b"], imgs[2:], ["a", "b"])
    assert len(curve) == 2 and all(np.isfinite(c.train_loss) for c in curve)
    model.save(tmp_path / "m.pt")
    back = FinetuneModel.load(tmp_path / "m.pt", cfg.to_dict(), ["a", "b"])
    np.testing.assert_allclose(back.predict_images(imgs), model.predict_images(imgs), atol=1e-5)
    with pytest.raises(FinetuneError, match="supports"):
        FinetuneConfig(backbone="alexnet")


def _demo_photos(words=("bird", "fruit", "flowers"), per_word=6):
    from PIL import Image

    from tests.conftest import DEMO_PHOTOS
    items = [(Image.open(p).convert("RGB"), w) for w in words
             for p in sorted((DEMO_PHOTOS / w).glob("*.jpg"))[:per_word]]
    return [im for im, _ in items], [w for _, w in items]


def test_finetune_cached_on_disk_trains_like_in_memory_and_stops_early(tmp_path):
    """The on-disk activation cache trains exactly as the in-memory one; with a held-out stop set the run
    ends on a plateau of its loss, keeps that epoch's weights, and still trains the last blocks."""
    from hashtag_workbench.core.backbones import load_backbone
    from hashtag_workbench.core.finetune import FinetuneConfig, finetune
    from hashtag_workbench.infra.arrays import NpyStore
    images, words = _demo_photos()
    bb = load_backbone("efficientnet_lite0")
    classes = sorted(set(words))
    cfg = FinetuneConfig(epochs=2, batch_size=4, patience=0)
    m1, c1 = finetune(bb, cfg, classes, images[:12], words[:12], images[12:], words[12:])
    store = NpyStore(tmp_path / "cache")
    m2, c2 = finetune(bb, cfg, classes, images[:12], words[:12], images[12:], words[12:], store=store)
    assert [round(c.train_loss, 5) for c in c1] == [round(c.train_loss, 5) for c in c2]
    np.testing.assert_allclose(m1.predict_images(images), m2.predict_images(images), atol=1e-5)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        "train-efficientnet_lite0-front13-nchw-00000.npy", "val-efficientnet_lite0-front13-nchw-00000.npy"]
    store.clear()

    stop_cfg = FinetuneConfig(epochs=13, batch_size=4, patience=1, stop_fraction=0.34, stop_min_train=10, lr=3e-2)
    model, curve = finetune(bb, stop_cfg, classes, images, words)
    assert all(c.stop_loss is not None for c in curve)
    assert model.epochs_run == len(curve) < 13                          # stopped on the plateau
    best = min(range(len(curve)), key=lambda i: curve[i].stop_loss) + 1
    assert model.epoch_kept == best and curve[best - 1].stop_loss < curve[-1].stop_loss + 1e-9
    def same(i):
        return all(torch.equal(p, q) for p, q in zip(model.backbone.model._blocks[i].parameters(),
                                                      bb.model._blocks[i].parameters()))
    assert not any(same(i) for i in (13, 14, 15))                      # the last 3 blocks really trained
    assert all(same(i) for i in range(13))                             # the front stayed pretrained


def test_bovw_from_photos_matches_bovw_from_descriptors_in_parallel_too():
    """fit_images (sampled codebook, photos straight to histograms, in worker processes) gives the model
    fit_descriptors() gives when every photo is in the codebook sample."""
    from hashtag_workbench.core.bovw import BoVWConfig, BoVWModel, image_descriptors, image_histograms
    images, words = _demo_photos(per_word=5)
    cfg = BoVWConfig(codebook_size=16)
    classes = sorted(set(words))
    a = BoVWModel(cfg, classes).fit_descriptors([image_descriptors(im, cfg) for im in images], words)
    b = BoVWModel(cfg, classes).fit_images(images, words)
    np.testing.assert_allclose(a.centers, b.centers)
    np.testing.assert_allclose(a.predict_images(images), b.predict_images(images), atol=1e-9)
    one = image_histograms(images, cfg, b.centers, workers=1)
    two = image_histograms(images, cfg, b.centers, workers=2)
    np.testing.assert_allclose(one, two)
    # a codebook from a sample of the photos (as at scale): every photo still gets its histogram
    sampled = BoVWModel(BoVWConfig(codebook_size=16, max_kmeans_descriptors=500), classes).fit_images(images, words)
    assert sampled.predict_images(images).shape == (len(images), len(classes))
