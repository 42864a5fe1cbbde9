//! TUF's attacks on the path between the agent and the server, against the real `onshi-agent`
//! binary: a tampering proxy (`onshi_testkit::tamper`) stands where an attacker on the network
//! or a malicious mirror would, replays genuine older answers, forges or swaps metadata and
//! packages, and sends answers that never end. Each time the agent refuses, the refusal reaches
//! the server's audit log (the server itself is honest here), and nothing is installed.

mod common;

use std::path::PathBuf;

use common::*;
use jiff::SignedDuration;
use onshi_core::offer::CampaignAction;
use onshi_core::release::{Sha256, Target};
use onshi_core::trust::{Role, Signed, TimestampMeta};
use onshi_core::vendor::Vendor;
use onshi_testkit::TestApp;
use onshi_testkit::agent::part_len;
use onshi_testkit::keys::key;
use onshi_testkit::tamper::{Tamper, TamperProxy};
use onshi_testkit::wait_for;

const EVENING: &str = "2026-01-19T20:30:00+09:00";

/// The terminal's package of release r1 (2.0.0), and the Canon reader's.
fn terminal_package() -> Vec<u8> {
    package(50_000, 31)
}

fn reader_package() -> Vec<u8> {
    package(1000, 32)
}

/// A site enrolled through the proxy: every request of its agent passes the attacker.
struct OnThePath {
    server: TestApp,
    proxy: TamperProxy,
    dir: PathBuf,
    token: String,
    _tmp: tempfile::TempDir,
}

impl OnThePath {
    /// Release r1 (terminal and Canon reader) in the 2026-01 campaign, on the first night; the
    /// clinic's terminal (and a Canon reader, with `reader`) enrolled through the proxy.
    async fn new(reader: bool) -> Self {
        let server = start_server(EVENING, "2.0.0", &terminal_package(), &reader_package()).await;
        let proxy = TamperProxy::start(&server.url("")).await;
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("clinic");
        let extra: &[&str] = if reader {
            &["--reader", "canon:R-1"]
        } else {
            &[]
        };
        AGENT
            .enroll_at(&server, proxy.url(), CLINIC, &dir, extra)
            .await;
        let identity: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("agent.json")).expect("agent.json"))
                .expect("json");
        let token = identity["terminal"]["token"]
            .as_str()
            .expect("a token")
            .to_owned();
        Self {
            server,
            proxy,
            dir,
            token,
            _tmp: tmp,
        }
    }

    /// A genuine answer of the server now, fetched through the proxy with the terminal's token
    /// (what an attacker on the path records for a later replay).
    async fn record(&self, path: &str) -> Vec<u8> {
        let answer = reqwest::Client::new()
            .get(format!("{}{path}", self.proxy.url()))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("proxy answers");
        assert_eq!(answer.status(), 200, "{path}");
        answer.bytes().await.expect("body").to_vec()
    }

    /// The snapshot version the current timestamp names.
    async fn snapshot_path(&self) -> String {
        let timestamp: Signed =
            serde_json::from_slice(&self.record("/api/v1/trust/timestamp").await).expect("json");
        let meta: TimestampMeta = timestamp.parse(Role::Timestamp).expect("timestamp");
        format!("/api/v1/trust/snapshot/{}", meta.snapshot.version)
    }

    /// Moves the server's clock on by `hours`.
    fn later(&self, hours: i64) {
        let clock = &self.server.state.clock;
        clock
            .set(clock.now() + SignedDuration::from_hours(hours))
            .expect("clock set");
    }

    /// Runs the agent until the server's audit log shows `refusal`; then nothing of the
    /// offered release was installed or kept.
    async fn refused(&self, refusal: &str) {
        let agent = AGENT.run(&self.dir, &[]);
        self.server.wait_for_audit(refusal).await;
        drop(agent);
        assert_eq!(current(&self.dir), "1.0.0", "nothing installed");
        assert!(
            !self.dir.join("versions/2.0.0").exists(),
            "nothing unpacked"
        );
    }

    /// [`Self::refused`] for metadata, refused before any byte of a package was fetched.
    async fn refused_before_download(&self, refusal: &str) {
        self.refused(refusal).await;
        assert!(part_len(&self.dir).is_none(), "no package fetched");
    }

    /// Release r2 (3.0.0, terminal only) offered in a second campaign; r1's campaign closed.
    async fn next_release(&self) {
        self.server
            .release("r2", "3.0.0", &[(Target::Terminal, &package(50_000, 33))])
            .await;
        self.server
            .expect(
                self.server
                    .control(onshi_testkit::CAMPAIGN, CampaignAction::Close),
                200,
            )
            .await;
        campaign(&self.server, "2026-01b", "r2").await;
    }
}

fn current(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("current")).unwrap_or_default()
}

/// Signed metadata with its signatures replaced by a stranger's.
fn resigned_by_a_stranger(body: &[u8]) -> Vec<u8> {
    let mut signed: Signed = serde_json::from_slice(body).expect("signed metadata");
    signed.signatures.clear();
    signed.add_signature(&key(99));
    serde_json::to_vec(&signed).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_timestamp_is_refused_once_it_expired_as_an_indefinite_freeze() {
    let path = OnThePath::new(false).await;
    let frozen = path.record("/api/v1/trust/timestamp").await;
    // The next evening: the server signs fresh timestamps, the attacker replays the old one.
    path.later(25);
    path.proxy
        .on("/api/v1/trust/timestamp", Tamper::Body(frozen));
    path.refused_before_download("metadata refused: timestamp metadata expired at")
        .await;
    // The same agent, the attacker gone: it installs (the refusal was the replay's).
    path.proxy.clear();
    let agent = AGENT.run(&path.dir, &[]);
    wait_for("2.0.0 installed once the path is clean", || {
        current(&path.dir) == "2.0.0"
    })
    .await;
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_timestamp_than_one_trusted_is_refused_as_rollback() {
    let path = OnThePath::new(false).await;
    let older = path.record("/api/v1/trust/timestamp").await;
    // Two hours later the agent installs r1, trusting that hour's timestamp.
    path.later(2);
    let agent = AGENT.run(&path.dir, &[]);
    wait_for("2.0.0 installed", || current(&path.dir) == "2.0.0").await;
    // r2 is offered; the attacker replays the genuine, unexpired timestamp of two hours ago,
    // which still names a snapshot without r2 (to hide the new release).
    path.proxy
        .on("/api/v1/trust/timestamp", Tamper::Body(older));
    path.next_release().await;
    path.server
        .wait_for_audit("metadata refused: timestamp version")
        .await;
    drop(agent);
    let audit = path.server.audit().await;
    assert!(
        audit.contains("already trusted: rollback refused"),
        "{audit}"
    );
    assert_eq!(current(&path.dir), "2.0.0");
    assert!(!path.dir.join("versions/3.0.0").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_another_moment_is_refused_as_mix_and_match() {
    let path = OnThePath::new(false).await;
    let old = path.record(&path.snapshot_path().await).await;
    path.next_release().await;
    // The fresh timestamp, with the snapshot from before r2 was published.
    path.proxy.on("/api/v1/trust/snapshot/", Tamper::Body(old));
    path.refused_before_download(
        "the snapshot's hash or length differs from what the timestamp names",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_releases_manifest_is_refused_as_mix_and_match() {
    let path = OnThePath::new(false).await;
    let r1 = path.record("/api/v1/releases/r1/manifest").await;
    path.next_release().await;
    // r1's genuine, signed manifest served for the offered r2.
    path.proxy
        .on("/api/v1/releases/r2/manifest", Tamper::Body(r1));
    path.refused_before_download(
        "the manifest's hash or length differs from what the snapshot names",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_signed_below_its_roles_threshold_is_refused() {
    for (prefix, role) in [
        ("/api/v1/trust/timestamp", "timestamp"),
        ("/api/v1/trust/snapshot/", "snapshot"),
        ("/api/v1/releases/r1/manifest", "targets"),
    ] {
        let path = OnThePath::new(false).await;
        path.proxy
            .on(prefix, Tamper::Map(Box::new(resigned_by_a_stranger)));
        path.refused_before_download(&format!(
            "metadata refused: {role} metadata has 0 valid signature(s)"
        ))
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_that_never_ends_is_cut_off_at_the_limit() {
    for (prefix, what) in [
        ("/api/v1/trust/timestamp", "timestamp"),
        ("/api/v1/trust/snapshot/", "snapshot"),
        ("/api/v1/releases/r1/manifest", "manifest"),
    ] {
        let path = OnThePath::new(false).await;
        path.proxy.on(prefix, Tamper::Endless);
        path.refused_before_download(&format!(
            "{what} not available: unexpected answer from {}",
            path.proxy.url()
        ))
        .await;
        let audit = path.server.audit().await;
        assert!(
            audit.contains(&format!(
                "longer than {} bytes; refused",
                onshi_api::device::MAX_METADATA_BYTES
            )),
            "{audit}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_changed_or_lengthened_on_the_path_is_refused() {
    let flip = |body: &[u8]| {
        let mut b = body.to_vec();
        if let Some(x) = b.get_mut(1234) {
            *x ^= 0xff;
        }
        b
    };
    let lengthen = |body: &[u8]| [body, b"and a little more"].concat();
    let expected = Sha256::of(&terminal_package());
    let changed = OnThePath::new(false).await;
    changed
        .proxy
        .on("/api/v1/artifacts/", Tamper::Map(Box::new(flip)));
    changed
        .refused(&format!("SHA-256 mismatch: expected {expected}"))
        .await;
    let longer = OnThePath::new(false).await;
    longer
        .proxy
        .on("/api/v1/artifacts/", Tamper::Map(Box::new(lengthen)));
    longer
        .refused("the package is longer than its signed length of 50000 bytes")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_for_another_device_kind_or_vendor_is_refused() {
    // Both packages are in r1's signed manifest, each for its own target: the attacker swaps
    // them in the check-in answers, offering the terminal the Canon reader's package and the
    // reader the terminal's.
    let terminal = (Sha256::of(&terminal_package()), terminal_package().len());
    let reader = (Sha256::of(&reader_package()), reader_package().len());
    let swap = move |body: &[u8]| {
        let text = String::from_utf8_lossy(body);
        let (t, r) = (terminal.0.hex(), reader.0.hex());
        let (ts, rs) = (
            format!("\"size\":{}", terminal.1),
            format!("\"size\":{}", reader.1),
        );
        text.replace(&t, "TERMINAL")
            .replace(&r, &t)
            .replace("TERMINAL", &r)
            .replace(&ts, "SIZE")
            .replace(&rs, &ts)
            .replace("SIZE", &rs)
            .into_bytes()
    };
    let path = OnThePath::new(true).await;
    path.proxy
        .on("/api/v1/checkin", Tamper::Map(Box::new(swap)));
    path.refused(&format!(
        "package {} is not the terminal package of the signed manifest r1",
        reader.0
    ))
    .await;
    let want = format!(
        "package {} is not the card_reader:{} package of the signed manifest r1",
        terminal.0,
        Vendor::Canon.slug()
    );
    // The reader's own check-in may come after the terminal's refusal stopped the first run.
    let agent = AGENT.run(&path.dir, &[]);
    path.server.wait_for_audit(&want).await;
    drop(agent);
    assert!(
        !path.dir.join("readers/R-1/versions/2.0.0").exists(),
        "nothing installed on the reader"
    );
}
