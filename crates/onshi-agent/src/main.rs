//! The `onshi-agent` command: enrol a terminal, run the agent as a service, restart the
//! terminal, show the site's status, and switch an emulated card reader on or off. Bad input
//! exits 2; any other failure 1.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use onshi_agent::{Agent, Client, Enrollment, Options, Pace, StateDir, Status, os};
use onshi_core::lang::Lang;
use onshi_core::vendor::Vendor;
use onshi_core::version::Version;

/// onshi-agent — the distribution application on a site's qualification terminal.
#[derive(Parser)]
#[command(name = "onshi-agent", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enrol this terminal (and its card readers) with the distribution server.
    Enroll(EnrollArgs),
    /// Run the agent: check in, download inside the windows, install, report.
    Run(RunArgs),
    /// Restart the terminal (applies an installed update) and report the running version.
    Restart(DirArg),
    /// Show, per component, what is installed and running and what to do now.
    Status(StatusArgs),
    /// Switch an emulated card reader on or off (tests and demos).
    Reader(ReaderArgs),
    /// Print the systemd unit that runs this agent as the terminal's service (an installer
    /// writes it to /etc/systemd/system/onshi-agent.service).
    ServiceUnit(DirArg),
}

#[derive(clap::Args)]
struct DirArg {
    /// The agent's state directory [default: $STATE_DIRECTORY, else /var/lib/onshi-agent].
    #[arg(long, value_name = "DIR", default_value_os_t = os::default_state_dir())]
    state_dir: PathBuf,
}

#[derive(clap::Args)]
struct EnrollArgs {
    /// The distribution server's base URL.
    #[arg(long, value_name = "URL")]
    server: String,
    /// The 10-digit 医療機関コード.
    #[arg(long, value_name = "CODE")]
    institution: String,
    /// The institution's enrollment key (it may start with '-').
    #[arg(long, value_name = "KEY", allow_hyphen_values = true)]
    key: String,
    #[arg(long, value_name = "DIR", default_value_os_t = os::default_state_dir())]
    state_dir: PathBuf,
    /// The terminal's serial number (default: terminal-CODE).
    #[arg(long)]
    serial: Option<String>,
    /// A card reader attached to the terminal, as VENDOR:SERIAL (repeatable). Vendors:
    /// panasonic, canon, usen-almex, fujitsu-japan, atlus.
    #[arg(long = "reader", value_name = "VENDOR:SERIAL", value_parser = parse_reader)]
    readers: Vec<(Vendor, String)>,
    /// The root metadata the installer carries (`root.json` from the operator's key ceremony):
    /// the agent trusts only metadata that chains to it, and refuses a server whose does not.
    #[arg(long, value_name = "FILE")]
    trust_root: PathBuf,
    /// The version installed before any update.
    #[arg(long, default_value = "1.0.0", value_parser = parse_version)]
    base_version: Version,
    /// The site's daily automatic restart time (HH:MM, Japan time); default: what the server has.
    #[arg(long, value_name = "HH:MM")]
    auto_restart: Option<String>,
    /// The command that restarts the terminal (e.g. "shutdown -r now"); default: restart the
    /// emulated terminal application.
    #[arg(long, value_name = "COMMAND")]
    restart_command: Option<String>,
    /// The self-check of the applied version, run after each restart onto a new version (exit
    /// 0: healthy; the version is in ONSHI_VERSION); its verdict is reported to the server,
    /// whose wave gates stop a release that fails it. Default: none.
    #[arg(long, value_name = "COMMAND")]
    self_check_command: Option<String>,
}

#[derive(clap::Args)]
struct RunArgs {
    #[arg(long, value_name = "DIR", default_value_os_t = os::default_state_dir())]
    state_dir: PathBuf,
    /// The terminal has just been switched on: its application starts with the installed version.
    #[arg(long)]
    boot: bool,
    /// Simulated seconds per real second, when the server runs a simulated clock.
    #[arg(long, default_value_t = 1.0)]
    clock_speed: f64,
    /// The longest real wait between check-ins, in milliseconds (tests and demos).
    #[arg(long, value_name = "MS")]
    max_sleep_ms: Option<u64>,
    /// Download rate limit in bytes per second.
    #[arg(long, value_name = "BYTES")]
    max_rate: Option<u64>,
}

#[derive(clap::Args)]
struct StatusArgs {
    #[arg(long, value_name = "DIR", default_value_os_t = os::default_state_dir())]
    state_dir: PathBuf,
    /// ja (default) or en.
    #[arg(long, default_value = "ja")]
    lang: Lang,
    /// JSON for scripts.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Power {
    On,
    Off,
}

#[derive(clap::Args)]
struct ReaderArgs {
    #[arg(long, value_name = "DIR", default_value_os_t = os::default_state_dir())]
    state_dir: PathBuf,
    /// The reader's serial.
    #[arg(long)]
    serial: String,
    #[arg(long, value_enum)]
    power: Power,
}

fn parse_reader(s: &str) -> Result<(Vendor, String), String> {
    let (vendor, serial) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: expected VENDOR:SERIAL"))?;
    let vendor = vendor.parse::<Vendor>().map_err(|e| e.to_string())?;
    if serial.is_empty() {
        return Err(format!("{s:?}: the serial is empty"));
    }
    Ok((vendor, serial.to_owned()))
}

fn parse_version(s: &str) -> Result<Version, String> {
    Version::parse(s).map_err(|e| e.to_string())
}

/// A failure caused by the user's input (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BadInput(String);

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("onshi-agent: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("onshi-agent: {err:#}");
            if err.downcast_ref::<BadInput>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Enroll(a) => enroll(a).await,
        Command::Run(a) => run_agent(a).await,
        Command::Restart(a) => {
            let mut agent = open(&a.state_dir, Options::default())?;
            let v = agent.restart().await?;
            println!("資格確認端末を再起動しました。実行中の版: {v}");
            Ok(())
        }
        Command::Status(a) => {
            let status = Status::read(&StateDir::new(&a.state_dir), a.lang)
                .with_context(|| format!("reading {}", a.state_dir.display()))?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", status.render(a.lang));
            }
            Ok(())
        }
        Command::ServiceUnit(a) => {
            let binary = std::env::current_exe().context("locating this program")?;
            print!("{}", os::unit(&binary, &a.state_dir));
            Ok(())
        }
        Command::Reader(a) => {
            let dir = StateDir::new(&a.state_dir);
            let identity = dir.load_identity()?;
            let reader = dir
                .reader(&identity, &a.serial)
                .map_err(|e| BadInput(e.to_string()))?;
            let on = matches!(a.power, Power::On);
            dir.set_reader_power(&reader, on)?;
            println!(
                "カードリーダー {} の電源を{}にしました。",
                a.serial,
                if on { "入" } else { "切" }
            );
            Ok(())
        }
    }
}

async fn enroll(a: EnrollArgs) -> anyhow::Result<()> {
    let client = Client::new(&a.server)?;
    let trust_root = read_root(&a.trust_root)?;
    let e = Enrollment {
        serial: a
            .serial
            .unwrap_or_else(|| format!("terminal-{}", a.institution)),
        institution: a.institution,
        enrollment_key: a.key,
        readers: a.readers,
        trust_root,
        base_version: a.base_version,
        auto_restart: a.auto_restart,
        restart_command: a
            .restart_command
            .map(|c| c.split_whitespace().map(str::to_owned).collect()),
        self_check_command: a
            .self_check_command
            .map(|c| c.split_whitespace().map(str::to_owned).collect()),
    };
    let dir = StateDir::new(&a.state_dir);
    let identity = onshi_agent::enroll(&dir, &client, &e)
        .await
        .map_err(|err| match err {
            onshi_agent::EnrollError::Server(c) if c.is_unreachable() => anyhow::Error::new(c),
            other => anyhow::Error::new(BadInput(other.to_string())),
        })?;
    println!(
        "登録しました: 医療機関コード {} 端末 {} (カードリーダー {} 台)。次に `onshi-agent run --state-dir {}` を実行してください。",
        identity.institution,
        identity.terminal.device_id,
        identity.readers.len(),
        a.state_dir.display()
    );
    Ok(())
}

/// The installer's `root.json`: signed root metadata (verified by `enroll`).
fn read_root(path: &std::path::Path) -> anyhow::Result<onshi_core::trust::Signed> {
    let text = std::fs::read(path).map_err(|e| {
        BadInput(format!(
            "--trust-root {}: {e} (the installer's root.json is required)",
            path.display()
        ))
    })?;
    serde_json::from_slice(&text).map_err(|e| {
        BadInput(format!(
            "--trust-root {} is not signed root metadata: {e}",
            path.display()
        ))
        .into()
    })
}

fn open(state_dir: &std::path::Path, options: Options) -> anyhow::Result<Agent> {
    let dir = StateDir::new(state_dir);
    let identity = dir.load_identity().map_err(|e| BadInput(e.to_string()))?;
    let client = Client::new(&identity.server)?;
    Ok(Agent::open(dir, client, options)?)
}

async fn run_agent(a: RunArgs) -> anyhow::Result<()> {
    if !(a.clock_speed.is_finite() && a.clock_speed > 0.0) {
        return Err(BadInput(format!(
            "--clock-speed {} must be a positive number",
            a.clock_speed
        ))
        .into());
    }
    let options = Options {
        pace: Pace {
            speed: a.clock_speed,
            max_sleep: a
                .max_sleep_ms
                .map_or(Pace::REAL.max_sleep, Duration::from_millis),
        },
        max_rate: a.max_rate,
        progress_bar: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let mut agent = open(&a.state_dir, options)?;
    if a.boot {
        agent.boot()?;
    }
    tracing::info!(state_dir = %a.state_dir.display(), server = %agent.identity().server, "agent running");
    let service = os::Service::from_env();
    // Listening for SIGTERM before READY: a stop right after it is a clean stop.
    let stop = os::StopRequest::listen();
    service.ready("checking in");
    agent
        .run(async {
            stop.requested().await;
            service.stopping();
        })
        .await?;
    tracing::info!("agent stopped");
    Ok(())
}

/// Structured logs on stderr; `RUST_LOG` filters, `ONSHI_LOG_FORMAT=json` for JSON lines.
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,onshi_agent=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("ONSHI_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
