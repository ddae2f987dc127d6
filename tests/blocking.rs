//! Blocking pops across threads: wake-ups, timeouts, arrival-order fairness, chained BLMOVE,
//! MULTI, and that a client that gave up never receives (and never loses) an element.

use shoal::{Config, Node, Reply};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

fn node() -> Node {
    Node::open(Config::new()).expect("open")
}

fn bulk(s: &str) -> Reply {
    Reply::bulk(s.as_bytes())
}

/// Starts `args` on its own thread; returns a receiver for its reply.
fn spawn_cmd(node: &Node, args: &[&str]) -> mpsc::Receiver<Reply> {
    let (tx, rx) = mpsc::channel();
    let node = node.clone();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    thread::spawn(move || {
        let _ = tx.send(node.execute(&args));
    });
    rx
}

/// Waits until `n` clients are blocked on `key`, so that arrival order is the order the test
/// started them in.
fn wait_blocked(node: &Node, key: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.engine().blocked_on(0, key.as_bytes()) < n {
        assert!(
            Instant::now() < deadline,
            "{n} clients never blocked on {key}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn blpop_wakes_on_push_from_another_thread() {
    let node = node();
    let rx = spawn_cmd(&node, &["BLPOP", "q", "0"]);
    wait_blocked(&node, "q", 1);
    assert!(rx.try_recv().is_err(), "still blocked");
    assert_eq!(node.rpush("q", &["job"]).unwrap(), 1);
    let reply = rx.recv_timeout(Duration::from_secs(5)).expect("woken");
    assert_eq!(reply, Reply::Array(vec![bulk("q"), bulk("job")]));
    assert_eq!(node.llen("q").unwrap(), 0);
}

#[test]
fn timeout_returns_null_array() {
    let node = node();
    let start = Instant::now();
    assert_eq!(node.execute(&["BLPOP", "nothing", "0.2"]), Reply::NilArray);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(190) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    assert_eq!(
        node.execute(&["BLMOVE", "a", "b", "LEFT", "LEFT", "0.05"]),
        Reply::NilArray
    );
}

#[test]
fn waiters_are_served_in_arrival_order() {
    let node = node();
    let mut receivers = Vec::new();
    for n in 1..=3 {
        receivers.push(spawn_cmd(&node, &["BLPOP", "fifo", "0"]));
        wait_blocked(&node, "fifo", n);
    }
    // One push of three elements: LPUSH leaves c, b, a; clients get them in arrival order.
    assert_eq!(
        node.execute(&["LPUSH", "fifo", "a", "b", "c"]),
        Reply::Int(3)
    );
    let got: Vec<Reply> = receivers
        .iter()
        .map(|rx| rx.recv_timeout(Duration::from_secs(5)).expect("served"))
        .collect();
    assert_eq!(
        got,
        vec![
            Reply::Array(vec![bulk("fifo"), bulk("c")]),
            Reply::Array(vec![bulk("fifo"), bulk("b")]),
            Reply::Array(vec![bulk("fifo"), bulk("a")]),
        ]
    );
}

#[test]
fn more_waiters_than_elements_leaves_the_rest_blocked() {
    let node = node();
    let first = spawn_cmd(&node, &["BRPOP", "k", "0"]);
    wait_blocked(&node, "k", 1);
    let second = spawn_cmd(&node, &["BRPOP", "k", "0.5"]);
    wait_blocked(&node, "k", 2);
    node.rpush("k", &["only"]).unwrap();
    assert_eq!(
        first.recv_timeout(Duration::from_secs(5)).unwrap(),
        Reply::Array(vec![bulk("k"), bulk("only")])
    );
    assert_eq!(
        second.recv_timeout(Duration::from_secs(5)).unwrap(),
        Reply::NilArray
    );
}

#[test]
fn a_timed_out_client_does_not_swallow_later_pushes() {
    let node = node();
    for _ in 0..20 {
        assert_eq!(node.execute(&["BLPOP", "late", "0.01"]), Reply::NilArray);
    }
    assert_eq!(
        node.engine().blocked_on(0, b"late"),
        0,
        "timed-out clients unregistered"
    );
    node.rpush("late", &["kept"]).unwrap();
    assert_eq!(node.lrange("late", 0, -1).unwrap(), vec!["kept"]);
}

#[test]
fn blmove_chains_through_destinations() {
    let node = node();
    let one = spawn_cmd(&node, &["BRPOPLPUSH", "k1", "k2", "0"]);
    wait_blocked(&node, "k1", 1);
    let two = spawn_cmd(&node, &["BRPOPLPUSH", "k2", "k3", "0"]);
    wait_blocked(&node, "k2", 1);
    let three = spawn_cmd(&node, &["BLPOP", "k3", "0"]);
    wait_blocked(&node, "k3", 1);
    node.rpush("k1", &["a", "b"]).unwrap();
    let wait = |rx: mpsc::Receiver<Reply>| rx.recv_timeout(Duration::from_secs(5)).expect("served");
    assert_eq!(wait(one), bulk("b"));
    assert_eq!(wait(two), bulk("b"));
    assert_eq!(wait(three), Reply::Array(vec![bulk("k3"), bulk("b")]));
    assert_eq!(node.lrange("k1", 0, -1).unwrap(), vec!["a"]);
    assert_eq!(node.exists(&["k2", "k3"]).unwrap(), 0);
}

#[test]
fn wrong_type_keeps_the_client_blocked_until_it_is_a_list_again() {
    let node = node();
    let rx = spawn_cmd(&node, &["BLPOP", "w", "0"]);
    wait_blocked(&node, "w", 1);
    node.set("w", "string").unwrap();
    assert_eq!(
        node.engine().blocked_on(0, b"w"),
        1,
        "a string does not wake a list waiter"
    );
    assert!(rx.try_recv().is_err());
    node.del(&["w"]).unwrap();
    node.rpush("w", &["now"]).unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        Reply::Array(vec![bulk("w"), bulk("now")])
    );
}

#[test]
fn list_and_zset_waiters_on_one_key_each_get_their_type() {
    let node = node();
    let list = spawn_cmd(&node, &["BLPOP", "mixed", "0.5"]);
    wait_blocked(&node, "mixed", 1);
    let zset = spawn_cmd(&node, &["BZPOPMIN", "mixed", "0"]);
    wait_blocked(&node, "mixed", 2);
    node.zadd("mixed", 1.0, "m").unwrap();
    assert_eq!(
        zset.recv_timeout(Duration::from_secs(5)).unwrap(),
        Reply::Array(vec![bulk("mixed"), bulk("m"), Reply::Double(1.0)])
    );
    assert_eq!(
        list.recv_timeout(Duration::from_secs(5)).unwrap(),
        Reply::NilArray
    );
}

#[test]
fn blocking_commands_do_not_block_inside_multi() {
    let node = node();
    let replies = node
        .transaction()
        .cmd(&["BLPOP", "none", "0"])
        .cmd(&["BLMOVE", "none", "x", "LEFT", "LEFT", "0"])
        .cmd(&["BZPOPMIN", "none", "0"])
        .exec()
        .unwrap();
    assert_eq!(
        replies,
        Some(vec![Reply::NilArray, Reply::Nil, Reply::NilArray])
    );
}

#[test]
fn blmpop_serves_counts_in_order() {
    let node = node();
    let first = spawn_cmd(&node, &["BLMPOP", "0", "1", "m", "LEFT", "COUNT", "2"]);
    wait_blocked(&node, "m", 1);
    let second = spawn_cmd(&node, &["BLMPOP", "0", "1", "m", "RIGHT", "COUNT", "5"]);
    wait_blocked(&node, "m", 2);
    node.rpush("m", &["a", "b", "c", "d"]).unwrap();
    let list = |items: &[&str]| {
        Reply::Array(vec![
            bulk("m"),
            Reply::Array(items.iter().map(|s| bulk(s)).collect()),
        ])
    };
    assert_eq!(
        first.recv_timeout(Duration::from_secs(5)).unwrap(),
        list(&["a", "b"])
    );
    assert_eq!(
        second.recv_timeout(Duration::from_secs(5)).unwrap(),
        list(&["d", "c"])
    );
}

#[test]
fn many_producers_and_consumers_lose_nothing() {
    let node = node();
    const ITEMS: usize = 2000;
    let consumers: Vec<_> = (0..4)
        .map(|_| {
            let node = node.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                while let Some((_, v)) = node
                    .blpop(&["work"], Some(Duration::from_millis(500)))
                    .unwrap()
                {
                    got.push(String::from_utf8(v.to_vec()).unwrap());
                }
                got
            })
        })
        .collect();
    let producers: Vec<_> = (0..4)
        .map(|p| {
            let node = node.clone();
            thread::spawn(move || {
                for i in 0..ITEMS / 4 {
                    node.rpush("work", &[format!("{p}-{i}")]).unwrap();
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let mut all: Vec<String> = consumers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), ITEMS, "every item consumed exactly once");
    assert_eq!(node.llen("work").unwrap(), 0);
}

/// A waker that counts its wake-ups.
struct CountingWaker(std::sync::atomic::AtomicUsize);

impl std::task::Wake for CountingWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn async_callers_are_woken_and_served() {
    let node = node();
    let mut session = node.session();
    let shoal::Outcome::Blocked(blocked) = session.start(&["BLPOP", "async", "0"]) else {
        panic!("should block");
    };
    let counter = std::sync::Arc::new(CountingWaker(Default::default()));
    let waker = std::task::Waker::from(counter.clone());
    assert_eq!(blocked.poll_reply(&waker), None);
    node.rpush("async", &["x"]).unwrap();
    assert_eq!(
        counter.0.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "woken once"
    );
    assert_eq!(
        blocked.poll_reply(&waker),
        Some(Reply::Array(vec![bulk("async"), bulk("x")]))
    );
}

#[test]
fn a_dropped_blocked_command_takes_nothing() {
    let node = node();
    let mut session = node.session();
    let outcome = session.start(&["BLPOP", "dropped", "0"]);
    assert!(matches!(outcome, shoal::Outcome::Blocked(_)));
    drop(outcome);
    node.rpush("dropped", &["kept"]).unwrap();
    assert_eq!(node.lrange("dropped", 0, -1).unwrap(), vec!["kept"]);
    assert_eq!(
        node.engine().blocked_on(0, b"dropped"),
        0,
        "purged from the queue"
    );
}

#[test]
fn cancel_returns_nothing_when_not_served() {
    let node = node();
    let mut session = node.session();
    let shoal::Outcome::Blocked(blocked) = session.start(&["BRPOP", "c", "0"]) else {
        panic!("should block");
    };
    assert_eq!(blocked.cancel(node.engine()), None);
    assert_eq!(node.engine().blocked_on(0, b"c"), 0);
    node.rpush("c", &["stays"]).unwrap();
    assert_eq!(node.llen("c").unwrap(), 1);
}
