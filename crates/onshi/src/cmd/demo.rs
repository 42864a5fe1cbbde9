//! `onshi demo`: the whole rollout on one machine, the first thing a newcomer runs. It starts
//! the server (embedded SQLite) on a simulated clock, sets up the 2026-01 campaign and a
//! generated release through the operator API, enrols a few hundred synthetic sites whose agents
//! run in this process against the real HTTP API, and plays the sites' days: terminals switched
//! off at night, staff restarts, patients at the reception meeting error 901 when a terminal was
//! not restarted. Live (until Ctrl-C) with the dashboard's address and a line per simulated
//! hour, or `--headless` to a given instant with a summary (`--json` for scripts).
//!
//! Sub-modules: `population` (who the sites are and how their staff behave, drawn from the
//! simulator's model of the country), `setup` (the
//! operator API calls), `site` (one terminal's agent as a task), `driver` (the simulated day,
//! run on an OS thread of its own), `governor` (how fast a headless run's clock goes),
//! `summary` (what is reported), `view` (the live view), `operator` (the operator API client).

mod driver;
mod governor;
pub(crate) mod operator;
pub(crate) mod population;
pub(crate) mod setup;
mod site;
mod summary;
mod view;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use jiff::{SignedDuration, Timestamp};
use onshi_agent::{Agent, Options, Pace};
use onshi_clock::Clock;
use onshi_core::lang::Lang;
use onshi_core::schedule::Campaign;
use onshi_core::version::Version;

use crate::exit::bad_input;
use driver::Driver;
use governor::{Governor, TICK};
use operator::{CAMPAIGN, Operator};
use population::Population;
use site::SiteTask;
use summary::{DownloadWatch, RunInfo, Summary};

#[derive(clap::Args)]
pub struct Args {
    /// How many institutions (sites) to create.
    #[arg(long, default_value_t = 200)]
    sites: u32,
    /// Seed for the sites and their habits: the same seed gives the same sites.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Data directory (must not hold a database yet). Default: a temporary directory, deleted
    /// at the end unless --keep.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Keep the temporary data directory and print where it is.
    #[arg(long)]
    keep: bool,
    /// Address of the server. Default: 127.0.0.1:8080 (a free port if that one is busy);
    /// headless: a free port.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The simulated instant the demo starts at (RFC 3339).
    #[arg(
        long,
        value_name = "RFC3339",
        default_value = "2026-01-19T18:00:00+09:00"
    )]
    clock: String,
    /// Simulated seconds per real second. Default: 600 live (an hour in 6 s); headless 60000
    /// (about 17 hours a second), slowed down while a window is open and sites still have
    /// packages to fetch.
    #[arg(long)]
    clock_speed: Option<f64>,
    /// No live view: run to --until, print a summary and exit.
    #[arg(long, requires = "until")]
    headless: bool,
    /// With --headless: print the summary as JSON.
    #[arg(long, requires = "headless")]
    json: bool,
    /// The simulated instant to stop at (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    until: Option<String>,
    /// Language of what is printed: ja (default) or en.
    #[arg(long, default_value = "ja")]
    lang: Lang,
}

/// Every agent runs in this process; larger fleets are the simulator's work.
const MAX_SITES: u32 = 2000;
const LIVE_SPEED: f64 = 600.0;
/// How long after the server stops answering the demo still takes it for the stop signal both
/// heard rather than a failure.
const SIGNAL_GRACE: Duration = Duration::from_secs(2);
/// Beyond this a millisecond is more than a simulated quarter of an hour.
const MAX_SPEED: f64 = 1_000_000.0;
/// The headless clock's speed when no downloads are due: the two-week campaign in well under a
/// minute. The governor slows it down for the downloads at a window's opening.
const HEADLESS_SPEED: f64 = 60_000.0;
const LIVE_LISTEN: &str = "127.0.0.1:8080";
/// The longest an agent sleeps in real time, so that a clock moved by the operator is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(2);
/// How often (simulated) the live view prints a line and the audit log is read.
const REPORT_EVERY: SignedDuration = SignedDuration::from_hours(1);
/// How often (simulated) a headless run reads the audit log.
const AUDIT_EVERY_HEADLESS: SignedDuration = SignedDuration::from_hours(3);

/// The validated arguments.
#[derive(Clone)]
struct Plan {
    sites: u32,
    seed: u64,
    from: Timestamp,
    until: Option<Timestamp>,
    speed: f64,
    headless: bool,
    json: bool,
    lang: Lang,
    listen: SocketAddr,
    /// Why the default address was not used.
    listen_note: Option<String>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let plan = plan(args)?;
    let data = DataDir::prepare(args.data.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(demo(&plan, &data, started));
    // Every agent and the server stop before their directory goes.
    runtime.shutdown_timeout(Duration::from_secs(5));
    data.finish(args.keep, plan.lang);
    result
}

fn plan(args: &Args) -> anyhow::Result<Plan> {
    if !(1..=MAX_SITES).contains(&args.sites) {
        return Err(bad_input(
            format_args!("--sites {}", args.sites),
            format_args!(
                "must be 1–{MAX_SITES}: every site's agent runs inside this process \
                 (the fleet simulator is for national numbers)"
            ),
        ));
    }
    let from: Timestamp = args.clock.parse().map_err(|e| {
        bad_input(
            format_args!("--clock {:?} is not an RFC 3339 instant", args.clock),
            e,
        )
    })?;
    let until = match &args.until {
        None => None,
        Some(text) => {
            let until: Timestamp = text.parse().map_err(|e| {
                bad_input(
                    format_args!("--until {text:?} is not an RFC 3339 instant"),
                    e,
                )
            })?;
            if until <= from {
                return Err(bad_input(
                    format_args!("--until {text}"),
                    format_args!("must be after the start ({})", args.clock),
                ));
            }
            Some(until)
        }
    };
    let speed = args.clock_speed.unwrap_or(if args.headless {
        HEADLESS_SPEED
    } else {
        LIVE_SPEED
    });
    if !(1.0..=MAX_SPEED).contains(&speed) {
        return Err(bad_input(
            format_args!("--clock-speed {speed}"),
            format_args!("must be 1–{MAX_SPEED} (simulated seconds per real second)"),
        ));
    }
    let (listen, listen_note) = listen_address(args)?;
    Ok(Plan {
        sites: args.sites,
        seed: args.seed,
        from,
        until,
        speed,
        headless: args.headless,
        json: args.json,
        lang: args.lang,
        listen,
        listen_note,
    })
}

/// The address to serve on: as given; a free port headless; else 8080, or a free port if 8080
/// is taken (said so in the banner).
fn listen_address(args: &Args) -> anyhow::Result<(SocketAddr, Option<String>)> {
    let any: SocketAddr = "127.0.0.1:0".parse()?;
    if let Some(addr) = args.listen {
        return Ok((addr, None));
    }
    if args.headless {
        return Ok((any, None));
    }
    let preferred: SocketAddr = LIVE_LISTEN.parse()?;
    match std::net::TcpListener::bind(preferred) {
        Ok(probe) => {
            drop(probe);
            Ok((preferred, None))
        }
        Err(e) => Ok((
            any,
            Some(format!(
                "{LIVE_LISTEN} は使えないため空いているポートを使います / \
                 {LIVE_LISTEN} is not available ({e}); using a free port"
            )),
        )),
    }
}

/// The data directory: the one given, or a temporary one.
enum DataDir {
    Given(PathBuf),
    Temp(tempfile::TempDir),
}

impl DataDir {
    fn prepare(given: Option<&Path>) -> anyhow::Result<Self> {
        if let Some(dir) = given {
            if dir.join("onshi.db").exists() {
                return Err(bad_input(
                    format_args!("--data {}", dir.display()),
                    "already holds onshi.db; the demo sets up a fresh directory (remove it or pick another)",
                ));
            }
            return Ok(Self::Given(dir.to_path_buf()));
        }
        // The emulated terminals fsync every step as real ones must; hundreds of them on one
        // disk would spend the demo waiting for it. The data is thrown away, so where Linux
        // offers memory-backed /dev/shm it goes there.
        let shm = Path::new("/dev/shm");
        let temp = (shm.is_dir())
            .then(|| {
                tempfile::Builder::new()
                    .prefix("onshi-demo-")
                    .tempdir_in(shm)
                    .ok()
            })
            .flatten();
        let temp = match temp {
            Some(t) => t,
            None => tempfile::Builder::new()
                .prefix("onshi-demo-")
                .tempdir()
                .context("creating a temporary data directory")?,
        };
        Ok(Self::Temp(temp))
    }

    fn path(&self) -> &Path {
        match self {
            Self::Given(p) => p,
            Self::Temp(t) => t.path(),
        }
    }

    fn is_temporary(&self) -> bool {
        matches!(self, Self::Temp(_))
    }

    /// Deletes a temporary directory, or keeps it and says where.
    fn finish(self, keep: bool, lang: Lang) {
        if let Self::Temp(t) = self
            && keep
        {
            let path = t.keep();
            eprintln!(
                "{}: {}",
                lang.pick("データを残しました", "data kept in"),
                path.display()
            );
        }
    }
}

/// Everything the demo runs once it is set up.
struct World {
    running: onshi_server::Running,
    op: Operator,
    stage: Stage,
}

/// What the driver's thread needs.
struct Stage {
    clock: Clock,
    /// The thread's own operator session.
    op: Operator,
    schedule: Campaign,
    driver: Driver,
}

async fn demo(plan: &Plan, data: &DataDir, started: Instant) -> anyhow::Result<()> {
    let World { running, op, stage } = set_up(plan, data).await?;
    let (stage, end, mut watch) = play_apart(plan, stage).await?;
    let Stage {
        clock,
        schedule,
        driver,
        ..
    } = stage;
    // Hold the simulated world at the stop instant while the agents stop.
    clock.set(end.at)?;
    clock.set_speed(1.0)?;
    let tally = driver.tally.clone();
    let slowed = driver.slowed();
    let outcomes = driver.stop().await;
    if end.interrupted {
        // The server heard the signal too and is finishing its requests; wait for it.
        running.wait().await?;
        eprintln!("{}", plan.lang.pick("停止しました。", "stopped."));
        return Ok(());
    }
    watch.poll(&op).await?;
    let run = RunInfo {
        from: plan.from,
        until: end.at,
        speed: plan.speed,
        slowed,
        wall_seconds: started.elapsed().as_secs_f64(),
    };
    let summary = Summary::gather(&op, &tally, &outcomes, &watch, &run).await?;
    if plan.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.render(plan.lang, plan.from, end.at));
    }
    view::warnings(&schedule, &watch, &outcomes);
    let store = running.state.store.clone();
    tokio::task::spawn_blocking(move || store.flush())
        .await
        .context("flushing the store")?
        .context("flushing the store")
}

/// Starts the server, sets the campaign up through the operator API, enrols every site and
/// starts its agent.
async fn set_up(plan: &Plan, data: &DataDir) -> anyhow::Result<World> {
    let from_env = std::env::var("ONSHI_OPERATOR_TOKEN").ok();
    let token = from_env
        .clone()
        .unwrap_or_else(onshi_server::auth::new_secret);
    // Setting up runs at real speed; the campaign then runs at the plan's speed.
    let clock = Clock::simulated(plan.from, 1.0)?;
    // The key ceremony an operator runs offline (`onshi keys init`): the server gets root.json
    // and the timestamp key only; the demo's "workstation" keeps the targets keys.
    let keys_dir = data.path().join("ceremony");
    let expires = jiff::Timestamp::now()
        .max(plan.from)
        .saturating_add(jiff::SignedDuration::from_hours(24 * 365))?;
    let ceremony = super::keys::ceremony(
        &keys_dir,
        &super::keys::CeremonyPlan {
            root_keys: 3,
            root_threshold: 2,
            targets_keys: 2,
            targets_threshold: 2,
            snapshot_key: false,
            expires,
        },
    )?;
    let signer = setup::Signer {
        root: ceremony.root,
        targets: ceremony.targets_keys,
    };
    let running = onshi_server::start(onshi_server::Config {
        data_dir: data.path().to_path_buf(),
        listen: plan.listen,
        clock: clock.clone(),
        timestamp_key: Some(keys_dir.join("timestamp.key")),
        snapshot_key: None,
        trust_root: Some(keys_dir.join("root.json")),
        operator_token: Some(token.clone()),
        qualification_public: false,
        database: None,
        // The notices go to DATA/outbox/*.eml: a demo sends no real mail.
        smtp: None,
        mail_from: None,
        accel_redirect: None,
        limits: onshi_server::Limits::default(),
        tls: None,
        trusted_proxies: Vec::new(),
        metrics_listen: None,
        public_url: None,
    })
    .await?;
    let base = format!("http://{}", running.addr);
    let http = http_client()?;
    let op = Operator::new(http.clone(), &base, &token);
    let population = Population::generate(plan.sites, plan.seed)?;
    if !plan.json {
        eprintln!(
            "{}",
            plan.lang.pick(
                "準備中: 施設・リリース・キャンペーンを登録し、端末とカードリーダーを登録しています…",
                "setting up: institutions, release, campaign, enrolling terminals and readers…",
            )
        );
    }
    setup::campaign(&op, &population, &signer).await?;
    let agent_client = onshi_agent::Client::with_http(http, &base);
    let dirs = setup::enrol(
        &op,
        &agent_client,
        &data.path().join("agents"),
        &population,
        &signer.root,
    )
    .await?;
    let readers = population.readers();

    // Headless, the clock starts slow and the governor speeds it up as far as the machine
    // keeps up (the agents' first check-ins come all at once).
    clock.set_speed(if plan.headless {
        Governor::SLOWEST.min(plan.speed)
    } else {
        plan.speed
    })?;
    let options = Options {
        pace: Pace {
            speed: plan.speed,
            max_sleep: MAX_SLEEP,
        },
        max_rate: None,
        progress_bar: false,
    };
    let mut sites = Vec::with_capacity(dirs.len());
    for (site, dir) in population.sites.into_iter().zip(dirs) {
        let agent = Agent::open(dir.clone(), agent_client.clone(), options)
            .with_context(|| format!("opening the agent of site {}", site.code))?;
        sites.push((site, dir, SiteTask::spawn(agent, agent_client.clone())));
    }
    let schedule = Campaign::preset(CAMPAIGN).context("the 2026-01 preset")?;
    // Live, the clock keeps the speed asked for; headless, it slows down for the downloads.
    let governor = plan
        .headless
        .then(|| Governor::new(clock.clone(), plan.speed, options));
    let target = Version::parse(setup::RELEASE_VERSION).context("the release version")?;
    let driver = Driver::new(
        schedule.clone(),
        target,
        governor,
        plan.from,
        plan.seed,
        sites,
    );
    if !plan.headless {
        view::banner(&view::Banner {
            addr: running.addr,
            token: (from_env.is_none()).then_some(token.as_str()),
            data: data.path(),
            temporary: data.is_temporary(),
            sites: plan.sites,
            readers,
            from: plan.from,
            speed: plan.speed,
            listen_note: plan.listen_note.as_deref(),
        });
    }
    Ok(World {
        running,
        stage: Stage {
            clock,
            op: op.clone(),
            schedule,
            driver,
        },
        op,
    })
}

/// Runs [`play`] on an OS thread of its own: hundreds of agents keep this runtime's workers
/// busy, and a driver queued behind them would fall behind the clock before the governor could
/// slow it down.
async fn play_apart(plan: &Plan, stage: Stage) -> anyhow::Result<(Stage, End, DownloadWatch)> {
    let plan = plan.clone();
    let thread = std::thread::Builder::new()
        .name("onshi-demo-driver".into())
        .spawn(move || -> anyhow::Result<(Stage, End, DownloadWatch)> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the driver's runtime")?;
            runtime.block_on(async move {
                let mut stage = stage;
                // Connections of its own, served by this thread's runtime.
                stage.op = stage.op.detached()?;
                let mut watch = DownloadWatch::new(stage.schedule.clone());
                let end = play(&plan, &mut stage, &mut watch).await?;
                Ok((stage, end, watch))
            })
        })
        .context("starting the driver's thread")?;
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .context("waiting for the driver's thread")?
        .map_err(|_| anyhow::anyhow!("the driver's thread panicked"))?
}

/// The one HTTP client setup of the demo (operator calls and the agents share it).
fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        // The server closes a connection idle for its header timeout (10 s by default): let
        // go of idle connections first, so no request goes out on one it is closing.
        .pool_idle_timeout(Duration::from_secs(5))
        .user_agent(concat!("onshi-demo/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")
}

/// Where and how the run ended.
struct End {
    at: Timestamp,
    interrupted: bool,
}

/// Plays the sites' days until `--until`, Ctrl-C or SIGTERM: the driver's ticks, a line every simulated
/// hour (live), the audit log read now and then.
async fn play(plan: &Plan, world: &mut Stage, watch: &mut DownloadWatch) -> anyhow::Result<End> {
    let audit_every = if plan.headless {
        AUDIT_EVERY_HEADLESS
    } else {
        REPORT_EVERY
    };
    let mut next_report = next_on_grid(plan.from, REPORT_EVERY, plan.from);
    let mut next_audit = next_on_grid(plan.from, audit_every, plan.from);
    // The embedded server stops on the same signal; a request sent meanwhile finds it gone.
    let stop = onshi_server::shutdown_signal();
    tokio::pin!(stop);
    loop {
        let asked = Instant::now();
        if let Err(e) = world.op.ping().await {
            return stopped_or(stop.as_mut(), e, world.clock.now(), plan.lang).await;
        }
        let latency = asked.elapsed();
        let now = world.clock.now();
        let end = plan.until.map_or(now, |u| now.min(u));
        world.driver.advance(end, latency);
        if plan.until.is_some_and(|u| now >= u) {
            return Ok(End {
                at: end,
                interrupted: false,
            });
        }
        if !plan.headless && now >= next_report {
            let tally = &world.driver.tally;
            view::progress(&world.op, &world.schedule, next_report, tally, plan.lang).await;
            next_report = next_on_grid(plan.from, REPORT_EVERY, now);
        }
        if now >= next_audit {
            if let Err(e) = watch.poll(&world.op).await {
                return stopped_or(stop.as_mut(), e, now, plan.lang).await;
            }
            next_audit = next_on_grid(plan.from, audit_every, now);
        }
        let pause = world
            .clock
            .real_duration(Duration::try_from(TICK).unwrap_or(Duration::from_secs(600)) / 2)
            .clamp(Duration::from_millis(1), Duration::from_millis(100));
        tokio::select! {
            () = &mut stop => {
                stopping(plan.lang);
                return Ok(End { at: now, interrupted: true });
            }
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// A request of the run failed: if the stop signal comes within [`SIGNAL_GRACE`], the server
/// stopped on it (it hears the signal too) and the run ends as interrupted; else the failure
/// stands.
async fn stopped_or(
    stop: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    failure: anyhow::Error,
    at: Timestamp,
    lang: Lang,
) -> anyhow::Result<End> {
    match tokio::time::timeout(SIGNAL_GRACE, stop).await {
        Ok(()) => {
            stopping(lang);
            Ok(End {
                at,
                interrupted: true,
            })
        }
        Err(_) => Err(failure),
    }
}

fn stopping(lang: Lang) {
    eprintln!(
        "{}",
        lang.pick(
            "停止の指示を受けました。停止します…",
            "stopping (Ctrl-C or SIGTERM)…"
        )
    );
}

/// The first instant after `now` on the grid `from + k·every`.
fn next_on_grid(from: Timestamp, every: SignedDuration, now: Timestamp) -> Timestamp {
    let every_s = every.as_secs().max(1);
    let k = now.duration_since(from).as_secs().div_euclid(every_s) + 1;
    from.checked_add(SignedDuration::from_secs(k.saturating_mul(every_s)))
        .unwrap_or(Timestamp::MAX)
}
