//! The trust chain of updates, after The Update Framework (TUF; DESIGN.md §7: "no single online
//! secret can get a package installed on a terminal"). Three roles, each a set of Ed25519 keys
//! and a threshold, all named by the **root**:
//!
//! - `root` — offline keys; signs the root metadata itself. A new root (version N+1) must be
//!   signed by a threshold of root N's root keys *and* of its own, so agents follow the chain.
//! - `targets` — offline keys; sign each release's [`Manifest`] (hashes, lengths, the device
//!   kind or vendor each package is for), with an expiry.
//! - `timestamp` — the one online key, held by the server: signs short-lived [`TimestampMeta`]
//!   naming the exact manifest (hash and length) a device is offered, so a frozen server or a
//!   replayed answer is noticed once it expires. TUF's snapshot role is folded into it: onshi
//!   offers a device one release at a time, so "which targets metadata is current" is that one
//!   hash (it defeats mix-and-match as the snapshot would).
//!
//! Metadata travels as [`Signed`]: the exact JSON text and signatures over its bytes, so no
//! canonical JSON is needed. Everything here is pure: keys and instants are passed in.

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
    Timestamp,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Root => "root",
            Self::Targets => "targets",
            Self::Timestamp => "timestamp",
        })
    }
}

/// How long the server's timestamp metadata is valid (TUF's short-lived timestamp).
pub const TIMESTAMP_LIFETIME: SignedDuration = SignedDuration::from_hours(24);
/// The server signs a new timestamp every hour of its clock: the version is the hour's number,
/// so replicas sharing a database sign the same version (and, Ed25519 being deterministic, the
/// same bytes) and an agent switching replicas never sees the version go down.
pub const TIMESTAMP_PERIOD_SECONDS: i64 = 3600;

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

/// The three roles the root names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Roles {
    pub root: RoleKeys,
    pub targets: RoleKeys,
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
        timestamp: (&[PublicKey], u32),
    ) -> Self {
        let keys = [root.0, targets.0, timestamp.0]
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
                timestamp: RoleKeys::of(timestamp.0, timestamp.1),
            },
        }
    }

    fn role(&self, role: Role) -> &RoleKeys {
        match role {
            Role::Root => &self.roles.root,
            Role::Targets => &self.roles.targets,
            Role::Timestamp => &self.roles.timestamp,
        }
    }

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
        for name in [Role::Root, Role::Targets, Role::Timestamp] {
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

/// The server's short-lived statement "this is the current manifest of this release".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampMeta {
    #[serde(rename = "_type")]
    pub role: Role,
    /// Grows with the server's clock (the hour's number, [`TIMESTAMP_PERIOD_SECONDS`]).
    pub version: u64,
    pub expires: Timestamp,
    /// The root version whose timestamp key signed this.
    pub root_version: u64,
    pub release_id: String,
    /// The release's signed manifest text: its hash and length.
    pub manifest: MetaRef,
}

impl TimestampMeta {
    /// The timestamp for `manifest` at `now`: its version is the current period's number, and
    /// it expires [`TIMESTAMP_LIFETIME`] after the period began.
    pub fn at(now: Timestamp, root_version: u64, release_id: &str, manifest: &Signed) -> Self {
        let period = now.as_second().div_euclid(TIMESTAMP_PERIOD_SECONDS);
        let began = Timestamp::from_second(period * TIMESTAMP_PERIOD_SECONDS).unwrap_or(now);
        Self {
            role: Role::Timestamp,
            version: u64::try_from(period).unwrap_or(0),
            expires: began.saturating_add(TIMESTAMP_LIFETIME).unwrap_or(now),
            root_version,
            release_id: release_id.to_owned(),
            manifest: manifest.digest(),
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
    #[error("timestamp is for root version {got}, the trusted root is version {trusted}")]
    TimestampRoot { trusted: u64, got: u64 },
    #[error("timestamp version {got} is older than version {seen} already seen: rollback refused")]
    TimestampRollback { seen: u64, got: u64 },
    #[error("manifest version {offered} is older than the installed {installed}: rollback refused")]
    Rollback {
        offered: Version,
        installed: Version,
    },
    #[error("metadata is for release {got:?}, but release {offered:?} was offered")]
    WrongRelease { offered: String, got: String },
    #[error(
        "the manifest's hash or length differs from what the timestamp names (mix-and-match refused)"
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

    /// A release manifest signed offline: a threshold of the targets keys, not expired. What the
    /// server checks before it accepts a release, and the agent before it trusts one.
    pub fn verify_manifest(&self, signed: &Signed, now: Timestamp) -> Result<Manifest, TrustError> {
        let m: Manifest =
            signed.verify(Role::Targets, &self.root.keys, &self.root.roles.targets)?;
        if m.role != Role::Targets {
            return Err(TrustError::WrongType {
                expected: Role::Targets,
                got: m.role,
            });
        }
        expiry(Role::Targets, m.expires, now)?;
        Ok(m)
    }

    /// A timestamp signed by this root's timestamp key(s), not expired.
    pub fn verify_timestamp(
        &self,
        signed: &Signed,
        now: Timestamp,
    ) -> Result<TimestampMeta, TrustError> {
        let t: TimestampMeta =
            signed.verify(Role::Timestamp, &self.root.keys, &self.root.roles.timestamp)?;
        if t.role != Role::Timestamp {
            return Err(TrustError::WrongType {
                expected: Role::Timestamp,
                got: t.role,
            });
        }
        if t.root_version != self.root.version {
            return Err(TrustError::TimestampRoot {
                trusted: self.root.version,
                got: t.root_version,
            });
        }
        expiry(Role::Timestamp, t.expires, now)?;
        Ok(t)
    }

    /// What an agent checks before it fetches any package of an offered release: the root is
    /// fresh; the timestamp is signed, fresh, not older than one seen, for this release, and
    /// names exactly this manifest; the manifest is signed by the targets threshold, fresh, for
    /// this release, and not older than what is installed.
    pub fn verify_release(
        &self,
        timestamp: &Signed,
        manifest: &Signed,
        expect: &Expect<'_>,
    ) -> Result<VerifiedRelease, TrustError> {
        self.check_fresh(expect.now)?;
        let t = self.verify_timestamp(timestamp, expect.now)?;
        if let Some(seen) = expect.seen_timestamp.filter(|seen| t.version < *seen) {
            return Err(TrustError::TimestampRollback {
                seen,
                got: t.version,
            });
        }
        if t.release_id != expect.release_id {
            return Err(TrustError::WrongRelease {
                offered: expect.release_id.to_owned(),
                got: t.release_id,
            });
        }
        if t.manifest != manifest.digest() {
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
        Ok(VerifiedRelease {
            manifest: m,
            timestamp_version: t.version,
        })
    }
}

/// What the agent expects of an offered release's metadata.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// The release id the check-in offered.
    pub release_id: &'a str,
    /// The version installed now (a lower manifest version is a rollback).
    pub installed: Option<&'a Version>,
    /// The highest timestamp version this device has accepted.
    pub seen_timestamp: Option<u64>,
    /// The server's time as the agent knows it (the device's clock is never trusted).
    pub now: Timestamp,
}

/// A release whose metadata verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRelease {
    pub manifest: Manifest,
    pub timestamp_version: u64,
}

fn expiry(role: Role, expires: Timestamp, now: Timestamp) -> Result<(), TrustError> {
    if now >= expires {
        return Err(TrustError::Expired { role, expires, now });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
