//! The RESP decoder on arbitrary bytes, as a connection feeds it: commands are parsed one
//! after another from the front of the buffer, with and without the unauthenticated limits.
//! It must never panic, loop, or read past the buffer; every parsed command must consume
//! at least one byte and report arguments inside what it consumed.
//!
//! Run with `cargo +nightly fuzz run resp_decode` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal::resp::{Limits, Parser};

fuzz_target!(|data: &[u8]| {
    for unauthenticated in [false, true] {
        let limits = Limits {
            bulk_bytes_max: 1024 * 1024,
            unauthenticated,
        };
        let mut parser = Parser::default();
        let mut rest = data;
        while let Ok(Some(consumed)) = parser.parse(rest, &limits) {
            assert!(consumed > 0 && consumed <= rest.len());
            for arg in parser.args(&rest[..consumed]) {
                assert!(arg.len() <= consumed);
            }
            rest = &rest[consumed..];
        }
    }
});
