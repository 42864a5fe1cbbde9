//! The agent's integration harness: the real server in-process on a random loopback port with a
//! simulated clock the test moves, and the real `onshi-agent` binary as child processes.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use onshi_clock::Clock;
use reqwest::{Client, Method, RequestBuilder};
use serde_json::{Value, json};

pub const OPERATOR_TOKEN: &str = "agent-test-operator-token-0123456789";
pub const CAMPAIGN: &str = "2026-01";

/// Two sites: a clinic without automatic restart, a hospital restarting daily at 06:30.
pub const CLINIC: &str = "0110113719";
pub const HOSPITAL: &str = "2714206386";
const SITES_CSV: &str = "code,name,kind,prefecture,email,auto_restart
0110113719,テスト診療所 札幌,clinic,北海道,sapporo@example.invalid,
2714206386,テスト病院 大阪,hospital,27,osaka@example.invalid,06:30
";

pub struct Server {
    pub url: String,
    pub http: Client,
    pub data: tempfile::TempDir,
}

/// A package of `len` bytes that differs per `seed`.
pub fn package(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / 7) as u8).wrapping_mul(31).wrapping_add(seed) ^ (i as u8))
        .collect()
}

impl Server {
    /// The server on a simulated clock at `start`, with the two sites, a release `version` of
    /// a terminal package and a Canon reader package, and the 2026-01 campaign activated.
    pub async fn start(start: &str, version: &str, terminal: &[u8], reader: &[u8]) -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let clock = Clock::simulated(start.parse().expect("instant"), 1.0).expect("clock");
        let running = onshi_server::start(onshi_server::Config {
            data_dir: data.path().to_path_buf(),
            database: None,
            listen: "127.0.0.1:0".parse().expect("addr"),
            clock,
            signing_key: None,
            operator_token: Some(OPERATOR_TOKEN.to_owned()),
            qualification_public: false,
            smtp: None,
            mail_from: None,
        })
        .await
        .expect("server starts");
        let url = format!("http://{}", running.addr);
        tokio::spawn(running.wait());
        let server = Self {
            url,
            http: Client::new(),
            data,
        };
        server
            .expect(
                server
                    .admin(Method::POST, "/api/v1/admin/institutions/import")
                    .header("content-type", "text/csv")
                    .body(SITES_CSV),
                201,
            )
            .await;
        let t = server.upload(terminal).await;
        let r = server.upload(reader).await;
        server
            .expect(
                server
                    .admin(Method::POST, "/api/v1/admin/releases")
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
        server
            .expect(
                server
                    .admin(Method::POST, "/api/v1/admin/campaigns")
                    .json(&json!({
                        "schedule": "preset:2026-01", "release_id": "r1",
                        "throttle": {"max_concurrent_downloads": 10, "poll_interval_seconds": 60},
                    })),
                201,
            )
            .await;
        server
            .expect(
                server.admin(
                    Method::POST,
                    &format!("/api/v1/admin/campaigns/{CAMPAIGN}/activate"),
                ),
                200,
            )
            .await;
        server
    }

    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(OPERATOR_TOKEN)
    }

    pub async fn expect(&self, req: RequestBuilder, status: u16) -> Value {
        let r = req.send().await.expect("request");
        let got = r.status().as_u16();
        let text = r.text().await.expect("body");
        assert_eq!(got, status, "body: {text}");
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }

    async fn upload(&self, bytes: &[u8]) -> String {
        let v = self
            .expect(
                self.admin(Method::PUT, "/api/v1/admin/artifacts")
                    .body(bytes.to_vec()),
                201,
            )
            .await;
        v["sha256"].as_str().expect("sha256").to_owned()
    }

    pub async fn set_clock(&self, at: &str) {
        self.expect(
            self.admin(Method::PUT, "/api/v1/admin/clock")
                .json(&json!({ "now": at })),
            200,
        )
        .await;
    }

    pub async fn enrollment_key(&self, code: &str) -> String {
        self.expect(
            self.admin(
                Method::POST,
                &format!("/api/v1/admin/institutions/{code}/enrollment-key"),
            ),
            200,
        )
        .await["enrollment_key"]
            .as_str()
            .expect("key")
            .to_owned()
    }

    /// The server's deployment state of every device of the campaign, by device id.
    pub async fn states(&self) -> Vec<(i64, String)> {
        let rows = self
            .expect(
                self.admin(
                    Method::GET,
                    &format!("/api/v1/admin/campaigns/{CAMPAIGN}/devices"),
                ),
                200,
            )
            .await;
        rows.as_array()
            .expect("rows")
            .iter()
            .map(|r| {
                (
                    r["device"]["id"].as_i64().expect("device id"),
                    r["state"].as_str().expect("state").to_owned(),
                )
            })
            .collect()
    }

    pub async fn state_of(&self, device: i64) -> String {
        self.states()
            .await
            .into_iter()
            .find(|(id, _)| *id == device)
            .map(|(_, s)| s)
            .unwrap_or_else(|| panic!("device {device} is not in the campaign"))
    }

    /// Waits (up to 30 s) until the device reaches `state` on the server.
    pub async fn wait_state(&self, device: i64, state: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = self.state_of(device).await;
            if now == state {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "device {device} stayed {now}, expected {state}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn audit(&self) -> String {
        self.expect(
            self.admin(Method::GET, "/api/v1/admin/audit?limit=1000"),
            200,
        )
        .await
        .to_string()
    }
}

/// The agent binary.
pub fn agent() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_onshi-agent"));
    c.env("ONSHI_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn,onshi_agent=debug")
        .stdin(Stdio::null());
    c
}

/// Runs the agent binary to completion (off the async workers).
pub async fn agent_output(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || agent().args(&args).output().expect("agent runs"))
        .await
        .expect("join")
}

/// Enrols a site's terminal (and readers) with the binary; answers the terminal's and readers'
/// device ids from the state directory.
pub async fn enroll(server: &Server, code: &str, dir: &Path, extra: &[&str]) -> (i64, Vec<i64>) {
    let key = server.enrollment_key(code).await;
    let mut args: Vec<String> = [
        "enroll",
        "--server",
        &server.url,
        "--institution",
        code,
        "--key",
        &key,
        "--state-dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(dir.display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = agent_output(args).await;
    assert!(
        out.status.success(),
        "enroll failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let identity: Value =
        serde_json::from_slice(&std::fs::read(dir.join("agent.json")).expect("agent.json"))
            .expect("json");
    let readers = identity["readers"]
        .as_array()
        .expect("readers")
        .iter()
        .map(|r| r["device_id"].as_i64().expect("id"))
        .collect();
    (
        identity["terminal"]["device_id"].as_i64().expect("id"),
        readers,
    )
}

/// `onshi-agent status --json`.
pub async fn status(dir: &Path) -> Value {
    let out = agent_output(vec![
        "status".into(),
        "--json".into(),
        "--state-dir".into(),
        dir.display().to_string(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status json")
}

/// A running `onshi-agent run`, its JSON log in a file.
pub struct Running {
    child: Child,
    pub log: PathBuf,
}

impl Running {
    /// Starts `onshi-agent run` waking at least every 50 ms, so moving the server clock is
    /// noticed at once.
    pub fn start(dir: &Path, extra: &[&str]) -> Self {
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self::start_with_log(dir, &dir.with_extension(format!("run{n}.log")), extra)
    }

    /// [`Running::start`] with the log at `log`.
    pub fn start_with_log(dir: &Path, log: &Path, extra: &[&str]) -> Self {
        let log = log.to_path_buf();
        let file = std::fs::File::create(&log).expect("log file");
        let child = agent()
            .args(["run", "--state-dir"])
            .arg(dir)
            .args(["--max-sleep-ms", "50"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("agent starts");
        Self { child, log }
    }

    /// SIGKILL, as a power cut or a crash would.
    pub fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The JSON log lines whose message is `message`.
pub fn log_events(log: &str, message: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == message)
        .collect()
}

/// Waits (up to 30 s) until `cond` holds.
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The length of a partial download in `dir`, if one exists.
pub fn part_len(dir: &Path) -> Option<u64> {
    std::fs::read_dir(dir.join("downloads"))
        .ok()?
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .and_then(|e| e.metadata().ok())
        .map(|m| m.len())
}
