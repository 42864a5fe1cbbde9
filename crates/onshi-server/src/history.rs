//! Counts per state over time, for the dashboard's chart. The store keeps only each device's
//! current state, so the server samples every running campaign's counts (the same numbers as
//! the progress API; the sampler is [`crate::services::progress`]) on its own clock and keeps
//! them in memory: the chart starts when the server started and is not shared between replicas.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use onshi_core::deployment::DeploymentState;

/// One campaign's counts at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub at: Timestamp,
    /// Indexed like [`DeploymentState::ALL`].
    pub states: [u64; 7],
    /// Terminals installed but not restarted.
    pub restart_required: u64,
}

impl Sample {
    /// The count in one state.
    pub fn get(&self, state: DeploymentState) -> u64 {
        DeploymentState::ALL
            .iter()
            .position(|s| *s == state)
            .map_or(0, |i| self.states[i])
    }
}

/// Samples kept per campaign; beyond this the older half is thinned to every other sample.
const MAX_SAMPLES: usize = 2000;

/// How far the server's clock moves between two samples.
pub const SAMPLE_EVERY: SignedDuration = SignedDuration::from_mins(10);

/// Every campaign's samples, oldest first.
#[derive(Default)]
pub struct History {
    map: HashMap<String, Vec<Sample>>,
}

impl History {
    /// Adds a sample. A clock set back (tests, demos) drops the samples after it.
    pub fn record(&mut self, campaign: &str, sample: Sample) {
        let list = self.map.entry(campaign.to_owned()).or_default();
        list.retain(|s| s.at < sample.at);
        list.push(sample);
        if list.len() > MAX_SAMPLES {
            let half = list.len() / 2;
            let mut i = 0;
            list.retain(|_| {
                i += 1;
                i > half || i % 2 == 1
            });
        }
    }

    /// When the last sample of a campaign was taken.
    pub fn last(&self, campaign: &str) -> Option<Timestamp> {
        self.map.get(campaign)?.last().map(|s| s.at)
    }

    /// A campaign's samples, oldest first.
    pub fn samples(&self, campaign: &str) -> Vec<Sample> {
        self.map.get(campaign).cloned().unwrap_or_default()
    }
}

/// Whether a new sample is due: none yet, the clock moved [`SAMPLE_EVERY`], or it went back.
pub fn due(last: Option<Timestamp>, now: Timestamp) -> bool {
    last.is_none_or(|last| now < last || now.duration_since(last) >= SAMPLE_EVERY)
}

/// Locks the history, surviving a poisoned lock (the data stays usable).
pub fn lock(history: &Arc<Mutex<History>>) -> std::sync::MutexGuard<'_, History> {
    history.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> Timestamp {
        Timestamp::from_second(1_768_820_400 + minutes * 60).expect("in range")
    }

    #[test]
    fn a_clock_set_back_drops_the_later_samples() {
        let mut h = History::default();
        for m in [0, 10, 20, 30] {
            h.record(
                "c",
                Sample {
                    at: at(m),
                    states: [m as u64; 7],
                    restart_required: 0,
                },
            );
        }
        h.record(
            "c",
            Sample {
                at: at(15),
                states: [1; 7],
                restart_required: 0,
            },
        );
        let times: Vec<_> = h.samples("c").iter().map(|s| s.at).collect();
        assert_eq!(times, vec![at(0), at(10), at(15)]);
    }

    #[test]
    fn a_long_history_is_thinned_not_dropped() {
        let mut h = History::default();
        for m in 0..(MAX_SAMPLES as i64 + 1) {
            h.record(
                "c",
                Sample {
                    at: at(m),
                    states: [0; 7],
                    restart_required: 0,
                },
            );
        }
        let samples = h.samples("c");
        assert!(samples.len() <= MAX_SAMPLES);
        assert_eq!(samples.first().map(|s| s.at), Some(at(0)));
        assert_eq!(samples.last().map(|s| s.at), Some(at(MAX_SAMPLES as i64)));
    }

    #[test]
    fn a_sample_is_due_every_ten_minutes_of_server_time() {
        assert!(due(None, at(0)));
        assert!(!due(Some(at(0)), at(9)));
        assert!(due(Some(at(0)), at(10)));
        assert!(due(Some(at(10)), at(0)));
    }
}
