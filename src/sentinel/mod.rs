//! Sentinel mode: monitoring of unsharded primary/replica groups and their automatic
//! failover, as Redis Sentinel does it.
//!
//! # Layout
//!
//! ```text
//! state.rs   the no-I/O core: the monitored groups, their instances and the other
//!            sentinels; timers (PING, INFO, hello), SDOWN and ODOWN, leader votes, replica
//!            selection, the failover steps and the reconfiguration of the replicas and of a
//!            returning old primary. Inputs are replies and ticks with `now`; outputs are
//!            actions (commands to send) and events (+sdown, +switch-master, ...).
//! driver.rs  runs the core: ticks, actions over RESP, hello subscriptions, events
//!            published and logged; client.rs the RESP client it uses
//! config.rs  the `sentinel` directives: read at start, rewritten when what it knows changes
//! ```
//!
//! A node in sentinel mode (`shoal-server sentinel.conf --sentinel`) serves no data: its
//! RESP listener answers SENTINEL, INFO, ROLE, PING and the pub/sub commands (the events are
//! published on channels named after them, as in Redis). The commands are cmd/sentinel.rs.

mod client;
pub(crate) mod config;
pub(crate) mod driver;
pub mod state;

use crate::engine::Engine;
use std::sync::Arc;

/// Starts sentinel mode on `engine`: the core from the configuration's `sentinel`
/// directives, driven on the node's background runtime.
pub(crate) fn start(engine: &Arc<Engine>, directives: &[Vec<String>]) -> crate::Result<()> {
    let settings = engine.config();
    let host = settings
        .bind
        .iter()
        .find(|b| !b.starts_with('-') && *b != "*" && *b != "0.0.0.0" && *b != "::")
        .cloned()
        .unwrap_or_else(|| "127.0.0.1".into());
    let announce = state::Addr::new(host, settings.port);
    let sentinel = config::build(directives, announce, 0).map_err(crate::Error::Config)?;
    let runtime = Arc::new(driver::Runtime::new(sentinel));
    let _ = engine.sentinel.set(Arc::clone(&runtime));
    let handle = crate::repl::manager(engine)?.handle.clone();
    handle.spawn(driver::run(Arc::downgrade(engine), runtime));
    Ok(())
}
