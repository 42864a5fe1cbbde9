//! The scenario as TOML has it, and its validation into [`Scenario`]: ranges, shares that sum
//! to 1, times of day, each error naming its field.

use std::time::Duration;

use jiff::civil::{Date, Time};
use onshi_core::institution::InstitutionKind;
use onshi_core::schedule::Campaign;
use onshi_core::vendor::Vendor;
use serde::Deserialize;

use super::{
    Deltas, Distribution, MAX_DAYS, MAX_READERS, MAX_SITES_PER_KIND, Mail, Scenario, ScenarioError,
    SiteKind, Staff,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScenario {
    title: String,
    campaign: String,
    days: i64,
    seed: i64,
    distribution: RawDistribution,
    vendors: RawVendors,
    prefectures: RawPrefectures,
    staff: RawStaff,
    mail: RawMail,
    fault: RawFault,
    deltas: RawDeltas,
    sites: RawSites,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeltas {
    base_share: f64,
    ratio: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    unhealthy_after_restart_share: f64,
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
struct RawPrefectures {
    weights: Vec<i64>,
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

pub(super) fn invalid(
    field: &str,
    value: impl std::fmt::Display,
    why: impl Into<String>,
) -> ScenarioError {
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
    pub(super) fn validate(
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

        let prefectures = self.prefectures.validate()?;

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
            prefectures,
            staff,
            mail,
            unhealthy_after_restart: share(
                "fault.unhealthy_after_restart_share",
                self.fault.unhealthy_after_restart_share,
            )?,
            deltas: Deltas {
                base_share: share("deltas.base_share", self.deltas.base_share)?,
                ratio: positive("deltas.ratio", self.deltas.ratio, 1.0)?,
            },
            sites,
        })
    }
}

impl RawPrefectures {
    /// The weights as shares, one per prefecture in JIS order.
    fn validate(self) -> Result<[f64; 47], ScenarioError> {
        let field = "prefectures.weights";
        let weights: [i64; 47] = self.weights.as_slice().try_into().map_err(|_| {
            invalid(
                field,
                format!("a list of {}", self.weights.len()),
                "must list 47 weights, one per prefecture in JIS order (北海道 … 沖縄県)",
            )
        })?;
        for (i, w) in weights.iter().enumerate() {
            whole(&format!("{field}[{i}]"), *w, 0, 1_000_000_000)?;
        }
        let total: i64 = weights.iter().sum();
        if total == 0 {
            return Err(invalid(
                field,
                0,
                "at least one prefecture needs a weight above 0",
            ));
        }
        Ok(weights.map(|w| w as f64 / total as f64))
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
