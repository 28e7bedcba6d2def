"""Features, PCA fits, projections and stored 2-D maps, and the stored CNN outputs models reuse: all their SQL.

Vectors travel as Arrow list columns in both directions: a batch of 4096-d rows is
one INSERT ... SELECT, and a whole feature matrix is one fetch reshaped in numpy.
Read functions for the dashboard and other jobs come first; writers follow.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from hashtag_workbench.core.errors import InputError
from hashtag_workbench.warehouse.db import connect, fetch_dicts, insert_rows

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
            insert_rows(con, "features", {"image_id": image_ids, "vec": _list_column(vectors),
                                          "logits": _list_column(logits) if logits is not None
                                          else pa.nulls(len(image_ids), pa.list_(pa.float32()))},
                        {"backbone": backbone, "run_id": run_id}, verb="INSERT OR REPLACE")
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
        insert_rows(con, "projections", {"image_id": image_ids, "vec": _list_column(projections)}, {"run_id": run_id})


def write_embedding_map(home: Path, run_id: int, method: str, image_ids, xy: np.ndarray) -> None:
    """Store one 2-D map of PCA fit `run_id` (replacing an earlier one of the same fit and method)."""
    ids = np.asarray(image_ids, dtype=np.int64)
    xy = np.asarray(xy, dtype=np.float32)
    with connect(home) as con:
        con.execute("DELETE FROM embedding_maps WHERE run_id = ? AND method = ?", [run_id, method])
        insert_rows(con, "embedding_maps", {"image_id": ids, "x": xy[:, 0], "y": xy[:, 1]},
                    {"run_id": run_id, "method": method})


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


# --------------------------------------------------------------------------- outliers


def stored_features(home: Path, backbone: str, image_ids: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray | None]]:
    """image_id -> (penultimate vector, ImageNet logits or None) for the ids the features job has stored."""
    if not image_ids:
        return {}
    with connect(home, read_only=True) as con:
        tbl = con.sql("SELECT image_id, vec, logits FROM features WHERE backbone = ? "
                      "AND image_id IN (SELECT unnest(?))",
                      params=[backbone, [int(i) for i in image_ids]]).to_arrow_table()
    n, logits = tbl.num_rows, tbl.column("logits")
    vecs = _matrix(tbl.column("vec"), n)
    if logits.null_count == 0:
        rows_logits = list(_matrix(logits, n))
    else:   # some rows stored without logits: each row on its own
        rows_logits = [None if v is None else np.asarray(v, dtype=np.float32) for v in logits.to_pylist()]
    return {i: (vecs[k], rows_logits[k]) for k, i in enumerate(tbl.column("image_id").to_pylist())}
