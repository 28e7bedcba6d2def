-- Web collection: candidate image URLs per word (what makes scrape-images resumable),
-- how far each word's search got, and each word's outcome per scrape run.

CREATE TABLE scrape_candidates (
    word        VARCHAR NOT NULL,
    url         VARCHAR NOT NULL,         -- full-size image URL
    query       VARCHAR NOT NULL,
    page_url    VARCHAR,
    title       VARCHAR,
    source      VARCHAR,                  -- the search engine's source field
    thumbnail   VARCHAR,
    width       INTEGER,                  -- as the search engine reported it
    height      INTEGER,
    position    INTEGER NOT NULL,         -- order found, so downloads follow the search ranking
    status      VARCHAR NOT NULL DEFAULT 'pending',  -- pending | retry | ok | duplicate | failed
    error       VARCHAR,
    attempts    INTEGER NOT NULL DEFAULT 0,
    sha256      VARCHAR,
    found_at    TIMESTAMP NOT NULL DEFAULT current_timestamp,
    found_run_id BIGINT,
    tried_at    TIMESTAMP,
    tried_run_id BIGINT,
    PRIMARY KEY (word, url)
);
CREATE INDEX scrape_candidates_url ON scrape_candidates (url);

CREATE TABLE scrape_searches (
    word        VARCHAR NOT NULL,
    query       VARCHAR NOT NULL,
    next_offset INTEGER,                  -- the s= offset of the next result page
    exhausted   BOOLEAN NOT NULL DEFAULT FALSE,  -- the last page (no `next`) was reached
    pages       INTEGER NOT NULL DEFAULT 0,
    updated_at  TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (word, query)
);

CREATE TABLE scrape_word_runs (
    run_id      BIGINT NOT NULL,
    word        VARCHAR NOT NULL,
    outcome     VARCHAR NOT NULL,         -- enough | exhausted | blocked | site_changed | interrupted | ...
    message     VARCHAR,
    updated_at  TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (run_id, word)
);
