"""`evaluate`: top-1/top-5, per-word precision/recall, confusion and every prediction, per model, stored.

Supervised models are scored on the val part of the split they were trained with. Every
zero-shot model is scored in clearly separate scopes (stored in `evaluations.scope`, see
core.metrics.SCOPE_TITLES): `val`, the same val images and the same words as the supervised
models (the study's fair comparison); `open`, the same images against every word it covers
(all active words); and `all`, every stored image, since it needs no training data.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hashtag_workbench.core.backbones import DEFAULT_BACKBONE
from hashtag_workbench.core.config import option
from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.kinds import KINDS, ZERO_SHOT
from hashtag_workbench.core.metrics import SCOPE_TITLES, STUDY_TOP1, evaluate_scores
from hashtag_workbench.core.predictor import ModelLoadError, load_model
from hashtag_workbench.infra.onnxrt import DEFAULT_RUNTIME, use_runtime
from hashtag_workbench.infra.runtime import configure_threads
from hashtag_workbench.jobs._modeldata import readable_rows, stored_batch
from hashtag_workbench.jobs.common import RuntimeConfig, ensure_ready
from hashtag_workbench.jobs.options import config_from
from hashtag_workbench.jobs.runner import JobError, JobResult, job_run
from hashtag_workbench.warehouse import evaluations as wh_evaluations
from hashtag_workbench.warehouse import models as wh
from hashtag_workbench.warehouse import splits as wh_splits

HELP = "score the trained models and print the comparison table"
DESCRIPTION = (
    "Top-1/top-5 accuracy on the val split, per-word precision/recall, confusion "
    "and misclassified images for each model, stored with the run; ConSE also on "
    "every stored image. Prints the comparison with the original study."
)


def _readable_batch(home: Path, rows: list[dict], backbones: tuple[str, ...], run) -> tuple[object, list[dict]]:
    """A lazy batch over the rows whose photo decodes (an unreadable file is skipped and logged, not a failure)."""
    keep = readable_rows(home, rows, backbones[0] if backbones else DEFAULT_BACKBONE, run.log)
    run.count("unreadable", len(rows) - len(keep))
    batch, _ = stored_batch(home, keep, backbones)
    return batch, keep


def _with_front(home: Path, model, runtime: str, log) -> None:
    """A fine-tuned CNN's frozen front through ONNX Runtime (the same cached export training made)."""
    ft = model.model
    if runtime != "onnx" or model.kind != "finetune" or getattr(ft, "front", "n/a") is not None:
        return
    from hashtag_workbench.infra.onnxrt import load_front
    ft.front = load_front(home, ft.config.backbone, ft.config.weights, len(ft.net.front.blocks), ft.net.front,
                          say=log)


# Photos a model that reads stored outputs scores at a time: its float64 temporaries (a few n x 1000 copies
# of the logits for ConSE) stay bounded however many photos a scope has (--augment 9, ConSE's 'all' scope of
# 4,824 photos: ~210 MiB above the batch at once, ~110 MiB in parts).
SCORE_ROWS = 2048


def _scored(model, batch, rows, words, run, label: str):
    """The model's probabilities; models that read photos count them on a progress bar as they decode them."""
    if model.model.reads != "images":
        if model.backbone not in batch.known:   # computed once for the whole batch, which later models share
            return model.predict(batch, words)
        from threadpoolctl import threadpool_limits
        with threadpool_limits(1):   # products of 2,048 rows: a second BLAS thread mostly spins
            parts = [model.predict(batch.part(i, i + SCORE_ROWS), words) for i in range(0, batch.n, SCORE_ROWS)]
        return np.concatenate(parts)
    with run.progress(total=len(rows), desc=f"evaluate {label}", unit="img") as bar:
        batch.photos.on_read = lambda: bar.update(1)
        try:
            return model.predict(batch, words)
        finally:
            batch.photos.on_read = None


class _Rows:
    """A split's rows and every labelled photo, read once for all the models (not once per model)."""

    def __init__(self, home: Path):
        self.home, self._splits, self._all = home, {}, None

    def split(self, split_run: int) -> list[dict]:
        if split_run not in self._splits:
            self._splits[split_run] = wh_splits.split_rows(self.home, split_run)
        return self._splits[split_run]

    def labelled(self) -> list[dict]:
        if self._all is None:
            self._all = wh_splits.all_labelled(self.home)
        return self._all

    def drop_labelled(self) -> None:
        self._all = None


def _scopes(stored: _Rows, rec: dict, model, all_scope: bool, split_run: int | None) -> list[tuple]:
    """(scope, rows, words or None) per scope of one model; words=None means all the model's words.

    Zero-shot models are scored on the latest split's val images twice: restricted to the split's
    words (the supervised models' question) and over every word they cover (open vocabulary).
    """
    if model.role != ZERO_SHOT:
        if rec["split_run_id"] is None:
            return []
        return [("val", [r for r in stored.split(rec["split_run_id"]) if r["part"] == "val"], None)]
    out = []
    if split_run is not None:
        rows = stored.split(split_run)
        val = [r for r in rows if r["part"] == "val"]
        out += [("val", val, sorted({r["word"] for r in rows})), ("open", val, None)]
    if all_scope:
        out.append(("all", stored.labelled(), None))
    return out


def _zero_shot_first(rec: dict) -> bool:
    """Sort key: zero-shot models (whose 'all' scope, every stored photo, is the largest) before supervised ones,
    so it is scored before a fine-tuned CNN's runtime is loaded (torch and its network stay resident: ~0.7 GB)."""
    kind = KINDS.get(rec["kind"])
    return kind is None or kind.role != ZERO_SHOT


@dataclass
class EvaluateConfig:
    """The `evaluate` job's settings."""
    models: tuple[str, ...] = option((), "comma-separated model ids (default: the newest model of each name)")
    all_scope: bool = option(True, "skip the zero-shot models' 'all' scope (every stored image); val and open are "
                             "kept", flag="--val-only")


CONFIGS = (EvaluateConfig, RuntimeConfig)


def evaluate(home: Path, *, model_ids: list[int] | None = None, all_scope: bool = EvaluateConfig.all_scope,
             threads: int | None = None, runtime: str = DEFAULT_RUNTIME) -> int:
    """Evaluate the given models (default: the newest model of each name); returns the evaluate run id
    (`comparison_table` shows its results)."""
    ensure_ready(home)
    recs = wh.models(home, ids=model_ids, latest_per_name=not model_ids)
    if not recs:
        raise JobError("no trained models to evaluate: run `hashtags train` (or `hashtags demo`) first"
                       if not model_ids else f"no models with ids {model_ids}")
    if threads:
        configure_threads(threads)
    split_run = wh_splits.latest_split_run(home)
    with job_run(home, "evaluate", {"model_ids": [r["model_id"] for r in recs], "all_scope": all_scope,
                                    "split_run_id": split_run}) as run:
        batches: dict = {}
        stored = _Rows(home)

        def batch_for(key, rows, backbones):
            if key not in batches:
                batches[key] = _readable_batch(home, rows, backbones, run)
            return batches[key]

        for rec in sorted(recs, key=_zero_shot_first):
            try:
                model = load_model(rec)
                if model.role != ZERO_SHOT:   # the 'all' scope is the zero-shot models' alone, all scored by now
                    for key in [k for k in batches if not k[0]]:
                        del batches[key]
                    stored.drop_labelled()
                _with_front(home, model, runtime, run.log)
            except ModelLoadError as exc:
                run.log(f"skipped model {rec['model_id']}: {exc}")
                run.count("failed")
                continue
            for scope, rows, words in _scopes(stored, rec, model, all_scope, split_run):
                if not rows:
                    run.log(f"model {rec['model_id']}: no images for the {scope} scope")
                    continue
                backbones = tuple(b for b in {rec.get("backbone")} if b)
                key = (scope != "all", tuple(r["image_id"] for r in rows), backbones)
                batch, rows = batch_for(key, rows, backbones)
                probs = _scored(model, batch, rows, words, run, f"{rec['name']} [{scope}]")
                res = evaluate_scores(probs, words or model.classes, [r["word"] for r in rows])
                preds = [{"image_id": r["image_id"], "true_word": r["word"], **p}
                         for r, p in zip(rows, res["predictions"])]
                wh_evaluations.save_evaluation(home, run_id=run.run_id, model_id=rec["model_id"], scope=scope,
                                   top1=res["top1"], top5=res["top5"], per_word=res["per_word"],
                                   confusion=res["confusion"], predictions=preds,
                                   n_words=len(words or model.classes))
                run.count("done")
        run.extra["models"] = len(recs)
        return run.run_id


def comparison_table(rows: list[dict]) -> str:
    """The original study's table form: model | words | top-1 | top-5, one block per scope, study figures beside."""
    if not rows:
        return "no evaluations yet: run `hashtags train` then `hashtags evaluate`"
    order = {name: i for i, name in enumerate(KINDS)}
    lines = []
    for scope, title in SCOPE_TITLES.items():
        part = sorted((r for r in rows if r["scope"] == scope), key=lambda r: (order.get(r["kind"], 99), r["model_id"]))
        if not part:
            continue
        width = max(len(r["name"]) for r in part) + 2
        lines.append(f"\n[{scope}] {title} (evaluate run {part[0]['run_id']}, {part[0]['n_images']} images)")
        lines.append(f"{'model':<{width}}| words | top-1  | top-5  | original study (top-1)")
        lines.append("-" * width + "+-------+--------+--------+" + "-" * 28)
        for r in part:
            ref = STUDY_TOP1.get(r["kind"])
            ref_s = f"{ref[1]:.0%} ({ref[0]})" if ref else "-"
            lines.append(f"{r['name']:<{width}}| {r['n_words']:>5} | {r['top1']:6.1%} | {r['top5']:6.1%} | {ref_s}")
    lines.append("\nOriginal study: 76 words x 200 web images, 80:20 split; its top-5 was not reported.")
    return "\n".join(lines)


def _model_ids(texts: tuple[str, ...]) -> list[int] | None:
    bad = [t for t in texts if not t.isdigit()]
    if bad:
        raise InputError(f"--models takes model ids (numbers), got {', '.join(bad)}")
    return [int(t) for t in texts] or None


def run_command(args) -> JobResult:
    use_runtime(args.home, args.runtime, args.threads)
    cfg = config_from(args, EvaluateConfig)
    run_id = evaluate(args.home, model_ids=_model_ids(cfg.models), all_scope=cfg.all_scope, threads=args.threads,
                      runtime=args.runtime)
    rows = wh_evaluations.evaluations(args.home, run_id)
    return JobResult(text=comparison_table(rows), data={"run_id": run_id, "evaluations": rows})
