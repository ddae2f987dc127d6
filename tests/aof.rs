//! The append-only file: Redis 7's multi-part layout that redis-server 7 itself loads, replay
//! after restart, torn tails, corruption, rewrites, and acknowledged writes surviving kill -9
//! with `appendfsync always`.

mod common;

use common::{temp_dir, RedisServer, RespConn, ShoalServer, Value};
use shoal::{Config, Fsync, Node, Reply};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn open(dir: &Path, fsync: Fsync) -> Node {
    Node::open(Config::new().dir(dir).save_points(&[]).append_only(fsync)).expect("open")
}

fn digest(node: &Node) -> String {
    match node.execute(&["DEBUG", "DIGEST"]) {
        Reply::Status(s) => s.into_owned(),
        other => panic!("DEBUG DIGEST: {other:?}"),
    }
}

fn write_some(node: &Node, round: usize) {
    let mut s = node.session();
    for i in 0..200 {
        s.execute(&["SET", &format!("k:{round}:{i}"), &format!("v{i}")]);
        s.execute(&["RPUSH", &format!("l:{}", i % 7), &i.to_string()]);
    }
    s.execute(&["INCRBYFLOAT", "f", "1.5"]);
    s.execute(&["EXPIRE", "k:0:1", "100000"]);
    s.execute(&["MULTI"]);
    s.execute(&["HSET", "h", "a", &round.to_string()]);
    s.execute(&["ZADD", "z", &round.to_string(), "m"]);
    s.execute(&["EXEC"]);
    s.execute(&["SELECT", "2"]);
    s.execute(&["SADD", "s", &round.to_string()]);
    s.execute(&["SELECT", "0"]);
    s.execute(&["DEL", &format!("k:{round}:3")]);
}

fn aof_dir(dir: &Path) -> PathBuf {
    dir.join("appendonlydir")
}

fn incr_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(aof_dir(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".incr.aof"))
        .collect();
    files.sort();
    files
}

#[test]
fn aof_replays_after_restart_and_redis_loads_it() {
    replays_after_restart_and_redis_loads_it(true);
}

/// `aof-use-rdb-preamble no`: the base is RESP commands.
#[test]
fn aof_without_rdb_preamble_replays_and_redis_loads_it() {
    replays_after_restart_and_redis_loads_it(false);
}

fn replays_after_restart_and_redis_loads_it(preamble: bool) {
    let dir = temp_dir(&format!("aof-restart-{preamble}"));
    let mut config = Config::new()
        .dir(&dir)
        .save_points(&[])
        .append_only(Fsync::Always);
    config.aof_use_rdb_preamble = preamble;
    let node = Node::open(config.clone()).unwrap();
    write_some(&node, 0);
    // The base holds round 0; the incr file round 1.
    node.rewrite_aof().unwrap();
    write_some(&node, 1);
    let expected = digest(&node);
    drop(node);
    let manifest = std::fs::read_to_string(aof_dir(&dir).join("appendonly.aof.manifest")).unwrap();
    let base = if preamble {
        "appendonly.aof.2.base.rdb"
    } else {
        "appendonly.aof.2.base.aof"
    };
    assert_eq!(
        manifest,
        format!("file {base} seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n")
    );
    let mut checked = incr_files(&dir);
    if !preamble {
        checked.push(aof_dir(&dir).join(base));
    }
    for file in checked {
        let check = Command::new("redis-check-aof").arg(&file).output().unwrap();
        let report = String::from_utf8_lossy(&check.stdout).into_owned();
        assert!(
            check.status.success() && report.contains("is valid"),
            "{}: {report}",
            file.display()
        );
    }
    let node = Node::open(config).unwrap();
    assert_eq!(digest(&node), expected, "replayed after restart");
    write_some(&node, 2);
    let expected = digest(&node);
    drop(node);
    // redis-server 7 loads Shoal's multi-part AOF as its own.
    let server = RedisServer::start_in(&dir, &["--appendonly", "yes"]);
    let mut redis = RespConn::connect(server.port).unwrap();
    assert_eq!(
        redis.call(&[b"DEBUG", b"DIGEST"]),
        Value::Status(expected),
        "Redis loaded Shoal's AOF"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn torn_tail_is_cut_and_corruption_stops_start_up() {
    let dir = temp_dir("aof-torn");
    let node = open(&dir, Fsync::Always);
    write_some(&node, 0);
    let expected = digest(&node);
    drop(node);
    let incr = incr_files(&dir).pop().unwrap();
    let good = std::fs::read(&incr).unwrap();
    // A command cut in the middle, and a MULTI whose EXEC never came.
    for tail in [
        &b"*3\r\n$3\r\nSET\r\n$1\r\nx"[..],
        b"*1\r\n$5\r\nMULTI\r\n*2\r\n$4\r\nINCR\r\n$1\r\nq\r\n",
    ] {
        let mut torn = good.clone();
        torn.extend_from_slice(tail);
        std::fs::write(&incr, &torn).unwrap();
        let mut strict = Config::new()
            .dir(&dir)
            .save_points(&[])
            .append_only(Fsync::Always);
        strict.aof_load_truncated = false;
        let strict = Node::open(strict);
        match strict {
            Err(shoal::Error::Corrupt { file, offset, .. }) => {
                assert_eq!((file, offset), (incr.clone(), good.len() as u64));
            }
            Err(e) => panic!("not a corruption error: {e}"),
            Ok(_) => panic!("a torn AOF was loaded with aof-load-truncated no"),
        }
        let node = open(&dir, Fsync::Always);
        assert_eq!(digest(&node), expected, "the torn command was dropped");
        drop(node);
        assert_eq!(std::fs::read(&incr).unwrap(), good, "the file was cut back");
    }
    // A damaged manifest line, and a manifest naming a file that is gone.
    let manifest = aof_dir(&dir).join("appendonly.aof.manifest");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, format!("{text}file x seq notanumber type i\n")).unwrap();
    match Node::open(Config::new().dir(&dir).append_only(Fsync::Always)) {
        Err(shoal::Error::Corrupt { file, offset, .. }) => {
            assert_eq!((file, offset), (manifest.clone(), text.len() as u64));
        }
        other => panic!("a damaged manifest was not refused: {:?}", other.err()),
    }
    std::fs::write(
        &manifest,
        format!("{text}file gone.incr.aof seq 9 type i\n"),
    )
    .unwrap();
    let message = Node::open(Config::new().dir(&dir).append_only(Fsync::Always))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(message.contains("gone.incr.aof"), "{message}");
    std::fs::write(&manifest, &text).unwrap();
    let mut corrupt = good.clone();
    corrupt.splice(10..10, b"garbage!".iter().copied());
    std::fs::write(&incr, &corrupt).unwrap();
    let message = match Node::open(Config::new().dir(&dir).append_only(Fsync::Always)) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a corrupt AOF was loaded"),
    };
    assert!(message.contains("incr.aof"), "{message}");
    // A command that is not RESP after good ones: the error names where it starts.
    let mut bad = good.clone();
    bad.extend_from_slice(b"*2\r\n$x\r\n");
    std::fs::write(&incr, &bad).unwrap();
    match Node::open(Config::new().dir(&dir).append_only(Fsync::Always)) {
        Err(shoal::Error::Corrupt { file, offset, .. }) => {
            assert_eq!((file, offset), (incr.clone(), good.len() as u64));
        }
        other => panic!("a malformed AOF was not refused: {:?}", other.err()),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bgrewriteaof_under_writes_keeps_everything() {
    let dir = temp_dir("aof-rewrite");
    let node = open(&dir, Fsync::EverySec);
    write_some(&node, 0);
    let writer = {
        let node = node.clone();
        std::thread::spawn(move || {
            for round in 1..6 {
                write_some(&node, round);
            }
        })
    };
    assert_eq!(
        node.execute(&["BGREWRITEAOF"]),
        Reply::Status("Background append only file rewriting started".into())
    );
    // The rewrite is claimed before BGREWRITEAOF replies: a BGSAVE now is refused as in
    // Redis, and SCHEDULE queues it behind the rewrite.
    let Reply::Error(busy) = node.execute(&["BGSAVE"]) else {
        panic!("BGSAVE ran beside a rewrite")
    };
    assert!(
        busy.starts_with("ERR Another child process is active"),
        "{busy}"
    );
    assert_eq!(
        node.execute(&["BGSAVE", "SCHEDULE"]),
        Reply::Status("Background saving scheduled".into())
    );
    writer.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let Reply::Verbatim(info) = node.execute(&["INFO", "persistence"]) else {
            panic!()
        };
        let info = String::from_utf8_lossy(&info).into_owned();
        if info.contains("aof_rewrites:1") && info.contains("aof_rewrite_in_progress:0") {
            assert!(info.contains("aof_last_bgrewrite_status:ok"), "{info}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rewrite did not finish: {info}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    write_some(&node, 9);
    let expected = digest(&node);
    drop(node);
    let manifest = std::fs::read_to_string(aof_dir(&dir).join("appendonly.aof.manifest")).unwrap();
    assert_eq!(
        manifest,
        "file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n"
    );
    assert!(!aof_dir(&dir).join("appendonly.aof.1.incr.aof").exists());
    let node = open(&dir, Fsync::EverySec);
    assert_eq!(digest(&node), expected);
    let _ = std::fs::remove_dir_all(&dir);
}

/// kill -9 a shoal-server with `appendfsync always` while clients increment their own
/// counters: after each restart every counter is at least the last value acknowledged to its
/// client, and at most one more (the reply that was in flight).
#[test]
fn acknowledged_writes_survive_kill_9() {
    const CLIENTS: usize = 4;
    const KILLS: usize = 20;
    let dir = temp_dir("aof-kill");
    let dir_arg = dir.to_str().unwrap().to_string();
    let args = [
        "--dir",
        &dir_arg,
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save",
        "",
    ];
    let mut acked = [0i64; CLIENTS];
    for kill in 0..KILLS {
        let mut server = ShoalServer::start(&args);
        let port = server.port;
        let mut check = RespConn::connect(port).unwrap();
        for (c, counter) in acked.iter_mut().enumerate() {
            let value = *counter;
            let key = format!("counter:{c}");
            let Value::Bulk(now) = check.call(&[b"GET", key.as_bytes()]) else {
                assert_eq!(value, 0, "counter {c} lost after kill {kill}");
                continue;
            };
            let now: i64 = String::from_utf8_lossy(&now).parse().unwrap();
            assert!(
                (value..=value + 1).contains(&now),
                "counter {c}: {now} after kill {kill}, {value} acknowledged"
            );
            *counter = now;
        }
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                std::thread::spawn(move || {
                    let mut conn = RespConn::connect(port).unwrap();
                    let key = format!("counter:{c}");
                    let mut last = None;
                    loop {
                        conn.send(&[b"INCR", key.as_bytes()]);
                        match conn.try_read() {
                            Ok(Value::Int(n)) => last = Some(n),
                            _ => return last,
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(30 + fastrand::u64(..150)));
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        for (c, client) in clients.into_iter().enumerate() {
            if let Some(last) = client.join().unwrap() {
                acked[c] = last;
            }
        }
        // The next server reads the same directory (dropping this one removes only the
        // folder it made for itself).
        drop(server);
    }
    assert!(
        acked.iter().all(|&n| n > 0),
        "no write was acknowledged: {acked:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The embedded API: a session's last write offset, waited on until fsynced (everysec makes
/// that take up to a second), and the persistence calls.
#[test]
fn embedded_api_waits_for_durability() {
    let dir = temp_dir("aof-embedded");
    let node = open(&dir, Fsync::EverySec);
    let mut session = node.session();
    assert_eq!(session.execute(&["SET", "a", "1"]), Reply::OK);
    let offset = session.last_write();
    assert!(offset.0 > 0);
    assert!(node.wait_durable(offset, Duration::from_secs(5)).unwrap());
    // Nothing will ever be written this far: the wait times out.
    let beyond = shoal::Offset(offset.0 + 1_000_000);
    let started = Instant::now();
    assert!(!node
        .wait_durable(beyond, Duration::from_millis(200))
        .unwrap());
    assert!(started.elapsed() >= Duration::from_millis(200));
    node.save().unwrap();
    assert!(dir.join("dump.rdb").exists());
    node.rewrite_aof().unwrap();
    drop(node);
    let memory_only = Node::open(Config::new()).unwrap();
    assert!(memory_only
        .wait_durable(offset, Duration::from_millis(10))
        .is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

/// CONFIG SET appendonly yes on a running node writes a base first (as Redis does), then
/// logs every write; a restart with the AOF on finds all of it. `no` stops the writer.
#[test]
fn config_set_appendonly_turns_the_aof_on_and_off() {
    let dir = temp_dir("aof-config-set");
    let node = Node::open(Config::new().dir(&dir).save_points(&[])).unwrap();
    write_some(&node, 0);
    // Switched back and forth while the first base is written: one writer ends up running.
    for on in ["yes", "no", "yes"] {
        assert_eq!(
            node.execute(&["CONFIG", "SET", "appendonly", on]),
            Reply::OK
        );
    }
    write_some(&node, 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !info(&node).contains("aof_enabled:1")
        || info(&node).contains("aof_rewrite_in_progress:1")
        || info(&node).contains("aof_rewrite_scheduled:1")
    {
        assert!(Instant::now() < deadline, "the AOF did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    write_some(&node, 2);
    let expected = digest(&node);
    assert_eq!(
        node.execute(&["CONFIG", "SET", "appendonly", "no"]),
        Reply::OK
    );
    assert!(info(&node).contains("aof_enabled:0"));
    node.execute(&["SET", "after-off", "1"]);
    drop(node);
    let node = open(&dir, Fsync::EverySec);
    assert_eq!(
        digest(&node),
        expected,
        "the AOF holds everything up to appendonly no"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn info(node: &Node) -> String {
    match node.execute(&["INFO", "persistence"]) {
        Reply::Verbatim(text) | Reply::Bulk(text) => String::from_utf8_lossy(&text).into_owned(),
        other => panic!("INFO: {other:?}"),
    }
}

/// WAITAOF over RESP under every fsync policy: the local fsync it waits for comes within
/// moments (Redis waits for the next scheduled fsync, forever with `no`); WAIT counts the
/// replicas (none here), after its timeout; bad arguments get Redis's errors.
#[test]
fn waitaof_and_wait_follow_redis() {
    let dir = temp_dir("aof-waitaof");
    let dir_arg = dir.to_str().unwrap().to_string();
    let server = ShoalServer::start(&["--dir", &dir_arg, "--save", ""]);
    let mut conn = RespConn::connect(server.port).unwrap();
    let acks = |local: i64| Value::Array(vec![Value::Int(local), Value::Int(0)]);
    assert_eq!(conn.call(&[b"WAITAOF", b"0", b"0", b"0"]), acks(0));
    let refused = conn.call(&[b"WAITAOF", b"1", b"0", b"0"]);
    assert_eq!(
        refused,
        Value::Error(
            "ERR WAITAOF cannot be used when numlocal is set but appendonly is disabled.".into()
        )
    );
    for (args, error) in [
        (
            &[&b"WAITAOF"[..], b"2", b"0", b"0"][..],
            "ERR value is out of range, value must between 0 and 1",
        ),
        (
            &[b"WAITAOF", b"0", b"-1", b"0"],
            "ERR value is out of range, must be positive",
        ),
        (
            &[b"WAIT", b"x", b"0"],
            "ERR value is not an integer or out of range",
        ),
        (&[b"WAIT", b"0", b"-1"], "ERR timeout is negative"),
        (
            &[b"WAIT", b"0", b"1.5"],
            "ERR timeout is not an integer or out of range",
        ),
    ] {
        assert_eq!(conn.call(args), Value::Error(error.into()), "{args:?}");
    }
    assert_eq!(
        conn.call(&[b"CONFIG", b"SET", b"appendonly", b"yes"]),
        Value::Status("OK".into())
    );
    for policy in ["always", "everysec", "no"] {
        conn.call(&[b"CONFIG", b"SET", b"appendfsync", policy.as_bytes()]);
        assert_eq!(
            conn.call(&[b"SET", b"k", policy.as_bytes()]),
            Value::Status("OK".into())
        );
        let started = Instant::now();
        // A timeout, so that a wait that never ends fails the test instead of hanging it.
        assert_eq!(
            conn.call(&[b"WAITAOF", b"1", b"0", b"10000"]),
            acks(1),
            "{policy}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{policy}: {:?}",
            started.elapsed()
        );
    }
    // No replica can acknowledge: both wait out their timeout and report what they have.
    let started = Instant::now();
    assert_eq!(conn.call(&[b"WAITAOF", b"1", b"1", b"100"]), acks(1));
    assert_eq!(conn.call(&[b"WAIT", b"1", b"100"]), Value::Int(0));
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(conn.call(&[b"WAIT", b"0", b"0"]), Value::Int(0));
    // Inside MULTI nothing blocks: the counts as they are.
    conn.call(&[b"MULTI"]);
    conn.call(&[b"WAIT", b"5", b"0"]);
    assert_eq!(conn.call(&[b"EXEC"]), Value::Array(vec![Value::Int(0)]));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The embedded API's blocking path: WAITAOF through a session with `appendfsync no`.
#[test]
fn embedded_waitaof_forces_the_fsync() {
    let dir = temp_dir("aof-embedded-waitaof");
    let node = open(&dir, Fsync::No);
    let mut session = node.session();
    session.execute(&["SET", "a", "1"]);
    let reply = session.execute(&["WAITAOF", "1", "0", "10000"]);
    assert_eq!(reply, Reply::Array(vec![Reply::Int(1), Reply::Int(0)]));
    assert!(node
        .wait_durable(session.last_write(), Duration::ZERO)
        .unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}
