-- kcl-rs lease store, SQLite schema version 2: workers that bind their liveness to their process.
-- Row `id` names the worker's lock file, `<id>.lock` in the directory `<database file>.liveness`
-- beside the database (worker ids are free text: never part of a path). AUTOINCREMENT never
-- reuses an id, so a file still locked by a worker that deregistered never names another row.
-- `held` turns 1 once the worker first holds the lock: before that, an unlocked file is no proof
-- of death.
CREATE TABLE IF NOT EXISTS kcl_liveness (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    worker_id TEXT    NOT NULL UNIQUE,
    held      INTEGER NOT NULL DEFAULT 0
);
