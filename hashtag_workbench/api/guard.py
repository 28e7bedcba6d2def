"""The gate every request passes: the bearer token (when one is set) and the cap on the body's size.

A plain ASGI middleware so the body is counted as it streams in: a client that sends no
Content-Length, or a false one, is cut off at the cap all the same.
"""
from __future__ import annotations

import hmac

from starlette.responses import JSONResponse

OPEN_PATHS = frozenset({"/healthz"})  # load balancers and monitors ask without the token


class BodyTooLarge(Exception):
    """The request body went past the cap."""


def error_response(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class Guard:
    def __init__(self, app, *, token: str | None, max_body: int):
        self.app, self.max_body = app, max_body
        self._token = token.encode() if token else None

    def _authorised(self, scope) -> bool:
        given = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, value = given.partition(b" ")
        # compare_digest takes the same time wherever the first wrong byte is
        return scheme.lower() == b"bearer" and hmac.compare_digest(value.strip(), self._token)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self._token and scope["path"] not in OPEN_PATHS and not self._authorised(scope):
            reply = error_response(401, "missing or wrong token: send the header 'Authorization: Bearer <token>'",
                                   {"WWW-Authenticate": "Bearer"})
            return await reply(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await error_response(413, self._too_large())(scope, receive, send)
        return await self.app(scope, self._capped(receive), send)

    def _too_large(self) -> str:
        return f"request body larger than {self.max_body / 1e6:.0f} MB"

    def _capped(self, receive):
        seen = 0

        async def capped():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise BodyTooLarge(self._too_large())
            return message
        return capped
