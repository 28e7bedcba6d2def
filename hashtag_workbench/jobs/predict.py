"""`predict`: top-5 words and hashtags for photos, from the best supervised model and zero-shot.

Zero-shot needs nothing: on an empty data directory the default zero-shot model (the fused
WordNet hierarchy + ConSE model, calibrated) is built over every active vocabulary word on first
use (and rebuilt after a vocabulary edit). A calibrated answer under the model's measured
threshold says "none of these" (`confident: false`) and gives no hashtags.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from hashtag_workbench.core.config import option
from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.hashtags import DEFAULT_N_TAGS
from hashtag_workbench.core.images import ImageRejected
from hashtag_workbench.core.predictor import ModelLoadError, load_model
from hashtag_workbench.infra.onnxrt import use_runtime
from hashtag_workbench.jobs.common import RuntimeConfig, ensure_ready
from hashtag_workbench.jobs.options import config_from
from hashtag_workbench.jobs.runner import JobResult
from hashtag_workbench.service.predictions import NO_SUPERVISED, Photo, predict_photos, read_photo
from hashtag_workbench.warehouse import evaluations as wh_evaluations
from hashtag_workbench.warehouse import models as wh
from hashtag_workbench.warehouse.words import hashtags_for

HELP = "top-5 words and hashtags for photos (supervised and zero-shot)"
DESCRIPTION = (
    "For each image and model (the best supervised one, and zero-shot): the top-5 "
    "words with probabilities, whether the answer is confident (a calibrated top "
    "probability at or above the model's measured threshold; otherwise 'none of "
    "these') and up to N hashtags from the confident words, ranked by word "
    "probability x the tag's rank for that word. Zero-shot needs no data: its "
    "default model (WordNet hierarchy + ConSE, calibrated) is built over every "
    "active vocabulary word on first use and rebuilt when the vocabulary changes."
)

ROLES = (("supervised", "supervised"), ("zero_shot", "zero-shot"))


def read_input(path: Path) -> bytes:
    """The file's bytes, or raise ImageRejected with a reason naming the problem."""
    if not path.exists():
        raise ImageRejected("file not found")
    if path.is_dir():
        raise ImageRejected("is a folder, not an image file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImageRejected(f"cannot read file ({exc.strerror or exc})") from None


def _pick(home: Path, model_id: int | None, role: str) -> dict | None:
    if model_id is None:
        if role == "zero_shot":
            from hashtag_workbench.jobs.train import ensure_zero_shot
            return ensure_zero_shot(home)
        return wh.best_models(home)[role]
    rec = wh.get_model(home, model_id)
    if rec is None:
        raise ModelLoadError(f"no model with id {model_id}")
    return rec


def model_line(role_label: str, model) -> str:
    """Which model answers and which words it can output (all of them up to 12, then a count)."""
    shown = ", ".join(model.classes[:12]) + (f" and {len(model.classes) - 12} more" if len(model.classes) > 12 else "")
    return f"{role_label} [{model.name}, model {model.model_id}] can answer {len(model.classes)} words: {shown}"


@dataclass
class PredictConfig:
    """The `predict` command's settings (the photos are its arguments)."""
    hashtags: int = option(DEFAULT_N_TAGS, "at most N hashtags per model", metavar="N")
    sample_study: bool = option(False, "sample the hashtags as the original study did (supervised: its top 2 words, "
                                "zero-shot: its top 5, by probability) instead of ranking them from the confident "
                                "words")
    seed: int | None = option(None, "seed for --sample-study's sampling (default: random)")
    supervised_model: int | None = option(None, "model id to use instead of the best supervised one")
    zero_shot_model: int | None = option(None, "model id to use instead of the default zero-shot model over the "
                                         "current vocabulary")


CONFIGS = (PredictConfig, RuntimeConfig)


def predict_files(home: Path, paths: list[Path], config: PredictConfig | None = None, *,
                  as_json: bool = False) -> JobResult:
    """Predictions per file: the text report, and as data one object per file; exit code 1 when a file failed
    (the others are still predicted). `as_json` says which models answer on stderr (the text shows it)."""
    cfg = config or PredictConfig()
    if cfg.hashtags < 0:
        raise InputError(f"--hashtags must be 0 or more, got {cfg.hashtags}")
    ensure_ready(home)
    records = {"supervised": _pick(home, cfg.supervised_model, "supervised"),
               "zero_shot": _pick(home, cfg.zero_shot_model, "zero_shot")}
    loaded = {role: load_model(rec) if rec else None for role, rec in records.items()}
    if loaded["supervised"] is None:
        print(f"note: {NO_SUPERVISED}; the zero-shot part still comes out", file=sys.stderr)
    for role, label in ROLES:
        if loaded[role] is not None and as_json:
            print("note: " + model_line(label, loaded[role]), file=sys.stderr)
    tags = hashtags_for(home)
    photos = []
    for p in paths:
        try:
            photos.append(read_photo(str(p), read_input(p)))
        except ImageRejected as exc:
            photos.append(Photo(str(p), error=str(exc)))
    results, rows = predict_photos(photos, supervised=loaded["supervised"], zero_shot=loaded["zero_shot"],
                                   hashtags=tags, seed=cfg.seed, n_tags=cfg.hashtags,
                                   sample_study=cfg.sample_study)
    failed = [r for r in results if "error" in r]
    for r in failed:
        print(f"error: {r['image']}: {r['error']}", file=sys.stderr)
    if rows:
        wh_evaluations.add_predictions(home, rows)
    text = "\n".join(format_result(r, loaded) for r in results if "error" not in r)
    return JobResult(text=text, data=results, lines=True, exit_code=1 if failed else 0)


def format_result(r: dict, loaded: dict) -> str:
    lines = [r["image"]]
    for role, label in ROLES:
        model = loaded[role]
        if model is None:
            lines.append(f"  {label}: {NO_SUPERVISED}")
            continue
        part = r[role]
        lines.append("  " + model_line(label, model))
        lines.append("    " + ", ".join(f"{w} {p:.1%}" for w, p in part["top"]))
        lines.append("    " + confidence_line(part))
        if part["hashtags"]:
            lines.append("    " + " ".join(f"#{t}" for t in part["hashtags"]))
    return "\n".join(lines)


def confidence_line(part: dict) -> str:
    """Whether the answer can be trusted, as one line ('confident: ...')."""
    top_p = part["top"][0][1]
    if part["confident"] is None:
        return f"confident: not measured for this model (top probability {top_p:.1%})"
    if part["confident"]:
        return f"confident: yes ({top_p:.1%} >= the measured threshold {part['threshold']:.1%})"
    return (f"confident: no - none of these words fits well ({top_p:.1%} < the measured threshold "
            f"{part['threshold']:.1%}); no hashtags")


def run_command(args) -> JobResult:
    use_runtime(args.home, args.runtime, args.threads)
    return predict_files(args.home, [Path(p) for p in args.images], config_from(args, PredictConfig),
                         as_json=args.json)


def add_options(p) -> None:
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per image: {image, supervised: {top, hashtags, confident, threshold} "
                        "(or null, with supervised_reason), zero_shot: {top, hashtags, confident, threshold}}; "
                        "confident is null for a model without a measured threshold")
