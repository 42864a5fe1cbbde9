//! `bench/delta`'s measuring tool: builds a delta (as `onshi release delta` does) or applies
//! one (as the agent does, the same `onshi_agent::delta::apply`), and prints the time taken as
//! JSON. Peak RSS is measured from outside (`/usr/bin/time -v`), so one process does one step.
//!
//! ```text
//! delta build BASE NEW OUT [LEVEL]
//! delta apply BASE DELTA OUT
//! ```

use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, bail};
use onshi_agent::delta;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let started = Instant::now();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["build", base, new, out, rest @ ..] => {
            let level = match rest {
                [] => 19,
                [l] => l.parse().context("LEVEL")?,
                _ => bail!("usage: delta build BASE NEW OUT [LEVEL]"),
            };
            let built = delta::build(Path::new(base), Path::new(new), Path::new(out), level)?;
            println!(
                "{{\"step\":\"build\",\"delta_bytes\":{},\"full_bytes\":{},\"ratio\":{:.4},\"frames\":{},\"seconds\":{:.3}}}",
                built.size,
                built.result_size,
                built.size as f64 / built.result_size.max(1) as f64,
                built.frames,
                started.elapsed().as_secs_f64()
            );
        }
        ["apply", base, d, out] => {
            let header = delta::read_header_of(Path::new(d))?;
            let expect = delta::Expect {
                base_sha256: header.base_sha256,
                base_size: header.base_size,
                result_sha256: header.result_sha256,
                result_size: header.result_size,
            };
            delta::apply(Path::new(base), Path::new(d), Path::new(out), &expect)?;
            println!(
                "{{\"step\":\"apply\",\"bytes\":{},\"seconds\":{:.3}}}",
                header.result_size,
                started.elapsed().as_secs_f64()
            );
        }
        _ => bail!("usage: delta build BASE NEW OUT [LEVEL] | delta apply BASE DELTA OUT"),
    }
    Ok(())
}
