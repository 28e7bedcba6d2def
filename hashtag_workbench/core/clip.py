"""CLIP zero-shot (Radford et al. 2021): photos and text prompts in one space; the nearest word wins.

Each word is the mean of its prompt embeddings: "a photo of {word}" averaged with the same
prompt for its first hashtags (half the weight on the word, as ConSE's expansion does), so
a word is described the way people tag it. Scores are CLIP's own: softmax(logit_scale * cos).

The CLIP weights come from a local folder in `save_pretrained` layout (CLIPModel + its
processor), or a hub name when online. No package on the registries ships CLIP weights, so
real figures need downloaded weights; the tests use a tiny randomly initialised model.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from hashtag_workbench.core.conse import target_vectors
from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.linalg import softmax, unit


class CLIPError(InputError):
    """The CLIP model cannot be loaded or applied."""


@dataclass
class CLIPZeroShotConfig:
    model: str = ""                    # folder in save_pretrained layout, or a hub name (online only)
    prompt: str = "a photo of {}"
    expand_k: int = 5                  # hashtags averaged with the word (0: the word's prompt alone)
    batch_size: int = 16

    def __post_init__(self):
        if not self.model:
            raise CLIPError("no CLIP model given: pass --clip-model PATH (a folder saved with save_pretrained) "
                            "or a hub name such as openai/clip-vit-base-patch32 when online")
        if "{}" not in self.prompt:
            raise CLIPError(f"the prompt must hold '{{}}' where the word goes, got {self.prompt!r}")
        if int(self.expand_k) < 0 or int(self.batch_size) < 1:
            raise CLIPError(f"expand_k must be 0 or more and batch_size 1 or more, got {self.expand_k}, "
                            f"{self.batch_size}")

    def to_dict(self) -> dict:
        return asdict(self)

    def label(self) -> str:
        return f"CLIP ({Path(self.model).name or self.model}, prompts{' + hashtags' if self.expand_k else ''})"


@functools.lru_cache(maxsize=2)
def load_clip(model: str):
    """(CLIPModel in eval mode, CLIPProcessor), shared per process; a clear error when they cannot be loaded."""
    try:
        from transformers import CLIPModel, CLIPProcessor
        net = CLIPModel.from_pretrained(model).eval()
        processor = CLIPProcessor.from_pretrained(model)
    except Exception as exc:
        where = "folder" if Path(model).exists() else "hub name (needs the internet, or a local folder)"
        raise CLIPError(f"cannot load CLIP from {model!r} ({where}): {type(exc).__name__}: {exc}") from None
    return net, processor


def _embeds(out):
    """transformers returns a tensor (4.x) or an output whose pooler_output is the projection (5.x)."""
    return out if hasattr(out, "shape") else out.pooler_output



@dataclass
class PromptEncoder:
    """CLIP's text tower as a core.wordvectors.PhraseEncoder: phrase -> unit embedding of its prompt."""
    net: object
    processor: object
    prompt: str
    name: str = "CLIP text"
    spec: str = "clip"

    @property
    def dim(self) -> int:
        return int(self.net.config.projection_dim)

    def encode(self, phrases: list[str]) -> tuple[np.ndarray, np.ndarray]:
        import torch
        texts = [self.prompt.format(p.replace("_", " ")) for p in phrases]
        with torch.inference_mode():
            tok = self.processor(text=texts, return_tensors="pt", padding=True, truncation=True)
            vecs = _embeds(self.net.get_text_features(**tok)).float().numpy()
        return unit(vecs).astype(np.float32), np.ones(len(phrases), dtype=bool)


class CLIPZeroShot:
    """A built CLIP zero-shot model: one unit text vector per word; images are embedded on demand."""

    def __init__(self, config: CLIPZeroShotConfig, classes: list[str], text: np.ndarray, logit_scale: float,
                 report: dict | None = None):
        if len(text) != len(classes):
            raise CLIPError(f"{len(text)} text vectors for {len(classes)} words")
        self.config, self.classes, self.text = config, list(classes), unit(np.asarray(text, dtype=np.float32))
        self.logit_scale, self.report = float(logit_scale), report or {}

    @classmethod
    def build(cls, config: CLIPZeroShotConfig, classes: Sequence[str], *,
              hashtags: dict[str, list[str]] | None = None) -> CLIPZeroShot:
        if len(classes) < 2:
            raise CLIPError(f"need at least 2 target words, got {len(classes)}")
        net, processor = load_clip(config.model)
        tags = {w: [t.lstrip("#") for t in ts] for w, ts in (hashtags or {}).items()}
        vecs, _, used = target_vectors(PromptEncoder(net, processor, config.prompt), list(classes), hashtags=tags,
                                       expand_k=int(config.expand_k))
        scale = float(net.logit_scale.exp().item())
        return cls(config, list(classes), vecs, scale, {"prompt": config.prompt, "expansions": used})

    def image_embeddings(self, images: Sequence[Image.Image]) -> np.ndarray:
        import torch
        net, processor = load_clip(self.config.model)
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
        load_clip(config.model)  # fail here, with the reason, if the CLIP weights are gone
        with np.load(path) as z:
            return cls(config, list(classes), z["text"], float(z["logit_scale"]))
