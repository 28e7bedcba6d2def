"""WordNet offline, the hierarchy evidence, the fused zero-shot model's fit, calibration and "none of these"."""
from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from hashtag_workbench.core.fused import FusedConfig, read_fusion_file
from hashtag_workbench.core.hierarchy import choose_sense
from hashtag_workbench.core.wordnet import REBUILD, WordNetError, load_wordnet
from hashtag_workbench.jobs.cli import main

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "datasets" / "demo" / "photos"


@pytest.fixture(scope="module")
def wn():
    return load_wordnet()


@pytest.fixture(scope="module")
def spacy():
    from hashtag_workbench.core.wordvectors import cached_word_vectors
    return cached_word_vectors("spacy")


def test_all_1000_imagenet_ids_resolve_in_torchvision_order(wn):
    from hashtag_workbench.core.backbones import imagenet_classes
    assert len(wn.imagenet) == 1000 == len(set(wn.imagenet))
    assert wn.wnid(wn.imagenet[0]) == "n01440764" and "tench" in wn.names(wn.imagenet[0])
    names = imagenet_classes()
    # torchvision's names are one of each synset's lemmas (a few are spelled differently, e.g. 'crane')
    same = sum(names[i].lower() in {n.lower() for n in wn.names(r)} for i, r in enumerate(wn.imagenet))
    assert same >= 900, same


def test_the_dog_sense_covers_the_118_dog_classes(wn):
    from hashtag_workbench.core.backbones import imagenet_classes
    dog = wn.senses("dog")[0]
    under = wn.classes_under(dog)
    assert len(under) == 118 and under == list(range(151, 269))     # torchvision's dog breeds
    names = imagenet_classes()
    assert "golden retriever" in [names[i] for i in under] and "tabby" not in [names[i] for i in under]
    assert wn.senses("animals")[0] in wn.ancestors(wn.imagenet[under[0]])   # plural folded, hypernyms walked


def test_senses_are_chosen_by_the_words_hashtags(wn, spacy):
    fish = choose_sense(wn, "fish", ["fish", "aquarium", "underwater", "sealife"], spacy)
    assert fish.has_hierarchy and "vertebrate" in wn.glosses[fish.chosen]
    pc = choose_sense(wn, "mouse", ["mouse", "computer", "click", "keyboard"], spacy)
    pet = choose_sense(wn, "mouse", ["mouse", "rodent", "cute", "pet"], spacy)
    assert pc.chosen != pet.chosen and "rodent" in wn.glosses[pet.chosen]
    assert [wn.wnid(wn.imagenet[i]) for i in pc.classes] == ["n03793489"]     # ImageNet's computer mouse
    bat = choose_sense(wn, "bat", ["bat", "baseball", "cricket"], spacy)
    assert "club" in wn.glosses[bat.chosen] and "mammal" not in wn.glosses[bat.chosen]
    assert choose_sense(wn, "selfie", ["selfie"], spacy).chosen is None        # no noun: word vectors only


def test_a_damaged_wordnet_file_says_how_to_rebuild_it(tmp_path, monkeypatch, capsys):
    import hashtag_workbench.core.wordnet as wordnet
    bad = tmp_path / "wordnet.json.gz"
    bad.write_bytes(gzip.compress(b'{"offsets": [1, 2]}')[:25])
    with pytest.raises(WordNetError, match="rebuild it with"):
        load_wordnet(bad)
    bad.write_bytes(gzip.compress(json.dumps({"offsets": []}).encode()))
    with pytest.raises(WordNetError, match="no lemmas"):
        load_wordnet(bad)
    monkeypatch.setattr(wordnet, "WORDNET_FILE", bad)
    load_wordnet.cache_clear()
    try:
        rc = main(["--home", str(tmp_path / "home"), "words", "list"])
    finally:
        load_wordnet.cache_clear()
    err = capsys.readouterr().err
    assert rc == 2 and REBUILD in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.fixture(scope="module")
def demo_logits():
    """ImageNet logits of 5 demo photos per word (105 photos) and their folder words."""
    import torch

    from hashtag_workbench.core.backbones import compute_features, get_backbone
    from hashtag_workbench.core.images import decode_rgb
    torch.set_num_threads(1)
    files = [(d.name, f) for d in sorted(DEMO.iterdir()) for f in sorted(d.iterdir())[:5]]
    _, logits = compute_features(get_backbone("efficientnet_lite0"), [decode_rgb(f.read_bytes()) for _, f in files])
    return logits, [w for w, _ in files]


def _fit(logits, words, cfg):
    sys.path.insert(0, str(ROOT))
    from datasets.fit_zeroshot import fit_variant
    from hashtag_workbench.core.vocabulary import load_vocabulary
    return fit_variant(cfg, logits, words, load_vocabulary(), folds=3)


def test_fusion_weights_and_temperature_are_fitted_from_the_photos_and_follow_them(demo_logits):
    logits, words = demo_logits
    cfg, rep = _fit(logits, words, FusedConfig("fused"))
    assert rep["photos"] == 105 and rep["words"] == 76
    assert rep["ece_after"] < rep["ece_before"]                    # calibration lowers ECE on the demo photos
    assert rep["cv_ece_calibrated"] < rep["cv_ece_uncalibrated"]   # ... and on photos the fit did not see
    assert rep["cv_top1"] > 0.3 and 0 < cfg.threshold < 1
    # other labels (every photo filed under the next folder's word): other weights, a much hotter temperature
    order = sorted(set(words))
    shifted = [order[(order.index(w) + 1) % len(order)] for w in words]
    other, other_rep = _fit(logits, shifted, FusedConfig("fused"))
    fitted = ("alpha", "eps", "weight", "baseline", "calibration", "threshold")
    assert [getattr(cfg, k) for k in fitted] != [getattr(other, k) for k in fitted]
    assert other.calibration > cfg.calibration and other_rep["cv_top1"] < rep["cv_top1"]


def test_the_shipped_fit_records_its_run_and_meets_the_goal():
    fit = read_fusion_file()
    run = fit["run"]
    assert run["command"].startswith("python datasets/fit_zeroshot.py") and run["photos"] == 536
    rep = fit["variants"][fit["default"]]["report"]
    assert rep["cv_top1"] >= 0.45 and rep["top1"] >= 0.45           # demo photos, all 76 words, all images
    assert rep["ece_after"] < rep["ece_before"]
    assert set(fit["variants"]) >= {"hierarchy", "fused", "fused_hierse"}


def test_a_damaged_fusion_fit_names_the_script_that_remakes_it(tmp_path):
    from hashtag_workbench.core.fused import FusionFileError
    bad = tmp_path / "fit.json"
    bad.write_text('{"variants": {}, "default": "fused"')
    with pytest.raises(FusionFileError, match="python datasets/fit_zeroshot.py"):
        read_fusion_file(bad)


@pytest.fixture(scope="module")
def fresh_home(tmp_path_factory):
    return tmp_path_factory.mktemp("fused") / "home"


def test_fresh_directory_predict_uses_the_fused_default_and_says_if_it_is_confident(fresh_home, capsys):
    from hashtag_workbench.warehouse import models as wh
    photos = [next((DEMO / w).iterdir()) for w in ("fish", "sky")]
    rc = main(["--home", str(fresh_home), "predict", "--hashtags", "4", *map(str, photos)])
    out = capsys.readouterr().out
    assert rc == 0 and out.count("zero-shot [Zero-shot hierarchy + ConSE") == 2
    assert out.count("confident: ") == 2 and "confident: yes" in out            # a fish photo is sure
    (model,) = wh.models(fresh_home)
    assert model["kind"] == "fused" and model["config"]["fit"].startswith("fit ")
    for block in out.split("\n" + str(photos[1]))[:1]:
        tags = [t for t in block.split() if t.startswith("#")]
        assert 0 < len(tags) <= 4 and len(set(tags)) == len(tags)


def test_words_list_says_which_words_have_hierarchy_evidence(fresh_home, capsys):
    assert main(["--home", str(fresh_home), "words", "list"]) == 0
    lines = {s.split()[0]: s for s in capsys.readouterr().out.splitlines()}
    assert lines["selfie"].endswith("[word vector only (no WordNet noun sense)]")
    assert "word vector only ('sky' has no ImageNet class beneath it)" in lines["sky"]
    assert "[hierarchy: 118 ImageNet classes under 'dog']" in lines["dog"]


def test_a_word_without_a_noun_sense_is_scored_by_its_word_vector(fresh_home):
    """'selfie' has no WordNet noun: no ImageNet class counts for it, yet the word-vector path ranks it."""
    from hashtag_workbench.core.backbones import imagenet_classes
    from hashtag_workbench.core.predictor import load_model
    from hashtag_workbench.jobs.train import ensure_zero_shot
    model = load_model(ensure_zero_shot(fresh_home))
    j, names = model.classes.index("selfie"), imagenet_classes()
    assert not model.model.member[:, j].any()

    def probs(name):
        logits = np.zeros((1, 1000))
        logits[0, names.index(name)] = 12.0
        return model.model.predict_logits(logits)[0]
    camera, burger = probs("Polaroid camera"), probs("cheeseburger")
    assert j in np.argsort(-camera)[:3] and camera[j] > 100 * burger[j]


@pytest.mark.parametrize("word, imagenet_name", [("reptile", "common iguana"), ("castle", "castle")])
def test_an_added_word_gets_hierarchy_evidence_at_once(fresh_home, capsys, word, imagenet_name):
    from hashtag_workbench.core.backbones import imagenet_classes
    from hashtag_workbench.core.predictor import load_model
    from hashtag_workbench.jobs.train import ensure_zero_shot
    assert main(["--home", str(fresh_home), "words", "add", word]) == 0
    assert main(["--home", str(fresh_home), "words", "list"]) == 0
    line = next(s for s in capsys.readouterr().out.splitlines() if s.startswith(word + " "))
    assert "[hierarchy: " in line
    model = load_model(ensure_zero_shot(fresh_home))
    senses = {s["word"]: s for s in json.loads((fresh_home / model_dir(fresh_home, model.model_id)
                                                / "report.json").read_text())["senses"]}
    assert senses[word]["imagenet_classes"] >= 1 and word not in model.model.report.get("words_without_hierarchy", [])
    logits = np.zeros((1, 1000))
    logits[0, imagenet_classes().index(imagenet_name)] = 12.0
    probs = model.model.predict_logits(logits)[0]
    assert model.classes[int(np.argmax(probs))] == word
    assert model.model.member[:, model.classes.index(word)].any()


def model_dir(home, model_id):
    from hashtag_workbench.warehouse import models as wh
    return wh.model_dir(home, model_id).relative_to(home)
