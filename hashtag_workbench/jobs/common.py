"""Helpers shared by job modules."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hashtag_workbench.core.config import option
from hashtag_workbench.core.vocabulary import load_vocabulary
from hashtag_workbench.infra.runtime import DEFAULT_RUNTIME, RUNTIMES
from hashtag_workbench.warehouse.words import seed_vocabulary


def ensure_ready(home: Path) -> None:
    """A usable warehouse: migrated (on connect) and holding the shipped vocabulary."""
    seed_vocabulary(home, load_vocabulary())


def split_list(value: str | None) -> list[str] | None:
    """'a,b, c' -> ['a', 'b', 'c']; None or '' -> None."""
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


@dataclass
class RuntimeConfig:
    """The one runtime switch of every command that runs a CNN backbone."""
    runtime: str = option(DEFAULT_RUNTIME, "where the CNN runs: onnx (ONNX Runtime, exported and checked against "
                          "torch once per weights file; falls back to torch, saying why) or torch", choices=RUNTIMES)
