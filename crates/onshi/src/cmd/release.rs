//! `onshi release`: sign a release where the targets keys are (an operator's workstation, not
//! the server). `sign` reads the packages, writes the manifest (hash, length and target of each
//! package, the version, an expiry) and signs it with the keys given; `cosign` adds another
//! signer's signature to the same file (k of n). The server verifies and publishes it
//! (`POST /api/v1/admin/releases`); it holds no key that could sign one. A rollback release
//! (切り戻し) is signed the same way: `--from-release GOOD.json` takes the previous good
//! release's packages, `--version` is higher than the bad one's and `--rollback-of BAD.json`
//! checks that it can replace it (`onshi_core::waves::rollback::check_release`).

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ed25519_dalek::SigningKey;
use jiff::{SignedDuration, Timestamp};
use onshi_core::release::{Component, Delta, Manifest, Sha256, Target};
use onshi_core::trust::{Role, Signed};
use onshi_core::version::Version;
use sha2::Digest as _;

use super::keys::{read_key, read_signed};
use crate::exit::{BadInput, bad_input};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Write a release's manifest and sign it with one or more targets keys.
    Sign(SignArgs),
    /// Add a signature to a signed manifest (the next of k signers).
    Cosign(CosignArgs),
    /// Build a delta package: the bytes that rebuild NEW from BASE on a device that has BASE
    /// installed (chunked zstd with the base as reference; `onshi_agent::delta`).
    Delta(DeltaArgs),
}

#[derive(clap::Args)]
struct DeltaArgs {
    /// The previous release's package (what the devices have installed).
    #[arg(long, value_name = "FILE")]
    base: PathBuf,
    /// The new release's package.
    #[arg(long, value_name = "FILE")]
    new: PathBuf,
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// zstd level (1–22): building runs once per release, applying on every device.
    #[arg(long, default_value_t = 19, value_parser = clap::value_parser!(i32).range(1..=22))]
    level: i32,
}

#[derive(clap::Args)]
struct SignArgs {
    /// The release id (1–64 of letters, digits, '.', '_', '-').
    #[arg(long)]
    id: String,
    #[arg(long, value_parser = parse_version)]
    version: Version,
    /// A package as TARGET=FILE (repeatable): terminal, or card_reader:VENDOR.
    #[arg(long = "package", value_name = "TARGET=FILE", value_parser = parse_package, required_unless_present = "from_release")]
    packages: Vec<(Target, PathBuf)>,
    /// Take the packages of this release (its signed manifest) instead: a rollback release
    /// (切り戻し) is the previous good release's packages under a version higher than the bad
    /// one, since agents refuse to install an older version. The server holds them already.
    #[arg(long, value_name = "MANIFEST", conflicts_with = "packages")]
    from_release: Option<PathBuf>,
    /// The bad release's signed manifest: refuse unless the new release can roll it back (a
    /// higher version, a package for each of its targets, none of them its own).
    #[arg(long, value_name = "MANIFEST")]
    rollback_of: Option<PathBuf>,
    /// A delta package as TARGET@BASE_VERSION=FILE (repeatable; built by `onshi release
    /// delta` from that version's package to this release's TARGET package).
    #[arg(long = "delta", value_name = "TARGET@VERSION=FILE", value_parser = parse_delta)]
    deltas: Vec<(Target, Version, PathBuf)>,
    /// A targets private key (repeatable).
    #[arg(long = "key", value_name = "FILE", required = true)]
    keys: Vec<PathBuf>,
    /// After this many days no agent accepts the manifest.
    #[arg(long, default_value_t = 90)]
    expires_days: u32,
    /// Where to write the signed manifest.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(clap::Args)]
struct CosignArgs {
    /// The signed manifest, signed again in place.
    file: PathBuf,
    #[arg(long = "key", value_name = "FILE", required = true)]
    keys: Vec<PathBuf>,
}

fn parse_version(s: &str) -> Result<Version, String> {
    Version::parse(s).map_err(|e| e.to_string())
}

fn parse_delta(s: &str) -> Result<(Target, Version, PathBuf), String> {
    let (left, file) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected TARGET@VERSION=FILE"))?;
    let (target, version) = left
        .split_once('@')
        .ok_or_else(|| format!("{s:?}: expected TARGET@VERSION=FILE"))?;
    let target = target.parse::<Target>().map_err(|e| e.to_string())?;
    Ok((target, parse_version(version)?, PathBuf::from(file)))
}

fn parse_package(s: &str) -> Result<(Target, PathBuf), String> {
    let (target, file) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected TARGET=FILE"))?;
    let target = target.parse::<Target>().map_err(|e| e.to_string())?;
    Ok((target, PathBuf::from(file)))
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    match &args.command {
        Command::Sign(a) => {
            let keys = a
                .keys
                .iter()
                .map(|p| read_key(p))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let components = match &a.from_release {
                Some(path) => read_manifest(path)?.components,
                None => a
                    .packages
                    .iter()
                    .map(|(target, path)| component(*target, path))
                    .collect::<anyhow::Result<Vec<_>>>()?,
            };
            let now = Timestamp::now();
            let expires =
                now.saturating_add(SignedDuration::from_hours(i64::from(a.expires_days) * 24))?;
            let mut manifest = manifest(&a.id, &a.version, components, now, expires)?;
            for (target, base_version, path) in &a.deltas {
                manifest
                    .deltas
                    .push(delta_entry(&manifest, *target, base_version, path)?);
            }
            manifest
                .check_deltas()
                .map_err(|e| bad_input("--delta", e))?;
            if let Some(path) = &a.rollback_of {
                onshi_core::waves::rollback::check_release(&read_manifest(path)?, &manifest)
                    .map_err(|e| bad_input(format_args!("--rollback-of {}", path.display()), e))?;
            }
            let signed = sign(&manifest, &keys);
            write(&a.out, &signed, true)?;
            println!(
                "{} を署名しました（{} 件の署名、期限 {}）。パッケージをアップロードしてから POST /api/v1/admin/releases で公開してください。",
                a.out.display(),
                signed.signatures.len(),
                manifest.expires
            );
            Ok(())
        }
        Command::Delta(a) => {
            let started = std::time::Instant::now();
            let built = onshi_agent::delta::build(&a.base, &a.new, &a.out, a.level)
                .map_err(|e| bad_input(a.out.display(), e))?;
            println!(
                "{}",
                serde_json::json!({
                    "delta_bytes": built.size,
                    "full_bytes": built.result_size,
                    "ratio": built.size as f64 / built.result_size.max(1) as f64,
                    "frames": built.frames,
                    "base_sha256": built.base_sha256,
                    "base_bytes": built.base_size,
                    "result_sha256": built.result_sha256,
                    "seconds": started.elapsed().as_secs_f64(),
                })
            );
            Ok(())
        }
        Command::Cosign(a) => {
            let mut signed = read_signed(&a.file)?;
            signed
                .parse::<Manifest>(Role::Targets)
                .map_err(|e| bad_input(a.file.display(), e))?;
            for path in &a.keys {
                signed.add_signature(&read_key(path)?);
            }
            write(&a.file, &signed, false)?;
            println!("{}: {} 件の署名", a.file.display(), signed.signatures.len());
            Ok(())
        }
    }
}

/// A release's manifest (the targets role's metadata), checked as the server will check it.
pub fn manifest(
    id: &str,
    version: &Version,
    components: Vec<Component>,
    now: Timestamp,
    expires: Timestamp,
) -> anyhow::Result<Manifest> {
    let ok_id = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    anyhow::ensure!(
        ok_id,
        BadInput(format!(
            "--id {id:?}: 1–64 characters of letters, digits, '.', '_', '-'"
        ))
    );
    Ok(Manifest {
        role: Role::Targets,
        release_id: id.to_owned(),
        version: version.clone(),
        created_at: now.to_string(),
        expires,
        deltas: Vec::new(),
        components,
    })
}

/// A release's manifest from its signed file (`--from-release`, `--rollback-of`).
fn read_manifest(path: &Path) -> anyhow::Result<Manifest> {
    read_signed(path)?
        .parse::<Manifest>(Role::Targets)
        .map_err(|e| bad_input(path.display(), e))
}

/// Signs a manifest with every key.
pub fn sign(manifest: &Manifest, keys: &[SigningKey]) -> Signed {
    Signed::sign(manifest, &keys.iter().collect::<Vec<_>>())
}

/// A package's target, SHA-256 and length, read from its file (streamed).
fn component(target: Target, path: &Path) -> anyhow::Result<Component> {
    let mut file = std::fs::File::open(path).map_err(|e| bad_input(path.display(), e))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    anyhow::ensure!(size > 0, BadInput(format!("{} is empty", path.display())));
    Ok(Component {
        target,
        sha256: Sha256::from_bytes(hasher.finalize().into()),
        size,
    })
}

/// A delta's manifest entry, read from its file: it must rebuild the release's package of
/// `target` (its header names that package's hash and length).
fn delta_entry(
    manifest: &Manifest,
    target: Target,
    base_version: &Version,
    path: &Path,
) -> anyhow::Result<Delta> {
    let header =
        onshi_agent::delta::read_header_of(path).map_err(|e| bad_input(path.display(), e))?;
    let package = manifest.component(target).ok_or_else(|| {
        BadInput(format!(
            "--delta {}: the release has no {target} package",
            path.display()
        ))
    })?;
    anyhow::ensure!(
        header.result_sha256 == package.sha256 && header.result_size == package.size,
        BadInput(format!(
            "--delta {}: it rebuilds {}, not the {target} package {}",
            path.display(),
            header.result_sha256,
            package.sha256
        ))
    );
    let file = component(target, path)?;
    Ok(Delta {
        target,
        base_version: base_version.clone(),
        base_sha256: header.base_sha256,
        base_size: header.base_size,
        sha256: file.sha256,
        size: file.size,
    })
}

fn write(path: &Path, signed: &Signed, new: bool) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(signed)? + "\n";
    if new && path.exists() {
        return Err(BadInput(format!("{} already exists", path.display())).into());
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
