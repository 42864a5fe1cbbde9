//! What the gates worker reads each round at national scale (issue 20): opens the store of a
//! data directory that `onshi fixture` made (the 2026-01 campaign active, every device
//! waiting), deals its sites into five waves (`start_waves`, which counts the tally once), moves
//! a share of the devices through the states a night sees (each report keeps the tally in its
//! transaction), then times `wave_health` — what a round reads — against the grouped count
//! over every deployment that it replaced (the anchor, the same database in the same run), and
//! last what the triggers cost each report: as many devices again through the same night with
//! the triggers dropped.
//! Run by `bench/gates`; `ONSHI_BENCH_DATA` names the data directory.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use onshi_core::deployment::DeploymentState::{
    Applied, Downloaded, Downloading, Failed, Installed, Installing, Waiting,
};
use onshi_core::waves::WaveProgress;
use onshi_store::{Report, SqliteStore, Store};

const CAMPAIGN: &str = "2026-01";
const WAVES: u16 = 5;
const LAST: u16 = WAVES - 1;

/// The grouped count over every deployment the gates read before migration 0007.
const GROUPED: &str = "SELECT COALESCE(w.wave, ?2) AS wave,
        COUNT(*),
        SUM(CASE WHEN d.kind = 'terminal' THEN 1 ELSE 0 END),
        SUM(CASE WHEN p.state <> 'waiting' THEN 1 ELSE 0 END),
        SUM(CASE WHEN p.state = 'failed' THEN 1 ELSE 0 END),
        SUM(CASE WHEN d.kind = 'terminal' AND p.state = 'applied' THEN 1 ELSE 0 END),
        SUM(CASE WHEN d.kind = 'terminal' AND p.health = 'unhealthy' THEN 1 ELSE 0 END),
        SUM(CASE WHEN d.kind = 'terminal' AND p.state = 'installed' AND p.restarted_at IS NOT NULL THEN 1 ELSE 0 END),
        SUM(CASE WHEN d.kind = 'terminal' AND p.state = 'installed' AND p.restarted_at <= ?3 THEN 1 ELSE 0 END)
     FROM deployments p JOIN devices d ON d.id = p.device_id
     LEFT JOIN wave_sites w ON w.campaign_id = p.campaign_id AND w.institution_code = d.institution_code
     WHERE p.campaign_id = ?1
     GROUP BY COALESCE(w.wave, ?2)
     ORDER BY 1";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Moves `devices` through a night (a tenth fail, the rest are applied); answers how many
/// reports that was and the mean time of one.
fn night(store: &SqliteStore, devices: &[i64], now: Timestamp) -> anyhow::Result<(u32, Duration)> {
    let mut reports = 0u32;
    let started = Instant::now();
    for (i, &device) in devices.iter().enumerate() {
        let path: &[_] = if i % 10 == 0 {
            &[Waiting, Downloading, Failed]
        } else {
            &[
                Waiting,
                Downloading,
                Downloaded,
                Installing,
                Installed,
                Applied,
            ]
        };
        for (seq, step) in path.windows(2).enumerate() {
            store.apply_report(&Report {
                campaign: CAMPAIGN,
                device,
                seq: seq as i64 + 1,
                from: step[0],
                to: step[1],
                bytes: 0,
                at: now,
            })?;
            reports += 1;
        }
    }
    Ok((reports, started.elapsed() / reports.max(1)))
}

fn main() -> anyhow::Result<()> {
    let data = std::path::PathBuf::from(
        std::env::var("ONSHI_BENCH_DATA")
            .map_err(|_| anyhow::anyhow!("set ONSHI_BENCH_DATA to an `onshi fixture` data dir"))?,
    );
    let path = data.join("onshi.db");
    let store = SqliteStore::open(&path)?;
    let now: Timestamp = "2026-01-20T03:00:00Z".parse()?;

    let devices = store.all_devices()?;
    let mut codes: Vec<_> = devices.iter().map(|(_, i)| i.code).collect();
    codes.sort();
    codes.dedup();
    let sites: Vec<_> = codes
        .iter()
        .enumerate()
        .map(|(i, c)| (*c, (i % usize::from(WAVES)) as u16))
        .collect();
    let started = Instant::now();
    store.start_waves(CAMPAIGN, &sites, &WaveProgress::start(now), now)?;
    let deal = started.elapsed();

    // Every 20th device downloads; of those, a tenth fail and the rest are applied.
    let ids: Vec<i64> = devices.iter().map(|(d, _)| d.id).collect();
    let moving: Vec<i64> = ids.iter().copied().step_by(20).collect();
    let (reports, per_report) = night(&store, &moving, now)?;

    let mut tally = Vec::new();
    let mut health = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        health = store.wave_health(CAMPAIGN, LAST, now)?;
        tally.push(t.elapsed());
    }

    // The anchor: the grouped count, on its own connection to the same file.
    let conn = rusqlite::Connection::open(&path)?;
    let mut grouped = Vec::new();
    let mut rows = 0usize;
    for _ in 0..3 {
        let t = Instant::now();
        let mut stmt = conn.prepare_cached(GROUPED)?;
        let counted: Vec<(i64, i64, i64, i64)> = stmt
            .query_map(
                rusqlite::params![CAMPAIGN, LAST, onshi_store::db_time(now)],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(3)?, r.get(4)?)),
            )?
            .collect::<rusqlite::Result<_>>()?;
        grouped.push(t.elapsed());
        rows = counted.len();
        // Both reads must agree, or the figure compares different work.
        for (wave, devices, started, failed) in counted {
            let h = health
                .iter()
                .find(|h| i64::from(h.wave) == wave)
                .ok_or_else(|| anyhow::anyhow!("wave {wave} missing from wave_health"))?;
            anyhow::ensure!(
                (h.devices, h.started, h.failed) == (devices as u64, started as u64, failed as u64),
                "wave {wave}: tally {h:?} but counted {devices}/{started}/{failed}"
            );
        }
    }
    anyhow::ensure!(rows == usize::from(WAVES), "{rows} waves counted");

    // The reports' own anchor: as many devices again through the same night with the tally's
    // triggers dropped (what a report cost before migration 0007), on the same store.
    conn.execute_batch(
        "DROP TRIGGER wave_tally_insert; DROP TRIGGER wave_tally_update;
         DROP TRIGGER wave_tally_delete;",
    )?;
    let others: Vec<i64> = ids.iter().copied().skip(10).step_by(20).collect();
    let (_, per_report_untallied) = night(&store, &others, now)?;

    let (t, g) = (median(tally), median(grouped));
    println!(
        "devices {}  sites {}  waves {WAVES}  reports {reports}: {:.1} µs each keeping the tally, \
         {:.1} µs each without its triggers ({:.0} %)",
        devices.len(),
        sites.len(),
        per_report.as_secs_f64() * 1e6,
        per_report_untallied.as_secs_f64() * 1e6,
        per_report.as_secs_f64() / per_report_untallied.as_secs_f64().max(1e-12) * 100.0
    );
    println!("start_waves (deal and count once) {:.0} ms", ms(deal));
    println!(
        "wave_health (what a round reads) median {:.3} ms; the grouped count it replaced median {:.0} ms: {:.0}x",
        ms(t),
        ms(g),
        g.as_secs_f64() / t.as_secs_f64().max(1e-9)
    );
    println!(
        "BENCH devices={} reports={reports} report_us={:.1} report_untallied_us={:.1} deal_ms={:.0} health_ms={:.3} grouped_ms={:.1}",
        devices.len(),
        per_report.as_secs_f64() * 1e6,
        per_report_untallied.as_secs_f64() * 1e6,
        ms(deal),
        ms(t),
        ms(g)
    );
    Ok(())
}
