//! Randomized command sequences against the engine, checking invariants after every step, and
//! the SCAN guarantee while collections grow and shrink.

mod common;

use common::gen::{Gen, KEYS};
use proptest::prelude::*;
use shoal::log::Offset;
use shoal::resp::Protocol;
use shoal::{Client, Config, Node, Reply};
use std::collections::HashSet;
use std::time::Duration;

fn int(r: Reply) -> i64 {
    match r {
        Reply::Int(n) => n,
        other => panic!("expected an integer, got {other:?}"),
    }
}

fn items(r: Reply) -> Vec<Reply> {
    match r {
        Reply::Array(v) | Reply::Set(v) => v,
        other => panic!("expected an array, got {other:?}"),
    }
}

/// Checks the invariants of every key of the generator's pool, in databases 0 and 1; with
/// `scan`, also that SCAN returns every key.
fn check_invariants(node: &Node, scan: bool) -> Result<(), TestCaseError> {
    let mut s = node.session();
    for db in ["0", "1"] {
        s.execute(&["SELECT", db]);
        for key in KEYS {
            let kind = s.execute(&["TYPE", key]);
            match kind {
                Reply::Status(t) if t == "list" => {
                    let len = int(s.execute(&["LLEN", key]));
                    prop_assert_eq!(
                        len as usize,
                        items(s.execute(&["LRANGE", key, "0", "-1"])).len()
                    );
                    prop_assert!(len > 0, "empty lists must not exist");
                }
                Reply::Status(t) if t == "zset" => {
                    let card = int(s.execute(&["ZCARD", key]));
                    let pairs = items(s.execute(&["ZRANGE", key, "0", "-1", "WITHSCORES"]));
                    prop_assert_eq!(pairs.len() as i64, card);
                    prop_assert!(card > 0);
                    prop_assert_eq!(int(s.execute(&["ZCOUNT", key, "-inf", "+inf"])), card);
                    let mut last = f64::NEG_INFINITY;
                    for (rank, pair) in pairs.into_iter().enumerate() {
                        let [Reply::Bulk(m), Reply::Double(score)] =
                            <[Reply; 2]>::try_from(items(pair)).expect("pair")
                        else {
                            panic!("bad pair");
                        };
                        prop_assert!(score >= last, "scores out of order");
                        last = score;
                        prop_assert_eq!(
                            int(s.execute(&[b"ZRANK".as_ref(), key.as_bytes(), &m])),
                            rank as i64
                        );
                        prop_assert_eq!(
                            int(s.execute(&[b"ZREVRANK".as_ref(), key.as_bytes(), &m])),
                            card - 1 - rank as i64
                        );
                        prop_assert_eq!(
                            s.execute(&[b"ZSCORE".as_ref(), key.as_bytes(), &m]),
                            Reply::Double(score)
                        );
                    }
                }
                Reply::Status(t) if t == "set" => {
                    let members = items(s.execute(&["SMEMBERS", key]));
                    prop_assert_eq!(members.len() as i64, int(s.execute(&["SCARD", key])));
                    prop_assert!(!members.is_empty());
                }
                Reply::Status(t) if t == "hash" => {
                    let len = int(s.execute(&["HLEN", key]));
                    prop_assert_eq!(items(s.execute(&["HKEYS", key])).len() as i64, len);
                    prop_assert!(len > 0);
                }
                Reply::Status(t) if t == "string" => {
                    let Reply::Bulk(v) = s.execute(&["GET", key]) else {
                        panic!("string without value");
                    };
                    prop_assert_eq!(int(s.execute(&["STRLEN", key])), v.len() as i64);
                }
                Reply::Status(t) => prop_assert_eq!(t.as_ref(), "none"),
                other => panic!("{other:?}"),
            }
        }
        if !scan {
            continue;
        }
        // SCAN with a tiny COUNT returns every key of the database.
        let mut seen = HashSet::new();
        let mut cursor = "0".to_string();
        loop {
            let reply = items(s.execute(&["SCAN", &cursor, "COUNT", "2"]));
            let Reply::Bulk(next) = &reply[0] else {
                panic!("cursor")
            };
            for k in items(reply[1].clone()) {
                let Reply::Bulk(k) = k else { panic!("key") };
                seen.insert(k.to_vec());
            }
            cursor = String::from_utf8(next.to_vec()).unwrap();
            if cursor == "0" {
                break;
            }
        }
        prop_assert_eq!(seen.len() as i64, int(s.execute(&["DBSIZE"])));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn random_sequences_keep_invariants_and_replay_exactly(seeds in proptest::collection::vec(any::<u64>(), 1..300)) {
        let node = Node::open(Config::new().active_expire(false)).expect("open");
        let engine = node.engine().clone();
        let mut client = Client::new(Protocol::Resp3);
        for (step, seed) in seeds.iter().enumerate() {
            let (args, _) = Gen::new(*seed).command();
            let argv: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            engine.execute_waiting(&mut client, &argv);
            if !client.in_multi() {
                check_invariants(&node, step % 25 == 0 || step + 1 == seeds.len())?;
            }
        }
        // The log replays into the same dataset.
        let mut reader = engine.log().reader(Offset(0), shoal::log::Keep::Retained).expect("log retained");
        let mut bytes = Vec::new();
        loop {
            let chunk = reader.read(1 << 20, Duration::ZERO).expect("read");
            if chunk.is_empty() { break; }
            bytes.extend_from_slice(&chunk);
        }
        let replica = Node::open(Config::new().active_expire(false)).expect("open");
        replica.engine().set_passive_expiry(true);
        let applied = replica.engine().apply_stream(&mut Client::new(Protocol::Resp2), &bytes);
        prop_assert!(applied.malformed.is_none(), "{:?}", applied.malformed);
        prop_assert_eq!(applied.errors, 0, "replay failed: {:?}", applied.first_error);
        prop_assert_eq!(
            replica.digest_with_expiry(),
            node.digest_with_expiry()
        );
    }
}

/// Scans `command key cursor COUNT 10` (or SCAN without a key) until done, calling `between`
/// after every call; returns every element seen (members only for HSCAN/ZSCAN pairs).
fn scan_all(
    node: &Node,
    command: &str,
    key: Option<&str>,
    pairs: bool,
    mut between: impl FnMut(usize),
) -> HashSet<Vec<u8>> {
    let mut seen = HashSet::new();
    let mut cursor = "0".to_string();
    let mut call = 0;
    loop {
        let mut args = vec![command.to_string()];
        args.extend(key.map(String::from));
        args.extend([cursor.clone(), "COUNT".into(), "10".into()]);
        let reply = items(node.execute(&args));
        let Reply::Bulk(next) = &reply[0] else {
            panic!("cursor")
        };
        let elements = items(reply[1].clone());
        for (i, e) in elements.into_iter().enumerate() {
            if pairs && i % 2 == 1 {
                continue;
            }
            let Reply::Bulk(e) = e else { panic!("element") };
            seen.insert(e.to_vec());
        }
        cursor = String::from_utf8(next.to_vec()).unwrap();
        if cursor == "0" {
            return seen;
        }
        between(call);
        call += 1;
    }
}

#[test]
fn keyspace_scan_returns_every_stable_key_while_the_keyspace_grows_and_shrinks() {
    let node = Node::open(Config::new()).expect("open");
    for i in 0..3000 {
        node.set(format!("stable:{i}"), "v").unwrap();
    }
    let seen = scan_all(&node, "SCAN", None, false, |call| {
        // Grow a lot early, then delete everything transient: slot tables resize both ways.
        if call < 100 {
            for j in 0..100 {
                node.set(format!("temp:{call}:{j}"), "v").unwrap();
            }
        } else if call == 100 {
            node.execute(&["FLUSHDB"]);
            for i in 0..3000 {
                node.set(format!("stable:{i}"), "v").unwrap();
            }
        }
    });
    for i in 0..3000 {
        assert!(
            seen.contains(format!("stable:{i}").as_bytes()),
            "SCAN missed stable:{i}"
        );
    }
}

#[test]
fn collection_scans_return_every_stable_element_while_growing() {
    let node = Node::open(Config::new()).expect("open");
    for i in 0..1000 {
        let m = format!("stable{i}");
        node.hset("h", &m, "v").unwrap();
        node.sadd("s", &[&m]).unwrap();
        node.zadd("z", i as f64, &m).unwrap();
    }
    assert_eq!(
        node.execute(&["OBJECT", "ENCODING", "h"]),
        Reply::bulk(b"hashtable")
    );
    for (command, key, pairs) in [
        ("HSCAN", "h", true),
        ("SSCAN", "s", false),
        ("ZSCAN", "z", true),
    ] {
        // Growth stops after a while: a scan chasing a table that outgrows it forever would not
        // end (in Redis either); the guarantee is about elements present throughout.
        let seen = scan_all(&node, command, Some(key), pairs, |call| {
            if call >= 30 {
                return;
            }
            for j in 0..50 {
                let m = format!("grow{call}-{j}");
                node.hset("h", &m, "v").unwrap();
                node.sadd("s", &[&m]).unwrap();
                node.zadd("z", -1.0, &m).unwrap();
            }
        });
        for i in 0..1000 {
            assert!(
                seen.contains(format!("stable{i}").as_bytes()),
                "{command} missed stable{i}"
            );
        }
    }
}
