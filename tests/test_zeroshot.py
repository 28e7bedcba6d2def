"""Zero-shot needs nothing: empty data directories, the open vocabulary, spaCy vectors and bad input."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from hashtag_workbench.core.kinds import DEFAULT_ZERO_SHOT, default_zero_shot_config
from hashtag_workbench.jobs.cli import main
from hashtag_workbench.warehouse import models as wh
from hashtag_workbench.warehouse import runs
from tests.imagefiles import bomb_png_bytes, good_photo_bytes, truncated_jpeg_bytes, write

zs_home_path: list = []


@pytest.fixture(scope="module")
def zs_home(tmp_path_factory):
    """One empty data directory shared by the tests below, which build on each other's state in order."""
    return tmp_path_factory.mktemp("zs") / "home"


def _predict_json(home, *paths, capsys):
    capsys.readouterr()  # what earlier commands printed
    rc = main(["--home", str(home), "predict", "--json", "--seed", "0", *map(str, paths)])
    out, err = capsys.readouterr()
    return rc, [json.loads(line) for line in out.strip().splitlines()], err


def _zero_shot_models(home, kind=DEFAULT_ZERO_SHOT):
    return wh.models(home, kinds=[kind])


def test_predict_on_an_empty_data_dir_gives_zero_shot_words_over_the_whole_vocabulary(zs_home, tmp_path, capsys):
    photo = write(tmp_path / "bird.jpg", good_photo_bytes("bird", 0))
    rc, lines, err = _predict_json(zs_home, photo, capsys=capsys)
    assert rc == 0 and len(lines) == 1                       # stdout is pure JSON, one object per image
    res = lines[0]
    assert set(res) == {"image", "supervised", "zero_shot", "supervised_reason"}
    assert res["supervised"] is None and "no supervised model" in res["supervised_reason"]
    zs = res["zero_shot"]
    assert set(zs) == {"top", "hashtags", "confident", "threshold"} and len(zs["top"]) == 5
    assert isinstance(zs["confident"], bool) and len(zs["hashtags"]) <= 15
    assert all(isinstance(w, str) and 0 <= p <= 1 for w, p in zs["top"])
    assert "can answer 76 words" in err
    (model,) = _zero_shot_models(zs_home)                    # built on first use ...
    assert len(model["classes"]) == 76 and model["config"]["vocabulary_fingerprint"]
    run = runs.get_run(zs_home, model["model_id"])
    assert run["status"] == "ok" and run["kind"] == "train-fused"     # the fused default, fitted offline
    assert run["config"]["variant"] == default_zero_shot_config().variant
    rc, again, _ = _predict_json(zs_home, photo, capsys=capsys)
    assert rc == 0 and again[0]["zero_shot"]["top"] == zs["top"]
    assert len(_zero_shot_models(zs_home)) == 1              # ... and reused while the vocabulary is unchanged


def test_words_add_castle_then_zero_shot_can_rank_castle(zs_home, tmp_path, capsys):
    from hashtag_workbench.core.backbones import imagenet_classes
    from hashtag_workbench.core.predictor import load_model
    assert main(["--home", str(zs_home), "words", "add", "castle", "--hashtags", "#castle, medieval"]) == 0
    assert "added the word 'castle'" in capsys.readouterr().out
    rc, lines, err = _predict_json(zs_home, write(tmp_path / "p.jpg", good_photo_bytes("flowers", 1)), capsys=capsys)
    assert rc == 0 and "can answer 77 words" in err and "building" in err
    newest = _zero_shot_models(zs_home)[-1]
    assert "castle" in newest["classes"] and len(_zero_shot_models(zs_home)) == 2
    # a photo the CNN is sure shows a castle (ImageNet class 'castle') is answered with the new word
    logits = np.zeros((1, 1000))
    logits[0, imagenet_classes().index("castle")] = 12.0
    model = load_model(newest)
    probs = model.model.predict_logits(logits)[0]
    assert model.classes[int(np.argmax(probs))] == "castle"


def _used(err: str) -> dict:
    """The zero-shot model predict said it used."""
    model_id = int(re.search(r"zero-shot \[.*, model (\d+)\] can answer", err).group(1))
    return wh.get_model(zs_home_path[0], model_id)


def test_vocabulary_edits_rebuild_the_zero_shot_model_and_it_records_its_words(zs_home, tmp_path, capsys):
    zs_home_path[:] = [zs_home]
    photo = write(tmp_path / "p.jpg", good_photo_bytes("fruit", 0))
    assert main(["--home", str(zs_home), "words", "deactivate", "castle"]) == 0
    n = len(_zero_shot_models(zs_home))
    first = _used(_predict_json(zs_home, photo, capsys=capsys)[2])
    assert "castle" not in first["classes"] and len(first["classes"]) == 76
    assert len(_zero_shot_models(zs_home)) == n              # the first model's vocabulary again: reused
    assert main(["--home", str(zs_home), "words", "hashtags", "fruit", "#fruit", "apple"]) == 0
    second = _used(_predict_json(zs_home, photo, capsys=capsys)[2])
    assert second["model_id"] not in (first["model_id"],)    # a hashtag edit changes the fingerprint too
    assert second["classes"] == first["classes"] and len(_zero_shot_models(zs_home)) == n + 1
    assert main(["--home", str(zs_home), "words", "activate", "castle"]) == 0
    third = _used(_predict_json(zs_home, photo, capsys=capsys)[2])
    assert "castle" in third["classes"] and len(_zero_shot_models(zs_home)) == n + 2


def test_a_word_without_a_vector_is_said_once_logged_and_never_predicted(zs_home, tmp_path, capsys):
    # MiniLM (the default) gives every phrase a vector; spaCy's table lacks made-up words
    assert main(["--home", str(zs_home), "words", "add", "qzxvbnmq"]) == 0
    capsys.readouterr()
    assert main(["--home", str(zs_home), "train", "--models", "conse", "--word-vectors", "spacy",
                 "--plain-conse-only"]) == 0
    err = capsys.readouterr().err
    assert err.count("qzxvbnmq") == 1 and "no spaCy-md-300d vector" in err
    newest = _zero_shot_models(zs_home, "conse")[-1]
    assert "qzxvbnmq" not in newest["classes"] and "castle" in newest["classes"]
    assert "qzxvbnmq" in runs.get_run(zs_home, newest["model_id"])["log"]
    photo = write(tmp_path / "p.jpg", good_photo_bytes("bird", 2))
    rc = main(["--home", str(zs_home), "predict", "--zero-shot-model", str(newest["model_id"]), str(photo)])
    out, err = capsys.readouterr()
    assert rc == 0 and "qzxvbnmq" not in out + err           # said once, when the model was built


@pytest.fixture(scope="module")
def words_home(tmp_path_factory):
    """A seeded vocabulary that every refused edit must leave exactly as it was."""
    h = tmp_path_factory.mktemp("words") / "home"
    assert main(["--home", str(h), "words", "list"]) == 0
    return h


@pytest.mark.parametrize("name, why", [
    ("", "empty"), ("   ", "empty"), ("sun!set", "'!'"), ("x" * 200, "200 characters"),
    ("dog", "exists already"), ("саstle", "CYRILLIC"), ("ｃａｓｔｌｅ", "FULLWIDTH"), ("#beach", "'#'")])
def test_words_add_refuses_bad_names_in_one_line_and_changes_nothing(words_home, capsys, name, why):
    from hashtag_workbench.warehouse.words import hashtags_for, list_words
    home = words_home
    capsys.readouterr()
    before = (list_words(home), hashtags_for(home))
    rc = main(["--home", str(home), "words", "add", name, "--hashtags", "a,b"])
    err = capsys.readouterr().err
    assert rc == 2 and why in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert (list_words(home), hashtags_for(home)) == before


def test_predict_bad_files_one_line_each_others_predicted_exit_1(zs_home, tmp_path, capsys):
    good = write(tmp_path / "good.jpg", good_photo_bytes("bird", 0))
    text = write(tmp_path / "notes.jpg", b"not an image at all")
    cut = write(tmp_path / "cut.jpg", truncated_jpeg_bytes())
    huge = write(tmp_path / "huge.png", bomb_png_bytes(20000))
    rc, lines, err = _predict_json(zs_home, text, good, cut, huge, capsys=capsys)
    assert rc == 1 and [("error" in r) for r in lines] == [True, False, True, True]
    assert lines[1]["zero_shot"]["top"]
    assert sum(line.startswith("error:") for line in err.splitlines()) == 3 and "Traceback" not in err


def test_train_conse_on_an_empty_warehouse(home, capsys):
    assert main(["--home", str(home), "train", "--models", "conse", "--plain-conse-only"]) == 0
    out, err = capsys.readouterr()
    assert "zero-shot over 76 active words" in err and out.startswith("[train] models ")   # notes, then the report
    (model,) = wh.models(home)
    assert model["kind"] == "conse" and len(model["classes"]) == 76 and model["split_run_id"] is None
    assert main(["--home", str(home), "evaluate"]) == 0        # no photos: says so, no traceback
    assert "no evaluations yet" in capsys.readouterr().out


def test_spacy_vectors_read_without_spacy():
    import sys

    from hashtag_workbench.core.wordvectors import load_spacy, murmurhash64a
    assert murmurhash64a(b"coffee") == 3197928453018144401    # spaCy's documented hash of 'coffee'
    enc = load_spacy()
    assert enc.dim == 300 and "spacy" not in sys.modules
    vecs, mask = enc.encode(["coffee", "espresso", "beach", "guitar", "selfie", "zzqqxxv"])
    assert mask.tolist() == [True] * 5 + [False]
    np.testing.assert_array_equal(vecs[0], enc.vectors[enc.key2row[3197928453018144401]])
    unit = vecs[:5] / np.linalg.norm(vecs[:5], axis=1, keepdims=True)
    sims = unit[1] @ unit.T                                  # espresso's nearest other word is coffee
    assert int(np.argsort(-sims)[1]) == 0


def test_comparison_table_labels_both_scopes():
    from hashtag_workbench.jobs.evaluate import comparison_table
    rows = [dict(run_id=9, model_id=m, kind=k, name=n, scope=s, n_images=8, n_words=w, top1=0.5, top5=0.9)
            for m, k, n, s, w in [(1, "linear_probe", "probe", "val", 4), (2, "conse", "ConSE x", "val", 4),
                                  (2, "conse", "ConSE x", "open", 76)]]
    table = comparison_table(rows)
    assert "[val] same words and val images as the supervised models" in table
    assert "[open] open vocabulary" in table
    assert table.index("[val]") < table.index("[open]")


def test_train_names_the_same_default_backbone_without_importing_torch():
    from hashtag_workbench.core.backbones import DEFAULT_BACKBONE
    from hashtag_workbench.jobs.train import DEFAULT_BACKBONE as TRAIN_DEFAULT
    assert TRAIN_DEFAULT == DEFAULT_BACKBONE
