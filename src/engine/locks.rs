//! Lock planning and acquisition.
//!
//! A command (or a whole transaction) declares the (db, slot) pairs it touches; they are
//! sorted and locked in ascending order, so any set of commands can run concurrently without
//! deadlock, and each one is atomic with respect to every other. Commands that touch every
//! slot (FLUSHDB, FLUSHALL, SWAPDB) lock whole databases, in the same order.

use super::Engine;
use crate::cmd::{Command, LockScope};
use crate::keyspace::{Slot, SlotData};
use crate::slot::{SlotId, SLOT_COUNT};
use parking_lot::{RwLockReadGuard, RwLockWriteGuard};
use smallvec::SmallVec;
use std::cell::Cell;
use std::sync::atomic::Ordering;

thread_local! {
    /// This thread's tag, written into every slot it locks (0: untagged).
    static THREAD_TAG: Cell<u16> = const { Cell::new(0) };
}

/// Tags the calling thread (an adapter's worker), so that a thread that waits for a slot
/// learns which worker held it (see [`Kept::waited`]).
pub fn tag_thread(tag: u16) {
    THREAD_TAG.with(|t| t.set(tag));
}

fn thread_tag() -> u16 {
    THREAD_TAG.with(Cell::get)
}

/// A slot lock a command found taken, and the tag of the thread that last took it.
#[derive(Clone, Copy, Debug)]
pub struct Wait {
    pub db: usize,
    pub slot: SlotId,
    pub holder: u16,
}

/// What to lock.
#[derive(Default)]
pub struct LockPlan {
    slots: SmallVec<[(usize, SlotId); 4]>,
    /// Databases a whole-keyspace command needs to exist (SWAPDB's pair).
    open: SmallVec<[usize; 2]>,
    /// Whole databases to lock, when a command needs them all.
    whole: Whole,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Whole {
    #[default]
    None,
    Db(usize),
    All,
}

impl LockPlan {
    /// Adds what `command` touches when run in database `db`. `first_slot` is the slot of
    /// `argv[1]` when the caller already computed it.
    pub fn add_command(
        &mut self,
        engine: &Engine,
        command: &Command,
        argv: &[&[u8]],
        db: usize,
        first_slot: Option<SlotId>,
        in_exec: bool,
    ) {
        match command.lock {
            LockScope::None => {}
            LockScope::Keys if command.locks_first_key_only() => {
                if let Some(key) = argv.get(1) {
                    self.slots
                        .push((db, first_slot.unwrap_or_else(|| SlotId::of_key(key))));
                }
            }
            LockScope::Keys => {
                let mut indexes = SmallVec::<[usize; 8]>::new();
                command.key_indexes(argv, &mut indexes);
                let others = self.other_dbs(engine, command, argv);
                for i in indexes {
                    let slot = match (i, first_slot) {
                        (1, Some(slot)) => slot,
                        _ => SlotId::of_key(argv[i]),
                    };
                    self.slots.push((db, slot));
                    self.slots.extend(others.iter().map(|&t| (t, slot)));
                }
            }
            LockScope::Db => self.add_db(db),
            // Outside a transaction these lock one slot at a time as they go (`Ctx::with_slot`);
            // inside EXEC, where other slots are held, they must not, so EXEC takes everything.
            LockScope::Dynamic if !in_exec => {}
            LockScope::All | LockScope::Dynamic => {
                let others = self.other_dbs(engine, command, argv);
                self.open.extend(others);
                self.whole = Whole::All;
            }
        }
    }

    /// The valid other databases `command` names in `argv`.
    fn other_dbs(
        &self,
        engine: &Engine,
        command: &Command,
        argv: &[&[u8]],
    ) -> SmallVec<[usize; 2]> {
        let mut dbs = command.other_dbs.map(|f| f(argv)).unwrap_or_default();
        dbs.retain(|t| *t < engine.db_count());
        dbs
    }

    pub fn add_key(&mut self, db: usize, key: &[u8]) {
        self.slots.push((db, SlotId::of_key(key)));
    }

    fn add_db(&mut self, db: usize) {
        self.whole = match self.whole {
            Whole::None => Whole::Db(db),
            Whole::Db(d) if d == db => Whole::Db(d),
            _ => Whole::All,
        };
    }
}

pub enum Guard<'a> {
    Read(RwLockReadGuard<'a, SlotData>),
    Write(RwLockWriteGuard<'a, SlotData>),
}

impl Guard<'_> {
    #[inline]
    pub fn data(&self) -> &SlotData {
        match self {
            Guard::Read(g) => g,
            Guard::Write(g) => g,
        }
    }

    pub fn data_mut(&mut self) -> Option<&mut SlotData> {
        match self {
            Guard::Read(_) => None,
            Guard::Write(g) => Some(g),
        }
    }
}

pub struct HeldSlot<'a> {
    pub db: usize,
    pub slot: SlotId,
    pub cell: &'a Slot,
    pub guard: Guard<'a>,
}

/// Locks held for one command or transaction, sorted by (db, slot). Small, so that handing it
/// from dispatch to commit costs a few register moves: the common case is one slot, inline.
pub struct Held<'a> {
    entries: SmallVec<[HeldSlot<'a>; 1]>,
    /// Set when whole databases are held.
    whole: Option<Box<WholeDbs<'a>>>,
}

struct WholeDbs<'a> {
    /// Each held database and where its 16384 entries start.
    dbs: SmallVec<[(usize, usize); 2]>,
    /// Held by commands that act on every database, so none is allocated meanwhile.
    _gate: Option<RwLockWriteGuard<'a, ()>>,
}

impl<'a> HeldSlot<'a> {
    /// Locks one slot of a used database (`None`: the database was never opened). When it
    /// has to wait for a tagged thread, that goes to `waited`.
    fn lock(
        engine: &'a Engine,
        db: usize,
        slot: SlotId,
        write: bool,
        waited: &mut Option<Wait>,
    ) -> Option<HeldSlot<'a>> {
        let cell = &engine.keyspace.used(db)?[slot.index()];
        let taken = if write {
            cell.data.try_write().map(Guard::Write)
        } else {
            cell.data.try_read().map(Guard::Read)
        };
        let guard = taken.unwrap_or_else(|| {
            let holder = cell.holder.load(Ordering::Relaxed);
            if holder != 0 {
                *waited = Some(Wait { db, slot, holder });
            }
            if write {
                Guard::Write(cell.data.write())
            } else {
                Guard::Read(cell.data.read())
            }
        });
        cell.holder.store(thread_tag(), Ordering::Relaxed);
        if let Guard::Write(data) = &guard {
            crate::persist::snapshot::before_write(engine, db, cell, data);
        }
        Some(HeldSlot {
            db,
            slot,
            cell,
            guard,
        })
    }
}

impl<'a> Held<'a> {
    /// Locks one slot: what most commands need, without planning. When it has to wait for a
    /// tagged thread, that goes to `waited`.
    fn one(
        engine: &'a Engine,
        db: usize,
        slot: SlotId,
        write: bool,
        waited: &mut Option<Wait>,
    ) -> Held<'a> {
        engine.keyspace.open(db);
        Held {
            entries: match HeldSlot::lock(engine, db, slot, write, waited) {
                Some(held) => SmallVec::from_buf([held]),
                None => SmallVec::new(),
            },
            whole: None,
        }
    }

    /// Locks everything in `plan`, in ascending (db, slot) order.
    pub fn acquire(engine: &'a Engine, plan: &LockPlan, write: bool) -> Held<'a> {
        let keyspace = &engine.keyspace;
        // Open (allocate) every database the plan names before taking any slot lock.
        for db in plan
            .slots
            .iter()
            .map(|&(db, _)| db)
            .chain(plan.open.iter().copied())
        {
            keyspace.open(db);
        }
        if let Whole::Db(d) = plan.whole {
            keyspace.open(d);
        }
        let lock = |db: usize, slot: SlotId| HeldSlot::lock(engine, db, slot, write, &mut None);
        let (gate, dbs): (_, SmallVec<[usize; 2]>) = match plan.whole {
            Whole::None => (None, SmallVec::new()),
            Whole::Db(d) if plan.slots.iter().all(|&(db, _)| db == d) => {
                (None, smallvec::smallvec![d])
            }
            _ => {
                let gate = keyspace.gate().write();
                let used = (0..engine.db_count())
                    .filter(|&db| keyspace.used(db).is_some())
                    .collect();
                (Some(gate), used)
            }
        };
        if !dbs.is_empty() {
            let mut entries = SmallVec::new();
            let mut whole = WholeDbs {
                dbs: SmallVec::new(),
                _gate: gate,
            };
            for db in dbs {
                whole.dbs.push((db, entries.len()));
                entries.extend((0..SLOT_COUNT as u16).filter_map(|s| lock(db, SlotId::new(s)?)));
            }
            return Held {
                entries,
                whole: Some(Box::new(whole)),
            };
        }
        let mut keys = plan.slots.clone();
        keys.sort_unstable();
        keys.dedup();
        Held {
            entries: keys
                .into_iter()
                .filter_map(|(db, slot)| lock(db, slot))
                .collect(),
            whole: None,
        }
    }

    #[inline]
    fn position(&self, db: usize, slot: SlotId) -> Option<usize> {
        if let Some(whole) = &self.whole {
            let &(_, start) = whole.dbs.iter().find(|(d, _)| *d == db)?;
            return Some(start + slot.index());
        }
        self.entries
            .iter()
            .position(|e| e.db == db && e.slot == slot)
    }

    #[inline]
    pub fn get(&self, db: usize, slot: SlotId) -> Option<&HeldSlot<'a>> {
        self.position(db, slot).map(|i| &self.entries[i])
    }

    pub fn get_mut(&mut self, db: usize, slot: SlotId) -> Option<&mut HeldSlot<'a>> {
        self.position(db, slot).map(move |i| &mut self.entries[i])
    }

    /// The held slots of one database, in slot order (for whole-database commands).
    pub fn db_slots_mut(&mut self, db: usize) -> impl Iterator<Item = &mut HeldSlot<'a>> {
        self.entries.iter_mut().filter(move |e| e.db == db)
    }

    /// The same slot of two different databases, both mutably (SWAPDB).
    pub fn pair_mut(
        &mut self,
        a: usize,
        b: usize,
        slot: SlotId,
    ) -> Option<(&mut SlotData, &mut SlotData)> {
        let (i, j) = (self.position(a, slot)?, self.position(b, slot)?);
        if i == j {
            return None;
        }
        let (low, high) = (i.min(j), i.max(j));
        let (head, tail) = self.entries.split_at_mut(high);
        let (x, y) = (head[low].guard.data_mut()?, tail[0].guard.data_mut()?);
        Some(if i < j { (x, y) } else { (y, x) })
    }

    /// Every held slot.
    pub fn iter(&self) -> impl Iterator<Item = &HeldSlot<'a>> {
        self.entries.iter()
    }

    /// Refreshes the lock-free key counts and expiry hints of written slots.
    pub fn publish(&self) {
        for e in &self.entries {
            if let Guard::Write(g) = &e.guard {
                e.cell.publish(g);
            }
        }
    }
}

/// One slot's lock kept from a command to the next while an adapter runs a batch of commands
/// (a pipeline) without waiting in between: a pipeline on a hot key then takes its lock once
/// per batch instead of once per command, and the other threads park on it once per batch.
///
/// It never holds more than one slot, and it is released before anything else is locked, so
/// the ascending-order rule still holds; it is dropped (released) when the batch ends.
///
/// It also notes the last lock the batch had to wait for, so that the adapter can move
/// clients of a hot slot to the thread that serves it.
#[derive(Default)]
pub struct Kept<'a> {
    held: Option<Held<'a>>,
    waited: Option<Wait>,
}

impl<'a> Kept<'a> {
    /// Locks one slot, reusing the kept lock when it is exactly `slot` of `db` in a mode that
    /// allows `write` (whatever else is kept is released first).
    pub fn lock_one(
        &mut self,
        engine: &'a Engine,
        db: usize,
        slot: SlotId,
        write: bool,
    ) -> Held<'a> {
        if let Some(held) = self.held.take() {
            // `keep` only stores single-slot locks.
            let fits = matches!(&held.entries[..], [e] if e.db == db && e.slot == slot
                    && (!write || matches!(e.guard, Guard::Write(_))));
            if fits {
                return held;
            }
        }
        Held::one(engine, db, slot, write, &mut self.waited)
    }

    /// The slot lock this batch last waited for (held by a tagged thread).
    pub fn waited(&self) -> Option<Wait> {
        self.waited
    }

    /// The slot whose lock is kept, as (db, slot).
    pub fn slot(&self) -> Option<(usize, SlotId)> {
        let held = self.held.as_ref()?;
        held.entries.first().map(|e| (e.db, e.slot))
    }

    /// The kept lock's data when it is the lock of `slot` of `db`.
    pub fn data(&self, db: usize, slot: SlotId) -> Option<&SlotData> {
        match &self.held.as_ref()?.entries[..] {
            [e] if e.db == db && e.slot == slot => Some(e.guard.data()),
            _ => None,
        }
    }

    /// Keeps `held` for the next command (a lock on one slot only; anything else is released).
    pub fn keep(&mut self, held: Held<'a>) {
        if held.whole.is_none() && held.entries.len() == 1 {
            self.held = Some(held);
        }
    }

    /// Releases the kept lock, before taking any other.
    pub fn release(&mut self) {
        self.held = None;
    }
}
