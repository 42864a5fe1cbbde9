//! Waves with health gates in the simulation (段階配信), when the scenario's campaign file has a
//! `[waves]` table: the sites dealt by `onshi_core::waves::assign` (as the server deals them),
//! each wave's counts kept as devices move, `onshi_core::waves::judge` asked at every hour's end
//! (a hold stops the campaign for good — the simulation has no operator to resume it; a passed
//! gate opens the next wave), and `onshi_core::waves::status_for` answering each check-in. A
//! device whose wave is closed (or whose campaign is held) is parked, with no event queued,
//! until its wave opens: closed waves cost nothing.
//!
//! A faulty release (`[fault]`): a terminal restarting onto it fails its self-check with the
//! scenario's share; with waves, the gate counts it.

use onshi_core::deployment::DeploymentState as S;
use onshi_core::institution::{InstitutionCode, InstitutionKind, ScoreTable};
use onshi_core::offer::CampaignStatus;
use onshi_core::vendor::DeviceKind;
use onshi_core::waves::{self, SiteProfile, Verdict, WaveHealth, WavePlan, WaveProgress};

use super::{Kind, Sim};
use crate::calendar::SimTime;
use crate::fleet::{self, Fleet};
use crate::scenario::Scenario;

/// The spread of parked devices' first check-ins when their wave opens (as the server's
/// `OPENING_SPREAD`).
const WAKE_SPREAD: f64 = 1800.0;

/// The waves of one run.
pub(super) struct SimWaves {
    plan: WavePlan,
    /// Each site's wave.
    wave_of: Vec<u16>,
    progress: WaveProgress,
    health: Vec<WaveHealth>,
    /// Per wave, the devices parked while it is closed or the campaign held.
    parked: Vec<Vec<u32>>,
    is_parked: Vec<bool>,
    /// When a gate held the campaign, and which wave's.
    pub(super) held: Option<(SimTime, u16)>,
    /// When each wave opened (the first at the start).
    pub(super) opened: Vec<SimTime>,
}

/// A synthetic, unique 医療機関コード for site `i` (the simulator's sites have none).
fn code_of(i: usize, m: &fleet::SiteModel) -> Option<InstitutionCode> {
    let table = match m.kind {
        InstitutionKind::Hospital | InstitutionKind::Clinic => ScoreTable::Medical,
        InstitutionKind::Dental => ScoreTable::Dental,
        InstitutionKind::Pharmacy => ScoreTable::Pharmacy,
    };
    InstitutionCode::from_parts(
        m.prefecture,
        table,
        ((i / 10_000) % 100) as u8,
        (i % 10_000) as u16,
    )
}

impl SimWaves {
    /// The waves of the scenario's campaign, dealt over the fleet; `None` without `[waves]`.
    pub(super) fn new(
        sc: &Scenario,
        seed: u64,
        fleet: &Fleet,
        start: jiff::Timestamp,
    ) -> Option<Self> {
        let plan = sc.campaign.waves()?.clone();
        let profiles: Vec<SiteProfile> = fleet::sites(sc, seed)
            .take(fleet.sites())
            .enumerate()
            .filter_map(|(i, m)| {
                Some(SiteProfile {
                    code: code_of(i, &m)?,
                    kind: m.kind,
                    vendors: if m.readers > 0 {
                        vec![m.vendor]
                    } else {
                        Vec::new()
                    },
                })
            })
            .collect();
        let wave_of = waves::assign(&plan, sc.campaign.id(), &profiles);
        let n = usize::from(plan.count());
        let mut health: Vec<WaveHealth> = (0..n)
            .map(|w| WaveHealth {
                wave: w as u16,
                ..WaveHealth::default()
            })
            .collect();
        for site in 0..fleet.sites() {
            let h = &mut health[usize::from(wave_of.get(site).copied().unwrap_or(0))];
            h.sites += 1;
            for d in fleet.devices_of(site) {
                h.devices += 1;
                if fleet.device_kind(d) == DeviceKind::Terminal {
                    h.terminals += 1;
                }
            }
        }
        Some(Self {
            plan,
            wave_of,
            progress: WaveProgress::start(start),
            health,
            parked: vec![Vec::new(); n],
            is_parked: vec![false; fleet.devices()],
            held: None,
            opened: vec![0],
        })
    }

    fn wave(&self, site: usize) -> u16 {
        self.wave_of.get(site).copied().unwrap_or(0)
    }

    /// How many waves the plan has.
    pub(super) fn count(&self) -> u16 {
        self.plan.count()
    }
}

impl Sim<'_> {
    /// The campaign's status as device `d` sees it at its check-in.
    pub(super) fn campaign_for(&self, d: usize) -> CampaignStatus {
        let Some(w) = &self.waves else {
            return CampaignStatus::Active;
        };
        let base = if w.held.is_some() {
            CampaignStatus::Paused
        } else {
            CampaignStatus::Active
        };
        waves::status_for(base, Some(&w.progress), w.wave(self.fleet.site_of(d)))
    }

    /// Parks device `d` until its wave opens: no event is queued for it meanwhile.
    pub(super) fn park(&mut self, d: usize) {
        let site = self.fleet.site_of(d);
        if let Some(w) = &mut self.waves
            && !w.is_parked[d]
        {
            w.is_parked[d] = true;
            let wave = usize::from(w.wave(site));
            w.parked[wave].push(d as u32);
        }
    }

    /// Keeps each wave's counts as device `d` moves from `from` to `to`.
    pub(super) fn count_wave(&mut self, d: usize, from: S, to: S) {
        let kind = self.fleet.device_kind(d);
        let site = self.fleet.site_of(d);
        let Some(w) = &mut self.waves else {
            return;
        };
        let wave = usize::from(w.wave(site));
        let h = &mut w.health[wave];
        match (from == S::Waiting, to == S::Waiting) {
            (true, false) => h.started += 1,
            (false, true) => h.started = h.started.saturating_sub(1),
            _ => {}
        }
        if to == S::Failed {
            h.failed += 1;
        }
        if from == S::Failed {
            h.failed = h.failed.saturating_sub(1);
        }
        if kind == DeviceKind::Terminal && to == S::Applied && from != S::Applied {
            h.applied_terminals += 1;
        }
    }

    /// A terminal restarted onto the release: with a faulty release its self-check fails with
    /// the scenario's share (counted by the gate when there are waves).
    pub(super) fn self_check(&mut self, site: usize) {
        let share = self.sc.unhealthy_after_restart;
        if share <= 0.0 {
            return;
        }
        self.fault_reached += 1;
        if self.uniform() < share {
            self.fault_unhealthy += 1;
            if let Some(w) = &mut self.waves {
                let wave = usize::from(w.wave(site));
                w.health[wave].unhealthy += 1;
            }
        }
    }

    /// At the end of each simulated hour (`t`): the gates' verdict, acted on. Woken devices
    /// check in no earlier than `not_before` (the event being handled).
    pub(super) fn judge_waves(&mut self, t: SimTime, not_before: SimTime) {
        let now = self.cal.instant(t);
        let verdict = match &self.waves {
            Some(w) if w.held.is_none() => {
                waves::judge(&w.plan, &w.progress, &w.health, &self.sc.campaign, now)
            }
            _ => return,
        };
        match verdict {
            Verdict::Hold(hold) => {
                if let Some(w) = &mut self.waves {
                    w.progress.hold = Some(hold);
                    w.held = Some((t, hold.wave));
                }
            }
            Verdict::Open(next) => {
                let woken = match &mut self.waves {
                    Some(w) => match w.progress.widened(&w.plan, now) {
                        Some(p) => {
                            w.progress = p;
                            w.opened.push(t);
                            let list = std::mem::take(&mut w.parked[usize::from(next)]);
                            for d in &list {
                                w.is_parked[*d as usize] = false;
                            }
                            list
                        }
                        None => Vec::new(),
                    },
                    None => Vec::new(),
                };
                for d in woken {
                    let d = d as usize;
                    if !self.on[self.fleet.site_of(d)] {
                        continue; // its site's next switch-on checks it in
                    }
                    // Whatever was queued for it is replaced by one check-in, spread out.
                    self.cancel(d);
                    let at = t.saturating_add((WAKE_SPREAD * self.uniform()) as SimTime);
                    self.push_device(at.max(not_before), Kind::Poll, d);
                }
            }
            Verdict::Held | Verdict::Wait(_) | Verdict::AllOpen => {}
        }
    }
}
