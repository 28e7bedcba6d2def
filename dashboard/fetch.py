"""Fetch one image URL for the Predict page: http(s) only, public addresses only, size and time limits.

The safety rules live in core.urlcheck (pure); this module does the network part and
checks every redirect hop again. Private, loopback and link-local hosts are refused
unless HASHTAG_ALLOW_PRIVATE_URLS=1 is set (for a local image server you trust).
"""
from __future__ import annotations

import socket
import time
from urllib.parse import urljoin

import ipaddress
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from core.urlcheck import UnsafeURL, allow_private_default, check_url

MAX_BYTES = 10 * 1024 * 1024
TIMEOUT_S = 15.0
MAX_REDIRECTS = 3
USER_AGENT = "hashtag-workbench/1.0 (+image prediction)"


class FetchError(ValueError):
    """The URL could not be fetched as an image; the message says why."""


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


def _pinned(url: str, host: str, port: int, allow_private: bool) -> tuple[str, dict, str | None]:
    """(url to request, headers, host to pin) so the connection goes to the address that was checked.

    Resolving again at connect time would let a name answer a public address to the check and a
    private one to the connection (DNS rebinding).
    """
    parts = urlsplit(url)
    try:
        ipaddress.ip_address(host.strip("[]"))
        return url, {}, None          # already an address: nothing to resolve again
    except ValueError:
        pass
    if allow_private:
        return url, {}, None
    addr = _resolve(host, port)[0]   # check_url has just verified every address of this name
    literal = f"[{addr}]" if ":" in addr else addr
    netloc = literal + (f":{parts.port}" if parts.port else "")
    host_header = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")), {"Host": host_header}, host


def fetch_image_bytes(url: str, *, allow_private: bool | None = None, max_bytes: int = MAX_BYTES,
                      timeout_s: float = TIMEOUT_S, max_redirects: int = MAX_REDIRECTS) -> bytes:
    """The body at `url`, at most `max_bytes`, within `timeout_s` overall. Raises FetchError."""
    allow = allow_private_default() if allow_private is None else allow_private
    deadline = time.monotonic() + timeout_s
    current = url.strip() if isinstance(url, str) else url
    for _hop in range(max_redirects + 1):
        try:
            _scheme, host, port = check_url(current, resolve=_resolve, allow_private=allow)
            target, extra_headers, pin = _pinned(current, host, port, allow)
        except UnsafeURL as exc:
            raise FetchError(str(exc)) from None
        except OSError as exc:
            raise FetchError(f"cannot resolve the host ({exc})") from None
        left = deadline - time.monotonic()
        if left <= 0:
            raise FetchError(f"timed out after {timeout_s:.0f} s")
        session = requests.Session()
        session.trust_env = False  # no proxies from the environment: the checked address is the one reached
        if pin:
            session.mount(f"{urlsplit(target).scheme}://", _PinnedAdapter(pin))
        try:
            resp = session.get(target, stream=True, allow_redirects=False, timeout=(min(5.0, left), left),
                               headers={"User-Agent": USER_AGENT, "Accept": "image/*", **extra_headers})
        except requests.RequestException as exc:
            session.close()
            raise FetchError(f"could not fetch the URL ({type(exc).__name__}: {exc})") from None
        with session, resp:
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
                # read1 returns whatever has arrived (at least one byte), so the overall deadline is checked
                # even against a server that trickles a byte at a time; each wait is bounded by the socket
                # timeout set from the time left.
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise FetchError(f"timed out after {timeout_s:.0f} s")
                    _set_read_timeout(resp, left)
                    chunk = resp.raw.read1(64 * 1024, decode_content=True)
                    if not chunk:
                        break
                    total += len(chunk)
                    if total > max_bytes:
                        raise FetchError(f"the file is too large (over {max_bytes / 1e6:.0f} MB)")
                    if time.monotonic() > deadline:
                        raise FetchError(f"timed out after {timeout_s:.0f} s")
                    chunks.append(chunk)
            except FetchError:
                raise
            except Exception as exc:  # requests, urllib3 and socket errors alike
                if "timed out" in str(exc).lower() or isinstance(exc, (socket.timeout, TimeoutError)):
                    raise FetchError(f"timed out after {timeout_s:.0f} s") from None
                raise FetchError(f"the download broke off ({type(exc).__name__})") from None
            return b"".join(chunks)
    raise FetchError(f"too many redirects (more than {max_redirects})")


def _set_read_timeout(resp, seconds: float) -> None:
    """Shorten the socket's read timeout to the time left (best effort: urllib3 keeps the socket private)."""
    try:
        sock = resp.raw._fp.fp.raw._sock  # http.client response -> socket file -> socket
        sock.settimeout(max(0.05, seconds))
    except AttributeError:
        pass
