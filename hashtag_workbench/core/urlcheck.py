"""Is a user-given image URL safe to fetch? Scheme, host and resolved-address checks (no I/O here).

The resolver is passed in, so this stays pure and testable: the fetching code gives
`socket.getaddrinfo`-based resolution and checks every redirect target again.
"""
from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from hashtag_workbench.core.errors import InputError

ALLOWED_SCHEMES = ("http", "https")
ENV_ALLOW_PRIVATE = "HASHTAG_ALLOW_PRIVATE_URLS"


def allow_private_default() -> bool:
    """The explicit opt-in ($HASHTAG_ALLOW_PRIVATE_URLS=1) to fetch from private or loopback hosts."""
    return os.environ.get(ENV_ALLOW_PRIVATE, "").strip().lower() in ("1", "true", "yes")


class UnsafeURL(InputError):
    """The URL may not be fetched; the message says why in plain words."""


Resolver = Callable[[str, int], Iterable[str]]


def address_is_public(addr: str) -> bool:
    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
                or ip.is_reserved or ip.is_unspecified or not ip.is_global)


def check_url(url: str, *, resolve: Resolver | None = None, allow_private: bool = False,
              max_length: int = 2048) -> tuple[str, str, int]:
    """Validate `url`; returns (scheme, host, port). Raises UnsafeURL naming the problem.

    Only http(s) with a host and no credentials. With `resolve`, every address the
    host resolves to must be public (not private, loopback, link-local, multicast or
    reserved) unless `allow_private` is set.
    """
    if not isinstance(url, str) or not url.strip():
        raise UnsafeURL("empty URL")
    url = url.strip()
    if len(url) > max_length:
        raise UnsafeURL(f"URL too long ({len(url)} characters > {max_length})")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"malformed URL ({exc})") from None
    scheme = (parts.scheme or "").lower()
    if scheme not in ALLOWED_SCHEMES:
        raise UnsafeURL(f"only http:// and https:// URLs can be fetched (got {scheme or 'no scheme'!r})")
    host = parts.hostname
    if not host:
        raise UnsafeURL("the URL has no host name")
    if parts.username or parts.password:
        raise UnsafeURL("URLs with a user name or password are not fetched")
    port = port or (443 if scheme == "https" else 80)
    if allow_private:
        return scheme, host, port
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        if not address_is_public(str(literal)):
            raise UnsafeURL(f"{host} is a private, loopback or link-local address; fetching it is not allowed")
        return scheme, host, port
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        raise UnsafeURL(f"{host} is this machine; fetching it is not allowed")
    if resolve is not None:
        try:
            addrs = list(resolve(host, port))
        except OSError as exc:
            raise UnsafeURL(f"cannot resolve host {host} ({exc})") from None
        if not addrs:
            raise UnsafeURL(f"host {host} resolves to no address")
        bad = [a for a in addrs if not address_is_public(a)]
        if bad:
            raise UnsafeURL(f"{host} resolves to a private, loopback or link-local address ({bad[0]}); "
                            "fetching it is not allowed")
    return scheme, host, port
