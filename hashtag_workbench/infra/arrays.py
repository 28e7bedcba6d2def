"""Large arrays on disk, written atomically and read a few rows at a time (bounded memory).

The fine-tune caches its frozen front's activations here (about 37 KB per photo and
mirror image for EfficientNet-Lite0): as .npy files under the run's model folder, each
streamed chunk by chunk to a temp name and renamed when complete (infra.files.atomic_target),
so a killed or failed write never leaves a file under the real name. Reads use pread on
the rows a batch needs instead of a memory map: a map's touched pages count towards the
process's resident memory, file reads only towards the kernel's page cache.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from hashtag_workbench.infra.files import atomic_target


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


class NpyStore:
    """Named arrays as .npy files in `folder`; `clear()` removes the folder."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.opened: list[NpyRows] = []

    def write(self, name: str, n: int, chunks: Iterable[np.ndarray]) -> NpyRows:
        """Stream `chunks` ((k, ...) rows each, n in all) into <folder>/<name>.npy: it appears whole or not at all."""
        path = self.folder / f"{name}.npy"
        try:
            with atomic_target(path) as tmp, open(tmp, "wb") as fh:
                rows = _stream(fh, n, chunks)
                if rows != n:
                    raise ArrayCacheError(f"{path}: expected {n} rows, got {rows}")
        except ArrayCacheError:
            raise
        except OSError as exc:   # a full disk, a quota: say which file, keep the errno
            raise ArrayCacheError(exc.errno, f"cannot write the cache file {path}: {exc.strerror or exc}") from None
        rows = NpyRows(path)
        self.opened.append(rows)
        return rows

    def clear(self) -> None:
        for rows in self.opened:
            rows.close()
        self.opened = []
        shutil.rmtree(self.folder, ignore_errors=True)


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
