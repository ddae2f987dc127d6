//! Real clients against the RESP listener: the `redis` crate (RESP2 and RESP3) against two
//! nodes in one process, Python's `redis`, `redis-cli` in its main modes and
//! `redis-benchmark`'s default tests against `shoal-server`.

mod common;

use common::{free_port, ShoalServer};
use redis::{Commands, Value as RValue};
use shoal::{Config, Node};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

fn node_on_free_port() -> (Node, u16) {
    let port = free_port();
    let node = Node::open(Config::new().port(port).bind(["127.0.0.1"])).expect("open node");
    (node, port)
}

fn connect(port: u16, resp3: bool) -> redis::Connection {
    let protocol = if resp3 { "?protocol=resp3" } else { "" };
    redis::Client::open(format!("redis://127.0.0.1:{port}/{protocol}"))
        .and_then(|c| c.get_connection())
        .expect("connect")
}

/// Every data type, a pipeline, a WATCHed transaction (one that commits, one that aborts),
/// and a blocking pop served by a push from another connection.
fn typed_workload(port: u16, resp3: bool) {
    let mut con = connect(port, resp3);
    let _: () = redis::cmd("FLUSHALL").query(&mut con).unwrap();
    let _: () = con.set("s", "v").unwrap();
    assert_eq!(con.get::<_, String>("s").unwrap(), "v");
    assert_eq!(con.incr::<_, _, i64>("n", 41).unwrap(), 41);
    assert_eq!(con.rpush::<_, _, i64>("l", &["a", "b", "c"]).unwrap(), 3);
    assert_eq!(
        con.lrange::<_, Vec<String>>("l", 0, -1).unwrap(),
        ["a", "b", "c"]
    );
    let _: () = con.hset_multiple("h", &[("f1", "1"), ("f2", "2")]).unwrap();
    let all: std::collections::HashMap<String, i64> = con.hgetall("h").unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all["f2"], 2);
    assert_eq!(con.sadd::<_, _, i64>("set", &["x", "y", "x"]).unwrap(), 2);
    assert!(con.sismember::<_, _, bool>("set", "y").unwrap());
    let _: () = con.zadd_multiple("z", &[(1.5, "a"), (0.5, "b")]).unwrap();
    let ranked: Vec<(String, f64)> = con.zrange_withscores("z", 0, -1).unwrap();
    assert_eq!(ranked, [("b".to_string(), 0.5), ("a".to_string(), 1.5)]);
    assert_eq!(con.zscore::<_, _, f64>("z", "a").unwrap(), 1.5);

    let (a, b): (i64, String) = redis::pipe()
        .incr("p", 1)
        .ignore()
        .incr("p", 1)
        .get("s")
        .query(&mut con)
        .unwrap();
    assert_eq!((a, b.as_str()), (2, "v"));

    let committed: Option<(i64,)> = redis::transaction(&mut con, &["w"], |con, pipe| {
        let now: i64 = con.get::<_, Option<i64>>("w")?.unwrap_or(0);
        pipe.set("w", now + 1).ignore().get("w").query(con)
    })
    .map(Some)
    .unwrap();
    assert_eq!(committed, Some((1,)));
    let _: () = redis::cmd("WATCH").arg("w").query(&mut con).unwrap();
    let mut other = connect(port, resp3);
    let _: () = other.set("w", 100).unwrap();
    let aborted: RValue = redis::pipe().atomic().set("w", 5).query(&mut con).unwrap();
    assert_eq!(
        aborted,
        RValue::Nil,
        "EXEC after a touched WATCH returns nil"
    );
    assert_eq!(other.get::<_, i64>("w").unwrap(), 100);

    let pusher = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        other.rpush::<_, _, i64>("queue", "job").unwrap()
    });
    let popped: (String, String) = con.blpop("queue", 5.0).unwrap();
    assert_eq!(popped, ("queue".to_string(), "job".to_string()));
    assert_eq!(pusher.join().unwrap(), 1);

    let err = con.lpush::<_, _, i64>("s", "x").unwrap_err();
    assert_eq!(err.code(), Some("WRONGTYPE"));
}

#[test]
fn two_nodes_in_one_process_serve_the_redis_crate_over_resp2_and_resp3() {
    let (a, port_a) = node_on_free_port();
    // The other one serves all its clients on one worker thread.
    let port_b = free_port();
    let config = Config::new().port(port_b).bind(["127.0.0.1"]).io_threads(1);
    let b = Node::open(config).expect("open node");
    typed_workload(port_a, false);
    typed_workload(port_b, true);
    // Each node has its own keyspace.
    let _: () = connect(port_a, false).set("only-a", 1).unwrap();
    assert_eq!(a.exists(&["only-a"]).unwrap(), 1);
    assert_eq!(b.exists(&["only-a"]).unwrap(), 0);
    // HELLO 3 switches the same connection to RESP3 maps.
    let mut con = connect(port_b, false);
    let hello: RValue = redis::cmd("HELLO").arg(3).query(&mut con).unwrap();
    assert!(
        matches!(hello, RValue::Map(_)),
        "HELLO 3 replies with a map: {hello:?}"
    );
}

/// Clients pipelining on one hot key meet each other's slot lock and move between worker
/// threads (on a machine with more than one core), some with half a pipeline still to run;
/// every reply still comes back, in order.
#[test]
fn pipelines_on_one_hot_key_keep_their_replies_in_order() {
    const CLIENTS: usize = 8;
    // Deep enough that a pipeline spans several reads: a client moves with input pending.
    const ROUNDS: usize = 20;
    const DEPTH: usize = 1000;
    // Two workers even on a machine where the default is one: moves need somewhere to go.
    let port = free_port();
    let _node = Node::open(Config::new().port(port).bind(["127.0.0.1"]).io_threads(2)).unwrap();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            std::thread::spawn(move || {
                let mut con = connect(port, c % 2 == 1);
                let own = format!("{{hot}}:list:{c}");
                let mut last_incr = 0;
                for round in 0..ROUNDS {
                    let mut pipe = redis::pipe();
                    for i in 0..DEPTH {
                        pipe.incr("{hot}:n", 1).rpush(&own, round * DEPTH + i);
                    }
                    let replies: Vec<i64> = pipe.query(&mut con).unwrap();
                    for (i, pair) in replies.chunks(2).enumerate() {
                        assert!(pair[0] > last_incr, "INCR replies go up on one connection");
                        last_incr = pair[0];
                        assert_eq!(pair[1], (round * DEPTH + i + 1) as i64, "RPUSH reply {i}");
                    }
                }
                let list: Vec<usize> = con.lrange(&own, 0, -1).unwrap();
                assert!(
                    list.iter().copied().eq(0..ROUNDS * DEPTH),
                    "list {c} in order"
                );
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    let total: usize = connect(port, false).get("{hot}:n").unwrap();
    assert_eq!(total, CLIENTS * ROUNDS * DEPTH);
}

#[test]
fn python_redis_runs_a_typed_workload() {
    let server = ShoalServer::start(&[]);
    let script = r#"
import sys, threading, time, redis
r = redis.Redis(port=int(sys.argv[1]), protocol=3, decode_responses=True)
r.flushall()
assert r.set("s", "v") and r.get("s") == "v"
assert r.incrby("n", 5) == 5
assert r.rpush("l", "a", "b") == 2 and r.lrange("l", 0, -1) == ["a", "b"]
r.hset("h", mapping={"f": "1", "g": "2"})
assert r.hgetall("h") == {"f": "1", "g": "2"}
assert r.sadd("set", "x", "y") == 2 and r.smembers("set") == {"x", "y"}
r.zadd("z", {"a": 2.5, "b": 1})
assert r.zrange("z", 0, -1, withscores=True) == [["b", 1.0], ["a", 2.5]] or \
       r.zrange("z", 0, -1, withscores=True) == [("b", 1.0), ("a", 2.5)]
p = r.pipeline(transaction=True)
p.incr("t").incr("t").get("t")
assert p.execute() == [1, 2, "2"]
with r.pipeline() as p:
    p.watch("w")
    other = redis.Redis(port=int(sys.argv[1]), protocol=3)
    other.set("w", 1)
    p.multi()
    p.set("w", 2)
    try:
        p.execute()
        raise SystemExit("EXEC should have aborted")
    except redis.WatchError:
        pass
def push():
    time.sleep(0.1)
    redis.Redis(port=int(sys.argv[1])).rpush("q", "job")
threading.Thread(target=push).start()
assert r.blpop(["q"], timeout=5) == ["q", "job"]
try:
    r.lpush("s", "x")
    raise SystemExit("WRONGTYPE expected")
except redis.ResponseError as e:
    assert str(e).startswith("WRONGTYPE")
print("ok")
"#;
    common::run_python_ok("python redis workload", script, &[server.port.to_string()]);
}

fn redis_cli(port: u16, args: &[&str], stdin: &[u8]) -> String {
    let mut child = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("redis-cli (apt-get install redis-tools)");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "redis-cli {args:?} failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn redis_cli_modes_work_unchanged() {
    let server = ShoalServer::start(&[]);
    let port = server.port;
    assert_eq!(
        redis_cli(port, &["SET", "greeting", "hello world"], b""),
        "OK\n"
    );
    assert_eq!(redis_cli(port, &["GET", "greeting"], b""), "hello world\n");

    // --pipe: mass insertion of raw RESP.
    let mut mass = Vec::new();
    for i in 0..5000 {
        let (key, value) = (format!("key:{i}"), format!("value-{i}"));
        shoal::resp::encode_command(&[b"SET", key.as_bytes(), value.as_bytes()], &mut mass);
    }
    let piped = redis_cli(port, &["--pipe"], &mass);
    assert!(piped.contains("errors: 0, replies: 5000"), "{piped}");
    assert_eq!(redis_cli(port, &["DBSIZE"], b""), "5001\n");

    // -x: the last argument read from standard input, binary-safe.
    redis_cli(port, &["-x", "SET", "blob"], b"line1\nline2\x00end");
    assert_eq!(redis_cli(port, &["STRLEN", "blob"], b""), "15\n");

    // --scan --pattern walks the keyspace with SCAN.
    let scanned = redis_cli(port, &["--scan", "--pattern", "key:42*"], b"");
    let mut keys: Vec<&str> = scanned.lines().collect();
    keys.sort();
    assert_eq!(keys.len(), 111, "key:42, key:420-429, key:4200-4299");
    assert!(keys.contains(&"key:4299"));

    // --bigkeys samples every type with SCAN, TYPE and the size commands.
    redis_cli(port, &["RPUSH", "biglist", "a", "b", "c"], b"");
    let big = redis_cli(port, &["--bigkeys"], b"");
    assert!(
        big.contains("Biggest   list found '\"biglist\"' has 3 items"),
        "{big}"
    );
    assert!(big.contains("5002 strings"), "{big}");

    // --latency for about a second (it runs until stopped).
    let latency = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--latency", "--raw"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    // SAFETY: signals our own child.
    unsafe { libc::kill(latency.id() as libc::pid_t, libc::SIGINT) };
    let out = latency.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(fields.len(), 4, "min max avg samples: {text}");
    let samples: u64 = fields[3].parse().unwrap();
    assert!(samples > 10, "{text}");
}

#[test]
fn redis_benchmark_default_tests_complete_without_errors() {
    let server = ShoalServer::start(&[]);
    let out = Command::new("redis-benchmark")
        .args([
            "-p",
            &server.port.to_string(),
            "-q",
            "-n",
            "2000",
            "-c",
            "20",
        ])
        .output()
        .expect("redis-benchmark (apt-get install redis-tools)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stdout.to_lowercase().contains("error"), "{stdout}");
    assert!(stderr.trim().is_empty(), "{stderr}");
    let tests: Vec<&str> = stdout
        .split(['\r', '\n'])
        .filter(|l| l.contains("requests per second"))
        .collect();
    for name in [
        "PING_INLINE",
        "PING_MBULK",
        "SET",
        "GET",
        "INCR",
        "LPUSH",
        "RPUSH",
        "LPOP",
        "RPOP",
        "SADD",
        "HSET",
        "SPOP",
        "ZADD",
        "ZPOPMIN",
        "LPUSH (needed to benchmark LRANGE)",
        "LRANGE_100 (first 100 elements)",
        "LRANGE_300 (first 300 elements)",
        "LRANGE_500 (first 500 elements)",
        "LRANGE_600 (first 600 elements)",
        "MSET (10 keys)",
    ] {
        assert!(
            tests.iter().any(|l| l.starts_with(&format!("{name}: "))),
            "{name} missing from:\n{stdout}"
        );
    }
}
