//! Atomicity of multi-key commands and MULTI/EXEC across slots and threads, and WATCH.

use shoal::{Config, Node, Reply, SlotId};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

fn node() -> Node {
    Node::open(Config::new()).expect("open")
}

/// Two keys that hash to different slots, so atomicity is not an accident of one lock.
fn keys_in_two_slots() -> (&'static str, &'static str) {
    let (a, b) = ("account:alice", "account:bob");
    assert_ne!(SlotId::of_key(a.as_bytes()), SlotId::of_key(b.as_bytes()));
    (a, b)
}

#[test]
fn mset_is_atomic_against_mget() {
    let node = node();
    let (a, b) = keys_in_two_slots();
    node.execute(&["MSET", a, "0", b, "0"]);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (node, stop) = (node.clone(), stop.clone());
        thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let v = i.to_string();
                node.execute(&["MSET", a, &v, b, &v]);
            }
        })
    };
    for _ in 0..20_000 {
        match node.execute(&["MGET", a, b]) {
            Reply::Array(values) => assert_eq!(values[0], values[1], "MGET saw half an MSET"),
            other => panic!("{other:?}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
}

#[test]
fn transfers_in_multi_exec_conserve_the_total() {
    let node = node();
    let (a, b) = keys_in_two_slots();
    node.execute(&["MSET", a, "1000", b, "1000"]);
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let node = node.clone();
            thread::spawn(move || {
                for _ in 0..2000 {
                    let (from, to) = if t % 2 == 0 { (a, b) } else { (b, a) };
                    let replies = node
                        .transaction()
                        .cmd(&["DECRBY", from, "7"])
                        .cmd(&["INCRBY", to, "7"])
                        .exec()
                        .unwrap()
                        .expect("no WATCH, always runs");
                    assert!(matches!(replies[..], [Reply::Int(_), Reply::Int(_)]));
                }
            })
        })
        .collect();
    for _ in 0..5000 {
        let replies = node
            .transaction()
            .cmd(&["GET", a])
            .cmd(&["GET", b])
            .exec()
            .unwrap()
            .unwrap();
        let total: i64 = replies
            .iter()
            .map(|r| match r {
                Reply::Bulk(v) => std::str::from_utf8(v).unwrap().parse::<i64>().unwrap(),
                other => panic!("{other:?}"),
            })
            .sum();
        assert_eq!(total, 2000, "a transaction saw another half-applied");
    }
    for w in workers {
        w.join().unwrap();
    }
}

#[test]
fn watch_aborts_when_another_client_writes() {
    let node = node();
    node.set("balance", "10").unwrap();
    let mut tx = node.transaction().watch(&["balance"]).unwrap();
    assert_eq!(tx.read(&["GET", "balance"]), Reply::bulk(b"10"));
    node.set("balance", "99").unwrap();
    let result = tx.cmd(&["SET", "balance", "11"]).exec().unwrap();
    assert_eq!(result, None, "EXEC must fail after a concurrent write");
    assert_eq!(node.get("balance").unwrap().as_deref(), Some(&b"99"[..]));

    let tx = node.transaction().watch(&["balance"]).unwrap();
    let result = tx.cmd(&["SET", "balance", "100"]).exec().unwrap();
    assert_eq!(result, Some(vec![Reply::OK]));
}

#[test]
fn watch_counts_deletion_by_expiry_and_flush() {
    let node = node();
    node.execute(&["SET", "ttl", "v", "PX", "30"]);
    let tx = node.transaction().watch(&["ttl"]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(60));
    assert_eq!(
        tx.cmd(&["GET", "x"]).exec().unwrap(),
        None,
        "the watched key expired"
    );

    node.set("f", "1").unwrap();
    let tx = node.transaction().watch(&["f"]).unwrap();
    node.execute(&["FLUSHALL"]);
    assert_eq!(
        tx.cmd(&["GET", "x"]).exec().unwrap(),
        None,
        "FLUSHALL removed the watched key"
    );

    let tx = node.transaction().watch(&["missing"]).unwrap();
    node.execute(&["FLUSHALL"]);
    assert!(
        tx.cmd(&["GET", "x"]).exec().unwrap().is_some(),
        "a missing key is not touched by FLUSHALL"
    );
}

#[test]
fn queue_errors_abort_and_runtime_errors_do_not() {
    let node = node();
    let mut s = node.session();
    assert_eq!(s.execute(&["MULTI"]), Reply::OK);
    assert_eq!(s.execute(&["SET", "a", "1"]), Reply::QUEUED);
    assert!(s.execute(&["NOSUCHCOMMAND"]).is_error());
    assert_eq!(
        s.execute(&["EXEC"]),
        Reply::error("EXECABORT Transaction discarded because of previous errors.")
    );
    assert_eq!(node.exists(&["a"]).unwrap(), 0);

    s.execute(&["MULTI"]);
    s.execute(&["SET", "s", "x"]);
    s.execute(&["LPUSH", "s", "y"]);
    s.execute(&["SET", "t", "z"]);
    match s.execute(&["EXEC"]) {
        Reply::Array(r) => {
            assert_eq!(r[0], Reply::OK);
            assert!(r[1].is_error());
            assert_eq!(r[2], Reply::OK);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.execute(&["EXEC"]), Reply::error("ERR EXEC without MULTI"));
    assert_eq!(
        s.execute(&["DISCARD"]),
        Reply::error("ERR DISCARD without MULTI")
    );
}

#[test]
fn select_inside_multi_persists_and_moves_between_databases_are_atomic() {
    let node = node();
    let mut s = node.session();
    s.execute(&["MULTI"]);
    s.execute(&["SELECT", "2"]);
    s.execute(&["SET", "k", "in-2"]);
    s.execute(&["MOVE", "k", "5"]);
    assert_eq!(
        s.execute(&["EXEC"]),
        Reply::Array(vec![Reply::OK, Reply::OK, Reply::Int(1)])
    );
    assert_eq!(s.db(), 2);
    s.execute(&["SELECT", "5"]);
    assert_eq!(s.execute(&["GET", "k"]), Reply::bulk(b"in-2"));
    assert_eq!(s.execute(&["SWAPDB", "5", "0"]), Reply::OK);
    assert_eq!(node.get("k").unwrap().as_deref(), Some(&b"in-2"[..]));
}
