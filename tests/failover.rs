//! Failover with real shoal-server processes: a 6-node cluster (3 masters, 3 replicas) made by
//! `redis-cli --cluster create`, with a node timeout of 1 s. A master is killed with -9 under
//! a writer that waits for its replica (WAIT 1), killed together with its replica, cut off
//! from the others by DEBUG CLUSTER-PARTITION, and handed over by CLUSTER FAILOVER.

mod common;

use common::cluster::{call, cluster_with, nodes, redis_cli, text, wait_until, ARGS};
use common::{RespConn, ShoalServer, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The cluster tests' flags with a 1 s node timeout.
fn args() -> Vec<&'static str> {
    let mut args = ARGS.to_vec();
    let timeout = args.len() - 1;
    args[timeout] = "1000";
    args
}

/// A 6-node cluster with a replica per master.
fn six() -> Vec<ShoalServer> {
    cluster_with(&args(), 6, 6, &["--cluster-replicas", "1"]).0
}

/// `call`, or `None` when the node does not answer.
fn try_call(port: u16, args: &[&str]) -> Option<String> {
    let mut conn = RespConn::connect(port).ok()?;
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    conn.send(&args);
    conn.try_read().ok().map(common::cluster::text)
}

/// (role, master port) from INFO replication.
fn role(port: u16) -> (String, Option<u16>) {
    let info = try_call(port, &["INFO", "replication"]).unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    let master_port = field("master_port:").and_then(|p| p.parse().ok());
    (field("role:").unwrap_or_default(), master_port)
}

fn is_replica_of(port: u16, master: u16) -> bool {
    role(port) == ("slave".into(), Some(master))
        && try_call(port, &["INFO", "replication"])
            .is_some_and(|i| i.contains("master_link_status:up"))
}

/// The server index of the master serving `key`, and of its replica.
fn shard_of(servers: &[ShoalServer], key: &str) -> (usize, usize) {
    let slot: u16 = call(servers[0].port, &["CLUSTER", "KEYSLOT", key])
        .parse()
        .unwrap();
    let view = nodes(servers[0].port);
    let serves = |slots: &str| {
        slots.split(' ').any(|r| {
            let (lo, hi) = r.split_once('-').unwrap_or((r, r));
            matches!((lo.parse::<u16>(), hi.parse::<u16>()), (Ok(lo), Ok(hi)) if lo <= slot && slot <= hi)
        })
    };
    let master = view
        .iter()
        .find(|n| serves(&n.4))
        .expect("the slot is served");
    let mut replica = None;
    wait_until("the master's replica is known", || {
        replica = nodes(servers[0].port).into_iter().find(|n| n.3 == master.0);
        replica.is_some()
    });
    let index = |port: u16| servers.iter().position(|s| s.port == port).unwrap();
    (index(master.1), index(replica.unwrap().1))
}

/// [`shard_of`] once the replica is linked: indexes and ports of master and replica.
fn linked_shard(servers: &[ShoalServer], key: &str) -> (usize, usize, u16, u16) {
    let (m, r) = shard_of(servers, key);
    let (m_port, r_port) = (servers[m].port, servers[r].port);
    wait_until("the replica is linked", || is_replica_of(r_port, m_port));
    // Its master counts it (it may stand for election once told, which the master does at
    // once): a write is acknowledged by it. The key shares `key`'s slot.
    let mut client = RespConn::connect(m_port).unwrap();
    let probe = format!("{{{key}}}:linked");
    wait_until("the master counts its replica", || {
        client.call(&[b"SET", probe.as_bytes(), b"1"]);
        text(client.call(&[b"WAIT", b"1", b"100"])) == "1"
    });
    (m, r, m_port, r_port)
}

fn cluster_ok(port: u16) -> bool {
    try_call(port, &["CLUSTER", "INFO"]).is_some_and(|i| i.contains("cluster_state:ok"))
}

/// The list `key` on the node at `port` (a replica too), as numbers; `None` while the node
/// refuses (a restarted node is CLUSTERDOWN until it rejoined).
fn try_list(port: u16, key: &str) -> Option<Vec<u64>> {
    let mut conn = RespConn::connect(port).ok()?;
    conn.call(&[b"READONLY"]);
    match conn.call(&[b"LRANGE", key.as_bytes(), b"0", b"-1"]) {
        Value::Array(items) => Some(
            items
                .into_iter()
                .map(|v| common::cluster::text(v).parse().unwrap())
                .collect(),
        ),
        _ => None,
    }
}

fn list(port: u16, key: &str) -> Vec<u64> {
    try_list(port, key).unwrap_or_else(|| {
        let reply = try_call(port, &["LRANGE", key, "0", "-1"]);
        let view = try_call(port, &["CLUSTER", "NODES"]);
        panic!("LRANGE on {port}: {reply:?}\n{}", view.unwrap_or_default())
    })
}

/// RPUSHes 1, 2, ... to `key` on `port` until stopped or the node goes away; with `wait`,
/// each followed by WAIT 1 200, and only those the replica acknowledged count. Redirects
/// are followed. Returns the acknowledged values.
fn writer(port: u16, key: &'static str, wait: bool, stop: Arc<AtomicBool>) -> Vec<u64> {
    let mut acked = Vec::new();
    let mut port = port;
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut conn) = RespConn::connect(port) else {
            return acked;
        };
        loop {
            if stop.load(Ordering::Relaxed) {
                return acked;
            }
            seq += 1;
            conn.send(&[b"RPUSH", key.as_bytes(), seq.to_string().as_bytes()]);
            match conn.try_read() {
                Ok(Value::Int(_)) => {}
                Ok(Value::Error(e)) if e.starts_with("MOVED") => {
                    port = e.rsplit(':').next().unwrap().parse().unwrap();
                    break;
                }
                Ok(_) => continue,
                Err(_) => return acked,
            }
            if !wait {
                acked.push(seq);
                continue;
            }
            conn.send(&[b"WAIT", b"1", b"200"]);
            match conn.try_read() {
                Ok(Value::Int(n)) if n >= 1 => acked.push(seq),
                Ok(_) => {}
                Err(_) => return acked,
            }
        }
    }
    acked
}

fn spawn_writer(
    port: u16,
    key: &'static str,
    wait: bool,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<Vec<u64>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    (
        stop,
        std::thread::spawn(move || writer(port, key, wait, flag)),
    )
}

/// Every value in `acked` is in `present`.
fn assert_kept(acked: &[u64], present: &[u64]) {
    let present: std::collections::HashSet<u64> = present.iter().copied().collect();
    let lost: Vec<&u64> = acked.iter().filter(|v| !present.contains(v)).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
}

#[test]
fn a_killed_master_is_replaced_by_its_replica_and_rejoins_as_its_replica() {
    let mut servers = six();
    let key = "failover:list";
    let (m, _, m_port, r_port) = linked_shard(&servers, key);

    let (stop, handle) = spawn_writer(m_port, key, true);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let killed = Instant::now();
    servers[m].kill();
    let acked = handle.join().unwrap();
    assert!(acked.len() > 10, "the writer wrote: {}", acked.len());

    wait_until("the replica is promoted", || role(r_port).0 == "master");
    let promoted_ms = killed.elapsed().as_millis();
    // Node timeout + 1 s at most, as the issue asks (the benchmark measures the median).
    assert!(promoted_ms < 2_000, "promoted after {promoted_ms} ms");
    assert_kept(&acked, &list(r_port, key));
    let others: Vec<u16> = servers
        .iter()
        .filter(|s| s.port != m_port)
        .map(|s| s.port)
        .collect();
    wait_until("the cluster is ok again", || {
        others.iter().all(|p| cluster_ok(*p))
    });
    assert_eq!(
        call(r_port, &["RPUSH", key, "0"]),
        (acked.len() + 1).max(list(r_port, key).len()).to_string()
    );

    // The old master comes back from its nodes.conf and follows its replacement.
    servers[m].start_again(&args());
    wait_until("the old master follows the new one", || {
        is_replica_of(m_port, r_port)
    });
    wait_until("it has the new master's data", || {
        try_list(m_port, key) == Some(list(r_port, key))
    });
    stop.store(true, Ordering::Relaxed);
    let check = redis_cli(&["--cluster", "check", &format!("127.0.0.1:{r_port}")]);
    assert!(check.contains("[OK] All 16384 slots covered."), "{check}");
    assert!(!check.contains("[ERR]"), "{check}");
}

#[test]
fn a_shard_without_any_node_takes_the_cluster_down_until_it_returns() {
    let mut flags = args();
    flags.extend(["--appendonly", "yes"]);
    let (mut servers, _) = cluster_with(&flags, 6, 6, &["--cluster-replicas", "1"]);
    let key = "kept";
    let (m, r, m_port, r_port) = linked_shard(&servers, key);
    assert_eq!(call(m_port, &["SET", key, "v"]), "OK");
    assert_eq!(call(m_port, &["WAIT", "1", "1000"]), "1");
    // The AOF is fsynced every second.
    std::thread::sleep(std::time::Duration::from_millis(1_200));
    servers[m].kill();
    servers[r].kill();

    let other = servers
        .iter()
        .find(|s| s.port != m_port && s.port != r_port)
        .unwrap()
        .port;
    wait_until("the cluster is down", || {
        try_call(other, &["CLUSTER", "INFO"]).is_some_and(|i| i.contains("cluster_state:fail"))
    });
    let reply = try_call(other, &["GET", "any"]).unwrap();
    assert_eq!(reply, "CLUSTERDOWN The cluster is down");

    servers[m].start_again(&flags);
    servers[r].start_again(&flags);
    wait_until("the cluster is ok again", || {
        servers.iter().all(|s| cluster_ok(s.port))
    });
    assert_eq!(call(m_port, &["GET", key]), "v");
    assert_eq!(role(m_port).0, "master");
    wait_until("the replica follows its master again", || {
        is_replica_of(r_port, m_port)
    });
}

#[test]
fn a_master_cut_off_from_the_majority_stops_writes_before_it_is_replaced() {
    let servers = six();
    let key = "fenced";
    let (_, _, m_port, r_port) = linked_shard(&servers, key);
    let id = |port: u16| call(port, &["CLUSTER", "MYID"]);
    let m_id = id(m_port);
    let others: Vec<String> = servers
        .iter()
        .filter(|s| s.port != m_port)
        .map(|s| id(s.port))
        .collect();
    let mut cut = vec!["DEBUG", "CLUSTER-PARTITION"];
    cut.extend(others.iter().map(String::as_str));
    assert_eq!(call(m_port, &cut), "OK");
    for s in servers.iter().filter(|s| s.port != m_port) {
        assert_eq!(call(s.port, &["DEBUG", "CLUSTER-PARTITION", &m_id]), "OK");
    }

    // The old master refuses writes before the replica serves them: never two at once.
    let (mut refused, mut promoted) = (None, None);
    let start = Instant::now();
    wait_until(
        "the master refuses writes and its replica takes over",
        || {
            if refused.is_none() && call(m_port, &["SET", key, "x"]).starts_with("CLUSTERDOWN") {
                refused = Some(start.elapsed());
            }
            if promoted.is_none() && role(r_port).0 == "master" {
                promoted = Some(start.elapsed());
            }
            refused.is_some() && promoted.is_some()
        },
    );
    assert!(
        refused < promoted,
        "refused {refused:?}, promoted {promoted:?}"
    );

    for s in &servers {
        assert_eq!(call(s.port, &["DEBUG", "CLUSTER-PARTITION"]), "OK");
    }
    wait_until("the old master follows its replacement", || {
        is_replica_of(m_port, r_port)
    });
    wait_until("the cluster is ok everywhere", || {
        servers.iter().all(|s| cluster_ok(s.port))
    });
}

#[test]
fn cluster_failover_hands_over_without_losing_a_write() {
    let servers = six();
    let key = "manual";
    let (_, _, m_port, r_port) = linked_shard(&servers, key);
    assert_eq!(
        call(m_port, &["CLUSTER", "FAILOVER"]),
        "ERR You should send CLUSTER FAILOVER to a replica"
    );
    assert_eq!(
        call(r_port, &["CLUSTER", "FAILOVER", "NOW"]),
        "ERR syntax error"
    );

    // Default: the master pauses, the replica catches up and wins an election.
    let (stop, handle) = spawn_writer(m_port, key, false);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(call(r_port, &["CLUSTER", "FAILOVER"]), "OK");
    wait_until("the replica is master", || role(r_port).0 == "master");
    wait_until("the old master follows it", || {
        is_replica_of(m_port, r_port)
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let acked = handle.join().unwrap();
    assert!(acked.len() > 10, "the writer wrote: {}", acked.len());
    assert_kept(&acked, &list(r_port, key));
    // The old master may answer CLUSTERDOWN for a moment: the masters that voted for its
    // replacement do not count it as live until they see it follow.
    wait_until("both hold the same list", || {
        try_list(m_port, key) == Some(list(r_port, key))
    });

    // FORCE and TAKEOVER move the shard back and forth.
    assert_eq!(call(m_port, &["CLUSTER", "FAILOVER", "FORCE"]), "OK");
    wait_until("FORCE promoted the old master", || {
        role(m_port).0 == "master" && is_replica_of(r_port, m_port)
    });
    assert_eq!(call(r_port, &["CLUSTER", "FAILOVER", "TAKEOVER"]), "OK");
    wait_until("TAKEOVER promoted the replica", || {
        role(r_port).0 == "master" && is_replica_of(m_port, r_port)
    });
    wait_until("every node agrees", || {
        servers.iter().all(|s| cluster_ok(s.port))
    });
    let check = redis_cli(&["--cluster", "check", &format!("127.0.0.1:{r_port}")]);
    assert!(
        check.contains("[OK] All nodes agree about slots configuration."),
        "{check}"
    );
}

#[test]
fn a_master_left_without_replicas_gets_one_from_a_master_with_two() {
    let (mut servers, addrs) = cluster_with(&args(), 7, 6, &["--cluster-replicas", "1"]);
    // The seventh node becomes a second replica of the first key's master.
    let (rich, rich_replica) = shard_of(&servers, "a");
    let rich_id = call(servers[rich].port, &["CLUSTER", "MYID"]);
    let out = redis_cli(&[
        "--cluster",
        "add-node",
        &addrs[6],
        &addrs[0],
        "--cluster-slave",
        "--cluster-master-id",
        &rich_id,
    ]);
    assert!(out.contains("[OK] New node added correctly."), "{out}");
    let (rich_port, extra_port) = (servers[rich].port, servers[6].port);
    wait_until("the master has two replicas", || {
        is_replica_of(extra_port, rich_port) && is_replica_of(servers[rich_replica].port, rich_port)
    });
    // A write to the shard's majority: both replicas count for WAIT once each knows the
    // other (cluster/state/shard.rs), a bus round trip later.
    let mut client = RespConn::connect(rich_port).unwrap();
    wait_until("WAIT counts both replicas", || {
        client.call(&[b"SET", b"a", b"1"]);
        text(client.call(&[b"WAIT", b"2", b"200"])) == "2"
    });
    // Another master loses its only replica.
    let poor = (0..6)
        .map(|i| shard_of(&servers, ["b", "c", "d", "e", "f", "g"][i]))
        .find(|(m, _)| *m != rich)
        .expect("another shard");
    let poor_port = servers[poor.0].port;
    servers[poor.1].kill();
    // One of the rich master's replicas (the smaller ID) moves to it.
    wait_until("the orphaned master gets a replica", || {
        [extra_port, servers[rich_replica].port]
            .iter()
            .any(|p| is_replica_of(*p, poor_port))
    });
    assert!(
        is_replica_of(extra_port, rich_port)
            || is_replica_of(servers[rich_replica].port, rich_port),
        "the rich master kept one replica"
    );
}
