"""Job runs: each run's kind, config, counts, status and timing."""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from hashtag_workbench.infra.procs import pid_alive, process_start
from hashtag_workbench.warehouse.db import connect, fetch_dicts


def run_is_live(pid: int | None, host: str | None, started: str | None) -> bool | None:
    """True/False for runs of this host; None when the run belongs to another host (cannot tell)."""
    if host and host != socket.gethostname():
        return None
    return pid_alive(pid, started)


def mark_stale_runs(home: Path) -> list[int]:
    """Runs left 'running' by a process that no longer exists become 'interrupted'."""
    with connect(home) as con:
        rows = con.execute("SELECT run_id, pid, host, proc_start FROM runs WHERE status = 'running'").fetchall()
        stale = [r[0] for r in rows if run_is_live(r[1], r[2], r[3]) is False]
        for run_id in stale:
            con.execute("""UPDATE runs SET status = 'interrupted', finished_at = current_timestamp,
                           error = coalesce(error, 'the process stopped without finishing (killed or crashed)')
                           WHERE run_id = ?""", [run_id])
    return stale


def start_run(home: Path, kind: str, config: dict) -> int:
    mark_stale_runs(home)
    with connect(home) as con:
        return con.execute(
            "INSERT INTO runs (kind, config, pid, host, proc_start) VALUES (?, ?, ?, ?, ?) RETURNING run_id",
            [kind, json.dumps(config, default=str), os.getpid(), socket.gethostname(), process_start(os.getpid())],
        ).fetchone()[0]


def update_run(home: Path, run_id: int, *, counts: dict | None = None, log: str | None = None) -> None:
    with connect(home) as con:
        if counts is not None:
            con.execute("UPDATE runs SET counts = ? WHERE run_id = ?", [json.dumps(counts), run_id])
        if log is not None:
            con.execute("UPDATE runs SET log = coalesce(log, '') || ? WHERE run_id = ?", [log, run_id])


def finish_run(home: Path, run_id: int, status: str, counts: dict, error: str | None = None) -> None:
    with connect(home) as con:
        con.execute(
            """UPDATE runs SET status = ?, counts = ?, error = ?, finished_at = current_timestamp,
                   duration_s = epoch(current_timestamp - started_at) WHERE run_id = ?""",
            [status, json.dumps(counts), error, run_id],
        )



def recent_runs(home: Path, limit: int = 20, kind: str | None = None) -> list[dict]:
    sql = """SELECT run_id, kind, status, config, counts, started_at, finished_at, duration_s, error, log
             FROM runs {where} ORDER BY run_id DESC LIMIT ?"""
    params: list = [limit]
    where = ""
    if kind:
        where, params = "WHERE kind = ?", [kind, limit]
    with connect(home, read_only=True) as con:
        return fetch_dicts(con.execute(sql.format(where=where), params))


def get_run(home: Path, run_id: int) -> dict | None:
    with connect(home, read_only=True) as con:
        rows = fetch_dicts(con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id]))
    return rows[0] if rows else None
