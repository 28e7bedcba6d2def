"""`serve`: the HTTP prediction API (FastAPI + uvicorn) over the same service function as `predict`.

The server is one recorded run (kind `serve`): the predictions it records name it, and its
counts (requests, images, predictions recorded) are stored when it stops. Before serving, the
default zero-shot model over the current vocabulary is built if missing (as `predict` does);
afterwards the server only reads the warehouse, apart from the batched prediction records and
a rebuild of that model after a vocabulary edit.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from hashtag_workbench.api.settings import ENV_SETTINGS, ENV_TOKEN, RELOAD_EVERY, Settings, check_bind, token_from_env
from hashtag_workbench.core.config import option
from hashtag_workbench.core.errors import InputError
from hashtag_workbench.infra.locks import turn
from hashtag_workbench.jobs.common import RuntimeConfig, ensure_ready
from hashtag_workbench.jobs.runner import JobResult, job_run
from hashtag_workbench.warehouse.evaluations import count_predictions

HELP = "serve the prediction API over HTTP (FastAPI + uvicorn) on 127.0.0.1"
DESCRIPTION = (
    "An HTTP API over the same models and code as `predict`: POST /v1/predict with "
    "multipart 'image' fields or JSON {\"urls\": [...]}; GET /healthz, /v1/models, "
    "/v1/words; docs at /docs. Models load once and are reloaded when a newer one "
    "is trained. Any address but loopback needs a token."
)

BUILD_WAIT_S = 600  # workers wait this long for another worker building the same zero-shot model
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


@dataclass(frozen=True)
class ServeConfig:
    host: str = option("127.0.0.1", "address to bind (any but loopback needs a token)")
    port: int = option(8000, "port")
    workers: int = option(1, "server processes (each loads the models and gets its share of --threads)")
    token: str | None = option(None, f"bearer token every request but /healthz must send (default: ${ENV_TOKEN})")
    reload_every: float = option(RELOAD_EVERY, "seconds between the cheap checks for a newer model or vocabulary")
    cors_origin: tuple[str, ...] = option((), "allow browser pages from these origins, comma-separated "
                                              "(default: CORS off)", metavar="ORIGIN,...")
    log_level: str = option("info", "uvicorn's log level (debug also logs every request)", choices=LOG_LEVELS)


CONFIGS = (ServeConfig, RuntimeConfig)


def rebuild_zero_shot(home: Path) -> dict:
    """The default zero-shot model over the current vocabulary, built by one worker at a time."""
    from hashtag_workbench.jobs.train import ensure_zero_shot
    with turn(Path(home) / "zero-shot-build", BUILD_WAIT_S):
        return ensure_zero_shot(home)


def app_from_env():
    """uvicorn's factory for `--workers N`: each worker process builds its app from the settings passed down."""
    from hashtag_workbench.api.app import create_app
    return create_app(Settings.from_env(refresh_zero_shot=rebuild_zero_shot))


def _serve(args, settings: Settings, run) -> None:
    import uvicorn

    from hashtag_workbench.api.app import create_app
    common = dict(host=args.host, port=args.port, log_level=args.log_level, access_log=args.log_level == "debug")
    try:
        if args.workers == 1:
            app = create_app(settings)
            print(f"[serve] ready: http://{args.host}:{args.port}/docs (Ctrl-C to stop)", file=sys.stderr, flush=True)
            try:
                uvicorn.run(app, **common)
            finally:
                run.count("done", app.state.stats["images"])
                run.extra.update(requests=app.state.stats["requests"], dropped=app.state.recorder.stats()["dropped"])
        else:
            os.environ[ENV_SETTINGS] = settings.to_env()
            if settings.token:
                os.environ[ENV_TOKEN] = settings.token
            uvicorn.run("hashtag_workbench.jobs.serve:app_from_env", factory=True, workers=args.workers, **common)
    except KeyboardInterrupt:  # uvicorn hands Ctrl-C / SIGTERM on after its clean shutdown: a normal stop
        pass


def run_command(args) -> JobResult:
    token = args.token or token_from_env()
    check_bind(args.host, token)  # before anything loads: an exposed server without a token never starts
    if args.workers < 1:
        raise InputError(f"--workers must be at least 1, got {args.workers}")
    if args.reload_every <= 0:
        raise InputError(f"--reload-every must be positive, got {args.reload_every}")
    ensure_ready(args.home)
    rebuild_zero_shot(args.home)
    config = {"host": args.host, "port": args.port, "workers": args.workers, "runtime": args.runtime,
              "token": bool(token), "reload_every": args.reload_every, "cors_origins": args.cors_origin}
    with job_run(args.home, "serve", config) as run:
        settings = Settings(home=args.home, token=token, reload_every=args.reload_every, runtime=args.runtime,
                            threads=max(1, args.threads // args.workers), cors_origins=tuple(args.cors_origin),
                            run_id=run.run_id, refresh_zero_shot=rebuild_zero_shot)
        _serve(args, settings, run)
        run.extra["predictions_recorded"] = count_predictions(args.home, run.run_id)  # every worker's
        return JobResult(data={"run_id": run.run_id, **run.all_counts()})
