"""Helpers shared by job modules."""
from __future__ import annotations

from pathlib import Path

from core.vocabulary import load_vocabulary
from warehouse.words import seed_vocabulary


def ensure_ready(home: Path) -> None:
    """A usable warehouse: migrated (on connect) and holding the shipped vocabulary."""
    seed_vocabulary(home, load_vocabulary())


def split_list(value: str | None) -> list[str] | None:
    """'a,b, c' -> ['a', 'b', 'c']; None or '' -> None."""
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]
