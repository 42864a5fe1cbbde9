//! `onshi fixture`: a fresh data directory with a synthetic fleet and the 2026-01 campaign, for
//! benchmarks (`bench/checkin`). Written straight through the store, not over HTTP, so 100,000
//! devices take seconds. The sites are the model's ([`crate::fleet::model`]), as the demo's are:
//! kinds, prefectures and automatic restarts as the simulator draws them; each gets a terminal.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use jiff::Timestamp;
use onshi_core::deployment::DeploymentState;
use onshi_core::offer::CampaignStatus;
use onshi_core::release::{Component, Manifest, Sha256, SignedManifest, Target};
use onshi_core::schedule::{Campaign, PRESET_2026_01};
use onshi_core::selector::Selector;
use onshi_core::vendor::DeviceKind;
use onshi_core::version::Version;
use onshi_server::auth::{hash_secret, new_secret};
use onshi_sim::Scenario;
use onshi_sim::fleet::SiteModel;
use onshi_store::{
    CampaignRecord, Institution, NewDevice, PostgresStore, Release, Report, SqliteStore, Store,
};

use crate::exit::bad_input;
use crate::fleet;

#[derive(clap::Args)]
pub struct Args {
    /// The data directory to create (must not hold a database yet).
    #[arg(long)]
    data: PathBuf,
    /// Build the fleet in this PostgreSQL database (an empty one) instead of DATA/onshi.db;
    /// DATA still gets the package and the signing key, as `onshi serve --database` uses them.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// How many terminals to enrol, one per synthetic institution.
    #[arg(long, default_value_t = 100_000)]
    devices: u32,
    /// Where to write the device tokens, one per line, in enrolment order.
    #[arg(long)]
    tokens_out: PathBuf,
    /// Snapshot of the first campaign night at saturation: the first `max_downloads` devices are
    /// `downloading` and hold download slots until 05:00, so every other check-in inside the
    /// window takes the throttle's slow path. Run the server with
    /// `--clock 2026-01-19T21:00:00+09:00` to use it.
    #[arg(long)]
    campaign_night: bool,
}

/// When the fixture's rows are created: the morning before the first night of 2026-01.
const CREATED_AT: &str = "2026-01-19T09:00:00+09:00";
/// The first night opens (used by `--campaign-night`).
const NIGHT_OPENS: &str = "2026-01-19T20:00:00+09:00";
/// The first night closes; the fixture's download slots expire then.
const NIGHT_CLOSES: &str = "2026-01-20T05:00:00+09:00";

const RELEASE_ID: &str = "terminal-1.1.0";
const RELEASE_VERSION: &str = "1.1.0";
/// The campaign throttle (DESIGN.md §3 defaults for a national rollout).
const MAX_DOWNLOADS: u32 = 1000;
const POLL_INTERVAL: Duration = Duration::from_secs(600);
/// Size of the synthetic package; small, because check-ins never read it.
const PACKAGE_SIZE: usize = 1 << 20;
const PROGRESS_EVERY: u32 = 10_000;

pub fn run(args: &Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let db = args.data.join("onshi.db");
    if args.database.is_none() && db.exists() {
        return Err(bad_input(
            format_args!("--data {}", args.data.display()),
            "already holds onshi.db; the fixture builds a fresh data directory (remove it or pick another)",
        ));
    }
    if args.devices == 0 || args.devices > 47 * 1_000_000 {
        return Err(bad_input("--devices", "must be 1–47000000"));
    }
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("creating {}", args.data.display()))?;
    let store: Box<dyn Store> = match &args.database {
        Some(url) => Box::new(PostgresStore::open(url)?),
        None => {
            Box::new(SqliteStore::open(&db).with_context(|| format!("opening {}", db.display()))?)
        }
    };
    let store = store.as_ref();
    if !store.campaigns()?.is_empty() {
        return Err(bad_input(
            "--database",
            "already holds campaigns; the fixture builds a fresh database (use an empty one)",
        ));
    }
    let at = instant(CREATED_AT)?;

    let model = fleet::model()?;
    let mut codes = fleet::Codes::default();
    let institutions: Vec<Institution> = (0..args.devices)
        .zip(onshi_sim::fleet::sites(&model, model.seed))
        .map(|(i, site)| synthetic_site(&model, &mut codes, i, &site))
        .collect::<anyhow::Result<_>>()?;
    store
        .upsert_institutions(&institutions, at)
        .context("storing institutions")?;
    println!(
        "institutions: {} ({:.1} s)",
        institutions.len(),
        started.elapsed().as_secs_f64()
    );

    // SQLite has one connection; PostgreSQL a pool of 16.
    let workers = if args.database.is_some() { 8 } else { 1 };
    let device_ids = enrol_terminals(store, &institutions, &args.tokens_out, at, workers)?;

    let release = sign_release(store, &args.data, at)?;
    let campaign = Campaign::parse(PRESET_2026_01).context("parsing the 2026-01 preset")?;
    let record = CampaignRecord {
        id: campaign.id().to_owned(),
        schedule_toml: PRESET_2026_01.to_owned(),
        release_id: release.id.clone(),
        selector: Selector::all(),
        max_downloads: MAX_DOWNLOADS,
        poll_interval: POLL_INTERVAL,
        status: CampaignStatus::Draft,
    };
    store
        .insert_campaign(&record, at)
        .context("storing the campaign")?;
    let added = store
        .ensure_deployments(&record.id, &device_ids, at)
        .context("adding deployments")?;
    store
        .set_campaign_status(&record.id, CampaignStatus::Active, at)
        .context("activating the campaign")?;
    println!(
        "campaign {}: active, release {}, {added} deployments waiting ({:.1} s)",
        record.id,
        release.id,
        started.elapsed().as_secs_f64()
    );

    if args.campaign_night {
        let n = start_first_night(store, &record.id, &device_ids)?;
        println!("campaign night: {n} devices downloading with a slot until {NIGHT_CLOSES}");
    }
    store.flush().context("flushing the store")?;
    println!(
        "fixture done: {} devices in {:.1} s; tokens in {}",
        device_ids.len(),
        started.elapsed().as_secs_f64(),
        args.tokens_out.display()
    );
    Ok(())
}

fn instant(text: &str) -> anyhow::Result<Timestamp> {
    text.parse()
        .with_context(|| format!("fixture instant {text:?}"))
}

/// Site number `i` as the model drew it, with its synthetic identity.
fn synthetic_site(
    model: &Scenario,
    codes: &mut fleet::Codes,
    i: u32,
    site: &SiteModel,
) -> anyhow::Result<Institution> {
    let code = codes
        .next(site.prefecture, site.kind)
        .with_context(|| format!("no 医療機関コード left for site {i}"))?;
    Ok(Institution {
        code,
        name: fleet::name(site.kind, i),
        kind: site.kind,
        prefecture: site.prefecture,
        email: fleet::email(i),
        auto_restart: site
            .auto_restart
            .then(|| model.site_kind(site.kind).auto_restart_at()),
    })
}

/// One terminal per site, each with a fresh token; writes the tokens (in site order) and returns
/// the device ids. `workers` threads enrol at once: PostgreSQL commits each enrolment on its own,
/// and concurrent commits share the log flush (SQLite serialises them anyway: use 1).
fn enrol_terminals(
    store: &dyn Store,
    sites: &[Institution],
    tokens_out: &Path,
    at: Timestamp,
    workers: usize,
) -> anyhow::Result<Vec<i64>> {
    let started = Instant::now();
    let done = std::sync::atomic::AtomicU32::new(0);
    let enrol = |first: usize, part: &[Institution]| -> anyhow::Result<Vec<(i64, String)>> {
        let mut out = Vec::with_capacity(part.len());
        for (i, site) in (first + 1..).zip(part) {
            let token = new_secret();
            let device = NewDevice {
                institution: site.code,
                kind: DeviceKind::Terminal,
                vendor: None,
                serial: format!("BENCH-{i:08}"),
                parent: None,
                token_hash: hash_secret(&token),
            };
            let enrolled = store
                .enrol_device(&device, at)
                .with_context(|| format!("enrolling terminal {i}"))?;
            out.push((enrolled.id, token));
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if n.is_multiple_of(PROGRESS_EVERY) {
                println!(
                    "enrolled {n}/{} ({:.1} s)",
                    sites.len(),
                    started.elapsed().as_secs_f64()
                );
            }
        }
        Ok(out)
    };
    let chunk = sites.len().div_ceil(workers.max(1)).max(1);
    let parts: Vec<anyhow::Result<Vec<(i64, String)>>> = std::thread::scope(|s| {
        let handles: Vec<_> = sites
            .chunks(chunk)
            .enumerate()
            .map(|(n, part)| {
                let enrol = &enrol;
                s.spawn(move || enrol(n * chunk, part))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("an enrolment thread panicked")))
            })
            .collect()
    });
    let file = std::fs::File::create(tokens_out)
        .with_context(|| format!("creating {}", tokens_out.display()))?;
    let mut tokens = std::io::BufWriter::new(file);
    let mut ids = Vec::with_capacity(sites.len());
    for part in parts {
        for (id, token) in part? {
            ids.push(id);
            writeln!(tokens, "{token}")?;
        }
    }
    tokens
        .flush()
        .with_context(|| format!("writing {}", tokens_out.display()))?;
    println!(
        "enrolled {} terminals in {:.1} s ({:.0} µs each, one enrol_device call per terminal, {workers} at once)",
        ids.len(),
        started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64() * 1e6 / ids.len().max(1) as f64
    );
    Ok(ids)
}

/// A synthetic terminal package stored under DATA, and a release for it signed with the
/// server's key (`DATA/keys/operator.key`, created the way `onshi serve` would if missing).
fn sign_release(store: &dyn Store, data: &Path, at: Timestamp) -> anyhow::Result<Release> {
    let package = fleet::package(PACKAGE_SIZE, 0);
    let sha = Sha256::of(&package);
    // The content-addressed layout of onshi-server's artifact store: DATA/artifacts/ab/abcd….
    let hex = sha.hex();
    let dir = data.join("artifacts").join(&hex[..2]);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join(&hex), &package).context("writing the synthetic package")?;
    let size = u64::try_from(package.len())?;
    store
        .add_artifact(sha, size, at)
        .context("storing the artifact")?;

    let key_path = data.join("keys").join("operator.key");
    let key = if key_path.exists() {
        let text = std::fs::read_to_string(&key_path)
            .with_context(|| format!("reading {}", key_path.display()))?;
        onshi_core::release::decode_signing_key(&text)
            .with_context(|| format!("{} is not an onshi signing key", key_path.display()))?
    } else {
        onshi_server::generate_key(&key_path)?
    };
    let manifest = Manifest {
        release_id: RELEASE_ID.to_owned(),
        version: Version::parse(RELEASE_VERSION)?,
        created_at: at.to_string(),
        components: vec![Component {
            target: Target::Terminal,
            sha256: sha,
            size,
        }],
    };
    let release = Release {
        id: RELEASE_ID.to_owned(),
        signed: SignedManifest::sign(&manifest, &key),
        manifest,
    };
    store
        .insert_release(&release, at)
        .context("storing the release")?;
    Ok(release)
}

/// The first `MAX_DOWNLOADS` devices start downloading when the first night opens and hold a
/// slot until it closes. Returns how many.
fn start_first_night(store: &dyn Store, campaign: &str, ids: &[i64]) -> anyhow::Result<usize> {
    let opens = instant(NIGHT_OPENS)?;
    let closes = instant(NIGHT_CLOSES)?;
    let mut n = 0;
    for &device in ids.iter().take(usize::try_from(MAX_DOWNLOADS)?) {
        let slot = store
            .acquire_lease(campaign, device, opens, closes, MAX_DOWNLOADS)
            .with_context(|| format!("download slot for device {device}"))?;
        anyhow::ensure!(slot, "the throttle refused slot {n} of {MAX_DOWNLOADS}");
        store
            .apply_report(&Report {
                campaign,
                device,
                seq: 1,
                from: DeploymentState::Waiting,
                to: DeploymentState::Downloading,
                bytes: 0,
                at: opens,
            })
            .with_context(|| format!("starting the download of device {device}"))?;
        n += 1;
    }
    Ok(n)
}
