"""Every model kind in one table (`KINDS`), and the one contract each kind's model class implements.

The contract is scikit-learn's estimator shape (`KindModel` below spells it out):

    model = ModelClass(config)                  # unfitted; config: the kind's config dataclass
    model.fit(data)                             # -> model itself, fitted
    model.predict_proba(batch)                  # -> (n, len(model.classes)) for a core.predictor.ImageBatch
    model.save(path)                            # its artifact file
    ModelClass.load(path, config, classes)      # -> model, from the stored record alone (config: a dict)

A kind's `name` is both its stored `models.kind` and its `train --models` name (the older short
names stay accepted as aliases and name its training runs: train-<alias>). Train, evaluate,
predict, the warehouse's role lists and the dashboard read everything from this table. The
classes are named as "module:Class" and imported on demand, so reading the table (every
`--help`) is instant and imports no torch, scikit-learn or gensim.

Adding a kind: its config dataclass and its model class (a KindModel) in one core module, then
one ModelKind line in KINDS naming them.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from hashtag_workbench.core.errors import InputError

SUPERVISED = "supervised"
ZERO_SHOT = "zero_shot"
PRETTY = {"efficientnet_lite0": "EfficientNet-Lite0", "resnet18": "ResNet-18"}
DEFAULT_ZERO_SHOT = "fused"   # what predict builds over the vocabulary when no zero-shot model is named


def pretty_backbone(name: str) -> str:
    """How a model's display name writes its backbone."""
    return PRETTY.get(name, name)


def no_bar(iterable, total=None, desc=None, unit=None):
    """The progress-bar callable's shape (the job passes tqdm's), showing nothing: for callers without a bar."""
    return iterable


class KindModel:
    """What every kind's model class implements (each class sets these; the defaults say "none").

    `fit(data)` receives what `train` hands over: for supervised kinds `classes`, `train_images()`,
    `train_words`, `val_images()`, `val_words`, `features(backbone, weights)` (train-part penultimate
    features), `backbone(name, weights)`, `weights`, and where the job has them `workers`,
    `frozen_front(config)`, `activation_store()`; for every kind `vocabulary` (active words),
    `hashtags`, `log(msg)`, `progress(iterable, desc)`, `unlabelled(backbone)` (stored photos, labels
    unread, with the default zero-shot scores of them). After `fit` the model holds what the training
    run records: `classes`, `name` (display name), `counts` (added to the run's counts), `notes`
    (stored beside the config, read back by `load`), `report` (report.json next to the artifact) and
    `curve` (epoch rows).

    `predict_proba(batch)` reads from the ImageBatch what it needs (photos, or its backbone's features
    or logits); `reads` says which, so callers can choose progress bars and batching.
    """
    reads = "images"              # images | features | logits
    name = ""
    counts: dict | None = None
    notes: dict | None = None
    report: dict | None = None
    curve: list | None = None

    def fit(self, data):
        raise NotImplementedError

    def predict_proba(self, batch):
        raise NotImplementedError

    def save(self, path: Path | str) -> None:
        raise NotImplementedError

    @classmethod
    def load(cls, path: Path | str, config: dict, classes: list[str]):
        raise NotImplementedError


def _named(spec: str):
    """The object "package.module:Name" names, imported now."""
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class ModelKind:
    name: str                                   # stored kind = CLI name
    role: str                                   # SUPERVISED | ZERO_SHOT
    model: str                                  # its KindModel class, "module:Class" (imported on demand)
    config: str                                 # its config dataclass, "module:Class"
    artifact: str                               # file inside <data dir>/models/<run_id>/
    options: tuple[str, ...] = ()               # train options -> its one config: "field" or "field=option"
    builder: str = ""                           # or "module:function", options -> configs (several configs)
    alias: str = ""                             # old CLI name, and its runs' name (train-<alias>)
    label: str = ""                             # how the comparison table names the kind
    study: tuple[str, float] | None = None      # the original study's (model name, top-1)
    default: bool = True                        # trained when `train` is given no --models

    @property
    def run_kind(self) -> str:
        return f"train-{self.alias or self.name}"

    def model_type(self) -> type:
        return _named(self.model)

    def config_type(self) -> type:
        return _named(self.config)

    def configs(self, options: dict) -> list:
        """The configs `train` builds from its options. An option that is missing or None keeps the config's
        default (e.g. no --train-blocks)."""
        if self.builder:
            return _named(self.builder)(options)
        kw = {}
        for item in self.options:
            field, _, option = item.partition("=")
            if options.get(option or field) is not None:
                kw[field] = options[option or field]
        return [self.config_type()(**kw)]

    def fit(self, config, data) -> KindModel:
        """A model of this kind built with `config` from `data` (see KindModel)."""
        return self.model_type()(config).fit(data)

    def load(self, path: Path | str, config: dict, classes: list[str]) -> KindModel:
        return self.model_type().load(path, config, classes)

    def config_from(self, stored: dict):
        """The config dataclass from a stored config dict (extra notes such as display names dropped)."""
        cls = self.config_type()
        return cls(**{k: v for k, v in stored.items() if k in cls.__dataclass_fields__})

    def matches(self, record: dict, config, split_run: int | None, fingerprint: str | None) -> bool:
        """Whether a stored model is the one these settings would build now (so it can be reused):
        same config, and the same split (supervised) or the same vocabulary (zero-shot)."""
        if record["kind"] != self.name or self.config_from(record["config"]) != config:
            return False
        if self.role == ZERO_SHOT:
            return record["config"].get("vocabulary_fingerprint") == fingerprint
        return record["split_run_id"] == split_run


def vocabulary_fingerprint(words, hashtags: dict[str, list[str]]) -> str:
    """A short digest of the active words and their hashtags: what a zero-shot model was built over."""
    import hashlib
    import json
    body = json.dumps([[w, list(hashtags.get(w, []))] for w in sorted(words)], ensure_ascii=True)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def default_zero_shot_config(backbone: str | None = None):
    """The default zero-shot kind's config (the fitted fused model)."""
    from hashtag_workbench.core.fused import default_fused_config
    return default_fused_config(backbone)


_CORE = "hashtag_workbench.core."
KINDS: dict[str, ModelKind] = {k.name: k for k in (
    ModelKind("bovw_svm", SUPERVISED, _CORE + "bovw:BoVWModel", _CORE + "bovw:BoVWConfig", "model.joblib",
              options=("seed", "codebook_size=codebook"), alias="bovw", label="BoVW SVM",
              study=("bag-of-words SVM", 0.19)),
    ModelKind("finetune", SUPERVISED, _CORE + "finetune:FinetuneModel", _CORE + "finetune:FinetuneConfig",
              "model.pt", options=("backbone", "weights", "epochs", "seed", "train_blocks"),
              label="fine-tuned CNN", study=("fine-tuned ResNet-18", 0.77)),
    ModelKind("linear_probe", SUPERVISED, _CORE + "probe:ProbeModel", _CORE + "probe:ProbeConfig", "model.npz",
              options=("backbone", "seed"), alias="probe", label="linear probe"),
    ModelKind("conse", ZERO_SHOT, _CORE + "conse:ConSEModel", _CORE + "conse:ConSEConfig", "model.npz",
              builder=_CORE + "conse:train_configs", label="ConSE", study=("ConSE", 0.32)),
    ModelKind("fused", ZERO_SHOT, _CORE + "fused:FusedModel", _CORE + "fused:FusedConfig", "model.npz",
              builder=_CORE + "fused:train_configs", label="fused zero-shot (WordNet + ConSE)"),
    ModelKind("clip", ZERO_SHOT, _CORE + "clip:CLIPZeroShot", _CORE + "clip:CLIPZeroShotConfig", "model.npz",
              options=("model=clip_model", "source=clip_source"), label="CLIP", default=False),
    ModelKind("conse_transductive", ZERO_SHOT, _CORE + "transductive:TransductiveModel",
              _CORE + "transductive:TransductiveConfig", "model.npz", options=("backbone",),
              label="zero-shot + unlabelled photos", default=False),
)}


def kinds_of(role: str) -> tuple[str, ...]:
    return tuple(k.name for k in KINDS.values() if k.role == role)


def resolve(name: str) -> ModelKind:
    """A kind by its name or old alias; the error lists the choices."""
    for k in KINDS.values():
        if name in (k.name, k.alias):
            return k
    raise InputError(f"unknown model kind {name!r}; choose from {', '.join(KINDS)}")
