"""Fetch one image URL for the Predict page: http(s) only, public addresses only, size and time limits.

The safety rules live in core.urlcheck (pure); this module does the network part and
checks every redirect hop again. Private, loopback and link-local hosts are refused
unless HASHTAG_ALLOW_PRIVATE_URLS=1 is set (for a local image server you trust).
"""
from __future__ import annotations

import os
import socket
import time
from urllib.parse import urljoin

import requests

from core.urlcheck import UnsafeURL, check_url

MAX_BYTES = 10 * 1024 * 1024
TIMEOUT_S = 15.0
MAX_REDIRECTS = 3
USER_AGENT = "hashtag-workbench/1.0 (+image prediction)"
ENV_ALLOW_PRIVATE = "HASHTAG_ALLOW_PRIVATE_URLS"


class FetchError(ValueError):
    """The URL could not be fetched as an image; the message says why."""


def allow_private_default() -> bool:
    return os.environ.get(ENV_ALLOW_PRIVATE, "").strip().lower() in ("1", "true", "yes")


def _resolve(host: str, port: int) -> list[str]:
    return sorted({info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


def fetch_image_bytes(url: str, *, allow_private: bool | None = None, max_bytes: int = MAX_BYTES,
                      timeout_s: float = TIMEOUT_S, max_redirects: int = MAX_REDIRECTS) -> bytes:
    """The body at `url`, at most `max_bytes`, within `timeout_s` overall. Raises FetchError."""
    allow = allow_private_default() if allow_private is None else allow_private
    deadline = time.monotonic() + timeout_s
    current = url.strip() if isinstance(url, str) else url
    for _hop in range(max_redirects + 1):
        try:
            check_url(current, resolve=_resolve, allow_private=allow)
        except UnsafeURL as exc:
            raise FetchError(str(exc)) from None
        left = deadline - time.monotonic()
        if left <= 0:
            raise FetchError(f"timed out after {timeout_s:.0f} s")
        try:
            resp = requests.get(current, stream=True, allow_redirects=False, timeout=(min(5.0, left), left),
                                headers={"User-Agent": USER_AGENT, "Accept": "image/*"})
        except requests.RequestException as exc:
            raise FetchError(f"could not fetch the URL ({type(exc).__name__}: {exc})") from None
        with resp:
            if resp.is_redirect or resp.status_code in (301, 302, 303, 307, 308):
                loc = resp.headers.get("Location")
                if not loc:
                    raise FetchError(f"redirect ({resp.status_code}) without a target")
                current = urljoin(current, loc)
                continue
            if resp.status_code != 200:
                raise FetchError(f"the server answered {resp.status_code} {resp.reason or ''}".strip())
            declared = resp.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"the file is too large ({int(declared) / 1e6:.1f} MB > {max_bytes / 1e6:.0f} MB)")
            chunks, total = [], 0
            try:
                for chunk in resp.iter_content(64 * 1024):
                    total += len(chunk)
                    if total > max_bytes:
                        raise FetchError(f"the file is too large (over {max_bytes / 1e6:.0f} MB)")
                    if time.monotonic() > deadline:
                        raise FetchError(f"timed out after {timeout_s:.0f} s")
                    chunks.append(chunk)
            except requests.RequestException as exc:
                raise FetchError(f"the download broke off ({type(exc).__name__})") from None
            return b"".join(chunks)
    raise FetchError(f"too many redirects (more than {max_redirects})")
