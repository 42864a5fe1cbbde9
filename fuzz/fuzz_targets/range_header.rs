//! The `Range` header of an artifact download, against files of every size: never a panic, and
//! a part is always inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use onshi_server::artifacts::{RangeRequest, parse_range};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (size, header) = data.split_at(8);
    let size = u64::from_le_bytes(size.try_into().expect("8 bytes"));
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    for size in [size, 0, 1, 268_435_456] {
        if let RangeRequest::Part { start, end } = parse_range(Some(header), size) {
            assert!(
                start <= end && end < size,
                "{header:?} of {size}: {start}-{end}"
            );
        }
    }
});
