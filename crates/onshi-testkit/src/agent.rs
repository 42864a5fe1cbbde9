//! The real `onshi-agent` binary as child processes: enrolment, `status --json`, and `run` with
//! its JSON log in a file. The test names the binary (`env!("CARGO_BIN_EXE_onshi-agent")` exists
//! only in the agent's own tests).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

use crate::server::TestApp;
use crate::wait::wait_for;

/// The agent binary at a path.
#[derive(Clone, Copy)]
pub struct AgentBin(pub &'static str);

impl AgentBin {
    /// The binary, logging JSON (debug for the agent itself), with no stdin.
    pub fn command(self) -> Command {
        let mut c = Command::new(self.0);
        c.env("ONSHI_LOG_FORMAT", "json")
            .env("RUST_LOG", "warn,onshi_agent=debug")
            .stdin(Stdio::null());
        c
    }

    /// Runs the binary to completion (off the async workers).
    pub async fn output(self, args: Vec<String>) -> Output {
        tokio::task::spawn_blocking(move || {
            self.command().args(&args).output().expect("agent runs")
        })
        .await
        .expect("join")
    }

    /// Enrols a site's terminal (and the readers in `extra`) with the binary; answers the
    /// terminal's and readers' device ids from the state directory.
    pub async fn enroll(
        self,
        app: &TestApp,
        code: &str,
        dir: &Path,
        extra: &[&str],
    ) -> (i64, Vec<i64>) {
        self.enroll_at(app, &app.url(""), code, dir, extra).await
    }

    /// [`AgentBin::enroll`] with the agent told to reach the server at `base` (a proxy in
    /// front of `app`): every request of the agent goes there from then on.
    pub async fn enroll_at(
        self,
        app: &TestApp,
        base: &str,
        code: &str,
        dir: &Path,
        extra: &[&str],
    ) -> (i64, Vec<i64>) {
        let key = app.enrollment_key(code).await;
        let mut args: Vec<String> = ["enroll", "--server", base, "--institution", code]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(["--key".to_owned(), key, "--state-dir".to_owned()]);
        args.push(dir.display().to_string());
        // The root the installer carries, unless the test brings its own.
        if !extra.contains(&"--trust-root") {
            let root = dir.with_extension("root.json");
            crate::keys::TestKeys::write_root(&root);
            args.extend(["--trust-root".to_owned(), root.display().to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = self.output(args).await;
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
    pub async fn status(self, dir: &Path) -> Value {
        let out = self
            .output(vec![
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

    /// Starts `onshi-agent run` waking at least every 50 ms, so moving the server clock is
    /// noticed at once; its log next to `dir`.
    pub fn run(self, dir: &Path, extra: &[&str]) -> Running {
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.run_with_log(dir, &dir.with_extension(format!("run{n}.log")), extra)
    }

    /// [`AgentBin::run`] with the log at `log`.
    pub fn run_with_log(self, dir: &Path, log: &Path, extra: &[&str]) -> Running {
        let mut args = vec!["--max-sleep-ms", "50"];
        args.extend(extra);
        self.run_at_own_pace(dir, log, &args)
    }

    /// `onshi-agent run` at its own pace (no cap on its sleeps), its log at `log`.
    pub fn run_at_own_pace(self, dir: &Path, log: &Path, extra: &[&str]) -> Running {
        let log = log.to_path_buf();
        let file = std::fs::File::create(&log).expect("log file");
        let child = self
            .command()
            .args(["run", "--state-dir"])
            .arg(dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("agent starts");
        Running { child, log }
    }
}

/// A running `onshi-agent run`, its JSON log in a file; killed on drop.
pub struct Running {
    child: Child,
    pub log: PathBuf,
}

impl Running {
    /// SIGKILL, as a power cut or a crash would; answers the log.
    pub fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log's events whose message is `message`.
    pub fn events(&self, message: &str) -> Vec<Value> {
        log_events(&self.log_text(), message)
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

/// The length of a partial download in `dir`, if one exists.
pub fn part_len(dir: &Path) -> Option<u64> {
    std::fs::read_dir(dir.join("downloads"))
        .ok()?
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .and_then(|e| e.metadata().ok())
        .map(|m| m.len())
}

/// The server time of `device`'s last successful check-in, as the agent recorded it in
/// `DIR/state.json`.
pub fn last_contact(dir: &Path, device: i64) -> Option<jiff::Timestamp> {
    let text = std::fs::read_to_string(dir.join("state.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v["devices"][device.to_string()]["last_contact"]
        .as_str()?
        .parse()
        .ok()
}

/// Waits until `device` has checked in at server time `at` or later and then once more: the
/// step that followed the first of those check-ins (an install, a restart, nothing) is over.
pub async fn wait_for_step_after(dir: &Path, device: i64, at: jiff::Timestamp) {
    let mut first = None;
    wait_for(
        &format!("device {device} to check in twice from {at}"),
        || match (first, last_contact(dir, device)) {
            (None, Some(t)) if t >= at => {
                first = Some(t);
                false
            }
            (Some(f), Some(t)) => t > f,
            _ => false,
        },
    )
    .await;
}
