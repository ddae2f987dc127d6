//! `Ctx`: what a command handler sees. It reaches keys only through the slots the dispatcher
//! locked, applies Redis's expiry rules on every lookup, and collects the command's effects
//! (log records, keys that became ready for blocked clients, keys seen expired) for the
//! dispatcher to commit.

use super::acks::{AckGoal, AckWait};
use super::blocking::{BlockRequest, BlockedOp};
use super::locks::{Guard, Held, HeldSlot};
use super::Engine;
use crate::cmd::{CmdError, CmdResult};
use crate::keyspace::bytes::CompactBytes;
use crate::keyspace::value::{HashValue, ListValue, SetValue, Value, ZSetValue};
use crate::keyspace::{Entry, SlotData};
use crate::log::{Batch, Offset};
use crate::reply::{err, Reply};
use crate::resp::Protocol;
use crate::slot::SlotId;
use std::cell::Cell;
use std::time::Duration;

/// Side effects of a command, committed by the dispatcher.
#[derive(Default)]
pub struct Effects {
    /// Deterministic log records.
    pub batch: Batch,
    /// Keys written while clients were blocked on them.
    pub ready: Vec<(usize, CompactBytes)>,
    /// Keys found logically expired under a read lock, deleted after unlocking.
    pub expired: Vec<(usize, CompactBytes)>,
    /// Set by a blocking command that found nothing to pop.
    pub block: Option<BlockRequest>,
    /// Set by WAIT / WAITAOF when their goal is not met yet (`None`: no timeout).
    pub acks: Option<(AckWait, Option<Duration>)>,
    /// Key lookups of read commands that found / did not find their key (keyspace hits and
    /// misses), taken by the statistics after each command.
    pub lookups: (u64, u64),
}

impl Effects {
    pub fn clear(&mut self) {
        self.batch.clear();
        self.ready.clear();
        self.expired.clear();
        self.block = None;
        self.acks = None;
    }

    /// Whether there is nothing to commit.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
            && self.block.is_none()
            && self.acks.is_none()
            && self.ready.is_empty()
            && self.expired.is_empty()
    }

    /// Whether anything needs doing after the locks are released.
    pub fn has_after_unlock_work(&self) -> bool {
        !self.expired.is_empty() || !self.ready.is_empty()
    }
}

pub const WRONGTYPE: CmdError = CmdError::new(err::WRONGTYPE);
const NOT_LOCKED: CmdError = CmdError::new("ERR internal error: key outside the command's locks");
const NOT_WRITABLE: CmdError = CmdError::new("ERR internal error: write under a read lock");
const NO_CLIENT: CmdError = CmdError::new("ERR internal error: no client for this command");

/// A value type a handler can ask for by type.
pub trait Typed: Sized {
    fn of(value: &Value) -> Option<&Self>;
    fn of_mut(value: &mut Value) -> Option<&mut Self>;
    fn into_value(self) -> Value;
}

macro_rules! typed {
    ($t:ty, $variant:ident, boxed) => {
        impl Typed for $t {
            fn of(value: &Value) -> Option<&Self> {
                match value {
                    Value::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn of_mut(value: &mut Value) -> Option<&mut Self> {
                match value {
                    Value::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn into_value(self) -> Value {
                Value::$variant(Box::new(self))
            }
        }
    };
}

typed!(ListValue, List, boxed);
typed!(HashValue, Hash, boxed);
typed!(SetValue, Set, boxed);
typed!(ZSetValue, ZSet, boxed);

impl Typed for CompactBytes {
    fn of(value: &Value) -> Option<&Self> {
        match value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    fn of_mut(value: &mut Value) -> Option<&mut Self> {
        match value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    fn into_value(self) -> Value {
        Value::Str(self)
    }
}

pub struct Ctx<'e, 'h> {
    pub engine: &'e Engine,
    /// The selected database (SELECT inside EXEC changes it for later commands).
    pub db: usize,
    pub proto: Protocol,
    /// Inside EXEC: blocking commands do not block.
    pub in_exec: bool,
    /// Applying a log/AOF/replication stream: no expiry judgement, commands apply as logged.
    pub replaying: bool,
    /// The log offset after the caller's last write (what WAIT and WAITAOF wait for).
    pub last_write: Offset,
    held: &'h mut Held<'e>,
    fx: &'h mut Effects,
    /// The calling client's connection state; `None` when no client is at hand (a blocked
    /// client being served by another's write).
    conn: Option<&'h mut super::ConnState>,
    /// Frozen per command (per EXEC), as Redis freezes time; 0 until first needed.
    now_ms: u64,
    /// The first key argument (its address and length) and its slot, hashed once by the
    /// dispatcher: handlers look it up several times, and CRC16 is not free. Only that argument
    /// is remembered: it stays alive for the whole command, so no other key can share its
    /// address (a temporary's address could be reused by a different key).
    slot_memo: Cell<(usize, usize, SlotId)>,
}

impl<'e, 'h> Ctx<'e, 'h> {
    pub fn new(
        engine: &'e Engine,
        db: usize,
        proto: Protocol,
        in_exec: bool,
        held: &'h mut Held<'e>,
        fx: &'h mut Effects,
    ) -> Self {
        Ctx {
            engine,
            db,
            proto,
            in_exec,
            replaying: false,
            last_write: Offset(0),
            held,
            fx,
            conn: None,
            now_ms: 0,
            slot_memo: Cell::new((0, usize::MAX, SlotId::of_key(b""))),
        }
    }

    /// Gives the context the calling client's connection state.
    pub fn with_conn(mut self, conn: &'h mut super::ConnState) -> Self {
        self.conn = Some(conn);
        self
    }

    /// The calling client's connection state (AUTH, HELLO, CLIENT ...).
    pub fn conn(&mut self) -> Result<&mut super::ConnState, CmdError> {
        self.conn.as_deref_mut().ok_or(NO_CLIENT)
    }

    /// Whether the caller is local, as `enable-debug-command local` means it: the embedding
    /// program, or a connection from a loopback address.
    pub fn local_client(&self) -> bool {
        let peer = self.conn.as_deref().and_then(|c| c.info.peer);
        peer.is_none_or(|p| p.ip().is_loopback())
    }

    /// Tells the context the slot of a key the dispatcher already hashed.
    pub fn remember_slot(&self, key: &[u8], slot: SlotId) {
        self.slot_memo.set((key.as_ptr() as usize, key.len(), slot));
    }

    /// The slot of `key` (remembered for the first key argument).
    #[inline]
    fn slot(&self, key: &[u8]) -> SlotId {
        let (addr, len, slot) = self.slot_memo.get();
        if addr == key.as_ptr() as usize && len == key.len() {
            return slot;
        }
        SlotId::of_key(key)
    }

    pub fn now_ms(&mut self) -> u64 {
        if self.now_ms == 0 {
            self.now_ms = self.engine.now_ms();
        }
        self.now_ms
    }

    pub fn resp3(&self) -> bool {
        self.proto == Protocol::Resp3
    }

    #[inline]
    fn slot_of(&self, db: usize, key: &[u8]) -> Result<&HeldSlot<'e>, CmdError> {
        self.held.get(db, self.slot(key)).ok_or(NOT_LOCKED)
    }

    fn data_mut(&mut self, key: &[u8]) -> Result<&mut SlotData, CmdError> {
        let slot = self.slot(key);
        let held = self.held.get_mut(self.db, slot).ok_or(NOT_LOCKED)?;
        held.guard.data_mut().ok_or(NOT_WRITABLE)
    }

    /// Whether `key`'s entry is logically expired; deletes it (and logs a DEL) when the
    /// command holds a write lock, else leaves that for after the command.
    #[inline]
    fn expire_if_needed(&mut self, key: &[u8]) -> Result<bool, CmdError> {
        if !self.slot_of(self.db, key)?.guard.data().has_volatile() {
            return Ok(false);
        }
        self.expire_if_due(key)
    }

    /// `expire_if_needed` for a slot that holds keys with a TTL.
    #[inline(never)]
    fn expire_if_due(&mut self, key: &[u8]) -> Result<bool, CmdError> {
        let db = self.db;
        let data = self.slot_of(db, key)?.guard.data();
        let at = data.get(key).and_then(Entry::expire_at);
        let Some(at) = at else {
            return Ok(false);
        };
        if self.replaying || self.now_ms() <= at {
            return Ok(false);
        }
        if self.engine.expiry_is_passive() {
            return Ok(true);
        }
        let slot = self.slot(key);
        let held = self.held.get_mut(db, slot).ok_or(NOT_LOCKED)?;
        match &mut held.guard {
            Guard::Write(data) => {
                data.remove(key);
                if data.touch(key, true) {
                    self.fx.ready.push((db, CompactBytes::new(key)));
                }
                self.fx.batch.push(db, &[b"DEL", key]);
                self.engine
                    .stats
                    .expired_keys
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                super::notify::expired(self.engine, db, key);
            }
            Guard::Read(_) => self.fx.expired.push((db, CompactBytes::new(key))),
        }
        Ok(true)
    }

    /// The live entry for `key` in the current database, marked as accessed.
    #[inline]
    pub fn lookup(&mut self, key: &[u8]) -> Result<Option<&Entry>, CmdError> {
        let entry = self.lookup_untouched(key)?;
        if let Some(entry) = entry {
            entry.touch();
        }
        Ok(entry)
    }

    /// The live entry for `key` without marking it accessed (OBJECT, MEMORY USAGE).
    #[inline]
    pub fn lookup_untouched(&mut self, key: &[u8]) -> Result<Option<&Entry>, CmdError> {
        let expired = self.expire_if_needed(key)?;
        let slot = self.slot(key);
        let held = self.held.get(self.db, slot).ok_or(NOT_LOCKED)?;
        let entry = if expired {
            None
        } else {
            held.guard.data().get(key)
        };
        // Keyspace hits and misses count the lookups of read commands, as Redis counts them.
        if matches!(held.guard, Guard::Read(_)) {
            if entry.is_some() {
                self.fx.lookups.0 += 1;
            } else {
                self.fx.lookups.1 += 1;
                self.notify(super::notify::class::KEY_MISS, "keymiss", key);
            }
        }
        Ok(entry)
    }

    /// The live entry for `key`, for modification (its expiry changes through `set_expire`).
    pub fn lookup_mut(&mut self, key: &[u8]) -> Result<Option<&mut Entry>, CmdError> {
        if self.expire_if_needed(key)? {
            return Ok(None);
        }
        let entry = self.data_mut(key)?.get_mut(key);
        if let Some(entry) = &entry {
            entry.touch();
        }
        Ok(entry)
    }

    pub fn exists(&mut self, key: &[u8]) -> Result<bool, CmdError> {
        Ok(self.lookup(key)?.is_some())
    }

    /// The value of `key` if it is a `T`; WRONGTYPE if it is another type.
    #[inline]
    pub fn get<T: Typed>(&mut self, key: &[u8]) -> Result<Option<&T>, CmdError> {
        match self.lookup(key)? {
            None => Ok(None),
            Some(entry) => T::of(&entry.value).map(Some).ok_or(WRONGTYPE),
        }
    }

    pub fn get_mut<T: Typed>(&mut self, key: &[u8]) -> Result<Option<&mut T>, CmdError> {
        match self.lookup_mut(key)? {
            None => Ok(None),
            Some(entry) => T::of_mut(&mut entry.value).map(Some).ok_or(WRONGTYPE),
        }
    }

    /// The `T` at `key` without expiry side effects, for reading several values at once after
    /// `get` has checked each of them (a logically expired key reads as missing).
    pub fn peek<T: Typed>(&self, key: &[u8]) -> Option<&T> {
        let now = if self.now_ms == 0 {
            self.engine.now_ms()
        } else {
            self.now_ms
        };
        let entry = self.slot_of(self.db, key).ok()?.guard.data().get(key)?;
        if !self.replaying && entry.is_expired(now) {
            return None;
        }
        T::of(&entry.value)
    }

    /// The `T` at `key`, created with `make` when the key is absent.
    pub fn get_or_create<T: Typed>(
        &mut self,
        key: &[u8],
        make: impl FnOnce() -> T,
    ) -> Result<&mut T, CmdError> {
        self.expire_if_needed(key)?;
        let (engine, db) = (self.engine, self.db);
        let (entry, created) = self
            .data_mut(key)?
            .get_or_insert_with(key, || make().into_value());
        if created {
            super::notify::created(engine, db, key);
        }
        T::of_mut(&mut entry.value).ok_or(WRONGTYPE)
    }

    /// Stores `value` at `key` (any previous value and TTL are replaced); returns the old value.
    pub fn store(
        &mut self,
        key: &[u8],
        value: Value,
        expire_at_ms: u64,
    ) -> Result<Option<Value>, CmdError> {
        self.expire_if_needed(key)?;
        let old = self.data_mut(key)?.insert(key, value, expire_at_ms);
        if old.is_none() {
            super::notify::created(self.engine, self.db, key);
        }
        self.touch(key)?;
        Ok(old)
    }

    /// Stores a whole entry (value, expiry and metadata) under its key, replacing what was
    /// there: RENAME, MOVE and COPY.
    pub fn place(&mut self, entry: Entry) -> Result<(), CmdError> {
        let key = entry.key.clone();
        self.expire_if_needed(&key)?;
        if self.data_mut(&key)?.insert_entry(entry).is_none() {
            super::notify::created(self.engine, self.db, &key);
        }
        self.touch(&key)
    }

    /// Deletes `key`; returns its entry if it was live.
    pub fn remove(&mut self, key: &[u8]) -> Result<Option<Entry>, CmdError> {
        if self.expire_if_needed(key)? {
            return Ok(None);
        }
        let removed = self.data_mut(key)?.remove(key);
        if removed.is_some() {
            self.touch(key)?;
        }
        Ok(removed)
    }

    /// Deletes `key` if it holds an empty aggregate (after the last element was removed).
    pub fn remove_if_empty(&mut self, key: &[u8]) -> Result<bool, CmdError> {
        let data = self.data_mut(key)?;
        if data.get(key).is_some_and(|e| e.value.is_empty()) {
            data.remove(key);
            return Ok(true);
        }
        Ok(false)
    }

    /// Sets (0: clears) the expiry of a live key.
    pub fn set_expire(&mut self, key: &[u8], expire_at_ms: u64) -> Result<bool, CmdError> {
        Ok(self.data_mut(key)?.set_expire(key, expire_at_ms))
    }

    /// Signals that `key` was modified: dirties WATCHers and wakes blocked clients.
    pub fn touch(&mut self, key: &[u8]) -> Result<(), CmdError> {
        let db = self.db;
        if self.data_mut(key)?.touch(key, false) {
            self.fx.ready.push((db, CompactBytes::new(key)));
        }
        Ok(())
    }

    /// Logs a command in the current database, and publishes its keyspace notifications
    /// (derived from the logged command: see [`super::notify`]).
    pub fn propagate(&mut self, argv: &[&[u8]]) {
        self.fx.batch.push(self.db, argv);
        if self.engine.live.notify_flags() != 0 {
            for event in super::notify::events_of(argv) {
                if let Some(&key) = argv.get(event.key_at) {
                    self.notify_event(event, key);
                }
            }
        }
    }

    /// Logs a command whose notifications the handler publishes itself (its logged form
    /// does not tell them: SPOP logs SREMs, DEL names keys that were not there).
    pub fn propagate_quiet(&mut self, argv: &[&[u8]]) {
        self.fx.batch.push(self.db, argv);
    }

    /// Publishes a keyspace notification for `key` in the current database.
    pub fn notify(&self, class: u32, event: &'static str, key: &[u8]) {
        super::notify::publish_if_on(self.engine, class, event, self.db, key);
    }

    /// [`Ctx::notify`] for an event that removed from an aggregate: a "del" follows when
    /// that left the key empty (deleted), as in Redis.
    pub fn notify_removal(&mut self, class: u32, event: &'static str, key: &[u8]) {
        self.notify_event(super::notify::removing(class, event, 0), key);
    }

    fn notify_event(&mut self, event: super::notify::KeyEvent, key: &[u8]) {
        self.notify(event.class, event.name, key);
        if event.may_empty && !self.present(key) {
            self.notify(super::notify::class::GENERIC, "del", key);
        }
    }

    /// Whether `key` is in the current database (expired or not: a write just touched it).
    fn present(&self, key: &[u8]) -> bool {
        self.slot_of(self.db, key)
            .is_ok_and(|held| held.guard.data().get(key).is_some())
    }

    /// Runs `f` with another database selected (MOVE, COPY ... DB).
    pub fn in_db<T>(&mut self, db: usize, f: impl FnOnce(&mut Self) -> T) -> T {
        let saved = std::mem::replace(&mut self.db, db);
        let out = f(self);
        self.db = saved;
        out
    }

    /// Asks the dispatcher to block the client on `keys`; inside EXEC, where nothing blocks,
    /// replies `nil` at once, as Redis does.
    pub fn block_or(
        &mut self,
        keys: &[&[u8]],
        timeout: Option<Duration>,
        op: BlockedOp,
        nil: Reply,
    ) -> CmdResult {
        if self.in_exec {
            return Ok(nil);
        }
        self.fx.block = Some(BlockRequest {
            keys: keys.iter().map(|k| CompactBytes::new(k)).collect(),
            timeout,
            op,
        });
        Ok(Reply::Nil)
    }

    /// WAIT / WAITAOF: the reply at once when `goal` is met for the caller's last write (or
    /// inside EXEC, where nothing blocks), else asks the dispatcher to block the client.
    pub fn wait_for_acks(&mut self, goal: AckGoal, timeout: Option<Duration>) -> CmdResult {
        let aof = std::sync::Arc::clone(&self.engine.persist.aof);
        let repl = std::sync::Arc::clone(&self.engine.repl);
        let wait = AckWait::new(aof, repl, self.last_write, goal);
        if let Some(reply) = wait.settled() {
            return Ok(reply);
        }
        if self.in_exec {
            return Ok(wait.reply());
        }
        // The replicas need the write now, not once this thread runs out of work.
        crate::log::flush_deferred_wakes();
        self.fx.acks = Some((wait, timeout));
        Ok(Reply::Nil)
    }

    /// Runs `f` on the data of one slot: the held guard when the command holds it (inside EXEC),
    /// else a read lock taken just for `f` (commands that walk the keyspace slot by slot).
    pub fn with_slot<T>(&mut self, db: usize, slot: SlotId, f: impl FnOnce(&SlotData) -> T) -> T {
        if let Some(held) = self.held.get(db, slot) {
            return f(held.guard.data());
        }
        match self.engine.keyspace.used_slot(db, slot) {
            Some(cell) => f(&cell.data.read()),
            // A database never used is empty.
            None => f(&SlotData::default()),
        }
    }

    /// Keys in one slot as this command sees them: the lock-free count is published only when
    /// a command commits, so slots this command holds are counted under their guard.
    pub fn slot_key_count(&self, db: usize, slot: SlotId) -> usize {
        match self.held.get(db, slot) {
            Some(held) => held.guard.data().len(),
            None => self
                .engine
                .keyspace
                .used_slot(db, slot)
                .map_or(0, |s| s.key_count()),
        }
    }

    /// DBSIZE as this command sees it (see `slot_key_count`).
    pub fn dbsize(&self, db: usize) -> usize {
        let published = self.engine.dbsize(db);
        self.held
            .iter()
            .filter(|h| h.db == db)
            .fold(published, |total, h| {
                total + h.guard.data().len() - h.cell.key_count()
            })
    }

    /// Whole-database access for FLUSHDB/FLUSHALL/SWAPDB (which hold every slot).
    pub fn held(&mut self) -> &mut Held<'e> {
        self.held
    }

    /// Takes the counts of key lookups made so far (for the statistics of one command).
    pub fn take_lookups(&mut self) -> (u64, u64) {
        std::mem::take(&mut self.fx.lookups)
    }

    /// Records keys made ready outside the per-key helpers (SWAPDB).
    pub fn mark_ready(&mut self, db: usize, key: CompactBytes) {
        self.fx.ready.push((db, key));
    }

    /// Records a key seen expired during a keyspace walk, to be deleted after the command.
    pub fn note_expired(&mut self, db: usize, key: CompactBytes) {
        if !self.replaying && !self.engine.expiry_is_passive() {
            self.fx.expired.push((db, key));
        }
    }
}
