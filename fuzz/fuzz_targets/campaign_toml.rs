//! A campaign file (`onshi` reads it from the operator; the API takes its text): parses or is
//! refused with an error, never panics; a parsed campaign answers its status at any instant.
#![no_main]

use libfuzzer_sys::fuzz_target;
use onshi_core::schedule::Campaign;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(campaign) = Campaign::parse(text) {
        for at in [
            jiff::Timestamp::MIN,
            jiff::Timestamp::UNIX_EPOCH,
            "2026-01-19T12:00:00Z".parse().expect("instant"),
            jiff::Timestamp::MAX,
        ] {
            let _ = campaign.status(at);
        }
        let _ = campaign.waves();
    }
});
