"""The data directory and its content-addressed image store (files named by SHA-256)."""
from __future__ import annotations

import os
import time
from pathlib import Path

from hashtag_workbench.infra import files
from hashtag_workbench.infra.files import TMP_PREFIX
from hashtag_workbench.infra.procs import pid_alive
from hashtag_workbench.warehouse.faults import crash_point

ENV_HOME = "HASHTAG_HOME"
IMAGES_DIR = "images"


def resolve_home(home: str | Path | None = None) -> Path:
    """The data directory: an explicit value, else $HASHTAG_HOME, else ./data."""
    chosen = home or os.environ.get(ENV_HOME) or "data"
    return Path(chosen).expanduser().resolve()


def image_relpath(sha256: str, ext: str) -> str:
    return f"{IMAGES_DIR}/{sha256[:2]}/{sha256}.{ext}"


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temp file and rename, so a killed process never leaves half a file."""
    files.write_atomic(path, data, before_rename=lambda: crash_point("store:before-rename"))


def put_image(home: Path, sha256: str, ext: str, data: bytes) -> str:
    """Store image bytes once under their hash; returns the path relative to `home`."""
    rel = image_relpath(sha256, ext)
    target = home / rel
    # a file of the wrong size under this name is damaged (disk trouble, a hand edit): replace it
    if not target.is_file() or target.stat().st_size != len(data):
        write_atomic(target, data)
    return rel




def image_file(home: Path, relpath: str) -> Path:
    return Path(home) / relpath


def sha_from_name(relpath: str) -> str | None:
    """The SHA-256 a store file's name claims (images/ab/<sha>.<ext>), or None for other names."""
    name = Path(relpath).name
    stem = name.split(".", 1)[0]
    if len(stem) == 64 and all(c in "0123456789abcdef" for c in stem):
        return stem
    return None


def store_files(home: Path) -> list[str]:
    """Every file under the image store, as paths relative to `home` (temp files included)."""
    root = Path(home) / IMAGES_DIR
    if not root.is_dir():
        return []
    return sorted(str(p.relative_to(home)) for p in root.rglob("*") if p.is_file() or p.is_symlink())


def temp_writer_pid(relpath: str) -> int | None:
    """The pid of the process that was writing a `.tmp-<pid>-...` file, if the name says."""
    name = Path(relpath).name
    if not name.startswith(TMP_PREFIX):
        return None
    head = name[len(TMP_PREFIX):].split("-", 1)[0]
    return int(head) if head.isdigit() else None


def dead_temp_files(home: Path, *, older_than_s: float = 3600.0) -> list[str]:
    """Temp files whose writer is gone (or, with no pid in the name or a pid reused, that are old)."""
    out = []
    now = time.time()
    for rel in store_files(home):
        name = Path(rel).name
        if not name.startswith(TMP_PREFIX):
            continue
        pid = temp_writer_pid(rel)
        try:
            age = now - (Path(home) / rel).stat().st_mtime
        except OSError:
            continue
        if (pid is not None and not pid_alive(pid)) or age > older_than_s:
            out.append(rel)
    return out


def sweep_temp_files(home: Path) -> list[str]:
    """Delete half-written files left by killed writers; returns what was removed."""
    removed = []
    for rel in dead_temp_files(home):
        try:
            (Path(home) / rel).unlink()
            removed.append(rel)
        except FileNotFoundError:
            pass
    return removed
