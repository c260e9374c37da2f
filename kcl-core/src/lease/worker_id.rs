//! Worker ids: who holds a lease.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Error;

/// The longest worker id a lease store accepts, in bytes.
pub const MAX_WORKER_ID_LEN: usize = 256;

/// Identifies one worker process (one start of it): the owner of leases and the name it
/// heartbeats under.
///
/// Any 1–256 bytes of text without control characters: host names, pids, quotes and `;` are all
/// fine, and stores keep them unchanged. Reusing an id across process starts hides a dead worker
/// behind a live one, so prefer [`WorkerId::unique`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(Arc<str>);

impl WorkerId {
    /// Validates `id`; anything else is [`Error::InvalidArgument`] naming `WorkerId`.
    ///
    /// ```
    /// use kcl_core::WorkerId;
    /// assert!(WorkerId::new("host-a'; --").is_ok());
    /// assert!(WorkerId::new("").is_err());
    /// ```
    pub fn new(id: &str) -> Result<Self, Error> {
        if id.is_empty() || id.len() > MAX_WORKER_ID_LEN {
            return Err(Error::invalid(
                "WorkerId",
                format!(
                    "length {} is outside 1..={MAX_WORKER_ID_LEN} bytes",
                    id.len()
                ),
            ));
        }
        if let Some(bad) = id.chars().find(|c| c.is_control()) {
            return Err(Error::invalid(
                "WorkerId",
                format!("control character {bad:?} is not allowed"),
            ));
        }
        Ok(WorkerId(id.into()))
    }

    /// An id unique to this process start: `name`, the process id, the start time in
    /// microseconds and a per-process counter.
    ///
    /// ```
    /// use kcl_core::WorkerId;
    /// let a = WorkerId::unique("billing")?;
    /// let b = WorkerId::unique("billing")?;
    /// assert_ne!(a, b);
    /// assert!(a.as_str().starts_with("billing-"));
    /// # Ok::<(), kcl_core::Error>(())
    /// ```
    pub fn unique(name: &str) -> Result<Self, Error> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        WorkerId::new(&format!("{name}-{}-{micros}-{n}", std::process::id()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_empty_long_and_control_characters() {
        for bad in ["", &"x".repeat(MAX_WORKER_ID_LEN + 1), "a\0b", "a\nb"] {
            assert!(
                matches!(
                    WorkerId::new(bad),
                    Err(Error::InvalidArgument {
                        field: "WorkerId",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn keeps_quotes_and_semicolons() {
        let id = "o'brien\"; DROP TABLE leases; --";
        assert_eq!(
            WorkerId::new(id).map(|w| w.as_str().to_owned()).ok(),
            Some(id.to_owned())
        );
    }
}
