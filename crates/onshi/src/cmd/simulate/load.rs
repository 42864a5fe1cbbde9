//! `onshi simulate --against URL`: the load mode. Drives a real `onshi serve` (a fresh data
//! directory, usually on a simulated clock) with N sites whose terminals and readers run the
//! real agent library in this process, for capacity tests on loopback. The sites are the demo's
//! population, drawn from the simulator's model (the `national-2026-01` preset: kinds,
//! prefectures, readers and vendors, automatic restarts). It sets the server up through the
//! operator API the way the demo does (institutions, a generated release, the 2026-01 campaign),
//! runs the agents for a while and reports requests per second, latency and where the devices
//! ended.

use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use onshi_agent::client::Metrics;
use onshi_agent::{Agent, Client, Options, Pace};
use onshi_core::deployment::DeploymentState;
use onshi_core::lang::Lang;
use serde::Serialize;

use crate::cmd::demo::{operator::Operator, population::Population, setup};
use crate::exit::bad_input;

/// What the load mode is asked to do.
pub struct Load<'a> {
    pub url: &'a str,
    pub sites: u32,
    pub duration: Duration,
    pub clock_speed: f64,
    pub seed: u64,
    /// The key ceremony's directory (root.json, targets-N.key) of the server under load.
    pub keys: Option<&'a std::path::Path>,
}

/// What a load run measured.
#[derive(Debug, Serialize)]
pub struct LoadReport {
    pub server: String,
    pub sites: u64,
    pub devices: u64,
    pub duration_seconds: f64,
    pub requests: u64,
    pub errors: u64,
    pub requests_per_second: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub states: std::collections::BTreeMap<String, u64>,
    pub agent_errors: u64,
}

/// Runs the load mode; the operator token comes from `ONSHI_OPERATOR_TOKEN`.
pub fn run(load: &Load<'_>) -> anyhow::Result<LoadReport> {
    let token = std::env::var("ONSHI_OPERATOR_TOKEN").map_err(|_| {
        bad_input(
            "--against",
            "set ONSHI_OPERATOR_TOKEN to the server's operator token",
        )
    })?;
    let keys = load.keys.ok_or_else(|| {
        bad_input(
            "--against",
            "give --keys DIR, the server's key ceremony directory (root.json, targets-N.key)",
        )
    })?;
    if !(load.clock_speed.is_finite() && load.clock_speed > 0.0) {
        return Err(bad_input("--clock-speed", "must be a positive number"));
    }
    if !(1..=2000).contains(&load.sites) {
        return Err(bad_input("--agents", "must be 1 to 2000 sites"));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(drive(load, keys, &token))
}

async fn drive(load: &Load<'_>, keys: &Path, token: &str) -> anyhow::Result<LoadReport> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        // The server closes a connection idle for its header timeout (10 s by default): let
        // go of idle connections first, so no request goes out on one it is closing.
        .pool_idle_timeout(Duration::from_secs(5))
        .user_agent(concat!("onshi-load/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")?;
    let base = load.url.trim_end_matches('/');
    let op = Operator::new(http.clone(), base, token);
    op.ping()
        .await
        .with_context(|| format!("reaching {base} as the operator"))?;
    let population = Population::generate(load.sites, load.seed)?;
    let signer = setup::Signer::from_dir(keys)
        .map_err(|e| bad_input(format_args!("--keys {}", keys.display()), e))?;
    setup::campaign(&op, &population, &signer)
        .await
        .context("setting the server up (it needs a fresh data directory)")?;
    let agents_dir = tempfile::tempdir().context("a directory for the agents")?;
    let plain = Client::with_http(http.clone(), base);
    let dirs = setup::enrol(&op, &plain, agents_dir.path(), &population, &signer.root).await?;
    let metrics = Arc::new(Metrics::default());
    let client = Client::with_http(http, base).with_metrics(metrics.clone());
    let options = Options {
        pace: Pace {
            speed: load.clock_speed,
            max_sleep: Duration::from_secs(60),
        },
        max_rate: None,
        progress_bar: false,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for dir in dirs {
        let mut agent = Agent::open(dir, client.clone(), options)?;
        let mut stopped = stopped.clone();
        tasks.spawn(async move {
            agent
                .run(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
        });
    }
    let started = Instant::now();
    let bar = std::io::stderr()
        .is_terminal()
        .then(|| indicatif::ProgressBar::new(load.duration.as_secs()));
    while started.elapsed() < load.duration {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Some(b) = &bar {
            b.set_position(started.elapsed().as_secs());
            b.set_message(format!(
                "{} requests",
                metrics.requests.load(Ordering::Relaxed)
            ));
        }
    }
    let elapsed = started.elapsed();
    let _ = stop.send(true);
    let mut agent_errors = 0;
    while let Some(done) = tasks.join_next().await {
        if !matches!(done, Ok(Ok(()))) {
            agent_errors += 1;
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let progress = op.progress().await?;
    let requests = metrics.requests.load(Ordering::Relaxed);
    Ok(LoadReport {
        server: base.to_owned(),
        sites: u64::from(load.sites),
        devices: progress.all.total,
        duration_seconds: (elapsed.as_secs_f64() * 10.0).round() / 10.0,
        requests,
        errors: metrics.errors.load(Ordering::Relaxed),
        requests_per_second: (requests as f64 / elapsed.as_secs_f64() * 10.0).round() / 10.0,
        latency_p50_ms: metrics.quantile(0.5).as_secs_f64() * 1000.0,
        latency_p99_ms: metrics.quantile(0.99).as_secs_f64() * 1000.0,
        states: DeploymentState::ALL
            .iter()
            .map(|s| (s.slug().to_owned(), progress.all.get(*s)))
            .collect(),
        agent_errors,
    })
}

impl LoadReport {
    /// The report for people.
    pub fn text(&self, lang: Lang) -> String {
        let states = self
            .states
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(" / ");
        match lang {
            Lang::Ja => format!(
                "負荷試験 {}：{} 施設・機器 {} 台のエージェントを {:.1} 秒\n\
                 \x20 リクエスト {} 件（{:.1} 件/秒）、エラー {} 件、応答時間 中央値 {:.2} ms 以下・99% {:.2} ms 以下\n\
                 \x20 機器の状態: {states}\n\
                 \x20 異常終了したエージェント {} 件\n",
                self.server,
                self.sites,
                self.devices,
                self.duration_seconds,
                self.requests,
                self.requests_per_second,
                self.errors,
                self.latency_p50_ms,
                self.latency_p99_ms,
                self.agent_errors
            ),
            Lang::En => format!(
                "Load test of {}: agents of {} sites, {} devices, for {:.1} s\n\
                 \x20 requests {} ({:.1}/s), errors {}, latency p50 ≤ {:.2} ms, p99 ≤ {:.2} ms\n\
                 \x20 device states: {states}\n\
                 \x20 agents that stopped with an error: {}\n",
                self.server,
                self.sites,
                self.devices,
                self.duration_seconds,
                self.requests,
                self.requests_per_second,
                self.errors,
                self.latency_p50_ms,
                self.latency_p99_ms,
                self.agent_errors
            ),
        }
    }
}
