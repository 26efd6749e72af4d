//! Fuzzes `wire::decode_frame` (deflate, bounded): the first byte is the claimed envelope count.
#![no_main]

use libfuzzer_sys::fuzz_target;
use motcua_sync::wire::{FRAME_RAW_SIZE_BYTES_MAX, decode_frame};

fuzz_target!(|data: &[u8]| {
    let Some((&count, frame)) = data.split_first() else {
        return;
    };
    if let Ok(envelopes) = decode_frame(frame, usize::from(count)) {
        assert_eq!(envelopes.len(), usize::from(count));
        assert!(envelopes.iter().map(Vec::len).sum::<usize>() <= FRAME_RAW_SIZE_BYTES_MAX);
    }
});
