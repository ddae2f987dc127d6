//! Cluster helpers shared by the cluster test files: shoal-server nodes made a cluster by
//! the real `redis-cli --cluster create`, and small RESP calls.

use super::{RespConn, ShoalServer, Value};
use std::process::Command;
use std::time::{Duration, Instant};

/// Every cluster test node's flags.
pub const ARGS: [&str; 10] = [
    "--cluster-enabled",
    "yes",
    "--save",
    "",
    "--repl-diskless-sync-delay",
    "0",
    "--enable-debug-command",
    "yes",
    "--cluster-node-timeout",
    "5000",
];

pub fn redis_cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(args)
        .output()
        .expect("redis-cli is installed (apt-get install redis-tools)");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

pub fn text(value: Value) -> String {
    match value {
        Value::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        Value::Status(s) | Value::Error(s) => s,
        Value::Int(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

pub fn call(port: u16, args: &[&str]) -> String {
    let mut conn = RespConn::connect(port).unwrap();
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    text(conn.call(&args))
}

/// `CLUSTER NODES` of the node at `port`, as (id, port, flags, master, slots) per line.
pub fn nodes(port: u16) -> Vec<(String, u16, String, String, String)> {
    call(port, &["CLUSTER", "NODES"])
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            let node_port = f[1]
                .split('@')
                .next()
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            let slots = f[8..].join(" ");
            (f[0].into(), node_port, f[2].into(), f[3].into(), slots)
        })
        .collect()
}

/// `count` shoal-server nodes, the first `members` made a cluster by `redis-cli --cluster
/// create` (with `options`); the nodes and their `ip:port` addresses.
pub fn cluster(count: usize, members: usize, options: &[&str]) -> (Vec<ShoalServer>, Vec<String>) {
    cluster_with(&ARGS, count, members, options)
}

/// [`cluster`] with the servers started with `args`.
pub fn cluster_with(
    args: &[&str],
    count: usize,
    members: usize,
    options: &[&str],
) -> (Vec<ShoalServer>, Vec<String>) {
    let servers: Vec<ShoalServer> = (0..count)
        .map(|_| ShoalServer::start_with_bus(args))
        .collect();
    let addrs: Vec<String> = servers
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.port))
        .collect();
    let mut create = vec!["--cluster", "create"];
    create.extend(addrs[..members].iter().map(String::as_str));
    create.extend(options);
    create.push("--cluster-yes");
    let out = redis_cli(&create);
    assert!(out.contains("[OK] All 16384 slots covered."), "{out}");
    (servers, addrs)
}

pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
