//! In-process routing: cluster nodes embedded in one process, without RESP listeners, each
//! reading and writing every key through the Rust API; commands for other nodes' slots run
//! there over QUIC (also blocking ones), or come back as MOVED when the node asks for that.

mod common;

use shoal::{Config, Event, Node, Reply};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn text(reply: Reply) -> String {
    match reply {
        Reply::Bulk(b) | Reply::Verbatim(b) => String::from_utf8_lossy(&b).into_owned(),
        Reply::Status(s) | Reply::Error(s) => s.into_owned(),
        other => format!("{other:?}"),
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_bus() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], common::free_port()))
}

/// A cluster node without a RESP listener, on `bus`.
fn open_node(name: &str, redirects: bool, bus: SocketAddr) -> Node {
    let dir = common::temp_dir(&format!("cluster-embedded-{name}"));
    let config = Config::new()
        .cluster_enabled(true)
        .cluster_redirects(redirects)
        .cluster_node_timeout_ms(2_000)
        .bus_addr(bus)
        .dir(dir)
        .save_points(&[]);
    Node::open(config).unwrap()
}

/// Three masters with a third of the slots each; the last gets MOVED instead of forwarding.
fn cluster() -> (Vec<Node>, Vec<SocketAddr>) {
    let buses: Vec<SocketAddr> = (0..3).map(|_| free_bus()).collect();
    let nodes: Vec<Node> = buses
        .iter()
        .enumerate()
        .map(|(i, bus)| open_node(&i.to_string(), i == 2, *bus))
        .collect();
    let ranges = [("0", "5460"), ("5461", "10922"), ("10923", "16383")];
    for (i, (node, (first, last))) in nodes.iter().zip(ranges).enumerate() {
        let epoch = (i + 1).to_string();
        assert_eq!(
            node.execute(&["CLUSTER", "SET-CONFIG-EPOCH", &epoch]),
            Reply::OK
        );
        assert_eq!(
            node.execute(&["CLUSTER", "ADDSLOTSRANGE", first, last]),
            Reply::OK
        );
    }
    for bus in &buses[1..] {
        let cport = bus.port().to_string();
        let meet = ["CLUSTER", "MEET", "127.0.0.1", "0", &cport];
        assert_eq!(nodes[0].execute(&meet), Reply::OK);
    }
    wait_until("every node serves the cluster", || {
        nodes
            .iter()
            .all(|n| text(n.execute(&["CLUSTER", "INFO"])).contains("cluster_state:ok"))
    });
    (nodes, buses)
}

#[test]
fn every_node_reads_and_writes_every_key() {
    let (nodes, _) = cluster();
    for i in 0..300 {
        let key = format!("key:{i}");
        let writer = &nodes[i % 2];
        assert_eq!(writer.execute(&["SET", &key, &i.to_string()]), Reply::OK);
    }
    for reader in &nodes[..2] {
        for i in 0..300 {
            let key = format!("key:{i}");
            assert_eq!(text(reader.execute(&["GET", &key])), i.to_string());
        }
    }
    let sizes: Vec<i64> = nodes
        .iter()
        .map(|n| match n.execute(&["DBSIZE"]) {
            Reply::Int(n) => n,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(sizes.iter().sum::<i64>(), 300);
    assert!(sizes.iter().all(|&n| n > 50), "{sizes:?}");

    // The node that asked for redirects serves its own slots ("foo" is in 12182) and gets
    // Redis's MOVED for the others.
    assert_eq!(nodes[2].execute(&["SET", "foo", "bar"]), Reply::OK);
    assert_eq!(text(nodes[0].execute(&["GET", "foo"])), "bar");
    let moved = text(nodes[2].execute(&["GET", "key:0"]));
    assert!(moved.starts_with("MOVED "), "{moved}");

    // Multi-key commands keep the CROSSSLOT rule; a session forwards too.
    assert_eq!(
        text(nodes[0].execute(&["MSET", "a", "1", "b", "2"])),
        "CROSSSLOT Keys in request don't hash to the same slot"
    );
    let mut session = nodes[1].session();
    assert_eq!(session.execute(&["INCR", "{foo}n"]), Reply::Int(1));
    assert_eq!(text(nodes[2].execute(&["GET", "{foo}n"])), "1");
}

#[test]
fn a_blocking_command_waits_on_the_owner() {
    let (nodes, _) = cluster();
    let nodes = std::sync::Arc::new(nodes);
    // "{foo}q" is in slot 12182, the third node's.
    let waiter = {
        let nodes = nodes.clone();
        std::thread::spawn(move || nodes[0].execute(&["BLPOP", "{foo}q", "10"]))
    };
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(nodes[1].execute(&["RPUSH", "{foo}q", "x"]), Reply::Int(1));
    assert_eq!(
        waiter.join().unwrap(),
        Reply::Array(vec![Reply::bulk(b"{foo}q"), Reply::bulk(b"x")])
    );
    assert_eq!(nodes[2].execute(&["LLEN", "{foo}q"]), Reply::Int(0));
}

/// Events until `wanted` arrived (in any order), or none for 10 s.
fn collect(events: &shoal::EventSubscription, wanted: &[fn(&Event) -> bool]) -> Vec<Event> {
    let mut seen = Vec::new();
    while !wanted.iter().all(|w| seen.iter().any(w)) {
        match events.recv_timeout(Duration::from_secs(10)) {
            Some(event) => seen.push(event),
            None => panic!("no more events; got {seen:?}"),
        }
    }
    seen
}

#[test]
fn an_embedded_replica_takes_over_and_both_applications_are_told() {
    let (nodes, _) = cluster();
    let bus = free_bus();
    let replica = open_node("replica", false, bus);
    let (primary_events, replica_events) = (nodes[0].events(), replica.events());
    let cport = bus.port().to_string();
    let meet = ["CLUSTER", "MEET", "127.0.0.1", "0", &cport];
    assert_eq!(nodes[0].execute(&meet), Reply::OK);
    let primary_id = text(nodes[0].execute(&["CLUSTER", "MYID"]));
    wait_until("the new node knows the primary", || {
        text(replica.execute(&["CLUSTER", "NODES"])).contains(&primary_id)
    });
    assert_eq!(
        replica.execute(&["CLUSTER", "REPLICATE", &primary_id]),
        Reply::OK
    );
    collect(&replica_events, &[|e| matches!(e, Event::Demoted { .. })]);
    // Keys of the first node's slots (0-5460).
    let keys: Vec<String> = (0..1000)
        .map(|i| format!("key:{i}"))
        .filter(
            |k| matches!(nodes[0].execute(&["CLUSTER", "KEYSLOT", k]), Reply::Int(s) if s <= 5460),
        )
        .take(20)
        .collect();
    for key in &keys {
        assert_eq!(nodes[0].execute(&["SET", key, "v"]), Reply::OK);
    }
    wait_until("the replica has the primary's keys", || {
        replica.execute(&["DBSIZE"]) == Reply::Int(keys.len() as i64)
    });

    // Masters ignore vote requests from a node they have not heard of yet.
    let replica_id = text(replica.execute(&["CLUSTER", "MYID"]));
    wait_until("every master knows the replica", || {
        nodes
            .iter()
            .all(|n| text(n.execute(&["CLUSTER", "NODES"])).contains(&replica_id))
    });
    // A manual failover needs the bus link to the primary.
    wait_until("the replica's bus link to its primary is up", || {
        text(replica.execute(&["CLUSTER", "NODES"]))
            .lines()
            .any(|l| l.starts_with(&primary_id) && l.contains(" connected"))
    });
    assert_eq!(replica.execute(&["CLUSTER", "FAILOVER"]), Reply::OK);
    let told = collect(
        &replica_events,
        &[
            |e| matches!(e, Event::Promoted),
            |e| *e == Event::SlotsGained(vec![0..=5460]),
        ],
    );
    assert!(
        !told.iter().any(|e| matches!(e, Event::SlotsLost(_))),
        "{told:?}"
    );
    collect(
        &primary_events,
        &[
            |e| *e == Event::SlotsLost(vec![0..=5460]),
            |e| matches!(e, Event::Demoted { .. }),
        ],
    );
    // Every node reads the keys from their new owner; the old primary follows it.
    for key in &keys {
        assert_eq!(text(nodes[1].execute(&["GET", key])), "v");
    }
    assert_eq!(replica.execute(&["SET", &keys[0], "w"]), Reply::OK);
    assert_eq!(text(nodes[0].execute(&["GET", &keys[0]])), "w");
}
