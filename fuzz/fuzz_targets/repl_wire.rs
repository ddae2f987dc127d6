//! The replication control-message decoder on arbitrary frame bodies, both directions: it
//! must never panic or allocate without bound, and whatever it accepts must encode back to
//! a frame that decodes to the same message.
//!
//! Run with `cargo +nightly fuzz run repl_wire` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal::repl::wire::{decode, encode, ToPrimary, ToReplica};

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = decode::<ToPrimary>(data) {
        let frame = encode(&message).expect("an accepted message encodes");
        assert_eq!(decode::<ToPrimary>(&frame[4..]).unwrap(), message);
    }
    if let Ok(message) = decode::<ToReplica>(data) {
        let frame = encode(&message).expect("an accepted message encodes");
        assert_eq!(decode::<ToReplica>(&frame[4..]).unwrap(), message);
    }
});
