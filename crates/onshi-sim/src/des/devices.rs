//! Devices: check-ins answered by `offer::decide`, download slots and the appointments of the
//! queue for them (`onshi_core::appointment::Queue`, as the server keeps it), downloads at the
//! device's rate, installs, and what a closing window does to downloads in flight.

use std::time::Duration;

use onshi_core::appointment::{self, Turn};
use onshi_core::deployment::{DeploymentEvent as E, DeploymentState as S};
use onshi_core::offer::{self, Action, CampaignStatus, Situation};
use onshi_core::vendor::DeviceKind;

use super::{Kind, NONE, Sim};
use crate::calendar::SimTime;

/// Whole seconds, at least one, so that a device never checks in twice in the same second.
fn secs(d: Duration) -> SimTime {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    SimTime::try_from(s.max(1)).unwrap_or(SimTime::MAX)
}

impl Sim<'_> {
    /// A device's agent checks in at `self.now` and does what the server answers.
    pub(super) fn poll(&mut self, d: usize) {
        let now = self.now;
        let at = self.cal.instant(now);
        let schedule = self.sc.campaign.status(at);
        let state = self.state[d];
        // A waiter's appointment has come: it leaves the pool and asks again.
        let pos = self.pool_pos[d];
        if pos != NONE && self.waiters.get(pos as usize) == Some(&(d as u32)) {
            self.remove_from_pool(d, false);
        }
        // A device whose wave is closed, or whose campaign a gate held, waits parked (waves).
        if self.waves.is_some()
            && !matches!(state, S::Installed | S::Applied)
            && self.campaign_for(d) != CampaignStatus::Active
        {
            self.park(d);
            return;
        }
        // The server takes a download slot, or gives an appointment in the campaign's queue,
        // before deciding, as `onshi serve` does (the same `onshi_core::appointment::Queue`).
        let window = appointment::Window::of(&self.sc.campaign, &schedule)
            .filter(|_| offer::wants_download(state));
        let turn = window.map(|w| {
            let jitter = self.uniform();
            self.slot_queue.ask(
                d as i64,
                at,
                &w,
                self.slots_used,
                self.sc.distribution.max_concurrent_downloads,
                jitter,
            )
        });
        let has_slot = turn == Some(Turn::Slot);
        if has_slot {
            self.slots_used += 1;
        }
        let decision = offer::decide(&Situation {
            now: at,
            campaign: CampaignStatus::Active,
            schedule,
            device: self.fleet.device_kind(d),
            state,
            has_slot,
            poll_interval: self.sc.distribution.poll_interval,
            jitter: self.uniform(),
        });
        if has_slot && decision.action != Action::Download {
            self.slots_used -= 1;
        }
        match decision.action {
            Action::Download => self.start_download(d),
            Action::RetryLater => {
                let back = match turn {
                    Some(Turn::Wait { at, .. }) => self.cal.sim_time(at).unwrap_or(now),
                    _ => now.saturating_add(secs(decision.poll_after)),
                };
                self.count_waiting_checkin(d, window.map(|w| w.opened_at));
                self.add_waiter(d);
                self.push_device(back.max(now + 1), Kind::Poll, d);
            }
            Action::Install => self.start_install(d),
            // Installed: the restart is the site's business; applied: nothing more to do.
            Action::RestartRequired => {}
            Action::None if matches!(state, S::Applied | S::Installed) => {}
            Action::None => {
                let at = self.next_useful_poll(d, now, decision);
                self.push_device(at, Kind::Poll, d);
            }
        }
    }

    /// Outside the windows a device is told to come back after at most `MAX_POLL`; until the
    /// next window opens each such check-in is answered "nothing, come back later" again. Those
    /// answers are worked out here, by the same `decide`, without queueing an event for each:
    /// the device's first check-in at or after the opening is what gets scheduled. (A device
    /// switched off meanwhile cancels that event as it would have cancelled the others.)
    fn next_useful_poll(&mut self, d: usize, now: SimTime, first: offer::Decision) -> SimTime {
        let mut at = now.saturating_add(secs(first.poll_after));
        let Some(opening) = first.next_window.and_then(|o| self.cal.sim_time(o)) else {
            return at;
        };
        let state = self.state[d];
        while at < opening && at < self.cal.horizon() {
            let instant = self.cal.instant(at);
            let decision = offer::decide(&Situation {
                now: instant,
                campaign: CampaignStatus::Active,
                schedule: self.sc.campaign.status(instant),
                device: self.fleet.device_kind(d),
                state,
                has_slot: false,
                poll_interval: self.sc.distribution.poll_interval,
                jitter: self.uniform(),
            });
            if decision.action != Action::None {
                break;
            }
            at = at.saturating_add(secs(decision.poll_after));
        }
        at
    }

    /// The device's download rate: its site's downlink, at most its share of the egress.
    fn rate_bps(&self, d: usize) -> f64 {
        self.fleet
            .downlink_bps(self.fleet.site_of(d))
            .min(self.per_slot_bps)
    }

    fn start_download(&mut self, d: usize) {
        if self.state[d] == S::Failed {
            self.transition(d, &E::Retry);
        }
        self.transition(d, &E::DownloadStarted);
        if !self.sc.campaign.is_distributing(self.cal.instant(self.now)) {
            self.outside_windows += 1;
        }
        let rate = self.rate_bps(d);
        self.dl_since[d] = self.now;
        self.pool_pos[d] = self.active.len() as u32;
        self.active.push(d as u32);
        self.egress_bps += rate;
        if let Some(h) = self.hour_of(self.now) {
            let running = self.active.len() as u32;
            let peak = &mut self.hourly.downloads_peak[h];
            *peak = (*peak).max(running);
            let egress = &mut self.hourly.egress_peak_bps[h];
            *egress = egress.max(self.egress_bps);
        }
        let duration = (self.remaining[d] * 8.0 / rate).ceil().max(1.0);
        let done = self
            .now
            .saturating_add(duration.min(f64::from(u32::MAX)) as SimTime);
        self.push_device(done, Kind::DownloadDone, d);
    }

    /// Ends the running segment of a download at `self.now`: bytes into the hourly rows, the
    /// device out of the running pool. The slot is released by the caller.
    fn end_segment(&mut self, d: usize) {
        let rate = self.rate_bps(d);
        let since = self.dl_since[d];
        let sent = (rate / 8.0 * f64::from(self.now - since)).min(self.remaining[d]);
        self.remaining[d] -= sent;
        self.add_bytes(since, self.now, rate);
        self.egress_bps = (self.egress_bps - rate).max(0.0);
        self.remove_from_pool(d, true);
    }

    /// Spreads `rate` over the hourly rows between `from` and `to`.
    pub(super) fn add_bytes(&mut self, from: SimTime, to: SimTime, rate: f64) {
        let to = to.min(self.cal.horizon());
        let mut t = from;
        while t < to {
            let hour_end = (t / 3600 + 1) * 3600;
            let end = hour_end.min(to);
            if let Some(h) = self.hour_of(t) {
                self.hourly.bytes[h] += rate / 8.0 * f64::from(end - t);
            }
            t = end;
        }
    }

    pub(super) fn download_done(&mut self, d: usize) {
        let since = self.dl_since[d];
        self.end_segment(d);
        self.remaining[d] = 0.0;
        self.release_slot(since);
        if self.uniform() < self.sc.distribution.download_failure_share {
            // Verification failed: the agent discards the file and starts again.
            self.transition(d, &E::Failed);
            self.remaining[d] = match self.fleet.device_kind(d) {
                DeviceKind::Terminal => self.sc.distribution.terminal_package_bytes,
                DeviceKind::CardReader => self.sc.distribution.reader_package_bytes,
            };
        } else {
            self.transition(d, &E::DownloadVerified);
        }
        self.poll(d);
    }

    /// Frees a download slot held since `since`: the queue learns how long slots are held, and
    /// the head of the queue takes it at its next appointment (a few seconds away).
    fn release_slot(&mut self, since: SimTime) {
        self.slots_used = self.slots_used.saturating_sub(1);
        let held = Duration::from_secs(u64::from(self.now.saturating_sub(since)));
        self.slot_queue.freed(held);
    }

    /// Counts a check-in answered with an appointment, and the first one of each device in
    /// each window (a terminal-night of waiting).
    fn count_waiting_checkin(&mut self, d: usize, window: Option<jiff::Timestamp>) {
        self.waiting_checkins += 1;
        let key = window.map_or(0, |w| w.as_second());
        if self.waited_in[d] != key {
            self.waited_in[d] = key;
            self.waiting_nights += 1;
        }
    }

    fn start_install(&mut self, d: usize) {
        self.transition(d, &E::InstallStarted);
        let secs = match self.fleet.device_kind(d) {
            DeviceKind::Terminal => self.sc.distribution.terminal_install_secs,
            DeviceKind::CardReader => self.sc.distribution.reader_install_secs,
        };
        self.push_device(self.now.saturating_add(secs), Kind::InstallDone, d);
    }

    pub(super) fn install_done(&mut self, d: usize) {
        self.transition(d, &E::InstallCompleted);
        let site = self.fleet.site_of(d);
        self.not_installed[site] -= 1;
        if self.not_installed[site] == 0 {
            self.count_site_reached(d);
        }
        match self.fleet.device_kind(d) {
            // A reader's component is applied by its terminal's restart (DESIGN §3): at once
            // only if its terminal already runs the new version; otherwise `restart_terminal`
            // activates it.
            DeviceKind::CardReader => {
                if self.state[self.fleet.terminal(site)] == S::Applied {
                    self.transition(d, &E::ReaderActivated);
                }
            }
            DeviceKind::Terminal => self.terminal_installed(site),
        }
    }

    /// Counts a site whose last device has just been installed: by the last night, or in the
    /// catch-up phase, judged by when the install started.
    fn count_site_reached(&mut self, d: usize) {
        let secs = match self.fleet.device_kind(d) {
            DeviceKind::Terminal => self.sc.distribution.terminal_install_secs,
            DeviceKind::CardReader => self.sc.distribution.reader_install_secs,
        };
        let started = self.cal.instant(self.now.saturating_sub(secs));
        let campaign = &self.sc.campaign;
        let in_night = campaign.window_at(started).is_some()
            || campaign.catch_up_from().is_none_or(|from| started < from);
        if in_night {
            self.sites_by_last_night += 1;
        } else {
            self.sites_in_catch_up += 1;
        }
    }

    /// A window closes and distribution stops: running downloads pause (the partial file is
    /// kept for a ranged resume), and every device checks in again and is told when the next
    /// window opens.
    pub(super) fn window_close(&mut self) {
        let running = self.active.clone();
        for &d in &running {
            let d = d as usize;
            self.end_segment(d);
            self.transition(d, &E::DownloadPaused);
            self.cancel(d);
            self.slots_used = self.slots_used.saturating_sub(1);
        }
        let waiting = std::mem::take(&mut self.waiters);
        for &d in &waiting {
            self.pool_pos[d as usize] = NONE;
            self.cancel(d as usize);
        }
        for d in running.into_iter().chain(waiting) {
            self.poll(d as usize);
        }
    }

    /// A device that switches off: its chain is cancelled, its download paused, its place in
    /// the slot queue given up.
    pub(super) fn switch_off_device(&mut self, d: usize) {
        self.cancel(d);
        if self.pool_pos[d] == NONE {
            return;
        }
        if self.state[d] == S::Downloading {
            let since = self.dl_since[d];
            self.end_segment(d);
            self.transition(d, &E::DownloadPaused);
            self.release_slot(since);
        } else {
            // Its place in the queue lapses when it misses its appointment.
            self.remove_from_pool(d, false);
        }
    }

    fn add_waiter(&mut self, d: usize) {
        self.pool_pos[d] = self.waiters.len() as u32;
        self.waiters.push(d as u32);
    }

    /// Takes a device out of the running downloads (`active`) or the waiters.
    fn remove_from_pool(&mut self, d: usize, active: bool) {
        let pos = self.pool_pos[d];
        if pos == NONE {
            return;
        }
        let pool = if active {
            &mut self.active
        } else {
            &mut self.waiters
        };
        let pos = pos as usize;
        pool.swap_remove(pos);
        if let Some(&moved) = pool.get(pos) {
            self.pool_pos[moved as usize] = pos as u32;
        }
        self.pool_pos[d] = NONE;
    }
}
