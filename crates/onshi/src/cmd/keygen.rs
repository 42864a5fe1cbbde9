//! `onshi keygen`: the operator's Ed25519 key pair for signing release manifests.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Where to write the private key; the public key goes next to it as `.pub`.
    #[arg(long, default_value = "onshi-data/keys/operator.key")]
    out: PathBuf,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let key = onshi_server::generate_key(&args.out)?;
    println!("private key: {}", args.out.display());
    println!(
        "public key:  {} ({})",
        args.out.with_extension("pub").display(),
        onshi_core::release::encode_public_key(&key.verifying_key())
    );
    Ok(())
}
