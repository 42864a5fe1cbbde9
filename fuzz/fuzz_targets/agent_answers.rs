//! What the agent reads off the network: the server's JSON answers, the trust metadata (root,
//! timestamp, snapshot, a release's targets) and a delta package. Each is parsed and checked or
//! refused with an error, never a panic — whether the bytes come from someone on the path
//! without a key (refused at the signatures), or are signed with the role's real key (the tests'
//! ceremony: a leaked key, or a signer's mistake) so that every check after the signatures runs
//! on them too.
//!
//! The first byte picks what the rest is: 0 an answer (check-in, enrolment, report, error), 1
//! metadata as it came (JSON of a signed document), 2–5 a payload signed by the root keys, the
//! timestamp key, the snapshot key or the targets key, 6 a delta applied to an installed
//! package.
#![no_main]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use jiff::Timestamp;
use libfuzzer_sys::fuzz_target;
use onshi_api::device::{CheckinResponse, Enrolled, ReportResponse};
use onshi_core::release::Sha256;
use onshi_core::trust::{
    Expect, FetchedMeta, Signed, SnapshotMeta, SnapshotRef, TimestampMeta, Trusted, TrustedRoot,
};
use onshi_core::version::Version;
use onshi_testkit::keys::{ROOT_KEYS, TARGETS_KEY, TIMESTAMP_KEY, TestKeys, key};

/// The package installed before the delta, in the fuzzer's directory.
const BASE: usize = 64 << 10;

struct World {
    root: TrustedRoot,
    now: Timestamp,
    /// What the client trusts from its last update: a snapshot listing release `r1`, and the
    /// timestamp naming it.
    trusted: Trusted,
    snapshot: Signed,
    timestamp: Signed,
    manifest: Signed,
    dir: tempfile::TempDir,
    base: PathBuf,
    base_sha256: Sha256,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let root = TrustedRoot::bootstrap(TestKeys::root()).expect("the tests' root");
        let now: Timestamp = "2026-01-19T12:00:00Z".parse().expect("instant");
        let package = Sha256::of(b"package");
        let manifest = onshi_testkit::keys::sign_release(
            "r1",
            "1.0.0",
            &[(
                onshi_core::release::Target::Terminal,
                package,
                "package".len() as u64,
            )],
        );
        let meta = SnapshotMeta::at(now, BTreeMap::from([("r1".to_owned(), manifest.digest())]));
        let snapshot = Signed::sign(&meta, &[&key(TIMESTAMP_KEY)]);
        let ts = TimestampMeta::of(&snapshot, &meta);
        let timestamp = Signed::sign(&ts, &[&key(TIMESTAMP_KEY)]);
        let dir = tempfile::tempdir().expect("a temporary directory");
        let bytes: Vec<u8> = (0..BASE).map(|i| (i * 7 % 251) as u8).collect();
        let base = dir.path().join("base");
        std::fs::write(&base, &bytes).expect("base written");
        World {
            root,
            now,
            trusted: Trusted {
                timestamp: Some(ts),
                snapshot: Some(meta),
            },
            snapshot,
            timestamp,
            manifest,
            base_sha256: Sha256::of(&bytes),
            base,
            dir,
        }
    })
}

/// Every step of the client workflow that takes `signed` as the role at hand.
fn check_as_every_role(w: &World, signed: &Signed) {
    let _ = w.root.next(signed.clone());
    let _ = w
        .root
        .update_timestamp(signed, w.trusted.timestamp.as_ref(), w.now);
    let _ = w.root.reload_timestamp(signed);
    let _ = w.root.reload_snapshot(signed);
    // As the snapshot a timestamp names (its own hash and length, so the checks after run).
    let digest = signed.digest();
    let naming = TimestampMeta {
        snapshot: SnapshotRef {
            version: w
                .trusted
                .timestamp
                .as_ref()
                .map_or(0, |t| t.snapshot.version)
                + 1,
            sha256: digest.sha256,
            length: digest.length,
        },
        ..w.trusted.timestamp.clone().expect("trusted")
    };
    let _ = w
        .root
        .update_snapshot(signed, &naming, w.trusted.snapshot.as_ref(), w.now);
    let _ = w.root.verify_manifest(signed, w.now);
    let installed: Version = "0.9.0".parse().expect("version");
    let expect = Expect {
        release_id: "r1",
        installed: Some(&installed),
        now: w.now,
    };
    if let Some(snapshot) = &w.trusted.snapshot {
        let _ = w.root.verify_targets(signed, snapshot, &expect);
    }
    // The whole workflow with this document in each place.
    for fetched in [
        FetchedMeta {
            timestamp: signed,
            snapshot: &w.snapshot,
            manifest: &w.manifest,
        },
        FetchedMeta {
            timestamp: &w.timestamp,
            snapshot: signed,
            manifest: &w.manifest,
        },
        FetchedMeta {
            timestamp: &w.timestamp,
            snapshot: &w.snapshot,
            manifest: signed,
        },
    ] {
        let _ = w.root.verify_release(&fetched, &w.trusted, &expect);
        let _ = w
            .root
            .verify_release(&fetched, &Trusted::default(), &expect);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    let w = world();
    match which % 7 {
        0 => {
            let _ = serde_json::from_slice::<CheckinResponse>(bytes);
            let _ = serde_json::from_slice::<Enrolled>(bytes);
            let _ = serde_json::from_slice::<ReportResponse>(bytes);
            let _ = serde_json::from_slice::<onshi_api::ErrorBody>(bytes);
        }
        1 => {
            if let Ok(signed) = serde_json::from_slice::<Signed>(bytes) {
                check_as_every_role(w, &signed);
            }
        }
        n @ 2..=5 => {
            let Ok(payload) = serde_json::from_slice::<serde_json::Value>(bytes) else {
                return;
            };
            let keys = match n {
                2 => ROOT_KEYS.map(key).to_vec(),
                // The tests' ceremony: one online key signs timestamp and snapshot.
                3 | 4 => vec![key(TIMESTAMP_KEY)],
                _ => vec![key(TARGETS_KEY)],
            };
            let signed = Signed::sign(&payload, &keys.iter().collect::<Vec<_>>());
            check_as_every_role(w, &signed);
        }
        _ => {
            let delta = w.dir.path().join("delta");
            let out = w.dir.path().join("out");
            std::fs::write(&delta, bytes).expect("delta written");
            let expect = onshi_agent::delta::Expect {
                base_sha256: w.base_sha256,
                base_size: BASE as u64,
                result_sha256: Sha256::of(b"result"),
                result_size: 2 * BASE as u64,
            };
            let _ = onshi_agent::delta::read_header_of(&delta);
            let _ = onshi_agent::delta::apply(&w.base, &delta, &out, &expect);
        }
    }
});
