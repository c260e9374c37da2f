-- kcl-rs lease store, SQLite schema version 3: the change number takers read (contract clause 12).
-- One row. The write transaction that creates or deletes a lease, changes its owner or epoch, or
-- writes SHARD_END adds one to `changes`, once however many leases it changed; renewals, other
-- checkpoints, handoff requests and heartbeats never write this row. A taker that reads the same
-- number twice skips listing the leases. A database made before this version starts at 0.
CREATE TABLE IF NOT EXISTS kcl_leases_changes (
    id      INTEGER PRIMARY KEY CHECK (id = 0),
    changes INTEGER NOT NULL
);
INSERT INTO kcl_leases_changes (id, changes) VALUES (0, 0) ON CONFLICT (id) DO NOTHING;
