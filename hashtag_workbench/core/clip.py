"""CLIP zero-shot (Radford et al. 2021): photos and text prompts in one space; the nearest word wins.

Each word is a prompt ensemble: the mean embedding of its prompts ("a photo of a {word}.",
"{word}") averaged, half and half, with the mean embedding of its hashtag forms ("#{word}" and
"#{tag}" for its first hashtags), so a word is described both as a caption and the way people tag
it. Scores are CLIP's own: softmax(logit_scale * cos).

The CLIP weights come from a local folder in `save_pretrained` layout (CLIPModel + its
processor). A hub id (ORG/NAME) is downloaded once into the data directory by the caller
(infra.hub) and recorded as `source`, so the model is named by its id and loads offline. No
package on the registries ships CLIP weights, so real figures need downloaded weights; the tests
use a tiny randomly initialised model (and a fake hub for the download).
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.kinds import KindModel
from hashtag_workbench.core.linalg import softmax, unit

DEFAULT_PROMPTS = ("a photo of a {}.", "{}")
HASHTAG_FORM = "#{}"


class CLIPError(InputError):
    """The CLIP model cannot be loaded or applied."""


@dataclass
class CLIPZeroShotConfig:
    model: str = ""                    # folder in save_pretrained layout, or a hub id (ORG/NAME)
    prompts: list[str] = field(default_factory=lambda: list(DEFAULT_PROMPTS))
    hashtag_form: str = HASHTAG_FORM   # how the word and its hashtags are written as tags
    expand_k: int = 5                  # hashtags in the word's hashtag forms (0: "#{word}" alone)
    batch_size: int = 16
    source: str = ""                   # a hub id's downloaded folder (infra.hub); empty: `model` is the folder

    def __post_init__(self):
        if not self.model:
            raise CLIPError("no CLIP model given: pass --clip-model PATH (a folder saved with save_pretrained) "
                            "or a hub name such as openai/clip-vit-base-patch32 when online")
        self.prompts = list(self.prompts)
        bad = [p for p in [*self.prompts, self.hashtag_form] if "{}" not in p]
        if bad or not self.prompts:
            raise CLIPError(f"every prompt must hold '{{}}' where the word goes, got {bad or 'no prompts'}")
        if int(self.expand_k) < 0 or int(self.batch_size) < 1:
            raise CLIPError(f"expand_k must be 0 or more and batch_size 1 or more, got {self.expand_k}, "
                            f"{self.batch_size}")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def folder(self) -> str:
        """Where the weights are: the downloaded copy of a hub id, else `model` itself."""
        return self.source or self.model

    def label(self) -> str:
        name = self.model if self.source else (Path(self.model).name or self.model)
        return f"CLIP ({name}, {len(self.prompts)} prompts + hashtag forms{' and hashtags' if self.expand_k else ''})"


@functools.lru_cache(maxsize=2)
def load_clip(model: str):
    """(CLIPModel in eval mode, CLIPProcessor), shared per process; a clear error when they cannot be loaded."""
    try:
        from transformers import CLIPModel, CLIPProcessor
        net = CLIPModel.from_pretrained(model).eval()
        processor = CLIPProcessor.from_pretrained(model)
    except Exception as exc:
        where = "folder" if Path(model).exists() else "folder, which is missing"
        raise CLIPError(f"cannot load CLIP from {model!r} ({where}): {type(exc).__name__}: {exc}") from None
    return net, processor


def _embeds(out):
    """transformers returns a tensor (4.x) or an output whose pooler_output is the projection (5.x)."""
    return out if hasattr(out, "shape") else out.pooler_output



@dataclass
class PromptEncoder:
    """CLIP's text tower as a core.wordvectors.PhraseEncoder: phrase -> unit mean embedding of its prompts."""
    net: object
    processor: object
    prompts: Sequence[str]
    name: str = "CLIP text"
    spec: str = "clip"

    @property
    def dim(self) -> int:
        return int(self.net.config.projection_dim)

    def encode(self, phrases: list[str]) -> tuple[np.ndarray, np.ndarray]:
        import torch
        texts = [p.format(ph) for ph in phrases for p in self.prompts]
        with torch.inference_mode():
            tok = self.processor(text=texts, return_tensors="pt", padding=True, truncation=True)
            vecs = unit(_embeds(self.net.get_text_features(**tok)).float().numpy())
        vecs = unit(vecs.reshape(len(phrases), len(self.prompts), -1).mean(axis=1))
        return vecs.astype(np.float32), np.ones(len(phrases), dtype=bool)


def word_vectors(net, processor, config: CLIPZeroShotConfig, classes: Sequence[str],
                 hashtags: dict[str, list[str]]) -> tuple[np.ndarray, dict[str, list[str]]]:
    """Each word's text vector: its prompt ensemble and its hashtag forms, half and half; the hashtags used."""
    words = [w.replace("_", " ") for w in classes]
    prompted, _ = PromptEncoder(net, processor, config.prompts).encode(words)
    forms, owner, used = [], [], {}
    for i, w in enumerate(classes):
        tags = [t.lstrip("#") for t in hashtags.get(w, [])]
        tags = [t for t in tags if t and t.lower() != w.lower()][:int(config.expand_k)]
        if tags:
            used[w] = tags
        for t in [w, *tags]:  # a tag is written without spaces, as people type it
            forms.append("".join(t.replace("_", " ").split()))
            owner.append(i)
    tagged, _ = PromptEncoder(net, processor, [config.hashtag_form]).encode(forms)
    per_word = np.zeros_like(prompted)
    np.add.at(per_word, np.array(owner), tagged)
    return unit(unit(prompted) + unit(per_word)), used


class CLIPZeroShot(KindModel):
    """A built CLIP zero-shot model: one unit text vector per word; images are embedded on demand."""

    def __init__(self, config: CLIPZeroShotConfig, classes: Sequence[str] = (), text: np.ndarray | None = None,
                 logit_scale: float = 1.0, report: dict | None = None):
        if text is not None and len(text) != len(classes):
            raise CLIPError(f"{len(text)} text vectors for {len(classes)} words")
        self.config, self.classes = config, list(classes)
        self.text = unit(np.asarray(text, dtype=np.float32)) if text is not None else None
        self.logit_scale, self.report = float(logit_scale), report or {}

    def fit(self, data) -> CLIPZeroShot:
        """Every active vocabulary word's text vector (no photos)."""
        # sklearn's shape: the built model's text vectors become this model's
        vars(self).update(vars(self.build(self.config, list(data.vocabulary), hashtags=data.hashtags)))
        self.name, self.counts = self.config.label(), {"words": len(self.classes)}
        return self

    def predict_proba(self, batch) -> np.ndarray:
        return self.predict_images(batch.images())

    @classmethod
    def build(cls, config: CLIPZeroShotConfig, classes: Sequence[str], *,
              hashtags: dict[str, list[str]] | None = None) -> CLIPZeroShot:
        if len(classes) < 2:
            raise CLIPError(f"need at least 2 target words, got {len(classes)}")
        net, processor = load_clip(config.folder)
        vecs, used = word_vectors(net, processor, config, list(classes), hashtags or {})
        scale = float(net.logit_scale.exp().item())
        return cls(config, list(classes), vecs, scale, {"prompts": config.prompts,
                                                        "hashtag_form": config.hashtag_form, "expansions": used})

    def image_embeddings(self, images: Sequence[Image.Image]) -> np.ndarray:
        import torch
        net, processor = load_clip(self.config.folder)
        out = []
        with torch.inference_mode():
            for i in range(0, len(images), int(self.config.batch_size)):
                px = processor(images=[im.convert("RGB") for im in images[i:i + int(self.config.batch_size)]],
                               return_tensors="pt")
                out.append(_embeds(net.get_image_features(**px)).float().numpy())
        return unit(np.concatenate(out)) if out else np.zeros((0, self.text.shape[1]), np.float32)

    def predict_embeddings(self, embeds: np.ndarray) -> np.ndarray:
        return softmax(self.logit_scale * (unit(np.atleast_2d(embeds)) @ self.text.T), axis=1)

    def predict_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, len(classes)) probabilities for PIL images."""
        return self.predict_embeddings(self.image_embeddings(list(images)))

    def save(self, path: Path | str) -> None:
        np.savez(path, text=self.text, logit_scale=np.array(self.logit_scale))

    @classmethod
    def load(cls, path: Path | str, config: CLIPZeroShotConfig | dict, classes: list[str]) -> CLIPZeroShot:
        if not isinstance(config, CLIPZeroShotConfig):
            config = CLIPZeroShotConfig(**{k: v for k, v in config.items()
                                           if k in CLIPZeroShotConfig.__dataclass_fields__})
        load_clip(config.folder)  # fail here, with the reason, if the CLIP weights are gone
        with np.load(path) as z:
            return cls(config, list(classes), z["text"], float(z["logit_scale"]))
