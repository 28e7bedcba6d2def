"""The endpoints: /healthz, /v1/models, /v1/words, /v1/predict (OpenAPI docs at /docs)."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from hashtag_workbench.api.inputs import ApiError, read_inputs
from hashtag_workbench.api.models import UnknownModel
from hashtag_workbench.api.settings import MAX_TAGS
from hashtag_workbench.core.hashtags import DEFAULT_N_TAGS
from hashtag_workbench.core.kinds import KINDS
from hashtag_workbench.core.predictor import ModelLoadError
from hashtag_workbench.service.predictions import ROLES, read_photo

router = APIRouter()

PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
        "image": {"type": "array", "items": {"type": "string", "format": "binary"},
                  "description": "one or more photos, each a field named 'image'"}}}},
    "application/json": {"schema": {"type": "object", "required": ["urls"], "properties": {
        "urls": {"type": "array", "items": {"type": "string"},
                 "description": "http(s) image URLs, fetched with the Predict page's rules"}}}}}}}


def _brief(model) -> dict | None:
    return None if model is None else {"model_id": model.model_id, "kind": model.kind, "name": model.name,
                                       "words": len(model.classes)}


@router.get("/healthz", summary="Liveness and the models loaded (no token needed)")
def healthz(request: Request) -> dict:
    st = request.app.state
    snap = st.store.current
    return {"status": "ok", "models": {role: _brief(m) for role, m in snap.defaults().items()},
            "reloads": st.store.reloads, "limits": st.settings.limits(), "recorder": st.recorder.stats(),
            "served": dict(st.stats)}


@router.get("/v1/models", summary="Every stored model: kind, words, measured top-1, training run")
def models(request: Request) -> dict:
    snap = request.app.state.store.current
    default_ids = {m.model_id for m in snap.defaults().values() if m is not None}
    out = []
    for mid, rec in sorted(snap.records.items()):
        score = snap.scores.get(mid)
        out.append({"model_id": mid, "training_run_id": mid, "kind": rec["kind"], "role": KINDS[rec["kind"]].role,
                    "name": rec["name"], "words": rec["classes"], "top1": score["top1"] if score else None,
                    "top5": score["top5"] if score else None, "evaluation": score,
                    "default": mid in default_ids, "created_at": str(rec["created_at"])})
    return {"models": out}


@router.get("/v1/words", summary="The active vocabulary and each word's hashtags")
def words(request: Request) -> dict:
    snap = request.app.state.store.current
    return {"words": [{"word": w, "hashtags": snap.hashtags.get(w, [])} for w in snap.words]}


def _model_ids(model: str | None) -> list[int]:
    try:
        return [int(m) for m in (model or "").split(",") if m.strip()]
    except ValueError:
        raise ApiError(400, f"model must be a model id or two, comma-separated (got {model!r})") from None


@router.post("/v1/predict", openapi_extra=PREDICT_BODY,
             summary="Top-5 words and hashtags per photo (the objects `hashtags predict --json` prints)")
async def predict(request: Request,
                  hashtags: int = Query(DEFAULT_N_TAGS, ge=1, le=MAX_TAGS, description="hashtags per model"),
                  model: str | None = Query(None, description="model id(s) instead of the defaults, e.g. 12 or 12,15"),
                  seed: int | None = Query(None, description="seed for the hashtag sampling (default random)")) -> dict:
    st = request.app.state
    snap = st.store.current
    ids = _model_ids(model)
    try:  # a model asked for by id may have to load first: off the event loop
        chosen = await run_in_threadpool(st.store.pick, snap, ids) if ids else snap.defaults()
    except UnknownModel as exc:
        raise ApiError(404, str(exc)) from None
    except ModelLoadError as exc:  # the server's files, not the request: say so, stay up
        raise ApiError(503, str(exc)) from None
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    inputs = await read_inputs(request, st.settings)
    photos = await run_in_threadpool(lambda: [read_photo(n, d, max_bytes=st.settings.max_image_bytes)
                                              for n, d in inputs])
    bad = [(i, p) for i, p in enumerate(photos, 1) if p.error]
    if bad:
        i, p = bad[0]
        more = f" (and {len(bad) - 1} more unusable)" if len(bad) > 1 else ""
        raise ApiError(422, f"image {i} ({p.name}): {p.error}{more}")
    future = st.batcher.submit(photos, hashtags=snap.hashtags, seed=seed, n_tags=hashtags, **chosen)
    results = await asyncio.wrap_future(future)
    st.stats["requests"] += 1
    st.stats["images"] += len(photos)
    return {"results": results, "models": {r: (chosen[r].model_id if chosen[r] else None) for r in ROLES}}
