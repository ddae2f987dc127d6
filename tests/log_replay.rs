//! The write log is deterministic: replaying it into an empty engine reproduces the dataset,
//! expiry times included, after a long concurrent random workload with blocking pops,
//! transactions, short TTLs and the active expiry sweep running.

mod common;

use common::gen::Gen;
use shoal::log::Offset;
use shoal::resp::Protocol;
use shoal::{Client, Config, Engine, Node};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const THREADS: u64 = 4;
const STEPS_PER_THREAD: usize = 4000;

fn workload(engine: &Engine, seed: u64) {
    let mut gen = Gen::new(seed);
    gen.short_ttls = true;
    let mut client = Client::new(Protocol::Resp2);
    for _ in 0..STEPS_PER_THREAD {
        let (args, _) = gen.command();
        let argv: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        engine.execute_waiting(&mut client, &argv);
    }
    if gen.in_multi {
        engine.execute_waiting(&mut client, &[b"DISCARD"]);
    }
}

#[test]
fn replaying_the_log_reproduces_the_dataset() {
    // A small pin bound makes writers wait for the log reader now and then (back-pressure).
    let mut config = Config::new().hz(100);
    config.log_pinned_bytes_max = 256 * 1024;
    let node = Node::open(config).expect("open");
    let engine = node.engine().clone();
    let mut reader = engine
        .log()
        .reader(Offset(0), shoal::log::Keep::All)
        .expect("reader at the start");
    let done = Arc::new(AtomicBool::new(false));
    let drain = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            loop {
                let chunk = reader
                    .read(1 << 20, Duration::from_millis(20))
                    .expect("never lags");
                if chunk.is_empty() && done.load(Ordering::SeqCst) {
                    return (bytes, reader);
                }
                bytes.extend_from_slice(&chunk);
            }
        })
    };
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let engine = engine.clone();
            std::thread::spawn(move || workload(&engine, 1000 + t))
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    // Let the sweep delete what expired, then stop it. A pass already running finishes, so
    // take the digest only when no write landed around it.
    std::thread::sleep(Duration::from_millis(100));
    node.execute(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    let (expected, end) = loop {
        let before = engine.log().end();
        let digest = node.digest_with_expiry();
        if engine.log().end() == before {
            break (digest, before);
        }
    };
    done.store(true, Ordering::SeqCst);
    let (mut bytes, mut reader) = drain.join().expect("drain");
    while reader.position() < end {
        bytes.extend_from_slice(
            &reader
                .read(1 << 20, Duration::from_millis(20))
                .expect("never lags"),
        );
    }
    assert_eq!(bytes.len() as u64, end.0);
    assert!(
        end.0 > 50_000,
        "the workload wrote only {} log bytes",
        end.0
    );
    assert!(
        String::from_utf8_lossy(&bytes).contains("$3\r\nDEL\r\n"),
        "expiry produced DELs"
    );

    let replica = Node::open(Config::new().active_expire(false)).expect("open replica");
    replica.engine().set_passive_expiry(true);
    let mut client = Client::new(Protocol::Resp2);
    let applied = replica.engine().apply_stream(&mut client, &bytes);
    assert!(applied.malformed.is_none(), "{:?}", applied.malformed);
    assert_eq!(applied.consumed, bytes.len());
    assert_eq!(
        applied.errors, 0,
        "a logged command failed on replay: {:?}",
        applied.first_error
    );
    assert!(
        String::from_utf8_lossy(&bytes).contains("$5\r\nMULTI\r\n"),
        "transactions reached the log"
    );
    let replayed = replica.digest_with_expiry();
    assert_eq!(replayed, expected);
    assert_ne!(expected, "0".repeat(40), "the dataset is not empty");
}
