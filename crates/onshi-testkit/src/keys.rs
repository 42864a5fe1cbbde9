//! The tests' key ceremony, deterministic: root keys 1–3 (2 of 3), targets key 10 (the
//! operator's workstation), timestamp key 20 (the server's online key, which signs the snapshot
//! too, as `onshi keys init` makes it by default). [`TestKeys::install`]
//! puts what a server holds into its DATA (`keys/timestamp.key`, `keys/root.json`); the
//! targets key stays with the test, which signs releases as `onshi release sign` does.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use jiff::Timestamp;
use onshi_core::release::{Component, Manifest, Sha256, Target, encode_signing_key};
use onshi_core::trust::{PublicKey, Role, Root, Signed};
use onshi_core::version::Version;

/// Far enough that no simulated clock reaches it.
pub const FAR: &str = "2100-01-01T00:00:00Z";

/// A deterministic key by seed.
pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// Its public half.
pub fn public(seed: u8) -> PublicKey {
    PublicKey(key(seed).verifying_key())
}

/// The seeds of the tests' ceremony.
pub const ROOT_KEYS: [u8; 3] = [1, 2, 3];
pub const TARGETS_KEY: u8 = 10;
pub const TIMESTAMP_KEY: u8 = 20;

/// The tests' keys.
pub struct TestKeys;

impl TestKeys {
    /// Root version 1, signed by every root key.
    pub fn root() -> Signed {
        let root = Root::new(
            1,
            FAR.parse().expect("instant"),
            (&ROOT_KEYS.map(public), 2),
            (&[public(TARGETS_KEY)], 1),
            (&[public(TIMESTAMP_KEY)], 1),
            (&[public(TIMESTAMP_KEY)], 1),
        );
        Signed::sign(&root, &ROOT_KEYS.map(key).iter().collect::<Vec<_>>())
    }

    /// Writes the server's share into `data/keys/` (again on every start: the same bytes) and
    /// answers the root file's path.
    pub fn install(data: &Path) -> PathBuf {
        let dir = data.join("keys");
        std::fs::create_dir_all(&dir).expect("keys dir");
        std::fs::write(
            dir.join("timestamp.key"),
            encode_signing_key(&key(TIMESTAMP_KEY)) + "\n",
        )
        .expect("timestamp.key");
        let root = dir.join("root.json");
        Self::write_root(&root);
        root
    }

    /// The operator's workstation as `onshi keys init` leaves it for `onshi release sign` and
    /// `onshi simulate --against … --keys DIR`: `root.json` and `targets-1.key` in `dir`.
    pub fn workstation(dir: &Path) {
        std::fs::create_dir_all(dir).expect("keys dir");
        Self::write_root(&dir.join("root.json"));
        std::fs::write(
            dir.join("targets-1.key"),
            encode_signing_key(&key(TARGETS_KEY)) + "\n",
        )
        .expect("targets-1.key");
    }

    /// Writes root.json (as the terminal's installer carries it) to `path`.
    pub fn write_root(path: &Path) {
        std::fs::write(
            path,
            serde_json::to_vec_pretty(&Self::root()).expect("json"),
        )
        .expect("root.json");
    }
}

/// A release's manifest, valid until [`FAR`].
pub fn manifest(id: &str, version: &str, components: &[(Target, Sha256, u64)]) -> Manifest {
    Manifest {
        role: Role::Targets,
        release_id: id.to_owned(),
        version: Version::parse(version).expect("version"),
        created_at: "2026-01-10T00:00:00Z".to_owned(),
        expires: FAR.parse::<Timestamp>().expect("instant"),
        deltas: Vec::new(),
        components: components
            .iter()
            .map(|&(target, sha256, size)| Component {
                target,
                sha256,
                size,
            })
            .collect(),
    }
}

/// The manifest signed with the tests' targets key (`onshi release sign`).
pub fn sign_release(id: &str, version: &str, components: &[(Target, Sha256, u64)]) -> Signed {
    Signed::sign(&manifest(id, version, components), &[&key(TARGETS_KEY)])
}

/// Any manifest signed with the tests' targets key (a release with deltas, for example).
pub fn sign_manifest(manifest: &Manifest) -> Signed {
    Signed::sign(manifest, &[&key(TARGETS_KEY)])
}
