"""Zero-shot quality: every zero-shot variant (ConSE x word vectors, HierSE, the WordNet hierarchy, the fused model).

The photos are a folder laid out as <word>/<files> (the folder name is the true word),
or any folder with a MANIFEST.csv (`file` relative to the folder, `true_word`; an
optional `also` column lists other acceptable words, separated by ';' or ',', which
gives a second, lenient figure). Every model ranks ALL vocabulary words (76 by
default), whatever words have photos: that is what a user without data gets.

The CNN runs once per photo (its logits are cached under --cache, keyed by the file's
SHA-256); each variant then costs milliseconds, so the whole grid runs side by side.

For each variant: top-1/top-5 over the whole vocabulary and over the photos' own words, the
expected calibration error (ECE) of its probabilities, and per-word top-1 hit rates; a per-word
table shows where the WordNet hierarchy helps and where it cannot (words with no ImageNet class
beneath their sense). The fused variants' weights were fitted on the demo photos
(datasets/fit_zeroshot.py): on those photos their figures are in-sample, so the table also prints
the fit's cross-validated top-1.

    python benchmarks/zeroshot.py datasets/demo/photos --manifest datasets/demo/MANIFEST.csv
    python benchmarks/zeroshot.py PHOTOS --vectors spacy,glove,minilm --grid --json
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

from hashtag_workbench.core.conse import ConSEConfig, ConSEError, build_conse, default_config, named_variants
from hashtag_workbench.core.fused import build_fused, fused_configs, read_fusion_file
from hashtag_workbench.core.fusion import expected_calibration_error
from hashtag_workbench.core.metrics import evaluate_scores
from hashtag_workbench.core.predictor import restrict
from hashtag_workbench.core.vocabulary import load_vocabulary
from hashtag_workbench.core.wordvectors import CachedEncoder, load_word_vectors

ROOT = Path(__file__).resolve().parent.parent

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def read_photos(folder: Path, manifest: Path | None) -> list[dict]:
    """[{path, true_word, also: [..]}] from the manifest, else from the <word>/<file> layout."""
    if manifest:
        with open(manifest, newline="") as fh:
            rows = list(csv.DictReader(fh))
        if not rows or "file" not in rows[0]:
            raise SystemExit(f"{manifest}: expected a CSV with a 'file' column and 'true_word' (or 'word')")
        key = "true_word" if "true_word" in rows[0] else "word"
        out = []
        for r in rows:
            also = [w.strip() for w in (r.get("also") or "").replace(";", ",").split(",") if w.strip()]
            out.append({"path": folder / r["file"], "true_word": r[key].strip(), "also": also})
        return out
    return [{"path": f, "true_word": d.name, "also": []}
            for d in sorted(p for p in folder.iterdir() if p.is_dir())
            for f in sorted(d.iterdir()) if f.suffix.lower() in IMAGE_EXTS]


def photo_logits(photos: list[dict], backbone: str, cache: Path) -> tuple[np.ndarray, list[dict]]:
    """(n, 1000) ImageNet logits of the readable photos (CNN only for photos not cached yet)."""
    from hashtag_workbench.core.images import ImageRejected, decode_rgb
    cache.mkdir(parents=True, exist_ok=True)
    kept, logits, todo = [], [], []
    for p in photos:
        data = p["path"].read_bytes()
        f = cache / f"{backbone}-{hashlib.sha256(data).hexdigest()}.npy"
        if f.is_file():
            kept.append(p)
            logits.append(np.load(f))
            continue
        try:
            todo.append((p, f, decode_rgb(data, min_side=8)))
        except ImageRejected as exc:
            print(f"skipped {p['path']}: {exc}", file=sys.stderr)
    if todo:
        import torch

        from hashtag_workbench.core.backbones import compute_features, get_backbone
        torch.set_num_threads(2)
        print(f"computing {backbone} logits for {len(todo)} photos ...", file=sys.stderr)
        _, out = compute_features(get_backbone(backbone), [t[2] for t in todo])
        for (p, f, _), row in zip(todo, out):
            np.save(f, row)
            kept.append(p)
            logits.append(row)
    return np.stack(logits), kept


def grid_variants(vectors: str, backbone: str) -> list[ConSEConfig]:
    """Every combination of the variant switches (for --grid)."""
    out = []
    for centre, expand, temp, names, debias, combine in itertools.product(
            (False, True), (False, True), (None, 1.0, 2.0, 3.0), ("mean", "head", "both"), (False, True),
            ("embed", "vote")):
        if combine == "vote" and debias:
            continue  # debias rescales cosines of the embedding; votes do not use them
        out.append(ConSEConfig(word_vectors=vectors, backbone=backbone, centre=centre, expand=expand,
                               temperature=temp, names=names, debias=debias, combine=combine))
    return out


HIERSE_DECAYS = (0.3, 0.5, 0.7)
KEY_VARIANTS = ("ConSE default", "hierarchy", "fused", "fused_hierse")


def variants(spec: str, backbone: str, grid: bool) -> list[tuple[str, object]]:
    """(name, config) of every variant for one word-vector source; the fused ones (fitted for spaCy) with spaCy."""
    configs = grid_variants(spec, backbone) if grid else named_variants(spec, backbone)
    out = [(c.variant, c) for c in configs]
    default = default_config(spec, backbone)
    out.append(("ConSE default" if spec == default_config().word_vectors else default.variant, default))
    out += [(f"hierse{d:g}", ConSEConfig(**{**default.to_dict(), "hierse": d})) for d in HIERSE_DECAYS]
    out += [(c.variant, c) for c in fused_configs() if c.word_vectors == spec and c.backbone == backbone]
    return out


def build(cfg, encoder, names, words, hashtags):
    if isinstance(cfg, ConSEConfig):
        return build_conse(cfg, encoder, names, words, hashtags=hashtags)
    return build_fused(cfg, encoder, names, words, hashtags=hashtags)


def score(name: str, cfg, encoder, names, words, hashtags, logits, photos) -> dict:
    model = build(cfg, encoder, names, words, hashtags)
    probs = model.predict_logits(logits)
    truth = [p["true_word"] for p in photos]
    res = evaluate_scores(probs, model.classes, truth)
    own = sorted(set(truth))
    res_own = evaluate_scores(restrict(probs, model.classes, own), own, truth)
    order = np.argsort(-probs, axis=1)
    ok = [{p["true_word"], *p["also"]} for p in photos]
    lenient1 = np.mean([model.classes[o[0]] in a for o, a in zip(order, ok)])
    lenient5 = np.mean([bool(a & {model.classes[j] for j in o[:5]}) for o, a in zip(order, ok)])
    preds = [r["pred_word"] for r in res["predictions"]]
    commonest = max(set(preds), key=preds.count)
    index = {w: i for i, w in enumerate(model.classes)}
    known = np.array([t in index for t in truth])
    ece = expected_calibration_error(probs[known], np.array([index[t] for t in np.array(truth)[known]]))
    return {"vectors": encoder.name, "variant": name, "config": cfg.to_dict(), "top1": res["top1"],
            "top5": res["top5"], "own_top1": res_own["top1"], "own_top5": res_own["top5"], "ece": ece,
            "lenient_top1": float(lenient1), "lenient_top5": float(lenient5),
            "words_predicted": len(set(preds)), "commonest": [commonest, preds.count(commonest)],
            "per_word": {w: float(np.mean([p == w for p, t in zip(preds, truth) if t == w])) for w in own},
            "targets_dropped": model.report["targets_dropped"],
            "without_hierarchy": model.report.get("words_without_hierarchy")}


def run(args) -> dict:
    from hashtag_workbench.core.backbones import imagenet_classes
    photos = read_photos(Path(args.photos), Path(args.manifest) if args.manifest else None)
    vocab = load_vocabulary(args.vocabulary) if args.vocabulary else load_vocabulary()
    unknown = sorted({p["true_word"] for p in photos} - set(vocab))
    if unknown:
        print(f"note: true words outside the vocabulary (always wrong): {unknown}", file=sys.stderr)
    logits, photos = photo_logits(photos, args.backbone, Path(args.cache))
    names, words = imagenet_classes(), list(vocab)
    results = []
    for spec in args.vectors.split(","):
        try:
            enc = CachedEncoder(load_word_vectors(spec))
        except Exception as exc:  # one missing source must not hide the others' figures
            print(f"skipped vectors {spec}: {exc}", file=sys.stderr)
            continue
        for name, cfg in variants(spec, args.backbone, args.grid):
            t = time.perf_counter()
            try:
                r = score(name, cfg, enc, names, words, vocab, logits, photos)
            except ConSEError as exc:
                print(f"skipped {spec} {name}: {exc}", file=sys.stderr)
                continue
            r["seconds"] = round(time.perf_counter() - t, 3)
            results.append(r)
    fit = read_fusion_file()
    return {"photos": len(photos), "photo_words": len({p["true_word"] for p in photos}),
            "vocabulary": len(words), "backbone": args.backbone, "results": results,
            "fit": {"run": fit["run"], "default": fit["default"],
                    "cv": {n: {k: v["report"][k] for k in ("cv_top1", "cv_top5", "ece_before", "ece_after")}
                           for n, v in fit["variants"].items()}}}


def table(out: dict) -> str:
    lines = [f"{out['photos']} photos of {out['photo_words']} words ({out['backbone']} logits); top-1/top-5 over "
             f"all {out['vocabulary']} vocabulary words and over the photos' {out['photo_words']} words (own-)",
             f"{'vectors':<15}{'variant':<40}{'top-1':>7}{'top-5':>7}{'own-1':>7}{'own-5':>7}{'ECE':>7}"
             f"{'len-1':>7}  words  commonest"]
    for r in sorted(out["results"], key=lambda r: (r["vectors"], -r["top1"])):
        c = r["commonest"]
        lines.append(f"{r['vectors']:<15}{r['variant']:<40}{r['top1']:>7.1%}{r['top5']:>7.1%}{r['own_top1']:>7.1%}"
                     f"{r['own_top5']:>7.1%}{r['ece']:>7.3f}{r['lenient_top1']:>7.1%}  {r['words_predicted']:>5}  "
                     f"{c[0]} x{c[1]}")
    best = max(out["results"], key=lambda r: (r["top1"], r["top5"]), default=None)
    if best:
        lines.append(f"best top-1: {best['vectors']} {best['variant']} {best['top1']:.1%} (top-5 {best['top5']:.1%})")
    fit = out["fit"]
    lines.append(f"fused variants were fitted on {fit['run']['photos']} demo photos ({fit['run']['date']}); "
                 "5-fold cross-validated: " + "; ".join(
                     f"{n} top-1 {v['cv_top1']:.1%} top-5 {v['cv_top5']:.1%} ECE {v['ece_before']:.3f} -> "
                     f"{v['ece_after']:.3f}" for n, v in fit["cv"].items()))
    return "\n".join(lines + ["", per_word_table(out)])


def per_word_table(out: dict) -> str:
    """Top-1 hit rate per true word for the key variants, and whether the word has hierarchy evidence."""
    by = {r["variant"]: r for r in out["results"] if r["variant"] in KEY_VARIANTS}
    cols = [v for v in KEY_VARIANTS if v in by]
    if not cols:
        return ""
    no_h = set(next((by[c]["without_hierarchy"] for c in cols if by[c]["without_hierarchy"] is not None), []))
    lines = [f"per-word top-1 (over all words){'':<3}" + "".join(f"{c:>15}" for c in cols) + "  hierarchy"]
    for w in sorted(by[cols[0]]["per_word"]):
        lines.append(f"{w:<34}" + "".join(f"{by[c]['per_word'][w]:>15.0%}" for c in cols)
                     + f"  {'cannot help (no ImageNet class beneath)' if w in no_h else 'yes'}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("photos", help="folder of photos: <word>/<files>, or with --manifest")
    p.add_argument("--manifest", help="CSV with file (relative to PHOTOS) and true_word (optional 'also') columns")
    p.add_argument("--vectors", default="spacy,glove,minilm",
                   help="comma-separated word-vector sources: spacy, glove, minilm or a word2vec PATH")
    p.add_argument("--backbone", default="efficientnet_lite0", help="CNN whose ImageNet logits ConSE reads")
    p.add_argument("--vocabulary", help="word -> hashtags JSON (default: the shipped vocabulary)")
    p.add_argument("--grid", action="store_true", help="every combination of the variant switches")
    p.add_argument("--cache", default="/tmp/hashtag-zeroshot-cache", help="where photo logits are cached")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = p.parse_args(argv)
    out = run(args)
    print(json.dumps(out, indent=1) if args.json else table(out))
    return 0 if out["results"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
