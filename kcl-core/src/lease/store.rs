//! The `LeaseStore` trait: the seam between the worker and the table of leases.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;

use crate::lease::{
    CheckpointUpdate, Fence, Lease, LeaseCensus, LeaseKey, LivenessHold, NewLease, TakeMode,
    WorkerId,
};
use crate::{Error, ShardId, StreamName};

/// Where workers agree who processes which shard and where each shard's checkpoint is.
///
/// Backends: [`InMemoryLeaseStore`](crate::InMemoryLeaseStore) (the reference, one process),
/// `kcl_store_sqlite::SqliteLeaseStore` (several processes on one machine) and
/// `kcl_store_postgres::PostgresLeaseStore` (many machines). Every backend passes the same
/// conformance suite (`kcl_core::lease_store_conformance`, feature `test-util`).
///
/// # Contract
///
/// A lease is a row per (stream, shard): owner, epoch, expiry, checkpoint, pending checkpoint,
/// parent and child shard ids, handoff target.
///
/// 1. **Store clock.** Expiry is set and judged on the store's clock (the database server's
///    `now()`, the machine's clock for SQLite, the process's monotonic clock in memory), never by
///    comparing the clocks of different workers. `Lease::time_left` is the time left when read.
/// 2. **Create if absent.** [`create_lease_if_absent`](Self::create_lease_if_absent) inserts an
///    unowned lease at epoch 0 and returns `true`, or changes nothing and returns `false` if the
///    key exists. Under any race exactly one caller gets `true`, and the stored lease is that
///    caller's.
/// 3. **Take.** [`take_lease`](Self::take_lease) is one conditional write on the epoch the
///    caller saw. It succeeds only if the epoch is still `seen_epoch` and, for
///    [`TakeMode::IfAvailable`], the lease is unowned or expired; [`TakeMode::Steal`] also takes
///    a held lease. It bumps the epoch, sets the owner and the expiry (`duration` from now) and
///    clears a handoff request. Of any number of racing takes on one epoch, at most one
///    succeeds; the others get [`Error::LeaseConflict`].
/// 4. **Fencing.** [`renew_lease`](Self::renew_lease), [`checkpoint`](Self::checkpoint),
///    [`release_lease`](Self::release_lease), [`complete_handoff`](Self::complete_handoff) and
///    [`record_child_shards`](Self::record_child_shards) are conditional writes on the
///    caller's [`Fence`] (owner and epoch). A mismatch is [`Error::LeaseLost`] and writes
///    nothing: once another worker took the lease, its previous owner can never write to it
///    again. Fencing is by epoch, not by time: an owner whose lease expired may still renew or
///    checkpoint as long as nobody took it.
/// 5. **Checkpoints never move backwards** (see
///    [`Checkpoint::may_follow`](crate::Checkpoint::may_follow)): a lower sequence number, an
///    initial sentinel after a sequence number, anything but `SHARD_END` after `SHARD_END`, or a
///    pending checkpoint behind the committed one is [`Error::CheckpointBackwards`], and writes
///    nothing. Sequence numbers compare as numbers. Writing the current checkpoint again
///    succeeds, so a retried write is harmless.
/// 6. **Release** leaves the lease unowned with its checkpoint and epoch; any worker may take it
///    at once.
/// 7. **Handoff.** [`request_handoff`](Self::request_handoff) (conditional on the epoch seen)
///    records the requester as `handoff_to`; the owner sees it on its next renew or read,
///    finishes, checkpoints and calls [`complete_handoff`](Self::complete_handoff), which makes
///    the requester the owner at the next epoch in one write. A take clears the request, so a
///    requester that gives up waiting steals.
/// 8. **Workers.** [`heartbeat`](Self::heartbeat) registers a worker or refreshes it;
///    [`live_workers`](Self::live_workers) lists those whose last heartbeat is younger than the
///    timeout, on the store's clock.
/// 9. **Liveness** (optional). [`hold_liveness`](Self::hold_liveness) binds a worker's
///    liveness to its process: while the returned [`LivenessHold`] lives, the worker is not
///    reported by [`dead_workers`](Self::dead_workers); once the process dies or the hold is
///    dropped, it is, at once. A worker that never held liveness, or deregistered, is never
///    reported dead: without the capability, or for workers that do not use it, takeovers wait
///    for lease expiry. Being reported dead is proof, not suspicion: a paused or partitioned
///    process keeps its hold.
/// 10. **Errors.** An unknown lease is [`Error::NotFound`] (kind `lease`). Transient failures
///    (connection lost, database restarting or busy) are [`Error::Unavailable`]
///    ([`Error::is_transient`]): retry with backoff. After a transient error the outcome of a
///    write is unknown: re-read the lease, or retry the same write (takes excepted, a retried
///    write of the same values is harmless). Lost leases, conflicts and backwards checkpoints
///    are decisions: never retry them as they are.
/// 11. **Batches.** [`create_leases_if_absent`](Self::create_leases_if_absent),
///     [`renew_leases`](Self::renew_leases) and [`checkpoint_many`](Self::checkpoint_many) do
///     what the single calls do, lease by lease, with each lease's own fence and outcome (a
///     stolen lease in a batch renewal is reported lost, the others are renewed), in as few
///     round trips as the backend can: one statement for PostgreSQL, one transaction for
///     SQLite. They answer one result per input, in input order; an `Err` for the whole call
///     is transient, after which each write's outcome is unknown. The defaults call the single
///     operations (concurrently, except creates).
/// 12. **Changes** (optional). [`lease_changes`](Self::lease_changes) is a number that
///     changes whenever a lease is created or deleted, changes owner or epoch, or reaches
///     `SHARD_END` ([`LeaseRow::changes_ownership`](crate::LeaseRow::changes_ownership)):
///     what a worker looking for leases to take must see. Renewals, other checkpoints, handoff
///     requests and heartbeats need not change it. A reader that sees the same number twice,
///     a second apart, may skip listing the leases in between; a change is visible to a
///     listing that starts a second after the number moved. `None` (the default): the store
///     does not keep it, and readers list every time.
/// 13. **Census.** [`lease_census`](Self::lease_census) is
///     [`LeaseCensus::of`](crate::LeaseCensus::of) the caller and a listing of the stream,
///     as one read of it; [`leases_held_by`](Self::leases_held_by) is the listing's leases of
///     one owner. The defaults list the leases; a backend that can computes them where the
///     rows are, so that a taker's cycle reads a few hundred rows, not the table.
/// 14. **Text** (worker ids, application state bytes) is stored and read back unchanged; stores
///     never build SQL from it.
#[async_trait]
pub trait LeaseStore: Send + Sync + Debug {
    /// Creates `lease` unowned at epoch 0 unless its key exists; `true` if this call created it.
    async fn create_lease_if_absent(&self, lease: &NewLease) -> Result<bool, Error>;

    /// The lease for `key`, `None` if there is none.
    async fn get_lease(&self, key: &LeaseKey) -> Result<Option<Lease>, Error>;

    /// Every lease of `stream`, ordered by shard id.
    async fn list_leases(&self, stream: &StreamName) -> Result<Vec<Lease>, Error>;

    /// The leases of `stream` as `worker`, looking for leases to take, needs them (contract
    /// clause 13): those other workers hold in peace counted per owner, the others in full.
    async fn lease_census(
        &self,
        stream: &StreamName,
        worker: &WorkerId,
    ) -> Result<LeaseCensus, Error> {
        Ok(LeaseCensus::of(worker, self.list_leases(stream).await?))
    }

    /// The leases of `stream` that `owner` holds (expired or not), ordered by shard id.
    async fn leases_held_by(
        &self,
        stream: &StreamName,
        owner: &WorkerId,
    ) -> Result<Vec<Lease>, Error> {
        let mut leases = self.list_leases(stream).await?;
        leases.retain(|lease| lease.is_held_by(owner));
        Ok(leases)
    }

    /// Takes the lease for `taker` if its epoch is still `seen_epoch` (and, unless `mode` is
    /// [`TakeMode::Steal`], it is unowned or expired), for `duration`. Returns the lease as
    /// taken, with its new epoch.
    async fn take_lease(
        &self,
        key: &LeaseKey,
        seen_epoch: u64,
        taker: &WorkerId,
        mode: TakeMode,
        duration: Duration,
    ) -> Result<Lease, Error>;

    /// Creates every lease of `leases` that is absent, as
    /// [`create_lease_if_absent`](Self::create_lease_if_absent) does one: for each, `true` if
    /// this call created it. A backend that can inserts them all at once, so that a reader sees
    /// none or all of them; the default creates them one after another, in order (so a reader
    /// sees a lease only after those before it).
    async fn create_leases_if_absent(&self, leases: &[NewLease]) -> Result<Vec<bool>, Error> {
        let mut created = Vec::with_capacity(leases.len());
        for lease in leases {
            created.push(self.create_lease_if_absent(lease).await?);
        }
        Ok(created)
    }

    /// Renews every lease of `leases` with its own fence, as [`renew_lease`](Self::renew_lease)
    /// does one: for each, the lease as renewed, or why not ([`Error::LeaseLost`],
    /// [`Error::NotFound`]).
    async fn renew_leases(
        &self,
        leases: &[(LeaseKey, Fence)],
        duration: Duration,
    ) -> Result<Vec<Result<Lease, Error>>, Error> {
        Ok(join_all(
            leases
                .iter()
                .map(|(key, fence)| self.renew_lease(key, fence, duration)),
        )
        .await)
    }

    /// Writes every checkpoint of `updates` with its own fence, as
    /// [`checkpoint`](Self::checkpoint) does one: for each, `Ok` or why not.
    async fn checkpoint_many(
        &self,
        updates: &[(LeaseKey, Fence, CheckpointUpdate)],
    ) -> Result<Vec<Result<(), Error>>, Error> {
        Ok(join_all(
            updates
                .iter()
                .map(|(key, fence, update)| self.checkpoint(key, fence, update)),
        )
        .await)
    }

    /// Extends the holder's lease to `duration` from now; fenced. Returns the lease, whose
    /// `handoff_to` tells the owner whether another worker asked for it.
    async fn renew_lease(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        duration: Duration,
    ) -> Result<Lease, Error>;

    /// Leaves the lease unowned, keeping its checkpoint; fenced.
    async fn release_lease(&self, key: &LeaseKey, fence: &Fence) -> Result<(), Error>;

    /// Writes the committed and pending checkpoints; fenced, never backwards.
    async fn checkpoint(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        update: &CheckpointUpdate,
    ) -> Result<(), Error>;

    /// Asks the owner to hand the lease to `requester`; conditional on `seen_epoch`, and the
    /// lease must be owned by another worker.
    async fn request_handoff(
        &self,
        key: &LeaseKey,
        seen_epoch: u64,
        requester: &WorkerId,
    ) -> Result<(), Error>;

    /// Hands the lease to the worker that requested it, for `duration`; fenced on the current
    /// owner. Returns the lease as handed over.
    async fn complete_handoff(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        duration: Duration,
    ) -> Result<Lease, Error>;

    /// Records the shards this one was split or merged into; fenced.
    async fn record_child_shards(
        &self,
        key: &LeaseKey,
        fence: &Fence,
        children: &[ShardId],
    ) -> Result<(), Error>;

    /// Deletes the lease (a finished parent whose children all started and whose shard left the
    /// stream); `true` if it existed.
    async fn delete_lease(&self, key: &LeaseKey) -> Result<bool, Error>;

    /// Registers `worker` or refreshes its heartbeat, on the store's clock.
    async fn heartbeat(&self, worker: &WorkerId) -> Result<(), Error>;

    /// Removes `worker` from the live workers (graceful shutdown).
    async fn deregister_worker(&self, worker: &WorkerId) -> Result<(), Error>;

    /// Workers whose last heartbeat is younger than `timeout` on the store's clock, ordered by id.
    async fn live_workers(&self, timeout: Duration) -> Result<Vec<WorkerId>, Error>;

    /// Binds `worker`'s liveness to the returned hold, and so to this process (see the
    /// contract, clause 9). `None` if this store cannot: the default.
    async fn hold_liveness(
        &self,
        worker: &WorkerId,
    ) -> Result<Option<Box<dyn LivenessHold>>, Error> {
        let _ = worker;
        Ok(None)
    }

    /// A number that changes with every change of who may take what (contract clause 12);
    /// `None` if this store does not keep one: the default.
    async fn lease_changes(&self) -> Result<Option<u64>, Error> {
        Ok(None)
    }

    /// Of `workers`, those provably dead: each held liveness in this store and holds it no
    /// longer (its process died or dropped the hold). Ordered by id; empty by default.
    async fn dead_workers(&self, workers: &[WorkerId]) -> Result<Vec<WorkerId>, Error> {
        let _ = workers;
        Ok(Vec::new())
    }
}
