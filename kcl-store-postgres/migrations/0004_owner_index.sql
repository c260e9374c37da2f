-- kcl-rs lease store, PostgreSQL schema version 4: indexes for a taker's census.
-- A taker reads a census of the table (other workers' leases only counted) and then, to take
-- over a dead worker or ask a busy one for leases, the rows of that one owner: found by owner.
-- The census also looks for the parents of the leases it lists in full, among the leases that
-- have parents: only the children of a resharding, found by a partial index. (Run once, under
-- the migration lock; PostgreSQL names the indexes after the table.)
CREATE INDEX ON {leases} (stream, owner);
CREATE INDEX ON {leases} (stream) WHERE parent_shard_ids <> '';
