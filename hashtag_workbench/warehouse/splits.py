"""Train/val splits and the images training may use (curation applied)."""
from __future__ import annotations

from pathlib import Path

from hashtag_workbench.warehouse.db import connect, fetch_dicts, insert_rows


def training_images(home: Path, *, exclude_flagged: bool = False) -> list[dict]:
    """Images usable for training: curated label, active word, not rejected (and not flagged, if asked).

    'flagged' means a detector's current score flags the image (view `flagged_images`, as the Review
    page counts it) and nobody has reviewed it since.
    """
    sql = """
        SELECT l.image_id, l.sha256, l.path, l.word, l.review,
               (f.image_id IS NOT NULL AND l.review = 'unreviewed') AS flagged
        FROM image_labels l
        LEFT JOIN flagged_images f ON f.image_id = l.image_id
        WHERE l.review <> 'reject' AND l.word IN (SELECT word FROM words WHERE active)
        ORDER BY l.image_id"""
    with connect(home, read_only=True) as con:
        rows = fetch_dicts(con.execute(sql))
    if exclude_flagged:
        rows = [r for r in rows if not r["flagged"]]
    return rows


def save_split(home: Path, run_id: int, rows: list[tuple[int, str, str]]) -> None:
    """rows: (image_id, word, part)."""
    with connect(home) as con:
        con.execute("DELETE FROM splits WHERE run_id = ?", [run_id])
        insert_rows(con, "splits", {"image_id": [int(i) for i, _, _ in rows], "word": [w for _, w, _ in rows],
                                    "part": [p for _, _, p in rows]}, {"run_id": run_id})


def latest_split_run(home: Path) -> int | None:
    with connect(home, read_only=True) as con:
        return con.execute("SELECT max(run_id) FROM splits").fetchone()[0]


def split_rows(home: Path, run_id: int) -> list[dict]:
    """The split's images with the label they had when it was made, and their stored file."""
    with connect(home, read_only=True) as con:
        return fetch_dicts(con.execute(
            """SELECT s.image_id, s.word, s.part, i.sha256, i.path FROM splits s
               JOIN images i ON i.image_id = s.image_id WHERE s.run_id = ? ORDER BY s.image_id""", [run_id]))


def all_labelled(home: Path) -> list[dict]:
    """Every stored, non-rejected image of an active word, with its current label (ConSE's 'all' scope)."""
    with connect(home, read_only=True) as con:
        return fetch_dicts(con.execute("SELECT image_id, word, sha256, path FROM image_labels WHERE review <> 'reject' "
                                 "AND word IN (SELECT word FROM words WHERE active) ORDER BY image_id"))


def unlabelled_pool(home: Path) -> list[dict]:
    """Every stored photo that nobody rejected, without its label: what zero-shot self-training may read."""
    with connect(home, read_only=True) as con:
        return fetch_dicts(con.execute("SELECT image_id, sha256, path FROM image_labels WHERE review <> 'reject' "
                                 "ORDER BY image_id"))
