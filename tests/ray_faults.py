"""Ray tasks that kill their own worker process, for the fault tests in test_ray.py.

A module of its own, so the fresh worker processes Ray starts after each death import
only this and the download task (not torch or pytest).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import ray

from hashtag_workbench.jobs.engines.ray_scrape import TASK_RETRIES, store_download


@ray.remote(max_retries=TASK_RETRIES)
def dying_download(home: str, cand: dict, settings):
    """Kills its worker on the first try of a URL containing 'die-once' and on every try of 'die-always'."""
    marker = Path(home) / f".died-{hashlib.sha256(cand['url'].encode()).hexdigest()[:16]}"
    if "die-always" in cand["url"] or ("die-once" in cand["url"] and not marker.exists()):
        marker.touch()
        os._exit(1)
    return store_download(home, cand, settings)
