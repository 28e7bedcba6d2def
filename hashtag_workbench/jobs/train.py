"""`train`: every model kind of core.kinds (supervised ones on the split, zero-shot ones over the vocabulary).

Each model is its own recorded run, saved under <data dir>/models/<run_id>/ (artifact +
config.json) and recorded in the `models` table with the config that rebuilds it, so
evaluate, predict and the dashboard need nothing but the warehouse. Zero-shot kinds need
no images: they are built over every active vocabulary word, and each records the
fingerprint of the vocabulary it covers, so a vocabulary edit makes a new one
(`ensure_zero_shot`, which predict calls) instead of silently reusing a stale one.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from hashtag_workbench.core.backbones import DEFAULT_BACKBONE, available_backbones
from hashtag_workbench.core.config import option
from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.kinds import (
    DEFAULT_ZERO_SHOT,
    KINDS,
    SUPERVISED,
    ZERO_SHOT,
    ModelKind,
    default_zero_shot_config,
    resolve,
    vocabulary_fingerprint,
)
from hashtag_workbench.core.model_defaults import CODEBOOK, EPOCHS, TEMPERATURE, TOP_T, TRAIN_BLOCKS
from hashtag_workbench.core.split import SplitConfig
from hashtag_workbench.core.wordvectors import DEFAULT_WORD_VECTORS, WORD_VECTOR_CHOICES
from hashtag_workbench.infra.files import write_atomic
from hashtag_workbench.infra.hub import hub_snapshot, is_hub_id
from hashtag_workbench.infra.onnxrt import DEFAULT_RUNTIME, use_runtime
from hashtag_workbench.infra.runtime import configure_threads
from hashtag_workbench.infra.runtime import threads as configured_threads
from hashtag_workbench.jobs._modeldata import LazyPhotos, readable_rows, stored_batch
from hashtag_workbench.jobs.common import RuntimeConfig, ensure_ready
from hashtag_workbench.jobs.options import config_from
from hashtag_workbench.jobs.runner import JobResult, job_run
from hashtag_workbench.jobs.split import current_split
from hashtag_workbench.service.predictions import stored_zero_shot
from hashtag_workbench.warehouse import models as wh
from hashtag_workbench.warehouse import runs
from hashtag_workbench.warehouse import splits as wh_splits
from hashtag_workbench.warehouse.words import hashtags_for, list_words

HELP = "train the supervised models and build the zero-shot ones"
DESCRIPTION = ("Train the chosen model kinds. Supervised ones use the current train/val split (made if missing or "
               "out of date); zero-shot ones (ConSE) need no images and cover every active vocabulary word. Each "
               "model is its own recorded run, saved under <data dir>/models/<run_id>/ with the config that "
               "rebuilds it.")

ALL_MODELS = tuple(name for name, k in KINDS.items() if k.default)


@dataclass
class TrainConfig:
    """The `train` job's settings (the split's are SplitConfig's); the model kinds' defaults are
    core.model_defaults', so `train --help` names the ones the models use."""
    models: tuple[str, ...] = option(
        ALL_MODELS, f"comma-separated subset of {','.join(ALL_MODELS)} (on request: "
        f"{', '.join(n for n, k in KINDS.items() if not k.default)}; "
        f"old names {', '.join(k.alias for k in KINDS.values() if k.alias)} still work)")
    epochs: int = option(EPOCHS, "fine-tuning epochs")
    backbone: str = option(DEFAULT_BACKBONE, "CNN for fine-tuning, probe and ConSE (fine-tuning: efficientnet_lite0 "
                           "or resnet18)", choices=available_backbones)
    weights: str | None = option(None, "backbone weights file (e.g. a torchvision resnet18 state dict)")
    train_blocks: int = option(TRAIN_BLOCKS, "trailing CNN blocks to fine-tune")
    word_vectors: str = option(DEFAULT_WORD_VECTORS, f"ConSE word vectors: {', '.join(WORD_VECTOR_CHOICES)}, or "
                               "PATH to a word2vec file (binary or text, e.g. GoogleNews-vectors-negative300.bin)")
    top_t: int = option(TOP_T, "ConSE: top-T ImageNet classes combined")
    temperature: float = option(TEMPERATURE, "ConSE temperature variant: softmax(logits / this) over all classes")
    conse_variants: bool = option(True, "build only the default ConSE and fused zero-shot configurations, not the "
                                  "variants side by side", flag="--plain-conse-only")
    clip_model: str | None = option(None, "also build the CLIP zero-shot model from this folder (save_pretrained "
                                    "layout) or Hugging Face hub id ORG/NAME (e.g. openai/clip-vit-base-patch32), "
                                    "downloaded once into <data dir>/models/hub and used offline afterwards")
    new_split: bool = option(False, "make a new split even if the latest still fits")
    codebook: int = option(CODEBOOK, "BoVW: visual words in the codebook", cli=False)
    skip_existing: bool = option(False, "keep a model already built with the same settings", cli=False)


CONFIGS = (TrainConfig, SplitConfig, RuntimeConfig)

ACTIVATION_CACHE = Path("cache") / "activations"   # under the data dir: the fine-tune's resumable caches


class _Vocabulary:
    """What a zero-shot kind is built from: the active words and their hashtags (no images)."""

    def __init__(self, home: Path):
        self.home = home
        self.vocabulary = [w["word"] for w in list_words(home, active_only=True)]
        self.hashtags = hashtags_for(home)
        self.fingerprint = vocabulary_fingerprint(self.vocabulary, self.hashtags)
        self.weights = None
        self.log = lambda m: print(m, file=sys.stderr)  # noqa: E731  (job_run replaces it per run)
        self.progress = lambda it, desc=None: it  # noqa: E731

    def unlabelled(self, backbone: str) -> dict:
        """Stored photos (labels unread) and the default zero-shot scores of them (conse_transductive)."""
        from hashtag_workbench.jobs._unlabelled import unlabelled_photos
        return unlabelled_photos(self.home, backbone, self.log)


class _Data(_Vocabulary):
    """The split's photos, shared by every supervised model trained in this call. Photos are decoded when
    a model reads them, a batch at a time (never all kept: at 15k photos that alone took ~6 GB)."""

    def __init__(self, home: Path, split_run: int, runtime: str = DEFAULT_RUNTIME):
        super().__init__(home)
        self.home, self.runtime, self.run_dir = home, runtime, None
        self.workers = configured_threads()   # BoVW's descriptor processes
        self.rows = readable_rows(home, wh_splits.split_rows(home, split_run), DEFAULT_BACKBONE, self.log)
        self.train = [r for r in self.rows if r["part"] == "train"]
        self.val = [r for r in self.rows if r["part"] == "val"]
        self.classes = sorted({r["word"] for r in self.rows})
        if len(self.classes) < 2:
            raise InputError(f"need at least 2 words with images to train, found {len(self.classes)}")
        self.train_words = [r["word"] for r in self.train]
        self.val_words = [r["word"] for r in self.val]

    def train_images(self):
        return LazyPhotos(self.home, self.train)

    def val_images(self):
        return LazyPhotos(self.home, self.val)

    def backbone(self, name: str, weights: str | None):
        """The torch network (fine-tuning trains its modules, so never the ONNX runtime)."""
        from hashtag_workbench.core.backbones import get_backbone
        return get_backbone(name, weights, "torch")

    def frozen_front(self, cfg):
        """The fine-tune's frozen front through ONNX Runtime (uint8 pixels -> activations), or None: torch. The
        fine-tune drops it once its cache is made, so the epochs reuse its arena's memory (see load_front)."""
        if self.runtime != "onnx" or cfg.mode != "cached":
            return None
        from hashtag_workbench.core.finetune import split_backbone
        from hashtag_workbench.infra.onnxrt import load_front
        bb = self.backbone(cfg.backbone, cfg.weights)
        front, _, _ = split_backbone(bb, int(cfg.train_blocks))
        stop = len(front.blocks)
        return load_front(self.home, cfg.backbone, cfg.weights, stop, front, say=self.log)

    def activation_store(self):
        """Where the fine-tune caches activations: chunk files under <data dir>/cache/activations/<key>/, the
        key naming these train and val photos, so a run killed while caching leaves its finished chunks to
        the re-run (a fresh run on other photos removes caches no running run owns). Removed after use."""
        from hashtag_workbench.infra.arrays import NpyStore
        if self.run_dir is None:
            return None
        photos = json.dumps([[r["image_id"], r["path"], r["part"]] for r in self.rows]).encode()
        key = hashlib.sha256(photos).hexdigest()[:16]
        root = self.home / ACTIVATION_CACHE
        _drop_unowned_caches(self.home, root, keep=key)
        write_atomic(root / key / "owner", self.run_dir.name.encode())   # this run id
        return NpyStore(root / key)

    def features(self, backbone: str, weights: str | None):
        """Penultimate features of the train part: stored ones when the features job made them all."""
        batch, found = stored_batch(self.home, self.train, (backbone,))
        if backbone in batch.known:
            self.log(f"using stored {backbone} features for {len(self.train)} images")
        else:
            self.log(f"computing {backbone} features for {len(self.train)} images ({found[backbone]} stored; "
                     "`hashtags features` stores them for next time)")
        return batch.outputs(backbone, need_logits=False, weights=weights)[0]


def _drop_unowned_caches(home: Path, root: Path, keep: str) -> None:
    """Activation caches of other photo sets whose owner run is no longer running: nobody will resume them."""
    for folder in (root.iterdir() if root.is_dir() else []):
        try:
            owner = runs.get_run(home, int((folder / "owner").read_text()))
        except (OSError, ValueError):
            owner = None
        if folder.name != keep and (owner is None or owner["status"] != "running"):
            shutil.rmtree(folder, ignore_errors=True)


def _save(home: Path, run_id: int, kind: ModelKind, config: dict, classes: list[str], model, report) -> str:
    folder = wh.model_dir(home, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / kind.artifact)
    (folder / "config.json").write_text(json.dumps({"kind": kind.name, "config": config, "classes": classes},
                                                   indent=1))
    if report:
        (folder / "report.json").write_text(json.dumps(report, indent=1))
    return str(folder.relative_to(home))


def train_kind(home: Path, kind: ModelKind, cfg, data, split_run: int | None) -> int:
    """Build one model of `kind` as its own recorded run; returns its model id (= run id)."""
    zero_shot = kind.role == ZERO_SHOT
    extra_cfg = {"vocabulary_fingerprint": data.fingerprint} if zero_shot else {}
    with job_run(home, kind.run_kind, {"split_run_id": split_run, **cfg.to_dict(), **extra_cfg}) as run:
        data.log, data.progress = run.log, run.progress
        data.run_dir = wh.model_dir(home, run.run_id) if not zero_shot else None
        model = kind.fit(cfg, data)
        run.count("done", len(model.classes) if zero_shot else len(data.train))
        run.extra.update(model.counts or {})
        full_cfg = {**cfg.to_dict(), **(model.notes or {}), **extra_cfg}
        art = _save(home, run.run_id, kind, full_cfg, model.classes, model, model.report)
        wh.add_model(home, model_id=run.run_id, kind=kind.name, name=model.name,
                     backbone=getattr(cfg, "backbone", None), split_run_id=split_run, config=full_cfg,
                     classes=model.classes, artifact=art, curve=model.curve)
        return run.run_id


def ensure_zero_shot(home: Path, config=None, kind: str = DEFAULT_ZERO_SHOT) -> dict:
    """The zero-shot model of `config` (default: the best-measured one, the fused WordNet + ConSE model) over
    the current active vocabulary: the stored one when it covers exactly these words and hashtags, else built
    now (a second or two plus loading the word vectors and WordNet) and recorded as a run."""
    ensure_ready(home)
    k = KINDS[kind]
    cfg = config or (default_zero_shot_config() if kind == DEFAULT_ZERO_SHOT else None)
    if cfg is None:
        raise InputError(f"name a config for the zero-shot kind {kind!r}")
    stored = stored_zero_shot(home, cfg, kind)
    if stored is not None:
        return stored
    vocab = _Vocabulary(home)
    print(f"[zero-shot] building {cfg.label(cfg.word_vectors)} over {len(vocab.vocabulary)} active words "
          "(the vocabulary changed or no such model yet)", file=sys.stderr)
    model_id = train_kind(home, k, cfg, vocab, wh_splits.latest_split_run(home))
    return wh.get_model(home, model_id)


def _options(cfg: TrainConfig, seed: int) -> dict:
    """The options every kind builds its configs from (`ModelKind.configs`)."""
    if cfg.epochs < 1:
        raise InputError(f"--epochs must be at least 1, got {cfg.epochs}")
    return {**dataclasses.asdict(cfg), "seed": seed}


def train(home: Path, config: TrainConfig | None = None, *, split: SplitConfig | None = None,
          threads: int | None = None, runtime: str = DEFAULT_RUNTIME, **fields) -> dict:
    """Train the chosen kinds; returns {'split_run_id', 'model_ids', 'failed'}.

    `fields` override `config`'s (TrainConfig: its defaults are the CLI's). Supervised kinds train on the
    current split (made if needed, `split`); zero-shot kinds need no images. With `skip_existing`, a model
    with the same settings (and split, or vocabulary) is kept, not rebuilt.
    """
    cfg = dataclasses.replace(config or TrainConfig(), **fields)
    split = split or SplitConfig()
    models = cfg.models or ALL_MODELS
    chosen = [resolve(m) for m in models] + ([KINDS["clip"]] if cfg.clip_model and "clip" not in models else [])
    opts = _options(cfg, split.seed)
    ensure_ready(home)
    if is_hub_id(cfg.clip_model):  # first, before any other model loads: downloaded once into <home>/models/hub
        opts["clip_source"] = str(hub_snapshot(home, cfg.clip_model))
    if any(k.role == SUPERVISED for k in chosen):
        if threads:
            configure_threads(threads)
        split_run = current_split(home, split, new=cfg.new_split)
        data = _Data(home, split_run, runtime)
        data.weights = cfg.weights
        print(f"[train] split run {split_run}: {len(data.train)} train / {len(data.val)} val images, "
              f"{len(data.classes)} words", file=sys.stderr)
    else:
        split_run, data = wh_splits.latest_split_run(home), _Vocabulary(home)
        print(f"[train] zero-shot over {len(data.vocabulary)} active words (no images needed)", file=sys.stderr)
    ids, failed = _train_chosen(home, chosen, opts, data, split_run, cfg.skip_existing)
    return {"split_run_id": split_run, "model_ids": ids, "failed": sorted(set(failed))}


def _train_chosen(home: Path, chosen: list[ModelKind], opts: dict, data, split_run, skip_existing: bool):
    """Each chosen kind's configs in registry order; (model ids built, kinds that failed)."""
    existing = wh.models(home) if skip_existing else []
    ids, failed = [], []
    for kind in KINDS.values():
        if kind not in chosen:
            continue
        for cfg in kind.configs(opts):
            same = [r for r in existing if kind.matches(r, cfg, split_run, data.fingerprint)]
            if same:
                print(f"[train] {kind.name}: already built with these settings (model {same[-1]['model_id']}); "
                      "skipped", file=sys.stderr)
                continue
            try:
                ids.append(train_kind(home, kind, cfg, data, split_run))
            except Exception as exc:  # one model failing (e.g. missing weights) must not lose the others
                failed.append(kind.name)
                print(f"error: training {kind.name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    return ids, failed


def run_command(args) -> JobResult:
    use_runtime(args.home, args.runtime, args.threads)
    cfg = config_from(args, TrainConfig)
    cfg.models = tuple(resolve(m).name for m in cfg.models or ALL_MODELS)
    out = train(args.home, cfg, split=config_from(args, SplitConfig), threads=args.threads, runtime=args.runtime)
    return JobResult(text=f"[train] models {', '.join(map(str, out['model_ids'])) or 'none'} stored; "
                          "next: `hashtags evaluate`", data=out, exit_code=1 if out["failed"] else 0)
