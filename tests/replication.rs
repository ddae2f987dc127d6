//! Replication over QUIC between real nodes on loopback: full and partial resyncs, chains,
//! promotion, WAIT, authentication. Every check compares dataset digests and offsets.

mod common;

use shoal::{Config, Node, Reply};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A node whose QUIC endpoint listens on an ephemeral loopback port.
fn open(config: Config) -> Node {
    Node::open(config.bus_addr(loopback())).expect("open")
}

fn info_field(node: &Node, section: &str, name: &str) -> String {
    let (Reply::Bulk(text) | Reply::Verbatim(text)) = node.execute(&["INFO", section]) else {
        panic!("INFO");
    };
    let text = String::from_utf8_lossy(&text).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")).map(str::to_string))
        .unwrap_or_else(|| panic!("no {name} in INFO {section}:\n{text}"))
}

fn offset(node: &Node) -> u64 {
    info_field(node, "replication", "master_repl_offset")
        .parse()
        .unwrap()
}

/// Waits until `replica` has everything `primary` has: same offset, same digest.
fn wait_caught_up(primary: &Node, replica: &Node) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if offset(primary) == offset(replica) && primary.digest() == replica.digest() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replica not caught up: offsets {} / {}, link {}",
            offset(primary),
            offset(replica),
            info_field(replica, "replication", "master_link_status")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write_round(node: &Node, round: usize) {
    let mut s = node.session();
    for i in 0..300 {
        s.execute(&["SET", &format!("k:{round}:{i}"), &format!("v{i}")]);
        s.execute(&["RPUSH", &format!("l:{}", i % 5), &i.to_string()]);
        s.execute(&["HSET", "h", &format!("f{i}"), &round.to_string()]);
    }
    s.execute(&["EXPIRE", &format!("k:{round}:0"), "1000"]);
    s.execute(&["SELECT", "3"]);
    s.execute(&["ZADD", "z", &round.to_string(), &format!("m{round}")]);
    s.execute(&["SELECT", "0"]);
    s.execute(&["MULTI"]);
    s.execute(&["INCR", "counter"]);
    s.execute(&["SADD", "s", &round.to_string()]);
    s.execute(&["EXEC"]);
}

#[test]
fn replica_follows_full_then_live_and_refuses_writes() {
    let primary = open(Config::new());
    write_round(&primary, 0);
    let replica = open(Config::new());
    replica
        .replicate_from(primary.replication_addr().unwrap())
        .unwrap();
    wait_caught_up(&primary, &replica);
    assert_eq!(info_field(&replica, "replication", "role"), "slave");
    assert_eq!(
        info_field(&replica, "replication", "master_link_status"),
        "up"
    );
    assert_eq!(info_field(&primary, "replication", "connected_slaves"), "1");
    assert_eq!(info_field(&primary, "stats", "sync_full"), "1");
    write_round(&primary, 1);
    wait_caught_up(&primary, &replica);
    assert_eq!(
        replica.execute(&["SET", "x", "1"]),
        Reply::error("READONLY You can't write against a read only replica.")
    );
    // WAIT counts the replica once it acknowledged the write.
    let mut session = primary.session();
    session.execute(&["SET", "waited", "1"]);
    assert_eq!(session.execute(&["WAIT", "1", "5000"]), Reply::Int(1));
    assert_eq!(session.execute(&["WAIT", "2", "100"]), Reply::Int(1));
}
