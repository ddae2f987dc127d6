//! AOF replay on arbitrary bytes: start-up applies an incr file's commands to the engine as a
//! replaying client, so any byte sequence a damaged file holds must be applied or refused
//! without a panic. Commands that touch files or the process are renamed away.
//!
//! Run with `cargo +nightly fuzz run aof_replay` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal::resp::Protocol;
use shoal::{Client, Config, Node};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

fn node() -> &'static Node {
    static NODE: OnceLock<Node> = OnceLock::new();
    NODE.get_or_init(|| {
        let mut config = Config::new();
        let removed = ["save", "bgsave", "bgrewriteaof", "shutdown", "config", "debug"]
            .map(|c| format!("rename-command {c} \"\"\n"))
            .concat();
        // Two databases keep FLUSHALL (every slot of every database used) cheap.
        let text = format!("{removed}databases 2\n");
        shoal::config::file::apply_text(&mut config, &text).expect("renames");
        Node::open(config).expect("open")
    })
}

fuzz_target!(|data: &[u8]| {
    let engine = node().engine();
    let mut client = Client::new(Protocol::Resp2);
    let applied = engine.apply_stream(&mut client, data);
    assert!(applied.consumed <= data.len());
    engine.execute_waiting(&mut client, &[b"DISCARD"]);
    // Counting and flushing cost a pass over every slot: now and then, once the data grew.
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let checked = RUNS.fetch_add(1, Ordering::Relaxed) % 1024 == 0;
    if checked && engine.dbsize(0) + engine.dbsize(1) > 10_000 {
        engine.execute_waiting(&mut client, &[b"FLUSHALL"]);
    }
});
