//! The agent's state directory, and the only code that knows its layout:
//!
//! ```text
//! DIR/agent.json               who the agent is: server, device tokens (0600)
//! DIR/trust.json               the trusted root (from the installer, then its chain) and the
//!                              timestamp and snapshot trusted since the last update
//!                              (`crate::trust`)
//! DIR/state.json               what it last heard and sent: seq, last contact (rebuildable)
//! DIR/lock                     serialises `run`, `restart` and `status` on the files below
//! DIR/downloads/<sha256>.part  a download in progress, resumed with Range
//! DIR/downloads/<sha256>       a complete, verified package waiting to be installed
//! DIR/versions/<version>/      the terminal application's installed slots
//! DIR/current                  which slot is installed (switched by atomic rename)
//! DIR/running                  the version the running terminal application started with
//! DIR/readers/<serial>/        a card reader: its own versions/, current, and power
//! ```
//!
//! Everything that decides the update's outcome is a slot on disk and a pointer; `state.json`
//! only speeds things up and is rebuilt from the slots if it is damaged.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use onshi_core::deployment::DeploymentState;
use onshi_core::offer::Action;
use onshi_core::release::{Sha256, Target};
use onshi_core::schedule::{CompletionCheck, Phase};
use onshi_core::vendor::Vendor;
use onshi_core::version::Version;
use serde::{Deserialize, Serialize};

use crate::files::{atomic_write, atomic_write_secret, quick_write, sync_dir};

/// A failure reading or writing the state directory.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "{0} is not an enrolled agent's state directory (no agent.json); run `onshi-agent enroll` first"
    )]
    NotEnrolled(PathBuf),
    #[error("{path} is damaged: {why}")]
    Damaged { path: PathBuf, why: String },
    #[error("no card reader with serial {0:?} is enrolled here")]
    UnknownReader(String),
}

impl LayoutError {
    /// The underlying I/O error, if any (to tell "disk full" from other faults).
    pub fn io(&self) -> Option<&io::Error> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, LayoutError>;

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> LayoutError + '_ {
    move |source| LayoutError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One device's credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    pub device_id: i64,
    pub token: String,
    pub serial: String,
}

/// A card reader attached to the terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReaderIdentity {
    pub vendor: Vendor,
    #[serde(flatten)]
    pub credential: Credential,
}

/// Who the agent is; written once by `enroll`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The server's base URL, e.g. `https://onshi.example.jp`.
    pub server: String,
    pub institution: String,
    pub terminal: Credential,
    #[serde(default)]
    pub readers: Vec<ReaderIdentity>,
    /// The site's daily automatic restart time, `HH:MM` in Japan time.
    #[serde(default)]
    pub auto_restart: Option<String>,
    /// The command that restarts the terminal (argv); absent: restart the emulated terminal
    /// application, which then runs the installed version.
    #[serde(default)]
    pub restart_command: Option<Vec<String>>,
    /// The self-check of the applied version, run after each restart onto a new version
    /// (argv; exit 0 is healthy; `ONSHI_VERSION` names the version); its verdict is reported
    /// with `running` and counted by the campaign's wave gates. Absent: none is run.
    #[serde(default)]
    pub self_check_command: Option<Vec<String>>,
}

/// One updatable part of the site: the terminal application or one card reader.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    Terminal,
    Reader { vendor: Vendor, serial: String },
}

impl Component {
    /// The release target this component takes its package from.
    pub fn target(&self) -> Target {
        match self {
            Self::Terminal => Target::Terminal,
            Self::Reader { vendor, .. } => Target::CardReader(*vendor),
        }
    }
}

/// What the agent last heard from the server and last sent, per device id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    #[serde(default)]
    pub devices: BTreeMap<i64, DeviceProgress>,
    /// Signatures of manifests refused as invalid, so the same bad manifest is reported once.
    #[serde(default)]
    pub refused: Vec<String>,
    /// Deltas that failed (download, base or result mismatch): the full package is fetched
    /// instead, and the delta is not tried again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deltas_refused: Vec<Sha256>,
}

/// One device's last exchange with the server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceProgress {
    /// The last report sequence number used.
    pub seq: i64,
    /// The server's time at the last successful check-in.
    pub last_contact: Option<Timestamp>,
    pub campaign: Option<String>,
    pub server_state: Option<DeploymentState>,
    pub action: Option<Action>,
    pub target: Option<Version>,
    pub next_window: Option<Timestamp>,
    /// The campaign's phase at the last check-in (for the advice `status` gives).
    #[serde(default)]
    pub phase: Option<Phase>,
    /// The campaign's night hours the server told, `(opens, closes)`.
    #[serde(default)]
    pub night_hours: Option<(jiff::civil::Time, jiff::civil::Time)>,
    /// The official completion-check site the server named, if any.
    #[serde(default)]
    pub completion_check: Option<CompletionCheck>,
    pub last_error: Option<String>,
}

/// What a slot records about its install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotInfo {
    pub version: Version,
    /// The package's digest; absent for the version the device came with.
    pub sha256: Option<Sha256>,
    /// The server's time when the install completed.
    pub installed_at: Option<Timestamp>,
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

/// Holds the directory's lock; dropping it unlocks.
pub struct Lock(#[allow(dead_code)] File);

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn identity_path(&self) -> PathBuf {
        self.root.join("agent.json")
    }

    fn progress_path(&self) -> PathBuf {
        self.root.join("state.json")
    }

    /// `DIR/downloads`.
    pub fn downloads(&self) -> PathBuf {
        self.root.join("downloads")
    }

    /// The partial download of `sha`.
    pub fn part(&self, sha: Sha256) -> PathBuf {
        self.downloads().join(format!("{sha}.part"))
    }

    /// Where a delta rebuilds the package `sha` before it is verified and renamed to
    /// [`Self::complete`].
    pub fn patching(&self, sha: Sha256) -> PathBuf {
        self.downloads().join(format!("{sha}.patching"))
    }

    /// The installed package of a slot: a delta's base.
    pub fn slot_package(&self, component: &Component, version: &Version) -> PathBuf {
        self.slot(component, version).join("package")
    }

    /// The complete, verified download of `sha`.
    pub fn complete(&self, sha: Sha256) -> PathBuf {
        self.downloads().join(sha.hex())
    }

    /// The directory holding a component's `versions/` and `current`.
    pub fn home(&self, component: &Component) -> PathBuf {
        match component {
            Component::Terminal => self.root.clone(),
            Component::Reader { serial, .. } => self.root.join("readers").join(serial),
        }
    }

    /// A component's slot for `version`.
    pub fn slot(&self, component: &Component, version: &Version) -> PathBuf {
        self.home(component)
            .join("versions")
            .join(version.to_string())
    }

    /// Takes the directory's exclusive lock (waits for another process holding it).
    pub fn lock(&self) -> Result<Lock> {
        let path = self.root.join("lock");
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_at(&path))?;
        f.lock().map_err(io_at(&path))?;
        Ok(Lock(f))
    }

    /// Creates the layout for a new enrolment: the terminal's and each reader's factory slot.
    pub fn create(&self, identity: &Identity, base: &Version) -> Result<()> {
        for dir in [self.root.clone(), self.downloads()] {
            fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        }
        self.save_identity(identity)?;
        for component in self.components(identity) {
            let info = SlotInfo {
                version: base.clone(),
                sha256: None,
                installed_at: None,
            };
            self.write_slot(&component, &info, None)?;
            self.switch(&component, base)?;
            if component == Component::Terminal {
                self.set_running(base)?;
            } else {
                self.set_reader_power(&component, true)?;
            }
        }
        Ok(())
    }

    /// The terminal and every reader enrolled, in a fixed order.
    pub fn components(&self, identity: &Identity) -> Vec<Component> {
        std::iter::once(Component::Terminal)
            .chain(identity.readers.iter().map(|r| Component::Reader {
                vendor: r.vendor,
                serial: r.credential.serial.clone(),
            }))
            .collect()
    }

    pub fn load_identity(&self) -> Result<Identity> {
        let path = self.identity_path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(LayoutError::NotEnrolled(self.root.clone()));
            }
            Err(e) => return Err(io_at(&path)(e)),
        };
        serde_json::from_str(&text).map_err(|e| LayoutError::Damaged {
            path,
            why: e.to_string(),
        })
    }

    pub fn save_identity(&self, identity: &Identity) -> Result<()> {
        let path = self.identity_path();
        let json = serde_json::to_vec_pretty(identity).map_err(|e| LayoutError::Damaged {
            path: path.clone(),
            why: e.to_string(),
        })?;
        // The device token: owner-only from the file's creation.
        atomic_write_secret(&path, &json).map_err(io_at(&path))
    }

    /// The progress file; a damaged one is set aside (`state.json.damaged`) and rebuilt empty:
    /// versions come from the slots, and the server tells the last `seq` it accepted.
    pub fn load_progress(&self) -> Result<Progress> {
        let path = self.progress_path();
        match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(p) => Ok(p),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "state file damaged; rebuilding it from the slots on disk");
                    let aside = self.root.join("state.json.damaged");
                    fs::rename(&path, &aside).map_err(io_at(&path))?;
                    Ok(Progress::default())
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Progress::default()),
            Err(e) => Err(io_at(&path)(e)),
        }
    }

    pub fn save_progress(&self, progress: &Progress) -> Result<()> {
        let path = self.progress_path();
        let json = serde_json::to_vec_pretty(progress).map_err(|e| LayoutError::Damaged {
            path: path.clone(),
            why: e.to_string(),
        })?;
        quick_write(&path, &json).map_err(io_at(&path))
    }

    /// The installed version of a component: its `current` pointer, or if that is missing or
    /// damaged, the newest complete slot.
    pub fn installed(&self, component: &Component) -> Result<Version> {
        let pointer = self.home(component).join("current");
        if let Some(v) = read_version(&pointer)
            && self.slot(component, &v).is_dir()
        {
            return Ok(v);
        }
        tracing::warn!(path = %pointer.display(), "install pointer missing or damaged; using the newest complete slot");
        let newest =
            self.slots(component)?
                .into_iter()
                .max()
                .ok_or_else(|| LayoutError::Damaged {
                    path: pointer.clone(),
                    why: "no installed slot".into(),
                })?;
        self.switch(component, &newest)?;
        Ok(newest)
    }

    /// The complete slots of a component (staging directories start with a dot and are ignored).
    pub fn slots(&self, component: &Component) -> Result<Vec<Version>> {
        let dir = self.home(component).join("versions");
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_at(&dir)(e)),
        };
        Ok(entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|n| Version::parse(n).ok()))
            .collect())
    }

    /// What a slot records (None for a slot without its info file).
    pub fn slot_info(&self, component: &Component, version: &Version) -> Option<SlotInfo> {
        let path = self.slot(component, version).join("slot.json");
        fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    }

    /// Builds a slot in a staging directory and renames it into place: the slot exists whole
    /// or not at all. `package`, if given, is hard-linked (or copied) in.
    pub fn write_slot(
        &self,
        component: &Component,
        info: &SlotInfo,
        package: Option<&Path>,
    ) -> Result<PathBuf> {
        let slot = self.slot(component, &info.version);
        if slot.is_dir() {
            return Ok(slot);
        }
        let versions = self.home(component).join("versions");
        fs::create_dir_all(&versions).map_err(io_at(&versions))?;
        let staging = versions.join(format!(".staging-{}", info.version));
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(io_at(&staging))?;
        }
        fs::create_dir(&staging).map_err(io_at(&staging))?;
        if let Some(src) = package {
            let dst = staging.join("package");
            if fs::hard_link(src, &dst).is_err() {
                fs::copy(src, &dst).map_err(io_at(&dst))?;
                File::open(&dst)
                    .and_then(|f| f.sync_all())
                    .map_err(io_at(&dst))?;
            }
        }
        let info_path = staging.join("slot.json");
        let json = serde_json::to_vec_pretty(info).map_err(|e| LayoutError::Damaged {
            path: info_path.clone(),
            why: e.to_string(),
        })?;
        atomic_write(&info_path, &json).map_err(io_at(&info_path))?;
        fs::rename(&staging, &slot).map_err(io_at(&slot))?;
        sync_dir(&versions).map_err(io_at(&versions))?;
        Ok(slot)
    }

    /// Points a component at an installed slot (atomic: write temp, fsync, rename).
    pub fn switch(&self, component: &Component, version: &Version) -> Result<()> {
        let pointer = self.home(component).join("current");
        atomic_write(&pointer, version.to_string().as_bytes()).map_err(io_at(&pointer))
    }

    /// The version the running terminal application started with; if unknown, the installed one
    /// (the application starts from the pointer).
    pub fn running(&self) -> Result<Version> {
        match read_version(&self.root.join("running")) {
            Some(v) => Ok(v),
            None => self.installed(&Component::Terminal),
        }
    }

    /// The version a card reader runs: its installed component once its terminal has restarted
    /// onto that version (the terminal's restart applies the reader's update, DESIGN §3); before
    /// that, the newest of its slots the terminal's running version has reached (the oldest slot
    /// if none has).
    pub fn reader_running(&self, component: &Component) -> Result<Version> {
        let installed = self.installed(component)?;
        let terminal = self.running()?;
        if installed <= terminal {
            return Ok(installed);
        }
        let slots = self.slots(component)?;
        Ok(slots
            .iter()
            .filter(|v| **v <= terminal)
            .max()
            .or_else(|| slots.iter().min())
            .cloned()
            .unwrap_or(installed))
    }

    /// Records that the terminal application (re)started with `version`.
    pub fn set_running(&self, version: &Version) -> Result<()> {
        let path = self.root.join("running");
        atomic_write(&path, version.to_string().as_bytes()).map_err(io_at(&path))
    }

    /// Whether a card reader is powered on (the emulation's power switch; on by default).
    pub fn reader_powered(&self, component: &Component) -> bool {
        let path = self.home(component).join("power");
        fs::read_to_string(path).map_or(true, |s| s.trim() != "off")
    }

    /// Switches a card reader's power.
    pub fn set_reader_power(&self, component: &Component, on: bool) -> Result<()> {
        let home = self.home(component);
        fs::create_dir_all(&home).map_err(io_at(&home))?;
        let path = home.join("power");
        atomic_write(&path, if on { b"on" } else { b"off" }).map_err(io_at(&path))
    }

    /// The reader component with this serial.
    pub fn reader(&self, identity: &Identity, serial: &str) -> Result<Component> {
        identity
            .readers
            .iter()
            .find(|r| r.credential.serial == serial)
            .map(|r| Component::Reader {
                vendor: r.vendor,
                serial: serial.to_owned(),
            })
            .ok_or_else(|| LayoutError::UnknownReader(serial.to_owned()))
    }

    /// Removes staging directories and temporary files a crash left behind.
    pub fn clean_leftovers(&self, identity: &Identity) -> Result<()> {
        for component in self.components(identity) {
            let versions = self.home(&component).join("versions");
            let Ok(entries) = fs::read_dir(&versions) else {
                continue;
            };
            for e in entries.filter_map(|e| e.ok()) {
                if e.file_name().to_string_lossy().starts_with(".staging-") {
                    let p = e.path();
                    fs::remove_dir_all(&p).map_err(io_at(&p))?;
                }
            }
        }
        Ok(())
    }
}

fn read_version(path: &Path) -> Option<Version> {
    fs::read_to_string(path)
        .ok()
        .and_then(|s| Version::parse(s.trim()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).expect("version")
    }

    fn identity() -> Identity {
        Identity {
            server: "http://127.0.0.1:1".into(),
            institution: "1310000014".into(),
            terminal: Credential {
                device_id: 1,
                token: "t".into(),
                serial: "T-1".into(),
            },
            readers: vec![ReaderIdentity {
                vendor: Vendor::Canon,
                credential: Credential {
                    device_id: 2,
                    token: "r".into(),
                    serial: "R-1".into(),
                },
            }],
            auto_restart: None,
            restart_command: None,
            self_check_command: None,
        }
    }

    fn enrolled() -> (tempfile::TempDir, StateDir) {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = StateDir::new(tmp.path().join("agent"));
        dir.create(&identity(), &v("1.0.0")).expect("create");
        (tmp, dir)
    }

    #[test]
    fn a_new_directory_has_the_factory_version_installed_and_running() {
        let (_tmp, dir) = enrolled();
        assert_eq!(
            dir.installed(&Component::Terminal).expect("installed"),
            v("1.0.0")
        );
        assert_eq!(dir.running().expect("running"), v("1.0.0"));
        let reader = dir.reader(&identity(), "R-1").expect("reader");
        assert_eq!(dir.installed(&reader).expect("installed"), v("1.0.0"));
        assert!(dir.reader_powered(&reader));
        assert_eq!(dir.load_identity().expect("identity"), identity());
    }

    #[test]
    fn a_damaged_pointer_falls_back_to_the_newest_complete_slot() {
        let (_tmp, dir) = enrolled();
        let info = SlotInfo {
            version: v("2.0.0"),
            sha256: None,
            installed_at: None,
        };
        dir.write_slot(&Component::Terminal, &info, None)
            .expect("slot");
        fs::write(dir.root().join("current"), b"\xff garbage").expect("damage");
        assert_eq!(
            dir.installed(&Component::Terminal).expect("installed"),
            v("2.0.0")
        );
        // A staging directory left by a crash is not a slot.
        fs::create_dir_all(dir.root().join("versions/.staging-3.0.0")).expect("staging");
        assert_eq!(
            dir.slots(&Component::Terminal)
                .expect("slots")
                .into_iter()
                .max(),
            Some(v("2.0.0"))
        );
        dir.clean_leftovers(&identity()).expect("clean");
        assert!(!dir.root().join("versions/.staging-3.0.0").exists());
    }

    #[test]
    fn a_damaged_state_file_is_set_aside_and_rebuilt() {
        let (_tmp, dir) = enrolled();
        let mut p = Progress::default();
        p.devices.entry(1).or_default().seq = 7;
        dir.save_progress(&p).expect("save");
        assert_eq!(dir.load_progress().expect("load"), p);
        fs::write(dir.root().join("state.json"), b"{\"devices\": {\"1\": ").expect("damage");
        assert_eq!(dir.load_progress().expect("rebuilt"), Progress::default());
        assert!(dir.root().join("state.json.damaged").exists());
    }

    #[test]
    fn a_directory_without_enrolment_says_so() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let err = StateDir::new(tmp.path())
            .load_identity()
            .expect_err("not enrolled");
        assert!(err.to_string().contains("onshi-agent enroll"), "{err}");
    }
}
