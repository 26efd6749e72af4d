//! Fuzzes `bundle::read_bundle` and its frame iterator: bundle files come from untrusted USB
//! sticks, so reading one must never panic and must always end.
#![no_main]

use libfuzzer_sys::fuzz_target;
use motcua_sync::bundle::read_bundle;

fuzz_target!(|data: &[u8]| {
    if let Ok(reader) = read_bundle(data) {
        // Every step consumes bytes or stops, so this ends.
        for frame in reader {
            let _ = frame;
        }
    }
});
