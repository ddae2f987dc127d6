//! Sentinel mode with real processes: a shoal-server primary and replica watched by three
//! `shoal-server --sentinel` processes with quorum 2. The primary is killed: the sentinels
//! agree, promote the replica, announce +switch-master, redis-py's Sentinel client finds the
//! new primary, and the old primary, restarted, is made its replica.

mod common;

use common::cluster::{call, wait_until};
use common::{RespConn, ShoalServer, Value};

fn sentinel_conf(primary_port: u16) -> String {
    format!(
        "sentinel monitor mymaster 127.0.0.1 {primary_port} 2\n\
         sentinel down-after-milliseconds mymaster 1000\n\
         sentinel failover-timeout mymaster 10000\n"
    )
}

/// The number of entries SENTINEL `what` mymaster lists at `port`.
fn listed(port: u16, what: &str) -> usize {
    let mut conn = RespConn::connect(port).expect("connect");
    match conn.call(&[b"SENTINEL", what.as_bytes(), b"mymaster"]) {
        Value::Array(items) => items.len(),
        _ => 0,
    }
}

/// A shoal-server primary and a replica linked to it.
fn linked_pair() -> (ShoalServer, ShoalServer) {
    let primary = ShoalServer::start_with_bus(&["--save", ""]);
    let replica = ShoalServer::start_with_bus(&["--save", ""]);
    let primary_port = primary.port.to_string();
    assert_eq!(
        call(replica.port, &["REPLICAOF", "127.0.0.1", &primary_port]),
        "OK"
    );
    wait_until("the replica is linked", || {
        call(replica.port, &["INFO", "replication"]).contains("master_link_status:up")
    });
    (primary, replica)
}

#[test]
fn three_sentinels_fail_over_a_killed_primary() {
    let (mut primary, replica) = linked_pair();
    assert_eq!(call(primary.port, &["SET", "before", "kill"]), "OK");
    assert_eq!(call(primary.port, &["WAIT", "1", "5000"]), "1");

    let sentinels: Vec<ShoalServer> = (0..3)
        .map(|_| ShoalServer::start_sentinel(&sentinel_conf(primary.port)))
        .collect();
    wait_until(
        "every sentinel knows the replica and the two others",
        || {
            sentinels
                .iter()
                .all(|s| listed(s.port, "SENTINELS") == 2 && listed(s.port, "REPLICAS") == 1)
        },
    );
    assert!(call(sentinels[0].port, &["SENTINEL", "CKQUORUM", "mymaster"]).starts_with("OK 3"));
    assert!(call(sentinels[0].port, &["GET", "k"]).starts_with("ERR unknown command"));

    let mut events = RespConn::connect(sentinels[1].port).expect("connect");
    events.call(&[b"SUBSCRIBE", b"+switch-master"]);
    primary.kill();
    let Value::Array(message) = events.read() else {
        panic!("no +switch-master message")
    };
    let expected = format!(
        "mymaster 127.0.0.1 {} 127.0.0.1 {}",
        primary.port, replica.port
    );
    assert_eq!(message[2], Value::Bulk(expected.into_bytes()));
    wait_until("every sentinel names the replica", || {
        sentinels.iter().all(|s| {
            let mut conn = RespConn::connect(s.port).expect("connect");
            let reply = conn.call(&[b"SENTINEL", b"GET-MASTER-ADDR-BY-NAME", b"mymaster"]);
            reply
                == Value::Array(vec![
                    Value::Bulk(b"127.0.0.1".to_vec()),
                    Value::Bulk(replica.port.to_string().into_bytes()),
                ])
        })
    });

    // redis-py's Sentinel client finds the new primary, which has the data and takes writes.
    let script = r#"
import sys
from redis.sentinel import Sentinel
ports = [int(p) for p in sys.argv[1:4]]
s = Sentinel([("127.0.0.1", p) for p in ports], socket_timeout=2)
host, port = s.discover_master("mymaster")
assert port == int(sys.argv[4]), (host, port)
m = s.master_for("mymaster", socket_timeout=2)
assert m.get("before") == b"kill"
m.set("after", "failover")
print("ok")
"#;
    let mut args: Vec<String> = sentinels.iter().map(|s| s.port.to_string()).collect();
    args.push(replica.port.to_string());
    common::run_python_ok("redis-py Sentinel", script, &args);

    // The old primary comes back and is made a replica of the new one.
    primary.start_again(&["--save", ""]);
    wait_until("the old primary follows the new one", || {
        let info = call(primary.port, &["INFO", "replication"]);
        info.contains("role:slave") && info.contains(&format!("master_port:{}", replica.port))
    });
    wait_until(
        "the old primary has the write made after the failover",
        || call(primary.port, &["GET", "after"]) == "failover",
    );
    // What the sentinels learned is in their configuration files.
    let conf = std::fs::read_to_string(sentinels[0].dir.join("sentinel.conf")).unwrap();
    assert!(
        conf.contains(&format!(
            "sentinel monitor mymaster 127.0.0.1 {} 2",
            replica.port
        )),
        "{conf}"
    );
    assert_eq!(
        conf.matches("sentinel known-sentinel mymaster").count(),
        2,
        "{conf}"
    );
}

/// An embedded node in the monitor role (quorum 1): the application hears of the failover
/// through a subscription to the +switch-master channel.
#[test]
fn an_embedded_sentinel_tells_the_application() {
    let (mut primary, replica) = linked_pair();
    let primary_port = primary.port.to_string();
    let config = shoal::Config::new()
        .sentinel(&format!("monitor app 127.0.0.1 {primary_port} 1"))
        .sentinel("down-after-milliseconds app 500");
    let node = shoal::Node::open(config).expect("open the sentinel");
    let switches = node.subscribe(&["+switch-master"]);
    wait_until("the sentinel knows the replica", || {
        let reply = node.execute(&["SENTINEL", "REPLICAS", "app"]);
        matches!(reply, shoal::Reply::Array(items) if items.len() == 1)
    });
    primary.kill();
    let message = switches
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the node is open")
        .expect("a +switch-master message");
    let expected = format!("app 127.0.0.1 {primary_port} 127.0.0.1 {}", replica.port);
    assert_eq!(message.payload(), expected.as_bytes());
    assert!(call(replica.port, &["INFO", "replication"]).contains("role:master"));
}
