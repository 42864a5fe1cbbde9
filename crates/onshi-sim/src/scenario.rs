//! The scenario: every parameter of a simulation, read from TOML and validated into typed values.
//!
//! The preset `national-2026-01` (`presets/national-2026-01.toml`) is also the table of
//! defaults: a scenario file is laid over it key by key, so a file names only what it changes.
//! A key the preset does not have is an unknown field; a value of the wrong type or out of range
//! is an error naming the field (`sites.clinic.night_on`).

use std::time::Duration;

use jiff::SignedDuration;
use jiff::civil::{Date, Time, Weekday};
use onshi_core::holidays;
use onshi_core::institution::InstitutionKind;
use onshi_core::schedule::Campaign;
use toml::{Table, Value};

mod raw;
#[cfg(test)]
mod tests;

use raw::{RawScenario, invalid};

/// The national preset: the 2026-01 notice over the whole country. Also the defaults.
pub const NATIONAL_2026_01: &str = include_str!("../presets/national-2026-01.toml");

/// The presets `preset:NAME` refers to.
pub const PRESETS: [(&str, &str); 1] = [("national-2026-01", NATIONAL_2026_01)];

/// Most days one run may simulate.
pub const MAX_DAYS: u16 = 366;
/// Most sites of one kind (a typo guard: the country has about 230,000 in all).
pub const MAX_SITES_PER_KIND: u32 = 5_000_000;
/// Most face-authentication card readers at one site (the brief: up to 3 per hospital).
pub const MAX_READERS: usize = 3;

/// Why a scenario cannot be simulated. Each message names the field at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScenarioError {
    #[error("scenario file is not valid TOML: {0}")]
    Toml(String),
    #[error("unknown scenario preset {0:?}: known presets are national-2026-01")]
    UnknownPreset(String),
    #[error("unknown field `{0}` (preset:national-2026-01 lists every field)")]
    UnknownField(String),
    #[error("`{field}` must be {expected}, not {found}")]
    WrongType {
        field: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("`{field}` = {value}: {why}")]
    Invalid {
        field: String,
        value: String,
        why: String,
    },
    #[error("`campaign` = {value:?}: {why}")]
    Campaign { value: String, why: String },
}

/// Every parameter of one simulation, validated.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub title: String,
    /// The `campaign` value as written (`preset:2026-01` or a file name).
    pub campaign_ref: String,
    /// The schedule, from the same `onshi-core` code the server uses.
    pub campaign: Campaign,
    /// The first simulated day; the simulation starts at its 00:00 in the campaign's zone.
    pub start: Date,
    pub days: u16,
    pub seed: u64,
    pub distribution: Distribution,
    /// Share of sites per reader maker, in [`onshi_core::vendor::Vendor::ALL`] order.
    pub vendors: [f64; 5],
    /// Share of sites per prefecture, in JIS order (index 0 is 北海道). The simulation does not
    /// use it; sites drawn with [`crate::fleet::sites`] are placed by it.
    pub prefectures: [f64; 47],
    pub staff: Staff,
    /// The morning "restart required" e-mail, when enabled.
    pub mail: Option<Mail>,
    /// A faulty release (`[fault]`): the share of terminals whose self-check fails after the
    /// restart onto it (0: healthy).
    pub unhealthy_after_restart: f64,
    /// Delta packages (`[deltas]`).
    pub deltas: Deltas,
    /// Parameters per kind of site, in [`InstitutionKind::ALL`] order.
    pub sites: [SiteKind; 4],
}

/// The server side: throttle, egress, packages, polls.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    pub max_concurrent_downloads: u32,
    pub egress_bps: f64,
    pub poll_interval: Duration,
    pub terminal_package_bytes: f64,
    pub reader_package_bytes: f64,
    pub terminal_install_secs: u32,
    pub reader_install_secs: u32,
    /// Lowest and highest site downlink, bits per second.
    pub site_downlink_bps: (f64, f64),
    pub download_failure_share: f64,
}

/// Delta packages: which devices download a delta instead of the package, and its size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Deltas {
    /// Share of devices whose installed version is the delta's base.
    pub base_share: f64,
    /// Delta size over the full package's.
    pub ratio: f64,
}

impl Deltas {
    /// Whether device `d` has the base installed: a hash of the seed and the index, not a draw
    /// from the run's streams, so turning deltas on changes nothing else in a run.
    pub fn on_base(&self, seed: u64, d: usize) -> bool {
        if self.base_share <= 0.0 {
            return false;
        }
        let mut z = seed ^ (d as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((z >> 11) as f64 / (1u64 << 53) as f64) < self.base_share
    }
}

/// What staff do after the install (sites without auto-restart).
#[derive(Debug, Clone, PartialEq)]
pub struct Staff {
    pub next_morning: f64,
    pub on_error: f64,
    pub days_later: f64,
    pub on_error_delay_secs: u32,
    pub days_later_mean_days: f64,
    pub call_share: f64,
}

/// The morning "restart required" e-mail.
#[derive(Debug, Clone, PartialEq)]
pub struct Mail {
    pub at: Time,
    pub acts_share: f64,
}

/// The parameters of one kind of site.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteKind {
    pub kind: InstitutionKind,
    pub count: u32,
    /// Share of sites with 0, 1, … [`MAX_READERS`] face-authentication card readers.
    pub readers: Vec<f64>,
    pub always_on: f64,
    pub night_on: f64,
    pub auto_restart: f64,
    pub auto_restart_before_secs: u32,
    pub opens: Time,
    pub closes: Time,
    pub saturday: bool,
    pub patients_per_day: f64,
    pub mynumber_share: f64,
}

impl Scenario {
    /// Parses a scenario file laid over the national preset. `load_campaign` turns the
    /// `campaign` value into a schedule (the CLI reads files relative to the scenario).
    pub fn parse(
        text: &str,
        load_campaign: impl FnOnce(&str) -> Result<Campaign, String>,
    ) -> Result<Self, ScenarioError> {
        let mut merged = preset_table();
        let user: Table = toml::from_str(text).map_err(|e| ScenarioError::Toml(one_line(&e)))?;
        overlay(&mut merged, user, "")?;
        // A TOML date does not survive the trip through `Value` into serde: read it here.
        let start = match merged.remove("start") {
            Some(Value::Datetime(d)) => d,
            _ => {
                return Err(invalid(
                    "start",
                    "?",
                    "must be a plain date such as 2026-01-19",
                ));
            }
        };
        let raw: RawScenario = Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| ScenarioError::Toml(one_line(&e)))?;
        raw.validate(start, load_campaign)
    }

    /// A built-in scenario by name (`national-2026-01`); its campaign must be a preset too.
    pub fn preset(name: &str) -> Result<Self, ScenarioError> {
        let text = PRESETS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .ok_or_else(|| ScenarioError::UnknownPreset(name.to_owned()))?;
        Self::parse(text, preset_campaign)
    }

    /// The parameters of one kind of site.
    pub fn site_kind(&self, kind: InstitutionKind) -> &SiteKind {
        &self.sites[kind_index(kind)]
    }

    /// How many sites the fleet has.
    pub fn site_count(&self) -> u64 {
        self.sites.iter().map(|k| u64::from(k.count)).sum()
    }
}

impl SiteKind {
    /// Whether sites of this kind see patients on `date`: Monday to Friday, Saturday when
    /// `saturday`, never on Sundays and 祝日.
    pub fn open_on(&self, date: Date) -> bool {
        !holidays::is_holiday(date)
            && match date.weekday() {
                Weekday::Sunday => false,
                Weekday::Saturday => self.saturday,
                _ => true,
            }
    }

    /// How long an open day's reception hours last, in seconds.
    pub fn open_seconds(&self) -> f64 {
        let secs = |t: Time| {
            f64::from(t.hour()) * 3600.0 + f64::from(t.minute()) * 60.0 + f64::from(t.second())
        };
        secs(self.closes) - secs(self.opens)
    }

    /// When staff switch the terminal on: [`SWITCH_ON_BEFORE_OPENING`] before opening.
    pub fn switch_on_at(&self) -> Time {
        before(self.opens, SWITCH_ON_BEFORE_OPENING)
    }

    /// When the terminals of this kind that restart themselves do so, every day.
    pub fn auto_restart_at(&self) -> Time {
        before(self.opens, self.auto_restart_before_secs)
    }
}

/// Staff switch the terminal on this long before opening, in seconds.
pub const SWITCH_ON_BEFORE_OPENING: u32 = 30 * 60;

/// `secs` seconds before `time`, no earlier than midnight.
fn before(time: Time, secs: u32) -> Time {
    time.checked_sub(SignedDuration::from_secs(i64::from(secs)))
        .unwrap_or(Time::midnight())
}

/// Loads `preset:NAME` campaigns only: the campaign loader for scenarios without files.
pub fn preset_campaign(reference: &str) -> Result<Campaign, String> {
    let name = reference
        .strip_prefix("preset:")
        .ok_or_else(|| "only preset:NAME campaigns can be loaded here".to_owned())?;
    Campaign::preset(name).map_err(|e| e.to_string())
}

/// The index of a kind in [`InstitutionKind::ALL`].
pub fn kind_index(kind: InstitutionKind) -> usize {
    match kind {
        InstitutionKind::Hospital => 0,
        InstitutionKind::Clinic => 1,
        InstitutionKind::Dental => 2,
        InstitutionKind::Pharmacy => 3,
    }
}

fn one_line(e: &toml::de::Error) -> String {
    e.to_string().trim().replace('\n', " ").replace("  ", " ")
}

fn preset_table() -> Table {
    // The preset is part of the binary and parsed by a test; it cannot fail at run time.
    toml::from_str(NATIONAL_2026_01).unwrap_or_default()
}

/// Lays `user` over `base`: every key must exist in `base` with a value of the same type (an
/// integer is accepted where a float is expected).
fn overlay(base: &mut Table, user: Table, path: &str) -> Result<(), ScenarioError> {
    for (key, value) in user {
        let field = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        let Some(slot) = base.get_mut(&key) else {
            return Err(ScenarioError::UnknownField(field));
        };
        match (slot, value) {
            (Value::Table(b), Value::Table(u)) => overlay(b, u, &field)?,
            (slot, value) => *slot = coerce(slot, value, &field)?,
        }
    }
    Ok(())
}

fn coerce(default: &Value, value: Value, field: &str) -> Result<Value, ScenarioError> {
    let wrong = |found: &Value| ScenarioError::WrongType {
        field: field.to_owned(),
        expected: type_name(default),
        found: type_name(found),
    };
    match (default, value) {
        (Value::Float(_), Value::Integer(i)) => Ok(Value::Float(i as f64)),
        (Value::Array(d), Value::Array(items)) => {
            let Some(first) = d.first() else {
                return Ok(Value::Array(items));
            };
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| coerce(first, item, &format!("{field}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        (d, v) if std::mem::discriminant(d) == std::mem::discriminant(&v) => Ok(v),
        (_, v) => Err(wrong(&v)),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a number",
        Value::Boolean(_) => "true or false",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "a list",
        Value::Table(_) => "a table",
    }
}
