"""The one model contract: every kind's class fits on what `train` hands over, predicts from an ImageBatch,
saves and loads itself; the registry names the classes and imports them only on demand."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from hashtag_workbench.core.kinds import KINDS, SUPERVISED, ZERO_SHOT, KindModel
from hashtag_workbench.core.predictor import ImageBatch
from hashtag_workbench.core.vocabulary import load_vocabulary
from tests.conftest import DEMO_PHOTOS

WORDS = ("bird", "fruit", "flowers")
# what `train` builds its configs from (jobs/train.py), small where a kind allows it
OPTIONS = dict(epochs=1, backbone="efficientnet_lite0", weights=None, word_vectors="spacy", top_t=10,
               temperature=2.0, conse_variants=False, seed=0, train_blocks=1, codebook=16, clip_model=None)


def test_every_entry_names_a_class_that_keeps_the_contract():
    for kind in KINDS.values():
        cls = kind.model_type()
        assert issubclass(cls, KindModel), kind.name
        for method in ("fit", "predict_proba", "save"):
            assert getattr(cls, method) is not getattr(KindModel, method), (kind.name, method)
        assert cls.load.__func__ is not KindModel.load.__func__, kind.name
        assert cls.reads in ("images", "features", "logits"), kind.name
        assert dataclasses.is_dataclass(kind.config_type()), kind.name
        assert kind.role in (SUPERVISED, ZERO_SHOT) and kind.artifact


def test_reading_the_table_imports_no_model_module():
    code = ("import sys; from hashtag_workbench.core.kinds import KINDS; "
            "print([k.run_kind for k in KINDS.values()] and sorted(m for m in ('torch', 'sklearn', "
            "'hashtag_workbench.core.conse', 'hashtag_workbench.core.finetune') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _photo(path) -> Image.Image:
    return Image.open(path).convert("RGB")


class _Data:
    """What `train` hands a kind (jobs/train.py's _Data): a few demo photos per word, the shipped vocabulary,
    and for zero-shot + photos the seed model's scores of them."""

    def __init__(self, seed_dir):
        files = [(p, w) for w in WORDS for p in sorted((DEMO_PHOTOS / w).glob("*.jpg"))[:4]]
        self.images = [_photo(p) for p, _ in files]
        self.train_words, self.val_words = [w for _, w in files], []
        self.classes = sorted(WORDS)
        self.batch = ImageBatch.of(self.images)
        self.hashtags = load_vocabulary()
        self.vocabulary = sorted(self.hashtags)
        self.weights, self.workers, self.seed_dir = None, 1, seed_dir
        self.lines: list[str] = []

    def log(self, msg: str) -> None:
        self.lines.append(msg)

    def progress(self, iterable=None, **kw):
        return iterable

    def train_images(self):
        return self.images

    def val_images(self):
        return []

    def backbone(self, name, weights):
        from hashtag_workbench.core.backbones import get_backbone
        return get_backbone(name, weights, "torch")

    def features(self, backbone, weights):
        return self.batch.outputs(backbone, need_logits=False, weights=weights)[0]

    def unlabelled(self, backbone):
        """The photos (labels unread) scored by a stored default zero-shot model, as jobs/_unlabelled.py gives."""
        kind = KINDS["fused"]
        cfg = kind.configs(OPTIONS)[0]
        seed = kind.fit(cfg, self)
        seed.save(self.seed_dir / kind.artifact)
        record = {"model_id": 1, "kind": kind.name, "name": seed.name, "config": {**cfg.to_dict(), **seed.notes},
                  "classes": seed.classes, "artifact_path": str(self.seed_dir)}
        return {"features": self.batch.outputs(backbone, need_logits=False)[0], "probs": seed.predict_proba(self.batch),
                "seed": record, "fingerprint": "demo"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """One set of photos for every kind, so their CNN outputs are computed once."""
    return _Data(tmp_path_factory.mktemp("seed"))


@pytest.fixture(scope="module")
def others():
    """Photos the models never saw, one per other word."""
    return [_photo(sorted((DEMO_PHOTOS / w).glob("*.jpg"))[0]) for w in ("lake", "car", "music")]


@pytest.mark.parametrize("name", ["linear_probe", "bovw_svm", "conse", "fused", "conse_transductive", "finetune"])
def test_fit_save_load_gives_the_same_probabilities(name, data, others, tmp_path):
    kind = KINDS[name]
    cfg = kind.configs(OPTIONS)[0]
    model = kind.fit(cfg, data)
    assert isinstance(model, kind.model_type()) and model.name
    assert model.classes == (data.classes if kind.role == SUPERVISED else
                             [w for w in data.vocabulary if w in model.classes])
    assert len(model.classes) == (3 if kind.role == SUPERVISED else len(data.vocabulary))
    probs = model.predict_proba(ImageBatch.of(others))
    assert probs.shape == (3, len(model.classes)) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert not np.allclose(probs[0], probs[1])          # different photos, different answers

    (tmp_path / "model").mkdir()
    model.save(tmp_path / "model" / kind.artifact)
    stored = {**cfg.to_dict(), **(model.notes or {})}    # what train records as the model's config
    back = kind.load(tmp_path / "model" / kind.artifact, stored, model.classes)
    assert back.classes == model.classes
    np.testing.assert_allclose(back.predict_proba(ImageBatch.of(others)), probs, atol=1e-6)
