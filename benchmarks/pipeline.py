"""The whole study as a user runs it, stage by stage, each stage its own process.

    python benchmarks/pipeline.py [--photos DIR | --augment N] [--json] [--keep DIR]

Stages: import-folder, features, outliers, train (every default model), evaluate, curve,
each run as `python -m hashtag_workbench --home H ...` on a fresh data directory. Per stage:
wall time, CPU time (user + system, the stage's process and its children) and peak RSS
(the largest resident set of that process tree, from wait4's rusage). Then the bare ONNX
Runtime forward pass of the default backbone over the same photos (session.run only: the
photos are decoded and cropped outside the timed part, its wall and CPU seconds both taken)
and the whole study in **forward-pass equivalents**, two ways: by wall time (the study's
total wall / the bare pass's wall) and by CPU time (the study's CPU seconds / the bare
pass's CPU seconds, both measured in this run). On a machine shared with other work the
wall figure moves with the load; the CPU figure much less so.

`--augment N` builds N augmented copies of every demo photo (random crop, tilt, flip and
colour shift, long side 512 px), so `--augment 9` gives ~4.8k photos and `--augment 28`
~15k; the copies are cached under --trees (default /tmp) and reused by later runs.
The val top-1 of every model (evaluate's val scope) is reported too, so a speed change
that costs accuracy shows up in the same table.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "datasets" / "demo" / "photos"
AUG_SIDE = 512
FORWARD_BATCH = 16


# --------------------------------------------------------------------------- augmented photos

def augment_photo(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One random variant of a photo: crop (55-100 % of each side), tilt (+-12 deg), flip, colour shift."""
    img = img.convert("RGB")
    w, h = img.size
    cw, ch = (max(8, int(s * rng.uniform(0.55, 1.0))) for s in (w, h))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    img = img.crop((x0, y0, x0 + cw, y0 + ch))
    img = img.rotate(float(rng.uniform(-12, 12)), resample=Image.Resampling.BILINEAR, expand=False)
    if rng.random() < 0.5:
        img = ImageOps.mirror(img)
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        img = enhancer(img).enhance(float(rng.uniform(0.75, 1.25)))
    scale = AUG_SIDE / max(img.size)
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                      Image.Resampling.BILINEAR)


def _augment_one(job: tuple[str, str, int, int]) -> int:
    src, out_dir, copies, seed = job
    rng = np.random.default_rng(seed)
    with Image.open(src) as im:
        im.load()
        for k in range(copies):
            augment_photo(im, rng).save(Path(out_dir) / f"{Path(src).stem}-aug{k:02d}.jpg", quality=88)
    return copies


def augmented_tree(source: Path, copies: int, trees: Path) -> Path:
    """<trees>/scale-aug<copies>/<word>/...: `copies` variants of every photo of `source` (made once)."""
    from hashtag_workbench.jobs.import_folder import scan_folder
    out = trees / f"scale-aug{copies}"
    if (out / ".complete").is_file():
        return out
    shutil.rmtree(out, ignore_errors=True)
    by_word, _ = scan_folder(source)
    jobs = []
    for word, files in sorted(by_word.items()):
        (out / word).mkdir(parents=True, exist_ok=True)
        jobs += [(str(f), str(out / word), copies, 1000 * len(jobs) + i) for i, f in enumerate(sorted(files))]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        made = sum(pool.map(_augment_one, jobs, chunksize=8))
    (out / ".complete").write_text(f"{made}\n")
    print(f"[pipeline] made {made} augmented photos in {out} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return out


# --------------------------------------------------------------------------- stages

def stages(photos: Path) -> list[tuple[str, list[str]]]:
    return [("import-folder", ["import-folder", str(photos)]), ("features", ["features"]),
            ("outliers", ["outliers"]), ("train", ["train"]), ("evaluate", ["evaluate"]), ("curve", ["curve"])]


def run_stage(home: Path, args: list[str], log: Path) -> dict:
    """One CLI command as its own process: wall, CPU (user+sys) and peak RSS of its process tree."""
    cmd = [sys.executable, "-m", "hashtag_workbench", "--home", str(home), *args]
    t0 = time.perf_counter()
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": round(wall, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024), "rc": proc.returncode}


def bare_forward(home: Path) -> dict:
    """ONNX Runtime forward of the default backbone over every stored photo, session.run alone timed
    (wall, and CPU seconds of this process: ONNX Runtime's threads are this process's threads)."""
    from hashtag_workbench.infra.onnxrt import OnnxBackbone, load_onnx
    from hashtag_workbench.jobs._modeldata import read_photo
    from hashtag_workbench.warehouse.images import labelled_images
    bb = load_onnx(home)
    if not isinstance(bb, OnnxBackbone):
        raise SystemExit("ONNX Runtime is not usable here; the forward-pass baseline needs it")
    rows = labelled_images(home)
    seconds = cpu = 0.0
    for i in range(0, len(rows), FORWARD_BATCH):
        x = np.stack([bb.preprocess(read_photo(home, r["path"])) for r in rows[i:i + FORWARD_BATCH]])
        t0, c0 = time.perf_counter(), time.process_time()
        bb.features_and_logits(x)
        seconds, cpu = seconds + time.perf_counter() - t0, cpu + time.process_time() - c0
    return {"photos": len(rows), "seconds": round(seconds, 1), "cpu_s": round(cpu, 1),
            "images_per_s": round(len(rows) / seconds, 1)}


def val_top1(home: Path) -> dict[str, float]:
    """{model name: top-1} of the newest evaluate run's val scope."""
    from hashtag_workbench.warehouse.evaluations import evaluations
    rows = evaluations(home)
    last = max((r["run_id"] for r in rows), default=None)
    return {r["name"]: round(r["top1"], 4) for r in rows if r["run_id"] == last and r["scope"] == "val"}


def epochs_run(home: Path) -> dict[str, int]:
    """Epochs each stored fine-tune actually ran (early stopping may end it before the maximum)."""
    from hashtag_workbench.warehouse.models import learning_curve, models
    return {r["name"]: r["config"].get("epochs_run") or len(learning_curve(home, r["model_id"]))
            for r in models(home, kinds=["finetune"])}


def study(photos: Path, home: Path, log: Path, only: set[str] | None = None) -> dict:
    results = {}
    for name, args in stages(photos):
        if only and name not in only:
            continue
        print(f"[pipeline] {name} ...", file=sys.stderr, flush=True)
        results[name] = run_stage(home, args, log)
        print(f"[pipeline] {name}: {results[name]}", file=sys.stderr, flush=True)
        if results[name]["rc"] != 0:
            tail = log.read_text(errors="replace").splitlines()[-15:]
            raise SystemExit("\n".join(tail) + f"\nstage {name} failed (exit {results[name]['rc']})")
    total = sum(r["wall_s"] for r in results.values())
    total_cpu = sum(r["cpu_s"] for r in results.values())
    fwd = bare_forward(home)
    return {"photos": fwd["photos"], "cpus": os.cpu_count(), "load_average": round(os.getloadavg()[0], 1),
            "stages": results, "total_wall_s": round(total, 1), "total_cpu_s": round(total_cpu, 1),
            "max_peak_rss_mb": max(r["peak_rss_mb"] for r in results.values()),
            "bare_forward": fwd, "forward_pass_equivalents": round(total / fwd["seconds"], 1),
            "forward_pass_equivalents_cpu": round(total_cpu / fwd["cpu_s"], 1),
            "val_top1": val_top1(home), "finetune_epochs_run": epochs_run(home)}


def table(out: dict) -> str:
    lines = [f"{out['photos']} photos, {out['cpus']} CPUs, load average {out['load_average']} at the end\n",
             "| stage | wall s | CPU s | peak RSS MB |", "|---|---:|---:|---:|"]
    lines += [f"| {k} | {v['wall_s']:.1f} | {v['cpu_s']:.1f} | {v['peak_rss_mb']} |" for k, v in out["stages"].items()]
    lines.append(f"| **whole study** | **{out['total_wall_s']:.1f}** | {out['total_cpu_s']:.1f} | "
                 f"{out['max_peak_rss_mb']} |")
    f = out["bare_forward"]
    lines.append(f"\nbare ONNX Runtime forward: {f['seconds']:.1f} s wall ({f['images_per_s']:.1f} img/s), "
                 f"{f['cpu_s']:.1f} s CPU")
    lines.append(f"whole study = {out['forward_pass_equivalents']:.1f} forward-pass equivalents by wall time "
                 f"(study wall / bare forward wall), {out['forward_pass_equivalents_cpu']:.1f} by CPU time "
                 "(study CPU / bare forward CPU)")
    lines.append("val top-1: " + ", ".join(f"{k} {v:.1%}" for k, v in out["val_top1"].items()))
    lines.append(f"fine-tune epochs run: {out['finetune_epochs_run']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--photos", type=Path, help="a folder with one sub-folder of photos per word (default: demo)")
    src.add_argument("--augment", type=int, default=0, metavar="N",
                     help="N augmented copies of every demo photo instead (9: ~4.8k photos, 28: ~15k)")
    ap.add_argument("--trees", type=Path, default=Path(tempfile.gettempdir()),
                    help="where augmented photo trees are cached (default: the temp folder)")
    ap.add_argument("--keep", type=Path, help="use this (new) data directory and keep it (default: a temp one)")
    ap.add_argument("--only", help="comma-separated stages to run on the --keep data directory made by an "
                                   "earlier run (e.g. train,evaluate,curve after changing training code)")
    ap.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = ap.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    if only and (not args.keep or only - {name for name, _ in stages(Path())}):
        raise SystemExit("--only needs --keep DIR and stage names among: " + ", ".join(n for n, _ in stages(Path())))
    photos = args.photos or DEMO
    if args.augment < 0:
        raise SystemExit("--augment takes 0 or more copies")
    if args.augment:
        photos = augmented_tree(DEMO, args.augment, args.trees)
    if not photos.is_dir():
        raise SystemExit(f"{photos} is not a folder")
    with tempfile.TemporaryDirectory(prefix="pipeline-") as tmp:
        home = args.keep or Path(tmp) / "home"
        home.parent.mkdir(parents=True, exist_ok=True)
        if not only and home.exists() and any(home.iterdir()):
            raise SystemExit(f"{home} is not empty: the study starts from a fresh data directory")
        out = study(photos, home, Path(tmp) / "stages.log" if not args.keep else home.parent / "pipeline.log", only)
    print(json.dumps(out, indent=1) if args.json else table(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
