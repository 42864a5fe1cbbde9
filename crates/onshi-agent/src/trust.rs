//! What the agent trusts, and how it follows the chain (TUF client workflow): the root its
//! installer carried (`enroll --trust-root root.json`), updated only by newer roots each signed
//! by a threshold of the one before (5.3), and the newest timestamp and snapshot it accepted
//! (5.4, 5.5: so an older answer, or one that withdraws a release, is a rollback). Kept in
//! `DIR/trust.json`; never taken from an enrolment answer.

use std::path::{Path, PathBuf};

use onshi_core::trust::{Role, Signed, TrustError, Trusted, TrustedRoot, VerifiedRelease};
use serde::{Deserialize, Serialize};

use crate::client::{Client, ClientError};
use crate::files::atomic_write;

/// At most this many root versions are followed in one update (an endless chain is refused).
pub const MAX_ROOT_HOPS: u64 = 64;

/// `DIR/trust.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustFile {
    /// The newest root reached from the installer's root.
    pub root: Signed,
    /// The newest timestamp accepted under this root's timestamp keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Signed>,
    /// The snapshot that timestamp named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Signed>,
    /// Written by agents before the snapshot role (an hour's number): read and ignored, the
    /// next update keeps a timestamp instead.
    #[serde(default, skip_serializing)]
    pub timestamp_version: Option<u64>,
}

impl TrustFile {
    /// What enrolment writes: the root reached from the installer's, nothing else yet.
    pub fn new(root: &TrustedRoot) -> Self {
        Self {
            root: root.signed().clone(),
            timestamp: None,
            snapshot: None,
            timestamp_version: None,
        }
    }
}

/// What the agent trusts now: the file, its root verified, and the timestamp and snapshot in it
/// verified under that root.
#[derive(Debug, Clone)]
pub struct Trust {
    file: TrustFile,
    root: TrustedRoot,
    trusted: Trusted,
}

/// Why the agent's trust cannot be read or updated.
#[derive(Debug, thiserror::Error)]
pub enum TrustFileError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is damaged or does not verify ({why}); the agent never re-pins what a server \
         says: enrol again with the installer's root.json"
    )]
    Damaged { path: PathBuf, why: String },
}

/// Why following the chain failed.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("could not fetch root metadata: {0}")]
    Fetch(#[from] ClientError),
    #[error("root version {version} from the server is refused: {why}")]
    Refused { version: u64, why: TrustError },
    #[error("the server offers more than {MAX_ROOT_HOPS} new root versions at once")]
    TooManyHops,
    #[error(
        "the server's root (version {server}) does not chain to the trusted root (reached \
         version {ours}): this server is not the one the installer's root.json trusts"
    )]
    NotChained { server: u64, ours: u64 },
}

impl Trust {
    pub fn root(&self) -> &TrustedRoot {
        &self.root
    }

    pub fn trusted(&self) -> &Trusted {
        &self.trusted
    }

    /// Moves to `newer` (reached by [`follow`]) and saves it. A root that changed the snapshot
    /// or timestamp keys drops the trusted timestamp and snapshot (TUF 5.3.11).
    pub fn update_root(&mut self, newer: TrustedRoot, dir: &Path) -> Result<(), TrustFileError> {
        if newer.version() == self.root.version() {
            return Ok(());
        }
        let mut file = self.file.clone();
        file.root = newer.signed().clone();
        let mut trusted = self.trusted.clone();
        if self.root.online_keys_changed(&newer) {
            (file.timestamp, file.snapshot) = (None, None);
            trusted = Trusted::default();
        }
        file.save(dir)?;
        tracing::info!(
            from = self.root.version(),
            to = newer.version(),
            "followed the root chain"
        );
        *self = Self {
            file,
            root: newer,
            trusted,
        };
        Ok(())
    }

    /// Keeps the timestamp and snapshot of a release that verified as the trusted ones.
    pub fn accept(
        &mut self,
        timestamp: &Signed,
        snapshot: &Signed,
        verified: &VerifiedRelease,
        dir: &Path,
    ) -> Result<(), TrustFileError> {
        let newer = Trusted {
            timestamp: Some(verified.timestamp.clone()),
            snapshot: Some(verified.snapshot.clone()),
        };
        if newer == self.trusted {
            return Ok(());
        }
        let mut file = self.file.clone();
        file.timestamp = Some(timestamp.clone());
        file.snapshot = Some(snapshot.clone());
        file.save(dir)?;
        self.file = file;
        self.trusted = newer;
        Ok(())
    }
}

impl TrustFile {
    fn path(dir: &Path) -> PathBuf {
        dir.join("trust.json")
    }

    /// Reads `DIR/trust.json` and verifies it again: the root, and the timestamp and snapshot
    /// under it (signatures only; expiry is for new metadata).
    pub fn load(dir: &Path) -> Result<Trust, TrustFileError> {
        let path = Self::path(dir);
        let text = std::fs::read(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                TrustFileError::Damaged {
                    path: path.clone(),
                    why: "missing".into(),
                }
            } else {
                TrustFileError::Io {
                    path: path.clone(),
                    source,
                }
            }
        })?;
        let file: Self = serde_json::from_slice(&text).map_err(|e| TrustFileError::Damaged {
            path: path.clone(),
            why: e.to_string(),
        })?;
        let damaged = |e: TrustError| TrustFileError::Damaged {
            path: path.clone(),
            why: e.to_string(),
        };
        let root = TrustedRoot::bootstrap(file.root.clone()).map_err(damaged)?;
        let trusted = Trusted {
            timestamp: file
                .timestamp
                .as_ref()
                .map(|t| root.reload_timestamp(t))
                .transpose()
                .map_err(damaged)?,
            snapshot: file
                .snapshot
                .as_ref()
                .map(|s| root.reload_snapshot(s))
                .transpose()
                .map_err(damaged)?,
        };
        Ok(Trust {
            file,
            root,
            trusted,
        })
    }

    /// Writes `DIR/trust.json` whole or not at all.
    pub fn save(&self, dir: &Path) -> Result<(), TrustFileError> {
        let path = Self::path(dir);
        let json = serde_json::to_vec_pretty(self).map_err(|e| TrustFileError::Damaged {
            path: path.clone(),
            why: e.to_string(),
        })?;
        atomic_write(&path, &json).map_err(|source| TrustFileError::Io { path, source })
    }
}

/// Follows the chain from `trusted`: fetches version N+1 until the server has no newer one,
/// each checked against the one before (TUF 5.3). Expiry is checked by the caller against the
/// newest root reached.
pub async fn follow(
    client: &Client,
    token: Option<&str>,
    trusted: &TrustedRoot,
) -> Result<TrustedRoot, FollowError> {
    let mut root = trusted.clone();
    for _ in 0..MAX_ROOT_HOPS {
        let version = root.version() + 1;
        let Some(signed) = client.root(token, version).await? else {
            return Ok(root);
        };
        root = root
            .next(signed)
            .map_err(|why| FollowError::Refused { version, why })?;
    }
    Err(FollowError::TooManyHops)
}

/// At enrolment: the server's newest root must be the one reached from the installer's root.
pub async fn check_server(
    client: &Client,
    installer: &TrustedRoot,
) -> Result<TrustedRoot, FollowError> {
    let reached = follow(client, None, installer).await?;
    let newest = client.newest_root().await?;
    if &newest != reached.signed() {
        let server = newest
            .parse::<onshi_core::trust::Root>(Role::Root)
            .map_or(0, |r| r.version);
        return Err(FollowError::NotChained {
            server,
            ours: reached.version(),
        });
    }
    Ok(reached)
}
