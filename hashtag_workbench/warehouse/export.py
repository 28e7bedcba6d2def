"""Export the curated data set out of the warehouse, into a folder anyone can use without this tool.

    DIR/images/<word>/<image_id>-<sha12>.<ext>   kept images, one folder per current label
                                                 (hard links to the store where possible, copies otherwise)
    DIR/rejected/<word>/...                      rejected images, only with include_rejected
    DIR/images.csv                               every exported image: labels, decisions and provenance
    DIR/features.parquet, DIR/projections.parquet  CNN features and the latest PCA projection (DuckDB COPY)
    DIR/export.json                              what the last export wrote (its run, options, files)

Re-running into the same folder is safe: unchanged files are left alone, files an earlier
export wrote that are no longer part of the data set (rejected or relabelled since) are
removed, and nothing this exporter did not write is ever touched. Tables are written to a
temporary name and renamed, so a killed export never leaves a half-written CSV or Parquet.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from hashtag_workbench.core.errors import InputError
from hashtag_workbench.infra.files import atomic_target, write_atomic
from hashtag_workbench.warehouse.db import connect, fetch_dicts
from hashtag_workbench.warehouse.images import label_filter
from hashtag_workbench.warehouse.store import image_file

MANIFEST = "export.json"
CSV_COLUMNS = ("image_id", "file", "word", "original_word", "review", "last_decision_at", "n_decisions", "origin",
               "source_url", "page_url", "title", "query", "source", "source_path", "width", "height", "sha256",
               "added_at", "import_run_id")


class ExportError(InputError):
    """The export cannot go ahead (bad folder, unknown words); the message says what to fix."""


def export_rows(home: Path | str, *, words: list[str] | None = None, include_rejected: bool = False) -> list[dict]:
    """Stored images to export (current labels, curation applied) with their provenance and decision summary."""
    conds, params = label_filter(words=words, include_rejected=include_rejected, alias="l.")
    sql = f"""
        WITH d AS (SELECT image_id, count(*) AS n_decisions, max(decided_at) AS last_decision_at
                   FROM curation_log WHERE NOT undone GROUP BY image_id)
        SELECT l.image_id, l.word, l.original_word, l.review, d.last_decision_at, coalesce(d.n_decisions, 0)
                   AS n_decisions, i.origin, i.source_url, i.page_url, i.title, i.query, i.source, i.source_path,
               i.width, i.height, l.sha256, i.added_at, i.run_id AS import_run_id, l.path
        FROM image_labels l JOIN images i ON i.image_id = l.image_id LEFT JOIN d ON d.image_id = l.image_id
        {"WHERE " + " AND ".join(conds) if conds else ""}
        ORDER BY l.word, l.image_id"""
    with connect(home, read_only=True) as con:
        return fetch_dicts(con.execute(sql, params))


def unknown_words(home: Path | str, words: list[str]) -> list[str]:
    with connect(home, read_only=True) as con:
        known = {r[0] for r in con.execute("SELECT word FROM words UNION SELECT DISTINCT word FROM image_labels")
                 .fetchall()}
    return [w for w in words if w not in known]


def _folder(word: str) -> str:
    """A safe folder name for a word (words are plain text, but a folder name must never climb out)."""
    name = re.sub(r"[^\w .-]", "_", word).strip(" .") or "_"
    return name[:80]


def planned_file(row: dict) -> str:
    """Where an image goes inside the export (relative): images/<word>/, or rejected/<word>/ when rejected."""
    ext = Path(row["path"]).suffix.lower() or ".jpg"
    top = "rejected" if row["review"] == "reject" else "images"
    return f"{top}/{_folder(row['word'])}/{row['image_id']}-{row['sha256'][:12]}{ext}"


def check_destination(dest: Path) -> dict | None:
    """The previous export's manifest in `dest`, None for a new or empty folder; refuses any other folder."""
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise ExportError(f"{dest} is a file, not a folder: choose a folder for --to")
    manifest = dest / MANIFEST
    if manifest.exists():
        try:
            return json.loads(manifest.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ExportError(f"{manifest} is unreadable ({exc}); remove it or export to a new folder") from None
    if dest.exists() and any(dest.iterdir()):
        raise ExportError(f"{dest} is not empty and holds no earlier export: choose an empty or new folder")
    return None


def _place(src: Path, target: Path) -> str:
    """Hard-link (or copy) one image; returns linked, copied or unchanged."""
    if target.exists():
        same = os.path.samefile(src, target) if hasattr(os.path, "samefile") else False
        if same or target.stat().st_size == src.stat().st_size:
            return "unchanged"  # store files are named by content: same name and size is the same image
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, target)
        return "linked"
    except OSError:  # another file system, or links not allowed: copy instead
        with atomic_target(target) as tmp:
            shutil.copyfile(src, tmp)
        return "copied"


def place_images(home: Path | str, dest: Path, rows: list[dict], *, previous: dict | None,
                 progress: Callable[[Iterable], Iterable] | None = None) -> dict:
    """Put every kept image in its word folder and drop files an earlier export left that are no longer wanted."""
    counts = {"linked": 0, "copied": 0, "unchanged": 0, "missing": 0, "removed": 0}
    wanted = set()
    for row in (progress or (lambda it: it))(rows):
        rel = planned_file(row)
        src = image_file(Path(home), row["path"])
        if not src.exists():
            counts["missing"] += 1
            row["file"] = ""
            continue
        counts[_place(src, dest / rel)] += 1
        row["file"] = rel
        wanted.add(rel)
    for rel in (previous or {}).get("files", []):
        p = dest / rel
        if rel not in wanted and rel.startswith(("images/", "rejected/")) and ".." not in rel and p.is_file():
            p.unlink()
            counts["removed"] += 1
            for folder in (p.parent, p.parent.parent):   # a word folder, then images/ or rejected/, once empty
                if folder != dest and folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
    counts["files"] = sorted(wanted)
    return counts


def write_csv(dest: Path, rows: list[dict]) -> Path:
    out = dest / "images.csv"
    with atomic_target(out) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(CSV_COLUMNS), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({**r, "file": r.get("file", "")})
    return out


def _sql_path(p: Path) -> str:
    return "'" + str(p).replace("'", "''") + "'"


def write_vectors(home: Path | str, dest: Path, image_ids: list[int]) -> dict:
    """features.parquet (every backbone) and projections.parquet (the latest PCA fit) of the exported images."""
    ids = pd.DataFrame({"image_id": pd.Series([int(i) for i in image_ids], dtype="int64")})
    queries = {
        "features": """SELECT f.image_id, l.word, f.backbone, f.run_id, f.vec, f.logits
                       FROM features f JOIN export_ids e USING (image_id) JOIN image_labels l USING (image_id)
                       ORDER BY f.image_id, f.backbone""",
        "projections": """SELECT p.image_id, l.word, p.run_id, pf.backbone, p.vec
                          FROM projections p JOIN export_ids e USING (image_id) JOIN image_labels l USING (image_id)
                          LEFT JOIN pca_fits pf ON pf.run_id = p.run_id
                          WHERE p.run_id = (SELECT max(run_id) FROM projections)
                          ORDER BY p.image_id""",
    }
    counts = {}
    with connect(home, read_only=True) as con:
        con.register("export_ids", ids)
        for name, sql in queries.items():
            with atomic_target(dest / f"{name}.parquet") as tmp:
                con.execute(f"COPY ({sql}) TO {_sql_path(tmp)} (FORMAT parquet)").fetchall()
            counts[name] = int(con.execute(f"SELECT count(*) FROM ({sql})").fetchall()[0][0])
        con.unregister("export_ids")
    return counts


def write_manifest(dest: Path, record: dict) -> None:
    write_atomic(dest / MANIFEST, json.dumps(record, indent=1, default=str).encode())
