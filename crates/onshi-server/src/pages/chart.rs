//! The dashboard's chart of counts per state over time: a stacked area chart drawn as inline
//! SVG (no script, no chart library), with the night windows shaded behind it.

use std::fmt::Write as _;

use jiff::Timestamp;
use maud::{Markup, PreEscaped, html};
use onshi_core::jst;
use onshi_core::lang::Lang;
use onshi_core::schedule::Campaign;

use super::groups::Group;
use crate::history::Sample;

const W: f64 = 800.0;
const H: f64 = 260.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 30.0;
const NIGHT: &str = "#5b8fd0";
const CATCH_UP: &str = "#f0a83c";

/// The chart of `samples` (oldest first); a note when there are fewer than two.
pub fn render(samples: &[Sample], schedule: &Campaign, lang: Lang) -> Markup {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return no_data(lang);
    };
    if samples.len() < 2 || first.at == last.at {
        return no_data(lang);
    }
    let t0 = first.at.as_second() as f64;
    let t1 = last.at.as_second() as f64;
    let max = samples
        .iter()
        .map(|s| s.states.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let x = |t: Timestamp| LEFT + (t.as_second() as f64 - t0) / (t1 - t0) * (W - LEFT - RIGHT);
    let y = |v: f64| TOP + (1.0 - v / max) * (H - TOP - BOTTOM);

    let mut svg = String::new();
    // Night windows and the catch-up phase as a strip under the plot.
    let strip = H - BOTTOM + 1.0;
    for w in schedule.windows() {
        if w.closes <= first.at || w.opens >= last.at {
            continue;
        }
        let a = x(w.opens.max(first.at));
        let b = x(w.closes.min(last.at));
        let _ = write!(
            svg,
            r##"<rect x="{a:.1}" y="{strip}" width="{:.1}" height="5" fill="{NIGHT}"/>"##,
            (b - a).max(0.5)
        );
    }
    if let Some(from) = schedule.catch_up_from().filter(|f| *f < last.at) {
        let a = x(from.max(first.at));
        let _ = write!(
            svg,
            r##"<rect x="{a:.1}" y="{strip}" width="{:.1}" height="5" fill="{CATCH_UP}"/>"##,
            (W - RIGHT - a).max(0.5)
        );
    }
    // Stacked areas, bottom up, drawn as steps: a count holds until the next sample shows it
    // changed (nothing is known in between).
    let xs: Vec<f64> = samples.iter().map(|s| x(s.at)).collect();
    let mut below = vec![0.0f64; samples.len()];
    for group in Group::CHART {
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
    // Axes: three counts up the side, a date under each day's midnight (at most ~12 labels).
    for v in [0.0, max / 2.0, max] {
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#c5ccd4" stroke-width="0.5"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#5b6470">{}</text>"##,
            W - RIGHT,
            y(v),
            y(v),
            LEFT - 4.0,
            y(v) + 4.0,
            v.round() as u64
        );
    }
    let start_day = jst::civil(first.at).date();
    let days: Vec<_> = start_day
        .series(jiff::ToSpan::days(1))
        .filter_map(|d| {
            jst::tz()
                .to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
                .ok()
        })
        .skip_while(|t| *t < first.at)
        .take_while(|t| *t <= last.at)
        .collect();
    let step = days.len().div_ceil(12).max(1);
    for t in days.iter().step_by(step) {
        let d = jst::civil(*t).date();
        let _ = write!(
            svg,
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="{TOP}" y2="{1:.1}" stroke="#c5ccd4" stroke-width="0.5"/><text x="{0:.1}" y="{2:.1}" font-size="11" text-anchor="middle" fill="#5b6470">{3}/{4}</text>"##,
            x(*t),
            H - BOTTOM,
            H - BOTTOM + 20.0,
            d.month(),
            d.day()
        );
    }
    let title = lang.pick("状態別の台数の推移", "Devices per state over time");
    html! {
        figure id="chart" style="margin:0" {
            svg viewBox={ "0 0 " (W) " " (H) } width="100%" role="img" aria-label=(title) style="background:#fff;border:1px solid #d6dbe1;border-radius:8px;max-height:320px" {
                (PreEscaped(svg))
            }
            figcaption class="legend" {
                @for g in Group::CHART.iter().rev() {
                    span style={ "background:" (g.colour()) ";color:#fff" } { (g.label(lang)) }
                }
                span style={ "border-bottom:5px solid " (NIGHT) } { (lang.pick("夜間の配信時間", "night windows")) }
                span style={ "border-bottom:5px solid " (CATCH_UP) } { (lang.pick("終日配信", "catch-up")) }
                br;
                span class="muted" style="border:none" { (lang.pick(
                    "サーバー起動後に記録した値です（再起動すると最初からになります）。",
                    "Sampled since the server started (a restart starts over)."
                )) }
            }
        }
    }
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
