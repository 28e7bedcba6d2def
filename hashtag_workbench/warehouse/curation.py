"""Curation decisions on stored images: keep, reject or relabel, logged and undoable.

Every decision is a row in `curation_log`; the view `image_labels` applies the
latest standing (not undone) decision per image. Undo never deletes: it marks
rows `undone`, so the log keeps the whole history.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hashtag_workbench.core.errors import InputError
from hashtag_workbench.warehouse.db import connect, fetch_dicts

DECISIONS = ("keep", "reject", "relabel")


def _ids(image_ids: Iterable[int]) -> list[int]:
    out: list[int] = []
    for i in image_ids:
        try:
            v = int(i)
        except (TypeError, ValueError):
            raise InputError(f"image ids must be integers, got {i!r}") from None
        if v not in out:
            out.append(v)
    return out


def decide(home: Path | str, image_ids: Iterable[int], decision: str, new_word: str | None = None,
           *, note: str | None = None) -> list[int]:
    """Record one decision for many images at once; returns the new decision ids (in input order).

    `decision` is keep, reject or relabel; relabel needs `new_word`, a known word.
    Unknown image ids raise ValueError and nothing is written.
    """
    if decision not in DECISIONS:
        raise InputError(f"decision must be one of {', '.join(DECISIONS)}; got {decision!r}")
    ids = _ids(image_ids)
    if not ids:
        return []
    if decision == "relabel":
        if not new_word:
            raise InputError("relabel needs the word to relabel to (new_word)")
    elif new_word is not None:
        raise InputError(f"new_word only goes with relabel, not with {decision!r}")
    with connect(home) as con:
        if decision == "relabel" and not con.execute("SELECT 1 FROM words WHERE word = ?", [new_word]).fetchone():
            raise InputError(f"unknown word {new_word!r}: add it on the Words page first")
        current = dict(con.execute(
            "SELECT image_id, word FROM image_labels WHERE image_id IN (SELECT unnest(?))", [ids]).fetchall())
        missing = [i for i in ids if i not in current]
        if missing:
            raise InputError(f"no stored image with id {', '.join(map(str, missing[:10]))}")
        out = []
        for i in ids:
            out.append(con.execute(
                "INSERT INTO curation_log (image_id, decision, old_word, new_word, note) "
                "VALUES (?, ?, ?, ?, ?) RETURNING decision_id",
                # new_word is the label after the decision
                [i, decision, current[i], new_word if decision == "relabel" else current[i], note],
            ).fetchone()[0])
        return out


def undo(home: Path | str, decision_ids: Iterable[int] | None = None, *, last: int | None = None) -> list[int]:
    """Undo decisions by id, or the `last` N standing ones; returns the ids actually undone."""
    if (decision_ids is None) == (last is None):
        raise InputError("give either decision_ids or last=N")
    with connect(home) as con:
        if last is not None:
            if last < 1:
                return []
            ids = [r[0] for r in con.execute(
                "SELECT decision_id FROM curation_log WHERE NOT undone ORDER BY decision_id DESC LIMIT ?",
                [int(last)]).fetchall()]
        else:
            wanted = _ids(decision_ids)
            if not wanted:
                return []
            ids = [r[0] for r in con.execute(
                "SELECT decision_id FROM curation_log WHERE NOT undone AND decision_id IN (SELECT unnest(?)) "
                "ORDER BY decision_id", [wanted]).fetchall()]
        for d in ids:
            con.execute("UPDATE curation_log SET undone = TRUE, undone_at = current_timestamp "
                        "WHERE decision_id = ?", [d])
        return ids


def recent_decisions(home: Path | str, limit: int = 20, *, include_undone: bool = False) -> list[dict]:
    """The latest decisions, newest first."""
    sql = ("SELECT decision_id, image_id, decision, old_word, new_word, decided_at, undone, undone_at, note "
           "FROM curation_log {} ORDER BY decision_id DESC LIMIT ?")
    with connect(home, read_only=True) as con:
        return fetch_dicts(con.execute(sql.format("" if include_undone else "WHERE NOT undone"), [int(limit)]))


def current_labels(home: Path | str, image_ids: Iterable[int]) -> dict[int, dict]:
    """image_id -> {word, original_word, review} as curation leaves it now."""
    ids = _ids(image_ids)
    if not ids:
        return {}
    with connect(home, read_only=True) as con:
        rows = con.execute("SELECT image_id, word, original_word, review FROM image_labels "
                           "WHERE image_id IN (SELECT unnest(?))", [ids]).fetchall()
    return {r[0]: {"word": r[1], "original_word": r[2], "review": r[3]} for r in rows}
