"""One thread runs the models; requests that arrive together share one call.

Several inferences at once would only fight over the cores, so concurrent requests queue here
and the worker takes all that are waiting (up to `max_batch` images) as one call of the service
function. (On this project's 2-core CPU the CNN costs about the same per image at batch 1 and 8,
~10-13 ms with one ONNX Runtime thread, so sharing a call saves the per-call work, not the CNN's.)
Requests with other models, options or an explicit seed go in their own group, so a seeded
request gets the hashtags it would get alone.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from threadpoolctl import threadpool_limits

from hashtag_workbench.core.predictor import LoadedModel
from hashtag_workbench.service.predictions import Photo, predict_photos


@dataclass
class Job:
    photos: list[Photo]
    supervised: LoadedModel | None
    zero_shot: LoadedModel | None
    hashtags: dict[str, list[str]]
    seed: int | None
    options: dict
    future: Future = field(default_factory=Future)

    def group(self) -> tuple:
        own = id(self) if self.seed is not None else None
        return (id(self.supervised), id(self.zero_shot), id(self.hashtags), self.seed, own,
                tuple(sorted(self.options.items())))


class Batcher:
    def __init__(self, record: Callable[[list[dict]], None], max_batch: int = 32):
        self._record, self.max_batch = record, max_batch
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.batches = 0

    def submit(self, photos: list[Photo], *, supervised: LoadedModel | None, zero_shot: LoadedModel | None,
               hashtags: dict[str, list[str]], seed: int | None = None, **options) -> Future:
        """A future of the per-image result objects for `photos` (service.predictions.predict_photos)."""
        job = Job(photos, supervised, zero_shot, hashtags, seed, options)
        self._queue.put(job)
        return job.future

    def _take(self) -> list[Job] | None:
        """The next job and every one already waiting behind it, up to max_batch images; None: stop."""
        first = self._queue.get()
        if first is None:
            return None
        jobs, n = [first], len(first.photos)
        while n < self.max_batch:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)  # stop after this batch
                break
            jobs.append(job)
            n += len(job.photos)
        return jobs

    def _run(self) -> None:
        # The models' own matrix products are small (a batch x ~1000 x 300): BLAS threads only wait on each
        # other, and on a busy 2-core machine a batch of 8 took ~100 ms in ConSE with 2 threads, ~2 ms with 1.
        # The CNN keeps its own thread pool (ONNX Runtime or torch), which this does not touch.
        with threadpool_limits(limits=1, user_api="blas"):
            self._loop()

    def _loop(self) -> None:
        while (jobs := self._take()) is not None:
            groups: dict[tuple, list[Job]] = {}
            for job in jobs:
                groups.setdefault(job.group(), []).append(job)
            for group in groups.values():
                self._predict(group)
            self.batches += 1

    def _predict(self, group: list[Job]) -> None:
        head = group[0]
        try:
            results, rows = predict_photos([p for j in group for p in j.photos], supervised=head.supervised,
                                           zero_shot=head.zero_shot, hashtags=head.hashtags, seed=head.seed,
                                           **head.options)
        except Exception as exc:  # a broken model: every waiting request hears of it, the worker lives on
            for job in group:
                job.future.set_exception(exc)
            return
        start = 0
        for job in group:
            job.future.set_result(results[start:start + len(job.photos)])
            start += len(job.photos)
        self._record(rows)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="predictor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        if self._thread:
            self._thread.join(timeout=60)
