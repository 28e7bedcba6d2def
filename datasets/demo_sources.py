"""Readers for the packages the demo photos come from, and their licence statements.

Every photo is named by (source, path): `source` is a Debian package name or a pinned PyPI
requirement (`name==version`), `path` is the file inside it. Two kinds of path are special:
- `...something.rcc:member` is a member of a Qt resource file (GCompris packs its activity
  photos that way; each resource folder has a README with per-file licences);
- `....pzl` is a Jigzo puzzle: the photo is the last JPEG inside, cropped to its `image` line.
"""
from __future__ import annotations

import bz2
import fnmatch
import io
import json
import re
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from functools import lru_cache
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

COMMON_LICENSES = Path("/usr/share/common-licenses")
IMAGE_EXT = (".webp", ".jpg", ".jpeg", ".png")


class SourceError(RuntimeError):
    """A package or a file inside it is missing or unreadable."""


def is_pypi(source: str) -> bool:
    return "==" in source


# ---------------------------------------------------------------- fetching

def fetch_deb(package: str, tmp: Path) -> Path:
    """`apt-get download` + `dpkg-deb -x` (nothing is installed); returns the extracted root."""
    dest = tmp / "deb" / package
    if dest.exists():
        return dest
    (tmp / "debs").mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", package], cwd=tmp / "debs", check=True, capture_output=True)
    deb = next((tmp / "debs").glob(f"{package}_*.deb"))
    part = dest.with_name(package + ".part")          # renamed when complete, so a failed run is redone
    shutil.rmtree(part, ignore_errors=True)
    part.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(part)], check=True)
    part.rename(dest)
    return dest


def fetch_wheel(requirement: str, tmp: Path) -> Path:
    """`pip download --no-deps` of one pinned wheel; returns the wheel file."""
    dest = tmp / "wheels" / requirement.replace("==", "-")
    dest.mkdir(parents=True, exist_ok=True)
    if not list(dest.glob("*.whl")):
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        requirement, "-d", str(dest)], check=True, capture_output=True)
    return next(dest.glob("*.whl"))


# ---------------------------------------------------------------- Qt resource files (.rcc)

@lru_cache(maxsize=16)
def read_rcc(path: Path) -> dict[str, bytes]:
    """All files in a Qt binary resource file: {member path: bytes} (zlib and zstd entries)."""
    b = path.read_bytes()
    if b[:4] != b"qres":
        raise SourceError(f"{path} is not a Qt resource file")
    version, tree, data, names = struct.unpack(">IIII", b[4:20])
    node = 14 if version == 1 else 22
    out: dict[str, bytes] = {}

    def name(off: int) -> str:
        (n,) = struct.unpack(">H", b[names + off:names + off + 2])
        return b[names + off + 6:names + off + 6 + 2 * n].decode("utf-16-be")

    def walk(i: int, prefix: str) -> None:
        p = tree + i * node
        noff, flags = struct.unpack(">IH", b[p:p + 6])
        here = prefix + name(noff) if i else ""
        if flags & 2:                                   # a directory
            count, first = struct.unpack(">II", b[p + 6:p + 14])
            for child in range(first, first + count):
                walk(child, here + "/" if here else "")
            return
        (doff,) = struct.unpack(">I", b[p + 10:p + 14])
        (length,) = struct.unpack(">I", b[data + doff:data + doff + 4])
        raw = b[data + doff + 4:data + doff + 4 + length]
        if flags & 1:
            raw = zlib.decompress(raw[4:])
        elif flags & 4:
            raw = subprocess.run(["zstd", "-dc"], input=raw, capture_output=True, check=True).stdout
        out[here] = raw

    walk(0, "")
    return out


# ---------------------------------------------------------------- reading one photo

def read_photo(root: Path, path: str) -> Image.Image:
    """Open one photo from an extracted package (root = folder) or a wheel (root = .whl file)."""
    if root.suffix == ".whl":
        with zipfile.ZipFile(root) as zf:
            raw = zf.read(path)
        if path.endswith("face.dat"):                 # scipy's raccoon: bz2 of raw 768x1024 RGB
            return Image.fromarray(np.frombuffer(bz2.decompress(raw), np.uint8).reshape(768, 1024, 3))
        return Image.open(io.BytesIO(raw))
    if ".rcc:" in path:
        rcc, member = path.split(":", 1)
        return Image.open(io.BytesIO(read_rcc(root / rcc)[member]))
    if path.endswith(".pzl"):
        return _jigzo_photo((root / path).read_bytes())
    return Image.open(root / path)


def _jigzo_photo(b: bytes) -> Image.Image:
    starts = [m.start() for m in re.finditer(rb"\xff\xd8\xff", b)]
    size = re.search(rb"image 0 0 (\d+) (\d+)", b)
    if not starts or not size:
        raise SourceError("not a Jigzo puzzle (no embedded JPEG or image line)")
    w, h = int(size.group(1)), int(size.group(2))
    return Image.open(io.BytesIO(b[starts[-1]:])).convert("RGB").crop((0, 0, w, h))


# ---------------------------------------------------------------- licences

def normalise_licence(text: str) -> str:
    """One spelling per licence: 'CC-BY-SA 4.0' -> 'CC-BY-SA-4.0', 'Public Domain' -> 'public-domain'."""
    t = text.strip().split("\n")[0].strip()
    low = t.lower()
    if "public domain" in low or low == "public-domain":
        return "public-domain"
    if low in ("fdl", "gnu-fdl", "gfdl-1.2+", "gfdl"):
        return "GFDL-1.2+"
    if low in ("cc0", "cc0 1.0", "cc0-1.0"):
        return "CC0-1.0"
    if low == "expat":
        return "MIT"
    t = re.sub(r"^CC[ -]?BY", "CC-BY", t, flags=re.IGNORECASE)
    return re.sub(r"[ _]+", "-", t).upper()


def dep5_paragraphs(text: str) -> list[dict[str, str]]:
    """Paragraphs of a machine-readable debian/copyright file: {field: value} (continuations joined)."""
    paras = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key.strip()] = value.strip()
        if fields:
            paras.append(fields)
    return paras


def dep5_lookup(copyright_text: str, path: str) -> tuple[str, str]:
    """(licence, credit) of `path` by the debian/copyright rules: the last matching Files: pattern wins."""
    found = None
    name = PurePosixPath(path).name
    for para in dep5_paragraphs(copyright_text):
        for pat in para.get("Files", "").split():
            base = PurePosixPath(pat).name
            if (pat == "*" or fnmatch.fnmatch(path, "*/" + pat) or fnmatch.fnmatch(path, pat)
                    or ("/" in pat and "*" not in base and base == name)):
                found = para
    if found is None:
        raise SourceError(f"no Files: stanza covers {path}")
    return normalise_licence(found.get("License", "")), " ".join(found.get("Copyright", "").split())


def dep5_licence_texts(copyright_text: str) -> dict[str, str]:
    """Stand-alone License paragraphs (full texts) of a debian/copyright file, by normalised name."""
    out = {}
    for para in dep5_paragraphs(copyright_text):
        if "Files" not in para and "License" in para and "\n" in para["License"]:
            out[normalise_licence(para["License"])] = para["License"]
    return out


# Names misspelt in a GCompris README (file name -> the README's spelling).
README_SPELLING = {"screwDriver.webp": "screDriver.webp"}


def gcompris_readme(files: dict[str, bytes], member: str) -> tuple[str, str, str]:
    """(licence, credit, source URL) of a GCompris photo from the nearest README above it."""
    folder = PurePosixPath(member).parent
    name = PurePosixPath(member).name
    name = README_SPELLING.get(name, name)
    while str(folder) not in (".", ""):
        readme = files.get(f"{folder}/README")
        if readme is not None:
            rel = str(PurePosixPath(member).relative_to(folder))
            for block in re.split(r"\n\s*\n", readme.decode("utf-8", "replace")):
                tokens = re.findall(r"[\w./-]+\.(?:webp|jpe?g|png)", block)
                if rel in tokens or name in tokens:
                    return _readme_fields(block)
        folder = folder.parent
    raise SourceError(f"no README entry for {member}")


def _readme_fields(block: str) -> tuple[str, str, str]:
    f: dict[str, str] = {}
    key = None
    for line in block.splitlines():
        if line[:1] in (" ", "\t") and key:             # continuation of a multi-line field
            f[key] = (f[key] + "; " + line.strip()).strip("; ")
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            f[key] = value.strip()
    credit = f.get("copyright", "")
    comment = f.get("comment", "")
    if "based on" in comment:
        credit += "; " + comment
    url = f.get("source", "") or (re.findall(r"https?://\S+", comment) or [""])[0]
    return normalise_licence(f.get("license", "")), credit, url


def desktop_fields(path: Path) -> dict[str, str]:
    """key=value lines of a .desktop file (Palapeli puzzles name their author and licence there)."""
    return dict(line.split("=", 1) for line in path.read_text(errors="replace").splitlines() if "=" in line)


def plasma_author(wallpaper_dir: Path) -> str:
    meta = json.loads((wallpaper_dir / "metadata.json").read_text())
    return ", ".join(a.get("Name", "") for a in meta.get("KPlugin", {}).get("Authors", []))


def common_licence(licence: str) -> Path | None:
    """The text of a licence in /usr/share/common-licenses, when Debian ships it there."""
    base = {"GPL-2": "GPL-2", "GPL-2+": "GPL-2", "LGPL-2.1": "LGPL-2.1", "LGPL-2.1+": "LGPL-2.1",
            "LGPL-3": "LGPL-3", "LGPL-3+": "LGPL-3", "GFDL-1.2+": "GFDL-1.2", "CC0-1.0": "CC0-1.0"}.get(licence)
    return COMMON_LICENSES / base if base and (COMMON_LICENSES / base).exists() else None
