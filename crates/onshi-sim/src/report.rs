//! What a run produces: the hourly time series and the summary (JSON for `--json`, CSV for
//! `--out`).
//!
//! Row `h` covers `[h, h+1)` hours after the start. Device and site counts are as they stand at
//! the end of the hour; flows (bytes, patients, calls) are totals within it; peaks are the
//! highest value reached within it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use onshi_core::deployment::DeploymentState;
use serde::Serialize;

use crate::calendar::Calendar;

/// The hourly time series, one entry per simulated hour in each column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hourly {
    /// Devices per state at the end of the hour, in [`DeploymentState::ALL`] order.
    pub states: Vec<[u32; 7]>,
    /// Most downloads running at once within the hour.
    pub downloads_peak: Vec<u32>,
    /// Bytes sent within the hour.
    pub bytes: Vec<f64>,
    /// Highest egress within the hour, bits per second.
    pub egress_peak_bps: Vec<f64>,
    /// Patients whose check-in failed because the terminal waited for a restart.
    pub patient_errors: Vec<u32>,
    /// Of those, at a face-authentication reader that ended on error 901.
    pub reader_901: Vec<u32>,
    /// Calls to the call centre placed within the hour.
    pub calls: Vec<u32>,
    /// Sites whose terminal waits for a restart, at the end of the hour.
    pub restart_required_sites: Vec<u32>,
    /// Sites with every device applied, at the end of the hour.
    pub sites_done: Vec<u32>,
}

impl Hourly {
    /// Empty columns for `hours` rows.
    pub fn new(hours: usize) -> Self {
        Self {
            states: Vec::with_capacity(hours),
            downloads_peak: vec![0; hours],
            bytes: vec![0.0; hours],
            egress_peak_bps: vec![0.0; hours],
            patient_errors: vec![0; hours],
            reader_901: vec![0; hours],
            calls: vec![0; hours],
            restart_required_sites: Vec::with_capacity(hours),
            sites_done: Vec::with_capacity(hours),
        }
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Average egress within hour `h`, Gbps.
    pub fn egress_gbps(&self, h: usize) -> f64 {
        self.bytes[h] * 8.0 / 3600.0 / 1e9
    }

    /// The series as CSV, one row per hour, the hour written in the campaign's zone.
    pub fn to_csv(&self, calendar: &Calendar) -> String {
        let mut out = String::from("hour");
        for st in DeploymentState::ALL {
            let _ = write!(out, ",{}", st.slug());
        }
        out.push_str(
            ",concurrent_downloads_peak,egress_gbps,egress_gbps_peak,patient_errors,reader_901,\
             calls,restart_required_sites,sites_done\n",
        );
        for h in 0..self.len() {
            out.push_str(&calendar.rfc3339(h as u32 * 3600));
            for n in self.states[h] {
                let _ = write!(out, ",{n}");
            }
            let _ = writeln!(
                out,
                ",{},{:.3},{:.3},{},{},{},{},{}",
                self.downloads_peak[h],
                self.egress_gbps(h),
                self.egress_peak_bps[h] / 1e9,
                self.patient_errors[h],
                self.reader_901[h],
                self.calls[h],
                self.restart_required_sites[h],
                self.sites_done[h],
            );
        }
        out
    }
}

/// The summary of one run (`onshi simulate --json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub campaign: String,
    pub seed: u64,
    pub start: String,
    pub end: String,
    pub days: u16,
    pub sites: u64,
    pub devices: u64,
    pub terminals: u64,
    pub readers: u64,
    pub deadline: Deadline,
    /// Sites with every device applied at the end of the run.
    pub sites_applied: u64,
    /// Devices per state at the end of the run.
    pub devices_at_end: BTreeMap<&'static str, u64>,
    pub bandwidth: Bandwidth,
    pub errors: Errors,
    pub call_centre: CallCentre,
    pub restart_required: RestartRequired,
    /// The queue for download slots: how often devices waiting for one check in.
    pub appointments: Appointments,
    /// Downloads started while the schedule was closed: always 0 (the offer rules forbid it).
    pub downloads_started_outside_windows: u64,
    /// Transitions the state machine refused: always 0 (a simulator bug otherwise).
    pub illegal_transitions: u64,
    /// Events the simulation processed.
    pub events: u64,
    /// A faulty release (`[fault]`): how far it got.
    pub fault: Fault,
    /// The campaign's waves and their gates, when its file has `[waves]`.
    pub waves: Option<Waves>,
}

/// How far a faulty release got: sites whose terminal restarted onto it, and those whose
/// self-check failed there (both 0 for a healthy release).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fault {
    pub unhealthy_after_restart_share: f64,
    pub sites_reached: u64,
    pub sites_unhealthy: u64,
}

/// The waves of a run: how many opened (and when), and whether a gate held the campaign.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Waves {
    pub waves: u16,
    pub opened: u16,
    pub opened_at: Vec<String>,
    /// When a gate held the campaign (the simulation has no operator to resume it).
    pub held_at: Option<String>,
    /// Which wave's gate (1 for the first).
    pub held_wave: Option<u16>,
}

/// Check-ins of devices waiting for a download slot, told when to come back by the campaign's
/// queue (`onshi_core::appointment`) instead of polling every two minutes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Appointments {
    /// Check-ins answered with an appointment.
    pub waiting_checkins: u64,
    /// Devices that waited, counted once per window they waited in.
    pub waiting_device_nights: u64,
    /// The two above divided: check-ins per waiting device per night.
    pub checkins_per_waiting_device_night: f64,
}

/// The deadline: by the last night, in the catch-up phase, or not at all. A site counts by when
/// the update was installed on its last device (the distribution reached it); restarts are
/// counted apart in `sites_applied` and `restart_required`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deadline {
    /// The last night of the schedule (the notice: 2026-01-30).
    pub last_night: Option<String>,
    pub catch_up_from: Option<String>,
    /// Every device installed during the nights.
    pub sites_by_last_night: u64,
    /// The last device installed in the all-day catch-up phase (終日配信).
    pub sites_in_catch_up: u64,
    /// Not every device installed by the end of the run.
    pub sites_never: u64,
}

/// What the distribution needs from the servers and the network.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bandwidth {
    pub max_concurrent_downloads: u32,
    pub egress_capacity_gbps: f64,
    pub peak_concurrent_downloads: u32,
    pub peak_concurrent_at: Option<String>,
    pub peak_egress_gbps: f64,
    pub peak_egress_at: Option<String>,
    /// The busiest hour's average egress.
    pub busiest_hour_gbps: f64,
    pub transferred_tb: f64,
}

/// Patients whose check-in failed because the terminal had not been restarted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Errors {
    pub patients: u64,
    /// Of those, at a face-authentication reader that ended on 901.
    pub reader_901: u64,
    pub sites_meeting_errors: u64,
    pub busiest_hour: Option<String>,
    pub busiest_hour_patients: u32,
}

/// Calls to the オンライン資格確認等コールセンター.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallCentre {
    pub calls: u64,
    pub busiest_hour: Option<String>,
    pub busiest_hour_calls: u32,
}

/// Sites whose terminal waits for a restart (インストール完了（再起動が必要）).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestartRequired {
    pub peak_sites: u32,
    pub peak_at: Option<String>,
    pub at_end: u32,
}

/// The first hour holding the highest value, if any value is above zero.
pub(crate) fn busiest<T: PartialOrd + Copy + Default>(series: &[T]) -> Option<(usize, T)> {
    let mut best: Option<(usize, T)> = None;
    for (h, v) in series.iter().enumerate() {
        if *v > T::default() && best.is_none_or(|(_, b)| *v > b) {
            best = Some((h, *v));
        }
    }
    best
}

/// A state's counts over the whole series, for charts and tests.
pub fn state_column(hourly: &Hourly, state: DeploymentState) -> Vec<u32> {
    let i = DeploymentState::ALL
        .iter()
        .position(|s| *s == state)
        .unwrap_or(0);
    hourly.states.iter().map(|row| row[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busiest_takes_the_first_highest_and_ignores_all_zero() {
        assert_eq!(busiest(&[0u32, 3, 5, 5, 1]), Some((2, 5)));
        assert_eq!(busiest(&[0u32, 0]), None);
        assert_eq!(busiest(&[0.0f64, 0.5]), Some((1, 0.5)));
    }
}
