"""The one HTTP fetcher for URLs from outside (search results, the Predict page), and the collectors' plumbing.

`fetch` takes only http(s) URLs whose every address is public (core.urlcheck is the policy),
connects to exactly the address it checked (a name cannot answer a public address to the
check and a private one to the connection: DNS rebinding), while TLS still verifies the
certificate for the host name; checks every redirect hop again; caps the bytes; keeps one
overall deadline even against a server that trickles a byte at a time; and retries
transient failures with backoff (never 403/404). Private, loopback and link-local hosts
are refused unless $HASHTAG_ALLOW_PRIVATE_URLS=1 (a local image server you trust).
"""
from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.urlcheck import UnsafeURL, allow_private_default, check_url
from hashtag_workbench.infra.retry import retry_call

__all__ = ["FetchError", "FetchLimits", "fetch", "fetch_image_bytes", "allow_private_default", "new_session",
           "Spacer", "describe_status", "USER_AGENT", "TRANSIENT_STATUSES", "ddg_base_url", "allhashtag_base_url"]

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
REDIRECTS = (301, 302, 303, 307, 308)
CHUNK = 64 * 1024


def ddg_base_url() -> str:
    """DuckDuckGo's base URL: $HASHTAG_DDG_URL, else https://duckduckgo.com (read on each call)."""
    return (os.environ.get(ENV_DDG_URL) or DEFAULT_DDG_URL).rstrip("/")


def allhashtag_base_url() -> str:
    """all-hashtag.com's base URL: $HASHTAG_ALLHASHTAG_URL, else https://www.all-hashtag.com."""
    return (os.environ.get(ENV_ALLHASHTAG_URL) or DEFAULT_ALLHASHTAG_URL).rstrip("/")


def new_session() -> requests.Session:
    """A session for the configured sites (search, hashtags): the fixed User-Agent."""
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


class FetchError(InputError):
    """The URL could not be fetched; `reason` says why, `permanent` whether trying again is pointless."""

    def __init__(self, reason: str, *, permanent: bool = True):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class FetchLimits:
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    deadline: float = 60.0        # the whole download, so a trickling server cannot hold a worker forever
    max_bytes: int = 20 * 1024 * 1024
    retries: int = 2              # extra tries after the first, for transient failures only
    backoff: float = 1.0
    max_redirects: int = 3
    # Outside URLs name arbitrary hosts: private, loopback and link-local ones are refused
    # unless $HASHTAG_ALLOW_PRIVATE_URLS=1 (a local image server you trust, or the tests' fake site).
    allow_private: bool = field(default_factory=allow_private_default)


def _resolve(host: str, port: int) -> list[str]:
    return sorted({info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


class _PinnedAdapter(HTTPAdapter):
    """Connects to an address already checked, while TLS still verifies the certificate for the host name."""

    def __init__(self, host: str):
        self._host = host
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["server_hostname"] = self._host
        kwargs["assert_hostname"] = self._host
        super().init_poolmanager(*args, **kwargs)


def _checked_target(url: str, allow_private: bool) -> tuple[str, dict, str | None]:
    """(URL to request, extra headers, host name to pin) for one hop, after the safety check.

    The name is resolved once; the check and the connection use that same answer.
    """
    resolved: list[str] = []

    def resolve_once(host: str, port: int) -> list[str]:
        resolved[:] = _resolve(host, port)
        return resolved

    try:
        _scheme, host, port = check_url(url, resolve=None if allow_private else resolve_once,
                                        allow_private=allow_private)
    except UnsafeURL as exc:
        raise FetchError(f"refused: {exc}") from None
    if not resolved:               # an address literal, or private hosts allowed: nothing to pin
        return url, {}, None
    parts = urlsplit(url)
    addr = resolved[0]
    port_part = f":{parts.port}" if parts.port else ""
    netloc = (f"[{addr}]" if ":" in addr else addr) + port_part
    target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    return target, {"Host": parts.hostname + port_part}, host


@contextlib.contextmanager
def _open_hop(url: str, lim: FetchLimits, headers: dict, left: float) -> Iterator[requests.Response]:
    """GET one hop without following redirects; the response streams until the block ends."""
    target, extra, pin = _checked_target(url, lim.allow_private)
    with requests.Session() as session, _get(session, target, pin, lim, {**headers, **extra}, left) as r:
        yield r


def _get(session: requests.Session, target: str, pin: str | None, lim: FetchLimits, headers: dict,
         left: float) -> requests.Response:
    session.trust_env = False  # no proxies from the environment: the checked address is the one reached
    if pin:
        session.mount(f"{urlsplit(target).scheme}://", _PinnedAdapter(pin))
    try:
        return session.get(target, stream=True, allow_redirects=False, headers=headers,
                           timeout=(min(lim.connect_timeout, left), min(lim.read_timeout, left)))
    except requests.exceptions.ConnectTimeout:
        raise FetchError(f"could not connect within {min(lim.connect_timeout, left):.3g} s", permanent=False) from None
    except requests.exceptions.ReadTimeout:
        raise FetchError(f"the server did not answer within {min(lim.read_timeout, left):.3g} s",
                         permanent=False) from None
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema,
            requests.exceptions.SSLError) as exc:
        raise FetchError(f"unusable URL ({type(exc).__name__}: {exc})") from None
    except requests.exceptions.RequestException as exc:
        raise FetchError(f"network error: {network_reason(exc)}", permanent=False) from None


# What the nested urllib3 / socket message means, in words (the raw text is a page of repr()s).
_NETWORK_REASONS = (
    (("connection refused", "errno 111", "winerror 10061"), "the server refused the connection"),
    (("name or service not known", "nodename nor servname", "temporary failure in name resolution",
      "nameresolutionerror", "getaddrinfo failed", "no address associated"), "the host name could not be found (DNS)"),
    (("timed out", "timeout"), "the connection timed out"),
    (("connection reset", "connection aborted", "remotedisconnected", "broken pipe"),
     "the server closed the connection"),
    (("network is unreachable", "no route to host"), "the network is unreachable"),
)


def network_reason(exc: BaseException) -> str:
    """One short line for a failed connection (refused, DNS, timeout, reset), never the raw requests text."""
    text = f"{type(exc).__name__} {exc}".lower()
    for needles, reason in _NETWORK_REASONS:
        if any(n in text for n in needles):
            return reason
    return f"the connection failed ({type(exc).__name__})"


def _check_answer(r: requests.Response, lim: FetchLimits) -> None:
    if r.status_code != 200:
        raise FetchError(describe_status(r.status_code), permanent=r.status_code not in TRANSIENT_STATUSES)
    ctype = (r.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if ctype.startswith("text/") or ctype in ("application/json", "application/xhtml+xml"):
        raise FetchError(f"the server sent a {ctype} page, not usable as an image")
    length = r.headers.get("Content-Length")
    if length and length.isdigit() and int(length) > lim.max_bytes:
        raise FetchError(f"too large ({int(length) / 1e6:.1f} MB > {lim.max_bytes / 1e6:.0f} MB)")


def _read_body(r: requests.Response, lim: FetchLimits, deadline: float) -> bytes:
    """The body, at most max_bytes, by `deadline`: read1 returns whatever has arrived, so the deadline
    is checked between bytes of a trickling server; each wait is bounded by the time left."""
    buf = bytearray()
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise FetchError(f"the download timed out after {lim.deadline:g} s", permanent=False)
            _set_read_timeout(r, min(lim.read_timeout, left))
            chunk = r.raw.read1(CHUNK, decode_content=True)
            if not chunk:
                return bytes(buf)
            buf += chunk
            if len(buf) > lim.max_bytes:
                raise FetchError(f"too large (more than {lim.max_bytes / 1e6:.0f} MB)")
    except FetchError:
        raise
    except Exception as exc:  # requests, urllib3 and socket errors alike
        if time.monotonic() >= deadline:
            raise FetchError(f"the download timed out after {lim.deadline:g} s", permanent=False) from None
        if "timed out" in str(exc).lower() or isinstance(exc, (socket.timeout, TimeoutError)):
            raise FetchError(f"the server stopped sending within {lim.read_timeout:g} s", permanent=False) from None
        raise FetchError(f"the download broke off ({type(exc).__name__})", permanent=False) from None


def _set_read_timeout(r: requests.Response, seconds: float) -> None:
    """Shorten the socket's read timeout to the time left (best effort: urllib3 keeps the socket private)."""
    with contextlib.suppress(AttributeError):  # http.client response -> socket file -> socket
        r.raw._fp.fp.raw._sock.settimeout(max(0.05, seconds))


def _fetch_once(url: str, lim: FetchLimits, headers: dict) -> bytes:
    deadline = time.monotonic() + lim.deadline
    current = url.strip() if isinstance(url, str) else url
    for _hop in range(lim.max_redirects + 1):
        left = deadline - time.monotonic()
        if left <= 0:
            raise FetchError(f"the download timed out after {lim.deadline:g} s", permanent=False)
        with _open_hop(current, lim, headers, left) as r:
            if r.status_code in REDIRECTS:
                if not r.headers.get("Location"):
                    raise FetchError(f"redirect ({r.status_code}) without a target")
                current = urljoin(current, r.headers["Location"])
                continue
            _check_answer(r, lim)
            return _read_body(r, lim, deadline)
    raise FetchError(f"more than {lim.max_redirects} redirects")


def fetch(url: str, limits: FetchLimits | None = None, *, stop: threading.Event | None = None,
          headers: dict | None = None) -> bytes:
    """GET `url` fully (see the module doc). Raises FetchError; 4xx other than 408/425/429 is never retried."""
    lim = limits or FetchLimits()
    hdrs = {"User-Agent": USER_AGENT, **(headers or {})}
    try:
        return retry_call(lambda: _fetch_once(url, lim, hdrs), retries=lim.retries, backoff=lim.backoff,
                          retry_on=lambda e: isinstance(e, FetchError) and not e.permanent, stop=stop)
    except FetchError as exc:
        if exc.permanent or lim.retries < 1:
            raise
        raise FetchError(f"{exc.reason} ({lim.retries + 1} tries)", permanent=False) from None


def fetch_image_bytes(url: str, *, allow_private: bool | None = None, max_bytes: int = 10 * 1024 * 1024,
                      timeout_s: float = 15.0, max_redirects: int = 3) -> bytes:
    """The Predict page's fetch: one try, `timeout_s` overall. Raises FetchError."""
    lim = FetchLimits(connect_timeout=min(5.0, timeout_s), read_timeout=timeout_s, deadline=timeout_s,
                      max_bytes=max_bytes, retries=0, max_redirects=max_redirects,
                      allow_private=allow_private_default() if allow_private is None else allow_private)
    return fetch(url, lim, headers={"Accept": "image/*"})
