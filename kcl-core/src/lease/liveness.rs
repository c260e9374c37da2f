//! A worker's liveness bound to its process: the optional lease-store capability that lets
//! other workers see a crash at once instead of waiting for the dead worker's leases to expire.

use std::fmt;

use async_trait::async_trait;

use crate::Error;

/// Proof that a worker is alive, held for as long as its process runs: a session-level lock on
/// a dedicated database connection, an operating-system lock on a file. The operating system
/// lets go of it the moment the process dies (exit, `SIGKILL`, an out-of-memory kill), and
/// [`LeaseStore::dead_workers`](crate::LeaseStore::dead_workers) then reports the worker dead.
///
/// Dropping the hold lets go of it too: that is how tests simulate a crash within one process.
/// A paused or partitioned process keeps its hold (nothing closed its connection or its file),
/// so it is seen as alive and its leases expire as usual.
#[async_trait]
pub trait LivenessHold: Send + Sync + fmt::Debug {
    /// `Ok` while the hold is in force. An error means it was lost while the process lives (its
    /// connection dropped): other workers may already see this worker as dead and take its
    /// leases, so it must stop delivering until it holds liveness again.
    async fn check(&self) -> Result<(), Error>;
}
