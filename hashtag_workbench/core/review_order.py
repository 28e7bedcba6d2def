"""Review ordering: keep the score order, but show near-duplicate groups together."""
from __future__ import annotations

from hashtag_workbench.core.errors import InputError


def group_duplicates(items: list[dict], *, key: str = "group_id") -> list[dict]:
    """Reorder so every member of a duplicate group follows the group's first (highest-ranked) item.

    Items without a group keep their place; the relative order inside a group is kept.
    """
    groups: dict = {}
    for it in items:
        g = it.get(key)
        if g is not None:
            groups.setdefault(g, []).append(it)
    out, placed = [], set()
    for it in items:
        g = it.get(key)
        if g is None:
            out.append(it)
        elif g not in placed:
            placed.add(g)
            out.extend(groups[g])
    return out


def page_bounds(n_items: int, page: int, per_page: int) -> tuple[int, int, int]:
    """(start, stop, n_pages) for a 1-based page number, clamped into range."""
    if per_page < 1:
        raise InputError("per_page must be at least 1")
    n_pages = max(1, -(-n_items // per_page))
    page = min(max(1, int(page)), n_pages)
    start = (page - 1) * per_page
    return start, min(start + per_page, n_items), n_pages
