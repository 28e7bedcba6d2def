"""Thumbnail files cached on disk under <data dir>/thumbs/<size>/, named by the image's SHA-256."""
from __future__ import annotations

from pathlib import Path

from hashtag_workbench.core.thumbnails import DEFAULT_SIZE, make_thumbnail
from hashtag_workbench.warehouse.store import image_file, write_atomic


def thumb_path(home: Path | str, sha256: str, size: int = DEFAULT_SIZE) -> Path:
    return Path(home) / "thumbs" / str(int(size)) / sha256[:2] / f"{sha256}.jpg"


def thumbnail(home: Path | str, sha256: str, relpath: str, size: int = DEFAULT_SIZE) -> Path | None:
    """The cached thumbnail file of a stored image, made on first use; None if the image is unreadable."""
    target = thumb_path(home, sha256, size)
    if target.exists():
        return target
    src = image_file(Path(home), relpath)
    try:
        data = make_thumbnail(src.read_bytes(), size)
    except (OSError, ValueError, SyntaxError):
        return None
    write_atomic(target, data)
    return target
