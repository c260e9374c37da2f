//! The fencing token a lease holder presents on every write.

use std::fmt;

use crate::lease::WorkerId;

/// Who holds a lease and at which epoch: every renew, checkpoint, release and handoff
/// completion is a conditional write on both, so a worker that lost the lease (another took it,
/// bumping the epoch) can never write again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fence {
    /// The worker that took the lease.
    pub owner: WorkerId,
    /// The epoch the lease got when it was taken.
    pub epoch: u64,
}

impl Fence {
    /// `owner` at `epoch`.
    pub fn new(owner: WorkerId, epoch: u64) -> Self {
        Fence { owner, epoch }
    }
}

impl fmt::Display for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at epoch {}", self.owner, self.epoch)
    }
}
