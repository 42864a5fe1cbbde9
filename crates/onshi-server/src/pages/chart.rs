//! The dashboard's chart of counts per state over time: a stacked area chart drawn as inline
//! SVG (no chart library), with the night windows shaded behind it, hours along the bottom and
//! a line at "now". While a window is open the time axis runs to its close, so the operator
//! sees how much of the night is left.
//!
//! Two views: every device (`View::All`, from zero to the fleet), and the devices not yet
//! applied (`View::Remaining`), scaled to twice what remains now so the last few percent of a
//! night fill the chart instead of being a hairline. Each is drawn twice — wide for a desktop,
//! taller with bigger labels for a phone — and the CSS shows the one that fits.

use std::fmt::Write as _;

use jiff::{SignedDuration, Timestamp};
use maud::{Markup, PreEscaped, html};
use onshi_core::jst;
use onshi_core::lang::Lang;
use onshi_core::schedule::Campaign;

use super::groups::Group;
use crate::history::Sample;

const NIGHT: &str = "#5b8fd0";
const CATCH_UP: &str = "#f0a83c";
const NOW: &str = "#b3261e";
const INK: &str = "#4a525c";

/// Which devices the chart stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Every targeted device, zero to the fleet.
    All,
    /// The devices not yet applied, up to twice as many as remain now.
    Remaining,
}

impl View {
    pub fn of(param: Option<&str>) -> View {
        match param {
            Some("remaining") => View::Remaining,
            _ => View::All,
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            View::All => "all",
            View::Remaining => "remaining",
        }
    }

    fn groups(self) -> &'static [Group] {
        match self {
            View::All => &Group::CHART,
            View::Remaining => &Group::CHART[1..],
        }
    }
}

/// The size of one drawing, in the SVG's own units.
struct Frame {
    w: f64,
    h: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    font: f64,
    /// At most this many time labels.
    labels: i64,
}

const WIDE: Frame = Frame {
    w: 800.0,
    h: 260.0,
    left: 56.0,
    right: 12.0,
    top: 10.0,
    bottom: 34.0,
    font: 11.0,
    labels: 12,
};

/// Drawn 360 wide, shown about 360 px wide on a phone: labels near their nominal size.
const NARROW: Frame = Frame {
    w: 360.0,
    h: 300.0,
    left: 44.0,
    right: 8.0,
    top: 10.0,
    bottom: 36.0,
    font: 12.0,
    labels: 4,
};

/// The chart of `samples` (oldest first) up to `now`; a note when there are fewer than two.
pub fn render(
    samples: &[Sample],
    schedule: &Campaign,
    now: Timestamp,
    view: View,
    lang: Lang,
) -> Markup {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return no_data(lang);
    };
    if samples.len() < 2 || first.at == last.at {
        return no_data(lang);
    }
    let end = axis_end(schedule, last.at.max(now));
    let top = match view {
        View::All => samples
            .iter()
            .map(|s| s.states.iter().sum::<u64>())
            .max()
            .unwrap_or(0),
        View::Remaining => remaining(last).saturating_mul(2),
    }
    .max(1);
    let title = match view {
        View::All => lang.pick("状態別の台数の推移", "Devices per state over time"),
        View::Remaining => lang.pick(
            "まだ適用されていない機器の推移",
            "Devices not yet applied, over time",
        ),
    };
    let drawn = |f: &Frame| draw(f, samples, schedule, first.at, end, now, top, view, lang);
    html! {
        figure id="chart" data-view=(view.slug()) style="margin:0" {
            svg class="chart-wide" viewBox={ "0 0 " (WIDE.w) " " (WIDE.h) } width="100%" role="img" aria-label=(title) {
                (PreEscaped(drawn(&WIDE)))
            }
            svg class="chart-narrow" viewBox={ "0 0 " (NARROW.w) " " (NARROW.h) } width="100%" role="img" aria-label=(title) {
                (PreEscaped(drawn(&NARROW)))
            }
            figcaption class="legend" {
                @for g in view.groups().iter().rev() {
                    span class="key" { span class="swatch" style={ "background:" (g.colour()) } {} (g.label(lang)) }
                }
                span class="key" { span class="swatch line" style={ "background:" (NIGHT) } {} (lang.pick("夜間の配信時間", "night windows")) }
                span class="key" { span class="swatch line" style={ "background:" (CATCH_UP) } {} (lang.pick("終日配信", "catch-up")) }
                span class="key" { span class="swatch now" style={ "background:" (NOW) } {} (lang.pick("現在", "now")) }
                @if view == View::Remaining {
                    br;
                    span class="muted" { (lang.pick(
                        "縦軸は現在の残りの2倍まで（それより多かった時間帯は上端で切れています）。",
                        "The scale runs to twice what remains now (earlier, larger counts are cut at the top)."
                    )) }
                }
                br;
                span class="muted" { (lang.pick(
                    "サーバー起動後に記録した値です（再起動すると最初からになります）。",
                    "Sampled since the server started (a restart starts over)."
                )) }
            }
        }
    }
}

/// Devices not yet applied in a sample.
fn remaining(s: &Sample) -> u64 {
    Group::CHART[1..].iter().map(|g| g.of_sample(s)).sum()
}

/// Where the time axis ends: the close of the window open at `at`, else `at`.
fn axis_end(schedule: &Campaign, at: Timestamp) -> Timestamp {
    schedule
        .windows()
        .iter()
        .find(|w| w.opens <= at && at < w.closes)
        .map_or(at, |w| w.closes)
}

#[allow(clippy::too_many_arguments)]
fn draw(
    f: &Frame,
    samples: &[Sample],
    schedule: &Campaign,
    t0: Timestamp,
    t1: Timestamp,
    now: Timestamp,
    top: u64,
    view: View,
    lang: Lang,
) -> String {
    let span = (t1.as_second() - t0.as_second()).max(1) as f64;
    let max = top as f64;
    let x = |t: Timestamp| {
        f.left + (t.as_second() - t0.as_second()) as f64 / span * (f.w - f.left - f.right)
    };
    let y = |v: f64| f.top + (1.0 - (v / max).min(1.0)) * (f.h - f.top - f.bottom);
    let bottom = f.h - f.bottom;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<rect x="0" y="0" width="{}" height="{}" fill="#fff"/>"##,
        f.w, f.h
    );
    // Night windows and the catch-up phase as a strip under the plot.
    for w in schedule.windows() {
        if w.closes <= t0 || w.opens >= t1 {
            continue;
        }
        let (a, b) = (x(w.opens.max(t0)), x(w.closes.min(t1)));
        let _ = write!(
            svg,
            r##"<rect x="{a:.1}" y="{:.1}" width="{:.1}" height="5" fill="{NIGHT}"/>"##,
            bottom + 1.0,
            (b - a).max(0.5)
        );
    }
    if let Some(from) = schedule.catch_up_from().filter(|f| *f < t1) {
        let a = x(from.max(t0));
        let _ = write!(
            svg,
            r##"<rect x="{a:.1}" y="{:.1}" width="{:.1}" height="5" fill="{CATCH_UP}"/>"##,
            bottom + 1.0,
            (f.w - f.right - a).max(0.5)
        );
    }
    // Stacked areas, bottom up, drawn as steps: a count holds until the next sample shows it
    // changed (nothing is known in between).
    let xs: Vec<f64> = samples.iter().map(|s| x(s.at)).collect();
    let mut below = vec![0.0f64; samples.len()];
    for group in view.groups() {
        let above: Vec<f64> = samples
            .iter()
            .zip(&below)
            .map(|(s, b)| b + group.of_sample(s) as f64)
            .collect();
        let mut d = String::new();
        for (i, (px, py)) in steps(&xs, &above).into_iter().enumerate() {
            let _ = write!(d, "{}{px:.1},{:.1} ", if i == 0 { 'M' } else { 'L' }, y(py));
        }
        for (px, py) in steps(&xs, &below).into_iter().rev() {
            let _ = write!(d, "L{px:.1},{:.1} ", y(py));
        }
        let _ = write!(
            svg,
            r#"<path d="{}Z" fill="{}" fill-opacity="0.85"><title>{}</title></path>"#,
            d.trim_end(),
            group.colour(),
            group.label(lang)
        );
        below = above;
    }
    // Counts up the side.
    for v in [0.0, max / 2.0, max] {
        let _ = write!(
            svg,
            r##"<line x1="{}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#c5ccd4" stroke-width="0.5"/><text x="{:.1}" y="{:.1}" font-size="{}" text-anchor="end" fill="{INK}">{}</text>"##,
            f.left,
            f.w - f.right,
            y(v),
            y(v),
            f.left - 4.0,
            y(v) + f.font / 3.0,
            f.font,
            v.round() as u64
        );
    }
    // Hours along the bottom: a step of whole hours that gives at most `labels` labels, each
    // at its hour in Japan time; at midnight the date.
    let hours = ((t1.as_second() - t0.as_second()) / 3600).max(1);
    let step = [1i64, 2, 3, 6, 12, 24, 48, 72, 168]
        .into_iter()
        .find(|s| hours / s < f.labels)
        .unwrap_or(168);
    let start = jst::civil(t0);
    let first_hour = start
        .date()
        .to_datetime(jiff::civil::Time::midnight())
        .checked_add(jiff::ToSpan::hours(i64::from(start.hour())))
        .ok()
        .and_then(|dt| jst::tz().to_timestamp(dt).ok());
    if let Some(mut t) = first_hour {
        while t < t0 {
            t += SignedDuration::from_hours(1);
        }
        let mut guard = 0;
        while t <= t1 && guard < 10_000 {
            guard += 1;
            let local = jst::civil(t);
            if i64::from(local.hour()) % step.min(24) == 0
                && (step < 24 || (local.date().day() as i64 - 1) % (step / 24) == 0)
            {
                let label = if local.hour() == 0 {
                    format!("{}/{}", local.month(), local.day())
                } else {
                    format!("{}:00", local.hour())
                };
                let _ = write!(
                    svg,
                    r##"<line x1="{0:.1}" x2="{0:.1}" y1="{1}" y2="{2:.1}" stroke="#c5ccd4" stroke-width="0.5"/><text x="{0:.1}" y="{3:.1}" font-size="{4}" text-anchor="middle" fill="{INK}" font-weight="{5}">{6}</text>"##,
                    x(t),
                    f.top,
                    bottom,
                    bottom + f.font + 9.0,
                    f.font,
                    if local.hour() == 0 { "bold" } else { "normal" },
                    label
                );
            }
            t += SignedDuration::from_hours(1);
        }
    }
    // Now.
    if t0 <= now && now <= t1 {
        let n = x(now);
        let _ = write!(
            svg,
            r##"<line x1="{n:.1}" x2="{n:.1}" y1="{}" y2="{bottom:.1}" stroke="{NOW}" stroke-width="2"/><text x="{:.1}" y="{:.1}" font-size="{}" text-anchor="{}" fill="{NOW}" font-weight="bold">{}</text>"##,
            f.top,
            if n > f.w * 0.8 { n - 3.0 } else { n + 3.0 },
            f.top + f.font,
            f.font,
            if n > f.w * 0.8 { "end" } else { "start" },
            lang.pick("現在", "now")
        );
    }
    svg
}

/// The corners of a step line through `(xs[i], ys[i])`: each value holds until the next x.
fn steps(xs: &[f64], ys: &[f64]) -> Vec<(f64, f64)> {
    let mut points = Vec::with_capacity(xs.len() * 2);
    for (i, (px, py)) in xs.iter().zip(ys).enumerate() {
        if i > 0 {
            points.push((*px, ys[i - 1]));
        }
        points.push((*px, *py));
    }
    points
}

fn no_data(lang: Lang) -> Markup {
    html! {
        p id="chart" class="muted" { (lang.pick(
            "推移のグラフは、記録がたまると表示されます（サーバーの時刻で10分ごとに記録）。",
            "The chart appears once a few samples are recorded (every 10 minutes of server time)."
        )) }
    }
}
