"""The driver's side of feature shards: ingest them into the warehouse, then delete their files.

No Ray here: the local engine also calls `ingest_leftovers`, so shards written by a
killed Ray run are never lost, whichever engine runs next.
"""
from __future__ import annotations

from pathlib import Path

from hashtag_workbench.jobs.engines import shardfiles
from hashtag_workbench.warehouse import shards as wh_shards

INGEST_EVERY = 4        # shards per warehouse transaction: few, short write locks


def ingest(home: Path, run, relpaths: list[str], *, outcome: str = "done") -> dict:
    """Ingest shards, count what they added under `outcome`, then delete their files."""
    counts = wh_shards.ingest_feature_shards(home, relpaths, ingest_run_id=run.run_id)
    run.count(outcome, counts["inserted"])
    run.count("failed", counts["failed"])
    if counts["skipped"]:
        run.count("already_present", counts["skipped"])
    shardfiles.remove_shards(home, relpaths)
    run.checkpoint()
    return counts


def ingest_leftovers(home: Path, run) -> int:
    """Ingest whole shards that earlier, killed runs wrote but never ingested; tidy what is left."""
    files = shardfiles.shard_files(home)
    shardfiles.sweep_stale_temp_shards(home)
    if not files:
        return 0
    taken = wh_shards.ingested_shards(home)
    shardfiles.remove_shards(home, [f for f in files if f in taken])  # ingested, killed before deleting
    left = [f for f in files if f not in taken]
    if not left:
        return 0
    counts = {"inserted": 0}
    for i in range(0, len(left), INGEST_EVERY):
        counts["inserted"] += ingest(home, run, left[i:i + INGEST_EVERY], outcome="recovered")["inserted"]
    run.log(f"ingested {len(left)} shard(s) left by an earlier run: {counts['inserted']} feature rows, "
            "not computed again")
    return len(left)
