//! The worker's own liveness hold (see the lease-store contract, clause 9): taken at start, given
//! up at shutdown, confirmed before every batch, and taken again when it is lost while the
//! process lives.
//!
//! Other workers take the leases of a worker whose hold is gone at once, and deliver from them
//! a freshness period (the liveness interval) after they saw it gone. So a worker starts a
//! batch only on a check of its hold that passed and began less than that period before the
//! batch starts (a check that answers later than that is repeated): once the hold is lost, no
//! shard starts a batch after the new owner may have started one.
//! Batches asked for within one period share one check, so that a worker of many busy shards
//! checks its hold about once a period rather than once a batch.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::Backoff;
use crate::lease::{LeaseStore, LivenessHold, WorkerId};

/// Where the worker's liveness stands.
enum State {
    /// The store has no liveness capability, or the worker gave its hold up at shutdown: nobody
    /// sees this worker dead, and its leases are taken over at expiry as usual.
    Unbound,
    /// In force.
    Held(Arc<dyn LivenessHold>),
    /// Lost, or a request for it failed (a request whose reply was lost may have recorded a hold
    /// that is already gone): other workers may see this worker dead, so it delivers nothing
    /// until it holds liveness again.
    Lost,
}

/// One check of a hold: which, when it started, whether it passed.
struct Check {
    hold: Arc<dyn LivenessHold>,
    started: Instant,
    passed: bool,
}

/// The worker's liveness and the checks of it.
pub(crate) struct Liveness {
    state: Mutex<State>,
    /// The last check: of which hold, when it started and whether it passed; locked across the
    /// check, so that callers waiting behind a check of the same hold that started after they
    /// asked take its result.
    last_check: tokio::sync::Mutex<Option<Check>>,
    /// How long a check may take before the hold counts as lost.
    deadline: Duration,
    /// How long a passed check vouches for the hold: a batch asked for within this of the
    /// check's start is delivered on it. Takers of a dead worker's leases wait as long before
    /// delivering (see [`Liveness::freshness`]).
    freshness: Duration,
    /// The wait between attempts to hold liveness again, and when the next may start.
    retry: Mutex<(Backoff, Instant)>,
}

impl Liveness {
    /// Not yet bound: [`Liveness::acquire`] binds it. Checks get `deadline` and vouch for
    /// `freshness`; attempts to hold it again after a loss are spaced by `backoff`.
    pub(crate) fn new(deadline: Duration, freshness: Duration, backoff: Backoff) -> Self {
        Liveness {
            state: Mutex::new(State::Unbound),
            last_check: tokio::sync::Mutex::new(None),
            deadline,
            freshness,
            retry: Mutex::new((backoff, Instant::now())),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Asks `store` to bind `worker`'s liveness to this process; `true` unless it failed (the
    /// worker is then [lost](Liveness::is_lost) until a later call succeeds).
    pub(crate) async fn acquire(&self, store: &dyn LeaseStore, worker: &WorkerId) -> bool {
        let (state, bound) = match store.hold_liveness(worker).await {
            Ok(Some(hold)) => (State::Held(Arc::from(hold)), true),
            Ok(None) => (State::Unbound, true),
            Err(error) => {
                tracing::warn!(%error, "could not hold this worker's liveness; delivering nothing until it can");
                (State::Lost, false)
            }
        };
        *self.state() = state;
        bound
    }

    /// After a loss: tries to hold liveness again, unless the previous attempt failed less than
    /// a backoff ago. `true` once it is held again.
    pub(crate) async fn reacquire(&self, store: &dyn LeaseStore, worker: &WorkerId) -> bool {
        if Instant::now() < self.retry().1 {
            return false;
        }
        let bound = self.acquire(store, worker).await;
        let mut retry = self.retry();
        if bound {
            retry.0.reset();
        } else {
            let delay = retry.0.next_delay();
            retry.1 = Instant::now() + delay;
        }
        bound
    }

    fn retry(&self) -> MutexGuard<'_, (Backoff, Instant)> {
        self.retry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// True while the hold is lost: the worker must neither deliver nor take leases.
    pub(crate) fn is_lost(&self) -> bool {
        matches!(*self.state(), State::Lost)
    }

    /// True while a hold is in force: only then can other workers be seen dead by this one's
    /// store.
    pub(crate) fn is_held(&self) -> bool {
        matches!(*self.state(), State::Held(_))
    }

    /// Gives the hold up (graceful shutdown, after the worker deregistered).
    pub(crate) fn release(&self) {
        *self.state() = State::Unbound;
    }

    /// How long a passed check vouches for the hold. A worker that saw another dead (its hold
    /// gone) delivers from the leases it takes from it no sooner than this after: the dead
    /// worker may have started a batch on a check begun just before its hold went.
    pub(crate) fn freshness(&self) -> Duration {
        self.freshness
    }

    /// True if the worker may deliver now: unbound, or held as shown by a check that began
    /// less than the freshness period before now. A failed check, or none passing in time
    /// within the deadline, marks the hold lost.
    pub(crate) async fn confirm(&self) -> bool {
        let asked_at = Instant::now();
        loop {
            let hold = match &*self.state() {
                State::Unbound => return true,
                State::Lost => return false,
                State::Held(hold) => Arc::clone(hold),
            };
            let verdict = self.check(&hold).await;
            let mut state = self.state();
            if let State::Held(current) = &*state
                && Arc::ptr_eq(current, &hold)
            {
                match verdict {
                    Verdict::Fresh => return true,
                    // Passed, but answered too late to vouch for a delivery now: check again,
                    // as long as the deadline allows.
                    Verdict::Late if asked_at.elapsed() < self.deadline => continue,
                    Verdict::Late | Verdict::Failed => {
                        *state = State::Lost;
                        return false;
                    }
                }
            }
            // The hold was lost or replaced while it was checked: look again.
        }
    }

    /// Whether `hold` is in force, by a check that began less than the freshness period
    /// before now (the last one, or a new one).
    async fn check(&self, hold: &Arc<dyn LivenessHold>) -> Verdict {
        let mut last = self.last_check.lock().await;
        if let Some(check) = &*last
            && Arc::ptr_eq(&check.hold, hold)
            && let Some(verdict) = check.verdict(self.freshness)
        {
            return verdict;
        }
        let started = Instant::now();
        let passed = match tokio::time::timeout(self.deadline, hold.check()).await {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                tracing::warn!(%error, "this worker's liveness is lost; stopping delivery");
                false
            }
            Err(_) => {
                tracing::warn!(deadline = ?self.deadline, "this worker's liveness check did not answer in time; stopping delivery");
                false
            }
        };
        let check = Check {
            hold: Arc::clone(hold),
            started,
            passed,
        };
        let verdict = check.verdict(self.freshness).unwrap_or(Verdict::Late);
        *last = Some(check);
        verdict
    }
}

/// What a check says of a delivery now.
enum Verdict {
    /// The hold is in force, by a check fresh enough to deliver on.
    Fresh,
    /// The check passed, but began a whole freshness period ago or more.
    Late,
    /// The hold is gone, or the check did not answer within its deadline.
    Failed,
}

impl Check {
    /// Its verdict on a delivery now; `None` if it passed too long ago to say.
    fn verdict(&self, freshness: Duration) -> Option<Verdict> {
        if !self.passed {
            Some(Verdict::Failed)
        // Strictly within the period: a check begun a whole period before now may precede a
        // loss that a taker saw a period before now, and that taker may be delivering already.
        } else if Instant::now() < self.started + freshness {
            Some(Verdict::Fresh)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::Error;

    /// A hold in force whose every check answers after `answer_in`.
    #[derive(Debug)]
    struct SlowHold {
        answer_in: Duration,
        checks: AtomicU32,
    }

    #[async_trait]
    impl LivenessHold for SlowHold {
        async fn check(&self) -> Result<(), Error> {
            self.checks.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.answer_in).await;
            Ok(())
        }
    }

    fn held(answer_in: Duration, freshness: Duration) -> (Liveness, Arc<SlowHold>) {
        let hold = Arc::new(SlowHold {
            answer_in,
            checks: AtomicU32::new(0),
        });
        let liveness = Liveness::new(
            Duration::from_millis(500),
            freshness,
            Backoff::new(Duration::from_millis(10), Duration::from_millis(10), &0),
        );
        *liveness.state() = State::Held(Arc::clone(&hold) as Arc<dyn LivenessHold>);
        (liveness, hold)
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_answered_within_the_freshness_period_confirms_and_is_shared() {
        let (liveness, hold) = held(Duration::from_millis(10), Duration::from_millis(100));
        assert!(liveness.confirm().await);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(liveness.confirm().await);
        assert_eq!(
            hold.checks.load(Ordering::SeqCst),
            1,
            "the second shares the first"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(liveness.confirm().await);
        assert_eq!(
            hold.checks.load(Ordering::SeqCst),
            2,
            "a period later, a new check"
        );
    }

    /// A check that passes after the freshness period ran out vouches for nothing: a taker that
    /// saw the hold go just after the check began may be delivering already.
    #[tokio::test(start_paused = true)]
    async fn a_check_answered_after_the_freshness_period_never_confirms() {
        let (liveness, hold) = held(Duration::from_millis(150), Duration::from_millis(100));
        assert!(!liveness.confirm().await);
        assert!(
            liveness.is_lost(),
            "no timely check within the deadline: lost"
        );
        assert!(
            hold.checks.load(Ordering::SeqCst) > 1,
            "late answers are checked again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_waiting_behind_a_check_does_not_take_its_result_once_stale() {
        let (liveness, hold) = held(Duration::from_millis(60), Duration::from_millis(100));
        let liveness = Arc::new(liveness);
        let first = tokio::spawn({
            let liveness = Arc::clone(&liveness);
            async move { liveness.confirm().await }
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
        // Asks while the first check runs; gets the lock at 60 ms, when that check is fresh.
        assert!(liveness.confirm().await);
        assert!(first.await.unwrap());
        assert_eq!(hold.checks.load(Ordering::SeqCst), 1);
        // At 120 ms the check begun at 0 is stale: a new one, answered at 180 ms (fresh).
        tokio::time::sleep(Duration::from_millis(59)).await;
        assert!(liveness.confirm().await);
        assert_eq!(hold.checks.load(Ordering::SeqCst), 2);
    }
}
