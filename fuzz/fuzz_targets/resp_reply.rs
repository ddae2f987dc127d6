//! The reply decoder (what a node forwarded a command to answers) on arbitrary bytes: it
//! must never panic, recurse without bound or allocate beyond its input, and whatever it
//! accepts must encode (RESP3) to bytes that decode to the same reply.
//!
//! Run with `cargo +nightly fuzz run resp_reply` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal::resp::{decode_reply, encode_reply, Protocol};

fuzz_target!(|data: &[u8]| {
    if let Ok(reply) = decode_reply(data) {
        let mut again = Vec::new();
        encode_reply(&reply, Protocol::Resp3, &mut again);
        let decoded = decode_reply(&again).expect("an encoded reply decodes");
        // NaN never equals itself; everything else must survive the round trip.
        if format!("{reply:?}").contains("NaN") {
            return;
        }
        assert_eq!(decoded, reply);
    }
});
