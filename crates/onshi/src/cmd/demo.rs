//! `onshi demo`: the whole rollout on one machine, the first thing a newcomer runs. It starts
//! the server (embedded SQLite) on a simulated clock, sets up the 2026-01 campaign and a
//! generated release through the operator API, enrols a few hundred synthetic sites whose agents
//! run in this process against the real HTTP API, and plays the sites' days: terminals switched
//! off at night, staff restarts, patients at the reception meeting error 901 when a terminal was
//! not restarted. Live (until Ctrl-C) with the dashboard's address and a line per simulated
//! hour, or `--headless` to a given instant with a summary (`--json` for scripts).
//!
//! Sub-modules: `population` (who the sites are and how their staff behave), `setup` (the
//! operator API calls), `site` (one terminal's agent as a task), `driver` (the simulated day),
//! `summary` (what is reported), `operator` (the operator API client).

mod driver;
mod operator;
mod population;
mod setup;
mod site;
mod summary;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use jiff::{SignedDuration, Timestamp};
use onshi_agent::{Agent, Options, Pace};
use onshi_clock::Clock;
use onshi_core::jst;
use onshi_core::lang::Lang;
use onshi_core::schedule::Campaign;
use onshi_core::version::Version;

use crate::exit::bad_input;
use driver::{Driver, Governor, TICK};
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
    if !(speed.is_finite() && speed > 0.0) {
        return Err(bad_input(
            format_args!("--clock-speed {speed}"),
            "must be a positive number",
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

async fn demo(plan: &Plan, data: &DataDir, started: Instant) -> anyhow::Result<()> {
    let from_env = std::env::var("ONSHI_OPERATOR_TOKEN").ok();
    let token = from_env
        .clone()
        .unwrap_or_else(onshi_server::auth::new_secret);
    // Setting up runs at real speed; the campaign then runs at the plan's speed.
    let clock = Clock::simulated(plan.from, 1.0)?;
    let running = onshi_server::start(onshi_server::Config {
        data_dir: data.path().to_path_buf(),
        listen: plan.listen,
        clock: clock.clone(),
        signing_key: None,
        operator_token: Some(token.clone()),
        qualification_public: false,
    })
    .await?;
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .user_agent(concat!("onshi-demo/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")?;
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
    setup::campaign(&op, &population).await?;
    let agent_client = onshi_agent::Client::with_http(http.clone(), &base);
    let dirs = setup::enrol(&op, &agent_client, &data.path().join("agents"), &population).await?;
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
    let mut driver = Driver::new(
        schedule.clone(),
        target,
        governor,
        plan.from,
        plan.seed,
        sites,
    );

    if !plan.headless {
        print_banner(
            plan,
            &running.addr,
            &token,
            from_env.is_some(),
            data,
            readers,
        );
    }

    let mut watch = DownloadWatch::new(schedule.clone());
    let audit_every = if plan.headless {
        AUDIT_EVERY_HEADLESS
    } else {
        REPORT_EVERY
    };
    let mut next_report = after(plan.from, REPORT_EVERY);
    let mut next_audit = after(plan.from, audit_every);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let stopped_at = loop {
        let asked = Instant::now();
        op.ping().await?;
        let latency = asked.elapsed();
        let now = clock.now();
        let end = plan.until.map_or(now, |u| now.min(u));
        driver.advance(end, latency);
        if plan.until.is_some_and(|u| now >= u) {
            break end;
        }
        if !plan.headless && now >= next_report {
            print_progress(&op, &schedule, now, driver.tally.met_901, plan.lang).await;
            next_report = after(now, REPORT_EVERY);
        }
        if now >= next_audit {
            watch.poll(&op).await?;
            next_audit = after(now, audit_every);
        }
        let pause = clock
            .real_duration(Duration::try_from(TICK).unwrap_or(Duration::from_secs(600)) / 2)
            .clamp(Duration::from_millis(1), Duration::from_millis(500));
        tokio::select! {
            _ = &mut ctrl_c => {
                eprintln!("{}", plan.lang.pick("Ctrl-C: 停止します…", "Ctrl-C: stopping…"));
                break now;
            }
            () = tokio::time::sleep(pause) => {}
        }
    };
    // Hold the simulated world at the stop instant while the agents stop.
    clock.set(stopped_at)?;
    clock.set_speed(1.0)?;
    let tally = driver.tally.clone();
    let slowed = driver.slowed();
    let outcomes = driver.stop().await;
    watch.poll(&op).await?;
    let summary = Summary::gather(
        &op,
        &tally,
        &outcomes,
        &watch,
        &RunInfo {
            from: plan.from,
            until: stopped_at,
            speed: plan.speed,
            slowed,
            wall_seconds: started.elapsed().as_secs_f64(),
        },
    )
    .await?;
    if plan.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.render(plan.lang, plan.from, stopped_at));
    }
    for e in watch.outside.iter().take(5) {
        eprintln!(
            "download started outside the windows: {} {} at {}",
            e.subject,
            e.detail,
            schedule.rfc3339(e.at)
        );
    }
    if !watch.complete {
        eprintln!(
            "warning: the audit log moved faster than it was read; downloads outside the windows may be undercounted"
        );
    }
    for o in outcomes.iter().filter(|o| o.agent_error.is_some()).take(3) {
        eprintln!(
            "agent of site {} stopped: {}",
            o.code,
            o.agent_error.as_deref().unwrap_or_default()
        );
    }
    let store = running.state.store.clone();
    tokio::task::spawn_blocking(move || store.flush())
        .await
        .context("flushing the store")?
        .context("flushing the store")?;
    Ok(())
}

/// The first instant after `at` on the `every` grid counted from `at` (simply `at + every`).
fn after(at: Timestamp, every: SignedDuration) -> Timestamp {
    at.checked_add(every).unwrap_or(Timestamp::MAX)
}

/// What the live demo prints first: where to look, the token, the data, the clock.
fn print_banner(
    plan: &Plan,
    addr: &SocketAddr,
    token: &str,
    token_from_env: bool,
    data: &DataDir,
    readers: usize,
) {
    let sites = plan.sites;
    let token = if token_from_env {
        "ONSHI_OPERATOR_TOKEN の値 / the value of ONSHI_OPERATOR_TOKEN".to_owned()
    } else {
        token.to_owned()
    };
    let data_note = if data.is_temporary() {
        "（終了時に削除、--keep で残す / deleted at exit unless --keep）"
    } else {
        ""
    };
    if let Some(note) = &plan.listen_note {
        println!("{note}");
    }
    let seconds_per_hour = 3600.0 / plan.speed;
    println!(
        "onshi demo — オンライン資格確認等システム 更新配信のデモ / rollout demo\n\
         \x20 施設 {sites}、資格確認端末 {sites} 台、顔認証付きカードリーダー {readers} 台 / \
         {sites} sites, {sites} terminals, {readers} card readers\n\
         \x20 ダッシュボード / dashboard:        http://{addr}/\n\
         \x20 受付の再現 / reception desk:        http://{addr}/reception\n\
         \x20 運用者トークン / operator token:   {token}\n\
         \x20 データ / data:                     {}{data_note}\n\
         \x20 模擬時計 / simulated clock:        {} から {}倍速（1 時間 = {seconds_per_hour:.1} 秒）/ from {}, ×{}\n\
         \x20 Ctrl-C で終了 / Ctrl-C to stop",
        data.path().display(),
        jst::format_ja(plan.from),
        plan.speed,
        jst::format_en(plan.from),
        plan.speed,
    );
}

/// One line of the live view: the simulated time, the phase and the devices per state.
async fn print_progress(
    op: &Operator,
    schedule: &Campaign,
    now: Timestamp,
    met_901: u64,
    lang: Lang,
) {
    use onshi_core::deployment::DeploymentState as S;
    let p = match op.progress().await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("progress: {e:#}");
            return;
        }
    };
    let a = &p.all;
    let restart = a.restart_required;
    let busy = a.of(S::Downloading)
        + a.of(S::Downloaded)
        + a.of(S::Installing)
        + a.of(S::Installed).saturating_sub(restart);
    let phase = schedule.status(now).phase;
    match lang {
        Lang::Ja => println!(
            "{} [{}] 配信待ち {} · 取得・インストール中 {} · 再起動が必要 {} · 適用済み {} · 失敗 {} | 901 エラーに出会った患者 {} 人",
            jst::format_ja(now),
            phase.label_ja(),
            a.of(S::Waiting),
            busy,
            restart,
            a.of(S::Applied),
            a.of(S::Failed),
            met_901
        ),
        Lang::En => println!(
            "{} [{}] waiting {} · downloading/installing {} · restart required {} · applied {} · failed {} | patients who met 901: {}",
            jst::format_en(now),
            phase.slug(),
            a.of(S::Waiting),
            busy,
            restart,
            a.of(S::Applied),
            a.of(S::Failed),
            met_901
        ),
    }
}
