"""scrape-images against a local DuckDuckGo stand-in: search, downloads, failures, blocks, resuming."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from hashtag_workbench.infra.http import FetchLimits as DownloadLimits
from hashtag_workbench.jobs.cli import main
from hashtag_workbench.jobs.scrape_images import ScrapeSettings, scrape_images
from hashtag_workbench.warehouse import collect, runs
from hashtag_workbench.warehouse.db import connect
from tests.conftest import CLI, DEMO_PHOTOS, ROOT
from tests.fake_sites import (
    BLOCK_PAGE,
    CHANGED_TOKEN_PAGE,
    LEGACY_TOKEN_PAGE,
    LEGACY_VQD,
    bomb_png,
    jpeg_bytes,
    truncated_jpeg,
)


@pytest.fixture
def home(seeded_home):
    """These tests start from the seeded vocabulary (an explicit override of conftest's empty `home`)."""
    return seeded_home




def fast(*, read_timeout=2.0, retries=1, **kw) -> ScrapeSettings:
    """Settings with tiny delays, so tests run quickly against the local server."""
    kw.setdefault("search_delay", 0.0)
    kw.setdefault("block_backoff", 0.01)
    kw.setdefault("workers", 4)
    return ScrapeSettings(limits=DownloadLimits(connect_timeout=2.0, read_timeout=read_timeout, retries=retries,
                                                backoff=0.01, deadline=10.0), **kw)


def image_rows(home, where="TRUE"):
    with connect(home, read_only=True) as con:
        cur = con.execute(f"SELECT * FROM images WHERE {where} ORDER BY image_id")
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]


def candidate_status(home, word):
    with connect(home, read_only=True) as con:
        return dict(con.execute("SELECT url, status FROM scrape_candidates WHERE word = ?", [word]).fetchall())


def store_files(home) -> list[Path]:
    return [p for p in (Path(home) / "images").rglob("*") if p.is_file() and not p.name.startswith(".tmp")]


def ijs_offsets(fake, query):
    return [int(a["s"]) for _, kind, a in fake.search_log if kind == "i.js" and a.get("q") == query]


# ----------------------------------------------------------------------------- search and storage

def test_pages_with_duplicates_until_last_page(home, ddg):
    urls = ddg.add_photos("b", 12)
    ddg.set_results("bird", [urls[0:5] + [urls[0]], urls[3:9], urls[9:12]])
    counts = scrape_images(home, words=["bird"], settings=fast(per_class=50))
    assert counts["done"] == 12 and counts.get("failed", 0) == 0
    assert counts["candidates"] == 12
    assert ijs_offsets(ddg, "bird") == [0, 100, 200]          # the last page has no `next`
    assert all(ddg.image_hits[f"b{i}.jpg"] == 1 for i in range(12))
    assert ddg.bad_headers == []
    rows = image_rows(home)
    assert len(rows) == 12 and len({r["sha256"] for r in rows}) == 12
    r0 = next(r for r in rows if r["source_url"] == urls[0])
    assert r0["status"] == "ok" and r0["origin"] == "scrape" and r0["word"] == "bird"
    assert r0["query"] == "bird" and r0["title"] == "Photo number 0" and r0["source"] == "Bing"
    assert r0["page_url"] == "https://example.org/gallery/0.html" and r0["added_at"] is not None
    assert (r0["width"], r0["height"]) == (96, 80)
    assert (Path(home) / r0["path"]).read_bytes() == jpeg_bytes(0)
    assert len(store_files(home)) == 12
    last = collect.last_scrape_counts(home)
    assert [(d["word"], d["stored"], d["failed"], d["outcome"]) for d in last] == [("bird", 12, 0, "exhausted")]
    assert runs.get_run(home, counts["run_id"])["status"] == "ok"


def test_legacy_token_format(home, ddg):
    ddg.token_pages["bird"] = LEGACY_TOKEN_PAGE.format(q="bird", vqd=LEGACY_VQD)
    ddg.set_results("bird", [ddg.add_photos("b", 3)])
    counts = scrape_images(home, words=["bird"], settings=fast(per_class=10))
    assert counts["done"] == 3
    assert [a["vqd"] for _, k, a in ddg.search_log if k == "i.js"] == [LEGACY_VQD]


def test_per_class_limit_then_resume_from_next_page(home, ddg):
    urls = ddg.add_photos("b", 15)
    ddg.set_results("bird", [urls[0:5], urls[5:10], urls[10:15]])
    assert scrape_images(home, words=["bird"], settings=fast(per_class=4))["done"] == 4
    assert ijs_offsets(ddg, "bird") == [0]
    assert sum(ddg.image_hits.values()) == 4
    ddg.search_log.clear()
    assert scrape_images(home, words=["bird"], settings=fast(per_class=12))["done"] == 8
    assert ijs_offsets(ddg, "bird") == [100, 200]           # the search goes on where it stopped
    assert max(ddg.image_hits.values()) == 1                 # nothing fetched twice
    assert collect.stored_counts(home, ["bird"]) == {"bird": 12}
    # Enough images: a third run neither searches nor downloads.
    ddg.search_log.clear()
    counts = scrape_images(home, words=["bird"], settings=fast(per_class=12))
    assert counts.get("done", 0) == 0 and counts["words_complete"] == 1 and ddg.search_log == []


def test_token_page_without_token_is_reported_and_next_word_runs(home, ddg):
    ddg.token_pages["bird"] = CHANGED_TOKEN_PAGE
    ddg.set_results("dog", [ddg.add_photos("d", 3)])
    counts = scrape_images(home, words=["bird", "dog"], settings=fast(per_class=10))
    assert counts["done"] == 3 and counts["words_site_changed"] == 1
    by_word = {d["word"]: d for d in collect.last_scrape_counts(home)}
    assert by_word["bird"]["outcome"] == "site_changed"
    assert "the site changed" in by_word["bird"]["message"] and "vqd" in by_word["bird"]["message"]
    assert by_word["dog"]["stored"] == 3
    assert "the site changed" in runs.get_run(home, counts["run_id"])["log"]


@pytest.mark.parametrize("answer", [(403, ""), (429, ""), (200, BLOCK_PAGE)], ids=["403", "429", "block-page"])
def test_persistent_block_backs_off_then_stops_word(home, ddg, answer):
    ddg.page_answers[("bird", 0)] = [answer] * 10
    ddg.set_results("dog", [ddg.add_photos("d", 2)])
    s = fast(per_class=10, block_retries=2, block_backoff=0.05)
    counts = scrape_images(home, words=["bird", "dog"], settings=s)
    times = [t for t, k, a in ddg.search_log if k == "i.js" and a["q"] == "bird"]
    assert len(times) == 3                                    # bounded: first try + 2 retries
    assert times[1] - times[0] >= 0.05 * 0.75 and times[2] - times[1] >= 0.1 * 0.75   # backed off, doubling
    assert counts["words_blocked"] == 1 and counts["done"] == 2
    bird = next(d for d in collect.last_scrape_counts(home) if d["word"] == "bird")
    assert bird["outcome"] == "blocked" and "rate-limited or blocked" in bird["message"]


def test_blocked_token_page(home, ddg):
    ddg.token_answers["bird"] = [(429, "")] * 5
    counts = scrape_images(home, words=["bird"], settings=fast(per_class=5, block_retries=1))
    assert counts["words_blocked"] == 1
    assert sum(1 for _, k, a in ddg.search_log if k == "token") == 2


def test_block_then_recovery(home, ddg):
    ddg.page_answers[("bird", 0)] = [(429, "")]
    ddg.set_results("bird", [ddg.add_photos("b", 3)])
    counts = scrape_images(home, words=["bird"], settings=fast(per_class=5))
    assert counts["done"] == 3 and counts["words_exhausted"] == 1
    assert ijs_offsets(ddg, "bird") == [0, 0]


def test_malformed_json_keeps_what_was_found(home, ddg):
    urls = ddg.add_photos("b", 6)
    ddg.set_results("bird", [urls[:3], urls[3:]])
    ddg.page_answers[("bird", 100)] = [(200, '{"results": [{"image": "https://x')]
    counts = scrape_images(home, words=["bird"], settings=fast(per_class=10))
    assert counts["done"] == 3 and counts["words_site_changed"] == 1
    bird = collect.last_scrape_counts(home)[0]
    assert bird["outcome"] == "site_changed" and "not valid JSON" in bird["message"]


def test_empty_result_list(home, ddg):
    ddg.set_results("bird", [[]])
    counts = scrape_images(home, words=["bird"], settings=fast(per_class=5))
    assert counts.get("done", 0) == 0 and counts["words_exhausted"] == 1
    assert collect.last_scrape_counts(home)[0]["outcome"] == "exhausted"


def test_search_requests_are_spaced(home, ddg):
    urls = ddg.add_photos("b", 6)
    ddg.set_results("bird", [urls[:2], urls[2:4], urls[4:]])
    scrape_images(home, words=["bird"], settings=fast(per_class=10, search_delay=0.15))
    times = [t for t, _, _ in ddg.search_log]
    assert len(times) == 4
    assert min(b - a for a, b in zip(times, times[1:])) >= 0.14


# ----------------------------------------------------------------------------- downloads

def test_download_failures_are_rows_and_permanent_ones_never_refetched(home, ddg):
    tiny = jpeg_bytes(5, size=(40, 30))
    good = ddg.add_photos("ok", 2)
    bad = {
        "404": (ddg.url("gone.jpg"), "HTTP 404"),
        "403": (ddg.add_image("forbidden.jpg", b"no", status=403, ctype="text/plain"), "HTTP 403"),
        "hang": (ddg.add_image("slow.jpg", jpeg_bytes(7), delay=1.2), "did not answer within 0.3 s"),
        "html": (ddg.add_image("page.jpg", b"<html><body>hi</html>", ctype="text/html"), "text/html page"),
        "html-as-jpeg": (ddg.add_image("fake.jpg", b"<html><body>hi</html>"), "not an image"),
        "truncated": (ddg.add_image("cut.jpg", truncated_jpeg()), "truncated"),
        "bomb": (ddg.add_image("bomb.png", bomb_png(), ctype="image/png"), "decompression bomb"),
        "tiny": (ddg.add_image("tiny.jpg", tiny), "too small"),
        "503": (ddg.add_image("busy.jpg", b"", status=503, ctype="text/html"), "HTTP 503"),
        "huge": (ddg.add_image("huge.jpg", b"\xff\xd8" + b"\0" * 300_000), "too large"),
    }
    ddg.set_results("bird", [good + [u for u, _ in bad.values()]])
    s = fast(per_class=20, read_timeout=0.3, retries=1, workers=6)
    s.limits = DownloadLimits(**{**s.limits.__dict__, "max_bytes": 200_000})
    counts = scrape_images(home, words=["bird"], settings=s)
    assert counts["done"] == 2 and counts["failed"] == len(bad)
    failed = {r["source_url"]: r for r in image_rows(home, "status = 'failed'")}
    for key, (url, reason) in bad.items():
        assert reason in failed[url]["error"], (key, failed[url]["error"])
        assert failed[url]["query"] == "bird" and failed[url]["run_id"] == counts["run_id"]
    hits = dict(ddg.image_hits)
    assert hits["gone.jpg"] == hits["forbidden.jpg"] == hits["page.jpg"] == 1   # no retry on 403/404
    assert hits["slow.jpg"] == 2 and hits["busy.jpg"] == 2                      # transient: retried once
    status = candidate_status(home, "bird")
    assert status[bad["hang"][0]] == status[bad["503"][0]] == "retry"
    assert status[bad["404"][0]] == status[bad["bomb"][0]] == "failed"
    assert "tried again on the next run" in failed[bad["503"][0]]["error"]
    last = collect.last_scrape_counts(home)[0]
    assert (last["stored"], last["failed"]) == (2, len(bad))

    # A re-run fetches only the transient failures again, and keeps one failed row per URL.
    ddg.image_hits.clear()
    counts2 = scrape_images(home, words=["bird"], settings=s)
    assert set(ddg.image_hits) == {"slow.jpg", "busy.jpg"}
    assert counts2.get("done", 0) == 0 and counts2["failed"] == 2
    failed_rows = image_rows(home, "status = 'failed'")
    assert len(failed_rows) == len(bad) == len({r["source_url"] for r in failed_rows})
    # After max_attempts runs a transient failure counts as permanent.
    scrape_images(home, words=["bird"], settings=s)
    ddg.image_hits.clear()
    scrape_images(home, words=["bird"], settings=s)
    assert not ddg.image_hits
    assert candidate_status(home, "bird")[bad["503"][0]] == "failed"


def test_sha256_duplicates_stored_once(demo_home, ddg):
    already = sorted((DEMO_PHOTOS / "bird").glob("*.jpg"))[0].read_bytes()   # imported by the fixture
    before = len(store_files(demo_home))
    urls = [ddg.add_image("a.jpg", jpeg_bytes(1)), ddg.add_image("a-copy.jpg", jpeg_bytes(1)),
            ddg.add_image("imported.jpg", already), ddg.add_image("b.jpg", jpeg_bytes(2))]
    ddg.set_results("bird", [urls])
    counts = scrape_images(demo_home, words=["bird"], settings=fast(per_class=50, workers=1))
    assert counts["done"] == 2 and counts["duplicate"] == 2
    assert len(store_files(demo_home)) == before + 2
    st = candidate_status(demo_home, "bird")
    assert st[urls[1]] == st[urls[2]] == "duplicate"
    assert collect.last_scrape_counts(demo_home)[0]["duplicates"] == 2


def test_url_found_for_two_words_is_fetched_once(home, ddg):
    urls = ddg.add_photos("x", 3)
    ddg.set_results("bird", [urls[:2]])
    ddg.set_results("animals", [urls])
    counts = scrape_images(home, words=["bird", "animals"], settings=fast(per_class=10))
    assert counts["done"] == 3
    assert max(ddg.image_hits.values()) == 1
    assert candidate_status(home, "animals")[urls[0]] == "duplicate"


def test_dry_run_lists_and_writes_nothing(home, ddg, capsys):
    urls = ddg.add_photos("b", 5)
    ddg.set_results("bird", [urls])
    plan = scrape_images(home, words=["bird"], settings=fast(per_class=3), dry_run=True)
    assert plan["would_fetch"]["bird"] == urls[:3]
    assert main(["--home", str(home), "scrape-images", "--words", "bird", "--per-class", "3", "--search-delay", "0",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "bird: need 3, would fetch 3" in out and urls[0] in out
    assert not ddg.image_hits
    assert runs.recent_runs(home) == [] and image_rows(home) == []
    with connect(home, read_only=True) as con:   # the dry run stored no candidate either
        assert con.execute("SELECT count(*) FROM scrape_candidates WHERE word = 'bird'").fetchone()[0] == 0


def test_cli_rejects_unknown_word(home, capsys):
    assert main(["--home", str(home), "scrape-images", "--words", "bird,notaword", "--dry-run"]) == 2
    assert "unknown word(s): notaword" in capsys.readouterr().err


def test_last_scrape_counts_without_runs(home):
    assert collect.last_scrape_counts(home) == []


# ----------------------------------------------------------------------------- killed mid-run

def _wait_for_rows(home, n, proc, timeout=90.0):
    """Wait until the running job has committed `n` stored images (brief read-only looks)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"scrape-images ended early: {proc.stderr.read().decode()[-2000:]}")
        if (Path(home) / "images").exists() and len(store_files(home)) >= n:
            with connect(home, read_only=True) as con:
                if con.execute("SELECT count(*) FROM images WHERE status = 'ok'").fetchone()[0] >= n:
                    return
        time.sleep(0.2)
    raise AssertionError("scrape-images stored nothing in time")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_killed_run_resumes_without_loss_or_duplicates(home, ddg, sig):
    good = ddg.add_photos("b", 30, delay=0.1)
    missing = [ddg.url(f"missing{i}.jpg") for i in range(3)]
    ddg.set_results("bird", [good[:10] + missing, good[10:20], good[20:]])
    env = {**os.environ, "HASHTAG_DDG_URL": ddg.base, "HASHTAG_HOME": str(home)}
    proc = subprocess.Popen([*CLI, "scrape-images", "--words", "bird", "--per-class", "30",
                             "--workers", "2", "--search-delay", "0"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for_rows(home, 4, proc)
        proc.send_signal(sig)
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read().decode()
    if sig == signal.SIGINT:
        assert rc == 130, err[-2000:]
        assert "run the same command again to resume" in err
    else:
        assert rc == -signal.SIGKILL

    first = runs.recent_runs(home, kind="scrape-images")[0]
    rows = image_rows(home)
    done_before = {r["source_url"] for r in rows if r["status"] == "ok"}
    failed_before = {r["source_url"] for r in rows if r["status"] == "failed"}
    assert done_before, "the killed run recorded nothing"
    hits_before = dict(ddg.image_hits)

    ddg.image_hits.clear()
    counts = scrape_images(home, words=["bird"], settings=fast(per_class=30))
    assert runs.get_run(home, first["run_id"])["status"] == "interrupted"
    assert runs.get_run(home, counts["run_id"])["status"] == "ok"
    # Nothing stored or permanently failed before is fetched again.
    assert ddg.hits_for(done_before | failed_before) == 0 if (done_before | failed_before) else True
    # Nothing lost: all 30 photos stored; nothing twice: one row and one file per image.
    ok = image_rows(home, "status = 'ok'")
    assert len(ok) == 30 and len({r["sha256"] for r in ok}) == 30 and len({r["source_url"] for r in ok}) == 30
    assert len(store_files(home)) == 30
    # A photo was fetched at most twice overall (once more only if it was in flight at the kill).
    total = {n: hits_before.get(n, 0) + ddg.image_hits.get(n, 0) for n in set(hits_before) | set(ddg.image_hits)}
    assert max(total.values()) <= 2
    assert len(image_rows(home, "status = 'failed'")) == 3


def test_record_downloads_replaces_retry_row_and_refuses_second_copy(home):
    collect.add_candidates(home, "bird", "bird", [{"url": "http://h/a.jpg"}, {"url": "http://h/b.jpg"}],
                           run_id=None, next_offset=None)
    base = {"word": "bird", "origin": "scrape", "query": "bird"}
    fail = {"word": "bird", "url": "http://h/a.jpg", "status": "retry", "error": "timeout",
            "row": {**base, "source_url": "http://h/a.jpg", "status": "failed", "error": "timeout"}}
    ok = lambda url: {"word": "bird", "url": url, "status": "ok", "sha256": "f" * 64,  # noqa: E731
                      "row": {**base, "source_url": url, "sha256": "f" * 64, "path": "images/ff/x.jpg",
                              "status": "ok"}}
    assert collect.record_downloads(home, [fail]) == ["retry"]
    assert collect.record_downloads(home, [ok("http://h/a.jpg"), ok("http://h/b.jpg")]) == ["ok", "duplicate"]
    rows = image_rows(home)
    assert [(r["source_url"], r["status"]) for r in rows] == [("http://h/a.jpg", "ok")]
    assert candidate_status(home, "bird") == {"http://h/a.jpg": "ok", "http://h/b.jpg": "duplicate"}
    assert collect.pending_candidates(home, "bird") == []
