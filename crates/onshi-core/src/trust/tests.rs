use super::*;
use crate::release::{Component, Target};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn public(seed: u8) -> PublicKey {
    PublicKey(key(seed).verifying_key())
}

fn at(s: &str) -> Timestamp {
    s.parse().expect("instant")
}

const NOW: &str = "2026-01-19T12:00:00Z";

/// Root keys 1, 2, 3 (2 of 3), targets keys 10, 11 (threshold `targets`), timestamp key 20.
fn root_v1(targets: u32) -> Root {
    Root::new(
        1,
        at("2027-01-01T00:00:00Z"),
        (&[public(1), public(2), public(3)], 2),
        (&[public(10), public(11)], targets),
        (&[public(20)], 1),
    )
}

fn trusted(targets: u32) -> TrustedRoot {
    TrustedRoot::bootstrap(Signed::sign(&root_v1(targets), &[&key(1), &key(2)])).expect("root")
}

fn manifest(id: &str, version: &str, expires: &str) -> Manifest {
    Manifest {
        role: Role::Targets,
        release_id: id.into(),
        version: version.parse().expect("version"),
        created_at: "2026-01-10T00:00:00Z".into(),
        expires: at(expires),
        deltas: Vec::new(),
        components: vec![Component {
            target: Target::Terminal,
            sha256: Sha256::of(b"package"),
            size: 7,
        }],
    }
}

fn release(
    root: &TrustedRoot,
    m: &Manifest,
    signers: &[&SigningKey],
    now: &str,
) -> (Signed, Signed) {
    let manifest = Signed::sign(m, signers);
    let t = TimestampMeta::at(at(now), root.version(), &m.release_id, &manifest);
    (Signed::sign(&t, &[&key(20)]), manifest)
}

fn expect<'a>(
    id: &'a str,
    installed: Option<&'a Version>,
    seen: Option<u64>,
    now: &str,
) -> Expect<'a> {
    Expect {
        release_id: id,
        installed,
        seen_timestamp: seen,
        now: at(now),
    }
}

#[test]
fn a_root_needs_a_threshold_of_its_own_root_keys() {
    let one = Signed::sign(&root_v1(1), &[&key(1)]);
    assert_eq!(
        TrustedRoot::bootstrap(one),
        Err(TrustError::Threshold {
            role: Role::Root,
            valid: 1,
            threshold: 2
        })
    );
    // The same key twice counts once; a key outside the role counts not at all.
    let mut twice = Signed::sign(&root_v1(1), &[&key(1)]);
    let dup = twice.signatures[0].clone();
    twice.signatures.push(dup);
    twice.add_signature(&key(10));
    assert!(matches!(
        TrustedRoot::bootstrap(twice),
        Err(TrustError::Threshold { valid: 1, .. })
    ));
    assert!(TrustedRoot::bootstrap(Signed::sign(&root_v1(1), &[&key(2), &key(3)])).is_ok());
}

#[test]
fn a_root_with_an_unreachable_threshold_is_refused() {
    let mut root = root_v1(1);
    root.roles.targets.threshold = 3;
    let signed = Signed::sign(&root, &[&key(1), &key(2)]);
    assert!(matches!(
        TrustedRoot::bootstrap(signed),
        Err(TrustError::UnusableRole {
            role: Role::Targets,
            ..
        })
    ));
}

#[test]
fn a_release_verifies_end_to_end() {
    let root = trusted(1);
    let (t, m) = release(
        &root,
        &manifest("r1", "2.0.0", "2026-04-01T00:00:00Z"),
        &[&key(10)],
        NOW,
    );
    let installed = "1.0.0".parse().expect("v");
    let ok = root
        .verify_release(&t, &m, &expect("r1", Some(&installed), None, NOW))
        .expect("valid");
    assert_eq!(ok.manifest.version.to_string(), "2.0.0");
    assert_eq!(ok.timestamp_version, (at(NOW).as_second() / 3600) as u64);
}

#[test]
fn targets_below_threshold_are_refused_and_k_of_n_signers_are_accepted() {
    let root = trusted(2);
    let m = manifest("r1", "2.0.0", "2026-04-01T00:00:00Z");
    let (t, s) = release(&root, &m, &[&key(10)], NOW);
    assert_eq!(
        root.verify_release(&t, &s, &expect("r1", None, None, NOW)),
        Err(TrustError::Threshold {
            role: Role::Targets,
            valid: 1,
            threshold: 2
        })
    );
    // The second signer adds a signature to the same text.
    let mut cosigned = Signed::sign(&m, &[&key(10)]);
    cosigned.add_signature(&key(11));
    let (t, _) = release(&root, &m, &[&key(10), &key(11)], NOW);
    assert!(
        root.verify_release(&t, &cosigned, &expect("r1", None, None, NOW))
            .is_ok()
    );
    // The timestamp key cannot sign a release, nor a root key.
    let (t, s) = release(&root, &m, &[&key(20), &key(1)], NOW);
    assert!(matches!(
        root.verify_release(&t, &s, &expect("r1", None, None, NOW)),
        Err(TrustError::Threshold {
            role: Role::Targets,
            valid: 0,
            ..
        })
    ));
}

#[test]
fn expired_metadata_is_refused_as_a_freeze() {
    let root = trusted(1);
    let (t, m) = release(
        &root,
        &manifest("r1", "2.0.0", "2026-04-01T00:00:00Z"),
        &[&key(10)],
        NOW,
    );
    // A day and an hour later the timestamp the server signed has expired.
    let later = "2026-01-20T13:00:00Z";
    assert!(matches!(
        root.verify_release(&t, &m, &expect("r1", None, None, later)),
        Err(TrustError::Expired {
            role: Role::Timestamp,
            ..
        })
    ));
    // A fresh timestamp does not revive an expired manifest.
    let (_, old) = release(
        &root,
        &manifest("r1", "2.0.0", "2026-01-19T13:00:00Z"),
        &[&key(10)],
        NOW,
    );
    let t2 = Signed::sign(
        &TimestampMeta::at(at("2026-01-19T14:00:00Z"), 1, "r1", &old),
        &[&key(20)],
    );
    assert!(matches!(
        root.verify_release(&t2, &old, &expect("r1", None, None, "2026-01-19T14:00:00Z")),
        Err(TrustError::Expired {
            role: Role::Targets,
            ..
        })
    ));
    // Nor a fresh timestamp an expired root.
    assert!(matches!(
        root.verify_release(&t, &m, &expect("r1", None, None, "2027-01-01T00:00:00Z")),
        Err(TrustError::Expired {
            role: Role::Root,
            ..
        })
    ));
}

#[test]
fn an_older_timestamp_or_manifest_is_refused_as_rollback() {
    let root = trusted(1);
    let (t, m) = release(
        &root,
        &manifest("r1", "2.0.0", "2026-04-01T00:00:00Z"),
        &[&key(10)],
        NOW,
    );
    let seen = (at(NOW).as_second() / 3600) as u64 + 1;
    assert_eq!(
        root.verify_release(&t, &m, &expect("r1", None, Some(seen), NOW)),
        Err(TrustError::TimestampRollback {
            seen,
            got: seen - 1
        })
    );
    let installed = "2.1.0".parse().expect("v");
    assert!(matches!(
        root.verify_release(&t, &m, &expect("r1", Some(&installed), None, NOW)),
        Err(TrustError::Rollback { .. })
    ));
}

#[test]
fn metadata_of_another_release_or_a_mixed_pair_is_refused() {
    let root = trusted(1);
    let (t1, m1) = release(
        &root,
        &manifest("r1", "2.0.0", "2026-04-01T00:00:00Z"),
        &[&key(10)],
        NOW,
    );
    let (t2, m2) = release(
        &root,
        &manifest("r2", "2.1.0", "2026-04-01T00:00:00Z"),
        &[&key(10)],
        NOW,
    );
    assert!(matches!(
        root.verify_release(&t2, &m2, &expect("r1", None, None, NOW)),
        Err(TrustError::WrongRelease { .. })
    ));
    assert_eq!(
        root.verify_release(&t1, &m2, &expect("r1", None, None, NOW)),
        Err(TrustError::ManifestMismatch)
    );
    // A manifest for r2 named by a timestamp claiming r1 (a forged pairing by the server).
    let forged = Signed::sign(&TimestampMeta::at(at(NOW), 1, "r1", &m2), &[&key(20)]);
    assert!(matches!(
        root.verify_release(&forged, &m2, &expect("r1", None, None, NOW)),
        Err(TrustError::WrongRelease { .. })
    ));
    assert!(
        root.verify_release(&t1, &m1, &expect("r1", None, None, NOW))
            .is_ok()
    );
}

#[test]
fn roots_chain_only_with_both_thresholds_and_consecutive_versions() {
    let v1 = trusted(1);
    // Version 2 moves the root to keys 4, 5, 6 and the targets role to key 12.
    let v2_root = Root::new(
        2,
        at("2027-06-01T00:00:00Z"),
        (&[public(4), public(5), public(6)], 2),
        (&[public(12)], 1),
        (&[public(20)], 1),
    );
    let only_new = Signed::sign(&v2_root, &[&key(4), &key(5)]);
    assert!(matches!(
        v1.next(only_new),
        Err(TrustError::Threshold {
            role: Role::Root,
            ..
        })
    ));
    let only_old = Signed::sign(&v2_root, &[&key(1), &key(2)]);
    assert!(matches!(
        v1.next(only_old),
        Err(TrustError::Threshold {
            role: Role::Root,
            ..
        })
    ));
    let v2 = v1
        .next(Signed::sign(
            &v2_root,
            &[&key(1), &key(2), &key(4), &key(5)],
        ))
        .expect("chained");
    assert_eq!(v2.version(), 2);
    // Skipping a version is refused.
    let mut v3_root = v2_root.clone();
    v3_root.version = 3;
    assert_eq!(
        v1.next(Signed::sign(
            &v3_root,
            &[&key(1), &key(2), &key(4), &key(5)]
        )),
        Err(TrustError::RootVersion { trusted: 1, got: 3 })
    );
    // After the rotation the revoked targets key signs nothing the new root accepts.
    let m = manifest("r2", "3.0.0", "2026-04-01T00:00:00Z");
    let (t, old_signed) = release(&v2, &m, &[&key(10)], NOW);
    assert!(matches!(
        v2.verify_release(&t, &old_signed, &expect("r2", None, None, NOW)),
        Err(TrustError::Threshold {
            role: Role::Targets,
            ..
        })
    ));
    let (t, new_signed) = release(&v2, &m, &[&key(12)], NOW);
    assert!(
        v2.verify_release(&t, &new_signed, &expect("r2", None, None, NOW))
            .is_ok()
    );
    // A timestamp for the old root version is refused by the new one.
    let (old_t, _) = release(&v1, &m, &[&key(12)], NOW);
    assert_eq!(
        v2.verify_release(&old_t, &new_signed, &expect("r2", None, None, NOW)),
        Err(TrustError::TimestampRoot { trusted: 2, got: 1 })
    );
}

#[test]
fn replicas_sign_the_same_timestamp_within_an_hour() {
    let root = trusted(1);
    let m = Signed::sign(
        &manifest("r1", "2.0.0", "2026-04-01T00:00:00Z"),
        &[&key(10)],
    );
    let a = TimestampMeta::at(at("2026-01-19T12:00:01Z"), root.version(), "r1", &m);
    let b = TimestampMeta::at(at("2026-01-19T12:59:59Z"), root.version(), "r1", &m);
    assert_eq!(Signed::sign(&a, &[&key(20)]), Signed::sign(&b, &[&key(20)]));
    assert_eq!(a.expires, at("2026-01-20T12:00:00Z"));
    let c = TimestampMeta::at(at("2026-01-19T13:00:00Z"), root.version(), "r1", &m);
    assert_eq!(c.version, a.version + 1);
}

#[test]
fn a_changed_text_invalidates_every_signature() {
    let root = trusted(1);
    let (t, mut m) = release(
        &root,
        &manifest("r1", "2.0.0", "2026-04-01T00:00:00Z"),
        &[&key(10)],
        NOW,
    );
    m.signed = m.signed.replace("2.0.0", "9.0.0");
    assert!(
        root.verify_release(&t, &m, &expect("r1", None, None, NOW))
            .is_err()
    );
    assert!(matches!(
        root.verify_manifest(&m, at(NOW)),
        Err(TrustError::Threshold { valid: 0, .. })
    ));
}
