//! The agent's state files as it finds them on disk after a crash, a full disk or tampering:
//! `agent.json`, `state.json` and `trust.json` are each read, refused or set aside with an
//! error, never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use onshi_agent::StateDir;
use onshi_agent::trust::TrustFile;

fn dir() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    let root = dir().path();
    let state = StateDir::new(root);
    let file = match which % 3 {
        0 => "agent.json",
        1 => "state.json",
        _ => "trust.json",
    };
    std::fs::write(root.join(file), bytes).expect("written");
    match which % 3 {
        0 => {
            let _ = state.load_identity();
        }
        1 => {
            let _ = state.load_progress();
        }
        _ => {
            let _ = TrustFile::load(root);
        }
    }
});
