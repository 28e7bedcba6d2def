"""Large arrays on disk, written atomically and read a few rows at a time (bounded memory).

The fine-tune caches its frozen front's activations here (about 37 KB per photo for
EfficientNet-Lite0) as .npy chunk files of CHUNK_ROWS rows each
(`<name>-<k>.npy`), each streamed to a temp name and renamed when complete
(infra.files.atomic_target), so a killed or failed write never leaves a file under a real
name. Finished chunks stay on disk until the store is cleared: a job killed while caching
finds them again and computes only the missing ones (a chunk whose size disagrees with its
header is refused and recomputed, never read). Reads use pread on the rows a batch needs
instead of a memory map: a map's touched pages count towards the process's resident
memory, file reads only towards the kernel's page cache.
"""
from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from hashtag_workbench.infra.files import TMP_PREFIX, atomic_target
from hashtag_workbench.infra.procs import pid_alive

CHUNK_ROWS = 256   # rows per chunk file: the most a killed caching job recomputes (~9.5 MB at 37 KB a row)


class ArrayCacheError(OSError):
    """A cached array could not be written or does not hold what its header says."""


class NpyRows:
    """Rows of a C-ordered .npy file: `take(idx)` reads just those rows (consecutive ones in one call)."""

    def __init__(self, path: Path):
        self.path, self._fd = Path(path), None
        with open(self.path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(fh)
            self.offset = fh.tell()
        if fortran or dtype.hasobject:
            raise ArrayCacheError(f"{self.path} is not a plain C-ordered array")
        self.shape, self.dtype = tuple(shape), dtype
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * dtype.itemsize
        expected = self.offset + self.row_bytes * self.shape[0]
        if os.path.getsize(self.path) != expected:
            raise ArrayCacheError(f"{self.path} has {os.path.getsize(self.path)} bytes, its header says {expected}")
        self._fd = os.open(self.path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    def take(self, idx) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        out = np.empty((len(idx), *self.shape[1:]), self.dtype)
        view = memoryview(out.reshape(-1).view(np.uint8))
        start = 0
        while start < len(idx):   # runs of consecutive rows: one read each
            end = start + 1
            while end < len(idx) and idx[end] == idx[end - 1] + 1:
                end += 1
            want = (end - start) * self.row_bytes
            got = os.preadv(self._fd, [view[start * self.row_bytes:end * self.row_bytes]],
                            self.offset + int(idx[start]) * self.row_bytes)
            if got != want:
                raise ArrayCacheError(f"short read from {self.path}: {got} of {want} bytes")
            start = end
        return out

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        self.close()


class ChunkedRows:
    """Rows spread over chunk files of `chunk_rows` rows each (the last may be shorter), read like NpyRows."""

    def __init__(self, parts: list[NpyRows], chunk_rows: int):
        self.parts, self.chunk_rows = parts, chunk_rows
        if len({(p.shape[1:], p.dtype) for p in parts}) > 1:
            raise ArrayCacheError(f"the chunks of {parts[0].path.parent} disagree on their row shape or dtype")
        n = sum(len(p) for p in parts)
        self.shape = (n, *parts[0].shape[1:]) if parts else (0,)
        self.dtype = parts[0].dtype if parts else np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def take(self, idx) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        out = np.empty((len(idx), *self.shape[1:]), self.dtype)
        which = idx // self.chunk_rows
        for k in np.unique(which):
            sel = np.flatnonzero(which == k)
            out[sel] = self.parts[int(k)].take(idx[sel] - int(k) * self.chunk_rows)
        return out

    def close(self) -> None:
        for part in self.parts:
            part.close()


class NpyStore:
    """Named arrays as chunk files in `folder` that outlive a killed job; `clear()` removes the folder.

    `missing(name, n)` says which rows still need computing (all of them in a fresh folder);
    `write(name, n, chunks)` takes exactly those rows, in order, and returns all n rows.
    """

    def __init__(self, folder: Path, chunk_rows: int | None = None):
        self.folder = Path(folder)
        self.chunk_rows = int(chunk_rows or CHUNK_ROWS)
        self.opened: list[ChunkedRows] = []

    def _path(self, name: str, k: int) -> Path:
        return self.folder / f"{name}-{k:05d}.npy"

    def _sizes(self, n: int) -> list[int]:
        return [min(self.chunk_rows, n - start) for start in range(0, n, self.chunk_rows)]

    def _whole(self, name: str, k: int, rows: int) -> bool:
        """Whether chunk k is on disk, complete and of the right length (a damaged one is deleted)."""
        path = self._path(name, k)
        if not path.is_file():
            return False
        try:
            part = NpyRows(path)
            ok = len(part) == rows
            part.close()
        except (ArrayCacheError, ValueError, OSError):
            ok = False
        if not ok:
            path.unlink(missing_ok=True)
        return ok

    def missing(self, name: str, n: int) -> np.ndarray:
        """The rows of `name` (n in all) not cached yet; dead writers' temp files are removed first."""
        self._sweep_temp()
        todo = [np.arange(k * self.chunk_rows, k * self.chunk_rows + rows)
                for k, rows in enumerate(self._sizes(n)) if not self._whole(name, k, rows)]
        return np.concatenate(todo) if todo else np.zeros(0, dtype=np.int64)

    def write(self, name: str, n: int, chunks: Iterable[np.ndarray]) -> ChunkedRows:
        """Stream `chunks` (the rows `missing(name, n)` names, in order) into chunk files; each appears whole
        or not at all. Returns all n rows, the ones cached before included."""
        todo = {int(i) // self.chunk_rows for i in self.missing(name, n)}
        source = _Rechunk(iter(chunks))
        for k, rows in enumerate(self._sizes(n)):
            if k in todo:
                self._write_chunk(name, k, rows, source, n)
        if source.rest():
            raise ArrayCacheError(f"{self.folder / name}: more rows than the {n} expected")
        rows = ChunkedRows([NpyRows(self._path(name, k)) for k in range(len(self._sizes(n)))], self.chunk_rows)
        self.opened.append(rows)
        return rows

    def _write_chunk(self, name: str, k: int, rows: int, source: _Rechunk, n: int) -> None:
        path = self._path(name, k)
        try:
            with atomic_target(path) as tmp, open(tmp, "wb") as fh:
                got = _stream(fh, rows, source.take(rows))
                if got != rows:
                    raise ArrayCacheError(f"{self.folder / name}: expected {n} rows, got "
                                          f"{k * self.chunk_rows + got}")
        except ArrayCacheError:
            raise
        except OSError as exc:   # a full disk, a quota: say which file, keep the errno
            raise ArrayCacheError(exc.errno, f"cannot write the cache file {path}: {exc.strerror or exc}") from None

    def _sweep_temp(self) -> None:
        """Temp files of writers that are gone (a killed job): never read, so just removed."""
        if not self.folder.is_dir():
            return
        for tmp in self.folder.glob(f"{TMP_PREFIX}*"):
            pid = tmp.name[len(TMP_PREFIX):].split("-", 1)[0]
            if not (pid.isdigit() and pid_alive(int(pid))):
                tmp.unlink(missing_ok=True)

    def clear(self) -> None:
        """Close the files and remove the folder; while a Ctrl-C or SIGTERM (KeyboardInterrupt) unwinds the
        job, the chunks stay instead, for the re-run the CLI then suggests (a kill -9 leaves them anyway)."""
        for rows in self.opened:
            rows.close()
        self.opened = []
        if not isinstance(sys.exc_info()[1], KeyboardInterrupt):
            shutil.rmtree(self.folder, ignore_errors=True)


class _Rechunk:
    """A stream of row blocks handed out again in runs of a chosen number of rows."""

    def __init__(self, blocks: Iterator[np.ndarray]):
        self.blocks, self.left = blocks, None

    def take(self, rows: int) -> Iterator[np.ndarray]:
        while rows > 0:
            block = self.left if self.left is not None else next(self.blocks, None)
            if block is None:
                return
            self.left = block[rows:] if len(block) > rows else None
            yield block[:rows]
            rows -= min(rows, len(block))

    def rest(self) -> bool:
        """Whether rows are left over."""
        return self.left is not None or next(self.blocks, None) is not None


def _stream(fh, n: int, chunks: Iterable[np.ndarray]) -> int:
    """Write the .npy header (from the first chunk's row shape) and every chunk; returns the rows written."""
    rows = 0
    for chunk in chunks:
        chunk = np.ascontiguousarray(chunk)
        if rows == 0:
            header = {"descr": np.lib.format.dtype_to_descr(chunk.dtype), "fortran_order": False,
                      "shape": (n, *chunk.shape[1:])}
            np.lib.format.write_array_header_1_0(fh, header)
        fh.write(chunk.tobytes())
        rows += len(chunk)
    if rows == 0:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False, "shape": (0,)})
    return rows
