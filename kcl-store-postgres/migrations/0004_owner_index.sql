-- kcl-rs lease store, PostgreSQL schema version 4: the leases of one owner, found by index.
-- A taker reads a census of the table (other workers' leases only counted) and then, to take
-- over a dead worker or ask a busy one for leases, the rows of that one owner. (Run once, under
-- the migration lock; PostgreSQL names the index after the table.)
CREATE INDEX ON {leases} (stream, owner);
