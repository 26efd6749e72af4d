//! Fuzzes the envelope and Automerge change-header readers an independent verifier relies on:
//! they must refuse, never panic on, any byte string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use motcua_schema::audit::change::{parse_change, parse_envelope};

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = parse_envelope(data) {
        let _ = parse_change(env.change);
    }
    if let Ok(header) = parse_change(data) {
        let _ = header.deps().count();
    }
});
