//! Sites: staff switching the terminal and readers on and off, the restart after the install
//! (automatic, the next morning, on the first error, days later, or prompted by the morning
//! e-mail), the patients who meet the error meanwhile, and their calls to the call centre.

use onshi_core::callcentre;
use onshi_core::deployment::{DeploymentEvent as E, DeploymentState as S};

use super::{Kind, Sim, vendor_index};
use crate::calendar::{SWITCH_ON_BEFORE_OPENING, SimTime};
use crate::fleet::Habit;

/// A call is placed within this long after the error, or after the call centre opens.
const CALL_DELAY: f64 = 30.0 * 60.0;

impl Sim<'_> {
    /// Staff arrive and switch the terminal and readers on. Booting is a restart: a terminal
    /// that was installed runs the new version from now on.
    pub(super) fn switch_on(&mut self, site: usize) {
        if self.not_applied[site] == 0 {
            return;
        }
        self.on[site] = true;
        let terminal = self.fleet.terminal(site);
        if self.state[terminal] == S::Installed {
            self.restart_terminal(site);
        }
        for d in self.fleet.devices_of(site) {
            if !matches!(self.state[d], S::Applied | S::Installed) {
                // The agent starts with the device and checks in within a minute.
                let at = self.now + (60.0 * self.uniform()) as SimTime;
                self.push_device(at, Kind::Poll, d);
            }
        }
        let kind = self.fleet.kind(site);
        let today = self.cal.day_of(self.now + SWITCH_ON_BEFORE_OPENING);
        if let Some((_, closes)) = self.cal.open_hours(kind, today) {
            self.push(closes, Kind::Closing, site, 0);
        }
    }

    /// Closing time: staff leave the terminal on overnight (the notice asks for one night) or
    /// switch everything off until the next open day.
    pub(super) fn closing(&mut self, site: usize) {
        if self.not_applied[site] == 0 {
            return;
        }
        let kind = self.fleet.kind(site);
        let today = self.cal.day_of(self.now);
        if self.fleet.night_on(site, today) {
            if let Some((_, (_, closes))) = self.cal.next_open_day(kind, today + 1) {
                self.push(closes, Kind::Closing, site, 0);
            }
            return;
        }
        self.on[site] = false;
        for d in self.fleet.devices_of(site) {
            self.switch_off_device(d);
        }
        if let Some((_, at)) = self.cal.next_switch_on(kind, self.now) {
            self.push(at, Kind::SwitchOn, site, 0);
        }
    }

    /// The terminal has just been installed: it waits for a restart. Plans the restart the
    /// site will make, and starts the patients who will meet the error until then.
    pub(super) fn terminal_installed(&mut self, site: usize) {
        let now = self.now;
        let kind = self.fleet.kind(site);
        let params = self.sc.site_kind(kind);
        let mut plan = if self.fleet.auto_restart(site) {
            self.cal
                .next_before_opening(kind, now, params.auto_restart_before_secs)
        } else {
            match self.fleet.habit(site) {
                Habit::NextMorning => self.staff_morning(site, now),
                Habit::OnError => None,
                Habit::DaysLater => {
                    let day = self.cal.day_of(now) + usize::from(self.fleet.days_later(site));
                    self.cal
                        .midnight(day)
                        .and_then(|midnight| self.staff_morning(site, midnight))
                }
            }
        };
        if let Some(mail) = &self.sc.mail
            && self.fleet.acts_on_mail(site)
        {
            let mut day = self.cal.day_of(now);
            if self.cal.at_local(day, mail.at).is_some_and(|m| m <= now) {
                day += 1;
            }
            let by_mail = self
                .cal
                .next_open_day(kind, day)
                .and_then(|(d, (opens, _))| {
                    let read = self.cal.at_local(d, mail.at)?;
                    let arrive = opens.saturating_sub(SWITCH_ON_BEFORE_OPENING);
                    Some(read.max(arrive) + self.fleet.staff_restart_delay(site))
                });
            plan = match (plan, by_mail) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        if let Some(at) = plan {
            self.push(at, Kind::Restart, site, 0);
        }
        if let Some(first) = self.next_patient(site, now) {
            self.push(first, Kind::Patient, site, 0);
        }
    }

    /// When staff restart the terminal on the first morning after `t`.
    fn staff_morning(&self, site: usize, t: SimTime) -> Option<SimTime> {
        let (_, arrive) = self.cal.next_switch_on(self.fleet.kind(site), t)?;
        Some(arrive + self.fleet.staff_restart_delay(site))
    }

    /// A planned restart: it applies the update if the terminal is on and still waits for it.
    pub(super) fn planned_restart(&mut self, site: usize) {
        let terminal = self.fleet.terminal(site);
        if self.on[site] && self.state[terminal] == S::Installed {
            self.restart_terminal(site);
        }
    }

    /// The terminal restarts and reports the version it runs: the new one. The restart applies
    /// its card readers' installed components too.
    fn restart_terminal(&mut self, site: usize) {
        let terminal = self.fleet.terminal(site);
        let running = E::Running(self.target.clone());
        if self.transition(terminal, &running) {
            self.self_check(site);
        }
        for d in self.fleet.devices_of(site) {
            if d != terminal && self.state[d] == S::Installed {
                self.transition(d, &E::ReaderActivated);
            }
        }
    }

    /// When the next My Number card patient arrives at `site` after `t`: a Poisson stream over
    /// the site's opening hours.
    fn next_patient(&mut self, site: usize, t: SimTime) -> Option<SimTime> {
        let kind = self.fleet.kind(site);
        let p = self.sc.site_kind(kind);
        let per_second = p.patients_per_day * p.mynumber_share / p.open_seconds();
        if per_second <= 0.0 || !self.terminal_fails {
            return None;
        }
        let gap = -(1.0 - self.uniform()).ln() / per_second;
        self.cal.after_open_time(kind, t, gap)
    }

    /// A patient uses the My Number card while the terminal waits for a restart: the check-in
    /// fails (the notice's ① and ②). The first failure at a site may bring a call to the call
    /// centre and, unless staff leave it for days, a restart soon after.
    pub(super) fn patient(&mut self, site: usize) {
        let terminal = self.fleet.terminal(site);
        if !self.on[site] || self.state[terminal] != S::Installed {
            return;
        }
        let now = self.now;
        if let Some(h) = self.hour_of(now) {
            self.hourly.patient_errors[h] += 1;
            if self
                .fleet
                .vendor(site)
                .is_some_and(|v| self.shows_901[vendor_index(v)])
            {
                self.hourly.reader_901[h] += 1;
            }
        }
        if !self.met_error[site] {
            self.met_error[site] = true;
            self.sites_meeting_errors += 1;
            if self.fleet.calls(site) {
                self.call(now);
            }
            if self.fleet.habit(site) != Habit::DaysLater {
                let at = now + self.sc.staff.on_error_delay_secs;
                self.push(at, Kind::Restart, site, 0);
            }
        }
        if let Some(next) = self.next_patient(site, now) {
            self.push(next, Kind::Patient, site, 0);
        }
    }

    /// Staff call the call centre about an error at `t`; the call lands when it is open.
    fn call(&mut self, t: SimTime) {
        let delay = (CALL_DELAY * self.uniform()) as SimTime;
        let placed = callcentre::next_open(self.cal.instant(t + delay));
        if let Some(h) = self.cal.sim_time(placed).and_then(|at| self.hour_of(at)) {
            self.hourly.calls[h] += 1;
        }
    }
}
