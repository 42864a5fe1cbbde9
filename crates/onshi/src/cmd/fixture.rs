//! `onshi fixture`: a fresh data directory with a synthetic fleet and the 2026-01 campaign, for
//! benchmarks (`bench/checkin`, `bench/download`, `bench/memory`). Written straight through the
//! store, not over HTTP, so 100,000 devices take seconds. The sites are the model's
//! ([`crate::fleet::model`]), as the demo's are: kinds, prefectures, automatic restarts and card
//! readers as the simulator draws them; each gets a terminal, and with `--sites` fewer than
//! `--devices` the rest are the sites' card readers.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use jiff::Timestamp;
use onshi_core::deployment::DeploymentState;
use onshi_core::offer::CampaignStatus;
use onshi_core::release::{Component, Sha256, Target};
use onshi_core::schedule::{Campaign, PRESET_2026_01};
use onshi_core::selector::Selector;
use onshi_core::vendor::{DeviceKind, Vendor};
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
    /// How many devices to enrol: one terminal per site, then the sites' card readers (as the
    /// model draws them, site by site) until there are this many.
    #[arg(long, default_value_t = 100_000)]
    devices: u32,
    /// How many synthetic institutions (default: as many as --devices, one terminal each, no
    /// readers). The national fleet is about 230,000 sites with 400,000 devices.
    #[arg(long)]
    sites: Option<u32>,
    /// Size of each synthetic package in bytes (the terminal's, and each reader maker's when
    /// there are readers); `bench/download` serves a 256 MiB one.
    #[arg(long, default_value_t = PACKAGE_SIZE)]
    package_bytes: usize,
    /// Where to write the device tokens, one per line, in enrolment order (terminals first, in
    /// site order, then readers).
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
/// Default size of the synthetic packages; small, because check-ins never read them.
const PACKAGE_SIZE: usize = 1 << 20;
/// The largest `--package-bytes` (the package is built in memory once).
const MAX_PACKAGE_SIZE: usize = 4 << 30;
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
    let sites = args.sites.unwrap_or(args.devices);
    if sites == 0 || sites > args.devices {
        return Err(bad_input(
            "--sites",
            format_args!(
                "must be 1–{} (at most --devices: each site has a terminal)",
                args.devices
            ),
        ));
    }
    if args.package_bytes == 0 || args.package_bytes > MAX_PACKAGE_SIZE {
        return Err(bad_input(
            "--package-bytes",
            format_args!("must be 1–{MAX_PACKAGE_SIZE}"),
        ));
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
    let drawn: Vec<SiteModel> = onshi_sim::fleet::sites(&model, model.seed)
        .take(usize::try_from(sites)?)
        .collect();
    let readers = readers_of(drawn.iter().map(|s| (s.readers, s.vendor)), args.devices - sites).ok_or_else(|| {
        bad_input(
            "--devices",
            format_args!(
                "{sites} sites of the model have only {} card readers, fewer than the {} devices beyond their terminals",
                drawn.iter().map(|s| u32::from(s.readers)).sum::<u32>(),
                args.devices - sites
            ),
        )
    })?;
    let institutions: Vec<Institution> = (0..)
        .zip(&drawn)
        .map(|(i, site)| synthetic_site(&model, &mut codes, i, site))
        .collect::<anyhow::Result<_>>()?;
    drop(drawn);
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
    let terminals: Vec<Pending> = institutions
        .iter()
        .map(|site| Pending {
            institution: site.code,
            vendor: None,
            parent: None,
        })
        .collect();
    let mut tokens = TokenFile::create(&args.tokens_out)?;
    let mut device_ids = enrol(store, &terminals, &mut tokens, at, workers)?;
    let reader_devices: Vec<Pending> = readers
        .iter()
        .map(|&(site, vendor)| Pending {
            institution: institutions[site].code,
            vendor: Some(vendor),
            parent: Some(device_ids[site]),
        })
        .collect();
    device_ids.extend(enrol(store, &reader_devices, &mut tokens, at, workers)?);
    tokens.finish()?;

    let vendors: Vec<Vendor> = Vendor::ALL
        .into_iter()
        .filter(|v| readers.iter().any(|&(_, r)| r == *v))
        .collect();
    let release = sign_release(store, &args.data, args.package_bytes, &vendors, at)?;
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
        phone: None,
    })
}

/// The card readers to enrol beyond the terminals: `(site index, maker)`, site by site as the
/// model drew them, until there are `wanted`; `None` when the sites have fewer readers.
/// `sites` yields each site's reader count and maker.
fn readers_of(
    sites: impl IntoIterator<Item = (u8, Vendor)>,
    wanted: u32,
) -> Option<Vec<(usize, Vendor)>> {
    let wanted = usize::try_from(wanted).ok()?;
    let readers: Vec<(usize, Vendor)> = sites
        .into_iter()
        .enumerate()
        .flat_map(|(i, (n, vendor))| std::iter::repeat_n((i, vendor), usize::from(n)))
        .take(wanted)
        .collect();
    (readers.len() == wanted).then_some(readers)
}

/// A device about to be enrolled: a terminal (no vendor, no parent) or a card reader.
struct Pending {
    institution: onshi_core::institution::InstitutionCode,
    vendor: Option<Vendor>,
    parent: Option<i64>,
}

/// The token file, one token per line in enrolment order.
struct TokenFile {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
}

impl TokenFile {
    fn create(path: &Path) -> anyhow::Result<Self> {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            out: std::io::BufWriter::new(file),
        })
    }

    fn finish(mut self) -> anyhow::Result<()> {
        self.out
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// Enrols the devices, each with a fresh token; appends the tokens (in the given order) and
/// returns the device ids. `workers` threads enrol at once: PostgreSQL commits each enrolment
/// on its own, and concurrent commits share the log flush (SQLite serialises them anyway: use 1).
fn enrol(
    store: &dyn Store,
    devices: &[Pending],
    tokens: &mut TokenFile,
    at: Timestamp,
    workers: usize,
) -> anyhow::Result<Vec<i64>> {
    let started = Instant::now();
    let what = if devices.first().is_some_and(|d| d.vendor.is_some()) {
        "card readers"
    } else {
        "terminals"
    };
    let done = std::sync::atomic::AtomicU32::new(0);
    let enrol = |first: usize, part: &[Pending]| -> anyhow::Result<Vec<(i64, String)>> {
        let mut out = Vec::with_capacity(part.len());
        for (i, pending) in (first + 1..).zip(part) {
            let token = new_secret();
            let (kind, prefix) = match pending.vendor {
                None => (DeviceKind::Terminal, "BENCH"),
                Some(_) => (DeviceKind::CardReader, "BENCH-R"),
            };
            let device = NewDevice {
                institution: pending.institution,
                kind,
                vendor: pending.vendor,
                serial: format!("{prefix}-{i:08}"),
                parent: pending.parent,
                token_hash: hash_secret(&token),
            };
            let enrolled = store
                .enrol_device(&device, &onshi_store::EnrolRules::default(), at)
                .with_context(|| format!("enrolling {what} {i}"))?;
            out.push((enrolled.id, token));
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if n.is_multiple_of(PROGRESS_EVERY) {
                println!(
                    "enrolled {n}/{} {what} ({:.1} s)",
                    devices.len(),
                    started.elapsed().as_secs_f64()
                );
            }
        }
        Ok(out)
    };
    let chunk = devices.len().div_ceil(workers.max(1)).max(1);
    let parts: Vec<anyhow::Result<Vec<(i64, String)>>> = std::thread::scope(|s| {
        let handles: Vec<_> = devices
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
    let mut ids = Vec::with_capacity(devices.len());
    for part in parts {
        for (id, token) in part? {
            ids.push(id);
            writeln!(tokens.out, "{token}")?;
        }
    }
    if !devices.is_empty() {
        println!(
            "enrolled {} {what} in {:.1} s ({:.0} µs each, one enrol_device call per device, {workers} at once)",
            ids.len(),
            started.elapsed().as_secs_f64(),
            started.elapsed().as_secs_f64() * 1e6 / ids.len().max(1) as f64
        );
    }
    Ok(ids)
}

/// A synthetic package of `len` bytes stored under DATA (onshi-server's content-addressed
/// layout, `DATA/artifacts/ab/abcd…`) and in the store; returns its component.
fn store_package(
    store: &dyn Store,
    data: &Path,
    target: Target,
    len: usize,
    seed: u64,
    at: Timestamp,
) -> anyhow::Result<Component> {
    let package = fleet::package(len, seed);
    let sha = Sha256::of(&package);
    let hex = sha.hex();
    let dir = data.join("artifacts").join(&hex[..2]);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join(&hex), &package).context("writing the synthetic package")?;
    let size = u64::try_from(package.len())?;
    store
        .add_artifact(sha, size, at)
        .context("storing the artifact")?;
    Ok(Component {
        target,
        sha256: sha,
        size,
    })
}

/// Synthetic packages for the terminal and each reader maker in `vendors`, and a release of
/// them signed offline: a key ceremony (one key per role) in `DATA/keys/` — `timestamp.key`
/// where `onshi serve` looks for it, `root.json` recorded in the store as its root; the root
/// and targets keys lie beside them only because this is a benchmark fixture.
fn sign_release(
    store: &dyn Store,
    data: &Path,
    package_bytes: usize,
    vendors: &[Vendor],
    at: Timestamp,
) -> anyhow::Result<Release> {
    let mut components = vec![store_package(
        store,
        data,
        Target::Terminal,
        package_bytes,
        0,
        at,
    )?];
    // Seeded by the maker's place in `Vendor::ALL`, as the demo's packages are.
    let makers = (1u64..)
        .zip(Vendor::ALL)
        .filter(|(_, v)| vendors.contains(v));
    for (seed, vendor) in makers {
        components.push(store_package(
            store,
            data,
            Target::CardReader(vendor),
            package_bytes,
            seed,
            at,
        )?);
    }

    let keys = data.join("keys");
    let expires = at
        .max(Timestamp::now())
        .saturating_add(jiff::SignedDuration::from_hours(24 * 365))?;
    let ceremony = super::keys::ceremony(
        &keys,
        &super::keys::CeremonyPlan {
            root_keys: 1,
            root_threshold: 1,
            targets_keys: 1,
            targets_threshold: 1,
            snapshot_key: false,
            expires,
        },
    )?;
    onshi_server::trust::TrustState::load(
        store,
        Some(&keys.join("root.json")),
        &onshi_server::trust::OnlineKeyFiles {
            timestamp: &keys.join("timestamp.key"),
            snapshot: None,
        },
    )?;
    let manifest = super::release::manifest(
        RELEASE_ID,
        &Version::parse(RELEASE_VERSION)?,
        components,
        at,
        expires,
    )?;
    let release = Release {
        id: RELEASE_ID.to_owned(),
        signed: super::release::sign(&manifest, &ceremony.targets_keys),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_are_taken_site_by_site_until_the_fleet_is_complete() {
        let sites = [
            (2, Vendor::Canon),
            (0, Vendor::Atlus),
            (3, Vendor::Panasonic),
        ];
        assert_eq!(readers_of(sites, 0), Some(vec![]));
        assert_eq!(
            readers_of(sites, 4),
            Some(vec![
                (0, Vendor::Canon),
                (0, Vendor::Canon),
                (2, Vendor::Panasonic),
                (2, Vendor::Panasonic),
            ])
        );
        assert_eq!(readers_of(sites, 5).map(|r| r.len()), Some(5));
    }

    #[test]
    fn too_few_readers_for_the_devices_asked_is_refused() {
        assert_eq!(readers_of([(1, Vendor::Canon)], 2), None);
    }
}
