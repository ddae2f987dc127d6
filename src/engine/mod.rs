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

pub mod blocking;
pub mod ctx;
pub mod expire;
pub mod locks;
pub mod multi;

use crate::cmd::{self, CmdError, Command, CommandTable};
use crate::config::Config;
use crate::keyspace::bytes::CompactBytes;
use crate::keyspace::digest::{self, Digest, DigestMode};
use crate::keyspace::Keyspace;
use crate::log::{LogLimits, Offset, WriteLog};
use crate::reply::Reply;
use crate::resp::Protocol;
use crate::slot::SlotId;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

pub use blocking::Blocked;

/// Milliseconds since the Unix epoch. Swapped in tests to control expiry without sleeping.
pub trait Clock: Send + Sync + 'static {
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

/// A clock that moves only when told to (tests, simulation).
#[derive(Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(now_ms: u64) -> ManualClock {
        ManualClock(AtomicU64::new(now_ms))
    }

    pub fn set(&self, now_ms: u64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }

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
    Reply(Reply),
    /// A blocking command is waiting for data; the caller waits on it.
    Blocked(Blocked),
}

impl Outcome {
    /// The reply, waiting on this thread if the command blocked.
    pub fn wait(self, engine: &Engine) -> Reply {
        match self {
            Outcome::Reply(r) => r,
            Outcome::Blocked(b) => b.wait(engine),
        }
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
}

impl Default for Client {
    fn default() -> Self {
        Client::new(Protocol::Resp2)
    }
}

impl Client {
    pub fn new(protocol: Protocol) -> Client {
        Client {
            db: 0,
            protocol,
            multi: None,
            watch: None,
            last_write: Offset(0),
            replaying: false,
            effects: ctx::Effects::default(),
        }
    }

    pub fn db(&self) -> usize {
        self.db
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    pub fn set_protocol(&mut self, protocol: Protocol) {
        self.protocol = protocol;
    }

    pub fn in_multi(&self) -> bool {
        self.multi.is_some()
    }

    /// Offset of this client's last write.
    pub fn last_write(&self) -> Offset {
        self.last_write
    }

    /// Returns to a fresh connection's state (database 0, no transaction, no watches), for a
    /// client reused across independent calls.
    pub fn reset(&mut self, engine: &Engine) {
        self.db = 0;
        self.multi = None;
        if self.watch.is_some() {
            multi::unwatch(engine, self);
        }
    }
}

pub struct Engine {
    pub(crate) keyspace: Keyspace,
    pub(crate) log: Arc<WriteLog>,
    pub(crate) commands: CommandTable,
    pub(crate) config: Config,
    /// Replicas do not expire keys themselves: they apply the primary's DELs.
    pub(crate) passive_expiry: AtomicBool,
    pub(crate) active_expire_enabled: AtomicBool,
    pub(crate) stats: Stats,
}

/// Counters for INFO stats.
#[derive(Default)]
pub struct Stats {
    pub expired_keys: AtomicU64,
}

impl Engine {
    pub fn new(config: Config) -> Engine {
        let log = Arc::new(WriteLog::new(LogLimits {
            retain_bytes: config.backlog_bytes_max,
            pinned_bytes_max: config.log_pinned_bytes_max,
        }));
        Engine {
            keyspace: Keyspace::new(config.database_count()),
            log,
            commands: CommandTable::new(),
            active_expire_enabled: AtomicBool::new(config.active_expire),
            passive_expiry: AtomicBool::new(false),
            config,
            stats: Stats::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn log(&self) -> &Arc<WriteLog> {
        &self.log
    }

    pub fn now_ms(&self) -> u64 {
        self.config.clock.now_ms()
    }

    pub fn db_count(&self) -> usize {
        self.keyspace.db_count()
    }

    /// Executes one command for `client`.
    pub fn execute(&self, client: &mut Client, argv: &[&[u8]]) -> Outcome {
        let Some(&name) = argv.first() else {
            return Outcome::Reply(Reply::error("ERR empty command"));
        };
        // Most commands name a key first: hash it once, and start fetching its slot's line
        // while the command is being resolved, so the miss overlaps with that work.
        let first_slot = argv.get(1).map(|key| SlotId::of_key(key));
        if let (Some(slot), Some(slots)) = (first_slot, self.keyspace.db(client.db).slots_if_used())
        {
            slots[slot.index()].prefetch();
        }
        let resolved = self
            .commands
            .get(name)
            .ok_or_else(|| cmd::unknown_command(argv));
        let resolved = resolved.and_then(|c| self.check_call(c, argv).map(|sub| (c, sub)));
        let (container, command) = match resolved {
            Ok(found) => found,
            Err(e) => {
                if let Some(m) = client.multi.as_mut() {
                    m.aborted = true;
                }
                return Outcome::Reply(e.into());
            }
        };
        if client.multi.is_some() && !command.has(cmd::flags::NO_QUEUE) {
            return Outcome::Reply(multi::queue(client, command, argv));
        }
        if command.has(cmd::flags::CLIENT) {
            return multi::run_client_command(self, client, container, argv);
        }
        self.run(client, command, argv, first_slot)
    }

    /// Resolves subcommands and checks arity.
    fn check_call(
        &self,
        container: &'static Command,
        argv: &[&[u8]],
    ) -> Result<&'static Command, CmdError> {
        if !container.arity_ok(argv.len()) {
            return Err(cmd::arity_error(container.name));
        }
        let command = CommandTable::resolve(container, argv)?;
        if !command.arity_ok(argv.len()) {
            return Err(cmd::arity_error(&cmd::full_name(container, command)));
        }
        Ok(command)
    }

    /// Runs one (non-transaction) command under its locks.
    fn run(
        &self,
        client: &mut Client,
        command: &'static Command,
        argv: &[&[u8]],
        first_slot: Option<SlotId>,
    ) -> Outcome {
        let mut plan = locks::LockPlan::default();
        plan.add_command(self, command, argv, client.db, first_slot);
        let mut held = locks::Held::acquire(self, &plan, command.is_write());
        let (db, protocol) = (client.db, client.protocol);
        let result = {
            let mut cx = ctx::Ctx::new(self, db, protocol, false, &mut held, &mut client.effects);
            if let (Some(key), Some(slot)) = (argv.get(1), first_slot) {
                cx.remember_slot(key, slot);
            }
            let result = (command.handler)(&mut cx, argv);
            client.db = cx.db;
            result
        };
        self.finish(client, held, result.unwrap_or_else(Reply::from))
    }

    /// Commits a command's effects while its locks are held, releases them, then does the work
    /// that must happen outside them.
    pub(crate) fn finish(
        &self,
        client: &mut Client,
        mut held: locks::Held<'_>,
        reply: Reply,
    ) -> Outcome {
        let effects = &mut client.effects;
        let blocked = effects
            .block
            .take()
            .map(|request| blocking::register(&mut held, request, client.db, client.protocol));
        if !effects.batch.is_empty() {
            client.last_write = self.log.append(&effects.batch, true);
        }
        held.publish();
        drop(held);
        if effects.has_after_unlock_work() {
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
        self.keyspace.db(db).key_count()
    }

    /// (keys with a TTL, keys logically expired but not yet reclaimed) in `db`.
    pub fn expiry_stats(&self, db: usize) -> (usize, usize) {
        let now = self.now_ms();
        let Some(slots) = self.keyspace.db(db).slots_if_used() else {
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
        let data = self.keyspace.db(db).slot(SlotId::of_key(key)).data.read();
        data.extras()
            .and_then(|e| e.blocked.get(key))
            .map_or(0, |q| q.len())
    }

    /// Keys in one slot of database 0 (CLUSTER COUNTKEYSINSLOT), O(1).
    pub fn count_keys_in_slot(&self, slot: SlotId) -> usize {
        self.keyspace.db(0).slot(slot).key_count()
    }

    /// Up to `count` keys of one slot of database 0 (CLUSTER GETKEYSINSLOT), O(keys in slot).
    pub fn keys_in_slot(&self, slot: SlotId, count: usize) -> Vec<CompactBytes> {
        let data = self.keyspace.db(0).slot(slot).data.read();
        data.entries().take(count).map(|e| e.key.clone()).collect()
    }

    /// The digest of the whole dataset (see [`digest`]), each slot read under its lock.
    pub fn digest(&self, mode: DigestMode) -> Digest {
        digest::dataset_digest(&self.keyspace, mode, |db, slot, f| {
            f(&self.keyspace.db(db).slot(slot).data.read())
        })
    }

    /// Marks this engine as a replica (passive expiry) or a primary.
    pub fn set_passive_expiry(&self, passive: bool) {
        self.passive_expiry.store(passive, Ordering::Relaxed);
    }

    pub(crate) fn expiry_is_passive(&self) -> bool {
        self.passive_expiry.load(Ordering::Relaxed)
    }

    /// Applies a stream of RESP commands (a write log, an AOF, a replication stream) as a
    /// replaying client. Returns the bytes consumed; a trailing partial command is left.
    pub fn apply_stream(
        &self,
        client: &mut Client,
        bytes: &[u8],
    ) -> Result<usize, crate::resp::ProtocolError> {
        client.replaying = true;
        let limits = crate::resp::Limits::default();
        let mut pos = 0;
        while let Some(parsed) = crate::resp::parse_command(&bytes[pos..], &limits)? {
            let base = pos;
            let argv: Vec<&[u8]> = parsed
                .args
                .iter()
                .map(|r| &bytes[base + r.start..base + r.end])
                .collect();
            pos += parsed.consumed;
            if !argv.is_empty() {
                self.execute(client, &argv).wait(self);
            }
        }
        Ok(pos)
    }
}
