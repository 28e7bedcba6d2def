"""Image rows: stored photos with provenance, and failed attempts with their reason."""
from __future__ import annotations

from pathlib import Path

from hashtag_workbench.warehouse.db import connect, fetch_dicts

# `check --repair` marks rows whose stored file was lost with an error starting with this;
# such sources count as not seen, so the next import tries them again.
LOST_PREFIX = "stored file lost"

IMAGE_FIELDS = ("sha256", "path", "word", "origin", "source_path", "source_url", "page_url", "title",
                "query", "source", "width", "height", "status", "error", "run_id")


def add_image_rows(home: Path, rows: list[dict]) -> list[int | None]:
    """Insert image rows (ok or failed) in one transaction.

    An 'ok' row whose sha256 is already stored as ok (or comes earlier in `rows`) is
    not inserted again: the returned list holds the new image_id, or None for such
    duplicates. One statement for the whole batch keeps the write lock short.
    """
    if not rows:
        return []
    ids: list[int | None] = [None] * len(rows)
    with connect(home) as con:
        shas = sorted({r["sha256"] for r in rows if r.get("status") == "ok" and r.get("sha256")})
        stored = {r[0] for r in con.execute("SELECT sha256 FROM images WHERE status = 'ok' "
                                            "AND sha256 IN (SELECT unnest(?))", [shas]).fetchall()} if shas else set()
        keep = []
        for i, row in enumerate(rows):
            if row.get("status") == "ok":
                if row["sha256"] in stored:
                    continue
                stored.add(row["sha256"])
            keep.append(i)
        if not keep:
            return ids
        new_ids = [r[0] for r in con.execute("SELECT nextval('image_seq') FROM range(?)", [len(keep)]).fetchall()]
        cols = ("image_id",) + IMAGE_FIELDS
        values, params = [], []
        for i, image_id in zip(keep, new_ids):
            ids[i] = image_id
            values.append("(" + ", ".join("?" * len(cols)) + ")")
            params += [image_id] + [rows[i].get(f) for f in IMAGE_FIELDS]
        con.execute(f"INSERT INTO images ({', '.join(cols)}) VALUES {', '.join(values)}", params)
    return ids


def stored_shas(home: Path) -> set[str]:
    with connect(home, read_only=True) as con:
        return {r[0] for r in con.execute("SELECT sha256 FROM images WHERE status = 'ok'").fetchall()}


def seen_source_paths(home: Path) -> set[str]:
    """Local files an import already handled, stored or failed (rows whose stored file was lost excepted)."""
    with connect(home, read_only=True) as con:
        return {r[0] for r in con.execute(
            "SELECT DISTINCT source_path FROM images WHERE source_path IS NOT NULL "
            "AND (status = 'ok' OR coalesce(error, '') NOT LIKE ? || '%')", [LOST_PREFIX]).fetchall()}


def word_counts(home: Path) -> list[dict]:
    """Per word: stored (ok) and failed image rows, over every word known or used."""
    sql = """
        WITH w AS (SELECT word, active FROM words
                   UNION SELECT DISTINCT word, NULL FROM images
                   WHERE word IS NOT NULL AND word NOT IN (SELECT word FROM words))
        SELECT w.word, w.active,
               count(*) FILTER (WHERE i.status = 'ok') AS stored,
               count(*) FILTER (WHERE i.status = 'failed') AS failed
        FROM w LEFT JOIN images i ON i.word = w.word
        GROUP BY w.word, w.active ORDER BY stored DESC, w.word"""
    with connect(home, read_only=True) as con:
        return [dict(word=r[0], active=r[1], stored=r[2], failed=r[3]) for r in con.execute(sql).fetchall()]


def label_filter(*, words: list[str] | None, include_rejected: bool, alias: str = "") -> tuple[list[str], list]:
    """WHERE conditions and their parameters over image_labels (as `alias`): not rejected, these words."""
    conds, params = [], []
    if not include_rejected:
        conds.append(f"{alias}review <> 'reject'")
    if words:
        conds.append(f"{alias}word IN (SELECT unnest(?))")
        params.append(list(words))
    return conds, params


def labelled_images(home: Path, *, words: list[str] | None = None, include_rejected: bool = False) -> list[dict]:
    """Stored images with their current label and review state (curation applied)."""
    sql = "SELECT image_id, sha256, path, word, original_word, review, origin FROM image_labels"
    conds, params = label_filter(words=words, include_rejected=include_rejected)
    if conds:
        sql += " WHERE " + " AND ".join(conds)
    sql += " ORDER BY image_id"
    with connect(home, read_only=True) as con:
        return fetch_dicts(con.execute(sql, params))
