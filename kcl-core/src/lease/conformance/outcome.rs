//! Checking what a store call returned, with messages that say which clause step broke.

use std::fmt::Debug;

use crate::{Checkpoint, Error, SequenceNumber};

/// The value of `result`, or a panic naming `step`.
pub fn ok<T>(result: Result<T, Error>, step: &str) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("{step}: expected success, got error: {e}"),
    }
}

/// Panics unless `result` is [`Error::LeaseLost`].
pub fn lease_lost<T: Debug>(result: Result<T, Error>, step: &str) {
    match result {
        Err(Error::LeaseLost { .. }) => {}
        other => panic!("{step}: expected Error::LeaseLost, got {other:?}"),
    }
}

/// Panics unless `result` is [`Error::LeaseConflict`].
pub fn conflict<T: Debug>(result: Result<T, Error>, step: &str) {
    match result {
        Err(Error::LeaseConflict { .. }) => {}
        other => panic!("{step}: expected Error::LeaseConflict, got {other:?}"),
    }
}

/// Panics unless `result` is [`Error::CheckpointBackwards`].
pub fn backwards<T: Debug>(result: Result<T, Error>, step: &str) {
    match result {
        Err(Error::CheckpointBackwards { .. }) => {}
        other => panic!("{step}: expected Error::CheckpointBackwards, got {other:?}"),
    }
}

/// Panics unless `result` is [`Error::NotFound`] for a lease.
pub fn not_found<T: Debug>(result: Result<T, Error>, step: &str) {
    match result {
        Err(Error::NotFound { kind: "lease", .. }) => {}
        other => panic!("{step}: expected Error::NotFound for a lease, got {other:?}"),
    }
}

/// A checkpoint at sequence number `digits`.
pub fn seq(digits: &str) -> Checkpoint {
    match SequenceNumber::new(digits) {
        Ok(s) => Checkpoint::Sequence(s),
        Err(e) => panic!("bad sequence number in the suite: {e}"),
    }
}
