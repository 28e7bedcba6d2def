"""Ingesting Parquet shards of feature rows (written by distributed workers) into the warehouse.

Workers never open DuckDB: they write shards; the driver reads a batch of shards with
`read_parquet` in one transaction, inserts only rows not yet present, and records every
shard it took in `feature_shards`, so a shard is ingested exactly once even when the
driver is killed and a later run finds it.
"""
from __future__ import annotations

from pathlib import Path

from hashtag_workbench.warehouse.db import connect

# Columns every feature shard holds (vec and logits are NULL on a failure row, error NULL on success).
SHARD_COLUMNS = ("image_id", "backbone", "run_id", "vec", "logits", "error")


def ingested_shards(home: Path) -> set[str]:
    """Paths (relative to the data dir) of every shard ingested so far."""
    with connect(home, read_only=True) as con:
        return {r[0] for r in con.execute("SELECT path FROM feature_shards").fetchall()}


def ingest_feature_shards(home: Path, relpaths: list[str], *, ingest_run_id: int) -> dict[str, int]:
    """Ingest the shards at `relpaths` (relative to `home`) in one transaction.

    Shards recorded before are left out. Of the rest, an image that has features for
    the backbone already is skipped, an image held twice is taken once (a success
    before a failure), a success clears an earlier failure, and a new failure is kept
    only if none is recorded. Returns counts: shards, rows, inserted, failed, skipped.
    """
    home = Path(home)
    counts = {"shards": 0, "rows": 0, "inserted": 0, "failed": 0, "skipped": 0}
    with connect(home) as con:
        known = {r[0] for r in con.execute("SELECT path FROM feature_shards WHERE path IN (SELECT unnest(?))",
                                           [list(relpaths)]).fetchall()}
        todo = [p for p in dict.fromkeys(relpaths) if p not in known]
        if not todo:
            return counts
        files = [str(home / p) for p in todo]
        con.execute(f"""CREATE TEMP TABLE shard_rows AS SELECT {', '.join(SHARD_COLUMNS)}, filename
                        FROM read_parquet(?, union_by_name = true, filename = true)""", [files])
        try:
            counts.update(_merge_rows(con))
            con.execute("""
                INSERT INTO feature_shards (path, run_id, ingest_run_id, n_rows, inserted, failed)
                SELECT p.rel, coalesce(max(s.run_id), 0), ?, count(s.image_id),
                       (SELECT count(*) FROM shard_new n WHERE n.filename = p.abs AND n.error IS NULL),
                       (SELECT count(*) FROM shard_new n WHERE n.filename = p.abs AND n.error IS NOT NULL
                                                           AND NOT n.failed_before)
                FROM (SELECT unnest(?) AS rel, unnest(?) AS abs) p LEFT JOIN shard_rows s ON s.filename = p.abs
                GROUP BY p.rel, p.abs""", [ingest_run_id, todo, files])
        finally:
            con.execute("DROP TABLE IF EXISTS shard_new")
            con.execute("DROP TABLE shard_rows")
    counts["shards"] = len(todo)
    return counts


def _merge_rows(con) -> dict[str, int]:
    """Insert shard_rows' new feature and failure rows; leaves the rows taken in temp table shard_new."""
    con.execute("""
        CREATE TEMP TABLE shard_new AS
        SELECT s.*, EXISTS (SELECT 1 FROM feature_failures x
                            WHERE x.image_id = s.image_id AND x.backbone = s.backbone) AS failed_before
        FROM shard_rows s
        WHERE NOT EXISTS (SELECT 1 FROM features f WHERE f.image_id = s.image_id AND f.backbone = s.backbone)
        QUALIFY row_number() OVER (PARTITION BY image_id, backbone
                                   ORDER BY error IS NOT NULL, run_id, filename) = 1""")
    inserted = con.execute("""INSERT INTO features (image_id, backbone, run_id, vec, logits)
                              SELECT image_id, backbone, run_id, vec, logits FROM shard_new
                              WHERE error IS NULL""").fetchone()[0]
    con.execute("""DELETE FROM feature_failures x WHERE EXISTS (SELECT 1 FROM shard_new n WHERE n.error IS NULL
                   AND n.image_id = x.image_id AND n.backbone = x.backbone)""")
    failed = con.execute("""INSERT INTO feature_failures (image_id, backbone, run_id, error)
                            SELECT image_id, backbone, run_id, error FROM shard_new
                            WHERE error IS NOT NULL AND NOT failed_before""").fetchone()[0]
    rows, successes = con.execute("SELECT count(*), count(*) FILTER (WHERE error IS NULL) FROM shard_rows").fetchone()
    return {"rows": rows, "inserted": inserted, "failed": failed, "skipped": successes - inserted}
