"""Job runs: each run's kind, config, counts, status and timing."""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from warehouse.db import connect


def proc_start(pid: int) -> str | None:
    """This boot's id and the process's start time in clock ticks, or None where /proc is missing."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses; fields after it are plain
    fields = stat[stat.rfind(")") + 2:].split()
    return f"{boot}:{fields[19]}"


def _pid_alive(pid: int | None, started: str | None = None) -> bool:
    """Whether the process that started a run still exists (not merely some process with its pid)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:  # a killed child its parent has not reaped yet is a zombie: dead for our purposes
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    except (OSError, IndexError):
        pass
    if started:
        now = proc_start(pid)
        if now is not None and now != started:
            return False  # the pid was reused by a newer process (or the machine rebooted)
    return True


def run_is_live(pid: int | None, host: str | None, started: str | None) -> bool | None:
    """True/False for runs of this host; None when the run belongs to another host (cannot tell)."""
    if host and host != socket.gethostname():
        return None
    return _pid_alive(pid, started)


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
            [kind, json.dumps(config, default=str), os.getpid(), socket.gethostname(), proc_start(os.getpid())],
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
        cur = con.execute(sql.format(where=where), params)
        cols = [d[0] for d in cur.description]
        out = []
        for row in cur.fetchall():
            rec = dict(zip(cols, row))
            for key in ("config", "counts"):
                rec[key] = json.loads(rec[key]) if rec[key] else {}
            out.append(rec)
        return out


def get_run(home: Path, run_id: int) -> dict | None:
    with connect(home, read_only=True) as con:
        cur = con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id])
        row = cur.fetchone()
        if row is None:
            return None
        rec = dict(zip([d[0] for d in cur.description], row))
    for key in ("config", "counts"):
        rec[key] = json.loads(rec[key]) if rec[key] else {}
    return rec
