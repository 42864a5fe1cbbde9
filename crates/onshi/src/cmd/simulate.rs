//! `onshi simulate`: runs the fleet simulator (`onshi-sim`) on a scenario and prints what the
//! operator asks before a campaign — sites reached by the deadline, bandwidth at peak, patients
//! meeting the error, the call centre's busiest hour. `--out DIR` writes the hourly CSV, the
//! summary and the charts; `--compare A B` runs two scenarios with one seed and prints the
//! differences.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use jiff::Timestamp;
use onshi_core::{callcentre, jst, lang::Lang};
use onshi_sim::compare::{Comparison, compare};
use onshi_sim::report::Summary;
use onshi_sim::{Outcome, Progress, Scenario, chart};
use serde_json::Value;
use unicode_width::UnicodeWidthStr;

use crate::campaign_arg;
use crate::exit::bad_input;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["scenario", "compare", "against"])))]
pub struct Args {
    /// A scenario TOML file, or `preset:national-2026-01`.
    #[arg(long, value_name = "FILE|preset:NAME")]
    scenario: Option<String>,
    /// Run two scenarios with the same seed and print the differences.
    #[arg(long, num_args = 2, value_names = ["A", "B"], conflicts_with = "out")]
    compare: Option<Vec<String>>,
    /// The random seed (default: the scenario's `seed`; with --compare, A's).
    #[arg(long)]
    seed: Option<u64>,
    /// Write hourly.csv, summary.json and the charts (SVG and PNG) into this directory.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Print the summary (or the comparison) as JSON.
    #[arg(long)]
    json: bool,
    /// Language of the printed summary: ja (default) or en.
    #[arg(long, default_value = "ja")]
    lang: Lang,
    /// Load mode: drive the `onshi serve` at this URL (a fresh data directory) with the agents
    /// of --agents sites; the operator token comes from ONSHI_OPERATOR_TOKEN.
    #[arg(long, value_name = "URL", conflicts_with = "out")]
    against: Option<String>,
    /// Load mode: how many sites (each a terminal and its card readers), 1–2000.
    #[arg(long, default_value_t = 200, requires = "against")]
    agents: u32,
    /// Load mode: how long to run the agents, in seconds.
    #[arg(long, default_value_t = 60, requires = "against")]
    duration: u64,
    /// Load mode: the server's clock speed (`onshi serve --clock-speed`), so the agents wait
    /// as long in real time as the server tells them in its time.
    #[arg(long, default_value_t = 1.0, requires = "against")]
    clock_speed: f64,
    /// Load mode: the server's key ceremony directory (`onshi keys init --out DIR`): the release
    /// is signed with its targets keys and the agents trust its root.json.
    #[arg(long, value_name = "DIR", requires = "against")]
    keys: Option<std::path::PathBuf>,
}

mod load;

pub fn run(args: &Args) -> anyhow::Result<()> {
    if let Some(url) = &args.against {
        let report = load::run(&load::Load {
            keys: args.keys.as_deref(),
            url,
            sites: args.agents,
            duration: std::time::Duration::from_secs(args.duration),
            clock_speed: args.clock_speed,
            seed: args.seed.unwrap_or(1),
        })?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", report.text(args.lang));
        }
        return Ok(());
    }
    if let Some([a, b]) = args.compare.as_deref() {
        let a_sc = load(a)?;
        let b_sc = load(b)?;
        let seed = args.seed.unwrap_or(a_sc.seed);
        let a_out = simulate(&a_sc, seed, args.lang, "A")?;
        let b_out = simulate(&b_sc, seed, args.lang, "B")?;
        let c = compare(a_out.summary, b_out.summary);
        if args.json {
            println!("{}", serde_json::to_string_pretty(&c)?);
        } else {
            print!("{}", comparison_table(&c, a, b, args.lang));
        }
        return Ok(());
    }
    let Some(reference) = &args.scenario else {
        return Err(bad_input("onshi simulate", "give --scenario or --compare"));
    };
    let scenario = load(reference)?;
    let seed = args.seed.unwrap_or(scenario.seed);
    let outcome = simulate(&scenario, seed, args.lang, "")?;
    let written = match &args.out {
        Some(dir) => write_out(&outcome, dir)?,
        None => Vec::new(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome.summary)?);
    } else {
        print!("{}", summary_text(&outcome.summary, args.lang));
        if !written.is_empty() {
            println!(
                "\n{}",
                args.lang.pick("書き出したファイル:", "Files written:")
            );
            for path in &written {
                println!("  {}", path.display());
            }
        }
    }
    Ok(())
}

/// Reads a scenario: `preset:NAME` or a file whose `campaign` is a preset or a file next to it.
fn load(reference: &str) -> anyhow::Result<Scenario> {
    if let Some(name) = reference.strip_prefix("preset:") {
        return Scenario::preset(name).map_err(|e| bad_input("--scenario", e));
    }
    let text = std::fs::read_to_string(reference)
        .map_err(|e| bad_input(format_args!("cannot read scenario file {reference}"), e))?;
    let dir = Path::new(reference)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let load_campaign = |campaign: &str| {
        let arg = if campaign.starts_with("preset:") {
            campaign.to_owned()
        } else {
            dir.join(campaign).display().to_string()
        };
        campaign_arg::load(&arg).map_err(|e| format!("{e:#}"))
    };
    Scenario::parse(&text, load_campaign)
        .map_err(|e| bad_input(format_args!("scenario file {reference}"), e))
}

/// Runs one scenario, with a progress bar on stderr when it is a terminal.
fn simulate(scenario: &Scenario, seed: u64, lang: Lang, which: &str) -> anyhow::Result<Outcome> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(u64::from(scenario.days) * 24);
        let style =
            indicatif::ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} h  {elapsed}")
                .map(|s| s.progress_chars("=> "));
        if let Ok(style) = style {
            bar.set_style(style);
        }
        let label = lang.pick("シミュレーション中", "simulating");
        bar.set_prefix(format!("{label} {which}").trim_end().to_owned());
        bar
    });
    let mut progress = |p: Progress| {
        if let Some(bar) = &bar {
            bar.set_length(p.hours as u64);
            bar.set_position(p.hour as u64);
        }
    };
    let outcome = onshi_sim::run(scenario, seed, &mut progress);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(outcome)
}

/// Writes hourly.csv, summary.json and the charts into `dir`.
fn write_out(o: &Outcome, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let csv = dir.join("hourly.csv");
    std::fs::write(&csv, o.hourly.to_csv(&o.calendar))
        .with_context(|| format!("writing {}", csv.display()))?;
    let json = dir.join("summary.json");
    std::fs::write(&json, serde_json::to_string_pretty(&o.summary)? + "\n")
        .with_context(|| format!("writing {}", json.display()))?;
    let mut written = vec![csv, json];
    written.extend(chart::write_all(o, dir)?);
    Ok(written)
}

/// `229,700`
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn percent(n: u64, of: u64) -> String {
    format!("{:.1} %", 100.0 * n as f64 / of.max(1) as f64)
}

/// An RFC 3339 instant of the summary, in Japan time for people (`2026年1月20日(火) 09:00`).
fn when(at: Option<&str>, lang: Lang) -> String {
    match at.and_then(|s| s.parse::<Timestamp>().ok()) {
        Some(t) => jst::format(t, lang),
        None => "—".to_owned(),
    }
}

/// The summary for people, in Japanese or English.
fn summary_text(s: &Summary, lang: Lang) -> String {
    let mut out = String::new();
    let l = |ja, en| lang.pick(ja, en);
    let _ = writeln!(
        out,
        "{}: {} [{} {}, seed {}]",
        l("シナリオ", "Scenario"),
        s.scenario,
        l("キャンペーン", "campaign"),
        s.campaign,
        s.seed
    );
    let _ = writeln!(
        out,
        "{}: {} – {} ({} {})",
        l("期間", "Period"),
        when(Some(&s.start), lang),
        when(Some(&s.end), lang),
        s.days,
        l("日間", "days")
    );
    let _ = writeln!(
        out,
        "{}: {} ({}: {}, {} {} / {} {})\n",
        l("施設", "Sites"),
        thousands(s.sites),
        l("機器", "devices"),
        thousands(s.devices),
        l("資格確認端末", "terminals"),
        thousands(s.terminals),
        l("顔認証付きカードリーダー", "card readers"),
        thousands(s.readers),
    );

    let d = &s.deadline;
    let last_night = d.last_night.clone().unwrap_or_else(|| "—".to_owned());
    let rows = [
        (
            match lang {
                Lang::Ja => format!("{last_night} の夜までに配信完了"),
                Lang::En => format!("reached by the night of {last_night}"),
            },
            d.sites_by_last_night,
        ),
        (
            l(
                "終日配信の期間に配信完了",
                "reached in the all-day catch-up",
            )
            .to_owned(),
            d.sites_in_catch_up,
        ),
        (
            l("期間内に配信完了せず", "not reached in the run").to_owned(),
            d.sites_never,
        ),
        (
            l(
                "終了時に適用済み（再起動済み）",
                "applied (restarted) at the end",
            )
            .to_owned(),
            s.sites_applied,
        ),
    ];
    let _ = writeln!(out, "{}", l("■ 期限までに（施設数）", "■ Deadline (sites)"));
    let width = rows.iter().map(|(k, _)| k.width()).max().unwrap_or(0);
    for (label, n) in &rows {
        let pad = " ".repeat(width - label.width());
        let _ = writeln!(
            out,
            "  {label}{pad}  {:>9}  ({})",
            thousands(*n),
            percent(*n, s.sites)
        );
    }

    if let Some(w) = &s.waves {
        let _ = writeln!(out, "\n{}", l("■ 段階配信（波）", "■ Waves"));
        let _ = writeln!(
            out,
            "  {}: {} / {}",
            l("開いた波", "waves opened"),
            w.opened,
            w.waves
        );
        if let (Some(at), Some(wave)) = (&w.held_at, w.held_wave) {
            let _ = writeln!(
                out,
                "  {}",
                match lang {
                    Lang::Ja => format!(
                        "第{wave}波の健全性ゲートで停止: {}",
                        when(Some(at.as_str()), lang)
                    ),
                    Lang::En => format!(
                        "held by the health gate of wave {wave}: {}",
                        when(Some(at.as_str()), lang)
                    ),
                }
            );
        }
    }
    if s.fault.unhealthy_after_restart_share > 0.0 {
        let _ = writeln!(out, "\n{}", l("■ 不具合のある版", "■ The faulty release"));
        let _ = writeln!(
            out,
            "  {}: {} ({}), {}: {}",
            l(
                "届いた施設（再起動済み）",
                "sites reached (restarted onto it)"
            ),
            thousands(s.fault.sites_reached),
            percent(s.fault.sites_reached, s.sites),
            l("うち自己診断で異常", "of which failing the self-check"),
            thousands(s.fault.sites_unhealthy)
        );
    }

    let b = &s.bandwidth;
    let _ = writeln!(out, "\n{}", l("■ 配信帯域", "■ Bandwidth"));
    let _ = writeln!(
        out,
        "  {}: {} ({} {}) — {}",
        l("同時ダウンロード数の最大", "peak concurrent downloads"),
        thousands(u64::from(b.peak_concurrent_downloads)),
        l("上限", "throttle"),
        thousands(u64::from(b.max_concurrent_downloads)),
        when(b.peak_concurrent_at.as_deref(), lang)
    );
    let _ = writeln!(
        out,
        "  {}: {:.1} Gbps ({} {:.1} Gbps), {}: {:.1} Gbps",
        l("最大帯域", "peak egress"),
        b.peak_egress_gbps,
        l("容量", "capacity"),
        b.egress_capacity_gbps,
        l("最繁時1時間の平均", "busiest hour's average"),
        b.busiest_hour_gbps
    );
    let _ = writeln!(
        out,
        "  {}: {:.1} TB",
        l("総転送量", "transferred"),
        b.transferred_tb
    );

    let e = &s.errors;
    let _ = writeln!(
        out,
        "\n{}",
        l(
            "■ 再起動前の端末で資格確認ができなかった患者",
            "■ Patients whose check-in failed because the terminal was not restarted"
        )
    );
    let _ = writeln!(
        out,
        "  {}: {} ({} {}), {}: {}",
        l("患者", "patients"),
        thousands(e.patients),
        l("うちカードリーダーに901表示", "of which 901 on the reader"),
        thousands(e.reader_901),
        l("施設", "sites"),
        thousands(e.sites_meeting_errors)
    );
    let _ = writeln!(
        out,
        "  {}: {} ({} {})",
        l("最多の1時間", "busiest hour"),
        when(e.busiest_hour.as_deref(), lang),
        thousands(u64::from(e.busiest_hour_patients)),
        l("人", "patients")
    );

    let c = &s.call_centre;
    let _ = writeln!(
        out,
        "\n■ {} {}",
        lang.pick(callcentre::NAME_JA, "Call centre"),
        callcentre::PHONE
    );
    let _ = writeln!(
        out,
        "  {}: {}, {}: {} ({} {})",
        l("電話", "calls"),
        thousands(c.calls),
        l("最多の1時間", "busiest hour"),
        when(c.busiest_hour.as_deref(), lang),
        thousands(u64::from(c.busiest_hour_calls)),
        l("件", "calls")
    );

    let r = &s.restart_required;
    let _ = writeln!(
        out,
        "\n{}",
        l("■ 再起動待ちの施設", "■ Sites waiting for a restart")
    );
    let _ = writeln!(
        out,
        "  {}: {} ({}), {}: {}",
        l("最大", "peak"),
        thousands(u64::from(r.peak_sites)),
        when(r.peak_at.as_deref(), lang),
        l("終了時", "at the end"),
        thousands(u64::from(r.at_end))
    );
    let _ = writeln!(
        out,
        "\n{}: {}",
        l(
            "配信時間外に始まったダウンロード",
            "downloads started outside the windows"
        ),
        s.downloads_started_outside_windows
    );
    out
}

fn cell(v: &Value, lang: Lang) -> String {
    match v {
        Value::Null => "—".to_owned(),
        Value::String(s) => when(Some(s), lang),
        Value::Number(n) => match n.as_u64() {
            Some(u) => thousands(u),
            None => format!("{:.1}", n.as_f64().unwrap_or(0.0)),
        },
        other => other.to_string(),
    }
}

fn change(c: Option<f64>) -> String {
    match c {
        None => String::new(),
        Some(0.0) => "±0".to_owned(),
        Some(d) => {
            let sign = if d > 0.0 { "+" } else { "−" };
            if d.fract() == 0.0 {
                format!("{sign}{}", thousands(d.abs() as u64))
            } else {
                format!("{sign}{:.1}", d.abs())
            }
        }
    }
}

/// The comparison as a table: one row per figure, A, B and the change.
fn comparison_table(c: &Comparison, a: &str, b: &str, lang: Lang) -> String {
    let header = [
        lang.pick("項目", "Figure").to_owned(),
        "A".to_owned(),
        "B".to_owned(),
        lang.pick("差 (B−A)", "Change (B−A)").to_owned(),
    ];
    let rows: Vec<[String; 4]> = c
        .rows
        .iter()
        .map(|r| {
            [
                lang.pick(r.label_ja, r.label_en).to_owned(),
                cell(&r.a, lang),
                cell(&r.b, lang),
                change(r.change),
            ]
        })
        .collect();
    let mut widths = header.each_ref().map(|h| h.width());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.width());
        }
    }
    let line = |cells: &[String; 4]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            let pad = " ".repeat(w - cell.width());
            if i == 0 {
                s.push_str(cell);
                s.push_str(&pad);
            } else {
                s.push_str(&pad);
                s.push_str(cell);
            }
            s.push_str("  ");
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = String::new();
    let _ = writeln!(out, "A: {a} ({})", c.a.scenario);
    let _ = writeln!(out, "B: {b} ({})", c.b.scenario);
    let _ = writeln!(
        out,
        "{}: {}\n",
        lang.pick("乱数シード（共通）", "Seed (both)"),
        c.seed
    );
    out.push_str(&line(&header));
    for row in &rows {
        out.push_str(&line(row));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_with_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(229_700), "229,700");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(change(Some(-30_000.0)), "−30,000");
        assert_eq!(change(Some(0.0)), "±0");
        assert_eq!(change(Some(1.25)), "+1.2");
        assert_eq!(change(Some(-2.8)), "−2.8");
    }
}
