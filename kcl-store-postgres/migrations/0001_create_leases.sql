-- kcl-rs lease store, PostgreSQL schema version 1.
-- {leases} and {workers} are replaced by the configured, validated and quoted table names.
-- Times are the server's (now()). Sequence numbers are kept as text in `checkpoint` and, for
-- comparisons inside conditional UPDATEs, as NUMERIC in `checkpoint_seq` (exact at any length).
CREATE TABLE IF NOT EXISTS {leases} (
    stream             TEXT        NOT NULL,
    shard              TEXT        NOT NULL,
    owner              TEXT,
    epoch              BIGINT      NOT NULL DEFAULT 0,
    expires_at         TIMESTAMPTZ,
    checkpoint         TEXT        NOT NULL,
    -- 0: TRIM_HORIZON / LATEST / AT_TIMESTAMP, 1: a sequence number, 2: SHARD_END.
    checkpoint_stage   SMALLINT    NOT NULL,
    checkpoint_seq     NUMERIC,
    pending_checkpoint TEXT,
    pending_state      BYTEA,
    parent_shard_ids   TEXT        NOT NULL DEFAULT '',
    child_shard_ids    TEXT        NOT NULL DEFAULT '',
    handoff_to         TEXT,
    PRIMARY KEY (stream, shard)
);

CREATE TABLE IF NOT EXISTS {workers} (
    worker_id    TEXT        NOT NULL PRIMARY KEY,
    heartbeat_at TIMESTAMPTZ NOT NULL
);
