//! Persistence: RDB snapshots (and, later, the append-only file).
//!
//! ```text
//! rdb/          the file format: encode.rs (writing), decode.rs (every encoding Redis 7 writes),
//!               packed.rs (listpack, ziplist, intset, zipmap)
//! snapshot.rs   point-in-time snapshots while writes go on: copy-before-write per slot
//! recovery.rs   start-up: loading the snapshot into the keyspace
//! aof.rs        the append-only file: manifest, writer and group commit, replay, rewrite
//! storage.rs    the seam the AOF writes incr files through (the disk, or a test's double)
//! mod.rs        when to save (SAVE, BGSAVE, save points, shutdown) and what INFO reports
//! ```

pub(crate) mod aof;
mod commands;
pub(crate) mod rdb;
pub(crate) mod recovery;
pub(crate) mod snapshot;
pub mod storage;

pub use rdb::FormatError;

use crate::engine::Engine;
use snapshot::SnapshotStats;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

/// After a failed background save, save points wait this long before trying again (Redis's
/// `CONFIG_BGSAVE_RETRY_DELAY`).
const BGSAVE_RETRY_DELAY_MS: u64 = 5_000;

/// The node's persistence state: the snapshot in progress and what INFO persistence reports.
#[derive(Default)]
pub(crate) struct State {
    pub captures: snapshot::Captures,
    /// Shared with the clients that wait for fsyncs (WAITAOF).
    pub aof: Arc<aof::Aof>,
    /// The engine itself, so that a command can start a background save that outlives it.
    this: OnceLock<Weak<Engine>>,
    bgsave_in_progress: AtomicBool,
    /// When the running background save started (Unix ms).
    bgsave_started_ms: AtomicU64,
    last_bgsave_ok: AtomicBool,
    /// -1: no background save yet.
    last_bgsave_secs: AtomicI64,
    /// When the last save failed (Unix ms; 0: it did not).
    last_failure_ms: AtomicU64,
    saves: AtomicU64,
    last_copied_bytes: AtomicU64,
    /// SHUTDOWN already saved (or was told not to): dropping the node does not save again.
    final_save_settled: AtomicBool,
    last_load_keys_loaded: AtomicU64,
    last_load_keys_expired: AtomicU64,
}

impl State {
    pub fn new() -> State {
        State {
            last_bgsave_ok: AtomicBool::new(true),
            last_bgsave_secs: AtomicI64::new(-1),
            ..State::default()
        }
    }

    pub fn note_load(&self, loaded: u64, expired: u64) {
        self.last_load_keys_loaded.store(loaded, Ordering::Relaxed);
        self.last_load_keys_expired
            .store(expired, Ordering::Relaxed);
    }

    pub fn bgsave_in_progress(&self) -> bool {
        self.bgsave_in_progress.load(Ordering::Relaxed)
    }
}

/// Reads a whole RDB image as start-up would, keeping nothing (what `redis-check-rdb` does):
/// the number of keys in it, or what is wrong and where. Expired keys count; the checksum is
/// verified.
pub fn check_rdb(bytes: &[u8]) -> Result<u64, FormatError> {
    let limits = crate::keyspace::value::EncodingLimits::default();
    let opts = rdb::decode::LoadOptions {
        limits: &limits,
        // Any database number: a file is checked on its own, not against a node.
        databases: usize::MAX,
        verify_checksum: true,
        drop_expired_before_ms: None,
    };
    rdb::decode::load(bytes, &opts, |_| Ok(())).map(|s| s.keys_loaded)
}

impl State {
    /// The engine, for work that outlives the caller (None once it is closing).
    pub(crate) fn this(&self) -> Option<Arc<Engine>> {
        self.this.get().and_then(Weak::upgrade)
    }
}

/// Lets background saves hold the engine (call once, when the engine is shared).
pub(crate) fn attach(engine: &Arc<Engine>) {
    let _ = engine.persist.this.set(Arc::downgrade(engine));
}

/// Where the snapshot lives: `dir`/`dbfilename`.
pub(crate) fn rdb_path(engine: &Engine) -> PathBuf {
    let settings = engine.settings();
    settings.dir.join(&settings.dbfilename)
}

/// SAVE: a snapshot now, swept on every core; the caller waits for it.
pub(crate) fn save(engine: &Engine) -> std::io::Result<SnapshotStats> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let target = snapshot::Target {
        sweepers: cores,
        format: snapshot::Format::Rdb,
    };
    let result = snapshot::save(engine, &rdb_path(engine), target, |_| {});
    record(engine, &result, false);
    result
}

/// Why a background save did not start.
pub(crate) enum NotStarted {
    AlreadyRunning,
    /// Another snapshot (SAVE, an AOF rewrite) is running.
    Busy,
    /// The thread could not be created, or the engine is going away.
    Failed(String),
}

/// BGSAVE: a snapshot on a background thread (one sweeper: the node keeps serving).
/// While another snapshot runs (SAVE, an AOF rewrite) it is refused, or with `schedule`
/// queued behind it: `Ok(false)`, as BGSAVE SCHEDULE answers "scheduled".
pub(crate) fn bgsave(engine: &Engine, schedule: bool) -> Result<bool, NotStarted> {
    let state = &engine.persist;
    let Some(owned) = state.this.get().and_then(Weak::upgrade) else {
        return Err(NotStarted::Failed("the node is closing".into()));
    };
    if state
        .bgsave_in_progress
        .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        return Err(NotStarted::AlreadyRunning);
    }
    // The thread waits for the running snapshot to end: that is the queue.
    let busy = state.captures.is_running() || state.aof.info().rewriting;
    if busy && !schedule {
        state.bgsave_in_progress.store(false, Ordering::SeqCst);
        return Err(NotStarted::Busy);
    }
    state
        .bgsave_started_ms
        .store(engine.now_ms(), Ordering::Relaxed);
    let spawned = std::thread::Builder::new()
        .name("shoal-bgsave".into())
        .spawn(move || {
            crate::affinity::place_current_thread(owned.config(), crate::affinity::Threads::Bgsave);
            let target = snapshot::Target {
                sweepers: 1,
                format: snapshot::Format::Rdb,
            };
            let result = snapshot::save(&owned, &rdb_path(&owned), target, |_| {});
            record(&owned, &result, true);
            owned
                .persist
                .bgsave_in_progress
                .store(false, Ordering::SeqCst);
        });
    spawned.map(|_| !busy).map_err(|e| {
        state.bgsave_in_progress.store(false, Ordering::SeqCst);
        NotStarted::Failed(e.to_string())
    })
}

/// CONFIG SET appendonly: on, a base is written in the background first (as Redis does) and
/// the AOF follows the log from it; off, the writer finishes what it has.
pub(crate) fn set_append_only(engine: &Engine, on: bool) {
    let aof = &engine.persist.aof;
    if !on {
        aof::disable(engine);
        return;
    }
    aof.set_configured(true);
    if !aof.is_enabled() {
        restart_aof(engine);
    }
}

/// Starts the AOF from a new base in the background (nothing when a rewrite, a replica's
/// load or another start holds the claim: the tick tries again).
fn restart_aof(engine: &Engine) {
    let _ = start_rewrite(engine, |engine| {
        aof::restart(engine).map_err(|e| format!("turning the AOF on: {e}"))
    });
}

/// BGREWRITEAOF: an AOF rewrite on a background thread.
pub(crate) fn bgrewriteaof(engine: &Engine) -> Result<(), NotStarted> {
    start_rewrite(engine, |engine| {
        aof::rewrite(engine).map_err(|e| e.to_string())
    })
}

/// Claims the one AOF rewrite (at once, so INFO and BGSAVE see it) and runs `job` for it on
/// a background thread.
fn start_rewrite(
    engine: &Engine,
    job: impl FnOnce(&Arc<Engine>) -> Result<(), String> + Send + 'static,
) -> Result<(), NotStarted> {
    let Some(owned) = engine.persist.this.get().and_then(Weak::upgrade) else {
        return Err(NotStarted::Failed("the node is closing".into()));
    };
    let aof = &engine.persist.aof;
    if !aof.begin_rewrite() {
        return Err(NotStarted::AlreadyRunning);
    }
    let spawned = std::thread::Builder::new()
        .name("shoal-aof-rewrite".into())
        .spawn(move || {
            crate::affinity::place_current_thread(
                owned.config(),
                crate::affinity::Threads::AofRewrite,
            );
            let result = job(&owned);
            match &result {
                Ok(()) => tracing::info!("Background AOF rewrite finished successfully"),
                Err(e) => tracing::warn!("Background AOF rewrite failed: {e}"),
            }
            owned.persist.aof.end_rewrite(result.is_ok());
        });
    spawned.map(drop).map_err(|e| {
        aof.end_rewrite(false);
        NotStarted::Failed(e.to_string())
    })
}

/// Redis's error for writes while the last background save failed.
const BGSAVE_FAILED: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";

/// Why writes are refused now, if they are: the AOF cannot be written, or the last
/// background save failed with `stop-writes-on-bgsave-error` and save points set. Two
/// relaxed loads when nothing failed.
#[inline]
pub(crate) fn write_refusal(engine: &Engine) -> Option<String> {
    let state = &engine.persist;
    if state.aof.refuses_writes() {
        return Some(state.aof.refusal());
    }
    if state.last_bgsave_ok.load(Ordering::Relaxed) {
        return None;
    }
    let settings = engine.settings();
    (settings.stop_writes_on_bgsave_error && !settings.save.is_empty())
        .then(|| BGSAVE_FAILED.to_string())
}

/// Updates LASTSAVE and INFO after a save, and logs it as Redis does.
fn record(engine: &Engine, result: &std::io::Result<SnapshotStats>, background: bool) {
    let state = &engine.persist;
    let now_ms = engine.now_ms();
    if background {
        let started = state.bgsave_started_ms.load(Ordering::Relaxed);
        let secs = now_ms.saturating_sub(started).div_ceil(1000) as i64;
        state.last_bgsave_secs.store(secs, Ordering::Relaxed);
        state
            .last_bgsave_ok
            .store(result.is_ok(), Ordering::Relaxed);
    }
    match result {
        Ok(stats) => {
            state.last_bgsave_ok.store(true, Ordering::Relaxed);
            engine
                .server
                .last_save_unix
                .store(now_ms / 1000, Ordering::Relaxed);
            engine
                .server
                .commands_at_last_save
                .store(stats.commands, Ordering::Relaxed);
            state.saves.fetch_add(1, Ordering::Relaxed);
            state
                .last_copied_bytes
                .store(stats.copied_bytes, Ordering::Relaxed);
            state.last_failure_ms.store(0, Ordering::Relaxed);
            tracing::info!(
                "DB saved on disk: {} keys at offset {}, {} bytes in {:.3} s ({} bytes copied before writes)",
                stats.keys,
                stats.offset.0,
                stats.bytes,
                stats.elapsed.as_secs_f64(),
                stats.copied_bytes
            );
        }
        Err(e) => {
            state
                .last_failure_ms
                .store(now_ms.max(1), Ordering::Relaxed);
            tracing::warn!("Failed saving the DB: {e}");
        }
    }
}

/// The background tick: starts a background save when a `save` point is due (`changes`
/// writes in `secs` seconds), waiting a while after a failure as Redis does.
pub(crate) fn on_tick(engine: &Engine) {
    if aof::wants_restart(engine) {
        restart_aof(engine);
    }
    let settings = engine.settings();
    let aof_percentage = settings.aof_rewrite_percentage;
    if aof::wants_rewrite(engine, aof_percentage, settings.aof_rewrite_min_bytes) {
        tracing::info!("Starting automatic rewriting of AOF on {aof_percentage}% growth");
        let _ = bgrewriteaof(engine);
    }
    // Not while a replica loads its primary's snapshot: the load bypasses copy-before-write.
    let loading = engine.repl.is_loading();
    if !settings.persistence
        || settings.save.is_empty()
        || engine.persist.bgsave_in_progress()
        || loading
    {
        return;
    }
    let now_ms = engine.now_ms();
    let failed_at = engine.persist.last_failure_ms.load(Ordering::Relaxed);
    if failed_at != 0 && now_ms < failed_at + BGSAVE_RETRY_DELAY_MS {
        return;
    }
    let changes = changes_since_save(engine);
    let since_secs =
        (now_ms / 1000).saturating_sub(engine.server.last_save_unix.load(Ordering::Relaxed));
    if let Some((secs, n)) = settings
        .save
        .iter()
        .find(|&&(secs, n)| changes >= n && since_secs >= secs)
    {
        tracing::info!("{n} changes in {secs} seconds. Saving...");
        let _ = bgsave(engine, false);
    }
}

/// Writes since the last successful save (`rdb_changes_since_last_save`).
pub(crate) fn changes_since_save(engine: &Engine) -> u64 {
    engine
        .log
        .commands()
        .saturating_sub(engine.server.commands_at_last_save.load(Ordering::Relaxed))
}

/// SHUTDOWN's save: with `SAVE`, or by default when save points exist; `NOSAVE` skips it.
/// Either way dropping the node does not save again.
pub(crate) fn save_for_shutdown(engine: &Engine, forced: Option<bool>) -> std::io::Result<()> {
    let settings = engine.settings();
    let wanted = forced.unwrap_or(settings.persistence && !settings.save.is_empty());
    if wanted {
        save(engine)?;
    }
    engine
        .persist
        .final_save_settled
        .store(true, Ordering::SeqCst);
    Ok(())
}

/// The save when the node closes without SHUTDOWN (SIGTERM, or the application dropping it).
pub(crate) fn save_on_close(engine: &Engine) {
    if engine.persist.final_save_settled.load(Ordering::SeqCst) {
        return;
    }
    if let Err(e) = save_for_shutdown(engine, None) {
        tracing::warn!("Error trying to save the DB on close: {e}");
    }
}

/// INFO persistence's snapshot fields.
pub(crate) struct SaveInfo {
    pub bgsave_in_progress: bool,
    pub last_bgsave_ok: bool,
    pub last_bgsave_secs: i64,
    pub current_bgsave_secs: i64,
    pub saves: u64,
    pub last_copied_bytes: u64,
    pub last_load_keys_loaded: u64,
    pub last_load_keys_expired: u64,
}

pub(crate) fn save_info(engine: &Engine) -> SaveInfo {
    let state = &engine.persist;
    let running = state.bgsave_in_progress();
    let started = state.bgsave_started_ms.load(Ordering::Relaxed);
    SaveInfo {
        bgsave_in_progress: running,
        last_bgsave_ok: state.last_bgsave_ok.load(Ordering::Relaxed),
        last_bgsave_secs: state.last_bgsave_secs.load(Ordering::Relaxed),
        current_bgsave_secs: if running {
            (engine.now_ms().saturating_sub(started) / 1000) as i64
        } else {
            -1
        },
        saves: state.saves.load(Ordering::Relaxed),
        last_copied_bytes: state.last_copied_bytes.load(Ordering::Relaxed),
        last_load_keys_loaded: state.last_load_keys_loaded.load(Ordering::Relaxed),
        last_load_keys_expired: state.last_load_keys_expired.load(Ordering::Relaxed),
    }
}
