//! The RDB loader on arbitrary bytes, as start-up reads a `dump.rdb`: it must never panic,
//! hang or allocate by a length the input cannot back; damage is a `FormatError` whose offset
//! lies inside the input.
//!
//! Run with `cargo +nightly fuzz run rdb_load` from the repository root; seed the corpus with
//! real snapshots (`fuzz/corpus/rdb_load/`), e.g. those `tests/persistence.rs` writes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = shoal::persist::check_rdb(data) {
        assert!(e.offset <= data.len() as u64, "{e}");
    }
});
