//! The cluster bus message decoder on arbitrary frame bodies: it must never panic or
//! allocate without bound, and whatever it accepts must encode back to a frame that decodes
//! to the same message.
//!
//! Run with `cargo +nightly fuzz run cluster_bus` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal::cluster::wire::Message;
use shoal::transport::frame::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = decode::<Message>(data) {
        let frame = encode(&message).expect("an accepted message encodes");
        assert_eq!(decode::<Message>(&frame[4..]).unwrap(), message);
    }
});
