//! A scenario file of `onshi simulate`: laid over the national preset, parsed or refused with an
//! error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use onshi_sim::Scenario;
use onshi_sim::scenario::preset_campaign;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Scenario::parse(text, preset_campaign);
    }
});
