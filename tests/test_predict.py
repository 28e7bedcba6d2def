"""`hashtags predict`: text and JSON output, per-file errors, and the reusable predictor."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from hashtag_workbench.jobs.cli import main

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def predict_home(demo_home_template, tmp_path_factory):
    """The small demo warehouse with a probe and plain ConSE (the quick models) trained and evaluated."""
    from hashtag_workbench.jobs.evaluate import evaluate
    from hashtag_workbench.jobs.train import train
    home = tmp_path_factory.mktemp("pred") / "home"
    shutil.copytree(demo_home_template, home)
    train(home, models=("probe", "conse"), conse_variants=False, threads=1)
    evaluate(home, threads=1)
    return home


def _photo(home):
    from hashtag_workbench.warehouse.images import labelled_images
    return home / labelled_images(home)[0]["path"]


def test_predict_json_has_the_documented_shape_and_bad_files_get_errors(predict_home, tmp_path, capsys):
    good = _photo(predict_home)
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(good.read_bytes()[:300])
    rc = main(["--home", str(predict_home), "predict", "--json", "--seed", "3", str(good), str(text),
               str(tmp_path / "missing.png"), str(broken), str(good)])
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.strip().splitlines()]
    assert rc == 1 and len(lines) == 5
    ok = lines[0]
    assert set(ok) == {"image", "supervised", "zero_shot"}
    for role, n in (("supervised", 4), ("zero_shot", 5)):   # 4 words with photos; zero-shot knows all 76
        assert set(ok[role]) == {"top", "hashtags", "confident", "threshold"}
        assert len(ok[role]["top"]) == n and all(isinstance(w, str) and 0 <= p <= 1 for w, p in ok[role]["top"])
        assert all(isinstance(t, str) and not t.startswith("#") for t in ok[role]["hashtags"])
        assert len(set(ok[role]["hashtags"])) == len(ok[role]["hashtags"]) <= 15
    # the probe has no measured threshold; the fused zero-shot default has one, and no tags when not confident
    assert ok["supervised"]["confident"] is None and ok["supervised"]["hashtags"]
    zs = ok["zero_shot"]
    assert 0 < zs["threshold"] < 1 and zs["confident"] == (zs["top"][0][1] >= zs["threshold"])
    assert bool(zs["hashtags"]) == zs["confident"]
    assert lines[1]["error"].startswith("not an image")
    assert lines[2]["error"] == "file not found"
    assert "corrupt or truncated" in lines[3]["error"]
    assert lines[4]["supervised"]["top"] == ok["supervised"]["top"]
    assert "error:" in err and "notes.txt" in err


def test_predict_text_output_and_recorded_predictions(predict_home, capsys):
    from hashtag_workbench.warehouse.db import connect
    rc = main(["--home", str(predict_home), "predict", "--seed", "1", str(_photo(predict_home))])
    out = capsys.readouterr().out
    assert rc == 0 and "supervised [Linear probe" in out and "zero-shot [Zero-shot hierarchy + ConSE" in out
    assert "confident: not measured" in out and ("confident: yes" in out or "confident: no - none of these" in out)
    assert "can answer 4 words: bird, flowers, fruit, music" in out and "can answer 76 words" in out
    assert "#" in out and "%" in out
    with connect(predict_home, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] >= 2


def test_predict_with_an_unknown_model_id_says_so_in_one_line(predict_home, capsys):
    rc = main(["--home", str(predict_home), "predict", "--supervised-model", "999", str(_photo(predict_home))])
    err = capsys.readouterr().err
    assert rc == 2 and "no model with id 999" in err and "Traceback" not in err


def test_dashboard_entry_point_predicts_one_pil_image(predict_home):
    from PIL import Image

    from hashtag_workbench.core.predictor import load_model, predict_image
    from hashtag_workbench.warehouse.models import best_models
    from hashtag_workbench.warehouse.words import hashtags_for
    best = best_models(predict_home)
    assert best["supervised"]["kind"] == "linear_probe" and best["zero_shot"]["kind"] == "conse"
    img = Image.open(_photo(predict_home))
    res = predict_image(img, supervised=load_model(best["supervised"]), zero_shot=load_model(best["zero_shot"]),
                        hashtags=hashtags_for(predict_home), seed=0)
    assert res == predict_image(img, supervised=load_model(best["supervised"]),
                                zero_shot=load_model(best["zero_shot"]), hashtags=hashtags_for(predict_home), seed=0)
    assert 0 < len(res["supervised"]["hashtags"]) <= 15


def test_hashtags_n_gives_at_most_n_distinct_tags_and_the_study_sampling_stays(predict_home, capsys):
    photo = str(_photo(predict_home))
    for n in (0, 2, 6):
        capsys.readouterr()
        assert main(["--home", str(predict_home), "predict", "--json", "--hashtags", str(n), photo]) == 0
        res = json.loads(capsys.readouterr().out)
        for role in ("supervised", "zero_shot"):
            tags = res[role]["hashtags"]
            assert len(tags) <= n and len(set(tags)) == len(tags)
        assert len(res["supervised"]["hashtags"]) == n      # the probe has no threshold: all its words' tags count
    assert main(["--home", str(predict_home), "predict", "--json", "--sample-study", "--hashtags", "3", "--seed", "1",
                 photo]) == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res["supervised"]["hashtags"]) == 3
    top2 = {w for w, _ in res["supervised"]["top"][:2]}
    from hashtag_workbench.warehouse.words import hashtags_for
    tags = hashtags_for(predict_home)
    assert all(any(t in tags.get(w, []) for w in top2) for t in res["supervised"]["hashtags"])
    assert main(["--home", str(predict_home), "predict", "--hashtags", "-1", photo]) == 2
    assert "--hashtags must be 0 or more" in capsys.readouterr().err


def test_ranked_hashtags_follow_word_probability_times_tag_rank():
    from hashtag_workbench.core.hashtags import ranked_hashtags
    tags = {"dog": ["dog", "puppy", "pets", "cute"], "beach": ["beach", "sea", "cute"], "cat": ["cat"]}
    top = [("dog", 0.6), ("beach", 0.35), ("cat", 0.05)]
    # dog 0.6/1, beach 0.35/1, puppy 0.3, pets 0.2, sea 0.175, cute max(0.15, 0.117); cat under the threshold
    assert ranked_hashtags(top, tags, n_tags=10, threshold=0.1) == ["dog", "beach", "puppy", "pets", "sea", "cute"]
    assert ranked_hashtags(top, tags, n_tags=3, threshold=0.1) == ["dog", "beach", "puppy"]
    assert ranked_hashtags(top, tags, n_tags=10, threshold=0.7) == []          # none of these
    assert "cat" in ranked_hashtags(top, tags, n_tags=10, threshold=None)      # no threshold: every word
