//! The device agent (配信アプリケーション) that runs on a site's 資格確認端末: it enrols the
//! terminal and its face-authentication card readers, checks in when the server says, downloads
//! the update inside the night windows (resumable, verified against SHA-256 and the signed
//! manifest), installs it into a staged slot switched by an atomic pointer, and keeps the
//! terminal "installed — restart required" until it restarts. A card reader's installed
//! component is applied by that same terminal restart (DESIGN §3): the agent activates it once
//! the terminal runs the new version.
//!
//! A library so that the demo and the simulator's load mode can run many agents in one process;
//! the `onshi-agent` binary wraps it.
//!
//! Must never: leave a site unable to check patients in. The running version is only ever
//! replaced by a restart, and only by a complete, verified slot.

pub mod agent;
pub mod client;
pub mod delta;
pub mod download;
pub mod files;
pub mod layout;
pub mod os;
pub mod status;
pub mod trust;

pub use agent::{Agent, AgentError, Options, Pace};
pub use client::{Client, ClientError};
pub use layout::{Component, Identity, StateDir};
pub use status::Status;

use onshi_core::vendor::Vendor;
use onshi_core::version::Version;

/// What `enroll` needs.
#[derive(Debug, Clone)]
pub struct Enrollment {
    pub institution: String,
    pub enrollment_key: String,
    pub serial: String,
    /// Card readers attached to the terminal: vendor and serial.
    pub readers: Vec<(Vendor, String)>,
    /// The root metadata the terminal's installer carries (`root.json` of the key ceremony):
    /// the only trust the agent starts from. Enrolment answers carry none.
    pub trust_root: onshi_core::trust::Signed,
    /// The version the terminal and readers run before any update.
    pub base_version: Version,
    /// Overrides the site's automatic restart time the server knows (`HH:MM`).
    pub auto_restart: Option<String>,
    pub restart_command: Option<Vec<String>>,
    /// The self-check of the applied version after a restart (argv; exit 0 is healthy).
    pub self_check_command: Option<Vec<String>>,
}

/// Why enrolment failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("{0} already holds an enrolled agent (agent.json); use another --state-dir")]
    AlreadyEnrolled(std::path::PathBuf),
    #[error("enrolment refused: {0}")]
    Server(#[from] ClientError),
    #[error(transparent)]
    Layout(#[from] layout::LayoutError),
    #[error("the installer's root does not verify: {0}")]
    BadTrustRoot(onshi_core::trust::TrustError),
    #[error("refusing this server: {0}")]
    Untrusted(#[from] trust::FollowError),
    #[error(transparent)]
    TrustFile(#[from] trust::TrustFileError),
    #[error("{0:?} is not a time of day HH:MM")]
    BadAutoRestart(String),
}

/// Enrols the terminal and its readers with the server and creates the state directory.
pub async fn enroll(
    dir: &StateDir,
    client: &Client,
    e: &Enrollment,
) -> Result<Identity, EnrollError> {
    if dir.root().join("agent.json").exists() {
        return Err(EnrollError::AlreadyEnrolled(dir.root().to_path_buf()));
    }
    let installer = onshi_core::trust::TrustedRoot::bootstrap(e.trust_root.clone())
        .map_err(EnrollError::BadTrustRoot)?;
    if let Some(at) = &e.auto_restart
        && jiff::civil::Time::strptime("%H:%M", at).is_err()
    {
        return Err(EnrollError::BadAutoRestart(at.clone()));
    }
    // Before any credential is asked for: the server's metadata must chain to the root the
    // installer carried (no trust on first use).
    let reached = trust::check_server(client, &installer).await?;
    let terminal = client
        .enroll(&e.institution, &e.enrollment_key, &e.serial)
        .await?;
    let mut readers = Vec::new();
    for (vendor, serial) in &e.readers {
        let r = client
            .enroll_reader(&terminal.device_token, *vendor, serial)
            .await?;
        readers.push(layout::ReaderIdentity {
            vendor: *vendor,
            credential: layout::Credential {
                device_id: r.device_id,
                token: r.device_token,
                serial: serial.clone(),
            },
        });
    }
    let identity = Identity {
        server: client.base().to_owned(),
        institution: e.institution.clone(),
        terminal: layout::Credential {
            device_id: terminal.device_id,
            token: terminal.device_token,
            serial: e.serial.clone(),
        },
        readers,
        auto_restart: e.auto_restart.clone().or(terminal.auto_restart),
        restart_command: e.restart_command.clone(),
        self_check_command: e.self_check_command.clone(),
    };
    dir.create(&identity, &e.base_version)?;
    trust::TrustFile::new(&reached).save(dir.root())?;
    tracing::info!(institution = %e.institution, terminal = identity.terminal.device_id, readers = identity.readers.len(), "enrolled");
    Ok(identity)
}
