"""Zero-shot + unlabelled photos: self-training of visual word prototypes, seeded by a zero-shot model.

A zero-shot model scores each photo alone, and its mistakes are partly random: one sunset called
"beach", the next "sky". A collection of photos, even without a single label, says which photos
look alike. Self-training uses that:

1. every photo votes for the word the current scores rank first, with that score as its weight
   (round 1: the zero-shot model's own probabilities);
2. a word's prototype is the weighted mean of its voters' features (backbone features, centred on
   the collection's mean and length-normalised);
3. each photo's new score is a log-linear pool of the zero-shot model and its cosine to the
   prototypes: seed_weight * log p_zero_shot + (1 - seed_weight) * cos / temperature;
4. repeat for `rounds` rounds (1 by default).

A word fewer than `min_votes` photos vote for gets no prototype and a cosine term of 0 (what an
unrelated direction gets in centred features): no reward and no penalty, so a word that a small
pool happens to miss is not pushed down, and a prototype is never the mean of one or two photos.
A pool so small that no word reaches `min_votes` gives back the seed's own probabilities
(benchmarks/transductive.py measures a 20-photo pool). Hard votes (argmax, not the full
distribution) keep the many absent words from getting blurred, generic prototypes.

Calibration: the pooled scores are sharpened or softened by one factor fitted on the pool, so
that their mean top probability equals the seed's mean top probability on the same photos (the
seed is calibrated and the refinement changes few top words; no label is read). Ranking is
unchanged by it.

The model stores the prototypes, the collection's mean and that factor, so a new photo is scored
alone: `predict_features(features, seed_probs)` needs only its own features and the seed model's
scores (`predict_proba(batch)` reads both from the batch: the seed model travels with this one).
No label is ever read.
"""
from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from hashtag_workbench.core.backbones import DEFAULT_BACKBONE
from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.kinds import KINDS, KindModel
from hashtag_workbench.core.linalg import softmax, unit

EPS = 1e-9


class TransductiveError(InputError):
    """The self-training cannot run with these inputs."""


@dataclass
class TransductiveConfig:
    backbone: str = DEFAULT_BACKBONE   # whose penultimate features the prototypes live in
    rounds: int = 1                        # vote -> prototypes -> rescore rounds
    seed_weight: float = 0.6               # the zero-shot model's share of the pooled log-score
    temperature: float = 0.1               # cosine -> log-score scale
    min_votes: int = 3                     # photos a word's prototype needs (fewer: no prototype)
    match_confidence: bool = True          # fit one sharpness so the mean top probability stays the seed's

    def __post_init__(self):
        if int(self.rounds) < 1:
            raise TransductiveError(f"rounds must be at least 1, got {self.rounds}")
        if not 0.0 <= float(self.seed_weight) <= 1.0:
            raise TransductiveError(f"seed_weight must be between 0 and 1, got {self.seed_weight}")
        if float(self.temperature) <= 0:
            raise TransductiveError(f"temperature must be positive, got {self.temperature}")
        if int(self.min_votes) < 1:
            raise TransductiveError(f"min_votes must be at least 1, got {self.min_votes}")

    def to_dict(self) -> dict:
        return asdict(self)

    def label(self, seed_name: str) -> str:
        return f"{seed_name} + unlabelled photos"


def _pool(z: np.ndarray, log_seed: np.ndarray, protos: np.ndarray, has: np.ndarray,
          cfg: TransductiveConfig, sharpness: float = 1.0) -> np.ndarray:
    """Probabilities from the zero-shot log-scores pooled with the cosines to the prototypes."""
    if not has.any():  # a pool too small for any prototype: the seed alone
        return softmax(log_seed, axis=1)
    cos = z @ protos.T   # rows of words without a prototype are 0, so their cosine is 0
    w = float(cfg.seed_weight)
    return softmax(sharpness * (w * log_seed + (1.0 - w) * cos / float(cfg.temperature)), axis=1)


def _prototypes(z: np.ndarray, probs: np.ndarray, min_votes: int) -> tuple[np.ndarray, np.ndarray]:
    """(len(words), d) unit prototypes from hard, confidence-weighted votes; mask of words with enough votes."""
    pick = probs.argmax(axis=1)
    sums = np.zeros((probs.shape[1], z.shape[1]))
    np.add.at(sums, pick, probs[np.arange(len(probs)), pick][:, None] * z)
    has = np.bincount(pick, minlength=probs.shape[1]) >= int(min_votes)
    return unit(sums) * has[:, None], has


def match_confidence(probs: np.ndarray, target: float) -> float:
    """The factor s for which softmax(s * log probs) has mean top probability `target` (bisection on log s)."""
    logp = np.log(np.asarray(probs, dtype=np.float64) + EPS)
    lo, hi = -4.0, 4.0
    for _ in range(40):   # mean top probability grows with s, so halve the bracket
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if softmax(np.exp(mid) * logp, axis=1).max(axis=1).mean() < target else (lo, mid)
    return float(np.exp((lo + hi) / 2))


def self_train(features: np.ndarray, seed_probs: np.ndarray, config: TransductiveConfig | None = None,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Self-train on unlabelled photos: (prototypes, feature mean, words-with-prototype mask, report).

    features: (n, d) backbone features of the photos; seed_probs: (n, words) the zero-shot model's
    probabilities for the same photos. The report counts photos whose top word changed.
    """
    cfg = config or TransductiveConfig()
    feats = np.asarray(features, dtype=np.float64)
    seed = np.asarray(seed_probs, dtype=np.float64)
    if feats.ndim != 2 or seed.ndim != 2 or len(feats) != len(seed):
        raise TransductiveError(f"need one feature row and one score row per photo, got {feats.shape} and "
                                f"{seed.shape}")
    if len(feats) < 2:
        raise TransductiveError(f"need at least 2 unlabelled photos, got {len(feats)}")
    mean = feats.mean(axis=0)
    z, log_seed = unit(feats - mean), np.log(seed + EPS)
    probs = seed
    for _ in range(int(cfg.rounds)):
        protos, has = _prototypes(z, probs, cfg.min_votes)
        probs = _pool(z, log_seed, protos, has, cfg)
    sharpness = 1.0
    if cfg.match_confidence and has.any():
        sharpness = match_confidence(probs, float(seed.max(axis=1).mean()))
    report = {"photos": int(len(feats)), "words_with_photos": int(has.sum()),
              "top_word_changed": int((probs.argmax(axis=1) != seed.argmax(axis=1)).sum()),
              "sharpness": round(sharpness, 6)}
    return protos.astype(np.float32), mean.astype(np.float32), has, report


def seed_path(artifact: Path | str, seed_artifact: str) -> Path:
    """Where the seed model's artifact is kept beside this model's artifact."""
    return Path(artifact).parent / f"seed-{seed_artifact}"


@dataclass
class TransductiveModel(KindModel):
    """Prototypes learnt from unlabelled photos, applied to any photo together with the seed model's scores."""
    config: TransductiveConfig
    classes: list[str] = field(default_factory=list)
    prototypes: np.ndarray | None = None  # (len(classes), d)
    mean: np.ndarray | None = None        # (d,) the collection's feature mean
    has: np.ndarray | None = None         # (len(classes),) bool: words some photo voted for
    seed_predict: object = None   # batch -> seed probabilities over `classes` (set by fit and load)
    seed_source: Path | None = None  # the seed model's artifact, copied beside this one on save
    report: dict | None = None
    reads = "features"
    sharpness: float | None = None   # the calibration factor; by default self_train's (report["sharpness"])

    def __post_init__(self):
        if self.prototypes is not None and (len(self.prototypes) != len(self.classes)
                                            or len(self.has) != len(self.classes)):
            raise TransductiveError(f"{len(self.prototypes)} prototypes for {len(self.classes)} words")
        if self.sharpness is None:
            self.sharpness = float((self.report or {}).get("sharpness", 1.0))

    def fit(self, data) -> TransductiveModel:
        """Self-train on every stored photo, labels unread, seeded by the default zero-shot model (data.unlabelled)."""
        pool = data.unlabelled(self.config.backbone)
        seed = pool["seed"]
        self.prototypes, self.mean, self.has, rep = self_train(pool["features"], pool["probs"], self.config)
        self.classes = list(seed["classes"])
        self.seed_source = Path(seed["artifact_path"]) / KINDS[seed["kind"]].artifact
        self.seed_predict = _seed_model(self.seed_source, seed, self.classes).predict_proba
        data.log(f"self-trained on {rep['photos']} unlabelled photos (labels not read), seeded by model "
                 f"{seed['model_id']} ({seed['name']}): {rep['words_with_photos']} words got a prototype, "
                 f"{rep['top_word_changed']} photos changed their top word")
        self.notes = {"seed": {k: seed[k] for k in ("model_id", "kind", "name", "config", "classes")},
                      "photos": rep["photos"], "photos_fingerprint": pool["fingerprint"]}
        self.name, self.report, self.counts = self.config.label(seed["name"]), rep, rep
        self.sharpness = float(rep["sharpness"])
        return self

    def predict_proba(self, batch) -> np.ndarray:
        if self.seed_predict is None:
            raise TransductiveError("this model has no seed model to score photos with (load it from its record)")
        return self.predict_features(batch.outputs(self.config.backbone, need_logits=False)[0],
                                     self.seed_predict(batch))

    def predict_features(self, features: np.ndarray, seed_probs: np.ndarray) -> np.ndarray:
        """(n, len(classes)) probabilities of photos from their own features and the seed's scores of them."""
        feats = np.atleast_2d(np.asarray(features, dtype=np.float64))
        seed = np.atleast_2d(np.asarray(seed_probs, dtype=np.float64))
        if feats.shape[1] != self.mean.shape[0] or seed.shape[1] != len(self.classes):
            raise TransductiveError(f"expected {self.mean.shape[0]}-d features and {len(self.classes)} seed "
                                    f"scores per photo, got {feats.shape[1]} and {seed.shape[1]}")
        return _pool(unit(feats - self.mean), np.log(seed + EPS), self.prototypes.astype(np.float64),
                     self.has, self.config, self.sharpness)

    def save(self, path: Path | str) -> None:
        np.savez(path, prototypes=self.prototypes, mean=self.mean, has=self.has, sharpness=self.sharpness)
        if self.seed_source is not None:
            # the seed travels with the model, so a later rebuild of the default zero-shot model cannot change it
            shutil.copy2(self.seed_source, seed_path(path, Path(self.seed_source).name))

    @classmethod
    def load(cls, path: Path | str, config: TransductiveConfig | dict, classes: list[str]) -> TransductiveModel:
        """From the stored record; its config's `seed` notes name the seed model kept beside the artifact."""
        seed = config.get("seed") if isinstance(config, dict) else None
        if not isinstance(config, TransductiveConfig):
            config = TransductiveConfig(**{k: v for k, v in config.items()
                                           if k in TransductiveConfig.__dataclass_fields__})
        with np.load(path) as z:   # artifacts from before calibration have no sharpness: 1 is what they used
            sharpness = float(z["sharpness"]) if "sharpness" in z.files else 1.0
            model = cls(config, list(classes), z["prototypes"], z["mean"], z["has"].astype(bool),
                        sharpness=sharpness)
        if seed is not None:
            model.seed_predict = _seed_model(seed_path(path, KINDS[seed["kind"]].artifact), seed,
                                             model.classes).predict_proba
        return model


def _seed_model(artifact: Path, seed: dict, classes: list[str]) -> KindModel:
    """The seed zero-shot model (from its record's notes), which must cover exactly this model's words."""
    if list(seed["classes"]) != list(classes):
        raise InputError("the stored seed model covers other words than this model")
    return KINDS[seed["kind"]].load(artifact, seed["config"], seed["classes"])
