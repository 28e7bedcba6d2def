"""A running job's progress (n of total), as a tiny JSON file per run under <data dir>/logs/progress/.

The job's progress bar writes it a few times a second at most; the Jobs page reads it. A file,
not the runs table, so progress never competes with the job's own writes for the warehouse lock.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from hashtag_workbench.infra.files import write_atomic


def progress_path(home: Path | str, run_id: int) -> Path:
    return Path(home) / "logs" / "progress" / f"{int(run_id)}.json"


def write_progress(home: Path | str, run_id: int, *, n: int, total: int | None, desc: str, unit: str) -> None:
    """Replace the run's progress record (atomically: a reader never sees half a file)."""
    write_atomic(progress_path(home, run_id), json.dumps(
        {"n": int(n), "total": None if total is None else int(total), "desc": desc, "unit": unit,
         "updated": time.time()}).encode())


def read_progress(home: Path | str, run_id: int) -> dict | None:
    """{n, total, desc, unit, updated} of the run's latest progress bar, or None when it has none."""
    try:
        return json.loads(progress_path(home, run_id).read_text())
    except (OSError, json.JSONDecodeError):
        return None
