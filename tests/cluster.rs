//! Cluster mode with real shoal-server processes and the real redis-cli: a 6-node cluster
//! made by `redis-cli --cluster create`, written through the `redis` crate's cluster
//! client, resharded while a writer goes on, checked by `redis-cli --cluster check`, and a
//! node restarted from its nodes.conf.

mod common;

use common::cluster::{call, cluster, nodes, redis_cli, text, wait_until, ARGS};
use common::{RespConn, Value};
use redis::Commands;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Keys written through the cluster client before the reshard.
const KEYS: u64 = 100_000;

/// redis-py's RedisCluster writing `py:<n>` = n until the file named by its second argument
/// exists; it prints how many it wrote, and fails on any error that reaches it.
const PY_WRITER: &str = r#"
import os, sys
from redis.cluster import RedisCluster
rc = RedisCluster(host="127.0.0.1", port=int(sys.argv[1]))
n = 0
while not os.path.exists(sys.argv[2]):
    rc.set(f"py:{n}", n)
    n += 1
print(n)
"#;

/// Sets `key:<i>` = i for every i, pipelined (the cluster pipeline splits by node).
fn write_keys(conn: &mut redis::cluster::ClusterConnection, range: std::ops::Range<u64>) {
    let keys: Vec<u64> = range.collect();
    for chunk in keys.chunks(1000) {
        let mut pipe = redis::cluster::cluster_pipe();
        for i in chunk {
            pipe.set(format!("key:{i}"), i).ignore();
        }
        pipe.query::<()>(conn).unwrap();
    }
}

/// Every `key:<i>` holds i.
fn check_keys(conn: &mut redis::cluster::ClusterConnection, range: std::ops::Range<u64>) {
    let keys: Vec<u64> = range.collect();
    for chunk in keys.chunks(1000) {
        let mut pipe = redis::cluster::cluster_pipe();
        for i in chunk {
            pipe.get(format!("key:{i}"));
        }
        let values: Vec<u64> = pipe.query(conn).unwrap();
        assert_eq!(values, chunk);
    }
}

#[test]
fn redis_cli_creates_reshards_and_checks_a_cluster() {
    let (mut servers, addrs) = cluster(6, 6, &["--cluster-replicas", "1"]);
    let port = servers[0].port;
    wait_until("every node sees 6 nodes and cluster_state:ok", || {
        servers.iter().all(|s| {
            let info = call(s.port, &["CLUSTER", "INFO"]);
            info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:6")
        })
    });

    let client = redis::cluster::ClusterClient::new(vec![format!("redis://{}", addrs[0])]).unwrap();
    let mut conn = client.get_connection().unwrap();
    write_keys(&mut conn, 0..KEYS);

    // Two writers go on while 1000 slots move from the first master to the second: the
    // redis crate's cluster client and redis-py's RedisCluster.
    let stop_file = std::env::temp_dir().join(format!("shoal-cluster-stop-{}", port));
    let _ = std::fs::remove_file(&stop_file);
    let python = Command::new("python3")
        .args(["-c", PY_WRITER, &port.to_string()])
        .arg(&stop_file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (client, stop) = (client.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut conn = client.get_connection().unwrap();
            let mut written = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let _: () = conn
                    .set(format!("w:{written}"), written)
                    .expect("a write during the reshard");
                written += 1;
            }
            written
        })
    };
    let from = call(servers[0].port, &["CLUSTER", "MYID"]);
    let to = call(servers[1].port, &["CLUSTER", "MYID"]);
    let out = redis_cli(&[
        "--cluster",
        "reshard",
        &addrs[0],
        "--cluster-from",
        &from,
        "--cluster-to",
        &to,
        "--cluster-slots",
        "1000",
        "--cluster-yes",
    ]);
    assert!(out.contains("Moving slot 999 from"), "{out}");
    stop.store(true, Ordering::SeqCst);
    std::fs::write(&stop_file, b"").unwrap();
    let written = writer.join().unwrap();
    assert!(written > 0);
    let python = python.wait_with_output().unwrap();
    assert!(
        python.status.success(),
        "{}",
        String::from_utf8_lossy(&python.stderr)
    );
    let py_written: u64 = String::from_utf8_lossy(&python.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(py_written > 0);

    // Replicas learn the new owners by gossip, a moment later.
    let mut check = String::new();
    wait_until("every node agrees about the slots", || {
        check = redis_cli(&["--cluster", "check", &addrs[2]]);
        check.contains("[OK] All nodes agree about slots configuration.")
    });
    assert!(check.contains("[OK] All 16384 slots covered."), "{check}");
    assert!(!check.contains("[WARNING]"), "{check}");
    let second = nodes(servers[1].port);
    let mine = second.iter().find(|n| n.2.contains("myself")).unwrap();
    assert!(mine.4.starts_with("0-999 "), "{mine:?}");

    // A new connection: the redis crate's cluster pipeline reports MOVED instead of
    // following it, and the old connection's slot map predates the reshard.
    let mut conn = client.get_connection().unwrap();
    check_keys(&mut conn, 0..KEYS);
    for i in 0..written {
        let v: u64 = conn.get(format!("w:{i}")).unwrap();
        assert_eq!(v, i);
    }
    for i in 0..py_written {
        let v: u64 = conn.get(format!("py:{i}")).unwrap();
        assert_eq!(v, i);
    }

    // Every master's replica holds what it holds.
    let view = nodes(port);
    for (id, primary_port, flags, _, _) in view.iter().filter(|n| n.2.contains("master")) {
        let replica = view
            .iter()
            .find(|n| &n.3 == id)
            .unwrap_or_else(|| panic!("{id} ({flags}) has no replica: {view:?}"));
        wait_until("a replica's digest equals its master's", || {
            call(*primary_port, &["DEBUG", "DIGEST"]) == call(replica.1, &["DEBUG", "DIGEST"])
        });
    }

    // A restarted master comes back from nodes.conf with its ID, its slots and its peers.
    // It saves first: without persistence it would come back empty, as Redis would.
    let before = nodes(servers[1].port);
    assert_eq!(call(servers[1].port, &["SAVE"]), "OK");
    servers[1].restart(&ARGS);
    let after = nodes(servers[1].port);
    let me = |v: &[(String, u16, String, String, String)]| {
        v.iter().find(|n| n.2.contains("myself")).cloned().unwrap()
    };
    assert_eq!(me(&after).0, me(&before).0);
    assert_eq!(me(&after).4, me(&before).4);
    assert_eq!(after.len(), 6);
    wait_until("the restarted node's cluster is ok", || {
        call(servers[1].port, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
    });
    // Its old connection went with the restart (the pipeline does not reconnect).
    let mut conn = client.get_connection().unwrap();
    check_keys(&mut conn, 0..KEYS);

    // A restarted replica comes back as the replica it was, and follows its master again.
    let view = nodes(port);
    let (_, replica_port, _, master_id, _) = view
        .iter()
        .find(|n| n.2.contains("slave"))
        .cloned()
        .unwrap();
    let master_port = view.iter().find(|n| n.0 == master_id).unwrap().1;
    let replica = servers.iter_mut().find(|s| s.port == replica_port).unwrap();
    replica.restart(&ARGS);
    let me = nodes(replica_port);
    assert!(
        me.iter()
            .any(|n| n.2.contains("myself,slave") && n.3 == master_id),
        "{me:?}"
    );
    let key = (0..)
        .map(|i| format!("after:{i}"))
        .find(|k| call(master_port, &["SET", k, "1"]) == "OK")
        .unwrap();
    wait_until("the restarted replica follows its master", || {
        call(replica_port, &["INFO", "replication"]).contains("master_link_status:up")
            && call(master_port, &["DEBUG", "DIGEST"]) == call(replica_port, &["DEBUG", "DIGEST"])
    });
    let mut readonly = RespConn::connect(replica_port).unwrap();
    assert_eq!(text(readonly.call(&[b"READONLY"])), "OK");
    assert_eq!(text(readonly.call(&[b"GET", key.as_bytes()])), "1");
}

/// The other redis-cli workflows: add-node (also as a replica), fix of an open slot, a
/// rebalance that empties a master, del-node; every key stays readable.
#[test]
fn redis_cli_adds_rebalances_fixes_and_removes_nodes() {
    let (servers, addrs) = cluster(5, 3, &[]);
    let id = |i: usize| call(servers[i].port, &["CLUSTER", "MYID"]);
    let client = redis::cluster::ClusterClient::new(vec![format!("redis://{}", addrs[0])]).unwrap();
    let mut conn = client.get_connection().unwrap();
    write_keys(&mut conn, 0..1_000);
    let agreed = |what: &str| {
        let mut check = String::new();
        wait_until(what, || {
            check = redis_cli(&["--cluster", "check", &addrs[0]]);
            check.contains("[OK] All nodes agree about slots configuration.")
        });
        assert!(check.contains("[OK] All 16384 slots covered."), "{check}");
        assert!(!check.contains("[WARNING]"), "{check}");
        check
    };

    let out = redis_cli(&["--cluster", "add-node", &addrs[3], &addrs[0]]);
    assert!(out.contains("[OK] New node added correctly."), "{out}");
    wait_until("the new master is known everywhere", || {
        servers[..4].iter().all(|s| {
            let view = nodes(s.port);
            view.len() == 4 && view.iter().all(|n| !n.2.contains("handshake"))
        })
    });
    agreed("the new master's slots are known everywhere");
    let master = id(3);
    let out = redis_cli(&[
        "--cluster",
        "add-node",
        &addrs[4],
        &addrs[0],
        "--cluster-slave",
        "--cluster-master-id",
        &master,
    ]);
    assert!(out.contains("[OK] New node added correctly."), "{out}");
    wait_until("the replica replicates the new master", || {
        nodes(servers[0].port).iter().any(|n| n.3 == master)
    });
    agreed("the replica is known everywhere");
    let out = redis_cli(&[
        "--cluster",
        "reshard",
        &addrs[0],
        "--cluster-from",
        &id(0),
        "--cluster-to",
        &master,
        "--cluster-slots",
        "100",
        "--cluster-yes",
    ]);
    assert!(out.contains("Moving slot 99 from"), "{out}");
    agreed("the reshard is known everywhere");

    // An open slot, closed by fix.
    assert_eq!(
        call(
            servers[1].port,
            &["CLUSTER", "SETSLOT", "6000", "MIGRATING", &id(2)]
        ),
        "OK"
    );
    let check = redis_cli(&["--cluster", "check", &addrs[0]]);
    assert!(
        check.contains("The following slots are open: 6000"),
        "{check}"
    );
    let out = redis_cli(&["--cluster", "fix", &addrs[0]]);
    assert!(out.contains("Fixing open slot 6000"), "{out}");
    agreed("the fixed slot is closed");

    // A weight of 0 drains the new master, which can then leave with its replica.
    let weight = format!("{master}=0");
    let out = redis_cli(&[
        "--cluster",
        "rebalance",
        &addrs[0],
        "--cluster-weight",
        &weight,
    ]);
    assert!(out.contains("Moving 100 slots from"), "{out}");
    agreed("the rebalance is known everywhere");
    // Drained, it serves nothing; it may have become a replica of a master that took its
    // last slot, and its replica with it (cluster-allow-replica-migration, as Redis 7).
    let view = nodes(servers[0].port);
    let drained = view.iter().find(|n| n.0 == master).expect("still known");
    assert_eq!(drained.4, "", "{view:?}");
    for leaving in [id(4), master] {
        let out = redis_cli(&["--cluster", "del-node", &addrs[0], &leaving]);
        assert!(out.contains("Sending CLUSTER RESET SOFT"), "{out}");
    }
    wait_until("the cluster is back to three nodes", || {
        servers[..3].iter().all(|s| nodes(s.port).len() == 3)
    });
    agreed("the three nodes agree");
    check_keys(&mut conn, 0..1_000);
}

/// `cluster-proxy-mode yes`: a client that knows nothing of clusters uses every slot through
/// one node, in RESP2 and RESP3; multi-key commands keep the CROSSSLOT rule.
#[test]
fn proxy_mode_serves_every_slot_through_one_node() {
    let (servers, _) = cluster(3, 3, &[]);
    let proxy = servers[0].port;
    let p = proxy.to_string();
    assert!(call(proxy, &["GET", "foo"]).starts_with("MOVED 12182 "));
    assert_eq!(
        call(proxy, &["CONFIG", "SET", "cluster-proxy-mode", "yes"]),
        "OK"
    );
    wait_until("the cluster is ok", || {
        call(proxy, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
    });
    // Plain redis-cli, no -c.
    assert_eq!(redis_cli(&["-p", &p, "SET", "foo", "bar"]).trim(), "OK");
    assert_eq!(redis_cli(&["-p", &p, "GET", "foo"]).trim(), "bar");
    assert_eq!(call(servers[2].port, &["GET", "foo"]), "bar");

    let mut conn = RespConn::connect(proxy).unwrap();
    for i in 0..1_000 {
        let key = format!("p:{i}");
        conn.send(&[b"SET", key.as_bytes(), i.to_string().as_bytes()]);
    }
    for _ in 0..1_000 {
        assert_eq!(text(conn.read()), "OK");
    }
    for i in 0..1_000 {
        let key = format!("p:{i}");
        assert_eq!(text(conn.call(&[b"GET", key.as_bytes()])), i.to_string());
    }
    let here: i64 = call(proxy, &["DBSIZE"]).parse().unwrap();
    assert!(here < 600, "{here} of 1000 keys on the proxy's own node");
    assert_eq!(
        text(conn.call(&[b"MSET", b"a", b"1", b"b", b"2"])),
        "CROSSSLOT Keys in request don't hash to the same slot"
    );
    // A transaction is not forwarded: its commands run together on one node.
    assert_eq!(text(conn.call(&[b"MULTI"])), "OK");
    assert!(text(conn.call(&[b"SET", b"foo", b"x"])).starts_with("MOVED 12182 "));
    assert!(text(conn.call(&[b"EXEC"])).starts_with("EXECABORT"));
    // RESP3 replies come back as RESP3.
    assert_eq!(text(conn.call(&[b"HSET", b"{foo}h", b"f", b"v"])), "1");
    conn.call(&[b"HELLO", b"3"]);
    assert_eq!(
        conn.call(&[b"HGETALL", b"{foo}h"]),
        Value::Map(vec![(
            Value::Bulk(b"f".to_vec()),
            Value::Bulk(b"v".to_vec())
        )])
    );
}

/// Redirections and errors as Redis gives them.
#[test]
fn redirects_and_bad_input_follow_redis() {
    let (servers, _) = cluster(3, 3, &[]);
    let port = servers[0].port;
    // foo is in slot 12182, which the third master serves.
    assert_eq!(
        call(port, &["GET", "foo"]),
        format!("MOVED 12182 127.0.0.1:{}", servers[2].port)
    );
    assert_eq!(
        call(port, &["MSET", "a", "1", "b", "2"]),
        "CROSSSLOT Keys in request don't hash to the same slot"
    );
    assert_eq!(call(port, &["CLUSTER", "KEYSLOT", "foo"]), "12182");
    // A transaction over two local slots is refused at EXEC, and ends.
    let local: Vec<String> = (0..)
        .map(|i| format!("k{i}"))
        .filter(|k| shoal::slot::SlotId::of_key(k.as_bytes()).get() < 5000)
        .take(2)
        .collect();
    let mut tx = RespConn::connect(port).unwrap();
    assert_eq!(text(tx.call(&[b"MULTI"])), "OK");
    for key in &local {
        assert_eq!(text(tx.call(&[b"SET", key.as_bytes(), b"1"])), "QUEUED");
    }
    assert_eq!(
        text(tx.call(&[b"EXEC"])),
        "CROSSSLOT Keys in request don't hash to the same slot"
    );
    assert_eq!(text(tx.call(&[b"EXEC"])), "ERR EXEC without MULTI");
    assert_eq!(call(port, &["EXISTS", &local[0]]), "0");
    assert_eq!(
        call(port, &["CLUSTER", "ADDSLOTS", "0"]),
        "ERR Slot 0 is already busy"
    );
    assert_eq!(
        call(port, &["CLUSTER", "ADDSLOTS", "16384"]),
        "ERR Invalid or out of range slot"
    );
    assert_eq!(
        call(port, &["CLUSTER", "SETSLOT", "0", "NODE", &"a".repeat(40)]),
        format!("ERR Unknown node {}", "a".repeat(40))
    );
    assert_eq!(
        call(port, &["CLUSTER", "MEET", "not-an-ip", "7000"]),
        "ERR Invalid node address specified: not-an-ip:7000"
    );
    assert_eq!(
        call(port, &["RESTORE", "b", "0", "garbage"]),
        "ERR DUMP payload version or checksum are wrong"
    );
    assert_eq!(
        call(port, &["SELECT", "1"]),
        "ERR SELECT is not allowed in cluster mode"
    );
    // A MEET to an address where nothing listens goes away after the handshake timeout.
    assert_eq!(call(port, &["CLUSTER", "MEET", "127.0.0.1", "1"]), "OK");
    assert!(call(port, &["CLUSTER", "NODES"]).contains("handshake"));
    wait_until("the failed handshake is dropped", || {
        !call(port, &["CLUSTER", "NODES"]).contains("handshake")
    });
    // redis-cli -c follows the redirect.
    let out = redis_cli(&["-c", "-p", &port.to_string(), "SET", "foo", "bar"]);
    assert_eq!(out.trim(), "OK");
    assert_eq!(call(servers[2].port, &["GET", "foo"]), "bar");

    // cluster-announce-*: what a node tells the others (and so what MOVED names) follows
    // CONFIG SET, and goes back.
    let third = servers[2].port;
    for (set_ip, set_port, set_bus) in [("127.0.0.9", "7777", "17777"), ("", "0", "0")] {
        for (name, value) in [
            ("cluster-announce-ip", set_ip),
            ("cluster-announce-port", set_port),
            ("cluster-announce-bus-port", set_bus),
        ] {
            assert_eq!(call(third, &["CONFIG", "SET", name, value]), "OK");
        }
        let (ip, announced, bus) = match set_ip {
            "" => (
                "127.0.0.1".to_string(),
                third.to_string(),
                (third + 10_000).to_string(),
            ),
            _ => (
                set_ip.to_string(),
                set_port.to_string(),
                set_bus.to_string(),
            ),
        };
        let moved = format!("MOVED 12182 {ip}:{announced}");
        wait_until("the others see the announced address", || {
            call(port, &["GET", "foo"]) == moved
                && call(servers[1].port, &["CLUSTER", "NODES"])
                    .contains(&format!(" {ip}:{announced}@{bus} master"))
                && call(third, &["CLUSTER", "NODES"])
                    .contains(&format!(" {ip}:{announced}@{bus} myself,master"))
        });
    }
    assert_eq!(
        call(port, &["GET", "foo"]),
        format!("MOVED 12182 127.0.0.1:{third}")
    );

    // MIGRATE of two keys of a slot being moved: the target takes both RESTORE-ASKINGs of
    // one pipeline, and the source sends clients of the moved keys there with ASK.
    let (source, target) = (servers[2].port, servers[0].port);
    let source_id = call(source, &["CLUSTER", "MYID"]);
    let target_id = call(target, &["CLUSTER", "MYID"]);
    call(source, &["SET", "{foo}a", "1"]);
    call(source, &["SET", "{foo}b", "2"]);
    let slot = "12182";
    assert_eq!(
        call(
            target,
            &["CLUSTER", "SETSLOT", slot, "IMPORTING", &source_id]
        ),
        "OK"
    );
    assert_eq!(
        call(
            source,
            &["CLUSTER", "SETSLOT", slot, "MIGRATING", &target_id]
        ),
        "OK"
    );
    let target_port = target.to_string();
    let migrate = [
        "MIGRATE",
        "127.0.0.1",
        &target_port,
        "",
        "0",
        "5000",
        "KEYS",
        "{foo}a",
        "{foo}b",
    ];
    assert_eq!(call(source, &migrate), "OK");
    let ask = format!("ASK {slot} 127.0.0.1:{target}");
    assert_eq!(call(source, &["GET", "{foo}a"]), ask);
    assert_eq!(call(source, &["GET", "foo"]), "bar");
    assert_eq!(
        call(target, &["GET", "{foo}b"]),
        format!("MOVED {slot} 127.0.0.1:{source}")
    );
    let mut asking = RespConn::connect(target).unwrap();
    assert_eq!(text(asking.call(&[b"ASKING"])), "OK");
    assert_eq!(text(asking.call(&[b"GET", b"{foo}b"])), "2");
}
