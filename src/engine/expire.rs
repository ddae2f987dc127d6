//! Reclaiming expired keys: lazily on access (see `Ctx`) and by an active sweep.
//!
//! Every slot knows its earliest expiry without a lock, so the sweep skips slots with nothing
//! due, and within a slot it takes due keys from an ordered index instead of sampling: each pass
//! removes every key that is due (up to a per-pass budget), which keeps logically expired keys
//! far below Redis's ~10% target. Each deletion is logged as a DEL, as Redis propagates it.

use super::Engine;
use crate::log::Batch;
use crate::slot::{SlotId, SLOT_COUNT};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Deletes `key` in `db` if it is logically expired (after a read command saw it expired).
pub fn delete_if_expired(engine: &Engine, db: usize, key: &[u8]) {
    if engine.expiry_is_passive() {
        return;
    }
    let Some(slot) = engine.keyspace.used_slot(db, SlotId::of_key(key)) else {
        return;
    };
    let mut data = slot.data.write();
    crate::persist::snapshot::before_write(engine, db, slot, &data);
    let now = engine.now_ms();
    if !data.get(key).is_some_and(|e| e.is_expired(now)) {
        return;
    }
    data.remove(key);
    data.touch(key, true);
    let mut batch = Batch::default();
    batch.push(db, &[b"DEL", key]);
    engine.log.append(&batch, false);
    engine.stats.expired_keys.fetch_add(1, Ordering::Relaxed);
    super::notify::expired(engine, db, key);
    slot.publish(&data);
}

/// Where the active sweep resumes: a position over every (db, slot), db-major.
#[derive(Default)]
pub struct SweepCursor {
    position: usize,
}

/// Keys deleted per slot before the sweep moves on (so one slot cannot hog a pass).
const KEYS_PER_SLOT_MAX: usize = 256;

/// One pass of the active sweep over at most the whole keyspace, bounded by `budget`;
/// returns the number of keys deleted.
pub fn sweep(engine: &Engine, cursor: &mut SweepCursor, budget: Duration) -> usize {
    if engine.expiry_is_passive() || !engine.active_expire_enabled.load(Ordering::Relaxed) {
        return 0;
    }
    let started = Instant::now();
    let now = engine.now_ms();
    let total = engine.db_count() * SLOT_COUNT;
    let mut deleted = 0;
    let mut visited = 0;
    while visited < total {
        let position = cursor.position % total;
        let (db, index) = (position / SLOT_COUNT, position % SLOT_COUNT);
        let Some(slots) = engine.keyspace.used(db) else {
            // A database never used has nothing to expire: skip all of it.
            let rest = SLOT_COUNT - index;
            cursor.position = position + rest;
            visited += rest;
            continue;
        };
        cursor.position = position + 1;
        visited += 1;
        let slot = &slots[index];
        if slot.next_expire_ms() >= now {
            continue;
        }
        deleted += sweep_slot(engine, db, slot, now);
        if started.elapsed() >= budget {
            break;
        }
    }
    deleted
}

fn sweep_slot(engine: &Engine, db: usize, slot: &crate::keyspace::Slot, now: u64) -> usize {
    let mut data = slot.data.write();
    crate::persist::snapshot::before_write(engine, db, slot, &data);
    let mut batch = Batch::default();
    let mut deleted = 0;
    while deleted < KEYS_PER_SLOT_MAX {
        let Some(key) = data.first_due(now) else {
            break;
        };
        data.remove(&key);
        data.touch(&key, true);
        batch.push(db, &[b"DEL", &key]);
        super::notify::expired(engine, db, &key);
        deleted += 1;
    }
    if !batch.is_empty() {
        engine.log.append(&batch, false);
        engine
            .stats
            .expired_keys
            .fetch_add(deleted as u64, Ordering::Relaxed);
    }
    slot.publish(&data);
    deleted
}
