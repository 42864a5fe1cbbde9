//! The agent's fixture: the real server in-process (onshi-testkit: SQLite, or a fresh PostgreSQL
//! schema with `ONSHI_TEST_DATABASE=postgres`) with two sites, a release and the campaign, and
//! the real `onshi-agent` binary ([`AGENT`]) as child processes.

#![allow(dead_code)]

use onshi_core::offer::CampaignAction;
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
    let app = spawn_app(start).await;
    app.expect(
        app.admin(Method::POST, "/api/v1/admin/institutions/import")
            .header("content-type", "text/csv")
            .body(SITES_CSV),
        201,
    )
    .await;
    let t = upload(&app, terminal).await;
    let r = upload(&app, reader).await;
    app.expect(
        app.admin(Method::POST, "/api/v1/admin/releases")
            .json(&json!({
                "id": "r1", "version": version,
                "components": [
                    {"target": "terminal", "sha256": t},
                    {"target": "card_reader:canon", "sha256": r},
                ]
            })),
        201,
    )
    .await;
    app.expect(
        app.admin(Method::POST, "/api/v1/admin/campaigns")
            .json(&json!({
                "schedule": "preset:2026-01", "release_id": "r1",
                "throttle": {"max_concurrent_downloads": 10, "poll_interval_seconds": 60},
            })),
        201,
    )
    .await;
    app.expect(app.control(CAMPAIGN, CampaignAction::Activate), 200)
        .await;
    app
}

async fn upload(app: &TestApp, bytes: &[u8]) -> String {
    app.expect(
        app.admin(Method::PUT, "/api/v1/admin/artifacts")
            .body(bytes.to_vec()),
        201,
    )
    .await["sha256"]
        .as_str()
        .expect("sha256")
        .to_owned()
}
