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
        if Instant::now() >= deadline {
            let show = |n: &Node| {
                let mut s = n.session();
                s.execute(&["SELECT", "3"]);
                format!(
                    "z {:?}\nh {:?}\nl0 {:?}\ndbsize {:?} counter {:?} h {:?} s {:?} l0 {:?}",
                    format!("{:?}", s.execute(&["ZRANGE", "z", "0", "-1", "WITHSCORES"])).len(),
                    n.execute(&["DEBUG", "DIGEST-VALUE", "h"]),
                    n.execute(&["DEBUG", "DIGEST-VALUE", "l:0"]),
                    n.execute(&["DBSIZE"]),
                    n.execute(&["GET", "counter"]),
                    n.execute(&["HLEN", "h"]),
                    n.execute(&["SCARD", "s"]),
                    n.execute(&["LLEN", "l:0"])
                )
            };
            panic!(
                "replica not caught up: offsets {} / {}, link {}\n{}\n{}",
                offset(primary),
                offset(replica),
                info_field(replica, "replication", "master_link_status"),
                show(primary),
                show(replica)
            );
        }
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
    let refused = replica.execute(&["WAIT", "0", "0"]);
    assert!(
        matches!(&refused, Reply::Error(e) if e.starts_with("ERR WAIT cannot be used with replica instances")),
        "{refused:?}"
    );
}

fn stat(node: &Node, name: &str) -> u64 {
    info_field(node, "stats", name).parse().unwrap()
}

/// Statistic `name` once it reaches `want`, or what it is after 20 s.
fn stat_reaching(node: &Node, name: &str, want: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = stat(node, name);
        if now >= want || Instant::now() >= deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Five writers on the primary while three replicas attach (one of them to another
/// replica): afterwards every digest and offset equals the primary's.
#[test]
fn concurrent_writers_and_a_chain_end_equal() {
    let primary = open(Config::new());
    write_round(&primary, 0);
    let writers: Vec<_> = (0..5)
        .map(|w| {
            let node = primary.clone();
            std::thread::spawn(move || {
                for round in 0..6 {
                    write_round(&node, w * 100 + round);
                }
            })
        })
        .collect();
    let (r1, r2, r3) = (
        open(Config::new()),
        open(Config::new()),
        open(Config::new()),
    );
    r1.replicate_from(primary.replication_addr().unwrap())
        .unwrap();
    std::thread::sleep(Duration::from_millis(30));
    r2.replicate_from(primary.replication_addr().unwrap())
        .unwrap();
    // A replica of a replica: the same offsets, one hop further.
    r3.replicate_from(r1.replication_addr().unwrap()).unwrap();
    for w in writers {
        w.join().unwrap();
    }
    for replica in [&r1, &r2, &r3] {
        wait_caught_up(&primary, replica);
    }
    assert_eq!(info_field(&r1, "replication", "connected_slaves"), "1");
}

/// A short break continues partially; a break longer than the backlog needs a full resync.
#[test]
fn short_break_is_partial_long_break_is_full() {
    let primary = open(Config::new().backlog_bytes_max(64 * 1024));
    write_round(&primary, 0);
    let replica = open(Config::new());
    let addr = primary.replication_addr().unwrap();
    replica.replicate_from(addr).unwrap();
    wait_caught_up(&primary, &replica);
    assert_eq!(stat(&primary, "sync_full"), 1);
    // Re-pointing at the same primary drops the link and links again. The replica may have
    // had round 1 before the break, so being caught up says nothing of the new link: wait
    // for the primary to count its PSYNC.
    write_round(&primary, 1);
    replica.replicate_from(addr).unwrap();
    assert_eq!(
        stat_reaching(&primary, "sync_partial_ok", 1),
        1,
        "a short break continues"
    );
    wait_caught_up(&primary, &replica);
    assert_eq!(stat(&primary, "sync_full"), 1);
    // Following a primary that is not there: the link stays down while far more than the
    // backlog is written.
    let refused_before = stat(&primary, "sync_partial_err");
    let nowhere: SocketAddr = "127.0.0.1:9".parse().unwrap();
    replica.replicate_from(nowhere).unwrap();
    for round in 2..8 {
        write_round(&primary, round);
    }
    replica.replicate_from(addr).unwrap();
    wait_caught_up(&primary, &replica);
    assert_eq!(
        stat(&primary, "sync_full"),
        2,
        "a long break needs a full resync"
    );
    // Refused: it asked to continue from an offset the backlog no longer holds.
    assert_eq!(stat(&primary, "sync_partial_err"), refused_before + 1);
}

/// REPLICAOF NO ONE on one replica; the other, re-pointed to it, continues partially from
/// the old primary's history (replid2).
#[test]
fn promoted_replica_serves_its_sibling_partially() {
    let primary = open(Config::new());
    write_round(&primary, 0);
    let (r1, r2) = (open(Config::new()), open(Config::new()));
    for r in [&r1, &r2] {
        r.replicate_from(primary.replication_addr().unwrap())
            .unwrap();
        wait_caught_up(&primary, r);
    }
    assert_eq!(r1.execute(&["REPLICAOF", "NO", "ONE"]), Reply::OK);
    assert_eq!(info_field(&r1, "replication", "role"), "master");
    let old_id = info_field(&primary, "replication", "master_replid");
    assert_eq!(info_field(&r1, "replication", "master_replid2"), old_id);
    r2.replicate_from(r1.replication_addr().unwrap()).unwrap();
    write_round(&r1, 1);
    wait_caught_up(&r1, &r2);
    assert_eq!(stat(&r1, "sync_partial_ok"), 1);
    assert_eq!(stat(&r1, "sync_full"), 0);
    assert_eq!(
        info_field(&r2, "replication", "master_replid"),
        info_field(&r1, "replication", "master_replid")
    );
}

/// A replica with the wrong secret is refused before any data flows; the right one syncs.
#[test]
fn wrong_secret_is_refused() {
    let primary = open(Config::new().requirepass("s3cret"));
    write_round(&primary, 0);
    let intruder = open(Config::new().masterauth("guess"));
    intruder
        .replicate_from(primary.replication_addr().unwrap())
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        info_field(&intruder, "replication", "master_link_status"),
        "down"
    );
    assert_eq!(intruder.execute(&["DBSIZE"]), Reply::Int(0));
    // The right secret as a user that does not exist (there are no ACL users).
    let mut stranger = Config::new().masterauth("s3cret");
    stranger.masteruser = Some("admin".into());
    let stranger = open(stranger);
    stranger
        .replicate_from(primary.replication_addr().unwrap())
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(stranger.execute(&["DBSIZE"]), Reply::Int(0));
    assert_eq!(info_field(&primary, "replication", "connected_slaves"), "0");
    let mut replica = Config::new().masterauth("s3cret");
    replica.masteruser = Some("default".into());
    let replica = open(replica);
    replica
        .replicate_from(primary.replication_addr().unwrap())
        .unwrap();
    wait_caught_up(&primary, &replica);
}

/// Two shoal-server processes: REPLICAOF over RESP, then INFO replication and ROLE as
/// redis-cli shows them, WAIT, and READONLY.
#[test]
fn shoal_servers_replicate_with_replicaof() {
    use common::{RespConn, ShoalServer, Value};
    let args = [
        "--save",
        "",
        "--enable-debug-command",
        "yes",
        "--repl-diskless-sync-delay",
        "0",
    ];
    // Not at the RESP port + 10000: the replica asks the primary where its endpoint is.
    let bus_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .unwrap()
        .port()
        .to_string();
    let primary = ShoalServer::start(&[&args[..], &["--cluster-port", &bus_port]].concat());
    let replica = ShoalServer::start_with_bus(&args);
    let mut p = RespConn::connect(primary.port).unwrap();
    let mut r = RespConn::connect(replica.port).unwrap();
    for i in 0..1000 {
        p.call(&[b"SET", format!("k{i}").as_bytes(), b"v"]);
    }
    assert_eq!(
        p.call(&[b"REPLCONF", b"shoal-bus-port", b"*"]),
        Value::Int(bus_port.parse().unwrap())
    );
    assert_eq!(
        p.call(&[b"REPLCONF", b"bogus", b"1"]),
        Value::Error("ERR Unrecognized REPLCONF option: bogus".into())
    );
    let port = primary.port.to_string();
    assert_eq!(
        r.call(&[b"REPLICAOF", b"127.0.0.1", port.as_bytes()]),
        Value::Status("OK".into())
    );
    assert_eq!(
        r.call(&[b"REPLICAOF", b"127.0.0.1", port.as_bytes()]),
        Value::Status("OK Already connected to specified master".into())
    );
    p.call(&[b"SET", b"last", b"1"]);
    assert_eq!(p.call(&[b"WAIT", b"1", b"10000"]), Value::Int(1));
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.call(&[b"DEBUG", b"DIGEST"]) != r.call(&[b"DEBUG", b"DIGEST"]) {
        assert!(Instant::now() < deadline, "the replica did not catch up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let Value::Array(role) = r.call(&[b"ROLE"]) else {
        panic!("ROLE");
    };
    assert_eq!(role[0], Value::Bulk(b"slave".to_vec()));
    assert_eq!(role[2], Value::Int(i64::from(primary.port)));
    assert_eq!(role[3], Value::Bulk(b"connected".to_vec()));
    let Value::Array(role) = p.call(&[b"ROLE"]) else {
        panic!("ROLE");
    };
    assert_eq!(role[0], Value::Bulk(b"master".to_vec()));
    let Value::Array(replicas) = &role[2] else {
        panic!("ROLE replicas");
    };
    assert_eq!(replicas.len(), 1);
    let info = p.info("replication");
    let line = format!(
        "slave0:ip=127.0.0.1,port={},state=online,offset=",
        replica.port
    );
    assert!(info.contains(&line), "{info}");
    assert_eq!(
        r.call(&[b"SET", b"x", b"1"]),
        Value::Error("READONLY You can't write against a read only replica.".into())
    );
    assert_eq!(
        r.call(&[b"REPLICAOF", b"NO", b"ONE"]),
        Value::Status("OK".into())
    );
    assert_eq!(r.call(&[b"SET", b"x", b"1"]), Value::Status("OK".into()));
}

/// min-replicas-to-write refuses writes with NOREPLICAS until enough replicas acknowledge;
/// replica-serve-stale-data no answers MASTERDOWN while the link is down.
#[test]
fn min_replicas_and_stale_data_follow_redis() {
    let primary = open(Config::new());
    assert_eq!(
        primary.execute(&["CONFIG", "SET", "min-replicas-to-write", "1"]),
        Reply::OK
    );
    assert_eq!(
        primary.execute(&["SET", "a", "1"]),
        Reply::error("NOREPLICAS Not enough good replicas to write.")
    );
    let replica = open(Config::new());
    replica
        .replicate_from(primary.replication_addr().unwrap())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while primary.execute(&["SET", "a", "1"]) != Reply::OK {
        assert!(
            Instant::now() < deadline,
            "writes still refused with a replica"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_caught_up(&primary, &replica);
    // The link goes down (a primary that is not there); reads of stale data are refused.
    replica.execute(&["CONFIG", "SET", "replica-serve-stale-data", "no"]);
    replica
        .replicate_from("127.0.0.1:9".parse().unwrap())
        .unwrap();
    assert_eq!(
        replica.execute(&["GET", "a"]),
        Reply::error(
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
        )
    );
    assert!(
        !replica.execute(&["INFO", "replication"]).is_error(),
        "INFO is answered while stale"
    );
}

/// A replica does not expire keys itself: a logically expired key reads as absent but stays
/// until the primary's DEL arrives.
#[test]
fn replicas_leave_expiry_to_the_primary() {
    let primary = open(Config::new());
    primary.execute(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    let replica = open(Config::new());
    replica
        .replicate_from(primary.replication_addr().unwrap())
        .unwrap();
    assert_eq!(primary.execute(&["SET", "k", "v", "PX", "50"]), Reply::OK);
    wait_caught_up(&primary, &replica);
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(replica.execute(&["GET", "k"]), Reply::Nil);
    assert_eq!(
        replica.execute(&["DBSIZE"]),
        Reply::Int(1),
        "kept for the primary's DEL"
    );
    // The primary expires it on access and sends the DEL.
    assert_eq!(primary.execute(&["GET", "k"]), Reply::Nil);
    let deadline = Instant::now() + Duration::from_secs(10);
    while replica.execute(&["DBSIZE"]) != Reply::Int(0) {
        assert!(Instant::now() < deadline, "the DEL did not arrive");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// WAITAOF counts replicas that have the write on their own disk.
#[test]
fn waitaof_counts_replicas_with_the_write_on_disk() {
    let dir = common::temp_dir("repl-waitaof");
    let primary = open(Config::new());
    let replica = open(
        Config::new()
            .dir(&dir)
            .save_points(&[])
            .append_only(shoal::Fsync::Always),
    );
    replica
        .replicate_from(primary.replication_addr().unwrap())
        .unwrap();
    let mut session = primary.session();
    session.execute(&["SET", "k", "v"]);
    let reply = session.execute(&["WAITAOF", "0", "1", "10000"]);
    assert_eq!(reply, Reply::Array(vec![Reply::Int(0), Reply::Int(1)]));
    wait_caught_up(&primary, &replica);
    drop(replica);
    // What the replica fsynced is there after a restart.
    let restarted = Node::open(
        Config::new()
            .dir(&dir)
            .save_points(&[])
            .append_only(shoal::Fsync::Always),
    )
    .unwrap();
    assert_eq!(restarted.execute(&["GET", "k"]), Reply::bulk(b"v"));
    drop(restarted);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `repl-ping-replica-period` keeps an idle replica's `master_last_io_seconds_ago` fresh;
/// `replica-priority` shows in INFO.
#[test]
fn pings_keep_an_idle_link_fresh() {
    let primary = open(Config::new());
    primary.execute(&["CONFIG", "SET", "repl-ping-replica-period", "1"]);
    let replica = open(Config::new());
    replica.execute(&["CONFIG", "SET", "replica-priority", "42"]);
    replica
        .replicate_from(primary.replication_addr().unwrap())
        .unwrap();
    wait_caught_up(&primary, &replica);
    std::thread::sleep(Duration::from_millis(2600));
    let idle: u64 = info_field(&replica, "replication", "master_last_io_seconds_ago")
        .parse()
        .unwrap();
    assert!(idle <= 1, "last I/O {idle} s ago with pings every second");
    assert_eq!(info_field(&replica, "replication", "slave_priority"), "42");
}

/// A fake primary built from the public transport: it sends a damaged snapshot, a cut one
/// and a malformed control message. The replica drops each link and keeps its own data.
#[test]
fn damaged_syncs_leave_the_replica_data_alone() {
    use shoal::repl::wire::{self, ToReplica, LOG_STREAM, SNAPSHOT_STREAM};
    use shoal::transport::{Endpoint, PeerAuth};
    use tokio::io::AsyncReadExt;
    let dir = common::temp_dir("repl-damaged");
    let source = Node::open(Config::new().dir(&dir).save_points(&[])).unwrap();
    write_round(&source, 0);
    source.save().unwrap();
    let image = std::fs::read(dir.join("dump.rdb")).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(async {
        let auth = std::sync::Arc::new(parking_lot::RwLock::new(PeerAuth::default()));
        Endpoint::bind(loopback(), auth).unwrap()
    });
    let replica = open(Config::new());
    replica.execute(&["SET", "mine", "1"]);
    replica.replicate_from(fake.local_addr().unwrap()).unwrap();
    let mut flipped = image.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x20;
    let cut = image[..image.len() - 100].to_vec();
    for snapshot in [Some(flipped), Some(cut), None] {
        runtime.block_on(async {
            let link = fake.accept().await.unwrap();
            let (mut control, mut from_replica) = link.accept_bi().await.unwrap();
            // The stream's tag, then the sync request.
            let mut tag = [0u8; 1];
            from_replica.read_exact(&mut tag).await.unwrap();
            assert_eq!(tag[0], wire::REPLICATION_STREAM);
            let _sync: wire::ToPrimary = wire::read(&mut from_replica).await.unwrap().unwrap();
            let Some(snapshot) = snapshot else {
                // Not a message at all.
                control
                    .write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff])
                    .await
                    .unwrap();
                let _ = tokio::time::timeout(Duration::from_secs(5), link.closed()).await;
                return;
            };
            let full = ToReplica::FullResync {
                replid: "f".repeat(40),
                offset: 1000,
            };
            control
                .write_all(&wire::encode(&full).unwrap())
                .await
                .unwrap();
            let mut stream = link.open_uni().await.unwrap();
            stream.write_all(&[SNAPSHOT_STREAM]).await.unwrap();
            stream.write_all(&snapshot).await.unwrap();
            stream.finish();
            let mut log = link.open_uni().await.unwrap();
            log.write_all(&[LOG_STREAM]).await.unwrap();
            let _ = tokio::time::timeout(Duration::from_secs(5), link.closed()).await;
        });
        assert_eq!(replica.execute(&["GET", "mine"]), Reply::bulk(b"1"));
        assert_eq!(replica.execute(&["DBSIZE"]), Reply::Int(1));
    }
    drop(replica);
    let _ = std::fs::remove_dir_all(&dir);
}

/// As in Redis, the backlog starts with the first replica and is freed once the primary has
/// had none for `repl-backlog-ttl`.
#[test]
fn backlog_lives_while_replicas_do() {
    let primary = open(Config::new());
    primary.execute(&["CONFIG", "SET", "repl-backlog-ttl", "1"]);
    assert_eq!(
        info_field(&primary, "replication", "repl_backlog_active"),
        "0"
    );
    // Something to copy, so that "caught up" means the replica did sync.
    primary.execute(&["SET", "k", "v"]);
    let replica = open(Config::new());
    replica
        .replicate_from(primary.replication_addr().unwrap())
        .unwrap();
    wait_caught_up(&primary, &replica);
    assert_eq!(
        info_field(&primary, "replication", "repl_backlog_active"),
        "1"
    );
    write_round(&primary, 0);
    wait_caught_up(&primary, &replica);
    drop(replica);
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(&primary, "replication", "repl_backlog_active") != "0" {
        assert!(Instant::now() < deadline, "the backlog was not freed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let histlen: u64 = info_field(&primary, "replication", "repl_backlog_histlen")
        .parse()
        .unwrap();
    assert!(histlen < 64 * 1024, "history kept: {histlen} bytes");
}

/// `tls-replication yes`: nodes prove themselves with certificates of one CA; a node whose
/// certificate another CA signed cannot replicate.
#[test]
fn tls_replication_checks_certificates() {
    let dir = common::temp_dir("repl-tls");
    let (ours, theirs) = (dir.join("ours"), dir.join("theirs"));
    let leaves = [
        ("primary", vec!["primary".to_string()]),
        ("replica", vec!["replica".to_string()]),
    ];
    for (folder, ca) in [(&ours, "Our CA"), (&theirs, "Their CA")] {
        std::fs::create_dir_all(folder).unwrap();
        common::certs::write_certificates(folder, ca, &leaves);
    }
    let with_certs = |folder: &std::path::Path, leaf: &str| {
        let mut config = Config::new();
        config.tls.cert_file = Some(folder.join(format!("{leaf}.crt")));
        config.tls.key_file = Some(folder.join(format!("{leaf}.key")));
        config.tls.ca_cert_file = Some(ours.join("ca.crt"));
        config.other.insert("tls-replication", "yes".into());
        open(config)
    };
    let primary = with_certs(&ours, "primary");
    write_round(&primary, 0);
    let stranger = with_certs(&theirs, "replica");
    stranger
        .replicate_from(primary.replication_addr().unwrap())
        .unwrap();
    let replica = with_certs(&ours, "replica");
    replica
        .replicate_from(primary.replication_addr().unwrap())
        .unwrap();
    wait_caught_up(&primary, &replica);
    assert_eq!(
        info_field(&stranger, "replication", "master_link_status"),
        "down"
    );
    assert_eq!(stranger.execute(&["DBSIZE"]), Reply::Int(0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `repl-diskless-sync-delay`: a full sync waits for other replicas to share its snapshot;
/// `repl-diskless-sync-max-replicas` starts it as soon as that many wait.
#[test]
fn diskless_sync_delay_lets_replicas_share_a_snapshot() {
    let delayed = |delay_secs, max_replicas| {
        let mut config = Config::new();
        config.repl_diskless_sync_delay_secs = delay_secs;
        config.repl_diskless_sync_max_replicas = max_replicas;
        let primary = open(config);
        write_round(&primary, 0);
        primary
    };
    let primary = delayed(1, 0);
    let replica = open(Config::new());
    let started = Instant::now();
    replica
        .replicate_from(primary.replication_addr().unwrap())
        .unwrap();
    wait_caught_up(&primary, &replica);
    assert!(started.elapsed() >= Duration::from_secs(1), "no delay");
    // A delay far beyond the test's patience: only the second replica can start the sync.
    let primary = delayed(600, 2);
    let replicas = [open(Config::new()), open(Config::new())];
    for replica in &replicas {
        replica
            .replicate_from(primary.replication_addr().unwrap())
            .unwrap();
    }
    for replica in &replicas {
        wait_caught_up(&primary, replica);
    }
    assert_eq!(stat(&primary, "sync_full"), 2);
}

/// FAILOVER on a standalone primary: Redis's checks and errors, then the writes pause, the
/// replica takes over with everything acknowledged, and the old primary continues from it
/// partially.
#[test]
fn failover_hands_a_primary_over_to_its_replica() {
    use common::{RespConn, ShoalServer, Value};
    let args = ["--save", "", "--repl-diskless-sync-delay", "0"];
    let primary = ShoalServer::start_with_bus(&args);
    let replica = ShoalServer::start_with_bus(&args);
    let mut p = RespConn::connect(primary.port).unwrap();
    let mut r = RespConn::connect(replica.port).unwrap();
    let error = |v: Value| match v {
        Value::Error(e) => e,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        error(p.call(&[b"FAILOVER"])),
        "ERR FAILOVER requires connected replicas."
    );
    let port = primary.port.to_string();
    r.call(&[b"REPLICAOF", b"127.0.0.1", port.as_bytes()]);
    p.call(&[b"SET", b"k", b"v"]);
    assert_eq!(p.call(&[b"WAIT", b"1", b"10000"]), Value::Int(1));
    assert_eq!(
        error(r.call(&[b"FAILOVER"])),
        "ERR FAILOVER is not valid when server is a replica."
    );
    assert_eq!(
        error(p.call(&[b"FAILOVER", b"ABORT"])),
        "ERR No failover in progress."
    );
    assert_eq!(
        error(p.call(&[b"FAILOVER", b"FORCE"])),
        "ERR FAILOVER with force option requires both a timeout and target HOST and IP."
    );
    assert_eq!(
        error(p.call(&[b"FAILOVER", b"TO", b"127.0.0.1", b"1"])),
        "ERR FAILOVER target HOST and PORT is not a replica."
    );
    assert_eq!(
        error(p.call(&[b"FAILOVER", b"TIMEOUT", b"0"])),
        "ERR FAILOVER timeout must be greater than 0"
    );
    assert_eq!(error(p.call(&[b"FAILOVER", b"NOW"])), "ERR syntax error");

    // A writer goes on until the old primary refuses (it is a replica then).
    let writer = {
        let port = primary.port;
        std::thread::spawn(move || {
            let mut conn = RespConn::connect(port).unwrap();
            let mut acked = Vec::new();
            for seq in 1u64.. {
                match conn.call(&[b"RPUSH", b"list", seq.to_string().as_bytes()]) {
                    Value::Int(_) => acked.push(seq),
                    _ => return acked,
                }
            }
            acked
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let to = replica.port.to_string();
    let failover = [
        &b"FAILOVER"[..],
        b"TO",
        b"127.0.0.1",
        to.as_bytes(),
        b"TIMEOUT",
        b"5000",
    ];
    assert_eq!(p.call(&failover), Value::Status("OK".into()));
    let acked = writer.join().unwrap();
    assert!(acked.len() > 10, "{}", acked.len());
    let role = |conn: &mut RespConn| match conn.call(&[b"ROLE"]) {
        Value::Array(role) => role,
        other => panic!("{other:?}"),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let old = role(&mut p);
        if old[0] == Value::Bulk(b"slave".to_vec()) && old[3] == Value::Bulk(b"connected".to_vec())
        {
            assert_eq!(old[2], Value::Int(i64::from(replica.port)));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the hand-over did not finish: {old:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(role(&mut r)[0], Value::Bulk(b"master".to_vec()));
    let Value::Array(list) = r.call(&[b"LRANGE", b"list", b"0", b"-1"]) else {
        panic!("LRANGE");
    };
    let kept: Vec<u64> = list
        .iter()
        .map(|v| match v {
            Value::Bulk(b) => String::from_utf8_lossy(b).parse().unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(kept, acked, "every acknowledged write, in order");
    assert!(p
        .info("replication")
        .contains("master_failover_state:no-failover"));
    let stats = r.info("stats");
    assert!(stats.contains("sync_partial_ok:1"), "{stats}");
    assert_eq!(
        r.call(&[b"SET", b"after", b"1"]),
        Value::Status("OK".into())
    );
}

/// A replica that stops reading (SIGSTOP) while its primary writes far more than the backlog
/// holds: within `client-output-buffer-limit replica` the primary keeps what it has not sent,
/// and the replica continues where it stopped, as with Redis; past the limit it is dropped and
/// resynchronized in full.
#[test]
fn a_stalled_replica_is_kept_up_to_the_output_buffer_limit() {
    use common::{RespConn, ShoalServer, Value};
    let args = [
        "--save",
        "",
        "--repl-diskless-sync-delay",
        "0",
        "--repl-backlog-size",
        "1mb",
        "--enable-debug-command",
        "yes",
    ];
    // (limit, whether the stopped replica is dropped, full syncs in all)
    for (limit, dropped, full_syncs) in [
        ("replica 256mb 64mb 60", false, 1),
        ("replica 2mb 0 0", true, 2),
        ("replica 0 2mb 1", true, 2),
    ] {
        let primary = ShoalServer::start_with_bus(&args);
        let replica = ShoalServer::start_with_bus(&args);
        let mut p = RespConn::connect(primary.port).unwrap();
        let mut r = RespConn::connect(replica.port).unwrap();
        p.call(&[
            b"CONFIG",
            b"SET",
            b"client-output-buffer-limit",
            limit.as_bytes(),
        ]);
        let port = primary.port.to_string();
        r.call(&[b"REPLICAOF", b"127.0.0.1", port.as_bytes()]);
        p.call(&[b"SET", b"first", b"1"]);
        assert_eq!(p.call(&[b"WAIT", b"1", b"10000"]), Value::Int(1));
        let signal = |name: &str| {
            let pid = replica.child.id().to_string();
            let sent = std::process::Command::new("kill")
                .args([name, &pid])
                .status();
            assert!(sent.is_ok_and(|s| s.success()), "kill {name}");
        };
        // 24 MB of writes: the QUIC link buffers about 10 MB, the backlog holds 1 MB.
        signal("-STOP");
        let value = vec![b'v'; 8000];
        for i in 0..3000 {
            p.call(&[b"SET", format!("k{i}").as_bytes(), &value]);
        }
        // Dropped while it is still stopped: the limits are watched while the sender waits
        // on a replica that reads nothing, not only when it reads again. (Well before QUIC's
        // 10 s idle timeout, which would drop it anyway.)
        let deadline = Instant::now() + Duration::from_secs(4);
        let kept = |p: &mut RespConn| !p.info("replication").contains("connected_slaves:0\r\n");
        while dropped && kept(&mut p) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let kept_while_stopped = kept(&mut p);
        signal("-CONT");
        assert!(
            !(dropped && kept_while_stopped),
            "{limit}: the stopped replica was kept"
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while p.call(&[b"DEBUG", b"DIGEST"]) != r.call(&[b"DEBUG", b"DIGEST"]) {
            assert!(Instant::now() < deadline, "the replica did not catch up");
            std::thread::sleep(Duration::from_millis(50));
        }
        let stats = p.info("stats");
        let line = format!("sync_full:{full_syncs}\r\n");
        assert!(stats.contains(&line), "{limit}: want {line:?} in\n{stats}");
    }
}
