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

/// Root keys 1, 2, 3 (2 of 3), targets keys 10, 11 (threshold `targets`), snapshot key 21,
/// timestamp key 20.
fn root_v1(targets: u32) -> Root {
    Root::new(
        1,
        at("2027-01-01T00:00:00Z"),
        (&[public(1), public(2), public(3)], 2),
        (&[public(10), public(11)], targets),
        (&[public(21)], 1),
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

/// The server's online metadata at `now` for these published manifests: (timestamp, snapshot).
fn online(now: &str, published: &[&Signed]) -> (Signed, Signed) {
    let targets = published
        .iter()
        .map(|m| {
            let id = m
                .parse::<Manifest>(Role::Targets)
                .expect("manifest")
                .release_id;
            (id, m.digest())
        })
        .collect();
    let meta = SnapshotMeta::at(at(now), targets);
    let snapshot = Signed::sign(&meta, &[&key(21)]);
    let timestamp = Signed::sign(&TimestampMeta::of(&snapshot, &meta), &[&key(20)]);
    (timestamp, snapshot)
}

/// One release signed by `signers`, published alone: (timestamp, snapshot, manifest).
fn release(m: &Manifest, signers: &[&SigningKey], now: &str) -> (Signed, Signed, Signed) {
    let manifest = Signed::sign(m, signers);
    let (t, s) = online(now, &[&manifest]);
    (t, s, manifest)
}

fn expect<'a>(id: &'a str, installed: Option<&'a Version>, now: &str) -> Expect<'a> {
    Expect {
        release_id: id,
        installed,
        now: at(now),
    }
}

fn check(
    root: &TrustedRoot,
    (t, s, m): &(Signed, Signed, Signed),
    trusted: &Trusted,
    expect: &Expect<'_>,
) -> Result<VerifiedRelease, TrustError> {
    let fetched = FetchedMeta {
        timestamp: t,
        snapshot: s,
        manifest: m,
    };
    root.verify_release(&fetched, trusted, expect)
}

fn none() -> Trusted {
    Trusted::default()
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
fn a_release_verifies_end_to_end_in_the_specifications_order() {
    let root = trusted(1);
    let r = release(
        &manifest("r1", "2.0.0", "2026-04-01T00:00:00Z"),
        &[&key(10)],
        NOW,
    );
    let installed = "1.0.0".parse().expect("v");
    let ok = check(&root, &r, &none(), &expect("r1", Some(&installed), NOW)).expect("valid");
    assert_eq!(ok.manifest.version.to_string(), "2.0.0");
    let hour = (at(NOW).as_second() / 3600) as u64;
    assert_eq!(ok.timestamp.version, hour << 16 | 1);
    assert_eq!(ok.snapshot.version, ok.timestamp.version);
    // The same update again, now with what it made trusted: accepted (equal versions).
    let trusted = Trusted {
        timestamp: Some(ok.timestamp),
        snapshot: Some(ok.snapshot),
    };
    assert!(check(&root, &r, &trusted, &expect("r1", None, NOW)).is_ok());
}

#[test]
fn targets_below_threshold_are_refused_and_k_of_n_signers_are_accepted() {
    let root = trusted(2);
    let m = manifest("r1", "2.0.0", "2026-04-01T00:00:00Z");
    let r = release(&m, &[&key(10)], NOW);
    assert_eq!(
        check(&root, &r, &none(), &expect("r1", None, NOW)),
        Err(TrustError::Threshold {
            role: Role::Targets,
            valid: 1,
            threshold: 2
        })
    );
    // The second signer adds a signature to the same text.
    let mut cosigned = Signed::sign(&m, &[&key(10)]);
    cosigned.add_signature(&key(11));
    let (t, s) = online(NOW, &[&cosigned]);
    assert!(check(&root, &(t, s, cosigned), &none(), &expect("r1", None, NOW)).is_ok());
    // Neither an online key nor a root key can sign a release.
    let r = release(&m, &[&key(20), &key(21), &key(1)], NOW);
    assert!(matches!(
        check(&root, &r, &none(), &expect("r1", None, NOW)),
        Err(TrustError::Threshold {
            role: Role::Targets,
            valid: 0,
            ..
        })
    ));
}

#[test]
fn each_online_role_needs_its_own_key() {
    let root = trusted(1);
    let m = Signed::sign(
        &manifest("r1", "2.0.0", "2026-04-01T00:00:00Z"),
        &[&key(10)],
    );
    let meta = SnapshotMeta::at(at(NOW), [("r1".to_owned(), m.digest())].into());
    // A snapshot signed by the timestamp key, and a timestamp signed by the snapshot key.
    let snapshot = Signed::sign(&meta, &[&key(20)]);
    let timestamp = Signed::sign(&TimestampMeta::of(&snapshot, &meta), &[&key(20)]);
    assert!(matches!(
        check(
            &root,
            &(timestamp, snapshot.clone(), m.clone()),
            &none(),
            &expect("r1", None, NOW)
        ),
        Err(TrustError::Threshold {
            role: Role::Snapshot,
            ..
        })
    ));
    let timestamp = Signed::sign(&TimestampMeta::of(&snapshot, &meta), &[&key(21)]);
    assert!(matches!(
        check(
            &root,
            &(timestamp, snapshot, m.clone()),
            &none(),
            &expect("r1", None, NOW)
        ),
        Err(TrustError::Threshold {
            role: Role::Timestamp,
            ..
        })
    ));
    // A manifest's text offered as the snapshot is refused as the wrong role's, even signed by
    // the snapshot key.
    let fake = Signed::sign(
        &manifest("r1", "2.0.0", "2026-04-01T00:00:00Z"),
        &[&key(21)],
    );
    let mut t = TimestampMeta::of(&fake, &meta);
    t.snapshot.version = meta.version;
    let t = Signed::sign(&t, &[&key(20)]);
    assert!(matches!(
        root.update_snapshot(&fake, &root.reload_timestamp(&t).expect("t"), None, at(NOW)),
        Err(TrustError::Malformed {
            role: Role::Snapshot,
            ..
        })
    ));
}

#[test]
fn expired_metadata_is_refused_as_a_freeze() {
    let root = trusted(1);
    let r = release(
        &manifest("r1", "2.0.0", "2026-04-01T00:00:00Z"),
        &[&key(10)],
        NOW,
    );
    // A day and an hour later the timestamp the server signed has expired.
    let later = "2026-01-20T13:00:00Z";
    assert!(matches!(
        check(&root, &r, &none(), &expect("r1", None, later)),
        Err(TrustError::Expired {
            role: Role::Timestamp,
            ..
        })
    ));
    // A fresh timestamp naming a week-old snapshot: the snapshot has expired.
    let (_, old_snapshot) = online("2026-01-12T11:00:00Z", &[&r.2]);
    let meta = root.reload_snapshot(&old_snapshot).expect("snapshot");
    let mut fresh = TimestampMeta::of(&old_snapshot, &meta);
    fresh.expires = at("2026-01-20T00:00:00Z");
    let fresh = Signed::sign(&fresh, &[&key(20)]);
    assert!(matches!(
        check(
            &root,
            &(fresh, old_snapshot, r.2.clone()),
            &none(),
            &expect("r1", None, NOW)
        ),
        Err(TrustError::Expired {
            role: Role::Snapshot,
            ..
        })
    ));
    // Fresh online metadata does not revive an expired manifest.
    let old = release(
        &manifest("r1", "2.0.0", "2026-01-19T13:00:00Z"),
        &[&key(10)],
        "2026-01-19T14:00:00Z",
    );
    assert!(matches!(
        check(
            &root,
            &old,
            &none(),
            &expect("r1", None, "2026-01-19T14:00:00Z")
        ),
        Err(TrustError::Expired {
            role: Role::Targets,
            ..
        })
    ));
    // Nor an expired root.
    assert!(matches!(
        check(
            &root,
            &r,
            &none(),
            &expect("r1", None, "2027-01-01T00:00:00Z")
        ),
        Err(TrustError::Expired {
            role: Role::Root,
            ..
        })
    ));
}

#[test]
fn older_metadata_is_refused_as_rollback() {
    let root = trusted(1);
    let m1 = Signed::sign(
        &manifest("r1", "2.0.0", "2026-04-01T00:00:00Z"),
        &[&key(10)],
    );
    let m2 = Signed::sign(
        &manifest("r2", "2.1.0", "2026-04-01T00:00:00Z"),
        &[&key(10)],
    );
    // Trusted: the metadata of the next hour, with both releases published.
    let next_hour = "2026-01-19T13:10:00Z";
    let (t, s) = online(next_hour, &[&m1, &m2]);
    let newer = check(
        &root,
        &(t, s, m1.clone()),
        &none(),
        &expect("r1", None, next_hour),
    )
    .expect("valid");
    let trusted = Trusted {
        timestamp: Some(newer.timestamp.clone()),
        snapshot: Some(newer.snapshot.clone()),
    };
    // A replay of an hour earlier (still fresh) is an older timestamp.
    let (t_old, s_old) = online(NOW, &[&m1, &m2]);
    assert_eq!(
        check(
            &root,
            &(t_old, s_old, m1.clone()),
            &trusted,
            &expect("r1", None, next_hour)
        ),
        Err(TrustError::MetaRollback {
            role: Role::Timestamp,
            seen: newer.timestamp.version,
            got: newer.timestamp.version - (1 << 16),
        })
    );
    // In the same hour, metadata from before r2 was published is older too.
    let (t_one, s_one) = online(next_hour, &[&m1]);
    assert!(matches!(
        check(
            &root,
            &(t_one, s_one, m1.clone()),
            &trusted,
            &expect("r1", None, next_hour)
        ),
        Err(TrustError::MetaRollback {
            role: Role::Timestamp,
            ..
        })
    ));
    // A later snapshot that withdraws r2, or lists another text for it, is refused.
    let later = "2026-01-19T15:00:00Z";
    let other_r2 = Signed::sign(
        &manifest("r2", "2.1.0", "2026-05-01T00:00:00Z"),
        &[&key(10)],
    );
    for published in [vec![&m1], vec![&m1, &other_r2]] {
        let (t, s) = online(later, &published);
        assert_eq!(
            check(
                &root,
                &(t, s, m1.clone()),
                &trusted,
                &expect("r1", None, later)
            ),
            Err(TrustError::TargetsWithdrawn {
                release: "r2".into()
            })
        );
    }
    // A manifest older than what is installed.
    let installed = "2.1.0".parse().expect("v");
    let (t, s) = online(later, &[&m1, &m2]);
    assert!(matches!(
        check(
            &root,
            &(t, s, m1),
            &trusted,
            &expect("r1", Some(&installed), later)
        ),
        Err(TrustError::Rollback { .. })
    ));
}

#[test]
fn metadata_of_other_moments_or_releases_is_refused_as_mix_and_match() {
    let root = trusted(1);
    let m1 = Signed::sign(
        &manifest("r1", "2.0.0", "2026-04-01T00:00:00Z"),
        &[&key(10)],
    );
    let m2 = Signed::sign(
        &manifest("r2", "2.1.0", "2026-04-01T00:00:00Z"),
        &[&key(10)],
    );
    let (t1, s1) = online(NOW, &[&m1]);
    let (t2, s2) = online(NOW, &[&m1, &m2]);
    // A snapshot other than the one the timestamp names.
    assert_eq!(
        check(
            &root,
            &(t1.clone(), s2.clone(), m1.clone()),
            &none(),
            &expect("r1", None, NOW)
        ),
        Err(TrustError::SnapshotMismatch)
    );
    // A snapshot the timestamp names by hash but with another version inside (a forged pair).
    let meta = root.reload_snapshot(&s2).expect("s2");
    let mut forged = TimestampMeta::of(&s2, &meta);
    forged.snapshot.version -= 1;
    let forged = Signed::sign(&forged, &[&key(20)]);
    assert!(matches!(
        check(
            &root,
            &(forged, s2.clone(), m2.clone()),
            &none(),
            &expect("r2", None, NOW)
        ),
        Err(TrustError::SnapshotVersion { .. })
    ));
    // A release the snapshot does not list.
    assert_eq!(
        check(
            &root,
            &(t1.clone(), s1.clone(), m2.clone()),
            &none(),
            &expect("r2", None, NOW)
        ),
        Err(TrustError::NotInSnapshot {
            release: "r2".into()
        })
    );
    // Another release's manifest for the offered one.
    assert_eq!(
        check(
            &root,
            &(t2.clone(), s2.clone(), m2.clone()),
            &none(),
            &expect("r1", None, NOW)
        ),
        Err(TrustError::ManifestMismatch)
    );
    // A manifest whose text says another release than the id the snapshot lists it under.
    let mislabelled = SnapshotMeta::at(at(NOW), [("r1".to_owned(), m2.digest())].into());
    let s = Signed::sign(&mislabelled, &[&key(21)]);
    let t = Signed::sign(&TimestampMeta::of(&s, &mislabelled), &[&key(20)]);
    assert!(matches!(
        check(&root, &(t, s, m2), &none(), &expect("r1", None, NOW)),
        Err(TrustError::WrongRelease { .. })
    ));
    assert!(check(&root, &(t2, s2, m1), &none(), &expect("r1", None, NOW)).is_ok());
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
        (&[public(21)], 1),
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
    assert!(!v1.online_keys_changed(&v2));
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
    let old_signed = release(&m, &[&key(10)], NOW);
    assert!(matches!(
        check(&v2, &old_signed, &none(), &expect("r2", None, NOW)),
        Err(TrustError::Threshold {
            role: Role::Targets,
            ..
        })
    ));
    let new_signed = release(&m, &[&key(12)], NOW);
    assert!(check(&v2, &new_signed, &none(), &expect("r2", None, NOW)).is_ok());
}

#[test]
fn a_rotated_timestamp_key_drops_the_trusted_online_metadata_and_the_old_key_signs_nothing() {
    let v1 = trusted(1);
    let mut v2_root = root_v1(1);
    v2_root.version = 2;
    v2_root.keys.insert(public(22).id(), public(22));
    v2_root.roles.timestamp = RoleKeys::of(&[public(22)], 1);
    let v2 = v1
        .next(Signed::sign(&v2_root, &[&key(1), &key(2)]))
        .expect("chained");
    assert!(v1.online_keys_changed(&v2));
    let r = release(
        &manifest("r1", "2.0.0", "2026-04-01T00:00:00Z"),
        &[&key(10)],
        NOW,
    );
    assert!(matches!(
        check(&v2, &r, &none(), &expect("r1", None, NOW)),
        Err(TrustError::Threshold {
            role: Role::Timestamp,
            ..
        })
    ));
    let meta = v2.reload_snapshot(&r.1).expect("snapshot");
    let t = Signed::sign(&TimestampMeta::of(&r.1, &meta), &[&key(22)]);
    assert!(check(&v2, &(t, r.1, r.2), &none(), &expect("r1", None, NOW)).is_ok());
}

#[test]
fn replicas_sign_the_same_online_metadata_within_an_hour() {
    let m = Signed::sign(
        &manifest("r1", "2.0.0", "2026-04-01T00:00:00Z"),
        &[&key(10)],
    );
    let a = online("2026-01-19T12:00:01Z", &[&m]);
    let b = online("2026-01-19T12:59:59Z", &[&m]);
    assert_eq!(a, b);
    let meta = trusted(1).reload_snapshot(&a.1).expect("snapshot");
    assert_eq!(meta.expires, at("2026-01-26T12:00:00Z"));
    let t = trusted(1).reload_timestamp(&a.0).expect("timestamp");
    assert_eq!(t.expires, at("2026-01-20T12:00:00Z"));
    let (c, _) = online("2026-01-19T13:00:00Z", &[&m]);
    let c = trusted(1).reload_timestamp(&c).expect("timestamp");
    assert_eq!(c.version, t.version + (1 << 16));
    // The version names its period and release count, so a server can sign it again.
    assert_eq!(
        online_period(meta.version),
        Some((at("2026-01-19T12:00:00Z"), 1))
    );
}

#[test]
fn a_changed_text_invalidates_every_signature() {
    let root = trusted(1);
    let (t, s, mut m) = release(
        &manifest("r1", "2.0.0", "2026-04-01T00:00:00Z"),
        &[&key(10)],
        NOW,
    );
    m.signed = m.signed.replace("2.0.0", "9.0.0");
    assert!(check(&root, &(t, s, m.clone()), &none(), &expect("r1", None, NOW)).is_err());
    assert!(matches!(
        root.verify_manifest(&m, at(NOW)),
        Err(TrustError::Threshold { valid: 0, .. })
    ));
}
