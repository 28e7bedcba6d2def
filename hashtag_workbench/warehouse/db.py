"""Short-lived DuckDB connections with lock retry, and ordered, recorded migrations.

DuckDB lets one process write, or many read, never both at once. So every caller
opens a connection, does its work in one transaction, and closes it; a caller that
finds the file locked waits with backoff instead of failing (docs/architecture.md).
Processes take turns at the file (infra.locks), so a job that closes and at once reopens
it cannot lock out a waiting dashboard.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from hashtag_workbench.infra.locks import TurnTimeout, turn
from hashtag_workbench.warehouse.faults import crash_point

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
DB_NAME = "warehouse.duckdb"
DEFAULT_LOCK_TIMEOUT_S = float(os.environ.get("HASHTAG_LOCK_TIMEOUT", "60"))

POLL_MAX_S = 0.05          # longest sleep between two tries of a locked file

_migrated: set[str] = set()
_held = 0                  # connections this process has open now (it never yields while holding one)
_held_lock = threading.Lock()
# DuckDB refuses a read-only and a read-write connection to one file in the same process at
# once ("different configuration"), which threads (Streamlit sessions) would hit; so threads
# take turns per file. Re-entrant, so a thread may nest connections of the same kind.
_file_locks: dict[str, threading.RLock] = {}
_file_locks_guard = threading.Lock()


def _file_lock(path: Path) -> threading.RLock:
    with _file_locks_guard:
        return _file_locks.setdefault(str(path), threading.RLock())


class WarehouseLocked(RuntimeError):
    """The database file stayed locked by another process for longer than allowed."""


def db_path(home: Path | str) -> Path:
    return Path(home) / DB_NAME


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text or "conflicting" in text or "resource temporarily unavailable" in text


def _open(path: Path, read_only: bool, timeout_s: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + timeout_s
    if _held:  # this process has the file open already: it must not queue behind a waiter for it
        return _open_polling(path, read_only, deadline, timeout_s)
    try:
        with turn(path, timeout_s):
            return _open_polling(path, read_only, deadline, timeout_s)
    except TurnTimeout:
        raise _locked(path, timeout_s) from None


def _locked(path: Path, timeout_s: float) -> WarehouseLocked:
    return WarehouseLocked(f"The warehouse {path} is locked by another process (a running job or the "
                           f"dashboard) and stayed locked for {timeout_s:.0f} s. Try again when it has finished.")


def _open_polling(path: Path, read_only: bool, deadline: float, timeout_s: float) -> duckdb.DuckDBPyConnection:
    delay = 0.005
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if not _is_lock_error(exc):
                raise
            if time.monotonic() >= deadline:
                raise _locked(path, timeout_s) from exc
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, POLL_MAX_S)


@contextlib.contextmanager
def connect(home: Path | str, *, read_only: bool = False,
            timeout_s: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse under `home`, migrated, for one short unit of work.

    Writers get a transaction that commits on success and rolls back on error.
    Readers on a missing database get an empty, migrated one created first.
    """
    global _held
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    path = db_path(home)
    timeout_s = DEFAULT_LOCK_TIMEOUT_S if timeout_s is None else timeout_s
    in_process = _file_lock(path)
    if not in_process.acquire(timeout=timeout_s):
        raise WarehouseLocked(f"The warehouse {path} stayed busy in this process for {timeout_s:.0f} s.")
    try:
        if str(path) not in _migrated:
            con = _open(path, False, timeout_s)
            try:
                migrate(con)
            finally:
                con.close()
            _migrated.add(str(path))
        con = _open(path, read_only, timeout_s)
        with _held_lock:
            _held += 1
        try:
            if read_only:
                yield con
            else:
                con.begin()
                try:
                    yield con
                except BaseException:
                    con.rollback()
                    raise
                crash_point("db:before-commit")  # tests: a kill inside an open write transaction
                con.commit()
                crash_point("db:after-commit")
        finally:
            try:
                con.close()
            finally:
                with _held_lock:
                    _held -= 1
    finally:
        in_process.release()


# JSON columns and what an empty one reads as: the one place stored JSON is decoded.
JSON_COLUMNS = {"config": dict, "counts": dict, "classes": list, "top5": list}


def decode_json(value, empty: type = dict):
    """A stored JSON text as Python data (`empty()` for NULL or ''); already-decoded values pass."""
    if isinstance(value, str):
        return json.loads(value) if value else empty()
    return empty() if value is None else value


def fetch_dicts(cur: duckdb.DuckDBPyConnection) -> list[dict]:
    """The rows an executed query returns, each as a dict keyed by column name, JSON columns decoded."""
    cols = [d[0] for d in cur.description]
    rows = [dict(zip(cols, r)) for r in cur.fetchall()]
    for col in set(cols) & JSON_COLUMNS.keys():
        for r in rows:
            r[col] = decode_json(r[col], JSON_COLUMNS[col])
    return rows


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, columns: dict, shared: dict | None = None, *,
                verb: str = "INSERT") -> None:
    """Insert one row per element of the equally long `columns` (name -> list or array), in one statement
    through an Arrow table: DuckDB's executemany runs row by row, about 13x slower. `shared` holds values
    every row gets (bound as parameters); `verb` may be "INSERT OR REPLACE"."""
    import pyarrow as pa  # here, not at the top: every command imports this module, few write in bulk
    shared = shared or {}
    batch = pa.table(columns)
    if not batch.num_rows:
        return
    con.register("_rows", batch)
    try:
        names = [*shared, *columns]
        con.execute(f"{verb} INTO {table} ({', '.join(names)}) "
                    f"SELECT {', '.join(['?'] * len(shared) + list(columns))} FROM _rows", list(shared.values()))
    finally:
        con.unregister("_rows")


def migration_files() -> list[Path]:
    return sorted(MIGRATIONS_DIR.glob("*.sql"))


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply every migration not yet recorded, each with its record in one transaction."""
    con.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
                       name VARCHAR PRIMARY KEY,
                       applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)""")
    done = {r[0] for r in con.execute("SELECT name FROM schema_migrations").fetchall()}
    applied = []
    for file in migration_files():
        if file.name in done:
            continue
        con.begin()
        try:
            con.execute(file.read_text())
            con.execute("INSERT INTO schema_migrations (name) VALUES (?)", [file.name])
            con.commit()
        except Exception:
            con.rollback()
            raise
        applied.append(file.name)
    return applied
