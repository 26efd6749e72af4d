//! Fuzzes the checkpoint note reader: witnessed notes arrive from peers and archives, so
//! opening one must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use motcua_schema::audit::note::Checkpoint;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Checkpoint::open(text);
    }
});
