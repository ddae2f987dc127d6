//! FAILOVER for a standalone primary and its replicas, as Redis 6.2+ coordinates it: the
//! primary pauses writes, waits until the target replica (or the most advanced one) has
//! acknowledged its whole log, then follows that replica with a sync that asks it to take
//! over first (`Sync { failover: true }`, Redis's PSYNC FAILOVER): the replica promotes
//! itself and the old primary continues partially from it. Nothing acknowledged is lost.

use super::{ReplicaInfo, Role};
use crate::engine::clients::PauseScope;
use crate::engine::Engine;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the coordinator waits for an acknowledgement before it looks at the clock
/// (TIMEOUT, ABORT) again, and how often it looks at the hand-over's link.
const POLL: Duration = Duration::from_millis(10);
/// How long the old primary waits for the sync with its successor before it gives up
/// (Redis's FAILOVER_IN_PROGRESS has the same bound through its replication timeout).
const HAND_OVER_MAX: Duration = Duration::from_secs(10);

/// INFO's `master_failover_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    None,
    WaitingForSync,
    InProgress,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::None => "no-failover",
            Phase::WaitingForSync => "waiting-for-sync",
            Phase::InProgress => "failover-in-progress",
        }
    }
}

/// The failover in progress, if any.
#[derive(Default)]
pub(crate) struct Failover {
    phase: Mutex<Option<Phase>>,
    abort: AtomicBool,
}

impl Failover {
    pub fn phase(&self) -> Phase {
        self.phase.lock().unwrap_or(Phase::None)
    }

    fn set(&self, phase: Phase) {
        *self.phase.lock() = (phase != Phase::None).then_some(phase);
    }
}

/// What FAILOVER asked for.
pub(crate) struct Request {
    pub target: Option<(String, u16)>,
    pub force: bool,
    pub timeout: Option<Duration>,
}

/// FAILOVER ABORT.
pub(crate) fn abort(engine: &Engine) -> Result<(), &'static str> {
    let failover = &engine.repl.failover;
    if failover.phase() == Phase::None {
        return Err("No failover in progress.");
    }
    failover.abort.store(true, Ordering::Release);
    Ok(())
}

/// FAILOVER [TO host port] [FORCE] [TIMEOUT ms]: checks as Redis does, then the failover
/// runs on the replication runtime; the command replies at once.
pub(crate) fn start(engine: &Engine, request: Request) -> Result<(), String> {
    let repl = &engine.repl;
    let mut phase = repl.failover.phase.lock();
    if phase.is_some() {
        return Err("FAILOVER already in progress.".into());
    }
    if repl.is_replica() {
        return Err("FAILOVER is not valid when server is a replica.".into());
    }
    let replicas = repl.replicas();
    if replicas.is_empty() {
        return Err("FAILOVER requires connected replicas.".into());
    }
    if request.force && (request.timeout.is_none() || request.target.is_none()) {
        return Err(
            "FAILOVER with force option requires both a timeout and target HOST and IP.".into(),
        );
    }
    if let Some((host, port)) = &request.target {
        let Some(replica) = find(&replicas, host, *port) else {
            return Err("FAILOVER target HOST and PORT is not a replica.".into());
        };
        if replica.state != "online" {
            return Err("FAILOVER target replica is not online.".into());
        }
        tracing::info!("FAILOVER requested to {host}:{port}.");
    } else {
        tracing::info!("FAILOVER requested to any replica.");
    }
    let this = engine.persist.this().ok_or("the node is closing")?;
    let manager = super::manager(&this).map_err(|e| e.to_string())?;
    repl.failover.abort.store(false, Ordering::Release);
    *phase = Some(Phase::WaitingForSync);
    // Until the failover ends (it unpauses), as Redis's.
    let now = engine.now_ms();
    engine.pause.start(PauseScope::Write, u64::MAX, now);
    let handle = manager.handle.clone();
    handle.spawn(async move {
        let outcome = run(&this, &manager, request).await;
        if let Err(why) = outcome {
            tracing::warn!("FAILOVER aborted: {why}");
            // As Redis's: a hand-over that did not complete leaves this node the primary.
            if this.repl.failover.phase() == Phase::InProgress {
                let _ = super::replicaof(&this, None, None);
            }
        }
        this.pause.end();
        this.repl.failover.set(Phase::None);
    });
    Ok(())
}

fn find<'a>(replicas: &'a [ReplicaInfo], host: &str, port: u16) -> Option<&'a ReplicaInfo> {
    replicas.iter().find(|r| r.ip == host && r.port == port)
}

/// Waits for the target to have the whole log, then hands over to it.
async fn run(
    engine: &Arc<Engine>,
    manager: &super::Manager,
    request: Request,
) -> Result<(), String> {
    let started = Instant::now();
    let (host, port) = loop {
        // Registered before the offsets are read, so that no acknowledgement is missed.
        let acked = engine.repl.listen_acks();
        if engine.repl.failover.abort.load(Ordering::Acquire) {
            return Err("Failover manually aborted".into());
        }
        let end = engine.log().end().0;
        let replicas = engine.repl.replicas();
        let candidate = match &request.target {
            Some((host, port)) => find(&replicas, host, *port),
            None => replicas.iter().max_by_key(|r| r.applied),
        };
        let timed_out = request.timeout.is_some_and(|t| started.elapsed() >= t);
        match candidate {
            Some(r) if r.applied >= end => break (r.ip.clone(), r.port),
            Some(r) if timed_out && request.force => {
                tracing::info!(
                    "FAILOVER to {}:{} time out exceeded, failing over.",
                    r.ip,
                    r.port
                );
                break (r.ip.clone(), r.port);
            }
            _ if timed_out => return Err("Replica never caught up before timeout".into()),
            _ => {
                let _ = tokio::time::timeout(POLL, acked).await;
            }
        }
    };
    tracing::info!("Failover target {host}:{port} is synced, failing over.");
    engine.repl.failover.set(Phase::InProgress);
    manager.follow(host.clone(), port, None, true);
    let deadline = Instant::now() + HAND_OVER_MAX;
    while engine.repl.link().0 != super::LinkStatus::Connected {
        if Instant::now() >= deadline || !matches!(engine.repl.role(), Role::Replica(_)) {
            return Err("the new primary did not take over in time".into());
        }
        tokio::time::sleep(POLL).await;
    }
    tracing::info!("Failover to {host}:{port} succeeded.");
    Ok(())
}
