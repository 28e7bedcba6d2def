"""Fair turns between processes that share one file (filelock).

Waiting with backoff alone is not fair: a job that closes the warehouse and at once reopens
it wins every race against a dashboard polling with backoff. So a process that wants the
file first takes the turn (an exclusive file lock next to it) and holds it while it waits;
whoever comes next, the quick re-opener included, queues behind it. The two sides then
alternate, and nobody waits much longer than one of the other's transactions.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import filelock

POLL_S = 0.003  # how often a queued process looks at the turn again


class TurnTimeout(TimeoutError):
    """The turn did not come within the time allowed."""


def turn_file(path: Path) -> Path:
    return path.with_name(path.name + ".turn")


@contextlib.contextmanager
def turn(path: Path, timeout_s: float) -> Iterator[None]:
    """Hold the turn for `path` (the file it guards) for the block; raises TurnTimeout."""
    lock = filelock.FileLock(str(turn_file(path)), thread_local=False, preserve_lock_file=True)
    try:
        lock.acquire(timeout=max(0.0, timeout_s), poll_interval=POLL_S)
    except filelock.Timeout:
        raise TurnTimeout(f"waited {timeout_s:.0f} s for a turn at {path}") from None
    try:
        yield
    finally:
        lock.release()
