"""Short-lived DuckDB connections with lock retry, and ordered, recorded migrations.

DuckDB lets one process write, or many read, never both at once. So every caller
opens a connection, does its work in one transaction, and closes it; a caller that
finds the file locked waits with backoff instead of failing (DESIGN.md §3).

Waiting alone is not fair: a job that closes and at once reopens the file wins every
race against a dashboard polling with backoff. So a waiter announces itself (a shared
flock on `warehouse.duckdb.wait`), and anyone about to open the file first lets
announced waiters in (for at most YIELD_MAX_S). The two sides then take turns, and
nobody waits longer than about one of the other's transactions.
"""
from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from pathlib import Path
from typing import Iterator

import duckdb

try:
    import fcntl
except ImportError:  # not on Windows: there, callers just retry with backoff
    fcntl = None

from warehouse.faults import crash_point

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
DB_NAME = "warehouse.duckdb"
DEFAULT_LOCK_TIMEOUT_S = float(os.environ.get("HASHTAG_LOCK_TIMEOUT", "60"))

YIELD_MAX_S = 1.0          # longest a caller gives way to announced waiters before going ahead
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


def _wait_file(path: Path) -> Path:
    return path.with_name(path.name + ".wait")


def _let_waiters_in(path: Path) -> None:
    """Give way (briefly) to processes that are already waiting for the file."""
    if fcntl is None or _held:
        return
    try:
        fd = os.open(_wait_file(path), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return
    try:
        deadline = time.monotonic() + YIELD_MAX_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # succeeds only when nobody is waiting
                fcntl.flock(fd, fcntl.LOCK_UN)
                return
            except OSError:
                if time.monotonic() >= deadline:
                    return
                time.sleep(0.003)
    finally:
        os.close(fd)


def _announce(path: Path) -> int | None:
    """Mark this process as waiting for the file; returns the fd to close when done."""
    if fcntl is None:
        return None
    try:
        fd = os.open(_wait_file(path), os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_SH)
        return fd
    except OSError:
        return None


def _open(path: Path, read_only: bool, timeout_s: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    waiting: int | None = None
    _let_waiters_in(path)
    try:
        while True:
            try:
                return duckdb.connect(str(path), read_only=read_only)
            except (duckdb.IOException, duckdb.ConnectionException) as exc:
                if not _is_lock_error(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise WarehouseLocked(
                        f"The warehouse {path} is locked by another process (a running job or the "
                        f"dashboard) and stayed locked for {timeout_s:.0f} s. Try again when it has finished."
                    ) from exc
                if waiting is None:
                    waiting = _announce(path)
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, POLL_MAX_S)
    finally:
        if waiting is not None:
            os.close(waiting)


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
    turn = _file_lock(path)
    if not turn.acquire(timeout=timeout_s):
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
        turn.release()


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


def applied_migrations(home: Path | str) -> list[str]:
    with connect(home, read_only=True) as con:
        return [r[0] for r in con.execute("SELECT name FROM schema_migrations ORDER BY name").fetchall()]
