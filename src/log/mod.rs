//! The write log: one ordered stream of every effective write, with two kinds of consumer.
//!
//! Every write command appends its deterministic form (RESP commands, `SELECT` inserted when the
//! database changes) while it still holds its slot locks, so the order in the log is the order
//! in which writes to any one slot were applied. An [`Offset`] is a byte position in that
//! stream, as Redis's replication offset is, so "what is on disk" and "what a replica has" are
//! both offsets.
//!
//! Memory is bounded three ways ([`Keep`]). History for late readers (the replication backlog)
//! is kept up to `retain_bytes`. A reader that keeps everything (the AOF writer) pins what it
//! has not read yet; if it falls `pinned_bytes_max` behind, writers wait for it: back-pressure
//! instead of an unbounded buffer. A reader that keeps up to a bound (a replica's sender, bound
//! by `client-output-buffer-limit replica`, as Redis's replica output buffer is) holds history
//! while it lags by less; once it lags by more, or for a plain reader once the history it needs
//! is gone, it gets [`Lagged`] and its replica must resynchronize from a snapshot.

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod wake;
use wake::Wake;
pub use wake::{
    after_park, before_park, defer_wakes_on_this_thread, flush_deferred_wakes,
    flush_deferred_wakes_when_due, flush_stale_deferred_wakes,
};

/// A byte position in the write log: the number of bytes appended before it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Offset(pub u64);

/// The bytes a reader asked for are no longer retained.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("write log position {wanted} is older than the oldest retained byte {oldest}")]
pub struct Lagged {
    /// The position the reader asked for.
    pub wanted: u64,
    /// The oldest position still retained.
    pub oldest: u64,
}

/// Rounds of spinning (with exponential backoff) before an appender parks.
const APPEND_SPINS_MAX: u32 = 16;

/// Sealed chunks are this big; a reader gets zero-copy slices of them.
const CHUNK_BYTES: usize = 64 * 1024;

/// Bounds of the log's memory.
#[derive(Copy, Clone, Debug)]
pub struct LogLimits {
    /// History kept for readers that attach late or reconnect (Redis's `repl-backlog-size`).
    pub retain_bytes: usize,
    /// How far a reader that keeps everything may lag before writers wait for it.
    pub pinned_bytes_max: usize,
}

/// What a reader's unread bytes keep in the log.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Nothing beyond the retained history.
    Retained,
    /// Everything while it lags by less than this many bytes (`u64::MAX`: no bound).
    Within(u64),
    /// Everything: writers wait when it lags by `pinned_bytes_max`.
    All,
}

struct ReaderSlot {
    position: u64,
    keep: Keep,
}

struct Inner {
    sealed: VecDeque<Bytes>,
    /// Offset of the first byte of `sealed[0]` (or of `tail` when nothing is sealed).
    start: u64,
    tail: Vec<u8>,
    end: u64,
    /// Commands appended since the log was created (INFO's changes since the last save).
    commands: u64,
    /// Database of the last appended command; `None` forces a `SELECT` before the next one.
    last_db: Option<usize>,
    readers: Vec<Option<ReaderSlot>>,
    readers_waiting: usize,
    writers_waiting: usize,
    closed: bool,
}

impl Inner {
    fn tail_start(&self) -> u64 {
        self.end - self.tail.len() as u64
    }

    /// The oldest position a reader that keeps everything has not read.
    fn min_reliable(&self) -> Option<u64> {
        self.readers
            .iter()
            .flatten()
            .filter(|r| r.keep == Keep::All)
            .map(|r| r.position)
            .min()
    }

    /// The oldest position a reader still keeps (see [`Keep`]).
    fn min_kept(&self) -> Option<u64> {
        let keeps = |r: &&ReaderSlot| match r.keep {
            Keep::Retained => false,
            Keep::Within(lag_bytes_max) => self.end - r.position < lag_bytes_max,
            Keep::All => true,
        };
        self.readers
            .iter()
            .flatten()
            .filter(keeps)
            .map(|r| r.position)
            .min()
    }

    fn seal_tail(&mut self) {
        let chunk = std::mem::replace(&mut self.tail, Vec::with_capacity(CHUNK_BYTES));
        self.sealed.push_back(Bytes::from(chunk));
    }

    /// Drops sealed chunks beyond the retained history that no reader keeps.
    fn trim(&mut self, limits: &LogLimits) {
        self.trim_to(limits.retain_bytes as u64);
    }

    /// Drops sealed chunks while at least `retain_bytes` stay and no reader keeps them.
    fn trim_to(&mut self, retain_bytes: u64) {
        let pinned = self.min_kept().unwrap_or(u64::MAX);
        while let Some(front) = self.sealed.front() {
            let front_end = self.start + front.len() as u64;
            let kept_without = self.end - front_end;
            if kept_without < retain_bytes || front_end > pinned {
                break;
            }
            self.start = front_end;
            self.sealed.pop_front();
        }
    }

    /// Copies out up to `max_bytes` starting at `pos`.
    fn read_at(&self, pos: u64, max_bytes: usize) -> Bytes {
        let tail_start = self.tail_start();
        if pos >= tail_start {
            let from = (pos - tail_start) as usize;
            let to = self.tail.len().min(from + max_bytes);
            return Bytes::copy_from_slice(&self.tail[from..to]);
        }
        let mut chunk_start = self.start;
        for chunk in &self.sealed {
            let chunk_end = chunk_start + chunk.len() as u64;
            if pos < chunk_end {
                let from = (pos - chunk_start) as usize;
                let to = chunk.len().min(from + max_bytes);
                return chunk.slice(from..to);
            }
            chunk_start = chunk_end;
        }
        Bytes::new()
    }
}

/// The write log (see the module documentation).
pub struct WriteLog {
    inner: Mutex<Inner>,
    limits: LogLimits,
    data_ready: Condvar,
    space_ready: Condvar,
    /// How the log wakes its async readers (replicas' senders).
    wake: Arc<Wake>,
}

/// One command's worth of log content: RESP commands, each tagged with its database.
#[derive(Default)]
pub struct Batch {
    bytes: Vec<u8>,
    /// (database, end of its bytes) per command.
    commands: Vec<(usize, usize)>,
    /// Commands are counted, not encoded: see [`Batch::unlogged`].
    unlogged: bool,
}

impl Batch {
    /// A batch for a writer whose commands are logged by someone else: a replica's applier,
    /// whose log takes the primary's bytes verbatim so that offsets match. Encoding them again
    /// would be work thrown away on every replicated write.
    pub fn unlogged() -> Batch {
        Batch {
            unlogged: true,
            ..Batch::default()
        }
    }

    /// Whether the batch is for the log (see [`Batch::unlogged`]).
    pub fn is_logged(&self) -> bool {
        !self.unlogged
    }

    /// Adds one command, to run in database `db`.
    pub fn push(&mut self, db: usize, argv: &[&[u8]]) {
        if !self.unlogged {
            crate::resp::encode_command(argv, &mut self.bytes);
        }
        self.commands.push((db, self.bytes.len()));
    }

    /// Whether the batch holds no command.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// Number of commands.
    pub fn len(&self) -> usize {
        self.commands.len()
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.commands.clear();
    }
}

const MULTI: &[u8] = b"*1\r\n$5\r\nMULTI\r\n";
const EXEC: &[u8] = b"*1\r\n$4\r\nEXEC\r\n";
/// Bound on what an append adds around each command of a batch (a SELECT of a database up to
/// 16383 is 27 bytes) and, once more, around the batch (MULTI and EXEC, 29 bytes).
const FRAMING_BYTES_MAX: usize = 32;

impl WriteLog {
    /// An empty log.
    pub fn new(limits: LogLimits) -> WriteLog {
        WriteLog {
            inner: Mutex::new(Inner {
                sealed: VecDeque::new(),
                start: 0,
                tail: Vec::with_capacity(CHUNK_BYTES),
                end: 0,
                commands: 0,
                last_db: None,
                readers: Vec::new(),
                readers_waiting: 0,
                writers_waiting: 0,
                closed: false,
            }),
            limits,
            data_ready: Condvar::new(),
            space_ready: Condvar::new(),
            wake: Arc::default(),
        }
    }

    /// Appends bytes that are already a log (a replica's copy of its primary's stream, whole
    /// commands only), so that the replica's offsets are its primary's. `db_after` is the
    /// database the bytes leave selected.
    pub fn append_raw(&self, bytes: &[u8], commands: u64, db_after: usize) -> Offset {
        let mut inner = self.lock_for_append();
        if bytes.is_empty() {
            return Offset(inner.end);
        }
        if inner.tail.len() + bytes.len() > inner.tail.capacity() && !inner.tail.is_empty() {
            inner.seal_tail();
            inner.trim(&self.limits);
        }
        inner.tail.extend_from_slice(bytes);
        inner.end += bytes.len() as u64;
        inner.commands += commands;
        inner.last_db = Some(db_after);
        if inner.readers_waiting > 0 {
            self.data_ready.notify_all();
        }
        let end = Offset(inner.end);
        drop(inner);
        self.wake.on_append(bytes.len());
        end
    }

    /// Empties the log and makes `offset` its end: a replica after a full resync continues
    /// from its primary's offset. Readers positioned elsewhere get [`Lagged`].
    pub fn reset(&self, offset: Offset) {
        let mut inner = self.inner.lock();
        inner.sealed.clear();
        inner.tail.clear();
        inner.start = offset.0;
        inner.end = offset.0;
        inner.last_db = None;
        for reader in inner.readers.iter_mut().flatten() {
            // Nothing a reader read before belongs to this history any more.
            reader.position = 0;
        }
        self.data_ready.notify_all();
        self.space_ready.notify_all();
    }

    /// Commands appended so far.
    pub fn commands(&self) -> u64 {
        self.inner.lock().commands
    }

    /// The offset after the last appended byte.
    pub fn end(&self) -> Offset {
        Offset(self.inner.lock().end)
    }

    /// The oldest offset still readable.
    pub fn start(&self) -> Offset {
        Offset(self.inner.lock().start)
    }

    /// Appends a batch and returns the offset after it. An `atomic` batch of several commands is
    /// wrapped in MULTI/EXEC so that a consumer applies it all or nothing (Redis does this for
    /// everything one command propagates; expiry sweeps send independent DELs).
    pub fn append(&self, batch: &Batch, atomic: bool) -> Offset {
        let mut inner = self.lock_for_append();
        if batch.is_empty() {
            return Offset(inner.end);
        }
        while let Some(pinned) = inner.min_reliable() {
            if inner.end - pinned < self.limits.pinned_bytes_max as u64 || inner.closed {
                break;
            }
            inner.writers_waiting += 1;
            self.space_ready.wait(&mut inner);
            inner.writers_waiting -= 1;
        }
        // Seal a full chunk before writing, not after: writing past the buffer's capacity
        // would copy all of it, once per chunk.
        let needed = batch.bytes.len() + FRAMING_BYTES_MAX * (batch.len() + 1);
        if inner.tail.len() + needed > inner.tail.capacity() && !inner.tail.is_empty() {
            inner.seal_tail();
            inner.trim(&self.limits);
        }
        let before = inner.tail.len();
        let wrap = atomic && batch.len() > 1;
        if wrap {
            // A MULTI inside a database other than the first command's must come after the
            // SELECT, so emit the first SELECT before it.
            emit_select(&mut inner, batch.commands[0].0);
            inner.tail.extend_from_slice(MULTI);
        }
        let mut from = 0;
        for &(db, to) in &batch.commands {
            emit_select(&mut inner, db);
            inner.tail.extend_from_slice(&batch.bytes[from..to]);
            from = to;
        }
        if wrap {
            inner.tail.extend_from_slice(EXEC);
        }
        let added = inner.tail.len() - before;
        inner.end += added as u64;
        inner.commands += batch.len() as u64;
        if inner.readers_waiting > 0 {
            self.data_ready.notify_all();
        }
        let end = Offset(inner.end);
        drop(inner);
        self.wake.on_append(added);
        end
    }

    /// For an async reader that found nothing: a listener the next append fires. Read once
    /// more before awaiting it (an append may have come in between).
    pub fn listen_appended(&self) -> event_listener::EventListener {
        self.wake.listen()
    }

    /// Takes the log lock for an append. The critical section is a few dozen nanoseconds, so
    /// a writer that finds it taken spins briefly instead of parking: a futex round trip costs
    /// far more than the wait.
    fn lock_for_append(&self) -> parking_lot::MutexGuard<'_, Inner> {
        for spins in 0..APPEND_SPINS_MAX {
            if let Some(guard) = self.inner.try_lock() {
                return guard;
            }
            for _ in 0..(1u32 << spins.min(6)) {
                std::hint::spin_loop();
            }
        }
        self.inner.lock()
    }

    /// Registers a reader positioned at `from`, keeping what `keep` says.
    pub fn reader(
        self: &std::sync::Arc<Self>,
        from: Offset,
        keep: Keep,
    ) -> Result<LogReader, Lagged> {
        let mut inner = self.inner.lock();
        if from.0 < inner.start || from.0 > inner.end {
            return Err(Lagged {
                wanted: from.0,
                oldest: inner.start,
            });
        }
        let slot = ReaderSlot {
            position: from.0,
            keep,
        };
        let id = match inner.readers.iter().position(Option::is_none) {
            Some(i) => {
                inner.readers[i] = Some(slot);
                i
            }
            None => {
                inner.readers.push(Some(slot));
                inner.readers.len() - 1
            }
        };
        Ok(LogReader {
            log: self.clone(),
            id,
        })
    }

    /// Makes the next appended command start with a `SELECT`: a consumer that starts reading
    /// here (a new AOF file) learns the database from the stream itself.
    pub fn force_select(&self) {
        self.inner.lock().last_db = None;
    }

    /// Wakes every waiting reader and writer for good (node shutdown).
    pub fn close(&self) {
        self.inner.lock().closed = true;
        self.data_ready.notify_all();
        self.space_ready.notify_all();
        self.wake.close();
    }

    /// Frees the retained history (`repl-backlog-ttl` passed without replicas): only what a
    /// reader keeps, and the chunk being filled, stay.
    pub fn discard_history(&self) {
        self.inner.lock().trim_to(0);
    }

    /// The database the log's last command ran in (`None`: the next one says it).
    pub fn last_db(&self) -> Option<usize> {
        self.inner.lock().last_db
    }

    /// Whether the log is closed (the node is shutting down).
    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }

    /// Bytes held in memory by the log.
    pub fn memory_bytes(&self) -> usize {
        let inner = self.inner.lock();
        inner.sealed.iter().map(Bytes::len).sum::<usize>() + inner.tail.capacity()
    }
}

fn emit_select(inner: &mut Inner, db: usize) {
    if inner.last_db != Some(db) {
        let db_text = itoa::Buffer::new().format(db).to_owned();
        crate::resp::encode_command(&[b"SELECT", db_text.as_bytes()], &mut inner.tail);
        inner.last_db = Some(db);
    }
}

/// A consumer's cursor into the log; dropping it unregisters it.
pub struct LogReader {
    log: std::sync::Arc<WriteLog>,
    id: usize,
}

impl LogReader {
    /// The position of the next byte this reader will read.
    pub fn position(&self) -> Offset {
        let inner = self.log.inner.lock();
        Offset(inner.readers[self.id].as_ref().map_or(0, |r| r.position))
    }

    /// How far behind the end of the log this reader is.
    pub fn lag_bytes(&self) -> u64 {
        let inner = self.log.inner.lock();
        inner.end
            - inner.readers[self.id]
                .as_ref()
                .map_or(inner.end, |r| r.position)
    }

    /// Returns up to `max_bytes` from the reader's position and advances past them. Waits up to
    /// `timeout` for data when there is none; an empty result means the wait timed out or the
    /// log closed.
    pub fn read(&mut self, max_bytes: usize, timeout: Duration) -> Result<Bytes, Lagged> {
        let deadline = Instant::now() + timeout;
        let log = &self.log;
        let mut inner = log.inner.lock();
        loop {
            // Registered in `reader` and only removed on drop.
            let pos = inner.readers[self.id].as_ref().map_or(0, |r| r.position);
            if pos < inner.start {
                return Err(Lagged {
                    wanted: pos,
                    oldest: inner.start,
                });
            }
            if pos < inner.end {
                let data = inner.read_at(pos, max_bytes);
                if let Some(r) = inner.readers[self.id].as_mut() {
                    r.position += data.len() as u64;
                }
                if inner.writers_waiting > 0 {
                    log.space_ready.notify_all();
                }
                return Ok(data);
            }
            if inner.closed {
                return Ok(Bytes::new());
            }
            inner.readers_waiting += 1;
            let timed_out = log.data_ready.wait_until(&mut inner, deadline).timed_out();
            inner.readers_waiting -= 1;
            if timed_out {
                return Ok(Bytes::new());
            }
        }
    }
}

impl Drop for LogReader {
    fn drop(&mut self) {
        let mut inner = self.log.inner.lock();
        inner.readers[self.id] = None;
        if inner.writers_waiting > 0 {
            self.log.space_ready.notify_all();
        }
        inner.trim(&self.log.limits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    pub(super) fn log(retain: usize, pinned: usize) -> Arc<WriteLog> {
        Arc::new(WriteLog::new(LogLimits {
            retain_bytes: retain,
            pinned_bytes_max: pinned,
        }))
    }

    pub(super) fn set(db: usize, key: &str) -> Batch {
        let mut b = Batch::default();
        b.push(db, &[b"SET", key.as_bytes(), b"v"]);
        b
    }

    fn read_all(r: &mut LogReader) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let chunk = r.read(1 << 20, Duration::ZERO).unwrap();
            if chunk.is_empty() {
                return out;
            }
            out.extend_from_slice(&chunk);
        }
    }

    #[test]
    fn offsets_increase_and_select_is_inserted() {
        let log = log(1 << 20, 1 << 20);
        let mut r = log.reader(Offset(0), Keep::Retained).unwrap();
        let a = log.append(&set(0, "a"), true);
        let b = log.append(&set(0, "b"), true);
        let c = log.append(&set(3, "c"), true);
        assert!(a < b && b < c);
        let text = String::from_utf8(read_all(&mut r)).unwrap();
        assert_eq!(text.matches("SELECT").count(), 2);
        assert!(text.find("$1\r\n3").unwrap() < text.find("$1\r\nc").unwrap());
        assert_eq!(r.position(), c);
    }

    #[test]
    fn multi_command_batches_are_wrapped() {
        let log = log(1 << 20, 1 << 20);
        let mut r = log.reader(Offset(0), Keep::Retained).unwrap();
        let mut batch = set(0, "a");
        batch.push(0, &[b"DEL", b"b"]);
        log.append(&batch, true);
        let text = String::from_utf8(read_all(&mut r)).unwrap();
        assert!(text.starts_with("*2\r\n$6\r\nSELECT"));
        assert!(text.contains("MULTI") && text.ends_with("*1\r\n$4\r\nEXEC\r\n"));
    }

    #[test]
    fn plain_reader_lags_and_history_is_bounded() {
        let log = log(CHUNK_BYTES, 1 << 30);
        let mut r = log.reader(Offset(0), Keep::Retained).unwrap();
        for i in 0..20_000 {
            log.append(&set(0, &format!("key{i}")), true);
        }
        assert!(log.memory_bytes() < 4 * CHUNK_BYTES);
        assert!(matches!(r.read(100, Duration::ZERO), Err(Lagged { .. })));
        assert!(log.reader(Offset(0), Keep::Retained).is_err());
    }

    #[test]
    fn a_bounded_reader_keeps_history_while_it_lags_by_less_than_its_bound() {
        let log = log(CHUNK_BYTES, 1 << 30);
        let bound = 8 * CHUNK_BYTES as u64;
        let mut kept = log.reader(Offset(0), Keep::Within(bound)).unwrap();
        let mut i = 0;
        while log.end().0 < bound / 2 {
            log.append(&set(0, &format!("key{i}")), true);
            i += 1;
        }
        // Far more than the retained history (a chunk) stays.
        assert_eq!(log.start(), Offset(0));
        assert_eq!(kept.lag_bytes(), log.end().0);
        assert_eq!(
            read_all(&mut kept).len() as u64,
            log.end().0,
            "history was lost"
        );
        // Lagging past the bound, it keeps nothing more than a plain reader.
        while log.end().0 < 3 * bound {
            log.append(&set(0, &format!("key{i}")), true);
            i += 1;
        }
        assert!(log.memory_bytes() < 4 * CHUNK_BYTES);
        assert!(matches!(kept.read(100, Duration::ZERO), Err(Lagged { .. })));
    }

    #[test]
    fn reliable_reader_applies_back_pressure() {
        let log = log(0, 2 * CHUNK_BYTES);
        let mut r = log.reader(Offset(0), Keep::All).unwrap();
        let writer = {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..50_000 {
                    log.append(&set(0, &format!("key{i}")), true);
                }
                log.end()
            })
        };
        let mut got = 0u64;
        let mut max_memory = 0;
        loop {
            let chunk = r.read(1 << 16, Duration::from_millis(200)).unwrap();
            max_memory = max_memory.max(log.memory_bytes());
            got += chunk.len() as u64;
            if chunk.is_empty() && writer.is_finished() && r.position() == log.end() {
                break;
            }
        }
        let end = writer.join().unwrap();
        assert_eq!(got, end.0);
        assert!(max_memory < 6 * CHUNK_BYTES, "log held {max_memory} bytes");
    }
}
