"""Parquet shard files of feature rows: written atomically by workers, found and tidied by the driver.

Layout: <data dir>/shards/features/<run_id>/<backbone>-<first image>-<token>.parquet. A shard
is complete or absent (written to a `.tmp-` name, then renamed), so a driver killed at any
moment leaves only whole shards for the next run to ingest.
"""
from __future__ import annotations

import contextlib
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hashtag_workbench.infra.files import TMP_PREFIX, atomic_target

SHARDS_DIR = "shards/features"
STALE_TMP_S = 3600.0   # a half-written shard older than this belongs to a writer that is gone

SHARD_SCHEMA = pa.schema([("image_id", pa.int64()), ("backbone", pa.string()), ("run_id", pa.int64()),
                          ("vec", pa.list_(pa.float32())), ("logits", pa.list_(pa.float32())),
                          ("error", pa.string())])


def run_shard_dir(home: Path | str, run_id: int) -> Path:
    return Path(home) / SHARDS_DIR / str(run_id)


def _lists(matrix: np.ndarray, n_missing: int) -> pa.Array:
    """Rows of `matrix` as float32 list values, then `n_missing` nulls."""
    m = np.ascontiguousarray(matrix, dtype=np.float32)
    m = m.reshape(len(m), m.shape[1] if m.ndim == 2 else 0)
    offsets = pa.array(np.arange(len(m) + 1, dtype=np.int32) * m.shape[1])
    values = pa.ListArray.from_arrays(offsets, pa.array(m.reshape(-1)))
    return pa.concat_arrays([values, pa.nulls(n_missing, pa.list_(pa.float32()))]) if n_missing else values


def shard_table(*, run_id: int, backbone: str, image_ids, vecs: np.ndarray, logits: np.ndarray,
                failures: list[tuple[int, str]]) -> pa.Table:
    """One shard: a row per computed image (vec, logits), then a row per failed image (error)."""
    ids = [int(i) for i in image_ids] + [int(i) for i, _ in failures]
    n_ok, n_bad = len(image_ids), len(failures)
    return pa.table({"image_id": pa.array(ids, pa.int64()), "backbone": [backbone] * len(ids),
                     "run_id": pa.array([run_id] * len(ids), pa.int64()),
                     "vec": _lists(vecs, n_bad), "logits": _lists(logits, n_bad),
                     "error": [None] * n_ok + [reason for _, reason in failures]}, schema=SHARD_SCHEMA)


def write_shard(directory: Path, table: pa.Table, *, name_hint: str) -> Path:
    """Write `table` as a new shard in `directory` (temp name, then rename); returns its path."""
    final = directory / f"{name_hint}-{uuid.uuid4().hex[:12]}.parquet"
    with atomic_target(final) as tmp:
        pq.write_table(table, tmp)
    return final


def shard_files(home: Path | str) -> list[str]:
    """Every complete shard under the data dir, relative to it, oldest run first."""
    root = Path(home) / SHARDS_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.glob("*/*.parquet") if not p.name.startswith(TMP_PREFIX)]
    return [str(p.relative_to(home)) for p in sorted(found, key=lambda p: (_run_of(p), p.name))]


def _run_of(path: Path) -> int:
    return int(path.parent.name) if path.parent.name.isdigit() else -1


def remove_shards(home: Path | str, relpaths) -> int:
    """Delete shard files (after their rows are safely in the warehouse); empty run folders go too."""
    removed = 0
    for rel in relpaths:
        path = Path(home) / rel
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            continue
        with contextlib.suppress(OSError):  # not empty yet
            path.parent.rmdir()
    return removed


def sweep_stale_temp_shards(home: Path | str, *, older_than_s: float = STALE_TMP_S) -> int:
    """Remove half-written shards left by killed workers (any node, so judged by age)."""
    root = Path(home) / SHARDS_DIR
    if not root.is_dir():
        return 0
    now, removed = time.time(), 0
    for p in root.glob(f"*/{TMP_PREFIX}*"):
        try:
            if now - p.stat().st_mtime > older_than_s:
                p.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed
