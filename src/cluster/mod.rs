//! Cluster mode: this node's view of the cluster, kept as a state machine without I/O
//! (state.rs), the messages nodes exchange on the bus (wire.rs), the driver that runs the
//! bus over the node's QUIC endpoint (bus.rs), and the routing table every command consults
//! (route.rs).
//!
//! ```text
//! ids.rs     NodeId, Epoch
//! slots.rs   SlotSet: 16384-bit maps, slot ranges as CLUSTER NODES lists them
//! state.rs   nodes, slot owners, epochs, MEET/gossip/PFAIL, nodes.conf (no I/O);
//!            state/failover.rs elections and fencing, state/shard.rs shard membership
//! config_file.rs  nodes.conf on disk: fsynced when a promise changed, else written behind
//! wire.rs    bus messages (serde + bincode)
//! bus.rs     links to every node, ticks, feeds the state, writes nodes.conf
//! route.rs   the routing table: local, MOVED, ASK, CROSSSLOT, TRYAGAIN, CLUSTERDOWN
//! forward.rs commands for other nodes' slots, run there over QUIC (in-process routing,
//!            cluster-proxy-mode)
//! ```

pub(crate) mod bus;
mod config_file;
pub mod forward;
pub mod ids;
pub(crate) mod pubsub;
pub(crate) mod route;
#[cfg(test)]
mod sim;
pub mod slots;
pub(crate) mod state;
pub mod wire;

use crate::engine::Engine;
use crate::error::Error;
pub use ids::{Epoch, NodeId};
use parking_lot::{Mutex, MutexGuard, RwLock};
pub(crate) use route::{Redirect, Routes};
use state::State;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The cluster side of a node: `None` in standalone mode.
pub(crate) struct Cluster {
    state: Mutex<State>,
    routes: RwLock<Arc<Routes>>,
    /// A new value (see [`next_routes_version`]) with every new routing table, so that
    /// clients refresh their copy cheaply.
    routes_version: AtomicU64,
    /// nodes.conf.
    file: config_file::ConfigFile,
    /// Runs commands on other nodes; set once the node's QUIC endpoint is up.
    pub forwarder: std::sync::OnceLock<Arc<forward::Forwarder>>,
    /// Wakes the bus driver: the state has messages to send.
    pub wake: Arc<tokio::sync::Notify>,
    /// Held while [`reconcile`] runs, so that two callers do not both act on one change.
    reconciling: Mutex<()>,
    /// Clients are paused by a manual failover's hand-over.
    paused: std::sync::atomic::AtomicBool,
    /// Bus addresses whose messages are dropped both ways (DEBUG CLUSTER-PARTITION).
    partitioned: RwLock<Vec<std::net::SocketAddr>>,
    /// The slots this node served at the last change (for [`crate::events`]).
    served: Mutex<slots::SlotSet>,
    /// The slots its shard (itself, or the master it replicates) served then: a replica's
    /// shard subscribers lose the slots its shard loses.
    shard_served: Mutex<slots::SlotSet>,
    /// Pub/sub between nodes: who listens to what, and the messages on their way.
    pub relay: pubsub::Relay,
}

impl Cluster {
    /// Loads nodes.conf (`cluster-config-file` in `dir`), or starts a new cluster of one.
    pub fn open(config: &crate::Config) -> Result<Cluster, Error> {
        let now_ms = now_ms();
        let config_file = config.dir.join(&config.cluster_config_file);
        let node_timeout_ms = config.cluster_node_timeout_ms;
        let (ip, port, cport) = config.cluster_announced();
        let mut state = match std::fs::read_to_string(&config_file) {
            Ok(text) => {
                State::from_config(&text, node_timeout_ms, now_ms).map_err(|(line, why)| {
                    Error::Corrupt {
                        file: config_file.clone(),
                        offset: line as u64,
                        what: format!("line {line}: {why}"),
                    }
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                State::new(NodeId::random(), port, cport, node_timeout_ms, now_ms)
            }
            Err(e) => return Err(Error::Io(e)),
        };
        state.announce(ip, port, cport);
        let runs = state.owner_runs();
        let routes = Routes::build(&state, &runs, config.cluster_require_full_coverage);
        let served = state.slots_of(&state.myself_id());
        let shard = state.slots_of(&state.myself().primary.unwrap_or(state.myself_id()));
        let cluster = Cluster {
            state: Mutex::new(state),
            routes: RwLock::new(Arc::new(routes)),
            routes_version: AtomicU64::new(next_routes_version()),
            file: config_file::ConfigFile::new(config_file).map_err(Error::Io)?,
            forwarder: std::sync::OnceLock::new(),
            wake: Arc::new(tokio::sync::Notify::new()),
            reconciling: Mutex::new(()),
            paused: std::sync::atomic::AtomicBool::new(false),
            partitioned: RwLock::new(Vec::new()),
            shard_served: Mutex::new(shard),
            served: Mutex::new(served),
            relay: pubsub::Relay::default(),
        };
        let state = cluster.state.lock();
        cluster
            .save(&state, &state.owner_runs())
            .map_err(Error::Io)?;
        drop(state);
        Ok(cluster)
    }

    /// The state, for a command or the bus driver. Call [`Cluster::commit`] after a change.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Runs `f`, which only queues messages, on the state, and wakes the bus to send them.
    /// Unlike [`with_state`] it neither commits nor makes the node follow the state, so a
    /// caller may hold a slot lock (a PUBLISH).
    pub fn send_with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.state.lock();
        let out = f(&mut state);
        let sending = state.has_outgoing();
        drop(state);
        if sending {
            self.wake.notify_one();
        }
        out
    }

    /// Publishes what changed in `state`: a new routing table, and nodes.conf rewritten.
    /// Returns whether the routing table changed.
    pub fn commit(&self, state: &mut State, require_full_coverage: bool) -> std::io::Result<bool> {
        let (changed, dirty) = (state.take_changed(), state.take_dirty());
        if !changed && !dirty {
            return Ok(false);
        }
        // One pass over the slot map serves both.
        let runs = state.owner_runs();
        if changed {
            let routes = Routes::build(state, &runs, require_full_coverage);
            *self.routes.write() = Arc::new(routes);
            self.routes_version
                .store(next_routes_version(), Ordering::Release);
        }
        if dirty {
            self.save(state, &runs)?;
        }
        Ok(changed)
    }

    /// The slots this node's shard no longer serves since the last call, as ranges.
    fn shard_slots_lost(&self, state: &State) -> Vec<std::ops::RangeInclusive<u16>> {
        let me = state.myself();
        let owner = me.primary.unwrap_or(me.id);
        let now = state.slots_of(&owner);
        let before = std::mem::replace(&mut *self.shard_served.lock(), now.clone());
        let mut lost = before;
        now.iter().for_each(|s| lost.remove(s));
        lost.ranges().into_iter().map(|(a, b)| a..=b).collect()
    }

    /// The slots this node serves now against those it served at the last call: the events
    /// to tell.
    fn slot_events(&self, state: &State) -> Vec<crate::events::Event> {
        let now = state.slots_of(&state.myself_id());
        let before = std::mem::replace(&mut *self.served.lock(), now.clone());
        let runs = |from: &slots::SlotSet, without: &slots::SlotSet| {
            let mut set = from.clone();
            without.iter().for_each(|s| set.remove(s));
            set.ranges()
                .into_iter()
                .map(|(a, b)| a..=b)
                .collect::<Vec<_>>()
        };
        let (gained, lost) = (runs(&now, &before), runs(&before, &now));
        let mut events = Vec::new();
        if !gained.is_empty() {
            events.push(crate::events::Event::SlotsGained(gained));
        }
        if !lost.is_empty() {
            events.push(crate::events::Event::SlotsLost(lost));
        }
        events
    }

    /// Saves nodes.conf (see [`config_file`] for when it waits for the disk).
    fn save(&self, state: &State, runs: &[state::OwnerRun]) -> std::io::Result<()> {
        self.file.save(state.render_config(runs), state.promises())
    }

    /// The primary this node replicates, as (ip, RESP port, bus address), if it is a replica.
    pub fn own_primary(&self) -> Option<(String, u16, Option<std::net::SocketAddr>)> {
        let state = self.state();
        let me = state.myself();
        if !me.has(state::flags::SLAVE) {
            return None;
        }
        let primary = state.node(&me.primary?)?;
        Some((primary.ip.clone(), primary.port, primary.bus_addr()))
    }

    /// Whether the bus drops messages to and from `addr` (DEBUG CLUSTER-PARTITION).
    pub fn cut_off(&self, addr: std::net::SocketAddr) -> bool {
        self.partitioned.read().contains(&addr)
    }

    /// The routing table.
    pub fn routes(&self) -> Arc<Routes> {
        self.routes.read().clone()
    }

    /// The routing table through a client's copy, refreshed if it changed: one load of a
    /// line that is almost never written, where taking the shared table each time would
    /// write its reference count from every thread.
    pub fn routes_cached<'a>(&self, cache: &'a mut Option<(Arc<Routes>, u64)>) -> &'a Routes {
        let now = self.routes_version.load(Ordering::Acquire);
        if cache.as_ref().is_none_or(|(_, version)| *version != now) {
            *cache = Some((self.routes(), now));
        }
        &cache.as_ref().expect("just filled").0
    }
}

/// A routing table version no other table in the process has: a client's cached copy is
/// checked by version alone, and the embedded API's per-thread client may serve several
/// nodes of one process in turn.
fn next_routes_version() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    LAST.fetch_add(1, Ordering::Relaxed) + 1
}

/// The cluster's clock: milliseconds that look like Unix time (CLUSTER NODES shows them) but
/// never jump, as every timeout of the cluster is measured with it.
pub(crate) fn now_ms() -> u64 {
    static START: std::sync::OnceLock<(std::time::Instant, u64)> = std::sync::OnceLock::new();
    let (start, unix_ms) = START.get_or_init(|| {
        let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        (
            std::time::Instant::now(),
            unix.map_or(0, |d| d.as_millis() as u64),
        )
    });
    unix_ms + start.elapsed().as_millis() as u64
}

/// The failover part of the configuration.
pub(crate) fn failover_settings(config: &crate::Config) -> state::FailoverSettings {
    state::FailoverSettings {
        no_failover: config.cluster_replica_no_failover || config.replica_priority == 0,
        validity_factor: config.cluster_replica_validity_factor,
        repl_ping_period_ms: config.repl_ping_period_secs * 1_000,
        allow_replica_migration: config.cluster_allow_replica_migration,
        migration_barrier: config.cluster_migration_barrier as usize,
    }
}

/// How long a manual failover's hand-over may pause clients at most (the state ends it
/// sooner: it gives up after 5 s, as Redis does).
const HAND_OVER_PAUSE_MS: u64 = 10_000;

/// Makes the rest of the node follow what the cluster state decided: replication follows
/// the role it gives this node (promoted by a failover; following a new master after losing
/// its slots, or by CLUSTER REPLICATE), and clients' writes pause while a manual failover
/// hands this master over. Idempotent: it compares, then acts.
fn reconcile(engine: &Engine) {
    let Some(cluster) = engine.cluster.get() else {
        return;
    };
    let _one = cluster.reconciling.lock();
    // Read under `reconciling`: two callers apply the state in the order they read it.
    let paused = cluster.state().writes_paused();
    if cluster.paused.swap(paused, Ordering::AcqRel) != paused {
        match paused {
            true => {
                let until_ms = engine.now_ms() + HAND_OVER_PAUSE_MS;
                let scope = crate::engine::clients::PauseScope::Write;
                engine.pause.start(scope, until_ms, engine.now_ms());
            }
            false => engine.pause.end(),
        }
    }
    let wanted = cluster.own_primary();
    let target = match (wanted, engine.repl.role()) {
        (None, crate::repl::Role::Replica(_)) => None,
        (Some((ip, port, bus)), crate::repl::Role::Primary) => Some((ip, port, bus)),
        (Some((ip, port, bus)), crate::repl::Role::Replica(up))
            if up.host != ip || up.port != port =>
        {
            Some((ip, port, bus))
        }
        _ => return,
    };
    let result = match target {
        None => crate::repl::replicaof(engine, None, None),
        Some((ip, _, _)) if ip.is_empty() => return,
        Some((ip, port, bus)) => crate::repl::replicaof(engine, Some((ip, port)), bus),
    };
    if let Err(e) = result {
        tracing::warn!("Could not follow the cluster's role for this node: {e}");
    }
}

/// Tells replication which replicas count as the loaded configuration says (the node opens).
pub(crate) fn start(engine: &Engine) {
    if let Some(cluster) = engine.cluster.get() {
        engine
            .repl
            .set_counted(cluster.state().counted_replicas().to_vec());
    }
}

/// DEBUG CLUSTER-PARTITION: the bus drops messages to and from these nodes from now on.
pub(crate) fn partition(engine: &Engine, ids: &[NodeId]) -> Result<(), String> {
    let cluster = engine
        .cluster
        .get()
        .ok_or("This instance has cluster support disabled")?;
    let state = cluster.state();
    let mut addrs = Vec::new();
    for id in ids {
        let node = state.node(id).ok_or_else(|| format!("Unknown node {id}"))?;
        addrs.extend(node.bus_addr());
    }
    drop(state);
    *cluster.partitioned.write() = addrs;
    Ok(())
}

/// Writes what nodes.conf has pending (the node is closing).
pub(crate) fn close(engine: &Engine) {
    if let Some(cluster) = engine.cluster.get() {
        cluster.file.close();
    }
}

/// Runs `f` on the cluster state of `engine` and commits what it changed; then the rest of
/// the node follows what the state decided ([`reconcile`]), and the bus driver sends what
/// the state has to send now rather than at its next tick (a FAIL, a vote request, a new
/// master's PONG). `None` in standalone mode.
pub(crate) fn with_state<T>(engine: &Engine, f: impl FnOnce(&mut State) -> T) -> Option<T> {
    let cluster = engine.cluster.get()?;
    let mut state = cluster.state();
    let out = f(&mut state);
    let full_coverage = engine.settings().cluster_require_full_coverage;
    let changed = cluster
        .commit(&mut state, full_coverage)
        .unwrap_or_else(|e| {
            tracing::warn!("Could not save the cluster configuration: {e}");
            true
        });
    if changed {
        engine.repl.set_counted(state.counted_replicas().to_vec());
    }
    let (events, shard_lost) = match changed {
        true => (
            cluster.slot_events(&state),
            cluster.shard_slots_lost(&state),
        ),
        false => (Vec::new(), Vec::new()),
    };
    let paused = state.writes_paused();
    let sending = state.has_outgoing();
    drop(state);
    if !shard_lost.is_empty() {
        pubsub::slots_lost(engine, &shard_lost);
    }
    for event in events {
        // A master that lost slots to its replica's takeover stays in the shard, but its
        // shard subscribers are unsubscribed all the same, as in Redis 7.
        if let crate::events::Event::SlotsLost(lost) = &event {
            pubsub::slots_lost(engine, lost);
        }
        engine.events.publish(event);
    }
    // A role change always changes the configuration; a hand-over's pause may not.
    if changed || paused != cluster.paused.load(Ordering::Acquire) {
        reconcile(engine);
    }
    if sending {
        cluster.wake.notify_one();
    }
    Some(out)
}
