//! Setting the demo up through the operator API, as an operator would: the institutions, a
//! generated release (a terminal package and one per reader vendor) signed offline with the
//! targets keys of the demo's key ceremony (`onshi keys init`, `onshi release sign`), the
//! 2026-01 campaign with a throttle, and every site's terminal and readers enrolled by the agent
//! library with the ceremony's root.json, as an installer carries it.

use std::path::Path;

use anyhow::Context as _;
use ed25519_dalek::SigningKey;
use onshi_agent::{Client, Enrollment, StateDir};
use onshi_core::release::{Component, Target};
use onshi_core::trust::Signed;
use onshi_core::vendor::Vendor;
use onshi_core::version::Version;
use tokio::task::JoinSet;

use super::operator::Operator;
use super::population::Population;
use crate::fleet;

/// The release the demo distributes.
pub const RELEASE_ID: &str = "r2.0.0";
pub const RELEASE_VERSION: &str = "2.0.0";
/// What every terminal and reader runs before the update.
pub const BASE_VERSION: &str = "1.0.0";
/// Size of each generated package: small, so the demo's time goes into the campaign.
pub const PACKAGE_SIZE: usize = 256 << 10;
/// The throttle: at most this many downloads at once …
pub const MAX_DOWNLOADS: u32 = 50;
/// … and devices check in about every half hour.
pub const POLL_INTERVAL_SECONDS: u64 = 1800;
/// Sites enrolled at once.
const ENROL_AT_ONCE: usize = 8;

/// What the operator's workstation holds: the root the agents' installer carries and the targets
/// keys that sign releases. The server gets neither key.
pub struct Signer {
    pub root: Signed,
    pub targets: Vec<SigningKey>,
}

impl Signer {
    /// A key ceremony's directory (`onshi keys init --out DIR`): `root.json` and every
    /// `targets-N.key` in it.
    pub fn from_dir(dir: &Path) -> anyhow::Result<Self> {
        let root = crate::cmd::keys::read_signed(&dir.join("root.json"))?;
        let mut targets = Vec::new();
        for n in 1.. {
            let path = dir.join(format!("targets-{n}.key"));
            if !path.exists() {
                break;
            }
            targets.push(crate::cmd::keys::read_key(&path)?);
        }
        anyhow::ensure!(
            !targets.is_empty(),
            "{} holds no targets-1.key",
            dir.display()
        );
        Ok(Self { root, targets })
    }
}

/// Institutions, packages, release and the active campaign.
pub async fn campaign(
    op: &Operator,
    population: &Population,
    signer: &Signer,
) -> anyhow::Result<()> {
    let imported = op.import_institutions(population.csv()).await?;
    anyhow::ensure!(
        imported == population.sites.len() as u64,
        "the server imported {imported} of {} institutions",
        population.sites.len()
    );
    let targets = std::iter::once((0, Target::Terminal)).chain(
        (1u64..)
            .zip(Vendor::ALL)
            .map(|(seed, v)| (seed, Target::CardReader(v))),
    );
    let mut components = Vec::new();
    for (seed, target) in targets {
        let sha256 = op.upload(fleet::package(PACKAGE_SIZE, seed)).await?;
        components.push(Component {
            target,
            sha256,
            size: PACKAGE_SIZE as u64,
        });
    }
    // Signed as `onshi release sign` signs, with the workstation's targets keys; the server
    // only checks the signatures against the root.
    let version = Version::parse(RELEASE_VERSION).context("the release version")?;
    let now = jiff::Timestamp::now();
    let expires = now.saturating_add(jiff::SignedDuration::from_hours(24 * 365))?;
    let manifest = crate::cmd::release::manifest(RELEASE_ID, &version, components, now, expires)?;
    let signed = crate::cmd::release::sign(&manifest, &signer.targets);
    op.publish_release(&signed).await?;
    op.start_campaign(RELEASE_ID, MAX_DOWNLOADS, POLL_INTERVAL_SECONDS)
        .await
}

/// Enrols every site's terminal and readers into `agents/<code>/`; answers the state
/// directories in site order.
pub async fn enrol(
    op: &Operator,
    client: &Client,
    agents: &Path,
    population: &Population,
    root: &Signed,
) -> anyhow::Result<Vec<StateDir>> {
    let base = Version::parse(BASE_VERSION).context("the base version")?;
    let mut dirs: Vec<Option<StateDir>> = vec![None; population.sites.len()];
    let mut running = JoinSet::new();
    for (i, site) in population.sites.iter().enumerate() {
        if running.len() >= ENROL_AT_ONCE
            && let Some(done) = running.join_next().await
        {
            let (j, dir) = done.context("an enrolment task")??;
            dirs[j] = Some(dir);
        }
        let (op, client) = (op.clone(), client.clone());
        let code = site.code.to_string();
        let dir = StateDir::new(agents.join(&code));
        let mut enrollment = Enrollment {
            institution: code,
            enrollment_key: String::new(),
            serial: site.terminal_serial(),
            readers: site.reader_serials(),
            trust_root: root.clone(),
            base_version: base.clone(),
            // The server tells the agent the site's automatic restart time from the CSV.
            auto_restart: None,
            restart_command: None,
            self_check_command: None,
        };
        running.spawn(async move {
            enrollment.enrollment_key = op.enrollment_key(&enrollment.institution).await?;
            onshi_agent::enroll(&dir, &client, &enrollment)
                .await
                .with_context(|| format!("enrolling site {}", enrollment.institution))?;
            anyhow::Ok((i, dir))
        });
    }
    while let Some(done) = running.join_next().await {
        let (j, dir) = done.context("an enrolment task")??;
        dirs[j] = Some(dir);
    }
    dirs.into_iter()
        .enumerate()
        .map(|(i, d)| d.with_context(|| format!("site {i} was not enrolled")))
        .collect()
}
