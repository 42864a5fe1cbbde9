//! `onshi serve`: the distribution server (DESIGN.md §3), on real or simulated time.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
    /// The online snapshot key, if the root names one apart from the timestamp key; default
    /// DATA/keys/snapshot.key when it exists, else the timestamp key signs the snapshot too.
    #[arg(long, value_name = "FILE")]
    snapshot_key: Option<PathBuf>,
    /// The key ceremony's root.json: required on the first start (it becomes the database's
    /// root version 1); later it must be the database's root of its version.
    #[arg(long, value_name = "FILE")]
    trust_root: Option<PathBuf>,
    /// Let the mock qualification service (/api/v1/qualification) answer non-loopback clients.
    #[arg(long)]
    qualification_public: bool,
    /// Send notice mails through this SMTP relay: smtps://HOST[:465] (TLS), or
    /// smtp://HOST[:587]?tls=required (STARTTLS, required), or plain smtp://HOST[:25] to an MTA
    /// on this machine; USER:PASSWORD@ before HOST to authenticate (or --smtp-user). ONSHI_SMTP
    /// keeps the URL out of the process list. Default: write the mails as .eml files to
    /// DATA/outbox/.
    #[arg(long, value_name = "URL")]
    smtp: Option<String>,
    /// The user to authenticate to the relay as, its password in ONSHI_SMTP_PASSWORD.
    #[arg(long, value_name = "USER")]
    smtp_user: Option<String>,
    /// Trust only the CA certificates in this PEM file for the relay's certificate (an internal
    /// CA); default: the Mozilla roots built in.
    #[arg(long, value_name = "FILE")]
    smtp_ca: Option<PathBuf>,
    /// The notices' sender address.
    #[arg(long, value_name = "ADDRESS")]
    mail_from: Option<String>,
    /// Behind nginx: answer an authorised package download with `X-Accel-Redirect:
    /// PREFIX<ab>/<sha256>` and no body, and let nginx send the file from its `internal`
    /// location PREFIX (deploy/nginx.conf uses /_onshi/artifacts/). Default: onshi sends it.
    #[arg(long, value_name = "PREFIX", value_parser = accel_prefix)]
    accel_redirect: Option<String>,
    /// The address sites reach the pages at (https://onshi.example.jp), for the one-time
    /// sign-in links in the announcement mails. Default: this server's scheme and address.
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
    /// Serve HTTPS with this certificate chain (PEM); with --tls-key. Without: plain HTTP,
    /// for loopback behind a proxy that terminates TLS (deploy/nginx.conf).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A proxy (IP address) whose X-Forwarded-Proto and X-Real-IP headers are believed, besides
    /// loopback (always trusted: nginx on this machine); repeat for several.
    #[arg(long, value_name = "IP")]
    trusted_proxy: Vec<std::net::IpAddr>,
    /// Also serve /metrics (Prometheus, no token), /healthz and /readyz on this address, for the
    /// monitoring network (e.g. 127.0.0.1:9464). /metrics on --listen needs the operator token.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
}

/// The time and size limits of connections (defaults: `onshi_server::Limits::default()`).
#[derive(clap::Args)]
struct LimitArgs {
    /// Seconds a client has to send a request's head; an idle keep-alive connection is closed
    /// after as long [default: 10].
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    header_timeout: Option<Duration>,
    /// The longest pause, in seconds, between two chunks of a request body [default: 30].
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    body_timeout: Option<Duration>,
    /// Seconds within which a device-API request, a login or another small request must be
    /// answered, its body included [default: 60].
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    request_timeout: Option<Duration>,
    /// Connections served at once; more wait until one closes [default: 4096]. Keep the
    /// process's open-file limit above it (systemd: LimitNOFILE).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: Option<u32>,
    /// On SIGTERM or Ctrl-C, seconds the requests in flight may still take before their
    /// connections are closed and the buffered last-contact times written [default: 10].
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    shutdown_deadline: Option<Duration>,
    /// Login attempts (operator and sites) one client address may make a minute, twice as many
    /// at once; raise it when many sites reach the server through one address (a carrier's
    /// address translation) [default: 10].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    logins_per_client: Option<u32>,
    /// Site login attempts of all clients together a second, ten seconds' worth at once; the
    /// operator's login has a bound of its own at the same rate [default: 20].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    logins_per_second: Option<u32>,
}

impl LimitArgs {
    fn limits(&self) -> onshi_server::Limits {
        let d = onshi_server::Limits::default();
        onshi_server::Limits {
            header_timeout: self.header_timeout.unwrap_or(d.header_timeout),
            body_timeout: self.body_timeout.unwrap_or(d.body_timeout),
            request_timeout: self.request_timeout.unwrap_or(d.request_timeout),
            max_connections: self
                .max_connections
                .map_or(d.max_connections, |n| n as usize),
            shutdown_deadline: self.shutdown_deadline.unwrap_or(d.shutdown_deadline),
            logins: onshi_server::limits::LoginRates {
                per_client_per_minute: nonzero(self.logins_per_client)
                    .unwrap_or(d.logins.per_client_per_minute),
                per_door_per_second: nonzero(self.logins_per_second)
                    .unwrap_or(d.logins.per_door_per_second),
            },
        }
    }
}

/// A count clap already checked to be at least 1.
fn nonzero(n: Option<u32>) -> Option<std::num::NonZeroU32> {
    n.and_then(std::num::NonZeroU32::new)
}

/// A number of seconds, more than 0 and at most a day (`0.5` is half a second).
fn seconds(s: &str) -> Result<Duration, String> {
    let n: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(n > 0.0 && n <= 86_400.0) {
        return Err(format!("{s} is not between 0 and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(n))
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
    let smtp_url = args
        .smtp
        .clone()
        .or_else(|| std::env::var("ONSHI_SMTP").ok().filter(|u| !u.is_empty()));
    if smtp_url.is_none() && (args.smtp_user.is_some() || args.smtp_ca.is_some()) {
        return Err(bad_input(
            "--smtp-user / --smtp-ca",
            "they need a relay: --smtp URL (or ONSHI_SMTP)",
        ));
    }
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
        snapshot_key: args.snapshot_key.clone(),
        trust_root: args.trust_root.clone(),
        operator_token: std::env::var("ONSHI_OPERATOR_TOKEN").ok(),
        qualification_public: args.qualification_public,
        smtp: smtp_url.map(|url| onshi_server::notices::Relay {
            url,
            user: args.smtp_user.clone(),
            password: std::env::var("ONSHI_SMTP_PASSWORD").ok(),
            ca: args.smtp_ca.clone(),
        }),
        mail_from: args.mail_from.clone(),
        accel_redirect: args.accel_redirect.clone(),
        limits: args.limits.limits(),
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(onshi_server::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        },
        trusted_proxies: args.trusted_proxy.clone(),
        metrics_listen: args.metrics_listen,
        public_url: args.public_url.clone(),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let running = onshi_server::start(config).await?;
        if let Some(path) = &running.new_operator_token_file {
            // Never on stdout: under systemd that is the journal, kept and readable by others.
            println!(
                "onshi serve: a new operator token is in {} (mode 0600); keep it safe and \
                 delete the file",
                path.display()
            );
        }
        println!(
            "onshi serve: listening on {}://{}",
            running.scheme, running.addr
        );
        if let Some(at) = running.metrics_addr {
            println!("onshi serve: /metrics, /healthz and /readyz on http://{at}");
        }
        running.wait().await
    })
}
