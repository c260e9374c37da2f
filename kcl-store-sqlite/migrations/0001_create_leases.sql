-- kcl-rs lease store, SQLite schema version 1.
-- Sequence numbers are kept as text and compared in Rust (SequenceNumber's numeric order) inside
-- the BEGIN IMMEDIATE transaction that writes them; times are milliseconds since the Unix epoch
-- on this machine's clock.
CREATE TABLE IF NOT EXISTS kcl_leases (
    stream             TEXT    NOT NULL,
    shard              TEXT    NOT NULL,
    owner              TEXT,
    epoch              INTEGER NOT NULL DEFAULT 0,
    expires_at_ms      INTEGER,
    checkpoint         TEXT    NOT NULL,
    pending_checkpoint TEXT,
    pending_state      BLOB,
    parent_shard_ids   TEXT    NOT NULL DEFAULT '',
    child_shard_ids    TEXT    NOT NULL DEFAULT '',
    handoff_to         TEXT,
    PRIMARY KEY (stream, shard)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS kcl_workers (
    worker_id       TEXT    NOT NULL PRIMARY KEY,
    heartbeat_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
