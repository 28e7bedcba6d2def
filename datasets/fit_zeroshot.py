"""Fit the fused zero-shot model's weights, calibration temperature and threshold on the demo photos, offline.

Writes hashtag_workbench/data/zeroshot_fusion.json, which the `fused` model kind reads: the
shipped model then needs no photos at all (an empty data directory, any vocabulary). For each
variant (hierarchy alone; hierarchy + ConSE; hierarchy + ConSE with HierSE vectors, its decay
chosen by cross-validation) it searches the fusion grid of core.fusion by 5-fold cross-validated
top-1 over the whole shipped vocabulary, fits the temperature by likelihood and the threshold by
measurement; the variant with the best cross-validated top-1 becomes the default. The file
records this run: command, date, commit, photos, vocabulary, the cross-validated figures.

    python datasets/fit_zeroshot.py [--photos datasets/demo/photos] [--cache DIR]
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.zeroshot import photo_logits, read_photos  # noqa: E402
from hashtag_workbench.core.conse import build_conse  # noqa: E402
from hashtag_workbench.core.fused import FUSION_FILE, FusedConfig  # noqa: E402
from hashtag_workbench.core.fusion import fit_fusion  # noqa: E402
from hashtag_workbench.core.hierarchy import word_senses  # noqa: E402
from hashtag_workbench.core.kinds import vocabulary_fingerprint  # noqa: E402
from hashtag_workbench.core.linalg import softmax  # noqa: E402
from hashtag_workbench.core.vocabulary import load_vocabulary  # noqa: E402
from hashtag_workbench.core.wordnet import load_wordnet  # noqa: E402
from hashtag_workbench.core.wordvectors import cached_word_vectors  # noqa: E402

HIERSE_DECAYS = (0.3, 0.5, 0.7)


def fit_variant(cfg: FusedConfig, logits: np.ndarray, true_words: list[str], vocab: dict[str, list[str]],
                *, folds: int = 5) -> tuple[FusedConfig, dict]:
    """One variant's fitted config and cross-validated report, on photos with these logits and true words."""
    from hashtag_workbench.core.backbones import imagenet_classes
    enc = cached_word_vectors(cfg.word_vectors)
    conse = build_conse(cfg.conse_config(), enc, imagenet_classes(), list(vocab), hashtags=vocab)
    unknown = sorted(set(true_words) - set(conse.classes))
    if unknown:
        raise SystemExit(f"photos of words the model cannot answer: {unknown}")
    senses = word_senses(load_wordnet(), conse.classes, vocab, enc)
    truth = np.array([conse.classes.index(w) for w in true_words])
    cosines = conse.similarities(logits) if cfg.cosine else None
    params, report = fit_fusion(softmax(logits, axis=1), cosines, senses, truth, folds=folds)
    fitted = FusedConfig(**{**cfg.to_dict(), "alpha": params.alpha, "eps": params.eps, "weight": params.weight,
                            "baseline": params.baseline, "calibration": params.temperature,
                            "threshold": params.threshold})
    return fitted, report


def fit_all(logits: np.ndarray, true_words: list[str], vocab: dict[str, list[str]], backbone: str,
            *, log=print) -> dict:
    """Every variant fitted; HierSE's decay chosen by cross-validated top-1."""
    base = dict(backbone=backbone)
    out = {}
    for cfg in (FusedConfig("hierarchy", cosine=False, **base), FusedConfig("fused", **base)):
        out[cfg.variant] = fit_variant(cfg, logits, true_words, vocab)
        log(f"{cfg.variant}: cv top-1 {out[cfg.variant][1]['cv_top1']:.1%}")
    tried = {}
    for d in HIERSE_DECAYS:
        tried[d] = fit_variant(FusedConfig("fused_hierse", hierse=d, **base), logits, true_words, vocab)
        log(f"fused_hierse decay {d}: cv top-1 {tried[d][1]['cv_top1']:.1%}")
    best = max(tried, key=lambda d: tried[d][1]["cv_top1"])
    out["fused_hierse"] = (tried[best][0], {**tried[best][1],
                                            "hierse_cv_top1": {str(d): r[1]["cv_top1"] for d, r in tried.items()}})
    return out


def _photos_digest(photos: list[dict]) -> str:
    h = hashlib.sha256()
    for p in sorted(photos, key=lambda p: str(p["path"])):
        h.update(f"{p['true_word']}:{hashlib.sha256(p['path'].read_bytes()).hexdigest()}\n".encode())
    return h.hexdigest()[:16]


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", type=Path, default=ROOT / "datasets" / "demo" / "photos",
                   help="labelled photos as <word>/<files> (default: the demo photos)")
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--cache", default="/tmp/hashtag-zeroshot-cache", help="where photo logits are cached")
    p.add_argument("--out", type=Path, default=FUSION_FILE)
    args = p.parse_args(argv)
    t0 = time.time()
    photos = read_photos(args.photos, None)
    logits, photos = photo_logits(photos, args.backbone, Path(args.cache))
    vocab = load_vocabulary()
    fitted = fit_all(logits, [q["true_word"] for q in photos], vocab, args.backbone)
    default = max(fitted, key=lambda n: fitted[n][1]["cv_top1"])
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    run = {"command": "python datasets/fit_zeroshot.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "date": stamp, "commit": _commit(), "photos": len(photos),
           "photo_words": len({q["true_word"] for q in photos}), "photos_sha256": _photos_digest(photos),
           "vocabulary_words": len(vocab), "vocabulary_fingerprint": vocabulary_fingerprint(list(vocab), vocab),
           "backbone": args.backbone, "seconds": round(time.time() - t0, 1)}
    fit_id = f"fit {stamp} on {len(photos)} photos ({run['photos_sha256']})"
    variants = {n: {"config": {**c.to_dict(), "fit": fit_id}, "report": r} for n, (c, r) in fitted.items()}
    body = {"about": "fitted by datasets/fit_zeroshot.py; read by hashtag_workbench.core.fused", "run": run,
            "default": default, "variants": variants}
    args.out.write_text(json.dumps(body, indent=1) + "\n")
    rep = fitted[default][1]
    print(f"wrote {args.out}: default {default}, cv top-1 {rep['cv_top1']:.1%} / top-5 {rep['cv_top5']:.1%}, "
          f"ECE {rep['ece_before']:.3f} -> {rep['ece_after']:.3f}, threshold "
          f"{fitted[default][0].threshold:.3f} ({run['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
