"""Hostile URLs and file names: the Predict page's URL fetch and the import's file names.

The fetch (infra/http.py over core/urlcheck.py) must take only http(s), refuse
loopback, private and link-local addresses however they are spelled (unless allowed
explicitly), re-check every redirect and every connection, and bound size and time.
File names never become store paths: the store names files by their SHA-256.
"""
from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlsplit

import pytest

from hashtag_workbench.infra.http import FetchError, fetch_image_bytes
from hashtag_workbench.jobs.import_folder import import_folder
from hashtag_workbench.warehouse.db import connect
from tests.imagefiles import good_photo_bytes, write

PUBLIC = "93.184.216.34"


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "ftp://example.com/a.jpg", "gopher://127.0.0.1:70/_x", "data:image/png;base64,AAAA",
    "javascript:alert(1)", "dict://127.0.0.1:11211/stat", "//example.com/a.jpg", "example.com/a.jpg",
])
def test_only_http_and_https(url):
    with pytest.raises(FetchError, match="only http|no host|malformed"):
        fetch_image_bytes(url, allow_private=True)


@pytest.mark.parametrize("host", [
    "127.0.0.1", "127.1", "2130706433", "0x7f000001", "0177.0.0.1", "0.0.0.0", "[::1]", "[::ffff:127.0.0.1]",
    "localhost", "LOCALHOST.", "169.254.169.254", "[fe80::1]", "10.0.0.1", "192.168.1.1", "172.16.0.1",
    "100.64.0.1", "224.0.0.1",
])
def test_loopback_private_link_local_refused_however_spelled(httpserver, host):
    httpserver.expect_request("/a.jpg").respond_with_data(b"secret", content_type="image/jpeg")
    url = f"http://{host}:{httpserver.port}/a.jpg"
    with pytest.raises(FetchError, match="not allowed|cannot resolve|resolves to no"):
        fetch_image_bytes(url, timeout_s=3)


def _fake_dns(monkeypatch, name: str, checked: str, connected: str = "127.0.0.1"):
    """`name` looks public to the safety check but connects to `connected` (a rebinding DNS)."""
    import hashtag_workbench.infra.http as fetch_mod
    real = socket.getaddrinfo
    monkeypatch.setattr(fetch_mod, "_resolve", lambda h, p: [checked] if h == name else
                        sorted({i[4][0] for i in real(h, p, type=socket.SOCK_STREAM)}))

    def getaddrinfo(host, *a, **k):
        return real(connected if host == name else host, *a, **k)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_redirect_to_a_private_address_refused(httpserver, monkeypatch):
    """A "public" server (127.0.0.2, declared public for this test) redirects to loopback: refused."""
    from pytest_httpserver import HTTPServer

    import hashtag_workbench.core.urlcheck as urlcheck
    real = urlcheck.address_is_public
    monkeypatch.setattr(urlcheck, "address_is_public", lambda a: a == "127.0.0.2" or real(a))
    public = HTTPServer(host="127.0.0.2", port=0)
    public.start()
    try:
        public.expect_request("/hop").respond_with_data(
            "", status=302, headers={"Location": f"http://127.0.0.1:{httpserver.port}/a.jpg"})
        public.expect_request("/img.jpg").respond_with_data(b"fine", content_type="image/jpeg")
        httpserver.expect_request("/a.jpg").respond_with_data(b"secret", content_type="image/jpeg")
        assert fetch_image_bytes(f"http://127.0.0.2:{public.port}/img.jpg", timeout_s=3) == b"fine"
        with pytest.raises(FetchError, match="not allowed"):
            fetch_image_bytes(f"http://127.0.0.2:{public.port}/hop", timeout_s=3)
    finally:
        public.clear()
        public.stop()
    assert httpserver.log == []                        # the private server was never reached


def test_dns_rebinding_does_not_reach_loopback(httpserver, monkeypatch):
    """The name answers a public address to the check and loopback afterwards: the fetch must not follow."""
    httpserver.expect_request("/a.jpg").respond_with_data(b"secret", content_type="image/jpeg")
    _fake_dns(monkeypatch, "rebind.example", PUBLIC)
    with pytest.raises(FetchError):
        fetch_image_bytes(f"http://rebind.example:{httpserver.port}/a.jpg", timeout_s=2)
    assert httpserver.log == []


def test_size_limit_without_content_length(httpserver):
    def endless(_request):
        from werkzeug import Response
        return Response((b"x" * 65536 for _ in range(100)), content_type="image/jpeg")  # chunked, no length
    httpserver.expect_request("/big.jpg").respond_with_handler(endless)
    with pytest.raises(FetchError, match="too large"):
        fetch_image_bytes(httpserver.url_for("/big.jpg"), allow_private=True, max_bytes=1_000_000)


class Trickle:
    """A raw HTTP server that promises a big image and sends one byte every `gap` seconds."""

    def __init__(self, gap: float = 0.1):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.gap = gap
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 1000000\r\n\r\n")
                while not self.stop.is_set():
                    try:
                        conn.sendall(b"\xff")
                    except OSError:
                        break
                    time.sleep(self.gap)

    def close(self):
        self.stop.set()
        self.sock.close()


def test_time_limit_holds_against_a_trickling_server():
    server = Trickle()
    box: dict = {}

    def go():
        t = time.monotonic()
        try:
            fetch_image_bytes(f"http://127.0.0.1:{server.port}/a.jpg", allow_private=True, timeout_s=1.0)
            box["result"] = "returned"
        except FetchError as exc:
            box["result"] = str(exc)
        box["seconds"] = time.monotonic() - t
    th = threading.Thread(target=go, daemon=True)
    th.start()
    th.join(timeout=6)
    server.close()
    th.join(timeout=5)
    assert "seconds" in box and box["seconds"] < 3, f"a 1 s limit took {box.get('seconds', '>6')} s"
    assert "timed out" in box["result"]


@pytest.mark.parametrize("name", [
    "a\\..\\win.jpg", "a..b.jpg", "a\nb.jpg", "<script>alert(1)</script>.jpg", "x" * 200 + ".jpg",
    "héllo wörld ☃.jpg", "-rf.jpg", ".hidden-but-not.jpg"[1:], "con.jpg",
])
def test_file_names_never_become_store_paths(home, tmp_path, name):
    root = tmp_path / "p"
    try:
        target = write(root / "bird" / name, good_photo_bytes("bird", 2))
    except OSError:
        pytest.skip(f"this file system cannot hold the name {name!r}")
    counts = import_folder(home, root)
    assert counts["done"] == 1
    with connect(home, read_only=True) as con:
        sha, path, source = con.execute("SELECT sha256, path, source_path FROM images").fetchone()
    assert path == f"images/{sha[:2]}/{sha}.jpg"          # named by content only
    assert source == str(target.resolve())                # the name is kept as data
    stored = [p for p in home.rglob("*") if p.is_file() and p.suffix == ".jpg"]
    assert [p.name for p in stored] == [f"{sha}.jpg"]


def test_dashboard_never_renders_raw_html():
    """Scraped titles, URLs and hashtags reach pages as text: no page turns HTML rendering on."""
    from tests.conftest import ROOT
    offenders = []
    for path in sorted((ROOT / "hashtag_workbench" / "dashboard").rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if "unsafe_allow_html=True" in line or "st.html(" in line or "components.html(" in line:
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == []


def test_markdown_escape_leaves_no_active_markup():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from hashtag_workbench.dashboard.common import md_escape
    specials = set("\\`*_{}[]()<>#+-.!|~:$")

    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(st.lists(st.sampled_from(list("ab <>[]()!*_`#\\\n:/") + ["<script>", "](http://x)", "&lt;"]),
                    max_size=30).map("".join))
    def check(text):
        out = md_escape(text)
        assert "\n" not in out
        i = 0
        while i < len(out):  # every special character is escaped by a backslash
            if out[i] == "\\":
                assert i + 1 < len(out) and out[i + 1] in specials
                i += 2
                continue
            assert out[i] not in specials, (text, out)
            i += 1
    check()


def test_scraped_image_urls_on_private_addresses_are_refused(home, monkeypatch):
    from pytest_httpserver import HTTPServer

    from hashtag_workbench.infra.http import FetchLimits
    from hashtag_workbench.jobs.scrape_images import ScrapeSettings, scrape_images
    from tests.fake_sites import FakeDDG
    srv = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    srv.start()
    try:
        fake = FakeDDG(srv)
        inside = ["http://169.254.169.254/latest/meta-data/iam.jpg", "http://10.255.255.1/router.jpg"]
        fake.set_results("bird", [inside])
        monkeypatch.setenv("HASHTAG_DDG_URL", fake.base)
        scrape_images(home, words=["bird"], settings=ScrapeSettings(
            per_class=2, workers=2, search_delay=0.0, block_backoff=0.01,
            limits=FetchLimits(connect_timeout=0.5, read_timeout=0.5, retries=0, backoff=0.01, deadline=2.0)))
    finally:
        srv.clear()
        srv.stop()
    with connect(home, read_only=True) as con:
        errors = [r[0] for r in con.execute("SELECT error FROM images WHERE status = 'failed'").fetchall()]
    assert len(errors) == 2 and all("not allowed" in e or "private" in e for e in errors), errors


def test_scraper_never_connects_to_a_rebound_address(home, monkeypatch):
    """A search result's host answers a public address to the check and loopback at connect time:
    the scraper's download goes to the checked address or nowhere, never to this machine."""
    from pytest_httpserver import HTTPServer

    from hashtag_workbench.infra.http import FetchLimits
    from hashtag_workbench.jobs.scrape_images import ScrapeSettings, scrape_images
    from tests.fake_sites import FakeDDG, jpeg_bytes
    srv = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    srv.start()
    try:
        fake = FakeDDG(srv)
        url = f"http://rebind.example:{srv.port}" + urlsplit(fake.add_image("inside.jpg", jpeg_bytes(1))).path
        fake.set_results("bird", [[url]])
        monkeypatch.setenv("HASHTAG_DDG_URL", fake.base)
        _fake_dns(monkeypatch, "rebind.example", PUBLIC)
        counts = scrape_images(home, words=["bird"], settings=ScrapeSettings(
            per_class=1, workers=1, search_delay=0.0, block_backoff=0.01,
            limits=FetchLimits(connect_timeout=0.5, read_timeout=0.5, retries=0, deadline=2.0, allow_private=False)))
        hits = dict(fake.image_hits)
    finally:
        srv.clear()
        srv.stop()
    assert counts.get("done", 0) == 0 and counts["failed"] == 1
    assert hits == {}                                  # the loopback server never saw the download
    with connect(home, read_only=True) as con:
        assert con.execute("SELECT source_url FROM images WHERE status = 'failed'").fetchall() == [(url,)]


def test_retries_are_bounded_and_a_stop_ends_the_wait():
    from hashtag_workbench.infra.retry import retry_call
    calls = []

    def flaky():
        calls.append(time.monotonic())
        raise TimeoutError(f"try {len(calls)}")
    with pytest.raises(TimeoutError, match="try 3"):
        retry_call(flaky, retries=2, backoff=0.01, retry_on=lambda e: isinstance(e, TimeoutError))
    assert len(calls) == 3
    with pytest.raises(ValueError):                      # a failure retry_on refuses is raised at once
        retry_call(lambda: calls.append(0) or int("x"), retries=5, backoff=0.01,
                   retry_on=lambda e: isinstance(e, TimeoutError))
    assert len(calls) == 4
    calls.clear()
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    t = time.monotonic()
    with pytest.raises(TimeoutError, match="try 1"):     # a 30 s backoff, cut short by the stop; no second try
        retry_call(flaky, retries=3, backoff=30.0, retry_on=lambda e: isinstance(e, TimeoutError), stop=stop)
    assert len(calls) == 1 and time.monotonic() - t < 5
