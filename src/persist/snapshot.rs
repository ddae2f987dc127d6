//! Point-in-time snapshots without `fork()` and without a second copy of the dataset.
//!
//! A snapshot starts by locking every slot for an instant (ascending order, as any
//! whole-keyspace command does): no write is in flight, the write log's end is the snapshot's
//! offset, and every slot that holds keys is marked *pending*. From then on two parties
//! serialize pending slots, each exactly once:
//!
//! - the sweepers (one or more threads) walk the slots and serialize each pending one under
//!   its read lock;
//! - a writer that takes a pending slot's write lock serializes it first, before it changes
//!   anything (copy-before-write at slot granularity: see [`before_write`]).
//!
//! Both hand their bytes to one file writer through a bounded channel, so what a snapshot
//! holds in memory beyond the dataset is that channel and one slot being serialized. Each
//! chunk starts with its database selector, which lets chunks reach the file in any order.
//! The writer never takes a lock, so a writer thread waiting for room in the channel while
//! it holds a slot lock always gets it.

use super::rdb::{encode, CRC64};
use crate::engine::Engine;
use crate::keyspace::{Slot, SlotData};
use crate::log::Offset;
use parking_lot::Mutex;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A sweeper hands over its bytes once it gathered this many.
const CHUNK_BYTES: usize = 256 * 1024;
/// Chunks waiting for the file writer: the bound on a snapshot's extra memory (with the
/// chunk being filled by each party).
const CHUNKS_QUEUED_MAX: usize = 16;

/// What the writers that meet a pending slot need: where its bytes go.
pub(crate) struct Capture {
    chunks: SyncSender<Vec<u8>>,
    encoding: Encoding,
    /// Bytes serialized by writers before their write (INFO's `rdb_last_cow_size`).
    copied_bytes: AtomicU64,
}

/// The snapshot in progress, if any, that writers capture slots for.
#[derive(Default)]
pub(crate) struct Captures {
    current: parking_lot::RwLock<Option<Arc<Capture>>>,
    /// Held for the whole of a snapshot: one at a time.
    running: Mutex<()>,
}

impl Captures {
    /// Whether a snapshot is being taken.
    pub(crate) fn is_running(&self) -> bool {
        self.running.is_locked()
    }
}

/// What a finished snapshot wrote.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotStats {
    /// The write-log offset the snapshot equals.
    pub offset: Offset,
    /// Commands the write log held then (what the next save counts changes from).
    pub commands: u64,
    pub keys: u64,
    pub bytes: u64,
    /// Bytes serialized by writers before they changed a slot.
    pub copied_bytes: u64,
    pub elapsed: Duration,
}

/// Serializes `cell` for the current snapshot if it is still pending. Call it with the slot's
/// write lock held, before changing `data`.
#[inline]
pub(crate) fn before_write(engine: &Engine, db: usize, cell: &Slot, data: &SlotData) {
    if cell.capture_pending() {
        capture_for_write(engine, db, cell, data);
    }
}

#[cold]
fn capture_for_write(engine: &Engine, db: usize, cell: &Slot, data: &SlotData) {
    let current = engine.persist.captures.current.read().clone();
    if let Some(capture) = current {
        let mut chunk = Vec::new();
        encode_slot(&mut chunk, db, data, capture.encoding);
        capture
            .copied_bytes
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        // A closed channel means the file writer failed: the snapshot is lost anyway.
        let _ = capture.chunks.send(chunk);
    }
    cell.set_capture_pending(false);
}

/// How a slot's keys are written.
#[derive(Clone, Copy)]
enum Encoding {
    Rdb { compress: bool },
    Commands,
}

fn encode_slot(out: &mut Vec<u8>, db: usize, data: &SlotData, encoding: Encoding) -> u64 {
    let compress = match encoding {
        Encoding::Rdb { compress } => compress,
        Encoding::Commands => return super::commands::encode_slot(out, db, data),
    };
    encode::select_db(out, db);
    let mut keys = 0;
    for entry in data.entries() {
        encode::entry(out, entry, compress);
        keys += 1;
    }
    keys
}

/// How a snapshot is taken.
pub(crate) struct Target {
    /// Threads serializing slots (more finish sooner; one leaves the node its cores).
    pub sweepers: usize,
    pub format: Format,
}

/// What a snapshot file is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `dump.rdb`.
    Rdb,
    /// An AOF base in RDB (its `aof-base` AUX field says so).
    AofBaseRdb,
    /// An AOF base as RESP commands (`aof-use-rdb-preamble no`).
    AofBaseCommands,
}

/// Writes a point-in-time snapshot of the keyspace to `path` (through a temporary file in
/// the same directory, renamed over it once it is on disk). `on_begin` learns the offset the
/// snapshot equals while no write can happen yet.
pub(crate) fn save(
    engine: &Engine,
    path: &Path,
    target: Target,
    on_begin: impl FnOnce(Offset),
) -> io::Result<SnapshotStats> {
    let _one_at_a_time = engine.persist.captures.running.lock();
    let temp = temp_path(path);
    let saved = File::create(&temp)
        .and_then(|file| write_snapshot(engine, &target, file, on_begin))
        .and_then(|(stats, file)| {
            file.sync_all()?;
            std::fs::rename(&temp, path)?;
            sync_dir(path)?;
            Ok(stats)
        });
    if saved.is_err() {
        // Whatever failed, no half-written temporary file stays behind.
        let _ = std::fs::remove_file(&temp);
    }
    saved
}

/// [`save`] to `out` instead of a file: a replica's full resynchronization.
pub(crate) fn stream<W: Write + Send + 'static>(
    engine: &Engine,
    target: Target,
    out: W,
    on_begin: impl FnOnce(Offset),
) -> io::Result<SnapshotStats> {
    let _one_at_a_time = engine.persist.captures.running.lock();
    write_snapshot(engine, &target, out, on_begin).map(|(stats, _)| stats)
}

/// The snapshot, written to `out`; gives `out` back for the caller to finish.
fn write_snapshot<W: Write + Send + 'static>(
    engine: &Engine,
    target: &Target,
    out: W,
    on_begin: impl FnOnce(Offset),
) -> io::Result<(SnapshotStats, W)> {
    let started = Instant::now();
    let settings = engine.settings();
    let (chunks, received) = sync_channel(CHUNKS_QUEUED_MAX);
    let capture = Arc::new(Capture {
        chunks,
        encoding: match target.format {
            Format::AofBaseCommands => Encoding::Commands,
            Format::Rdb | Format::AofBaseRdb => Encoding::Rdb {
                compress: settings.rdb_compression,
            },
        },
        copied_bytes: AtomicU64::new(0),
    });
    let checksum = settings.rdb_checksum;
    let rdb = target.format != Format::AofBaseCommands;
    let header = if rdb {
        header(engine, target.format == Format::AofBaseRdb)
    } else {
        Vec::new()
    };
    let writer = std::thread::Builder::new()
        .name("shoal-rdb".into())
        .spawn(move || write_out(out, header, received, rdb.then_some(checksum)))?;
    let (offset, commands) = begin(engine, &capture, on_begin);
    let keys = sweep(
        engine,
        capture.encoding,
        &capture.chunks,
        target.sweepers.max(1),
    );
    *engine.persist.captures.current.write() = None;
    let copied_bytes = capture.copied_bytes.load(Ordering::Relaxed);
    drop(capture);
    let (bytes, out) = writer
        .join()
        .map_err(|_| io::Error::other("the snapshot writer panicked"))??;
    let keys = keys?;
    let stats = SnapshotStats {
        offset,
        commands,
        keys,
        bytes,
        copied_bytes,
        elapsed: started.elapsed(),
    };
    Ok((stats, out))
}

/// A temporary name beside `path`, unique among this process's snapshots.
fn temp_path(path: &Path) -> PathBuf {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let name = format!("temp-{}-{n}.rdb", std::process::id());
    path.parent()
        .map_or_else(|| PathBuf::from(&name), |dir| dir.join(&name))
}

fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// The file's first bytes: magic and AUX fields, as Redis writes them.
fn header(engine: &Engine, aof_base: bool) -> Vec<u8> {
    let mut out = Vec::new();
    encode::magic(&mut out);
    let now_secs = engine.now_ms() / 1000;
    let used = crate::process::rss_bytes();
    encode::aux(&mut out, "redis-ver", crate::REDIS_VERSION.as_bytes());
    encode::aux(&mut out, "redis-bits", b"64");
    encode::aux(&mut out, "ctime", now_secs.to_string().as_bytes());
    encode::aux(&mut out, "used-mem", used.to_string().as_bytes());
    encode::aux(&mut out, "aof-base", if aof_base { b"1" } else { b"0" });
    out
}

/// Marks every slot that holds keys as pending, with no write in flight; returns the log
/// offset the snapshot equals and the number of commands logged before it.
fn begin(engine: &Engine, capture: &Arc<Capture>, on_begin: impl FnOnce(Offset)) -> (Offset, u64) {
    let keyspace = &engine.keyspace;
    // On a replica, the dataset and the log's end must agree: no chunk half applied.
    let _applying = engine.repl.hold_applying();
    let _gate = keyspace.gate().write();
    let mut guards = Vec::new();
    for db in 0..keyspace.db_count() {
        if let Some(slots) = keyspace.used(db) {
            guards.extend(slots.iter().map(|s| (db, s, s.data.write())));
        }
    }
    *engine.persist.captures.current.write() = Some(Arc::clone(capture));
    let mut sizes = vec![(0u64, 0u64); keyspace.db_count()];
    for (db, slot, data) in &guards {
        slot.set_capture_pending(data.len() > 0);
        sizes[*db].0 += data.len() as u64;
        sizes[*db].1 += data.volatile_len() as u64;
    }
    // Loaders size their tables from these (Redis's RESIZEDB); they precede the slots.
    let mut hints = Vec::new();
    for (db, &(keys, expiring)) in sizes.iter().enumerate().filter(|(_, s)| s.0 > 0) {
        encode::select_db(&mut hints, db);
        encode::resize_db(&mut hints, keys, expiring);
    }
    if !hints.is_empty() && matches!(capture.encoding, Encoding::Rdb { .. }) {
        let _ = capture.chunks.try_send(hints);
    }
    // Whatever reads the log from here (a new AOF file) starts with the database.
    engine.log.force_select();
    let offset = engine.log.end();
    on_begin(offset);
    (offset, engine.log.commands())
}

/// Serializes every slot still pending, spread over `threads`; returns the keys written. A
/// sweeper that panicked left slots out: the snapshot is an error, not a short file.
fn sweep(
    engine: &Engine,
    encoding: Encoding,
    chunks: &SyncSender<Vec<u8>>,
    threads: usize,
) -> io::Result<u64> {
    let keyspace = &engine.keyspace;
    let slots: Vec<(usize, &Slot)> = (0..keyspace.db_count())
        .filter_map(|db| keyspace.used(db).map(|slots| (db, slots)))
        .flat_map(|(db, slots)| slots.iter().map(move |s| (db, s)))
        .collect();
    let share = slots.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = slots
            .chunks(share)
            .map(|part| scope.spawn(move || sweep_part(part, encoding, chunks)))
            .collect();
        workers.into_iter().try_fold(0, |keys, w| {
            let part = w
                .join()
                .map_err(|_| io::Error::other("a snapshot sweeper panicked"))?;
            Ok(keys + part)
        })
    })
}

fn sweep_part(slots: &[(usize, &Slot)], encoding: Encoding, chunks: &SyncSender<Vec<u8>>) -> u64 {
    let (mut chunk, mut keys) = (Vec::with_capacity(CHUNK_BYTES), 0);
    for &(db, slot) in slots {
        if !slot.capture_pending() {
            continue;
        }
        let data = slot.data.read();
        if !slot.capture_pending() {
            continue;
        }
        keys += encode_slot(&mut chunk, db, &data, encoding);
        slot.set_capture_pending(false);
        drop(data);
        if chunk.len() >= CHUNK_BYTES {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_BYTES));
            if chunks.send(full).is_err() {
                return keys;
            }
        }
    }
    if !chunk.is_empty() {
        let _ = chunks.send(chunk);
    }
    keys
}

/// The file writer: header, every chunk as it comes, the end marker and the checksum (RDB
/// files: `rdb_checksum` says whether it is computed); flushed, and `out` given back. After a failed write it goes on receiving (and dropping) chunks until every sender
/// is gone, so that no thread waits on a full channel forever.
fn write_out<W: Write>(
    out: W,
    header: Vec<u8>,
    chunks: Receiver<Vec<u8>>,
    rdb_checksum: Option<bool>,
) -> io::Result<(u64, W)> {
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let mut crc = CRC64.digest();
    let mut bytes = 0u64;
    let mut write = |out: &mut BufWriter<W>, data: &[u8]| -> io::Result<()> {
        crc.update(data);
        bytes += data.len() as u64;
        out.write_all(data)
    };
    let mut result = write(&mut out, &header);
    for chunk in chunks.iter() {
        if result.is_ok() {
            result = write(&mut out, &chunk);
        }
    }
    result?;
    if let Some(checksum) = rdb_checksum {
        let mut tail = Vec::with_capacity(9);
        encode::eof(&mut tail);
        write(&mut out, &tail)?;
        let sum = if checksum { crc.finalize() } else { 0 };
        out.write_all(&sum.to_le_bytes())?;
        bytes += 8;
    }
    let out = out.into_inner().map_err(io::IntoInnerError::into_error)?;
    Ok((bytes, out))
}
