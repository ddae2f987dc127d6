//! Clients: ids, the registry that CLIENT LIST and CLIENT KILL read, and client pauses.
//!
//! A connection's own state (database, transaction, protocol) lives in its [`Client`], owned
//! by whoever drives the connection. What *other* clients must see or signal (its name for
//! CLIENT LIST, a CLIENT KILL or CLIENT UNBLOCK aimed at it) lives in a shared [`ClientInfo`]
//! that the registry also holds. The engine never touches a socket: a kill or an unblock sets
//! a flag and notifies the connection's driver, which acts on it.
//!
//! [`Client`]: super::Client

use crate::keyspace::bytes::CompactBytes;
use event_listener::{Event, EventListener};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

/// A client's id, as CLIENT ID reports it: unique for the node's lifetime, never reused.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub u64);

/// What kind of client this is, for CLIENT LIST TYPE and CLIENT KILL TYPE.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ClientKind {
    /// An ordinary connection.
    Normal,
    /// A replica's replication link.
    Replica,
    /// A subscriber (in RESP2 subscribed mode).
    PubSub,
    /// The embedding application (the Rust API): not listed, never killed.
    Embedded,
}

/// How a CLIENT UNBLOCK asks a blocked client to stop waiting.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Unblock {
    /// Reply as if the timeout expired.
    Timeout,
    /// Reply `-UNBLOCKED client unblocked via CLIENT UNBLOCK`.
    Error,
}

/// Bits of [`ClientInfo::flags`].
pub mod flag {
    /// Inside MULTI.
    pub const MULTI: u32 = 1 << 0;
    /// Waiting in a blocking command.
    pub const BLOCKED: u32 = 1 << 1;
    /// A MONITOR.
    pub const MONITOR: u32 = 1 << 2;
    /// Will be closed after its pending replies are written.
    pub const CLOSE_ASAP: u32 = 1 << 3;
    /// CLIENT NO-EVICT on.
    pub const NO_EVICT: u32 = 1 << 4;
    /// CLIENT NO-TOUCH on.
    pub const NO_TOUCH: u32 = 1 << 5;
    /// Held back by CLIENT PAUSE.
    pub const PAUSED: u32 = 1 << 7;
    /// Subscribed to a channel, pattern or shard channel: a `pubsub` client.
    pub const PUBSUB: u32 = 1 << 8;
}

/// The part of a client that other clients see and signal.
pub struct ClientInfo {
    pub id: ClientId,
    pub kind: ClientKind,
    /// The peer's address (`addr=` in CLIENT LIST); `None` for embedded clients.
    pub peer: Option<SocketAddr>,
    /// The local address it connected to (`laddr=`).
    pub local: Option<SocketAddr>,
    /// The socket's descriptor number (`fd=`), -1 when there is none.
    pub fd: i64,
    pub created_ms: u64,
    /// When it last ran a command (`idle=`).
    pub last_interaction_ms: AtomicU64,
    /// CLIENT SETNAME.
    pub name: Mutex<CompactBytes>,
    /// CLIENT SETINFO LIB-NAME / LIB-VER.
    pub lib: Mutex<(CompactBytes, CompactBytes)>,
    /// The selected database, published for CLIENT LIST.
    pub db: AtomicUsize,
    /// RESP version (2 or 3), published for CLIENT LIST.
    pub resp: AtomicU8,
    /// [`flag`] bits.
    pub flags: AtomicU32,
    /// Commands queued in its MULTI.
    pub multi_len: AtomicUsize,
    /// Bytes of unparsed input and of unwritten output, published by the driver.
    pub query_bytes: AtomicUsize,
    pub output_bytes: AtomicUsize,
    /// Channels, patterns and shard channels subscribed (`sub=`, `psub=`, `ssub=`).
    pub subscriptions: [AtomicUsize; 3],
    /// The id of the last command it ran (`cmd=`), `u32::MAX` for none.
    pub last_command: AtomicU32,
    /// Set by CLIENT KILL (and by the output buffer limit): the driver closes the connection.
    killed: AtomicBool,
    /// A pending CLIENT UNBLOCK: 0 none, 1 timeout, 2 error.
    unblock: AtomicU8,
    /// Notified on a kill or an unblock.
    signal: Event,
}

impl ClientInfo {
    fn new(id: ClientId, kind: ClientKind, now_ms: u64) -> ClientInfo {
        ClientInfo {
            id,
            kind,
            peer: None,
            local: None,
            fd: -1,
            created_ms: now_ms,
            last_interaction_ms: AtomicU64::new(now_ms),
            name: Mutex::new(CompactBytes::EMPTY),
            lib: Mutex::new((CompactBytes::EMPTY, CompactBytes::EMPTY)),
            db: AtomicUsize::new(0),
            resp: AtomicU8::new(2),
            flags: AtomicU32::new(0),
            multi_len: AtomicUsize::new(0),
            query_bytes: AtomicUsize::new(0),
            output_bytes: AtomicUsize::new(0),
            subscriptions: Default::default(),
            last_command: AtomicU32::new(u32::MAX),
            killed: AtomicBool::new(false),
            unblock: AtomicU8::new(0),
            signal: Event::new(),
        }
    }

    pub fn has_flag(&self, bit: u32) -> bool {
        self.flags.load(Ordering::Relaxed) & bit != 0
    }

    pub fn set_flag(&self, bit: u32, on: bool) {
        if on {
            self.flags.fetch_or(bit, Ordering::Relaxed);
        } else {
            self.flags.fetch_and(!bit, Ordering::Relaxed);
        }
    }

    /// Asks the driver to close this client.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.signal.notify(usize::MAX);
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    /// Wakes the driver: messages wait for it (pub/sub).
    pub fn wake(&self) {
        self.signal.notify(usize::MAX);
    }

    /// The class whose output limit applies and that CLIENT LIST and CLIENT KILL TYPE show:
    /// a normal client with subscriptions is a `pubsub` one, as in Redis.
    pub fn class(&self) -> ClientKind {
        if self.kind == ClientKind::Normal && self.has_flag(flag::PUBSUB) {
            ClientKind::PubSub
        } else {
            self.kind
        }
    }

    /// Asks a blocked client to stop waiting; false if it is not blocked.
    pub fn unblock(&self, how: Unblock) -> bool {
        if !self.has_flag(flag::BLOCKED) {
            return false;
        }
        let code = match how {
            Unblock::Timeout => 1,
            Unblock::Error => 2,
        };
        self.unblock.store(code, Ordering::Release);
        self.signal.notify(usize::MAX);
        true
    }

    /// Takes a pending unblock request.
    pub fn take_unblock(&self) -> Option<Unblock> {
        match self.unblock.swap(0, Ordering::AcqRel) {
            1 => Some(Unblock::Timeout),
            2 => Some(Unblock::Error),
            _ => None,
        }
    }

    /// A listener that fires on the next kill, unblock or wake; check the flags (and the
    /// mailbox) after creating it.
    pub fn signalled(&self) -> EventListener {
        self.signal.listen()
    }

    /// The client's name, empty when it has none.
    pub fn name(&self) -> CompactBytes {
        self.name.lock().clone()
    }
}

/// Ids come from one counter per process, so a client made without a node (an embedded
/// [`Client`](super::Client)) still gets a unique one.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> ClientId {
    ClientId(NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

/// Every live client of a node, by id.
#[derive(Default)]
pub struct Registry {
    clients: Mutex<BTreeMap<ClientId, Arc<ClientInfo>>>,
    /// Connections ever accepted (INFO `total_connections_received`).
    pub connections_received: AtomicU64,
    /// Connections refused (maxclients, protected mode): INFO `rejected_connections`.
    pub connections_rejected: AtomicU64,
    /// Bytes read from and written to clients (INFO `total_net_input_bytes` / `_output_`).
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    /// MONITOR connections and the lines waiting for each.
    monitors: Monitors,
}

/// Lines not yet written to a monitor past which it is disconnected (a monitor that does not
/// read must not grow the node's memory).
pub const MONITOR_PENDING_BYTES_MAX: usize = 32 * 1024 * 1024;

#[derive(Default)]
struct Monitors {
    /// Number of monitors, read on every command without taking the lock.
    count: AtomicUsize,
    feeds: Mutex<Vec<(Arc<ClientInfo>, Vec<u8>)>>,
}

/// Where a connection comes from, for its [`ClientInfo`].
#[derive(Copy, Clone, Debug)]
pub struct Endpoint {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub fd: i64,
}

impl ClientInfo {
    /// Info for a client of the embedding application: it has an id but is not listed.
    pub fn embedded() -> Arc<ClientInfo> {
        Arc::new(ClientInfo::new(next_id(), ClientKind::Embedded, 0))
    }
}

impl Registry {
    /// Registers a new connection.
    pub fn connect(&self, kind: ClientKind, endpoint: Endpoint, now_ms: u64) -> Arc<ClientInfo> {
        let mut info = ClientInfo::new(next_id(), kind, now_ms);
        info.peer = Some(endpoint.peer);
        info.local = Some(endpoint.local);
        info.fd = endpoint.fd;
        let info = Arc::new(info);
        self.clients.lock().insert(info.id, info.clone());
        self.connections_received.fetch_add(1, Ordering::Relaxed);
        info
    }

    pub fn count_input(&self, bytes: usize) {
        self.net_input_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn count_output(&self, bytes: usize) {
        self.net_output_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts a connection refused at accept time.
    pub fn reject(&self) {
        self.connections_rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// CONFIG RESETSTAT: zeroes the connection and traffic counters.
    pub fn reset_counters(&self) {
        for counter in [
            &self.connections_received,
            &self.connections_rejected,
            &self.net_input_bytes,
            &self.net_output_bytes,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }

    /// Removes a closed connection.
    pub fn disconnect(&self, id: ClientId) {
        self.clients.lock().remove(&id);
        self.stop_monitor(id);
    }

    /// MONITOR: the client receives a line per command from now on.
    pub fn start_monitor(&self, client: Arc<ClientInfo>) {
        client.set_flag(flag::MONITOR, true);
        let mut feeds = self.monitors.feeds.lock();
        feeds.push((client, Vec::new()));
        self.monitors.count.store(feeds.len(), Ordering::Relaxed);
    }

    pub fn stop_monitor(&self, id: ClientId) {
        if self.monitors.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut feeds = self.monitors.feeds.lock();
        feeds.retain(|(c, _)| c.id != id);
        self.monitors.count.store(feeds.len(), Ordering::Relaxed);
    }

    /// Whether any client monitors (checked before a line is built).
    pub fn monitored(&self) -> bool {
        self.monitors.count.load(Ordering::Relaxed) > 0
    }

    /// Queues `line` for every monitor and wakes their connections; a monitor whose pending
    /// lines pass [`MONITOR_PENDING_BYTES_MAX`] is killed.
    pub fn feed_monitors(&self, line: &[u8]) {
        for (client, pending) in self.monitors.feeds.lock().iter_mut() {
            if pending.len() + line.len() > MONITOR_PENDING_BYTES_MAX {
                pending.clear();
                client.kill();
                continue;
            }
            pending.extend_from_slice(line);
            client.signal.notify(usize::MAX);
        }
    }

    /// Whether lines wait for monitor `id`.
    pub fn monitor_pending(&self, id: ClientId) -> bool {
        self.monitors.count.load(Ordering::Relaxed) > 0
            && self
                .monitors
                .feeds
                .lock()
                .iter()
                .any(|(c, p)| c.id == id && !p.is_empty())
    }

    /// Takes the lines waiting for monitor `id`, appending them to `out`.
    pub fn take_monitor_lines(&self, id: ClientId, out: &mut Vec<u8>) {
        if let Some((_, pending)) = self
            .monitors
            .feeds
            .lock()
            .iter_mut()
            .find(|(c, _)| c.id == id)
        {
            out.append(pending);
        }
    }

    /// Number of listed clients.
    pub fn len(&self) -> usize {
        self.clients.lock().len()
    }

    /// A snapshot of every listed client, in id order.
    pub fn all(&self) -> Vec<Arc<ClientInfo>> {
        self.clients.lock().values().cloned().collect()
    }

    pub fn get(&self, id: ClientId) -> Option<Arc<ClientInfo>> {
        self.clients.lock().get(&id).cloned()
    }
}

/// What a CLIENT PAUSE holds back.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PauseScope {
    /// Commands that may write (and EVAL, PUBLISH...): reads go on.
    Write,
    /// Every command of every normal client.
    All,
}

/// CLIENT PAUSE state: a deadline and a scope, and an event for waiters.
#[derive(Default)]
pub struct Pause {
    /// 0 none, 1 write, 2 all.
    scope: AtomicU8,
    until_ms: AtomicU64,
    ended: Event,
}

impl Pause {
    /// Pauses until `until_ms` (a later pause extends an earlier one; ALL wins over WRITE while
    /// both are active, as in Redis).
    pub fn start(&self, scope: PauseScope, until_ms: u64, now_ms: u64) {
        let code = match scope {
            PauseScope::Write => 1,
            PauseScope::All => 2,
        };
        if self.active(now_ms).is_some() {
            self.scope.fetch_max(code, Ordering::AcqRel);
            self.until_ms.fetch_max(until_ms, Ordering::AcqRel);
        } else {
            self.until_ms.store(until_ms, Ordering::Release);
            self.scope.store(code, Ordering::Release);
        }
    }

    /// Ends the pause now (CLIENT UNPAUSE) and wakes every waiter.
    pub fn end(&self) {
        self.scope.store(0, Ordering::Release);
        self.until_ms.store(0, Ordering::Release);
        self.ended.notify(usize::MAX);
    }

    /// Whether a pause was started and not ended (it may have expired): a cheap first test.
    #[inline]
    pub fn is_set(&self) -> bool {
        self.scope.load(Ordering::Relaxed) != 0
    }

    /// The active pause, if any at `now_ms`.
    pub fn active(&self, now_ms: u64) -> Option<PauseScope> {
        match self.scope.load(Ordering::Acquire) {
            0 => None,
            _ if now_ms >= self.until_ms.load(Ordering::Acquire) => None,
            1 => Some(PauseScope::Write),
            _ => Some(PauseScope::All),
        }
    }

    /// When the active pause ends (Unix ms).
    pub fn until_ms(&self) -> u64 {
        self.until_ms.load(Ordering::Acquire)
    }

    /// A listener fired by CLIENT UNPAUSE; a timed pause ends by its deadline alone.
    pub fn ended(&self) -> EventListener {
        self.ended.listen()
    }
}
