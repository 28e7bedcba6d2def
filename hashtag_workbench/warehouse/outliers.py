"""Outlier scores and flags per detector, perceptual hashes and duplicate groups."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hashtag_workbench.core.errors import InputError
from hashtag_workbench.warehouse.db import connect, fetch_dicts, insert_rows


def image_hashes(home: Path) -> dict[int, str]:
    """image_id -> perceptual hash (16 hex digits) for every image hashed so far."""
    with connect(home, read_only=True) as con:
        return dict(con.execute("SELECT image_id, phash FROM image_hashes").fetchall())


def write_image_hashes(home: Path, run_id: int, hashes: dict[int, str]) -> None:
    if not hashes:
        return
    with connect(home) as con:
        insert_rows(con, "image_hashes", {"image_id": np.fromiter(hashes, np.int64, len(hashes)),
                                          "phash": list(hashes.values())}, {"run_id": run_id}, verb="INSERT OR REPLACE")


def write_outlier_scores(home: Path, run_id: int, detector: str, image_ids, words, scores, flagged) -> None:
    """Store one detector's score and flag for each image of an outliers run (one transaction)."""
    n = len(image_ids)
    if not (len(words) == len(scores) == len(flagged) == n):
        raise InputError("image_ids, words, scores and flagged must have the same length")
    with connect(home) as con:
        con.execute("DELETE FROM outlier_scores WHERE run_id = ? AND detector = ?", [run_id, detector])
        insert_rows(con, "outlier_scores", {"image_id": np.asarray(image_ids, np.int64), "word": list(words),
                                            "score": np.asarray(scores, np.float64),
                                            "flagged": np.asarray(flagged, bool)},
                    {"run_id": run_id, "detector": detector})


def write_duplicate_groups(home: Path, run_id: int, rows: list[dict]) -> None:
    """Store duplicate groups: rows of group_id, image_id, kind ('exact' | 'near'), distance."""
    with connect(home) as con:
        con.execute("DELETE FROM duplicate_groups WHERE run_id = ?", [run_id])
        insert_rows(con, "duplicate_groups", {
            "group_id": np.array([r["group_id"] for r in rows], np.int32),
            "image_id": np.array([r["image_id"] for r in rows], np.int64),
            "kind": [r["kind"] for r in rows],
            "distance": np.array([r["distance"] for r in rows], np.float64)}, {"run_id": run_id})


def outlier_scores(home: Path, run_id: int, *, word: str | None = None, detector: str | None = None,
                   flagged_only: bool = False) -> list[dict]:
    """Scores of one outliers run, most suspicious first within each detector.

    Each row: image_id, detector, word (the label judged), score (higher = more
    suspicious), flagged, and the image's path, sha256, current_word and review
    state now (curation may have changed them since the run).
    """
    conds, params = ["s.run_id = ?"], [run_id]
    if word:
        conds.append("s.word = ?")
        params.append(word)
    if detector:
        conds.append("s.detector = ?")
        params.append(detector)
    if flagged_only:
        conds.append("s.flagged")
    sql = f"""SELECT s.image_id, s.detector, s.word, s.score, s.flagged,
                     l.path, l.sha256, l.word AS current_word, l.review
              FROM outlier_scores s LEFT JOIN image_labels l ON l.image_id = s.image_id
              WHERE {' AND '.join(conds)} ORDER BY s.detector, s.score DESC, s.image_id"""
    with connect(home, read_only=True) as con:
        return fetch_dicts(con.execute(sql, params))


def duplicate_groups(home: Path, run_id: int) -> list[dict]:
    """Duplicate groups of one outliers run, largest first.

    Each group: group_id, kind ('exact': identical pixels hash; 'near': similar),
    and members: list of {image_id, path, word, review, distance}, where distance
    is the perceptual-hash Hamming distance (bits) to the group's first member.
    """
    with connect(home, read_only=True) as con:
        rows = fetch_dicts(con.execute("""SELECT d.group_id, d.kind, d.image_id, d.distance, l.path, l.word, l.review
                                    FROM duplicate_groups d LEFT JOIN image_labels l ON l.image_id = d.image_id
                                    WHERE d.run_id = ? ORDER BY d.group_id, d.distance, d.image_id""", [run_id]))
    groups: dict[int, dict] = {}
    for r in rows:
        g = groups.setdefault(r["group_id"], {"group_id": r["group_id"], "kind": r["kind"], "members": []})
        g["members"].append({k: r[k] for k in ("image_id", "path", "word", "review", "distance")})
    return sorted(groups.values(), key=lambda g: (-len(g["members"]), g["group_id"]))
