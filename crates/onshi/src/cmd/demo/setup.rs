//! Setting the demo up through the operator API, as an operator would: the institutions, a
//! generated release (a terminal package and one per reader vendor), the 2026-01 campaign with a
//! throttle, and every site's terminal and readers enrolled by the agent library.

use std::path::Path;

use anyhow::Context as _;
use onshi_agent::{Client, Enrollment, StateDir};
use onshi_core::release::Target;
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

/// Institutions, packages, release and the active campaign.
pub async fn campaign(op: &Operator, population: &Population) -> anyhow::Result<()> {
    let imported = op.import_institutions(population.csv()).await?;
    anyhow::ensure!(
        imported == population.sites.len() as u64,
        "the server imported {imported} of {} institutions",
        population.sites.len()
    );
    let mut components = vec![(
        Target::Terminal,
        op.upload(fleet::package(PACKAGE_SIZE, 0)).await?,
    )];
    for (seed, vendor) in (1u64..).zip(Vendor::ALL) {
        let sha = op.upload(fleet::package(PACKAGE_SIZE, seed)).await?;
        components.push((Target::CardReader(vendor), sha));
    }
    let version = Version::parse(RELEASE_VERSION).context("the release version")?;
    op.create_release(RELEASE_ID, &version, &components).await?;
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
            trust_key: None,
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
