"""File helpers shared by the warehouse's image store, the ONNX cache and the Ray shards."""
from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

TMP_PREFIX = ".tmp-"  # a file being written carries this prefix and its writer's pid, so `check` can clear leftovers


def sha256_file(path: Path | str) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks (weights and models can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_target(path: Path, *, before_rename: Callable[[], None] | None = None) -> Iterator[Path]:
    """A temp name beside `path` to write to; on success it is synced and renamed to `path`.

    A reader sees the old file or the whole new one, never half of it; on any error (a
    signal included) the temp file is removed. The writer's pid is in the temp name, so a
    later job can tell a dead writer's leftover from live work.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        if before_rename is not None:
            before_rename()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes, *, before_rename: Callable[[], None] | None = None) -> None:
    """Write `data` to `path` through `atomic_target`."""
    with atomic_target(path, before_rename=before_rename) as tmp:
        tmp.write_bytes(data)
