"""Fine-tune an ImageNet CNN on the words, fast on CPU.

Fine-tuning here trains the backbone's last `train_blocks` blocks plus a new linear
head; everything before them stays frozen (and BatchNorm statistics stay fixed, which
small datasets need). Since the frozen part's output never changes, "cached" mode runs
it once per image and trains on the stored activations: each epoch then costs only the
last blocks. Its augmentation mirrors the cached activation maps (flipped along their
width), not the photo: the mirror image's own front pass is not run. "full"
mode is the naive reference that trains every layer from the raw image each epoch;
benchmarks/finetune.py measures the two side by side.

At scale (15k photos) the cache no longer fits in memory comfortably and the frozen front
is the slow part, so the caller may pass `front` (uint8 pixels -> activations, e.g. the
front exported to ONNX Runtime) and `store` (where cached activations live, e.g. .npy
files on disk read a batch at a time); both default to torch and memory. Training stops
early when the held-out stop set's loss has not improved for `patience` epochs (large
training sets only): `epochs` is the maximum, and the epochs actually run are recorded.
"""
from __future__ import annotations

import contextlib
import copy
import math
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from hashtag_workbench.core.backbones import DEFAULT_BACKBONE, get_backbone, network_input
from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.features import iter_batches
from hashtag_workbench.core.kinds import KindModel, no_bar, pretty_backbone
from hashtag_workbench.core.model_defaults import EPOCHS, TRAIN_BLOCKS

SUPPORTED = ("efficientnet_lite0", "resnet18")
EPOCH_THREADS = 1   # torch threads for the trained blocks on front activations (see _epochs, _from_front)
FRONT_BATCH = 16    # photos per call of the frozen front while caching
DECODE_WORKERS = 1  # threads decoding photos while the frozen front runs (caching)


class FinetuneError(InputError):
    """Fine-tuning cannot run with the given backbone, data or settings."""


@dataclass
class FinetuneConfig:
    backbone: str = DEFAULT_BACKBONE
    weights: str | None = None        # backbone weights file (needed for resnet18; efficientnet is bundled)
    epochs: int = EPOCHS
    train_blocks: int = TRAIN_BLOCKS  # trailing blocks trained (efficientnet-lite0 has 16, resnet18 8)
    mode: str = "cached"              # cached | full (naive: every layer, from raw images, each epoch)
    lr: float = 1e-3                  # head learning rate; trained blocks get lr * block_lr_scale
    block_lr_scale: float = 0.3
    weight_decay: float = 1e-4
    batch_size: int = 32
    label_smoothing: float = 0.1
    dropout: float = 0.2
    augment: bool = True              # horizontal flips
    seed: int = 0
    patience: int = 1                 # early stop: epochs without a better stop-set loss (0: never stop early)
    stop_fraction: float = 0.1        # of the train part held out to decide when to stop ...
    stop_min_train: int = 2000        # ... only when the train part has at least this many images
    stop_min_delta: float = 0.01      # a plateau: the stop-set loss fell by less than this fraction

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
        if int(self.patience) < 0 or not 0 <= float(self.stop_fraction) < 0.5:
            raise FinetuneError(f"patience must be 0 or more and stop_fraction in [0, 0.5), got "
                                f"{self.patience} and {self.stop_fraction}")

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
Front = Callable[[np.ndarray], np.ndarray]     # (n, crop, crop, 3) uint8 pixels -> (n, c, h, w) activations
Bar = Callable[..., Iterable]                   # (iterable, total=, desc=, unit=) -> the same items, counted


def _pil(item: ImageSource) -> Image.Image:
    return item() if callable(item) else item


def preprocess_all(backbone, images: Sequence[ImageSource]) -> torch.Tensor:
    """The network's normalised (n, 3, h, w) input for `images`."""
    return network_input(backbone.preprocess, np.stack([backbone.preprocess(_pil(im)) for im in images]))


class MemoryRows:
    """Cached activations held in memory: `take(idx)` returns those rows."""

    def __init__(self, array: np.ndarray):
        self.array = array
        self.shape = array.shape

    def __len__(self) -> int:
        return len(self.array)

    def take(self, idx) -> np.ndarray:
        return self.array[np.asarray(idx)]


class MemoryStore:
    """Where cached activations live by default: in memory (callers at scale pass an on-disk store, which
    may already hold some rows from a killed run: `missing` names the rows still to compute)."""

    def missing(self, name: str, n: int) -> np.ndarray:
        return np.arange(n)

    def write(self, name: str, n: int, chunks: Iterable[np.ndarray]) -> MemoryRows:
        parts = list(chunks)
        return MemoryRows(np.concatenate(parts) if parts else np.zeros((0,), np.float32))


class _Picked(Sequence):
    """The items `idx` of a sequence, read (and so decoded, for lazy photos) only when asked for."""

    def __init__(self, items: Sequence, idx: np.ndarray):
        self.items, self.idx = items, idx

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, i):
        return self.items[int(self.idx[i])]


def torch_front(front: nn.Module, backbone) -> Front:
    """The frozen front run by torch on uint8 pixels."""
    def run(pixels: np.ndarray) -> np.ndarray:
        front.eval()
        with torch.inference_mode():
            return front(network_input(backbone.preprocess, pixels)).numpy()
    return run


def _pixel_batches(backbone, images: Sequence[ImageSource], batch_size: int, bar: Bar, desc: str,
                   workers: int = 1):
    """(n, crop, crop, 3) uint8 batches of the photos (each counted by the bar), decoded in `workers` threads
    a batch or two ahead of the caller, so the network is not kept waiting for its input."""
    counted = iter(bar(range(len(images)), total=len(images), desc=desc, unit="img"))
    for b in iter_batches(images, backbone.preprocess, batch_size=batch_size, workers=workers, load=_pil):
        if b.failures:   # the callers' rows must stay aligned with the photos: an unreadable one is an error
            raise FinetuneError(f"photo {b.failures[0][0]} of {len(images)} could not be read: {b.failures[0][1]}")
        for _ in b.indices:
            next(counted, None)
        yield b.array


def cached_front(front: Front, backbone, images: Sequence[ImageSource], *, batch_size: int | None = None,
                 bar: Bar = no_bar, desc: str = "caching") -> Iterable[np.ndarray]:
    """Chunks of the frozen front's output, (b, c, h, w) float32, one row per photo."""
    # Decoding in a thread beside the front (which runs on every core): measured at ~15k photos on 2 cores,
    # the serial loop spent about half its wall time decoding with the front idle.
    for x in _pixel_batches(backbone, images, batch_size or FRONT_BATCH, bar, desc, workers=DECODE_WORKERS):
        yield np.ascontiguousarray(front(x), dtype=np.float32)


# --------------------------------------------------------------------------- training

@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float | None
    val_acc: float | None
    seconds: float
    stop_loss: float | None = None    # loss on the held-out stop set (early stopping), if any


class FinetuneModel(KindModel):
    """A fine-tuned network over `classes`; `predict_images` gives class probabilities."""

    def __init__(self, config: FinetuneConfig, classes: Sequence[str] = (), backbone=None,
                 net: FinetuneNet | None = None):
        self.config, self.classes, self.backbone, self.net = config, list(classes), backbone, net
        self.front: Front | None = None   # set to run the frozen front elsewhere (e.g. ONNX Runtime)
        self.epochs_run = self.epoch_kept = int(config.epochs)

    def fit(self, data) -> FinetuneModel:
        """On the train part (val scored each epoch, never used to choose); the job's ONNX front and on-disk
        activation cache when it hands them over, else torch and memory."""
        cfg = self.config

        def on_epoch(s):
            val = f", val loss {s.val_loss:.3f} acc {s.val_acc:.1%}" if s.val_acc is not None else ""
            stop = f", stop-set loss {s.stop_loss:.3f}" if s.stop_loss is not None else ""
            data.log(f"epoch {s.epoch}/{cfg.epochs}: train loss {s.train_loss:.3f} acc {s.train_acc:.1%}{val}"
                     f"{stop} ({s.seconds:.1f} s)")
        store = data.activation_store() if hasattr(data, "activation_store") else None
        try:   # the front goes straight to finetune, which drops it once the cache is made
            trained, curve = finetune(data.backbone(cfg.backbone, cfg.weights), cfg, data.classes,
                                      data.train_images(), data.train_words, data.val_images(), data.val_words,
                                      on_epoch=on_epoch, progress=data.log, store=store,
                                      front=data.frozen_front(cfg) if hasattr(data, "frozen_front") else None,
                                      bar=getattr(data, "progress", None) or no_bar)
        finally:
            if store is not None:
                store.clear()
        vars(self).update(vars(trained))   # sklearn's shape: the trained network becomes this model's
        run = {"epochs_run": len(curve), "epoch_kept": self.epoch_kept}   # epochs = the maximum
        self.counts, self.notes = {"epochs": cfg.epochs, **run}, run
        if curve and curve[self.epoch_kept - 1].val_acc is not None:
            self.counts["final_val_acc"] = round(curve[self.epoch_kept - 1].val_acc, 4)
        self.name, self.curve = f"Fine-tuned {pretty_backbone(cfg.backbone)}", [vars(s) for s in curve]
        return self

    def predict_proba(self, batch) -> np.ndarray:
        return self.predict_images(batch.images())

    @torch.inference_mode()
    def predict_tensor(self, x: torch.Tensor, batch_size: int = 16) -> np.ndarray:
        self.net.eval()
        outs = [F.softmax(self.net(x[i:i + batch_size]), dim=1) for i in range(0, len(x), batch_size)]
        return torch.cat(outs).numpy() if outs else np.zeros((0, len(self.classes)), np.float32)

    def predict_images(self, images: Sequence[ImageSource], batch_size: int = 16) -> np.ndarray:
        """Probabilities per photo; photos are decoded a batch at a time, so `images` may be lazy."""
        if self.front is None:
            probs = [self.predict_tensor(preprocess_all(self.backbone, images[i:i + batch_size]))
                     for i in range(0, len(images), batch_size)]
        else:
            probs = [self._from_front(x) for x in _pixel_batches(self.backbone, images, batch_size, no_bar, "")]
        return np.concatenate(probs) if probs else np.zeros((0, len(self.classes)), np.float32)

    @torch.inference_mode()
    def _from_front(self, pixels: np.ndarray) -> np.ndarray:
        self.net.eval()
        act = torch.from_numpy(np.asarray(self.front(pixels), dtype=np.float32))
        # One torch thread for the trained blocks (7x7 maps), as in training: measured on 2 shared cores with
        # the front in ONNX Runtime, 14 ms CPU (23-33 ms wall) per photo against 26-38 ms (41-55 ms) with two.
        with _torch_threads(EPOCH_THREADS):
            return F.softmax(self.net.forward_from_front(act), dim=1).numpy()

    def save(self, path: Path | str) -> None:
        torch.save(self.net.trained_state(), path)

    @classmethod
    def load(cls, path: Path | str, config: FinetuneConfig | dict, classes: list[str]) -> FinetuneModel:
        """Rebuild from the stored config + artifact: a copy of the pretrained backbone (the torch network this
        process shares) with the trained tail and head."""
        cfg = config if isinstance(config, FinetuneConfig) else FinetuneConfig(
            **{k: v for k, v in config.items() if k in FinetuneConfig.__dataclass_fields__})
        backbone = copy.deepcopy(get_backbone(cfg.backbone, cfg.weights, "torch"))
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


def _batches(idx: np.ndarray, size: int, gen: torch.Generator) -> list[np.ndarray]:
    """`idx` shuffled into batches, each sorted (rows read from disk in file order; BatchNorm is frozen,
    so the order inside a batch changes nothing)."""
    perm = idx[torch.randperm(len(idx), generator=gen).numpy()]
    return [np.sort(perm[i:i + size]) for i in range(0, len(perm), size)]


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
    """What each epoch trains on, a row per photo: the frozen front's cached activations or (full mode) the
    normalised pixels."""
    train: MemoryRows
    val: MemoryRows | None
    seconds: float


def _inputs(net: FinetuneNet, backbone, config: FinetuneConfig, train_images, val_images, say, *,
            front: Front | None, store, bar: Bar) -> _Inputs:
    t0 = time.perf_counter()
    if config.mode == "full":
        xtr = preprocess_all(backbone, train_images).numpy()
        xva = preprocess_all(backbone, val_images).numpy() if len(val_images) else None
        say(f"preprocessed {len(xtr)} train / {len(val_images)} val images in {time.perf_counter() - t0:.1f} s")
        return _Inputs(MemoryRows(xtr), MemoryRows(xva) if xva is not None else None, time.perf_counter() - t0)
    run = front or torch_front(net.front, backbone)
    name = _cache_name(net, backbone, config)
    xtr = _cache_part(store, "train", name, train_images, run, backbone, bar, say)
    xva = _cache_part(store, "val", name, val_images, run, backbone, bar, say) if len(val_images) else None
    say(f"cached frozen activations {tuple(xtr.shape[1:])} for {len(train_images)} train / {len(val_images)} val "
        f"images in {time.perf_counter() - t0:.1f} s")
    return _Inputs(xtr, xva, time.perf_counter() - t0)


def _cache_name(net: FinetuneNet, backbone, config: FinetuneConfig) -> str:
    """What a cached part holds, in its name: the backbone (and weights file), where it is cut, and the row
    layout (one (c, h, w) map per photo; older versions cached (2 or 1, c, h, w) rows under names without
    '-nchw'); a killed run's chunks are reused only under the same name."""
    weights = f"-w{zlib.crc32(str(config.weights).encode()):08x}" if config.weights else ""
    return f"{backbone.name}{weights}-front{len(net.front.blocks)}-nchw"


def _cache_part(store, part: str, name: str, images, run: Front, backbone, bar: Bar, say):
    """The cached front activations of one part: the rows a killed run left in `store` are kept, the rest
    computed (a fresh store: all of them)."""
    todo = store.missing(f"{part}-{name}", len(images))
    if len(todo) < len(images):
        say(f"resuming the activation cache: {len(images) - len(todo)} of {len(images)} {part} photos "
            "already cached by an interrupted run")
    picked = images if len(todo) == len(images) else _Picked(images, todo)
    return store.write(f"{part}-{name}", len(images), cached_front(run, backbone, picked, bar=bar,
                                                                   desc=f"caching frozen front ({part})"))


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


def _batch(rows: MemoryRows, idx: np.ndarray, config: FinetuneConfig, gen: torch.Generator) -> torch.Tensor:
    """The batch's inputs; with augmentation, half of them (at random) flipped along their width: the cached
    activation maps, or (full mode) the pixels."""
    x = torch.from_numpy(np.ascontiguousarray(rows.take(idx)))
    if not config.augment:
        return x
    flip = torch.rand(len(idx), generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], torch.flip(x, dims=[3]), x)


def _train_epoch(run, inputs: _Inputs, idx: np.ndarray, y: torch.Tensor, opt, sched, config: FinetuneConfig,
                 gen: torch.Generator, steps) -> tuple[float, float]:
    """One pass over the photos `idx` of the training set in shuffled batches; returns (mean loss, accuracy)."""
    tot_loss, correct = 0.0, 0
    for b in _batches(idx, config.batch_size, gen):
        next(steps, None)  # the progress bar over every step (and a crash point for the fault tests)
        logits = run(_batch(inputs.train, b, config, gen))
        yb = y[torch.from_numpy(b)]
        loss = F.cross_entropy(logits, yb, label_smoothing=config.label_smoothing)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        tot_loss += float(loss.detach()) * len(b)
        correct += int((logits.argmax(1) == yb).sum())
    return tot_loss / len(idx), correct / len(idx)


def _validate(net: FinetuneNet, run, rows: MemoryRows | None, idx: np.ndarray | None,
              y: torch.Tensor) -> tuple[float | None, float | None]:
    """(loss, accuracy) on the rows `idx` (default: all) of `rows`, unflipped, in chunks."""
    if rows is None:
        return None, None
    idx = np.arange(len(rows)) if idx is None else idx
    if not len(idx):
        return None, None
    net.eval()
    with torch.inference_mode():
        logits = torch.cat([run(torch.from_numpy(np.ascontiguousarray(rows.take(idx[i:i + 256]))))
                            for i in range(0, len(idx), 256)])
    yy = y[torch.from_numpy(idx)]
    return float(F.cross_entropy(logits, yy)), float((logits.argmax(1) == yy).float().mean())


def stop_split(labels: Sequence[str], config: FinetuneConfig) -> tuple[np.ndarray, np.ndarray]:
    """(photos trained on, photos held out to decide when to stop): a seeded draw of `stop_fraction` of
    each word's train photos when early stopping applies, else (all, none)."""
    n = len(labels)
    if not config.patience or not config.stop_fraction or n < config.stop_min_train:
        return np.arange(n), np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(config.seed)
    held = []
    for word in sorted(set(labels)):
        mine = np.flatnonzero(np.asarray(labels) == word)
        k = int(len(mine) * config.stop_fraction)
        if k and len(mine) - k >= 1:
            held.extend(rng.choice(mine, k, replace=False).tolist())
    held = np.sort(np.asarray(held, dtype=np.int64))
    return np.setdiff1d(np.arange(n), held), held


class _Stopper:
    """Early stopping on the stop set's loss: stop after `patience` epochs that lower it by less than
    `min_delta` (relative) of the last real improvement; the weights of the lowest-loss epoch are kept."""

    def __init__(self, net: FinetuneNet, patience: int, min_delta: float = 0.0):
        self.net, self.patience, self.min_delta = net, patience, min_delta
        self.best, self.ref, self.best_epoch, self.state, self.bad = math.inf, math.inf, 0, None, 0

    def should_stop(self, epoch: int, loss: float | None) -> bool:
        if loss is None or not self.patience:
            return False
        if loss < self.best:
            self.best, self.best_epoch = loss, epoch
            self.state = copy.deepcopy(self.net.trained_state())
        if loss < self.ref * (1.0 - self.min_delta):
            self.ref, self.bad = loss, 0
            return False
        self.bad += 1
        return self.bad >= self.patience

    def restore(self) -> None:
        if self.state is not None:
            self.net.tail.load_state_dict(self.state["tail"])
            self.net.head.load_state_dict(self.state["head"])


def finetune(backbone, config: FinetuneConfig, classes: list[str],
             train_images: Sequence[ImageSource], train_labels: Sequence[str],
             val_images: Sequence[ImageSource] = (), val_labels: Sequence[str] = (), *,
             on_epoch: Callable[[EpochStats], None] | None = None,
             progress: Callable[[str], None] | None = None, front: Front | None = None,
             store=None, bar: Bar = no_bar) -> tuple[FinetuneModel, list[EpochStats]]:
    """Train and return the model (val is the test set: never used to choose anything).

    `front` runs the frozen front on uint8 pixels (default: torch), `store` keeps the cached activations
    (default: memory), `bar` counts photos cached and training steps. With early stopping (large train
    sets) the weights of the epoch with the best stop-set loss are kept; len(curve) = epochs run.
    The backbone is deep-copied, so the caller's one stays the pretrained original.
    """
    _check_data(classes, train_images, train_labels, val_images, val_labels)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    say = progress or (lambda msg: None)
    backbone, net = _build_net(backbone, config, len(classes))
    ytr = torch.tensor([classes.index(w) for w in train_labels])
    yva = torch.tensor([classes.index(w) for w in val_labels])
    fit_idx, stop_idx = stop_split(train_labels, config)
    if len(stop_idx):
        say(f"early stopping: {len(stop_idx)} train photos held out to decide when to stop "
            f"(patience {config.patience}, at most {config.epochs} epochs)")
    inputs = _inputs(net, backbone, config, train_images, val_images, say, front=front,
                     store=store or MemoryStore(), bar=bar)
    front = None   # no longer needed: an ONNX session (and its memory arena) is freed here, not after the epochs
    curve, kept = _epochs(net, config, inputs, fit_idx, stop_idx, ytr, yva, gen, on_epoch, bar)
    net.eval()
    model = FinetuneModel(config, classes, backbone, net)
    model.epochs_run, model.epoch_kept = len(curve), kept
    return model, curve


@contextlib.contextmanager
def _torch_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _channels_last(net: FinetuneNet):
    """The trained blocks' weights in channels-last layout while training on cached activations: measured
    on 2 shared cores (EfficientNet-Lite0, 3 blocks, batch 32, 1 thread), a step took 7.0-7.7 ms CPU per
    photo against 8.4-9.3 ms in the default layout. Back to the default layout afterwards."""
    net.tail.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        net.tail.to(memory_format=torch.contiguous_format)


def _channels_last_input(run):
    return lambda x: run(x.contiguous(memory_format=torch.channels_last))


def _epochs(net, config, inputs, fit_idx, stop_idx, ytr, yva, gen, on_epoch, bar) -> tuple[list[EpochStats], int]:
    """Train up to config.epochs epochs; returns the curve and the epoch whose weights the net holds."""
    threads = torch.get_num_threads()   # the process's: the val and stop-set scoring's (see below)
    if config.mode == "cached":
        # The trained blocks work on 7x7 maps: a step is too small to split across threads. Measured on
        # 2 cores (EfficientNet-Lite0, 3 blocks, batch 32): 1 thread 11-14 ms and 7-8 ms CPU per photo;
        # 2 threads 12-85 ms and 14-54 ms CPU (idle to busy machine). So one thread. Scoring the val and stop
        # sets 256 maps at a time does split: measured on 2 quiet cores, 5.4 ms a photo with one thread,
        # 3.1 ms wall (6.0 ms CPU) with two; so those passes get the threads the process had.
        with _torch_threads(EPOCH_THREADS), _channels_last(net):
            return _run_epochs(net, config, inputs, fit_idx, stop_idx, ytr, yva, gen, on_epoch, bar, threads)
    return _run_epochs(net, config, inputs, fit_idx, stop_idx, ytr, yva, gen, on_epoch, bar, threads)


def _run_epochs(net, config, inputs, fit_idx, stop_idx, ytr, yva, gen, on_epoch, bar,
                val_threads: int) -> tuple[list[EpochStats], int]:
    opt, sched = _optimiser(net, config, len(fit_idx))
    full = config.mode == "full"
    run = net.forward if full else _channels_last_input(net.forward_from_front)
    per_epoch = math.ceil(len(fit_idx) / config.batch_size)
    steps = iter(bar(range(config.epochs * per_epoch), total=config.epochs * per_epoch,
                     desc=f"fine-tune, {config.epochs} epochs at most", unit="step"))
    stopper, curve = _Stopper(net, config.patience, config.stop_min_delta), []
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        _train_mode(net, full)
        train_loss, train_acc = _train_epoch(run, inputs, fit_idx, ytr, opt, sched, config, gen, steps)
        with _torch_threads(val_threads):
            val_loss, val_acc = _validate(net, run, inputs.val, None, yva)
            stop_loss, _ = _validate(net, run, inputs.train, stop_idx, ytr)
        seconds = time.perf_counter() - t0 + (inputs.seconds if epoch == 1 else 0.0)
        curve.append(EpochStats(epoch, train_loss, train_acc, val_loss, val_acc, seconds, stop_loss))
        if on_epoch:
            on_epoch(curve[-1])
        if stopper.should_stop(epoch, stop_loss):
            stopper.restore()   # the best epoch's weights (its row in the curve says how it did)
            break
    if hasattr(steps, "close"):
        steps.close()
    stopped = len(curve) < config.epochs or stopper.bad >= max(stopper.patience, 1)
    return curve, (stopper.best_epoch if stopped and stopper.state is not None else len(curve))
