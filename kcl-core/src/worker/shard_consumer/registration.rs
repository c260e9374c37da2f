//! A held lease's registration with its worker, as a value: dropping it (however the consumer
//! ends: returning, panicking, or aborted with the worker) unregisters the lease, so the renewer
//! never keeps renewing a lease nobody processes.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::ShardId;
use crate::lease::Fence;
use crate::worker::context::{HeldLease, Stop, WorkerContext};

pub(super) struct Registration {
    ctx: Arc<WorkerContext>,
    shard: ShardId,
    fence: Fence,
}

impl Registration {
    /// Registers `shard` as held at `fence`, valid until `valid_until`, delivering from
    /// `deliver_from`; returns the registration and the receiver of stop requests.
    pub(super) fn new(
        ctx: &Arc<WorkerContext>,
        shard: ShardId,
        fence: Fence,
        valid_until: Instant,
        deliver_from: Option<Instant>,
    ) -> (Self, watch::Receiver<Stop>) {
        let (stop_sender, stop) = watch::channel(Stop::Running);
        ctx.held().insert(
            shard.clone(),
            HeldLease {
                fence: fence.clone(),
                stop: stop_sender,
                valid_until,
                releasing: false,
                deliver_from,
            },
        );
        let registration = Registration {
            ctx: Arc::clone(ctx),
            shard,
            fence,
        };
        (registration, stop)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.ctx.forget(&self.shard, &self.fence);
    }
}
