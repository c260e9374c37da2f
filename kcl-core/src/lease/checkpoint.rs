//! Checkpoints: where a shard's processing has got to, and the rule that it never goes back.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Error, SequenceNumber, StartingPosition};

/// A lease's checkpoint: an initial position sentinel, the sequence number of the last record
/// processed, or the end of a closed shard.
///
/// Checkpoints only move forward ([`Checkpoint::may_follow`]): the initial sentinels
/// (`TRIM_HORIZON`, `LATEST`, `AT_TIMESTAMP`) come before every sequence number, sequence numbers
/// compare as numbers, and `SHARD_END` is final.
///
/// The text form (`Display` / `FromStr`) is what stores keep: `TRIM_HORIZON`, `LATEST`,
/// `AT_TIMESTAMP:<milliseconds since the Unix epoch>`, `SHARD_END`, or the decimal sequence
/// number. `AT_TIMESTAMP` is kept to the millisecond, as Kinesis keeps timestamps.
///
/// ```
/// use kcl_core::{Checkpoint, SequenceNumber};
/// let nine = Checkpoint::Sequence(SequenceNumber::new("9")?);
/// let ten = Checkpoint::Sequence(SequenceNumber::new("10")?);
/// assert!(ten.may_follow(&nine));
/// assert!(!nine.may_follow(&ten));
/// assert!(!ten.may_follow(&Checkpoint::ShardEnd));
/// assert_eq!("SHARD_END".parse::<Checkpoint>()?, Checkpoint::ShardEnd);
/// # Ok::<(), kcl_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Checkpoint {
    /// Start at the oldest retained record (nothing processed yet).
    TrimHorizon,
    /// Start after the newest record at the time processing begins (nothing processed yet).
    Latest,
    /// Start at the first record that arrived at or after this time (nothing processed yet).
    AtTimestamp(SystemTime),
    /// Every record up to and including this sequence number is processed.
    Sequence(SequenceNumber),
    /// The shard is closed and every record in it is processed; its children may start.
    ShardEnd,
}

/// Where a checkpoint stands in the forward-only order; sequence numbers compare within `Sequence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Initial,
    Sequence,
    End,
}

impl Checkpoint {
    /// A checkpoint at `sequence_number`; [`Error::InvalidArgument`] naming `SequenceNumber` if
    /// it is not a decimal number.
    pub fn sequence(sequence_number: &str) -> Result<Self, Error> {
        SequenceNumber::new(sequence_number).map(Checkpoint::Sequence)
    }

    /// True for the sentinels that say where to start, before anything was processed.
    pub fn is_initial(&self) -> bool {
        self.stage() == Stage::Initial
    }

    fn stage(&self) -> Stage {
        match self {
            Checkpoint::TrimHorizon | Checkpoint::Latest | Checkpoint::AtTimestamp(_) => {
                Stage::Initial
            }
            Checkpoint::Sequence(_) => Stage::Sequence,
            Checkpoint::ShardEnd => Stage::End,
        }
    }

    /// True if a lease at `current` may move to `self`: an initial sentinel may be replaced by
    /// anything, a sequence number by an equal or higher one or by `SHARD_END`, and `SHARD_END`
    /// only by itself. Equal checkpoints are allowed so that a retried write succeeds.
    pub fn may_follow(&self, current: &Checkpoint) -> bool {
        match (current, self) {
            (Checkpoint::Sequence(old), Checkpoint::Sequence(new)) => new >= old,
            _ => {
                let (old, new) = (current.stage(), self.stage());
                new > old || (new == old && new != Stage::Sequence)
            }
        }
    }

    /// Where a reader resumes from this checkpoint; `None` at `SHARD_END` (nothing is left).
    pub fn resume_position(&self) -> Option<StartingPosition> {
        match self {
            Checkpoint::TrimHorizon => Some(StartingPosition::TrimHorizon),
            Checkpoint::Latest => Some(StartingPosition::Latest),
            Checkpoint::AtTimestamp(at) => Some(StartingPosition::AtTimestamp(*at)),
            Checkpoint::Sequence(s) => Some(StartingPosition::AfterSequence(s.clone())),
            Checkpoint::ShardEnd => None,
        }
    }
}

fn millis_since_epoch(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Checkpoint::TrimHorizon => f.write_str("TRIM_HORIZON"),
            Checkpoint::Latest => f.write_str("LATEST"),
            Checkpoint::AtTimestamp(at) => write!(f, "AT_TIMESTAMP:{}", millis_since_epoch(*at)),
            Checkpoint::Sequence(s) => f.write_str(s.as_str()),
            Checkpoint::ShardEnd => f.write_str("SHARD_END"),
        }
    }
}

impl FromStr for Checkpoint {
    type Err = Error;

    /// Parses the text form; anything else is [`Error::InvalidArgument`] naming `Checkpoint`
    /// (or `SequenceNumber` for a malformed number).
    fn from_str(text: &str) -> Result<Self, Error> {
        match text {
            "TRIM_HORIZON" => Ok(Checkpoint::TrimHorizon),
            "LATEST" => Ok(Checkpoint::Latest),
            "SHARD_END" => Ok(Checkpoint::ShardEnd),
            _ => {
                if let Some(millis) = text.strip_prefix("AT_TIMESTAMP:") {
                    let millis: u64 = millis.parse().map_err(|_| {
                        Error::invalid(
                            "Checkpoint",
                            format!("{text:?}: AT_TIMESTAMP needs milliseconds since the epoch"),
                        )
                    })?;
                    return Ok(Checkpoint::AtTimestamp(
                        UNIX_EPOCH + Duration::from_millis(millis),
                    ));
                }
                if text.starts_with(|c: char| c.is_ascii_digit()) {
                    return Checkpoint::sequence(text);
                }
                Err(Error::invalid(
                    "Checkpoint",
                    format!(
                        "{text:?} is neither a sequence number nor one of TRIM_HORIZON, LATEST, \
                         AT_TIMESTAMP:<millis>, SHARD_END"
                    ),
                ))
            }
        }
    }
}

/// A checkpoint prepared but not yet committed (prepare-then-commit), with optional
/// application state to hand to the next owner's processor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PendingCheckpoint {
    /// The checkpoint the application intends to commit; never behind the committed one.
    pub checkpoint: Checkpoint,
    /// Opaque application bytes kept with it, if any.
    pub state: Option<Vec<u8>>,
}

impl PendingCheckpoint {
    /// A pending `checkpoint` carrying `state`.
    pub fn new(checkpoint: Checkpoint, state: Option<Vec<u8>>) -> Self {
        PendingCheckpoint { checkpoint, state }
    }
}

/// One fenced checkpoint write: what [`LeaseStore::checkpoint`](crate::LeaseStore::checkpoint)
/// stores.
///
/// `checkpoint: None` leaves the committed checkpoint unchanged; the pending checkpoint is always
/// replaced by `pending` (so a commit clears a prepared checkpoint).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CheckpointUpdate {
    /// The new committed checkpoint, if it moves.
    pub checkpoint: Option<Checkpoint>,
    /// The pending checkpoint after the write; `None` clears it.
    pub pending: Option<PendingCheckpoint>,
}

impl CheckpointUpdate {
    /// Commit `checkpoint` and clear any pending one.
    pub fn commit(checkpoint: Checkpoint) -> Self {
        CheckpointUpdate {
            checkpoint: Some(checkpoint),
            pending: None,
        }
    }

    /// Prepare `pending`, leaving the committed checkpoint where it is.
    pub fn prepare(pending: PendingCheckpoint) -> Self {
        CheckpointUpdate {
            checkpoint: None,
            pending: Some(pending),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(n: &str) -> Checkpoint {
        Checkpoint::sequence(n).unwrap_or(Checkpoint::ShardEnd)
    }

    #[test]
    fn text_form_round_trips() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        for cp in [
            Checkpoint::TrimHorizon,
            Checkpoint::Latest,
            Checkpoint::AtTimestamp(at),
            seq("49590338271490256608559692538361571095921575989136588898"),
            Checkpoint::ShardEnd,
        ] {
            assert_eq!(cp.to_string().parse::<Checkpoint>(), Ok(cp.clone()));
        }
    }

    #[test]
    fn rejects_text_that_is_not_a_checkpoint() {
        assert!(matches!(
            "12a".parse::<Checkpoint>(),
            Err(Error::InvalidArgument {
                field: "SequenceNumber",
                ..
            })
        ));
        for bad in ["", "trim_horizon", "AT_TIMESTAMP:x", "-1"] {
            assert!(
                matches!(
                    bad.parse::<Checkpoint>(),
                    Err(Error::InvalidArgument { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn only_moves_forward() {
        let initial = [
            Checkpoint::TrimHorizon,
            Checkpoint::Latest,
            Checkpoint::AtTimestamp(UNIX_EPOCH),
        ];
        for a in &initial {
            for b in &initial {
                assert!(b.may_follow(a));
            }
            assert!(seq("1").may_follow(a));
            assert!(Checkpoint::ShardEnd.may_follow(a));
            assert!(!a.may_follow(&seq("1")));
            assert!(!a.may_follow(&Checkpoint::ShardEnd));
        }
        assert!(seq("1000").may_follow(&seq("999")));
        assert!(!seq("999").may_follow(&seq("1000")));
        assert!(seq("5").may_follow(&seq("5")));
        assert!(Checkpoint::ShardEnd.may_follow(&seq("5")));
        assert!(Checkpoint::ShardEnd.may_follow(&Checkpoint::ShardEnd));
        assert!(!seq("5").may_follow(&Checkpoint::ShardEnd));
    }
}
