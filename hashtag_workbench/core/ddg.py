"""DuckDuckGo image search answers, parsed: the token page and the paged `i.js` JSON.

Only text in, plain data out (no HTTP here), so the parsing the live site may break
lives in one small, tested place (docs/architecture.md, "The two websites").
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from hashtag_workbench.core.errors import InputError

# Current pages write vqd="4-<digits>"; older ones vqd='3-<n>-<n>'; some embed vqd=4-<n>& in URLs.
_VQD_RE = re.compile(r"""vqd=["']?(\d+-\d+(?:-\d+)?)""")
# HTTP answers DuckDuckGo gives when it rate-limits or blocks a client.
BLOCK_STATUSES = frozenset({202, 301, 400, 403, 418, 429})
BLOCK_MARKER = "anomalyDetectionBlock"


class SiteChanged(InputError):
    """The answer does not have the shape we parse: the site probably changed."""


@dataclass(frozen=True)
class ImageResult:
    image: str            # the full-size image URL
    page_url: str         # the page the image appears on
    title: str
    thumbnail: str | None
    source: str | None    # the search engine DuckDuckGo got it from (e.g. "Bing")
    width: int | None
    height: int | None


@dataclass(frozen=True)
class ResultPage:
    results: list[ImageResult]
    next_offset: int | None   # the s= value of the next page; None on the last page
    skipped: int = 0          # entries without a usable image URL


def extract_vqd(html: str) -> str:
    """The search token from the token page, or SiteChanged when there is none."""
    m = _VQD_RE.search(html or "")
    if not m:
        raise SiteChanged("the DuckDuckGo token page holds no vqd token (or the answer was not a search page)")
    return m.group(1)


def is_blocked(status: int, body: str | bytes | None) -> bool:
    """True when an answer means DuckDuckGo rate-limited or blocked us."""
    if status in BLOCK_STATUSES:
        return True
    if not body:
        return False
    if isinstance(body, bytes):
        return BLOCK_MARKER.encode() in body
    return BLOCK_MARKER in body


def _int_or_none(value) -> int | None:
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    return n if n > 0 else None


def _next_offset(nxt) -> int | None:
    """`next` is a relative URL like 'i.js?q=dog&...&s=100&...'; its s= value is the next offset."""
    if not nxt:
        return None
    if not isinstance(nxt, str):
        raise SiteChanged(f"the results' 'next' field is a {type(nxt).__name__}, not a URL")
    values = parse_qs(urlsplit(nxt).query).get("s")
    if not values:
        raise SiteChanged(f"the results' 'next' URL has no s= offset: {nxt[:120]!r}")
    try:
        offset = int(values[0])
    except ValueError:
        raise SiteChanged(f"the results' 'next' URL has a non-numeric offset s={values[0]!r}") from None
    if offset < 0:
        raise SiteChanged(f"the results' 'next' URL has a negative offset s={offset}")
    return offset


def _is_http_url(value) -> bool:
    return isinstance(value, str) and value.strip().lower().startswith(("http://", "https://"))


def parse_results(text: str | bytes) -> ResultPage:
    """One `i.js` answer -> its image results (in order, de-duplicated by image URL) and next offset."""
    try:
        data = json.loads(text)
    except (ValueError, TypeError) as exc:
        snippet = (text[:80] if isinstance(text, str) else bytes(text[:80]).decode("utf-8", "replace"))
        raise SiteChanged(f"the image results are not valid JSON ({exc}); they begin {snippet!r}") from None
    if not isinstance(data, dict):
        raise SiteChanged(f"the image results are a JSON {type(data).__name__}, not an object")
    if "results" not in data:
        raise SiteChanged(f"the image results have no 'results' list (keys: {sorted(data)[:10]})")
    items = data["results"]
    if not isinstance(items, list):
        raise SiteChanged(f"the image results' 'results' is a {type(items).__name__}, not a list")
    out: list[ImageResult] = []
    seen: set[str] = set()
    skipped = 0
    for item in items:
        image = item.get("image") if isinstance(item, dict) else None
        if not _is_http_url(image):
            skipped += 1
            continue
        image = image.strip()
        if image in seen:
            continue
        seen.add(image)
        thumb = item.get("thumbnail")
        out.append(ImageResult(
            image=image,
            page_url=str(item.get("url") or ""),
            title=str(item.get("title") or ""),
            thumbnail=thumb if _is_http_url(thumb) else None,
            source=str(item["source"]) if item.get("source") else None,
            width=_int_or_none(item.get("width")),
            height=_int_or_none(item.get("height")),
        ))
    return ResultPage(results=out, next_offset=_next_offset(data.get("next")), skipped=skipped)
