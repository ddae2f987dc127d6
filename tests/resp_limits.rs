//! Bad and greedy clients against `shoal-server`: malformed frames, oversized headers and
//! bulks, unauthenticated clients, a client that never reads, maxclients, and 10,000 idle
//! connections. Each is answered as Redis answers it while every other client is served.

mod common;

use common::{RespConn, ShoalServer, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Sends raw bytes and returns everything the server writes until it closes the connection.
fn send_raw_until_closed(port: u16, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    let mut out = Vec::new();
    stream
        .read_to_end(&mut out)
        .expect("the server closes the connection");
    String::from_utf8_lossy(&out).into_owned()
}

fn info_field(conn: &mut RespConn, section: &str, field: &str) -> String {
    conn.info(section)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_string))
        .unwrap_or_else(|| panic!("{field} missing from INFO {section}"))
}

#[test]
fn malformed_frames_get_protocol_errors_and_only_that_connection_closes() {
    let server = ShoalServer::start(&["--proto-max-bulk-len", "1mb"]);
    let port = server.port;
    let mut bystander = RespConn::connect(port).unwrap();
    bystander.call(&[b"SET", b"k", b"v"]);
    let cases: [(&[u8], &str); 6] = [
        (
            b"*1\r\n$-5\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$99999999999999999999\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*99999999999999999999\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\nfoo\r\n",
            "-ERR Protocol error: expected '$', got 'f'\r\n",
        ),
        (
            b"*2\r\n$3\r\nSET\r\n$2000000\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"\"unbalanced\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ];
    for (bytes, reply) in cases {
        assert_eq!(send_raw_until_closed(port, bytes), reply, "for {bytes:?}");
        assert_eq!(
            bystander.call(&[b"GET", b"k"]),
            Value::Bulk(b"v".to_vec()),
            "other clients are still served"
        );
    }
    // A negative multibulk count is an empty command, as in Redis: nothing is replied.
    let mut conn = RespConn::connect(port).unwrap();
    conn.writer
        .write_all(b"*-1\r\n*1\r\n$4\r\nPING\r\n")
        .unwrap();
    assert_eq!(conn.read(), Value::Status("PONG".into()));
}

#[test]
fn unauthenticated_clients_are_limited_to_small_requests() {
    let server = ShoalServer::start(&["--requirepass", "secret"]);
    let port = server.port;
    assert_eq!(
        send_raw_until_closed(port, b"*1000000\r\n"),
        "-ERR Protocol error: unauthenticated multibulk length\r\n"
    );
    assert_eq!(
        send_raw_until_closed(port, b"*2\r\n$4\r\nAUTH\r\n$100000\r\n"),
        "-ERR Protocol error: unauthenticated bulk length\r\n"
    );
    let mut conn = RespConn::connect(port).unwrap();
    assert_eq!(
        conn.call(&[b"GET", b"k"]),
        Value::Error("NOAUTH Authentication required.".into())
    );
    assert_eq!(
        conn.call(&[b"AUTH", b"wrong"]),
        Value::Error("WRONGPASS invalid username-password pair or user is disabled.".into())
    );
    assert_eq!(conn.call(&[b"AUTH", b"secret"]), Value::Status("OK".into()));
    // Authenticated, the same large header is an ordinary (incomplete) request.
    conn.writer
        .write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n")
        .unwrap();
    conn.writer.write_all(b"$100000\r\n").unwrap();
    conn.writer.write_all(&vec![b'x'; 100_000]).unwrap();
    conn.writer.write_all(b"\r\n").unwrap();
    assert_eq!(conn.read(), Value::Status("OK".into()));
    let mut fresh = RespConn::connect(port).unwrap();
    let hello = fresh.call(&[
        b"HELLO", b"3", b"AUTH", b"default", b"secret", b"SETNAME", b"me",
    ]);
    assert!(matches!(hello, Value::Map(_)), "{hello:?}");
    assert_eq!(
        fresh.call(&[b"CLIENT", b"GETNAME"]),
        Value::Bulk(b"me".to_vec())
    );
}

#[test]
fn a_client_that_never_reads_is_disconnected_at_its_output_limit() {
    let server = ShoalServer::start(&["--client-output-buffer-limit", "normal 4mb 2mb 1"]);
    let port = server.port;
    let mut control = RespConn::connect(port).unwrap();
    let value = vec![b'v'; 100 * 1024];
    control.call(&[b"SET", b"big", &value]);
    let rss_before: u64 = info_field(&mut control, "memory", "used_memory_rss")
        .parse()
        .unwrap();

    // 2000 GETs of 100 KiB each: 200 MB of replies it never reads.
    let mut greedy = TcpStream::connect(("127.0.0.1", port)).unwrap();
    greedy
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut requests = Vec::new();
    for _ in 0..2000 {
        shoal::resp::encode_command(&[b"GET", b"big"], &mut requests);
    }
    let _ = greedy.write_all(&requests);

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let clients: u64 = info_field(&mut control, "clients", "connected_clients")
            .parse()
            .unwrap();
        if clients == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the greedy client was not disconnected"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let rss_after: u64 = info_field(&mut control, "memory", "used_memory_rss")
        .parse()
        .unwrap();
    assert!(
        rss_after < rss_before + 64 * 1024 * 1024,
        "server memory stayed bounded: {rss_before} -> {rss_after}"
    );
    assert_eq!(control.call(&[b"PING"]), Value::Status("PONG".into()));
}

#[test]
fn maxclients_refuses_with_redis_error() {
    let server = ShoalServer::start(&["--maxclients", "2"]);
    let port = server.port;
    let mut first = RespConn::connect(port).unwrap();
    let mut second = RespConn::connect(port).unwrap();
    assert_eq!(first.call(&[b"PING"]), Value::Status("PONG".into()));
    assert_eq!(second.call(&[b"PING"]), Value::Status("PONG".into()));
    // Sending nothing: a refused client's unread request would make the close a reset.
    assert_eq!(
        send_raw_until_closed(port, b""),
        "-ERR max number of clients reached\r\n"
    );
    drop(first);
    std::thread::sleep(Duration::from_millis(200));
    let mut third = RespConn::connect(port).unwrap();
    assert_eq!(third.call(&[b"PING"]), Value::Status("PONG".into()));
}

/// Raises this process's open-files limit to its hard limit.
fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit read and write only the struct given.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    limit.rlim_cur
}

fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

#[test]
fn ten_thousand_idle_connections_take_bounded_memory_and_no_thread_each() {
    const CONNECTIONS: usize = 10_000;
    assert!(
        raise_fd_limit() > CONNECTIONS as u64 + 100,
        "the test needs more than {CONNECTIONS} open files"
    );
    let server = ShoalServer::start(&["--maxclients", "10100"]);
    let port = server.port;
    let pid = server.child.id();
    let rss_before_kb = proc_status(pid, "VmRSS:");
    let mut idle: Vec<TcpStream> = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        idle.push(TcpStream::connect(("127.0.0.1", port)).expect("connect"));
    }
    // Every one of them is served (no thread waits per connection).
    for stream in idle.iter_mut().step_by(100) {
        stream.write_all(b"PING\r\n").unwrap();
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"+PONG\r\n");
    }
    let mut control = RespConn::connect(port).unwrap();
    let connected: usize = info_field(&mut control, "clients", "connected_clients")
        .parse()
        .unwrap();
    assert_eq!(connected, CONNECTIONS + 1);
    let threads = proc_status(pid, "Threads:");
    assert!(
        threads < 64,
        "{threads} threads for {CONNECTIONS} connections"
    );
    let rss_kb = proc_status(pid, "VmRSS:");
    let per_connection_bytes = (rss_kb.saturating_sub(rss_before_kb) * 1024) / CONNECTIONS as u64;
    assert!(
        per_connection_bytes < 64 * 1024,
        "{per_connection_bytes} bytes of resident memory per idle connection"
    );
}
