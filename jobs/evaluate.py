"""`evaluate`: top-1/top-5, per-word precision/recall, confusion and every prediction, per model, stored.

Supervised models and ConSE are scored on the val part of the split they were trained
with; ConSE, which needs no training data, is also scored on every stored image.
"""
from __future__ import annotations

from pathlib import Path

import torch

from core.metrics import STUDY_TOP1, evaluate_scores
from core.predictor import ModelLoadError, load_model
from jobs._modeldata import stored_batch
from jobs.common import ensure_ready, split_list
from jobs.runner import job_run
from warehouse import models as wh

ORDER = 42


def _drop_unreadable(batch, rows, run) -> tuple[object, list[dict]]:
    """Decode every image now, so an unreadable file is skipped (and logged) rather than failing a model."""
    ok = []
    for i, r in enumerate(rows):
        try:
            batch.image(i)
            ok.append(i)
        except Exception as exc:
            run.log(f"skipped image {r['image_id']}: {exc}")
            run.count("unreadable")
    if len(ok) == len(rows):
        return batch, rows
    keep = [rows[i] for i in ok]
    new, _ = stored_batch(run.home, keep, tuple(batch.known))
    return new, keep


def evaluate(home: Path, *, model_ids: list[int] | None = None, all_scope: bool = True, threads: int = 2) -> int:
    """Evaluate the given models (default: the newest model of each name); returns the evaluate run id."""
    ensure_ready(home)
    torch.set_num_threads(max(1, threads))
    recs = wh.models(home, ids=model_ids, latest_per_name=not model_ids)
    if not recs:
        raise ValueError("no trained models to evaluate: run `python -m jobs train` first"
                         if not model_ids else f"no models with ids {model_ids}")
    with job_run(home, "evaluate", {"model_ids": [r["model_id"] for r in recs], "all_scope": all_scope}) as run:
        batches: dict = {}

        def batch_for(key, rows, backbones):
            if key not in batches:
                b, found = stored_batch(home, rows, backbones)
                b, rows = _drop_unreadable(b, rows, run)
                batches[key] = (b, rows)
            return batches[key]

        for rec in recs:
            try:
                model = load_model(rec)
            except ModelLoadError as exc:
                run.log(f"skipped model {rec['model_id']}: {exc}")
                run.count("failed")
                continue
            scopes = [("val", rec["split_run_id"])]
            if rec["kind"] in wh.ZERO_SHOT_KINDS and all_scope:
                scopes.append(("all", None))
            for scope, split_run in scopes:
                if scope == "val":
                    if split_run is None:
                        continue
                    rows = [r for r in wh.split_rows(home, split_run) if r["part"] == "val"]
                else:
                    rows = wh.all_labelled(home)
                if not rows:
                    run.log(f"model {rec['model_id']}: no {scope} images")
                    continue
                backbones = tuple(b for b in {rec.get("backbone")} if b)
                batch, rows = batch_for((scope, split_run, backbones), rows, backbones)
                probs = model.predict(batch)
                res = evaluate_scores(probs, model.classes, [r["word"] for r in rows])
                preds = [{"image_id": r["image_id"], "true_word": r["word"], **p}
                         for r, p in zip(rows, res["predictions"])]
                wh.save_evaluation(home, run_id=run.run_id, model_id=rec["model_id"], scope=scope,
                                   top1=res["top1"], top5=res["top5"], per_word=res["per_word"],
                                   confusion=res["confusion"], predictions=preds)
                run.count("done")
        run.extra["models"] = len(recs)
        run_id = run.run_id
    print(comparison_table(wh.evaluations(home, run_id)))
    return run_id


def comparison_table(rows: list[dict]) -> str:
    """The original study's table form: model | top-1 | top-5, with its figures as reference."""
    if not rows:
        return "no evaluations yet: run `python -m jobs train` then `python -m jobs evaluate`"
    lines = []
    for scope, title in (("val", "the val split"), ("all", "every stored image (ConSE needs no training data)")):
        rank = {"bovw_svm": 0, "finetune": 1, "linear_probe": 2, "conse": 3, "clip": 4}
        part = sorted((r for r in rows if r["scope"] == scope), key=lambda r: (rank.get(r["kind"], 9), r["model_id"]))
        if not part:
            continue
        width = max(len(r["name"]) for r in part) + 2
        lines.append(f"\nComparison on {title} (evaluate run {part[0]['run_id']}, {part[0]['n_images']} images)")
        lines.append(f"{'model':<{width}}| top-1  | top-5  | original study (top-1)")
        lines.append("-" * width + "+--------+--------+" + "-" * 28)
        for r in part:
            ref = STUDY_TOP1.get(r["kind"])
            ref_s = f"{ref[1]:.0%} ({ref[0]})" if ref else "-"
            lines.append(f"{r['name']:<{width}}| {r['top1']:6.1%} | {r['top5']:6.1%} | {ref_s}")
    lines.append("\nOriginal study: 76 words x 200 web images, 80:20 split; its top-5 was not reported.")
    return "\n".join(lines)


def _cmd(args) -> int:
    ids = [int(x) for x in split_list(args.models) or []] or None
    evaluate(args.home, model_ids=ids, all_scope=not args.val_only, threads=args.threads)
    return 0


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="score the trained models and print the comparison table",
                       description="Top-1/top-5 accuracy on the val split, per-word precision/recall, confusion "
                                   "and misclassified images for each model, stored with the run; ConSE also on "
                                   "every stored image. Prints the comparison with the original study.")
    p.add_argument("--models", help="comma-separated model ids (default: the newest model of each name)")
    p.add_argument("--val-only", action="store_true", help="skip ConSE's evaluation on every stored image")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.set_defaults(func=_cmd)
