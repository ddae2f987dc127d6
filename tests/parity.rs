//! Differential test against redis-server 7: the same seeded random command stream goes to a
//! real redis-server and to the Shoal engine; every reply must match byte for byte (after
//! sorting replies whose order Redis leaves undefined), in RESP2 and in RESP3, and the two
//! datasets must have the same `DEBUG DIGEST` throughout.
//!
//! `SHOAL_PARITY_STEPS` sets the number of commands per run (default 6000).

mod common;

use common::gen::{Compare, Gen, KEYS};
use common::{shoal_value, RedisServer, RespConn, Value};
use shoal::resp::Protocol;
use shoal::{Client, Config, Node};

fn normalize(v: Value, how: Compare) -> Value {
    match (how, v) {
        (Compare::Sorted, v) => v.sorted(),
        (Compare::ScanSorted, Value::Array(mut items)) if items.len() == 2 => {
            let inner = items.pop().map(Value::sorted);
            items.extend(inner);
            Value::Array(items)
        }
        (Compare::Ttl, Value::Int(n)) if n >= 0 => Value::Int(0),
        (_, v) => v,
    }
}

fn run(seed: u64, proto: Protocol, steps: usize) {
    let server = RedisServer::start();
    let mut redis = RespConn::connect(server.port).expect("connect to redis-server");
    if proto == Protocol::Resp3 {
        assert!(matches!(redis.call(&[b"HELLO", b"3"]), Value::Map(_)));
    }
    let node = Node::open(Config::new().active_expire(false)).expect("open node");
    let engine = node.engine().clone();
    let mut client = Client::new(proto);
    let mut gen = Gen::new(seed);
    let mut history: Vec<String> = Vec::new();
    for step in 0..steps {
        let (args, how) = gen.command();
        let argv: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        history.push(args.join(" "));
        let expected = normalize(redis.call(&argv), how);
        let reply = engine.execute_waiting(&mut client, &argv);
        let got = normalize(shoal_value(&reply, proto), how);
        if expected != got {
            let key = args
                .get(if args[0] == "OBJECT" { 2 } else { 1 })
                .cloned()
                .unwrap_or_default();
            let mentions: Vec<String> = history
                .iter()
                .filter(|c| {
                    c.split(' ').any(|w| w == key)
                        || c.starts_with("SWAPDB")
                        || c.starts_with("SELECT")
                })
                .cloned()
                .collect();
            let mut recent = &mentions[mentions.len().saturating_sub(25)..];
            let since_multi;
            if args[0] == "EXEC" {
                let start = history.iter().rposition(|c| c == "MULTI").unwrap_or(0);
                since_multi = history[start..].to_vec();
                recent = &since_multi;
            }
            panic!(
                "seed {seed} {proto:?} step {step}: `{}`\n redis: {expected:?}\n shoal: {got:?}\n recent commands:\n  {}",
                args.join(" "),
                recent.join("\n  ")
            );
        }
        if step % digest_every() == digest_every() - 1 && !gen.in_multi {
            let theirs = redis.call(&[b"DEBUG", b"DIGEST"]);
            let ours = Value::Status(node.digest());
            if theirs != ours {
                panic!(
                    "seed {seed} {proto:?}: datasets differ after step {step}: {}",
                    diff_keys(&mut redis, &engine, proto, &history)
                );
            }
        }
    }
}

/// Names the keys whose value digests differ, with the commands that touched them.
fn diff_keys(
    redis: &mut RespConn,
    engine: &shoal::Engine,
    proto: Protocol,
    history: &[String],
) -> String {
    let mut report = String::new();
    let mut ours = Client::new(proto);
    for db in ["0", "1"] {
        redis.call(&[b"SELECT", db.as_bytes()]);
        engine.execute_waiting(&mut ours, &[b"SELECT", db.as_bytes()]);
        for key in KEYS {
            let probe: [&[u8]; 3] = [b"DEBUG", b"DIGEST-VALUE", key.as_bytes()];
            let theirs = redis.call(&probe);
            let mine = shoal_value(&engine.execute_waiting(&mut ours, &probe), proto);
            if theirs != mine {
                for probe in [
                    &["TYPE", key][..],
                    &["PTTL", key],
                    &["GET", key],
                    &["LRANGE", key, "0", "-1"],
                    &["SMEMBERS", key],
                    &["HGETALL", key],
                    &["ZRANGE", key, "0", "-1", "WITHSCORES"],
                ] {
                    let argv: Vec<&[u8]> = probe.iter().map(|a| a.as_bytes()).collect();
                    let t = redis.call(&argv);
                    let m = shoal_value(&engine.execute_waiting(&mut ours, &argv), proto);
                    report += &format!("\n   {probe:?}: redis {t:?} / shoal {m:?}");
                }
                let touched: Vec<&String> = history
                    .iter()
                    .filter(|c| c.split(' ').any(|w| w == *key))
                    .collect();
                let recent = &touched[touched.len().saturating_sub(12)..];
                report += &format!(
                    "\n db {db} key {key}: redis {theirs:?} shoal {mine:?}\n   {}",
                    recent
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join("\n   ")
                );
            }
        }
    }
    report
}

/// How often the datasets' digests are compared (`SHOAL_PARITY_DIGEST_EVERY`, default 50).
fn digest_every() -> usize {
    std::env::var("SHOAL_PARITY_DIGEST_EVERY")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(50)
}

fn steps() -> usize {
    std::env::var("SHOAL_PARITY_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6000)
}

#[test]
fn random_commands_match_redis_resp2() {
    for seed in [1, 2, 3] {
        run(seed, Protocol::Resp2, steps());
    }
}

#[test]
fn random_commands_match_redis_resp3() {
    for seed in [11, 12, 13] {
        run(seed, Protocol::Resp3, steps());
    }
}

/// Sorted sets of thousands of members span many nodes of the ordered index (the random
/// stream above keeps sets small): every rank, range and pop over them must match Redis, while
/// they grow with score ties, move members by score updates, and shrink to a fraction.
#[test]
fn large_sorted_sets_match_redis() {
    let server = RedisServer::start();
    let mut redis = RespConn::connect(server.port).expect("connect to redis-server");
    let node = Node::open(Config::new()).expect("open node");
    let engine = node.engine().clone();
    let mut client = Client::new(Protocol::Resp2);
    let mut rng = fastrand::Rng::with_seed(5);
    let mut both = |args: Vec<String>| {
        let argv: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let theirs = redis.call(&argv);
        let ours = shoal_value(&engine.execute_waiting(&mut client, &argv), Protocol::Resp2);
        assert_eq!(theirs, ours, "`{}`", args.join(" "));
    };
    let queries = |rng: &mut fastrand::Rng| -> Vec<Vec<String>> {
        let (a, b) = (rng.i32(-4000..4000), rng.i32(-4000..4000));
        let (lo, hi) = (rng.u32(0..50), rng.u32(0..50));
        let m = format!("m{}", rng.u32(0..6000));
        [
            format!("ZRANGE big {a} {b} WITHSCORES"),
            format!("ZRANGE big {a} {b} REV"),
            format!("ZRANGE big {lo} {hi} BYSCORE LIMIT {} 40", rng.u32(0..100)),
            format!("ZRANGE big ({hi} {lo} BYSCORE REV WITHSCORES"),
            format!("ZCOUNT big {lo} ({hi}"),
            format!("ZRANK big {m}"),
            format!("ZREVRANK big {m}"),
            "ZCARD big".to_string(),
        ]
        .iter()
        .map(|q| q.split(' ').map(str::to_string).collect())
        .collect()
    };
    for round in 0..6000 {
        let member = format!("m{}", rng.u32(0..6000));
        // Few distinct scores, so members tie on score and order by bytes.
        let score = if rng.bool() {
            rng.u32(0..50).to_string()
        } else {
            format!("{:.3}", rng.f64() * 50.0)
        };
        let op = if rng.u8(0..10) < 8 { "ZADD" } else { "ZINCRBY" };
        both(vec![op.into(), "big".into(), score, member]);
        if round % 500 == 0 {
            for q in queries(&mut rng) {
                both(q);
            }
        }
    }
    both(vec![
        "ZREMRANGEBYRANK".into(),
        "big".into(),
        "100".into(),
        "300".into(),
    ]);
    both(vec![
        "ZREMRANGEBYSCORE".into(),
        "big".into(),
        "10".into(),
        "(12".into(),
    ]);
    for _ in 0..3 {
        both(vec!["ZPOPMIN".into(), "big".into(), "7".into()]);
        both(vec!["ZPOPMAX".into(), "big".into()]);
    }
    // Shrink to a few hundred members, checking along the way.
    for i in 0..6000 {
        if i % 13 != 0 {
            both(vec!["ZREM".into(), "big".into(), format!("m{i}")]);
        }
        if i % 1000 == 0 {
            for q in queries(&mut rng) {
                both(q);
            }
        }
    }
    both(vec![
        "ZRANGE".into(),
        "big".into(),
        "0".into(),
        "-1".into(),
        "WITHSCORES".into(),
    ]);
    both(vec!["DEBUG".into(), "DIGEST-VALUE".into(), "big".into()]);
}
