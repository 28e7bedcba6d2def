"""The vocabulary (words = classes) and each word's hashtags, with every edit logged."""
from __future__ import annotations

import json
from pathlib import Path

from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.vocabulary import parse_hashtags
from hashtag_workbench.warehouse.db import connect


def _state(con, word: str) -> bool | None:
    """True/False: the word exists and is (in)active; None: no such word."""
    row = con.execute("SELECT active FROM words WHERE word = ?", [word]).fetchone()
    return None if row is None else bool(row[0])


def _require(con, word: str) -> bool:
    state = _state(con, word)
    if state is None:
        raise InputError(f"unknown word {word!r}: `hashtags words list` shows them all")
    return state


def seed_vocabulary(home: Path, vocabulary: dict[str, list[str]]) -> int:
    """Load the shipped word -> hashtags map into an empty warehouse; returns words added."""
    with connect(home) as con:
        if con.execute("SELECT count(*) FROM words").fetchone()[0]:
            return 0
        for word, tags in vocabulary.items():
            con.execute("INSERT INTO words (word, source) VALUES (?, 'vocabulary')", [word])
            for rank, tag in enumerate(tags, start=1):
                con.execute("INSERT INTO hashtags (word, tag, rank, source) VALUES (?, ?, ?, 'hand')",
                            [word, tag, rank])
        return len(vocabulary)


def list_words(home: Path, *, active_only: bool = False) -> list[dict]:
    sql = "SELECT word, active, source, added_at FROM words"
    if active_only:
        sql += " WHERE active"
    with connect(home, read_only=True) as con:
        return [dict(word=r[0], active=r[1], source=r[2], added_at=r[3])
                for r in con.execute(sql + " ORDER BY word").fetchall()]


def add_word(home: Path, word: str, source: str = "user", hashtags: list[str] | None = None) -> bool:
    """Add a new word with its hand-made hashtags (default: the word itself); returns True.

    A word that exists is refused with a ValueError saying so (and how to reactivate it): nothing
    changes, and the given hashtags are not silently dropped.
    """
    tags = parse_hashtags(hashtags) or [word]
    with connect(home) as con:
        state = _state(con, word)
        if state is not None:
            how = "" if state else f"; it is inactive: `hashtags words activate {word}`"
            raise InputError(f"the word {word!r} exists already, nothing changed{how} (edit its hashtags with "
                             f"`hashtags words hashtags {word} ...`)")
        con.execute("INSERT INTO words (word, source) VALUES (?, ?)", [word, source])
        for rank, tag in enumerate(tags, start=1):
            con.execute("INSERT INTO hashtags (word, tag, rank, source) VALUES (?, ?, ?, 'hand')", [word, tag, rank])
        con.execute("INSERT INTO word_edits (action, word, detail) VALUES ('add', ?, ?)",
                    [word, json.dumps({"source": source, "tags": tags})])
        return True


def set_active(home: Path, word: str, active: bool) -> None:
    with connect(home) as con:
        _require(con, word)
        con.execute("UPDATE words SET active = ? WHERE word = ?", [active, word])
        con.execute("INSERT INTO word_edits (action, word) VALUES (?, ?)",
                    ["activate" if active else "deactivate", word])


def rename_word(home: Path, old: str, new: str) -> None:
    """Rename a word everywhere it is a label: words, hashtags, image labels, curation log."""
    with connect(home) as con:
        _require(con, old)
        if _state(con, new) is not None:
            raise InputError(f"the word {new!r} exists already")
        con.execute("INSERT INTO words (word, active, source, added_at) "
                    "SELECT ?, active, source, added_at FROM words WHERE word = ?", [new, old])
        con.execute("DELETE FROM words WHERE word = ?", [old])
        con.execute("UPDATE hashtags SET word = ? WHERE word = ?", [new, old])
        con.execute("UPDATE images SET word = ? WHERE word = ?", [new, old])
        con.execute("UPDATE curation_log SET new_word = ? WHERE new_word = ?", [new, old])
        con.execute("UPDATE curation_log SET old_word = ? WHERE old_word = ?", [new, old])
        con.execute("INSERT INTO word_edits (action, word, detail) VALUES ('rename', ?, ?)",
                    [new, json.dumps({"from": old, "to": new})])


def hashtags_for(home: Path, source: str | None = None) -> dict[str, list[str]]:
    """word -> ranked tags. With no source: hand-made tags, falling back to scraped ones."""
    with connect(home, read_only=True) as con:
        rows = con.execute("SELECT word, source, tag FROM hashtags ORDER BY word, source, rank").fetchall()
    by_source: dict[str, dict[str, list[str]]] = {}
    for word, src, tag in rows:
        by_source.setdefault(src, {}).setdefault(word, []).append(tag)
    if source:
        return by_source.get(source, {})
    merged = dict(by_source.get("scraped", {}))
    merged.update(by_source.get("hand", {}))
    return merged


def set_hashtags(home: Path, word: str, tags: list[str], source: str = "hand", run_id: int | None = None) -> None:
    """Replace one word's tag list for one source, keeping the given order as rank."""
    clean = parse_hashtags(list(tags))
    with connect(home) as con:
        _require(con, word)
        con.execute("DELETE FROM hashtags WHERE word = ? AND source = ?", [word, source])
        for rank, tag in enumerate(clean, start=1):
            con.execute("INSERT INTO hashtags (word, tag, rank, source, run_id) VALUES (?, ?, ?, ?, ?)",
                        [word, tag, rank, source, run_id])
        con.execute("INSERT INTO word_edits (action, word, detail) VALUES ('hashtags', ?, ?)",
                    [word, json.dumps({"source": source, "tags": clean, "run_id": run_id})])
