//! The clause on graceful handoff: request, then the owner completes it.

use std::sync::Arc;

use super::Scope;
use super::durations::LONG;
use super::outcome::{conflict, lease_lost, ok, seq};
use crate::{Checkpoint, CheckpointUpdate, LeaseStore, NewLease, TakeMode};

/// Handoff request and completion: the request is seen by the owner on renew; completing it
/// makes the requester the owner at the next epoch and fences the old owner out. A request needs
/// a current epoch and another owner; completing needs a request; a steal (the fallback after a
/// timeout) clears it.
pub async fn handoff_request_and_completion(store: Arc<dyn LeaseStore>) {
    let scope = Scope::new("handoff");
    let key = scope.key(0);
    let (a, b, c) = (scope.worker("a"), scope.worker("b"), scope.worker("c"));
    let new = NewLease::new(key.clone(), Checkpoint::TrimHorizon);
    assert!(ok(store.create_lease_if_absent(&new).await, "create"));
    let held = ok(
        store
            .take_lease(&key, 0, &a, TakeMode::IfAvailable, LONG)
            .await,
        "a takes",
    );
    let a_fence = held.fence().expect("a holds it");

    conflict(
        store.complete_handoff(&key, &a_fence, LONG).await,
        "complete with no request",
    );
    conflict(
        store.request_handoff(&key, 0, &b).await,
        "request at a stale epoch",
    );
    conflict(
        store.request_handoff(&key, 1, &a).await,
        "the owner requests its own lease",
    );
    ok(
        store.request_handoff(&key, 1, &b).await,
        "b requests a handoff",
    );

    let renewed = ok(store.renew_lease(&key, &a_fence, LONG).await, "a renews");
    assert_eq!(
        renewed.handoff_to.as_ref(),
        Some(&b),
        "the owner sees the request on renew"
    );
    assert_eq!(
        renewed.fence(),
        Some(a_fence.clone()),
        "a request does not move the lease"
    );
    ok(
        store
            .checkpoint(&key, &a_fence, &CheckpointUpdate::commit(seq("5")))
            .await,
        "a checkpoints before handing off",
    );
    let handed = ok(
        store.complete_handoff(&key, &a_fence, LONG).await,
        "a completes",
    );
    assert_eq!(handed.owner.as_ref(), Some(&b));
    assert_eq!(handed.epoch, 2);
    assert_eq!(handed.handoff_to, None);
    assert_eq!(handed.checkpoint, seq("5"));
    assert!(!handed.is_expired());
    let read = ok(store.get_lease(&key).await, "get").expect("lease exists");
    assert_eq!(read.fence(), handed.fence(), "the handoff was stored");

    lease_lost(
        store
            .checkpoint(&key, &a_fence, &CheckpointUpdate::commit(seq("6")))
            .await,
        "a checkpoints after handing off",
    );
    let b_fence = handed.fence().expect("b holds it");
    ok(
        store
            .checkpoint(&key, &b_fence, &CheckpointUpdate::commit(seq("6")))
            .await,
        "b checkpoints",
    );

    // The fallback: c asks, b does not answer in time, c steals; the request is gone and b is
    // fenced out of completing it.
    ok(
        store.request_handoff(&key, 2, &c).await,
        "c requests a handoff",
    );
    let stolen = ok(
        store.take_lease(&key, 2, &c, TakeMode::Steal, LONG).await,
        "c steals",
    );
    assert_eq!(stolen.handoff_to, None, "a take clears the request");
    lease_lost(
        store.complete_handoff(&key, &b_fence, LONG).await,
        "b completes too late",
    );

    // A release clears a request too, and an unowned lease cannot be handed off.
    let c_fence = stolen.fence().expect("c holds it");
    ok(
        store.request_handoff(&key, 3, &a).await,
        "a requests a handoff",
    );
    ok(store.release_lease(&key, &c_fence).await, "c releases");
    let released = ok(store.get_lease(&key).await, "get").expect("lease exists");
    assert_eq!((released.owner, released.handoff_to), (None, None));
    conflict(
        store.request_handoff(&key, 3, &b).await,
        "a request on an unowned lease",
    );
}
