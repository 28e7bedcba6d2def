"""The data-efficiency curve: sampling, zero-shot + photos, the job's JSON and storage, and its chart."""
from __future__ import annotations

import contextlib
import io
import json
import shutil

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from hashtag_workbench.core import curve as cc
from hashtag_workbench.core.fewshot import align_probs, fold_ids, log_mix, zero_shot_weight
from hashtag_workbench.core.probe import ProbeModel
from hashtag_workbench.warehouse import curve as wh_curve
from hashtag_workbench.warehouse import evaluations as wh_evaluations
from hashtag_workbench.warehouse import models as wh
from hashtag_workbench.warehouse import runs
from hashtag_workbench.warehouse import splits as wh_splits

WORDS = ["bird"] * 7 + ["fruit"] * 3 + ["music"] * 1


def test_sampling_takes_k_per_word_all_when_fewer_and_seeds_differ():
    idx = cc.sample_per_word(WORDS, 2, seed=0)
    picked = [WORDS[i] for i in idx]
    assert picked.count("bird") == 2 and picked.count("fruit") == 2 and picked.count("music") == 1
    assert len(set(idx.tolist())) == len(idx)
    assert sorted(cc.sample_per_word(WORDS, None, seed=0).tolist()) == list(range(len(WORDS)))
    draws = {tuple(cc.sample_per_word(WORDS, 2, seed=s).tolist()) for s in range(5)}
    assert len(draws) > 1                                            # each seed its own draw
    assert cc.sample_per_word(WORDS, 2, seed=3).tolist() == cc.sample_per_word(WORDS, 2, seed=3).tolist()
    three = cc.sample_per_word(WORDS, 3, seed=1).tolist()             # nested: k photos start the k+1 draw
    assert set(cc.sample_per_word(WORDS, 2, seed=1).tolist()) <= set(three)
    assert cc.coverage(WORDS, 3) == {"words": 3, "words_with_k": 2, "photos_per_word": round(7 / 3, 2)}
    assert cc.parse_per_word("5, all,1,2,2") == [1, 2, 5, None]
    for bad in ("0", "two", ""):
        with pytest.raises(ValueError, match="--per-word"):
            cc.parse_per_word(bad)


def test_zero_shot_plus_photos_pieces():
    zs = align_probs(np.array([[0.7, 0.3]]), ["fruit", "bird"], ["bird", "fruit", "music"])
    assert zs.shape == (1, 3) and zs[0].argmax() == 1 and 0 < zs[0, 2] < 1e-5   # music: no zero-shot score
    probe = np.array([[0.1, 0.2, 0.7]])
    assert np.allclose(log_mix(probe, zs, 0.0), probe, atol=1e-6)
    assert np.allclose(log_mix(probe, zs, 1.0), zs, atol=1e-6)
    assert zero_shot_weight(2.0, 0) == 1.0 and zero_shot_weight(2.0, 2) == 0.5 and zero_shot_weight(0.0, 3) == 0.0
    folds = fold_ids(WORDS, max_folds=5)
    for f in set(folds[folds >= 0]):
        kept = {w for w, g in zip(WORDS, folds) if g != f}
        assert kept == set(WORDS)                                    # every word keeps a training photo
    assert folds[WORDS.index("music")] == -1


def _synthetic(seed: int = 0) -> cc.CurveData:
    """3 words, separable features; val rows are marked by a constant last feature the train rows never have."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 6)) * 3
    words = ["a", "b", "c"]

    def rows(n, marker):
        y = [words[i % 3] for i in range(n)]
        x = np.stack([centres[words.index(w)] + rng.normal(size=6) for w in y])
        return np.hstack([x, np.full((n, 1), marker)]), y
    tx, ty = rows(30, 0.0)
    vx, vy = rows(12, 99.0)
    def zs(y):
        return align_probs(np.eye(3)[[words.index(w) for w in y]] * 0.4 + 0.2, words, words)
    return cc.CurveData(words, tx, ty, vx, vy, zs(ty), zs(vy))


def test_curve_trains_only_on_train_photos_and_averages_seeds(monkeypatch):
    data = _synthetic()
    seen = []
    real_fit = ProbeModel.fit_features

    def spy(self, feats, labels):
        seen.append(np.asarray(feats).copy())
        return real_fit(self, feats, labels)
    monkeypatch.setattr(ProbeModel, "fit_features", spy)
    val_before = data.val_feats.copy()
    out = cc.compute_curve(data, per_word=[1, 2, None], seeds=2)
    assert all((f[:, -1] == 0).all() for f in seen)                   # no val photo ever trained on
    assert np.array_equal(data.val_feats, val_before)
    assert [p["per_word"] for p in out["points"]] == ["1", "2", "all"]
    assert [len(f) for f in seen[:1]] == [3]                          # k=1: one photo per word
    for p in out["points"] + out["mix_points"]:
        assert p["seeds"] == 2 and 0 <= p["top1"] <= p["top5"] <= 1
    assert out["points"][-1]["top1"] == 1.0 and out["points"][-1]["photos_per_word"] == 10
    assert out["mix_points"][0]["weight"] == pytest.approx(2 / 3, abs=1e-3)     # the prior worth 2 photos, k=1


def test_crossing_sentence():
    pts = [{"per_word": "1", "photos_per_word": 1, "top1": 0.3}, {"per_word": "2", "photos_per_word": 2, "top1": 0.6},
           {"per_word": "all", "photos_per_word": 9.5, "top1": 0.9}]
    assert cc.crossing_sentence(pts, 0.5).startswith("supervised passes zero-shot at 2 photos per word")
    assert "already at 1 photo per word" in cc.crossing_sentence(pts, 0.2)
    assert "does not pass zero-shot (95.0% top-1)" in cc.crossing_sentence(pts, 0.95)
    assert "all photos (about 9.5 per word)" in cc.crossing_sentence(pts, 0.95)
    mix = [{**p, "top1": p["top1"] + 0.1} for p in pts]
    assert cc.mix_sentence(pts, mix, 0.5).endswith("at 2 of 3 sizes; below it at 1 (40.0% vs 50.0%)")


@pytest.fixture(scope="module")
def curve_home(demo_home_template, tmp_path_factory):
    """The 4-word demo warehouse with features, plain ConSE and a tiny CLIP built and evaluated, then the
    curve run once through the CLI (--json)."""
    from hashtag_workbench.jobs.cli import main
    from hashtag_workbench.jobs.evaluate import evaluate
    from hashtag_workbench.jobs.features import compute_features
    from hashtag_workbench.jobs.split import current_split
    from hashtag_workbench.jobs.train import train
    from tests.test_clip import save_tiny_clip
    base = tmp_path_factory.mktemp("curve")
    h = base / "home"
    shutil.copytree(demo_home_template, h)
    compute_features(h)  # once: train, evaluate and curve then read the stored features and logits
    current_split(h)     # zero-shot models need no split; the curve's supervised points do
    clip = save_tiny_clip(base / "tiny-clip")
    assert train(h, models=("conse",), conse_variants=False, clip_model=str(clip), threads=1)["failed"] == []
    evaluate(h, threads=1)
    split_before = wh_splits.split_rows(h, wh_splits.latest_split_run(h))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["--home", str(h), "curve", "--per-word", "1,2,all", "--seeds", "2", "--json"])
    assert rc == 0
    return h, json.loads(out.getvalue()), split_before


def test_curve_json_shape_storage_and_provenance(curve_home):
    h, out, split_before = curve_home
    assert 0 <= out["zero_shot_top1"] <= 1 and out["words"] == 4 and out["val_photos"] == 8
    assert [p["per_word"] for p in out["points"]] == ["1", "2", "all"]
    for p in out["points"]:
        assert {"per_word", "top1", "top5", "seeds", "words_with_k", "zero_shot_plus_photos"} <= set(p)
        assert p["seeds"] == 2 and p["words_with_k"] == 4
        assert 0 <= p["zero_shot_plus_photos"]["top1"] <= 1
    assert "passes zero-shot" in out["crossing"] or "does not pass" in out["crossing"]
    assert wh_splits.split_rows(h, wh_splits.latest_split_run(h)) == split_before    # the split is untouched
    stored = wh_curve.latest_curve(h)
    assert stored["run_id"] == out["run_id"] and stored["config"]["seeds"] == 2
    methods = [p["method"] for p in stored["points"]]
    assert methods.count(cc.PROBE) == 3 and methods.count(cc.MIX) == 3 and methods.count(cc.ZERO_SHOT) == 2
    # zero-shot + the split's 32 photos without their labels: one point at 0 labelled photos
    unl = next(p for p in stored["points"] if p["method"] == cc.UNLABELLED)
    assert unl["per_word"] == "0" and unl["name"] == "zero-shot + 32 unlabelled photos"
    assert unl["top1"] == out["zero_shot_plus_unlabelled"]["top1"] and 0 <= unl["top1"] <= unl["top5"] <= 1
    assert sum(p["best"] for p in stored["points"]) == 1
    run = runs.get_run(h, out["run_id"])
    assert run["kind"] == "curve" and run["status"] == "ok" and run["counts"]["done"] == 6


def test_clip_is_evaluated_in_both_scopes_and_joins_the_curve(curve_home):
    h, out, _ = curve_home
    clip = [r for r in wh.models(h) if r["kind"] == "clip"]
    # zero-shot covers the whole active vocabulary, the demo's four words among them
    assert len(clip) == 1 and len(clip[0]["classes"]) == 76
    assert {"bird", "flowers", "fruit", "music"} <= set(clip[0]["classes"])
    evals = {(e["kind"], e["scope"]): e for e in wh_evaluations.evaluations(h)}
    assert evals[("clip", "val")]["n_images"] == 8 and evals[("clip", "all")]["n_images"] == 32
    assert 0 <= evals[("clip", "val")]["top1"] <= evals[("clip", "val")]["top5"] <= 1
    assert {m["kind"] for m in out["zero_shot_models"]} == {"conse", "clip"}
    best = max(out["zero_shot_models"], key=lambda m: (m["top1"], m["top5"], m["model_id"]))
    assert out["zero_shot_model"]["model_id"] == best["model_id"] and out["zero_shot_top1"] == best["top1"]
    # the same-words val score of each zero-shot model is the one `evaluate` stored for it
    for m in out["zero_shot_models"]:
        assert m["top1"] == pytest.approx(evals[(m["kind"], "val")]["top1"], abs=1e-4)


def test_curve_without_zero_shot_model_says_what_to_run(demo_home, capsys):
    from hashtag_workbench.jobs.cli import main
    assert main(["--home", str(demo_home), "curve"]) == 2
    assert "error: no zero-shot model yet: run `hashtags train --models conse`" in capsys.readouterr().err


def _page(h):
    from hashtag_workbench.dashboard.curve_chart import render_curve
    render_curve(h)


def _texts(at) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "info", "caption") for e in at.get(kind))


def test_chart_draws_stored_points_with_the_crossing(home):
    assert "hashtags curve" in _texts(AppTest.from_function(_page, args=(str(home),)).run())
    run_id = runs.start_run(home, "curve", {"split_run_id": 1, "seeds": 3, "mix_strength": 2.0})
    pts = [{"method": cc.ZERO_SHOT, "per_word": "0", "photos_per_word": 0, "seeds": 1, "top1": 0.5, "top5": 0.8,
            "model_id": 9, "name": "ConSE plain", "best": True}]
    for k, t1 in ((1, 0.4), (2, 0.6), (5, 0.8)):
        pts.append({"method": cc.PROBE, "per_word": str(k), "photos_per_word": k, "seeds": 3, "words": 4,
                    "words_with_k": 4, "top1": t1, "top5": 0.9})
        pts.append({"method": cc.MIX, "per_word": str(k), "photos_per_word": k, "seeds": 3, "words": 4,
                    "words_with_k": 4, "top1": t1 + 0.1, "top5": 0.95, "weight": 0.5, "model_id": 9})
    wh_curve.save_curve(home, run_id, pts)
    runs.finish_run(home, run_id, "ok", {"done": 9})
    st.cache_data.clear()  # the empty state above was cached for 30 s
    at = AppTest.from_function(_page, args=(str(home),)).run()
    assert not at.exception
    text = _texts(at)
    assert "Supervised passes zero-shot at 2 photos per word (60.0% vs 50.0% top-1)" in text
    assert "at least as good as the better of the two alone at 3 of 3 sizes" in text
    assert "ConSE plain 50% (used)" in text
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = {t.get("name") for t in fig["data"]}
    assert {"supervised (linear probe)", "zero-shot + photos"} <= names
    assert next(t["y"] for t in fig["data"] if t.get("name") == "supervised (linear probe)") == [0.4, 0.6, 0.8]


def test_curve_figure_axes_have_numbers_and_titles():
    from hashtag_workbench.core.curve import PROBE, ZERO_SHOT
    from hashtag_workbench.dashboard.curve_chart import curve_figure
    pts = [{"method": PROBE, "photos_per_word": k, "per_word": str(k), "words_with_k": 4, "words": 4, "seeds": 3,
            "top1": 0.1 * k, "top5": 0.2 * k, "top1_std": 0.01, "top5_std": 0.02, "best": False} for k in (1, 2, 4)]
    pts.append({"method": ZERO_SHOT, "name": "ConSE", "top1": 0.3, "top5": 0.6, "best": True})
    fig = curve_figure(pts)
    for axis, title in ((fig.layout.yaxis, "top-1 accuracy"), (fig.layout.yaxis2, "top-5 accuracy")):
        assert axis.tickformat == ".0%" and axis.showticklabels and axis.title.text == title
    assert fig.layout.xaxis.title.text == "photos per word"
