"""Every model kind in one table: config type, artifact, role, and how it is built, loaded and applied.

A kind's `name` is both its stored `models.kind` and its `train --models` name (the
older short names stay accepted as aliases and name its training runs: train-<alias>).
Adding a kind means adding one `ModelKind` entry to `KINDS`; train, evaluate, predict,
the warehouse's role lists and the dashboard read everything from here. Heavy modules
(torch, scikit-learn, gensim) are imported inside the functions, so reading the table
is instant.

`fit(config, data)` receives a data object with, for supervised kinds: `classes`,
`train_images()`, `train_words`, `val_images()`, `val_words`, `features(backbone,
weights)` (train-part penultimate features), `backbone(name, weights)`, `weights`; for every kind:
`vocabulary` (active words), `hashtags`, `log(msg)`, `progress(iterable, desc)`. It
returns (model, display name, extra) where extra may hold `curve` (epoch rows),
`report` (stored next to the artifact) and `counts` (added to the run's counts).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hashtag_workbench.core.errors import InputError

SUPERVISED = "supervised"
ZERO_SHOT = "zero_shot"
PRETTY = {"efficientnet_lite0": "EfficientNet-Lite0", "resnet18": "ResNet-18"}


@dataclass(frozen=True)
class ModelKind:
    name: str                                   # stored kind = CLI name
    role: str                                   # SUPERVISED | ZERO_SHOT
    artifact: str                               # file inside <data dir>/models/<run_id>/
    reads: str                                  # what it predicts from: images | features | logits
    config_type: Callable[[], type]             # the config dataclass (imported on demand)
    configs: Callable[[dict], list]             # train options -> the configs to build
    fit: Callable[[object, object], tuple]      # (config, data) -> (model, name, extra)
    load: Callable[[Path, dict, list], object]  # (artifact path, stored config, classes) -> model
    alias: str = ""                             # old CLI name, and its runs' name (train-<alias>)
    label: str = ""                             # how the comparison table names the kind
    study: tuple[str, float] | None = None      # the original study's (model name, top-1)
    default: bool = True                        # trained when `train` is given no --models

    @property
    def run_kind(self) -> str:
        return f"train-{self.alias or self.name}"

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


def predict_with(kind: ModelKind, model, batch, backbone: str | None) -> object:
    """(n, len(classes)) probabilities of a loaded model for an ImageBatch."""
    if kind.reads == "logits":
        return model.predict_proba(batch.outputs(backbone)[1])
    if kind.reads == "features":
        return model.predict_proba(batch.outputs(backbone, need_logits=False)[0])
    if kind.reads == "features+seed":  # zero-shot + unlabelled photos: its own features and its seed's scores
        return model.predict_proba(batch.outputs(backbone, need_logits=False)[0], model.seed_predict(batch))
    return model.predict_images(batch.images())


# ------------------------------------------------------------------ BoVW SVM

def _bovw_config():
    from hashtag_workbench.core.bovw import BoVWConfig
    return BoVWConfig


def _bovw_fit(cfg, data):
    from hashtag_workbench.core.bovw import BoVWModel
    model = BoVWModel(cfg, data.classes).fit_images(data.train_images(), data.train_words, progress=data.log,
                                                    workers=getattr(data, "workers", 1), bar=data.progress)
    return model, f"BoVW SVM (DAISY, k={len(model.centers)})", {}


def _bovw_load(path, cfg, classes):
    from hashtag_workbench.core.bovw import BoVWModel
    return BoVWModel.load(path, cfg, classes)


# ------------------------------------------------------------------ fine-tuned CNN

def _finetune_config():
    from hashtag_workbench.core.finetune import FinetuneConfig
    return FinetuneConfig


def _finetune_configs(o: dict) -> list:
    kw = {"train_blocks": o["train_blocks"]} if o.get("train_blocks") is not None else {}
    return [_finetune_config()(backbone=o["backbone"], weights=o.get("weights"), epochs=o["epochs"],
                               seed=o["seed"], **kw)]


def _finetune_fit(cfg, data):
    from hashtag_workbench.core.finetune import finetune

    def on_epoch(s):
        val = f", val loss {s.val_loss:.3f} acc {s.val_acc:.1%}" if s.val_acc is not None else ""
        stop = f", stop-set loss {s.stop_loss:.3f}" if s.stop_loss is not None else ""
        data.log(f"epoch {s.epoch}/{cfg.epochs}: train loss {s.train_loss:.3f} acc {s.train_acc:.1%}{val}{stop} "
                 f"({s.seconds:.1f} s)")
    # Jobs hand over the front in ONNX Runtime and an on-disk cache; without them: torch and memory.
    front = data.frozen_front(cfg) if hasattr(data, "frozen_front") else None
    store = data.activation_store() if hasattr(data, "activation_store") else None
    try:
        model, curve = finetune(data.backbone(cfg.backbone, cfg.weights), cfg, data.classes, data.train_images(),
                                data.train_words, data.val_images(), data.val_words, on_epoch=on_epoch,
                                progress=data.log, front=front, store=store,
                                bar=getattr(data, "progress", None) or (lambda it, **kw: it))
    finally:
        if store is not None:
            store.clear()
    run = {"epochs_run": len(curve), "epoch_kept": model.epoch_kept}   # epochs = the maximum
    counts = {"epochs": cfg.epochs, **run}
    if curve and curve[model.epoch_kept - 1].val_acc is not None:
        counts["final_val_acc"] = round(curve[model.epoch_kept - 1].val_acc, 4)
    return (model, f"Fine-tuned {PRETTY.get(cfg.backbone, cfg.backbone)}",
            {"curve": [vars(s) for s in curve], "counts": counts, "notes": run})


def _finetune_load(path, cfg, classes):
    from hashtag_workbench.core.backbones import get_backbone
    from hashtag_workbench.core.finetune import FinetuneModel
    backbone = get_backbone(cfg.get("backbone"), cfg.get("weights"), "torch")
    return FinetuneModel.load(path, cfg, classes, backbone=backbone)


# ------------------------------------------------------------------ linear probe

def _probe_config():
    from hashtag_workbench.core.probe import ProbeConfig
    return ProbeConfig


def _probe_fit(cfg, data):
    from hashtag_workbench.core.probe import ProbeModel
    model = ProbeModel(cfg, data.classes).fit(data.features(cfg.backbone, data.weights), data.train_words)
    return model, f"Linear probe ({PRETTY.get(cfg.backbone, cfg.backbone)} features)", {}


def _probe_load(path, cfg, classes):
    from hashtag_workbench.core.probe import ProbeModel
    return ProbeModel.load(path, cfg, classes)


# ------------------------------------------------------------------ ConSE (zero-shot)

def _conse_config():
    from hashtag_workbench.core.conse import ConSEConfig
    return ConSEConfig


def _conse_configs(o: dict) -> list:
    from hashtag_workbench.core.conse import default_config, standard_variants
    if o.get("conse_variants", True):
        return standard_variants(o["word_vectors"], o["top_t"], o["backbone"], o["temperature"])
    return [default_config(o["word_vectors"], o["backbone"])]


def _conse_fit(cfg, data):
    from hashtag_workbench.core.backbones import imagenet_classes
    from hashtag_workbench.core.conse import build_conse
    from hashtag_workbench.core.wordvectors import cached_word_vectors
    enc = cached_word_vectors(cfg.word_vectors)
    model = build_conse(cfg, enc, imagenet_classes(), list(data.vocabulary), hashtags=data.hashtags)
    rep = model.report
    if rep["imagenet_names_dropped"]:
        shown = ", ".join(rep["imagenet_names_dropped"][:12])
        more = len(rep["imagenet_names_dropped"]) - 12
        data.log(f"{len(rep['imagenet_names_dropped'])} ImageNet names have no {enc.name} vector and are "
                 f"dropped: {shown}{f' and {more} more' if more > 0 else ''}")
    if rep["targets_dropped"]:
        data.log(f"words with no {enc.name} vector (never predicted by this model): "
                 f"{', '.join(rep['targets_dropped'])}")
    counts = {"imagenet_names_kept": rep["imagenet_names_kept"],
              "imagenet_names_dropped": len(rep["imagenet_names_dropped"]),
              "words": len(model.classes), "words_without_vector": len(rep["targets_dropped"])}
    return model, cfg.label(enc.name), {"report": rep, "counts": counts, "notes": {"word_vectors_name": enc.name}}


def _conse_load(path, cfg, classes):
    from hashtag_workbench.core.conse import ConSEModel
    return ConSEModel.load(path, cfg, classes)


# ------------------------------------------------------------------ fused zero-shot (WordNet hierarchy + ConSE)

DEFAULT_ZERO_SHOT = "fused"   # what predict builds over the vocabulary when no zero-shot model is named


def _fused_config():
    from hashtag_workbench.core.fused import FusedConfig
    return FusedConfig


def _fused_configs(o: dict) -> list:
    from hashtag_workbench.core.fused import fused_configs
    cfgs = fused_configs(only_default=not o.get("conse_variants", True))
    # the fit was made on one backbone's logits; other backbones keep ConSE alone
    return [c for c in cfgs if c.backbone == o.get("backbone", c.backbone)]


def _fused_fit(cfg, data):
    from hashtag_workbench.core.backbones import imagenet_classes
    from hashtag_workbench.core.fused import build_fused
    from hashtag_workbench.core.wordvectors import cached_word_vectors
    enc = cached_word_vectors(cfg.word_vectors)
    model = build_fused(cfg, enc, imagenet_classes(), list(data.vocabulary), hashtags=data.hashtags)
    rep = model.report
    if rep["targets_dropped"]:
        data.log(f"words with no {enc.name} vector (never predicted by this model): "
                 f"{', '.join(rep['targets_dropped'])}")
    if rep["words_without_hierarchy"]:
        data.log(f"{len(rep['words_without_hierarchy'])} words have no WordNet noun sense with ImageNet classes "
                 f"beneath it and use the word-vector evidence alone: {', '.join(rep['words_without_hierarchy'])}")
    counts = {"words": len(model.classes), "words_without_vector": len(rep["targets_dropped"]),
              "words_with_hierarchy": len(model.classes) - len(rep["words_without_hierarchy"])}
    return model, cfg.label(enc.name), {"report": rep, "counts": counts, "notes": {"word_vectors_name": enc.name}}


def _fused_load(path, cfg, classes):
    from hashtag_workbench.core.fused import FusedModel
    return FusedModel.load(path, cfg, classes)


def default_zero_shot_config(backbone: str | None = None):
    """The default zero-shot kind's config (the fitted fused model)."""
    from hashtag_workbench.core.fused import default_fused_config
    return default_fused_config(backbone)


# ------------------------------------------------------------------ CLIP (zero-shot, needs downloaded weights)

def _clip_config():
    from hashtag_workbench.core.clip import CLIPZeroShotConfig
    return CLIPZeroShotConfig


def _clip_configs(o: dict) -> list:
    if not o.get("clip_model"):
        raise InputError("clip needs --clip-model PATH (a save_pretrained folder) or a hub id ORG/NAME")
    return [_clip_config()(model=o["clip_model"], source=o.get("clip_source") or "")]


def _clip_fit(cfg, data):
    from hashtag_workbench.core.clip import CLIPZeroShot
    model = CLIPZeroShot.build(cfg, list(data.vocabulary), hashtags=data.hashtags)
    return model, cfg.label(), {"counts": {"words": len(model.classes)}}


def _clip_load(path, cfg, classes):
    from hashtag_workbench.core.clip import CLIPZeroShot
    return CLIPZeroShot.load(path, cfg, classes)


# ------------------------------------------------------------------ zero-shot + unlabelled photos (self-training)

def _transductive_config():
    from hashtag_workbench.core.transductive import TransductiveConfig
    return TransductiveConfig


def _transductive_fit(cfg, data):
    """Self-train on every stored photo, labels unread, seeded by the default zero-shot model (data.unlabelled)."""
    from hashtag_workbench.core.transductive import TransductiveModel, self_train
    pool = data.unlabelled(cfg.backbone)
    seed = pool["seed"]
    protos, mean, has, rep = self_train(pool["features"], pool["probs"], cfg)
    source = Path(seed["artifact_path"]) / KINDS[seed["kind"]].artifact
    model = TransductiveModel(cfg, list(seed["classes"]), protos, mean, has, seed_source=source, report=rep)
    data.log(f"self-trained on {rep['photos']} unlabelled photos (labels not read), seeded by model "
             f"{seed['model_id']} ({seed['name']}): {rep['words_with_photos']} words got a prototype, "
             f"{rep['top_word_changed']} photos changed their top word")
    notes = {"seed": {k: seed[k] for k in ("model_id", "kind", "name", "config", "classes")},
             "photos": rep["photos"], "photos_fingerprint": pool["fingerprint"]}
    return model, cfg.label(seed["name"]), {"report": rep, "counts": rep, "notes": notes}


def _transductive_load(path, cfg, classes):
    from hashtag_workbench.core.transductive import TransductiveModel, seed_path
    seed = cfg["seed"]
    kind = KINDS[seed["kind"]]
    if list(seed["classes"]) != list(classes):
        raise InputError("the stored seed model covers other words than this model")
    seed_model = kind.load(seed_path(path, kind.artifact), seed["config"], seed["classes"])
    backbone = seed["config"].get("backbone")
    return TransductiveModel.load(path, cfg, classes,
                                  seed_predict=lambda batch: predict_with(kind, seed_model, batch, backbone))


def _simple(factory: Callable[[], type], *fields_: str) -> Callable[[dict], list]:
    """Options -> one config built from the named options."""
    return lambda o: [factory()(**{f: o[f] for f in fields_})]


KINDS: dict[str, ModelKind] = {k.name: k for k in (
    ModelKind("bovw_svm", SUPERVISED, "model.joblib", "images", _bovw_config,
              lambda o: [_bovw_config()(seed=o["seed"], codebook_size=o.get("codebook", 256))],
              _bovw_fit, _bovw_load, alias="bovw", label="BoVW SVM", study=("bag-of-words SVM", 0.19)),
    ModelKind("finetune", SUPERVISED, "model.pt", "images", _finetune_config, _finetune_configs,
              _finetune_fit, _finetune_load, label="fine-tuned CNN", study=("fine-tuned ResNet-18", 0.77)),
    ModelKind("linear_probe", SUPERVISED, "model.npz", "features", _probe_config,
              _simple(_probe_config, "backbone", "seed"), _probe_fit, _probe_load, alias="probe",
              label="linear probe"),
    ModelKind("conse", ZERO_SHOT, "model.npz", "logits", _conse_config, _conse_configs, _conse_fit,
              _conse_load, label="ConSE", study=("ConSE", 0.32)),
    ModelKind("fused", ZERO_SHOT, "model.npz", "logits", _fused_config, _fused_configs, _fused_fit, _fused_load,
              label="fused zero-shot (WordNet + ConSE)"),
    ModelKind("clip", ZERO_SHOT, "model.npz", "images", _clip_config, _clip_configs, _clip_fit, _clip_load,
              label="CLIP", default=False),
    ModelKind("conse_transductive", ZERO_SHOT, "model.npz", "features+seed", _transductive_config,
              _simple(_transductive_config, "backbone"), _transductive_fit, _transductive_load,
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
