"""Web collection state: candidate image URLs per word, search progress, per-word outcomes.

A scrape run records every URL it finds before downloading anything, and every
download's outcome together with its image row in one transaction, so a run killed
at any moment resumes without fetching a stored image or a permanently failed URL again.
"""
from __future__ import annotations

from pathlib import Path

from hashtag_workbench.warehouse.db import connect, fetch_dicts
from hashtag_workbench.warehouse.images import IMAGE_FIELDS

CANDIDATE_FIELDS = ("page_url", "title", "source", "thumbnail", "width", "height")
# Outcomes after which a URL is never fetched again, for any word.
FINAL_STATUSES = ("ok", "duplicate", "failed")


def search_state(home: Path, word: str, query: str) -> dict:
    """How far the search for (word, query) got: next_offset, exhausted, pages."""
    with connect(home, read_only=True) as con:
        row = con.execute("SELECT next_offset, exhausted, pages FROM scrape_searches WHERE word = ? AND query = ?",
                          [word, query]).fetchone()
    if row is None:
        return {"next_offset": 0, "exhausted": False, "pages": 0}
    return {"next_offset": row[0] or 0, "exhausted": bool(row[1]), "pages": row[2]}


def add_candidates(home: Path, word: str, query: str, results: list[dict], *, run_id: int | None,
                   next_offset: int | None) -> int:
    """Record one result page: new candidate URLs (in order) and where the search goes next.

    `results` hold 'url' plus CANDIDATE_FIELDS; URLs already known for the word are
    ignored. `next_offset` None means the last page was reached. Returns the number added.
    """
    added = 0
    with connect(home) as con:
        known = {r[0] for r in con.execute("SELECT url FROM scrape_candidates WHERE word = ?", [word]).fetchall()}
        pos = con.execute("SELECT coalesce(max(position), 0) FROM scrape_candidates WHERE word = ?",
                          [word]).fetchone()[0]
        for res in results:
            url = res["url"]
            if url in known:
                continue
            known.add(url)
            pos += 1
            con.execute(f"""INSERT INTO scrape_candidates (word, url, query, {', '.join(CANDIDATE_FIELDS)},
                                position, found_run_id)
                            VALUES (?, ?, ?, {', '.join('?' * len(CANDIDATE_FIELDS))}, ?, ?)""",
                        [word, url, query, *[res.get(f) for f in CANDIDATE_FIELDS], pos, run_id])
            added += 1
        con.execute("""INSERT INTO scrape_searches (word, query, next_offset, exhausted, pages)
                       VALUES (?, ?, ?, ?, 1)
                       ON CONFLICT (word, query) DO UPDATE SET next_offset = excluded.next_offset,
                           exhausted = excluded.exhausted, pages = scrape_searches.pages + 1,
                           updated_at = now()""",
                    [word, query, next_offset, next_offset is None])
    return added


def pending_candidates(home: Path, word: str, *, limit: int | None = None, max_attempts: int = 3,
                       run_id: int | None = None, settle: bool = True) -> list[dict]:
    """The word's URLs still to download, in search order, leaving out those tried in `run_id`.

    With `settle`, URLs already stored or permanently failed (under any word) are first
    marked duplicate / failed here, so they are never fetched again; without it
    (dry runs) nothing is written and those URLs are just left out.
    """
    done_elsewhere = f"""
        SELECT url, status, word FROM scrape_candidates
        WHERE status IN {FINAL_STATUSES} AND word <> ?
        UNION ALL SELECT source_url, 'ok', word FROM images WHERE status = 'ok' AND source_url IS NOT NULL"""
    sql = f"""SELECT c.url, c.query, c.attempts, {', '.join('c.' + f for f in CANDIDATE_FIELDS)}
              FROM scrape_candidates c
              WHERE c.word = ? AND c.status IN ('pending', 'retry') AND c.attempts < ?
                AND c.tried_run_id IS DISTINCT FROM ?
                AND c.url NOT IN (SELECT url FROM ({done_elsewhere}))
              ORDER BY c.position"""
    # A run tries each URL once (with its own bounded retries); the next run tries transient failures again.
    params: list = [word, max_attempts, run_id, word]
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    with connect(home, read_only=not settle) as con:
        if settle:
            known = con.execute(f"""SELECT c.url, d.status, d.word FROM scrape_candidates c
                                    JOIN ({done_elsewhere}) d ON d.url = c.url
                                    WHERE c.word = ? AND c.status IN ('pending', 'retry')""",
                                [word, word]).fetchall()
            for url, status, other in known:
                if status == "failed":
                    new, err = "failed", f"this URL failed before (for {other!r}); not fetched again"
                else:
                    new, err = "duplicate", f"this URL is stored already (for {other!r})"
                con.execute("""UPDATE scrape_candidates SET status = ?, error = ?, tried_run_id = ?,
                               tried_at = current_timestamp WHERE word = ? AND url = ?""",
                            [new, err, run_id, word, url])
        return fetch_dicts(con.execute(sql, params))


def final_urls(home: Path) -> set[str]:
    """Image URLs never to fetch again: stored, duplicate or permanently failed (any word)."""
    with connect(home, read_only=True) as con:
        rows = con.execute(f"""SELECT url FROM scrape_candidates WHERE status IN {FINAL_STATUSES}
                               UNION SELECT source_url FROM images
                               WHERE status = 'ok' AND source_url IS NOT NULL""").fetchall()
    return {r[0] for r in rows}


def stored_counts(home: Path, words: list[str]) -> dict[str, int]:
    """word -> stored (ok) images labelled with it at collection time, any origin."""
    with connect(home, read_only=True) as con:
        got = dict(con.execute("""SELECT word, count(*) FROM images WHERE status = 'ok'
                                  AND word IN (SELECT unnest(?)) GROUP BY word""", [list(words)]).fetchall())
    return {w: got.get(w, 0) for w in words}


def record_downloads(home: Path, outcomes: list[dict]) -> list[str]:
    """Store download outcomes with their image rows, all in one transaction.

    Each outcome holds word, url, status (ok | duplicate | failed | retry), error,
    sha256, run_id and, for ok and failure outcomes, `row`: the images row to add.
    A URL keeps at most one failed image row (a retry replaces it). An ok row whose
    sha256 is stored already becomes a duplicate. Returns the final status of each.
    """
    final: list[str] = []
    with connect(home) as con:
        for out in outcomes:
            status = out["status"]
            row = out.get("row")
            if row is not None:
                con.execute("""DELETE FROM images WHERE origin = 'scrape' AND status = 'failed'
                               AND word = ? AND source_url = ?""", [out["word"], out["url"]])
                if row["status"] == "ok" and con.execute(
                        "SELECT 1 FROM images WHERE sha256 = ? AND status = 'ok'", [row["sha256"]]).fetchone():
                    status, row = "duplicate", None
            if row is not None:
                cols = [f for f in IMAGE_FIELDS if f in row]
                con.execute(f"INSERT INTO images ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                            [row[c] for c in cols])
            con.execute("""UPDATE scrape_candidates SET status = ?, error = ?, sha256 = coalesce(?, sha256),
                               attempts = attempts + 1, tried_at = current_timestamp, tried_run_id = ?
                           WHERE word = ? AND url = ?""",
                        [status, out.get("error"), out.get("sha256"), out.get("run_id"), out["word"], out["url"]])
            final.append(status)
    return final


def set_word_outcome(home: Path, run_id: int, word: str, outcome: str, message: str | None = None) -> None:
    """Note how one word ended in a scrape run (enough, exhausted, blocked, site_changed, ...)."""
    with connect(home) as con:
        con.execute("""INSERT INTO scrape_word_runs (run_id, word, outcome, message) VALUES (?, ?, ?, ?)
                       ON CONFLICT (run_id, word) DO UPDATE SET outcome = excluded.outcome,
                           message = excluded.message, updated_at = now()""",
                    [run_id, word, outcome, message])


def last_scrape_counts(home: Path, kind: str = "scrape-images") -> list[dict]:
    """Per word, what the latest scrape run did: stored, failed and duplicate counts, and how it ended.

    Each dict: word, stored, failed, duplicates, outcome, message, run_id, run_status,
    started_at. An empty list when no scrape run exists yet.
    """
    with connect(home, read_only=True) as con:
        run = con.execute("SELECT run_id, status, started_at FROM runs WHERE kind = ? ORDER BY run_id DESC LIMIT 1",
                          [kind]).fetchone()
        if run is None:
            return []
        run_id, run_status, started = run
        rows = con.execute("""
            WITH img AS (SELECT word, count(*) FILTER (WHERE status = 'ok') AS stored,
                                count(*) FILTER (WHERE status = 'failed') AS failed
                         FROM images WHERE run_id = ? AND word IS NOT NULL GROUP BY word),
                 dup AS (SELECT word, count(*) AS duplicates FROM scrape_candidates
                         WHERE tried_run_id = ? AND status = 'duplicate' GROUP BY word),
                 ws AS (SELECT word FROM img UNION SELECT word FROM dup
                        UNION SELECT word FROM scrape_word_runs WHERE run_id = ?)
            SELECT ws.word, coalesce(img.stored, 0), coalesce(img.failed, 0), coalesce(dup.duplicates, 0),
                   o.outcome, o.message
            FROM ws LEFT JOIN img USING (word) LEFT JOIN dup USING (word)
                    LEFT JOIN scrape_word_runs o ON o.run_id = ? AND o.word = ws.word
            ORDER BY ws.word""", [run_id, run_id, run_id, run_id]).fetchall()
    return [dict(word=r[0], stored=r[1], failed=r[2], duplicates=r[3], outcome=r[4], message=r[5],
                 run_id=run_id, run_status=run_status, started_at=started) for r in rows]
