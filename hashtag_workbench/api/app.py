"""The app factory: FastAPI over the shared service function, its threads, guards and error replies.

create_app loads the models before it returns (a broken model fails the start, not a request)
and starts three threads with the app: the model watcher, the predictor and the recorder.
Every refusal is a JSON {"error": "one line"} with a 4xx status; a 500 only ever means a bug.
"""
from __future__ import annotations

import contextlib
from collections import Counter

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware

from hashtag_workbench.api.batcher import Batcher
from hashtag_workbench.api.guard import Guard, error_response
from hashtag_workbench.api.inputs import ApiError
from hashtag_workbench.api.models import ModelStore, log
from hashtag_workbench.api.recorder import Recorder
from hashtag_workbench.api.routes import router
from hashtag_workbench.api.settings import Settings
from hashtag_workbench.infra.onnxrt import use_runtime

DESCRIPTION = ("Photo in, words and hashtags out: the best supervised model and zero-shot ConSE over your own "
               "vocabulary, the same objects `hashtags predict --json` prints. Limits: see GET /healthz.")


def _add_error_replies(app: FastAPI) -> None:
    async def api_error(request, exc: ApiError):
        return error_response(exc.status, exc.message)

    async def http_error(request, exc: HTTPException):
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    async def invalid(request, exc: RequestValidationError):
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}" for e in exc.errors()]
        return error_response(400, "; ".join(parts))

    async def bug(request, exc: Exception):
        log(f"internal error on {request.url.path}: {type(exc).__name__}: {exc}")
        return error_response(500, f"internal error ({type(exc).__name__}); the server log has the details")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(Exception, bug)


def create_app(settings: Settings) -> FastAPI:
    use_runtime(settings.home, settings.runtime, settings.threads)
    store = ModelStore(settings)
    recorder = Recorder(settings.home, settings.flush_every, run_id=settings.run_id)
    batcher = Batcher(recorder.add, settings.max_batch)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        for part in (recorder, batcher, store):
            part.start()
        try:
            yield
        finally:
            for part in (store, batcher, recorder):  # the recorder last: it writes what the others left
                part.stop()

    app = FastAPI(title="Hashtag workbench prediction API", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings, app.state.store, app.state.recorder, app.state.batcher = settings, store, recorder, batcher
    app.state.stats = Counter()
    app.include_router(router)
    _add_error_replies(app)
    app.add_middleware(Guard, token=settings.token, max_body=settings.max_body)
    if settings.cors_origins:  # added last, so it is outermost: preflights need no token
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    return app
