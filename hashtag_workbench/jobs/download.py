"""The downloader shared by the local and the Ray scrape (img2dataset's split of downloader and
distributor): the settings of a scrape, one candidate's download and validation, a bounded thread pool."""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import requests

from hashtag_workbench.core.config import option
from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.images import CheckedImage, ImageRejected, check_image
from hashtag_workbench.infra.http import FetchError, FetchLimits, fetch, new_session


@dataclass
class ScrapeSettings:
    """The `scrape-images` job's settings, by stage: what to keep, the search, the downloads, the writes
    (flags are generated from the fields that carry help)."""
    per_class: int = option(200, "stored images wanted per word, counting those already stored")
    min_side: int = option(64, "smallest accepted short side in pixels")

    search_delay: float = option(1.5, "seconds between search requests (token pages and result pages)")
    search_timeout: float = 15.0
    max_pages: int = 20            # result pages per word per run (100 results each)
    block_backoff: float = option(20.0, "first wait in seconds after a rate-limit answer; doubles per retry")
    block_retries: int = 2         # extra tries after a rate-limit/block answer before giving up the word

    workers: int = option(8, "parallel downloads (with --engine ray, Ray tasks at once)")
    timeout: float = option(15.0, "read timeout per image request in seconds")
    retries: int = option(2, "extra tries for a transient download failure (never for 403/404)")
    max_attempts: int = 3          # runs in which a transiently failing URL is tried before it counts as failed
    limits: FetchLimits | None = None  # the download limits; built from timeout and retries when not given

    batch: int = 16                # outcomes written per warehouse transaction ...
    flush_s: float = 2.0           # ... or sooner, so a kill -9 loses at most this much work

    def __post_init__(self) -> None:
        if self.limits is None:
            self.limits = FetchLimits(read_timeout=self.timeout, retries=self.retries)

    def check(self) -> None:
        for name in ("per_class", "workers", "max_pages", "max_attempts", "batch"):
            if getattr(self, name) < 1:
                raise InputError(f"{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)})")
        if self.workers > 64:
            raise InputError(f"workers must be at most 64 (got {self.workers}); more only hammers the hosts")
        for name in ("search_delay", "block_backoff"):
            if getattr(self, name) < 0:
                raise InputError(f"{name.replace('_', '-')} cannot be negative")


@dataclass
class Fetched:
    cand: dict
    data: bytes | None = None
    info: CheckedImage | None = None
    error: str | None = None
    permanent: bool = True
    stored_path: str | None = None   # set when a Ray worker stored the file already (data is then None)


def download_one(session: requests.Session, cand: dict, settings: ScrapeSettings,
                 stop: threading.Event | None = None) -> Fetched:
    """Download and validate one candidate; never raises for a bad URL or image."""
    try:
        data = fetch(cand["url"], settings.limits, stop=stop)
        info = check_image(data, min_side=settings.min_side, max_bytes=settings.limits.max_bytes)
    except FetchError as exc:
        return Fetched(cand, error=exc.reason, permanent=exc.permanent)
    except ImageRejected as exc:
        return Fetched(cand, error=str(exc), permanent=True)
    except Exception as exc:  # a worker must report, not die; the next run tries again
        return Fetched(cand, error=f"unexpected error ({type(exc).__name__}: {exc})", permanent=False)
    return Fetched(cand, data=data, info=info)


class DownloadPool:
    """A bounded pool of daemon worker threads, each with its own HTTP session.

    Daemon threads, so Ctrl-C never waits for a slow download to time out.
    """

    def __init__(self, settings: ScrapeSettings):
        self.settings = settings
        self.stop = threading.Event()
        self._in: queue.Queue = queue.Queue()
        self._out: queue.Queue = queue.Queue()
        self._threads = [threading.Thread(target=self._work, name=f"download-{i}", daemon=True)
                         for i in range(settings.workers)]
        for t in self._threads:
            t.start()

    def _work(self) -> None:
        session = new_session()
        while not self.stop.is_set():
            cand = self._in.get()
            if cand is None:
                break
            self._out.put(download_one(session, cand, self.settings, self.stop))
        session.close()

    def run(self, cands: list[dict]) -> Iterator[Fetched]:
        """Download `cands`, yielding each result as it completes."""
        for c in cands:
            self._in.put(c)
        for _ in cands:
            while True:
                try:
                    # A timeout keeps the main thread responsive to Ctrl-C.
                    yield self._out.get(timeout=0.25)
                    break
                except queue.Empty:
                    continue

    def close(self) -> None:
        self.stop.set()
        try:
            while True:
                self._in.get_nowait()
        except queue.Empty:
            pass
        for _ in self._threads:
            self._in.put(None)
