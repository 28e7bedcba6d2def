"""Zero-shot + unlabelled photos (conse_transductive): self-training without labels, stored and applied per photo."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from hashtag_workbench.core.transductive import (
    TransductiveConfig,
    TransductiveError,
    TransductiveModel,
    self_train,
)
from hashtag_workbench.warehouse import splits as wh_splits


def clustered(seed: int = 0, per: int = 30, noise: float = 0.6):
    """3 visual clusters (words 0-2 of 5; words 3-4 have no photos) and a zero-shot model that is right
    about 55 % of the photos, wrong at random otherwise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 32)) * 3
    truth = np.repeat(np.arange(3), per)
    feats = centres[truth] + rng.normal(size=(len(truth), 32)) * noise * 3
    guess = np.where(rng.random(len(truth)) < 0.55, truth, rng.integers(0, 5, len(truth)))
    probs = np.full((len(truth), 5), 0.1)
    probs[np.arange(len(truth)), guess] = 0.6
    return feats, probs / probs.sum(axis=1, keepdims=True), truth


def test_self_training_fixes_scattered_mistakes_without_labels():
    feats, probs, truth = clustered()
    before = (probs.argmax(1) == truth).mean()
    protos, mean, has, rep = self_train(feats, probs, TransductiveConfig())
    model = TransductiveModel(TransductiveConfig(), list("abcde"), protos, mean, has)
    after = (model.predict_features(feats, probs).argmax(1) == truth).mean()
    assert before < 0.75 and after > before + 0.15
    assert rep["photos"] == 90 and rep["top_word_changed"] > 0
    # a new photo is scored alone, from its own features and the seed's scores of it
    one = model.predict_features(feats[:1], probs[:1])
    assert one.shape == (1, 5) and np.allclose(one.sum(), 1.0)
    assert np.allclose(one, model.predict_features(feats, probs)[:1])
    # the seed's weight matters: all of it gives back the zero-shot ranking
    cfg = TransductiveConfig(seed_weight=1.0)
    p, m, h, _ = self_train(feats, probs, cfg)
    assert (TransductiveModel(cfg, list("abcde"), p, m, h).predict_features(feats, probs).argmax(1)
            == probs.argmax(1)).all()


def test_self_training_checks_its_inputs():
    feats, probs, _ = clustered()
    for bad in (dict(rounds=0), dict(seed_weight=1.5), dict(temperature=0), dict(min_votes=0)):
        with pytest.raises(TransductiveError):
            TransductiveConfig(**bad)
    with pytest.raises(TransductiveError, match="one score row per photo"):
        self_train(feats[:5], probs[:4])
    with pytest.raises(TransductiveError, match="at least 2"):
        self_train(feats[:1], probs[:1])


@pytest.fixture
def trained(demo_home):
    from hashtag_workbench.jobs.features import compute_features
    from hashtag_workbench.jobs.train import train
    from hashtag_workbench.warehouse import models as wh
    compute_features(demo_home)
    out = train(demo_home, models=("conse_transductive",), threads=1)
    assert out["failed"] == [] and len(out["model_ids"]) == 1
    return demo_home, wh.get_model(demo_home, out["model_ids"][0])


def test_kind_trains_without_labels_and_predicts_photo_by_photo(trained):
    from hashtag_workbench.core.predictor import ImageBatch, load_model
    from hashtag_workbench.jobs._modeldata import read_photo, stored_batch
    from hashtag_workbench.jobs.train import train_kind
    from hashtag_workbench.warehouse import curation
    from hashtag_workbench.warehouse import models as wh
    from hashtag_workbench.warehouse.runs import get_run
    h, rec = trained
    seed = rec["config"]["seed"]
    from hashtag_workbench.core.kinds import DEFAULT_ZERO_SHOT
    assert rec["kind"] == "conse_transductive" and seed["kind"] == DEFAULT_ZERO_SHOT and rec["config"]["photos"] == 32
    assert rec["classes"] == seed["classes"] and len(rec["classes"]) == 76   # the whole vocabulary, like its seed
    assert rec["name"].startswith(seed["name"]) and "unlabelled photos" in rec["name"]
    assert get_run(h, rec["model_id"])["counts"]["photos"] == 32
    model = load_model(rec)
    rows = wh_splits.unlabelled_pool(h)
    batch, _ = stored_batch(h, rows, ("efficientnet_lite0",))
    probs = model.predict(batch)
    # one photo alone (its CNN outputs computed now) gets the row it gets in the batch
    single = model.predict(ImageBatch.of([read_photo(h, rows[3]["path"])]))
    assert np.allclose(single[0], probs[3], atol=2e-3)

    # the labels are never read: relabel every photo of two words, self-train again, same prototypes
    bird = [r["image_id"] for r in wh_splits.all_labelled(h) if r["word"] == "bird"]
    curation.decide(h, bird, "relabel", "music")
    from hashtag_workbench.core.kinds import KINDS
    from hashtag_workbench.jobs.train import _Vocabulary
    again = wh.get_model(h, train_kind(h, KINDS["conse_transductive"], TransductiveConfig(), _Vocabulary(h), None))
    with np.load(f"{again['artifact_path']}/model.npz") as a, np.load(f"{rec['artifact_path']}/model.npz") as b:
        assert np.allclose(a["prototypes"], b["prototypes"]) and (a["has"] == b["has"]).all()

    # the seed travels with the model: removing the seed model's own folder changes nothing
    shutil.rmtree(wh.model_dir(h, seed["model_id"]))
    assert np.allclose(load_model(rec).predict(batch), probs)


def test_the_pool_shapes_the_model_a_tiny_pool_gives_back_the_seed_and_save_load_is_exact(trained, tmp_path):
    """Real demo photos, real EfficientNet-Lite0 features and the real default zero-shot seed."""
    from hashtag_workbench.core.predictor import load_model
    from hashtag_workbench.jobs._modeldata import stored_batch
    from hashtag_workbench.jobs._unlabelled import unlabelled_photos
    h, rec = trained
    pool = unlabelled_photos(h, "efficientnet_lite0", lambda m: None)
    feats, seed, classes = pool["features"], pool["probs"], list(pool["seed"]["classes"])
    assert pool["seed"]["model_id"] == rec["config"]["seed"]["model_id"]
    cfg = TransductiveConfig()

    def fit(rows):
        protos, mean, has, rep = self_train(feats[rows], seed[rows], cfg)
        return TransductiveModel(cfg, classes, protos, mean, has, report=rep)
    whole = fit(np.arange(len(feats)))
    probs = whole.predict_features(feats, seed)
    assert whole.has.sum() >= 2 and not np.allclose(probs, seed, atol=1e-3)
    # calibration: one factor, fitted without labels, keeps the seed's mean top probability on the pool
    assert whole.sharpness != 1.0 and abs(probs.max(axis=1).mean() - seed.max(axis=1).mean()) < 1e-3
    # the stored kind is this same model: its artifact carries the factor, its scores match
    rows = wh_splits.unlabelled_pool(h)
    assert [r["image_id"] for r in rows] == pool["image_ids"]
    batch, _ = stored_batch(h, rows, ("efficientnet_lite0",))
    assert np.allclose(load_model(rec).predict(batch), probs, atol=1e-5)

    # another pool, another model: the photos of two words only
    word = {r["image_id"]: r["word"] for r in wh_splits.all_labelled(h)}
    two = np.array([i for i, image_id in enumerate(pool["image_ids"]) if word[image_id] in ("bird", "fruit")])
    other = fit(two)
    assert not np.allclose(other.prototypes, whole.prototypes) or (other.has != whole.has).any()
    assert not np.allclose(other.predict_features(feats, seed), probs, atol=1e-3)

    # a pool too small for any prototype (2 photos < min_votes) gives back the seed exactly
    tiny = fit(np.array([0, len(feats) - 1]))
    assert not tiny.has.any() and tiny.sharpness == 1.0
    assert np.allclose(tiny.predict_features(feats, seed), seed / seed.sum(axis=1, keepdims=True))

    # save -> load gives the very same probabilities (the calibration factor included)
    whole.save(tmp_path / "m.npz")
    back = TransductiveModel.load(tmp_path / "m.npz", cfg.to_dict(), classes)
    assert back.sharpness == whole.sharpness and np.array_equal(back.predict_features(feats, seed), probs)


def test_kind_without_photos_says_so_in_one_line(seeded_home, capsys):
    from hashtag_workbench.jobs.cli import main
    assert main(["--home", str(seeded_home), "train", "--models", "conse_transductive"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "needs at least 2 stored photos" in err[0] and "import-folder" in err[0]


def test_curve_chart_draws_the_unlabelled_point_as_a_level():
    from hashtag_workbench.core import curve as cc
    from hashtag_workbench.dashboard.curve_chart import curve_figure
    pts = [{"method": cc.ZERO_SHOT, "per_word": "0", "photos_per_word": 0, "top1": 0.4, "top5": 0.7, "best": True},
           {"method": cc.UNLABELLED, "per_word": "0", "photos_per_word": 0, "top1": 0.47, "top5": 0.72,
            "name": "zero-shot + 32 unlabelled photos", "best": False},
           {"method": cc.PROBE, "per_word": "1", "photos_per_word": 1, "words": 4, "words_with_k": 4, "seeds": 1,
            "top1": 0.3, "top5": 0.6}]
    texts = [a.text for a in curve_figure(pts).layout.annotations]
    assert "zero-shot + 32 unlabelled photos 47%" in texts and "zero-shot + 32 unlabelled photos 72%" in texts
