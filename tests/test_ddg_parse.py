"""Parsing of the two sites' answers (core/ddg.py, core/allhashtag.py), on text in the real formats."""
import json

import pytest

from hashtag_workbench.core.allhashtag import parse_generator
from hashtag_workbench.core.ddg import SiteChanged, extract_vqd, is_blocked, parse_results
from tests.fake_sites import (
    BLOCK_PAGE,
    CHANGED_TOKEN_PAGE,
    GENERATOR_ANSWER,
    LEGACY_TOKEN_PAGE,
    LEGACY_VQD,
    TOKEN_PAGE,
    VQD,
    result,
)


def test_token_current_format():
    assert extract_vqd(TOKEN_PAGE.format(q="dog", vqd=VQD)) == VQD


def test_token_legacy_format():
    assert extract_vqd(LEGACY_TOKEN_PAGE.format(q="dog", vqd=LEGACY_VQD)) == LEGACY_VQD


def test_token_in_url_only():
    assert extract_vqd("<script>f('/d.js?q=a&vqd=4-123456789&p=1')</script>") == "4-123456789"


@pytest.mark.parametrize("html", [CHANGED_TOKEN_PAGE, "", "vqd='abc'", 'vqd="4-"', "vqd=\"\""])
def test_missing_token_means_site_changed(html):
    with pytest.raises(SiteChanged, match="no vqd token"):
        extract_vqd(html)


def _answer(results, next_s=None, **extra):
    body = {"ads": None, "query": "dog", "queryEncoded": "dog", "response_type": "places",
            "results": results, "vqd": {"dog": VQD}, **extra}
    if next_s is not None:
        body["next"] = f"i.js?q=dog&o=json&p=1&s={next_s}&u=bing&f=,,,,,&l=us-en&vqd={VQD}"
    return json.dumps(body)


def test_results_page_fields_and_next():
    rs = [result(f"https://img.example/{i}.jpg", i) for i in range(3)]
    page = parse_results(_answer(rs, next_s=100))
    assert page.next_offset == 100
    assert [r.image for r in page.results] == [f"https://img.example/{i}.jpg" for i in range(3)]
    first = page.results[0]
    assert first.page_url == "https://example.org/gallery/0.html"
    assert first.title == "Photo number 0"
    assert first.source == "Bing"
    assert (first.width, first.height) == (1200, 800)
    assert first.thumbnail.startswith("https://tse")


def test_last_page_has_no_next():
    page = parse_results(_answer([result("https://img.example/a.jpg", 0)]))
    assert page.next_offset is None


def test_duplicates_within_a_page_are_dropped_and_bad_entries_skipped():
    rs = [result("https://img.example/a.jpg", 0), result("https://img.example/a.jpg", 1),
          {"title": "no image field"}, {**result("x", 2), "image": "data:image/png;base64,AAAA"},
          "not an object", result("https://img.example/b.jpg", 3)]
    page = parse_results(_answer(rs))
    assert [r.image for r in page.results] == ["https://img.example/a.jpg", "https://img.example/b.jpg"]
    assert page.skipped == 3


def test_empty_result_list():
    page = parse_results(_answer([]))
    assert page.results == [] and page.next_offset is None


def test_missing_or_odd_sizes_become_none():
    r = {**result("https://img.example/a.jpg", 0), "width": "n/a", "height": None}
    got = parse_results(_answer([r])).results[0]
    assert got.width is None and got.height is None


@pytest.mark.parametrize("text, match", [
    ("{\"results\": [", "not valid JSON"),
    ("<html>blocked</html>", "not valid JSON"),
    (b"\xff\xfe garbage", "not valid JSON"),
    ("[1, 2]", "not an object"),
    ("{\"foo\": 1}", "no 'results'"),
    ("{\"results\": {}}", "not a list"),
    ("{\"results\": [], \"next\": \"i.js?q=dog\"}", "no s= offset"),
    ("{\"results\": [], \"next\": \"i.js?s=abc\"}", "non-numeric"),
])
def test_malformed_results_raise_site_changed(text, match):
    with pytest.raises(SiteChanged, match=match):
        parse_results(text)


@pytest.mark.parametrize("status", [202, 301, 400, 403, 418, 429])
def test_block_statuses(status):
    assert is_blocked(status, "")


def test_block_page_body():
    assert is_blocked(200, BLOCK_PAGE)
    assert is_blocked(200, BLOCK_PAGE.encode())
    assert not is_blocked(200, _answer([]))
    assert not is_blocked(404, None)


def test_generator_answer_ranked_tags():
    html = GENERATOR_ANSWER.format(kw="dog", tags="#dog #dogsofinstagram #Puppy #dog #instadog,#pets")
    assert parse_generator(html) == ["dog", "dogsofinstagram", "puppy", "instadog", "pets"]


def test_generator_div_by_class_only():
    html = '<div class="copy-hashtags">#beach #sea</div>'
    assert parse_generator(html) == ["beach", "sea"]


@pytest.mark.parametrize("html, match", [
    ("<div class='hashtags'>#a #b</div>", "no div#copy-hashtags"),
    ("", "no div#copy-hashtags"),
    ("<div id='copy-hashtags'>   </div>", "holds no #tags"),
])
def test_generator_changed_markup(html, match):
    with pytest.raises(SiteChanged, match=match):
        parse_generator(html)
