"""`scrape-images`: collect photos per word from DuckDuckGo image search, resumably.

Per word: token page -> paged `i.js` results -> candidate URLs recorded in the
warehouse -> a bounded pool of workers downloads and validates them -> each outcome
is stored with its image row. Search requests come only from the main thread, so
they are serialised, and a Spacer keeps them politely apart.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import requests

from hashtag_workbench.core import ddg
from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.vocabulary import check_word
from hashtag_workbench.infra.http import (
    Spacer,
    ddg_base_url,
    describe_status,
    new_session,
)
from hashtag_workbench.infra.retry import retry_call
from hashtag_workbench.jobs.common import ensure_ready, split_list
from hashtag_workbench.jobs.download import DownloadPool, Fetched, ScrapeSettings
from hashtag_workbench.jobs.engines.options import EngineConfig, check_engine
from hashtag_workbench.jobs.options import config_from
from hashtag_workbench.jobs.runner import JobResult, job_run
from hashtag_workbench.warehouse import collect
from hashtag_workbench.warehouse import images as wh_images
from hashtag_workbench.warehouse import words as wh_words
from hashtag_workbench.warehouse.store import put_image

HELP = "collect photos per word from DuckDuckGo image search"
DESCRIPTION = (
    "Search DuckDuckGo images for each word and download up to --per-class "
    "photos per word. Re-running resumes: stored images and URLs that failed "
    "for good are never fetched again. Base URL: $HASHTAG_DDG_URL."
)

KIND = "scrape-images"


# ----------------------------------------------------------------------------- search

class SearchStopped(Exception):
    """The search for one word cannot go on; `outcome` names why (blocked, site_changed, search_failed)."""

    def __init__(self, outcome: str, message: str):
        super().__init__(message)
        self.outcome = outcome
        self.message = message


class _TryAgain(Exception):
    """A search answer worth another try after a wait; `blocked` when the site rate-limited us."""

    def __init__(self, problem: str, *, blocked: bool = False):
        super().__init__(problem)
        self.blocked = blocked


class DdgSearch:
    """DuckDuckGo image search: one token per query, then result pages by offset."""

    def __init__(self, settings: ScrapeSettings, *, base_url: str | None = None,
                 session: requests.Session | None = None, sleep: Callable[[float], None] | None = None):
        self.s = settings
        self.base = base_url or ddg_base_url()
        self.session = session or new_session()
        self.spacer = Spacer(settings.search_delay)
        self.sleep = sleep or time.sleep
        self.requests = 0

    def _get(self, url: str, params: dict, headers: dict | None, what: str) -> requests.Response:
        try:
            return retry_call(lambda: self._get_once(url, params, headers, what), retries=self.s.block_retries,
                              backoff=self.s.block_backoff, retry_on=lambda e: isinstance(e, _TryAgain),
                              sleep=self.sleep)
        except _TryAgain as exc:
            tries = self.s.block_retries + 1
            if exc.blocked:
                raise SearchStopped("blocked", f"DuckDuckGo rate-limited or blocked the {what} ({exc}) "
                                               f"{tries} times in a row; wait a while before running again") from None
            raise SearchStopped("search_failed", f"the {what} failed {tries} times: {exc}") from None

    def _get_once(self, url: str, params: dict, headers: dict | None, what: str) -> requests.Response:
        self.spacer.wait()
        self.requests += 1
        try:
            r = self.session.get(url, params=params, headers=headers, timeout=self.s.search_timeout,
                                 allow_redirects=False)
        except requests.RequestException as exc:
            raise _TryAgain(f"network error ({type(exc).__name__}: {str(exc)[:160]})") from None
        if ddg.is_blocked(r.status_code, r.content):
            raise _TryAgain("a block page (anomalyDetectionBlock)" if r.status_code == 200
                            else describe_status(r.status_code), blocked=True)
        if r.status_code >= 500:
            raise _TryAgain(describe_status(r.status_code))
        if r.status_code != 200:
            raise SearchStopped("search_failed", f"DuckDuckGo answered the {what} with "
                                                 f"{describe_status(r.status_code)}")
        return r

    def token(self, query: str) -> str:
        r = self._get(self.base + "/", {"q": query, "iax": "images", "ia": "images"}, None, "token page")
        try:
            return ddg.extract_vqd(r.text)
        except ddg.SiteChanged as exc:
            raise SearchStopped("site_changed", f"the site changed: {exc}") from None

    def page(self, query: str, vqd: str, offset: int) -> ddg.ResultPage:
        params = {"o": "json", "q": query, "l": "us-en", "vqd": vqd, "p": "1", "f": ",,,,,", "s": str(offset)}
        headers = {"Referer": self.base + "/", "Sec-Fetch-Mode": "cors",
                   "Accept": "application/json, text/javascript, */*; q=0.01"}
        r = self._get(self.base + "/i.js", params, headers, f"result page at offset {offset}")
        try:
            return ddg.parse_results(r.content)
        except ddg.SiteChanged as exc:
            raise SearchStopped("site_changed", f"the site changed: {exc}") from None


# ----------------------------------------------------------------------------- the job

def resolve_words(home: Path, words: list[str] | None) -> list[str]:
    """The given words, normalised and checked against the vocabulary; default every active word."""
    known = {w["word"]: w["active"] for w in wh_words.list_words(home)}
    if not words:
        return sorted(w for w, active in known.items() if active)
    out, unknown = [], []
    for w in words:
        norm = check_word(w)
        (out if norm in known else unknown).append(norm)
    if unknown:
        raise InputError(f"unknown word(s): {', '.join(unknown)}. Scrape only words of the vocabulary "
                         "(list them with `hashtags stats --all`).")
    return list(dict.fromkeys(out))


def _candidate_row(res: ddg.ImageResult) -> dict:
    return {"url": res.image, "page_url": res.page_url, "title": res.title, "source": res.source,
            "thumbnail": res.thumbnail, "width": res.width, "height": res.height}


class _WordScraper:
    def __init__(self, home: Path, run, settings: ScrapeSettings, search: DdgSearch, pool: DownloadPool,
                 stored: set[str], bar):
        self.home, self.run, self.s, self.search, self.pool = home, run, settings, search, pool
        self.stored, self.bar = stored, bar
        self.batch: list[dict] = []
        self.flushed_at = time.monotonic()

    def flush(self) -> int:
        """Write pending outcomes; returns how many planned stores turned out to be duplicates."""
        if not self.batch:
            return 0
        self.flushed_at = time.monotonic()
        final = collect.record_downloads(self.home, self.batch)
        # Another process may have stored the same bytes meanwhile: the warehouse made those duplicates.
        lost = sum(1 for out, st in zip(self.batch, final) if out["status"] == "ok" and st != "ok")
        if lost:
            self.run.count("done", -lost)
            self.run.count("duplicate", lost)
        self.batch.clear()
        self.run.checkpoint()
        return lost

    def handle(self, word: str, f: Fetched) -> bool:
        """Turn one download result into an outcome row; True when a new image was stored."""
        c = f.cand
        base = {"word": word, "url": c["url"], "run_id": self.run.run_id}
        row = {"word": word, "origin": "scrape", "source_url": c["url"], "page_url": c.get("page_url"),
               "title": c.get("title"), "query": c.get("query"), "source": c.get("source"),
               "run_id": self.run.run_id}
        if f.info is None:
            final = f.permanent or c.get("attempts", 0) + 1 >= self.s.max_attempts
            error = f.error if final else f"{f.error}; will be tried again on the next run"
            self.batch.append({**base, "status": "failed" if final else "retry", "error": error,
                               "row": {**row, "status": "failed", "error": error}})
            self.run.count("failed")
            return False
        if f.info.sha256 in self.stored:
            self.batch.append({**base, "status": "duplicate", "sha256": f.info.sha256,
                               "error": "same bytes as an image stored already"})
            self.run.count("duplicate")
            return False
        rel = f.stored_path or put_image(self.home, f.info.sha256, f.info.ext, f.data)
        self.stored.add(f.info.sha256)
        self.batch.append({**base, "status": "ok", "sha256": f.info.sha256,
                           "row": {**row, "sha256": f.info.sha256, "path": rel, "width": f.info.width,
                                   "height": f.info.height, "status": "ok"}})
        self.run.count("done")
        return True

    def scrape(self, word: str, need: int) -> tuple[str, str]:
        """Collect up to `need` new images of `word`; returns (outcome, message)."""
        query = word
        state = collect.search_state(self.home, word, query)
        vqd: str | None = None
        pages = 0
        got = 0
        stopped: SearchStopped | None = None
        while got < need:
            pending = collect.pending_candidates(self.home, word, limit=need - got,
                                                 max_attempts=self.s.max_attempts, run_id=self.run.run_id)
            if not pending:
                if stopped is not None:
                    return stopped.outcome, stopped.message
                if state["exhausted"]:
                    return "exhausted", f"the search has no more results ({got} of {need} new images stored)"
                if pages >= self.s.max_pages:
                    return "page_limit", f"read {pages} result pages this run; run again for more"
                try:
                    if vqd is None:
                        vqd = self.search.token(query)
                    page = self.search.page(query, vqd, state["next_offset"])
                except SearchStopped as exc:
                    stopped = exc
                    self.run.count("search_stopped")
                    continue
                pages += 1
                self.run.count("search_pages")
                added = collect.add_candidates(self.home, word, query, [_candidate_row(r) for r in page.results],
                                               run_id=self.run.run_id, next_offset=page.next_offset)
                self.run.count("candidates", added)
                state = {"next_offset": page.next_offset or 0, "exhausted": page.next_offset is None,
                         "pages": state["pages"] + 1}
                continue
            try:
                for f in self.pool.run(pending):
                    if self.handle(word, f):
                        got += 1
                        self.bar.update(1)
                    if len(self.batch) >= self.s.batch or time.monotonic() - self.flushed_at > self.s.flush_s:
                        got -= self.flush()
            finally:
                # Runs on Ctrl-C too: every finished download is recorded before the job stops.
                got -= self.flush()
        return "enough", f"{got} new images stored"


CONFIGS = (ScrapeSettings, EngineConfig)


def scrape_images(home: Path, *, words: list[str] | None = None, settings: ScrapeSettings | None = None,
                  dry_run: bool = False, engine: str = "local", address: str | None = None) -> dict:
    """Collect up to `per_class` stored images for each word (default: every active word).

    `engine="ray"` runs the downloads as Ray tasks (jobs/engines/ray_scrape.py); the search
    and every warehouse write stay here.

    Returns the run's counts (with run_id), or for a dry run {'would_fetch': {word: [urls]}, 'report': text}.
    """
    s = settings or ScrapeSettings()
    s.check()
    check_engine(engine, s.workers)
    home = Path(home)
    ensure_ready(home)
    word_list = resolve_words(home, words)
    if dry_run:
        return _dry_run(home, word_list, s)
    config = {"words": words or "active", "n_words": len(word_list), **asdict(s), "base_url": ddg_base_url(),
              "engine": engine}
    with job_run(home, KIND, config) as run:
        stored = wh_images.stored_shas(home)
        needs = {w: max(0, s.per_class - n) for w, n in collect.stored_counts(home, word_list).items()}
        run.extra["words"] = len(word_list)
        search = DdgSearch(s)
        pool = DownloadPool(s) if engine == "local" else _ray_pool(home, s, address, run)
        bar = run.progress(total=sum(needs.values()), desc=KIND)
        scraper = _WordScraper(home, run, s, search, pool, stored, bar)
        try:
            for word in word_list:
                if needs[word] == 0:
                    collect.set_word_outcome(home, run.run_id, word, "enough",
                                             f"already has {s.per_class} or more images")
                    run.count("words_complete")
                    continue
                bar.set_postfix_str(word, refresh=False)
                try:
                    outcome, message = scraper.scrape(word, needs[word])
                except KeyboardInterrupt:
                    collect.set_word_outcome(home, run.run_id, word, "interrupted", "stopped by the user (Ctrl-C)")
                    raise
                collect.set_word_outcome(home, run.run_id, word, outcome, message)
                run.count(f"words_{outcome}")
                if outcome not in ("enough", "exhausted"):
                    run.log(f"{word}: {message}; going on with the next word")
        finally:
            pool.close()
            bar.close()
        run.extra["search_requests"] = search.requests
        return {"run_id": run.run_id, **run.all_counts()}


def _ray_pool(home: Path, s: ScrapeSettings, address: str | None, run):
    from hashtag_workbench.jobs.engines.ray_scrape import RayDownloadPool
    return RayDownloadPool(home, s, address=address, run=run)


def _dry_run(home: Path, word_list: list[str], s: ScrapeSettings) -> dict:
    """List what a real run would fetch; writes nothing (search pages are read, images are not)."""
    search = DdgSearch(s)
    known = collect.final_urls(home)
    plan: dict[str, list[str]] = {}
    lines: list[str] = []
    have = collect.stored_counts(home, word_list)
    for word in word_list:
        need = max(0, s.per_class - have[word])
        urls = [c["url"] for c in collect.pending_candidates(home, word, limit=need, settle=False,
                                                              max_attempts=s.max_attempts)] if need else []
        note = ""
        state = collect.search_state(home, word, word)
        offset, exhausted, pages, vqd = state["next_offset"], state["exhausted"], 0, None
        while len(urls) < need and not exhausted and pages < s.max_pages:
            try:
                vqd = vqd or search.token(word)
                page = search.page(word, vqd, offset)
            except SearchStopped as exc:
                note = f" ({exc.outcome}: {exc.message})"
                break
            pages += 1
            for r in page.results:
                if r.image not in known and r.image not in urls:
                    urls.append(r.image)
            offset, exhausted = page.next_offset or 0, page.next_offset is None
        urls = urls[:need]
        plan[word] = urls
        lines += [f"{word}: need {need}, would fetch {len(urls)} image URLs{note}", *(f"  {u}" for u in urls)]
    return {"would_fetch": plan, "report": "\n".join(lines)}


def run_command(args) -> JobResult:
    out = scrape_images(args.home, words=split_list(args.words), settings=config_from(args, ScrapeSettings),
                        dry_run=args.dry_run, engine=args.engine, address=args.address)
    return JobResult(text=out.pop("report", ""), data=out)


def add_options(p) -> None:
    p.add_argument("--words", help="comma-separated words (default: every active word)")
    p.add_argument("--dry-run", action="store_true", help="list the image URLs that would be fetched; store nothing")
