"""Bag-of-visual-words baseline: dense DAISY descriptors -> k-means codebook -> word histograms -> SVM.

This mirrors the original study's non-deep baseline. Histograms are L1-normalised and
square-rooted (the Hellinger map), so an RBF SVM on them compares distributions rather
than raw counts. Top-5 needs scores for every word: they are the SVM's one-vs-rest
decision values passed through a softmax (a ranking, not a calibrated probability).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.linalg import softmax


@dataclass
class BoVWConfig:
    image_size: int = 128          # images are resized to this square before description
    step: int = 6                  # DAISY sampling step in pixels
    radius: int = 12               # DAISY radius in pixels
    codebook_size: int = 256
    max_kmeans_descriptors: int = 60_000
    svm_c: float = 10.0
    score_temperature: float = 1.0  # decision values -> softmax scores
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def image_descriptors(img: Image.Image, cfg: BoVWConfig) -> np.ndarray:
    """Dense DAISY descriptors of one image, (n, 104) float32."""
    from skimage.feature import daisy
    gray = np.asarray(img.convert("L").resize((cfg.image_size, cfg.image_size), Image.Resampling.BILINEAR),
                      dtype=np.float32) / 255.0
    d = daisy(gray, step=cfg.step, radius=cfg.radius, rings=2, histograms=6, orientations=8)
    return d.reshape(-1, d.shape[-1]).astype(np.float32)


class BoVWModel:
    """Codebook + SVM over visual-word histograms."""

    def __init__(self, config: BoVWConfig, classes: list[str], centers: np.ndarray | None = None, svm=None):
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
            # nearest centre by squared distance, without building an (n, k, dim) array
            words = np.argmin(c2[None, :] - 2 * d @ c.T, axis=1)
            h = np.bincount(words, minlength=len(c)).astype(np.float64)
            out[i] = np.sqrt(h / max(h.sum(), 1.0))
        return out

    def fit(self, descriptors: Sequence[np.ndarray], labels: Sequence[str],
            progress: Callable[[str], None] | None = None) -> BoVWModel:
        from sklearn.cluster import MiniBatchKMeans
        from sklearn.svm import SVC
        cfg = self.config
        if len(descriptors) != len(labels):
            raise InputError(f"got {len(descriptors)} descriptor sets but {len(labels)} labels")
        missing = sorted(set(self.classes) - set(labels))
        if missing:
            raise InputError(f"no training images for {missing}; every class needs at least one")
        if len(set(labels)) < 2:
            raise InputError("the SVM needs at least 2 words with training images")
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
        hist = self.histograms(descriptors)
        self.svm = SVC(kernel="rbf", C=cfg.svm_c, gamma="scale", class_weight="balanced",
                       decision_function_shape="ovr", random_state=cfg.seed)
        y = np.array([self.classes.index(w) for w in labels])
        self.svm.fit(hist, y)
        return self

    def decision(self, descriptors: Sequence[np.ndarray]) -> np.ndarray:
        """(n, len(classes)) one-vs-rest decision values; classes absent from training get -inf."""
        d = self.svm.decision_function(self.histograms(descriptors))
        if d.ndim == 1:  # two classes: sklearn returns one margin for the second class
            d = np.stack([-d, d], axis=1)
        out = np.full((d.shape[0], len(self.classes)), -np.inf)
        out[:, self.svm.classes_] = d
        return out

    def predict_proba(self, descriptors: Sequence[np.ndarray]) -> np.ndarray:
        return softmax(self.decision(descriptors) / self.config.score_temperature, axis=1)

    def predict_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.predict_proba([image_descriptors(im, self.config) for im in images])

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
