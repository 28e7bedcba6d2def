"""Helpers shared by job modules."""
from __future__ import annotations

from pathlib import Path

from hashtag_workbench.core.vocabulary import load_vocabulary
from hashtag_workbench.warehouse.words import seed_vocabulary


def ensure_ready(home: Path) -> None:
    """A usable warehouse: migrated (on connect) and holding the shipped vocabulary."""
    seed_vocabulary(home, load_vocabulary())


def split_list(value: str | None) -> list[str] | None:
    """'a,b, c' -> ['a', 'b', 'c']; None or '' -> None."""
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def add_runtime_arg(parser) -> None:
    """The one runtime switch of every command that runs a CNN backbone."""
    from hashtag_workbench.infra.onnxrt import DEFAULT_RUNTIME, RUNTIMES
    parser.add_argument("--runtime", choices=RUNTIMES, default=DEFAULT_RUNTIME,
                        help=f"where the CNN runs (default {DEFAULT_RUNTIME}: ONNX Runtime, exported and checked "
                             "against torch once per weights file; falls back to torch, saying why)")
