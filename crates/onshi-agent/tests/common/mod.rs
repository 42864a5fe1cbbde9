//! The agent's fixture: the real server in-process (onshi-testkit: SQLite, or a fresh PostgreSQL
//! schema with `ONSHI_TEST_DATABASE=postgres`) with two sites, a release and the campaign, and
//! the real `onshi-agent` binary ([`AGENT`]) as child processes.

#![allow(dead_code)]

use onshi_core::offer::CampaignAction;
use onshi_core::release::{Manifest, Target};
use onshi_core::trust::Signed;
use onshi_core::vendor::Vendor;
use onshi_store::Release;
use onshi_testkit::agent::AgentBin;
use onshi_testkit::{CAMPAIGN, TestApp, spawn_app};
use reqwest::Method;
use serde_json::json;

/// The binary under test.
pub const AGENT: AgentBin = AgentBin(env!("CARGO_BIN_EXE_onshi-agent"));

/// Two sites: a clinic without automatic restart, a hospital restarting daily at 06:30.
pub const CLINIC: &str = "0110113719";
pub const HOSPITAL: &str = "2714206386";
const SITES_CSV: &str = "code,name,kind,prefecture,email,auto_restart
0110113719,テスト診療所 札幌,clinic,北海道,sapporo@example.invalid,
2714206386,テスト病院 大阪,hospital,27,osaka@example.invalid,06:30
";

/// A package of `len` bytes that differs per `seed`.
pub fn package(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / 7) as u8).wrapping_mul(31).wrapping_add(seed) ^ (i as u8))
        .collect()
}

/// The server on a simulated clock at `start`, with the two sites, a release `version` of a
/// terminal package and a Canon reader package, and the 2026-01 campaign activated.
pub async fn start_server(start: &str, version: &str, terminal: &[u8], reader: &[u8]) -> TestApp {
    let app = with_sites(start).await;
    app.release(
        "r1",
        version,
        &[
            (Target::Terminal, terminal),
            (Target::CardReader(Vendor::Canon), reader),
        ],
    )
    .await;
    activate(&app, "r1").await;
    app
}

/// The server with the two sites and nothing else.
pub async fn with_sites(start: &str) -> TestApp {
    let app = spawn_app(start).await;
    app.expect(
        app.admin(Method::POST, "/api/v1/admin/institutions/import")
            .header("content-type", "text/csv")
            .body(SITES_CSV),
        201,
    )
    .await;
    app
}

/// A compromised server (or database): release `id` of a terminal package written straight
/// into the store, its manifest text and signatures whatever `sign` makes of it — no check of
/// the API stands in between.
pub async fn inject_release(
    app: &TestApp,
    id: &str,
    version: &str,
    terminal: &[u8],
    sign: impl FnOnce(&Manifest) -> Signed,
) {
    let (sha, size) = app.upload(terminal).await;
    let manifest = onshi_testkit::keys::manifest(id, version, &[(Target::Terminal, sha, size)]);
    let release = Release {
        id: id.to_owned(),
        signed: sign(&manifest),
        manifest,
    };
    app.state
        .store
        .insert_release(&release, app.state.clock.now())
        .expect("stored");
}

/// Creates the 2026-01 campaign of `release` and activates it.
pub async fn activate(app: &TestApp, release: &str) {
    app.expect(
        app.admin(Method::POST, "/api/v1/admin/campaigns")
            .json(&json!({
                "schedule": "preset:2026-01", "release_id": release,
                "throttle": {"max_concurrent_downloads": 10, "poll_interval_seconds": 60},
            })),
        201,
    )
    .await;
    app.expect(app.control(CAMPAIGN, CampaignAction::Activate), 200)
        .await;
}

/// A campaign of `release` whose schedule is the 2026-01 preset under another id.
pub async fn campaign(app: &TestApp, id: &str, release: &str) {
    let schedule = onshi_core::schedule::preset_text("2026-01")
        .expect("preset")
        .replace("id = \"2026-01\"", &format!("id = \"{id}\""));
    app.expect(
        app.admin(Method::POST, "/api/v1/admin/campaigns")
            .json(&json!({
                "schedule": schedule, "release_id": release,
                "throttle": {"max_concurrent_downloads": 10, "poll_interval_seconds": 60},
            })),
        201,
    )
    .await;
    app.expect(app.control(id, CampaignAction::Activate), 200)
        .await;
}
