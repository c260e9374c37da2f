//! The lease-store conformance suite: one `pub async fn` per clause of the
//! [`LeaseStore`](crate::LeaseStore) contract, races included. Every backend runs all of it.
//!
//! Each clause takes a store and panics, naming what broke, if the store breaks the contract.
//! Clauses work under their own stream names and worker ids, so they can share one store, run
//! in parallel, and run in several processes against one database at once. They wait on real
//! time for expiry (lease durations of a few hundred milliseconds), and assert no timings.
//!
//! Stamp out one `#[tokio::test]` per clause with
//! [`lease_store_conformance_tests!`](crate::lease_store_conformance_tests!), given an
//! `async fn(&'static str) -> Option<Arc<dyn LeaseStore>>` that makes a store for the named
//! clause (`None` skips it); or
//! call [`run_all`].
//!
//! ```
//! use std::sync::Arc;
//! use kcl_core::{InMemoryLeaseStore, LeaseStore};
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_time().build()?.block_on(async {
//! let store: Arc<dyn LeaseStore> = Arc::new(InMemoryLeaseStore::new());
//! kcl_core::lease_store_conformance::checkpoints_never_move_backwards(store).await;
//! # });
//! # Ok::<(), std::io::Error>(())
//! ```

mod batches;
mod census;
mod changes;
mod checkpoints;
mod create;
mod durations;
mod fencing;
mod handoff;
mod lineage;
mod liveness;
mod outcome;
mod scope;
mod take;
mod text;
mod workers;

use std::sync::Arc;

use crate::LeaseStore;

pub use batches::{
    batch_checkpoints_are_fenced_one_by_one, batch_creates_race_to_one_creator_per_lease,
    batch_renewal_reports_exactly_the_lost_leases, racing_batches_of_the_same_leases_all_succeed,
};
pub use census::census_counts_what_others_hold_in_peace;
pub use changes::lease_changes_move_with_every_change_of_ownership;
pub use checkpoints::{
    checkpoints_never_move_backwards, prepared_checkpoint_carries_application_state,
};
pub use create::{
    create_if_absent_is_idempotent_under_races, get_and_list_return_what_was_created,
    unknown_lease_is_not_found,
};
pub use durations::{LONG, SHORT};
pub use fencing::{
    release_keeps_the_checkpoint_and_frees_the_lease, renew_keeps_the_lease_from_expiring,
    stolen_lease_owner_cannot_renew_or_checkpoint,
};
pub use handoff::handoff_request_and_completion;
pub use lineage::child_shards_are_recorded_and_leases_deleted;
pub use liveness::a_dropped_liveness_hold_reports_the_worker_dead;
pub use scope::Scope;
pub use take::{
    exactly_one_winner_when_32_tasks_race_to_take,
    expired_lease_can_be_taken_unexpired_needs_steal, take_on_a_stale_epoch_is_a_conflict,
};
pub use text::free_text_round_trips_unchanged;
pub use workers::live_workers_drop_a_stopped_heartbeat;

/// How many tasks race in the race clauses.
pub const RACERS: usize = 32;

/// Runs every clause against `store`, one after another.
pub async fn run_all(store: Arc<dyn LeaseStore>) {
    create_if_absent_is_idempotent_under_races(store.clone()).await;
    get_and_list_return_what_was_created(store.clone()).await;
    unknown_lease_is_not_found(store.clone()).await;
    exactly_one_winner_when_32_tasks_race_to_take(store.clone()).await;
    expired_lease_can_be_taken_unexpired_needs_steal(store.clone()).await;
    take_on_a_stale_epoch_is_a_conflict(store.clone()).await;
    stolen_lease_owner_cannot_renew_or_checkpoint(store.clone()).await;
    renew_keeps_the_lease_from_expiring(store.clone()).await;
    release_keeps_the_checkpoint_and_frees_the_lease(store.clone()).await;
    checkpoints_never_move_backwards(store.clone()).await;
    prepared_checkpoint_carries_application_state(store.clone()).await;
    handoff_request_and_completion(store.clone()).await;
    child_shards_are_recorded_and_leases_deleted(store.clone()).await;
    live_workers_drop_a_stopped_heartbeat(store.clone()).await;
    a_dropped_liveness_hold_reports_the_worker_dead(store.clone()).await;
    batch_renewal_reports_exactly_the_lost_leases(store.clone()).await;
    batch_checkpoints_are_fenced_one_by_one(store.clone()).await;
    batch_creates_race_to_one_creator_per_lease(store.clone()).await;
    racing_batches_of_the_same_leases_all_succeed(store.clone()).await;
    lease_changes_move_with_every_change_of_ownership(store.clone()).await;
    census_counts_what_others_hold_in_peace(store.clone()).await;
    free_text_round_trips_unchanged(store).await;
}

/// Stamps out one `#[tokio::test]` per conformance clause.
///
/// `$factory` is the path of an `async fn(&'static str) -> Option<Arc<dyn LeaseStore>>` given
/// the clause's name (to isolate it, e.g. in its own table or file); `None` skips the clause.
/// The calling crate needs `tokio` with the `macros` and `rt-multi-thread` features.
///
/// ```ignore
/// async fn store(_clause: &'static str) -> Option<Arc<dyn LeaseStore>> {
///     Some(Arc::new(InMemoryLeaseStore::new()))
/// }
/// kcl_core::lease_store_conformance_tests!(store);
/// ```
#[macro_export]
macro_rules! lease_store_conformance_tests {
    ($factory:path) => {
        $crate::lease_store_conformance_tests!(
            @clauses $factory,
            create_if_absent_is_idempotent_under_races,
            get_and_list_return_what_was_created,
            unknown_lease_is_not_found,
            exactly_one_winner_when_32_tasks_race_to_take,
            expired_lease_can_be_taken_unexpired_needs_steal,
            take_on_a_stale_epoch_is_a_conflict,
            stolen_lease_owner_cannot_renew_or_checkpoint,
            renew_keeps_the_lease_from_expiring,
            release_keeps_the_checkpoint_and_frees_the_lease,
            checkpoints_never_move_backwards,
            prepared_checkpoint_carries_application_state,
            handoff_request_and_completion,
            child_shards_are_recorded_and_leases_deleted,
            live_workers_drop_a_stopped_heartbeat,
            a_dropped_liveness_hold_reports_the_worker_dead,
            batch_renewal_reports_exactly_the_lost_leases,
            batch_checkpoints_are_fenced_one_by_one,
            batch_creates_race_to_one_creator_per_lease,
            racing_batches_of_the_same_leases_all_succeed,
            lease_changes_move_with_every_change_of_ownership,
            census_counts_what_others_hold_in_peace,
            free_text_round_trips_unchanged,
        );
    };
    (@clauses $factory:path, $($clause:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $clause() {
                if let Some(store) = $factory(stringify!($clause)).await {
                    $crate::lease_store_conformance::$clause(store).await;
                }
            }
        )*
    };
}
