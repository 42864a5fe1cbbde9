//! The operator's offline commands as a script runs them: the key ceremony, signing a release
//! with k of n targets keys, and a rotation — each output checked with the same verification the
//! server and the agents run (`onshi_core::trust`).

use std::path::Path;
use std::process::{Command, Output};

use onshi_core::trust::{Role, Root, Signed, TrustedRoot};

fn onshi(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_onshi"))
        .args(args)
        .output()
        .expect("the onshi binary runs")
}

fn ok(args: &[&str]) -> String {
    let out = onshi(args);
    assert!(
        out.status.success(),
        "onshi {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn signed(path: &Path) -> Signed {
    serde_json::from_slice(&std::fs::read(path).expect("file")).expect("signed metadata")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn a_ceremony_signs_a_release_two_of_three_and_rotates_the_targets_key() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let keys = tmp.path().join("ceremony");
    ok(&[
        "keys",
        "init",
        "--out",
        s(&keys),
        "--targets-keys",
        "3",
        "--targets-threshold",
        "2",
    ]);
    for file in [
        "root.json",
        "root-1.key",
        "root-3.pub",
        "targets-3.key",
        "timestamp.key",
    ] {
        assert!(keys.join(file).is_file(), "{file}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(keys.join("targets-1.key"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "private keys are readable by their owner only"
        );
    }
    // A second ceremony into the same directory never overwrites a key.
    assert_eq!(
        onshi(&["keys", "init", "--out", s(&keys)]).status.code(),
        Some(2)
    );
    let root = TrustedRoot::bootstrap(signed(&keys.join("root.json"))).expect("root verifies");

    let package = tmp.path().join("terminal.pkg");
    std::fs::write(&package, vec![3u8; 10_000]).expect("package");
    let release = tmp.path().join("r1.json");
    let pkg = format!("terminal={}", s(&package));
    let sign = |key: &str| {
        ok(&[
            "release",
            "sign",
            "--id",
            "r1",
            "--version",
            "2.0.0",
            "--package",
            &pkg,
            "--key",
            key,
            "--out",
            s(&release),
        ])
    };
    sign(s(&keys.join("targets-1.key")));
    let now = jiff::Timestamp::now();
    assert!(
        root.verify_manifest(&signed(&release), now)
            .is_err_and(|e| e.to_string().contains("1 valid signature(s)")),
        "one signer of two needed is not enough"
    );
    ok(&[
        "release",
        "cosign",
        s(&release),
        "--key",
        s(&keys.join("targets-3.key")),
    ]);
    let manifest = root
        .verify_manifest(&signed(&release), now)
        .expect("two of three signed");
    assert_eq!(manifest.release_id, "r1");
    assert_eq!(manifest.components[0].size, 10_000);
    assert_eq!(
        manifest.components[0].sha256,
        onshi_core::release::Sha256::of(&[3u8; 10_000])
    );

    // The targets keys are replaced by a new one; root keys 1 and 2 sign the next root.
    let new_key = tmp.path().join("targets-new.key");
    ok(&["keys", "new", "--out", s(&new_key)]);
    let next = tmp.path().join("root-2.json");
    let rotate = |signers: &[&Path]| {
        let mut args = vec![
            "keys".to_owned(),
            "rotate".to_owned(),
            "--root".to_owned(),
            s(&keys.join("root.json")).to_owned(),
            "--out".to_owned(),
            s(&next).to_owned(),
            "--targets-key".to_owned(),
            s(&new_key.with_extension("pub")).to_owned(),
        ];
        for k in signers {
            args.extend(["--key".to_owned(), s(k).to_owned()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        onshi(&args)
    };
    // One root key is below the threshold: refused, nothing written.
    let out = rotate(&[&keys.join("root-1.key")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!next.exists());
    let out = rotate(&[&keys.join("root-1.key"), &keys.join("root-2.key")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v2 = root.next(signed(&next)).expect("chains");
    assert_eq!(v2.version(), 2);
    let r: Root = v2.signed().parse(Role::Root).expect("root");
    assert_eq!(r.roles.targets.keyids.len(), 1);
    assert!(
        v2.verify_manifest(&signed(&release), now).is_err(),
        "the old targets keys sign nothing the new root accepts"
    );
}

/// 切り戻し: a rollback release is the previous release's packages signed again under a higher
/// version (agents refuse an older one); `--rollback-of` refuses one that could not replace
/// the bad release.
#[test]
fn a_rollback_release_signs_the_previous_packages_under_a_higher_version() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let keys = tmp.path().join("ceremony");
    ok(&["keys", "init", "--out", s(&keys)]);
    let key = keys.join("targets-1.key");
    let root = TrustedRoot::bootstrap(signed(&keys.join("root.json"))).expect("root verifies");
    let sign_package = |id: &str, version: &str, bytes: u8| {
        let package = tmp.path().join(format!("{id}.pkg"));
        std::fs::write(&package, vec![bytes; 4096]).expect("package");
        let out = tmp.path().join(format!("{id}.json"));
        ok(&[
            "release",
            "sign",
            "--id",
            id,
            "--version",
            version,
            "--package",
            &format!("terminal={}", s(&package)),
            "--key",
            s(&key),
            "--out",
            s(&out),
        ]);
        out
    };
    let good = sign_package("r1", "1.0.0", 1);
    let bad = sign_package("r2", "2.0.0", 2);
    let rollback = |id: &str, version: &str, from: &Path| {
        onshi(&[
            "release",
            "sign",
            "--id",
            id,
            "--version",
            version,
            "--from-release",
            s(from),
            "--rollback-of",
            s(&bad),
            "--key",
            s(&key),
            "--out",
            s(&tmp.path().join(format!("{id}.json"))),
        ])
    };
    // Not higher than the bad release: refused, with what to do.
    let out = rollback("r3", "2.0.0", &good);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not higher") && err.contains("--from-release"),
        "{err}"
    );
    // The bad release's own packages are no rollback.
    let out = rollback("r3", "2.0.1", &bad);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad release's own"));

    let out = rollback("r3", "2.0.1", &good);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let now = jiff::Timestamp::now();
    let r3 = root
        .verify_manifest(&signed(&tmp.path().join("r3.json")), now)
        .expect("signed by the targets key");
    let r1 = root
        .verify_manifest(&signed(&good), now)
        .expect("the previous release");
    assert_eq!(r3.version.to_string(), "2.0.1");
    assert_eq!(
        r3.components, r1.components,
        "the previous packages, byte for byte"
    );
}

/// The online key: by default one `timestamp.key` signs the timestamp and the snapshot, and a
/// timestamp-key rotation moves both roles (old and new named first, then the new one alone);
/// `--snapshot-key` makes a separate key the server finds as DATA/keys/snapshot.key.
#[test]
fn the_online_key_signs_both_online_roles_and_rotates_as_one() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let keys = tmp.path().join("ceremony");
    ok(&["keys", "init", "--out", s(&keys)]);
    assert!(!keys.join("snapshot.key").exists());
    let v1 = TrustedRoot::bootstrap(signed(&keys.join("root.json"))).expect("root");
    assert_eq!(v1.root().roles.snapshot, v1.root().roles.timestamp);

    let new_key = tmp.path().join("timestamp-new.key");
    ok(&["keys", "new", "--out", s(&new_key)]);
    let old_pub = keys.join("timestamp.pub");
    let new_pub = new_key.with_extension("pub");
    let (root_1, root_2) = (keys.join("root-1.key"), keys.join("root-2.key"));
    let signers = ["--key", s(&root_1), "--key", s(&root_2)];
    let both = tmp.path().join("root-2.json");
    let v1_file = keys.join("root.json");
    let mut args = vec!["keys", "rotate", "--root", s(&v1_file)];
    args.extend(["--out", s(&both), "--timestamp-key", s(&old_pub)]);
    args.extend(["--timestamp-key", s(&new_pub)]);
    args.extend(signers);
    ok(&args);
    let v2 = v1.next(signed(&both)).expect("chains");
    assert_eq!(v2.root().roles.timestamp.keyids.len(), 2);
    assert_eq!(v2.root().roles.snapshot, v2.root().roles.timestamp);
    let only_new = tmp.path().join("root-3.json");
    let mut args = vec!["keys", "rotate", "--root", s(&both), "--out", s(&only_new)];
    args.extend(["--timestamp-key", s(&new_pub)]);
    args.extend(signers);
    ok(&args);
    let v3 = v2.next(signed(&only_new)).expect("chains");
    let r: Root = v3.signed().parse(Role::Root).expect("root");
    assert_eq!(r.roles.timestamp.keyids.len(), 1);
    assert_eq!(r.roles.snapshot, r.roles.timestamp);
    assert!(
        !r.keys.contains_key(
            &onshi_core::trust::PublicKey::parse(
                &std::fs::read_to_string(&old_pub).expect("old key")
            )
            .expect("public key")
            .id()
        ),
        "the old online key is gone from the root"
    );

    let separate = tmp.path().join("separate");
    ok(&["keys", "init", "--out", s(&separate), "--snapshot-key"]);
    assert!(separate.join("snapshot.key").is_file());
    let root = TrustedRoot::bootstrap(signed(&separate.join("root.json"))).expect("root");
    assert_ne!(root.root().roles.snapshot, root.root().roles.timestamp);
}

#[test]
fn a_delta_is_built_and_signed_into_the_release_that_it_rebuilds() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let keys = tmp.path().join("ceremony");
    ok(&["keys", "init", "--out", s(&keys)]);
    let root = TrustedRoot::bootstrap(signed(&keys.join("root.json"))).expect("root verifies");
    let mut x = 7u64;
    let old: Vec<u8> = (0..600_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut new = old.clone();
    new.splice(200_000..200_000, b"the new version's code".repeat(100));
    let (old_pkg, new_pkg, delta) = (
        tmp.path().join("t-1.pkg"),
        tmp.path().join("t-2.pkg"),
        tmp.path().join("t.delta"),
    );
    std::fs::write(&old_pkg, &old).expect("old");
    std::fs::write(&new_pkg, &new).expect("new");
    let stats: serde_json::Value = serde_json::from_str(&ok(&[
        "release",
        "delta",
        "--base",
        s(&old_pkg),
        "--new",
        s(&new_pkg),
        "--out",
        s(&delta),
    ]))
    .expect("JSON");
    assert!(stats["ratio"].as_f64().is_some_and(|r| r < 0.05), "{stats}");
    let release = tmp.path().join("r2.json");
    let key = keys.join("targets-1.key");
    let sign = |delta_arg: &str, out: &Path| {
        onshi(&[
            "release",
            "sign",
            "--id",
            "r2",
            "--version",
            "2.0.0",
            "--package",
            &format!("terminal={}", s(&new_pkg)),
            "--delta",
            delta_arg,
            "--key",
            s(&key),
            "--out",
            s(out),
        ])
    };
    let out = sign(&format!("terminal@1.0.0={}", s(&delta)), &release);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = root
        .verify_manifest(&signed(&release), jiff::Timestamp::now())
        .expect("signed");
    let d = &manifest.deltas[0];
    assert_eq!(d.base_version.to_string(), "1.0.0");
    assert_eq!(d.base_sha256, onshi_core::release::Sha256::of(&old));
    assert_eq!(d.base_size, old.len() as u64);
    assert_eq!(d.size, std::fs::metadata(&delta).expect("delta").len());
    // A delta from a version not older than the release, or for a target the release lacks,
    // is bad input.
    for bad in [
        format!("terminal@2.0.0={}", s(&delta)),
        format!("card_reader:canon@1.0.0={}", s(&delta)),
    ] {
        let out = sign(&bad, &tmp.path().join("bad.json"));
        assert_eq!(out.status.code(), Some(2), "{bad}");
    }
}
