//! `onshi reception`: one patient through the reception desk, as a trace (DESIGN.md §4).

use std::fmt::Write as _;

use onshi_core::reception::{TerminalState, Trace, run_patient};
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
            (Some(n), Some(text)) => format!("エラーダイアログ（{n}回目）: {text}"),
            _ => "通常画面".to_owned(),
        };
        let _ = writeln!(out, "   資格確認端末: {terminal}");
        let mut reader = format!("[{}] ", step.reader.screen);
        if let Some(code) = step.reader.code {
            let _ = write!(reader, "エラー{code} ");
        }
        reader.push_str(&step.reader.text.replace('\n', " / "));
        if step.reader.stuck {
            reader.push_str("（画面が切り替わらない）");
        }
        let _ = writeln!(out, "   カードリーダー: {reader}");
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
