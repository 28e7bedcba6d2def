"""Is a recorded process still running? One answer for runs, temp files and launched jobs (psutil)."""
from __future__ import annotations

import psutil


def process_start(pid: int) -> str | None:
    """When `pid` started, as a string stored next to the pid (None when it cannot be read).

    A pid alone is not an identity: after a crash the number can be given to a newer process.
    """
    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except (psutil.Error, OSError):
        return None


def pid_alive(pid: int | None, started: str | None = None) -> bool:
    """Whether `pid` runs (a zombie counts as dead) and, with `started`, is the same process as then."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:   # killed but not reaped yet: it will never finish
            return False
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True                                 # exists, owned by someone else
    if started:
        now = process_start(pid)
        if now is not None and now != started:
            return False                            # the pid was reused by a newer process
    return True
