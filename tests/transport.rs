//! The QUIC transport between nodes: links authenticate before any data flows, by a secret
//! proven over the TLS session or by certificates checked both ways; a peer that cannot is
//! refused, and garbage sent to the port changes nothing.

mod common;

use parking_lot::RwLock;
use shoal::transport::{Endpoint, Link, LinkError, PeerAuth, PeerTls, RecvStream, SendStream};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn endpoint(auth: PeerAuth) -> Endpoint {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    Endpoint::bind(any, Arc::new(RwLock::new(auth))).unwrap()
}

fn secrets(accept: Option<&str>, connect: Option<&str>) -> PeerAuth {
    PeerAuth {
        tls: None,
        accept_secret: accept.map(String::from),
        connect_secret: connect.map(String::from),
        connect_user: None,
    }
}

/// The next link `server` accepts, with the first stream its peer opens.
async fn accept_stream(server: &Endpoint) -> (Link, SendStream, RecvStream) {
    let link = server.accept().await.unwrap();
    let (send, recv) = link.accept_bi().await.unwrap();
    (link, send, recv)
}

/// Writes 64 KB at a time until the link sends packets past Ethernet's size (or 10 s pass).
async fn write_until_large_packets(link: &Link, send: &mut SendStream) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while link.path_mtu_bytes() <= 1452 && std::time::Instant::now() < deadline {
        send.write_all(&[7u8; 1 << 16]).await.unwrap();
    }
    send.finish();
}

/// Connects `client` to `server`; on success echoes a message over a stream both ways.
async fn try_link(server: &Endpoint, client: &Endpoint) -> Result<(), LinkError> {
    let addr = server.local_addr().unwrap();
    let accepting = {
        let server = server.clone();
        tokio::spawn(async move {
            let (link, mut send, mut recv) = accept_stream(&server).await;
            let got = recv.read_chunk(100).await.unwrap().unwrap();
            send.write_all(&got).await.unwrap();
            send.finish();
            // Keep the link until the other side has read.
            link.closed().await;
        })
    };
    let link = client.connect(addr).await?;
    let (mut send, mut recv) = link.open_bi().await?;
    send.write_all(b"hello").await?;
    send.finish();
    let echoed = recv.read_chunk(100).await?.unwrap();
    assert_eq!(&echoed[..], b"hello");
    link.close("done");
    tokio::time::timeout(Duration::from_secs(5), accepting)
        .await
        .expect("the accepting side returns the link")
        .unwrap();
    Ok(())
}

/// The connecting side's error. A peer the server refused never reaches the accepting
/// application (`accept` keeps waiting); one the client refused may have.
async fn refused(server: &Endpoint, client: &Endpoint, by_server: bool) -> LinkError {
    let addr = server.local_addr().unwrap();
    let accepted = Arc::new(AtomicBool::new(false));
    let accepting = {
        let (server, accepted) = (server.clone(), accepted.clone());
        tokio::spawn(async move {
            let link = server.accept().await.unwrap();
            accepted.store(true, Ordering::SeqCst);
            // Held until the client hangs up, as an application would.
            link.closed().await;
        })
    };
    let error = client.connect(addr).await.err().expect("refused");
    tokio::time::sleep(Duration::from_millis(300)).await;
    if by_server {
        assert!(
            !accepted.load(Ordering::SeqCst),
            "a refused peer was accepted"
        );
    }
    accepting.abort();
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_secret_links_and_refusals() {
    let primary = endpoint(secrets(Some("s3cret"), None));
    try_link(&primary, &endpoint(secrets(None, Some("s3cret"))))
        .await
        .expect("the right secret links");
    let wrong = refused(&primary, &endpoint(secrets(None, Some("guess"))), true).await;
    assert!(matches!(wrong, LinkError::Refused(_)), "{wrong}");
    let none = refused(&primary, &endpoint(secrets(None, None)), true).await;
    assert!(matches!(none, LinkError::Refused(_)), "{none}");
    // Without requirepass anyone links, as anyone may replicate from a Redis without one.
    let open = endpoint(secrets(None, None));
    try_link(&open, &endpoint(secrets(None, None)))
        .await
        .unwrap();
    // A peer that knows a secret expects the other side to prove it too.
    let impostor = refused(&open, &endpoint(secrets(None, Some("s3cret"))), false).await;
    assert!(matches!(impostor, LinkError::Refused(_)), "{impostor}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_checked_both_ways() {
    let dir = common::temp_dir("transport-certs");
    let (trusted, untrusted) = (dir.join("trusted"), dir.join("untrusted"));
    let leaves = [
        ("a", vec!["node-a".to_string()]),
        ("b", vec!["node-b".to_string()]),
    ];
    for (folder, ca) in [(&trusted, "Cluster CA"), (&untrusted, "Other CA")] {
        std::fs::create_dir_all(folder).unwrap();
        common::certs::write_certificates(folder, ca, &leaves);
    }
    let tls = |folder: &std::path::Path, leaf: &str, ca_folder: &std::path::Path| PeerAuth {
        tls: Some(PeerTls {
            cert_file: folder.join(format!("{leaf}.crt")),
            key_file: folder.join(format!("{leaf}.key")),
            ca_cert_file: ca_folder.join("ca.crt"),
        }),
        ..PeerAuth::default()
    };
    let a = endpoint(tls(&trusted, "a", &trusted));
    try_link(&a, &endpoint(tls(&trusted, "b", &trusted)))
        .await
        .expect("two certificates of one CA link (names are not checked)");
    // A client whose certificate another CA signed: the server refuses it.
    let stranger = refused(&a, &endpoint(tls(&untrusted, "b", &trusted)), true).await;
    assert!(matches!(stranger, LinkError::Quic(_)), "{stranger}");
    // A server whose certificate another CA signed: the client refuses it.
    let fake_server = endpoint(tls(&untrusted, "a", &trusted));
    let error = refused(&fake_server, &endpoint(tls(&trusted, "b", &trusted)), true).await;
    assert!(matches!(error, LinkError::Quic(_)), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_datagrams_change_nothing() {
    let server = endpoint(secrets(Some("s3cret"), None));
    let addr = server.local_addr().unwrap();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for size in [0usize, 1, 7, 100, 1200, 1500, 9000] {
        for _ in 0..50 {
            let junk: Vec<u8> = (0..size).map(|_| fastrand::u8(..)).collect();
            let _ = socket.send_to(&junk, addr);
        }
    }
    try_link(&server, &endpoint(secrets(None, Some("s3cret"))))
        .await
        .expect("still links after garbage");
}

/// On loopback (64 KB MTU) a link's packets grow far past Ethernet's 1452 bytes, both ways:
/// bulk replication then needs a fraction of the packets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_link_discovers_large_packets() {
    let server = endpoint(secrets(Some("s"), Some("s")));
    let client = endpoint(secrets(Some("s"), Some("s")));
    let addr = server.local_addr().unwrap();
    let accepting = {
        let server = server.clone();
        tokio::spawn(async move {
            let (link, mut send, mut recv) = accept_stream(&server).await;
            while recv.read_chunk(1 << 16).await.unwrap().is_some() {}
            // Answer in bulk too, so that this side discovers its own path.
            write_until_large_packets(&link, &mut send).await;
            link
        })
    };
    let link = client.connect(addr).await.unwrap();
    let (mut send, mut recv) = link.open_bi().await.unwrap();
    write_until_large_packets(&link, &mut send).await;
    while recv.read_chunk(1 << 16).await.unwrap().is_some() {}
    let server_link = accepting.await.unwrap();
    let mtus = (link.path_mtu_bytes(), server_link.path_mtu_bytes());
    assert!(
        mtus.0 > 1452 && mtus.1 > 1452,
        "path MTUs stayed at {mtus:?}"
    );
}
