"""The command-line options every job that can scale out shares."""
from __future__ import annotations

from hashtag_workbench.core.errors import InputError

ENGINES = ("local", "ray")


def add_engine_options(p) -> None:
    """--engine and --address on a job's parser (its --workers says what a worker is there)."""
    p.add_argument("--engine", choices=ENGINES, default="local",
                   help="where the work runs: this process (local, default) or a Ray cluster (ray)")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join with --engine ray (default $RAY_ADDRESS; with neither, a local "
                        "Ray is started for the job and stopped after)")


def check_engine(engine: str, workers: int) -> None:
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
