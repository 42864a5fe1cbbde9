//! `onshi reception`: one patient through the reception desk, as a trace (DESIGN.md §4).

use std::fmt::Write as _;

use onshi_core::lang::Lang;
use onshi_core::reception::{Source, TerminalState, Trace, run_patient};
use onshi_core::vendor::Vendor;

use crate::exit::bad_input;

#[derive(clap::Args)]
pub struct Args {
    /// The card reader's vendor: panasonic, canon, usen-almex, fujitsu-japan, atlus.
    #[arg(long)]
    vendor: String,
    /// The terminal: up-to-date, or pending-restart (installed but not restarted).
    #[arg(long)]
    terminal: String,
    /// Print the trace as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let vendor: Vendor = args.vendor.parse().map_err(|e| bad_input("--vendor", e))?;
    let terminal: TerminalState = args
        .terminal
        .parse()
        .map_err(|e| bad_input("--terminal", e))?;
    let trace = run_patient(vendor, terminal);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&trace)?);
    } else {
        print!("{}", human(&trace));
    }
    Ok(())
}

/// The trace in Japanese, step by step.
fn human(trace: &Trace) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "顔認証付きカードリーダー: {}　資格確認端末: {}",
        trace.vendor.name_ja(),
        trace.terminal.label_ja()
    );
    for (i, step) in trace.steps.iter().enumerate() {
        let _ = writeln!(out, "\n{}. {}", i + 1, step.event.label_ja());
        let terminal = match (step.terminal.count, step.terminal.text) {
            (Some(n), Some(text)) => {
                let mut t = format!("エラーダイアログ（{n}回目）: {text}");
                push_mark(&mut t, step.terminal.source);
                t
            }
            _ => "通常画面".to_owned(),
        };
        let _ = writeln!(out, "   資格確認端末: {terminal}");
        // The code of a 901 screen is in its text, as the reader shows it.
        let mut reader = format!("[{}] ", step.reader.screen);
        reader.push_str(&step.reader.text.replace('\n', " / "));
        if step.reader.stuck {
            reader.push_str("（画面が切り替わらない）");
        }
        push_mark(&mut reader, Some(step.reader.source));
        let _ = writeln!(out, "   カードリーダー: {reader}");
        if let Some(words) = step.reader.behaviour {
            let _ = writeln!(out, "   （通知の記載: {words}）");
        }
    }
    let _ = writeln!(
        out,
        "\n結果: {}",
        if trace.confirmed {
            "資格確認が完了しました。"
        } else {
            "資格確認は完了していません。資格確認端末を再起動し、もう一度マイナ保険証をご利用いただくよう案内してください。"
        }
    );
    out
}

/// Marks an assumed text where it is shown (「※通知に文言の記載がないため想定表示です」).
fn push_mark(line: &mut String, source: Option<Source>) {
    if let Some(mark) = source.and_then(|s| s.mark(Lang::Ja)) {
        line.push('　');
        line.push_str(mark);
    }
}
