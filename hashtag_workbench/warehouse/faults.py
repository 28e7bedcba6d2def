"""Deterministic crash points for crash-safety tests (inactive unless HASHTAG_CRASH_AFTER is set).

HASHTAG_CRASH_AFTER="label:n[,label:n...]" makes the process kill itself with SIGKILL
the n-th time it passes `crash_point(label)`: a real kill -9 at a chosen, repeatable
place, so tests can check that every job survives one there.
"""
from __future__ import annotations

import os
import signal
from collections import Counter

from hashtag_workbench.core.errors import InputError

ENV_CRASH = "HASHTAG_CRASH_AFTER"
_hits: Counter = Counter()
_plan: dict[str, int] | None = None
_plan_source: str | None = None


def _parse(spec: str) -> dict[str, int]:
    plan: dict[str, int] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        label, _, n = part.rpartition(":")
        if not label or not n.isdigit() or int(n) < 1:
            raise InputError(f"{ENV_CRASH}: expected label:n with n >= 1, got {part!r}")
        plan[label] = int(n)
    return plan


def crash_point(label: str) -> None:
    """Die by SIGKILL here if HASHTAG_CRASH_AFTER asks for it (tests only); otherwise nothing."""
    global _plan, _plan_source
    spec = os.environ.get(ENV_CRASH)
    if not spec:
        return
    if spec != _plan_source:  # re-read when the variable changes, so one process can be re-armed
        _plan, _plan_source = _parse(spec), spec
        _hits.clear()
    _hits[label] += 1
    if _plan.get(label) == _hits[label]:
        os.kill(os.getpid(), signal.SIGKILL)


def hits() -> dict[str, int]:
    """How often each crash point was passed in this process (for tests)."""
    return dict(_hits)
