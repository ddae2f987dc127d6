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
}

impl Outcome {
    /// The reply, waiting on this thread if the command blocked.
    #[inline]
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
        }
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
    pub(crate) stats: Stats,
}

/// Counters for INFO stats.
#[derive(Default)]
pub struct Stats {
    pub expired_keys: AtomicU64,
}

impl Engine {
    /// An engine with an empty dataset.
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

    /// The configuration it was built with.
    pub fn config(&self) -> &Config {
        &self.config
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

    /// Executes one command for `client`.
    pub fn execute(&self, client: &mut Client, argv: &[&[u8]]) -> Outcome {
        let Some(&name) = argv.first() else {
            return Outcome::Reply(Reply::error("ERR empty command"));
        };
        // Most commands name a key first: hash it once, and start fetching its slot's line
        // while the command is being resolved, so the miss overlaps with that work.
        let first_slot = argv.get(1).map(|key| SlotId::of_key(key));
        if let Some(cell) = first_slot.and_then(|slot| self.keyspace.used_slot(client.db, slot)) {
            cell.prefetch();
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
        let write = command.is_write();
        let mut held = match first_slot {
            Some(slot) if command.locks_first_key_only() => {
                locks::Held::one(self, client.db, slot, write)
            }
            _ => {
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
        self.finish(client, held, result.unwrap_or_else(Reply::from))
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
        let mut cx = ctx::Ctx::new(self, db, protocol, in_exec, held, &mut client.effects);
        cx.replaying = replaying;
        let out = f(&mut cx);
        client.db = cx.db;
        out
    }

    /// Commits a command's effects while its locks are held, releases them, then does the work
    /// that must happen outside them. Most commands have no effects to commit (reads, refused
    /// writes): that path is kept short, because the work a command does after its last cache
    /// miss decides whether the CPU can start on the caller's next command meanwhile.
    #[inline]
    pub(crate) fn finish(
        &self,
        client: &mut Client,
        held: locks::Held<'_>,
        reply: Reply,
    ) -> Outcome {
        if client.effects.is_empty() {
            held.publish();
            drop(held);
            return Outcome::Reply(reply);
        }
        self.commit(client, held, reply)
    }

    #[inline(never)]
    fn commit(&self, client: &mut Client, mut held: locks::Held<'_>, reply: Reply) -> Outcome {
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

    pub(crate) fn expiry_is_passive(&self) -> bool {
        self.passive_expiry.load(Ordering::Relaxed)
    }

    /// Applies a stream of RESP commands (a write log, an AOF, a replication stream) as a
    /// replaying client. A trailing partial command is left unconsumed.
    pub fn apply_stream(
        &self,
        client: &mut Client,
        bytes: &[u8],
    ) -> Result<Applied, crate::resp::ProtocolError> {
        client.replaying = true;
        let limits = crate::resp::Limits::default();
        let mut applied = Applied::default();
        while let Some(parsed) = crate::resp::parse_command(&bytes[applied.consumed..], &limits)? {
            let base = applied.consumed;
            let argv: Vec<&[u8]> = parsed
                .args
                .iter()
                .map(|r| &bytes[base + r.start..base + r.end])
                .collect();
            applied.consumed += parsed.consumed;
            if argv.is_empty() {
                continue;
            }
            applied.commands += 1;
            // A logged command never fails where it was logged: a failure here means the two
            // datasets differ, so it is counted and the first one kept for the caller.
            if let Outcome::Reply(Reply::Error(e)) = self.execute(client, &argv) {
                applied.errors += 1;
                applied.first_error.get_or_insert_with(|| e.into_owned());
            }
        }
        Ok(applied)
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
}
