//! Every SQL statement of the store, built once per store for its (validated, quoted) table
//! names. Values are always parameters; only the table names are spliced in.

use std::sync::Arc;

/// Lease columns as decoded by `row_codec`: times become milliseconds since the Unix epoch on
/// the server's clock, `now_ms` included, so expiry is judged on one clock. (`date_part`, a
/// float, exact to well under a millisecond: `EXTRACT` computes in NUMERIC, several times
/// slower over the rows of a renewal.)
const COLUMNS: &str = "stream, shard, owner, epoch, \
    (date_part('epoch', expires_at) * 1000)::bigint AS expires_at_ms, checkpoint, \
    pending_checkpoint, pending_state, parent_shard_ids, child_shard_ids, handoff_to, \
    (date_part('epoch', now()) * 1000)::bigint AS now_ms";

/// "The checkpoint given by (stage `$s`, sequence number `$n`) may follow the stored one":
/// `Checkpoint::may_follow` in SQL, sequence numbers compared as NUMERIC. A CASE, because SQL
/// does not promise to evaluate `AND`/`OR` operands in order.
fn may_follow(stage: &str, number: &str) -> String {
    format!(
        "CASE WHEN {stage}::smallint > checkpoint_stage THEN TRUE \
              WHEN {stage}::smallint < checkpoint_stage THEN FALSE \
              WHEN {stage}::smallint = 1 THEN checkpoint_seq <= {number}::numeric \
              ELSE TRUE END"
    )
}

/// A batch of fenced writes to `leases`: `UPDATE {leases} SET {set} FROM {batch} WHERE ...`,
/// joining the batch's rows (`unnest` of arrays whose first four columns are `b_stream`,
/// `b_shard`, `b_owner` and `b_epoch`) with the rows they fence, then `{rest}` (more conditions
/// and the `RETURNING`). The rows are locked in the order the join meets them: the store sends
/// one batch at a time (see `PostgresLeaseStore::batch_writes`), so its own batches never wait
/// for each other; batches of two stores share a row only when it changed owner between their
/// snapshots.
fn fenced_batch(leases: &str, set: &str, batch: &str, rest: &str) -> String {
    format!(
        "UPDATE {leases} SET {set} FROM {batch} \
         WHERE stream = b_stream AND shard = b_shard AND owner = b_owner AND epoch = b_epoch \
         {rest}"
    )
}

/// A taker's census of stream `$1` for worker `$2` (`LeaseCensus::of` in SQL): the rows given
/// in full, with a `NULL` tally, then one row per owner of settled leases, with its owner, the
/// count as `tally` and the soonest expiry as `expires_at_ms`. One statement, so one snapshot;
/// no common table expressions, which PostgreSQL would copy whole, but two scans of the stream's
/// rows and two of those with parents (an index of their own).
fn census(leases: &str) -> String {
    let in_peace = |alias: &str| {
        format!(
            "({alias}.owner IS NOT NULL AND {alias}.owner <> $2 \
             AND COALESCE({alias}.expires_at > now(), FALSE) AND {alias}.handoff_to IS NULL \
             AND {alias}.checkpoint_stage <> 2)"
        )
    };
    let awaited = format!(
        "SELECT unnest(string_to_array(p.parent_shard_ids, ',')) FROM {leases} AS p \
         WHERE p.stream = $1 AND p.parent_shard_ids <> '' AND NOT {}",
        in_peace("p")
    );
    let l = in_peace("l");
    format!(
        "SELECT {COLUMNS}, NULL::bigint AS tally FROM {leases} AS l \
         WHERE l.stream = $1 AND (NOT {l} OR l.shard IN ({awaited})) \
         UNION ALL \
         SELECT $1, '', l.owner, 0::bigint, \
           (date_part('epoch', min(l.expires_at)) * 1000)::bigint, '', NULL::text, NULL::bytea, \
           '', '', NULL::text, (date_part('epoch', now()) * 1000)::bigint, count(*) \
         FROM {leases} AS l WHERE l.stream = $1 AND {l} AND l.shard NOT IN ({awaited}) \
         GROUP BY l.owner"
    )
}

/// The store's statements.
#[derive(Debug, Clone)]
pub(crate) struct Statements {
    pub(crate) create: Arc<str>,
    pub(crate) select_one: Arc<str>,
    pub(crate) select_many: Arc<str>,
    pub(crate) census: Arc<str>,
    pub(crate) held_by: Arc<str>,
    pub(crate) list: Arc<str>,
    pub(crate) take: Arc<str>,
    pub(crate) renew: Arc<str>,
    pub(crate) release: Arc<str>,
    pub(crate) checkpoint: Arc<str>,
    pub(crate) request_handoff: Arc<str>,
    pub(crate) complete_handoff: Arc<str>,
    pub(crate) record_child_shards: Arc<str>,
    pub(crate) delete: Arc<str>,
    pub(crate) heartbeat: Arc<str>,
    pub(crate) deregister: Arc<str>,
    pub(crate) live_workers: Arc<str>,
    pub(crate) record_liveness: Arc<str>,
    pub(crate) dead_workers: Arc<str>,
    pub(crate) create_many: Arc<str>,
    pub(crate) renew_many: Arc<str>,
    pub(crate) checkpoint_many: Arc<str>,
    pub(crate) lease_changes: Arc<str>,
}

/// `name` as a quoted identifier (the name is validated to `[a-z0-9_]` already).
pub(crate) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Statements {
    /// The statements for lease table `leases`, worker table `workers`, liveness table
    /// `liveness` and change sequence `changes` (all quoted).
    pub(crate) fn new(leases: &str, workers: &str, liveness: &str, changes: &str) -> Self {
        // Drawn by every statement that changes what a taker must see (schema version 3).
        let change = format!("nextval('{}')", changes.replace('\'', "''"));
        let key = "stream = $1 AND shard = $2";
        let fenced = "stream = $1 AND shard = $2 AND owner = $3 AND epoch = $4";
        let millis = "$5::bigint * interval '1 millisecond'";
        Statements {
            create: format!(
                "INSERT INTO {leases} (stream, shard, epoch, checkpoint, checkpoint_stage, \
                 checkpoint_seq, parent_shard_ids) VALUES ($1, $2, 0, $3, $4, $5::numeric, $6) \
                 ON CONFLICT (stream, shard) DO NOTHING RETURNING {change}"
            )
            .into(),
            select_one: format!("SELECT {COLUMNS} FROM {leases} WHERE {key}").into(),
            select_many: format!(
                "SELECT {COLUMNS} FROM {leases} \
                 WHERE (stream, shard) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
            )
            .into(),
            census: census(leases).into(),
            held_by: format!("SELECT {COLUMNS} FROM {leases} WHERE stream = $1 AND owner = $2")
                .into(),
            // Unordered: the store sorts the rows, sparing the server a sort per listing.
            list: format!("SELECT {COLUMNS} FROM {leases} WHERE stream = $1").into(),
            take: format!(
                "UPDATE {leases} SET owner = $3, epoch = epoch + 1, \
                 expires_at = now() + {millis}, handoff_to = NULL \
                 WHERE {key} AND epoch = $4 \
                 AND ($6::boolean OR owner IS NULL OR expires_at IS NULL OR expires_at <= now()) \
                 RETURNING {COLUMNS}, {change}"
            )
            .into(),
            renew: format!(
                "UPDATE {leases} SET expires_at = now() + {millis} WHERE {fenced} \
                 RETURNING {COLUMNS}"
            )
            .into(),
            release: format!(
                "UPDATE {leases} SET owner = NULL, expires_at = NULL, handoff_to = NULL \
                 WHERE {fenced} RETURNING {change}"
            )
            .into(),
            checkpoint: format!(
                "UPDATE {leases} SET \
                   checkpoint = COALESCE($5::text, checkpoint), \
                   checkpoint_stage = COALESCE($6::smallint, checkpoint_stage), \
                   checkpoint_seq = CASE WHEN $5::text IS NULL THEN checkpoint_seq \
                                         ELSE $7::numeric END, \
                   pending_checkpoint = $8::text, \
                   pending_state = $9::bytea \
                 WHERE {fenced} \
                   AND ($5::text IS NULL OR {commit_ok}) \
                   AND ($8::text IS NULL OR $5::text IS NOT NULL OR {pending_ok}) \
                 RETURNING CASE WHEN $6::smallint = 2 THEN {change} END",
                commit_ok = may_follow("$6", "$7"),
                pending_ok = may_follow("$10", "$11"),
            )
            .into(),
            request_handoff: format!(
                "UPDATE {leases} SET handoff_to = $4 \
                 WHERE {key} AND epoch = $3 AND owner IS NOT NULL AND owner <> $4"
            )
            .into(),
            complete_handoff: format!(
                "UPDATE {leases} SET owner = handoff_to, epoch = epoch + 1, \
                 expires_at = now() + {millis}, handoff_to = NULL \
                 WHERE {fenced} AND handoff_to IS NOT NULL RETURNING {COLUMNS}, {change}"
            )
            .into(),
            record_child_shards: format!("UPDATE {leases} SET child_shard_ids = $5 WHERE {fenced}")
                .into(),
            delete: format!("DELETE FROM {leases} WHERE {key} RETURNING {change}").into(),
            lease_changes: format!(
                "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {changes}"
            )
            .into(),
            heartbeat: format!(
                "INSERT INTO {workers} (worker_id, heartbeat_at) VALUES ($1, now()) \
                 ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now()"
            )
            .into(),
            deregister: format!(
                "WITH forgotten AS (DELETE FROM {liveness} WHERE worker_id = $1) \
                 DELETE FROM {workers} WHERE worker_id = $1"
            )
            .into(),
            live_workers: format!(
                "SELECT worker_id FROM {workers} \
                 WHERE heartbeat_at > now() - $1::bigint * interval '1 millisecond' \
                 ORDER BY worker_id COLLATE \"C\""
            )
            .into(),
            record_liveness: format!(
                "INSERT INTO {liveness} (worker_id, lock_key) VALUES ($1, $2) \
                 ON CONFLICT (worker_id) DO UPDATE SET lock_key = EXCLUDED.lock_key"
            )
            .into(),
            // Keys sorted by the caller, inserted in that order (WITH ORDINALITY): racing batches
            // wait for each other's uncommitted rows in one order, never in a cycle.
            create_many: format!(
                "INSERT INTO {leases} (stream, shard, epoch, checkpoint, checkpoint_stage, \
                 checkpoint_seq, parent_shard_ids) \
                 SELECT b_stream, b_shard, 0, b_checkpoint, b_stage, b_number::numeric, b_parents \
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::text[], \
                   $6::text[]) WITH ORDINALITY \
                   AS b(b_stream, b_shard, b_checkpoint, b_stage, b_number, b_parents, b_order) \
                 ORDER BY b_order \
                 ON CONFLICT (stream, shard) DO NOTHING RETURNING stream, shard, {change}"
            )
            .into(),
            renew_many: fenced_batch(
                leases,
                &format!("expires_at = now() + {millis}"),
                "unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) \
                 AS b(b_stream, b_shard, b_owner, b_epoch)",
                &format!("RETURNING {COLUMNS}"),
            )
            .into(),
            checkpoint_many: fenced_batch(
                leases,
                "checkpoint = COALESCE(b_checkpoint, checkpoint), \
                 checkpoint_stage = COALESCE(b_stage, checkpoint_stage), \
                 checkpoint_seq = CASE WHEN b_checkpoint IS NULL THEN checkpoint_seq \
                                       ELSE b_number::numeric END, \
                 pending_checkpoint = b_pending, \
                 pending_state = b_state",
                "unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], \
                   $6::smallint[], $7::text[], $8::text[], $9::bytea[], $10::smallint[], \
                   $11::text[]) \
                 AS b(b_stream, b_shard, b_owner, b_epoch, b_checkpoint, b_stage, b_number, \
                   b_pending, b_state, b_pending_stage, b_pending_number)",
                &format!(
                    "AND (b_checkpoint IS NULL OR {commit_ok}) \
                     AND (b_pending IS NULL OR b_checkpoint IS NOT NULL OR {pending_ok}) \
                     RETURNING stream, shard, CASE WHEN b_stage = 2 THEN {change} END",
                    commit_ok = may_follow("b_stage", "b_number"),
                    pending_ok = may_follow("b_pending_stage", "b_pending_number"),
                ),
            )
            .into(),
            // A worker is dead when its recorded key can be locked: a shared lock for the
            // statement's transaction only, released when it ends. It cannot be had while the
            // worker's session holds the key exclusively, and it waits for nobody. One lock
            // lookup per worker asked about, where reading pg_locks copies the server's whole
            // lock table.
            dead_workers: format!(
                "SELECT worker_id FROM (SELECT worker_id, lock_key FROM {liveness} \
                   WHERE worker_id = ANY($1) OFFSET 0) AS asked \
                 WHERE pg_try_advisory_xact_lock_shared(lock_key) \
                 ORDER BY worker_id COLLATE \"C\""
            )
            .into(),
        }
    }
}
