//! Expiry: lazy on access, the active sweep, what is logged, and passive (replica) mode.

use shoal::log::Offset;
use shoal::{Config, ManualClock, Node, Reply};
use std::sync::Arc;
use std::time::{Duration, Instant};

const T0: u64 = 1_700_000_000_000;

fn manual_node(active: bool) -> (Node, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let node = Node::open(Config::new().clock(clock.clone()).active_expire(active)).expect("open");
    (node, clock)
}

fn log_text(node: &Node) -> String {
    let mut reader = node
        .engine()
        .log()
        .reader(Offset(0), shoal::log::Keep::Retained)
        .expect("log start retained");
    let mut bytes = Vec::new();
    loop {
        let chunk = reader.read(1 << 20, Duration::ZERO).expect("read");
        if chunk.is_empty() {
            return String::from_utf8_lossy(&bytes).into_owned();
        }
        bytes.extend_from_slice(&chunk);
    }
}

#[test]
fn a_key_expires_strictly_after_its_deadline_and_lazily_logs_a_del() {
    let (node, clock) = manual_node(false);
    node.execute(&["SET", "k", "v", "PX", "100"]);
    assert_eq!(node.ttl("k").unwrap(), Some(Duration::from_millis(100)));
    clock.advance(100);
    assert_eq!(
        node.get("k").unwrap().as_deref(),
        Some(&b"v"[..]),
        "not yet: at the deadline"
    );
    clock.advance(1);
    assert_eq!(
        node.dbsize_via_command(),
        1,
        "DBSIZE still counts it, as Redis does"
    );
    assert_eq!(node.get("k").unwrap(), None);
    assert_eq!(node.dbsize_via_command(), 0, "the read deleted it");
    let log = log_text(&node);
    assert!(
        log.contains(&format!("PXAT\r\n$13\r\n{}", T0 + 100)),
        "SET PX logged as PXAT: {log:?}"
    );
    assert!(log.ends_with("*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n"), "{log:?}");
}

trait DbSize {
    fn dbsize_via_command(&self) -> i64;
}

impl DbSize for Node {
    fn dbsize_via_command(&self) -> i64 {
        match self.execute(&["DBSIZE"]) {
            Reply::Int(n) => n,
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn relative_expiry_is_logged_as_absolute() {
    let (node, _clock) = manual_node(false);
    node.set("a", "1").unwrap();
    node.execute(&["EXPIRE", "a", "10", "NX"]);
    node.execute(&["SETEX", "b", "5", "x"]);
    node.execute(&["GETEX", "b", "PX", "7"]);
    node.execute(&["INCRBYFLOAT", "c", "0.1"]);
    let log = log_text(&node);
    assert!(
        log.contains(&format!(
            "PEXPIREAT\r\n$1\r\na\r\n$13\r\n{}\r\n$2\r\nNX",
            T0 + 10_000
        )),
        "{log:?}"
    );
    assert!(
        log.contains(&format!(
            "SET\r\n$1\r\nb\r\n$1\r\nx\r\n$4\r\nPXAT\r\n$13\r\n{}",
            T0 + 5_000
        )),
        "{log:?}"
    );
    assert!(
        log.contains(&format!("PEXPIREAT\r\n$1\r\nb\r\n$13\r\n{}", T0 + 7)),
        "{log:?}"
    );
    assert!(
        log.contains("SET\r\n$1\r\nc\r\n$3\r\n0.1\r\n$7\r\nKEEPTTL"),
        "{log:?}"
    );
    // An expiry in the past deletes at once, logged as DEL.
    node.execute(&["EXPIRE", "a", "-1"]);
    assert!(log_text(&node).ends_with("*2\r\n$3\r\nDEL\r\n$1\r\na\r\n"));
}

#[test]
fn the_sweep_reclaims_keys_nobody_reads() {
    let (node, clock) = manual_node(true);
    for i in 0..10_000 {
        node.execute(&["SET", &format!("key:{i}"), "v", "PX", "1000"]);
    }
    node.set("forever", "v").unwrap();
    assert_eq!(node.engine().expiry_stats(0), (10_000, 0));
    clock.advance(1001);
    assert_eq!(node.engine().expiry_stats(0), (10_000, 10_000));
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.dbsize_via_command() > 1 {
        assert!(
            Instant::now() < deadline,
            "the sweep did not reclaim the keys"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(node.exists(&["forever"]).unwrap(), 1);
    assert_eq!(log_text(&node).matches("$3\r\nDEL\r\n").count(), 10_000);
}

#[test]
fn logically_expired_keys_stay_a_small_fraction_under_load() {
    let node = Node::open(Config::new()).expect("open");
    let writer = {
        let node = node.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut i = 0u64;
            while started.elapsed() < Duration::from_secs(2) {
                let ttl = 50 + (i * 7919) % 450;
                node.execute(&[
                    "SET",
                    &format!("k{}", i % 50_000),
                    "v",
                    "PX",
                    &ttl.to_string(),
                ]);
                i += 1;
            }
        })
    };
    let mut worst = 0.0f64;
    std::thread::sleep(Duration::from_millis(600));
    while !writer.is_finished() {
        let (volatile, expired) = node.engine().expiry_stats(0);
        if volatile > 1000 {
            worst = worst.max(expired as f64 / volatile as f64);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    writer.join().unwrap();
    assert!(
        worst < 0.03,
        "up to {:.1}% of keys were logically expired",
        worst * 100.0
    );
}

#[test]
fn passive_mode_hides_expired_keys_without_deleting_them() {
    let (node, clock) = manual_node(true);
    node.engine().set_passive_expiry(true);
    node.execute(&["SET", "k", "v", "PX", "10"]);
    clock.advance(20);
    assert_eq!(node.get("k").unwrap(), None, "reads see it as missing");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        node.dbsize_via_command(),
        1,
        "but neither the read nor the sweep deleted it"
    );
    assert!(!log_text(&node).contains("DEL"));
}
