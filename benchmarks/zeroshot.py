"""Zero-shot quality: every word-vector source x ConSE variant on real photos, over the whole vocabulary.

The photos are a folder laid out as <word>/<files> (the folder name is the true word),
or any folder with a MANIFEST.csv (`file` relative to the folder, `true_word`; an
optional `also` column lists other acceptable words, separated by ';' or ',', which
gives a second, lenient figure). Every model ranks ALL vocabulary words (76 by
default), whatever words have photos: that is what a user without data gets.

The CNN runs once per photo (its logits are cached under --cache, keyed by the file's
SHA-256); each variant then costs milliseconds, so the whole grid runs side by side.

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

from hashtag_workbench.core.conse import ConSEConfig, ConSEError, build_conse, named_variants
from hashtag_workbench.core.metrics import evaluate_scores
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

        from hashtag_workbench.core.predictor import compute_features, get_backbone
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


def score(cfg: ConSEConfig, encoder, names, words, hashtags, logits, photos) -> dict:
    model = build_conse(cfg, encoder, names, words, hashtags=hashtags)
    probs = model.predict_proba(logits)
    res = evaluate_scores(probs, model.classes, [p["true_word"] for p in photos])
    order = np.argsort(-probs, axis=1)
    ok = [{p["true_word"], *p["also"]} for p in photos]
    lenient1 = np.mean([model.classes[o[0]] in a for o, a in zip(order, ok)])
    lenient5 = np.mean([bool(a & {model.classes[j] for j in o[:5]}) for o, a in zip(order, ok)])
    preds = [r["pred_word"] for r in res["predictions"]]
    commonest = max(set(preds), key=preds.count)
    return {"vectors": encoder.name, "variant": cfg.variant, "config": cfg.to_dict(), "top1": res["top1"],
            "top5": res["top5"], "lenient_top1": float(lenient1), "lenient_top5": float(lenient5),
            "words_predicted": len(set(preds)), "commonest": [commonest, preds.count(commonest)],
            "targets_dropped": model.report["targets_dropped"]}


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
        configs = grid_variants(spec, args.backbone) if args.grid else named_variants(spec, args.backbone)
        for cfg in configs:
            t = time.perf_counter()
            try:
                r = score(cfg, enc, names, words, vocab, logits, photos)
            except ConSEError as exc:
                print(f"skipped {spec} {cfg.variant}: {exc}", file=sys.stderr)
                continue
            r["seconds"] = round(time.perf_counter() - t, 3)
            results.append(r)
    return {"photos": len(photos), "photo_words": len({p["true_word"] for p in photos}),
            "vocabulary": len(words), "backbone": args.backbone, "results": results}


def table(out: dict) -> str:
    lines = [f"{out['photos']} photos of {out['photo_words']} words, ranked over all {out['vocabulary']} "
             f"vocabulary words ({out['backbone']} logits)",
             f"{'vectors':<15}{'variant':<40}{'top-1':>7}{'top-5':>7}{'len-1':>7}{'len-5':>7}  words  commonest"]
    for r in sorted(out["results"], key=lambda r: (r["vectors"], -r["top1"])):
        c = r["commonest"]
        lines.append(f"{r['vectors']:<15}{r['variant']:<40}{r['top1']:>7.1%}{r['top5']:>7.1%}"
                     f"{r['lenient_top1']:>7.1%}{r['lenient_top5']:>7.1%}  {r['words_predicted']:>5}  {c[0]} x{c[1]}")
    best = max(out["results"], key=lambda r: (r["top1"], r["top5"]), default=None)
    if best:
        lines.append(f"best top-1: {best['vectors']} {best['variant']} {best['top1']:.1%} (top-5 {best['top5']:.1%})")
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
