//! Fuzzes a `Session` fed arbitrary bytes as messages (each prefixed by a one-byte length),
//! after a valid `Hello`: a hostile peer must only ever end the session with a typed failure.
#![no_main]

use libfuzzer_sys::fuzz_target;
use motcua_sync::testing::{MemStore, synthetic_envelope};
use motcua_sync::wire::Message;
use motcua_sync::{ChangeStore, Local, Scope, Session, SessionConfig};

fuzz_target!(|data: &[u8]| {
    let mut store = MemStore::new([1; 16]);
    for i in 0..20u64 {
        store.insert(synthetic_envelope("dossier/A-250101-0001", i, 40));
    }
    let mut s = Session::new(
        SessionConfig::default(),
        Local {
            store_id: [1; 16],
            feed_head: store.feed_head(),
            checkpoint: None,
            scope: Scope::All,
        },
        Scope::Unit { unit: "A".into() },
        0,
    );
    let hello = Message::Hello {
        store_id: [2; 16],
        feed_head: 30,
        resume_from: 0,
        peer_store_id_seen: [1; 16],
    };
    s.handle(1, hello, &store);
    let mut rest = data;
    let mut now = 2;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        s.handle_bytes(now, &tail[..len], &store);
        rest = &tail[len..];
        now += 1_000;
        s.handle_timeout(now, &store);
        while let Some(m) = s.poll_transmit() {
            m.encode()
                .expect("a session only builds messages within bounds");
        }
        while s.poll_event().is_some() {}
    }
});
