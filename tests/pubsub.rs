//! Pub/sub with real clients: scripted sessions compared reply for reply with redis-server 7
//! (RESP2 and RESP3), redis-cli and redis-py subscribers, a slow subscriber disconnected at
//! its output limit while the others receive everything, and embedded subscriptions
//! exchanging messages with RESP clients.

mod common;

use common::{free_port, RedisServer, RespConn, ShoalServer, Value};
use shoal::pubsub::{Ended, Kind};
use shoal::{Config, Node};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One step of a scripted session on connection `conn`.
enum Step {
    /// Send a command, then read `replies` values.
    Call(usize, &'static str, usize),
    /// The same, with the replies' elements sorted (orders Redis leaves undefined).
    CallSorted(usize, &'static str, usize),
    /// Read `replies` more values (messages).
    Read(usize, usize),
    /// Send a command and read one reply, not compared (HELLO shows server details).
    Untested(usize, &'static str),
    /// Read messages until one on this channel (included).
    ReadUntil(usize, &'static str),
    /// Let time pass (keys expire).
    Sleep(u64),
}

use Step::*;

/// Runs `script` over `conns` connections to `port`; every value read, in order.
fn transcript(port: u16, conns: usize, script: &[Step]) -> Vec<(String, Value)> {
    let mut c: Vec<RespConn> = (0..conns)
        .map(|_| RespConn::connect(port).expect("connect"))
        .collect();
    let mut out = Vec::new();
    for step in script {
        let (conn, line, replies, sorted) = match *step {
            Call(conn, line, n) => (conn, Some(line), n, false),
            CallSorted(conn, line, n) => (conn, Some(line), n, true),
            Read(conn, n) => (conn, None, n, false),
            Untested(conn, line) => {
                let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
                c[conn].call(&args);
                continue;
            }
            ReadUntil(conn, channel) => {
                loop {
                    let value = c[conn].read();
                    out.push((format!("conn {conn}: (until {channel})"), value.clone()));
                    let Value::Array(parts) = value else { break };
                    if parts.iter().any(|p| *p == Value::Bulk(channel.into())) {
                        break;
                    }
                }
                continue;
            }
            Sleep(ms) => {
                std::thread::sleep(Duration::from_millis(ms));
                continue;
            }
        };
        if let Some(line) = line {
            let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
            c[conn].send(&args);
        }
        for _ in 0..replies {
            let value = c[conn].read();
            let value = if sorted { value.sorted() } else { value };
            out.push((format!("conn {conn}: {}", line.unwrap_or("(read)")), value));
        }
    }
    out
}

fn same_as_redis(conns: usize, script: &[Step]) {
    let redis = RedisServer::start();
    let port = free_port();
    let _node = Node::open(Config::new().port(port).bind(["127.0.0.1"])).expect("open node");
    let theirs = transcript(redis.port, conns, script);
    let ours = transcript(port, conns, script);
    let show = |t: &[(String, Value)]| -> Vec<String> {
        t.iter()
            .map(|(step, v)| format!("{step} -> {}", render(v)))
            .collect()
    };
    let (theirs, ours) = (show(&theirs), show(&ours));
    if let Some(i) = (0..theirs.len().max(ours.len())).find(|&i| theirs.get(i) != ours.get(i)) {
        let around = |t: &[String]| t[i.saturating_sub(3)..(i + 3).min(t.len())].join("\n  ");
        panic!(
            "redis and shoal differ at reply {i}:\n redis:\n  {}\n shoal:\n  {}",
            around(&theirs),
            around(&ours)
        );
    }
}

#[test]
fn resp2_sessions_match_redis() {
    same_as_redis(
        2,
        &[
            Call(0, "SUBSCRIBE news sport", 2),
            Call(0, "PSUBSCRIBE n* [a-c]?x h\\*llo [^z]ed", 4),
            Call(1, "PUBLISH news hi", 1),
            Read(0, 2),
            Call(1, "PUBLISH bbx m", 1),
            Read(0, 1),
            Call(1, "PUBLISH h*llo e", 1),
            Read(0, 1),
            Call(1, "PUBLISH hello e", 1),
            Call(1, "PUBLISH red x", 1),
            Read(0, 1),
            Call(1, "PUBLISH zed x", 1),
            Call(1, "PUBSUB NUMSUB news sport nope", 1),
            Call(1, "PUBSUB NUMPAT", 1),
            CallSorted(1, "PUBSUB CHANNELS", 1),
            Call(1, "PUBSUB CHANNELS s*", 1),
            Call(1, "PUBSUB CHANNELS a b", 1),
            Call(0, "GET k", 1),
            Call(0, "CLIENT LIST", 1),
            Call(0, "PING", 1),
            Call(0, "PING x", 1),
            Call(0, "UNSUBSCRIBE news", 1),
            Call(0, "PUNSUBSCRIBE n*", 1),
            Call(1, "PUBLISH news again", 1),
            Call(0, "PUNSUBSCRIBE", 3),
            Call(0, "UNSUBSCRIBE", 1),
            Call(0, "UNSUBSCRIBE", 1),
            Call(0, "GET k", 1),
            Call(0, "SSUBSCRIBE s1 s2", 2),
            Call(0, "SUBSCRIBE c", 1),
            Call(1, "SPUBLISH s1 m", 1),
            Read(0, 1),
            Call(1, "PUBLISH s1 m", 1),
            CallSorted(1, "PUBSUB SHARDCHANNELS", 1),
            Call(1, "PUBSUB SHARDNUMSUB s1 x", 1),
            Call(0, "SUNSUBSCRIBE s1", 1),
            Call(0, "RESET", 1),
            Call(1, "PUBSUB SHARDNUMSUB s2", 1),
            Call(1, "PUBSUB NUMSUB c", 1),
            Call(1, "SUBSCRIBE", 1),
            Call(1, "UNSUBSCRIBE", 1),
            Call(1, "SUNSUBSCRIBE x", 1),
            Call(1, "PUBSUB NUMSUB", 1),
            Call(1, "PUBSUB FOO", 1),
            Call(1, "PUBSUB NUMPAT x", 1),
            Call(1, "MULTI", 1),
            Call(1, "SSUBSCRIBE x", 1),
            Call(1, "EXEC", 1),
            Call(0, "SUBSCRIBE a a", 2),
            Call(0, "QUIT", 1),
        ],
    );
}

#[test]
fn resp3_sessions_match_redis() {
    same_as_redis(
        2,
        &[
            Untested(0, "HELLO 3"),
            Call(0, "SUBSCRIBE x", 1),
            Call(0, "PSUBSCRIBE x*", 1),
            Call(0, "GET k", 1),
            Call(1, "PUBLISH x1 m", 1),
            Read(0, 1),
            // Publishing to itself: the message comes before PUBLISH's count.
            Call(0, "PUBLISH x self", 3),
            Call(0, "PING", 1),
            Call(0, "SSUBSCRIBE s", 1),
            Call(1, "SPUBLISH s m", 1),
            Read(0, 1),
            Call(0, "PUNSUBSCRIBE", 1),
            Call(0, "UNSUBSCRIBE", 1),
            Call(0, "SUNSUBSCRIBE", 1),
            Call(0, "SUNSUBSCRIBE", 1),
        ],
    );
}

/// A RESP3 subscriber blocked in BLPOP receives messages while it waits, as in Redis.
#[test]
fn blocked_resp3_subscribers_get_pushes_while_waiting() {
    same_as_redis(
        2,
        &[
            Untested(0, "HELLO 3"),
            Call(0, "SUBSCRIBE x", 1),
            Call(0, "BLPOP k 0", 0),
            Sleep(100),
            Call(1, "PUBLISH x while-blocked", 1),
            Read(0, 1),
            Call(1, "RPUSH k v", 1),
            Read(0, 1),
        ],
    );
}

/// Keyspace notifications for every event class, as Redis publishes them, in order.
#[test]
fn keyspace_notifications_match_redis() {
    let writes = [
        "SET s v",
        "SET s v EX 100",
        "SETEX s2 100 v",
        "APPEND s x",
        "SETRANGE s 0 y",
        "INCR n",
        "INCRBY n 2",
        "DECR n",
        "INCRBYFLOAT f 1.5",
        "GETDEL s",
        "MSET a 1 b 2",
        "EXPIRE a 100",
        "PERSIST a",
        "RENAME a c",
        "DEL b c nokey",
        "LPUSH l a b c",
        "RPUSH l d",
        "LPOP l",
        "RPOP l",
        "LINSERT l BEFORE b x",
        "LSET l 0 y",
        "LTRIM l 0 1",
        "LREM l 0 y",
        "LMOVE l l2 LEFT RIGHT",
        "RPOPLPUSH l2 l",
        "LPOP l",
        "SADD st a b c",
        "SREM st a",
        "SMOVE st st2 b",
        "SPOP st",
        "SINTERSTORE d st2 st2",
        "SPOP st2 5",
        "HSET h f 1",
        "HINCRBY h f 2",
        "HINCRBYFLOAT h f 0.5",
        "HDEL h f",
        "ZADD z 1 a 2 b",
        "ZINCRBY z 1 a",
        "ZADD z INCR 1 a",
        "ZREM z a",
        "ZREMRANGEBYSCORE z 0 10",
        "ZADD z 1 a 2 b 3 c",
        "ZPOPMIN z",
        "ZPOPMAX z",
        "ZUNIONSTORE u 1 z",
        "ZREMRANGEBYRANK u 0 -1",
        "COPY z z3",
        "MOVE z3 1",
        "GET nokey",
        "SET e v PX 1",
    ];
    let mut script = vec![
        Call(1, "CONFIG SET notify-keyspace-events KEAnm", 1),
        Call(0, "PSUBSCRIBE __key*__:* end", 2),
    ];
    script.extend(writes.iter().map(|w| Call(1, w, 1)));
    script.extend([
        Sleep(200),
        Call(1, "GET e", 1),
        Call(1, "PUBLISH end end", 1),
        ReadUntil(0, "end"),
    ]);
    same_as_redis(2, &script);
}

/// Messages published inside MULTI reach a RESP3 subscriber after EXEC's reply, never inside
/// its array (Redis 7.2's order).
#[test]
fn messages_to_self_follow_exec() {
    let port = free_port();
    let _node = Node::open(Config::new().port(port).bind(["127.0.0.1"])).expect("open node");
    let mut c = RespConn::connect(port).expect("connect");
    assert!(matches!(c.call(&[b"HELLO", b"3"]), Value::Map(_)));
    c.call(&[b"SUBSCRIBE", b"x"]);
    c.call(&[b"MULTI"]);
    c.call(&[b"PUBLISH", b"x", b"one"]);
    c.call(&[b"PING", b"abc"]);
    let exec = c.call(&[b"EXEC"]);
    assert_eq!(
        exec,
        Value::Array(vec![Value::Int(1), Value::Bulk(b"abc".to_vec())])
    );
    let message = c.read();
    assert_eq!(
        message,
        Value::Push(vec![
            Value::Bulk(b"message".to_vec()),
            Value::Bulk(b"x".to_vec()),
            Value::Bulk(b"one".to_vec())
        ])
    );
}

/// redis-cli in subscribe mode prints what it receives, plain and by pattern.
#[test]
fn redis_cli_subscribers_receive() {
    let server = ShoalServer::start(&[]);
    let port = server.port.to_string();
    let spawn = |args: &[&str]| {
        Command::new("redis-cli")
            .args(["-p", &port])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("redis-cli (apt-get install redis-tools)")
    };
    let mut plain = spawn(&["SUBSCRIBE", "ch"]);
    let mut pattern = spawn(&["PSUBSCRIBE", "c?"]);
    let mut publisher = RespConn::connect(server.port).expect("connect");
    wait_until(|| publisher.call(&[b"PUBSUB", b"NUMSUB", b"ch"]) == numsub("ch", 1));
    wait_until(|| publisher.call(&[b"PUBSUB", b"NUMPAT"]) == Value::Int(1));
    assert_eq!(
        publisher.call(&[b"PUBLISH", b"ch", b"hello world"]),
        Value::Int(2)
    );
    publisher.call(&[b"CLIENT", b"KILL", b"TYPE", b"pubsub"]);
    let read = |child: &mut std::process::Child| {
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let _ = child.wait();
        out
    };
    assert_eq!(
        read(&mut plain),
        "subscribe\nch\n1\nmessage\nch\nhello world\n"
    );
    assert_eq!(
        read(&mut pattern),
        "psubscribe\nc?\n1\npmessage\nc?\nch\nhello world\n"
    );
}

/// redis-py subscribers in RESP2 and RESP3: channel, pattern and shard subscriptions.
#[test]
fn redis_py_subscribers_receive() {
    let server = ShoalServer::start(&[]);
    let script = r#"
import sys, time, redis
port = int(sys.argv[1])
pub = redis.Redis(port=port)
for proto in (2, 3):
    r = redis.Redis(port=port, protocol=proto)
    p = r.pubsub(ignore_subscribe_messages=True)
    p.subscribe("plain")
    p.psubscribe("pat.*")
    p.ssubscribe("shard")
    deadline = time.time() + 5
    while pub.pubsub_numsub("plain")[0][1] != 1 and time.time() < deadline:
        p.get_message(timeout=0.05)
    assert pub.publish("plain", "a") == 1
    assert pub.publish("pat.x", "b") == 1
    assert pub.spublish("shard", "c") == 1
    got = []
    while len(got) < 3 and time.time() < deadline:
        m = p.get_message(timeout=0.2)
        if m:
            got.append((m["type"], m["channel"], m["data"]))
    assert got == [("message", b"plain", b"a"), ("pmessage", b"pat.x", b"b"),
                   ("smessage", b"shard", b"c")], (proto, got)
    p.close()
print("ok")
"#;
    common::run_python_ok("redis-py subscribers", script, &[server.port.to_string()]);
}

/// A subscriber that stops reading is disconnected at `client-output-buffer-limit pubsub`;
/// one that reads receives every message, in order, meanwhile and after.
#[test]
fn slow_subscriber_is_disconnected_at_its_limit() {
    let server = ShoalServer::start(&["--client-output-buffer-limit", "pubsub 256kb 0 0"]);
    let mut slow = RespConn::connect(server.port).expect("connect");
    slow.call(&[b"CLIENT", b"SETNAME", b"slow"]);
    slow.call(&[b"SUBSCRIBE", b"ch"]);
    let mut fast = RespConn::connect(server.port).expect("connect");
    fast.call(&[b"CLIENT", b"SETNAME", b"fast"]);
    fast.call(&[b"SUBSCRIBE", b"ch"]);
    let reader = std::thread::spawn(move || {
        let mut received = 0u64;
        loop {
            let Value::Array(parts) = fast.read() else {
                panic!("not a message")
            };
            let Value::Bulk(payload) = &parts[2] else {
                panic!("no payload")
            };
            if payload == b"end" {
                return (received, fast);
            }
            assert_eq!(&payload[..10], format!("{received:010}").as_bytes());
            received += 1;
        }
    });
    let mut publisher = RespConn::connect(server.port).expect("connect");
    let mut sent = 0u64;
    let mut publish_batch = |publisher: &mut RespConn| {
        let mut batch = Vec::new();
        for _ in 0..1000 {
            let payload = format!("{sent:010}{}", "x".repeat(1000));
            shoal::resp::encode_command(&[b"PUBLISH", b"ch", payload.as_bytes()], &mut batch);
            sent += 1;
        }
        publisher.writer.write_all(&batch).unwrap();
        for _ in 0..1000 {
            publisher.read();
        }
    };
    // Loopback buffers several MB in the kernel before the server holds anything.
    for _ in 0..200 {
        if subscriber_names(&mut publisher) == ["fast"] {
            break;
        }
        publish_batch(&mut publisher);
    }
    assert_eq!(
        subscriber_names(&mut publisher),
        ["fast"],
        "the slow subscriber is cut off, the other one stays"
    );
    publish_batch(&mut publisher);
    publisher.call(&[b"PUBLISH", b"ch", b"end"]);
    let (received, _fast) = reader
        .join()
        .expect("the reading subscriber got every message");
    assert_eq!(received, sent);
    // The slow one's connection ends once it read what the kernel had buffered.
    let end = loop {
        if let Err(e) = slow.try_read() {
            break e.kind();
        }
    };
    let cut = [
        std::io::ErrorKind::UnexpectedEof,
        std::io::ErrorKind::ConnectionReset,
    ];
    assert!(cut.contains(&end), "not cut off but {end:?}");
}

/// The names of the `pubsub` clients.
fn subscriber_names(conn: &mut RespConn) -> Vec<String> {
    let Value::Bulk(clients) = conn.call(&[b"CLIENT", b"LIST", b"TYPE", b"pubsub"]) else {
        panic!("CLIENT LIST is a bulk string");
    };
    String::from_utf8_lossy(&clients)
        .lines()
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("name=")))
        .map(str::to_string)
        .collect()
}

/// Embedded subscriptions and RESP clients see each other's messages; patterns and shard
/// channels work in process; a subscriber that does not read is dropped and told why.
#[test]
fn embedded_and_resp_subscribers_meet() {
    let port = free_port();
    let mut config = Config::new().port(port).bind(["127.0.0.1"]);
    config.output_limits.pubsub.hard_bytes = 64 * 1024;
    let node = Node::open(config).expect("open node");
    let plain = node.subscribe(&["news"]);
    let pattern = node.psubscribe(&["n*"]);
    let shard = node.ssubscribe(&["s"]);
    let mut resp = RespConn::connect(port).expect("connect");
    assert_eq!(
        resp.call(&[b"PUBLISH", b"news", b"from resp"]),
        Value::Int(2)
    );
    let m = plain.recv().expect("a message");
    assert_eq!(
        (m.channel(), m.payload(), m.kind()),
        (&b"news"[..], &b"from resp"[..], Kind::Channel)
    );
    let m = pattern
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .unwrap();
    assert_eq!((m.pattern(), m.channel()), (Some(&b"n*"[..]), &b"news"[..]));
    assert_eq!(resp.call(&[b"SPUBLISH", b"s", b"x"]), Value::Int(1));
    assert_eq!(shard.try_recv().unwrap().unwrap().payload(), b"x");
    assert!(shard.try_recv().unwrap().is_none());

    let mut subscriber = RespConn::connect(port).expect("connect");
    subscriber.call(&[b"SUBSCRIBE", b"app"]);
    assert_eq!(node.publish("app", "from the app"), 1);
    assert_eq!(
        subscriber.read(),
        Value::Array(vec![
            Value::Bulk(b"message".to_vec()),
            Value::Bulk(b"app".to_vec()),
            Value::Bulk(b"from the app".to_vec())
        ])
    );

    // `plain` is left unread past its limit: dropped, and told so once it read the rest.
    let payload = vec![0u8; 1024];
    for _ in 0..200 {
        node.publish("news", &payload);
    }
    let mut read = 0;
    let ended = loop {
        match plain.recv() {
            Ok(_) => read += 1,
            Err(why) => break why,
        }
    };
    assert_eq!(ended, Ended::Lagged);
    assert!(read < 200, "read {read}");
    // The pattern subscriber has the same limit and was dropped as well; dropping the
    // subscriptions unsubscribes them.
    drop(pattern);
    drop(plain);
    assert_eq!(
        resp.call(&[b"PUBSUB", b"NUMSUB", b"news"]),
        numsub("news", 0)
    );

    // An async consumer, then the node closing.
    let mut stream = node.subscribe(&["async"]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let publisher = node.clone();
    let got = runtime.block_on(async move {
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            publisher.publish("async", "later")
        });
        let m = stream.next_message().await.expect("a message");
        assert_eq!(sender.join().unwrap(), 1);
        (m.payload().to_vec(), stream)
    });
    assert_eq!(got.0, b"later");
    drop(node);
    assert_eq!(got.1.recv().unwrap_err(), Ended::Closed);
}

/// A reply as text, for failure messages.
fn render(v: &Value) -> String {
    match v {
        Value::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Array(items) | Value::Push(items) | Value::Set(items) => {
            format!(
                "[{}]",
                items.iter().map(render).collect::<Vec<_>>().join(" ")
            )
        }
        other => format!("{other:?}"),
    }
}

fn numsub(channel: &str, count: i64) -> Value {
    Value::Array(vec![Value::Bulk(channel.into()), Value::Int(count)])
}

fn wait_until(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A cluster of 3 masters with a replica each: PUBLISH on any node reaches the subscribers on
/// every node, and goes only to the nodes that have subscribers for it (a node without any
/// receives nothing); SSUBSCRIBE is served by the slot's master and replica (MOVED
/// elsewhere), SPUBLISH reaches both; a failover unsubscribes the old master's shard
/// subscribers.
#[test]
fn cluster_publish_reaches_only_interested_nodes() {
    use common::cluster::{call, cluster, nodes, wait_until};
    let (servers, _) = cluster(6, 6, &["--cluster-replicas", "1"]);
    wait_until("every node sees 6 nodes and cluster_state:ok", || {
        servers.iter().all(|s| {
            let info = call(s.port, &["CLUSTER", "INFO"]);
            info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:6")
        })
    });
    let port = |i: usize| servers[i].port;
    let mut plain = subscriber(port(0), &["SUBSCRIBE", "news"]);
    let mut pattern = subscriber(port(1), &["PSUBSCRIBE", "ne*"]);
    let publisher = port(3);
    // Until the others heard what nodes 0 and 1 listen to, everything goes everywhere.
    probe(&mut plain, publisher, "PUBLISH", "news");
    probe(&mut pattern, publisher, "PUBLISH", "news");
    let received = |i: usize| stat(port(i), "cluster_stats_messages_publish_received");
    wait_until("the publisher heard that node 2 listens to nothing", || {
        let before = received(2);
        call(publisher, &["PUBLISH", "news", "probe"]);
        std::thread::sleep(Duration::from_millis(50));
        received(2) == before
    });
    drain(&mut plain);
    drain(&mut pattern);
    let idle_before = received(2);
    let sent_before = stat(publisher, "cluster_stats_messages_publish_sent");
    for i in 0..10 {
        call(publisher, &["PUBLISH", "news", &format!("m{i}")]);
    }
    for i in 0..10 {
        assert_eq!(last(plain.read()), format!("m{i}"));
        assert_eq!(last(pattern.read()), format!("m{i}"));
    }
    assert_eq!(
        received(2),
        idle_before,
        "a node without subscribers got messages"
    );
    assert_eq!(
        stat(publisher, "cluster_stats_messages_publish_sent") - sent_before,
        20,
        "each message went to the two interested nodes only"
    );

    // A pipelined burst arrives whole and in order, and a message larger than a bus frame
    // crosses too.
    let mut burst = RespConn::connect(publisher).expect("connect");
    let mut pipeline = Vec::new();
    for i in 0..5000 {
        let payload = format!("b{i}");
        shoal::resp::encode_command(&[b"PUBLISH", b"news", payload.as_bytes()], &mut pipeline);
    }
    let big = "x".repeat(200_000);
    shoal::resp::encode_command(&[b"PUBLISH", b"news", big.as_bytes()], &mut pipeline);
    burst.writer.write_all(&pipeline).unwrap();
    for i in 0..5000 {
        assert_eq!(last(plain.read()), format!("b{i}"));
        assert_eq!(last(pattern.read()), format!("b{i}"));
    }
    assert_eq!(last(plain.read()), big);
    assert_eq!(last(pattern.read()), big);
    assert_eq!(
        received(2),
        idle_before,
        "a node without subscribers got messages"
    );

    // Shard channels: the master of the slot and its replica serve them.
    let slot = call(port(0), &["CLUSTER", "KEYSLOT", "sc"]);
    let table = nodes(port(0));
    let slot: u16 = slot.parse().unwrap();
    let serves = |slots: &str| {
        slots.split(' ').any(|r| {
            let (a, b) = r.split_once('-').unwrap_or((r, r));
            (a.parse::<u16>().unwrap_or(u16::MAX)..=b.parse().unwrap_or(0)).contains(&slot)
        })
    };
    let master = table
        .iter()
        .find(|n| serves(&n.4))
        .expect("an owner")
        .clone();
    let replica = table
        .iter()
        .find(|n| n.3 == master.0)
        .expect("a replica")
        .clone();
    let other = table
        .iter()
        .find(|n| n.0 != master.0 && n.0 != replica.0)
        .expect("another node");
    let mut elsewhere = RespConn::connect(other.1).expect("connect");
    let moved = elsewhere.call(&[b"SSUBSCRIBE", b"sc"]);
    assert!(
        matches!(&moved, Value::Error(e) if e.starts_with("MOVED")),
        "{moved:?}"
    );
    let mut on_master = subscriber(master.1, &["SSUBSCRIBE", "sc"]);
    let mut on_replica = subscriber(replica.1, &["SSUBSCRIBE", "sc"]);
    probe(&mut on_master, master.1, "SPUBLISH", "sc");
    probe(&mut on_replica, master.1, "SPUBLISH", "sc");
    drain(&mut on_master);
    drain(&mut on_replica);
    assert_eq!(call(master.1, &["SPUBLISH", "sc", "hello"]), "1");
    assert_eq!(last(on_master.read()), "hello");
    assert_eq!(last(on_replica.read()), "hello");

    // The replica takes over: the old master's shard subscriber is unsubscribed.
    assert_eq!(call(replica.1, &["CLUSTER", "FAILOVER"]), "OK");
    let expected = Value::Array(vec![
        Value::Bulk(b"sunsubscribe".to_vec()),
        Value::Bulk(b"sc".to_vec()),
        Value::Int(0),
    ]);
    assert_eq!(on_master.read(), expected);
}

/// A connection to `port` that ran `subscribe` (one channel or pattern).
fn subscriber(port: u16, subscribe: &[&str]) -> RespConn {
    let mut conn = RespConn::connect(port).expect("connect");
    let args: Vec<&[u8]> = subscribe.iter().map(|a| a.as_bytes()).collect();
    assert!(matches!(conn.call(&args), Value::Array(_)));
    conn
}

/// Publishes probes on `channel` from `publisher` until `subscriber` receives one (the
/// cluster learned where it listens).
fn probe(subscriber: &mut RespConn, publisher: u16, command: &str, channel: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        common::cluster::call(publisher, &[command, channel, "probe"]);
        if read_within(subscriber, 100).is_some() {
            return;
        }
        assert!(Instant::now() < deadline, "no probe reached the subscriber");
    }
}

/// Reads and drops what arrives until nothing comes for a while.
fn drain(subscriber: &mut RespConn) {
    while read_within(subscriber, 300).is_some() {}
}

fn read_within(conn: &mut RespConn, ms: u64) -> Option<Value> {
    conn.writer
        .set_read_timeout(Some(Duration::from_millis(ms)))
        .unwrap();
    let value = conn.try_read().ok();
    conn.writer
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    value
}

/// The payload of a message (its last element).
fn last(message: Value) -> String {
    match message {
        Value::Array(mut parts) => match parts.pop() {
            Some(Value::Bulk(b)) => String::from_utf8_lossy(&b).into_owned(),
            other => panic!("not a message: {other:?}"),
        },
        other => panic!("not a message: {other:?}"),
    }
}

/// A CLUSTER INFO counter (0 when Redis would not list it).
fn stat(port: u16, name: &str) -> u64 {
    common::cluster::call(port, &["CLUSTER", "INFO"])
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
