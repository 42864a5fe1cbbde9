//! `onshi schedule`: the campaign schedule from the command line (DESIGN.md §4). `--at` prints
//! the status at one instant as JSON; `--list` prints every window as a table.

use std::fmt::Write as _;

use jiff::Timestamp;
use jiff::civil::DateTime;
use onshi_core::jst;
use onshi_core::lang::Lang;
use onshi_core::schedule::Campaign;
use unicode_width::UnicodeWidthStr;

use crate::campaign_arg;
use crate::exit::bad_input;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["at", "list"])))]
pub struct Args {
    /// A campaign TOML file, or `preset:2026-01`.
    #[arg(long, value_name = "FILE|preset:NAME")]
    campaign: String,
    /// The instant to ask about, RFC 3339 with any offset (e.g. 2026-01-25T04:30:00+09:00).
    #[arg(long, value_name = "RFC3339")]
    at: Option<String>,
    /// List every distribution window.
    #[arg(long)]
    list: bool,
    /// With --list: print the windows as JSON instead of a table.
    #[arg(long, requires = "list")]
    json: bool,
    /// Language of the --list table: ja (default) or en.
    #[arg(long, default_value = "ja")]
    lang: Lang,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let campaign = campaign_arg::load(&args.campaign)?;
    let out = if let Some(at) = &args.at {
        let at: Timestamp = at.parse().map_err(|e| {
            bad_input(
                format_args!("--at {at:?} is not an RFC 3339 instant with an offset"),
                e,
            )
        })?;
        serde_json::to_string_pretty(&campaign.report(at))? + "\n"
    } else if args.json {
        serde_json::to_string_pretty(&windows_json(&campaign))? + "\n"
    } else {
        table(&campaign, args.lang)
    };
    print!("{out}");
    Ok(())
}

#[derive(serde::Serialize)]
struct WindowsJson {
    id: String,
    title: String,
    timezone: String,
    windows: Vec<WindowJson>,
    excluded: Vec<String>,
    catch_up_from: Option<String>,
}

#[derive(serde::Serialize)]
struct WindowJson {
    night: String,
    opens: String,
    closes: String,
}

fn windows_json(c: &Campaign) -> WindowsJson {
    WindowsJson {
        id: c.id().to_owned(),
        title: c.title().to_owned(),
        timezone: c.timezone_name().to_owned(),
        windows: c
            .windows()
            .iter()
            .map(|w| WindowJson {
                night: w.night.to_string(),
                opens: c.rfc3339(w.opens),
                closes: c.rfc3339(w.closes),
            })
            .collect(),
        excluded: c.excluded().iter().map(ToString::to_string).collect(),
        catch_up_from: c.catch_up_from().map(|t| c.rfc3339(t)),
    }
}

fn when(dt: DateTime, lang: Lang) -> String {
    match lang {
        Lang::Ja => jst::format_datetime_ja(dt),
        Lang::En => jst::format_datetime_en(dt),
    }
}

fn day(date: jiff::civil::Date, lang: Lang) -> String {
    match lang {
        Lang::Ja => jst::format_date_ja(date),
        Lang::En => jst::format_date_en(date),
    }
}

/// The human table: one row per window with its length (which a daylight-saving jump changes),
/// then the excluded nights and the catch-up phase.
fn table(c: &Campaign, lang: Lang) -> String {
    let header = [
        lang.pick("回", "#"),
        lang.pick("配信日", "Night of"),
        lang.pick("配信開始", "Opens"),
        lang.pick("配信終了", "Closes"),
        lang.pick("時間", "Hours"),
    ];
    let rows: Vec<[String; 5]> = c
        .windows()
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let minutes = (w.closes.as_second() - w.opens.as_second()) / 60;
            let length = if minutes % 60 == 0 {
                format!("{}", minutes / 60)
            } else {
                format!("{}:{:02}", minutes / 60, minutes % 60)
            };
            [
                (i + 1).to_string(),
                day(w.night, lang),
                when(c.civil(w.opens), lang),
                when(c.civil(w.closes), lang),
                length,
            ]
        })
        .collect();
    let mut widths = header.map(UnicodeWidthStr::width);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.width());
        }
    }
    let line = |cells: &[&str]| -> String {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            let pad = w - cell.width();
            if i == 0 || i == 4 {
                s.push_str(&" ".repeat(pad));
                s.push_str(cell);
            } else {
                s.push_str(cell);
                s.push_str(&" ".repeat(pad));
            }
            s.push_str("  ");
        }
        s.trim_end().to_owned() + "\n"
    };

    let mut out = String::new();
    let _ = writeln!(out, "{} [{}]", c.title(), c.id());
    let _ = writeln!(
        out,
        "{}: {}\n",
        lang.pick("タイムゾーン", "Time zone"),
        c.timezone_name()
    );
    if rows.is_empty() {
        out.push_str(lang.pick("夜間の配信はありません。\n", "No night windows.\n"));
    } else {
        out.push_str(&line(&header));
        for row in &rows {
            out.push_str(&line(&row.each_ref().map(String::as_str)));
        }
    }
    out.push('\n');
    for date in c.excluded() {
        let _ = match lang {
            Lang::Ja => writeln!(out, "配信なし: {} の夜", day(*date, lang)),
            Lang::En => writeln!(out, "No distribution: the night of {}", day(*date, lang)),
        };
    }
    if let Some(from) = c.catch_up_from() {
        let _ = match lang {
            Lang::Ja => writeln!(
                out,
                "終日配信: {} から（更新が完了していない端末へ、キャンペーン終了まで）",
                when(c.civil(from), lang)
            ),
            Lang::En => writeln!(
                out,
                "All-day catch-up: from {} (to every device not yet updated, until the campaign is closed)",
                when(c.civil(from), lang)
            ),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preset_table_lists_eleven_nights_in_japanese_with_weekdays() {
        let c = Campaign::preset("2026-01").expect("preset");
        let t = table(&c, Lang::Ja);
        assert!(t.contains("2026年1月19日(月) 20:00"), "{t}");
        assert!(t.contains("2026年1月25日(日) 05:00"), "{t}");
        assert!(t.contains("配信なし: 2026年1月25日(日) の夜"), "{t}");
        assert!(t.contains("終日配信: 2026年1月31日(土) 00:00 から"), "{t}");
        let rows = t
            .lines()
            .filter(|l| l.trim_start().starts_with(char::is_numeric));
        assert_eq!(rows.count(), 11, "{t}");
    }

    #[test]
    fn the_table_is_available_in_english() {
        let c = Campaign::preset("2026-01").expect("preset");
        let t = table(&c, Lang::En);
        assert!(t.contains("Mon 19 Jan 2026 20:00"), "{t}");
        assert!(
            t.contains("No distribution: the night of Sun 25 Jan 2026"),
            "{t}"
        );
    }
}
