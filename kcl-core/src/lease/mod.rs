//! Leases: which worker processes which shard, and where each shard's checkpoint is.
//!
//! The [`LeaseStore`] trait is the seam, with its contract; [`LeaseRow`] holds the contract's
//! state transitions once for every backend that can run them inside a transaction;
//! [`InMemoryLeaseStore`] is the reference backend. With the `test-util` feature,
//! [`conformance`] checks any backend against the contract and [`load`] measures one.

mod census;
mod checkpoint;
mod deadline;
mod fault_injecting;
mod fence;
mod in_memory;
mod key;
mod lease_row;
mod liveness;
mod shard_lease;
mod store;
mod take_mode;
mod worker_id;

#[cfg(feature = "test-util")]
pub mod conformance;
#[cfg(feature = "test-util")]
pub mod load;

pub use census::{LeaseCensus, OwnerTally};
pub use checkpoint::{Checkpoint, CheckpointUpdate, PendingCheckpoint};
pub(crate) use deadline::DeadlineLeaseStore;
pub use fault_injecting::{
    FaultInjectingLeaseStore, InjectedFaults, LeaseStoreFault, LeaseStoreOp,
};
pub use fence::Fence;
pub use in_memory::InMemoryLeaseStore;
pub use key::LeaseKey;
pub use lease_row::{LeaseRow, lease_duration_millis};
pub use liveness::LivenessHold;
pub use shard_lease::{Lease, NewLease};
pub use store::LeaseStore;
pub use take_mode::TakeMode;
pub use worker_id::{MAX_WORKER_ID_LEN, WorkerId};
