//! Releases: what is distributed to which device, and the signed manifest that lets an agent
//! trust a package before installing it (DESIGN.md §7: SHA-256 + an Ed25519 signature on the
//! release manifest; a manifest older than what is installed is refused).

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256 as Sha256Hasher};

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

/// What a release contains; the agent trusts it only with a valid signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub release_id: String,
    pub version: Version,
    /// RFC 3339 UTC instant the release was signed.
    pub created_at: String,
    pub components: Vec<Component>,
}

impl Manifest {
    /// The component for `target`, if the release has one.
    pub fn component(&self, target: Target) -> Option<&Component> {
        self.components.iter().find(|c| c.target == target)
    }
}

/// A manifest as transmitted: the exact JSON text that was signed, and the signature over its
/// bytes. Signing the text (not a re-serialisation) means no canonical form is needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignedManifest {
    pub manifest: String,
    /// Base64 of the 64-byte Ed25519 signature.
    pub signature: String,
}

/// Why a signed manifest is not to be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest signature is not valid base64 of 64 bytes")]
    MalformedSignature,
    #[error("manifest signature does not verify with the trusted public key")]
    BadSignature,
    #[error("manifest is not valid: {0}")]
    Malformed(String),
    #[error("manifest version {offered} is older than the installed {installed}: rollback refused")]
    Rollback {
        offered: Version,
        installed: Version,
    },
}

impl SignedManifest {
    /// Signs `manifest` with the operator's key.
    pub fn sign(manifest: &Manifest, key: &SigningKey) -> Self {
        let text = serde_json::to_string(manifest)
            .unwrap_or_else(|_| unreachable!("a manifest always serialises"));
        let signature = key.sign(text.as_bytes());
        Self {
            manifest: text,
            signature: BASE64.encode(signature.to_bytes()),
        }
    }

    /// Verifies the signature with `key`, parses the manifest and refuses a version older than
    /// `installed` (rollback protection).
    pub fn verify(
        &self,
        key: &VerifyingKey,
        installed: Option<&Version>,
    ) -> Result<Manifest, ManifestError> {
        let bytes = BASE64
            .decode(&self.signature)
            .map_err(|_| ManifestError::MalformedSignature)?;
        let bytes: [u8; 64] = bytes
            .try_into()
            .map_err(|_| ManifestError::MalformedSignature)?;
        key.verify(self.manifest.as_bytes(), &Signature::from_bytes(&bytes))
            .map_err(|_| ManifestError::BadSignature)?;
        let manifest: Manifest = serde_json::from_str(&self.manifest)
            .map_err(|e| ManifestError::Malformed(e.to_string()))?;
        if let Some(installed) = installed.filter(|i| manifest.version < **i) {
            return Err(ManifestError::Rollback {
                offered: manifest.version,
                installed: installed.clone(),
            });
        }
        Ok(manifest)
    }
}

/// Base64 of a public key, as served to agents and pinned at enrolment.
pub fn encode_public_key(key: &VerifyingKey) -> String {
    BASE64.encode(key.to_bytes())
}

/// Parses a base64 public key.
pub fn decode_public_key(text: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = BASE64.decode(text.trim()).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// Base64 of a private key (the `onshi keygen` file).
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

    fn manifest(version: &str) -> Manifest {
        Manifest {
            release_id: "r1".into(),
            version: version.parse().expect("version"),
            created_at: "2026-01-10T00:00:00Z".into(),
            components: vec![Component {
                target: Target::Terminal,
                sha256: Sha256::of(b"package"),
                size: 7,
            }],
        }
    }

    #[test]
    fn a_signed_manifest_verifies_with_the_operators_key() {
        let signed = SignedManifest::sign(&manifest("2.0.0"), &key(1));
        let m = signed
            .verify(&key(1).verifying_key(), Some(&"1.0.0".parse().expect("v")))
            .expect("valid");
        assert_eq!(m.component(Target::Terminal).map(|c| c.size), Some(7));
    }

    #[test]
    fn another_key_or_a_changed_manifest_is_refused() {
        let signed = SignedManifest::sign(&manifest("2.0.0"), &key(1));
        assert_eq!(
            signed.verify(&key(2).verifying_key(), None),
            Err(ManifestError::BadSignature)
        );
        let tampered = SignedManifest {
            manifest: signed.manifest.replace("2.0.0", "2.0.1"),
            ..signed.clone()
        };
        assert_eq!(
            tampered.verify(&key(1).verifying_key(), None),
            Err(ManifestError::BadSignature)
        );
        let garbled = SignedManifest {
            signature: "!!".into(),
            ..signed
        };
        assert_eq!(
            garbled.verify(&key(1).verifying_key(), None),
            Err(ManifestError::MalformedSignature)
        );
    }

    #[test]
    fn an_older_manifest_is_refused_as_rollback() {
        let signed = SignedManifest::sign(&manifest("1.5.0"), &key(1));
        let err = signed
            .verify(&key(1).verifying_key(), Some(&"2.0.0".parse().expect("v")))
            .expect_err("rollback");
        assert!(matches!(err, ManifestError::Rollback { .. }));
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
