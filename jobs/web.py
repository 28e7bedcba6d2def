"""HTTP plumbing shared by the collectors: base URLs, one User-Agent, polite spacing, safe downloads."""
from __future__ import annotations

import os
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin

import requests

from core.urlcheck import UnsafeURL, allow_private_default, check_url

ENV_DDG_URL = "HASHTAG_DDG_URL"
ENV_ALLHASHTAG_URL = "HASHTAG_ALLHASHTAG_URL"
DEFAULT_DDG_URL = "https://duckduckgo.com"
DEFAULT_ALLHASHTAG_URL = "https://www.all-hashtag.com"

# One fixed User-Agent for every request (search pages, JSON and image downloads alike).
USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0 "
              "hashtag-workbench/1.0")

# A host answering these may heal; anything else in 4xx (403, 404, 410, ...) will not, so never retry it.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
STATUS_WORDS = {401: "login required", 403: "forbidden", 404: "not found", 410: "gone",
                429: "too many requests", 500: "server error", 502: "bad gateway",
                503: "service unavailable", 504: "gateway timeout"}


def ddg_base_url() -> str:
    """DuckDuckGo's base URL: $HASHTAG_DDG_URL, else https://duckduckgo.com (read on each call)."""
    return (os.environ.get(ENV_DDG_URL) or DEFAULT_DDG_URL).rstrip("/")


def allhashtag_base_url() -> str:
    """all-hashtag.com's base URL: $HASHTAG_ALLHASHTAG_URL, else https://www.all-hashtag.com."""
    return (os.environ.get(ENV_ALLHASHTAG_URL) or DEFAULT_ALLHASHTAG_URL).rstrip("/")


def new_session() -> requests.Session:
    s = requests.Session()
    s.headers["User-Agent"] = USER_AGENT
    return s


def describe_status(status: int) -> str:
    word = STATUS_WORDS.get(status)
    return f"HTTP {status}" + (f" ({word})" if word else "")


class Spacer:
    """Lets one request through at a time, at least `interval` seconds after the previous one."""

    def __init__(self, interval: float):
        self.interval = max(0.0, interval)
        self._lock = threading.Lock()
        self._last = float("-inf")

    def wait(self) -> None:
        with self._lock:
            delay = self._last + self.interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._last = time.monotonic()


def backoff_delay(base: float, attempt: int) -> float:
    """Exponential backoff with jitter: about base, 2*base, 4*base, ... for attempt 0, 1, 2, ..."""
    return base * (2 ** attempt) * (0.75 + 0.5 * random.random())


class DownloadError(Exception):
    """A download failed; `permanent` says whether trying the URL again is pointless."""

    def __init__(self, reason: str, *, permanent: bool):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class DownloadLimits:
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    deadline: float = 60.0        # the whole download, so a trickling server cannot hold a worker forever
    max_bytes: int = 20 * 1024 * 1024
    retries: int = 2              # extra tries after the first, for transient failures only
    backoff: float = 1.0
    max_redirects: int = 3
    # Search results name arbitrary hosts: private, loopback and link-local ones are refused
    # unless $HASHTAG_ALLOW_PRIVATE_URLS=1 (a local image server you trust, or the tests' fake site).
    allow_private: bool = field(default_factory=allow_private_default)


def _resolve(host: str, port: int) -> list[str]:
    return sorted({info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


def _get_checked(session: requests.Session, url: str, lim: DownloadLimits) -> requests.Response:
    """GET with every hop's address checked first, so a result or a redirect cannot reach inside."""
    for _ in range(lim.max_redirects + 1):
        try:
            check_url(url, resolve=None if lim.allow_private else _resolve, allow_private=lim.allow_private)
        except UnsafeURL as exc:
            raise DownloadError(f"refused: {exc}", permanent=True) from None
        r = session.get(url, timeout=(lim.connect_timeout, lim.read_timeout), stream=True, allow_redirects=False)
        if r.is_redirect and r.headers.get("Location"):
            r.close()
            url = urljoin(url, r.headers["Location"])
            continue
        return r
    raise DownloadError(f"more than {lim.max_redirects} redirects", permanent=True)


def _fetch_once(session: requests.Session, url: str, lim: DownloadLimits) -> bytes:
    try:
        with _get_checked(session, url, lim) as r:
            if r.status_code != 200:
                transient = r.status_code in TRANSIENT_STATUSES
                raise DownloadError(describe_status(r.status_code), permanent=not transient)
            ctype = (r.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype.startswith("text/") or ctype in ("application/json", "application/xhtml+xml"):
                raise DownloadError(f"the server sent a {ctype} page, not an image", permanent=True)
            length = r.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > lim.max_bytes:
                raise DownloadError(f"too large ({int(length) / 1e6:.1f} MB > {lim.max_bytes / 1e6:.0f} MB)",
                                    permanent=True)
            buf = bytearray()
            deadline = time.monotonic() + lim.deadline
            for chunk in r.iter_content(64 * 1024):
                buf += chunk
                if len(buf) > lim.max_bytes:
                    raise DownloadError(f"too large (more than {lim.max_bytes / 1e6:.0f} MB)", permanent=True)
                if time.monotonic() > deadline:
                    raise DownloadError(f"download took longer than {lim.deadline:.0f} s", permanent=False)
            return bytes(buf)
    except DownloadError:
        raise
    except requests.exceptions.ConnectTimeout:
        raise DownloadError(f"could not connect within {lim.connect_timeout:g} s", permanent=False) from None
    except requests.exceptions.ReadTimeout:
        raise DownloadError(f"the server did not answer within {lim.read_timeout:g} s", permanent=False) from None
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema, requests.exceptions.TooManyRedirects,
            requests.exceptions.SSLError) as exc:
        raise DownloadError(f"unusable URL ({type(exc).__name__}: {exc})", permanent=True) from None
    except requests.exceptions.RequestException as exc:
        text = str(exc)
        if "timed out" in text.lower():
            raise DownloadError(f"the server stopped sending within {lim.read_timeout:g} s", permanent=False) from None
        raise DownloadError(f"network error ({type(exc).__name__}: {text[:200]})", permanent=False) from None


def fetch_bytes(session: requests.Session, url: str, lim: DownloadLimits,
                stop: threading.Event | None = None) -> bytes:
    """GET `url` fully (streamed, capped), retrying transient failures with backoff.

    Raises DownloadError; 4xx answers other than 408/425/429 are never retried.
    """
    last: DownloadError | None = None
    for attempt in range(lim.retries + 1):
        if attempt:
            # Wait in small steps so a stopping job is not held up by a sleeping worker.
            end = time.monotonic() + backoff_delay(lim.backoff, attempt - 1)
            while time.monotonic() < end:
                if stop is not None and stop.is_set():
                    raise last  # type: ignore[misc]
                time.sleep(min(0.05, max(0.0, end - time.monotonic())))
        try:
            return _fetch_once(session, url, lim)
        except DownloadError as exc:
            if exc.permanent:
                raise
            last = exc
    assert last is not None
    tries = lim.retries + 1
    raise DownloadError(f"{last.reason} ({tries} {'try' if tries == 1 else 'tries'})", permanent=False)
