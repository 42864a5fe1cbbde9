//! `onshi serve`: the distribution server (DESIGN.md §3), on real or simulated time.

use std::net::SocketAddr;
use std::path::PathBuf;

use jiff::Timestamp;
use onshi_clock::Clock;

use crate::exit::bad_input;

#[derive(clap::Args)]
pub struct Args {
    /// Directory for the database, packages and keys (with --database: packages and keys).
    #[arg(long, default_value = "onshi-data")]
    data: PathBuf,
    /// A PostgreSQL database shared by several replicas, postgres://USER:PASSWORD@HOST/DB
    /// (or set ONSHI_DATABASE, which keeps the password out of the process list). Without it:
    /// SQLite in DATA/onshi.db.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    clock: ClockArgs,
    /// The online timestamp key from the key ceremony (`onshi keys init`); default
    /// DATA/keys/timestamp.key. Never created: a missing key, or one the trusted root does not
    /// name, stops the server.
    #[arg(long, value_name = "FILE", alias = "signing-key")]
    timestamp_key: Option<PathBuf>,
    /// The key ceremony's root.json: required on the first start (it becomes the database's
    /// root version 1); later it must be the database's root of its version.
    #[arg(long, value_name = "FILE")]
    trust_root: Option<PathBuf>,
    /// Let the mock qualification service (/api/v1/qualification) answer non-loopback clients.
    #[arg(long)]
    qualification_public: bool,
    /// Send notice mails through this SMTP server (smtp://HOST:PORT); default: write them as
    /// .eml files to DATA/outbox/.
    #[arg(long, value_name = "URL")]
    smtp: Option<String>,
    /// The notices' sender address.
    #[arg(long, value_name = "ADDRESS")]
    mail_from: Option<String>,
    /// Behind nginx: answer an authorised package download with `X-Accel-Redirect:
    /// PREFIX<ab>/<sha256>` and no body, and let nginx send the file from its `internal`
    /// location PREFIX (deploy/nginx.conf uses /_onshi/artifacts/). Default: onshi sends it.
    #[arg(long, value_name = "PREFIX", value_parser = accel_prefix)]
    accel_redirect: Option<String>,
}

fn accel_prefix(s: &str) -> Result<String, String> {
    onshi_server::artifacts::check_accel_prefix(s).map(|()| s.to_owned())
}

/// `--clock` and `--clock-speed`, shared by every command that runs on simulated time.
#[derive(clap::Args)]
pub struct ClockArgs {
    /// Run on a simulated clock starting at this instant (RFC 3339), e.g. 2026-01-19T19:59:00+09:00.
    #[arg(long, value_name = "RFC3339")]
    clock: Option<String>,
    /// Simulated seconds per real second (with --clock).
    #[arg(long, default_value_t = 1.0, requires = "clock")]
    clock_speed: f64,
}

impl ClockArgs {
    /// The clock these arguments ask for.
    pub fn clock(&self) -> anyhow::Result<Clock> {
        let Some(start) = &self.clock else {
            return Ok(Clock::real());
        };
        let start: Timestamp = start
            .parse()
            .map_err(|e| bad_input(format_args!("--clock {start:?}"), e))?;
        Clock::simulated(start, self.clock_speed).map_err(|e| bad_input("--clock-speed", e))
    }
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let config = onshi_server::Config {
        data_dir: args.data.clone(),
        database: args.database.clone().or_else(|| {
            std::env::var("ONSHI_DATABASE")
                .ok()
                .filter(|u| !u.is_empty())
        }),
        listen: args.listen,
        clock: args.clock.clock()?,
        timestamp_key: args.timestamp_key.clone(),
        trust_root: args.trust_root.clone(),
        operator_token: std::env::var("ONSHI_OPERATOR_TOKEN").ok(),
        qualification_public: args.qualification_public,
        smtp: args.smtp.clone(),
        mail_from: args.mail_from.clone(),
        accel_redirect: args.accel_redirect.clone(),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let running = onshi_server::start(config).await?;
        if let Some(token) = &running.new_operator_token {
            // Printed once: only its hash is stored.
            println!("operator token (shown once, keep it safe): {token}");
        }
        println!("onshi serve: listening on http://{}", running.addr);
        running.wait().await
    })
}
