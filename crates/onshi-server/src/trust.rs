//! The server's side of the trust chain (`onshi_core::trust`): the chain of roots it serves
//! (kept in the store's settings, so every replica serves the same chain) and the online keys
//! it holds: the timestamp key and the snapshot key (by default the same key). The server holds
//! no root or targets key: it cannot sign a release, only check one, list the published ones
//! (the snapshot) and say for how long its answer is fresh (the timestamp).
//!
//! Must never: replace the trusted root because a file changed or went missing, or start with
//! an online key the root does not name (on SQLite as on PostgreSQL).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ed25519_dalek::SigningKey;
use jiff::Timestamp;
use onshi_core::release::decode_signing_key;
use onshi_core::trust::{
    MetaRef, PublicKey, Role, Signed, SnapshotMeta, TimestampMeta, TrustError, TrustedRoot,
    online_period, online_version,
};
use onshi_store::{Store, StoreError};

/// The setting holding the newest root's version.
const ROOT_VERSION: &str = "trust_root_version";

/// The setting holding root version `v` (its signed JSON).
fn root_key(version: u64) -> String {
    format!("trust_root:{version}")
}

/// How long a replica trusts its in-memory view of the newest root before asking the store
/// (another replica may have published a rotation).
const ROOT_TTL: Duration = Duration::from_secs(2);

/// Every published release's targets metadata by release id: what the snapshot lists.
pub type Targets = Arc<BTreeMap<String, MetaRef>>;

/// The trust chain as this server knows it, and its online keys.
pub struct TrustState {
    chain: RwLock<Chain>,
    timestamp_key: SigningKey,
    snapshot_key: SigningKey,
    /// The published releases' manifests, by id, as last read.
    targets: Mutex<Option<Targets>>,
    /// The online metadata signed last: (root version, snapshot version) → (timestamp, snapshot).
    online: Mutex<Option<((u64, u64), Online)>>,
}

/// A snapshot and the timestamp naming it, as signed.
#[derive(Debug, Clone)]
pub struct Online {
    pub timestamp: Signed,
    pub snapshot: Signed,
}

struct Chain {
    /// Every root from version 1, each verified against the one before.
    roots: Vec<TrustedRoot>,
    read_at: Instant,
}

/// Why a new root was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishRootError {
    #[error(transparent)]
    Untrusted(#[from] TrustError),
    #[error(
        "root version {0} does not name this server's {1} key among its {1} keys: publish a \
         root that lists both the old and the new {1} key first, restart the servers with the \
         new key, then drop the old one"
    )]
    OnlineKeyDropped(u64, Role),
    #[error("another root version {0} was published at the same time; fetch it and retry")]
    Raced(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TrustState {
    /// At start-up: the chain from the store, or — on the first start only — the root file the
    /// operator brought from the key ceremony; and the timestamp key, which the newest root
    /// must name. Any mismatch stops the server with what to do.
    pub fn load(
        store: &dyn Store,
        root_file: Option<&Path>,
        keys: &OnlineKeyFiles<'_>,
    ) -> anyhow::Result<Self> {
        let mut roots = read_chain(store)?;
        if let Some(path) = root_file {
            let given = read_root_file(path)?;
            let index = given
                .version()
                .checked_sub(1)
                .and_then(|i| usize::try_from(i).ok());
            match index.and_then(|i| roots.get(i)) {
                Some(stored) => anyhow::ensure!(
                    stored.signed() == given.signed(),
                    "{} is root version {}, but the database trusts another root version {}: \
                     this server belongs to another key ceremony. Start it without --trust-root \
                     (the database keeps its chain), or with the root.json of this database",
                    path.display(),
                    given.version(),
                    given.version()
                ),
                None if roots.is_empty() => {
                    anyhow::ensure!(
                        given.version() == 1,
                        "{} is root version {}: the first root a server trusts must be \
                         version 1 (publish later versions with `onshi keys publish-root`)",
                        path.display(),
                        given.version()
                    );
                    let text = serde_json::to_string(given.signed())?;
                    let stored = store.insert_setting_if_absent(&root_key(1), &text)?;
                    anyhow::ensure!(
                        stored == text,
                        "another server recorded a different root version 1 at the same time"
                    );
                    store.insert_setting_if_absent(ROOT_VERSION, "1")?;
                    roots = read_chain(store)?;
                }
                None => anyhow::bail!(
                    "{} is root version {}, newer than the database's version {}: publish \
                     it through the operator API (`onshi keys publish-root`), which checks \
                     that it chains",
                    path.display(),
                    given.version(),
                    roots.len()
                ),
            }
        }
        let newest = roots.last().cloned().with_context(|| {
            "no trusted root: on the first start give --trust-root root.json from the offline \
             key ceremony (`onshi keys init`, README)"
                .to_owned()
        })?;
        let timestamp_key = read_online_key(keys.timestamp, Role::Timestamp)?;
        let snapshot_key = match keys.snapshot {
            Some(path) => read_online_key(path, Role::Snapshot)?,
            None => timestamp_key.clone(),
        };
        for (role, key, path) in [
            (Role::Timestamp, &timestamp_key, keys.timestamp),
            (
                Role::Snapshot,
                &snapshot_key,
                keys.snapshot.unwrap_or(keys.timestamp),
            ),
        ] {
            let public = PublicKey(key.verifying_key());
            anyhow::ensure!(
                newest.root().holds(role, &public),
                "the key {} (key id {}) is not a {role} key of the trusted root version {}: a \
                 changed or replaced key never replaces the trust. Put back the {role} key of \
                 the key ceremony (the ceremony's timestamp.key signs both online roles unless \
                 a snapshot.key was made: then --snapshot-key), or publish a root naming this \
                 key first",
                path.display(),
                public.id(),
                newest.version()
            );
        }
        Ok(Self {
            chain: RwLock::new(Chain {
                roots,
                read_at: Instant::now(),
            }),
            timestamp_key,
            snapshot_key,
            targets: Mutex::default(),
            online: Mutex::default(),
        })
    }

    /// The newest root, re-read from the store at most every [`ROOT_TTL`].
    pub fn newest(&self, store: &dyn Store) -> Result<TrustedRoot, StoreError> {
        match self.fresh() {
            Some(root) => Ok(root),
            None => self.refresh(store),
        }
    }

    /// The newest root if it was read from the store less than [`ROOT_TTL`] ago: what a
    /// request answers without touching the store (or the blocking pool).
    pub fn fresh(&self) -> Option<TrustedRoot> {
        let chain = self.chain.read().unwrap_or_else(|e| e.into_inner());
        (chain.read_at.elapsed() < ROOT_TTL)
            .then(|| chain.roots.last().cloned())
            .flatten()
    }

    fn refresh(&self, store: &dyn Store) -> Result<TrustedRoot, StoreError> {
        let mut chain = self.chain.write().unwrap_or_else(|e| e.into_inner());
        let known = chain.roots.len() as u64;
        let stored: u64 = store
            .setting(ROOT_VERSION)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(known);
        for version in known + 1..=stored {
            let Some(text) = store.setting(&root_key(version))? else {
                break;
            };
            let next = serde_json::from_str(&text)
                .map_err(|e| TrustError::Malformed {
                    role: Role::Root,
                    why: e.to_string(),
                })
                .and_then(|signed| match chain.roots.last() {
                    Some(prev) => prev.next(signed),
                    None => TrustedRoot::bootstrap(signed),
                });
            match next {
                Ok(root) => chain.roots.push(root),
                Err(e) => {
                    tracing::error!(version, error = %e, "a stored root does not chain; ignoring it");
                    break;
                }
            }
        }
        chain.read_at = Instant::now();
        chain
            .roots
            .last()
            .cloned()
            .ok_or_else(|| StoreError::Corrupt("no trusted root".into()))
    }

    /// Root `version` as signed, if the chain in memory has it (ask [`Self::newest`] first
    /// to have read the store recently).
    pub fn known(&self, version: u64) -> Option<Signed> {
        let chain = self.chain.read().unwrap_or_else(|e| e.into_inner());
        let index = usize::try_from(version.checked_sub(1)?).ok()?;
        chain.roots.get(index).map(|r| r.signed().clone())
    }

    /// Publishes the next root: it must chain to the newest and still name this server's
    /// timestamp key.
    pub fn publish_root(
        &self,
        store: &dyn Store,
        signed: Signed,
    ) -> Result<TrustedRoot, PublishRootError> {
        let newest = self.refresh(store)?;
        let next = newest.next(signed)?;
        for (role, key) in [
            (Role::Timestamp, &self.timestamp_key),
            (Role::Snapshot, &self.snapshot_key),
        ] {
            if !next.root().holds(role, &PublicKey(key.verifying_key())) {
                return Err(PublishRootError::OnlineKeyDropped(next.version(), role));
            }
        }
        let text = serde_json::to_string(next.signed()).map_err(|e| {
            PublishRootError::Store(StoreError::Corrupt(format!("a root as JSON: {e}")))
        })?;
        let stored = store.insert_setting_if_absent(&root_key(next.version()), &text)?;
        if stored != text {
            return Err(PublishRootError::Raced(next.version()));
        }
        store.set_setting(ROOT_VERSION, &next.version().to_string())?;
        self.refresh(store)?;
        Ok(next)
    }

    /// The published releases' targets metadata (hash and length of each signed manifest).
    /// The store's release count is read every time — releases are never changed or deleted, so
    /// an unchanged count means an unchanged set — and the manifests only when it grew: a
    /// replica never signs a snapshot older than one another replica signed before it.
    pub fn targets(&self, store: &dyn Store) -> Result<Targets, StoreError> {
        let count = store.release_count()?;
        if let Some(targets) = self
            .targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|t| t.len() as u64 == count)
        {
            return Ok(targets.clone());
        }
        let targets: BTreeMap<String, MetaRef> = store
            .release_manifests()?
            .into_iter()
            .map(|(id, text)| {
                let digest = MetaRef {
                    sha256: onshi_core::release::Sha256::of(text.as_bytes()),
                    length: text.len() as u64,
                };
                (id, digest)
            })
            .collect();
        let targets = Arc::new(targets);
        *self.targets.lock().unwrap_or_else(|e| e.into_inner()) = Some(targets.clone());
        Ok(targets)
    }

    /// The snapshot and timestamp at `now` under `root` for `targets`: signed once per period
    /// and release count (every replica signs the same bytes for the same moment).
    pub fn online(
        &self,
        root: &TrustedRoot,
        targets: &BTreeMap<String, MetaRef>,
        now: Timestamp,
    ) -> Online {
        let (version, _) = online_version(now, targets.len());
        self.signed_online(root, targets, version, now)
    }

    /// The snapshot of version `version` (TUF's consistent snapshots: the one a timestamp
    /// named), if it can be signed again: the same release count, and its period the current
    /// one or the one before (an agent that read the timestamp just before the hour turned).
    pub fn snapshot(
        &self,
        root: &TrustedRoot,
        targets: &BTreeMap<String, MetaRef>,
        version: u64,
        now: Timestamp,
    ) -> Option<Signed> {
        let (began, count) = online_period(version)?;
        let (_, current) = online_version(now, targets.len());
        let period = jiff::SignedDuration::from_secs(onshi_core::trust::TIMESTAMP_PERIOD_SECONDS);
        let recent = began == current || began.checked_add(period).ok() == Some(current);
        let same_releases = count == targets.len().min(onshi_core::trust::MAX_RELEASES);
        (recent && same_releases)
            .then(|| self.signed_online(root, targets, version, began).snapshot)
    }

    fn signed_online(
        &self,
        root: &TrustedRoot,
        targets: &BTreeMap<String, MetaRef>,
        version: u64,
        at: Timestamp,
    ) -> Online {
        let key = (root.version(), version);
        let mut cached = self.online.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((k, online)) = cached.as_ref()
            && *k == key
        {
            return online.clone();
        }
        let meta = SnapshotMeta::at(at, targets.clone());
        let snapshot = Signed::sign(&meta, &[&self.snapshot_key]);
        let timestamp = Signed::sign(&TimestampMeta::of(&snapshot, &meta), &[&self.timestamp_key]);
        let online = Online {
            timestamp,
            snapshot,
        };
        *cached = Some((key, online.clone()));
        online
    }
}

/// Where the server's online keys are.
#[derive(Debug, Clone, Copy)]
pub struct OnlineKeyFiles<'a> {
    pub timestamp: &'a Path,
    /// `None`: the timestamp key signs the snapshot too (the ceremony's default).
    pub snapshot: Option<&'a Path>,
}

/// Every stored root from version 1, each verified against the one before.
fn read_chain(store: &dyn Store) -> anyhow::Result<Vec<TrustedRoot>> {
    let mut roots: Vec<TrustedRoot> = Vec::new();
    let newest: u64 = match store.setting(ROOT_VERSION)? {
        Some(v) => v
            .parse()
            .with_context(|| format!("the stored {ROOT_VERSION} {v:?} is not a number"))?,
        None => return Ok(roots),
    };
    for version in 1..=newest {
        let text = store
            .setting(&root_key(version))?
            .with_context(|| format!("the database lacks root version {version} of its chain"))?;
        let signed: Signed = serde_json::from_str(&text)
            .with_context(|| format!("stored root version {version} is damaged"))?;
        let root = match roots.last() {
            None => TrustedRoot::bootstrap(signed),
            Some(prev) => prev.next(signed),
        }
        .with_context(|| format!("stored root version {version} does not chain"))?;
        roots.push(root);
    }
    Ok(roots)
}

/// A root.json from the key ceremony: signed by a threshold of its own root keys.
pub fn read_root_file(path: &Path) -> anyhow::Result<TrustedRoot> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the trusted root {}", path.display()))?;
    let signed: Signed = serde_json::from_str(&text)
        .with_context(|| format!("{} is not signed root metadata", path.display()))?;
    TrustedRoot::bootstrap(signed).with_context(|| format!("{} does not verify", path.display()))
}

/// One of the server's online keys. Never created here: a missing key stops the server.
fn read_online_key(path: &Path, role: Role) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading the {role} key {}: the server never creates one; copy {role}.key from \
             the offline key ceremony (`onshi keys init`, README) or point --{role}-key at it",
            path.display()
        )
    })?;
    decode_signing_key(&text).with_context(|| {
        format!(
            "{} is not an onshi key (base64 of 32 bytes, as `onshi keys init` writes)",
            path.display()
        )
    })
}
