//! DEBUG DIGEST / DIGEST-VALUE against vectors computed by redis-server 7.0.15.

use shoal::{Config, Node, Reply};

fn digest_value(node: &Node, key: &str) -> Reply {
    match node.execute(&["DEBUG", "DIGEST-VALUE", key]) {
        Reply::Array(mut items) => items.remove(0),
        other => other,
    }
}

#[test]
fn string_digests_match_redis() {
    let node = Node::open(Config::new()).unwrap();
    assert_eq!(
        node.execute(&["DEBUG", "DIGEST"]),
        Reply::Status("0000000000000000000000000000000000000000".into())
    );
    node.set("k5", "1").unwrap();
    assert_eq!(
        digest_value(&node, "k5"),
        Reply::Status("b4fc66738120fba0b5aa500ab5c2bf89cea1c5da".into())
    );
    node.execute(&["EXPIRE", "k5", "4102444800000"]);
    assert_eq!(
        digest_value(&node, "k5"),
        Reply::Status("5279988c5d1911f474bcbbf2f0a87012d40f8459".into())
    );
}
