"""ConSE zero-shot classification (Norouzi et al. 2014): ImageNet probabilities -> word space -> nearest word.

Plain ConSE: take the classifier's top-T ImageNet probabilities, renormalise them to
sum to 1, embed the image as the convex combination of those classes' name vectors,
and rank the target words by cosine similarity to it.

Variants (each a flag, reported next to plain ConSE):
- centre: subtract the mean ImageNet-name vector from the image embedding and the
  targets, so the shared "generic object" direction stops pulling every image to the
  same few words;
- expand: represent each target word by its own vector averaged with those of its
  first hashtags that have vectors (e.g. beach + sea, summer, sand);
- temperature: use all names' probabilities, softmax(logits / temperature), instead
  of the top T;
- names: how a multi-word ImageNet name becomes a vector: the mean of its words
  ("mean", the original), its last word, usually the head noun ("head": great white
  shark -> shark), or the two averaged ("both");
- debias: rescale each target word's cosine by its mean and spread over the ImageNet
  names themselves, so a word close to everything (a "hub") stops winning every image;
- combine="vote": instead of embedding the image as a mix of name vectors, let each
  ImageNet name vote for the target words near it (softmax of its cosines / vote
  temperature) with the image's probability of that name; the score of a word is the
  probability mass that lands on it, so 40 dog breeds at 2 % each add up to "dog";
- hierse: HierSE label vectors (Li et al. 2015, core.hierarchy): every ImageNet name's and target
  word's vector averaged with its WordNet ancestors' vectors, weighted hierse**depth.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from hashtag_workbench.core.backbones import DEFAULT_BACKBONE
from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.kinds import KindModel
from hashtag_workbench.core.linalg import softmax, unit
from hashtag_workbench.core.model_defaults import TEMPERATURE, TOP_T
from hashtag_workbench.core.wordvectors import DEFAULT_WORD_VECTORS, PhraseEncoder, tokens


class ConSEError(InputError):
    """ConSE cannot be built or applied with the given inputs."""


NAME_MODES = ("mean", "head", "both")
COMBINE_MODES = ("embed", "vote")


@dataclass
class ConSEConfig:
    """Everything that defines a ConSE model besides the vectors themselves."""
    top_t: int = TOP_T
    centre: bool = False
    expand: bool = False
    expand_k: int = 5
    temperature: float | None = None        # None: top-T; a value: all names, softmax(logits / temperature)
    word_vectors: str = DEFAULT_WORD_VECTORS  # spacy | glove | minilm | path to a word2vec file
    backbone: str = DEFAULT_BACKBONE    # whose ImageNet logits it reads
    score_temperature: float = 0.05         # cosine -> pseudo-probability: softmax(cos / this)
    names: str = "mean"                     # mean | head | both: how multi-word ImageNet names are embedded
    debias: bool = False                    # z-score each target's cosine over the ImageNet names
    combine: str = "embed"                  # embed (ConSE's convex combination) | vote (names vote for words)
    vote_temperature: float = 0.05          # vote: how sharply a name's vote goes to its nearest words
    hierse: float | None = None             # HierSE: ancestors' vectors weighted hierse**depth (None: off)

    def __post_init__(self):
        if self.combine not in COMBINE_MODES:
            raise ConSEError(f"combine must be one of {', '.join(COMBINE_MODES)}, got {self.combine!r}")
        if float(self.vote_temperature) <= 0:
            raise ConSEError(f"vote_temperature must be positive, got {self.vote_temperature}")
        if self.names not in NAME_MODES:
            raise ConSEError(f"names must be one of {', '.join(NAME_MODES)}, got {self.names!r}")
        if int(self.top_t) < 1:
            raise ConSEError(f"top_t must be at least 1, got {self.top_t}")
        if self.temperature is not None and float(self.temperature) <= 0:
            raise ConSEError(f"temperature must be positive, got {self.temperature}")
        if float(self.score_temperature) <= 0:
            raise ConSEError(f"score_temperature must be positive, got {self.score_temperature}")
        if self.hierse is not None and not 0 < float(self.hierse) < 1:
            raise ConSEError(f"hierse must be between 0 and 1 (exclusive), got {self.hierse}")
        if int(self.expand_k) < 0:
            raise ConSEError(f"expand_k must be 0 or more, got {self.expand_k}")

    @property
    def variant(self) -> str:
        parts = ["centre"] if self.centre else []
        if self.expand:
            parts.append("expand")
        if self.temperature is not None:
            parts.append(f"temp{self.temperature:g}")
        if self.names != "mean":
            parts.append(f"names-{self.names}")
        if self.debias:
            parts.append("debias")
        if self.combine == "vote":
            parts.append(f"vote{self.vote_temperature:g}")
        if self.hierse is not None:
            parts.append(f"hierse{self.hierse:g}")
        return "+".join(parts) or "plain"

    def label(self, vectors_name: str) -> str:
        how = f"all, τ={self.temperature:g}" if self.temperature is not None else f"T={self.top_t}"
        return f"ConSE {self.variant} ({vectors_name}, {how})"

    def to_dict(self) -> dict:
        return asdict(self)



@dataclass
class ConSEModel(KindModel):
    """A built ConSE model: the kept ImageNet names' vectors and the target words' vectors."""
    config: ConSEConfig
    classes: list[str] = field(default_factory=list)   # target words, in score order
    kept: np.ndarray | None = None     # indices (into the 1000 ImageNet classes) of names with a vector
    name_vectors: np.ndarray | None = None  # (len(kept), d)
    targets: np.ndarray | None = None  # (len(classes), d), before centring
    n_imagenet: int = 1000
    report: dict = field(default_factory=dict)
    reads = "logits"

    def fit(self, data) -> ConSEModel:
        """Over every active vocabulary word (no photos); words and ImageNet names with no vector are dropped
        and said once."""
        from hashtag_workbench.core.backbones import imagenet_classes
        from hashtag_workbench.core.wordvectors import cached_word_vectors
        enc = cached_word_vectors(self.config.word_vectors)
        # sklearn's shape: the built model's fields become this model's
        vars(self).update(vars(build_conse(self.config, enc, imagenet_classes(), list(data.vocabulary),
                                           hashtags=data.hashtags)))
        rep = self.report
        if rep["imagenet_names_dropped"]:
            shown = ", ".join(rep["imagenet_names_dropped"][:12])
            more = len(rep["imagenet_names_dropped"]) - 12
            data.log(f"{len(rep['imagenet_names_dropped'])} ImageNet names have no {enc.name} vector and are "
                     f"dropped: {shown}{f' and {more} more' if more > 0 else ''}")
        say_dropped(rep, enc.name, data.log)
        self.counts = {"imagenet_names_kept": rep["imagenet_names_kept"],
                       "imagenet_names_dropped": len(rep["imagenet_names_dropped"]),
                       "words": len(self.classes), "words_without_vector": len(rep["targets_dropped"])}
        self.name, self.notes = self.config.label(enc.name), {"word_vectors_name": enc.name}
        return self

    @property
    def mean_name(self) -> np.ndarray:
        return self.name_vectors.mean(axis=0)

    def name_weights(self, logits: np.ndarray) -> np.ndarray:
        """(n, len(kept)) convex weights over the kept names, per the config."""
        logits = np.atleast_2d(np.asarray(logits, dtype=np.float64))
        if logits.shape[1] != self.n_imagenet:
            raise ConSEError(f"expected {self.n_imagenet} ImageNet logits per image, got {logits.shape[1]}")
        cfg = self.config
        kept_logits = logits[:, self.kept]
        if cfg.temperature is not None:
            return softmax(kept_logits / float(cfg.temperature))
        # Softmax over all 1000 first, so a name's probability is the classifier's own.
        probs = softmax(logits)[:, self.kept]
        t = min(int(cfg.top_t), probs.shape[1])
        top = np.argpartition(-probs, t - 1, axis=1)[:, :t]
        w = np.zeros_like(probs)
        rows = np.arange(len(probs))[:, None]
        w[rows, top] = probs[rows, top]
        return w / w.sum(axis=1, keepdims=True)

    def embed(self, logits: np.ndarray) -> np.ndarray:
        """The images' semantic embeddings: convex combinations of name vectors (centred if configured)."""
        f = self.name_weights(logits) @ self.name_vectors
        return f - self.mean_name if self.config.centre else f

    def similarities(self, logits: np.ndarray) -> np.ndarray:
        """(n, len(classes)) cosine similarity of each image embedding to each target word (debiased if asked)."""
        centre = self.mean_name if self.config.centre else 0.0
        t = unit(self.targets - centre)
        sims = unit(self.embed(logits)) @ t.T
        if not self.config.debias:
            return sims
        # A name alone is the embedding of an image the classifier is sure of: the spread of a target's
        # cosines over all names tells how much of its score is its own and how much is "near everything".
        ref = unit(self.name_vectors - centre) @ t.T
        sd = np.where(ref.std(axis=0) > 0, ref.std(axis=0), 1.0)
        # scaled back to cosine units, so score_temperature keeps its meaning
        return (sims - ref.mean(axis=0)) / sd * float(sd.mean())

    def votes(self) -> np.ndarray:
        """(len(kept), len(classes)): where each ImageNet name's probability goes (rows sum to 1)."""
        centre = self.mean_name if self.config.centre else 0.0
        cos = unit(self.name_vectors - centre) @ unit(self.targets - centre).T
        return softmax(cos / float(self.config.vote_temperature), axis=1)

    def predict_proba(self, batch) -> np.ndarray:
        return self.predict_logits(batch.outputs(self.config.backbone)[1])

    def predict_logits(self, logits: np.ndarray) -> np.ndarray:
        """Pseudo-probabilities: a softmax of the cosines (ranking is the cosine ranking), or the votes."""
        if self.config.combine == "vote":
            return self.name_weights(logits) @ self.votes()
        return softmax(self.similarities(logits) / float(self.config.score_temperature))

    def save(self, path: Path | str) -> None:
        np.savez(path, kept=self.kept, name_vectors=self.name_vectors, targets=self.targets,
                 n_imagenet=np.array(self.n_imagenet))

    @classmethod
    def load(cls, path: Path | str, config: ConSEConfig | dict, classes: list[str]) -> ConSEModel:
        if not isinstance(config, ConSEConfig):
            # stored configs carry extra notes (e.g. the vectors' display name); keep the fields only
            config = ConSEConfig(**{k: v for k, v in config.items() if k in ConSEConfig.__dataclass_fields__})
        cfg = config
        with np.load(path) as z:
            model = cls(cfg, list(classes), z["kept"], z["name_vectors"], z["targets"], int(z["n_imagenet"]))
        if len(model.targets) != len(model.classes):
            raise ConSEError(f"{path} holds {len(model.targets)} target vectors for {len(classes)} classes")
        return model


def say_dropped(report: dict, vectors_name: str, log) -> None:
    """One line naming the vocabulary words a model never predicts for want of a vector."""
    if report["targets_dropped"]:
        log(f"words with no {vectors_name} vector (never predicted by this model): "
            f"{', '.join(report['targets_dropped'])}")


def target_vectors(encoder: PhraseEncoder, words: list[str], *, hashtags: dict[str, list[str]] | None = None,
                   expand_k: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, list[str]]]:
    """Vectors of the target words (optionally averaged with their hashtags'); mask; the expansions used."""
    vecs, mask = encoder.encode(words)
    used: dict[str, list[str]] = {}
    if expand_k and hashtags:
        for i, word in enumerate(words):
            extra = [t for t in hashtags.get(word, []) if t.lower() != word.lower()]
            if not extra or not mask[i]:
                continue
            tv, tm = encoder.encode(extra)
            chosen = [j for j in range(len(extra)) if tm[j]][:expand_k]
            if chosen:
                # Half the weight stays on the word itself, so the hashtags refine it rather than replace it.
                vecs[i] = (unit(vecs[i]) + unit(tv[chosen]).mean(axis=0)) / 2
                used[word] = [extra[j] for j in chosen]
    return vecs, mask, used


def name_vectors(encoder: PhraseEncoder, names: list[str], mode: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    """Vectors of the ImageNet names per `mode` (see the module notes); a name with no vector is masked out."""
    mean, mask = encoder.encode(names)
    if mode == "mean":
        return mean, mask
    head, hmask = encoder.encode([(tokens(n) or [n])[-1] for n in names])
    # a head word with no vector falls back to the name's mean, so the choice never loses a name
    pick = np.where(hmask[:, None], head, mean)
    if mode == "both":
        pick = np.where((hmask & mask)[:, None], (unit(mean) + unit(head)) / 2, pick)
    return pick.astype(np.float32), mask | hmask


def _hierse(decay, encoder, name_vecs, name_mask, tvecs, tmask, classes, hashtags):
    """HierSE vectors for the 1000 ImageNet names (their synsets) and the target words (their chosen senses).

    A name without its own vector is still kept when its ancestors have vectors; a target word keeps its
    mask (a word with no vector of its own is never predicted, as in plain ConSE)."""
    from hashtag_workbench.core.hierarchy import hierse_vectors, word_senses
    from hashtag_workbench.core.wordnet import load_wordnet
    wn = load_wordnet()
    if len(name_vecs) != len(wn.imagenet):
        raise ConSEError(f"HierSE needs the 1000 ImageNet classes, got {len(name_vecs)} names")
    names = hierse_vectors(wn, encoder, [v if m else None for v, m in zip(name_vecs, name_mask)],
                           list(wn.imagenet), decay)
    senses = word_senses(wn, classes, hashtags, encoder)
    targets = hierse_vectors(wn, encoder, [v if m else None for v, m in zip(tvecs, tmask)],
                             [s.chosen for s in senses], decay)
    return names, np.linalg.norm(names, axis=1) > 0, targets


def build_conse(config: ConSEConfig, encoder: PhraseEncoder, imagenet_names: list[str], classes: list[str],
                *, hashtags: dict[str, list[str]] | None = None) -> ConSEModel:
    """Embed the ImageNet names and target words; names or targets with no vector are dropped and reported."""
    if len(imagenet_names) < 2:
        raise ConSEError("need the ImageNet class names (got fewer than 2)")
    if not classes:
        raise ConSEError("no target words given")
    name_vecs, name_mask = name_vectors(encoder, list(imagenet_names), config.names)
    tvecs, tmask, used = target_vectors(encoder, list(classes), hashtags=hashtags,
                                        expand_k=config.expand_k if config.expand else 0)
    if config.hierse is not None:
        name_vecs, name_mask, tvecs = _hierse(config.hierse, encoder, name_vecs, name_mask, tvecs, tmask,
                                              list(classes), hashtags)
    kept = np.flatnonzero(name_mask)
    if len(kept) < 2:
        raise ConSEError(f"only {len(kept)} ImageNet class names have a vector in {encoder.name}")
    if tmask.sum() < 2:
        raise ConSEError(f"fewer than 2 target words have a vector in {encoder.name}: "
                         f"{[c for c, m in zip(classes, tmask) if not m]} have none")
    report = {
        "word_vectors": encoder.name,
        "imagenet_names_kept": int(len(kept)),
        "imagenet_names_dropped": [imagenet_names[i] for i in np.flatnonzero(~name_mask)],
        "targets_dropped": [c for c, m in zip(classes, tmask) if not m],
        "expansions": used,
    }
    return ConSEModel(config, [c for c, m in zip(classes, tmask) if m], kept, name_vecs[kept],
                      tvecs[tmask], len(imagenet_names), report)


# What predict, the Predict page and demo use when nothing else is asked for: the best-measured
# configuration among the sources that build in about a second (benchmarks/zeroshot.py, 536 demo photos,
# all 76 words: spaCy centre+temp3 30.0 % top-1 / 64.0 % top-5). MiniLM centre+expand+temp2 measured
# higher (42.2 % / 67.4 %) but loading it and encoding the 1000 names takes ~40 s of CPU per build,
# and every vocabulary edit rebuilds; choose it with `train --word-vectors minilm` (README "Zero-shot").
DEFAULT_SETTINGS = dict(word_vectors=DEFAULT_WORD_VECTORS, centre=True, temperature=3.0)


def default_config(word_vectors: str | None = None, backbone: str = DEFAULT_BACKBONE) -> ConSEConfig:
    """The default zero-shot model's config (other word vectors keep the same variant)."""
    return ConSEConfig(**{**DEFAULT_SETTINGS, "backbone": backbone,
                          "word_vectors": word_vectors or DEFAULT_SETTINGS["word_vectors"]})


def standard_variants(word_vectors: str = DEFAULT_WORD_VECTORS, top_t: int = TOP_T, backbone: str = DEFAULT_BACKBONE,
                      temperature: float = TEMPERATURE) -> list[ConSEConfig]:
    """The variants `train` builds side by side: plain ConSE first, then each improvement stacked, then the
    default (when it is not one of them already)."""
    base = dict(word_vectors=word_vectors, top_t=top_t, backbone=backbone)
    out = [ConSEConfig(**base),
           ConSEConfig(**base, centre=True),
           ConSEConfig(**base, centre=True, expand=True),
           ConSEConfig(**base, centre=True, expand=True, temperature=temperature)]
    best = default_config(word_vectors, backbone)
    return out if best in out else out + [best]


def train_configs(options: dict) -> list[ConSEConfig]:
    """The configs `train` builds from its options: the variants side by side, or the default alone."""
    if options.get("conse_variants", True):
        return standard_variants(options["word_vectors"], options["top_t"], options["backbone"],
                                 options["temperature"])
    return [default_config(options["word_vectors"], options["backbone"])]


def named_variants(word_vectors: str = DEFAULT_WORD_VECTORS, backbone: str = DEFAULT_BACKBONE, top_t: int = TOP_T,
                   temperature: float = TEMPERATURE) -> list[ConSEConfig]:
    """The variants the zero-shot benchmark reports by default: each switch alone, then stacked."""
    base = dict(word_vectors=word_vectors, top_t=top_t, backbone=backbone)
    stacked = dict(base, centre=True, expand=True, temperature=temperature)
    return [ConSEConfig(**base), ConSEConfig(**base, centre=True), ConSEConfig(**base, expand=True),
            ConSEConfig(**base, names="head"), ConSEConfig(**base, debias=True),
            ConSEConfig(**base, centre=True, expand=True), ConSEConfig(**base, centre=True, temperature=temperature),
            ConSEConfig(**stacked), ConSEConfig(**stacked, names="head"), ConSEConfig(**stacked, names="both"),
            ConSEConfig(**stacked, debias=True), ConSEConfig(**stacked, names="both", debias=True),
            ConSEConfig(**base, combine="vote"), ConSEConfig(**base, combine="vote", temperature=1.0),
            ConSEConfig(**base, combine="vote", temperature=1.0, centre=True),
            ConSEConfig(**base, combine="vote", temperature=1.0, expand=True),
            ConSEConfig(**base, combine="vote", temperature=1.0, centre=True, expand=True),
            ConSEConfig(**base, combine="vote", temperature=1.0, vote_temperature=0.02),
            ConSEConfig(**base, combine="vote", temperature=1.0, vote_temperature=0.1),
            ConSEConfig(**base, combine="vote", temperature=1.0, expand=True, names="both")]
