//! Statistics: what INFO (stats, commandstats, errorstats, latencystats), SLOWLOG and LATENCY
//! report.
//!
//! The counters every command updates live in one shard per thread, so threads running
//! commands never write the same cache line and an increment is a plain load and store: only
//! the owning thread writes its shard, and readers sum the shards. CONFIG RESETSTAT does not
//! write into other threads' shards (that would race with their increments); it records the
//! totals at that moment as a baseline that reports subtract. Rare events (error replies, slow
//! commands, latency spikes) go to shared structures under a lock.

use crate::cmd::CommandId;
use crate::keyspace::bytes::CompactBytes;
use parking_lot::Mutex;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// A counter written only by its owning thread: a plain load and store, no locked
/// instruction; other threads may read it at any time.
#[derive(Default)]
struct Counter(AtomicU64);

impl Counter {
    #[inline]
    fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Sub-buckets per power of two of a latency histogram: 16, so a percentile is within about
/// 6% of the true value.
const SUB_BUCKET_BITS: u32 = 4;
const SUB_BUCKETS: usize = 1 << SUB_BUCKET_BITS;
/// Latencies are tracked up to 2^30 ns (about 1 s, Redis's range); longer ones count there.
const LATENCY_POWERS: usize = 30;
const LATENCY_BUCKETS: usize = (LATENCY_POWERS - SUB_BUCKET_BITS as usize + 1) * SUB_BUCKETS;

/// A log-linear histogram of latencies in nanoseconds, written by its owning thread only.
/// CONFIG RESETSTAT cannot clear another thread's counters without racing it, so it moves a
/// shared epoch instead: the owner clears its histogram when it sees the epoch changed, and
/// readers skip histograms of an older epoch.
struct LatencyHistogram {
    epoch: Counter,
    buckets: Box<[Counter]>,
}

impl LatencyHistogram {
    fn bucket_of(nanos: u64) -> usize {
        let v = nanos.clamp(1, (1 << LATENCY_POWERS) - 1);
        if v < SUB_BUCKETS as u64 {
            return v as usize;
        }
        let msb = 63 - v.leading_zeros();
        let shift = msb - SUB_BUCKET_BITS;
        (msb - SUB_BUCKET_BITS + 1) as usize * SUB_BUCKETS
            + ((v >> shift) as usize & (SUB_BUCKETS - 1))
    }

    /// The largest latency that falls in `bucket`.
    fn upper_bound(bucket: usize) -> u64 {
        let next = bucket + 1;
        if next <= SUB_BUCKETS {
            return bucket as u64;
        }
        let group = next / SUB_BUCKETS;
        let sub = (next % SUB_BUCKETS) as u64;
        let shift = group as u32 - 1;
        ((SUB_BUCKETS as u64 + sub) << shift) - 1
    }

    fn record(&self, nanos: u64, epoch: u64) {
        if self.epoch.get() != epoch {
            self.buckets
                .iter()
                .for_each(|b| b.0.store(0, Ordering::Relaxed));
            self.epoch.0.store(epoch, Ordering::Relaxed);
        }
        self.buckets[Self::bucket_of(nanos)].add(1);
    }
}

#[derive(Default)]
struct CommandCounters {
    calls: Counter,
    usec: Counter,
    rejected: Counter,
    failed: Counter,
    /// Allocated on the first call that tracks latency.
    histogram: OnceLock<LatencyHistogram>,
}

/// One thread's counters for one engine.
struct Shard {
    commands: Box<[CommandCounters]>,
    commands_processed: Counter,
    keyspace_hits: Counter,
    keyspace_misses: Counter,
}

/// Totals of every per-command counter, summed over the shards.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct CommandTotals {
    pub calls: u64,
    pub usec: u64,
    pub rejected: u64,
    pub failed: u64,
}

impl CommandTotals {
    fn minus(self, base: CommandTotals) -> CommandTotals {
        CommandTotals {
            calls: self.calls.wrapping_sub(base.calls),
            usec: self.usec.wrapping_sub(base.usec),
            rejected: self.rejected.wrapping_sub(base.rejected),
            failed: self.failed.wrapping_sub(base.failed),
        }
    }
}

/// Server-wide totals of the sharded counters.
#[derive(Clone, Copy, Default, Debug)]
pub struct ServerTotals {
    pub commands_processed: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
}

#[derive(Default)]
struct Baseline {
    commands: Vec<CommandTotals>,
    server: ServerTotals,
}

static NEXT_STATS_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's shards, by the id of the engine's stats they belong to.
    static SHARDS: RefCell<Vec<(u64, Arc<Shard>)>> = const { RefCell::new(Vec::new()) };
    /// The shard this thread used last, for the common case of one engine per thread: a
    /// pointer into an `Arc` that `SHARDS` holds (see `with_shard`).
    static LAST_SHARD: Cell<(u64, *const Shard)> = const { Cell::new((0, std::ptr::null())) };
}

/// What a command did beside running, reported with its call.
#[derive(Clone, Copy, Default, Debug)]
pub struct CallCounts {
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    /// Record its latency (`latency-tracking`).
    pub track_latency: bool,
}

/// One slow command (SLOWLOG GET).
#[derive(Clone, Debug)]
pub struct SlowEntry {
    pub id: u64,
    pub unix_secs: u64,
    pub usec: u64,
    /// Arguments as Redis keeps them: at most 32, each at most 128 bytes plus a note.
    pub argv: Vec<CompactBytes>,
    pub client_addr: String,
    pub client_name: CompactBytes,
}

/// The most arguments and bytes per argument a slow log entry keeps.
const SLOWLOG_ARGS_MAX: usize = 32;
const SLOWLOG_ARG_BYTES_MAX: usize = 128;

/// One latency event's record (LATENCY LATEST / HISTORY).
#[derive(Clone, Debug, Default)]
pub struct LatencyEvent {
    /// (unix seconds, ms), oldest first; one sample per second at most (the max of it).
    pub samples: VecDeque<(u64, u64)>,
    /// The worst latency since the event was reset.
    pub max_ms: u64,
}

/// Samples kept per latency event.
const LATENCY_SAMPLES_MAX: usize = 160;

/// Rates sampled every 100 ms, averaged over the last 16 samples (Redis's instantaneous
/// metrics).
#[derive(Default)]
struct Rates {
    /// (unix ms, commands, input bytes, output bytes) at the last sample.
    last: Option<(u64, u64, u64, u64)>,
    /// (ops/s, input bytes/s, output bytes/s) per interval.
    window: VecDeque<(f64, f64, f64)>,
}

const RATE_SAMPLES: usize = 16;
const RATE_INTERVAL_MS: u64 = 100;

/// Everything the statistics commands report.
pub struct Stats {
    id: u64,
    command_count: usize,
    shards: Mutex<Vec<Arc<Shard>>>,
    baseline: Mutex<Baseline>,
    /// Keys deleted by expiry.
    pub expired_keys: AtomicU64,
    /// Error replies by their first word (errorstats), and their total.
    errors: Mutex<BTreeMap<String, u64>>,
    error_replies: AtomicU64,
    /// Moved by every reset (see [`LatencyHistogram`]).
    histogram_epoch: AtomicU64,
    slowlog: Mutex<(u64, VecDeque<SlowEntry>)>,
    latency: Mutex<BTreeMap<&'static str, LatencyEvent>>,
    rates: Mutex<Rates>,
}

impl Stats {
    /// Statistics for a table of `command_count` commands and subcommands.
    pub fn new(command_count: usize) -> Stats {
        Stats {
            id: NEXT_STATS_ID.fetch_add(1, Ordering::Relaxed),
            command_count,
            shards: Mutex::new(Vec::new()),
            baseline: Mutex::new(Baseline::default()),
            expired_keys: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            error_replies: AtomicU64::new(0),
            histogram_epoch: AtomicU64::new(0),
            slowlog: Mutex::new((0, VecDeque::new())),
            latency: Mutex::new(BTreeMap::new()),
            rates: Mutex::new(Rates::default()),
        }
    }

    /// Runs `f` on this thread's shard, creating and registering it on first use.
    #[inline]
    fn with_shard<R>(&self, f: impl FnOnce(&Shard) -> R) -> R {
        let (id, last) = LAST_SHARD.get();
        if id == self.id {
            // SAFETY: `last` points into an `Arc<Shard>` held in this thread's `SHARDS`, which
            // drops entries only in `with_shard_slow`, after clearing `LAST_SHARD`; and stats
            // ids are never reused, so a match is this engine's live shard.
            return f(unsafe { &*last });
        }
        self.with_shard_slow(f)
    }

    #[cold]
    fn with_shard_slow<R>(&self, f: impl FnOnce(&Shard) -> R) -> R {
        SHARDS.with(|cell| {
            let mut shards = cell.borrow_mut();
            if let Some((_, shard)) = shards.iter().find(|(id, _)| *id == self.id) {
                LAST_SHARD.set((self.id, Arc::as_ptr(shard)));
                return f(shard);
            }
            // Shards of engines that are gone are held by this thread alone: drop them.
            LAST_SHARD.set((0, std::ptr::null()));
            shards.retain(|(_, shard)| Arc::strong_count(shard) > 1);
            let shard = Arc::new(Shard {
                commands: (0..self.command_count)
                    .map(|_| CommandCounters::default())
                    .collect(),
                commands_processed: Counter::default(),
                keyspace_hits: Counter::default(),
                keyspace_misses: Counter::default(),
            });
            self.shards.lock().push(shard.clone());
            LAST_SHARD.set((self.id, Arc::as_ptr(&shard)));
            let out = f(&shard);
            shards.push((self.id, shard));
            out
        })
    }

    /// Counts one execution of `command` that took `nanos` (`failed`: it replied an error),
    /// with the key lookups it made.
    pub fn record_call(&self, command: CommandId, nanos: u64, failed: bool, call: CallCounts) {
        let epoch = self.histogram_epoch.load(Ordering::Relaxed);
        self.with_shard(|shard| {
            shard.commands_processed.add(1);
            shard.keyspace_hits.add(call.keyspace_hits);
            shard.keyspace_misses.add(call.keyspace_misses);
            let counters = &shard.commands[usize::from(command.0)];
            counters.calls.add(1);
            counters.usec.add(nanos / 1000);
            if failed {
                counters.failed.add(1);
            }
            if call.track_latency {
                counters
                    .histogram
                    .get_or_init(|| LatencyHistogram {
                        epoch: Counter(AtomicU64::new(epoch)),
                        buckets: (0..LATENCY_BUCKETS).map(|_| Counter::default()).collect(),
                    })
                    .record(nanos, epoch);
            }
        });
    }

    /// Counts a command refused before it ran (arity, NOAUTH, ...).
    pub fn record_rejection(&self, command: CommandId) {
        self.with_shard(|shard| shard.commands[usize::from(command.0)].rejected.add(1));
    }

    /// Counts an error reply under its code (the first word, as errorstats names it).
    pub fn record_error(&self, text: &str) {
        self.error_replies.fetch_add(1, Ordering::Relaxed);
        let code = text
            .get(..text.len().min(32))
            .and_then(|head| head.split_once(' '))
            .map_or("ERR", |(code, _)| code);
        *self.errors.lock().entry(code.to_string()).or_insert(0) += 1;
    }

    /// Per-command totals since the last reset.
    pub fn command_totals(&self, command: CommandId) -> CommandTotals {
        let index = usize::from(command.0);
        let total = self
            .shards
            .lock()
            .iter()
            .fold(CommandTotals::default(), |t, shard| {
                let c = &shard.commands[index];
                CommandTotals {
                    calls: t.calls + c.calls.get(),
                    usec: t.usec + c.usec.get(),
                    rejected: t.rejected + c.rejected.get(),
                    failed: t.failed + c.failed.get(),
                }
            });
        let base = self
            .baseline
            .lock()
            .commands
            .get(index)
            .copied()
            .unwrap_or_default();
        total.minus(base)
    }

    fn server_totals_raw(&self) -> ServerTotals {
        self.shards
            .lock()
            .iter()
            .fold(ServerTotals::default(), |t, shard| ServerTotals {
                commands_processed: t.commands_processed + shard.commands_processed.get(),
                keyspace_hits: t.keyspace_hits + shard.keyspace_hits.get(),
                keyspace_misses: t.keyspace_misses + shard.keyspace_misses.get(),
            })
    }

    /// Server-wide totals since the last reset.
    pub fn server_totals(&self) -> ServerTotals {
        let raw = self.server_totals_raw();
        let base = self.baseline.lock().server;
        ServerTotals {
            commands_processed: raw.commands_processed.wrapping_sub(base.commands_processed),
            keyspace_hits: raw.keyspace_hits.wrapping_sub(base.keyspace_hits),
            keyspace_misses: raw.keyspace_misses.wrapping_sub(base.keyspace_misses),
        }
    }

    /// The latency percentiles (µs) of `command`, if it has samples since the last reset.
    pub fn latency_percentiles(&self, command: CommandId, percentiles: &[f64]) -> Option<Vec<f64>> {
        let index = usize::from(command.0);
        let epoch = self.histogram_epoch.load(Ordering::Relaxed);
        let mut merged = vec![0u64; LATENCY_BUCKETS];
        for shard in self.shards.lock().iter() {
            let Some(h) = shard.commands[index].histogram.get() else {
                continue;
            };
            if h.epoch.get() == epoch {
                for (sum, b) in merged.iter_mut().zip(h.buckets.iter()) {
                    *sum += b.get();
                }
            }
        }
        let total: u64 = merged.iter().sum();
        if total == 0 {
            return None;
        }
        Some(
            percentiles
                .iter()
                .map(|&p| {
                    let rank = ((p / 100.0 * total as f64).ceil() as u64).clamp(1, total);
                    let mut seen = 0;
                    let bucket = merged
                        .iter()
                        .position(|&n| {
                            seen += n;
                            seen >= rank
                        })
                        .unwrap_or(LATENCY_BUCKETS - 1);
                    LatencyHistogram::upper_bound(bucket) as f64 / 1000.0
                })
                .collect(),
        )
    }

    /// Error counts by code, in byte order (errorstats).
    pub fn errors(&self) -> Vec<(String, u64)> {
        self.errors
            .lock()
            .iter()
            .map(|(code, n)| (code.clone(), *n))
            .collect()
    }

    /// Error replies since the last reset.
    pub fn error_replies(&self) -> u64 {
        self.error_replies.load(Ordering::Relaxed)
    }

    /// CONFIG RESETSTAT: per-command and server counters, error counts and histograms. The
    /// slow log and the latency events stay (as in Redis).
    pub fn reset(&self) {
        let commands = (0..self.command_count)
            .map(|i| {
                let id = CommandId(i as u16);
                let mut base = self
                    .baseline
                    .lock()
                    .commands
                    .get(i)
                    .copied()
                    .unwrap_or_default();
                let since = self.command_totals(id);
                base.calls = base.calls.wrapping_add(since.calls);
                base.usec = base.usec.wrapping_add(since.usec);
                base.rejected = base.rejected.wrapping_add(since.rejected);
                base.failed = base.failed.wrapping_add(since.failed);
                base
            })
            .collect();
        let server = self.server_totals_raw();
        *self.baseline.lock() = Baseline { commands, server };
        self.histogram_epoch.fetch_add(1, Ordering::Relaxed);
        self.errors.lock().clear();
        self.error_replies.store(0, Ordering::Relaxed);
        self.expired_keys.store(0, Ordering::Relaxed);
    }

    /// Samples the instantaneous rates if 100 ms passed since the last sample (the node's
    /// background tick calls it).
    pub fn sample_rates(&self, now_ms: u64, input_bytes: u64, output_bytes: u64) {
        let commands = self.server_totals_raw().commands_processed;
        let mut rates = self.rates.lock();
        match rates.last {
            Some((t, ..)) if now_ms < t + RATE_INTERVAL_MS => return,
            Some((t, c, i, o)) => {
                let secs = (now_ms - t) as f64 / 1000.0;
                let per_sec = |now: u64, before: u64| now.saturating_sub(before) as f64 / secs;
                rates.window.push_back((
                    per_sec(commands, c),
                    per_sec(input_bytes, i),
                    per_sec(output_bytes, o),
                ));
                if rates.window.len() > RATE_SAMPLES {
                    rates.window.pop_front();
                }
            }
            None => {}
        }
        rates.last = Some((now_ms, commands, input_bytes, output_bytes));
    }

    /// (ops/s, input KB/s, output KB/s), averaged over the recent samples.
    pub fn instantaneous(&self) -> (f64, f64, f64) {
        let rates = self.rates.lock();
        let n = rates.window.len().max(1) as f64;
        let (ops, input, output) = rates
            .window
            .iter()
            .fold((0.0, 0.0, 0.0), |(a, b, c), (x, y, z)| {
                (a + x, b + y, c + z)
            });
        (ops / n, input / n / 1024.0, output / n / 1024.0)
    }

    /// Adds a slow log entry, trimming the log to `len_max` entries.
    pub fn log_slow(&self, entry: SlowEntry, len_max: usize) {
        let mut log = self.slowlog.lock();
        let (next_id, entries) = &mut *log;
        entries.push_front(SlowEntry {
            id: *next_id,
            ..entry
        });
        *next_id += 1;
        entries.truncate(len_max);
    }

    /// The newest `count` slow log entries (all for `None`).
    pub fn slow_entries(&self, count: Option<usize>) -> Vec<SlowEntry> {
        let log = self.slowlog.lock();
        let count = count.unwrap_or(log.1.len());
        log.1.iter().take(count).cloned().collect()
    }

    pub fn slowlog_len(&self) -> usize {
        self.slowlog.lock().1.len()
    }

    /// SLOWLOG RESET: the entries go, the ids go on.
    pub fn slowlog_reset(&self) {
        self.slowlog.lock().1.clear();
    }

    /// Records a latency sample of `event` (LATENCY): one per second, the worst of it.
    pub fn record_latency(&self, event: &'static str, unix_secs: u64, ms: u64) {
        let mut events = self.latency.lock();
        let e = events.entry(event).or_default();
        e.max_ms = e.max_ms.max(ms);
        match e.samples.back_mut() {
            Some((t, worst)) if *t == unix_secs => *worst = (*worst).max(ms),
            _ => {
                e.samples.push_back((unix_secs, ms));
                if e.samples.len() > LATENCY_SAMPLES_MAX {
                    e.samples.pop_front();
                }
            }
        }
    }

    /// Every latency event with samples.
    pub fn latency_events(&self) -> Vec<(&'static str, LatencyEvent)> {
        self.latency
            .lock()
            .iter()
            .map(|(name, e)| (*name, e.clone()))
            .collect()
    }

    /// LATENCY RESET: drops the named events (all for an empty list, names without case);
    /// returns how many went.
    pub fn latency_reset(&self, names: &[&[u8]]) -> usize {
        let mut events = self.latency.lock();
        if names.is_empty() {
            let n = events.len();
            events.clear();
            return n;
        }
        let before = events.len();
        events.retain(|name, _| {
            !names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name.as_bytes()))
        });
        before - events.len()
    }
}

/// The arguments a slow log entry keeps of `argv`.
pub fn slowlog_args(argv: &[&[u8]]) -> Vec<CompactBytes> {
    let argv = &*crate::cmd::redacted(argv);
    let keep = if argv.len() > SLOWLOG_ARGS_MAX {
        SLOWLOG_ARGS_MAX - 1
    } else {
        argv.len()
    };
    let mut out: Vec<CompactBytes> = argv[..keep]
        .iter()
        .map(|arg| {
            if arg.len() > SLOWLOG_ARG_BYTES_MAX {
                let mut cut = arg[..SLOWLOG_ARG_BYTES_MAX].to_vec();
                cut.extend_from_slice(
                    format!("... ({} more bytes)", arg.len() - SLOWLOG_ARG_BYTES_MAX).as_bytes(),
                );
                CompactBytes::new(&cut)
            } else {
                CompactBytes::new(arg)
            }
        })
        .collect();
    if keep < argv.len() {
        out.push(CompactBytes::new(
            format!("... ({} more arguments)", argv.len() - keep).as_bytes(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_sum_and_reset_by_baseline() {
        let stats = Arc::new(Stats::new(4));
        let id = CommandId(2);
        std::thread::scope(|s| {
            for _ in 0..3 {
                let stats = &stats;
                s.spawn(move || {
                    let call = CallCounts {
                        keyspace_hits: 1,
                        track_latency: true,
                        ..CallCounts::default()
                    };
                    for _ in 0..1000 {
                        stats.record_call(id, 2_000, false, call);
                    }
                    stats.record_call(id, 2_000, true, call);
                    stats.record_rejection(id);
                });
            }
        });
        let t = stats.command_totals(id);
        assert_eq!((t.calls, t.usec, t.failed, t.rejected), (3003, 6006, 3, 3));
        assert_eq!(stats.server_totals().commands_processed, 3003);
        assert_eq!(stats.server_totals().keyspace_hits, 3003);
        let p = stats.latency_percentiles(id, &[50.0]).unwrap();
        assert!((p[0] - 2.0).abs() < 0.13, "{p:?}");
        stats.reset();
        assert_eq!(stats.command_totals(id), CommandTotals::default());
        assert!(stats.latency_percentiles(id, &[50.0]).is_none());
        stats.record_call(id, 1_000, false, CallCounts::default());
        assert_eq!(stats.command_totals(id).calls, 1);
    }

    #[test]
    fn histogram_buckets_cover_their_values() {
        let mut last = 0;
        for v in (1..100_000u64).chain([1 << 29, (1 << 30) - 1]) {
            let b = LatencyHistogram::bucket_of(v);
            assert!(b >= last && b < LATENCY_BUCKETS, "{v}");
            assert!(LatencyHistogram::upper_bound(b) >= v, "{v}");
            assert!(v * 17 / 16 + 1 >= LatencyHistogram::upper_bound(b), "{v}");
            last = b;
        }
    }

    #[test]
    fn error_codes() {
        let stats = Stats::new(1);
        stats.record_error("WRONGTYPE Operation against a key");
        stats.record_error("ERR syntax error");
        stats.record_error("NOSPACE");
        stats.record_error("ERR x");
        assert_eq!(
            stats.errors(),
            vec![("ERR".to_string(), 3), ("WRONGTYPE".to_string(), 1)]
        );
        assert_eq!(stats.error_replies(), 4);
    }

    #[test]
    fn slowlog_trims_like_redis() {
        let long = vec![b'x'; 130];
        let many: Vec<&[u8]> = (0..42).map(|_| &b"a"[..]).collect();
        let args = slowlog_args(&many);
        assert_eq!(args.len(), 32);
        assert_eq!(&args[31][..], b"... (11 more arguments)");
        let args = slowlog_args(&[b"SET", &long]);
        assert_eq!(args[1].len(), 128 + "... (2 more bytes)".len());
        let stats = Stats::new(1);
        for i in 0..5 {
            stats.log_slow(
                SlowEntry {
                    id: 0,
                    unix_secs: i,
                    usec: 1,
                    argv: Vec::new(),
                    client_addr: String::new(),
                    client_name: CompactBytes::EMPTY,
                },
                3,
            );
        }
        let entries = stats.slow_entries(None);
        assert_eq!(
            entries.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![4, 3, 2]
        );
        stats.slowlog_reset();
        assert_eq!(stats.slowlog_len(), 0);
    }
}
