//! The reply decoder (what a node forwarded a command to answers) on arbitrary bytes: it
//! must never panic, recurse without bound or allocate beyond its input, and whatever it
//! accepts must encode (RESP3) to bytes that decode to a reply encoding to the same bytes.
//! (Not to an equal reply: RESP3 has one null where RESP2 has two, and NaN is not equal to
//! itself.)
//!
//! Run with `cargo +nightly fuzz run resp_reply` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal::resp::{decode_reply, encode_reply, Protocol};

fuzz_target!(|data: &[u8]| {
    if let Ok(reply) = decode_reply(data) {
        let mut encoded = Vec::new();
        encode_reply(&reply, Protocol::Resp3, &mut encoded);
        let decoded = decode_reply(&encoded).expect("an encoded reply decodes");
        let mut again = Vec::new();
        encode_reply(&decoded, Protocol::Resp3, &mut again);
        assert_eq!(again, encoded, "{reply:?} re-encoded differently");
    }
});
