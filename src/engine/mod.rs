//! The engine: every request from every door goes through [`Engine::execute`].
//!
//! ```text
//! argv -> command table lookup, arity          (cmd)
//!      -> MULTI queueing                        (multi)
//!      -> lock scope: keys -> (db, slot) sorted (locks)
//!      -> handler with a Ctx over locked slots  (ctx, cmd/*)
//!      -> log append while still locked         (log)
//!      -> unlock, then: delete keys seen expired under read locks, serve blocked clients
//! ```
//!
//! The engine does no I/O and spawns nothing: a blocking command that cannot be served yet
//! returns [`Outcome::Blocked`], and the caller decides how to wait (a thread parks on it, an
//! async connection awaits it).

pub mod acks;
pub mod blocking;
pub mod clients;
pub mod ctx;
pub mod expire;
pub mod locks;
pub mod multi;
pub mod notify;
pub mod stats;

use crate::cmd::{self, CmdError, Command, CommandId, CommandTable};
use crate::config::Config;
use crate::keyspace::bytes::CompactBytes;
use crate::keyspace::digest::{self, Digest, DigestMode};
use crate::keyspace::{Keyspace, Slot, SlotData};
use crate::log::{LogLimits, Offset, WriteLog};
use crate::reply::Reply;
use crate::resp::Protocol;
use crate::slot::SlotId;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

pub use blocking::Blocked;

/// Milliseconds since the Unix epoch. Swapped in tests to control expiry without sleeping.
pub trait Clock: Send + Sync + 'static {
    /// The current time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

/// Notices the wall clock jumping against the monotonic clock. Redis's sentinel enters TILT
/// mode then, because its timers read the wall clock; Shoal's failure detection, elections
/// and sentinel timers are all monotonic, so a jump changes nothing and is only logged.
pub(crate) struct JumpWatch {
    last: Option<(u64, std::time::Instant)>,
}

impl JumpWatch {
    /// A jump bigger than this is logged (Redis's TILT threshold).
    const JUMP_MS_MAX: u64 = 2_000;

    pub fn new() -> JumpWatch {
        JumpWatch { last: None }
    }

    /// Looks at both clocks now; logs and returns a jump (wall time gained or lost against
    /// monotonic time since the last look, in ms) past the threshold.
    pub fn look(&mut self, what: &str) -> Option<i64> {
        self.look_at(SystemClock.now_ms(), std::time::Instant::now(), what)
    }

    fn look_at(&mut self, wall_ms: u64, now: std::time::Instant, what: &str) -> Option<i64> {
        let (last_wall_ms, last) = self.last.replace((wall_ms, now))?;
        let elapsed_ms = now.duration_since(last).as_millis() as i64;
        let jump_ms = wall_ms as i64 - last_wall_ms as i64 - elapsed_ms;
        if jump_ms.unsigned_abs() <= Self::JUMP_MS_MAX {
            return None;
        }
        tracing::warn!("The wall clock jumped by {jump_ms} ms; {what} times everything with the monotonic clock, so nothing changes");
        Some(jump_ms)
    }
}

/// A clock that moves only when told to (tests, simulation).
#[derive(Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock stopped at `now_ms`.
    pub fn new(now_ms: u64) -> ManualClock {
        ManualClock(AtomicU64::new(now_ms))
    }

    /// Moves the clock to `now_ms`.
    pub fn set(&self, now_ms: u64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }

    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The result of executing a command.
pub enum Outcome {
    /// The command's reply.
    Reply(Reply),
    /// A blocking command is waiting for data; the caller waits on it.
    Blocked(Blocked),
    /// A CLIENT PAUSE holds the command back: the caller waits for the pause to end
    /// ([`Engine::wait_unpaused`]) and executes the command again.
    Paused,
    /// Cluster mode: another node serves the command's slot, and this client has its
    /// commands run there (embedded callers, `cluster-proxy-mode` clients).
    Forward(crate::cluster::forward::Forward),
}

/// What a client does with replies (CLIENT REPLY).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReplyMode {
    On,
    Off,
    /// Skip the reply of the next command only.
    SkipNext,
}

/// The parts of a client that connection commands (AUTH, HELLO, CLIENT, RESET, QUIT) read and
/// change, beside its database and protocol.
pub struct ConnState {
    /// What other clients see of this one.
    pub info: Arc<clients::ClientInfo>,
    /// AUTH (or HELLO AUTH) succeeded, or no password is required.
    pub authenticated: bool,
    pub reply_mode: ReplyMode,
    /// QUIT, or a protocol error: close once this reply is written.
    pub close_after_reply: bool,
    /// MONITOR turned this connection into a monitor.
    pub monitor: bool,
    /// Cluster mode: ASKING, READONLY and the routing table's copy.
    pub cluster: ClusterClient,
    /// Its subscriptions, from its first SUBSCRIBE (or PSUBSCRIBE, SSUBSCRIBE) on.
    pub(crate) pubsub: Option<Box<crate::pubsub::Subscribed>>,
}

/// Facts about the running node (INFO server, persistence, replication).
pub struct ServerInfo {
    pub started: std::time::Instant,
    /// A random id of this run (`run_id`), 40 hex digits.
    pub run_id: String,
    /// Unix seconds of the last successful save; start-up counts as one (LASTSAVE).
    pub last_save_unix: AtomicU64,
    /// Log commands appended up to the last save: the changes since are the log's count
    /// minus this (`rdb_changes_since_last_save`).
    pub commands_at_last_save: AtomicU64,
    /// The most memory seen in use (`used_memory_peak`).
    memory_peak: AtomicU64,
}

impl ServerInfo {
    fn new(now_ms: u64) -> ServerInfo {
        ServerInfo {
            started: std::time::Instant::now(),
            run_id: crate::process::hex_id(),
            last_save_unix: AtomicU64::new(now_ms / 1000),
            commands_at_last_save: AtomicU64::new(0),
            memory_peak: AtomicU64::new(0),
        }
    }

    /// Records `used` memory; returns the peak so far.
    pub fn note_memory_peak(&self, used: u64) -> u64 {
        self.memory_peak
            .fetch_max(used, Ordering::Relaxed)
            .max(used)
    }
}

/// Per-connection state: selected database, protocol, transaction, watches.
pub struct Client {
    pub(crate) db: usize,
    pub(crate) protocol: Protocol,
    pub(crate) multi: Option<multi::MultiState>,
    pub(crate) watch: Option<multi::WatchState>,
    /// Offset of the last write this client made, for WAIT / WAITAOF.
    pub(crate) last_write: Offset,
    /// Replayed streams (AOF load, replication) are applied, not re-judged.
    pub(crate) replaying: bool,
    /// Reused per command so that executing allocates nothing in the common case.
    pub(crate) effects: ctx::Effects,
    pub(crate) conn: ConnState,
}

/// A client's cluster-mode state.
#[derive(Default)]
pub struct ClusterClient {
    /// ASKING: the next command may use a slot being imported.
    pub(crate) asking: bool,
    /// READONLY: reads of its master's slots are served by this replica.
    pub(crate) readonly: bool,
    pub(crate) routes: Option<(Arc<crate::cluster::Routes>, u64)>,
    /// Whether its commands for other nodes' slots are forwarded instead of redirected.
    pub(crate) forwarding: Forwarding,
}

/// When a client's commands for other nodes' slots run there (see [`Outcome::Forward`]).
#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Forwarding {
    /// Never: the client gets MOVED or ASK (and a forwarded command is never forwarded on).
    #[default]
    Never,
    /// Always (the embedded API, unless `Config::cluster_redirects`).
    Always,
    /// While `cluster-proxy-mode` is on (RESP clients).
    Proxy,
}

impl Default for Client {
    fn default() -> Self {
        Client::new(Protocol::Resp2)
    }
}

impl Client {
    /// A fresh connection's state: database 0, no transaction.
    pub fn new(protocol: Protocol) -> Client {
        Client {
            db: 0,
            protocol,
            multi: None,
            watch: None,
            last_write: Offset(0),
            replaying: false,
            effects: ctx::Effects::default(),
            conn: ConnState {
                info: clients::ClientInfo::embedded(),
                authenticated: true,
                reply_mode: ReplyMode::On,
                close_after_reply: false,
                monitor: false,
                pubsub: None,
                cluster: ClusterClient::default(),
            },
        }
    }

    /// A client for a network connection registered in `engine`'s client list. It starts
    /// unauthenticated when the node requires a password.
    pub fn connected(engine: &Engine, endpoint: clients::Endpoint) -> Client {
        let mut client = Client::new(Protocol::Resp2);
        client.conn.info =
            engine
                .clients
                .connect(clients::ClientKind::Normal, endpoint, engine.now_ms());
        client.conn.authenticated = !engine.requires_auth();
        client.conn.cluster.forwarding = Forwarding::Proxy;
        client
    }

    /// Publishes what CLIENT LIST shows of this client's own state (database, protocol,
    /// transaction); stores only what changed, so the common case writes nothing.
    fn publish(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let info = &self.conn.info;
        if info.db.load(Relaxed) != self.db {
            info.db.store(self.db, Relaxed);
        }
        let resp = if self.protocol == Protocol::Resp3 {
            3
        } else {
            2
        };
        if info.resp.load(Relaxed) != resp {
            info.resp.store(resp, Relaxed);
        }
        let queued = self.multi.as_ref().map(|m| m.len());
        if info.has_flag(clients::flag::MULTI) != queued.is_some() {
            info.set_flag(clients::flag::MULTI, queued.is_some());
        }
        if let Some(n) = queued {
            info.multi_len.store(n, Relaxed);
        }
    }

    /// Its id (CLIENT ID).
    pub fn id(&self) -> clients::ClientId {
        self.conn.info.id
    }

    /// What other clients see of it and signal it with.
    pub fn info(&self) -> &Arc<clients::ClientInfo> {
        &self.conn.info
    }

    /// The connection state connection commands change.
    pub fn conn(&self) -> &ConnState {
        &self.conn
    }

    /// The selected database.
    pub fn db(&self) -> usize {
        self.db
    }

    /// The protocol replies are shaped for.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Switches protocol (HELLO).
    pub fn set_protocol(&mut self, protocol: Protocol) {
        self.protocol = protocol;
    }

    /// Whether a MULTI is open.
    pub fn in_multi(&self) -> bool {
        self.multi.is_some()
    }

    /// Offset of this client's last write.
    pub fn last_write(&self) -> Offset {
        self.last_write
    }

    /// Returns to a fresh connection's state (database 0, no transaction, no watches), for a
    /// client reused across independent calls.
    #[inline]
    pub fn reset(&mut self, engine: &Engine) {
        self.db = 0;
        self.multi = None;
        if self.watch.is_some() {
            multi::unwatch(engine, self);
        }
        if let Some(mut subscribed) = self.conn.pubsub.take() {
            subscribed.leave(&engine.pubsub);
            subscribed.publish_counts(&self.conn.info);
        }
    }
}

/// The command engine: the keyspace, the write log, the command table. Adapters (the
/// embedded API, the RESP listener, replication) call [`Engine::execute`].
pub struct Engine {
    pub(crate) keyspace: Keyspace,
    pub(crate) log: Arc<WriteLog>,
    pub(crate) commands: CommandTable,
    pub(crate) config: Config,
    /// Replicas do not expire keys themselves: they apply the primary's DELs.
    pub(crate) passive_expiry: AtomicBool,
    pub(crate) active_expire_enabled: AtomicBool,
    pub(crate) stats: stats::Stats,
    /// Connected clients.
    pub(crate) clients: clients::Registry,
    /// CLIENT PAUSE.
    pub(crate) pause: clients::Pause,
    /// `requirepass`: what AUTH must be given (CONFIG SET can change it).
    pub(crate) password: parking_lot::RwLock<Option<CompactBytes>>,
    /// The settings as CONFIG SET left them (`config` is what the node started with).
    pub(crate) live: crate::config::Live,
    /// Times command durations (the CPU's time stamp counter where it is reliable: the
    /// cheapest clock, read twice per command).
    pub(crate) clock: quanta::Clock,
    /// What INFO server and persistence report about the running node.
    pub(crate) server: ServerInfo,
    /// SHUTDOWN was asked for.
    pub(crate) shutdown: ShutdownRequest,
    /// Snapshots: the one in progress (which writers serialize slots for before changing
    /// them) and what INFO persistence reports.
    pub(crate) persist: crate::persist::State,
    /// Cluster mode's state and routing table (set once, when the node opens).
    pub(crate) cluster: std::sync::OnceLock<crate::cluster::Cluster>,
    /// The connections MIGRATE keeps to its targets.
    pub(crate) migrate_sockets: crate::cmd::migrate::Sockets,
    /// Replication: role, IDs, replicas and their acknowledged offsets.
    pub(crate) repl: Arc<crate::repl::State>,
    /// Role and topology changes, for the embedding application.
    pub(crate) events: crate::events::Events,
    /// Subscriptions of every kind, RESP and embedded.
    pub(crate) pubsub: Arc<crate::pubsub::Hub>,
    /// Sentinel mode: the monitor's state (the node then serves no data).
    pub(crate) sentinel: std::sync::OnceLock<Arc<crate::sentinel::driver::Runtime>>,
}

/// SHUTDOWN asks the program that runs the node to stop (`shoal-server` exits; an embedding
/// program decides with [`crate::Node::shutdown_requested`]).
#[derive(Default)]
pub struct ShutdownRequest {
    requested: AtomicBool,
    event: event_listener::Event,
}

impl ShutdownRequest {
    pub(crate) fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
        self.event.notify(usize::MAX);
    }

    /// Whether SHUTDOWN was asked for.
    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Waits until SHUTDOWN is asked for.
    pub async fn wait(&self) {
        while !self.is_requested() {
            let listener = self.event.listen();
            if self.is_requested() {
                break;
            }
            listener.await;
        }
    }
}

impl Engine {
    /// An engine with an empty dataset.
    pub fn new(config: Config) -> Engine {
        let log = Arc::new(WriteLog::new(LogLimits {
            retain_bytes: config.backlog_bytes_max,
            pinned_bytes_max: config.log_pinned_bytes_max,
        }));
        // `rename-command` was checked when the configuration was read.
        let commands = CommandTable::with_renames(&config.renamed_commands).unwrap_or_default();
        Engine {
            keyspace: Keyspace::new(config.database_count()),
            log,
            active_expire_enabled: AtomicBool::new(config.active_expire),
            passive_expiry: AtomicBool::new(false),
            password: parking_lot::RwLock::new(
                config
                    .requirepass
                    .as_deref()
                    .map(|p| CompactBytes::new(p.as_bytes())),
            ),
            live: crate::config::Live::new(config.clone()),
            clock: quanta::Clock::new(),
            server: ServerInfo::new(config.clock.now_ms()),
            stats: stats::Stats::new(commands.len()),
            commands,
            config,
            clients: clients::Registry::default(),
            pause: clients::Pause::default(),
            shutdown: ShutdownRequest::default(),
            persist: crate::persist::State::new(),
            repl: Arc::default(),
            events: crate::events::Events::default(),
            pubsub: Arc::default(),
            sentinel: std::sync::OnceLock::new(),
            cluster: std::sync::OnceLock::new(),
            migrate_sockets: Default::default(),
        }
    }

    /// SHUTDOWN requests.
    pub fn shutdown(&self) -> &ShutdownRequest {
        &self.shutdown
    }

    /// Whether clients must authenticate (a password is set).
    pub fn requires_auth(&self) -> bool {
        self.password.read().is_some()
    }

    /// Executes a command, waiting on this thread when it blocks or is paused: for callers
    /// that have a thread to spare (the embedded API).
    pub fn execute_waiting(&self, client: &mut Client, argv: &[&[u8]]) -> Reply {
        let written_before = client.last_write;
        let reply = loop {
            match self.execute(client, argv) {
                Outcome::Reply(reply) => break reply,
                Outcome::Blocked(blocked) => break blocked.wait(self),
                Outcome::Paused => self.wait_unpaused(),
                Outcome::Forward(forward) => {
                    let proto = client.protocol;
                    break crate::cluster::forward::call_blocking(self, forward, argv, proto);
                }
            }
        };
        // With `appendfsync always` a write is acknowledged once it is on disk. (A command
        // that wrote nothing has nothing to wait for, even if an earlier write of this client
        // never reached the disk: that one was answered with the error.)
        let aof = &self.persist.aof;
        if client.last_write != written_before && aof.must_wait(client.last_write) {
            if let Err(e) = aof.wait_durable_blocking(client.last_write) {
                return Reply::error(e.to_string());
            }
        }
        reply
    }

    /// Periodic work of the node's background tick beside the expiry sweep: samples the
    /// instantaneous rates INFO reports, frees a replication backlog nobody uses.
    pub fn cron(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        crate::keyspace::tick_access_clock();
        crate::repl::on_tick(self);
        self.stats.sample_rates(
            self.now_ms(),
            self.clients.net_input_bytes.load(Relaxed),
            self.clients.net_output_bytes.load(Relaxed),
        );
        crate::persist::on_tick(self);
    }

    /// Waits on this thread until the current CLIENT PAUSE ends (by its deadline or by
    /// CLIENT UNPAUSE).
    pub fn wait_unpaused(&self) {
        use event_listener::Listener;
        let ended = self.pause.ended();
        let now = self.now_ms();
        if self.pause.active(now).is_some() {
            let left = self.pause.until_ms().saturating_sub(now);
            ended.wait_timeout(std::time::Duration::from_millis(left));
        }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The settings now (CONFIG SET changes them at run time).
    pub fn settings(&self) -> Arc<Config> {
        self.live.get()
    }

    /// CONFIG RESETSTAT: zeroes INFO's counters (not the slow log or latency events).
    pub fn reset_stats(&self) {
        self.stats.reset();
        self.clients.reset_counters();
    }

    /// The write log, for consumers (AOF, replicas).
    pub fn log(&self) -> &Arc<WriteLog> {
        &self.log
    }

    /// The engine's clock.
    pub fn now_ms(&self) -> u64 {
        self.config.clock.now_ms()
    }

    /// Number of databases.
    pub fn db_count(&self) -> usize {
        self.keyspace.db_count()
    }

    /// PUBLISH (SPUBLISH when `sharded`): delivers to this node's subscribers (for a shard
    /// channel, if this node is in the shard serving it), and in cluster mode sends it to
    /// the other nodes that listen for it; how many received it here.
    pub(crate) fn publish(&self, channel: &[u8], payload: &[u8], sharded: bool) -> usize {
        if self.cluster.get().is_none() {
            return self.pubsub.publish(channel, payload, sharded);
        }
        let local = !sharded || crate::cluster::pubsub::serves_shard_channel(self, channel);
        let receivers = if local {
            self.pubsub.publish(channel, payload, sharded)
        } else {
            0
        };
        crate::cluster::pubsub::forward(self, channel, payload, sharded);
        receivers
    }

    /// Executes one command for `client`.
    pub fn execute(&self, client: &mut Client, argv: &[&[u8]]) -> Outcome {
        self.execute_batched(client, argv, &mut locks::Kept::default())
    }

    /// Executes one command of a batch that runs without waiting in between: a command that
    /// locks the same single slot as the one before reuses the lock `kept` from it.
    pub(crate) fn execute_batched<'e>(
        &'e self,
        client: &mut Client,
        argv: &[&[u8]],
        kept: &mut locks::Kept<'e>,
    ) -> Outcome {
        // Most commands name a key first: hash it once, and start fetching its slot's line
        // while the command is being resolved, so the miss overlaps with that work.
        let first_slot = argv.get(1).map(|key| SlotId::of_key(key));
        if let Some(cell) = first_slot.and_then(|slot| self.keyspace.used_slot(client.db, slot)) {
            cell.prefetch();
        }
        self.execute_hashed(client, argv, first_slot, kept)
    }

    /// [`Engine::execute_batched`] for a command whose second argument is already hashed to
    /// `first_slot` (and its slot's line fetched).
    fn execute_hashed<'e>(
        &'e self,
        client: &mut Client,
        argv: &[&[u8]],
        first_slot: Option<SlotId>,
        kept: &mut locks::Kept<'e>,
    ) -> Outcome {
        let Some(&name) = argv.first() else {
            return Outcome::Reply(Reply::error("ERR empty command"));
        };
        let Some(container) = self.commands.get(name) else {
            return self.reject(client, None, cmd::unknown_command(argv));
        };
        let id = match self.check_call(container, argv) {
            Ok(id) => id,
            Err((charged, e)) => return self.reject(client, charged, e),
        };
        let command = self.commands.entry(id).command;
        // A subcommand is judged by its container (SENTINEL MASTERS by SENTINEL).
        let container = self.commands.entry(id).container.unwrap_or(id);
        let family = self.commands.entry(container).command.name;
        let served = match self.sentinel.get() {
            Some(_) => cmd::sentinel::serves(family),
            None => family != "sentinel",
        };
        if !served {
            return self.reject(client, None, cmd::unknown_command(argv));
        }
        // CLIENT LIST shows the command being run, as Redis does.
        client
            .conn
            .info
            .last_command
            .store(u32::from(id.0), Ordering::Relaxed);
        if let Err(e) = check_auth(client, command) {
            return self.reject(client, Some(id), e);
        }
        // Redirections come first, as in Redis: a replica answers a write with MOVED to its
        // master, not READONLY.
        if let Some(cluster) = self.cluster.get() {
            if let Err(redirect) = self.route(cluster, client, command, argv, first_slot, kept) {
                let forwarded = !command.has(cmd::flags::SHARD_CHANNELS);
                if let Some(forward) = forwarded
                    .then(|| self.forwards(client, &redirect))
                    .flatten()
                {
                    return Outcome::Forward(forward);
                }
                // A refused EXEC ends the transaction, as Redis's does.
                if command.name == "exec" {
                    multi::MultiState::discard(self, client);
                }
                return self.reject(client, Some(id), CmdError(redirect.message().into()));
            }
        }
        if let Some(e) = self.refusal(client, command) {
            return self.reject(client, Some(id), e);
        }
        if client.protocol == crate::resp::Protocol::Resp2
            && !command.has(cmd::flags::SUBSCRIBED_OK)
            && client.conn.info.has_flag(clients::flag::PUBSUB)
        {
            let e = CmdError::msg(format!(
                "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                self.commands.entry(id).full_name
            ));
            return self.reject(client, Some(id), e);
        }
        if self.pause.is_set() && self.held_by_pause(client, command) {
            return Outcome::Paused;
        }
        if client.multi.is_some() && !command.has(cmd::flags::NO_QUEUE) {
            let reply = multi::queue(client, id, command, argv);
            client.publish();
            return Outcome::Reply(reply);
        }
        let started = self.clock.raw();
        let outcome = if command.has(cmd::flags::CLIENT) {
            kept.release();
            multi::run_client_command(self, client, command, argv)
        } else {
            self.run(client, command, argv, first_slot, kept)
        };
        // A command that blocked is counted now (its duration so far), as Redis counts it.
        let reply = match &outcome {
            Outcome::Reply(reply) => reply,
            _ => &Reply::Nil,
        };
        let lookups = std::mem::take(&mut client.effects.lookups);
        self.account(&client.conn.info, id, argv, started, reply, lookups);
        self.feed_monitors(&client.conn.info, client.db, id, argv);
        client.publish();
        outcome
    }

    /// Shows a command that ran to the MONITOR clients (not admin commands, and secrets
    /// redacted): `+1700000000.123456 [0 127.0.0.1:5000] "SET" "k" "v"`.
    pub(crate) fn feed_monitors(
        &self,
        info: &clients::ClientInfo,
        db: usize,
        id: CommandId,
        argv: &[&[u8]],
    ) {
        if !self.clients.monitored() || self.commands.entry(id).command.has(cmd::flags::ADMIN) {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let source = info
            .peer
            .map_or_else(|| "embedded".to_string(), |p| p.to_string());
        let mut line = format!(
            "+{}.{:06} [{db} {source}]",
            now.as_secs(),
            now.subsec_micros()
        );
        for arg in cmd::redacted(argv).iter() {
            line.push(' ');
            line.push_str(&crate::config::file::quote(arg));
        }
        line.push_str("\r\n");
        self.clients.feed_monitors(line.as_bytes());
    }

    /// Replies with an error for a command refused before it ran, counting it against the
    /// command when there is one (and aborting an open transaction, as Redis does).
    fn reject(&self, client: &mut Client, command: Option<CommandId>, e: CmdError) -> Outcome {
        if let Some(m) = client.multi.as_mut() {
            m.aborted = true;
        }
        if let Some(id) = command {
            self.stats.record_rejection(id);
        }
        self.stats.record_error(&e.0);
        Outcome::Reply(e.into())
    }

    /// Statistics, the slow log, the latency monitor and the client's `cmd=` for a command
    /// that ran (for EXEC, also for each command it ran).
    pub(crate) fn account(
        &self,
        info: &clients::ClientInfo,
        id: CommandId,
        argv: &[&[u8]],
        started: u64,
        reply: &Reply,
        (keyspace_hits, keyspace_misses): (u64, u64),
    ) {
        let command = self.commands.entry(id).command;
        let nanos = self.clock.delta_as_nanos(started, self.clock.raw());
        let failed = matches!(reply, Reply::Error(_));
        let call = stats::CallCounts {
            keyspace_hits,
            keyspace_misses,
            track_latency: self.live.latency_tracking(),
        };
        self.stats.record_call(id, nanos, failed, call);
        if let Reply::Error(e) = reply {
            self.stats.record_error(e);
        }
        let usec = nanos / 1000;
        let (slower_than_us, len_max) = self.live.slowlog();
        if slower_than_us >= 0 && usec >= slower_than_us as u64 && command.name != "exec" {
            self.stats.log_slow(
                stats::SlowEntry {
                    id: 0,
                    unix_secs: self.now_ms() / 1000,
                    usec,
                    argv: stats::slowlog_args(argv),
                    client_addr: info.peer.map_or_else(String::new, |a| a.to_string()),
                    client_name: info.name(),
                },
                len_max,
            );
        }
        let threshold_ms = self.live.latency_monitor_threshold_ms();
        if threshold_ms > 0 && usec / 1000 >= threshold_ms {
            let event = if command.has(cmd::flags::FAST) {
                "fast-command"
            } else {
                "command"
            };
            self.stats
                .record_latency(event, self.now_ms() / 1000, usec / 1000);
        }
    }

    /// Whether the active CLIENT PAUSE holds `command` back for `client` (replicas are never
    /// paused; a WRITE pause holds what may write, EXEC included when it would).
    fn held_by_pause(&self, client: &Client, command: &Command) -> bool {
        let Some(scope) = self.pause.active(self.now_ms()) else {
            return false;
        };
        if client.conn.info.kind == clients::ClientKind::Replica {
            return false;
        }
        let may_write = |c: &Command| c.has(cmd::flags::WRITE | cmd::flags::MAY_REPLICATE);
        match scope {
            clients::PauseScope::All => true,
            clients::PauseScope::Write if command.name == "exec" => client
                .multi
                .as_ref()
                .is_some_and(|m| m.commands().any(may_write)),
            clients::PauseScope::Write => may_write(command),
        }
    }

    /// Resolves subcommands and checks arity.
    /// The error names the command it is charged to (none for an unknown subcommand).
    #[allow(clippy::type_complexity)]
    fn check_call(
        &self,
        container: CommandId,
        argv: &[&[u8]],
    ) -> Result<CommandId, (Option<CommandId>, CmdError)> {
        let entry = self.commands.entry(container);
        if !entry.command.arity_ok(argv.len()) {
            return Err((Some(container), cmd::arity_error(entry.command.name)));
        }
        let id = self
            .commands
            .resolve(container, argv)
            .map_err(|e| (None, e))?;
        let sub = self.commands.entry(id);
        if !sub.command.arity_ok(argv.len()) {
            return Err((Some(id), cmd::arity_error(&sub.full_name)));
        }
        Ok(id)
    }

    /// Runs one (non-transaction) command under its locks.
    fn run<'e>(
        &'e self,
        client: &mut Client,
        command: &'static Command,
        argv: &[&[u8]],
        first_slot: Option<SlotId>,
        kept: &mut locks::Kept<'e>,
    ) -> Outcome {
        let write = command.is_write();
        let mut held = match first_slot {
            Some(slot) if command.locks_first_key_only() => {
                kept.lock_one(self, client.db, slot, write)
            }
            _ => {
                kept.release();
                let mut plan = locks::LockPlan::default();
                plan.add_command(self, command, argv, client.db, first_slot, false);
                locks::Held::acquire(self, &plan, write)
            }
        };
        if let (Some(key), Some(held)) = (argv.get(1), held.iter().next()) {
            held.guard.data().prefetch(key);
        }
        let result = self.with_ctx(client, &mut held, false, |cx| {
            if let (Some(key), Some(slot)) = (argv.get(1), first_slot) {
                cx.remember_slot(key, slot);
            }
            (command.handler)(cx, argv)
        });
        self.finish(client, held, result.unwrap_or_else(Reply::from), kept)
    }

    /// Runs `f` with a handler context for `client` over the locks in `held`: the client's
    /// database, protocol and replay mode go in, its effects collect in `client.effects` (which
    /// `finish` commits), and a SELECT comes back out.
    pub(crate) fn with_ctx<'e, T>(
        &'e self,
        client: &mut Client,
        held: &mut locks::Held<'e>,
        in_exec: bool,
        f: impl FnOnce(&mut ctx::Ctx<'_, '_>) -> T,
    ) -> T {
        let (db, protocol, replaying) = (client.db, client.protocol, client.replaying);
        let mut cx = ctx::Ctx::new(self, db, protocol, in_exec, held, &mut client.effects)
            .with_conn(&mut client.conn);
        cx.replaying = replaying;
        cx.last_write = client.last_write;
        let out = f(&mut cx);
        client.db = cx.db;
        client.protocol = cx.proto;
        out
    }

    /// Commits a command's effects while its locks are held, then hands them to `kept` for the
    /// next command of the batch, or releases them when work must happen outside them. Most
    /// commands have no effects to commit (reads, refused writes): that path is kept short,
    /// because the work a command does after its last cache miss decides whether the CPU can
    /// start on the caller's next command meanwhile.
    #[inline]
    pub(crate) fn finish<'e>(
        &'e self,
        client: &mut Client,
        held: locks::Held<'e>,
        reply: Reply,
        kept: &mut locks::Kept<'e>,
    ) -> Outcome {
        if client.effects.is_empty() {
            held.publish();
            kept.keep(held);
            return Outcome::Reply(reply);
        }
        self.commit(client, held, reply, kept)
    }

    #[inline(never)]
    fn commit<'e>(
        &'e self,
        client: &mut Client,
        mut held: locks::Held<'e>,
        reply: Reply,
        kept: &mut locks::Kept<'e>,
    ) -> Outcome {
        let effects = &mut client.effects;
        let blocked = effects
            .block
            .take()
            .map(|request| blocking::register(&mut held, request, client.db, client.protocol))
            .or_else(|| {
                let (wait, timeout) = effects.acks.take()?;
                Some(Blocked::on_acks(wait, timeout))
            });
        if !effects.batch.is_empty() && effects.batch.is_logged() {
            client.last_write = self.log.append(&effects.batch, true);
        }
        held.publish();
        if blocked.is_none() && !effects.has_after_unlock_work() {
            kept.keep(held);
        } else {
            drop(held);
            self.after_unlock(effects);
        }
        if !effects.batch.is_empty() {
            effects.clear();
        }
        match blocked {
            Some(b) => Outcome::Blocked(b),
            None => Outcome::Reply(reply),
        }
    }

    /// Deletes keys found expired under read locks and serves clients blocked on keys that
    /// became ready.
    pub(crate) fn after_unlock(&self, effects: &mut ctx::Effects) {
        for (db, key) in effects.expired.drain(..) {
            expire::delete_if_expired(self, db, &key);
        }
        if !effects.ready.is_empty() {
            blocking::serve(self, std::mem::take(&mut effects.ready));
        }
    }

    /// Number of keys in `db`, counting logically expired keys not yet reclaimed (as Redis).
    pub fn dbsize(&self, db: usize) -> usize {
        self.keyspace.dbs().get(db).map_or(0, |d| d.key_count())
    }

    /// (keys with a TTL, keys logically expired but not yet reclaimed) in `db`.
    pub fn expiry_stats(&self, db: usize) -> (usize, usize) {
        let now = self.now_ms();
        let Some(slots) = self.keyspace.used(db) else {
            return (0, 0);
        };
        slots.iter().fold((0, 0), |(volatile, expired), slot| {
            let data = slot.data.read();
            (
                volatile + data.volatile_len(),
                expired + data.expired_len(now),
            )
        })
    }

    /// Clients currently blocked on `key` in `db`.
    pub fn blocked_on(&self, db: usize, key: &[u8]) -> usize {
        self.keyspace
            .used_slot(db, SlotId::of_key(key))
            .and_then(|s| s.data.read().extras()?.blocked.get(key).map(|q| q.len()))
            .unwrap_or(0)
    }

    /// Keys in one slot of database 0 (CLUSTER COUNTKEYSINSLOT), O(1).
    pub fn count_keys_in_slot(&self, slot: SlotId) -> usize {
        self.keyspace
            .used_slot(0, slot)
            .map_or(0, |s| s.key_count())
    }

    /// Up to `count` keys of one slot of database 0 (CLUSTER GETKEYSINSLOT), O(keys in slot).
    pub fn keys_in_slot(&self, slot: SlotId, count: usize) -> Vec<CompactBytes> {
        self.keyspace.used_slot(0, slot).map_or_else(Vec::new, |s| {
            let data = s.data.read();
            data.entries().take(count).map(|e| e.key.clone()).collect()
        })
    }

    /// The digest of the whole dataset (Redis's DEBUG DIGEST algorithm, see [`DigestMode`]),
    /// each slot read under its lock.
    pub fn digest(&self, mode: DigestMode) -> Digest {
        digest::dataset_digest(&self.keyspace, mode, |db, slot, f| {
            if let Some(cell) = self.keyspace.used_slot(db, slot) {
                f(&cell.data.read());
            }
        })
    }

    /// Marks this engine as a replica (passive expiry) or a primary.
    pub fn set_passive_expiry(&self, passive: bool) {
        self.passive_expiry.store(passive, Ordering::Relaxed);
    }

    /// Why `command` is refused before it runs: LOADING while a full resync loads, READONLY on
    /// a read-only replica, MISCONF while persistence fails. A replayed stream is never
    /// refused: it is what the primary (or the disk) already accepted.
    fn refusal(&self, client: &Client, command: &Command) -> Option<CmdError> {
        if client.replaying {
            return None;
        }
        if self.repl.is_loading() && !command.has(cmd::flags::LOADING) {
            return Some(CmdError::new(
                "LOADING Redis is loading the dataset in memory",
            ));
        }
        let replica = self.repl.is_replica();
        let stale = replica && !command.has(cmd::flags::STALE) && self.repl.is_stale();
        if stale && !self.settings().replica_serve_stale_data {
            return Some(CmdError::new(
                "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            ));
        }
        if !command.is_write() {
            return None;
        }
        if replica && self.settings().replica_read_only {
            return Some(CmdError::new(
                "READONLY You can't write against a read only replica.",
            ));
        }
        let wanted = self.live.min_replicas_to_write();
        if !replica && wanted > 0 {
            let max_lag_secs = self.settings().min_replicas_max_lag_secs;
            if self.repl.good_replicas(max_lag_secs) < wanted {
                return Some(CmdError::new(
                    "NOREPLICAS Not enough good replicas to write.",
                ));
            }
        }
        crate::persist::write_refusal(self).map(|e| CmdError(e.into()))
    }

    /// Cluster mode: whether this node serves the command's keys, by Redis's rules: for
    /// EXEC, the keys of every queued command together. ASKING lasts one command (the whole
    /// transaction inside MULTI).
    fn route(
        &self,
        cluster: &crate::cluster::Cluster,
        client: &mut Client,
        command: &Command,
        argv: &[&[u8]],
        first_slot: Option<SlotId>,
        kept: &mut locks::Kept<'_>,
    ) -> Result<(), crate::cluster::Redirect> {
        if client.replaying {
            return Ok(());
        }
        let asking = client.conn.cluster.asking || command.has(cmd::flags::ASKING);
        if client.multi.is_none() {
            client.conn.cluster.asking = false;
        }
        // MIGRATE moves keys of its own slots, migrating or not: never redirected.
        if matches!(command.keys, cmd::KeySpec::Migrate) {
            return Ok(());
        }
        let mut keys = smallvec::SmallVec::<[(SlotId, &[u8]); 8]>::new();
        let mut write = command.is_write();
        match &client.multi {
            Some(multi) if command.name == "exec" => {
                for (queued, argv) in multi.calls() {
                    write |= queued.is_write();
                    command_keys(queued, &argv, None, &mut keys);
                }
            }
            _ => command_keys(command, argv, first_slot, &mut keys),
        }
        if keys.is_empty() {
            return Ok(());
        }
        let query = crate::cluster::route::Query {
            keys: &keys,
            write,
            asking,
            readonly: client.conn.cluster.readonly || command.has(cmd::flags::SHARD_CHANNELS),
            allow_reads_when_down: self.settings().cluster_allow_reads_when_down,
        };
        let db = client.db;
        let routes = cluster.routes_cached(&mut client.conn.cluster.routes);
        routes.route(&query, |key| self.key_present(db, key, kept))
    }

    /// Where `client`'s command goes instead of getting `redirect`, if it is forwarded. A
    /// transaction is not: its commands must run together, on one node.
    fn forwards(
        &self,
        client: &Client,
        redirect: &crate::cluster::Redirect,
    ) -> Option<crate::cluster::forward::Forward> {
        let on = match client.conn.cluster.forwarding {
            Forwarding::Never => false,
            Forwarding::Always => true,
            Forwarding::Proxy => self.settings().cluster_proxy_mode,
        };
        if !on || client.multi.is_some() {
            return None;
        }
        crate::cluster::forward::target(self, redirect)
    }

    /// Whether `key` is in `db` and not expired (the router's look at a migrating slot).
    /// Reads through the batch's kept lock when it is this slot's (the lock is not
    /// reentrant: a pipeline of RESTORE-ASKINGs into one importing slot would wait on
    /// itself), and releases any other kept lock first, as every lock taker does.
    fn key_present(&self, db: usize, key: &[u8], kept: &mut locks::Kept<'_>) -> bool {
        let now_ms = self.now_ms();
        let slot = SlotId::of_key(key);
        let present = |data: &SlotData| data.get(key).is_some_and(|e| !e.is_expired(now_ms));
        if let Some(data) = kept.data(db, slot) {
            return present(data);
        }
        kept.release();
        self.keyspace
            .used_slot(db, slot)
            .is_some_and(|cell| present(&cell.data.read()))
    }

    /// Whether expired keys stay until someone else deletes them: while loading, and on a
    /// replica, which deletes what its primary's DELs say and reads expired keys as absent.
    pub(crate) fn expiry_is_passive(&self) -> bool {
        self.passive_expiry.load(Ordering::Relaxed) || self.repl.is_replica()
    }

    /// Applies a stream of RESP commands (a write log, an AOF, a replication stream) as a
    /// replaying client, up to a trailing partial command or to the first bytes that are not
    /// RESP (see [`Applied::malformed`]): what comes before is applied either way.
    ///
    /// Commands are parsed eight ahead of the one applied: each one's slot line is
    /// fetched as it is parsed, and its key's bucket halfway, so that the two cache misses
    /// of a write to a large keyspace overlap with the commands before it instead of stalling
    /// it.
    pub fn apply_stream(&self, client: &mut Client, bytes: &[u8]) -> Applied {
        client.replaying = true;
        let limits = crate::resp::Limits::default();
        let mut applied = Applied::default();
        let mut ahead: [Ahead; LOOKAHEAD] = Default::default();
        let (mut next, mut queued, mut parsed_to) = (0, 0, 0);
        loop {
            while queued < LOOKAHEAD && applied.malformed.is_none() {
                let entry = &mut ahead[(next + queued) % LOOKAHEAD];
                match entry.parser.parse(&bytes[parsed_to..], &limits) {
                    Ok(Some(len)) => {
                        entry.at = parsed_to..parsed_to + len;
                        parsed_to += len;
                        queued += 1;
                        entry.first_slot = entry.key(bytes).map(SlotId::of_key);
                        if let Some(slot) = self.used_slot(client.db, entry.first_slot) {
                            slot.prefetch();
                        }
                    }
                    Ok(None) => break,
                    Err(e) => applied.malformed = Some(e),
                }
            }
            if queued == 0 {
                break;
            }
            if queued > LOOKAHEAD / 2 {
                let entry = &ahead[(next + LOOKAHEAD / 2) % LOOKAHEAD];
                let slot = self.used_slot(client.db, entry.first_slot);
                if let (Some(slot), Some(key)) = (slot, entry.key(bytes)) {
                    slot.prefetch_key(key);
                }
            }
            let entry = &ahead[next];
            next = (next + 1) % LOOKAHEAD;
            queued -= 1;
            self.apply_one(client, entry, bytes, &mut applied);
        }
        applied
    }

    /// Slot `slot` of database `db`, if both are in use.
    fn used_slot(&self, db: usize, slot: Option<SlotId>) -> Option<&Slot> {
        self.keyspace.used_slot(db, slot?)
    }

    /// Applies one command of [`Engine::apply_stream`].
    fn apply_one(&self, client: &mut Client, entry: &Ahead, bytes: &[u8], applied: &mut Applied) {
        let command = &bytes[entry.at.clone()];
        applied.consumed = entry.at.end;
        let argv: smallvec::SmallVec<[&[u8]; 8]> = entry.parser.args(command).collect();
        if argv.is_empty() {
            return;
        }
        applied.commands += 1;
        if argv[0].eq_ignore_ascii_case(b"multi") {
            applied.open_multi_at = Some(entry.at.start);
        } else if argv[0].eq_ignore_ascii_case(b"exec") || argv[0].eq_ignore_ascii_case(b"discard")
        {
            applied.open_multi_at = None;
        }
        // A logged command never fails where it was logged: a failure here means the two
        // datasets differ, so it is counted and the first one kept for the caller.
        let outcome =
            self.execute_hashed(client, &argv, entry.first_slot, &mut locks::Kept::default());
        if let Outcome::Reply(Reply::Error(e)) = outcome {
            applied.errors += 1;
            applied.first_error.get_or_insert_with(|| e.into_owned());
        }
    }
}

/// Commands [`Engine::apply_stream`] parses ahead of the one it applies.
const LOOKAHEAD: usize = 8;

/// A command parsed ahead in [`Engine::apply_stream`].
#[derive(Default)]
struct Ahead {
    parser: crate::resp::Parser,
    /// Where the command is in the stream.
    at: std::ops::Range<usize>,
    /// The slot its second argument (the first key, for most commands) hashes to, as
    /// [`Engine::execute_batched`] would hash it.
    first_slot: Option<SlotId>,
}

impl Ahead {
    /// The command's second argument: its first key, for most commands.
    fn key<'b>(&'b self, bytes: &'b [u8]) -> Option<&'b [u8]> {
        self.parser.args(&bytes[self.at.clone()]).nth(1)
    }
}

/// What [`Engine::apply_stream`] did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Bytes of complete commands consumed.
    pub consumed: usize,
    /// Commands applied.
    pub commands: u64,
    /// Commands that replied with an error (a correct log has none).
    pub errors: u64,
    /// The first such error.
    pub first_error: Option<String>,
    /// Where a MULTI that no EXEC closed yet starts: a stream cut there lost a transaction.
    pub open_multi_at: Option<usize>,
    /// Why the bytes at `consumed` are not a RESP command, when they are not.
    pub malformed: Option<crate::resp::ProtocolError>,
}

/// `-NOAUTH` for a client that has not authenticated, unless the command is allowed before.
fn check_auth(client: &Client, command: &Command) -> Result<(), CmdError> {
    if client.conn.authenticated || command.has(cmd::flags::NO_AUTH) {
        return Ok(());
    }
    Err(CmdError::new(crate::reply::err::NOAUTH))
}

/// Adds the keys `command` names in `argv` to `keys`, with their slots (`first_slot`: the
/// first argument's, already hashed).
fn command_keys<'a>(
    command: &Command,
    argv: &[&'a [u8]],
    first_slot: Option<SlotId>,
    keys: &mut smallvec::SmallVec<[(SlotId, &'a [u8]); 8]>,
) {
    let mut indexes = smallvec::SmallVec::<[usize; 8]>::new();
    command.key_indexes(argv, &mut indexes);
    keys.extend(indexes.iter().map(|&i| match (i, first_slot) {
        (1, Some(slot)) => (slot, argv[1]),
        _ => (SlotId::of_key(argv[i]), argv[i]),
    }));
}

#[cfg(test)]
mod tests {
    use super::JumpWatch;
    use std::time::{Duration, Instant};

    #[test]
    fn a_wall_clock_jump_is_noticed_either_way_and_steady_time_is_not() {
        let mut watch = JumpWatch::new();
        let start = Instant::now();
        assert_eq!(watch.look_at(1_000_000, start, "test"), None);
        let later = start + Duration::from_millis(500);
        assert_eq!(watch.look_at(1_000_500, later, "test"), None);
        let later = later + Duration::from_millis(100);
        assert_eq!(watch.look_at(1_060_600, later, "test"), Some(60_000));
        let later = later + Duration::from_millis(100);
        assert_eq!(watch.look_at(1_000_700, later, "test"), Some(-60_000));
    }
}
