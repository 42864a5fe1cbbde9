//! The health gate: a wave's counts against its thresholds, and the one decision every part
//! asks — hold the campaign (and why), wait (for restarts or soak time), or open the next wave.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Gate, WavePlan, wave_name};
use crate::jst;
use crate::lang::Lang;
use crate::schedule::Campaign;

/// A threshold: crossed when at least `at_least` devices and more than `max_percent` of the
/// base are affected.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Limit {
    pub max_percent: f64,
    pub at_least: u32,
}

impl Limit {
    /// Whether `count` of `base` crosses the limit.
    pub fn crossed(&self, count: u64, base: u64) -> bool {
        count >= u64::from(self.at_least.max(1))
            && (count as f64) * 100.0 > self.max_percent * base as f64
    }
}

/// What a gate measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Failed downloads or installs, of the devices that started.
    Failed,
    /// Self-check unhealthy after the restart, of the restarted terminals.
    Unhealthy,
    /// Restarted without the new version running in time, of the restarted terminals.
    NotRunning,
}

impl Metric {
    pub const ALL: [Self; 3] = [Self::Failed, Self::Unhealthy, Self::NotRunning];

    /// What is counted, for people.
    pub fn label(self, lang: Lang) -> &'static str {
        match self {
            Self::Failed => lang.pick(
                "ダウンロード・インストールの失敗",
                "failed downloads or installs",
            ),
            Self::Unhealthy => lang.pick(
                "再起動後の自己診断で異常",
                "unhealthy self-check after the restart",
            ),
            Self::NotRunning => lang.pick(
                "再起動後も新しいバージョンで起動していない",
                "restarted without the new version running",
            ),
        }
    }

    /// What the count is a share of, for people.
    pub fn base_label(self, lang: Lang) -> &'static str {
        match self {
            Self::Failed => lang.pick("配信を開始した機器", "devices that started"),
            Self::Unhealthy | Self::NotRunning => {
                lang.pick("再起動した資格確認端末", "restarted terminals")
            }
        }
    }
}

/// Where one wave's devices stand, as the store counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WaveHealth {
    pub wave: u16,
    /// Sites assigned to the wave.
    pub sites: u64,
    /// The wave's devices in the campaign.
    pub devices: u64,
    /// Of them, terminals.
    pub terminals: u64,
    /// Devices past `waiting` (a download started at least once), failed ones included.
    pub started: u64,
    /// Devices whose download or install failed (state `failed` now).
    pub failed: u64,
    /// Terminals running the new version.
    pub applied_terminals: u64,
    /// Terminals whose self-check of the new version failed after the restart.
    pub unhealthy: u64,
    /// Terminals that restarted after the install without the new version running.
    pub restarted_old: u64,
    /// Of them, those that restarted longer ago than the gate's `not_running_within`.
    pub restarted_old_overdue: u64,
}

impl WaveHealth {
    /// Terminals that restarted since their install (onto the new version or not).
    pub fn restarted(&self) -> u64 {
        self.applied_terminals + self.restarted_old
    }

    /// Terminals running the new version with no failed self-check: what `min_restarted`
    /// counts.
    pub fn restarted_healthy(&self) -> u64 {
        self.applied_terminals.saturating_sub(self.unhealthy)
    }

    /// The gate's reading of each metric.
    pub fn readings(&self, gate: &Gate) -> [Reading; 3] {
        Metric::ALL.map(|metric| {
            let (count, base, limit) = match metric {
                Metric::Failed => (self.failed, self.started, gate.failed),
                Metric::Unhealthy => (self.unhealthy, self.restarted(), gate.unhealthy),
                Metric::NotRunning => (
                    self.restarted_old_overdue,
                    self.restarted(),
                    gate.not_running,
                ),
            };
            Reading {
                metric,
                count,
                base,
                limit,
                crossed: limit.crossed(count, base),
            }
        })
    }
}

/// One metric of one wave against its limit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reading {
    pub metric: Metric,
    pub count: u64,
    pub base: u64,
    pub limit: Limit,
    pub crossed: bool,
}

impl Reading {
    /// The count as a percentage of the base (0 with no base).
    pub fn percent(&self) -> f64 {
        if self.base == 0 {
            0.0
        } else {
            self.count as f64 * 100.0 / self.base as f64
        }
    }

    /// `再起動後の自己診断で異常: 3台（再起動した資格確認端末 3台の 100.0%、上限 1.0%・1台以上）`.
    pub fn text(&self, lang: Lang) -> String {
        match lang {
            Lang::Ja => format!(
                "{}: {}台（{} {}台の {:.1}%、上限 {:.1}%・{}台以上で停止）",
                self.metric.label(lang),
                self.count,
                self.metric.base_label(lang),
                self.base,
                self.percent(),
                self.limit.max_percent,
                self.limit.at_least.max(1),
            ),
            Lang::En => format!(
                "{}: {} ({:.1}% of {} {}; the limit is {:.1}%, at least {})",
                self.metric.label(lang),
                self.count,
                self.percent(),
                self.base,
                self.metric.base_label(lang),
                self.limit.max_percent,
                self.limit.at_least.max(1),
            ),
        }
    }
}

/// Why a gate held the campaign: the first reading that crossed its limit.
pub type Breach = Reading;

/// A campaign held by a gate: which wave, why, since when.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Hold {
    pub wave: u16,
    pub breach: Reading,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
}

impl Hold {
    /// One line for the dashboard and the audit log.
    pub fn reason(&self, lang: Lang) -> String {
        format!(
            "{} — {}",
            wave_name(self.wave, lang),
            self.breach.text(lang)
        )
    }

    /// The operator's mail: subject and body, in Japanese or English. Times in Japan time
    /// with the weekday.
    pub fn letter(
        &self,
        campaign_id: &str,
        title: &str,
        waves: u16,
        lang: Lang,
    ) -> (String, String) {
        let wave = wave_name(self.wave, lang);
        let at = jst::format(self.at, lang);
        let later = if self.wave + 1 < waves {
            match lang {
                Lang::Ja => format!(
                    "第{}波以降の医療機関等には、この版は配信されていません。\n",
                    self.wave + 2
                ),
                Lang::En => format!(
                    "Sites in wave {} and later have not been offered this release.\n",
                    self.wave + 2
                ),
            }
        } else {
            String::new()
        };
        match lang {
            Lang::Ja => (
                format!("【配信を自動停止】{title}（{wave}の健全性ゲート）"),
                format!(
                    "{title}（{campaign_id}）の配信を、{wave}の健全性ゲートにより自動で一時停止しました。\n\n\
                     停止した時刻: {at}\n\
                     理由: {}\n\n\
                     {later}\
                     ダウンロード済み・インストール済みの端末はそのままです（新たな配信は行いません）。\n\
                     ダッシュボードで状況を確認し、再開・次の波へ拡大・切り戻し・終了のいずれかを選んでください。\n",
                    self.breach.text(lang)
                ),
            ),
            Lang::En => (
                format!("[Rollout held] {title} ({wave} health gate)"),
                format!(
                    "The rollout of {title} ({campaign_id}) was paused automatically by the health gate of {wave}.\n\n\
                     Held at: {at}\n\
                     Why: {}\n\n\
                     {later}\
                     Devices that downloaded or installed it keep what they have; nothing new is offered.\n\
                     Look at the dashboard and resume, widen to the next wave, roll back, or close the campaign.\n",
                    self.breach.text(lang),
                ),
            ),
        }
    }
}

/// How far a campaign's waves are, as stored (one row per campaign, changed compare-and-set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WaveProgress {
    /// How many waves are open (1 at activation); waves `0..open` are offered the release.
    pub open: u16,
    /// When the newest open wave opened.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub opened_at: Timestamp,
    /// The gate that holds the campaign now, if one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
    /// Waves whose breach the operator accepted by resuming: they hold the campaign no more.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waived: Vec<u16>,
    /// The operator rolled the campaign back ([`super::rollback`]): the campaign is closed and
    /// this release is offered to the devices that had the bad one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<super::rollback::RolledBack>,
}

impl WaveProgress {
    /// The first wave open, at activation.
    pub fn start(at: Timestamp) -> Self {
        Self {
            open: 1,
            opened_at: at,
            hold: None,
            waived: Vec::new(),
            rolled_back: None,
        }
    }

    /// Whether devices of `wave` are offered the release.
    pub fn offers(&self, wave: u16) -> bool {
        wave < self.open
    }

    /// The operator resumes after a hold: the held wave's breach is accepted.
    pub fn resumed(&self) -> Self {
        let mut next = self.clone();
        if let Some(h) = next.hold.take()
            && !next.waived.contains(&h.wave)
        {
            next.waived.push(h.wave);
        }
        next
    }

    /// The operator rolled the campaign back: the hold stays on record (why it was stopped)
    /// with the rollback beside it.
    pub fn rolled_back(&self, done: super::rollback::RolledBack) -> Self {
        Self {
            rolled_back: Some(done),
            ..self.clone()
        }
    }

    /// The next wave opens at `at` (the gate passed, or the operator widened). `None` when every
    /// wave is open already.
    pub fn widened(&self, plan: &WavePlan, at: Timestamp) -> Option<Self> {
        (self.open < plan.count()).then(|| Self {
            open: self.open + 1,
            opened_at: at,
            hold: self.hold,
            waived: self.waived.clone(),
            rolled_back: self.rolled_back.clone(),
        })
    }
}

/// What a wave still waits for before the next one opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "for", rename_all = "snake_case")]
pub enum Waiting {
    /// Terminals running the new version (healthy): `have` of the `need`ed.
    Restarts { have: u64, need: u64 },
    /// The soak time, until this instant.
    Soak {
        #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
        until: Timestamp,
    },
}

impl Waiting {
    /// One line for the dashboard.
    pub fn text(&self, lang: Lang) -> String {
        match (*self, lang) {
            (Self::Restarts { have, need }, Lang::Ja) => {
                format!("新しいバージョンで稼働中の資格確認端末 {have}/{need}台を待っています")
            }
            (Self::Restarts { have, need }, Lang::En) => {
                format!("waiting for terminals running the new version: {have} of {need}")
            }
            (Self::Soak { until }, Lang::Ja) => {
                format!("様子見の期間中（{}まで）", jst::format_ja(until))
            }
            (Self::Soak { until }, Lang::En) => {
                format!("soaking until {}", jst::format_en(until))
            }
        }
    }
}

/// The gate's decision for a campaign now.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A gate holds the campaign already: the operator decides.
    Held,
    /// Hold the campaign now, for this reason.
    Hold(Hold),
    /// Open the next wave (its index).
    Open(u16),
    /// The newest open wave has not passed its gate yet.
    Wait(Waiting),
    /// Every wave is open and none crossed its limits.
    AllOpen,
}

/// When a wave opened at `opened_at` starts to soak: the first window it could use (a wave
/// opened in the afternoon soaks from 20:00).
pub fn soak_start(schedule: &Campaign, opened_at: Timestamp) -> Timestamp {
    let s = schedule.status(opened_at);
    if s.distributing {
        opened_at
    } else {
        s.next_opening.unwrap_or(opened_at)
    }
}

/// Decides, for an active campaign with waves at `now`: does an open wave cross a limit (hold),
/// and else, has the newest open wave passed its gate (open the next)? `health` holds one entry
/// per wave (a missing one counts as empty).
pub fn judge(
    plan: &WavePlan,
    progress: &WaveProgress,
    health: &[WaveHealth],
    schedule: &Campaign,
    now: Timestamp,
) -> Verdict {
    if progress.hold.is_some() {
        return Verdict::Held;
    }
    let of = |w: u16| {
        health
            .iter()
            .find(|h| h.wave == w)
            .copied()
            .unwrap_or(WaveHealth {
                wave: w,
                ..WaveHealth::default()
            })
    };
    let gate = plan.gate();
    for w in 0..progress.open {
        if progress.waived.contains(&w) {
            continue;
        }
        if let Some(breach) = of(w).readings(gate).into_iter().find(|r| r.crossed) {
            return Verdict::Hold(Hold {
                wave: w,
                breach,
                at: now,
            });
        }
    }
    if progress.open >= plan.count() {
        return Verdict::AllOpen;
    }
    let newest = of(progress.open.saturating_sub(1));
    let need = u64::from(gate.min_restarted).min(newest.terminals);
    let have = newest.restarted_healthy();
    if have < need {
        return Verdict::Wait(Waiting::Restarts { have, need });
    }
    let until = soak_start(schedule, progress.opened_at)
        .checked_add(gate.soak)
        .unwrap_or(Timestamp::MAX);
    if now < until {
        return Verdict::Wait(Waiting::Soak { until });
    }
    Verdict::Open(progress.open)
}
