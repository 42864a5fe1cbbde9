//! The real `onshi serve` binary as a child process, for tests that kill it or drive it from
//! another process. The test names the binary (`env!("CARGO_BIN_EXE_onshi")`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use onshi_store::testing::TestSchema;

use crate::server::{Api, OPERATOR_TOKEN};

/// A running `onshi serve`; killed (SIGKILL) on drop.
pub struct Serve {
    pub child: Child,
    /// `http://ADDR`.
    pub url: String,
}

impl Serve {
    /// Starts `bin serve` on a random loopback port on `data` and, if given, the PostgreSQL
    /// `schema`, its clock at `clock` (running at real speed), mails going to `smtp` if given;
    /// the operator token is [`OPERATOR_TOKEN`]. Returns once it listens.
    pub fn start(
        bin: &str,
        data: &Path,
        schema: Option<&TestSchema>,
        clock: &str,
        smtp: Option<&str>,
    ) -> Self {
        Self::start_with(bin, data, schema, clock, smtp, &[])
    }

    /// [`Serve::start`] with more arguments for `onshi serve` (`--header-timeout 1`, say; a
    /// `--listen` among them replaces the random loopback port).
    pub fn start_with(
        bin: &str,
        data: &Path,
        schema: Option<&TestSchema>,
        clock: &str,
        smtp: Option<&str>,
        extra: &[&str],
    ) -> Self {
        let mut command = Command::new(bin);
        command.arg("serve").args(extra);
        if let Some(schema) = schema {
            command.arg("--database").arg(&schema.url);
        }
        if let Some(smtp) = smtp {
            command.arg("--smtp").arg(smtp);
        }
        let root = crate::keys::TestKeys::install(data);
        command.arg("--trust-root").arg(root);
        // A random loopback port unless the test names another address (`--listen 0.0.0.0:0`).
        if !extra.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        let mut child = command
            .args(["--clock", clock])
            .arg("--data")
            .arg(data)
            .env("ONSHI_OPERATOR_TOKEN", OPERATOR_TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("onshi serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("serve printed its address")
                .expect("utf-8 line");
            if let Some(url) = line.strip_prefix("onshi serve: listening on ") {
                break url.trim().to_owned();
            }
        };
        Self { child, url }
    }

    /// Its API.
    pub fn api(&self) -> Api {
        Api::new(&self.url)
    }

    /// The address it listens on (`127.0.0.1:PORT`, or what `--listen` named with its port).
    pub fn addr(&self) -> &str {
        self.url
            .trim_start_matches("https://")
            .trim_start_matches("http://")
    }

    /// SIGKILL, as a crash or a power cut would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}
