"""Feature extraction plumbing and PCA: photos in, penultimate-layer vectors and 128-d projections out.

`extract` overlaps reading, decoding and resizing (a thread pool, prefetching whole
batches) with the forward pass, so the CNN is rarely kept waiting for input. Batches
are numpy arrays: the same pipeline feeds a torch network or an ONNX Runtime session.
"""
from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.images import ImageRejected, decode_rgb
from hashtag_workbench.core.preprocess import Preprocess

DEFAULT_PCA_COMPONENTS = 128


# --------------------------------------------------------------------------- input pipeline

@dataclass
class Batch:
    """One prepared batch: the positions (into the caller's item list) it holds, and their pixels."""
    indices: list[int]
    array: np.ndarray | None                  # (n, h, w, 3) uint8 pixels; None when every item failed
    failures: list[tuple[int, str]]           # (position, reason) for items that could not be read


def load_photo(path: Path | str, *, reduce_to: int | None = None) -> Image.Image:
    """Read and decode one stored photo into RGB, or raise ImageRejected saying why.

    `reduce_to`: a JPEG may be decoded at a reduced scale (Pillow's draft mode) as long
    as its short side stays at least this many pixels; far cheaper for large photos.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImageRejected(f"cannot read {path} ({exc.strerror or exc})") from None
    # min_side=1: the import already enforced its size rule; here any decodable image is usable.
    return decode_rgb(data, min_side=1, reduce_to=reduce_to)


def _prepare(item, preprocess: Preprocess, load: Callable | None = None) -> np.ndarray | str:
    try:
        return preprocess(load(item) if load else load_photo(item, reduce_to=preprocess.resize))
    except ImageRejected as exc:
        return str(exc)
    except Exception as exc:  # a preprocessing bug on one odd image must not kill the job
        return f"{type(exc).__name__}: {exc}"


def prepare_batch(paths: Sequence, positions: Iterable[int], preprocess: Preprocess,
                  pool: ThreadPoolExecutor | None = None, load: Callable | None = None) -> Batch:
    """Decode and prepare `paths[p]` for each position (in `pool` when given), failures kept apart.
    `load` turns an item into a PIL image (default: the item is a stored photo's path)."""
    positions = list(positions)
    mapper = pool.map if pool is not None else map
    results = list(mapper(lambda i: _prepare(paths[i], preprocess, load), positions))
    ok = [(i, r) for i, r in zip(positions, results) if isinstance(r, np.ndarray)]
    bad = [(i, r) for i, r in zip(positions, results) if not isinstance(r, np.ndarray)]
    return Batch([i for i, _ in ok], np.stack([r for _, r in ok]) if ok else None, bad)


def run_batch(backbone, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
    """(features, logits) for a prepared batch; empty arrays when nothing in it decoded."""
    if batch.array is None:
        return np.zeros((0, backbone.feature_dim), np.float32), np.zeros((0, 1000), np.float32)
    return backbone.features_and_logits(batch.array)


def iter_batches(paths: Sequence, preprocess: Preprocess, *, batch_size: int = 16, workers: int = 2,
                 prefetch: int = 2, load: Callable | None = None) -> Iterator[Batch]:
    """Yield prepared batches in order, decoding up to `prefetch` batches ahead in `workers` threads.

    Pillow and numpy release the GIL while decoding and resizing, so threads give
    real overlap with the forward pass without the start-up cost of processes.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    if workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}")
    if prefetch < 1:
        raise InputError(f"prefetch must be at least 1, got {prefetch}")
    chunks = [range(i, min(i + batch_size, len(paths))) for i in range(0, len(paths), batch_size)]
    out: queue.Queue = queue.Queue(maxsize=prefetch)
    stop = threading.Event()
    _END = object()

    def produce():
        try:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
                for chunk in chunks:
                    if stop.is_set():
                        break
                    item = prepare_batch(paths, chunk, preprocess, pool, load)
                    while not stop.is_set():
                        try:
                            out.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
        except BaseException as exc:  # surface producer errors in the consumer
            out.put(exc)
        finally:
            out.put(_END)

    thread = threading.Thread(target=produce, name="batch-producer", daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        # Drain so a producer blocked on a full queue can see `stop` and finish.
        while thread.is_alive():
            with contextlib.suppress(queue.Empty):
                out.get(timeout=0.05)
        thread.join()


def extract(paths: Sequence[Path | str], backbone, *, batch_size: int = 16, workers: int = 1,
            progress: Callable[[int], None] | None = None) -> Iterator[tuple[list[int], np.ndarray, np.ndarray,
                                                                             list[tuple[int, str]]]]:
    """Run `backbone` (torch or ONNX) over the photos at `paths`, batch by batch.

    Yields (positions, features, logits, failures) per batch; `progress(n)` is
    called with the number of items each batch settled (done or failed).
    """
    for batch in iter_batches(paths, backbone.preprocess, batch_size=batch_size, workers=workers):
        feats, logits = run_batch(backbone, batch)
        if progress:
            progress(len(batch.indices) + len(batch.failures))
        yield batch.indices, feats, logits, batch.failures


# --------------------------------------------------------------------------- PCA

@dataclass
class PcaFit:
    """A fitted PCA: project with (X - mean) @ components.T."""
    mean: np.ndarray                  # (d,)
    components: np.ndarray            # (k, d), rows orthonormal
    explained_variance_ratio: np.ndarray  # (k,)

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = _check_matrix(X, "X")
        if X.shape[1] != self.mean.shape[0]:
            raise InputError(f"X has {X.shape[1]} columns but the PCA was fitted on {self.mean.shape[0]}")
        return ((X - self.mean) @ self.components.T).astype(np.float32)

    def save(self, path: Path | str) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, mean=self.mean, components=self.components,
                 explained_variance_ratio=self.explained_variance_ratio)
        tmp.replace(path)  # atomic: a killed run never leaves half an artifact

    @classmethod
    def load(cls, path: Path | str) -> PcaFit:
        with np.load(Path(path)) as z:
            return cls(z["mean"], z["components"], z["explained_variance_ratio"])


def _check_matrix(X, name: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise InputError(f"{name} must be a 2-d array (images x dimensions), got shape {X.shape}")
    if not np.isfinite(X).all():
        raise InputError(f"{name} holds NaN or infinite values; recompute the features")
    return X


def fit_pca(X: np.ndarray, *, n_components: int = DEFAULT_PCA_COMPONENTS, seed: int = 0) -> PcaFit:
    """Fit PCA with up to `n_components` components (capped by the number of images and dimensions)."""
    from sklearn.decomposition import PCA

    X = _check_matrix(X, "X")
    if n_components < 1:
        raise InputError(f"n_components must be at least 1, got {n_components}")
    if X.shape[0] < 2:
        raise InputError(f"PCA needs at least 2 images, got {X.shape[0]}")
    k = min(n_components, X.shape[0], X.shape[1])
    pca = PCA(n_components=k, svd_solver="auto", random_state=seed).fit(X)
    return PcaFit(pca.mean_.astype(np.float32), pca.components_.astype(np.float32),
                  pca.explained_variance_ratio_.astype(np.float64))

