//! 段階配信 — waves with health gates: a campaign's sites are dealt into waves, each wave is
//! offered the release only once the wave before it passed its gate, and a gate crossed holds
//! the campaign before a bad update reaches the country.
//!
//! The plan is data, in the campaign file's optional `[waves]` table:
//!
//! ```toml
//! [waves]
//! sizes = ["1%", 500]            # the waves before the last: a share or a number of sites;
//!                                # the last wave is every other site
//! named = ["0110113719"]         # operator-named sites (volunteers): always in the first wave
//! mail_to = "rollout@example.jp" # who is mailed when a gate holds the campaign
//!
//! [waves.gate]                   # every key optional; these are the defaults
//! failed_percent = 5.0           # failed downloads or installs, of the devices that started
//! failed_at_least = 3
//! unhealthy_percent = 1.0        # self-check unhealthy after the restart, of restarted terminals
//! unhealthy_at_least = 1
//! not_running_percent = 2.0      # restarted without the new version running, of restarted
//! not_running_at_least = 1       # terminals, once `not_running_within_minutes` have passed
//! not_running_within_minutes = 30
//! min_restarted = 10             # terminals running the new version before the next wave opens
//! soak_hours = 12                # from the first window the wave could use
//! ```
//!
//! Which site is in which wave is [`assign`]; whether a wave holds, waits or lets the next one
//! open is [`gate::judge`]. The server, the pages, the mails and the simulator call these and
//! keep no rule of their own.

use jiff::SignedDuration;
use serde::Deserialize;

use crate::institution::InstitutionCode;

pub mod assign;
pub mod gate;
pub mod rollback;
#[cfg(test)]
mod tests;

pub use assign::{SiteProfile, assign};
pub use gate::{
    Breach, Hold, Limit, Metric, Reading, Verdict, Waiting, WaveHealth, WaveProgress, judge,
};
pub use rollback::{RollbackError, RolledBack};

/// The most waves a plan may have (the last included).
pub const MAX_WAVES: usize = 20;

/// How big a wave before the last is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WaveSize {
    /// This many sites.
    Sites(u32),
    /// This share of the campaign's sites, in percent (0 < p < 100).
    Percent(f64),
}

/// A health gate: the thresholds that hold the campaign, and what a wave needs before the next
/// one opens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gate {
    /// Failed downloads or installs, of the wave's devices that started.
    pub failed: Limit,
    /// Terminals whose self-check of the applied version failed after the restart, of the
    /// wave's restarted terminals.
    pub unhealthy: Limit,
    /// Terminals that restarted but do not run the new version `not_running_within` later, of
    /// the wave's restarted terminals.
    pub not_running: Limit,
    pub not_running_within: SignedDuration,
    /// Terminals of the wave running the new version before the next wave opens (or all of
    /// the wave's terminals, when it has fewer).
    pub min_restarted: u32,
    /// How long after the first window the wave could use the next wave waits, so that the
    /// canaries have met patients.
    pub soak: SignedDuration,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            failed: Limit {
                max_percent: 5.0,
                at_least: 3,
            },
            unhealthy: Limit {
                max_percent: 1.0,
                at_least: 1,
            },
            not_running: Limit {
                max_percent: 2.0,
                at_least: 1,
            },
            not_running_within: SignedDuration::from_mins(30),
            min_restarted: 10,
            soak: SignedDuration::from_hours(12),
        }
    }
}

/// A campaign's waves: how big each is, who the operator put first, the gate every wave passes
/// and who is told when one holds.
#[derive(Debug, Clone, PartialEq)]
pub struct WavePlan {
    sizes: Vec<WaveSize>,
    named: Vec<InstitutionCode>,
    gate: Gate,
    mail_to: Option<String>,
}

/// Why a `[waves]` table is not a usable plan. Each message names the key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavesError {
    #[error("waves.sizes must list at least one wave before the last (e.g. [\"1%\", \"10%\"])")]
    NoSizes,
    #[error("waves.sizes lists {0} waves; at most {max} are allowed", max = MAX_WAVES - 1)]
    TooManyWaves(usize),
    #[error(
        "waves.sizes contains {0}: write a number of sites (1 or more) or a share such as \"5%\" (more than 0, less than 100)"
    )]
    BadSize(String),
    #[error("waves.named contains {0:?}, which is not a valid 医療機関コード: {1}")]
    BadNamed(String, String),
    #[error("waves.mail_to = {0:?} is not an e-mail address")]
    BadMailTo(String),
    #[error("waves.gate.{0} = {1} must be a percentage from 0 to 100")]
    BadPercent(&'static str, String),
    #[error("waves.gate.{0} = {1} is out of range ({2})")]
    OutOfRange(&'static str, i64, &'static str),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWaves {
    sizes: Vec<toml::Value>,
    #[serde(default)]
    named: Vec<String>,
    mail_to: Option<String>,
    #[serde(default)]
    gate: RawGate,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGate {
    failed_percent: Option<f64>,
    failed_at_least: Option<i64>,
    unhealthy_percent: Option<f64>,
    unhealthy_at_least: Option<i64>,
    not_running_percent: Option<f64>,
    not_running_at_least: Option<i64>,
    not_running_within_minutes: Option<i64>,
    min_restarted: Option<i64>,
    soak_hours: Option<i64>,
}

fn percent(field: &'static str, v: Option<f64>, default: f64) -> Result<f64, WavesError> {
    match v {
        None => Ok(default),
        Some(p) if p.is_finite() && (0.0..=100.0).contains(&p) => Ok(p),
        Some(p) => Err(WavesError::BadPercent(field, p.to_string())),
    }
}

fn whole(
    field: &'static str,
    v: Option<i64>,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
    words: &'static str,
) -> Result<i64, WavesError> {
    match v {
        None => Ok(default),
        Some(n) if range.contains(&n) => Ok(n),
        Some(n) => Err(WavesError::OutOfRange(field, n, words)),
    }
}

fn size(v: &toml::Value) -> Result<WaveSize, WavesError> {
    let bad = || WavesError::BadSize(v.to_string());
    match v {
        toml::Value::Integer(n) => u32::try_from(*n)
            .ok()
            .filter(|n| *n >= 1)
            .map(WaveSize::Sites)
            .ok_or_else(bad),
        toml::Value::String(s) => s
            .trim()
            .strip_suffix('%')
            .and_then(|p| p.trim().parse::<f64>().ok())
            .filter(|p| p.is_finite() && *p > 0.0 && *p < 100.0)
            .map(WaveSize::Percent)
            .ok_or_else(bad),
        _ => Err(bad()),
    }
}

impl RawWaves {
    pub(crate) fn parse(self) -> Result<WavePlan, WavesError> {
        if self.sizes.is_empty() {
            return Err(WavesError::NoSizes);
        }
        if self.sizes.len() > MAX_WAVES - 1 {
            return Err(WavesError::TooManyWaves(self.sizes.len()));
        }
        let sizes = self.sizes.iter().map(size).collect::<Result<Vec<_>, _>>()?;
        let mut named = self
            .named
            .iter()
            .map(|c| {
                InstitutionCode::parse(c)
                    .map_err(|e| WavesError::BadNamed(c.clone(), e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        named.sort();
        named.dedup();
        let mail_to = match self.mail_to {
            None => None,
            Some(m) => {
                let t = m.trim();
                let ok = t.len() <= 254
                    && t.split_once('@').is_some_and(|(local, domain)| {
                        !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
                    })
                    && !t.chars().any(|c| c.is_whitespace() || c.is_control());
                if !ok {
                    return Err(WavesError::BadMailTo(m));
                }
                Some(t.to_owned())
            }
        };
        let d = Gate::default();
        let g = self.gate;
        let count = |field, v, default: u32| {
            whole(field, v, i64::from(default), 1..=1_000_000, "1–1000000").map(|n| n as u32)
        };
        let gate = Gate {
            failed: Limit {
                max_percent: percent("failed_percent", g.failed_percent, d.failed.max_percent)?,
                at_least: count("failed_at_least", g.failed_at_least, d.failed.at_least)?,
            },
            unhealthy: Limit {
                max_percent: percent(
                    "unhealthy_percent",
                    g.unhealthy_percent,
                    d.unhealthy.max_percent,
                )?,
                at_least: count(
                    "unhealthy_at_least",
                    g.unhealthy_at_least,
                    d.unhealthy.at_least,
                )?,
            },
            not_running: Limit {
                max_percent: percent(
                    "not_running_percent",
                    g.not_running_percent,
                    d.not_running.max_percent,
                )?,
                at_least: count(
                    "not_running_at_least",
                    g.not_running_at_least,
                    d.not_running.at_least,
                )?,
            },
            not_running_within: SignedDuration::from_mins(whole(
                "not_running_within_minutes",
                g.not_running_within_minutes,
                d.not_running_within.as_mins(),
                1..=7 * 24 * 60,
                "1–10080 minutes",
            )?),
            min_restarted: whole(
                "min_restarted",
                g.min_restarted,
                i64::from(d.min_restarted),
                0..=1_000_000,
                "0–1000000",
            )? as u32,
            soak: SignedDuration::from_hours(whole(
                "soak_hours",
                g.soak_hours,
                d.soak.as_hours(),
                0..=30 * 24,
                "0–720 hours",
            )?),
        };
        Ok(WavePlan {
            sizes,
            named,
            gate,
            mail_to,
        })
    }
}

impl WavePlan {
    /// A plan from its parts (the simulator's scenarios and tests; a campaign file goes through
    /// `Campaign::parse`). `sizes` are the waves before the last.
    pub fn new(
        sizes: Vec<WaveSize>,
        named: Vec<InstitutionCode>,
        gate: Gate,
        mail_to: Option<String>,
    ) -> Result<Self, WavesError> {
        if sizes.is_empty() {
            return Err(WavesError::NoSizes);
        }
        if sizes.len() > MAX_WAVES - 1 {
            return Err(WavesError::TooManyWaves(sizes.len()));
        }
        for s in &sizes {
            let ok = match *s {
                WaveSize::Sites(n) => n >= 1,
                WaveSize::Percent(p) => p.is_finite() && p > 0.0 && p < 100.0,
            };
            if !ok {
                return Err(WavesError::BadSize(format!("{s:?}")));
            }
        }
        Ok(Self {
            sizes,
            named,
            gate,
            mail_to,
        })
    }

    /// How many waves, the last (every other site) included.
    pub fn count(&self) -> u16 {
        // At most MAX_WAVES, checked at parse.
        (self.sizes.len() + 1) as u16
    }

    /// The sizes of the waves before the last.
    pub fn sizes(&self) -> &[WaveSize] {
        &self.sizes
    }

    /// The sites the operator put into the first wave.
    pub fn named(&self) -> &[InstitutionCode] {
        &self.named
    }

    /// The gate every wave passes.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// Who is mailed when a gate holds the campaign.
    pub fn mail_to(&self) -> Option<&str> {
        self.mail_to.as_deref()
    }

    /// How many sites waves `0..=wave` hold together (before the last wave) out of `sites`,
    /// counting the named sites into the first.
    pub fn cumulative(&self, wave: usize, sites: usize) -> usize {
        let mut total = 0usize;
        for s in self.sizes.iter().take(wave + 1) {
            total += match *s {
                WaveSize::Sites(n) => n as usize,
                WaveSize::Percent(p) => (p / 100.0 * sites as f64).ceil() as usize,
            };
        }
        total.min(sites)
    }
}

/// 第1波 / wave 1: a wave's name for people (waves are numbered from 1 on screen, from 0 in
/// data).
pub fn wave_name(wave: u16, lang: crate::lang::Lang) -> String {
    match lang {
        crate::lang::Lang::Ja => format!("第{}波", wave + 1),
        crate::lang::Lang::En => format!("wave {}", wave + 1),
    }
}

/// The campaign's status as one device sees it: a device whose wave is not open yet is in a
/// paused campaign (nothing new is offered; an installed terminal is still told to restart).
/// A campaign without waves (`progress` is `None`) offers to every targeted device.
pub fn status_for(
    status: crate::offer::CampaignStatus,
    progress: Option<&WaveProgress>,
    wave: u16,
) -> crate::offer::CampaignStatus {
    use crate::offer::CampaignStatus as S;
    match progress {
        Some(p) if status == S::Active && !p.offers(wave) => S::Paused,
        _ => status,
    }
}
