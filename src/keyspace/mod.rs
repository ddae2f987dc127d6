//! The keyspace: databases of 16384 slots, each slot a locked shard of entries.
//!
//! A slot is the unit of locking, counting, listing, snapshotting and migration: its keys live
//! in their own [`Dict`], so `CLUSTER COUNTKEYSINSLOT` and `GETKEYSINSLOT` cost O(keys in the
//! slot). A command locks the slots it touches in ascending (db, slot) order, which makes
//! multi-key commands and transactions atomic without deadlock.
//!
//! Expiry is kept twice on purpose: in the entry (so a read checks it without another lookup)
//! and in a per-slot ordered index (so the active sweep finds due keys without scanning).

pub mod bytes;
pub mod dict;
pub mod digest;
pub mod tree;
pub mod value;

use self::bytes::CompactBytes;
use self::dict::Dict;
use self::value::Value;
use crate::slot::{SlotId, SLOT_COUNT};
use parking_lot::RwLock;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// One key and its value. `expire_at_ms` is 0 for keys without a TTL.
///
/// Aligned to a cache line, so that a slot's bucket array starts on one and every bucket is
/// one line: unaligned, three buckets in four would straddle two lines and cost two misses.
#[repr(align(64))]
pub struct Entry {
    pub key: CompactBytes,
    expire_at_ms: u64,
    pub value: Value,
    /// Per-key metadata: [`FLOAT_STRING`] and, in the low 24 bits, room for an access clock.
    /// Atomic because readers under a shared lock will update the clock.
    meta: AtomicU32,
    /// Kept for the slot's `Dict`; it fills what would be padding.
    filed_hash: u32,
}

/// The string was produced by INCRBYFLOAT: Redis stores it as text (embstr) even when it
/// looks like an integer, so OBJECT ENCODING must not say "int".
const FLOAT_STRING: u32 = 1 << 31;
/// The value is a private copy (COPY): Redis does not share it even when it is a small
/// integer, so OBJECT REFCOUNT says 1.
const UNSHARED: u32 = 1 << 30;
/// The low bits of `meta`: the access clock (seconds, wrapping), for OBJECT IDLETIME.
const CLOCK_MASK: u32 = (1 << 24) - 1;

/// The access clock entries are stamped with: Unix seconds, refreshed by each engine's
/// background tick (reading the time on every lookup would cost more than the stamp).
static ACCESS_CLOCK_SECS: AtomicU32 = AtomicU32::new(0);

/// Refreshes the access clock (the engine's background tick calls it).
pub fn tick_access_clock() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32);
    ACCESS_CLOCK_SECS.store(now, Ordering::Relaxed);
}

fn access_clock() -> u32 {
    let now = ACCESS_CLOCK_SECS.load(Ordering::Relaxed);
    if now == 0 {
        tick_access_clock();
        return ACCESS_CLOCK_SECS.load(Ordering::Relaxed);
    }
    now
}

impl Entry {
    fn new(key: &[u8], value: Value) -> Entry {
        Entry {
            key: CompactBytes::new(key),
            expire_at_ms: 0,
            value,
            meta: AtomicU32::new(access_clock() & CLOCK_MASK),
            filed_hash: 0,
        }
    }

    /// Records an access (what OBJECT IDLETIME measures from). The line is written only
    /// when the clock moved on, so a hot key is not written on every read.
    #[inline]
    pub fn touch(&self) {
        let meta = self.meta.load(Ordering::Relaxed);
        let now = access_clock() & CLOCK_MASK;
        if meta & CLOCK_MASK != now {
            self.meta
                .store((meta & !CLOCK_MASK) | now, Ordering::Relaxed);
        }
    }

    /// The access clock of the last access (DEBUG OBJECT `lru`).
    pub fn clock(&self) -> u32 {
        self.meta.load(Ordering::Relaxed) & CLOCK_MASK
    }

    /// Seconds since the last access (OBJECT IDLETIME).
    pub fn idle_secs(&self) -> u32 {
        access_clock().wrapping_sub(self.meta.load(Ordering::Relaxed)) & CLOCK_MASK
    }

    pub fn is_float_string(&self) -> bool {
        self.meta.load(Ordering::Relaxed) & FLOAT_STRING != 0
    }

    pub fn set_float_string(&mut self, float: bool) {
        self.set_meta_flag(FLOAT_STRING, float);
    }

    fn set_meta_flag(&mut self, flag: u32, on: bool) {
        let meta = self.meta.get_mut();
        if on {
            *meta |= flag;
        } else {
            *meta &= !flag;
        }
    }

    /// This entry under another key (RENAME): value, expiry and metadata go with it.
    pub fn renamed(mut self, key: &[u8]) -> Entry {
        self.key = CompactBytes::new(key);
        self
    }

    /// A deep copy under `key` (COPY): Redis's copy is a new object, never a shared integer.
    pub fn duplicate(&self, key: &[u8]) -> Entry {
        Entry {
            key: CompactBytes::new(key),
            expire_at_ms: self.expire_at_ms,
            value: self.value.clone(),
            meta: AtomicU32::new(
                (self.meta.load(Ordering::Relaxed) & !CLOCK_MASK)
                    | UNSHARED
                    | (access_clock() & CLOCK_MASK),
            ),
            filed_hash: 0,
        }
    }

    /// What `OBJECT ENCODING` reports for this entry's value.
    pub fn encoding(&self) -> &'static str {
        match &self.value {
            Value::Str(s) if self.is_float_string() && !s.is_growable() && s.len() <= 44 => {
                "embstr"
            }
            value => value.encoding(),
        }
    }

    /// Whether Redis would share this value (an int-encoded string 0..9999): OBJECT REFCOUNT.
    pub fn is_shared_integer(&self) -> bool {
        match &self.value {
            Value::Str(s)
                if self.encoding() == "int"
                    && self.meta.load(Ordering::Relaxed) & UNSHARED == 0 =>
            {
                value::parse_i64_strict(s).is_some_and(|n| (0..10_000).contains(&n))
            }
            _ => false,
        }
    }

    /// MEMORY USAGE: the entry, its key's and its value's allocations, estimated from
    /// `samples` elements of a collection (0: all).
    pub fn usage_bytes(&self, samples: usize) -> usize {
        std::mem::size_of::<Entry>() + self.key.heap_bytes() + self.value.heap_bytes(samples)
    }

    /// Absolute expiry in Unix milliseconds, if the key has a TTL.
    pub fn expire_at(&self) -> Option<u64> {
        (self.expire_at_ms != 0).then_some(self.expire_at_ms)
    }

    /// Redis's rule: a key is expired once the clock is strictly past its deadline.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expire_at_ms != 0 && self.expire_at_ms < now_ms
    }
}

dict::dict_item!(Entry, key);

/// Set by a write to a watched key; `EXEC` aborts when it is set.
pub type WatchFlag = Arc<AtomicBool>;

/// A client's WATCH on one key.
pub struct Watcher {
    pub flag: WatchFlag,
    /// The key was already logically expired when watched: its deletion is no change.
    pub stale: bool,
}

/// Per-slot state that most slots never need, kept out of line.
#[derive(Default)]
pub struct SlotExtras {
    /// (expire_at_ms, key) of every key with a TTL.
    expires: BTreeSet<(u64, CompactBytes)>,
    /// Clients blocked on a key of this slot, in arrival order.
    pub blocked:
        HashMap<CompactBytes, std::collections::VecDeque<Arc<crate::engine::blocking::Waiter>>>,
    /// WATCHed keys of this slot.
    pub watched: HashMap<CompactBytes, Vec<Watcher>>,
}

impl SlotExtras {
    fn is_unused(&self) -> bool {
        self.expires.is_empty() && self.blocked.is_empty() && self.watched.is_empty()
    }
}

/// The data of one (database, slot) shard, behind the slot lock.
#[derive(Default)]
pub struct SlotData {
    entries: Dict<Entry>,
    extras: Option<Box<SlotExtras>>,
}

impl SlotData {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Sizes an empty shard for `keys` (see `Dict::reserve_empty`).
    pub fn reserve_empty(&mut self, keys: usize) {
        self.entries.reserve_empty(keys);
    }

    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// Starts loading the bucket where `key` would be (see [`Slot::prefetch`]).
    pub fn prefetch(&self, key: &[u8]) {
        self.entries.prefetch(key);
    }

    /// Mutable access to an entry's value; its expiry changes only through `set_expire`.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        self.entries.get_mut(key)
    }

    pub fn entries(&self) -> dict::Iter<'_, Entry> {
        self.entries.iter()
    }

    pub fn scan(&self, cursor: u64, f: impl FnMut(&Entry)) -> u64 {
        self.entries.scan(cursor, f)
    }

    pub fn random(&self) -> Option<&Entry> {
        self.entries.random()
    }

    pub fn extras(&self) -> Option<&SlotExtras> {
        self.extras.as_deref()
    }

    pub fn extras_mut(&mut self) -> &mut SlotExtras {
        self.extras.get_or_insert_with(Default::default)
    }

    /// Frees the extras when nothing uses them any more.
    pub fn release_extras(&mut self) {
        if self.extras.as_ref().is_some_and(|e| e.is_unused()) {
            self.extras = None;
        }
    }

    /// The entry for `key`, inserting one made by `make` (without TTL) when absent; the flag
    /// says whether it was inserted.
    pub fn get_or_insert_with(
        &mut self,
        key: &[u8],
        make: impl FnOnce() -> Value,
    ) -> (&mut Entry, bool) {
        self.entries
            .get_or_insert_with(key, || Entry::new(key, make()))
    }

    /// Signals that `key` changed: dirties its watchers (a deletion by expiry spares those
    /// that watched it already expired, as Redis does) and returns whether clients are blocked
    /// on it.
    pub fn touch(&mut self, key: &[u8], by_expiry: bool) -> bool {
        let Some(extras) = self.extras.as_mut() else {
            return false;
        };
        if let Some(watchers) = extras.watched.get_mut(key) {
            watchers.retain_mut(|w| {
                if by_expiry && w.stale {
                    w.stale = false;
                    return true;
                }
                w.flag.store(true, Ordering::Relaxed);
                false
            });
            if watchers.is_empty() {
                extras.watched.remove(key);
            }
        }
        let blocked = extras.blocked.contains_key(key);
        self.release_extras();
        blocked
    }

    /// Stores `value` under `key` with the given expiry (0: none); returns the value it
    /// replaced. An existing entry is updated in place: overwriting allocates nothing.
    pub fn insert(&mut self, key: &[u8], value: Value, expire_at_ms: u64) -> Option<Value> {
        if let Some(entry) = self.entries.get_mut(key) {
            let old = std::mem::replace(&mut entry.value, value);
            entry.set_meta_flag(FLOAT_STRING | UNSHARED, false);
            if entry.expire_at_ms != expire_at_ms {
                self.set_expire(key, expire_at_ms);
            }
            return Some(old);
        }
        self.entries.insert_new(Entry::new(key, value));
        if expire_at_ms != 0 {
            self.set_expire(key, expire_at_ms);
        }
        None
    }

    /// Stores a whole entry under its key (replacing any), keeping its expiry and metadata.
    pub fn insert_entry(&mut self, entry: Entry) -> Option<Entry> {
        let old = self.remove(&entry.key);
        let at = entry.expire_at_ms;
        let key = entry.key.clone();
        self.entries.insert_new(entry);
        if at != 0 {
            self.extras_mut().expires.insert((at, key));
        }
        old
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        if entry.expire_at_ms != 0 {
            self.unindex_expire(key, entry.expire_at_ms);
        }
        Some(entry)
    }

    /// Sets (or with 0 clears) the expiry of an existing key; false when the key is absent.
    pub fn set_expire(&mut self, key: &[u8], expire_at_ms: u64) -> bool {
        let Some(entry) = self.entries.get_mut(key) else {
            return false;
        };
        let old = std::mem::replace(&mut entry.expire_at_ms, expire_at_ms);
        if old != 0 {
            self.unindex_expire(key, old);
        }
        if expire_at_ms != 0 {
            self.extras_mut()
                .expires
                .insert((expire_at_ms, CompactBytes::new(key)));
        }
        true
    }

    fn unindex_expire(&mut self, key: &[u8], at: u64) {
        if let Some(extras) = self.extras.as_mut() {
            extras.expires.remove(&(at, CompactBytes::new(key)));
        }
        self.release_extras();
    }

    /// The earliest expiry in this slot.
    pub fn next_expire_ms(&self) -> Option<u64> {
        self.extras.as_ref()?.expires.first().map(|(at, _)| *at)
    }

    /// A key that is expired at `now_ms`, if any.
    pub fn first_due(&self, now_ms: u64) -> Option<CompactBytes> {
        let (at, key) = self.extras.as_ref()?.expires.first()?;
        (*at < now_ms).then(|| key.clone())
    }

    /// Keys whose TTL passed (`now_ms` > expiry) but that are still stored.
    pub fn expired_len(&self, now_ms: u64) -> usize {
        self.extras.as_ref().map_or(0, |e| {
            e.expires.range(..(now_ms, CompactBytes::EMPTY)).count()
        })
    }

    /// Whether any key of this slot has a TTL (when none has, lookups skip the expiry check).
    pub fn has_volatile(&self) -> bool {
        self.extras.as_ref().is_some_and(|e| !e.expires.is_empty())
    }

    /// Number of keys with a TTL.
    pub fn volatile_len(&self) -> usize {
        self.extras.as_ref().map_or(0, |e| e.expires.len())
    }

    /// Dirties the watchers of every watched key for which `changed` holds.
    fn touch_watched_where(&mut self, changed: impl Fn(&[u8]) -> bool) {
        let Some(extras) = self.extras.as_mut() else {
            return;
        };
        extras.watched.retain(|key, watchers| {
            if !changed(key) {
                return true;
            }
            watchers
                .iter()
                .for_each(|w| w.flag.store(true, Ordering::Relaxed));
            false
        });
    }

    /// FLUSHDB/FLUSHALL: empties the shard, dirtying watchers of keys that existed.
    pub fn flush(&mut self) {
        let entries = std::mem::take(&mut self.entries);
        self.touch_watched_where(|key| entries.contains(key));
        if let Some(extras) = self.extras.as_mut() {
            extras.expires.clear();
        }
        self.release_extras();
        drop(entries);
    }

    /// SWAPDB for one slot: swaps the stored data with `other`'s (blocked clients and watchers
    /// stay with the database index, as in Redis). Watchers of keys present on either side are
    /// dirtied; returns the keys on each side that blocked clients can now be served from.
    pub fn swap_data(&mut self, other: &mut SlotData) -> (Vec<CompactBytes>, Vec<CompactBytes>) {
        let in_either = |a: &SlotData, b: &SlotData, key: &[u8]| {
            a.entries.contains(key) || b.entries.contains(key)
        };
        let (mine, theirs) = (&*self, &*other);
        let dirtied = |side: &SlotData| -> Vec<CompactBytes> {
            side.extras()
                .map(|e| {
                    e.watched
                        .keys()
                        .filter(|k| in_either(mine, theirs, k))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        };
        let (dirty_mine, dirty_theirs) = (dirtied(mine), dirtied(theirs));
        self.touch_watched_where(|k| dirty_mine.iter().any(|d| d.as_slice() == k));
        other.touch_watched_where(|k| dirty_theirs.iter().any(|d| d.as_slice() == k));
        std::mem::swap(&mut self.entries, &mut other.entries);
        let mine = self.extras.as_mut().map(|e| std::mem::take(&mut e.expires));
        let theirs = other
            .extras
            .as_mut()
            .map(|e| std::mem::take(&mut e.expires));
        if let Some(expires) = theirs.filter(|e| !e.is_empty()) {
            self.extras_mut().expires = expires;
        }
        if let Some(expires) = mine.filter(|e| !e.is_empty()) {
            other.extras_mut().expires = expires;
        }
        self.release_extras();
        other.release_extras();
        (self.blocked_with_data(), other.blocked_with_data())
    }

    /// Keys with blocked clients that now hold data.
    fn blocked_with_data(&self) -> Vec<CompactBytes> {
        self.extras()
            .map(|e| {
                e.blocked
                    .keys()
                    .filter(|k| self.entries.contains(k))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Starts loading the cache line at `at` without waiting for it: the miss then overlaps with
/// whatever the caller does before it reads there.
#[inline]
pub fn prefetch<T>(at: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults and reads nothing into the program.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((at as *const T).cast::<i8>());
    }
}

/// One slot of one database. One cache line: the lock, the dict header and the counters are
/// fetched together (a command touching a slot pays one miss for all of them).
#[repr(align(64))]
pub struct Slot {
    pub data: RwLock<SlotData>,
    /// Mirror of the key count, so DBSIZE and slot counts need no lock.
    key_count: AtomicU32,
    /// Earliest expiry in the slot (`u64::MAX`: none), so the sweep skips slots without locking.
    next_expire_ms: AtomicU64,
    /// The tag of the thread that last locked the slot (0: an untagged thread): who a thread
    /// that finds the lock taken is waiting for.
    pub holder: AtomicU16,
    /// The snapshot in progress has not serialized this slot yet: whoever locks it to write
    /// serializes it first (see `persist::snapshot`).
    capture_pending: AtomicBool,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            data: RwLock::new(SlotData::default()),
            key_count: AtomicU32::new(0),
            next_expire_ms: AtomicU64::new(u64::MAX),
            holder: AtomicU16::new(0),
            capture_pending: AtomicBool::new(false),
        }
    }

    #[inline]
    pub fn capture_pending(&self) -> bool {
        self.capture_pending.load(Ordering::Acquire)
    }

    /// Set when a snapshot begins (with the slot locked), cleared once it is serialized.
    pub fn set_capture_pending(&self, pending: bool) {
        self.capture_pending.store(pending, Ordering::Release);
    }

    pub fn key_count(&self) -> usize {
        self.key_count.load(Ordering::Relaxed) as usize
    }

    /// Starts loading this slot's cache line, so that the miss overlaps with whatever the
    /// caller does before it locks the slot.
    #[inline]
    pub fn prefetch(&self) {
        prefetch(self);
    }

    /// Starts loading the bucket where `key` would be, when the slot can be read without
    /// waiting (this slot's line should already be cached: see [`Slot::prefetch`]).
    #[inline]
    pub fn prefetch_key(&self, key: &[u8]) {
        if let Some(data) = self.data.try_read() {
            data.prefetch(key);
        }
    }

    pub fn next_expire_ms(&self) -> u64 {
        self.next_expire_ms.load(Ordering::Relaxed)
    }

    /// Refreshes the lock-free mirrors; called by whoever wrote, before unlocking.
    pub fn publish(&self, data: &SlotData) {
        self.key_count
            .store(data.len().min(u32::MAX as usize) as u32, Ordering::Relaxed);
        self.next_expire_ms
            .store(data.next_expire_ms().unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

/// One database: its slots are allocated on first use, so unused databases cost nothing.
#[derive(Default)]
pub struct Db {
    slots: OnceLock<Box<[Slot]>>,
}

impl Db {
    /// The slots if this database was ever used.
    pub fn slots_if_used(&self) -> Option<&[Slot]> {
        self.slots.get().map(|s| &s[..])
    }

    pub fn key_count(&self) -> usize {
        self.slots_if_used()
            .map_or(0, |slots| slots.iter().map(Slot::key_count).sum())
    }
}

/// All databases.
///
/// Databases are allocated on first use, which must not race with commands that act on every
/// database (FLUSHALL, SWAPDB): those hold the *gate* for writing while they run, and
/// allocating takes it for reading. Allocation never happens while slot locks are held
/// (`Held::acquire` opens every database it needs first), so the gate cannot deadlock.
pub struct Keyspace {
    dbs: Box<[Db]>,
    gate: RwLock<()>,
}

impl Keyspace {
    pub fn new(databases: usize) -> Keyspace {
        Keyspace {
            dbs: (0..databases.max(1)).map(|_| Db::default()).collect(),
            gate: RwLock::new(()),
        }
    }

    pub fn db_count(&self) -> usize {
        self.dbs.len()
    }

    /// The slots of `db` if it exists and was ever used; never allocates.
    pub fn used(&self, db: usize) -> Option<&[Slot]> {
        self.dbs.get(db)?.slots_if_used()
    }

    /// The slots of `db`, allocating them on first use. `None` for an index out of range.
    /// Must not be called while holding slot locks (see the type's documentation).
    pub fn open(&self, db: usize) -> Option<&[Slot]> {
        let cell = &self.dbs.get(db)?.slots;
        if let Some(slots) = cell.get() {
            return Some(slots);
        }
        let _gate = self.gate.read();
        Some(cell.get_or_init(|| (0..SLOT_COUNT).map(|_| Slot::new()).collect()))
    }

    /// One slot of a used database (`None` when the database was never used).
    pub fn used_slot(&self, db: usize, slot: SlotId) -> Option<&Slot> {
        self.used(db).map(|slots| &slots[slot.index()])
    }

    /// Held for writing by commands that act on every database.
    pub fn gate(&self) -> &RwLock<()> {
        &self.gate
    }

    pub fn dbs(&self) -> &[Db] {
        &self.dbs
    }
}
