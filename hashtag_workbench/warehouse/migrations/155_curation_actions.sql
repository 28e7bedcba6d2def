-- Curation by action: every decide() is one action (a bulk reject of 3 is one action, one undo step),
-- recorded with the dashboard session and page that made it, so undo acts on what that page did.
-- Events sent by the dashboard's grid (one per key press or click) are recorded by their client-made
-- id: a unique key, so an event resent after a rerun or reconnect is applied at most once.
CREATE SEQUENCE curation_action_seq START 1;
CREATE TABLE curation_actions (
    action_id   BIGINT PRIMARY KEY DEFAULT nextval('curation_action_seq'),
    session_id  VARCHAR,                  -- the dashboard session (browser tab); NULL from the CLI or API
    page        VARCHAR,                  -- review | embedding | evaluation | ...
    decision    VARCHAR NOT NULL,         -- keep | reject | relabel
    new_word    VARCHAR,                  -- relabel target
    n_images    INTEGER NOT NULL,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp,
    undone_at   TIMESTAMP                 -- set when the whole action was undone
);
ALTER TABLE curation_log ADD COLUMN action_id BIGINT;   -- the action a decision belongs to (NULL: older rows)
CREATE TABLE curation_events (
    event_id    VARCHAR PRIMARY KEY,      -- made by the browser: <tab id>-<counter>
    session_id  VARCHAR,
    page        VARCHAR,
    kind        VARCHAR NOT NULL,         -- keep | reject | relabel | undo
    image_ids   BIGINT[],                 -- the images it named (empty for undo)
    action_id   BIGINT,                   -- the action it made, or the one it undid
    status      VARCHAR NOT NULL,         -- applied | not_applied
    message     VARCHAR NOT NULL,         -- what the person is told
    applied_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);
-- The Embedding map's 2-d coordinates, computed once per PCA fit (a features run) by the features job,
-- so the page only reads them. TSNE may cover a sample of a large warehouse.
CREATE TABLE embedding_maps (
    run_id      BIGINT NOT NULL,          -- the features run whose PCA fit was mapped (pca_fits.run_id)
    method      VARCHAR NOT NULL,         -- pca | tsne
    image_id    BIGINT NOT NULL,
    x           REAL NOT NULL,
    y           REAL NOT NULL,
    PRIMARY KEY (run_id, method, image_id)
);
