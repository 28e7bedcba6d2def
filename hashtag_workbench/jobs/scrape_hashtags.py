"""`scrape-hashtags`: fetch each word's popular hashtags from all-hashtag.com's generator.

Scraped tags are stored beside the hand-made map (source 'scraped'), which stays
untouched and remains the fallback. A word whose request fails, or whose answer no
longer has the expected markup, is reported and keeps the tags it had.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from hashtag_workbench.core.allhashtag import parse_generator
from hashtag_workbench.core.config import option
from hashtag_workbench.core.ddg import SiteChanged
from hashtag_workbench.infra.http import TRANSIENT_STATUSES, Spacer, allhashtag_base_url, describe_status, new_session
from hashtag_workbench.infra.retry import retry_call
from hashtag_workbench.jobs.common import ensure_ready, split_list
from hashtag_workbench.jobs.options import config_from
from hashtag_workbench.jobs.runner import JobResult, job_run
from hashtag_workbench.jobs.scrape_images import resolve_words
from hashtag_workbench.warehouse import words as wh_words

HELP = "fetch each word's popular hashtags from all-hashtag.com"
DESCRIPTION = (
    "Ask all-hashtag.com's generator for each word's top hashtags and store them "
    "(source 'scraped'). The hand-made map is left as it is and stays the "
    "fallback. Base URL: $HASHTAG_ALLHASHTAG_URL."
)

KIND = "scrape-hashtags"
GENERATOR_PATH = "/library/contents/ajax_generator.php"


class HashtagFetchFailed(Exception):
    """One word's request failed; the message says how."""


class _Transient(HashtagFetchFailed):
    """A network error or a 5xx/429 answer: worth another try."""


def fetch_generator(session: requests.Session, base: str, word: str, *, timeout: float = 15.0,
                    retries: int = 2, backoff: float = 2.0, spacer: Spacer | None = None,
                    sleep=None) -> str:
    """POST the generator for `word` (filter=top) and return the HTML fragment it answers."""
    def once() -> str:
        if spacer is not None:
            spacer.wait()
        try:
            r = session.post(base + GENERATOR_PATH, data={"keyword": word, "filter": "top"}, timeout=timeout,
                             headers={"Referer": base + "/hashtag-generator.php",
                                      "X-Requested-With": "XMLHttpRequest"})
        except requests.RequestException as exc:
            raise _Transient(f"network error ({type(exc).__name__}: {str(exc)[:160]})") from None
        if r.status_code == 200:
            return r.text
        kind = _Transient if r.status_code in TRANSIENT_STATUSES else HashtagFetchFailed
        raise kind(describe_status(r.status_code))

    try:
        return retry_call(once, retries=retries, backoff=backoff, sleep=sleep,
                          retry_on=lambda e: isinstance(e, _Transient))
    except HashtagFetchFailed as exc:
        raise HashtagFetchFailed(f"all-hashtag.com did not answer usefully: {exc}") from None


@dataclass
class HashtagScrapeConfig:
    """The `scrape-hashtags` job's politeness and patience."""
    delay: float = option(1.0, "seconds between requests")
    timeout: float = option(15.0, "request timeout in seconds")
    retries: int = option(2, "extra tries after a network error or 5xx/429 answer (never after 403/404)")
    backoff: float = option(2.0, "first wait before a retry, in seconds; doubles per try", cli=False)


CONFIGS = (HashtagScrapeConfig,)


def scrape_hashtags(home: Path, config: HashtagScrapeConfig | None = None, *, words: list[str] | None = None,
                    **settings) -> dict:
    """Fetch and store the top hashtags of each word (default: every active word)."""
    cfg = config or HashtagScrapeConfig(**settings)
    home = Path(home)
    ensure_ready(home)
    word_list = resolve_words(home, words)
    base = allhashtag_base_url()
    config = {"words": words or "active", "n_words": len(word_list), "base_url": base, **asdict(cfg)}
    with job_run(home, KIND, config) as run:
        session = new_session()
        spacer = Spacer(cfg.delay)
        failed_words: list[str] = []
        for word in run.progress(word_list, desc=KIND, unit="word"):
            try:
                html = fetch_generator(session, base, word, timeout=cfg.timeout, retries=cfg.retries,
                                       backoff=cfg.backoff, spacer=spacer)
                tags = parse_generator(html)
            except HashtagFetchFailed as exc:
                run.log(f"{word}: {exc}; kept its existing hashtags")
                run.count("failed")
                failed_words.append(word)
                continue
            except SiteChanged as exc:
                run.log(f"{word}: {exc}; kept its existing hashtags")
                run.count("failed")
                run.count("markup_changed")
                failed_words.append(word)
                continue
            wh_words.set_hashtags(home, word, tags, source="scraped", run_id=run.run_id)
            run.count("done")
            run.count("tags", len(tags))
        session.close()
        run.extra["failed_words"] = failed_words
        return {"run_id": run.run_id, **run.all_counts()}


def run_command(args) -> JobResult:
    counts = scrape_hashtags(args.home, config_from(args, HashtagScrapeConfig), words=split_list(args.words))
    if counts.get("failed") and not counts.get("done"):
        return JobResult(data=counts, exit_code=1,
                         summary="no word got hashtags from all-hashtag.com; the hand-made map is still used")
    return JobResult(data=counts)


def add_options(p) -> None:
    p.add_argument("--words", help="comma-separated words (default: every active word)")
