-- kcl-rs lease store, PostgreSQL schema version 2: liveness bound to a worker's process.
-- {liveness} is replaced by the configured, validated and quoted `<table>_liveness`.
--
-- A worker holding liveness keeps a session-level advisory lock on a dedicated connection; this
-- table records which lock key stands for which worker. The keys come from one sequence per
-- database, shared by every store table in it, so that no two holds ever share a key. Its values
-- start at 0x4B434C0000000000 ("KCL" in the high bytes), away from the small and `hashtext`
-- keys other users of advisory locks tend to take.
--
-- Tables of different stores migrate concurrently (each under its own lock), and concurrent
-- `CREATE SEQUENCE IF NOT EXISTS` can fail on the catalog's unique index: one database-wide
-- lock serialises creating the sequence.
SELECT pg_advisory_xact_lock(hashtext('kcl-rs liveness key sequence'));
CREATE SEQUENCE IF NOT EXISTS kcl_rs_liveness_keys AS BIGINT START WITH 5423261939167920128;

CREATE TABLE IF NOT EXISTS {liveness} (
    worker_id TEXT   NOT NULL PRIMARY KEY,
    lock_key  BIGINT NOT NULL
);
