"""A predict request's photos as (name, bytes): multipart `image` uploads, or JSON {"urls": [...]}
fetched through the project's one safe fetcher (infra.http, the Predict page's rules)."""
from __future__ import annotations

import asyncio
import json

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from hashtag_workbench.api.guard import BodyTooLarge
from hashtag_workbench.infra.http import FetchError, fetch_image_bytes

NAME_CHARS = 200  # a client's file name is only echoed back, never used as a path


class ApiError(Exception):
    """A request the API refuses: the status and one line saying what to fix."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


async def read_inputs(request: Request, settings) -> list[tuple[str, bytes]]:
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    try:
        if ctype == "multipart/form-data":
            return await _uploads(request, settings)
        if ctype == "application/json":
            return await _fetch_all(_urls(await request.body(), settings.max_images), settings)
    except BodyTooLarge as exc:
        raise ApiError(413, str(exc)) from None
    raise ApiError(415, "send photos as multipart/form-data fields named 'image', or JSON {\"urls\": [...]} "
                        f"(got content type {ctype or 'none'})")


def _count_ok(n: int, max_images: int, what: str) -> None:
    if n == 0:
        raise ApiError(400, f"no {what}: send at least one")
    if n > max_images:
        raise ApiError(400, f"too many {what}: {n} (at most {max_images} per request)")


async def _uploads(request: Request, settings) -> list[tuple[str, bytes]]:
    form = await request.form(max_files=settings.max_images + 1, max_fields=settings.max_images + 8)
    try:
        items = form.getlist("image")
        _count_ok(len(items), settings.max_images, "'image' fields")
        out = []
        for i, item in enumerate(items, 1):
            if isinstance(item, str):
                raise ApiError(400, f"image {i}: a text field, not a file upload")
            name = (item.filename or f"image {i}")[:NAME_CHARS]
            data = await item.read(settings.max_image_bytes + 1)
            if len(data) > settings.max_image_bytes:
                raise ApiError(413, f"image {i} ({name}): larger than {settings.max_image_bytes / 1e6:.0f} MB")
            out.append((name, data))
        return out
    finally:
        await form.close()


def _urls(body: bytes, max_images: int) -> list[str]:
    try:
        payload = json.loads(body)
    except ValueError:
        raise ApiError(400, "the body is not valid JSON") from None
    urls = payload.get("urls") if isinstance(payload, dict) else None
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise ApiError(400, 'the JSON body must be {"urls": ["https://...", ...]}')
    _count_ok(len(urls), max_images, "urls")
    return urls


async def _fetch_all(urls: list[str], settings) -> list[tuple[str, bytes]]:
    async def one(i: int, url: str) -> tuple[str, bytes]:
        try:
            return url, await run_in_threadpool(fetch_image_bytes, url, allow_private=settings.allow_private,
                                                max_bytes=settings.max_image_bytes)
        except FetchError as exc:  # the other side failed (try again later) or the URL is unusable (fix it)
            raise ApiError(422 if exc.permanent else 502, f"url {i} ({url[:NAME_CHARS]}): {exc.reason}") from None
    return list(await asyncio.gather(*(one(i, u) for i, u in enumerate(urls, 1))))
