"""The data directory and its content-addressed image store (files named by SHA-256)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

ENV_HOME = "HASHTAG_HOME"


def resolve_home(home: str | Path | None = None) -> Path:
    """The data directory: an explicit value, else $HASHTAG_HOME, else ./data."""
    chosen = home or os.environ.get(ENV_HOME) or "data"
    return Path(chosen).expanduser().resolve()


def image_relpath(sha256: str, ext: str) -> str:
    return f"images/{sha256[:2]}/{sha256}.{ext}"


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temp file and rename, so a killed process never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def put_image(home: Path, sha256: str, ext: str, data: bytes) -> str:
    """Store image bytes once under their hash; returns the path relative to `home`."""
    rel = image_relpath(sha256, ext)
    target = home / rel
    if not target.exists():
        write_atomic(target, data)
    return rel


def image_file(home: Path, relpath: str) -> Path:
    return Path(home) / relpath
