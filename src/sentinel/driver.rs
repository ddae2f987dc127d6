//! Runs the Sentinel core against the real world: a tick every 100 ms, the actions it asks
//! for carried out over RESP connections (their replies fed back), a hello subscription to
//! every instance, the events published on their channels and logged, and the configuration
//! file rewritten when what the sentinel knows changes.

use super::client;
use super::state::{Action, Addr, InfoReport, Ms, Sentinel, HELLO_CHANNEL};
use crate::engine::Engine;
use crate::reply::Reply;
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How often the core is stepped.
const TICK_MS: u64 = 100;
/// How long a command to an instance may take.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(1000);

/// A sentinel's live state, shared by its driver and its commands.
pub(crate) struct Runtime {
    pub state: Mutex<Sentinel>,
    started: Instant,
    /// The instances a hello subscription runs for.
    subscribed: Mutex<HashSet<Addr>>,
    /// Instances that refused our `auth-pass` (warned about once, until one accepts it).
    refused: Mutex<HashSet<Addr>>,
}

impl Runtime {
    pub fn new(sentinel: Sentinel) -> Runtime {
        Runtime {
            state: Mutex::new(sentinel),
            started: Instant::now(),
            subscribed: Mutex::new(HashSet::new()),
            refused: Mutex::new(HashSet::new()),
        }
    }

    /// The driver's clock: milliseconds since start.
    pub fn now_ms(&self) -> Ms {
        self.started.elapsed().as_millis() as Ms
    }
}

/// Steps the sentinel until the engine goes away.
pub(crate) async fn run(engine: Weak<Engine>, runtime: Arc<Runtime>) {
    let mut clock = crate::engine::JumpWatch::new();
    loop {
        tokio::time::sleep(Duration::from_millis(TICK_MS)).await;
        // Redis would enter TILT mode here; our timers are monotonic (see JumpWatch).
        clock.look("the sentinel");
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let now = runtime.now_ms();
        let (actions, events, dirty, instances) = {
            let mut state = runtime.state.lock();
            state.tick(now);
            let instances: Vec<(Addr, Option<String>)> = state
                .groups
                .values()
                .flat_map(|g| {
                    let auth = g.settings.auth_pass.clone();
                    std::iter::once(g.master.addr.clone())
                        .chain(g.replicas.keys().cloned())
                        .map(move |a| (a, auth.clone()))
                })
                .collect();
            (
                state.poll_actions(),
                state.poll_events(),
                state.take_dirty(),
                instances,
            )
        };
        for (kind, text) in events {
            tracing::warn!("{kind} {text}");
            engine
                .pubsub
                .publish(kind.as_bytes(), text.as_bytes(), false);
        }
        if dirty {
            if let Err(e) = super::config::rewrite(&engine, &runtime) {
                tracing::warn!("Sentinel could not rewrite its configuration: {e}");
            }
        }
        subscribe_new(&engine, &runtime, instances);
        for action in actions {
            tokio::spawn(carry_out(
                Arc::clone(&runtime),
                auth_for(&runtime, &action),
                action,
            ));
        }
    }
}

/// The `auth-pass` of the group an action's instance belongs to.
fn auth_for(runtime: &Runtime, action: &Action) -> Option<String> {
    let target = match action {
        Action::Ping(a) | Action::Info(a) | Action::Hello(a, _) | Action::Promote(a) => a,
        Action::Follow(a, _) => a,
        Action::AskDown { .. } => return None,
    };
    let state = runtime.state.lock();
    state
        .groups
        .values()
        .find(|g| g.master.addr == *target || g.replicas.contains_key(target))
        .and_then(|g| g.settings.auth_pass.clone())
}

/// Runs a command at an instance; an instance that refuses our password is warned about
/// once (it looks down to this sentinel, which alone cannot fail it over).
async fn call(runtime: &Runtime, addr: &Addr, auth: Option<&str>, args: &[&[u8]]) -> Option<Reply> {
    match client::call(addr, auth, args, COMMAND_TIMEOUT).await {
        Ok(reply) => {
            runtime.refused.lock().remove(addr);
            Some(reply)
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            if runtime.refused.lock().insert(addr.clone()) {
                tracing::warn!("Sentinel: {addr} refused our auth-pass: {e}");
            }
            None
        }
        Err(_) => None,
    }
}

/// Carries out one action and feeds its reply back.
async fn carry_out(runtime: Arc<Runtime>, auth: Option<String>, action: Action) {
    let auth = auth.as_deref();
    match action {
        Action::Ping(addr) => {
            let Some(reply) = call(&runtime, &addr, auth, &[b"PING"]).await else {
                return;
            };
            let valid = match &reply {
                Reply::Status(s) => s == "PONG",
                Reply::Error(e) => e.starts_with("LOADING") || e.starts_with("MASTERDOWN"),
                _ => false,
            };
            let now = runtime.now_ms();
            runtime.state.lock().handle_ping(&addr, valid, now);
        }
        Action::Info(addr) => {
            let Some(Reply::Bulk(text) | Reply::Verbatim(text)) =
                call(&runtime, &addr, auth, &[b"INFO"]).await
            else {
                return;
            };
            let report = parse_info(&String::from_utf8_lossy(&text));
            let now = runtime.now_ms();
            runtime.state.lock().handle_info(&addr, report, now);
        }
        Action::Hello(addr, payload) => {
            let args: [&[u8]; 3] = [b"PUBLISH", HELLO_CHANNEL.as_bytes(), payload.as_bytes()];
            call(&runtime, &addr, auth, &args).await;
        }
        Action::AskDown {
            to,
            master,
            ip,
            port,
            epoch,
            run_id,
        } => {
            let (port_text, epoch_text) = (port.to_string(), epoch.to_string());
            let args: [&[u8]; 6] = [
                b"SENTINEL",
                b"IS-MASTER-DOWN-BY-ADDR",
                ip.as_bytes(),
                port_text.as_bytes(),
                epoch_text.as_bytes(),
                run_id.as_bytes(),
            ];
            let Some(Reply::Array(parts)) = call(&runtime, &to, None, &args).await else {
                return;
            };
            if let [Reply::Int(down), Reply::Bulk(leader), Reply::Int(leader_epoch)] =
                parts.as_slice()
            {
                let leader = String::from_utf8_lossy(leader).into_owned();
                let now = runtime.now_ms();
                runtime.state.lock().handle_down_reply(
                    &master,
                    &to,
                    *down == 1,
                    &leader,
                    (*leader_epoch).max(0) as u64,
                    now,
                );
            }
        }
        Action::Promote(addr) => {
            let result = call(&runtime, &addr, auth, &[b"REPLICAOF", b"NO", b"ONE"]).await;
            tracing::warn!("Sentinel: REPLICAOF NO ONE sent to {addr}: {result:?}");
        }
        Action::Follow(addr, primary) => {
            let port = primary.port.to_string();
            let args: [&[u8]; 3] = [b"REPLICAOF", primary.host.as_bytes(), port.as_bytes()];
            let result = call(&runtime, &addr, auth, &args).await;
            tracing::warn!("Sentinel: REPLICAOF {primary} sent to {addr}: {result:?}");
        }
    }
}

/// Starts a hello subscription for every instance that has none; each ends once its
/// instance is no longer monitored.
fn subscribe_new(
    engine: &Arc<Engine>,
    runtime: &Arc<Runtime>,
    instances: Vec<(Addr, Option<String>)>,
) {
    let mut subscribed = runtime.subscribed.lock();
    let wanted: HashSet<Addr> = instances.iter().map(|(a, _)| a.clone()).collect();
    subscribed.retain(|a| wanted.contains(a));
    for (addr, auth) in instances {
        if !subscribed.insert(addr.clone()) {
            continue;
        }
        let runtime = Arc::clone(runtime);
        let engine = Arc::downgrade(engine);
        tokio::spawn(async move { listen_for_hellos(engine, runtime, addr, auth).await });
    }
}

/// Keeps a subscription to `addr`'s hello channel, reconnecting, while `addr` is monitored.
async fn listen_for_hellos(
    engine: Weak<Engine>,
    runtime: Arc<Runtime>,
    addr: Addr,
    auth: Option<String>,
) {
    let monitored = |runtime: &Runtime| runtime.subscribed.lock().contains(&addr);
    while monitored(&runtime) && engine.upgrade().is_some() {
        let result = client::subscribe(
            &addr,
            auth.as_deref(),
            HELLO_CHANNEL,
            COMMAND_TIMEOUT,
            |payload| {
                let now = runtime.now_ms();
                runtime
                    .state
                    .lock()
                    .handle_hello(&String::from_utf8_lossy(payload), now);
                monitored(&runtime)
            },
        )
        .await;
        if let Err(e) = result {
            tracing::debug!("Sentinel hello subscription to {addr} ended: {e}");
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
}

/// What the sentinel needs from an INFO reply.
pub fn parse_info(text: &str) -> InfoReport {
    let mut report = InfoReport {
        priority: 100,
        ..InfoReport::default()
    };
    let (mut host, mut port, mut link_up) = (None, None, false);
    for line in text.lines() {
        let Some((key, value)) = line.trim_end().split_once(':') else {
            continue;
        };
        match key {
            "run_id" => report.run_id = Some(value.to_string()),
            "role" => report.is_master = value == "master",
            "master_host" => host = Some(value.to_string()),
            "master_port" => port = value.parse::<u16>().ok(),
            "master_link_status" => link_up = value == "up",
            "master_link_down_since_seconds" => {
                report.link_down_ms = value.parse::<u64>().unwrap_or(0).saturating_mul(1000)
            }
            "slave_priority" | "replica_priority" => report.priority = value.parse().unwrap_or(100),
            "slave_repl_offset" => report.repl_offset = value.parse().unwrap_or(0),
            key if key.starts_with("slave") && key[5..].chars().all(|c| c.is_ascii_digit()) => {
                let field = |name: &str| {
                    value
                        .split(',')
                        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                };
                if let (Some(ip), Some(Ok(p))) = (field("ip"), field("port").map(str::parse)) {
                    report.replicas.push(Addr::new(ip, p));
                }
            }
            _ => {}
        }
    }
    if let (Some(host), Some(port)) = (host, port) {
        report.primary = Some((Addr::new(host, port), link_up));
    }
    report
}
