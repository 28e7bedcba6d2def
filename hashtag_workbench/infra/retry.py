"""One retry policy for every network call: bounded tries, exponential backoff with jitter (tenacity)."""
from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import tenacity

T = TypeVar("T")


def backoff_delay(base: float, attempt: int) -> float:
    """Exponential backoff with jitter: about base, 2*base, 4*base, ... for attempt 0, 1, 2, ..."""
    return base * (2 ** attempt) * (0.75 + 0.5 * random.random())


def retry_call(fn: Callable[[], T], *, retries: int, backoff: float,
               retry_on: Callable[[BaseException], bool], sleep: Callable[[float], object] | None = None,
               stop: threading.Event | None = None) -> T:
    """fn(), tried again up to `retries` times after a failure `retry_on` accepts; the last failure is raised.

    With `stop`, waits end early when it is set and no further try starts, so a stopping job is not
    held up by a sleeping worker.
    """
    if sleep is None:
        sleep = stop.wait if stop is not None else time.sleep
    last: list[BaseException] = []

    def attempt() -> T:
        if last and stop is not None and stop.is_set():
            raise last[-1]
        try:
            return fn()
        except BaseException as exc:
            last[:] = [exc]
            raise

    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max(0, retries) + 1),
        wait=lambda state: backoff_delay(backoff, state.attempt_number - 1),
        retry=tenacity.retry_if_exception(retry_on), sleep=sleep, reraise=True)(attempt)
