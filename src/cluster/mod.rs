//! Cluster mode: this node's view of the cluster, kept as a state machine without I/O
//! (state.rs), the messages nodes exchange on the bus (wire.rs), the driver that runs the
//! bus over the node's QUIC endpoint (bus.rs), and the routing table every command consults
//! (route.rs).
//!
//! ```text
//! ids.rs     NodeId, Epoch
//! slots.rs   SlotSet: 16384-bit maps, slot ranges as CLUSTER NODES lists them
//! state.rs   nodes, slot owners, epochs, MEET/gossip/PFAIL, nodes.conf (no I/O)
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
pub(crate) mod route;
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
}

impl Cluster {
    /// Loads nodes.conf (`cluster-config-file` in `dir`), or starts a new cluster of one.
    pub fn open(config: &crate::Config, now_ms: u64) -> Result<Cluster, Error> {
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
        let cluster = Cluster {
            state: Mutex::new(state),
            routes: RwLock::new(Arc::new(routes)),
            routes_version: AtomicU64::new(next_routes_version()),
            file: config_file::ConfigFile::new(config_file).map_err(Error::Io)?,
            forwarder: std::sync::OnceLock::new(),
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

    /// Publishes what changed in `state`: a new routing table, and nodes.conf rewritten.
    pub fn commit(&self, state: &mut State, require_full_coverage: bool) -> std::io::Result<()> {
        let (changed, dirty) = (state.take_changed(), state.take_dirty());
        if !changed && !dirty {
            return Ok(());
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
        Ok(())
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

/// Writes what nodes.conf has pending (the node is closing).
pub(crate) fn close(engine: &Engine) {
    if let Some(cluster) = engine.cluster.get() {
        cluster.file.close();
    }
}

/// Runs `f` on the cluster state of `engine` and commits what it changed; `None` in
/// standalone mode.
pub(crate) fn with_state<T>(engine: &Engine, f: impl FnOnce(&mut State) -> T) -> Option<T> {
    let cluster = engine.cluster.get()?;
    let mut state = cluster.state();
    let out = f(&mut state);
    let full_coverage = engine.settings().cluster_require_full_coverage;
    if let Err(e) = cluster.commit(&mut state, full_coverage) {
        tracing::warn!("Could not save the cluster configuration: {e}");
    }
    Some(out)
}
