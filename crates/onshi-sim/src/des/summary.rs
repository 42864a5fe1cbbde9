//! The end of a run: the last bytes counted, and the summary built from the counters and the
//! hourly rows.

use std::collections::BTreeMap;

use onshi_core::deployment::DeploymentState;

use super::Sim;
use crate::calendar::Calendar;
use crate::report::{
    Appointments, Bandwidth, CallCentre, Deadline, Errors, Fault, Hourly, RestartRequired, Summary,
    Waves, busiest,
};

/// Everything a run produces.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub summary: Summary,
    pub hourly: Hourly,
    /// The run's calendar, to write hours as instants.
    pub calendar: Calendar,
}

impl Sim<'_> {
    pub(super) fn finish(mut self) -> Outcome {
        // Downloads still running at the end have sent bytes up to the end.
        let horizon = self.cal.horizon();
        for i in 0..self.active.len() {
            let d = self.active[i] as usize;
            let rate = self
                .fleet
                .downlink_bps(self.fleet.site_of(d))
                .min(self.per_slot_bps);
            self.add_bytes(self.dl_since[d], horizon, rate);
        }
        let cal = &self.cal;
        let hourly = &self.hourly;
        let at = |h: usize| cal.rfc3339(h as u32 * 3600);
        let campaign = &self.sc.campaign;
        let (terminals, readers) = self.fleet.device_counts();
        let sites = self.fleet.sites() as u64;
        let reached = self.sites_by_last_night + self.sites_in_catch_up;

        let peak_dl = busiest(&hourly.downloads_peak);
        let peak_egress = busiest(&hourly.egress_peak_bps);
        let busiest_bytes = busiest(&hourly.bytes);
        let errors_peak = busiest(&hourly.patient_errors);
        let calls_peak = busiest(&hourly.calls);
        let restart_peak = busiest(&hourly.restart_required_sites);
        let sum = |v: &[u32]| v.iter().map(|x| u64::from(*x)).sum::<u64>();

        let summary = Summary {
            scenario: self.sc.title.clone(),
            campaign: campaign.id().to_owned(),
            seed: self.seed,
            start: cal.rfc3339(0),
            end: cal.rfc3339(horizon),
            days: self.sc.days,
            sites,
            devices: terminals + readers,
            terminals,
            readers,
            deadline: Deadline {
                last_night: campaign.windows().last().map(|w| w.night.to_string()),
                catch_up_from: campaign.catch_up_from().map(|t| campaign.rfc3339(t)),
                sites_by_last_night: self.sites_by_last_night,
                sites_in_catch_up: self.sites_in_catch_up,
                sites_never: sites - reached,
            },
            sites_applied: u64::from(self.sites_done),
            devices_at_end: DeploymentState::ALL
                .iter()
                .zip(self.counts)
                .map(|(s, n)| (s.slug(), u64::from(n)))
                .collect::<BTreeMap<_, _>>(),
            bandwidth: Bandwidth {
                max_concurrent_downloads: self.sc.distribution.max_concurrent_downloads,
                egress_capacity_gbps: self.sc.distribution.egress_bps / 1e9,
                peak_concurrent_downloads: peak_dl.map_or(0, |(_, n)| n),
                peak_concurrent_at: peak_dl.map(|(h, _)| at(h)),
                peak_egress_gbps: round3(peak_egress.map_or(0.0, |(_, b)| b / 1e9)),
                peak_egress_at: peak_egress.map(|(h, _)| at(h)),
                busiest_hour_gbps: round3(
                    busiest_bytes.map_or(0.0, |(h, _)| hourly.egress_gbps(h)),
                ),
                transferred_tb: round3(hourly.bytes.iter().sum::<f64>() / 1e12),
            },
            errors: Errors {
                patients: sum(&hourly.patient_errors),
                reader_901: sum(&hourly.reader_901),
                sites_meeting_errors: self.sites_meeting_errors,
                busiest_hour: errors_peak.map(|(h, _)| at(h)),
                busiest_hour_patients: errors_peak.map_or(0, |(_, n)| n),
            },
            call_centre: CallCentre {
                calls: sum(&hourly.calls),
                busiest_hour: calls_peak.map(|(h, _)| at(h)),
                busiest_hour_calls: calls_peak.map_or(0, |(_, n)| n),
            },
            restart_required: RestartRequired {
                peak_sites: restart_peak.map_or(0, |(_, n)| n),
                peak_at: restart_peak.map(|(h, _)| at(h)),
                at_end: self.restart_required,
            },
            appointments: Appointments {
                waiting_checkins: self.waiting_checkins,
                waiting_device_nights: self.waiting_nights,
                checkins_per_waiting_device_night: round3(
                    self.waiting_checkins as f64 / self.waiting_nights.max(1) as f64,
                ),
            },
            downloads_started_outside_windows: self.outside_windows,
            illegal_transitions: self.illegal,
            events: self.events,
            fault: Fault {
                unhealthy_after_restart_share: self.sc.unhealthy_after_restart,
                sites_reached: self.fault_reached,
                sites_unhealthy: self.fault_unhealthy,
            },
            waves: self.waves.as_ref().map(|w| Waves {
                waves: w.count(),
                opened: w.opened.len() as u16,
                opened_at: w.opened.iter().map(|t| cal.rfc3339(*t)).collect(),
                held_at: w.held.map(|(t, _)| cal.rfc3339(t)),
                held_wave: w.held.map(|(_, wave)| wave + 1),
            }),
        };
        Outcome {
            summary,
            hourly: self.hourly,
            calendar: self.cal,
        }
    }
}

/// Three decimals are plenty for Gbps and TB, and keep the JSON readable.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
