"""The command-line options every job that can scale out shares."""
from __future__ import annotations

from dataclasses import dataclass

from hashtag_workbench.core.config import option
from hashtag_workbench.core.errors import InputError

ENGINES = ("local", "ray")


@dataclass
class EngineConfig:
    """--engine and --address of a job that can scale out (its --workers says what a worker is there)."""
    engine: str = option("local", "where the work runs: this process (local) or a Ray cluster (ray)", choices=ENGINES)
    address: str | None = option(None, "Ray cluster to join with --engine ray (default $RAY_ADDRESS; with neither, "
                                 "a local Ray is started for the job and stopped after)")


def check_engine(engine: str, workers: int) -> None:
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
