//! A short tour of embedded Shoal: open a node, then strings, a list, a hash, a sorted-set
//! leaderboard, a TTL, a blocking queue and a transaction, printing what each step does.
//!
//! Run it with `cargo run --release --example quickstart`.

use shoal::{Config, Node, Reply, SetOptions};
use std::time::Duration;

fn show(what: &str, value: impl std::fmt::Debug) {
    println!("{what:<48} -> {value:?}");
}

fn string(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn text(bytes: Option<shoal::CompactBytes>) -> Option<String> {
    bytes.map(|b| string(&b))
}

fn main() -> shoal::Result<()> {
    let node = Node::open(Config::new())?;
    println!("Opened an embedded Shoal node (16 databases, 16384 slots), no server, no socket.\n");

    // Strings and counters.
    node.set("greeting", "hello, shoal")?;
    show("SET greeting / GET greeting", text(node.get("greeting")?));
    show("INCRBY visits 1 (three times)", {
        node.incr("visits", 1)?;
        node.incr("visits", 1)?;
        node.incr("visits", 1)?
    });

    // A list used as a queue.
    node.rpush("tasks", &["compile", "test", "ship"])?;
    let tasks: Vec<String> = node
        .lrange("tasks", 0, -1)?
        .iter()
        .map(|t| string(t))
        .collect();
    show("RPUSH tasks compile test ship / LRANGE 0 -1", tasks);
    show("LPOP tasks", text(node.lpop("tasks")?));

    // A hash as a record.
    node.hset("user:42", "name", "Ada")?;
    node.hset("user:42", "lang", "Rust")?;
    show(
        "HINCRBY user:42 logins 1",
        node.hincr("user:42", "logins", 1)?,
    );
    let mut user: Vec<(String, String)> = node
        .hgetall("user:42")?
        .into_iter()
        .map(|(f, v)| (string(&f), string(&v)))
        .collect();
    user.sort();
    show("HGETALL user:42", user);

    // A sorted-set leaderboard.
    for (player, score) in [
        ("ada", 31.0),
        ("grace", 42.0),
        ("linus", 17.0),
        ("barbara", 42.5),
    ] {
        node.zadd("leaderboard", score, player)?;
    }
    node.zincr("leaderboard", 5.0, "linus")?;
    let top: Vec<(String, f64)> = node
        .zrange_with_scores("leaderboard", 0, 2, true)?
        .into_iter()
        .map(|(m, s)| (string(&m), s))
        .collect();
    show("ZREVRANGE leaderboard 0 2 WITHSCORES", top);
    show("ZRANK leaderboard ada", node.zrank("leaderboard", "ada")?);

    // A key with a TTL.
    node.set_with(
        "session",
        "token-123",
        SetOptions::new().expire_in(Duration::from_millis(200)),
    )?;
    show(
        "SET session ... PX 200 / PTTL session",
        node.ttl("session")?,
    );
    std::thread::sleep(Duration::from_millis(250));
    show("GET session (after 250 ms)", text(node.get("session")?));

    // A blocking pop served by another thread.
    let producer = node.clone();
    let handle = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        producer.rpush("jobs", &["resize-image"])
    });
    let job = node.blpop(&["jobs"], Some(Duration::from_secs(5)))?;
    show(
        "BLPOP jobs 5 (another thread pushes)",
        job.map(|(k, v)| (string(&k), string(&v))),
    );
    handle.join().expect("producer thread")?;

    // An atomic transaction, and optimistic locking with WATCH.
    node.set("balance:ada", "100")?;
    node.set("balance:grace", "100")?;
    let replies = node
        .transaction()
        .cmd(&["DECRBY", "balance:ada", "30"])
        .cmd(&["INCRBY", "balance:grace", "30"])
        .exec()?;
    show("MULTI; DECRBY ada 30; INCRBY grace 30; EXEC", replies);
    let tx = node.transaction().watch(&["balance:ada"])?;
    node.set("balance:ada", "0")?; // a concurrent writer changes the watched key
    show(
        "WATCH balance:ada, changed meanwhile, EXEC",
        tx.cmd(&["SET", "balance:ada", "1"]).exec()?,
    );

    // Any command through execute(), with Redis's exact replies and errors.
    show(
        "LPUSH greeting x (a string)",
        node.execute(&["LPUSH", "greeting", "x"]),
    );
    show(
        "OBJECT ENCODING leaderboard",
        node.execute(&["OBJECT", "ENCODING", "leaderboard"]),
    );
    show("DBSIZE", node.execute(&["DBSIZE"]));
    if let Reply::Status(digest) = node.execute(&["DEBUG", "DIGEST"]) {
        show("DEBUG DIGEST (same algorithm as Redis)", digest);
    }
    println!("\nEvery write above is also in the node's write log, ready for AOF and replicas.");
    show("write log end offset (bytes)", node.engine().log().end().0);
    Ok(())
}
