-- Parquet shards of feature rows written by distributed workers (`features --engine ray`),
-- each recorded once when the driver has ingested it, so no shard is ever read twice.
CREATE TABLE feature_shards (
    path          VARCHAR PRIMARY KEY,    -- relative to the data dir: shards/features/<run_id>/<name>.parquet
    run_id        BIGINT NOT NULL,        -- the run whose workers wrote it
    ingest_run_id BIGINT NOT NULL,        -- the run whose driver ingested it (later than run_id after a kill)
    n_rows        INTEGER NOT NULL,       -- rows in the shard (features and failures)
    inserted      INTEGER NOT NULL,       -- feature rows it added (rows already present are skipped)
    failed        INTEGER NOT NULL,       -- failure rows it added
    ingested_at   TIMESTAMP NOT NULL DEFAULT current_timestamp
);
