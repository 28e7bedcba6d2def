"""`scrape-images --engine ray`: downloads and validation run as Ray tasks.

The driver keeps everything that must stay in one place: the search (one polite stream
per word, the local job's pacing and block handling) and every warehouse write. Each
task downloads one candidate with the local job's own `download_one` (same SSRF rules and
byte caps, carried in the settings), stores a valid image in the content-addressed store
(atomic, idempotent by SHA-256, so a retried task is harmless) and returns its metadata.
"""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import ray

from hashtag_workbench.infra.http import new_session
from hashtag_workbench.jobs.download import Fetched, ScrapeSettings, download_one
from hashtag_workbench.jobs.engines.cluster import ray_cluster, require_cpus
from hashtag_workbench.warehouse.store import put_image

TASK_RETRIES = 2      # a task whose worker process died is run again this often, then its URL fails
_session = None       # one HTTP session per worker process, reused by its tasks


def store_download(home: str, cand: dict, settings: ScrapeSettings) -> Fetched:
    """One task's work: download and check `cand`, store a valid image, return its metadata."""
    global _session
    if _session is None:
        _session = new_session()
    f = download_one(_session, cand, settings)
    if f.info is None:
        return f
    rel = put_image(Path(home), f.info.sha256, f.info.ext, f.data)
    return dataclasses.replace(f, data=None, stored_path=rel)  # the bytes stay on the worker's side


# A task whose worker process dies (killed, out of memory) is run again by Ray, up to TASK_RETRIES times.
download_and_store = ray.remote(max_retries=TASK_RETRIES)(store_download)


class RayDownloadPool:
    """The local DownloadPool's interface (run, close) with Ray tasks doing the downloads."""

    def __init__(self, home: Path, settings: ScrapeSettings, *, address: str | None, run=None):
        self.home, self.settings = str(home), settings
        self._stack = contextlib.ExitStack()
        info = self._stack.enter_context(ray_cluster(address=address, cpus=settings.workers))
        try:
            require_cpus(info, 1, "a download task")
        except BaseException:
            self._stack.close()
            raise
        self.info = info
        self.task = download_and_store
        self._inflight: dict = {}
        if run is not None:
            run.extra["ray_address"] = info["address"]
            run.log(f"downloads on Ray ({info['address']}, {info['cpus']} CPUs), up to {settings.workers} at once")

    def run(self, cands: list[dict]) -> Iterator[Fetched]:
        """Download `cands`, at most `workers` at a time, yielding each result as it completes."""
        queue = list(reversed(cands))
        while queue or self._inflight:
            while queue and len(self._inflight) < self.settings.workers:
                cand = queue.pop()
                self._inflight[self.task.remote(self.home, cand, self.settings)] = cand
            # A timeout keeps the driver responsive to Ctrl-C.
            ready, _ = ray.wait(list(self._inflight), num_returns=1, timeout=0.25)
            for ref in ready:
                cand = self._inflight.pop(ref)
                yield self._result(ref, cand)

    def _result(self, ref, cand: dict) -> Fetched:
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # the task raised (e.g. the store's disk is full)
            cause = exc.cause if isinstance(exc.cause, BaseException) else exc
            return Fetched(cand, error=f"download task failed ({type(cause).__name__}: {str(cause)[:200]})",
                           permanent=False)
        except ray.exceptions.RayError as exc:  # its worker kept dying: a failed row, never a crashed job
            return Fetched(cand, error=f"download worker failed {TASK_RETRIES + 1} times ({type(exc).__name__})",
                           permanent=False)

    def close(self) -> None:
        for ref in list(self._inflight):
            ray.cancel(ref, force=True)
        self._inflight.clear()
        self._stack.close()
