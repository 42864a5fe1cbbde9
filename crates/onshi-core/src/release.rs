//! Releases: what is distributed to which device, and the manifest (signed offline, see
//! [`crate::trust`]) that lets an agent trust a package before installing it (DESIGN.md §7).

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{SigningKey, VerifyingKey};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256 as Sha256Hasher};

use crate::trust::Role;
use crate::vendor::{DeviceKind, Vendor};
use crate::version::Version;

/// A SHA-256 digest, written as 64 lower-case hex digits. Also the artifact's file name and
/// ETag, so parsing it is what keeps path tricks out of artifact requests.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sha256([u8; 32]);

/// Why a string is not a SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a SHA-256 digest: expected 64 lower-case hex digits")]
pub struct BadSha256(pub String);

impl Sha256 {
    /// Parses 64 lower-case hex digits.
    pub fn parse(s: &str) -> Result<Self, BadSha256> {
        let lower = s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let mut out = [0u8; 32];
        if s.len() != 64 || !lower || hex::decode_to_slice(s, &mut out).is_err() {
            return Err(BadSha256(s.chars().take(80).collect()));
        }
        Ok(Self(out))
    }

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self(Sha256Hasher::digest(data).into())
    }

    /// Wraps a finished digest.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes of the digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({})", &self.hex()[..12])
    }
}

impl FromStr for Sha256 {
    type Err = BadSha256;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Sha256 {
    type Error = BadSha256;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Sha256> for String {
    fn from(h: Sha256) -> Self {
        h.hex()
    }
}

/// The component a package is for: the terminal application, or one vendor's card reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Target {
    /// The 資格確認端末's application.
    Terminal,
    /// The firmware/application of one vendor's 顔認証付きカードリーダー.
    CardReader(Vendor),
}

/// Why a string is not a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown target {0:?}: expected terminal or card_reader:VENDOR (panasonic, canon, usen-almex, fujitsu-japan, atlus)"
)]
pub struct BadTarget(pub String);

impl Target {
    /// The target a device of this kind and vendor takes its package from.
    pub fn for_device(kind: DeviceKind, vendor: Option<Vendor>) -> Option<Self> {
        match (kind, vendor) {
            (DeviceKind::Terminal, _) => Some(Self::Terminal),
            (DeviceKind::CardReader, Some(v)) => Some(Self::CardReader(v)),
            (DeviceKind::CardReader, None) => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Terminal => f.write_str("terminal"),
            Self::CardReader(v) => write!(f, "card_reader:{}", v.slug()),
        }
    }
}

impl FromStr for Target {
    type Err = BadTarget;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "terminal" {
            return Ok(Self::Terminal);
        }
        s.strip_prefix("card_reader:")
            .and_then(|v| v.parse().ok())
            .map(Self::CardReader)
            .ok_or_else(|| BadTarget(s.to_owned()))
    }
}

impl TryFrom<String> for Target {
    type Error = BadTarget;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Target> for String {
    fn from(t: Target) -> Self {
        t.to_string()
    }
}

/// One package of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Component {
    pub target: Target,
    pub sha256: Sha256,
    pub size: u64,
}

/// What a release contains: the targets role's metadata for one release (TUF's targets),
/// signed offline by a threshold of the targets keys ([`crate::trust`]) and valid until
/// `expires`. The agent trusts it only through [`crate::trust::TrustedRoot::verify_release`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always `targets`.
    #[serde(rename = "_type")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub role: Role,
    pub release_id: String,
    pub version: Version,
    /// RFC 3339 UTC instant the release was signed.
    pub created_at: String,
    /// After this instant no agent accepts the manifest (an indefinite freeze is noticed).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires: Timestamp,
    pub components: Vec<Component>,
    /// Delta packages: each turns one exact earlier package of a target into this release's
    /// package of that target (absent from a manifest without deltas).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deltas: Vec<Delta>,
}

/// A delta package (差分パッケージ): the bytes that rebuild this release's package of `target`
/// from the package of `base_version`, which must be exactly `base_sha256` and `base_size`.
/// The rebuilt package is the release's [`Component`] of the same target, so it is verified
/// against the same signed hash and length as a full download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Delta {
    pub target: Target,
    /// The version whose package is the base: the server offers the delta only to a device
    /// that has this version installed.
    pub base_version: Version,
    pub base_sha256: Sha256,
    pub base_size: u64,
    /// The delta file itself (what is downloaded).
    pub sha256: Sha256,
    pub size: u64,
}

/// Why a manifest's deltas cannot be published as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadDelta {
    #[error("delta {0}: the release has no {1} package for it to rebuild")]
    NoPackage(Sha256, Target),
    #[error("delta {0}: its base version {1} is not older than the release's {2}")]
    BaseNotOlder(Sha256, Version, Version),
    #[error("delta {0}: its base is the release's own {1} package")]
    BaseIsResult(Sha256, Target),
    #[error("two deltas for {0} from version {1}")]
    Duplicate(Target, Version),
    #[error("delta {0} is not smaller than the {1} package it rebuilds ({2} ≥ {3} bytes)")]
    NotSmaller(Sha256, Target, u64, u64),
}

impl Manifest {
    /// The component for `target`, if the release has one.
    pub fn component(&self, target: Target) -> Option<&Component> {
        self.components.iter().find(|c| c.target == target)
    }

    /// The delta that rebuilds `target`'s package for a device with `installed`, if the release
    /// has one: the one rule of which delta a device is offered (DESIGN §5's egress).
    pub fn delta_for(&self, target: Target, installed: &Version) -> Option<&Delta> {
        self.component(target)?;
        self.deltas
            .iter()
            .find(|d| d.target == target && &d.base_version == installed)
    }

    /// Whether `sha256` is a file of this release for `target`: its package or one of its deltas.
    pub fn serves(&self, target: Target, sha256: Sha256) -> bool {
        self.component(target).is_some_and(|c| c.sha256 == sha256)
            || self
                .deltas
                .iter()
                .any(|d| d.target == target && d.sha256 == sha256)
    }

    /// Checks the deltas against the release: each rebuilds one of its packages, from an older
    /// version, one per (target, base), and is smaller than what it rebuilds.
    pub fn check_deltas(&self) -> Result<(), BadDelta> {
        for (i, d) in self.deltas.iter().enumerate() {
            let Some(c) = self.component(d.target) else {
                return Err(BadDelta::NoPackage(d.sha256, d.target));
            };
            if d.base_version >= self.version {
                return Err(BadDelta::BaseNotOlder(
                    d.sha256,
                    d.base_version.clone(),
                    self.version.clone(),
                ));
            }
            if d.base_sha256 == c.sha256 {
                return Err(BadDelta::BaseIsResult(d.sha256, d.target));
            }
            if d.size >= c.size {
                return Err(BadDelta::NotSmaller(d.sha256, d.target, d.size, c.size));
            }
            let twice = self.deltas[..i]
                .iter()
                .any(|e| e.target == d.target && e.base_version == d.base_version);
            if twice {
                return Err(BadDelta::Duplicate(d.target, d.base_version.clone()));
            }
        }
        Ok(())
    }
}

/// Base64 of a public key (the `.pub` files `onshi keys` writes).
pub fn encode_public_key(key: &VerifyingKey) -> String {
    BASE64.encode(key.to_bytes())
}

/// Parses a base64 public key.
pub fn decode_public_key(text: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = BASE64.decode(text.trim()).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// Base64 of a private key (the `.key` files `onshi keys` writes).
pub fn encode_signing_key(key: &SigningKey) -> String {
    BASE64.encode(key.to_bytes())
}

/// Parses a base64 private key.
pub fn decode_signing_key(text: &str) -> Option<SigningKey> {
    let bytes: [u8; 32] = BASE64.decode(text.trim()).ok()?.try_into().ok()?;
    Some(SigningKey::from_bytes(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn digests_and_targets_parse_strictly() {
        let h = Sha256::of(b"abc");
        assert_eq!(
            h.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Sha256::parse(&h.hex()), Ok(h));
        for bad in ["", "../etc/passwd", &h.hex().to_uppercase(), &h.hex()[1..]] {
            assert!(Sha256::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            "card_reader:canon".parse(),
            Ok(Target::CardReader(Vendor::Canon))
        );
        assert!("card_reader:sony".parse::<Target>().is_err());
        assert_eq!(
            Target::CardReader(Vendor::UsenAlmex).to_string(),
            "card_reader:usen-almex"
        );
    }

    fn v(s: &str) -> Version {
        Version::parse(s).expect("valid")
    }

    fn with_delta(base: &str) -> Manifest {
        let package = Component {
            target: Target::Terminal,
            sha256: Sha256::of(b"new"),
            size: 1000,
        };
        Manifest {
            role: Role::Targets,
            release_id: "r2".into(),
            version: v("2.0.0"),
            created_at: "2026-01-01T00:00:00Z".into(),
            expires: "2026-12-31T00:00:00Z".parse().expect("valid"),
            components: vec![package],
            deltas: vec![Delta {
                target: Target::Terminal,
                base_version: v(base),
                base_sha256: Sha256::of(b"old"),
                base_size: 990,
                sha256: Sha256::of(b"delta"),
                size: 40,
            }],
        }
    }

    #[test]
    fn a_delta_is_offered_only_from_its_base_version() {
        let m = with_delta("1.0.0");
        assert_eq!(m.check_deltas(), Ok(()));
        let d = m.delta_for(Target::Terminal, &v("1.0.0")).expect("offered");
        assert_eq!(d.sha256, Sha256::of(b"delta"));
        assert!(m.delta_for(Target::Terminal, &v("0.9.0")).is_none());
        assert!(
            m.delta_for(Target::CardReader(Vendor::Canon), &v("1.0.0"))
                .is_none()
        );
        assert!(m.serves(Target::Terminal, Sha256::of(b"delta")));
        assert!(m.serves(Target::Terminal, Sha256::of(b"new")));
        assert!(!m.serves(Target::CardReader(Vendor::Canon), Sha256::of(b"delta")));
        assert!(!m.serves(Target::Terminal, Sha256::of(b"old")));
    }

    #[test]
    fn deltas_that_cannot_rebuild_the_release_are_refused() {
        assert!(matches!(
            with_delta("2.0.0").check_deltas(),
            Err(BadDelta::BaseNotOlder(..))
        ));
        let mut m = with_delta("1.0.0");
        m.deltas[0].size = 1000;
        assert!(matches!(m.check_deltas(), Err(BadDelta::NotSmaller(..))));
        let mut m = with_delta("1.0.0");
        m.deltas[0].target = Target::CardReader(Vendor::Atlus);
        assert!(matches!(m.check_deltas(), Err(BadDelta::NoPackage(..))));
        let mut m = with_delta("1.0.0");
        m.deltas[0].base_sha256 = Sha256::of(b"new");
        assert!(matches!(m.check_deltas(), Err(BadDelta::BaseIsResult(..))));
        let mut m = with_delta("1.0.0");
        m.deltas.push(m.deltas[0].clone());
        assert!(matches!(m.check_deltas(), Err(BadDelta::Duplicate(..))));
        // An old manifest without deltas reads as before, and writes no `deltas` key.
        let mut m = with_delta("1.0.0");
        m.deltas.clear();
        let text = serde_json::to_string(&m).expect("serialises");
        assert!(!text.contains("deltas"), "{text}");
    }

    #[test]
    fn keys_round_trip_through_base64() {
        let k = key(9);
        let back = decode_signing_key(&encode_signing_key(&k)).expect("valid");
        assert_eq!(back.to_bytes(), k.to_bytes());
        let pk = decode_public_key(&encode_public_key(&k.verifying_key())).expect("valid");
        assert_eq!(pk, k.verifying_key());
        assert!(decode_public_key("AAAA").is_none());
    }
}
