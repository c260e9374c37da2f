//! Names private to one run of one clause, so clauses never see each other's leases.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{LeaseKey, ShardId, StreamName, WorkerId};

/// Stream names and worker ids unique to one run of one clause (process id, time and a
/// counter), so clauses can share a store, even across processes.
#[derive(Debug, Clone)]
pub struct Scope {
    tag: String,
}

impl Scope {
    /// A scope for `clause` (a few words of `[a-z-]`).
    pub fn new(clause: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let clause: String = clause.chars().take(60).collect();
        Scope {
            tag: format!("{clause}-{}-{micros}-{n}", std::process::id()),
        }
    }

    /// The scope's stream.
    pub fn stream(&self) -> StreamName {
        self.stream_named("s")
    }

    /// Another stream of the scope.
    pub fn stream_named(&self, name: &str) -> StreamName {
        StreamName::new(&format!("{}.{name}", self.tag))
            .unwrap_or_else(|e| panic!("scope stream name: {e}"))
    }

    /// The lease of shard `index` of the scope's stream.
    pub fn key(&self, index: u64) -> LeaseKey {
        LeaseKey::new(self.stream(), ShardId::from_index(index))
    }

    /// A worker id of the scope.
    pub fn worker(&self, name: &str) -> WorkerId {
        WorkerId::new(&format!("{name}@{}", self.tag))
            .unwrap_or_else(|e| panic!("scope worker id: {e}"))
    }
}
