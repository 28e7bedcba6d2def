"""Process-wide compute settings, set once by the CLI before any job module imports torch."""
from __future__ import annotations

import os

RUNTIMES = ("onnx", "torch")   # where a CNN runs (infra/onnxrt.py); named here so the CLI imports no numpy
DEFAULT_RUNTIME = "onnx"
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_threads: int | None = None
_requested: int | None = None   # what the user asked for with the global --threads (None: not asked)


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def configure_threads(threads: int | None = None) -> int:
    """Use `threads` (default: the cores available) for torch, BLAS and ONNX Runtime; returns it.

    Set through the environment so that torch picks it up when a job first imports it, and
    applied directly as well if torch is already loaded.
    """
    global _threads, _requested
    _requested = max(1, int(threads)) if threads else None
    _threads = _requested or available_cores()
    for var in _THREAD_VARS:
        os.environ[var] = str(_threads)
    import sys
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(_threads)
    return _threads


def threads() -> int:
    """The thread count the CLI configured (the cores available when none was)."""
    return _threads or available_cores()


def requested_threads() -> int | None:
    """The thread count the user asked for (None when not asked: a job may then choose, e.g. the Ray
    engine's thread budget, which splits the cluster's cores between its workers)."""
    return _requested
