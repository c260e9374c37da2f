//! Deduplication: one alert per episode of a condition, and none again within the cooldown.

use std::collections::HashMap;

use super::AlertKind;

/// Decides, reading by reading, whether a condition that holds deserves a new alert.
///
/// A condition that holds for many readings in a row (every reading of an overheating sensor,
/// every average of a drifting one) is one episode and raises one alert, on its first reading.
/// After an alert, the same kind of alert for the same sensor stays quiet for the cooldown,
/// so a value hovering around a limit does not page someone at every crossing.
#[derive(Debug, Clone)]
pub struct AlertDeduplicator {
    cooldown_ms: u64,
    episodes: HashMap<AlertKind, Episode>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Episode {
    /// The condition held at the previous reading.
    ongoing: bool,
    /// Event time of the last alert raised.
    last_raised: Option<u64>,
}

impl AlertDeduplicator {
    /// A deduplicator that keeps repeated alerts `cooldown_ms` apart.
    pub fn new(cooldown_ms: u64) -> Self {
        AlertDeduplicator {
            cooldown_ms,
            episodes: HashMap::new(),
        }
    }

    /// Whether `kind` should be raised for a reading at `ts` where the condition `holds`.
    pub fn should_raise(&mut self, kind: AlertKind, holds: bool, ts: u64) -> bool {
        let episode = self.episodes.entry(kind).or_default();
        let starts = holds && !episode.ongoing;
        episode.ongoing = holds;
        if !starts {
            return false;
        }
        let cooled_down = episode
            .last_raised
            .is_none_or(|last| ts >= last.saturating_add(self.cooldown_ms));
        if cooled_down {
            episode.last_raised = Some(ts);
        }
        cooled_down
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_episode_raises_once_and_the_cooldown_holds_back_the_next() {
        let mut dedup = AlertDeduplicator::new(1_000);
        let raised: Vec<bool> = [false, true, true, true, false, true, false]
            .iter()
            .enumerate()
            .map(|(i, &holds)| dedup.should_raise(AlertKind::Overheat, holds, i as u64 * 100))
            .collect();
        assert_eq!(
            raised,
            [false, true, false, false, false, false, false],
            "the second episode comes within the cooldown"
        );
        assert!(dedup.should_raise(AlertKind::Overheat, true, 5_000));
        assert!(
            dedup.should_raise(AlertKind::Drift, true, 5_000),
            "kinds are independent"
        );
    }
}
