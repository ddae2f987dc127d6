//! A local Shoal cluster in one process, for trying cluster mode: three primaries and three
//! replicas, serving RESP on 127.0.0.1:7001-7006 (the cluster bus on 17001-17006), built the
//! way `redis-cli --cluster create --cluster-replicas 1` builds one. Ctrl-C stops it.
//!
//! ```sh
//! cargo run --release --example local_cluster
//! redis-cli -c -p 7001 set foo bar
//! redis-cli --cluster check 127.0.0.1:7001
//! ```

use shoal::{Config, Node, Reply};
use std::time::{Duration, Instant};

const FIRST_PORT: u16 = 7001;
const PRIMARIES: usize = 3;
const NODES: usize = 6;
/// How long the nodes may take to learn of each other.
const CONVERGE_MAX: Duration = Duration::from_secs(30);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::temp_dir().join("shoal-local-cluster");
    // A fresh cluster each run: the nodes.conf files of the last one would bring it back.
    let _ = std::fs::remove_dir_all(&root);
    let nodes = (0..NODES)
        .map(|i| {
            let port = FIRST_PORT + i as u16;
            let dir = root.join(port.to_string());
            std::fs::create_dir_all(&dir)?;
            let config = Config::new()
                .cluster_enabled(true)
                .port(port)
                .bind(["127.0.0.1"])
                .dir(dir)
                .save_points(&[]);
            Ok(Node::open(config)?)
        })
        .collect::<Result<Vec<Node>, Box<dyn std::error::Error>>>()?;
    let ids: Vec<String> = nodes
        .iter()
        .map(|n| text(n.execute(&["CLUSTER", "MYID"])))
        .collect();

    // As redis-cli does: distinct config epochs, the slots split in three, everyone met.
    for (i, node) in nodes.iter().enumerate() {
        expect_ok(node.execute(&["CLUSTER", "SET-CONFIG-EPOCH", &(i + 1).to_string()]))?;
    }
    let per_primary = 16384 / PRIMARIES;
    for (i, node) in nodes.iter().take(PRIMARIES).enumerate() {
        let first = i * per_primary;
        let last = if i + 1 == PRIMARIES {
            16383
        } else {
            first + per_primary - 1
        };
        expect_ok(node.execute(&[
            "CLUSTER",
            "ADDSLOTSRANGE",
            &first.to_string(),
            &last.to_string(),
        ]))?;
    }
    for i in 1..NODES {
        let port = (FIRST_PORT + i as u16).to_string();
        expect_ok(nodes[0].execute(&["CLUSTER", "MEET", "127.0.0.1", &port]))?;
    }
    wait_until("every node knows every other", || {
        nodes.iter().all(|n| {
            let view = text(n.execute(&["CLUSTER", "NODES"]));
            view.lines().count() == NODES && !view.contains("handshake")
        })
    })?;
    for (i, node) in nodes.iter().enumerate().skip(PRIMARIES) {
        expect_ok(node.execute(&["CLUSTER", "REPLICATE", &ids[i - PRIMARIES]]))?;
    }
    wait_until(
        "the cluster is ok and knows its replicas everywhere",
        || {
            nodes.iter().all(|n| {
                let ok = text(n.execute(&["CLUSTER", "INFO"])).contains("cluster_state:ok");
                let view = text(n.execute(&["CLUSTER", "NODES"]));
                ok && view.matches("slave").count() == NODES - PRIMARIES
            })
        },
    )?;

    println!("{}", text(nodes[0].execute(&["CLUSTER", "NODES"])));
    println!("Shoal cluster up: 3 primaries and 3 replicas on 127.0.0.1:7001-7006.");
    println!("  redis-cli -c -p 7001                      # follows MOVED and ASK");
    println!("  redis-cli --cluster check 127.0.0.1:7001");
    println!("  redis-benchmark --cluster -p 7001 -t set,get -n 100000 -q");
    println!("Ctrl-C stops it.");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(tokio::signal::ctrl_c())?;
    println!("Stopping.");
    drop(nodes);
    Ok(())
}

fn text(reply: Reply) -> String {
    match reply {
        Reply::Bulk(b) | Reply::Verbatim(b) => String::from_utf8_lossy(&b).into_owned(),
        Reply::Status(s) | Reply::Error(s) => s.into_owned(),
        other => format!("{other:?}"),
    }
}

fn expect_ok(reply: Reply) -> Result<(), String> {
    match reply {
        Reply::Status(s) if s == "OK" => Ok(()),
        other => Err(format!("unexpected reply: {other:?}")),
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> Result<(), String> {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > CONVERGE_MAX {
            return Err(format!("timed out waiting until {what}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
