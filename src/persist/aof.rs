//! The append-only file in Redis 7's multi-part layout: `appenddirname/` holds a base (an RDB
//! snapshot), incr files (the write log's RESP commands from the base's offset on), and a
//! manifest naming them in order, replaced atomically.
//!
//! One writer thread is a reliable reader of the write log (writers wait for it rather than
//! lose data) and appends what it reads to the current incr file, fsyncing by `appendfsync`.
//! With `always`, adapters release a client's replies only once the log offset of its last
//! write is durable: one fsync covers every write that arrived meanwhile (group commit).
//!
//! A rewrite (BGREWRITEAOF) adds a new incr file to the manifest, takes a snapshot, and has the
//! writer switch files exactly at the snapshot's offset; once the snapshot is on disk it
//! becomes the base and the older files go. Every manifest written in between describes a
//! complete history, so a crash at any point loses nothing that was durable.

use super::snapshot;
use super::storage::{Disk, Storage, StorageFile};
use crate::config::Fsync;
use crate::engine::{Client, Engine};
use crate::error::Error;
use crate::log::{LogReader, Offset};
use crate::resp::Protocol;
use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes the writer takes from the log at a time.
const READ_BYTES_MAX: usize = 1 << 20;
/// How long the writer waits for new writes before it looks at its fsync deadline again.
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// `everysec`: the longest a write waits for its fsync.
const EVERYSEC: Duration = Duration::from_secs(1);
/// Without `always`, the writer looks for new writes this often instead of being woken by
/// each one: a wake-up per write costs the writing thread a system call, and one write per
/// pause batches like Redis's once-per-event-loop AOF write.
const POLL_PAUSE: Duration = Duration::from_millis(1);
/// After a failed write, the writer retries this often.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// A failed AOF start is retried after 2, 4, ... seconds, at most this long.
const REBUILD_DELAY_MAX_MS: u64 = 60_000;

/// The AOF's shared state.
#[derive(Default)]
pub(crate) struct Aof {
    /// `appendonly yes`, from the moment it is set (the writer starts once a base is written).
    configured: AtomicBool,
    enabled: AtomicBool,
    /// The policy is `always`: replies wait for [`Aof::durable`].
    always: AtomicBool,
    /// Everything in the log before this offset is fsynced.
    durable: AtomicU64,
    /// A waiter (WAITAOF, [`crate::Node::wait_durable`]) needs the log fsynced up to here:
    /// the writer fsyncs for it without waiting for its policy's schedule.
    fsync_wanted: AtomicU64,
    /// A write or fsync failed and has not succeeded since (INFO's `aof_last_write_status`).
    failing: AtomicBool,
    /// The files lack part of the history since their base: an fsync failed (the kernel may
    /// have dropped the unsynced pages, so a later fsync that succeeds proves nothing) or the
    /// writer lost its place in the log. Writes stay refused until [`rebuild`] writes a new
    /// base from memory.
    broken: AtomicBool,
    /// When the next [`rebuild`] may start (ms since the Unix epoch), and how many failed in
    /// a row: a failing disk is not asked to take a whole snapshot every tick.
    rebuild_after_ms: AtomicU64,
    rebuild_failures: AtomicU64,
    /// Held while the AOF is switched on or off, so that `CONFIG SET appendonly`, a replica's
    /// load and a rebuild never leave two writers or an abandoned one.
    switching: Mutex<()>,
    /// Why, for the MISCONF error.
    failure: Mutex<String>,
    synced: event_listener::Event,
    /// Bytes in the base and incr files (INFO's `aof_current_size`).
    current_bytes: AtomicU64,
    /// Bytes at the last rewrite (the growth `auto-aof-rewrite-percentage` measures from).
    base_bytes: AtomicU64,
    files: Mutex<Option<Files>>,
    /// Where the writer switches to a new incr file (set by a rewrite).
    rotation: Mutex<Option<Rotation>>,
    writer: Mutex<Option<(JoinHandle<()>, Arc<AtomicBool>)>>,
    rewriting: AtomicBool,
    rewrites: AtomicU64,
    last_rewrite_ok: AtomicBool,
}

/// The folder and what its manifest says.
struct Files {
    dir: PathBuf,
    name: String,
    manifest: Manifest,
}

struct Rotation {
    at: Offset,
    file: Box<dyn StorageFile>,
}

/// What INFO persistence reports about the AOF.
pub(crate) struct AofInfo {
    pub enabled: bool,
    pub rewriting: bool,
    pub rewrites: u64,
    pub last_rewrite_ok: bool,
    pub last_write_ok: bool,
    pub current_bytes: u64,
    pub base_bytes: u64,
}

impl Aof {
    pub fn info(&self) -> AofInfo {
        AofInfo {
            enabled: self.enabled.load(Ordering::Relaxed),
            rewriting: self.rewriting.load(Ordering::Relaxed),
            rewrites: self.rewrites.load(Ordering::Relaxed),
            last_rewrite_ok: self.rewrites.load(Ordering::Relaxed) == 0
                || self.last_rewrite_ok.load(Ordering::Relaxed),
            last_write_ok: !self.failing.load(Ordering::Relaxed),
            current_bytes: self.current_bytes.load(Ordering::Relaxed),
            base_bytes: self.base_bytes.load(Ordering::Relaxed),
        }
    }

    /// Whether a reply after a write at `offset` must wait for its fsync.
    #[inline]
    pub fn must_wait(&self, offset: Offset) -> bool {
        self.always.load(Ordering::Relaxed) && self.durable.load(Ordering::Acquire) < offset.0
    }

    /// Whether the writer runs.
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Whether `appendonly` is `yes` (perhaps still writing its first base).
    pub fn is_configured(&self) -> bool {
        self.configured.load(Ordering::Relaxed)
    }

    pub fn set_configured(&self, on: bool) {
        self.configured.store(on, Ordering::Relaxed);
        self.synced.notify(usize::MAX);
    }

    /// Everything in the log before this offset is fsynced.
    pub fn durable_offset(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Whether the log up to `offset` is fsynced.
    pub fn is_durable(&self, offset: Offset) -> bool {
        self.durable.load(Ordering::Acquire) >= offset.0
    }

    /// Asks the writer to fsync up to `offset` now, whatever the policy.
    pub fn want_fsync(&self, offset: Offset) {
        self.fsync_wanted.fetch_max(offset.0, Ordering::Release);
    }

    /// A listener woken at the next fsync, failure or switch on or off.
    pub fn listen(&self) -> event_listener::EventListener {
        self.synced.listen()
    }

    /// Failing comes before off: a rebuild turns the writer off, and what it had not
    /// fsynced must not count as acknowledged meanwhile.
    fn check(&self, offset: Offset) -> Option<io::Result<()>> {
        if self.durable.load(Ordering::Acquire) >= offset.0 {
            return Some(Ok(()));
        }
        if self.failing.load(Ordering::Acquire) {
            return Some(Err(io::Error::other(self.refusal())));
        }
        (!self.enabled.load(Ordering::Relaxed)).then_some(Ok(()))
    }

    /// Waits until the log up to `offset` is fsynced; an error when the AOF cannot be written
    /// (the write is then not acknowledged).
    pub async fn wait_durable(&self, offset: Offset) -> io::Result<()> {
        loop {
            match self.done_or_listen(offset) {
                Ok(done) => return done,
                Err(listener) => listener.await,
            }
        }
    }

    /// [`Aof::wait_durable`] for a thread of the embedding application.
    pub fn wait_durable_blocking(&self, offset: Offset) -> io::Result<()> {
        use event_listener::Listener;
        loop {
            match self.done_or_listen(offset) {
                Ok(done) => return done,
                Err(listener) => listener.wait(),
            }
        }
    }

    /// The outcome of waiting for `offset` if there is one, else a listener for the next
    /// fsync (registered before the second look, so that no fsync is missed).
    fn done_or_listen(
        &self,
        offset: Offset,
    ) -> Result<io::Result<()>, event_listener::EventListener> {
        if let Some(done) = self.check(offset) {
            return Ok(done);
        }
        let listener = self.synced.listen();
        match self.check(offset) {
            Some(done) => Ok(done),
            None => Err(listener),
        }
    }

    /// Waits at most `timeout` for the log up to `offset` to be fsynced: whether it is.
    fn wait_durable_timeout(&self, offset: Offset, timeout: Duration) -> io::Result<bool> {
        use event_listener::Listener;
        let deadline = Instant::now() + timeout;
        loop {
            if !self.enabled.load(Ordering::Relaxed) {
                return Err(io::Error::other("the AOF is off (appendonly no)"));
            }
            match self.done_or_listen(offset) {
                Ok(done) => return done.map(|()| true),
                Err(listener) => {
                    if listener.wait_deadline(deadline).is_none() && Instant::now() >= deadline {
                        return Ok(false);
                    }
                }
            }
        }
    }

    fn mark_durable(&self, offset: u64) {
        self.durable.fetch_max(offset, Ordering::Release);
        self.synced.notify(usize::MAX);
    }

    fn mark_failing(&self, failing: bool, why: &dyn std::fmt::Display) {
        if failing {
            *self.failure.lock() = why.to_string();
        }
        if self.failing.swap(failing, Ordering::AcqRel) != failing {
            if failing {
                tracing::warn!("Error writing to the AOF file: {why}");
            } else {
                tracing::warn!("AOF write error looks solved. Shoal can write again.");
            }
        }
        self.synced.notify(usize::MAX);
    }

    /// Writes are refused (MISCONF) while the AOF cannot be written.
    #[inline]
    pub fn refuses_writes(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// Redis's error for a write refused meanwhile.
    pub fn refusal(&self) -> String {
        format!(
            "MISCONF Errors writing to the AOF file: {}",
            self.failure.lock()
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The manifest

#[derive(Clone, Debug, Default, PartialEq)]
struct Manifest {
    /// (file name, sequence number).
    base: Option<(String, u64)>,
    incrs: Vec<(String, u64)>,
}

impl Manifest {
    /// Redis 7's format: `file <name> seq <n> type <b|h|i>` per line.
    /// Errors say the byte offset of the line at fault.
    fn parse(text: &str) -> Result<Manifest, (u64, String)> {
        let mut manifest = Manifest::default();
        let mut at = 0u64;
        for (i, raw) in text.split_inclusive('\n').enumerate() {
            let line_at = at;
            at += raw.len() as u64;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let field = |key: &str| {
                words
                    .chunks(2)
                    .find(|p| p.len() == 2 && p[0] == key)
                    .map(|p| p[1])
            };
            let bad = || {
                (
                    line_at,
                    format!("line {}: invalid manifest line '{line}'", i + 1),
                )
            };
            let name = field("file").ok_or_else(bad)?.to_string();
            let seq = field("seq").and_then(|s| s.parse().ok()).ok_or_else(bad)?;
            match field("type").ok_or_else(bad)? {
                "b" if manifest.base.is_none() => manifest.base = Some((name, seq)),
                "i" => manifest.incrs.push((name, seq)),
                "h" => {}
                _ => return Err(bad()),
            }
        }
        Ok(manifest)
    }

    fn render(&self) -> String {
        let mut out = String::new();
        if let Some((name, seq)) = &self.base {
            out.push_str(&format!("file {name} seq {seq} type b\n"));
        }
        for (name, seq) in &self.incrs {
            out.push_str(&format!("file {name} seq {seq} type i\n"));
        }
        out
    }

    /// The next base's name, sequence number and format (`aof-use-rdb-preamble`).
    fn next_base(&self, name: &str, rdb_preamble: bool) -> (String, u64, snapshot::Format) {
        let seq = self.base.as_ref().map_or(0, |b| b.1) + 1;
        if rdb_preamble {
            let name = format!("{name}.{seq}.base.rdb");
            (name, seq, snapshot::Format::AofBaseRdb)
        } else {
            let name = format!("{name}.{seq}.base.aof");
            (name, seq, snapshot::Format::AofBaseCommands)
        }
    }

    fn next_incr(&self, name: &str) -> (String, u64) {
        let seq = self.incrs.last().map_or(0, |i| i.1) + 1;
        (format!("{name}.{seq}.incr.aof"), seq)
    }
}

impl Files {
    /// The folder the settings name, with an empty manifest.
    fn of(engine: &Engine) -> Files {
        let settings = engine.settings();
        Files {
            dir: settings.dir.join(&settings.append_dirname),
            name: settings.append_filename.clone(),
            manifest: Manifest::default(),
        }
    }

    fn manifest_path(&self) -> PathBuf {
        self.dir.join(format!("{}.manifest", self.name))
    }

    /// Replaces the manifest atomically and durably.
    fn store(&mut self, manifest: Manifest) -> io::Result<()> {
        let temp = self.dir.join(format!("temp-{}.manifest", self.name));
        let mut file = File::create(&temp)?;
        file.write_all(manifest.render().as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, self.manifest_path())?;
        File::open(&self.dir)?.sync_all()?;
        self.manifest = manifest;
        Ok(())
    }

    fn size_of(&self, names: impl Iterator<Item = String>) -> u64 {
        names
            .filter_map(|n| std::fs::metadata(self.dir.join(n)).ok())
            .map(|m| m.len())
            .sum()
    }

    fn total_bytes(&self) -> u64 {
        let m = &self.manifest;
        let names = m.base.iter().chain(m.incrs.iter()).map(|(n, _)| n.clone());
        self.size_of(names)
    }
}

/// The storage incr files are written through: the filesystem unless the configuration
/// swapped in another.
fn storage(engine: &Engine) -> Arc<dyn Storage> {
    engine
        .config()
        .aof_storage
        .clone()
        .unwrap_or_else(|| Arc::new(Disk))
}

fn corrupt(path: &Path, offset: u64, what: impl Into<String>) -> Error {
    Error::Corrupt {
        file: path.to_path_buf(),
        offset,
        what: what.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Start-up

/// Opens the AOF at start-up (`appendonly yes`): loads what the manifest names, or, the first
/// time, the snapshot if there is one, then writes a base; then starts the writer.
pub(crate) fn open(engine: &Arc<Engine>) -> Result<(), Error> {
    engine.persist.aof.set_configured(true);
    let mut files = Files::of(engine);
    let manifest_path = files.manifest_path();
    let text = match std::fs::read_to_string(&manifest_path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Turning the AOF on keeps the data: load the snapshot, then make it the base.
            super::recovery::load_rdb(engine, &super::rdb_path(engine))?;
            return enable(engine, cores());
        }
        Err(e) => return Err(Error::Io(e)),
    };
    files.manifest =
        Manifest::parse(&text).map_err(|(at, why)| corrupt(&manifest_path, at, why))?;
    load(engine, &files, engine.settings().aof_load_truncated)?;
    let incr = match files.manifest.incrs.last() {
        Some((name, _)) => storage(engine).append(&files.dir.join(name))?,
        None => {
            let (name, seq) = files.manifest.next_incr(&files.name);
            let file = storage(engine).create(&files.dir.join(&name))?;
            let mut manifest = files.manifest.clone();
            manifest.incrs.push((name, seq));
            files.store(manifest)?;
            file
        }
    };
    // What is appended from here on must say its database: the file's reader starts fresh.
    engine.log.force_select();
    let reader = engine
        .log
        .reader(engine.log.end(), crate::log::Keep::All)
        .map_err(|e| Error::Io(io::Error::other(e.to_string())))?;
    publish(engine, files, reader.position());
    start_writer(engine, reader, incr)
}

/// Starts the AOF from the dataset as it is (at start-up without AOF files, or for CONFIG SET
/// appendonly yes): a snapshot becomes a new base, the writer follows the log from the
/// snapshot's offset into a new incr file, and older AOF files are removed.
pub(crate) fn enable(engine: &Arc<Engine>, sweepers: usize) -> Result<(), Error> {
    let mut files = Files::of(engine);
    std::fs::create_dir_all(&files.dir)?;
    if let Ok(text) = std::fs::read_to_string(files.manifest_path()) {
        // Only for the sequence numbers: the new base replaces what these files hold.
        files.manifest = Manifest::parse(&text).unwrap_or_default();
    }
    let (incr_name, incr_seq) = files.manifest.next_incr(&files.name);
    let incr = storage(engine).create(&files.dir.join(&incr_name))?;
    let (base_name, base_seq, format) = files
        .manifest
        .next_base(&files.name, engine.settings().aof_use_rdb_preamble);
    // The writer starts exactly where the snapshot is (no write can happen in `on_begin`),
    // and at once: held back until the base is written, its reader would make writers wait
    // while they hold slot locks the snapshot's sweep needs.
    let mut started: Option<Result<Offset, Error>> = None;
    let mut incr = Some(incr);
    let saved = snapshot::save(
        engine,
        &files.dir.join(&base_name),
        snapshot::Target { sweepers, format },
        |at| {
            let reader = engine
                .log
                .reader(at, crate::log::Keep::All)
                .map_err(|e| Error::Io(io::Error::other(e.to_string())));
            let file = incr.take();
            started = Some(reader.and_then(|reader| match file {
                Some(file) => start_writer(engine, reader, file).map(|()| at),
                None => Err(Error::Io(io::Error::other("no incr file"))),
            }));
        },
    );
    let aof = &engine.persist.aof;
    let _switch = aof.switching.lock();
    let at = match (saved, started) {
        // `appendonly no` meanwhile stopped this writer (a later `yes` waits for a restart),
        // or its file broke before it was listed.
        (Ok(_), Some(Ok(_)))
            if !aof.is_configured()
                || aof.writer.lock().is_none()
                || aof.broken.load(Ordering::SeqCst) =>
        {
            close(engine);
            let _ = std::fs::remove_file(files.dir.join(&incr_name));
            let _ = std::fs::remove_file(files.dir.join(&base_name));
            return match aof.broken.load(Ordering::SeqCst) {
                true => Err(Error::Io(io::Error::other(
                    "the new AOF file failed to fsync",
                ))),
                false => Ok(()),
            };
        }
        (Ok(_), Some(Ok(at))) => at,
        (saved, started) => {
            // The writer (if it started) stops; its file was never listed.
            close(engine);
            let _ = std::fs::remove_file(files.dir.join(&incr_name));
            saved?;
            return Err(match started {
                Some(Err(e)) => e,
                _ => Error::Io(io::Error::other("the snapshot did not start")),
            });
        }
    };
    let old = std::mem::take(&mut files.manifest);
    files.store(Manifest {
        base: Some((base_name.clone(), base_seq)),
        incrs: vec![(incr_name.clone(), incr_seq)],
    })?;
    for (name, _) in old.base.iter().chain(old.incrs.iter()) {
        if *name != base_name && *name != incr_name {
            let _ = std::fs::remove_file(files.dir.join(name));
        }
    }
    publish(engine, files, at);
    Ok(())
}

/// CONFIG SET appendonly no: the writer finishes and fsyncs what it has; the files stay, and
/// their failures no longer refuse writes (as in Redis).
pub(crate) fn disable(engine: &Engine) {
    let aof = &engine.persist.aof;
    let _switch = aof.switching.lock();
    aof.set_configured(false);
    stop(engine);
    aof.broken.store(false, Ordering::SeqCst);
    aof.mark_failing(false, &"");
}

/// Stops the writer and turns the AOF off, keeping its files and whether it fails.
fn stop(engine: &Engine) {
    close(engine);
    let aof = &engine.persist.aof;
    // A rewrite that began meanwhile must not hand its file to a later writer.
    *aof.rotation.lock() = None;
    aof.enabled.store(false, Ordering::SeqCst);
    aof.always.store(false, Ordering::SeqCst);
    *aof.files.lock() = None;
    aof.synced.notify(usize::MAX);
}

/// Stops the AOF for a while (a replica loading its primary's data): [`restart`] brings it
/// back. The caller holds the rewrite claim.
pub(crate) fn pause(engine: &Engine) {
    let _switch = engine.persist.aof.switching.lock();
    stop(engine);
}

/// Starts the AOF again from a new base if `appendonly` is set: after CONFIG SET appendonly
/// yes, after a replica loaded its primary's data, when the files are broken (see
/// [`Aof::broken`]) and when a start failed. The caller holds the rewrite claim.
pub(crate) fn restart(engine: &Arc<Engine>) -> Result<(), Error> {
    let aof = &engine.persist.aof;
    {
        let _switch = aof.switching.lock();
        if !aof.is_configured() {
            return Ok(());
        }
        if aof.broken.load(Ordering::SeqCst) {
            tracing::warn!("Rebuilding the AOF from memory: its files lack writes the disk lost");
        }
        stop(engine);
        // From here on only the new writer can break its files.
        aof.broken.store(false, Ordering::SeqCst);
    }
    let result = enable(engine, 1);
    let failures = if result.is_ok() {
        0
    } else {
        aof.rebuild_failures.fetch_add(1, Ordering::Relaxed) + 1
    };
    aof.rebuild_failures.store(failures, Ordering::Relaxed);
    // A start that `appendonly no` superseded (and a later `yes` revived) is retried at
    // the next tick; a failed one after a growing delay.
    let delay_ms = match (failures, aof.is_enabled()) {
        (0, false) => 0,
        _ => (1000u64 << failures.min(6)).min(REBUILD_DELAY_MAX_MS),
    };
    aof.rebuild_after_ms
        .store(engine.now_ms() + delay_ms, Ordering::Relaxed);
    result
}

/// Whether the AOF is set but not running as it should (a start failed, or its files are
/// broken) and a [`restart`] may be tried now.
pub(crate) fn wants_restart(engine: &Engine) -> bool {
    let aof = &engine.persist.aof;
    aof.is_configured()
        && (!aof.is_enabled() || aof.broken.load(Ordering::Relaxed))
        && !aof.rewriting.load(Ordering::Relaxed)
        && engine.now_ms() >= aof.rebuild_after_ms.load(Ordering::Relaxed)
}

/// Turns the AOF on over `files`, durable up to `at` (what the base and the files hold).
fn publish(engine: &Engine, files: Files, at: Offset) {
    let aof = &engine.persist.aof;
    let total = files.total_bytes();
    aof.current_bytes.store(total, Ordering::Relaxed);
    aof.base_bytes.store(total, Ordering::Relaxed);
    aof.durable.store(at.0, Ordering::SeqCst);
    aof.always.store(
        engine.settings().append_fsync == Fsync::Always,
        Ordering::SeqCst,
    );
    *aof.files.lock() = Some(files);
    aof.enabled.store(true, Ordering::SeqCst);
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Loads the base and the incr files in manifest order.
fn load(engine: &Engine, files: &Files, cut_torn_tail: bool) -> Result<(), Error> {
    if let Some((name, _)) = &files.manifest.base {
        let path = files.dir.join(name);
        let bytes = read_named(&path)?;
        if bytes.starts_with(b"REDIS") {
            super::recovery::load_rdb_bytes(engine, &path, &bytes, false)?;
        } else {
            replay(engine, &path, false)?;
        }
    }
    let last = files.manifest.incrs.len().saturating_sub(1);
    for (i, (name, _)) in files.manifest.incrs.iter().enumerate() {
        replay(engine, &files.dir.join(name), cut_torn_tail && i == last)?;
    }
    Ok(())
}

/// Applies one file of RESP commands. A command cut off at the end (or a MULTI without its
/// EXEC) is a torn tail: cut off with a warning when `cut_torn_tail`, else an error.
fn replay(engine: &Engine, path: &Path, cut_torn_tail: bool) -> Result<(), Error> {
    let bytes = read_named(path)?;
    let mut client = Client::new(Protocol::Resp2);
    let applied = engine.apply_stream(&mut client, &bytes);
    if let Some(e) = applied.malformed {
        return Err(corrupt(path, applied.consumed as u64, e.0));
    }
    // `apply_stream` stops at the first byte that is not a whole command.
    let whole = applied.open_multi_at.unwrap_or(applied.consumed);
    if applied.open_multi_at.is_some() {
        engine.execute_waiting(&mut client, &[b"DISCARD"]);
    }
    if applied.consumed < bytes.len() && !looks_like_command_start(&bytes[applied.consumed..]) {
        return Err(corrupt(
            path,
            applied.consumed as u64,
            "not a RESP command (the AOF is corrupt)",
        ));
    }
    if whole < bytes.len() {
        if !cut_torn_tail {
            return Err(corrupt(
                path,
                whole as u64,
                "unexpected end of file (aof-load-truncated is off, or this is not the last file)",
            ));
        }
        tracing::warn!(
            "!!! Warning: short read while loading the AOF file {}!!! Truncating the AOF at offset {whole} ({} bytes cut)",
            path.display(),
            bytes.len() - whole
        );
        OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(whole as u64)?;
    }
    if applied.errors > 0 {
        tracing::warn!(
            "{} commands in {} failed when replayed (first: {})",
            applied.errors,
            path.display(),
            applied.first_error.unwrap_or_default()
        );
    }
    Ok(())
}

/// A file the manifest names; a missing one is an error naming it.
fn read_named(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| corrupt(path, 0, format!("named by the manifest: {e}")))
}

/// A torn tail is the start of a multibulk command; anything else is corruption.
fn looks_like_command_start(rest: &[u8]) -> bool {
    rest.first() == Some(&b'*')
}

// ---------------------------------------------------------------------------------------------
// The writer

fn start_writer(
    engine: &Arc<Engine>,
    reader: LogReader,
    file: Box<dyn StorageFile>,
) -> Result<(), Error> {
    // A switch asked for by a rewrite of an earlier writer is not this writer's.
    *engine.persist.aof.rotation.lock() = None;
    let stop = Arc::new(AtomicBool::new(false));
    let handle = {
        let (engine, stop) = (Arc::clone(engine), Arc::clone(&stop));
        std::thread::Builder::new()
            .name("shoal-aof".into())
            .spawn(move || {
                crate::affinity::place_current_thread(
                    engine.config(),
                    crate::affinity::Threads::Bio,
                );
                Writer::new(engine, reader, file).run(&stop)
            })?
    };
    *engine.persist.aof.writer.lock() = Some((handle, stop));
    Ok(())
}

/// [`Aof::wait_durable_timeout`] for the embedded API.
pub(crate) fn wait_durable_for(
    engine: &Engine,
    offset: Offset,
    timeout: Duration,
) -> io::Result<bool> {
    // An offset beyond the log's end would keep the writer fsyncing every write for nobody.
    let aof = &engine.persist.aof;
    aof.want_fsync(Offset(offset.0.min(engine.log.end().0)));
    aof.wait_durable_timeout(offset, timeout)
}

/// Stops the writer after it wrote and fsynced everything logged so far.
pub(crate) fn close(engine: &Engine) {
    let writer = engine.persist.aof.writer.lock().take();
    if let Some((handle, stop)) = writer {
        stop.store(true, Ordering::SeqCst);
        let _ = handle.join();
    }
}

struct Writer {
    engine: Arc<Engine>,
    reader: LogReader,
    file: Box<dyn StorageFile>,
    /// Log offset of the next byte to write.
    position: u64,
    /// Bytes read but not yet written (a failed write keeps them for the retry).
    pending: Vec<u8>,
    /// Written but not fsynced.
    unsynced: bool,
    last_sync: Instant,
}

impl Writer {
    fn new(engine: Arc<Engine>, reader: LogReader, file: Box<dyn StorageFile>) -> Writer {
        let position = reader.position().0;
        Writer {
            engine,
            reader,
            file,
            position,
            pending: Vec::new(),
            unsynced: false,
            last_sync: Instant::now(),
        }
    }

    fn run(mut self, stop: &AtomicBool) {
        // Where a stop finishes: the log's end when it was asked, not wherever later writes
        // have moved it to.
        let mut stop_at = None;
        loop {
            let stopping = stop.load(Ordering::SeqCst);
            if stopping && stop_at.is_none() {
                stop_at = Some(self.engine.log.end().0);
            }
            if self.pending.is_empty() {
                let always = self.engine.persist.aof.always.load(Ordering::Relaxed);
                let wait = if always && !stopping {
                    IDLE_WAIT
                } else {
                    Duration::ZERO
                };
                match self.reader.read(READ_BYTES_MAX, wait) {
                    Ok(chunk) if chunk.is_empty() && !always && !stopping => {
                        std::thread::sleep(POLL_PAUSE);
                    }
                    Ok(chunk) => self.pending.extend_from_slice(&chunk),
                    Err(lagged) => {
                        // A reliable reader is never dropped behind; if it were, the file
                        // could no longer be completed.
                        self.lose(&format!("the AOF writer fell behind the log: {lagged}"));
                        return;
                    }
                }
            }
            let result = self
                .write_pending()
                .and_then(|()| self.sync_by_policy(stopping));
            let aof = &self.engine.persist.aof;
            match result {
                // Before the AOF is on, the node's writes do not depend on this file yet.
                Ok(()) if aof.enabled.load(Ordering::Acquire) => aof.mark_failing(false, &""),
                Ok(()) => {}
                // `lose` said why.
                Err(_) if aof.broken.load(Ordering::SeqCst) => return,
                Err(e) => {
                    aof.mark_failing(true, &e);
                    if stopping {
                        return;
                    }
                    let retry_at = Instant::now() + RETRY_DELAY;
                    while Instant::now() < retry_at && !stop.load(Ordering::SeqCst) {
                        std::thread::sleep(IDLE_WAIT);
                    }
                    continue;
                }
            }
            if self.pending.is_empty() && stop_at.is_some_and(|end| self.position >= end) {
                return;
            }
        }
    }

    /// Writes what is pending, switching files where a rewrite asked.
    fn write_pending(&mut self) -> io::Result<()> {
        while !self.pending.is_empty() {
            let rotate_at = self.rotate_at();
            let len = match rotate_at {
                Some(at) if at <= self.position => {
                    self.rotate()?;
                    continue;
                }
                Some(at) => ((at - self.position) as usize).min(self.pending.len()),
                None => self.pending.len(),
            };
            let written = self.file.write_some(&self.pending[..len])?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.pending.drain(..written);
            self.position += written as u64;
            self.unsynced = true;
            self.engine
                .persist
                .aof
                .current_bytes
                .fetch_add(written as u64, Ordering::Relaxed);
        }
        if self.rotate_at().is_some_and(|at| at <= self.position) {
            self.rotate()?;
        }
        Ok(())
    }

    /// An fsync that fails breaks the file: the kernel may have dropped the pages it could
    /// not write and will not report them again.
    fn sync(&mut self) -> io::Result<()> {
        let synced = self.file.sync();
        if let Err(e) = &synced {
            self.lose(&format!(
                "fsync failed ({e}); the AOF is being rebuilt from memory"
            ));
        }
        synced
    }

    /// The file no longer holds the whole history: writes are refused until a rebuild.
    fn lose(&self, why: &str) {
        let aof = &self.engine.persist.aof;
        aof.broken.store(true, Ordering::SeqCst);
        aof.mark_failing(true, &why);
    }

    fn rotate_at(&self) -> Option<u64> {
        let rotation = self.engine.persist.aof.rotation.lock();
        rotation.as_ref().map(|r| r.at.0)
    }

    /// Finishes the old incr file (fsynced) and goes on in the rewrite's new one.
    fn rotate(&mut self) -> io::Result<()> {
        self.sync()?;
        let Some(rotation) = self.engine.persist.aof.rotation.lock().take() else {
            return Ok(());
        };
        self.file = rotation.file;
        Ok(())
    }

    /// Fsyncs by the policy. Until the AOF is on (its base is still being written) nothing
    /// counts as durable: what is fsynced then is marked once it is on.
    fn sync_by_policy(&mut self, stopping: bool) -> io::Result<()> {
        let aof = Arc::clone(&self.engine.persist.aof);
        let on = aof.enabled.load(Ordering::Acquire);
        if !self.unsynced {
            if on && aof.durable.load(Ordering::Acquire) < self.position {
                aof.mark_durable(self.position);
            }
            return Ok(());
        }
        let policy = self.engine.settings().append_fsync;
        let due = match policy {
            Fsync::Always => true,
            Fsync::EverySec => self.last_sync.elapsed() >= EVERYSEC,
            Fsync::No => false,
        };
        let due =
            due || aof.fsync_wanted.load(Ordering::Acquire) > aof.durable.load(Ordering::Acquire);
        if on {
            aof.always.store(policy == Fsync::Always, Ordering::Relaxed);
        }
        if due || stopping {
            self.sync()?;
            self.unsynced = false;
            self.last_sync = Instant::now();
            if on {
                aof.mark_durable(self.position);
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Rewrites

impl Aof {
    /// Claims the one rewrite that may run; false when one is running.
    pub fn begin_rewrite(&self) -> bool {
        self.rewriting
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    pub fn end_rewrite(&self, ok: bool) {
        self.rewrites.fetch_add(1, Ordering::Relaxed);
        self.last_rewrite_ok.store(ok, Ordering::Relaxed);
        self.rewriting.store(false, Ordering::SeqCst);
    }
}

/// BGREWRITEAOF: a new base from a snapshot, and a new incr file from its offset on.
/// The caller holds the rewrite claim ([`Aof::begin_rewrite`]).
pub(crate) fn rewrite(engine: &Engine) -> io::Result<()> {
    let aof = &engine.persist.aof;
    let mut guard = aof.files.lock();
    let files = guard
        .as_mut()
        .ok_or_else(|| io::Error::other("the AOF is off"))?;
    // First the manifest learns of the new incr file: whatever the writer puts there from the
    // snapshot's offset on is part of the history even if the snapshot fails.
    let (incr_name, incr_seq) = files.manifest.next_incr(&files.name);
    let incr = storage(engine).create(&files.dir.join(&incr_name))?;
    let before = files.manifest.clone();
    let mut with_incr = files.manifest.clone();
    with_incr.incrs.push((incr_name.clone(), incr_seq));
    files.store(with_incr)?;
    let (base_name, base_seq, format) = files
        .manifest
        .next_base(&files.name, engine.settings().aof_use_rdb_preamble);
    let mut incr = Some(incr);
    let saved = snapshot::save(
        engine,
        &files.dir.join(&base_name),
        snapshot::Target {
            sweepers: 1,
            format,
        },
        |at| {
            if let Some(file) = incr.take() {
                *aof.rotation.lock() = Some(Rotation { at, file });
            }
        },
    );
    let saved = match saved {
        Ok(saved) => saved,
        Err(e) => {
            if incr.take().is_some() {
                // The snapshot never began, so nothing goes to the new file; listed, it would
                // make the file the writer still appends to look like a middle one, whose
                // torn tail could not be cut after a crash.
                let _ = files.store(before);
                let _ = std::fs::remove_file(files.dir.join(&incr_name));
            }
            return Err(e);
        }
    };
    let old = files.manifest.clone();
    files.store(Manifest {
        base: Some((base_name, base_seq)),
        incrs: vec![(incr_name.clone(), incr_seq)],
    })?;
    for (name, _) in old.base.iter().chain(old.incrs.iter()) {
        if *name != incr_name {
            let _ = std::fs::remove_file(files.dir.join(name));
        }
    }
    let total = files.total_bytes();
    aof.current_bytes.store(total, Ordering::Relaxed);
    aof.base_bytes.store(total, Ordering::Relaxed);
    tracing::info!(
        "AOF rewritten: base at offset {} ({} keys)",
        saved.offset.0,
        saved.keys
    );
    Ok(())
}

/// Whether the AOF grew enough since the last rewrite for `auto-aof-rewrite-percentage`
/// and `auto-aof-rewrite-min-size` to ask for another.
pub(crate) fn wants_rewrite(engine: &Engine, percentage: u64, min_bytes: u64) -> bool {
    let info = engine.persist.aof.info();
    if !info.enabled || info.rewriting || percentage == 0 || info.current_bytes < min_bytes {
        return false;
    }
    let base = info.base_bytes.max(1);
    (info.current_bytes.saturating_sub(base)) * 100 / base >= percentage
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_redis_format() {
        let text = "file appendonly.aof.1.base.rdb seq 1 type b\n\
                    file appendonly.aof.1.incr.aof seq 1 type i\n\
                    file appendonly.aof.2.incr.aof seq 2 type i\n";
        let m = Manifest::parse(text).unwrap();
        assert_eq!(m.render(), text);
        assert_eq!(m.next_incr("appendonly.aof").0, "appendonly.aof.3.incr.aof");
        assert_eq!(
            m.next_base("appendonly.aof", true).0,
            "appendonly.aof.2.base.rdb"
        );
        assert!(Manifest::parse("file x seq one type i").is_err());
        assert!(Manifest::parse("garbage").is_err());
    }
}
