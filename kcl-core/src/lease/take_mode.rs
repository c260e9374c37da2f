//! How a take treats a lease that someone else holds.

/// Whether [`LeaseStore::take_lease`](crate::LeaseStore::take_lease) may take a lease from a
/// live holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TakeMode {
    /// Only a lease with no owner or whose expiry has passed on the store's clock.
    IfAvailable,
    /// Also a lease held and not expired: the balancing steal (after a handoff request timed
    /// out, or without one).
    Steal,
}
