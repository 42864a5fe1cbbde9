//! The campaign schedule: the nights on which the update is distributed, the nights excluded,
//! and the all-day catch-up phase (the notice: 2026年1月19日（月）～30日（金）（ただし25日（日）を
//! 除く）各日20時～翌日5時; 1月31日（土）以降、終日配信).
//!
//! The schedule is data (a TOML campaign file), read in the campaign's own time zone and turned
//! into UTC instants once, so every question ("may we distribute now?") is a binary search.

use std::fmt;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

/// The campaign file of the 2026-01 notice, exactly as DESIGN.md §4 gives it.
pub const PRESET_2026_01: &str = r#"id = "2026-01"
title = "オンライン資格確認等システム メンテナンス（2026年1月）"
timezone = "Asia/Tokyo"

[nights]
first = 2026-01-19
last = 2026-01-30
except = [2026-01-25]
opens = "20:00"
closes = "05:00"          # closes <= opens means the next morning

[catch_up]
all_day_from = 2026-01-31 # 00:00 local time

[billing_notices]         # the notice: 1月にオンライン請求時の画面で通知
from = 2026-01-01
until = 2026-01-31        # inclusive

# [completion_check]      # the official site for checking the install, once announced
# url = "https://…"       # (the notice: 【サイトのURLを記載予定】)
# procedure = "…"
"#;

/// The presets `preset:NAME` refers to.
pub const PRESETS: [(&str, &str); 1] = [("2026-01", PRESET_2026_01)];

/// The campaign file of a built-in preset (`2026-01`).
pub fn preset_text(name: &str) -> Result<&'static str, ScheduleError> {
    PRESETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
        .ok_or_else(|| ScheduleError::UnknownPreset(name.to_owned()))
}

/// More nights than this in one campaign is taken for a typo in `first` or `last`.
pub const MAX_NIGHTS: i32 = 3660;

/// Why a campaign file is not a usable schedule. Each message names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("campaign file is not valid TOML: {0}")]
    Toml(String),
    #[error("unknown preset {0:?}: known presets are 2026-01")]
    UnknownPreset(String),
    #[error("id {0:?} must be 1–64 characters of letters, digits, '.', '_' or '-'")]
    BadId(String),
    #[error("title must not be empty")]
    EmptyTitle,
    #[error("timezone {0:?} is not a known IANA time zone (for example Asia/Tokyo)")]
    UnknownTimeZone(String),
    #[error("{field} = {value:?} is not a time of day written HH:MM (00:00–23:59)")]
    BadTime { field: &'static str, value: String },
    #[error("{field} = {value} must be a plain date such as 2026-01-19, without a time or offset")]
    NotADate { field: &'static str, value: String },
    #[error("nights.last ({last}) is before nights.first ({first})")]
    LastBeforeFirst { first: Date, last: Date },
    #[error("nights.first..nights.last spans {0} nights, more than the {MAX_NIGHTS} allowed")]
    TooManyNights(i32),
    #[error("nights.except contains {0}, which is not between nights.first and nights.last")]
    ExceptOutsideNights(Date),
    #[error("catch_up.all_day_from ({from}) is before the first night ({first})")]
    CatchUpBeforeFirstNight { from: Date, first: Date },
    #[error(
        "the schedule has no distribution window: every night is excluded (or missing) and there is no [catch_up]"
    )]
    Empty,
    #[error("billing_notices.until ({until}) is before billing_notices.from ({from})")]
    BillingUntilBeforeFrom { from: Date, until: Date },
    #[error("completion_check.url = {0:?} must be an https:// address")]
    BadCompletionUrl(String),
    #[error("completion_check.procedure must not be empty")]
    EmptyCompletionProcedure,
    #[error("{0} cannot be placed on the time line of the campaign's time zone")]
    OutOfRange(String),
    #[error(
        "silent_after_hours = {0} must be a whole number of hours from 1 to {MAX_SILENT_AFTER_HOURS}"
    )]
    BadSilentAfter(i64),
    #[error(transparent)]
    Waves(#[from] crate::waves::WavesError),
    #[error(
        "rollback_of = {0:?} must be a campaign id (1–64 characters of letters, digits, '.', '_' or '-')"
    )]
    BadRollbackOf(String),
    #[error(
        "a campaign with rollback_of has no [waves]: it goes only to devices that had the bad release"
    )]
    RollbackWithWaves,
}

/// The longest `silent_after_hours` a campaign file may set (30 days).
pub const MAX_SILENT_AFTER_HOURS: i64 = 720;

/// One night's distribution window, `[opens, closes)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The date the night starts on, in the campaign's zone (the night of the 24th runs into
    /// the 25th).
    pub night: Date,
    pub opens: Timestamp,
    pub closes: Timestamp,
}

impl Window {
    /// Whether `at` lies inside the half-open window.
    pub fn contains(&self, at: Timestamp) -> bool {
        self.opens <= at && at < self.closes
    }
}

/// Where the campaign stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Before the first window opens.
    Before,
    /// Inside a night window (wins over catch-up where the two overlap).
    Night,
    /// Between two windows, or between the last night and the catch-up phase.
    Between,
    /// The all-day catch-up phase (終日配信), open until the operator closes the campaign.
    CatchUp,
    /// After the last night of a campaign that has no catch-up phase: nothing opens again.
    After,
}

impl Phase {
    /// The machine name: `before`, `night`, `between`, `catch_up`, `after`.
    pub fn slug(self) -> &'static str {
        match self {
            Self::Before => "before",
            Self::Night => "night",
            Self::Between => "between",
            Self::CatchUp => "catch_up",
            Self::After => "after",
        }
    }

    /// The phase in Japanese for pages.
    pub fn label_ja(self) -> &'static str {
        match self {
            Self::Before => "配信開始前",
            Self::Night => "夜間配信中",
            Self::Between => "配信時間外",
            Self::CatchUp => "終日配信中",
            Self::After => "配信終了",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

/// The answer to "may we distribute at this instant?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub at: Timestamp,
    pub distributing: bool,
    pub phase: Phase,
    /// The night whose window is open (only in [`Phase::Night`]).
    pub night: Option<Date>,
    /// When the current window or the catch-up phase opened.
    pub opened_at: Option<Timestamp>,
    /// When the current night window closes (never in catch-up).
    pub closes_at: Option<Timestamp>,
    /// When not distributing, the next instant distribution starts.
    pub next_opening: Option<Timestamp>,
}

/// [`Status`] as the `onshi schedule --at` JSON contract writes it: RFC 3339 instants with the
/// campaign's offset at that instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusReport {
    pub at: String,
    pub distributing: bool,
    pub phase: Phase,
    pub night: Option<String>,
    pub opened_at: Option<String>,
    pub closes_at: Option<String>,
    pub next_opening: Option<String>,
}

/// A validated campaign schedule. Only [`Campaign::parse`] and [`Campaign::preset`] make one.
#[derive(Debug, Clone)]
pub struct Campaign {
    id: String,
    title: String,
    timezone_name: String,
    tz: TimeZone,
    opens: Option<Time>,
    closes: Option<Time>,
    excluded: Vec<Date>,
    windows: Vec<Window>,
    catch_up_from: Option<Timestamp>,
    catch_up_date: Option<Date>,
    /// How long without a check-in makes a terminal silent (`silent_after_hours`, see
    /// [`crate::silence`]).
    silent_after: jiff::SignedDuration,
    /// The dates (inclusive) on which the online-billing screen shows notices, and the instants
    /// `[from, until + 1 day)` they make.
    billing: Option<(Date, Date, Timestamp, Timestamp)>,
    completion_check: Option<CompletionCheck>,
    /// The optional `[waves]` plan (段階配信, [`crate::waves`]).
    waves: Option<crate::waves::WavePlan>,
    /// The campaign this one rolls back (切り戻し, [`crate::waves::rollback`]): it offers a
    /// rollback release to the devices that had the bad one, and takes in no device later.
    rollback_of: Option<String>,
    /// Continuous spells of distribution: windows merged where they touch, and the catch-up
    /// phase (open-ended) with every window it overlaps. Sorted and disjoint.
    runs: Vec<Run>,
}

#[derive(Debug, Clone, Copy)]
struct Run {
    start: Timestamp,
    end: Option<Timestamp>,
}

/// Merges the windows and the catch-up start into sorted, disjoint spells.
fn merge_runs(windows: &[Window], catch_up_from: Option<Timestamp>) -> Vec<Run> {
    let mut spells: Vec<Run> = windows
        .iter()
        .map(|w| Run {
            start: w.opens,
            end: Some(w.closes),
        })
        .chain(catch_up_from.map(|start| Run { start, end: None }))
        .collect();
    spells.sort_by_key(|r| r.start);
    let mut runs: Vec<Run> = Vec::with_capacity(spells.len());
    for spell in spells {
        match runs.last_mut() {
            Some(last) if last.end.is_none_or(|end| spell.start <= end) => {
                last.end = last.end.zip(spell.end).map(|(a, b)| a.max(b));
            }
            _ => runs.push(spell),
        }
    }
    runs
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCampaign {
    id: String,
    title: String,
    timezone: String,
    nights: Option<RawNights>,
    catch_up: Option<RawCatchUp>,
    silent_after_hours: Option<i64>,
    billing_notices: Option<RawBilling>,
    completion_check: Option<CompletionCheck>,
    waves: Option<crate::waves::RawWaves>,
    rollback_of: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBilling {
    from: toml::value::Datetime,
    until: toml::value::Datetime,
}

/// The official site where staff check that the update installed (the notice: 更新アプリケー
/// ションのインストールが完了したかどうかは、下記サイトの手順をご参照ください).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CompletionCheck {
    /// The site's address (https).
    pub url: String,
    /// The procedure in a few words, shown beside the link.
    pub procedure: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNights {
    first: toml::value::Datetime,
    last: toml::value::Datetime,
    #[serde(default)]
    except: Vec<toml::value::Datetime>,
    opens: String,
    closes: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatchUp {
    all_day_from: toml::value::Datetime,
}

impl Campaign {
    /// Parses and validates a campaign file (DESIGN.md §4).
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        let raw: RawCampaign =
            toml::from_str(text).map_err(|e| ScheduleError::Toml(e.to_string().trim().into()))?;
        if !valid_id(&raw.id) {
            return Err(ScheduleError::BadId(raw.id));
        }
        if let Some(of) = &raw.rollback_of {
            if !valid_id(of) {
                return Err(ScheduleError::BadRollbackOf(of.clone()));
            }
            if raw.waves.is_some() {
                return Err(ScheduleError::RollbackWithWaves);
            }
        }
        if raw.title.trim().is_empty() {
            return Err(ScheduleError::EmptyTitle);
        }
        let tz = TimeZone::get(&raw.timezone)
            .map_err(|_| ScheduleError::UnknownTimeZone(raw.timezone.clone()))?;

        let silent_after = match raw.silent_after_hours {
            None => crate::silence::DEFAULT_AFTER,
            Some(h) if (1..=MAX_SILENT_AFTER_HOURS).contains(&h) => {
                jiff::SignedDuration::from_hours(h)
            }
            Some(h) => return Err(ScheduleError::BadSilentAfter(h)),
        };
        let mut campaign = Campaign {
            id: raw.id,
            title: raw.title,
            timezone_name: raw.timezone,
            tz,
            opens: None,
            closes: None,
            excluded: Vec::new(),
            windows: Vec::new(),
            catch_up_from: None,
            catch_up_date: None,
            silent_after,
            billing: None,
            completion_check: None,
            waves: raw.waves.map(crate::waves::RawWaves::parse).transpose()?,
            rollback_of: raw.rollback_of,
            runs: Vec::new(),
        };
        let mut first_night = None;
        if let Some(nights) = raw.nights {
            let first = toml_date("nights.first", &nights.first)?;
            let last = toml_date("nights.last", &nights.last)?;
            let opens = parse_hh_mm("nights.opens", &nights.opens)?;
            let closes = parse_hh_mm("nights.closes", &nights.closes)?;
            if last < first {
                return Err(ScheduleError::LastBeforeFirst { first, last });
            }
            let span = first
                .until(last)
                .map_err(|e| ScheduleError::OutOfRange(e.to_string()))?
                .get_days()
                + 1;
            if span > MAX_NIGHTS {
                return Err(ScheduleError::TooManyNights(span));
            }
            let mut excluded = nights
                .except
                .iter()
                .map(|d| toml_date("nights.except", d))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(&outside) = excluded.iter().find(|d| **d < first || **d > last) {
                return Err(ScheduleError::ExceptOutsideNights(outside));
            }
            excluded.sort();
            excluded.dedup();
            campaign.windows = night_windows(&campaign.tz, first, span, opens, closes, &excluded)?;
            campaign.opens = Some(opens);
            campaign.closes = Some(closes);
            campaign.excluded = excluded;
            first_night = Some(first);
        }
        if let Some(catch_up) = raw.catch_up {
            let from = toml_date("catch_up.all_day_from", &catch_up.all_day_from)?;
            if let Some(first) = first_night.filter(|first| from < *first) {
                return Err(ScheduleError::CatchUpBeforeFirstNight { from, first });
            }
            campaign.catch_up_from = Some(local_instant(&campaign.tz, from.at(0, 0, 0, 0))?);
            campaign.catch_up_date = Some(from);
        }
        if let Some(billing) = raw.billing_notices {
            let from = toml_date("billing_notices.from", &billing.from)?;
            let until = toml_date("billing_notices.until", &billing.until)?;
            if until < from {
                return Err(ScheduleError::BillingUntilBeforeFrom { from, until });
            }
            let end = until
                .tomorrow()
                .map_err(|e| ScheduleError::OutOfRange(e.to_string()))?;
            campaign.billing = Some((
                from,
                until,
                local_instant(&campaign.tz, from.at(0, 0, 0, 0))?,
                local_instant(&campaign.tz, end.at(0, 0, 0, 0))?,
            ));
        }
        if let Some(check) = raw.completion_check {
            let url = check.url.trim();
            let host = url.strip_prefix("https://").unwrap_or("");
            if host.is_empty() || url.chars().any(char::is_whitespace) {
                return Err(ScheduleError::BadCompletionUrl(check.url));
            }
            if check.procedure.trim().is_empty() {
                return Err(ScheduleError::EmptyCompletionProcedure);
            }
            campaign.completion_check = Some(CompletionCheck {
                url: url.to_owned(),
                procedure: check.procedure.trim().to_owned(),
            });
        }
        if campaign.windows.is_empty() && campaign.catch_up_from.is_none() {
            return Err(ScheduleError::Empty);
        }
        campaign.runs = merge_runs(&campaign.windows, campaign.catch_up_from);
        Ok(campaign)
    }

    /// A built-in campaign by name (`2026-01`).
    pub fn preset(name: &str) -> Result<Self, ScheduleError> {
        Self::parse(preset_text(name)?)
    }

    /// How long a terminal may go without checking in before it counts as silent
    /// (`silent_after_hours`, by default [`crate::silence::DEFAULT_AFTER`]).
    pub fn silent_after(&self) -> jiff::SignedDuration {
        self.silent_after
    }

    /// The dates (inclusive, in the campaign's zone) on which the online-billing screen shows
    /// notices (オンライン請求時の画面で通知); `None`: no period was set, they show throughout.
    pub fn billing_period(&self) -> Option<(Date, Date)> {
        self.billing.map(|(from, until, _, _)| (from, until))
    }

    /// Whether the online-billing screen shows notices at `at`.
    pub fn billing_open(&self, at: Timestamp) -> bool {
        self.billing
            .is_none_or(|(_, _, from, end)| from <= at && at < end)
    }

    /// The campaign's waves and their gate, when the file has a `[waves]` table.
    pub fn waves(&self) -> Option<&crate::waves::WavePlan> {
        self.waves.as_ref()
    }

    /// The campaign this one rolls back, when it is a rollback campaign.
    pub fn rollback_of(&self) -> Option<&str> {
        self.rollback_of.as_deref()
    }

    /// The official completion-check site, once the campaign file names it.
    pub fn completion_check(&self) -> Option<&CompletionCheck> {
        self.completion_check.as_ref()
    }

    /// The campaign id, e.g. `2026-01`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The title shown to people.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The IANA name of the campaign's time zone.
    pub fn timezone_name(&self) -> &str {
        &self.timezone_name
    }

    /// The campaign's time zone.
    pub fn timezone(&self) -> &TimeZone {
        &self.tz
    }

    /// Every night window, in order. A window that a daylight-saving jump leaves empty is not
    /// listed.
    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// The nights excluded from the schedule, sorted.
    pub fn excluded(&self) -> &[Date] {
        &self.excluded
    }

    /// The nightly opening and closing times, as written in the file.
    pub fn night_hours(&self) -> Option<(Time, Time)> {
        self.opens.zip(self.closes)
    }

    /// When the all-day catch-up phase starts, if the campaign has one.
    pub fn catch_up_from(&self) -> Option<Timestamp> {
        self.catch_up_from
    }

    /// The local date the catch-up phase starts on.
    pub fn catch_up_date(&self) -> Option<Date> {
        self.catch_up_date
    }

    /// The civil date and time in the campaign's zone.
    pub fn civil(&self, at: Timestamp) -> DateTime {
        self.tz.to_datetime(at)
    }

    /// Whether the update may be distributed at `at`.
    pub fn is_distributing(&self, at: Timestamp) -> bool {
        let idx = self.runs.partition_point(|r| r.start <= at);
        idx.checked_sub(1)
            .is_some_and(|i| self.runs[i].end.is_none_or(|end| at < end))
    }

    /// The night window containing `at`, if any.
    pub fn window_at(&self, at: Timestamp) -> Option<&Window> {
        let idx = self.windows.partition_point(|w| w.opens <= at);
        idx.checked_sub(1)
            .map(|i| &self.windows[i])
            .filter(|w| w.contains(at))
    }

    /// The first instant after `at` at which distribution starts after a pause. Back-to-back
    /// windows (24-hour nights) and a catch-up phase that begins inside a night count as one
    /// continuous spell. `None` when distribution never starts again.
    pub fn next_opening(&self, at: Timestamp) -> Option<Timestamp> {
        let idx = self.runs.partition_point(|r| r.start <= at);
        self.runs.get(idx).map(|r| r.start)
    }

    /// The status at `at`.
    pub fn status(&self, at: Timestamp) -> Status {
        if let Some(w) = self.window_at(at) {
            return Status {
                at,
                distributing: true,
                phase: Phase::Night,
                night: Some(w.night),
                opened_at: Some(w.opens),
                closes_at: Some(w.closes),
                next_opening: None,
            };
        }
        if let Some(from) = self.catch_up_from.filter(|c| at >= *c) {
            return Status {
                at,
                distributing: true,
                phase: Phase::CatchUp,
                night: None,
                opened_at: Some(from),
                closes_at: None,
                next_opening: None,
            };
        }
        let next_opening = self.next_opening(at);
        let phase = if self.runs.first().is_some_and(|r| at < r.start) {
            Phase::Before
        } else if next_opening.is_none() {
            Phase::After
        } else {
            Phase::Between
        };
        Status {
            at,
            distributing: false,
            phase,
            night: None,
            opened_at: None,
            closes_at: None,
            next_opening,
        }
    }

    /// Writes an instant as RFC 3339 with the campaign zone's offset at that instant.
    pub fn rfc3339(&self, at: Timestamp) -> String {
        at.display_with_offset(self.tz.to_offset(at)).to_string()
    }

    /// The status at `at` in the shape of the `onshi schedule --at` JSON contract.
    pub fn report(&self, at: Timestamp) -> StatusReport {
        let s = self.status(at);
        StatusReport {
            at: self.rfc3339(s.at),
            distributing: s.distributing,
            phase: s.phase,
            night: s.night.map(|d| d.to_string()),
            opened_at: s.opened_at.map(|t| self.rfc3339(t)),
            closes_at: s.closes_at.map(|t| self.rfc3339(t)),
            next_opening: s.next_opening.map(|t| self.rfc3339(t)),
        }
    }
}

/// The windows of `span` consecutive nights from `first`, skipping `excluded` (sorted).
fn night_windows(
    tz: &TimeZone,
    first: Date,
    span: i32,
    opens: Time,
    closes: Time,
    excluded: &[Date],
) -> Result<Vec<Window>, ScheduleError> {
    let mut windows = Vec::with_capacity(usize::try_from(span).unwrap_or(0));
    let mut night = first;
    for i in 0..span {
        if i > 0 {
            night = night
                .tomorrow()
                .map_err(|e| ScheduleError::OutOfRange(e.to_string()))?;
        }
        if excluded.binary_search(&night).is_ok() {
            continue;
        }
        // closes <= opens means the next morning; closes == opens is a 24-hour window.
        let close_day = if closes <= opens {
            night
                .tomorrow()
                .map_err(|e| ScheduleError::OutOfRange(e.to_string()))?
        } else {
            night
        };
        let window = Window {
            night,
            opens: local_instant(tz, night.to_datetime(opens))?,
            closes: local_instant(tz, close_day.to_datetime(closes))?,
        };
        // A daylight-saving jump can swallow a short window whole (02:30–03:00 on a spring-
        // forward night); such a window distributes nothing and is left out.
        if window.opens < window.closes {
            windows.push(window);
        }
    }
    Ok(windows)
}

/// The instant of a local date-time in `tz`. A time skipped by a daylight-saving jump maps to
/// the instant after the jump, a repeated time to its first occurrence (the usual
/// "compatible" rule, as in RFC 5545 and Temporal).
fn local_instant(tz: &TimeZone, dt: DateTime) -> Result<Timestamp, ScheduleError> {
    tz.to_ambiguous_timestamp(dt)
        .compatible()
        .map_err(|_| ScheduleError::OutOfRange(dt.to_string()))
}

fn toml_date(field: &'static str, value: &toml::value::Datetime) -> Result<Date, ScheduleError> {
    let not_a_date = || ScheduleError::NotADate {
        field,
        value: value.to_string(),
    };
    match (value.date, value.time, value.offset) {
        (Some(d), None, None) => {
            Date::new(d.year as i16, d.month as i8, d.day as i8).map_err(|_| not_a_date())
        }
        _ => Err(not_a_date()),
    }
}

/// A campaign id: 1–64 characters of letters, digits, '.', '_' or '-'.
fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn parse_hh_mm(field: &'static str, value: &str) -> Result<Time, ScheduleError> {
    let bad = || ScheduleError::BadTime {
        field,
        value: value.to_owned(),
    };
    let (h, m) = value.split_once(':').ok_or_else(bad)?;
    let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(h) || !two_digits(m) {
        return Err(bad());
    }
    let (h, m): (i8, i8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    Time::new(h, m, 0, 0).map_err(|_| bad())
}
