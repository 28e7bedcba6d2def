"""Features, PCA fits and projections, outlier scores, duplicate groups and perceptual hashes: all their SQL.

Vectors travel as Arrow list columns in both directions: a batch of 4096-d rows is
one INSERT ... SELECT, and a whole feature matrix is one fetch reshaped in numpy.
Read functions for the dashboard and other jobs come first; writers follow.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from hashtag_workbench.core.errors import InputError
from hashtag_workbench.warehouse.db import connect, fetch_dicts

# --------------------------------------------------------------------------- helpers


def _list_column(matrix: np.ndarray) -> pa.ListArray:
    m = np.ascontiguousarray(matrix, dtype=np.float32)
    n, d = m.shape
    offsets = pa.array(np.arange(0, (n + 1) * d, d, dtype=np.int32) if n else np.zeros(1, np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(m.reshape(-1)))


def _matrix(column: pa.ChunkedArray, n: int) -> np.ndarray:
    if n == 0:
        return np.zeros((0, 0), np.float32)
    flat = column.combine_chunks()
    values = flat.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    if len(values) % n:
        raise InputError("stored vectors have different lengths; the table mixes dimensions")
    return values.reshape(n, len(values) // n)


# --------------------------------------------------------------------------- features: reads


def feature_ids(home: Path, backbone: str, *, include_failed: bool = True) -> set[int]:
    """Image ids that already have features for `backbone` (and, by default, those that failed)."""
    sql = "SELECT image_id FROM features WHERE backbone = ?"
    if include_failed:
        sql += " UNION SELECT image_id FROM feature_failures WHERE backbone = ?"
    with connect(home, read_only=True) as con:
        return {r[0] for r in con.execute(sql, [backbone] * (2 if include_failed else 1)).fetchall()}


def feature_matrix(home: Path, backbone: str, *, logits: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """All stored images' features for `backbone`, ordered by image_id.

    Returns (image_ids int64 (n,), vectors float32 (n, d)); with `logits=True` the
    second array holds the 1000 ImageNet logits instead. Empty arrays if none.
    """
    col = "logits" if logits else "vec"
    with connect(home, read_only=True) as con:
        tbl = con.sql(f"SELECT image_id, {col} AS v FROM features WHERE backbone = ? AND {col} IS NOT NULL "
                      "ORDER BY image_id", params=[backbone]).to_arrow_table()
    ids = tbl.column("image_id").to_numpy().astype(np.int64)
    return ids, _matrix(tbl.column("v"), len(ids))


def feature_failures(home: Path, backbone: str | None = None) -> list[dict]:
    """Images a features run could not read: image_id, backbone, run_id, error."""
    sql = "SELECT image_id, backbone, run_id, error FROM feature_failures"
    params = []
    if backbone:
        sql += " WHERE backbone = ?"
        params.append(backbone)
    with connect(home, read_only=True) as con:
        return fetch_dicts(con.execute(sql + " ORDER BY image_id", params))


# --------------------------------------------------------------------------- features: writes


def write_features(home: Path, run_id: int, backbone: str, image_ids, vectors: np.ndarray,
                   logits: np.ndarray | None = None, failures: list[tuple[int, str]] = ()) -> None:
    """Store one batch of feature rows (and failed images) in one transaction.

    A row replaces an earlier one for the same image and backbone; a success
    clears an earlier failure of that image.
    """
    image_ids = np.asarray(image_ids, dtype=np.int64)
    if len(image_ids) != len(vectors):
        raise InputError(f"{len(image_ids)} image ids for {len(vectors)} vectors")
    with connect(home) as con:
        if len(image_ids):
            batch = pa.table({"image_id": image_ids, "vec": _list_column(vectors),
                              "logits": _list_column(logits) if logits is not None
                              else pa.nulls(len(image_ids), pa.list_(pa.float32()))})
            con.register("feature_batch", batch)
            con.execute("INSERT OR REPLACE INTO features (image_id, backbone, run_id, vec, logits) "
                        "SELECT image_id, ?, ?, vec, logits FROM feature_batch", [backbone, run_id])
            con.unregister("feature_batch")
            con.execute("DELETE FROM feature_failures WHERE backbone = ? AND image_id IN (SELECT unnest(?))",
                        [backbone, image_ids.tolist()])
        for image_id, error in failures:
            con.execute("INSERT OR REPLACE INTO feature_failures (image_id, backbone, run_id, error) "
                        "VALUES (?, ?, ?, ?)", [int(image_id), backbone, run_id, error])


# --------------------------------------------------------------------------- PCA


def latest_pca_fit(home: Path, backbone: str | None = None) -> dict | None:
    """The newest PCA fit (optionally for one backbone): run_id, backbone, n_components,
    explained_variance, artifact (relative to the data dir), n_images; None if there is none."""
    sql = """SELECT p.run_id, p.backbone, p.n_components, p.explained_variance, p.artifact,
                    (SELECT count(*) FROM projections j WHERE j.run_id = p.run_id) AS n_images
             FROM pca_fits p {where} ORDER BY p.run_id DESC LIMIT 1"""
    with connect(home, read_only=True) as con:
        rows = fetch_dicts(con.execute(sql.format(where="WHERE p.backbone = ?" if backbone else ""),
                                 [backbone] if backbone else []))
    return rows[0] if rows else None


def pca_is_current(home: Path, backbone: str) -> bool:
    """True when the latest PCA fit for `backbone` covers exactly the images that have its features."""
    fit = latest_pca_fit(home, backbone)
    if fit is None:
        return False
    with connect(home, read_only=True) as con:
        missing = con.execute("""SELECT count(*) FROM features f WHERE f.backbone = ? AND f.image_id NOT IN
                                 (SELECT image_id FROM projections WHERE run_id = ?)""",
                              [backbone, fit["run_id"]]).fetchone()[0]
    return missing == 0 and fit["n_images"] > 0


def write_pca_fit(home: Path, run_id: int, backbone: str, *, n_components: int, explained_variance: float,
                  artifact: str, image_ids, projections: np.ndarray) -> None:
    """Record a PCA fit and every image's projection, in one transaction."""
    image_ids = np.asarray(image_ids, dtype=np.int64)
    with connect(home) as con:
        con.execute("INSERT OR REPLACE INTO pca_fits (run_id, backbone, n_components, explained_variance, artifact) "
                    "VALUES (?, ?, ?, ?, ?)", [run_id, backbone, int(n_components), float(explained_variance),
                                               artifact])
        con.execute("DELETE FROM projections WHERE run_id = ?", [run_id])
        con.register("proj_batch", pa.table({"image_id": image_ids, "vec": _list_column(projections)}))
        con.execute("INSERT INTO projections (image_id, run_id, vec) SELECT image_id, ?, vec FROM proj_batch",
                    [run_id])
        con.unregister("proj_batch")


def write_embedding_map(home: Path, run_id: int, method: str, image_ids, xy: np.ndarray) -> None:
    """Store one 2-D map of PCA fit `run_id` (replacing an earlier one of the same fit and method)."""
    ids = np.asarray(image_ids, dtype=np.int64)
    xy = np.asarray(xy, dtype=np.float32)
    with connect(home) as con:
        con.execute("DELETE FROM embedding_maps WHERE run_id = ? AND method = ?", [run_id, method])
        con.register("map_batch", pa.table({"image_id": ids, "x": xy[:, 0], "y": xy[:, 1]}))
        con.execute("INSERT INTO embedding_maps (run_id, method, image_id, x, y) SELECT ?, ?, image_id, x, y "
                    "FROM map_batch", [run_id, method])
        con.unregister("map_batch")


def embedding_map_methods(home: Path, run_id: int) -> list[str]:
    with connect(home, read_only=True) as con:
        return [r[0] for r in con.execute("SELECT DISTINCT method FROM embedding_maps WHERE run_id = ? ORDER BY 1",
                                          [run_id]).fetchall()]


def projection_matrix(home: Path, run_id: int) -> tuple[np.ndarray, np.ndarray]:
    """The PCA projections of fit `run_id`: (image_ids (n,), vectors float32 (n, k)), ordered by image_id."""
    with connect(home, read_only=True) as con:
        tbl = con.sql("SELECT image_id, vec FROM projections WHERE run_id = ? ORDER BY image_id",
                      params=[run_id]).to_arrow_table()
    ids = tbl.column("image_id").to_numpy().astype(np.int64)
    return ids, _matrix(tbl.column("vec"), len(ids))


# --------------------------------------------------------------------------- perceptual hashes


def image_hashes(home: Path) -> dict[int, str]:
    """image_id -> perceptual hash (16 hex digits) for every image hashed so far."""
    with connect(home, read_only=True) as con:
        return dict(con.execute("SELECT image_id, phash FROM image_hashes").fetchall())


def write_image_hashes(home: Path, run_id: int, hashes: dict[int, str]) -> None:
    if not hashes:
        return
    with connect(home) as con:
        con.register("hash_batch", pa.table({"image_id": np.fromiter(hashes, np.int64, len(hashes)),
                                             "phash": list(hashes.values())}))
        con.execute("INSERT OR REPLACE INTO image_hashes (image_id, phash, run_id) "
                    "SELECT image_id, phash, ? FROM hash_batch", [run_id])
        con.unregister("hash_batch")


# --------------------------------------------------------------------------- outliers


def write_outlier_scores(home: Path, run_id: int, detector: str, image_ids, words, scores, flagged) -> None:
    """Store one detector's score and flag for each image of an outliers run (one transaction)."""
    n = len(image_ids)
    if not (len(words) == len(scores) == len(flagged) == n):
        raise InputError("image_ids, words, scores and flagged must have the same length")
    tbl = pa.table({"image_id": np.asarray(image_ids, np.int64), "word": list(words),
                    "score": np.asarray(scores, np.float64), "flagged": np.asarray(flagged, bool)})
    with connect(home) as con:
        con.execute("DELETE FROM outlier_scores WHERE run_id = ? AND detector = ?", [run_id, detector])
        con.register("score_batch", tbl)
        con.execute("INSERT INTO outlier_scores (image_id, run_id, detector, word, score, flagged) "
                    "SELECT image_id, ?, ?, word, score, flagged FROM score_batch", [run_id, detector])
        con.unregister("score_batch")


def write_duplicate_groups(home: Path, run_id: int, rows: list[dict]) -> None:
    """Store duplicate groups: rows of group_id, image_id, kind ('exact' | 'near'), distance."""
    with connect(home) as con:
        con.execute("DELETE FROM duplicate_groups WHERE run_id = ?", [run_id])
        if rows:
            con.register("dup_batch", pa.table({
                "group_id": np.array([r["group_id"] for r in rows], np.int32),
                "image_id": np.array([r["image_id"] for r in rows], np.int64),
                "kind": [r["kind"] for r in rows],
                "distance": np.array([r["distance"] for r in rows], np.float64)}))
            con.execute("INSERT INTO duplicate_groups (run_id, group_id, image_id, kind, distance) "
                        "SELECT ?, group_id, image_id, kind, distance FROM dup_batch", [run_id])
            con.unregister("dup_batch")


def latest_outlier_run(home: Path) -> dict | None:
    """The newest finished outliers run that stored scores: run_id, config, counts, started_at,
    finished_at and detectors (sorted names); None when no outliers run has finished yet."""
    with connect(home, read_only=True) as con:
        rows = fetch_dicts(con.execute("""
            SELECT r.run_id, r.config, r.counts, r.started_at, r.finished_at,
                   list(DISTINCT s.detector ORDER BY s.detector) AS detectors
            FROM runs r JOIN outlier_scores s ON s.run_id = r.run_id
            WHERE r.kind = 'outliers' AND r.status = 'ok'
            GROUP BY ALL ORDER BY r.run_id DESC LIMIT 1"""))
    return rows[0] if rows else None


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


def outlier_summary(home: Path, run_id: int) -> list[dict]:
    """Per word and detector of one outliers run: images scored and images flagged."""
    with connect(home, read_only=True) as con:
        return fetch_dicts(con.execute("""SELECT word, detector, count(*) AS images,
                                           count(*) FILTER (WHERE flagged) AS flagged
                                    FROM outlier_scores WHERE run_id = ? GROUP BY word, detector
                                    ORDER BY word, detector""", [run_id]))


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
