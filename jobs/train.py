"""`train`: BoVW SVM, fine-tuned CNN, linear probe and ConSE (plain + variants), each its own recorded run.

Every model is saved under <data dir>/models/<run_id>/ (artifact + config.json) and
recorded in the `models` table with the config that rebuilds it, so evaluate,
predict and the dashboard need nothing but the warehouse.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from core.backbones import DEFAULT_BACKBONE, available_backbones, imagenet_classes
from core.bovw import BoVWConfig, BoVWModel, image_descriptors
from core.conse import ConSEConfig, build_conse, standard_variants
from core.finetune import FinetuneConfig, finetune
from core.predictor import ARTIFACT_FILES, get_backbone
from core.probe import ProbeConfig, ProbeModel
from core.wordvectors import load_word_vectors
from jobs._modeldata import read_photo, stored_batch
from jobs.common import ensure_ready, split_list
from jobs.runner import job_run
from jobs.split import add_split_args, current_split
from warehouse import models as wh
from warehouse.words import hashtags_for

ORDER = 41
ALL_MODELS = ("bovw", "finetune", "probe", "conse")
KNOWN_MODELS = (*ALL_MODELS, "clip")  # clip only when asked for: it needs downloaded weights (--clip-model)
PRETTY = {"efficientnet_lite0": "EfficientNet-Lite0", "resnet18": "ResNet-18"}


def _save(home: Path, run_id: int, kind: str, config: dict, classes: list[str], save_fn) -> str:
    folder = wh.model_dir(home, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    save_fn(folder / ARTIFACT_FILES[kind])
    (folder / "config.json").write_text(json.dumps({"kind": kind, "config": config, "classes": classes}, indent=1))
    return str(folder.relative_to(home))


class _Data:
    """The split's images, decoded once and shared by every model trained in this call."""

    def __init__(self, home: Path, split_run: int, log):
        self.home, self.log = home, log
        rows = wh.split_rows(home, split_run)
        self.images, self.rows = {}, []
        for r in rows:
            try:
                self.images[r["image_id"]] = read_photo(home, r["path"])
                self.rows.append(r)
            except Exception as exc:  # one unreadable file must not stop training
                log(f"skipped image {r['image_id']} ({r['path']}): {exc}")
        self.train = [r for r in self.rows if r["part"] == "train"]
        self.val = [r for r in self.rows if r["part"] == "val"]
        self.classes = sorted({r["word"] for r in self.rows})
        if len(self.classes) < 2:
            raise ValueError(f"need at least 2 words with images to train, found {len(self.classes)}")

    def pil(self, rows):
        return [self.images[r["image_id"]] for r in rows]

    @staticmethod
    def words(rows):
        return [r["word"] for r in rows]


def train_bovw(home, data: _Data, split_run: int, *, seed: int = 0, codebook: int = 256) -> int:
    cfg = BoVWConfig(codebook_size=codebook, seed=seed)
    with job_run(home, "train-bovw", {"split_run_id": split_run, **cfg.to_dict()}) as run:
        desc = {r["image_id"]: image_descriptors(data.images[r["image_id"]], cfg)
                for r in run.progress(data.train, desc="DAISY descriptors")}
        model = BoVWModel(cfg, data.classes).fit([desc[r["image_id"]] for r in data.train], data.words(data.train),
                                                 progress=run.log)
        run.count("done", len(data.train))
        name = f"BoVW SVM (DAISY, k={len(model.centers)})"
        art = _save(home, run.run_id, "bovw_svm", cfg.to_dict(), data.classes, model.save)
        wh.add_model(home, model_id=run.run_id, kind="bovw_svm", name=name, backbone=None, split_run_id=split_run,
                     config=cfg.to_dict(), classes=data.classes, artifact=art)
        return run.run_id


def train_finetune(home, data: _Data, split_run: int, *, backbone: str, weights: str | None, epochs: int,
                   seed: int = 0, train_blocks: int | None = None) -> int:
    kw = {"train_blocks": train_blocks} if train_blocks is not None else {}
    cfg = FinetuneConfig(backbone=backbone, weights=weights, epochs=epochs, seed=seed, **kw)
    with job_run(home, "train-finetune", {"split_run_id": split_run, **cfg.to_dict()}) as run:
        bb = get_backbone(backbone, weights)

        def on_epoch(s):
            val = f", val loss {s.val_loss:.3f} acc {s.val_acc:.1%}" if s.val_acc is not None else ""
            run.log(f"epoch {s.epoch}/{epochs}: train loss {s.train_loss:.3f} acc {s.train_acc:.1%}{val} "
                    f"({s.seconds:.1f} s)")
        model, curve = finetune(bb, cfg, data.classes, data.pil(data.train), data.words(data.train),
                                data.pil(data.val), data.words(data.val), on_epoch=on_epoch, progress=run.log)
        run.count("done", len(data.train))
        run.extra["epochs"] = epochs
        if curve and curve[-1].val_acc is not None:
            run.extra["final_val_acc"] = round(curve[-1].val_acc, 4)
        art = _save(home, run.run_id, "finetune", cfg.to_dict(), data.classes, model.save)
        wh.add_model(home, model_id=run.run_id, kind="finetune", name=f"Fine-tuned {PRETTY.get(backbone, backbone)}",
                     backbone=backbone, split_run_id=split_run, config=cfg.to_dict(), classes=data.classes,
                     artifact=art, curve=[vars(s) for s in curve])
        return run.run_id


def _outputs(home, data: _Data, rows, backbone: str, weights: str | None, run, need_logits: bool):
    batch, found = stored_batch(home, rows, (backbone,))
    if backbone in batch.known:
        run.log(f"using stored {backbone} features for {len(rows)} images")
    else:
        run.log(f"computing {backbone} features for {len(rows)} images ({found[backbone]} stored; "
                "`python -m jobs features` stores them for next time)")
        batch._images = {i: data.images[r["image_id"]] for i, r in enumerate(rows)}
    return batch.outputs(backbone, need_logits=need_logits, weights=weights)


def train_probe(home, data: _Data, split_run: int, *, backbone: str, weights: str | None, seed: int = 0) -> int:
    cfg = ProbeConfig(backbone=backbone, seed=seed)
    with job_run(home, "train-probe", {"split_run_id": split_run, **cfg.to_dict()}) as run:
        feats, _ = _outputs(home, data, data.train, backbone, weights, run, need_logits=False)
        model = ProbeModel(cfg, data.classes).fit(feats, data.words(data.train))
        run.count("done", len(data.train))
        art = _save(home, run.run_id, "linear_probe", cfg.to_dict(), data.classes, model.save)
        wh.add_model(home, model_id=run.run_id, kind="linear_probe",
                     name=f"Linear probe ({PRETTY.get(backbone, backbone)} features)", backbone=backbone,
                     split_run_id=split_run, config=cfg.to_dict(), classes=data.classes, artifact=art)
        return run.run_id


def train_conse(home, classes: list[str], split_run: int, configs: list[ConSEConfig]) -> list[int]:
    """Build each ConSE variant (no training data needed: only the target words)."""
    ids = []
    encoders = {}
    names = imagenet_classes()
    tags = hashtags_for(home)
    for cfg in configs:
        with job_run(home, "train-conse", {"split_run_id": split_run, **cfg.to_dict()}) as run:
            if cfg.word_vectors not in encoders:
                encoders[cfg.word_vectors] = load_word_vectors(cfg.word_vectors)
            enc = encoders[cfg.word_vectors]
            model = build_conse(cfg, enc, names, classes, hashtags=tags)
            rep = model.report
            run.extra.update(imagenet_names_kept=rep["imagenet_names_kept"],
                             imagenet_names_dropped=len(rep["imagenet_names_dropped"]))
            if rep["imagenet_names_dropped"]:
                shown = ", ".join(rep["imagenet_names_dropped"][:12])
                more = len(rep["imagenet_names_dropped"]) - 12
                run.log(f"{len(rep['imagenet_names_dropped'])} ImageNet names have no {enc.name} vector and are "
                        f"dropped: {shown}{f' and {more} more' if more > 0 else ''}")
            if rep["targets_dropped"]:
                run.log(f"target words with no {enc.name} vector (never predicted): {rep['targets_dropped']}")
            run.count("done", len(model.classes))
            full_cfg = {**cfg.to_dict(), "word_vectors_name": enc.name}
            art = _save(home, run.run_id, "conse", full_cfg, model.classes, model.save)
            (wh.model_dir(home, run.run_id) / "report.json").write_text(json.dumps(rep, indent=1))
            wh.add_model(home, model_id=run.run_id, kind="conse", name=cfg.label(enc.name), backbone=cfg.backbone,
                         split_run_id=split_run, config=full_cfg, classes=model.classes, artifact=art)
            ids.append(run.run_id)
    return ids


def train_clip(home, classes: list[str], split_run: int, clip_model: str | None) -> int:
    """CLIP zero-shot: embed each word's prompts (no training photos needed)."""
    from core.clip import CLIPZeroShot, CLIPZeroShotConfig
    cfg = CLIPZeroShotConfig(model=clip_model or "")
    with job_run(home, "train-clip", {"split_run_id": split_run, **cfg.to_dict()}) as run:
        model = CLIPZeroShot.build(cfg, classes, hashtags=hashtags_for(home))
        run.count("done", len(classes))
        art = _save(home, run.run_id, "clip", cfg.to_dict(), classes, model.save)
        wh.add_model(home, model_id=run.run_id, kind="clip", name=cfg.label(), backbone=None,
                     split_run_id=split_run, config=cfg.to_dict(), classes=classes, artifact=art)
        return run.run_id


def train(home: Path, *, models=ALL_MODELS, epochs: int = 13, backbone: str = DEFAULT_BACKBONE,
          weights: str | None = None, word_vectors: str = "glove", top_t: int = 10, temperature: float = 2.0,
          conse_variants: bool = True, seed: int = 0, val_fraction: float = 0.2, exclude_flagged: bool = False,
          new_split: bool = False, train_blocks: int | None = None, threads: int = 2,
          skip_existing: bool = False, clip_model: str | None = None) -> dict:
    """Train the chosen models on the current split; returns {'split_run_id', 'model_ids', 'failed'}.

    With `skip_existing`, a model whose kind and settings were already trained on this
    split is kept instead of trained again (what makes re-running the demo cheap).
    """
    models = (*models, "clip") if clip_model and "clip" not in models else tuple(models)
    unknown = sorted(set(models) - set(KNOWN_MODELS))
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {', '.join(KNOWN_MODELS)}")
    if epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {epochs}")
    ensure_ready(home)
    torch.set_num_threads(max(1, threads))
    split_run = current_split(home, val_fraction=val_fraction, seed=seed, exclude_flagged=exclude_flagged,
                              new=new_split)
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    data = _Data(home, split_run, log)
    print(f"[train] split run {split_run}: {len(data.train)} train / {len(data.val)} val images, "
          f"{len(data.classes)} words")
    ids, failed = [], []
    steps = {
        "bovw": lambda: [train_bovw(home, data, split_run, seed=seed)],
        "finetune": lambda: [train_finetune(home, data, split_run, backbone=backbone, weights=weights,
                                            epochs=epochs, seed=seed, train_blocks=train_blocks)],
        "probe": lambda: [train_probe(home, data, split_run, backbone=backbone, weights=weights, seed=seed)],
        "conse": lambda: train_conse(home, data.classes, split_run,
                                     standard_variants(word_vectors, top_t, backbone, temperature) if conse_variants
                                     else [ConSEConfig(word_vectors=word_vectors, top_t=top_t, backbone=backbone)]),
        "clip": lambda: [train_clip(home, data.classes, split_run, clip_model)],
    }
    existing = {}
    if skip_existing:
        for rec in wh.models(home):
            if rec["split_run_id"] == split_run:
                existing.setdefault(rec["kind"], []).append(rec)
    want = {"bovw": ("bovw_svm", {"seed": seed}),
            "finetune": ("finetune", {"backbone": backbone, "epochs": epochs, "seed": seed,
                                      **({"train_blocks": train_blocks} if train_blocks is not None else {})}),
            "probe": ("linear_probe", {"backbone": backbone, "seed": seed}),
            "conse": ("conse", {"backbone": backbone, "word_vectors": word_vectors, "top_t": top_t}),
            "clip": ("clip", {"model": clip_model})}
    for name in KNOWN_MODELS:
        if name not in models:
            continue
        kind, keys = want[name]
        same = [r for r in existing.get(kind, []) if all(r["config"].get(k) == v for k, v in keys.items())]
        if same and (kind != "conse" or len(same) >= (4 if conse_variants else 1)):
            print(f"[train] {name}: already trained on split {split_run} (model "
                  f"{', '.join(str(r['model_id']) for r in same)}); skipped")
            continue
        try:
            ids += steps[name]()
        except Exception as exc:  # one model failing (e.g. missing weights) must not lose the others
            failed.append(name)
            print(f"error: training {name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    return {"split_run_id": split_run, "model_ids": ids, "failed": failed}


def _cmd(args) -> int:
    out = train(args.home, models=split_list(args.models) or ALL_MODELS, epochs=args.epochs, backbone=args.backbone,
                weights=str(args.weights) if args.weights else None, word_vectors=args.word_vectors,
                top_t=args.top_t, temperature=args.temperature, conse_variants=not args.plain_conse_only,
                seed=args.seed, val_fraction=args.val_fraction, exclude_flagged=args.exclude_flagged,
                new_split=args.new_split, train_blocks=args.train_blocks, threads=args.threads,
                clip_model=args.clip_model)
    print(f"[train] models {', '.join(map(str, out['model_ids'])) or 'none'} stored; "
          f"next: `python -m jobs evaluate`")
    return 1 if out["failed"] else 0


def register(sub) -> None:
    p = sub.add_parser("train", help="train BoVW SVM, fine-tuned CNN, linear probe and ConSE",
                       description="Train the chosen models on the current train/val split (made if missing or "
                                   "out of date). Each model is its own recorded run and is saved under "
                                   "<data dir>/models/<run_id>/ with the config that rebuilds it.")
    p.add_argument("--models", default=",".join(ALL_MODELS),
                   help=f"comma-separated subset of {','.join(KNOWN_MODELS)} (default: {','.join(ALL_MODELS)}; "
                        "clip needs --clip-model)")
    p.add_argument("--epochs", type=int, default=13, help="fine-tuning epochs (default 13)")
    p.add_argument("--backbone", default=DEFAULT_BACKBONE, choices=available_backbones(),
                   help="CNN for fine-tuning, probe and ConSE (fine-tuning: efficientnet_lite0 or resnet18)")
    p.add_argument("--weights", type=Path, help="backbone weights file (e.g. a torchvision resnet18 state dict)")
    p.add_argument("--train-blocks", type=int, help="trailing CNN blocks to fine-tune (default 3)")
    p.add_argument("--word-vectors", default="glove",
                   help="ConSE word vectors: glove (bundled, default), minilm, or PATH to a word2vec file "
                        "(binary or text, e.g. GoogleNews-vectors-negative300.bin)")
    p.add_argument("--top-t", type=int, default=10, help="ConSE: top-T ImageNet classes combined (default 10)")
    p.add_argument("--temperature", type=float, default=2.0,
                   help="ConSE temperature variant: softmax(logits / this) over all classes (default 2)")
    p.add_argument("--plain-conse-only", action="store_true", help="build plain ConSE without the variants")
    p.add_argument("--clip-model", help="also build the CLIP zero-shot model from this folder (save_pretrained "
                                        "layout) or hub name (online); no CLIP weights install offline")
    p.add_argument("--new-split", action="store_true", help="make a new split even if the latest still fits")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    add_split_args(p)
    p.set_defaults(func=_cmd)
