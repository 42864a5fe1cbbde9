//! `onshi keys`: the offline key ceremony and key rotation (run on a machine that is not the
//! server). `init` creates the root keys (k of n), the targets keys that sign releases, the
//! server's online key (`timestamp.key`, which signs the timestamp and the snapshot; with
//! `--snapshot-key` a separate `snapshot.key` for the snapshot) and `root.json` (version 1);
//! `rotate` writes the next root version with changed keys, signed by the old root's threshold
//! and the new one's. Key files are base64 (private `.key`, mode 0600; public `.pub` beside it).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ed25519_dalek::SigningKey;
use jiff::{SignedDuration, Timestamp};
use onshi_core::release::{decode_signing_key, encode_signing_key};
use onshi_core::trust::{PublicKey, Role, RoleKeys, Root, Signed, TrustedRoot};

use crate::exit::{BadInput, bad_input};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Create every key and root.json (version 1) in a new directory: the key ceremony.
    Init(InitArgs),
    /// One new key pair (a replacement targets, timestamp or root key).
    New(NewArgs),
    /// Write the next root version: replace the root, targets, snapshot or timestamp keys, renew
    /// expiry.
    Rotate(RotateArgs),
}

#[derive(clap::Args)]
struct InitArgs {
    /// A new directory for the keys and root.json.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Root keys to create, and how many must sign a new root.
    #[arg(long, default_value_t = 3)]
    root_keys: u32,
    #[arg(long, default_value_t = 2)]
    root_threshold: u32,
    /// Targets keys to create, and how many must sign a release.
    #[arg(long, default_value_t = 1)]
    targets_keys: u32,
    #[arg(long, default_value_t = 1)]
    targets_threshold: u32,
    /// The root's validity in days.
    #[arg(long, default_value_t = 365)]
    expires_days: u32,
    /// Make a separate online key for the snapshot role (`snapshot.key`); by default the
    /// timestamp key signs both online roles.
    #[arg(long)]
    snapshot_key: bool,
}

#[derive(clap::Args)]
struct NewArgs {
    /// The private key file to write (`.pub` beside it).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(clap::Args)]
struct RotateArgs {
    /// The current root (the newest version the servers serve).
    #[arg(long, value_name = "FILE")]
    root: PathBuf,
    /// Where to write the next root version.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// New root keys (public key files, repeatable); default: keep the current ones.
    #[arg(long = "root-key", value_name = "PUB")]
    root_keys: Vec<PathBuf>,
    #[arg(long)]
    root_threshold: Option<u32>,
    /// New targets keys (repeatable); default: keep. Releases signed only by a dropped key are
    /// refused from then on.
    #[arg(long = "targets-key", value_name = "PUB")]
    targets_keys: Vec<PathBuf>,
    #[arg(long)]
    targets_threshold: Option<u32>,
    /// New timestamp keys (repeatable); default: keep. List the old and the new key first,
    /// restart the servers with the new key, then rotate again without the old one. While the
    /// root gives the snapshot role the same keys (the ceremony's default), they replace the
    /// snapshot keys too.
    #[arg(long = "timestamp-key", value_name = "PUB")]
    timestamp_keys: Vec<PathBuf>,
    /// New snapshot keys (repeatable); default: keep. The same steps as the timestamp key: the
    /// servers sign snapshots with --snapshot-key FILE (or DATA/keys/snapshot.key).
    #[arg(long = "snapshot-key", value_name = "PUB")]
    snapshot_keys: Vec<PathBuf>,
    /// The new root's validity in days.
    #[arg(long, default_value_t = 365)]
    expires_days: u32,
    /// Private keys that sign the new root (repeatable): a threshold of the current root keys
    /// and a threshold of the new ones.
    #[arg(long = "key", value_name = "FILE", required = true)]
    keys: Vec<PathBuf>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    match &args.command {
        Command::Init(a) => init(a),
        Command::New(a) => {
            let key = generate(&a.out)?;
            println!(
                "{} ({})",
                a.out.display(),
                PublicKey(key.verifying_key()).id()
            );
            Ok(())
        }
        Command::Rotate(a) => rotate(a),
    }
}

/// What `init` made that a caller signs with (the demo and the fixture play the operator's
/// workstation); every key is also in its file.
pub struct Ceremony {
    pub root: Signed,
    pub targets_keys: Vec<SigningKey>,
}

/// How many keys the ceremony makes, and how many must sign.
#[derive(Debug, Clone, Copy)]
pub struct CeremonyPlan {
    pub root_keys: u32,
    pub root_threshold: u32,
    pub targets_keys: u32,
    pub targets_threshold: u32,
    /// A separate snapshot key (else the timestamp key signs the snapshot too).
    pub snapshot_key: bool,
    pub expires: Timestamp,
}

/// The key ceremony into `out` (a new directory): `root-N.key`, `targets-N.key`,
/// `timestamp.key` (and `snapshot.key` if asked; each with `.pub`) and `root.json`, version 1,
/// signed by every root key.
pub fn ceremony(out: &Path, plan: &CeremonyPlan) -> anyhow::Result<Ceremony> {
    let CeremonyPlan {
        root_keys,
        root_threshold,
        targets_keys,
        targets_threshold,
        snapshot_key,
        expires,
    } = *plan;
    for (what, n, k) in [
        ("root", root_keys, root_threshold),
        ("targets", targets_keys, targets_threshold),
    ] {
        if k == 0 || k > n {
            return Err(BadInput(format!(
                "--{what}-threshold {k} must be between 1 and --{what}-keys {n}"
            ))
            .into());
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let make = |prefix: &str, n: u32| -> anyhow::Result<Vec<SigningKey>> {
        (1..=n)
            .map(|i| generate(&out.join(format!("{prefix}-{i}.key"))))
            .collect()
    };
    let root_keys = make("root", root_keys)?;
    let targets_keys = make("targets", targets_keys)?;
    let timestamp_key = generate(&out.join("timestamp.key"))?;
    let snapshot_key = if snapshot_key {
        generate(&out.join("snapshot.key"))?
    } else {
        timestamp_key.clone()
    };
    let public = |keys: &[SigningKey]| -> Vec<PublicKey> {
        keys.iter().map(|k| PublicKey(k.verifying_key())).collect()
    };
    let root = Root::new(
        1,
        expires,
        (&public(&root_keys), root_threshold),
        (&public(&targets_keys), targets_threshold),
        (&[PublicKey(snapshot_key.verifying_key())], 1),
        (&[PublicKey(timestamp_key.verifying_key())], 1),
    );
    let signed = Signed::sign(&root, &root_keys.iter().collect::<Vec<_>>());
    write_new(&out.join("root.json"), &pretty(&signed)?)?;
    Ok(Ceremony {
        root: signed,
        targets_keys,
    })
}

fn init(a: &InitArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !a.out.join("root.json").exists(),
        BadInput(format!("{} already holds a root.json", a.out.display()))
    );
    let expires = Timestamp::now().saturating_add(days(a.expires_days))?;
    ceremony(
        &a.out,
        &CeremonyPlan {
            root_keys: a.root_keys,
            root_threshold: a.root_threshold,
            targets_keys: a.targets_keys,
            targets_threshold: a.targets_threshold,
            snapshot_key: a.snapshot_key,
            expires,
        },
    )?;
    let out = a.out.display();
    println!("鍵と root.json (version 1) を {out} に作成しました。");
    println!(
        "  {out}/root.json       端末のインストーラーに同梱し、初回の onshi serve --trust-root に渡す"
    );
    if a.snapshot_key {
        println!(
            "  {out}/timestamp.key   サーバーの DATA/keys/timestamp.key に置く（オンラインの鍵）"
        );
        println!(
            "  {out}/snapshot.key    サーバーの DATA/keys/snapshot.key に置く（オンラインの鍵）"
        );
    } else {
        println!(
            "  {out}/timestamp.key   サーバーの DATA/keys/timestamp.key に置く（オンラインの鍵はこれだけ。timestamp と snapshot に署名）"
        );
    }
    println!(
        "  {out}/targets-*.key   リリースの署名用（onshi release sign）。サーバーには置かない"
    );
    println!("  {out}/root-*.key      オフラインで保管（鍵の交換時のみ使用）");
    Ok(())
}

fn rotate(a: &RotateArgs) -> anyhow::Result<()> {
    let current = read_signed(&a.root)?;
    let current = TrustedRoot::bootstrap(current)
        .map_err(|e| bad_input(format_args!("--root {}", a.root.display()), e))?;
    let mut next = current.root().clone();
    next.version += 1;
    next.expires = Timestamp::now().saturating_add(days(a.expires_days))?;
    replace(&mut next, Role::Root, &a.root_keys, a.root_threshold)?;
    replace(
        &mut next,
        Role::Targets,
        &a.targets_keys,
        a.targets_threshold,
    )?;
    // One online key for both roles (the ceremony's default) stays one key: new timestamp keys
    // are the snapshot's too unless --snapshot-key says otherwise.
    let shared = next.roles.snapshot == next.roles.timestamp;
    let snapshot_keys = if a.snapshot_keys.is_empty() && shared {
        &a.timestamp_keys
    } else {
        &a.snapshot_keys
    };
    replace(&mut next, Role::Snapshot, snapshot_keys, None)?;
    replace(&mut next, Role::Timestamp, &a.timestamp_keys, None)?;
    // Only keys some role still names stay in the root (a revoked key is gone).
    let named: Vec<_> = Root::ROLES
        .into_iter()
        .flat_map(|r| next.role(r).keyids.clone())
        .collect();
    next.keys.retain(|id, _| named.contains(id));
    let keys = a
        .keys
        .iter()
        .map(|p| read_key(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let signed = Signed::sign(&next, &keys.iter().collect::<Vec<_>>());
    let checked = current.next(signed.clone()).map_err(|e| {
        bad_input(
            "the new root does not chain (sign with a threshold of the current and of the new root keys)",
            e,
        )
    })?;
    write_new(&a.out, &pretty(&signed)?)?;
    println!(
        "root version {} を {} に書きました（期限 {}）。POST /api/v1/admin/trust/root で公開してください。",
        checked.version(),
        a.out.display(),
        checked.root().expires
    );
    Ok(())
}

fn replace(
    root: &mut Root,
    which: Role,
    keys: &[PathBuf],
    threshold: Option<u32>,
) -> anyhow::Result<()> {
    if !keys.is_empty() {
        let public = keys
            .iter()
            .map(|p| read_public(p))
            .collect::<anyhow::Result<Vec<_>>>()?;
        for k in &public {
            root.keys.insert(k.id(), *k);
        }
        *root.role_mut(which) = RoleKeys::of(&public, threshold.unwrap_or(1));
    } else if let Some(t) = threshold {
        root.role_mut(which).threshold = t;
    }
    Ok(())
}

fn days(n: u32) -> SignedDuration {
    SignedDuration::from_hours(i64::from(n) * 24)
}

fn pretty(signed: &Signed) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(signed)? + "\n")
}

/// Reads signed metadata (a root.json, a release manifest) from a file.
pub fn read_signed(path: &Path) -> anyhow::Result<Signed> {
    let text = std::fs::read(path).map_err(|e| bad_input(path.display(), e))?;
    serde_json::from_slice(&text)
        .map_err(|e| bad_input(format_args!("{} is not signed metadata", path.display()), e))
}

/// A private key file.
pub fn read_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path).map_err(|e| bad_input(path.display(), e))?;
    decode_signing_key(&text).ok_or_else(|| {
        BadInput(format!(
            "{} is not an onshi private key (base64 of 32 bytes)",
            path.display()
        ))
        .into()
    })
}

/// A public key file (`.pub`), or the public half of a private key file.
pub fn read_public(path: &Path) -> anyhow::Result<PublicKey> {
    let text = std::fs::read_to_string(path).map_err(|e| bad_input(path.display(), e))?;
    if path.extension().is_some_and(|e| e == "key") {
        return read_key(path).map(|k| PublicKey(k.verifying_key()));
    }
    PublicKey::parse(&text).ok_or_else(|| {
        BadInput(format!(
            "{} is not an onshi public key (base64 of 32 bytes)",
            path.display()
        ))
        .into()
    })
}

/// A new key pair: `path` (private, mode 0600) and `path.pub`. Never overwrites.
pub fn generate(path: &Path) -> anyhow::Result<SigningKey> {
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
    let key = SigningKey::from_bytes(&seed);
    write_private(path, &encode_signing_key(&key))?;
    write_new(
        &path.with_extension("pub"),
        &(PublicKey(key.verifying_key()).encode() + "\n"),
    )?;
    Ok(key)
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| {
        format!(
            "creating {} (an existing key is never overwritten)",
            path.display()
        )
    })?;
    writeln!(file, "{text}")?;
    file.sync_all()?;
    Ok(())
}

fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {} (never overwritten)", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}
