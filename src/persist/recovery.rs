//! Start-up: loading the snapshot into the keyspace.
//!
//! One thread decodes the file; keys go in batches to inserter threads that each own a
//! disjoint half of the slots, so inserting (the dict probes, most of the cost) runs in
//! parallel with decoding and the inserters never meet on a lock.

use super::rdb::decode::{self, Item, LoadOptions, LoadSummary, Record};
use super::rdb::FormatError;
use crate::engine::Engine;
use crate::error::Error;
use crate::slot::SlotId;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Keys handed to an inserter at a time.
const BATCH_KEYS: usize = 1024;
/// Batches queued per inserter: bounds what decoding runs ahead by.
const BATCHES_QUEUED_MAX: usize = 8;

/// Loads the RDB file at `path` into the (empty) keyspace; `Ok(None)` when there is no file.
/// A damaged file is an error naming it, the byte offset and what is wrong: start-up stops
/// rather than run with part of the data.
pub(crate) fn load_rdb(engine: &Engine, path: &Path) -> Result<Option<LoadSummary>, Error> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Io(e)),
    };
    load_rdb_bytes(engine, path, &bytes, true).map(Some)
}

/// Loads an RDB image read from `path`. `drop_expired`: skip keys already expired, as a
/// primary loading its snapshot does (an AOF base keeps them: its incr files delete them).
pub(crate) fn load_rdb_bytes(
    engine: &Engine,
    path: &Path,
    bytes: &[u8],
    drop_expired: bool,
) -> Result<LoadSummary, Error> {
    let settings = engine.settings();
    let opts = LoadOptions {
        limits: &settings.encoding,
        databases: engine.db_count(),
        verify_checksum: settings.rdb_checksum,
        drop_expired_before_ms: drop_expired.then(|| engine.now_ms()),
    };
    let inserters = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    let summary = load_parallel(engine, bytes, &opts, inserters).map_err(|e| Error::Corrupt {
        file: path.to_path_buf(),
        offset: e.offset,
        what: e.what,
    })?;
    engine
        .persist
        .note_load(summary.keys_loaded, summary.keys_expired);
    Ok(summary)
}

fn load_parallel<'a>(
    engine: &Engine,
    bytes: &'a [u8],
    opts: &LoadOptions<'_>,
    inserters: usize,
) -> Result<LoadSummary, FormatError> {
    std::thread::scope(|scope| {
        let (senders, handles): (Vec<SyncSender<Vec<Item<'a>>>>, Vec<_>) = (0..inserters)
            .map(|part| {
                let (tx, rx) = sync_channel(BATCHES_QUEUED_MAX);
                let share = Share {
                    part,
                    parts: inserters,
                };
                (tx, scope.spawn(move || insert_all(engine, share, rx)))
            })
            .unzip();
        let mut batches: Vec<Vec<Item<'a>>> = (0..inserters).map(|_| Vec::new()).collect();
        let mut hand = |owner: usize, item: Item<'a>| {
            let batch = &mut batches[owner];
            batch.push(item);
            if batch.len() >= BATCH_KEYS {
                let full = std::mem::replace(batch, Vec::with_capacity(BATCH_KEYS));
                // A closed channel: that inserter failed, and its error is reported below.
                let _ = senders[owner].send(full);
            }
        };
        let decoded = decode::load(bytes, opts, |item| {
            match item {
                // Interleaved: a file written slot by slot keeps every inserter busy.
                Item::Key(record) => {
                    let owner = SlotId::of_key(&record.key).index() % inserters;
                    hand(owner, Item::Key(record));
                }
                Item::DbSize { db, keys } => {
                    for owner in 0..inserters {
                        hand(owner, Item::DbSize { db, keys });
                    }
                }
            }
            Ok(())
        });
        for (sender, batch) in senders.iter().zip(batches) {
            let _ = sender.send(batch);
        }
        drop(senders);
        let inserted = handles
            .into_iter()
            .try_for_each(|h| h.join().unwrap_or_else(|_| Err(panicked())));
        let summary = decoded?;
        inserted.map(|()| summary)
    })
}

fn panicked() -> FormatError {
    FormatError {
        offset: 0,
        what: "a loader thread panicked".into(),
    }
}

/// The slots one inserter owns: those whose index is `part` modulo `parts`.
#[derive(Clone, Copy)]
struct Share {
    part: usize,
    parts: usize,
}

/// Inserts every batch it receives; stops at the first duplicate key.
fn insert_all(
    engine: &Engine,
    share: Share,
    batches: Receiver<Vec<Item<'_>>>,
) -> Result<(), FormatError> {
    for batch in batches {
        for item in batch {
            match item {
                Item::Key(record) => insert(engine, record)?,
                Item::DbSize { db, keys } => presize(engine, share, db, keys),
            }
        }
    }
    Ok(())
}

/// Sizes the owned slots of `db` for about `keys` keys over the whole database: the mean
/// per slot plus three standard deviations (keys fall into slots as a Poisson process), so
/// nearly every slot is filled without a resize.
fn presize(engine: &Engine, share: Share, db: usize, keys: u64) {
    let Some(slots) = engine.keyspace.open(db) else {
        return;
    };
    let mean = keys as f64 / slots.len() as f64;
    let per_slot = (mean + 3.0 * mean.sqrt()).ceil() as usize;
    for slot in slots.iter().skip(share.part).step_by(share.parts) {
        slot.data.write().reserve_empty(per_slot);
    }
}

fn insert(engine: &Engine, record: Record<'_>) -> Result<(), FormatError> {
    let error = |what: String| FormatError {
        offset: record.offset as u64,
        what,
    };
    let Some(slots) = engine.keyspace.open(record.db) else {
        return Err(error(format!("database {} is out of range", record.db)));
    };
    let slot = &slots[SlotId::of_key(&record.key).index()];
    let mut data = slot.data.write();
    if data
        .insert(&record.key, record.value, record.expire_at_ms)
        .is_some()
    {
        return Err(error(format!(
            "duplicated key '{}' in database {}",
            String::from_utf8_lossy(&record.key),
            record.db
        )));
    }
    slot.publish(&data);
    Ok(())
}
