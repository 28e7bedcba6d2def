"""One background thread that calls a function every few seconds until stopped (the API's model
watcher and prediction recorder both run this way)."""
from __future__ import annotations

import threading
from collections.abc import Callable


class Ticker:
    def __init__(self, name: str, every: float, tick: Callable[[], object]):
        self.name, self.every, self.tick = name, every, tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.tick()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop after the tick in progress (waiting at most `timeout` seconds for it)."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=timeout)
