-- kcl-rs lease store, PostgreSQL schema version 3: the change number takers read.
-- {changes} is replaced by the configured, validated and quoted `<table>_changes`.
--
-- Every statement that creates or deletes a lease, changes its owner or epoch, or writes
-- SHARD_END draws a value from this sequence; a taker that reads the same last value twice
-- skips listing the table. A sequence rather than a counter row: drawing from it takes no row
-- lock, so concurrent takes never queue behind each other.
CREATE SEQUENCE IF NOT EXISTS {changes} AS BIGINT;

-- Renewals only move `expires_at`, which no index covers: room on each page lets them stay
-- heap-only updates (no index writes, old versions pruned in place).
ALTER TABLE {leases} SET (fillfactor = 80);
