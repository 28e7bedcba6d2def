"""Local stand-ins for DuckDuckGo images and all-hashtag.com, answering in the real wire formats.

Everything is served by pytest-httpserver on 127.0.0.1; no test touches the internet.
"""
from __future__ import annotations

import io
import json
import re
import threading
import time
from collections import Counter
from urllib.parse import urlencode

from PIL import Image
from werkzeug import Request, Response

VQD = "4-117954356782045379364619233108521764823"
LEGACY_VQD = "3-204312785630926405839174552-86591937411806458211463826719"

TOKEN_PAGE = """<!DOCTYPE html><html lang="en-US"><head><meta charset="utf-8">
<title>{q} at DuckDuckGo</title><link rel="stylesheet" href="/dist/s.b49dcfb5.css"></head>
<body class="body--serp"><div id="header_wrapper"></div>
<script type="text/javascript">DDG.deep.initialize('/d.js?q={q}&l=us-en&s=0&dl=en&ct=US&ss_mkt=us&vqd={vqd}&p_ent=&ex=-1&sp=0&bing_market=en-US');
DDG.ready(function () {{DDG.duckbar.future_signal_tab({{signal:'high',from:'images'}});}});
;DDG.page = new DDG.Pages.SERP({{ q: "{q}", vqd="{vqd}", safe:"moderate" }});</script>
<noscript><a href="/html/?q={q}">HTML version</a></noscript></body></html>"""

LEGACY_TOKEN_PAGE = """<html><head><title>{q} at DuckDuckGo</title></head><body>
<script>nrje('/d.js?q={q}&t=D&l=us-en&s=0&dl=en&ct=US&ss_mkt=us&p_ent=&ex=-1');
DDG.deep.initialize('/d.js?q={q}', vqd='{vqd}');</script></body></html>"""

CHANGED_TOKEN_PAGE = """<!DOCTYPE html><html><head><title>DuckDuckGo</title></head>
<body><div id="app">Loading...</div><script src="/dist/app.js"></script></body></html>"""

BLOCK_PAGE = """<!DOCTYPE html><html><head><title>DuckDuckGo</title></head><body>
<div class="anomaly-modal__modal" data-testid="anomaly-modal"><form action="//duckduckgo.com/anomaly.js">
<div class="anomaly-modal__title">Unfortunately, bots use DuckDuckGo too.</div>
<script>window.__ddg_err = "anomalyDetectionBlock";</script></form></div></body></html>"""


def jpeg_bytes(i: int, size: tuple[int, int] = (96, 80)) -> bytes:
    """A small distinct JPEG photo (different bytes for every i)."""
    img = Image.new("RGB", size, ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256))
    img.putpixel((i % size[0], (i // size[0]) % size[1]), (255 - (i % 256), 0, 255))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def truncated_jpeg() -> bytes:
    data = jpeg_bytes(999_999, size=(300, 240))
    return data[: len(data) // 2]


_BOMB: bytes | None = None


def bomb_png() -> bytes:
    """A tiny PNG of 13000x13000 pixels (169 MP, over the 150 MP limit): a decompression bomb."""
    global _BOMB
    if _BOMB is None:
        buf = io.BytesIO()
        Image.new("1", (13000, 13000)).save(buf, "PNG")
        _BOMB = buf.getvalue()
    return _BOMB


def result(url: str, i: int, *, title: str | None = None) -> dict:
    """One `i.js` result entry, with the fields the live site sends."""
    return {"height": 800, "image": url, "image_token": f"tok{i:04d}", "source": "Bing",
            "thumbnail": f"https://tse{i % 4 + 1}.mm.bing.net/th?id=OIP.{i:08d}&pid=Api",
            "thumbnail_token": f"th{i:04d}", "title": title or f"Photo number {i}",
            "url": f"https://example.org/gallery/{i}.html", "width": 1200}


class FakeDDG:
    """DuckDuckGo images on a local server: token page, paged i.js, and the images themselves.

    `pages[query]` is a list of result lists; page k is served at offset s = 100*k and has
    a `next` pointing at s = 100*(k+1) unless it is the last. `images[name]` holds what
    /img/<name> answers: (status, body, content_type, delay_s).
    """

    def __init__(self, server):
        self.server = server
        self.pages: dict[str, list[list[dict]]] = {}
        self.token_pages: dict[str, str] = {}
        self.page_answers: dict[tuple[str, int], list] = {}  # (query, offset) -> queued (status, body) answers
        self.token_answers: dict[str, list] = {}
        self.images: dict[str, tuple[int, bytes, str, float]] = {}
        self.image_hits: Counter = Counter()
        self.search_log: list[tuple[float, str, dict]] = []
        self.bad_headers: list[str] = []
        self._lock = threading.Lock()
        server.expect_request("/i.js").respond_with_handler(self._ijs)
        server.expect_request(re.compile(r"^/img/.+")).respond_with_handler(self._img)
        server.expect_request("/").respond_with_handler(self._token)

    @property
    def base(self) -> str:
        return self.server.url_for("").rstrip("/")

    def url(self, name: str) -> str:
        return self.server.url_for(f"/img/{name}")

    def add_image(self, name: str, body: bytes, *, status: int = 200, ctype: str = "image/jpeg",
                  delay: float = 0.0) -> str:
        self.images[name] = (status, body, ctype, delay)
        return self.url(name)

    def add_photos(self, prefix: str, n: int, start: int = 0, delay: float = 0.0) -> list[str]:
        return [self.add_image(f"{prefix}{i}.jpg", jpeg_bytes(start + i), delay=delay) for i in range(n)]

    def set_results(self, query: str, url_pages: list[list[str]]) -> None:
        """Serve these image URLs for `query`, page by page."""
        n = 0
        pages = []
        for urls in url_pages:
            page = []
            for u in urls:
                page.append(result(u, n))
                n += 1
            pages.append(page)
        self.pages[query] = pages

    def _check_headers(self, request: Request, what: str) -> None:
        from hashtag_workbench.infra.http import USER_AGENT
        if request.headers.get("User-Agent") != USER_AGENT:
            self.bad_headers.append(f"{what}: User-Agent {request.headers.get('User-Agent')!r}")

    def _token(self, request: Request) -> Response:
        q = request.args.get("q", "")
        self._check_headers(request, "token")
        with self._lock:
            self.search_log.append((time.monotonic(), "token", dict(request.args)))
            queued = self.token_answers.get(q)
            if queued:
                status, body = queued.pop(0)
                return Response(body, status=status, content_type="text/html; charset=UTF-8")
        html = self.token_pages.get(q) or TOKEN_PAGE.format(q=q, vqd=VQD)
        return Response(html, content_type="text/html; charset=UTF-8")

    def _ijs(self, request: Request) -> Response:
        args = dict(request.args)
        self._check_headers(request, "i.js")
        if request.headers.get("Referer") != self.base + "/" or request.headers.get("Sec-Fetch-Mode") != "cors":
            self.bad_headers.append(f"i.js: Referer {request.headers.get('Referer')!r}, "
                                    f"Sec-Fetch-Mode {request.headers.get('Sec-Fetch-Mode')!r}")
        q = args.get("q", "")
        offset = int(args.get("s", "0") or 0)
        with self._lock:
            self.search_log.append((time.monotonic(), "i.js", args))
            queued = self.page_answers.get((q, offset))
            if queued:
                status, body = queued.pop(0)
                return Response(body, status=status, content_type="application/x-javascript")
        if args.get("vqd") not in (VQD, LEGACY_VQD) or args.get("o") != "json":
            return Response("If this error persists, please let us know: ops@duckduckgo.com", status=403)
        pages = self.pages.get(q, [])
        k = offset // 100
        results = pages[k] if k < len(pages) else []
        body = {"ads": None, "query": q, "queryEncoded": q, "response_type": "places", "results": results,
                "vqd": {q: args.get("vqd")}}
        if k + 1 < len(pages):
            body["next"] = "i.js?" + urlencode({"q": q, "o": "json", "p": "1", "s": 100 * (k + 1), "u": "bing",
                                                "f": ",,,,,", "l": "us-en", "vqd": args.get("vqd")})
        return Response(json.dumps(body), content_type="application/x-javascript")

    def _img(self, request: Request) -> Response:
        name = request.path[len("/img/"):]
        with self._lock:
            self.image_hits[name] += 1
        self._check_headers(request, "image")
        if name not in self.images:
            return Response("<html><body><h1>404 Not Found</h1></body></html>", status=404,
                            content_type="text/html")
        status, body, ctype, delay = self.images[name]
        if delay:
            time.sleep(delay)
        return Response(body, status=status, content_type=ctype)

    def hits_for(self, urls) -> int:
        names = {u.rsplit("/img/", 1)[1] for u in urls}
        return sum(self.image_hits[n] for n in names)


GENERATOR_ANSWER = """<div class="hashtags-results">
  <div class="hashtag-result-title">Top hashtags for {kw}</div>
  <div id="copy-hashtags" class="copy-hashtags">{tags}</div>
  <div class="copy-button"><button class="btn btn-copy" data-clipboard-target="#copy-hashtags">Copy</button></div>
</div>"""


class FakeAllHashtag:
    """all-hashtag.com's generator on a local server: POST keyword=<word>&filter=top."""

    def __init__(self, server):
        self.server = server
        self.tags: dict[str, list[str]] = {}
        self.raw: dict[str, tuple[int, str]] = {}
        self.requests: list[dict] = []
        server.expect_request("/library/contents/ajax_generator.php",
                              method="POST").respond_with_handler(self._generate)

    @property
    def base(self) -> str:
        return self.server.url_for("").rstrip("/")

    def _generate(self, request: Request) -> Response:
        form = dict(request.form)
        self.requests.append({**form, "user_agent": request.headers.get("User-Agent")})
        kw = form.get("keyword", "")
        if kw in self.raw:
            status, body = self.raw[kw]
            return Response(body, status=status, content_type="text/html; charset=UTF-8")
        tags = self.tags.get(kw, [])
        text = " ".join("#" + t for t in tags)
        return Response(GENERATOR_ANSWER.format(kw=kw, tags=text), content_type="text/html; charset=UTF-8")
