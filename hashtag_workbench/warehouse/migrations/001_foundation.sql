-- Foundation: vocabulary, hashtags, images, runs, curation log.
CREATE SEQUENCE run_seq START 1;
CREATE SEQUENCE image_seq START 1;
CREATE SEQUENCE decision_seq START 1;

CREATE TABLE runs (
    run_id      BIGINT PRIMARY KEY DEFAULT nextval('run_seq'),
    kind        VARCHAR NOT NULL,
    config      JSON,
    status      VARCHAR NOT NULL DEFAULT 'running',  -- running | ok | failed | interrupted
    counts      JSON,
    started_at  TIMESTAMP NOT NULL DEFAULT current_timestamp,
    finished_at TIMESTAMP,
    duration_s  DOUBLE,
    error       VARCHAR,
    pid         INTEGER,
    host        VARCHAR,
    log         VARCHAR
);

CREATE TABLE words (
    word       VARCHAR PRIMARY KEY,
    active     BOOLEAN NOT NULL DEFAULT TRUE,
    source     VARCHAR NOT NULL DEFAULT 'vocabulary',   -- vocabulary | user | import
    added_at   TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE hashtags (
    word       VARCHAR NOT NULL,
    tag        VARCHAR NOT NULL,          -- without the leading '#'
    rank       INTEGER NOT NULL,          -- 1 = most popular
    source     VARCHAR NOT NULL,          -- hand | scraped
    fetched_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    run_id     BIGINT,
    PRIMARY KEY (word, source, tag)
);

CREATE TABLE images (
    image_id    BIGINT PRIMARY KEY DEFAULT nextval('image_seq'),
    sha256      VARCHAR,                  -- NULL for rows that failed before bytes were read
    path        VARCHAR,                  -- relative to the data directory
    word        VARCHAR,                  -- label given at collection time
    origin      VARCHAR NOT NULL,         -- import | scrape | upload
    source_path VARCHAR,                  -- local file (import)
    source_url  VARCHAR,                  -- image URL (scrape)
    page_url    VARCHAR,
    title       VARCHAR,
    query       VARCHAR,
    source      VARCHAR,                  -- search engine's source field
    width       INTEGER,
    height      INTEGER,
    status      VARCHAR NOT NULL,         -- ok | failed
    error       VARCHAR,
    added_at    TIMESTAMP NOT NULL DEFAULT current_timestamp,
    run_id      BIGINT
);
CREATE INDEX images_sha ON images (sha256);
CREATE INDEX images_word ON images (word);

CREATE TABLE curation_log (
    decision_id BIGINT PRIMARY KEY DEFAULT nextval('decision_seq'),
    image_id    BIGINT NOT NULL,
    decision    VARCHAR NOT NULL,         -- keep | reject | relabel
    old_word    VARCHAR,
    new_word    VARCHAR,
    decided_at  TIMESTAMP NOT NULL DEFAULT current_timestamp,
    undone      BOOLEAN NOT NULL DEFAULT FALSE,
    undone_at   TIMESTAMP,
    note        VARCHAR
);

CREATE TABLE word_edits (                 -- every change to words and hashtag lists
    edit_id    BIGINT PRIMARY KEY DEFAULT nextval('decision_seq'),
    action     VARCHAR NOT NULL,          -- add | rename | deactivate | activate | hashtags
    word       VARCHAR NOT NULL,
    detail     JSON,
    edited_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- The label each stored image carries now: its latest standing curation decision wins.
CREATE VIEW image_labels AS
WITH latest AS (
    SELECT image_id, decision, new_word,
           row_number() OVER (PARTITION BY image_id ORDER BY decision_id DESC) AS rn
    FROM curation_log WHERE NOT undone
)
SELECT i.image_id, i.sha256, i.path, i.origin, i.run_id,
       coalesce(CASE WHEN l.decision = 'relabel' THEN l.new_word END, i.word) AS word,
       i.word AS original_word,
       coalesce(l.decision, 'unreviewed') AS review
FROM images i LEFT JOIN latest l ON l.image_id = i.image_id AND l.rn = 1
WHERE i.status = 'ok';
