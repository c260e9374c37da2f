//! Pausing one worker in a runtime that runs every worker: a gate on its seams.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// A worker's gate. One runtime cannot stop some of its tasks, so a pause stops a worker where
/// it meets the world instead: every store call, read and processor callback of a paused
/// worker waits at the gate. Its timers still fire, and every task they wake stops at its next
/// call, as in a stopped process whose clock runs on.
///
/// Waiters wait on a `Notify`, which wakes them in the order they came (a `watch` channel
/// would wake them in a random order, and runs would not replay).
#[derive(Debug, Default)]
pub(crate) struct Gate {
    /// The whole worker: its store calls, reads and processor callbacks.
    paused: AtomicBool,
    /// Only its lease store calls (a black-holed connection).
    blackout: AtomicBool,
    resumed: Notify,
}

impl Gate {
    /// Waits while the worker is paused.
    pub(crate) async fn pass(&self) {
        loop {
            let resumed = self.resumed.notified();
            tokio::pin!(resumed);
            // Registered before looking, so a resume in between still wakes this call.
            resumed.as_mut().enable();
            if !self.is_paused() {
                return;
            }
            resumed.await;
        }
    }

    /// True while the worker's store calls must hang.
    pub(crate) fn store_blocked(&self) -> bool {
        self.is_paused() || self.blackout.load(Ordering::SeqCst)
    }

    /// True while the worker is paused.
    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    pub(crate) fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
        if !paused {
            self.resumed.notify_waiters();
        }
    }

    pub(crate) fn set_blackout(&self, blackout: bool) {
        self.blackout.store(blackout, Ordering::SeqCst);
    }
}
