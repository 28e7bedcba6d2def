"""CNN backbones through ONNX Runtime: export once per weights file, check against torch, cache, run.

Each backbone + weights file is exported once to <data dir>/onnx/<backbone>-<sha16>.onnx
(sha16: the first 16 hex digits of the weights' SHA-256) with a JSON sidecar beside it:
opset, input, normalisation, versions, the file's own SHA-256 and the torch-vs-ONNX check.
A file is used only when its sidecar says the check passed and its hash still matches,
so a truncated, foreign or half-written file is rebuilt, never read. Using a cached
export needs no torch at all; exporting needs it. When export or the check fails, one
line says so and the torch network runs instead.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hashtag_workbench.core.backbones import DEFAULT_BACKBONE, Backbone, WeightsError, backbone_spec
from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.preprocess import Preprocess
from hashtag_workbench.infra.files import TMP_PREFIX, sha256_file, write_atomic
from hashtag_workbench.infra.runtime import DEFAULT_RUNTIME, RUNTIMES
from hashtag_workbench.infra.runtime import threads as configured_threads

ONNX_DIR = "onnx"
OPSET = 17
TOLERANCE = 1e-3                 # max abs difference allowed between torch and ONNX outputs
CHECK_BATCH = 2
CHECK_SEED = 0
SIDECAR_VERSION = 2              # bump when the exported graph changes (2: uint8 pixels in, normalised inside)


class OnnxUnavailable(RuntimeError):
    """The ONNX route cannot be used for this backbone (export, check or runtime failed)."""




def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


# --------------------------------------------------------------------------- running

def make_session(model: Path | bytes, threads: int | None = None):
    """An ONNX Runtime CPU session: intra-op threads = cores (or `threads`), one inter-op thread, which
    sleep when idle instead of spinning; runs reuse their buffers (the memory arena, see load_front)."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    # Spinning workers burn a core waiting for the next op, and the next batch (photos are decoded between
    # runs). Measured on 2 shared cores, 240 photos decoded and run 16 at a time: spinning 4.1-4.2 s CPU,
    # 5.9-20 s wall; sleeping 2.5-2.7 s CPU, 4.4-8.3 s wall (session.run alone: 3.1-3.2 -> 1.9-2.1 s CPU).
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.intra_op_num_threads = threads or configured_threads()
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, so, providers=["CPUExecutionProvider"])


@dataclass
class OnnxBackbone:
    """The same interface as core.backbones.Backbone, run by ONNX Runtime on numpy batches."""
    name: str
    feature_dim: int
    preprocess: Preprocess
    path: Path
    session: object
    runtime: str = "onnx"

    def features_and_logits(self, pixels) -> tuple[np.ndarray, np.ndarray]:
        """(features, logits) for a (n, h, w, 3) uint8 batch of pixels."""
        x = np.ascontiguousarray(pixels, dtype=np.uint8)
        feats, logits = self.session.run(["features", "logits"], {"input": x})
        return feats, logits


# --------------------------------------------------------------------------- export and check

def export_bytes(module, example, output_names: list[str]) -> bytes:
    """`module` (torch, eval mode) as ONNX bytes with a dynamic batch axis, traced on `example`."""
    import torch
    axes = {name: {0: "batch"} for name in ["input", *output_names]}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The legacy exporter (the one that handles these models) is deprecated and chatty.
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.from_numpy(example),), buf, input_names=["input"],
                          output_names=output_names, dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    return buf.getvalue()


def _backbone_module(bb: Backbone):
    import torch

    from hashtag_workbench.core.backbones import network_input

    class FeaturesAndLogits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = bb.model

        def forward(self, pixels):
            return bb.split(self.net, network_input(bb.preprocess, pixels))

    return FeaturesAndLogits()


def check_input(crop: int) -> np.ndarray:
    """The fixed input both runtimes must agree on: seeded uniform noise pixels."""
    return np.random.default_rng(CHECK_SEED).integers(0, 256, (CHECK_BATCH, crop, crop, 3), dtype=np.uint8)


def compare(expected: list[np.ndarray], got: list[np.ndarray], names: list[str]) -> dict:
    """{'ok', 'max_abs_diff': {name: d}, 'tolerance'} for paired outputs."""
    diffs = {n: float(np.abs(np.asarray(e, np.float64) - np.asarray(g, np.float64)).max())
             for n, e, g in zip(names, expected, got)}
    ok = all(np.isfinite(d) and d <= TOLERANCE for d in diffs.values())
    return {"ok": bool(ok), "max_abs_diff": diffs, "tolerance": TOLERANCE,
            "input": f"uniform noise pixels {CHECK_BATCH}xHxWx3, seed {CHECK_SEED}"}


@dataclass
class Graph:
    """What one cached export holds: a torch module from uint8 pixels to named outputs, the torch
    reference it must agree with, and how the sidecar describes its outputs."""
    name: str                                         # cache file stem (before the weights' hash)
    module: object                                    # torch module: (n, crop, crop, 3) uint8 -> outputs
    outputs: dict                                     # output name -> size (described in the sidecar)
    reference: Callable[[np.ndarray], list]           # the same outputs computed by torch
    preprocess: Preprocess


def backbone_graph(bb: Backbone) -> Graph:
    return Graph(bb.name, _backbone_module(bb), {"features": bb.feature_dim, "logits": 1000},
                 lambda x: list(bb.features_and_logits(x)), bb.preprocess)


def export_and_check(graph: Graph, threads: int | None = None) -> tuple[bytes, dict]:
    """(ONNX bytes, check result) for a graph; raises OnnxUnavailable when export fails."""
    names = list(graph.outputs)
    try:
        x = check_input(graph.preprocess.crop)
        data = export_bytes(graph.module, x[:1], names)
        got = make_session(data, threads).run(names, {"input": x})
    except Exception as exc:
        raise OnnxUnavailable(f"export failed ({type(exc).__name__}: {str(exc)[:200]})") from None
    return data, compare(graph.reference(x), got, names)


# --------------------------------------------------------------------------- the cache

def cache_dir(home: Path) -> Path:
    """<data dir>/onnx, or $HASHTAG_ONNX_CACHE (one cache shared by several data dirs, e.g. in tests)."""
    return Path(os.environ.get("HASHTAG_ONNX_CACHE") or Path(home) / ONNX_DIR)


def cache_paths(home: Path, name: str, weights_sha: str) -> tuple[Path, Path]:
    """(the .onnx file, its JSON sidecar) for a backbone and its weights' SHA-256."""
    stem = cache_dir(home) / f"{name}-{weights_sha[:16]}"
    return stem.with_suffix(".onnx"), stem.with_suffix(".json")


def read_sidecar(sidecar: Path, weights_sha: str) -> dict | None:
    """The sidecar for these weights, or None when missing, unreadable or about other weights."""
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("weights_sha256") != weights_sha:
        return None
    if meta.get("version") != SIDECAR_VERSION:
        return None                # made by code that exported a different graph: rebuild
    return meta


def cached_export(home: Path, name: str, weights_sha: str) -> tuple[Path | None, dict | None]:
    """(usable .onnx path or None, sidecar or None). The file counts only if its hash matches the sidecar."""
    onnx_path, sidecar = cache_paths(home, name, weights_sha)
    meta = read_sidecar(sidecar, weights_sha)
    if meta is None or not meta.get("check", {}).get("ok"):
        return None, meta
    if not onnx_path.is_file() or sha256_file(onnx_path) != meta.get("onnx_sha256"):
        return None, None          # truncated, replaced or missing: rebuild
    return onnx_path, meta


def _versions() -> dict:
    from importlib.metadata import version
    return {"torch": version("torch"), "onnxruntime": version("onnxruntime")}


def build_export(home: Path, graph: Graph, weights: Path, weights_sha: str, threads: int | None = None) -> dict:
    """Export, check and store `graph`; returns the sidecar. Raises OnnxUnavailable if it cannot be used."""
    onnx_path, sidecar = cache_paths(home, graph.name, weights_sha)
    t0 = time.perf_counter()
    data, check = export_and_check(graph, threads)
    crop = graph.preprocess.crop
    meta = {"version": SIDECAR_VERSION, "backbone": graph.name, "weights": str(weights),
            "weights_sha256": weights_sha, "onnx_file": onnx_path.name, "onnx_sha256": hashlib.sha256(data).hexdigest(),
            "opset": OPSET, "input": {"name": "input", "shape": ["batch", crop, crop, 3],
                                      "dtype": "uint8", "normalised": "inside the graph"},
            "outputs": graph.outputs, "preprocess": graph.preprocess.to_dict(),
            **_versions(), "check": check, "export_seconds": round(time.perf_counter() - t0, 2),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if check["ok"]:
        write_atomic(onnx_path, data)      # the file first: a sidecar never names a file not fully there
    write_atomic(sidecar, json.dumps(meta, indent=1).encode())
    if not check["ok"]:
        raise OnnxUnavailable(_check_failure(check))
    return meta


def _check_failure(check: dict) -> str:
    worst = ", ".join(f"{k} {v:.1e}" for k, v in check["max_abs_diff"].items())
    return f"ONNX differs from torch on the check input (max abs diff {worst} > {check['tolerance']})"


def load_onnx(home: Path, name: str = DEFAULT_BACKBONE, weights: Path | str | None = None, *,
              threads: int | None = None, say: Callable[[str], None] = _stderr) -> OnnxBackbone | Backbone:
    """The backbone through ONNX Runtime (exported and checked first if needed), or its torch network
    when the ONNX route fails (said in one line). Weights that do not fit raise WeightsError as before."""
    spec = backbone_spec(name)
    path = spec.find_weights(Path(weights) if weights else None)
    sha = sha256_file(path)
    try:
        onnx_path = _ready_export(home, spec, path, sha, threads)
        return OnnxBackbone(name, spec.feature_dim, spec.preprocess, onnx_path, make_session(onnx_path, threads))
    except WeightsError:
        raise
    except (OnnxUnavailable, ImportError) as exc:
        why = str(exc)
    except Exception as exc:  # e.g. a session that will not load: torch still gives the right answer
        why = f"{type(exc).__name__}: {str(exc)[:200]}"
    say(f"note: ONNX Runtime not used for {name}: {why}; running it in torch")
    return spec.build(path)


def _ready_export(home: Path, spec, weights: Path, sha: str, threads: int | None,
                  graph: Callable[[], Graph] | None = None, name: str | None = None) -> Path:
    """The checked .onnx for these weights, exported now if missing or damaged (by default the whole
    backbone; `graph` builds another one, named `name`, only when it must be exported)."""
    name = name or spec.name
    onnx_path, meta = cached_export(home, name, sha)
    if onnx_path is not None:
        return onnx_path
    if meta is not None and all(meta.get(k) == v for k, v in _versions().items()):
        raise OnnxUnavailable(_check_failure(meta["check"]) + " when it was exported; delete "
                              f"{cache_paths(home, name, sha)[1]} to try again")
    return _export_locked(home, name, graph or (lambda: backbone_graph(spec.build(weights))), weights, sha, threads)


def _export_locked(home: Path, name: str, graph: Callable[[], Graph], weights: Path, sha: str,
                   threads: int | None) -> Path:
    """Export under a file lock, so two processes starting at once do the work once."""
    from filelock import FileLock
    onnx_path, sidecar = cache_paths(home, name, sha)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(onnx_path.with_suffix(".lock"))):
        ready, _ = cached_export(home, name, sha)
        if ready is None:
            # Temp files of an export that was killed: nobody else writes them while we hold the lock.
            for stale in onnx_path.parent.glob(f"{TMP_PREFIX}*-{onnx_path.stem}.*"):
                stale.unlink(missing_ok=True)
            build_export(home, graph(), weights, sha, threads)
    return onnx_path


# --------------------------------------------------------------------------- a network's frozen front

def _front_module(front, prep: Preprocess):
    import torch

    from hashtag_workbench.core.backbones import network_input

    class Front(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.front = front

        def forward(self, pixels):
            return self.front(network_input(prep, pixels))

    return Front()


def front_graph(name: str, front, prep: Preprocess) -> Graph:
    """The frozen front of a fine-tune (torch module on the normalised input) as a graph on uint8 pixels."""
    import torch
    module = _front_module(front, prep).eval()

    def reference(x):
        with torch.inference_mode():
            return [module(torch.from_numpy(x)).numpy()]
    return Graph(name, module, {"activations": "the front's output (n, c, h, w)"}, reference, prep)


def load_front(home: Path, name: str, weights: Path | str | None, stop: int, front, *,
               threads: int | None = None, say: Callable[[str], None] = _stderr) -> Callable | None:
    """uint8 pixels -> the frozen front's activations through ONNX Runtime (the front is the backbone's
    layers before block `stop`, with its pretrained weights: exported once per weights file, checked
    against torch and cached like the backbones), or None (said in one line) when that route fails.

    Its session keeps ONNX Runtime's memory arena, as every session here does: the front's early maps
    (112x112) are large, and without the arena each run's fresh pages cost system time. Measured on 2
    shared cores, 160 photos 16 a run (EfficientNet-Lite0, cut at block 13): 8.4-9.4 ms CPU a photo
    against 14.7-16.4 ms without (4.1-4.4 ms of it system time), and ~150 MB more resident after them.
    Dropping the function frees the session, but the process keeps most of those pages (its heap;
    malloc_trim returned ~20 MB): they are reused by what the process allocates next."""
    spec = backbone_spec(name)
    path = spec.find_weights(Path(weights) if weights else None)
    graph_name = f"{name}_front{stop}"   # no dot: cache_paths puts a suffix after it
    try:
        onnx_path = _ready_export(home, spec, path, sha256_file(path), threads,
                                  graph=lambda: front_graph(graph_name, front, spec.preprocess), name=graph_name)
        session = make_session(onnx_path, threads)
    except (OnnxUnavailable, ImportError) as exc:
        say(f"note: ONNX Runtime not used for the frozen front of {name}: {exc}; running it in torch")
        return None
    except Exception as exc:  # e.g. a session that will not load: torch still gives the right answer
        say(f"note: ONNX Runtime not used for the frozen front of {name}: {type(exc).__name__}: "
            f"{str(exc)[:200]}; running it in torch")
        return None
    return lambda pixels: session.run(["activations"], {"input": np.ascontiguousarray(pixels, np.uint8)})[0]


# --------------------------------------------------------------------------- choosing a runtime

def load_for_runtime(home: Path, name: str = DEFAULT_BACKBONE, weights: Path | str | None = None, *,
                     runtime: str = DEFAULT_RUNTIME, threads: int | None = None,
                     say: Callable[[str], None] = _stderr) -> OnnxBackbone | Backbone:
    """A backbone in the chosen runtime ('onnx' falls back to torch, saying why)."""
    if runtime not in RUNTIMES:
        raise InputError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if runtime == "onnx":
        return load_onnx(home, name, weights, threads=threads, say=say)
    set_torch_threads(threads)
    return backbone_spec(name).build(backbone_spec(name).find_weights(Path(weights) if weights else None))


def set_torch_threads(threads: int | None = None) -> None:
    import torch
    torch.set_num_threads(threads or configured_threads())


_installed: tuple | None = None


def use_runtime(home: Path | str, runtime: str = DEFAULT_RUNTIME, threads: int | None = None) -> None:
    """Route core.backbones.get_backbone (predict, evaluate, train, the Predict page) through `runtime`.

    Calling it again with the same settings keeps the backbones already loaded.
    """
    global _installed
    from hashtag_workbench.core import backbones
    if runtime not in RUNTIMES:
        raise InputError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if _installed == (str(home), runtime, threads):
        return
    backbones.use_backbone_loader(
        lambda name, weights: load_for_runtime(Path(home), name, weights, runtime=runtime, threads=threads))
    _installed = (str(home), runtime, threads)
