//! The RESP listener: binds the configured addresses, accepts connections, applies the
//! checks Redis makes at accept time (maxclients, protected mode) and hands each connection to
//! its own task ([`super::conn`]). A node's listener runs on worker threads the node owns, so
//! several nodes can serve in one process, each on its own port.
//!
//! Connections are served by [`super::workers`]: single-threaded runtimes, one per core.

use super::conn::{self, Stream};
use super::workers::{Seat, Workers};
use crate::engine::clients::Endpoint;
use crate::engine::{Client, Engine};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// Redis's refusal for a client from another host while protected mode is on and no password
/// is set (its wording, typo included: clients and tests match on it).
const DENIED: &[u8] = b"-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

const MAXCLIENTS_REACHED: &[u8] = b"-ERR max number of clients reached\r\n";

/// Pending connections the kernel queues per listening socket (Redis's `tcp-backlog`).
const BACKLOG: i32 = 511;

/// A running listener; dropping it stops accepting and closes every connection.
pub struct Listener {
    threads: Vec<std::thread::JoinHandle<()>>,
    stop: watch::Sender<bool>,
    addresses: Vec<SocketAddr>,
}

impl Listener {
    /// Binds the addresses in `engine`'s settings and starts serving them.
    pub fn start(engine: Arc<Engine>) -> io::Result<Listener> {
        let settings = engine.settings();
        let mut sockets = Vec::new();
        if settings.port != 0 {
            let plain = bind_all(&settings.bind, settings.port)?;
            sockets.extend(plain.into_iter().map(|s| (s, None)));
        }
        if settings.tls.port != 0 {
            let acceptor = super::tls::acceptor(&settings.tls)?;
            let secure = bind_all(&settings.bind, settings.tls.port)?;
            sockets.extend(secure.into_iter().map(|s| (s, Some(acceptor.clone()))));
        }
        let addresses = sockets
            .iter()
            .map(|(s, _)| s.local_addr())
            .collect::<io::Result<Vec<_>>>()?;
        let (stop, stopped) = watch::channel(false);
        let (workers, threads) = Workers::start(settings.worker_count(), &settings, &stopped)?;
        for (socket, tls) in sockets {
            let engine = engine.clone();
            let stopped = stopped.clone();
            let accepting = workers.first().clone();
            let _guard = accepting.enter();
            let listener = TcpListener::from_std(socket)?;
            accepting.spawn(accept_loop(engine, workers.clone(), listener, tls, stopped));
        }
        for address in &addresses {
            tracing::info!("Listening on {address}");
        }
        Ok(Listener {
            threads,
            stop,
            addresses,
        })
    }

    /// The addresses it listens on, plain ones first, then the TLS ones.
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.addresses
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Binds every address of a `bind` list; an address marked optional (`-`) that cannot be
/// bound is skipped, as are duplicates of the wildcard.
fn bind_all(bind: &[String], port: u16) -> io::Result<Vec<std::net::TcpListener>> {
    let mut sockets = Vec::new();
    for entry in bind {
        let (optional, host) = match entry.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, entry.as_str()),
        };
        let ip = match host {
            "*" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            "::*" => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            other => other.parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("invalid bind address '{other}'"),
                )
            })?,
        };
        match bind_one(SocketAddr::new(ip, port)) {
            Ok(socket) => sockets.push(socket),
            Err(e) if optional => {
                tracing::debug!("skipping optional bind address {entry}: {e}");
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("Could not create server TCP listening socket {host}:{port}: {e}"),
                ))
            }
        }
    }
    if sockets.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            "Failed listening on port {port} (tcp), no address could be bound",
        ));
    }
    Ok(sockets)
}

fn bind_one(address: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if address.is_ipv6() {
        // Redis binds `*` and `::*` side by side: the IPv6 socket must not claim IPv4 too.
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

async fn accept_loop(
    engine: Arc<Engine>,
    workers: Arc<Workers>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => return,
        };
        match accepted {
            Ok((stream, peer)) => admit(
                &engine,
                workers.seat(),
                stream,
                peer,
                tls.clone(),
                stopped.clone(),
            ),
            Err(e) => {
                // Out of descriptors and the like: wait a little rather than spin.
                tracing::warn!("Accepting client connection: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Redis's notion of a local client for protected mode: exactly 127.0.0.1 or ::1.
fn is_local(peer: &SocketAddr) -> bool {
    match peer.ip() {
        IpAddr::V4(ip) => ip == Ipv4Addr::LOCALHOST,
        IpAddr::V6(ip) => ip == Ipv6Addr::LOCALHOST,
    }
}

/// How long a TLS client may take to complete its handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Socket options, then a task for the connection: its TLS handshake (on a TLS port), the
/// accept-time checks, and serving it.
fn admit(
    engine: &Arc<Engine>,
    seat: Seat,
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    stopped: watch::Receiver<bool>,
) {
    let settings = engine.settings();
    let _ = stream.set_nodelay(true);
    if settings.tcp_keepalive_secs > 0 {
        let interval = Duration::from_secs(settings.tcp_keepalive_secs);
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(interval)
            .with_interval((interval / 3).max(Duration::from_secs(1)))
            .with_retries(3);
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
    }
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let endpoint = Endpoint {
        peer,
        local,
        fd: raw_fd(&stream),
    };
    let engine = engine.clone();
    // Registered here, at accept time as in Redis, so that the client count (and maxclients)
    // is exact even while connections wait for their worker to pick them up.
    let admission = admit_or_refuse(&engine, &settings, endpoint);
    // The socket was registered with the accepting thread's reactor: move it to the worker's.
    let Ok(stream) = stream.into_std() else {
        return leave(&engine, admission);
    };
    let worker = seat.handle().clone();
    worker.spawn(async move {
        let Ok(stream) = TcpStream::from_std(stream) else {
            return leave(&engine, admission);
        };
        let Some(acceptor) = tls else {
            return serve_admitted(engine, stream, admission, stopped, seat).await;
        };
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(secure)) => {
                return serve_admitted(engine, secure, admission, stopped, seat).await
            }
            Ok(Err(e)) => tracing::debug!("Error accepting a client connection: {e} (addr={peer})"),
            Err(_) => tracing::debug!("TLS handshake timed out (addr={peer})"),
        }
        leave(&engine, admission);
    });
}

/// The client, registered, or the error Redis refuses it with when the node is full or
/// protected.
fn admit_or_refuse(
    engine: &Engine,
    settings: &crate::config::Config,
    endpoint: Endpoint,
) -> Result<Client, &'static [u8]> {
    if engine.clients.len() as u64 >= settings.maxclients {
        Err(MAXCLIENTS_REACHED)
    } else if settings.protected_mode && !engine.requires_auth() && !is_local(&endpoint.peer) {
        Err(DENIED)
    } else {
        Ok(Client::connected(engine, endpoint))
    }
}

/// Unregisters a client whose connection failed before it was served.
fn leave(engine: &Engine, admission: Result<Client, &'static [u8]>) {
    if let Ok(client) = admission {
        engine.clients.disconnect(client.id());
    }
}

/// Serves an admitted client, or sends a refused one its error.
async fn serve_admitted<S: Stream>(
    engine: Arc<Engine>,
    mut stream: S,
    admission: Result<Client, &'static [u8]>,
    stopped: watch::Receiver<bool>,
    seat: Seat,
) {
    let client = match admission {
        Ok(client) => client,
        Err(text) => {
            engine.clients.reject();
            // Best effort, as Redis: the client may be gone already.
            let write = async {
                stream.write_all(text).await?;
                stream.flush().await
            };
            let _ = tokio::time::timeout(Duration::from_millis(100), write).await;
            return;
        }
    };
    conn::serve(engine, client, stream, stopped, seat).await;
}

#[cfg(unix)]
fn raw_fd(stream: &TcpStream) -> i64 {
    use std::os::fd::AsRawFd;
    i64::from(stream.as_raw_fd())
}

#[cfg(not(unix))]
fn raw_fd(_stream: &TcpStream) -> i64 {
    -1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_mode_admits_only_the_loopback_addresses() {
        let peer = |text: &str| text.parse::<SocketAddr>().unwrap();
        assert!(is_local(&peer("127.0.0.1:5000")));
        assert!(is_local(&peer("[::1]:5000")));
        // Redis compares with 127.0.0.1 exactly, not the whole 127/8 range.
        assert!(!is_local(&peer("127.0.0.2:5000")));
        assert!(!is_local(&peer("192.0.2.10:5000")));
        assert!(!is_local(&peer("[fd00::2]:5000")));
    }

    #[test]
    fn bind_lists_as_redis_reads_them() {
        let loopback = bind_all(&["127.0.0.1".into(), "-::1".into()], 0).unwrap();
        assert!(!loopback.is_empty());
        // An optional address that cannot be bound is skipped; a required one is an error.
        let optional = bind_all(&["127.0.0.1".into(), "-192.0.2.123".into()], 0).unwrap();
        assert_eq!(optional.len(), 1);
        let err = bind_all(&["192.0.2.123".into()], 0).unwrap_err();
        assert!(err
            .to_string()
            .contains("Could not create server TCP listening socket"));
        assert!(bind_all(&["not-an-ip".into()], 0).is_err());
    }
}
