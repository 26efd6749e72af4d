//! Fuzzes `Message::decode`: any bytes a peer sends must decode or fail with a typed error, and
//! whatever decodes must re-encode to bytes that decode to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use motcua_sync::wire::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = Message::decode(data) {
        let again = msg.encode().expect("a decoded message is within bounds");
        assert_eq!(
            Message::decode(&again).expect("re-encoded message decodes"),
            msg
        );
    }
});
