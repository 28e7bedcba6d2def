"""scrape-hashtags against a local all-hashtag.com stand-in."""
from __future__ import annotations

import pytest
from pytest_httpserver import HTTPServer

from hashtag_workbench.infra.http import USER_AGENT
from hashtag_workbench.jobs.cli import main
from hashtag_workbench.jobs.scrape_hashtags import scrape_hashtags
from hashtag_workbench.warehouse import runs
from hashtag_workbench.warehouse import words as wh_words
from hashtag_workbench.warehouse.db import connect
from tests.fake_sites import FakeAllHashtag


@pytest.fixture
def home(seeded_home):
    """These tests start from the seeded vocabulary (an explicit override of conftest's empty `home`)."""
    return seeded_home


@pytest.fixture
def site(monkeypatch):
    srv = HTTPServer(host="127.0.0.1", port=0)
    srv.start()
    fake = FakeAllHashtag(srv)
    monkeypatch.setenv("HASHTAG_ALLHASHTAG_URL", fake.base)
    yield fake
    srv.clear()
    srv.stop()


def scraped_rows(home, word):
    with connect(home, read_only=True) as con:
        return con.execute("SELECT tag, rank, run_id, fetched_at FROM hashtags WHERE word = ? AND source = 'scraped' "
                           "ORDER BY rank", [word]).fetchall()


def test_tags_stored_ranked_with_run_and_time(home, site):
    site.tags["dog"] = ["dog", "dogsofinstagram", "puppy", "instadog"]
    site.tags["cat"] = ["cat", "catsofinstagram", "kitten"]
    counts = scrape_hashtags(home, words=["dog", "cat"], delay=0)
    assert counts["done"] == 2 and counts.get("failed", 0) == 0
    assert site.requests[0] == {"keyword": "dog", "filter": "top", "user_agent": USER_AGENT}
    rows = scraped_rows(home, "dog")
    assert [(t, r) for t, r, _, _ in rows] == [("dog", 1), ("dogsofinstagram", 2), ("puppy", 3), ("instadog", 4)]
    assert all(run_id == counts["run_id"] and fetched for _, _, run_id, fetched in rows)
    assert wh_words.hashtags_for(home, "scraped")["cat"] == ["cat", "catsofinstagram", "kitten"]
    # The hand-made map is untouched and still wins in the merged view.
    hand = wh_words.hashtags_for(home, "hand")
    assert hand["dog"][0] == "dog" and wh_words.hashtags_for(home)["dog"] == hand["dog"]


def test_changed_markup_and_failures_keep_existing_tags(home, site):
    site.tags["dog"] = ["dog", "doggo"]
    site.tags["cat"] = ["cat", "kitty"]
    site.tags["bird"] = ["bird"]
    scrape_hashtags(home, words=["dog", "cat", "bird"], delay=0)
    site.raw["dog"] = (200, "<div class='results'><p>#dog #newtag</p></div>")   # no div#copy-hashtags
    site.raw["cat"] = (500, "Internal Server Error")
    site.raw["bird"] = (403, "Forbidden")
    site.tags["fish"] = ["fish", "fishing"]
    counts = scrape_hashtags(home, words=["dog", "cat", "bird", "fish"], delay=0, backoff=0.01, retries=1)
    assert counts["done"] == 1 and counts["failed"] == 3 and counts["markup_changed"] == 1
    assert counts["failed_words"] == ["dog", "cat", "bird"]
    scraped = wh_words.hashtags_for(home, "scraped")
    assert scraped["dog"] == ["dog", "doggo"] and scraped["cat"] == ["cat", "kitty"] and scraped["bird"] == ["bird"]
    assert scraped["fish"] == ["fish", "fishing"]
    log = runs.get_run(home, counts["run_id"])["log"]
    assert "dog: the all-hashtag.com answer has no div#copy-hashtags" in log
    assert "cat: all-hashtag.com did not answer usefully: HTTP 500" in log
    assert "bird: all-hashtag.com did not answer usefully: HTTP 403" in log
    # 500 is retried (bounded), 403 is not.
    kws = [r["keyword"] for r in site.requests[-5:]]
    assert kws.count("cat") == 2 and kws.count("bird") == 1


def test_site_down_cli_reports_and_hand_map_stays(home, monkeypatch, capsys):
    monkeypatch.setenv("HASHTAG_ALLHASHTAG_URL", "http://127.0.0.1:9")   # nothing listens on the discard port
    assert main(["--home", str(home), "scrape-hashtags", "--words", "dog", "--delay", "0", "--timeout", "1",
                 "--retries", "0"]) == 1
    err = capsys.readouterr().err
    assert "network error" in err and "hand-made map is still used" in err
    assert wh_words.hashtags_for(home)["dog"] == wh_words.hashtags_for(home, "hand")["dog"]
