//! Replication: a replica receives its primary's write log over QUIC, with Redis's PSYNC2
//! semantics.
//!
//! ```text
//! replica                                  primary
//!   connect (transport: authenticated link)
//!   control stream: Sync{replid, offset} ->
//!                                           <- Continue{replid}     (offset still in the log)
//!                                           <- FullResync{replid, offset}
//!                                              + snapshot stream (the RDB writer, no fork)
//!   log stream: the primary's log bytes from the offset on, applied and appended verbatim
//!   control stream: Ack{applied, fsynced} ->   (what WAIT and WAITAOF count)
//! ```
//!
//! A replica's log holds exactly its primary's bytes, so offsets are the same on every node
//! of a chain, a replica of a replica streams its own log on, and a promoted replica keeps
//! serving the old primary's other replicas partially (`replid2`).
//!
//! `State` is what the engine and commands see (role, IDs, replicas and their acknowledged
//! offsets); `Manager` owns the I/O: the QUIC endpoint, the accept loop (`primary.rs`) and
//! the link to a primary (`replica.rs`).

pub(crate) mod failover;
mod primary;
mod replica;
pub mod wire;

use crate::cluster::ids::NodeId;
use crate::engine::Engine;
use crate::log::Offset;
use crate::transport::{Endpoint, PeerAuth, SharedAuth};
use parking_lot::{Mutex, RwLock};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

/// A 40-hex-digit replication ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReplId(pub String);

impl ReplId {
    pub fn random() -> ReplId {
        ReplId(crate::process::hex_id())
    }

    /// Redis's "no ID": forty zeros.
    pub fn none() -> ReplId {
        ReplId("0".repeat(40))
    }
}

/// The history this node's log belongs to.
#[derive(Clone, Debug)]
pub(crate) struct Ids {
    pub replid: ReplId,
    /// The previous primary's ID after a promotion, valid up to `second_offset`.
    pub replid2: ReplId,
    /// First offset that is not the old primary's history (`None`: no second ID).
    pub second_offset: Option<u64>,
}

/// Where a replica's link stands (ROLE's state, INFO's `master_link_status`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum LinkStatus {
    Connecting,
    Sync,
    Connected,
}

/// The primary a replica follows.
#[derive(Clone, Debug)]
pub(crate) struct Upstream {
    pub host: String,
    pub port: u16,
    /// Its QUIC endpoint; `None` (REPLICAOF host port): asked of its RESP port before each
    /// link, as `cluster-port` may place it anywhere.
    pub bus: Option<SocketAddr>,
}

/// This node's role.
#[derive(Clone, Debug)]
pub(crate) enum Role {
    Primary,
    Replica(Upstream),
}

/// A replica as its primary sees it.
#[derive(Clone, Debug)]
pub(crate) struct ReplicaInfo {
    pub id: u64,
    pub ip: String,
    pub port: u16,
    /// `wait_bgsave`, `send_bulk` or `online`.
    pub state: &'static str,
    /// Its cluster node ID (cluster mode).
    pub node: Option<NodeId>,
    pub applied: u64,
    pub fsynced: u64,
    pub last_ack: Instant,
}

/// Replication state shared with the engine.
pub(crate) struct State {
    role: RwLock<Role>,
    /// `role` is a replica: read by every command, so kept apart from the lock.
    following: AtomicBool,
    ids: Mutex<Ids>,
    link: Mutex<(LinkStatus, Option<Instant>)>,
    replicas: Mutex<Vec<ReplicaInfo>>,
    next_replica_id: AtomicU64,
    /// Woken whenever a replica acknowledges (WAIT, WAITAOF).
    acked: event_listener::Event,
    /// Cluster mode: the replicas whose acknowledgements count, as the cluster state says
    /// (`None`: every one). A replica counts once its shard knows of it, so that an election
    /// in the shard cannot overlook the writes only it acknowledged.
    counted: RwLock<Option<Vec<NodeId>>>,
    /// Since when a primary has had no replica (`None`: it has one, or is a replica).
    alone_since: Mutex<Option<Instant>>,
    /// The backlog holds history (INFO's `repl_backlog_active`); freed after
    /// `repl-backlog-ttl` without replicas.
    backlog_active: AtomicBool,
    /// Changes with every role change: sessions of an older epoch stop.
    epoch: AtomicU64,
    loading: AtomicBool,
    /// Held by the applier while a chunk is applied and then appended to the log; a snapshot
    /// takes it exclusively so that its offset covers exactly what the dataset holds.
    applying: RwLock<()>,
    pub sync_full: AtomicU64,
    pub sync_partial_ok: AtomicU64,
    pub sync_partial_err: AtomicU64,
    /// Created with the node when it has a bus address or a primary, else on first use.
    manager: Mutex<Option<Arc<Manager>>>,
    /// Replicas waiting to share the next snapshot.
    full_syncs: Mutex<primary::Waiting>,
    /// FAILOVER on this primary, if one runs.
    pub failover: failover::Failover,
    /// The next sync asks the primary to take over first (FAILOVER's last step).
    handing_over: AtomicBool,
}

impl Default for State {
    fn default() -> State {
        State {
            role: RwLock::new(Role::Primary),
            following: AtomicBool::new(false),
            ids: Mutex::new(Ids {
                replid: ReplId::random(),
                replid2: ReplId::none(),
                second_offset: None,
            }),
            link: Mutex::new((LinkStatus::Connecting, None)),
            replicas: Mutex::new(Vec::new()),
            next_replica_id: AtomicU64::new(0),
            acked: event_listener::Event::new(),
            counted: RwLock::new(None),
            epoch: AtomicU64::new(0),
            alone_since: Mutex::new(Some(Instant::now())),
            // As in Redis, a primary's backlog starts with its first replica.
            backlog_active: AtomicBool::new(false),
            loading: AtomicBool::new(false),
            applying: RwLock::new(()),
            sync_full: AtomicU64::new(0),
            sync_partial_ok: AtomicU64::new(0),
            sync_partial_err: AtomicU64::new(0),
            manager: Mutex::new(None),
            full_syncs: Mutex::new(primary::Waiting::default()),
            failover: failover::Failover::default(),
            handing_over: AtomicBool::new(false),
        }
    }
}

impl State {
    pub fn role(&self) -> Role {
        self.role.read().clone()
    }

    pub fn is_replica(&self) -> bool {
        self.following.load(Ordering::Acquire)
    }

    fn set_role(&self, role: Role) {
        let mut current = self.role.write();
        self.following
            .store(matches!(role, Role::Replica(_)), Ordering::Release);
        let alone = self.replicas.lock().is_empty() && matches!(role, Role::Primary);
        *self.alone_since.lock() = alone.then(Instant::now);
        *current = role;
        // Sessions of the old role stop; replicas reconnect and learn the new history.
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    pub fn ids(&self) -> Ids {
        self.ids.lock().clone()
    }

    /// Keeps the primary's stream from being applied (a snapshot beginning).
    pub fn hold_applying(&self) -> parking_lot::RwLockWriteGuard<'_, ()> {
        self.applying.write()
    }

    /// A replica whose link to its primary is not up.
    pub fn is_stale(&self) -> bool {
        self.link.lock().0 != LinkStatus::Connected
    }

    /// Online replicas that acknowledged within `max_lag_secs` (min-replicas-to-write).
    pub fn good_replicas(&self, max_lag_secs: u64) -> u64 {
        let replicas = self.replicas.lock();
        let counts = self.counts();
        let good = |r: &&ReplicaInfo| {
            counts(r) && r.state == "online" && r.last_ack.elapsed().as_secs() <= max_lag_secs
        };
        replicas.iter().filter(good).count() as u64
    }

    /// Whether a full resync is loading its snapshot (clients get LOADING).
    pub fn is_loading(&self) -> bool {
        self.loading.load(Ordering::Acquire)
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Replicas whose acknowledgement covers `offset` (fsynced ones only, for WAITAOF).
    pub fn replicas_acked(&self, offset: Offset, fsynced: bool) -> i64 {
        let replicas = self.replicas.lock();
        let counts = self.counts();
        let covered = |r: &&ReplicaInfo| {
            let applied = if fsynced { r.fsynced } else { r.applied };
            counts(r) && r.state == "online" && applied >= offset.0
        };
        replicas.iter().filter(covered).count() as i64
    }

    /// Whether a replica's acknowledgements count (see `counted`).
    fn counts(&self) -> impl Fn(&ReplicaInfo) -> bool + '_ {
        let counted = self.counted.read();
        move |r| match (&*counted, &r.node) {
            (None, _) => true,
            (Some(ids), Some(id)) => ids.contains(id),
            (Some(_), None) => false,
        }
    }

    /// Cluster mode: which replicas' acknowledgements count from now on.
    pub fn set_counted(&self, ids: Vec<NodeId>) {
        let mut counted = self.counted.write();
        if counted.as_ref() != Some(&ids) {
            *counted = Some(ids);
            drop(counted);
            // Waiters recount.
            self.acked.notify(usize::MAX);
        }
    }

    /// A listener woken by the next replica acknowledgement.
    pub fn listen_acks(&self) -> event_listener::EventListener {
        self.acked.listen()
    }

    pub fn replicas(&self) -> Vec<ReplicaInfo> {
        self.replicas.lock().clone()
    }

    fn set_link(&self, status: LinkStatus) {
        self.link.lock().0 = status;
    }

    fn touch_link(&self) {
        self.link.lock().1 = Some(Instant::now());
    }

    pub fn link(&self) -> (LinkStatus, Option<Instant>) {
        *self.link.lock()
    }

    fn add_replica(&self, ip: String, port: u16, node: Option<NodeId>) -> u64 {
        let id = self.next_replica_id.fetch_add(1, Ordering::Relaxed);
        *self.alone_since.lock() = None;
        self.backlog_active.store(true, Ordering::Relaxed);
        self.replicas.lock().push(ReplicaInfo {
            id,
            ip,
            port,
            state: "wait_bgsave",
            node,
            applied: 0,
            fsynced: 0,
            last_ack: Instant::now(),
        });
        id
    }

    fn update_replica(&self, id: u64, f: impl FnOnce(&mut ReplicaInfo)) {
        if let Some(r) = self.replicas.lock().iter_mut().find(|r| r.id == id) {
            f(r);
        }
        self.acked.notify(usize::MAX);
    }

    /// How long replica `id` has been silent, if it is online (one still receiving its
    /// snapshot is not expected to acknowledge).
    fn silence(&self, id: u64) -> Option<std::time::Duration> {
        let replicas = self.replicas.lock();
        let replica = replicas.iter().find(|r| r.id == id)?;
        (replica.state == "online").then(|| replica.last_ack.elapsed())
    }

    fn remove_replica(&self, id: u64) {
        let mut replicas = self.replicas.lock();
        replicas.retain(|r| r.id != id);
        if replicas.is_empty() {
            *self.alone_since.lock() = Some(Instant::now());
        }
        drop(replicas);
        self.acked.notify(usize::MAX);
    }

    /// Starts following a new history (after a full resync).
    fn adopt(&self, replid: ReplId) {
        self.backlog_active.store(true, Ordering::Relaxed);
        let mut ids = self.ids.lock();
        ids.replid = replid;
        ids.replid2 = ReplId::none();
        ids.second_offset = None;
    }

    /// The primary changed its ID (it was promoted): ours follows, and the old one stays
    /// valid up to `at` for our own replicas.
    fn shift(&self, replid: ReplId, at: u64) {
        let mut ids = self.ids.lock();
        if ids.replid != replid {
            let old = std::mem::replace(&mut ids.replid, replid);
            ids.replid2 = old;
            ids.second_offset = Some(at);
        }
    }

    /// Whether a replica asking for `replid` from `offset` can continue from our log.
    fn can_continue(&self, engine: &Engine, replid: &str, offset: u64) -> bool {
        let ids = self.ids.lock();
        let ours = ids.replid.0 == replid;
        let previous = ids.replid2.0 == replid && ids.second_offset.is_some_and(|s| offset <= s);
        let log = engine.log();
        (ours || previous) && log.start().0 <= offset && offset <= log.end().0
    }
}

/// Frees the backlog of a primary that has had no replica for `repl-backlog-ttl` (a replica
/// keeps its own: it may be promoted). Called by the node's background tick.
pub(crate) fn on_tick(engine: &Engine) {
    let repl = &engine.repl;
    if repl.is_replica() || !repl.backlog_active.load(Ordering::Relaxed) {
        return;
    }
    let ttl_secs = engine.settings().repl_backlog_ttl_secs;
    let alone = *repl.alone_since.lock();
    if ttl_secs > 0 && alone.is_some_and(|t| t.elapsed().as_secs() >= ttl_secs) {
        engine.log().discard_history();
        repl.backlog_active.store(false, Ordering::Relaxed);
        tracing::info!(
            "Replication backlog freed after {ttl_secs} seconds without connected replicas."
        );
    }
}

/// Changes of role asked for by REPLICAOF, embedded calls or the configuration.
pub(crate) trait Control: Send + Sync {
    fn replicate_from(&self, host: String, port: u16, bus: Option<SocketAddr>);
    fn promote(&self);
}

impl State {
    pub(crate) fn manager_if_started(&self) -> Option<Arc<Manager>> {
        self.manager.lock().clone()
    }
}

/// The node's replication manager, started on first use.
pub(crate) fn manager(engine: &Arc<Engine>) -> std::io::Result<Arc<Manager>> {
    let mut slot = engine.repl.manager.lock();
    if let Some(manager) = slot.as_ref() {
        return Ok(manager.clone());
    }
    let manager = Manager::start(engine)?;
    *slot = Some(manager.clone());
    Ok(manager)
}

/// Starts replication with the node if its configuration asks for it (a bus address, or
/// `replicaof`).
/// A cluster node that nodes.conf says is a replica follows its primary again.
pub(crate) fn start(engine: &Arc<Engine>) -> std::io::Result<()> {
    let config = engine.config();
    let primary = match engine.cluster.get() {
        Some(cluster) => cluster.own_primary(),
        None => config.replicaof().map(|(host, port)| (host, port, None)),
    };
    if config.bus_bind_addr().is_none() && primary.is_none() {
        return Ok(());
    }
    let manager = manager(engine)?;
    if let Some((host, port, bus)) = primary {
        manager.replicate_from(host, port, bus);
    }
    Ok(())
}

/// The UDP port replicas link to (REPLCONF shoal-bus-port), if this node accepts them.
pub(crate) fn bus_port(engine: &Engine) -> Option<u16> {
    let bind = engine.config().bus_bind_addr()?;
    match bind.port() {
        0 => engine
            .repl
            .manager_if_started()?
            .local_addr()
            .map(|a| a.port()),
        port => Some(port),
    }
}

/// Stops replication (the node is closing).
pub(crate) fn shutdown(engine: &Engine) {
    let manager = engine.repl.manager.lock().take();
    if let Some(manager) = manager {
        manager.shutdown();
    }
}

/// REPLICAOF / SLAVEOF (or CLUSTER REPLICATE, which knows the bus address): follow the
/// primary at `host` `port`, or stop following (`None`).
pub(crate) fn replicaof(
    engine: &Engine,
    target: Option<(String, u16)>,
    bus: Option<SocketAddr>,
) -> Result<(), String> {
    let this = engine.persist.this().ok_or("the node is closing")?;
    let manager = manager(&this).map_err(|e| e.to_string())?;
    match target {
        None => manager.promote(),
        Some((host, port)) => manager.replicate_from(host, port, bus),
    }
    Ok(())
}

/// The I/O side: the endpoint and the tasks that use it.
pub(crate) struct Manager {
    engine: Weak<Engine>,
    /// Taken on shutdown, which may happen on one of its own threads.
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    pub(crate) handle: tokio::runtime::Handle,
    endpoint: Mutex<Option<Endpoint>>,
    auth: SharedAuth,
    bind: Option<SocketAddr>,
    /// The task following a primary, if this node is a replica.
    follower: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Manager {
    /// Starts replication for `engine`: binds the endpoint if the node has a bus address
    /// (so replicas can connect).
    fn start(engine: &Arc<Engine>) -> std::io::Result<Arc<Manager>> {
        let config = engine.config();
        let placed = engine.settings();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("shoal-repl")
            .on_thread_start(move || {
                crate::affinity::place_current_thread(&placed, crate::affinity::Threads::Bio);
            })
            .enable_all()
            .build()?;
        let manager = Arc::new(Manager {
            engine: Arc::downgrade(engine),
            handle: runtime.handle().clone(),
            runtime: Mutex::new(Some(runtime)),
            endpoint: Mutex::new(None),
            auth: Arc::new(RwLock::new(PeerAuth::default())),
            bind: config.bus_bind_addr(),
            follower: Mutex::new(None),
        });
        manager.refresh_auth(engine);
        if let Some(addr) = manager.bind {
            let endpoint = manager.endpoint_at(addr)?;
            if let Some(cluster) = engine.cluster.get() {
                let bus = crate::cluster::bus::run(Arc::downgrade(engine), endpoint.clone());
                manager.handle.spawn(bus);
                let forwarder = crate::cluster::forward::Forwarder::new(
                    Arc::downgrade(engine),
                    endpoint.clone(),
                    manager.handle.clone(),
                );
                let _ = cluster.forwarder.set(Arc::new(forwarder));
            }
            manager
                .handle
                .spawn(primary::accept_loop(Arc::downgrade(engine), endpoint));
        }
        Ok(manager)
    }

    fn endpoint_at(&self, addr: SocketAddr) -> std::io::Result<Endpoint> {
        let _guard = self.handle.enter();
        let endpoint = Endpoint::bind(addr, self.auth.clone())?;
        *self.endpoint.lock() = Some(endpoint.clone());
        Ok(endpoint)
    }

    /// The endpoint, bound on first use to an ephemeral port when the node has no bus address.
    fn endpoint(&self) -> std::io::Result<Endpoint> {
        if let Some(endpoint) = self.endpoint.lock().clone() {
            return Ok(endpoint);
        }
        let any = "0.0.0.0:0".parse().expect("a valid address");
        self.endpoint_at(any)
    }

    /// Takes `requirepass` / `masterauth` (CONFIG SET may have changed them).
    fn refresh_auth(&self, engine: &Engine) {
        let settings = engine.settings();
        let mut auth = self.auth.write();
        auth.accept_secret = settings.requirepass.clone();
        auth.connect_secret = settings.masterauth.clone();
        auth.connect_user = settings.masteruser.clone();
        if auth.tls.is_none() && settings.tls_replication() {
            auth.tls = settings.peer_tls();
        }
    }

    /// The bound endpoint's address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.endpoint.lock().as_ref()?.local_addr().ok()
    }

    /// Stops every task and closes the endpoint.
    pub fn shutdown(&self) {
        if let Some(follower) = self.follower.lock().take() {
            follower.abort();
        }
        if let Some(endpoint) = self.endpoint.lock().take() {
            endpoint.close();
            // Blocking here is only possible outside the runtime's own threads.
            if tokio::runtime::Handle::try_current().is_err() {
                self.handle
                    .block_on(endpoint.wait_closed(std::time::Duration::from_millis(200)));
            }
        }
        if let Some(runtime) = self.runtime.lock().take() {
            runtime.shutdown_background();
        }
    }
}

impl Control for Manager {
    fn replicate_from(&self, host: String, port: u16, bus: Option<SocketAddr>) {
        self.follow(host, port, bus, false);
    }

    fn promote(&self) {
        self.stop_following();
    }
}

impl Manager {
    /// Follows the primary at `host` `port`; `hand_over`: it is our replica, and takes over
    /// first (FAILOVER).
    pub(crate) fn follow(&self, host: String, port: u16, bus: Option<SocketAddr>, hand_over: bool) {
        let Some(engine) = self.engine.upgrade() else {
            return;
        };
        engine.repl.handing_over.store(hand_over, Ordering::Release);
        self.refresh_auth(&engine);
        let endpoint = match self.endpoint() {
            Ok(endpoint) => endpoint,
            Err(e) => {
                tracing::warn!("Can't open the replication endpoint: {e}");
                return;
            }
        };
        tracing::info!("Connecting to MASTER {host}:{port}");
        let primary = format!("{host}:{port}");
        let event = match engine.repl.role() {
            Role::Primary => Some(crate::events::Event::Demoted { primary }),
            Role::Replica(up) if up.host != host || up.port != port => {
                Some(crate::events::Event::PrimaryChanged { primary })
            }
            Role::Replica(_) => None,
        };
        let upstream = Upstream { host, port, bus };
        let repl = &engine.repl;
        repl.set_role(Role::Replica(upstream.clone()));
        repl.set_link(LinkStatus::Connecting);
        let task = replica::follow(Arc::downgrade(&engine), endpoint, upstream);
        if let Some(old) = self.follower.lock().replace(self.handle.spawn(task)) {
            old.abort();
        }
        if let Some(event) = event {
            engine.events.publish(event);
        }
    }

    /// REPLICAOF NO ONE: a primary again.
    fn stop_following(&self) {
        if let Some(old) = self.follower.lock().take() {
            old.abort();
        }
        let Some(engine) = self.engine.upgrade() else {
            return;
        };
        let repl = &engine.repl;
        if !repl.is_replica() {
            return;
        }
        let end = engine.log().end().0;
        repl.shift(ReplId::random(), end);
        repl.set_role(Role::Primary);
        tracing::info!("MASTER MODE enabled (user request from 'id=... cmd=replicaof')");
        engine.events.publish(crate::events::Event::Promoted);
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// INFO replication, as Redis prints it.
pub(crate) fn info(engine: &Engine, out: &mut String) {
    let repl = &engine.repl;
    let log = engine.log();
    let end = log.end().0;
    match repl.role() {
        Role::Primary => out.push_str("role:master\r\n"),
        Role::Replica(up) => {
            let (status, last_io) = repl.link();
            let up_now = status == LinkStatus::Connected;
            let _ = write!(
                out,
                "role:slave\r\nmaster_host:{}\r\nmaster_port:{}\r\nmaster_link_status:{}\r\n\
                 master_last_io_seconds_ago:{}\r\nmaster_sync_in_progress:{}\r\n\
                 slave_read_repl_offset:{end}\r\nslave_repl_offset:{end}\r\n\
                 slave_priority:{}\r\nslave_read_only:{}\r\nreplica_announced:1\r\n",
                up.host,
                up.port,
                if up_now { "up" } else { "down" },
                last_io.map_or(-1, |t| t.elapsed().as_secs() as i64),
                (status == LinkStatus::Sync) as u8,
                engine.settings().replica_priority,
                engine.settings().replica_read_only as u8,
            );
        }
    }
    let replicas = repl.replicas();
    let _ = write!(out, "connected_slaves:{}\r\n", replicas.len());
    for (i, r) in replicas.iter().enumerate() {
        let _ = write!(
            out,
            "slave{i}:ip={},port={},state={},offset={},lag={}\r\n",
            r.ip,
            r.port,
            r.state,
            r.applied,
            r.last_ack.elapsed().as_secs()
        );
    }
    let ids = repl.ids();
    let start = log.start().0;
    let _ = write!(
        out,
        "master_failover_state:{}\r\nmaster_replid:{}\r\nmaster_replid2:{}\r\n\
         master_repl_offset:{end}\r\nsecond_repl_offset:{}\r\nrepl_backlog_active:{}\r\n\
         repl_backlog_size:{}\r\nrepl_backlog_first_byte_offset:{}\r\nrepl_backlog_histlen:{}\r\n",
        repl.failover.phase().name(),
        ids.replid.0,
        ids.replid2.0,
        ids.second_offset.map_or(-1, |s| s as i64),
        repl.backlog_active.load(Ordering::Relaxed) as u8,
        engine.config().backlog_bytes_max,
        start + 1,
        end - start,
    );
}
