//! Fuzzes `bundle::read_bundle` and its frame iterator: bundle files come from untrusted USB
//! sticks, so reading one must never panic and must always end.
//!
//! Random bytes rarely get past a bundle's magic and header digest, so inputs starting with an
//! odd byte are instead edits of a well-formed bundle: the rest of the input chooses how many
//! (synthetic) changes it carries and which bytes to overwrite, so the fuzzer reaches the frame
//! checks and the decoder behind them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use motcua_sync::Scope;
use motcua_sync::bundle::{bundle_bytes, read_bundle};
use motcua_sync::testing::{MemStore, synthetic_envelope};

fn read_all(bytes: &[u8]) {
    if let Ok(reader) = read_bundle(bytes) {
        // Every step consumes bytes or stops, so this ends.
        for frame in reader {
            let _ = frame;
        }
    }
}

fn edited_bundle(data: &[u8]) -> Option<Vec<u8>> {
    let (&count, edits) = data.split_first()?;
    let mut store = MemStore::new([3; 16]);
    for i in 0..u64::from(count % 24) {
        store.insert(synthetic_envelope("catalog", i, 40 + (i as usize * 37) % 400));
    }
    let (mut bytes, _) = bundle_bytes(&store, &Scope::All, 0, Some([5; 32])).ok()?;
    for edit in edits.chunks_exact(3) {
        let at = usize::from(u16::from_le_bytes([edit[0], edit[1]]));
        if bytes.is_empty() {
            break;
        }
        let at = at % bytes.len();
        bytes[at] = edit[2];
    }
    // A cut, too: bundles are often truncated by an unplugged stick.
    if let Some(&cut) = edits.last()
        && cut % 5 == 0
    {
        let keep = bytes.len() * usize::from(cut) / 256;
        bytes.truncate(keep);
    }
    Some(bytes)
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((mode, rest)) if mode % 2 == 1 => {
            if let Some(bytes) = edited_bundle(rest) {
                read_all(&bytes);
            }
        }
        _ => read_all(data),
    }
});
