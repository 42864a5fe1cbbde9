//! The trust chain of updates, after The Update Framework (TUF specification 1.0, DESIGN.md §7:
//! "no single online secret can get a package installed on a terminal"). Four roles, each a set
//! of Ed25519 keys and a threshold, all named by the **root**:
//!
//! - `root` — offline keys; signs the root metadata itself. A new root (version N+1) must be
//!   signed by a threshold of root N's root keys *and* of its own, so agents follow the chain.
//! - `targets` — offline keys; sign each release's [`Manifest`] (hashes, lengths, the device
//!   kind or vendor each package is for), with an expiry. A release's targets metadata is
//!   immutable once published (a changed release is a new release id).
//! - `snapshot` — an online key held by the server: [`SnapshotMeta`] lists the hash and length
//!   of every published release's targets metadata, so a device never combines metadata of
//!   different moments (mix-and-match) and no release's metadata can be swapped or withdrawn
//!   behind its back.
//! - `timestamp` — an online key held by the server: short-lived [`TimestampMeta`] naming the
//!   current snapshot (version, hash, length), so a frozen server or a replayed answer is noticed
//!   once it expires. By default the ceremony gives snapshot and timestamp the same online key
//!   (as PEP 458 and RSTUF do); the root can separate them at any rotation.
//!
//! Snapshot and timestamp versions are [`online_version`]: the hour's number and the count of
//! published releases, so every replica signs the same version (and, Ed25519 being deterministic,
//! the same bytes) for the same moment and a new release always raises it. They are served by
//! version (TUF's consistent snapshots): `snapshot/{version}` is the snapshot a timestamp names.
//!
//! The client workflow (TUF 5.1–5.7) is [`TrustedRoot::next`] (5.3), [`TrustedRoot::update_timestamp`]
//! (5.4), [`TrustedRoot::update_snapshot`] (5.5), [`TrustedRoot::verify_targets`] (5.6), and the
//! agent's own check of the package against the verified manifest (5.7); [`TrustedRoot::verify_release`]
//! runs 5.4–5.6 in order. Metadata travels as [`Signed`]: the exact JSON text and signatures over
//! its bytes, so no canonical JSON is needed. Everything here is pure: keys and instants are
//! passed in.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use jiff::{SignedDuration, Timestamp};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::release::{Manifest, Sha256};
use crate::version::Version;

/// The roles of the trust chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Root,
    Targets,
    Snapshot,
    Timestamp,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Root => "root",
            Self::Targets => "targets",
            Self::Snapshot => "snapshot",
            Self::Timestamp => "timestamp",
        })
    }
}

/// How long the server's timestamp metadata is valid (TUF's short-lived timestamp).
pub const TIMESTAMP_LIFETIME: SignedDuration = SignedDuration::from_hours(24);
/// How long a snapshot is valid (re-signed every period like the timestamp; longer, as TUF's
/// snapshot outlives its timestamp).
pub const SNAPSHOT_LIFETIME: SignedDuration = SignedDuration::from_hours(7 * 24);
/// The server signs a new snapshot and timestamp every hour of its clock.
pub const TIMESTAMP_PERIOD_SECONDS: i64 = 3600;
/// Bits of an online version that count releases (below the hour's number).
const RELEASE_BITS: u32 = 16;
/// The most releases an online version can count; more stop raising it within an hour.
pub const MAX_RELEASES: usize = (1 << RELEASE_BITS) - 1;

/// The version of the snapshot and timestamp at `now` with `releases` published, and the
/// instant its period began: `hour × 65,536 + releases`. It grows every hour and with every
/// release, and is the same on every replica for the same moment and release count.
pub fn online_version(now: Timestamp, releases: usize) -> (u64, Timestamp) {
    let period = now.as_second().div_euclid(TIMESTAMP_PERIOD_SECONDS).max(0);
    let began = Timestamp::from_second(period * TIMESTAMP_PERIOD_SECONDS).unwrap_or(now);
    let count = releases.min(MAX_RELEASES) as u64;
    ((period as u64) << RELEASE_BITS | count, began)
}

/// The instant an online version's period began, and the release count it names: what the
/// server needs to sign `snapshot/{version}` again (consistent snapshots).
pub fn online_period(version: u64) -> Option<(Timestamp, usize)> {
    let period = i64::try_from(version >> RELEASE_BITS).ok()?;
    let began = Timestamp::from_second(period.checked_mul(TIMESTAMP_PERIOD_SECONDS)?).ok()?;
    Some((began, (version & MAX_RELEASES as u64) as usize))
}

/// An Ed25519 public key, base64 on the wire.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub VerifyingKey);

impl PublicKey {
    /// The key's id: the SHA-256 of its 32 bytes.
    pub fn id(&self) -> Sha256 {
        Sha256::of(self.0.as_bytes())
    }

    /// Parses base64 of 32 bytes.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes: [u8; 32] = BASE64.decode(text.trim()).ok()?.try_into().ok()?;
        VerifyingKey::from_bytes(&bytes).ok().map(Self)
    }

    /// Base64 of the 32 bytes.
    pub fn encode(&self) -> String {
        BASE64.encode(self.0.to_bytes())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", &self.id().hex()[..12])
    }
}

impl Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.encode())
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).ok_or_else(|| {
            serde::de::Error::custom("not an Ed25519 public key (base64 of 32 bytes)")
        })
    }
}

/// One signature over a [`Signed`] text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KeySignature {
    /// The signing key's id (SHA-256 of the public key).
    pub keyid: Sha256,
    /// Base64 of the 64-byte Ed25519 signature.
    pub sig: String,
}

/// Metadata as transmitted: the exact JSON text that was signed, and the signatures over its
/// bytes. Signing the text (not a re-serialisation) means no canonical form is needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Signed {
    /// The metadata's JSON text (root, a release manifest, or a timestamp).
    pub signed: String,
    pub signatures: Vec<KeySignature>,
}

impl Signed {
    /// Serialises `value` once and signs the text with each key.
    pub fn sign<T: Serialize>(value: &T, keys: &[&SigningKey]) -> Self {
        let text = serde_json::to_string(value)
            .unwrap_or_else(|_| unreachable!("metadata always serialises"));
        let mut signed = Self {
            signed: text,
            signatures: Vec::new(),
        };
        for key in keys {
            signed.add_signature(key);
        }
        signed
    }

    /// Adds (or replaces) `key`'s signature: how k-of-n signers sign one after another.
    pub fn add_signature(&mut self, key: &SigningKey) {
        let keyid = PublicKey(key.verifying_key()).id();
        let sig = BASE64.encode(key.sign(self.signed.as_bytes()).to_bytes());
        self.signatures.retain(|s| s.keyid != keyid);
        self.signatures.push(KeySignature { keyid, sig });
    }

    /// The SHA-256 and length of the signed text (what a timestamp pins).
    pub fn digest(&self) -> MetaRef {
        MetaRef {
            sha256: Sha256::of(self.signed.as_bytes()),
            length: self.signed.len() as u64,
        }
    }

    /// How many distinct keys of `role` signed the text validly.
    fn valid_signers(&self, keys: &BTreeMap<Sha256, PublicKey>, role: &RoleKeys) -> usize {
        let mut seen = BTreeSet::new();
        for s in &self.signatures {
            if !role.keyids.contains(&s.keyid) || seen.contains(&s.keyid) {
                continue;
            }
            let Some(key) = keys.get(&s.keyid) else {
                continue;
            };
            let Some(bytes) = BASE64
                .decode(&s.sig)
                .ok()
                .and_then(|b| <[u8; 64]>::try_from(b).ok())
            else {
                continue;
            };
            if key
                .0
                .verify(self.signed.as_bytes(), &Signature::from_bytes(&bytes))
                .is_ok()
            {
                seen.insert(s.keyid);
            }
        }
        seen.len()
    }

    /// Checks a threshold of `role`'s keys signed, then parses the text.
    fn verify<T: DeserializeOwned>(
        &self,
        name: Role,
        keys: &BTreeMap<Sha256, PublicKey>,
        role: &RoleKeys,
    ) -> Result<T, TrustError> {
        let valid = self.valid_signers(keys, role);
        if valid < role.threshold as usize {
            return Err(TrustError::Threshold {
                role: name,
                valid,
                threshold: role.threshold,
            });
        }
        self.parse(name)
    }

    /// Parses the text as `role`'s metadata (no signature check).
    pub fn parse<T: DeserializeOwned>(&self, role: Role) -> Result<T, TrustError> {
        serde_json::from_str(&self.signed).map_err(|e| TrustError::Malformed {
            role,
            why: e.to_string(),
        })
    }
}

/// The hash and length of a metadata text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaRef {
    pub sha256: Sha256,
    pub length: u64,
}

/// A role's keys and how many of them must sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleKeys {
    pub keyids: Vec<Sha256>,
    pub threshold: u32,
}

impl RoleKeys {
    /// The role held by `keys`, `threshold` of them required.
    pub fn of(keys: &[PublicKey], threshold: u32) -> Self {
        Self {
            keyids: keys.iter().map(PublicKey::id).collect(),
            threshold,
        }
    }
}

/// The four roles the root names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Roles {
    pub root: RoleKeys,
    pub targets: RoleKeys,
    pub snapshot: RoleKeys,
    pub timestamp: RoleKeys,
}

/// The root metadata: every key of the chain and who may sign what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Root {
    #[serde(rename = "_type")]
    pub role: Role,
    /// 1 for the first root; each rotation adds one.
    pub version: u64,
    pub expires: Timestamp,
    pub keys: BTreeMap<Sha256, PublicKey>,
    pub roles: Roles,
}

impl Root {
    /// A root naming these keys (each role's keys are added to `keys`).
    pub fn new(
        version: u64,
        expires: Timestamp,
        root: (&[PublicKey], u32),
        targets: (&[PublicKey], u32),
        snapshot: (&[PublicKey], u32),
        timestamp: (&[PublicKey], u32),
    ) -> Self {
        let keys = [root.0, targets.0, snapshot.0, timestamp.0]
            .into_iter()
            .flatten()
            .map(|k| (k.id(), *k))
            .collect();
        Self {
            role: Role::Root,
            version,
            expires,
            keys,
            roles: Roles {
                root: RoleKeys::of(root.0, root.1),
                targets: RoleKeys::of(targets.0, targets.1),
                snapshot: RoleKeys::of(snapshot.0, snapshot.1),
                timestamp: RoleKeys::of(timestamp.0, timestamp.1),
            },
        }
    }

    /// The keys and threshold of `role`.
    pub fn role(&self, role: Role) -> &RoleKeys {
        match role {
            Role::Root => &self.roles.root,
            Role::Targets => &self.roles.targets,
            Role::Snapshot => &self.roles.snapshot,
            Role::Timestamp => &self.roles.timestamp,
        }
    }

    /// The keys and threshold of `role`, to change in a new root version.
    pub fn role_mut(&mut self, role: Role) -> &mut RoleKeys {
        match role {
            Role::Root => &mut self.roles.root,
            Role::Targets => &mut self.roles.targets,
            Role::Snapshot => &mut self.roles.snapshot,
            Role::Timestamp => &mut self.roles.timestamp,
        }
    }

    /// Every role, in the root's order.
    pub const ROLES: [Role; 4] = [Role::Root, Role::Targets, Role::Snapshot, Role::Timestamp];

    /// Whether `key` is one of `role`'s keys.
    pub fn holds(&self, role: Role, key: &PublicKey) -> bool {
        self.role(role).keyids.contains(&key.id())
    }

    /// A root must be usable: every threshold at least 1 and reachable with listed keys.
    fn check_roles(&self) -> Result<(), TrustError> {
        if self.role != Role::Root {
            return Err(TrustError::WrongType {
                expected: Role::Root,
                got: self.role,
            });
        }
        for name in Self::ROLES {
            let role = self.role(name);
            let known: BTreeSet<_> = role
                .keyids
                .iter()
                .filter(|id| self.keys.contains_key(id))
                .collect();
            if role.threshold == 0 || (known.len() as u64) < u64::from(role.threshold) {
                return Err(TrustError::UnusableRole {
                    role: name,
                    keys: known.len(),
                    threshold: role.threshold,
                });
            }
        }
        Ok(())
    }
}

/// What a timestamp names: the current snapshot's version, hash and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRef {
    pub version: u64,
    pub sha256: Sha256,
    pub length: u64,
}

/// The server's statement of every published release's targets metadata (TUF's snapshot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotMeta {
    #[serde(rename = "_type")]
    pub role: Role,
    /// [`online_version`]: the hour's number and the release count.
    pub version: u64,
    pub expires: Timestamp,
    /// Each published release's targets metadata (its signed manifest text), by release id.
    pub targets: BTreeMap<String, MetaRef>,
}

impl SnapshotMeta {
    /// The snapshot at `now` of these releases' signed manifests. Its version is
    /// [`online_version`]; it expires [`SNAPSHOT_LIFETIME`] after the period began.
    pub fn at(now: Timestamp, targets: BTreeMap<String, MetaRef>) -> Self {
        let (version, began) = online_version(now, targets.len());
        Self {
            role: Role::Snapshot,
            version,
            expires: began.saturating_add(SNAPSHOT_LIFETIME).unwrap_or(now),
            targets,
        }
    }
}

/// The server's short-lived statement "this is the current snapshot" (TUF's timestamp).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampMeta {
    #[serde(rename = "_type")]
    pub role: Role,
    /// The snapshot's version: grows every hour and with every release.
    pub version: u64,
    pub expires: Timestamp,
    pub snapshot: SnapshotRef,
}

impl TimestampMeta {
    /// The timestamp naming `snapshot` (signed in the same period): it expires
    /// [`TIMESTAMP_LIFETIME`] after the period began.
    pub fn of(snapshot: &Signed, meta: &SnapshotMeta) -> Self {
        let began = online_period(meta.version).map_or(meta.expires, |(began, _)| began);
        let digest = snapshot.digest();
        Self {
            role: Role::Timestamp,
            version: meta.version,
            expires: began.saturating_add(TIMESTAMP_LIFETIME).unwrap_or(began),
            snapshot: SnapshotRef {
                version: meta.version,
                sha256: digest.sha256,
                length: digest.length,
            },
        }
    }
}

/// Why metadata is not to be trusted. Every message says which role and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error("{role} metadata is not valid: {why}")]
    Malformed { role: Role, why: String },
    #[error("expected {expected} metadata, got {got} metadata")]
    WrongType { expected: Role, got: Role },
    #[error(
        "{role} metadata has {valid} valid signature(s) of its role's keys; {threshold} needed"
    )]
    Threshold {
        role: Role,
        valid: usize,
        threshold: u32,
    },
    #[error(
        "the root gives the {role} role {keys} known key(s) and threshold {threshold}: unusable"
    )]
    UnusableRole {
        role: Role,
        keys: usize,
        threshold: u32,
    },
    // `now` stays out of the message: an agent reports one refusal once, keyed by its text.
    #[error("{role} metadata expired at {expires}: refusing a frozen or stale answer")]
    Expired {
        role: Role,
        expires: Timestamp,
        now: Timestamp,
    },
    #[error("root version {got} does not follow the trusted root version {trusted}")]
    RootVersion { trusted: u64, got: u64 },
    #[error("{role} version {got} is older than version {seen} already trusted: rollback refused")]
    MetaRollback { role: Role, seen: u64, got: u64 },
    #[error(
        "the snapshot is version {got}, but the timestamp names version {named} (mix-and-match refused)"
    )]
    SnapshotVersion { named: u64, got: u64 },
    #[error(
        "the snapshot's hash or length differs from what the timestamp names (mix-and-match refused)"
    )]
    SnapshotMismatch,
    #[error(
        "the snapshot drops or changes the targets metadata of release {release:?} that an \
         earlier snapshot listed: rollback refused"
    )]
    TargetsWithdrawn { release: String },
    #[error("the snapshot does not list release {release:?} (mix-and-match refused)")]
    NotInSnapshot { release: String },
    #[error("manifest version {offered} is older than the installed {installed}: rollback refused")]
    Rollback {
        offered: Version,
        installed: Version,
    },
    #[error("metadata is for release {got:?}, but release {offered:?} was offered")]
    WrongRelease { offered: String, got: String },
    #[error(
        "the manifest's hash or length differs from what the snapshot names (mix-and-match refused)"
    )]
    ManifestMismatch,
}

/// A root that verified: either carried by the installer (self-signed) or reached from one by
/// the chain of rotations. Its only constructors check signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedRoot {
    signed: Signed,
    root: Root,
}

impl TrustedRoot {
    /// The root an installer (or the server's first start) carries: signed by a threshold of its
    /// own root keys. Its expiry is checked separately ([`Self::check_fresh`]).
    pub fn bootstrap(signed: Signed) -> Result<Self, TrustError> {
        let root: Root = signed.parse(Role::Root)?;
        root.check_roles()?;
        let root = signed.verify(Role::Root, &root.keys, &root.roles.root)?;
        Ok(Self { signed, root })
    }

    /// The next root (TUF client workflow, 5.3): version exactly one more, signed by a threshold
    /// of this root's root keys and a threshold of its own.
    pub fn next(&self, signed: Signed) -> Result<Self, TrustError> {
        let _: Root = signed.verify(Role::Root, &self.root.keys, &self.root.roles.root)?;
        let new = Self::bootstrap(signed)?;
        if new.root.version != self.root.version + 1 {
            return Err(TrustError::RootVersion {
                trusted: self.root.version,
                got: new.root.version,
            });
        }
        Ok(new)
    }

    /// Whether `newer` changed the snapshot or timestamp keys: then the trusted snapshot and
    /// timestamp are dropped (TUF 5.3.11), so a client recovers from versions pushed far ahead
    /// by a compromised online key.
    pub fn online_keys_changed(&self, newer: &TrustedRoot) -> bool {
        self.root.roles.snapshot != newer.root.roles.snapshot
            || self.root.roles.timestamp != newer.root.roles.timestamp
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    pub fn signed(&self) -> &Signed {
        &self.signed
    }

    pub fn version(&self) -> u64 {
        self.root.version
    }

    /// Refuses an expired root (checked after following the chain: a newer root may renew it).
    pub fn check_fresh(&self, now: Timestamp) -> Result<(), TrustError> {
        expiry(Role::Root, self.root.expires, now)
    }

    /// `signed` as `role`'s metadata: a threshold of the role's keys signed it and it says it is
    /// that role's. No expiry check: what a client reloads from its own storage.
    fn verified<T: DeserializeOwned + Typed>(
        &self,
        role: Role,
        signed: &Signed,
    ) -> Result<T, TrustError> {
        let meta: T = signed.verify(role, &self.root.keys, self.root.role(role))?;
        if meta.role() != role {
            return Err(TrustError::WrongType {
                expected: role,
                got: meta.role(),
            });
        }
        Ok(meta)
    }

    /// A release manifest signed offline: a threshold of the targets keys, not expired. What the
    /// server checks before it accepts a release, and the agent before it trusts one.
    pub fn verify_manifest(&self, signed: &Signed, now: Timestamp) -> Result<Manifest, TrustError> {
        let m: Manifest = self.verified(Role::Targets, signed)?;
        expiry(Role::Targets, m.expires, now)?;
        Ok(m)
    }

    /// A timestamp or snapshot the client kept from an earlier update (signatures checked
    /// again under this root, expiry not: only new metadata must be fresh).
    pub fn reload_timestamp(&self, signed: &Signed) -> Result<TimestampMeta, TrustError> {
        self.verified(Role::Timestamp, signed)
    }

    /// See [`Self::reload_timestamp`].
    pub fn reload_snapshot(&self, signed: &Signed) -> Result<SnapshotMeta, TrustError> {
        self.verified(Role::Snapshot, signed)
    }

    /// TUF 5.4: a new timestamp is signed by a threshold of the timestamp keys, is not older
    /// than the trusted one, names a snapshot not older than the trusted one names, and has not
    /// expired.
    pub fn update_timestamp(
        &self,
        new: &Signed,
        trusted: Option<&TimestampMeta>,
        now: Timestamp,
    ) -> Result<TimestampMeta, TrustError> {
        let t: TimestampMeta = self.verified(Role::Timestamp, new)?;
        if let Some(old) = trusted {
            if t.version < old.version {
                return Err(TrustError::MetaRollback {
                    role: Role::Timestamp,
                    seen: old.version,
                    got: t.version,
                });
            }
            if t.snapshot.version < old.snapshot.version {
                return Err(TrustError::MetaRollback {
                    role: Role::Snapshot,
                    seen: old.snapshot.version,
                    got: t.snapshot.version,
                });
            }
        }
        expiry(Role::Timestamp, t.expires, now)?;
        Ok(t)
    }

    /// TUF 5.5: a new snapshot has the hash and length the timestamp names (checked before
    /// anything is parsed), is signed by a threshold of the snapshot keys, is the version the
    /// timestamp names, is not older than the trusted one, keeps every release's targets
    /// metadata the trusted one listed exactly as it was (release manifests are immutable), and
    /// has not expired.
    pub fn update_snapshot(
        &self,
        new: &Signed,
        timestamp: &TimestampMeta,
        trusted: Option<&SnapshotMeta>,
        now: Timestamp,
    ) -> Result<SnapshotMeta, TrustError> {
        let digest = new.digest();
        if digest.sha256 != timestamp.snapshot.sha256 || digest.length != timestamp.snapshot.length
        {
            return Err(TrustError::SnapshotMismatch);
        }
        let s: SnapshotMeta = self.verified(Role::Snapshot, new)?;
        if s.version != timestamp.snapshot.version {
            return Err(TrustError::SnapshotVersion {
                named: timestamp.snapshot.version,
                got: s.version,
            });
        }
        if let Some(old) = trusted {
            if s.version < old.version {
                return Err(TrustError::MetaRollback {
                    role: Role::Snapshot,
                    seen: old.version,
                    got: s.version,
                });
            }
            if let Some((release, _)) = old
                .targets
                .iter()
                .find(|(id, meta)| s.targets.get(*id) != Some(meta))
            {
                return Err(TrustError::TargetsWithdrawn {
                    release: release.clone(),
                });
            }
        }
        expiry(Role::Snapshot, s.expires, now)?;
        Ok(s)
    }

    /// TUF 5.6: the offered release's targets metadata has the hash and length the snapshot
    /// lists for it, a threshold of the targets keys, has not expired, is the offered release's,
    /// and is not older than what is installed.
    pub fn verify_targets(
        &self,
        manifest: &Signed,
        snapshot: &SnapshotMeta,
        expect: &Expect<'_>,
    ) -> Result<Manifest, TrustError> {
        let listed =
            snapshot
                .targets
                .get(expect.release_id)
                .ok_or_else(|| TrustError::NotInSnapshot {
                    release: expect.release_id.to_owned(),
                })?;
        if *listed != manifest.digest() {
            return Err(TrustError::ManifestMismatch);
        }
        let m = self.verify_manifest(manifest, expect.now)?;
        if m.release_id != expect.release_id {
            return Err(TrustError::WrongRelease {
                offered: expect.release_id.to_owned(),
                got: m.release_id,
            });
        }
        if let Some(installed) = expect.installed.filter(|i| m.version < **i) {
            return Err(TrustError::Rollback {
                offered: m.version,
                installed: installed.clone(),
            });
        }
        Ok(m)
    }

    /// What an agent checks before it fetches any package of an offered release, in the
    /// specification's order: the root (already updated, 5.3) is fresh; the timestamp (5.4),
    /// the snapshot it names (5.5) and the release's targets metadata the snapshot lists (5.6).
    /// The caller keeps the new timestamp and snapshot as its trusted ones.
    pub fn verify_release(
        &self,
        fetched: &FetchedMeta<'_>,
        trusted: &Trusted,
        expect: &Expect<'_>,
    ) -> Result<VerifiedRelease, TrustError> {
        self.check_fresh(expect.now)?;
        let timestamp =
            self.update_timestamp(fetched.timestamp, trusted.timestamp.as_ref(), expect.now)?;
        let snapshot = self.update_snapshot(
            fetched.snapshot,
            &timestamp,
            trusted.snapshot.as_ref(),
            expect.now,
        )?;
        let manifest = self.verify_targets(fetched.manifest, &snapshot, expect)?;
        Ok(VerifiedRelease {
            manifest,
            timestamp,
            snapshot,
        })
    }
}

/// Metadata whose `_type` says which role's it is.
trait Typed {
    fn role(&self) -> Role;
}

impl Typed for Manifest {
    fn role(&self) -> Role {
        self.role
    }
}

impl Typed for SnapshotMeta {
    fn role(&self) -> Role {
        self.role
    }
}

impl Typed for TimestampMeta {
    fn role(&self) -> Role {
        self.role
    }
}

/// The metadata fetched for one update: the timestamp, the snapshot it names, and the offered
/// release's targets metadata.
#[derive(Debug, Clone, Copy)]
pub struct FetchedMeta<'a> {
    pub timestamp: &'a Signed,
    pub snapshot: &'a Signed,
    pub manifest: &'a Signed,
}

/// The timestamp and snapshot a client trusts from its last update (TUF 5.2), if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trusted {
    pub timestamp: Option<TimestampMeta>,
    pub snapshot: Option<SnapshotMeta>,
}

/// What the agent expects of an offered release's metadata.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// The release id the check-in offered.
    pub release_id: &'a str,
    /// The version installed now (a lower manifest version is a rollback).
    pub installed: Option<&'a Version>,
    /// The time the agent judges expiry by (TUF 5.1: fixed at the start of the update).
    pub now: Timestamp,
}

/// A release whose metadata verified, and the timestamp and snapshot to trust from now on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRelease {
    pub manifest: Manifest,
    pub timestamp: TimestampMeta,
    pub snapshot: SnapshotMeta,
}

fn expiry(role: Role, expires: Timestamp, now: Timestamp) -> Result<(), TrustError> {
    if now >= expires {
        return Err(TrustError::Expired { role, expires, now });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
