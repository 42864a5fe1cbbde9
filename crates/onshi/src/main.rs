//! The `onshi` command: one binary for the operator's tools. Each sub-command lives in its own
//! module under `cmd/`; this file only parses arguments and maps errors to exit codes.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod campaign_arg;
mod cmd;
mod exit;
mod fleet;

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
    /// Run one patient through the reception desk and print what the terminal and reader show.
    Reception(cmd::reception::Args),
    /// Run the distribution server.
    // Boxed: its many flags make it the largest by far.
    Serve(Box<cmd::serve::Args>),
    /// Simulate a campaign over the national fleet: deadline, bandwidth, errors, calls.
    Simulate(cmd::simulate::Args),
    /// The whole rollout on this machine: server, a synthetic fleet of sites with their agents,
    /// staff and patients, on a simulated clock (start here).
    Demo(cmd::demo::Args),
    /// The offline key ceremony and key rotation: root, targets and timestamp keys, root.json.
    Keys(cmd::keys::Args),
    /// Sign a release offline with the targets keys (the server cannot sign one).
    Release(cmd::release::Args),
    /// Build a data directory with a synthetic fleet and the 2026-01 campaign (benchmarks, demos).
    #[command(hide = true)]
    Fixture(cmd::fixture::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo runs hundreds of agents in this process: only their warnings are worth a line.
    init_tracing(match cli.command {
        Command::Demo(_) => "warn",
        _ => "warn,onshi=info,onshi_server=info,onshi_store=info",
    });
    let result = match cli.command {
        Command::Schedule(args) => cmd::schedule::run(&args),
        Command::Reception(args) => cmd::reception::run(&args),
        Command::Serve(args) => cmd::serve::run(&args),
        Command::Simulate(args) => cmd::simulate::run(&args),
        Command::Demo(args) => cmd::demo::run(&args),
        Command::Keys(args) => cmd::keys::run(&args),
        Command::Release(args) => cmd::release::run(&args),
        Command::Fixture(args) => cmd::fixture::run(&args),
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

/// Structured logs on stderr; `RUST_LOG` filters (default: the command's `default` filter),
/// `ONSHI_LOG_FORMAT=json` for JSON lines.
fn init_tracing(default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("ONSHI_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
