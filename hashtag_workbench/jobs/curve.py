"""`curve`: the data-efficiency curve, supervised vs zero-shot vs zero-shot + photos, per photos per word.

validate -> read (split, stored features, zero-shot models) -> core.curve.compute_curve
-> write the points -> record the run. The zero-shot model is scored on the same words
(the split's words) and the same val photos as the probe.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hashtag_workbench.core.backbones import DEFAULT_BACKBONE
from hashtag_workbench.core.config import option
from hashtag_workbench.core.curve import (
    DEFAULT_PER_WORD,
    MIX,
    PROBE,
    UNLABELLED,
    ZERO_SHOT,
    CurveData,
    as_sentence,
    compute_curve,
    crossing_sentence,
    mix_sentence,
    parse_per_word,
    unlabelled_point,
)
from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.fewshot import PRIOR_STRENGTH, align_probs
from hashtag_workbench.core.metrics import evaluate_scores
from hashtag_workbench.core.probe import ProbeConfig
from hashtag_workbench.jobs._modeldata import stored_batch
from hashtag_workbench.jobs.common import ensure_ready
from hashtag_workbench.jobs.options import config_from
from hashtag_workbench.jobs.runner import JobError, JobResult, job_run
from hashtag_workbench.jobs.split import current_split
from hashtag_workbench.warehouse import curve as wh_curve
from hashtag_workbench.warehouse import models as wh
from hashtag_workbench.warehouse import splits as wh_splits
from hashtag_workbench.warehouse.images import word_counts

HELP = "data-efficiency curve: photos per word needed to beat zero-shot"
DESCRIPTION = (
    "For each number of photos per word, train the linear probe on that many "
    "train photos per word (one draw per seed) and score it on the val split, "
    "beside the best zero-shot model (same words, same val photos) and "
    "zero-shot + those photos. Stored with its run; drawn on the Evaluation page."
)


def _zero_shot_records(home: Path) -> list[dict]:
    """The newest zero-shot model of each name: they need no split, and are scored on its words here.
    (conse_transductive is left out: the curve draws zero-shot + unlabelled photos itself, `unlabelled_point`.)"""
    kinds = [k for k in wh.ZERO_SHOT_KINDS if k != "conse_transductive"]
    recs = wh.models(home, latest_per_name=True, kinds=kinds)
    if not recs:
        raise JobError("no zero-shot model yet: run `hashtags train --models conse` (or `hashtags demo`)")
    return recs


def _score_zero_shot(recs: list[dict], batch, classes: list[str], val: np.ndarray, val_words: list[str], log):
    """Every zero-shot model's aligned scores of all split photos, and its same-words val top-1/top-5."""
    from hashtag_workbench.core.predictor import ModelLoadError, load_model
    scored = []
    for rec in recs:
        try:
            model = load_model(rec)
            probs = align_probs(model.predict(batch), model.classes, classes)
        except (ModelLoadError, ValueError, OSError) as exc:
            log(f"skipped zero-shot model {rec['model_id']}: {exc}")
            continue
        res = evaluate_scores(probs[val], classes, val_words)
        scored.append({"model_id": rec["model_id"], "name": rec["name"], "kind": rec["kind"],
                       "top1": round(res["top1"], 4), "top5": round(res["top5"], 4), "probs": probs})
    if not scored:
        raise JobError("no zero-shot model could be rebuilt: run `hashtags train --models conse` again")
    return scored


def _read(home: Path, split_run: int, backbone: str, run) -> tuple[CurveData, list[dict]]:
    rows = wh_splits.split_rows(home, split_run)
    recs = _zero_shot_records(home)
    backbones = tuple(sorted({backbone} | {r["backbone"] for r in recs if r.get("backbone")}))
    batch, found = stored_batch(home, rows, backbones)
    if backbone not in batch.known:
        run.log(f"computing {backbone} features for {len(rows)} images ({found[backbone]} stored; "
                "`hashtags features` stores them for next time)")
    feats = batch.outputs(backbone, need_logits=False)[0]
    train = np.array([r["part"] == "train" for r in rows])
    words = [r["word"] for r in rows]
    classes = sorted({w for w, t in zip(words, train) if t})
    val_words = [w for w, t in zip(words, train) if not t]
    scored = _score_zero_shot(recs, batch, classes, ~train, val_words, run.log)
    best = max(scored, key=lambda s: (s["top1"], s["top5"], s["model_id"]))
    best["best"] = True
    data = CurveData(classes, feats[train], [w for w, t in zip(words, train) if t], feats[~train], val_words,
                     best["probs"][train], best["probs"][~train])
    return data, scored


def _points(result: dict, scored: list[dict], best: dict, words: int) -> list[dict]:
    """Rows for warehouse.curve: one per zero-shot model, then the probe and the mix per size."""
    rows = [{"method": ZERO_SHOT, "per_word": "0", "photos_per_word": 0.0, "words": words, "words_with_k": words,
             "seeds": 1, "model_id": s["model_id"], "name": s["name"], "best": bool(s.get("best")),
             "top1": s["top1"], "top5": s["top5"]} for s in scored]
    rows += [{"method": PROBE, **p} for p in result["points"]]
    rows += [{"method": MIX, **{k: v for k, v in p.items() if k != "weights"}, "model_id": best["model_id"]}
             for p in result["mix_points"]]
    if result.get("unlabelled"):
        rows.append({"method": UNLABELLED, **result["unlabelled"], "model_id": best["model_id"]})
    return rows


@dataclass
class CurveConfig:
    """The `curve` job's settings."""
    per_word: str = option(DEFAULT_PER_WORD, "photos per word to try, comma-separated, 'all' = every train photo")
    seeds: int = option(3, "draws per size, averaged")
    backbone: str = option(DEFAULT_BACKBONE, "features for the probe")
    mix_strength: str = option(f"{PRIOR_STRENGTH:g}", "zero-shot + photos: how many photos per word the zero-shot "
                               "prior is worth, or 'cv' to choose it by cross-validation on the train photos")


CONFIGS = (CurveConfig,)


def run_curve(home: Path, config: CurveConfig | None = None, *, log=None, **fields) -> dict:
    """Compute and store the curve on the latest split; returns the --json object. `fields` override
    `config`'s."""
    cfg = dataclasses.replace(config or CurveConfig(), **fields)
    sizes, mix_strength = parse_per_word(cfg.per_word), _strength(cfg.mix_strength)
    if cfg.seeds < 1:
        raise InputError(f"--seeds must be at least 1, got {cfg.seeds}")
    ensure_ready(home)
    if not any(r["stored"] for r in word_counts(home)):
        raise JobError("no labelled photos yet: run `hashtags import-folder PATH` (or `hashtags demo`)")
    split_run = current_split(home)
    probe_cfg = ProbeConfig(backbone=cfg.backbone)
    seeds = cfg.seeds
    recorded = {"split_run_id": split_run, "per_word": cfg.per_word, "seeds": seeds, "probe": probe_cfg.to_dict(),
                "mix_strength": "cv" if mix_strength is None else mix_strength}
    with job_run(home, "curve", recorded) as run:
        data, scored = _read(home, split_run, probe_cfg.backbone, run)
        best = next(s for s in scored if s.get("best"))
        result = compute_curve(data, per_word=sizes, seeds=seeds, probe_config=probe_cfg,
                               mix_strength=mix_strength, progress=log or run.log)
        result["unlabelled"] = unlabelled_point(data)
        wh_curve.save_curve(home, run.run_id, _points(result, scored, best, len(data.classes)))
        run.count("done", len(sizes) * seeds)
        run.extra.update(words=len(data.classes), train=len(data.train_words), val=len(data.val_words),
                         zero_shot_model_id=best["model_id"])
        out = _summary(run.run_id, split_run, data, result, scored, best)
    return out


def _summary(run_id: int, split_run: int, data: CurveData, result: dict, scored: list[dict], best: dict) -> dict:
    mix = {p["per_word"]: p for p in result["mix_points"]}
    keys = ("top1", "top5", "top1_std", "top5_std", "weight", "weights", "strengths")
    points = [{**p, "zero_shot_plus_photos": {k: mix[p["per_word"]][k] for k in keys}} for p in result["points"]]
    return {"run_id": run_id, "split_run_id": split_run, "words": len(data.classes),
            "train_photos": len(data.train_words), "val_photos": len(data.val_words),
            "zero_shot_top1": best["top1"], "zero_shot_top5": best["top5"],
            "zero_shot_model": {"model_id": best["model_id"], "name": best["name"], "kind": best["kind"]},
            "zero_shot_models": [{k: s[k] for k in ("model_id", "name", "kind", "top1", "top5")} for s in scored],
            "zero_shot_plus_unlabelled": result.get("unlabelled"),
            "points": points,
            "crossing": crossing_sentence(result["points"], best["top1"]),
            "zero_shot_plus_photos": mix_sentence(result["points"], result["mix_points"], best["top1"])}


def format_curve(out: dict) -> str:
    """The curve as a table plus the crossing sentence."""
    lines = [(f"Data-efficiency curve (curve run {out['run_id']}, split run {out['split_run_id']}: "
              f"{out['words']} words, {out['train_photos']} train / {out['val_photos']} val photos)"),
             (f"zero-shot (0 photos): {out['zero_shot_model']['name']}: top-1 {out['zero_shot_top1']:.1%}, "
              f"top-5 {out['zero_shot_top5']:.1%}"),
             *([f"{u['name']} (0 labelled): top-1 {u['top1']:.1%}, top-5 {u['top5']:.1%}"]
               if (u := out.get("zero_shot_plus_unlabelled")) else []),
             (f"{'per word':>9} | {'words with k':>12} | {'probe top-1':>11} | {'top-5':>6} | "
              f"{'zs+photos top-1':>15} | {'top-5':>6} | zs weight")]
    for p in out["points"]:
        m = p["zero_shot_plus_photos"]
        lines.append(f"{p['per_word']:>9} | {p['words_with_k']:>5}/{p['words']:<6} | "
                     f"{p['top1']:>6.1%} ±{p['top1_std']:>3.0%} | {p['top5']:>6.1%} | "
                     f"{m['top1']:>10.1%} ±{m['top1_std']:>3.0%} | {m['top5']:>6.1%} | {m['weight']:.2f}")
    lines += [as_sentence(out["crossing"]), as_sentence(out["zero_shot_plus_photos"])]
    return "\n".join(lines)


def _strength(text: str | float | None) -> float | None:
    if text is None or str(text).strip().lower() == "cv":
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise InputError(f"--mix-strength takes a number of photos (0 or more) or 'cv', got {text!r}")
    return value


def run_command(args) -> JobResult:
    # The job's own lines go to stderr, so with --json stdout carries the JSON object alone.
    out = run_curve(args.home, config_from(args, CurveConfig))
    return JobResult(text=format_curve(out), data=out)


def add_options(p) -> None:
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
