//! The notices worker's planning at national scale (issue 16): opens the store of a data
//! directory that `onshi fixture` made (the 2026-01 campaign active), then runs one planning
//! round exactly as the worker does ([`Round`], [`PAGES_PER_TICK`] pages a step, without the
//! worker's 100 ms between steps) at 13:00 on the first night's day, when every site is due the
//! announcement and the keep-power-on reminder. It reports the process's peak RSS during the
//! round above its RSS before it (the opened store's memory is before; SQLite's page cache and
//! everything the round allocates are in it; the workspace forbids `unsafe`, so no counting
//! allocator). Run by
//! `bench/notices-plan`; `ONSHI_BENCH_DATA` names the data directory.

use std::sync::Arc;
use std::time::Instant;

use onshi_clock::Clock;
use onshi_server::AppState;
use onshi_server::notices::plan::{PAGE, PAGES_PER_TICK, Round};
use onshi_store::{InstitutionFilter, SqliteStore, Store};

/// A `/proc/self/status` field in KiB.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

const MIB: f64 = 1024.0 * 1024.0;

fn main() -> anyhow::Result<()> {
    let data = std::path::PathBuf::from(
        std::env::var("ONSHI_BENCH_DATA")
            .map_err(|_| anyhow::anyhow!("set ONSHI_BENCH_DATA to an `onshi fixture` data dir"))?,
    );
    let at = "2026-01-19T13:00:00+09:00".parse()?;
    let store = Arc::new(SqliteStore::open(&data.join("onshi.db"))?);
    let (_, sites) = store.institutions(&InstitutionFilter {
        limit: 1,
        ..InstitutionFilter::default()
    })?;
    let before = store.mail_summary()?.pending;
    // The fixture's key ceremony: its root in the store, its timestamp key in DATA/keys.
    let trust = onshi_server::trust::TrustState::load(
        store.as_ref(),
        None,
        &onshi_server::trust::OnlineKeyFiles {
            timestamp: &data.join("keys").join("timestamp.key"),
            snapshot: None,
        },
    )?;
    let state = AppState::new(
        store.clone(),
        Clock::simulated(at, 1.0)?,
        data,
        trust,
        String::new(),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;

    // The peak RSS starts again from here (Linux: writing 5 to clear_refs resets VmHWM).
    std::fs::write("/proc/self/clear_refs", "5")?;
    let rss_before = status_kib("VmRSS:");
    let started = Instant::now();
    let steps = runtime.block_on(async {
        let mut round = Round::start(&state, at)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        let mut steps = 0u64;
        while !round
            .step(&state, PAGES_PER_TICK)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?
        {
            steps += 1;
        }
        anyhow::Ok(steps + 1)
    })?;
    let took = started.elapsed();
    let rss_peak = status_kib("VmHWM:").saturating_sub(rss_before);
    let planned = store.mail_summary()?.pending - before;

    println!("notices planning round at 2026-01-19 13:00 JST, {sites} sites");
    println!(
        "pages {steps} of {PAGE} sites ({PAGES_PER_TICK} a worker tick), {planned} mails planned in {:.1} s ({:.0} sites/s without the worker's pacing)",
        took.as_secs_f64(),
        sites as f64 / took.as_secs_f64()
    );
    println!(
        "RSS peak of the round above the RSS before it {:7.1} MiB (RSS before {:.1} MiB)",
        rss_peak as f64 * 1024.0 / MIB,
        rss_before as f64 * 1024.0 / MIB
    );
    println!(
        "BENCH sites={sites} planned={planned} pages={steps} seconds={:.2} rss_peak_kib={rss_peak}",
        took.as_secs_f64()
    );
    Ok(())
}
