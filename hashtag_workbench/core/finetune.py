"""Fine-tune an ImageNet CNN on the words, fast on CPU.

Fine-tuning here trains the backbone's last `train_blocks` blocks plus a new linear
head; everything before them stays frozen (and BatchNorm statistics stay fixed, which
small datasets need). Since the frozen part's output never changes, "cached" mode runs
it once per image (and once per horizontally flipped copy, the augmentation) and
trains on the stored activations: each epoch then costs only the last blocks. "full"
mode is the naive reference that trains every layer from the raw image each epoch;
benchmarks/finetune.py measures the two side by side.
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from hashtag_workbench.core.backbones import load_backbone, network_input
from hashtag_workbench.core.errors import InputError

SUPPORTED = ("efficientnet_lite0", "resnet18")


class FinetuneError(InputError):
    """Fine-tuning cannot run with the given backbone, data or settings."""


@dataclass
class FinetuneConfig:
    backbone: str = "efficientnet_lite0"
    weights: str | None = None        # backbone weights file (needed for resnet18; efficientnet is bundled)
    epochs: int = 13
    train_blocks: int = 3             # trailing blocks trained (efficientnet-lite0 has 16, resnet18 8)
    mode: str = "cached"              # cached | full (naive: every layer, from raw images, each epoch)
    lr: float = 1e-3                  # head learning rate; trained blocks get lr * block_lr_scale
    block_lr_scale: float = 0.3
    weight_decay: float = 1e-4
    batch_size: int = 32
    label_smoothing: float = 0.1
    dropout: float = 0.2
    augment: bool = True              # horizontal flips
    seed: int = 0

    def __post_init__(self):
        if self.backbone not in SUPPORTED:
            raise FinetuneError(f"fine-tuning supports {', '.join(SUPPORTED)}, not {self.backbone!r}; "
                                "use the linear probe for other backbones")
        if self.mode not in ("cached", "full"):
            raise FinetuneError(f"mode must be 'cached' or 'full', got {self.mode!r}")
        if int(self.epochs) < 1:
            raise FinetuneError(f"epochs must be at least 1, got {self.epochs}")
        if int(self.train_blocks) < 0:
            raise FinetuneError(f"train_blocks must be 0 or more, got {self.train_blocks}")
        if int(self.batch_size) < 1:
            raise FinetuneError(f"batch_size must be at least 1, got {self.batch_size}")

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- backbone surgery

class _EffNetFront(nn.Module):
    """Stem + blocks[:stop]; registers only those modules, so freezing it never freezes the tail."""

    def __init__(self, m, stop: int):
        super().__init__()
        self.stem, self.bn0, self.act = m._conv_stem, m._bn0, m._swish
        self.blocks = nn.ModuleList(list(m._blocks)[:stop])

    def forward(self, x):
        x = self.act(self.bn0(self.stem(x)))
        for block in self.blocks:
            x = block(x)  # inference only: no drop-connect
        return x


class _EffNetTail(nn.Module):
    """EfficientNet-Lite blocks[start:] + head conv + pooling -> 1280-d features."""

    def __init__(self, m, start: int):
        super().__init__()
        self.blocks = nn.ModuleList(list(m._blocks)[start:])
        self.conv_head, self.bn1, self.act = m._conv_head, m._bn1, m._swish
        self.start, self.n = start, len(m._blocks)
        self.rate = m._global_params.drop_connect_rate or 0.0

    def forward(self, x):
        for j, block in enumerate(self.blocks):
            # the same depth-scaled drop-connect rate the library's extract_features uses
            rate = self.rate * float(self.start + j) / self.n if self.rate else None
            x = block(x, drop_connect_rate=rate)
        x = self.act(self.bn1(self.conv_head(x)))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def _resnet_blocks(m) -> list[nn.Module]:
    return [b for layer in (m.layer1, m.layer2, m.layer3, m.layer4) for b in layer]


class _ResNetFront(nn.Module):
    def __init__(self, m, stop: int):
        super().__init__()
        self.stem = nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool)
        self.blocks = nn.ModuleList(_resnet_blocks(m)[:stop])

    def forward(self, x):
        x = self.stem(x)
        for b in self.blocks:
            x = b(x)
        return x


class _ResNetTail(nn.Module):
    def __init__(self, m, start: int):
        super().__init__()
        self.blocks = nn.ModuleList(_resnet_blocks(m)[start:])

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def split_backbone(backbone, train_blocks: int) -> tuple[nn.Module, nn.Module, int]:
    """(frozen front, trainable tail, feature dim) sharing the backbone's modules (no copies)."""
    m = backbone.model
    if backbone.name == "efficientnet_lite0":
        n = len(m._blocks)
        if train_blocks > n:
            raise FinetuneError(f"efficientnet_lite0 has {n} blocks; train_blocks={train_blocks} is too many")
        return _EffNetFront(m, n - train_blocks), _EffNetTail(m, n - train_blocks), backbone.feature_dim
    if backbone.name == "resnet18":
        n = len(_resnet_blocks(m))
        if train_blocks > n:
            raise FinetuneError(f"resnet18 has {n} blocks; train_blocks={train_blocks} is too many")
        return _ResNetFront(m, n - train_blocks), _ResNetTail(m, n - train_blocks), backbone.feature_dim
    raise FinetuneError(f"fine-tuning supports {', '.join(SUPPORTED)}, not {backbone.name!r}")


class FinetuneNet(nn.Module):
    """front (frozen unless mode='full') -> tail -> dropout -> linear head over the words."""

    def __init__(self, backbone, config: FinetuneConfig, n_classes: int):
        super().__init__()
        self.front, self.tail, dim = split_backbone(backbone, int(config.train_blocks))
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(dim, n_classes))

    def forward_from_front(self, act):
        return self.head(self.tail(act))

    def forward(self, x):
        return self.forward_from_front(self.front(x))

    def trained_state(self) -> dict:
        return {"tail": self.tail.state_dict(), "head": self.head.state_dict()}


def _train_mode(net: FinetuneNet, full: bool) -> None:
    net.train()
    if not full:
        net.front.eval()
    # Frozen BatchNorm statistics: a few dozen images per batch would make them noisy.
    for mod in net.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            mod.eval()


# --------------------------------------------------------------------------- data

ImageSource = Image.Image | Callable[[], Image.Image]


def _pil(item: ImageSource) -> Image.Image:
    return item() if callable(item) else item


def preprocess_all(backbone, images: Sequence[ImageSource]) -> torch.Tensor:
    """The network's normalised (n, 3, h, w) input for `images`."""
    return network_input(backbone.preprocess, np.stack([backbone.preprocess(_pil(im)) for im in images]))


@torch.inference_mode()
def front_activations(front: nn.Module, backbone, images: Sequence[ImageSource], *, flip: bool = False,
                      batch_size: int = 16, progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """The frozen front's output for every image (and its mirror image when flip), computed once."""
    front.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = preprocess_all(backbone, images[i:i + batch_size])
        if flip:
            x = torch.flip(x, dims=[3])
        out.append(front(x))
        if progress:
            progress(len(x))
    return torch.cat(out) if out else torch.empty(0)


# --------------------------------------------------------------------------- training

@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float | None
    val_acc: float | None
    seconds: float


class FinetuneModel:
    """A fine-tuned network over `classes`; `predict_images` gives class probabilities."""

    def __init__(self, config: FinetuneConfig, classes: list[str], backbone, net: FinetuneNet):
        self.config, self.classes, self.backbone, self.net = config, list(classes), backbone, net

    @torch.inference_mode()
    def predict_tensor(self, x: torch.Tensor, batch_size: int = 16) -> np.ndarray:
        self.net.eval()
        outs = [F.softmax(self.net(x[i:i + batch_size]), dim=1) for i in range(0, len(x), batch_size)]
        return torch.cat(outs).numpy() if outs else np.zeros((0, len(self.classes)), np.float32)

    def predict_images(self, images: Sequence[ImageSource], batch_size: int = 16) -> np.ndarray:
        probs = [self.predict_tensor(preprocess_all(self.backbone, images[i:i + batch_size]))
                 for i in range(0, len(images), batch_size)]
        return np.concatenate(probs) if probs else np.zeros((0, len(self.classes)), np.float32)

    def save(self, path: Path | str) -> None:
        torch.save(self.net.trained_state(), path)

    @classmethod
    def load(cls, path: Path | str, config: FinetuneConfig | dict, classes: list[str],
             backbone=None) -> FinetuneModel:
        """Rebuild from the stored config + artifact: a fresh pretrained backbone with the trained tail and head."""
        cfg = config if isinstance(config, FinetuneConfig) else FinetuneConfig(**config)
        backbone = copy.deepcopy(backbone) if backbone is not None else load_backbone(cfg.backbone, cfg.weights)
        net = FinetuneNet(backbone, cfg, len(classes))
        state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            net.tail.load_state_dict(state["tail"])
            net.head.load_state_dict(state["head"])
        except (KeyError, RuntimeError) as exc:
            raise FinetuneError(f"{path} does not fit a {cfg.backbone} fine-tuned on {len(classes)} words "
                                f"with train_blocks={cfg.train_blocks} ({str(exc)[:200]})") from None
        net.eval()
        return cls(cfg, classes, backbone, net)


def _batches(n: int, size: int, gen: torch.Generator) -> list[torch.Tensor]:
    perm = torch.randperm(n, generator=gen)
    return [perm[i:i + size] for i in range(0, n, size)]


def _check_data(classes, train_images, train_labels, val_images, val_labels) -> None:
    if len(train_images) != len(train_labels) or len(val_images) != len(val_labels):
        raise FinetuneError("each image needs exactly one label")
    unknown = sorted((set(train_labels) | set(val_labels)) - set(classes))
    if unknown:
        raise FinetuneError(f"labels {unknown} are not among the classes")
    if len(train_images) < 2:
        raise FinetuneError(f"need at least 2 training images, got {len(train_images)}")


def _build_net(backbone, config: FinetuneConfig, n_classes: int) -> tuple[object, FinetuneNet]:
    """A private copy of the backbone wrapped as front -> tail -> head, the front frozen unless mode='full'."""
    backbone = copy.deepcopy(backbone)
    net = FinetuneNet(backbone, config, n_classes)
    for p in net.front.parameters():
        p.requires_grad_(config.mode == "full")
    if not any(p.requires_grad for p in net.tail.parameters()) and config.train_blocks:
        raise FinetuneError("internal error: the blocks to train are frozen")
    return backbone, net


@dataclass
class _Inputs:
    """What each epoch trains on: raw pixels (full mode) or the frozen front's cached activations."""
    train: torch.Tensor
    train_flipped: torch.Tensor | None        # cached mode: the mirror images' activations
    val: torch.Tensor | None
    seconds: float


def _inputs(net: FinetuneNet, backbone, config: FinetuneConfig, train_images, val_images, say) -> _Inputs:
    t0 = time.perf_counter()
    if config.mode == "full":
        xtr = preprocess_all(backbone, train_images)
        xva = preprocess_all(backbone, val_images) if len(val_images) else None
        say(f"preprocessed {len(xtr)} train / {len(val_images)} val images in {time.perf_counter() - t0:.1f} s")
        return _Inputs(xtr, None, xva, time.perf_counter() - t0)
    xtr = front_activations(net.front, backbone, train_images)
    flipped = front_activations(net.front, backbone, train_images, flip=True) if config.augment else None
    xva = front_activations(net.front, backbone, val_images) if len(val_images) else None
    say(f"cached frozen activations {tuple(xtr.shape[1:])} for {len(train_images)} train "
        f"(x{2 if config.augment else 1}) / {len(val_images)} val images in {time.perf_counter() - t0:.1f} s")
    return _Inputs(xtr, flipped, xva, time.perf_counter() - t0)


def _optimiser(net: FinetuneNet, config: FinetuneConfig, n_train: int):
    """AdamW with one-cycle schedule; trained blocks (and the front in full mode) at a scaled-down rate."""
    groups = [{"params": list(net.head.parameters()), "lr": config.lr},
              {"params": list(net.tail.parameters()), "lr": config.lr * config.block_lr_scale}]
    if config.mode == "full":
        groups.append({"params": list(net.front.parameters()), "lr": config.lr * config.block_lr_scale})
    opt = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    steps = config.epochs * math.ceil(n_train / config.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in groups], total_steps=steps,
                                                pct_start=0.15)
    return opt, sched


def _augmented(x: torch.Tensor, idx: torch.Tensor, inputs: _Inputs, gen: torch.Generator) -> torch.Tensor:
    """Half the batch (at random) mirrored: flipped pixels, or the flipped copy's cached activations."""
    flip = (torch.rand(len(idx), generator=gen) < 0.5)[:, None, None, None]
    mirrored = torch.flip(x, dims=[3]) if inputs.train_flipped is None else inputs.train_flipped[idx]
    return torch.where(flip, mirrored, x)


def _train_epoch(run, inputs: _Inputs, y: torch.Tensor, opt, sched, config: FinetuneConfig,
                 gen: torch.Generator) -> tuple[float, float]:
    """One pass over the training set in shuffled batches; returns (mean loss, accuracy)."""
    tot_loss, correct = 0.0, 0
    for idx in _batches(len(y), config.batch_size, gen):
        x = inputs.train[idx]
        if config.augment:
            x = _augmented(x, idx, inputs, gen)
        logits = run(x)
        loss = F.cross_entropy(logits, y[idx], label_smoothing=config.label_smoothing)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        tot_loss += float(loss.detach()) * len(idx)
        correct += int((logits.argmax(1) == y[idx]).sum())
    return tot_loss / len(y), correct / len(y)


def _validate(net: FinetuneNet, run, x: torch.Tensor | None, y: torch.Tensor) -> tuple[float | None, float | None]:
    if x is None:
        return None, None
    net.eval()
    with torch.inference_mode():
        logits = torch.cat([run(x[i:i + 64]) for i in range(0, len(x), 64)])
    return float(F.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())


def finetune(backbone, config: FinetuneConfig, classes: list[str],
             train_images: Sequence[ImageSource], train_labels: Sequence[str],
             val_images: Sequence[ImageSource] = (), val_labels: Sequence[str] = (), *,
             on_epoch: Callable[[EpochStats], None] | None = None,
             progress: Callable[[str], None] | None = None) -> tuple[FinetuneModel, list[EpochStats]]:
    """Train and return the model after the last epoch (no val-based selection: val is the test set).

    The backbone is deep-copied, so the caller's one stays the pretrained original.
    """
    _check_data(classes, train_images, train_labels, val_images, val_labels)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    backbone, net = _build_net(backbone, config, len(classes))
    ytr = torch.tensor([classes.index(w) for w in train_labels])
    yva = torch.tensor([classes.index(w) for w in val_labels])
    inputs = _inputs(net, backbone, config, train_images, val_images, progress or (lambda msg: None))
    opt, sched = _optimiser(net, config, len(ytr))
    full = config.mode == "full"
    run = net.forward if full else net.forward_from_front
    curve: list[EpochStats] = []
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        _train_mode(net, full)
        train_loss, train_acc = _train_epoch(run, inputs, ytr, opt, sched, config, gen)
        val_loss, val_acc = _validate(net, run, inputs.val, yva)
        seconds = time.perf_counter() - t0 + (inputs.seconds if epoch == 1 else 0.0)
        curve.append(EpochStats(epoch, train_loss, train_acc, val_loss, val_acc, seconds))
        if on_epoch:
            on_epoch(curve[-1])
    net.eval()
    return FinetuneModel(config, classes, backbone, net), curve
