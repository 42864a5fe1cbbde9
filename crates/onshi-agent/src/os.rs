//! The agent's operating-system boundary, all of it: where its state lives by default, how it
//! runs as a service (tells the service manager it is ready, learns it must stop, says it is
//! stopping) and how the terminal is restarted. Nothing else in the agent calls the system.
//!
//! This is the Linux/systemd implementation (the emulated terminals, tests and demos): a
//! `Type=notify` unit ([`unit`]), `sd_notify` datagrams to `$NOTIFY_SOCKET`, SIGTERM to stop,
//! `$STATE_DIRECTORY` (systemd's `StateDirectory=`) or `/var/lib/onshi-agent`, and the restart
//! as the command configured at enrolment (`systemctl reboot` on a real machine). The real
//! terminals run Windows 10 IoT Enterprise LTSC; ARCHITECTURE.md ("The port to the terminals")
//! says what each item here becomes there.

use std::path::{Path, PathBuf};

/// The state directory when none is given: systemd's `StateDirectory=` (`$STATE_DIRECTORY`),
/// else `/var/lib/onshi-agent`.
pub fn default_state_dir() -> PathBuf {
    state_dir_from(std::env::var_os("STATE_DIRECTORY").as_deref())
}

/// [`default_state_dir`] for a given `$STATE_DIRECTORY` (systemd may list several, separated by
/// `:`; the first is the agent's).
fn state_dir_from(env: Option<&std::ffi::OsStr>) -> PathBuf {
    env.and_then(|v| v.to_str())
        .and_then(|v| v.split(':').next())
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/var/lib/onshi-agent"), PathBuf::from)
}

/// The service manager the agent runs under: systemd when `$NOTIFY_SOCKET` is set, else none
/// (a terminal session, a test), when every call does nothing.
#[derive(Debug, Default)]
pub struct Service {
    notify: Option<PathBuf>,
}

impl Service {
    /// The manager this process was started by.
    pub fn from_env() -> Self {
        Self {
            notify: std::env::var_os("NOTIFY_SOCKET").map(PathBuf::from),
        }
    }

    /// Started and working: systemd's `Type=notify` start completes.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    /// Stopping on request: the slot in use stays as it is, a download resumes next time.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }

    /// One `sd_notify` message. A manager that cannot be told is no reason to stop serving
    /// the terminal: the failure is logged.
    fn send(&self, message: &str) {
        let Some(path) = &self.notify else {
            return;
        };
        if let Err(e) = notify(path, message) {
            tracing::warn!(socket = %path.display(), error = %e, "cannot notify the service manager");
        }
    }
}

#[cfg(unix)]
fn notify(path: &Path, message: &str) -> std::io::Result<()> {
    use std::os::unix::net::UnixDatagram;
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_os_str().as_encoded_bytes();
    // `@name` is a socket in Linux's abstract namespace.
    #[cfg(target_os = "linux")]
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt as _;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        socket.send_to_addr(message.as_bytes(), &addr)?;
        return Ok(());
    }
    let _ = bytes;
    socket.send_to(message.as_bytes(), path)?;
    Ok(())
}

#[cfg(not(unix))]
fn notify(_: &Path, _: &str) -> std::io::Result<()> {
    Ok(())
}

/// The request to stop: SIGTERM (what `systemctl stop` sends) or Ctrl-C (SIGINT). Listening
/// starts when it is made — before the service tells the manager it is ready, since a stop that
/// comes right after READY would otherwise meet the signal's default action and kill the agent
/// without its clean stop.
pub struct StopRequest {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl StopRequest {
    /// Starts listening for the stop signals (inside a tokio runtime).
    pub fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signals = signal(SignalKind::terminate())
                .and_then(|term| Ok((term, signal(SignalKind::interrupt())?)))
                .ok();
            Self { signals }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Completes when a stop signal has arrived (since [`StopRequest::listen`]).
    pub async fn requested(self) {
        #[cfg(unix)]
        if let Some((mut term, mut interrupt)) = self.signals {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Why the terminal could not be restarted.
#[derive(Debug, thiserror::Error)]
#[error("the restart command {command:?} failed: {why}")]
pub struct RestartError {
    pub command: String,
    pub why: String,
}

/// Restarts the terminal with `argv` (configured at enrolment, `--restart-command`). A real
/// restart ends this process, and the service starts it again with `run --boot`; an emulation
/// command returns. `None`: the emulated terminal, whose application the agent restarts itself.
pub async fn restart_terminal(argv: Option<&[String]>) -> Result<(), RestartError> {
    let Some((program, args)) = argv.and_then(<[String]>::split_first) else {
        return Ok(());
    };
    let command = argv.map(|a| a.join(" ")).unwrap_or_default();
    let status = tokio::process::Command::new(program)
        .args(args)
        .status()
        .await
        .map_err(|e| RestartError {
            command: command.clone(),
            why: e.to_string(),
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(RestartError {
            command,
            why: status.to_string(),
        })
    }
}

/// The systemd unit an installer writes to `/etc/systemd/system/onshi-agent.service` for the
/// agent at `binary` with its state in `state_dir` (`onshi-agent service-unit` prints it): the
/// terminal's application starts with the installed version at boot (`run --boot`), is told to
/// stop with SIGTERM, and is started again if it dies.
pub fn unit(binary: &Path, state_dir: &Path) -> String {
    format!(
        "# The onshi agent (配信アプリケーション) of this terminal.\n\
         [Unit]\n\
         Description=onshi distribution agent\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=notify\n\
         NotifyAccess=main\n\
         ExecStart={} run --boot --state-dir {}\n\
         KillSignal=SIGTERM\n\
         TimeoutStopSec=30\n\
         Restart=always\n\
         RestartSec=10\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        binary.display(),
        state_dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_directory_is_systemds_or_var_lib() {
        assert_eq!(state_dir_from(None), PathBuf::from("/var/lib/onshi-agent"));
        assert_eq!(
            state_dir_from(Some("/var/lib/onshi-agent-2:/var/lib/other".as_ref())),
            PathBuf::from("/var/lib/onshi-agent-2")
        );
        assert_eq!(
            state_dir_from(Some("".as_ref())),
            PathBuf::from("/var/lib/onshi-agent")
        );
    }

    #[cfg(unix)]
    #[test]
    fn ready_and_stopping_reach_the_notify_socket() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify.sock");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).expect("bound");
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        let service = Service {
            notify: Some(path.clone()),
        };
        service.ready("checking in");
        service.stopping();
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).expect("READY");
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=checking in");
        let n = socket.recv(&mut buf).expect("STOPPING");
        assert_eq!(&buf[..n], b"STOPPING=1\nSTATUS=stopping");
        // Without a manager nothing is sent and nothing fails.
        Service::default().ready("alone");
    }

    /// systemd may name its socket in Linux's abstract namespace (`@…`), as in containers.
    #[cfg(target_os = "linux")]
    #[test]
    fn an_abstract_notify_socket_is_reached_too() {
        use std::os::linux::net::SocketAddrExt as _;
        let name = format!("onshi-agent-test-{}", std::process::id());
        let addr =
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("a name");
        let socket = std::os::unix::net::UnixDatagram::bind_addr(&addr).expect("bound");
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        Service {
            notify: Some(PathBuf::from(format!("@{name}"))),
        }
        .ready("up");
        let mut buf = [0u8; 64];
        let n = socket.recv(&mut buf).expect("READY");
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=up");
    }

    #[tokio::test]
    async fn a_restart_command_that_fails_is_an_error_naming_it() {
        assert!(restart_terminal(None).await.is_ok());
        assert!(restart_terminal(Some(&["true".to_owned()])).await.is_ok());
        let e = restart_terminal(Some(&["false".to_owned()]))
            .await
            .expect_err("false fails");
        assert_eq!(e.command, "false");
        let e = restart_terminal(Some(&["/nonexistent/reboot".to_owned(), "-r".to_owned()]))
            .await
            .expect_err("no such program");
        assert_eq!(e.command, "/nonexistent/reboot -r");
    }

    #[test]
    fn the_unit_starts_the_installed_version_at_boot_and_stops_with_sigterm() {
        let text = unit(
            Path::new("/usr/local/bin/onshi-agent"),
            Path::new("/var/lib/onshi-agent"),
        );
        for line in [
            "Type=notify",
            "ExecStart=/usr/local/bin/onshi-agent run --boot --state-dir /var/lib/onshi-agent",
            "KillSignal=SIGTERM",
            "Restart=always",
            "WantedBy=multi-user.target",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
    }
}
