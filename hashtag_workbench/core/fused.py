"""The fused zero-shot model: WordNet-hierarchy evidence + ConSE word-vector evidence per word, calibrated.

It needs no photos at build or predict time: the fusion weights, calibration temperature and
"none of these" threshold were fitted offline on the demo photos by `python datasets/fit_zeroshot.py`
and ship as package data (hashtag_workbench/data/zeroshot_fusion.json, which records that run). A
build reads the current vocabulary, so a newly added word gets its WordNet sense and hierarchy
evidence at once; a word with no WordNet noun sense, or none with ImageNet classes beneath it,
is scored on its word vector alone (the `baseline` of core.fusion).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from hashtag_workbench.core.backbones import DEFAULT_BACKBONE
from hashtag_workbench.core.conse import ConSEConfig, ConSEModel, build_conse, say_dropped
from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.fusion import FusionParams, calibrated, fused_scores, hierarchy_evidence
from hashtag_workbench.core.hierarchy import membership, word_senses
from hashtag_workbench.core.kinds import KindModel
from hashtag_workbench.core.linalg import softmax

FUSION_FILE = Path(__file__).resolve().parent.parent / "data" / "zeroshot_fusion.json"
REFIT = "python datasets/fit_zeroshot.py"


class FusionFileError(InputError):
    """The shipped fusion fit is missing or damaged."""


@dataclass
class FusedConfig:
    variant: str = "fused"                 # the fit file's name for this variant
    word_vectors: str = "spacy"
    backbone: str = DEFAULT_BACKBONE
    centre: bool = True                    # ConSE part (see core.conse)
    temperature: float | None = 3.0
    hierse: float | None = None
    cosine: bool = True                    # False: hierarchy evidence alone
    alpha: float = 0.5                     # fusion (see core.fusion), fitted
    eps: float = 1e-3
    weight: float = 1.0
    baseline: float = -5.0
    calibration: float = 1.0               # calibration temperature, fitted
    threshold: float = 0.0                 # "none of these" below this calibrated top probability
    fit: str = ""                          # which fit run made these numbers

    def conse_config(self) -> ConSEConfig:
        return ConSEConfig(word_vectors=self.word_vectors, backbone=self.backbone, centre=self.centre,
                           temperature=self.temperature, hierse=self.hierse)

    def params(self) -> FusionParams:
        return FusionParams(self.alpha, self.eps, self.weight, self.baseline, self.calibration, self.threshold,
                            self.cosine)

    def label(self, vectors_name: str) -> str:
        what = "hierarchy only" if not self.cosine else \
            f"hierarchy + ConSE{' HierSE' if self.hierse is not None else ''} ({vectors_name})"
        return f"Zero-shot {what}, calibrated [{self.variant}]"

    def to_dict(self) -> dict:
        return asdict(self)


def read_fusion_file(path: Path | str | None = None) -> dict:
    """The fit file; a missing or damaged one raises one line naming the command that remakes it."""
    path = Path(path or FUSION_FILE)
    try:
        data = json.loads(path.read_text())
        assert isinstance(data["variants"], dict) and data["default"] in data["variants"]
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as exc:
        raise FusionFileError(f"the zero-shot fusion fit {path} is missing or damaged ({type(exc).__name__}); "
                              f"recompute it with `{REFIT}`") from None
    return data


def fused_configs(path: Path | str | None = None, *, only_default: bool = False) -> list[FusedConfig]:
    """The fitted variants (the default first)."""
    data = read_fusion_file(path)
    names = [data["default"]] + ([] if only_default else [n for n in data["variants"] if n != data["default"]])
    keys = {f.name for f in fields(FusedConfig)}
    return [FusedConfig(**{k: v for k, v in data["variants"][n]["config"].items() if k in keys}) for n in names]


def train_configs(options: dict) -> list[FusedConfig]:
    """The configs `train` builds: every fitted variant (or the default alone) for the options' backbone; the fit
    was made on one backbone's logits, so other backbones keep ConSE alone."""
    cfgs = fused_configs(only_default=not options.get("conse_variants", True))
    return [c for c in cfgs if c.backbone == options.get("backbone", c.backbone)]


def default_fused_config(backbone: str | None = None) -> FusedConfig:
    cfg = fused_configs(only_default=True)[0]
    if backbone and backbone != cfg.backbone:
        raise InputError(f"the fused zero-shot fit was made for {cfg.backbone} logits, not {backbone}")
    return cfg


@dataclass
class FusedModel(KindModel):
    config: FusedConfig
    classes: list[str] = field(default_factory=list)
    conse: ConSEModel | None = None
    member: np.ndarray | None = None   # (1000, len(classes)): 1/|subtree|**alpha under each word's sense
    report: dict = field(default_factory=dict)
    reads = "logits"

    def fit(self, data) -> FusedModel:
        """Over every active vocabulary word (no photos): each word's vector and WordNet sense."""
        from hashtag_workbench.core.backbones import imagenet_classes
        from hashtag_workbench.core.wordvectors import cached_word_vectors
        enc = cached_word_vectors(self.config.word_vectors)
        # sklearn's shape: the built model's fields become this model's
        vars(self).update(vars(build_fused(self.config, enc, imagenet_classes(), list(data.vocabulary),
                                           hashtags=data.hashtags)))
        rep = self.report
        say_dropped(rep, enc.name, data.log)
        if rep["words_without_hierarchy"]:
            data.log(f"{len(rep['words_without_hierarchy'])} words have no WordNet noun sense with ImageNet "
                     f"classes beneath it and use the word-vector evidence alone: "
                     f"{', '.join(rep['words_without_hierarchy'])}")
        self.counts = {"words": len(self.classes), "words_without_vector": len(rep["targets_dropped"]),
                       "words_with_hierarchy": len(self.classes) - len(rep["words_without_hierarchy"])}
        self.name, self.notes = self.config.label(enc.name), {"word_vectors_name": enc.name}
        return self

    @property
    def threshold(self) -> float:
        return float(self.config.threshold)

    def scores(self, logits: np.ndarray) -> np.ndarray:
        """The uncalibrated fused score z (n, len(classes))."""
        logits = np.atleast_2d(np.asarray(logits, dtype=np.float64))
        cfg = self.config
        hier = hierarchy_evidence(softmax(logits, axis=1), self.member, cfg.eps, cfg.baseline)
        return fused_scores(self.conse.similarities(logits) if cfg.cosine else None, hier, cfg.params())

    def predict_proba(self, batch) -> np.ndarray:
        return self.predict_logits(batch.outputs(self.config.backbone)[1])

    def predict_logits(self, logits: np.ndarray) -> np.ndarray:
        return calibrated(self.scores(logits), self.config.calibration)

    def save(self, path: Path | str) -> None:
        c = self.conse
        np.savez(path, kept=c.kept, name_vectors=c.name_vectors, targets=c.targets,
                 n_imagenet=np.array(c.n_imagenet), member=self.member)

    @classmethod
    def load(cls, path: Path | str, config: FusedConfig | dict, classes: list[str]) -> FusedModel:
        if not isinstance(config, FusedConfig):
            config = FusedConfig(**{k: v for k, v in config.items() if k in FusedConfig.__dataclass_fields__})
        conse = ConSEModel.load(path, config.conse_config(), classes)
        with np.load(path) as z:
            member = z["member"]
        if member.shape[1] != len(classes):
            raise InputError(f"{path} holds hierarchy weights for {member.shape[1]} words, not {len(classes)}")
        return cls(config, list(classes), conse, member, {})


def build_fused(config: FusedConfig, encoder, imagenet_names: list[str], classes: list[str], *,
                hashtags: dict[str, list[str]] | None = None) -> FusedModel:
    """ConSE over the words (dropping words without a vector, as ConSE does) plus each kept word's WordNet
    sense and the ImageNet classes beneath it."""
    from hashtag_workbench.core.wordnet import load_wordnet
    wn = load_wordnet()
    conse = build_conse(config.conse_config(), encoder, imagenet_names, classes, hashtags=hashtags)
    senses = word_senses(wn, conse.classes, hashtags, encoder)
    report = {**conse.report, "senses": [s.describe(wn) for s in senses],
              "words_without_hierarchy": [s.word for s in senses if not s.has_hierarchy]}
    return FusedModel(config, conse.classes, conse, membership(senses, config.alpha), report)
