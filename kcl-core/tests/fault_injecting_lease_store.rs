//! `FaultInjectingLeaseStore`: the conformance suite through it without faults, and each kind of
//! fault, scripted and decided.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kcl_core::{
    Checkpoint, Error, FaultInjectingLeaseStore, InMemoryLeaseStore, InjectedFaults, LeaseKey,
    LeaseStore, LeaseStoreFault, LeaseStoreOp, NewLease, ShardId, StreamName, TakeMode, WorkerId,
};

async fn store(_clause: &'static str) -> Option<Arc<dyn LeaseStore>> {
    Some(Arc::new(FaultInjectingLeaseStore::new(Arc::new(
        InMemoryLeaseStore::new(),
    ))))
}

kcl_core::lease_store_conformance_tests!(store);

const LEASE: Duration = Duration::from_secs(10);

/// A store with one unowned lease, and that lease's key.
async fn store_with_lease() -> (Arc<FaultInjectingLeaseStore>, LeaseKey) {
    let store = Arc::new(FaultInjectingLeaseStore::new(Arc::new(
        InMemoryLeaseStore::new(),
    )));
    let key = LeaseKey::new(
        StreamName::new("faults").expect("name"),
        ShardId::from_index(0),
    );
    let created = store
        .create_lease_if_absent(&NewLease::new(key.clone(), Checkpoint::TrimHorizon))
        .await;
    assert_eq!(created, Ok(true));
    (store, key)
}

fn worker(name: &str) -> WorkerId {
    WorkerId::new(name).expect("worker id")
}

async fn epoch(store: &FaultInjectingLeaseStore, key: &LeaseKey) -> u64 {
    // Read through the inner store, so that no scripted fault is spent on checking.
    let lease = store
        .inner()
        .get_lease(key)
        .await
        .expect("get")
        .expect("lease");
    lease.epoch
}

/// Waits (bounded) until `count` calls hang.
async fn until_hanging(store: &FaultInjectingLeaseStore, count: usize) {
    for _ in 0..1000 {
        if store.hanging_calls() == count {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("{} calls hang, expected {count}", store.hanging_calls());
}

#[tokio::test]
async fn unavailable_fails_the_next_calls_of_one_operation_and_writes_nothing() {
    let (store, key) = store_with_lease().await;
    store.fail_next(
        Some(LeaseStoreOp::TakeLease),
        LeaseStoreFault::Unavailable,
        2,
    );
    let me = worker("w1");
    for _ in 0..2 {
        let taken = store
            .take_lease(&key, 0, &me, TakeMode::IfAvailable, LEASE)
            .await;
        assert!(matches!(taken, Err(Error::Unavailable { .. })), "{taken:?}");
        assert!(taken.is_err_and(|error| error.is_transient()));
    }
    assert_eq!(epoch(&store, &key).await, 0, "a refused call wrote nothing");
    // Other operations were never affected.
    assert!(store.get_lease(&key).await.is_ok());
    let taken = store
        .take_lease(&key, 0, &me, TakeMode::IfAvailable, LEASE)
        .await
        .expect("the third take goes through");
    assert_eq!(taken.epoch, 1);
    assert_eq!(
        store.injected(),
        InjectedFaults {
            unavailable: 2,
            ..InjectedFaults::default()
        }
    );
}

#[tokio::test]
async fn a_fault_for_any_operation_hits_whichever_call_comes_next() {
    let (store, key) = store_with_lease().await;
    store.fail_next(None, LeaseStoreFault::Unavailable, 1);
    store.fail_next(
        Some(LeaseStoreOp::Heartbeat),
        LeaseStoreFault::Unavailable,
        1,
    );
    assert!(
        store.list_leases(&key.stream).await.is_err(),
        "the first rule"
    );
    assert!(store.get_lease(&key).await.is_ok(), "no rule for get_lease");
    assert!(
        store.heartbeat(&worker("w1")).await.is_err(),
        "the second rule"
    );
    assert!(store.heartbeat(&worker("w1")).await.is_ok(), "both spent");
}

#[tokio::test]
async fn reply_lost_applies_the_write_and_answers_unavailable() {
    let (store, key) = store_with_lease().await;
    store.fail_next(Some(LeaseStoreOp::TakeLease), LeaseStoreFault::ReplyLost, 1);
    let me = worker("w1");
    let taken = store
        .take_lease(&key, 0, &me, TakeMode::IfAvailable, LEASE)
        .await;
    assert!(matches!(taken, Err(Error::Unavailable { .. })), "{taken:?}");
    let lease = store.get_lease(&key).await.expect("get").expect("lease");
    assert_eq!(lease.epoch, 1, "the take was applied");
    assert!(lease.is_held_by(&me));
    // Retrying the take as it was is a conflict now: the caller must re-read.
    let retried = store
        .take_lease(&key, 0, &me, TakeMode::IfAvailable, LEASE)
        .await;
    assert!(
        matches!(retried, Err(Error::LeaseConflict { .. })),
        "{retried:?}"
    );
    assert_eq!(store.injected().replies_lost, 1);
}

#[tokio::test]
async fn a_hanging_call_goes_through_when_released() {
    let (store, key) = store_with_lease().await;
    store.fail_next(Some(LeaseStoreOp::TakeLease), LeaseStoreFault::Hang, 1);
    let take = tokio::spawn({
        let (store, key) = (Arc::clone(&store), key.clone());
        async move {
            store
                .take_lease(&key, 0, &worker("w1"), TakeMode::IfAvailable, LEASE)
                .await
        }
    });
    until_hanging(&store, 1).await;
    // Other calls go on meanwhile.
    assert_eq!(epoch(&store, &key).await, 0);
    assert!(store.list_leases(&key.stream).await.is_ok());
    assert!(!take.is_finished());
    store.release_hangs();
    let taken = take.await.expect("task").expect("the released take");
    assert_eq!(taken.epoch, 1);
    assert_eq!(store.hanging_calls(), 0);
    assert_eq!(store.injected().hangs, 1);
}

#[tokio::test]
async fn a_slow_reply_answers_what_was_true_when_the_call_went_through() {
    let (store, key) = store_with_lease().await;
    store.fail_next(Some(LeaseStoreOp::GetLease), LeaseStoreFault::SlowReply, 1);
    let get = tokio::spawn({
        let (store, key) = (Arc::clone(&store), key.clone());
        async move { store.get_lease(&key).await }
    });
    until_hanging(&store, 1).await;
    store
        .take_lease(&key, 0, &worker("w1"), TakeMode::IfAvailable, LEASE)
        .await
        .expect("take");
    store.release_hangs();
    let stale = get.await.expect("task").expect("answer").expect("lease");
    assert_eq!(stale.epoch, 0, "the answer is from before the take");
    assert_eq!(store.injected().slow_replies, 1);
}

#[tokio::test]
async fn a_hanging_call_given_up_by_its_caller_writes_nothing() {
    let (store, key) = store_with_lease().await;
    store.fail_next(Some(LeaseStoreOp::TakeLease), LeaseStoreFault::Hang, 1);
    let deadline = tokio::time::timeout(
        Duration::from_millis(50),
        store.take_lease(&key, 0, &worker("w1"), TakeMode::IfAvailable, LEASE),
    )
    .await;
    assert!(deadline.is_err(), "the call hung past its deadline");
    assert_eq!(store.hanging_calls(), 0, "the dropped call no longer hangs");
    store.release_hangs();
    tokio::task::yield_now().await;
    assert_eq!(
        epoch(&store, &key).await,
        0,
        "the cancelled take wrote nothing"
    );
}

#[tokio::test]
async fn clear_forgets_scripted_faults_and_releases_hanging_calls() {
    let (store, key) = store_with_lease().await;
    store.fail_next(Some(LeaseStoreOp::GetLease), LeaseStoreFault::Hang, 1);
    store.fail_next(None, LeaseStoreFault::Unavailable, 100);
    let get = tokio::spawn({
        let (store, key) = (Arc::clone(&store), key.clone());
        async move { store.get_lease(&key).await }
    });
    until_hanging(&store, 1).await;
    store.clear();
    assert!(get.await.expect("task").expect("released").is_some());
    assert!(
        store.heartbeat(&worker("w1")).await.is_ok(),
        "no scripted fault left"
    );
}

#[tokio::test]
async fn a_decider_chooses_the_fault_of_every_call_without_a_scripted_one() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    // Every second write fails; reads never do.
    let store =
        FaultInjectingLeaseStore::with_decider(Arc::new(InMemoryLeaseStore::new()), move |op| {
            let call = counted.fetch_add(1, Ordering::SeqCst);
            (op.is_write() && call % 2 == 1).then_some(LeaseStoreFault::Unavailable)
        });
    let me = worker("w1");
    assert!(store.heartbeat(&me).await.is_ok(), "call 0");
    assert!(store.heartbeat(&me).await.is_err(), "call 1");
    assert!(store.live_workers(LEASE).await.is_ok(), "call 2");
    assert!(store.live_workers(LEASE).await.is_ok(), "call 3 is a read");
    // A scripted fault comes first and the decider is not asked.
    store.fail_next(None, LeaseStoreFault::ReplyLost, 1);
    assert!(store.heartbeat(&me).await.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(
        store.injected(),
        InjectedFaults {
            unavailable: 1,
            hangs: 0,
            replies_lost: 1,
            slow_replies: 0,
        }
    );
    // The heartbeat whose reply was lost was written.
    assert_eq!(store.inner().live_workers(LEASE).await, Ok(vec![me]));
}

#[test]
fn operations_are_named_as_the_trait_methods() {
    let names: Vec<&str> = LeaseStoreOp::ALL.iter().map(|op| op.as_str()).collect();
    assert_eq!(names.len(), 17);
    assert_eq!(LeaseStoreOp::RenewLease.to_string(), "renew_lease");
    let reads: Vec<_> = LeaseStoreOp::ALL
        .into_iter()
        .filter(|op| !op.is_write())
        .collect();
    assert_eq!(
        reads,
        [
            LeaseStoreOp::GetLease,
            LeaseStoreOp::ListLeases,
            LeaseStoreOp::LiveWorkers,
            LeaseStoreOp::DeadWorkers,
            LeaseStoreOp::LeaseChanges
        ]
    );
}
