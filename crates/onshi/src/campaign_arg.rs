//! The `--campaign FILE|preset:NAME` argument, shared by every command that reads a schedule.

use onshi_core::schedule::Campaign;

use crate::exit::bad_input;

/// Loads a campaign from a TOML file or a built-in preset (`preset:2026-01`).
pub fn load(arg: &str) -> anyhow::Result<Campaign> {
    if let Some(name) = arg.strip_prefix("preset:") {
        return Campaign::preset(name).map_err(|e| bad_input("--campaign", e));
    }
    let text = std::fs::read_to_string(arg)
        .map_err(|e| bad_input(format_args!("cannot read campaign file {arg}"), e))?;
    Campaign::parse(&text).map_err(|e| bad_input(format_args!("campaign file {arg}"), e))
}
