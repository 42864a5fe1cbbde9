//! The `onshi` command: one binary for the operator's tools. Each sub-command lives in its own
//! module under `cmd/`; this file only parses arguments and maps errors to exit codes.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod campaign_arg;
mod cmd;
mod exit;

use exit::BadInput;

/// onshi — runs a software-update rollout across the online qualification confirmation network.
#[derive(Parser)]
#[command(name = "onshi", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Answer "is the update distributed at this instant?" or list every window of a campaign.
    Schedule(cmd::schedule::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Schedule(args) => cmd::schedule::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("onshi: {err:#}");
            if err.downcast_ref::<BadInput>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
