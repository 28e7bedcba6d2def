"""Linear probe: standardised frozen CNN features -> multinomial logistic regression (a fast reference)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hashtag_workbench.core.backbones import DEFAULT_BACKBONE
from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.kinds import KindModel, pretty_backbone
from hashtag_workbench.core.linalg import softmax


@dataclass
class ProbeConfig:
    backbone: str = DEFAULT_BACKBONE
    c: float = 1.0             # inverse L2 strength
    max_iter: int = 3000
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class ProbeModel(KindModel):
    """Standardise, then softmax(W x + b); stored as plain arrays (no pickle)."""
    reads = "features"

    def __init__(self, config: ProbeConfig, classes: Sequence[str] = (), mean=None, scale=None, coef=None,
                 intercept=None):
        self.config = config
        self.classes = list(classes)
        self.mean, self.scale, self.coef, self.intercept = mean, scale, coef, intercept

    def fit(self, data) -> ProbeModel:
        """On the train part's penultimate features (stored ones when the features job made them)."""
        self.classes = list(data.classes)
        self.name = f"Linear probe ({pretty_backbone(self.config.backbone)} features)"
        return self.fit_features(data.features(self.config.backbone, data.weights), data.train_words)

    def fit_features(self, feats: np.ndarray, labels: Sequence[str]) -> ProbeModel:
        from sklearn.linear_model import LogisticRegression
        feats = np.asarray(feats, dtype=np.float64)
        if feats.ndim != 2 or len(feats) != len(labels):
            raise InputError(f"need a 2-d feature matrix with one row per label, got {feats.shape} "
                             f"for {len(labels)} labels")
        missing = sorted(set(self.classes) - set(labels))
        if missing:
            raise InputError(f"no training images for {missing}; every class needs at least one")
        self.mean = feats.mean(axis=0)
        self.scale = np.where(feats.std(axis=0) > 1e-8, feats.std(axis=0), 1.0)
        y = np.array([self.classes.index(w) for w in labels])
        clf = LogisticRegression(C=self.config.c, max_iter=self.config.max_iter, random_state=self.config.seed)
        clf.fit((feats - self.mean) / self.scale, y)
        coef, intercept = clf.coef_, clf.intercept_
        if len(self.classes) == 2:  # sklearn keeps one row for binary problems; make it softmax-shaped
            coef = np.vstack([-coef[0] / 2, coef[0] / 2])
            intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
        self.coef, self.intercept = coef, intercept
        return self

    def predict_proba(self, batch) -> np.ndarray:
        return self.predict_features(batch.outputs(self.config.backbone, need_logits=False)[0])

    def predict_features(self, feats: np.ndarray) -> np.ndarray:
        return softmax(((np.atleast_2d(feats) - self.mean) / self.scale) @ self.coef.T + self.intercept, axis=1)

    def save(self, path: Path | str) -> None:
        np.savez(path, mean=self.mean, scale=self.scale, coef=self.coef, intercept=self.intercept)

    @classmethod
    def load(cls, path: Path | str, config: ProbeConfig | dict, classes: list[str]) -> ProbeModel:
        cfg = config if isinstance(config, ProbeConfig) else ProbeConfig(**config)
        with np.load(path) as z:
            return cls(cfg, classes, z["mean"], z["scale"], z["coef"], z["intercept"])
