//! The server's side of the trust chain (`onshi_core::trust`): the chain of roots it serves
//! (kept in the store's settings, so every replica serves the same chain) and the one online key
//! it holds, the timestamp key. The server holds no root or targets key: it cannot sign a
//! release, only check one and say for how long its answer is fresh.
//!
//! Must never: replace the trusted root because a file changed or went missing, or start with
//! a timestamp key the root does not name (on SQLite as on PostgreSQL).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ed25519_dalek::SigningKey;
use jiff::Timestamp;
use onshi_core::release::decode_signing_key;
use onshi_core::trust::{PublicKey, Role, Signed, TimestampMeta, TrustError, TrustedRoot};
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

/// The trust chain as this server knows it, and its timestamp key.
pub struct TrustState {
    chain: RwLock<Chain>,
    timestamp_key: SigningKey,
    /// Timestamps signed, by release id: (root version, period, metadata).
    stamps: Mutex<HashMap<String, (u64, u64, Signed)>>,
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
        "root version {0} does not name this server's timestamp key among its timestamp keys: \
         publish a root that lists both the old and the new timestamp key first, restart the \
         servers with the new key, then drop the old one"
    )]
    TimestampKeyDropped(u64),
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
        timestamp_key_file: &Path,
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
        let timestamp_key = read_timestamp_key(timestamp_key_file)?;
        let public = PublicKey(timestamp_key.verifying_key());
        anyhow::ensure!(
            newest.root().holds(Role::Timestamp, &public),
            "the timestamp key {} (key id {}) is not a timestamp key of the trusted root \
             version {}: a changed or replaced key never replaces the trust. Put back the \
             timestamp.key of the key ceremony, or publish a root naming this key first",
            timestamp_key_file.display(),
            public.id(),
            newest.version()
        );
        Ok(Self {
            chain: RwLock::new(Chain {
                roots,
                read_at: Instant::now(),
            }),
            timestamp_key,
            stamps: Mutex::default(),
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
        if !next.root().holds(
            Role::Timestamp,
            &PublicKey(self.timestamp_key.verifying_key()),
        ) {
            return Err(PublishRootError::TimestampKeyDropped(next.version()));
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

    /// The timestamp for `manifest` at `now` under `root`: signed once per period and release.
    pub fn timestamp(
        &self,
        root: &TrustedRoot,
        release_id: &str,
        manifest: &Signed,
        now: Timestamp,
    ) -> Signed {
        let meta = TimestampMeta::at(now, root.version(), release_id, manifest);
        let mut stamps = self.stamps.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((v, period, signed)) = stamps.get(release_id)
            && *v == root.version()
            && *period == meta.version
            && signed
                .parse::<TimestampMeta>(Role::Timestamp)
                .is_ok_and(|t| t.manifest == meta.manifest)
        {
            return signed.clone();
        }
        let signed = Signed::sign(&meta, &[&self.timestamp_key]);
        stamps.insert(
            release_id.to_owned(),
            (root.version(), meta.version, signed.clone()),
        );
        signed
    }
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

/// The server's timestamp key. Never created here: a missing key stops the server.
fn read_timestamp_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading the timestamp key {}: the server never creates one; copy timestamp.key \
             from the offline key ceremony (`onshi keys init`, README) or point \
             --timestamp-key at it",
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
