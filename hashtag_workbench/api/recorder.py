"""Predictions are recorded as `predict` records them, but in batches, off the request path.

Requests hand their rows to `add` (a list append under a lock) and return. A thread writes
what has gathered every `flush_every` seconds through warehouse.evaluations.add_predictions, whose
connect waits out another process's lock with backoff; if the warehouse stays busy the rows
wait for the next flush. So a busy warehouse delays the record, never a response.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from hashtag_workbench.api.models import log
from hashtag_workbench.infra.ticker import Ticker
from hashtag_workbench.warehouse.evaluations import add_predictions

MAX_PENDING = 100_000  # rows kept while the warehouse is unavailable; beyond this the oldest are dropped


class Recorder:
    def __init__(self, home: Path, flush_every: float = 1.0, *, run_id: int | None = None,
                 write: Callable[[Path, list[dict]], None] = add_predictions, max_pending: int = MAX_PENDING):
        self.home, self._write, self.max_pending = home, write, max_pending
        self.run_id = run_id
        self._pending: list[dict] = []
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._ticker = Ticker("prediction-recorder", flush_every, self.flush)
        self.recorded = self.dropped = self.failed_flushes = 0
        self._in_flight = 0  # rows being written now (still pending until the write lands)

    def add(self, rows: list[dict]) -> None:
        with self._lock:
            self._pending.extend({**r, "run_id": self.run_id} for r in rows)
            self._trim()

    def _trim(self) -> None:
        extra = len(self._pending) - self.max_pending
        if extra > 0:
            del self._pending[:extra]
            self.dropped += extra

    def flush(self) -> int:
        """Write what has gathered; on failure keep it for the next try. Returns the rows written."""
        with self._flushing:
            with self._lock:
                rows, self._pending = self._pending, []
            if not rows:
                return 0
            self._in_flight = len(rows)
            try:
                self._write(self.home, rows)
            except Exception as exc:  # locked for too long, disk full ...: try again at the next flush
                with self._lock:
                    self._pending[:0] = rows
                    self._trim()
                self.failed_flushes += 1
                log(f"recording {len(rows)} predictions failed ({type(exc).__name__}: {str(exc)[:200]}); "
                    "kept for the next try")
                return 0
            finally:
                self._in_flight = 0
            self.recorded += len(rows)
            return len(rows)

    def stats(self) -> dict:
        with self._lock:
            pending = len(self._pending) + self._in_flight
        return {"recorded": self.recorded, "pending": pending, "dropped": self.dropped,
                "failed_flushes": self.failed_flushes}

    def start(self) -> None:
        self._ticker.start()

    def stop(self) -> None:
        """Stop the thread and write what is left (one last try)."""
        self._ticker.stop(timeout=120)
        self.flush()
