//! The contract's state transitions, once, for every backend that can read, decide and write
//! inside one transaction.

use std::time::Duration;

use crate::lease::{
    Checkpoint, CheckpointUpdate, Fence, Lease, LeaseKey, NewLease, PendingCheckpoint, TakeMode,
    WorkerId,
};
use crate::{Error, ShardId};

/// A lease as a backend stores it: the [`Lease`] with its expiry as an instant on the store's
/// clock (milliseconds; since the Unix epoch for databases, since the store's start for the
/// in-memory one).
///
/// Its methods are the [`LeaseStore`](crate::LeaseStore) contract's transitions: each checks
/// every precondition first and changes nothing when one fails, so a backend that reads the row,
/// calls one of them and writes the row back in the same transaction (under a lock that keeps
/// other writers out) implements the contract. `InMemoryLeaseStore` and the SQLite store do
/// exactly that; the PostgreSQL store writes with conditional SQL and uses these to explain a
/// refused write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    /// Which stream and shard.
    pub key: LeaseKey,
    /// The holder, if any.
    pub owner: Option<WorkerId>,
    /// The fencing token.
    pub epoch: u64,
    /// When the holder's lease expires on the store's clock, in milliseconds; `None` if unowned.
    pub expires_at_ms: Option<i64>,
    /// The committed checkpoint.
    pub checkpoint: Checkpoint,
    /// The prepared checkpoint, if any.
    pub pending_checkpoint: Option<PendingCheckpoint>,
    /// Parent shards.
    pub parent_shard_ids: Vec<ShardId>,
    /// Child shards.
    pub child_shard_ids: Vec<ShardId>,
    /// The worker that requested a handoff, if any.
    pub handoff_to: Option<WorkerId>,
}

/// A lease duration in milliseconds; at least 1 ms, as a store would otherwise grant a lease
/// that is expired when granted.
pub fn lease_duration_millis(duration: Duration) -> Result<i64, Error> {
    let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
    if millis < 1 {
        return Err(Error::invalid(
            "lease duration",
            format!("{duration:?} is shorter than 1 ms"),
        ));
    }
    Ok(millis)
}

impl LeaseRow {
    /// True if going from `self` to `next` is a change a taker must see (see the store
    /// contract's clause 12): another owner or epoch, or the shard's end reached.
    pub fn changes_ownership(&self, next: &LeaseRow) -> bool {
        self.owner != next.owner
            || self.epoch != next.epoch
            || (self.checkpoint == Checkpoint::ShardEnd)
                != (next.checkpoint == Checkpoint::ShardEnd)
    }

    /// The row [`NewLease`] describes: unowned, epoch 0.
    pub fn new(lease: &NewLease) -> Self {
        LeaseRow {
            key: lease.key.clone(),
            owner: None,
            epoch: 0,
            expires_at_ms: None,
            checkpoint: lease.checkpoint.clone(),
            pending_checkpoint: None,
            parent_shard_ids: lease.parent_shard_ids.clone(),
            child_shard_ids: Vec::new(),
            handoff_to: None,
        }
    }

    /// The lease as callers see it at `now_ms` on the store's clock.
    pub fn to_lease(&self, now_ms: i64) -> Lease {
        let time_left = match (&self.owner, self.expires_at_ms) {
            (Some(_), Some(expires)) => Some(Duration::from_millis(
                u64::try_from(expires.saturating_sub(now_ms)).unwrap_or(0),
            )),
            (Some(_), None) => Some(Duration::ZERO),
            (None, _) => None,
        };
        Lease {
            key: self.key.clone(),
            owner: self.owner.clone(),
            epoch: self.epoch,
            time_left,
            checkpoint: self.checkpoint.clone(),
            pending_checkpoint: self.pending_checkpoint.clone(),
            parent_shard_ids: self.parent_shard_ids.clone(),
            child_shard_ids: self.child_shard_ids.clone(),
            handoff_to: self.handoff_to.clone(),
        }
    }

    fn is_available(&self, now_ms: i64) -> bool {
        self.owner.is_none() || self.expires_at_ms.is_none_or(|at| at <= now_ms)
    }

    /// Refuses with [`Error::LeaseLost`] unless `fence` is the current owner and epoch.
    pub fn check_fence(&self, fence: &Fence) -> Result<(), Error> {
        if self.owner.as_ref() == Some(&fence.owner) && self.epoch == fence.epoch {
            return Ok(());
        }
        let holder = match &self.owner {
            Some(owner) => format!("held by {owner} at epoch {}", self.epoch),
            None => format!("unowned at epoch {}", self.epoch),
        };
        Err(Error::LeaseLost {
            lease: self.key.to_string(),
            message: format!("{holder}; presented {fence}"),
        })
    }

    fn conflict(&self, message: String) -> Error {
        Error::LeaseConflict {
            lease: self.key.to_string(),
            message,
        }
    }

    /// Take: one conditional write on `seen_epoch` ([`Error::LeaseConflict`] if the epoch moved
    /// on, or if the lease is held and unexpired and `mode` is not [`TakeMode::Steal`]). Bumps
    /// the epoch, makes `taker` the owner until `now_ms + duration`, clears a handoff request.
    pub fn take(
        &mut self,
        now_ms: i64,
        seen_epoch: u64,
        taker: &WorkerId,
        mode: TakeMode,
        duration: Duration,
    ) -> Result<(), Error> {
        let millis = lease_duration_millis(duration)?;
        if self.epoch != seen_epoch {
            return Err(self.conflict(format!(
                "epoch is {}, the taker saw {seen_epoch}",
                self.epoch
            )));
        }
        if mode == TakeMode::IfAvailable && !self.is_available(now_ms) {
            let owner = self.owner.as_ref().map(WorkerId::as_str).unwrap_or("");
            let left = self.expires_at_ms.unwrap_or(now_ms).saturating_sub(now_ms);
            return Err(self.conflict(format!(
                "held by {owner} for another {left} ms; only a steal takes it"
            )));
        }
        self.owner = Some(taker.clone());
        self.epoch += 1;
        self.expires_at_ms = Some(now_ms.saturating_add(millis));
        self.handoff_to = None;
        Ok(())
    }

    /// Renew: fenced; extends the expiry to `now_ms + duration`.
    pub fn renew(&mut self, now_ms: i64, fence: &Fence, duration: Duration) -> Result<(), Error> {
        let millis = lease_duration_millis(duration)?;
        self.check_fence(fence)?;
        self.expires_at_ms = Some(now_ms.saturating_add(millis));
        Ok(())
    }

    /// Release: fenced; leaves the lease unowned (epoch and checkpoint unchanged), clearing a
    /// handoff request.
    pub fn release(&mut self, fence: &Fence) -> Result<(), Error> {
        self.check_fence(fence)?;
        self.owner = None;
        self.expires_at_ms = None;
        self.handoff_to = None;
        Ok(())
    }

    /// Checkpoint: fenced; [`Error::CheckpointBackwards`] if the committed checkpoint would go
    /// back, or the pending one would be behind the committed one.
    pub fn checkpoint(&mut self, fence: &Fence, update: &CheckpointUpdate) -> Result<(), Error> {
        self.check_fence(fence)?;
        let committed = match &update.checkpoint {
            Some(next) if !next.may_follow(&self.checkpoint) => {
                return Err(self.backwards(&self.checkpoint, next.to_string()));
            }
            Some(next) => next,
            None => &self.checkpoint,
        };
        if let Some(pending) = &update.pending
            && !pending.checkpoint.may_follow(committed)
        {
            return Err(self.backwards(committed, format!("pending {}", pending.checkpoint)));
        }
        self.checkpoint = committed.clone();
        self.pending_checkpoint = update.pending.clone();
        Ok(())
    }

    fn backwards(&self, current: &Checkpoint, attempted: String) -> Error {
        Error::CheckpointBackwards {
            lease: self.key.to_string(),
            current: current.to_string(),
            attempted,
        }
    }

    /// Handoff request: conditional on `seen_epoch`; the lease must be owned by another worker
    /// than `requester` ([`Error::LeaseConflict`] otherwise). Records `requester` as
    /// `handoff_to`, replacing an earlier request.
    pub fn request_handoff(&mut self, seen_epoch: u64, requester: &WorkerId) -> Result<(), Error> {
        if self.epoch != seen_epoch {
            return Err(self.conflict(format!(
                "epoch is {}, the requester saw {seen_epoch}",
                self.epoch
            )));
        }
        match &self.owner {
            None => Err(self.conflict("no owner to hand off; take it instead".to_owned())),
            Some(owner) if owner == requester => {
                Err(self.conflict(format!("{requester} already owns it")))
            }
            Some(_) => {
                self.handoff_to = Some(requester.clone());
                Ok(())
            }
        }
    }

    /// Handoff completion: fenced on the owner; [`Error::LeaseConflict`] if no handoff was
    /// requested. Makes the requester the owner at the next epoch until `now_ms + duration`.
    pub fn complete_handoff(
        &mut self,
        now_ms: i64,
        fence: &Fence,
        duration: Duration,
    ) -> Result<(), Error> {
        let millis = lease_duration_millis(duration)?;
        self.check_fence(fence)?;
        let Some(to) = self.handoff_to.take() else {
            return Err(self.conflict("no handoff was requested".to_owned()));
        };
        self.owner = Some(to);
        self.epoch += 1;
        self.expires_at_ms = Some(now_ms.saturating_add(millis));
        Ok(())
    }

    /// Child shards: fenced; records `children` (replacing earlier ones).
    pub fn record_child_shards(
        &mut self,
        fence: &Fence,
        children: &[ShardId],
    ) -> Result<(), Error> {
        self.check_fence(fence)?;
        self.child_shard_ids = children.to_vec();
        Ok(())
    }
}
