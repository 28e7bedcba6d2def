"""Bag-of-visual-words baseline: dense DAISY descriptors -> k-means codebook -> word histograms -> SVM.

This mirrors the original study's non-deep baseline. Histograms are L1-normalised and
square-rooted (the Hellinger map), so an RBF SVM on them compares distributions rather
than raw counts. Top-5 needs scores for every word: they are the SVM's one-vs-rest
decision values passed through a softmax (a ranking, not a calibrated probability).

At scale (`fit_images`, `predict_images`) descriptors are never all held: the codebook is
fitted on the descriptors of a seeded sample of photos (enough for `max_kmeans_descriptors`
three times over; every photo when there are fewer), and every other photo is described and
turned into its histogram at once, in `workers` processes.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from hashtag_workbench.core.daisy import daisy
from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.kinds import KindModel, no_bar
from hashtag_workbench.core.linalg import softmax
from hashtag_workbench.core.model_defaults import CODEBOOK


@dataclass
class BoVWConfig:
    image_size: int = 128          # images are resized to this square before description
    step: int = 6                  # DAISY sampling step in pixels
    radius: int = 12               # DAISY radius in pixels
    codebook_size: int = CODEBOOK
    max_kmeans_descriptors: int = 60_000
    svm_c: float = 10.0
    score_temperature: float = 1.0  # decision values -> softmax scores
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _take(items: Sequence, idx: np.ndarray) -> Sequence:
    """The items `idx`, kept lazy when the sequence can say so (`subset`), so worker tasks pickle small."""
    return items.subset(idx) if hasattr(items, "subset") else [items[int(i)] for i in idx]


def image_descriptors(img: Image.Image, cfg: BoVWConfig) -> np.ndarray:
    """Dense DAISY descriptors of one image, (n, 104) float32 (skimage's values, core.daisy's cheaper way)."""
    gray = np.asarray(img.convert("L").resize((cfg.image_size, cfg.image_size), Image.Resampling.BILINEAR),
                      dtype=np.float32) / 255.0
    return daisy(gray, cfg.step, cfg.radius)


CHUNK = 32   # photos per task handed to a worker process


def _histogram(desc: np.ndarray, centers: np.ndarray, c2: np.ndarray) -> np.ndarray:
    """One photo's Hellinger-mapped, L1-normalised visual-word histogram."""
    # nearest centre by squared distance, without building an (n, k, dim) array
    words = np.argmin(c2[None, :] - 2 * desc @ centers.T, axis=1)
    h = np.bincount(words, minlength=len(centers)).astype(np.float64)
    return np.sqrt(h / max(h.sum(), 1.0))


def _describe_chunk(images: Sequence, cfg: BoVWConfig, centers: np.ndarray) -> np.ndarray:
    """Histograms of a chunk of photos (run in a worker process: photos decoded there, only histograms return)."""
    c2 = (centers * centers).sum(axis=1)
    return np.stack([_histogram(image_descriptors(images[i], cfg), centers, c2) for i in range(len(images))])


def _one_blas_thread():
    """One BLAS thread for per-photo work: its products are tiny, and idle OpenBLAS threads spin. `fit_images`
    in one process on 3,859 photos (2 cores, shared): 51.5 s CPU with the default two threads, 20.1 s with one."""
    from threadpoolctl import threadpool_limits
    return threadpool_limits(1)


_WORKER: dict = {}   # a worker process's settings and codebook, sent once rather than with every chunk


def _worker_start(cfg: BoVWConfig, centers: np.ndarray) -> None:
    _one_blas_thread()   # for the process's life: the processes are the parallelism
    _WORKER.update(cfg=cfg, centers=centers)


def _worker_chunk(images: Sequence) -> np.ndarray:
    return _describe_chunk(images, _WORKER["cfg"], _WORKER["centers"])


def image_histograms(images: Sequence, cfg: BoVWConfig, centers: np.ndarray, *, workers: int = 1,
                     bar=no_bar, desc: str = "visual-word histograms") -> np.ndarray:
    """(n, k) histograms of `images` (PIL images, or a lazy sequence that decodes on access and pickles),
    CHUNK photos per task, in `workers` processes (1: here)."""
    chunks = [images[i:i + CHUNK] for i in range(0, len(images), CHUNK)]
    if not chunks:
        return np.zeros((0, len(centers)))
    label = f"{desc} ({CHUNK} photos a step)"
    if workers <= 1 or len(chunks) == 1:
        with _one_blas_thread():
            parts = [_describe_chunk(c, cfg, centers) for c in bar(chunks, total=len(chunks), desc=label, unit="step")]
        return np.concatenate(parts)
    import multiprocessing as mp
    # spawn: the parent may hold torch's threads, which fork would copy half-initialised
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_worker_start,
                             initargs=(cfg, centers)) as pool:
        done = pool.map(_worker_chunk, chunks)
        return np.concatenate(list(bar(done, total=len(chunks), desc=label, unit="step")))


class BoVWModel(KindModel):
    """Codebook + SVM over visual-word histograms."""

    def __init__(self, config: BoVWConfig, classes: Sequence[str] = (), centers: np.ndarray | None = None,
                 svm=None):
        self.config = config
        self.classes = list(classes)
        self.centers = centers
        self.svm = svm

    def histograms(self, descriptors: Sequence[np.ndarray]) -> np.ndarray:
        """Hellinger-mapped, L1-normalised visual-word histograms, one row per image."""
        if self.centers is None:
            raise RuntimeError("the codebook is not fitted yet")
        c = self.centers
        c2 = (c * c).sum(axis=1)
        out = np.zeros((len(descriptors), len(c)), dtype=np.float64)
        for i, d in enumerate(descriptors):
            out[i] = _histogram(d, c, c2)
        return out

    def _check_labels(self, n: int, labels: Sequence[str]) -> None:
        if n != len(labels):
            raise InputError(f"got {n} descriptor sets but {len(labels)} labels")
        missing = sorted(set(self.classes) - set(labels))
        if missing:
            raise InputError(f"no training images for {missing}; every class needs at least one")
        if len(set(labels)) < 2:
            raise InputError("the SVM needs at least 2 words with training images")

    def _fit_codebook(self, descriptors: Iterable[np.ndarray], progress) -> None:
        from sklearn.cluster import MiniBatchKMeans
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        pool = np.concatenate(list(descriptors))
        if len(pool) > cfg.max_kmeans_descriptors:
            pool = pool[rng.choice(len(pool), cfg.max_kmeans_descriptors, replace=False)]
        k = min(cfg.codebook_size, len(pool))
        if progress:
            progress(f"k-means codebook: {k} visual words from {len(pool)} descriptors")
        from threadpoolctl import threadpool_limits
        km = MiniBatchKMeans(n_clusters=k, random_state=cfg.seed, batch_size=4096, n_init=1, max_iter=50,
                             max_no_improvement=5)
        # One thread: this job is small, and OpenMP threads competing for busy cores made it ~10x slower.
        with threadpool_limits(1):
            km.fit(pool)
        self.centers = km.cluster_centers_.astype(np.float32)

    def _fit_svm(self, hist: np.ndarray, labels: Sequence[str]) -> BoVWModel:
        from sklearn.svm import SVC
        cfg = self.config
        self.svm = SVC(kernel="rbf", C=cfg.svm_c, gamma="scale", class_weight="balanced",
                       decision_function_shape="ovr", random_state=cfg.seed)
        self.svm.fit(hist, np.array([self.classes.index(w) for w in labels]))
        return self

    def fit(self, data) -> BoVWModel:
        """On the train part's photos, in `data.workers` processes (see fit_images)."""
        self.classes = list(data.classes)
        self.fit_images(data.train_images(), data.train_words, progress=data.log,
                        workers=getattr(data, "workers", 1), bar=data.progress)
        self.name = f"BoVW SVM (DAISY, k={len(self.centers)})"
        return self

    def fit_descriptors(self, descriptors: Sequence[np.ndarray], labels: Sequence[str],
                        progress: Callable[[str], None] | None = None) -> BoVWModel:
        """Fit on every photo's descriptors, all given (small sets; `fit_images` streams)."""
        self._check_labels(len(descriptors), labels)
        self._fit_codebook(descriptors, progress)
        return self._fit_svm(self.histograms(descriptors), labels)

    def fit_images(self, images: Sequence, labels: Sequence[str], *, workers: int = 1, bar=no_bar,
                   progress: Callable[[str], None] | None = None) -> BoVWModel:
        """Fit on photos without holding every photo's descriptors: the codebook from a seeded sample of
        photos (all of them when few), then each remaining photo straight to its histogram."""
        self._check_labels(len(images), labels)
        cfg = self.config
        # every photo gives the same number of descriptors (one square size), so a blank one says how many
        per_photo = len(image_descriptors(Image.new("L", (cfg.image_size, cfg.image_size)), cfg))
        m = min(len(images), math.ceil(3 * cfg.max_kmeans_descriptors / max(per_photo, 1)))
        rng = np.random.default_rng(cfg.seed)
        sample = np.arange(len(images)) if m == len(images) else np.sort(rng.choice(len(images), m, replace=False))
        with _one_blas_thread():
            desc = {int(i): image_descriptors(images[int(i)], cfg)
                    for i in bar(sample, total=len(sample), desc="DAISY descriptors (codebook photos)", unit="img")}
            self._fit_codebook(desc.values(), progress)
            hist = np.zeros((len(images), len(self.centers)))
            hist[sample] = self.histograms([desc[int(i)] for i in sample])
        del desc
        rest = np.setdiff1d(np.arange(len(images)), sample)
        if len(rest):
            hist[rest] = image_histograms(_take(images, rest), cfg, self.centers, workers=workers, bar=bar)
        return self._fit_svm(hist, labels)

    def decision(self, descriptors: Sequence[np.ndarray] | None, hist: np.ndarray | None = None) -> np.ndarray:
        """(n, len(classes)) one-vs-rest decision values; classes absent from training get -inf."""
        d = self.svm.decision_function(self.histograms(descriptors) if hist is None else hist)
        if d.ndim == 1:  # two classes: sklearn returns one margin for the second class
            d = np.stack([-d, d], axis=1)
        out = np.full((d.shape[0], len(self.classes)), -np.inf)
        out[:, self.svm.classes_] = d
        return out

    def predict_proba(self, batch) -> np.ndarray:
        return self.predict_images(batch.images())

    def predict_images(self, images: Sequence[Image.Image], *, workers: int = 1, bar=no_bar) -> np.ndarray:
        """Scores per photo, each photo straight to its histogram (`images` may be lazy)."""
        hist = image_histograms(images, self.config, self.centers, workers=workers, bar=bar)
        return softmax(self.decision(None, hist) / self.config.score_temperature, axis=1)

    def save(self, path: Path | str) -> None:
        import joblib
        joblib.dump({"centers": self.centers, "svm": self.svm}, path)

    @classmethod
    def load(cls, path: Path | str, config: BoVWConfig | dict, classes: list[str]) -> BoVWModel:
        import joblib
        cfg = config if isinstance(config, BoVWConfig) else BoVWConfig(**config)
        # The artifact is written by this code into the user's own data directory.
        state = joblib.load(path)
        return cls(cfg, classes, state["centers"], state["svm"])
