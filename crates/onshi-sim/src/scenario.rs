//! The scenario: every parameter of a simulation, read from TOML and validated into typed values.
//!
//! The preset `national-2026-01` (`presets/national-2026-01.toml`) is also the table of
//! defaults: a scenario file is laid over it key by key, so a file names only what it changes.
//! A key the preset does not have is an unknown field; a value of the wrong type or out of range
//! is an error naming the field (`sites.clinic.night_on`).

use std::time::Duration;

use jiff::civil::{Date, Time};
use onshi_core::institution::InstitutionKind;
use onshi_core::schedule::Campaign;
use onshi_core::vendor::Vendor;
use serde::Deserialize;
use toml::{Table, Value};

#[cfg(test)]
mod tests;

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
    /// Share of sites per reader maker, in [`Vendor::ALL`] order.
    pub vendors: [f64; 5],
    pub staff: Staff,
    /// The morning "restart required" e-mail, when enabled.
    pub mail: Option<Mail>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    title: String,
    campaign: String,
    days: i64,
    seed: i64,
    distribution: RawDistribution,
    vendors: RawVendors,
    staff: RawStaff,
    mail: RawMail,
    sites: RawSites,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDistribution {
    max_concurrent_downloads: i64,
    egress_gbps: f64,
    poll_interval_seconds: i64,
    terminal_package_mb: f64,
    reader_package_mb: f64,
    terminal_install_minutes: f64,
    reader_install_minutes: f64,
    site_downlink_mbps: Vec<f64>,
    download_failure_share: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVendors {
    panasonic: f64,
    canon: f64,
    #[serde(rename = "usen-almex")]
    usen_almex: f64,
    #[serde(rename = "fujitsu-japan")]
    fujitsu_japan: f64,
    atlus: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStaff {
    next_morning: f64,
    on_error: f64,
    days_later: f64,
    on_error_delay_minutes: f64,
    days_later_mean_days: f64,
    call_share: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMail {
    enabled: bool,
    at: String,
    acts_share: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSites {
    hospital: RawSiteKind,
    clinic: RawSiteKind,
    dental: RawSiteKind,
    pharmacy: RawSiteKind,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSiteKind {
    count: i64,
    readers: Vec<f64>,
    always_on: f64,
    night_on: f64,
    auto_restart: f64,
    auto_restart_before_minutes: f64,
    opens: String,
    closes: String,
    saturday: bool,
    patients_per_day: f64,
    mynumber_share: f64,
}

fn invalid(field: &str, value: impl std::fmt::Display, why: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid {
        field: field.to_owned(),
        value: value.to_string(),
        why: why.into(),
    }
}

fn share(field: &str, v: f64) -> Result<f64, ScenarioError> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(invalid(field, v, "must be a share between 0 and 1"))
    }
}

fn positive(field: &str, v: f64, max: f64) -> Result<f64, ScenarioError> {
    if v > 0.0 && v <= max {
        Ok(v)
    } else {
        Err(invalid(
            field,
            v,
            format!("must be above 0 and at most {max}"),
        ))
    }
}

fn whole(field: &str, v: i64, min: i64, max: i64) -> Result<i64, ScenarioError> {
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(invalid(
            field,
            v,
            format!("must be between {min} and {max}"),
        ))
    }
}

/// Minutes (up to a week) as whole seconds.
fn minutes(field: &str, v: f64) -> Result<u32, ScenarioError> {
    if (0.0..=7.0 * 24.0 * 60.0).contains(&v) {
        Ok((v * 60.0).round() as u32)
    } else {
        Err(invalid(field, v, "must be between 0 and 10080 minutes"))
    }
}

/// Shares that must add up to 1 (to within rounding).
fn shares_sum_to_one(field: &str, values: &[f64]) -> Result<(), ScenarioError> {
    for (i, v) in values.iter().enumerate() {
        share(&format!("{field}[{i}]"), *v)?;
    }
    let sum: f64 = values.iter().sum();
    if (sum - 1.0).abs() > 1e-6 {
        return Err(invalid(
            field,
            format!("{values:?}"),
            format!("shares add up to {sum}, not 1"),
        ));
    }
    Ok(())
}

fn time_of_day(field: &str, v: &str) -> Result<Time, ScenarioError> {
    let ok = v.len() == 5 && v.as_bytes().get(2) == Some(&b':');
    v.parse::<Time>().ok().filter(|_| ok).ok_or_else(|| {
        invalid(
            field,
            format!("{v:?}"),
            "must be a time of day written HH:MM",
        )
    })
}

impl RawScenario {
    fn validate(
        self,
        start: toml::value::Datetime,
        load_campaign: impl FnOnce(&str) -> Result<Campaign, String>,
    ) -> Result<Scenario, ScenarioError> {
        if self.title.trim().is_empty() {
            return Err(invalid("title", "\"\"", "must not be empty"));
        }
        let campaign = load_campaign(&self.campaign).map_err(|why| ScenarioError::Campaign {
            value: self.campaign.clone(),
            why,
        })?;
        let start = match (start.date, start.time, start.offset) {
            (Some(d), None, None) => Date::new(d.year as i16, d.month as i8, d.day as i8).ok(),
            _ => None,
        }
        .ok_or_else(|| invalid("start", start, "must be a plain date such as 2026-01-19"))?;
        let days = whole("days", self.days, 1, i64::from(MAX_DAYS))? as u16;
        let seed = u64::try_from(self.seed)
            .map_err(|_| invalid("seed", self.seed, "must not be negative"))?;

        let d = self.distribution;
        let downlink = match d.site_downlink_mbps.as_slice() {
            [lo, hi] if *lo > 0.0 && lo <= hi && *hi <= 100_000.0 => (lo * 1e6, hi * 1e6),
            other => {
                return Err(invalid(
                    "distribution.site_downlink_mbps",
                    format!("{other:?}"),
                    "must be [lowest, highest] with 0 < lowest <= highest <= 100000",
                ));
            }
        };
        let distribution = Distribution {
            max_concurrent_downloads: whole(
                "distribution.max_concurrent_downloads",
                d.max_concurrent_downloads,
                1,
                10_000_000,
            )? as u32,
            egress_bps: positive("distribution.egress_gbps", d.egress_gbps, 100_000.0)? * 1e9,
            poll_interval: Duration::from_secs(whole(
                "distribution.poll_interval_seconds",
                d.poll_interval_seconds,
                1,
                6 * 3600,
            )? as u64),
            terminal_package_bytes: positive(
                "distribution.terminal_package_mb",
                d.terminal_package_mb,
                1e6,
            )? * 1e6,
            reader_package_bytes: positive(
                "distribution.reader_package_mb",
                d.reader_package_mb,
                1e6,
            )? * 1e6,
            terminal_install_secs: minutes(
                "distribution.terminal_install_minutes",
                d.terminal_install_minutes,
            )?,
            reader_install_secs: minutes(
                "distribution.reader_install_minutes",
                d.reader_install_minutes,
            )?,
            site_downlink_bps: downlink,
            download_failure_share: share(
                "distribution.download_failure_share",
                d.download_failure_share,
            )?,
        };
        if distribution.download_failure_share >= 1.0 {
            return Err(invalid(
                "distribution.download_failure_share",
                1,
                "must be below 1, or no download would ever succeed",
            ));
        }

        let v = self.vendors;
        let vendors = [v.panasonic, v.canon, v.usen_almex, v.fujitsu_japan, v.atlus];
        shares_sum_to_one("vendors", &vendors)?;
        debug_assert_eq!(Vendor::ALL[2], Vendor::UsenAlmex);

        let s = self.staff;
        shares_sum_to_one(
            "staff (next_morning, on_error, days_later)",
            &[s.next_morning, s.on_error, s.days_later],
        )?;
        let staff = Staff {
            next_morning: s.next_morning,
            on_error: s.on_error,
            days_later: s.days_later,
            on_error_delay_secs: minutes("staff.on_error_delay_minutes", s.on_error_delay_minutes)?,
            days_later_mean_days: {
                let m = s.days_later_mean_days;
                if (1.0..=60.0).contains(&m) {
                    m
                } else {
                    return Err(invalid(
                        "staff.days_later_mean_days",
                        m,
                        "must be between 1 and 60",
                    ));
                }
            },
            call_share: share("staff.call_share", s.call_share)?,
        };

        let mail = {
            let m = self.mail;
            let at = time_of_day("mail.at", &m.at)?;
            let acts_share = share("mail.acts_share", m.acts_share)?;
            m.enabled.then_some(Mail { at, acts_share })
        };

        let sites = [
            (InstitutionKind::Hospital, self.sites.hospital),
            (InstitutionKind::Clinic, self.sites.clinic),
            (InstitutionKind::Dental, self.sites.dental),
            (InstitutionKind::Pharmacy, self.sites.pharmacy),
        ]
        .map(|(kind, raw)| raw.validate(kind));
        let [h, c, dn, p] = sites;
        let sites = [h?, c?, dn?, p?];
        if sites.iter().all(|k| k.count == 0) {
            return Err(invalid(
                "sites.*.count",
                0,
                "the fleet needs at least one site",
            ));
        }

        Ok(Scenario {
            title: self.title,
            campaign_ref: self.campaign,
            campaign,
            start,
            days,
            seed,
            distribution,
            vendors,
            staff,
            mail,
            sites,
        })
    }
}

impl RawSiteKind {
    fn validate(self, kind: InstitutionKind) -> Result<SiteKind, ScenarioError> {
        let f = |name: &str| format!("sites.{}.{name}", kind.slug());
        if self.readers.is_empty() || self.readers.len() > MAX_READERS + 1 {
            return Err(invalid(
                &f("readers"),
                format!("{:?}", self.readers),
                "must list the shares of sites with 0, 1, 2, 3 readers (1 to 4 values)",
            ));
        }
        shares_sum_to_one(&f("readers"), &self.readers)?;
        let opens = time_of_day(&f("opens"), &self.opens)?;
        let closes = time_of_day(&f("closes"), &self.closes)?;
        if closes <= opens {
            return Err(invalid(
                &f("closes"),
                format!("{:?}", self.closes),
                format!("must be after opens ({})", self.opens),
            ));
        }
        let before = minutes(
            &f("auto_restart_before_minutes"),
            self.auto_restart_before_minutes,
        )?;
        if before > 12 * 3600 {
            return Err(invalid(
                &f("auto_restart_before_minutes"),
                self.auto_restart_before_minutes,
                "must be at most 720",
            ));
        }
        let patients = self.patients_per_day;
        if !(0.0..=100_000.0).contains(&patients) {
            return Err(invalid(
                &f("patients_per_day"),
                patients,
                "must be between 0 and 100000",
            ));
        }
        Ok(SiteKind {
            kind,
            count: whole(&f("count"), self.count, 0, i64::from(MAX_SITES_PER_KIND))? as u32,
            readers: self.readers,
            always_on: share(&f("always_on"), self.always_on)?,
            night_on: share(&f("night_on"), self.night_on)?,
            auto_restart: share(&f("auto_restart"), self.auto_restart)?,
            auto_restart_before_secs: before,
            opens,
            closes,
            saturday: self.saturday,
            patients_per_day: patients,
            mynumber_share: share(&f("mynumber_share"), self.mynumber_share)?,
        })
    }
}
