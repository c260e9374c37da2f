//! The lease durations clauses use, and waiting for expiry.

use std::time::Duration;

/// A lease meant to expire during the clause.
pub const SHORT: Duration = Duration::from_millis(300);

/// A lease meant to outlive the clause, however slow the machine.
pub const LONG: Duration = Duration::from_secs(120);

/// Sleeps until a lease of [`SHORT`] duration granted before the call has expired.
pub async fn wait_for_short_lease_to_expire() {
    tokio::time::sleep(SHORT + Duration::from_millis(250)).await;
}
