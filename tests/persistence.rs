//! RDB snapshots against real Redis: a Shoal snapshot passes `redis-check-rdb` and loads in
//! redis-server 7 with the same DEBUG DIGEST, a redis-server snapshot (every encoding it
//! writes) loads in Shoal with the same digest, damaged files stop start-up with the file and
//! offset, and BGSAVE under concurrent writes is one point in time.

mod common;

use common::{temp_dir, RedisServer, RespConn, Value};
use shoal::{Config, Node, Reply};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A far-future absolute expiry, the same on both servers.
fn expiry_ms() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    (now + 100_000_000).to_string()
}

/// Commands that build keys of every type in the encodings Redis 7 picks for them, in two
/// databases: small and large hashes, sets and sorted sets, integer sets, lists with large
/// (plain) elements, integer and compressible strings, binary data and expiries.
fn dataset() -> Vec<Vec<Vec<u8>>> {
    let at = expiry_ms();
    let mut cmds: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut add = |words: Vec<Vec<u8>>| cmds.push(words);
    let w = |s: &str| s.as_bytes().to_vec();
    add(vec![w("SELECT"), w("0")]);
    for (k, v) in [
        ("str:int", "12345"),
        ("str:neg", "-77"),
        ("str:i64", "9999999999999"),
        ("str:emb", "hello"),
        ("str:zero-lead", "007"),
    ] {
        add(vec![w("SET"), w(k), w(v)]);
    }
    add(vec![
        w("SET"),
        w("str:long"),
        "abc".repeat(300).into_bytes(),
    ]);
    add(vec![w("SET"), w("str:bin"), (0..=255u8).collect()]);
    add(vec![w("SET"), w("str:ttl"), w("v"), w("PXAT"), w(&at)]);
    add(vec![
        w("RPUSH"),
        w("list:small"),
        w("a"),
        w("b"),
        w("1"),
        w("-2"),
    ]);
    let mut big_list = vec![w("RPUSH"), w("list:big")];
    big_list.extend((0..600).map(|i| format!("element-{i}-{}", "x".repeat(i % 90)).into_bytes()));
    add(big_list);
    add(vec![
        w("RPUSH"),
        w("list:plain"),
        w("head"),
        vec![b'p'; 10_000],
        w("tail"),
    ]);
    add(vec![
        w("HSET"),
        w("hash:small"),
        w("f1"),
        w("v1"),
        w("f2"),
        w("2"),
    ]);
    let mut big_hash = vec![w("HSET"), w("hash:big")];
    for i in 0..600 {
        big_hash.push(format!("field{i}").into_bytes());
        big_hash.push(format!("value{i}").into_bytes());
    }
    add(big_hash);
    add(vec![
        w("HSET"),
        w("hash:longvalue"),
        w("f"),
        vec![b'v'; 100],
    ]);
    add(vec![
        w("SADD"),
        w("set:int"),
        w("1"),
        w("2"),
        w("3"),
        w("-5"),
        w("100000"),
    ]);
    add(vec![w("SADD"), w("set:str"), w("a"), w("b"), w("c")]);
    let mut big_set = vec![w("SADD"), w("set:bigint")];
    big_set.extend((0..600).map(|i| (i * 7).to_string().into_bytes()));
    add(big_set);
    add(vec![
        w("ZADD"),
        w("z:small"),
        w("1"),
        w("a"),
        w("2.5"),
        w("b"),
        w("-inf"),
        w("c"),
    ]);
    let mut big_zset = vec![w("ZADD"), w("z:big")];
    for i in 0..300 {
        big_zset.push(format!("{}", f64::from(i) / 3.0).into_bytes());
        big_zset.push(format!("member{i}").into_bytes());
    }
    add(big_zset);
    add(vec![w("PEXPIREAT"), w("hash:small"), w(&at)]);
    add(vec![w("SELECT"), w("3")]);
    add(vec![w("SET"), w("other:db"), w("x")]);
    add(vec![w("HSET"), w("other:h"), w("a"), w("b")]);
    add(vec![w("SELECT"), w("0")]);
    cmds
}

fn run_on_node(node: &Node) {
    let mut session = node.session();
    for cmd in dataset() {
        let reply = session.execute(&cmd);
        assert!(!matches!(reply, Reply::Error(_)), "{cmd:?}: {reply:?}");
    }
}

fn run_on_redis(redis: &mut RespConn) {
    for cmd in dataset() {
        let args: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
        let reply = redis.call(&args);
        assert!(!matches!(reply, Value::Error(_)), "{cmd:?}: {reply:?}");
    }
}

fn node_digest(node: &Node) -> String {
    match node.execute(&["DEBUG", "DIGEST"]) {
        Reply::Status(s) => s.into_owned(),
        Reply::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("DEBUG DIGEST: {other:?}"),
    }
}

fn redis_digest(redis: &mut RespConn) -> String {
    match redis.call(&[b"DEBUG", b"DIGEST"]) {
        Value::Status(s) => s,
        other => panic!("DEBUG DIGEST: {other:?}"),
    }
}

fn open_in(dir: &Path) -> Node {
    Node::open(Config::new().dir(dir).save_points(&[])).expect("open node")
}

fn redis_encoding(redis: &mut RespConn, key: &str) -> Value {
    redis.call(&[b"OBJECT", b"ENCODING", key.as_bytes()])
}

#[test]
fn shoal_snapshot_passes_redis_check_rdb_and_loads_in_redis() {
    let dir = temp_dir("persist-to-redis");
    let node = open_in(&dir);
    run_on_node(&node);
    let digest = node_digest(&node);
    assert_eq!(node.execute(&["SAVE"]), Reply::OK);
    let file = dir.join("dump.rdb");
    let check = Command::new("redis-check-rdb")
        .arg(&file)
        .output()
        .expect("redis-check-rdb (apt-get install redis-tools)");
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "redis-check-rdb: {report}");
    assert!(report.contains("RDB looks OK"), "{report}");
    let server = RedisServer::start_in(&dir, &[]);
    let mut redis = RespConn::connect(server.port).unwrap();
    assert_eq!(
        redis_digest(&mut redis),
        digest,
        "Redis loaded what Shoal saved"
    );
    // Redis re-encodes by its own size rules: what it shows matches what Shoal reports.
    for key in [
        "hash:small",
        "hash:big",
        "set:int",
        "set:bigint",
        "z:small",
        "z:big",
    ] {
        let shoal = node.execute(&["OBJECT", "ENCODING", key]);
        let Reply::Bulk(shoal) = shoal else {
            panic!("{key}: {shoal:?}")
        };
        assert_eq!(
            redis_encoding(&mut redis, key),
            Value::Bulk(shoal.to_vec()),
            "{key}"
        );
    }
    drop(node);
    let reopened = open_in(&dir);
    assert_eq!(
        node_digest(&reopened),
        digest,
        "Shoal reloaded its own file"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn redis_snapshot_of_every_encoding_loads_in_shoal() {
    let dir = temp_dir("persist-from-redis");
    // Compressed quicklist nodes (LZF) and small nodes, so a list spans many of each.
    let server = RedisServer::start_in(
        &dir,
        &[
            "--list-compress-depth",
            "1",
            "--list-max-listpack-size",
            "16",
        ],
    );
    let mut redis = RespConn::connect(server.port).unwrap();
    run_on_redis(&mut redis);
    let digest = redis_digest(&mut redis);
    assert_eq!(redis.call(&[b"SAVE"]), Value::Status("OK".into()));
    let mine = temp_dir("persist-from-redis-copy");
    std::fs::copy(dir.join("dump.rdb"), mine.join("dump.rdb")).unwrap();
    let node = open_in(&mine);
    assert_eq!(node_digest(&node), digest, "Shoal loaded what Redis saved");
    for key in [
        "str:int",
        "str:long",
        "list:big",
        "hash:small",
        "hash:big",
        "set:int",
        "set:str",
        "z:small",
        "z:big",
    ] {
        let Reply::Bulk(shoal) = node.execute(&["OBJECT", "ENCODING", key]) else {
            panic!("{key}")
        };
        assert_eq!(
            redis_encoding(&mut redis, key),
            Value::Bulk(shoal.to_vec()),
            "{key}"
        );
    }
    let ttl = node.execute(&["PTTL", "str:ttl"]);
    assert!(matches!(ttl, Reply::Int(ms) if ms > 90_000_000), "{ttl:?}");
    drop(server);
    for d in [dir, mine] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Every truncation and every single-bit flip of a snapshot stops start-up with an error
/// naming the file and a byte offset: never a panic, never a node with part of the data.
#[test]
fn damaged_snapshots_stop_start_up_with_file_and_offset() {
    let dir = temp_dir("persist-damaged");
    {
        let node = open_in(&dir);
        node.execute(&["SET", "k", "v"]);
        node.execute(&["RPUSH", "l", "a", "b"]);
        node.execute(&["HSET", "h", "f", "1"]);
        node.execute(&["ZADD", "z", "1.5", "m"]);
        node.execute(&["SADD", "s", "x", "7"]);
        assert_eq!(node.execute(&["SAVE"]), Reply::OK);
    }
    let file = dir.join("dump.rdb");
    let good = std::fs::read(&file).unwrap();
    let refuses = |bytes: &[u8], what: &str| {
        std::fs::write(&file, bytes).unwrap();
        match Node::open(Config::new().dir(&dir).save_points(&[])) {
            Err(shoal::Error::Corrupt { file: named, .. }) => assert_eq!(named, file, "{what}"),
            Err(other) => panic!("{what}: not a corruption error: {other}"),
            Ok(_) => panic!("{what}: a damaged file was accepted"),
        }
    };
    for len in 0..good.len() {
        refuses(&good[..len], &format!("truncated to {len} bytes"));
    }
    for byte in 0..good.len() {
        for bit in 0..8 {
            let mut bad = good.clone();
            bad[byte] ^= 1 << bit;
            refuses(&bad, &format!("bit {bit} of byte {byte} flipped"));
        }
    }
    refuses(b"GARBAGE GARBAGE", "garbage");
    std::fs::write(&file, &good).unwrap();
    let node = open_in(&dir);
    assert_eq!(node.execute(&["DBSIZE"]), Reply::Int(5));
    let message = {
        std::fs::write(&file, &good[..good.len() - 3]).unwrap();
        Node::open(Config::new().dir(&dir))
            .err()
            .unwrap()
            .to_string()
    };
    assert!(
        message.contains("dump.rdb") && message.contains("byte"),
        "{message}"
    );
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writers keep setting 16 keys in 16 slots to one common value with MSET while BGSAVE runs:
/// the snapshot must hold 16 equal values (one point in time), between the values seen
/// before it started and after it ended.
#[test]
fn bgsave_under_writes_is_one_point_in_time() {
    let dir = temp_dir("persist-bgsave");
    let node = open_in(&dir);
    // Bulk, so the snapshot takes long enough for writers to meet pending slots.
    for batch in 0..100 {
        let mut mset = vec!["MSET".to_string()];
        for i in 0..1000 {
            mset.push(format!("bulk:{batch}:{i}"));
            mset.push("0123456789abcdef".into());
        }
        node.execute(&mset);
    }
    let keys: Vec<String> = (0..16).map(|i| format!("point:{i}")).collect();
    let round = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let (node, keys, round, stop) =
                (node.clone(), keys.clone(), round.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let value = round.fetch_add(1, Ordering::SeqCst) + 1;
                    let mut mset = vec!["MSET".to_string()];
                    for key in &keys {
                        mset.push(key.clone());
                        mset.push(value.to_string());
                    }
                    // One MSET locks all 16 slots: it is atomic.
                    assert_eq!(node.execute(&mset), Reply::OK);
                    node.execute(&[
                        "SET",
                        &format!("bulk:{}:{}", value % 100, value % 1000),
                        "x",
                    ]);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    let before = round.load(Ordering::SeqCst);
    assert_eq!(
        node.execute(&["BGSAVE"]),
        Reply::Status("Background saving started".into())
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while info_field(&node, "rdb_bgsave_in_progress") != "0" {
        assert!(Instant::now() < deadline, "BGSAVE did not finish");
        std::thread::sleep(Duration::from_millis(5));
    }
    let after = round.load(Ordering::SeqCst);
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(info_field(&node, "rdb_last_bgsave_status"), "ok");
    let copied: u64 = info_field(&node, "rdb_last_cow_size").parse().unwrap();
    assert!(
        copied > 0,
        "no writer met a pending slot: the test proves nothing"
    );
    let copy = temp_dir("persist-bgsave-copy");
    std::fs::copy(dir.join("dump.rdb"), copy.join("dump.rdb")).unwrap();
    let loaded = open_in(&copy);
    let values: Vec<Reply> = keys.iter().map(|k| loaded.execute(&["GET", k])).collect();
    let Reply::Bulk(first) = &values[0] else {
        panic!("{values:?}")
    };
    assert!(values.iter().all(|v| v == &values[0]), "{values:?}");
    let first: u64 = std::str::from_utf8(first).unwrap().parse().unwrap();
    assert!(
        (before.saturating_sub(2)..=after).contains(&first),
        "snapshot value {first} outside [{before}, {after}]"
    );
    assert_eq!(loaded.execute(&["EXISTS", "bulk:99:999"]), Reply::Int(1));
    for d in [dir, copy] {
        let _ = std::fs::remove_dir_all(d);
    }
}

fn info_field(node: &Node, name: &str) -> String {
    let (Reply::Bulk(info) | Reply::Verbatim(info)) = node.execute(&["INFO", "persistence"]) else {
        panic!("INFO")
    };
    let text = String::from_utf8_lossy(&info).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("{name} in {text}"))
        .trim()
        .to_string()
}

#[test]
fn save_points_changes_and_lastsave_follow_redis() {
    let dir = temp_dir("persist-points");
    let node = Node::open(Config::new().dir(&dir).save_points(&[(1, 3)])).unwrap();
    assert_eq!(info_field(&node, "rdb_changes_since_last_save"), "0");
    for i in 0..3 {
        node.execute(&["SET", &format!("k{i}"), "v"]);
    }
    assert_eq!(info_field(&node, "rdb_changes_since_last_save"), "3");
    // The point (3 changes in 1 s) starts a background save within a few ticks.
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(&node, "rdb_saves") == "0" {
        assert!(Instant::now() < deadline, "the save point never fired");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(info_field(&node, "rdb_changes_since_last_save"), "0");
    assert!(dir.join("dump.rdb").exists());
    let Reply::Int(lastsave) = node.execute(&["LASTSAVE"]) else {
        panic!()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - lastsave).abs() <= 2, "{lastsave} vs {now}");
    // A directory that is gone: SAVE fails with Redis's bare ERR, BGSAVE records the error.
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(node.execute(&["SAVE"]), Reply::Error("ERR".into()));
    node.execute(&["BGSAVE"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(&node, "rdb_last_bgsave_status") != "err" {
        assert!(
            Instant::now() < deadline,
            "the failed BGSAVE was not reported"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // stop-writes-on-bgsave-error (on by default, with save points set): writes are refused
    // with Redis's MISCONF, reads go on, and a save that works lifts it.
    let Reply::Error(refused) = node.execute(&["SET", "k", "v"]) else {
        panic!("a write was accepted after a failed BGSAVE")
    };
    assert!(refused.starts_with("MISCONF Redis is configured to save RDB snapshots"));
    assert_eq!(node.execute(&["GET", "k0"]), Reply::Bulk("v".into()));
    std::fs::create_dir_all(&dir).unwrap();
    assert_eq!(node.execute(&["SAVE"]), Reply::OK);
    assert_eq!(node.execute(&["SET", "k", "v"]), Reply::OK);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shoal_server_saves_on_sigterm_unless_told_not_to() {
    let dir = temp_dir("persist-server");
    let dir_arg = dir.to_str().unwrap().to_string();
    let start = |extra: &[&str]| {
        let mut args = vec!["--dir", &dir_arg];
        args.extend_from_slice(extra);
        common::ShoalServer::start(&args)
    };
    let mut server = start(&[]);
    let mut conn = RespConn::connect(server.port).unwrap();
    conn.call(&[b"SET", b"kept", b"1"]);
    assert!(server.terminate().success());
    let server = start(&[]);
    let mut conn = RespConn::connect(server.port).unwrap();
    assert_eq!(conn.call(&[b"GET", b"kept"]), Value::Bulk(b"1".to_vec()));
    conn.call(&[b"SET", b"lost", b"1"]);
    conn.send(&[b"SHUTDOWN", b"NOSAVE"]);
    let mut server = server;
    assert!(server.child.wait().unwrap().success());
    let server = start(&["--save", ""]);
    let mut conn = RespConn::connect(server.port).unwrap();
    assert_eq!(conn.call(&[b"EXISTS", b"lost"]), Value::Int(0));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
