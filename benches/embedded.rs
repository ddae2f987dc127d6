//! Embedded throughput and memory, side by side with a bare `DashMap<Bytes, Bytes>` (foldhash).
//!
//! 1,000,000 keys `key:NNNNNN` with 16-byte values; uniform random GET and SET (overwrite)
//! through Shoal's public API from 1 and 2 threads, the write log on; then the same workload
//! on the bare map. Heap bytes per key come from a counting allocator that counts only while
//! the dataset loads (so its atomics do not slow the timed phases).
//!
//! Prints `RESULT <name> <value>` lines. `SHOAL_BENCH_SECS` sets each phase's length
//! (default 2).

use bytes::Bytes;
use dashmap::DashMap;
use shoal::{Config, Node};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATED: AtomicI64 = AtomicI64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATED.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: forwarding the caller's layout to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATED.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATED.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Keys loaded; `SHOAL_BENCH_key_total` overrides it (a small count isolates CPU cost from
/// cache misses when profiling).
fn key_count() -> usize {
    std::env::var("SHOAL_BENCH_KEYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000)
}
const VALUE: &[u8; 16] = b"0123456789abcdef";

fn key(i: usize) -> Vec<u8> {
    format!("key:{i:06}").into_bytes()
}

/// Whether phase `name` runs (all, unless SHOAL_BENCH_ONLY lists some).
fn selected(name: &str) -> bool {
    std::env::var("SHOAL_BENCH_ONLY").map_or(true, |only| only.split(',').any(|n| n == name))
}

/// Runs `op` on `threads` threads for `secs`; returns total ops per second (0 if the phase
/// `name` is not selected).
fn measure(
    name: &str,
    threads: usize,
    secs: Duration,
    op: impl Fn(&mut fastrand::Rng) + Sync,
) -> f64 {
    if !selected(name) {
        return 0.0;
    }
    let total = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (op, total, stop) = (&op, &total, &stop);
            s.spawn(move || {
                let mut rng = fastrand::Rng::with_seed(t as u64 + 1);
                let mut done = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..1024 {
                        op(&mut rng);
                    }
                    done += 1024;
                }
                total.fetch_add(done, Ordering::Relaxed);
            });
        }
        std::thread::sleep(secs);
        stop.store(true, Ordering::Relaxed);
    });
    total.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Nanoseconds per dependent load from a 64 MiB random cycle of cache lines: the latency floor
/// under every figure above. A GET through Shoal makes about four such loads one after another
/// (the bench's key slot, the key's bytes, the slot header, the bucket); a bare map's loop is
/// short enough that the CPU overlaps the misses of several consecutive operations.
fn dram_latency_ns() -> f64 {
    const LINES: usize = 1 << 20;
    const WORDS_PER_LINE: usize = 8;
    // Sattolo's shuffle: one cycle through every line, in random order.
    let mut order: Vec<usize> = (0..LINES).collect();
    let mut rng = fastrand::Rng::with_seed(9);
    for i in (1..LINES).rev() {
        order.swap(i, rng.usize(..i));
    }
    let mut next = vec![0usize; LINES * WORDS_PER_LINE];
    for i in 0..LINES {
        next[order[i] * WORDS_PER_LINE] = order[(i + 1) % LINES] * WORDS_PER_LINE;
    }
    let steps = 4_000_000;
    let mut at = 0;
    let started = Instant::now();
    for _ in 0..steps {
        at = next[at];
    }
    std::hint::black_box(at);
    started.elapsed().as_secs_f64() * 1e9 / steps as f64
}

fn report(name: &str, value: f64) {
    println!("RESULT {name} {value:.0}");
}

fn main() {
    let secs = Duration::from_secs_f64(
        std::env::var("SHOAL_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2.0),
    );
    let key_total = key_count();
    let keys: Arc<Vec<Vec<u8>>> = Arc::new((0..key_total).map(key).collect());

    // ---- Shoal -----------------------------------------------------------------------------
    COUNTING.store(true, Ordering::SeqCst);
    let before = ALLOCATED.load(Ordering::SeqCst);
    let node = Node::open(Config::new()).expect("open node");
    for k in keys.iter() {
        node.set(k, VALUE).expect("set");
    }
    let bytes_per_key = (ALLOCATED.load(Ordering::SeqCst) - before) as f64 / key_total as f64;
    COUNTING.store(false, Ordering::SeqCst);
    assert_eq!(
        node.execute(&["DBSIZE"]),
        shoal::Reply::Int(key_total as i64)
    );

    let get = |rng: &mut fastrand::Rng| {
        let v = node.get(&keys[rng.usize(..key_total)]).expect("get");
        debug_assert!(v.is_some());
        std::hint::black_box(v);
    };
    let set = |rng: &mut fastrand::Rng| {
        node.set(&keys[rng.usize(..key_total)], VALUE).expect("set");
    };
    let shoal_get_1t = measure("shoal_get_1t", 1, secs, get);
    let shoal_get_2t = measure("shoal_get_2t", 2, secs, get);
    let shoal_set_1t = measure("shoal_set_1t", 1, secs, set);
    let shoal_set_2t = measure("shoal_set_2t", 2, secs, set);
    let log_bytes = node.engine().log().end().0;
    drop(node);

    // ---- bare DashMap ----------------------------------------------------------------------
    let map: DashMap<Bytes, Bytes, foldhash::fast::RandomState> =
        DashMap::with_hasher(Default::default());
    let key_bytes: Vec<Bytes> = keys.iter().map(|k| Bytes::copy_from_slice(k)).collect();
    let value = Bytes::from_static(VALUE);
    for k in &key_bytes {
        map.insert(k.clone(), value.clone());
    }
    let dash_get = |rng: &mut fastrand::Rng| {
        let v = map
            .get(&key_bytes[rng.usize(..key_total)][..])
            .map(|v| v.value().clone());
        std::hint::black_box(v);
    };
    let dash_set = |rng: &mut fastrand::Rng| {
        map.insert(key_bytes[rng.usize(..key_total)].clone(), value.clone());
    };
    let dashmap_get_1t = measure("dashmap_get_1t", 1, secs, dash_get);
    let dashmap_get_2t = measure("dashmap_get_2t", 2, secs, dash_get);
    let dashmap_set_1t = measure("dashmap_set_1t", 1, secs, dash_set);
    let dashmap_set_2t = measure("dashmap_set_2t", 2, secs, dash_set);

    report("shoal_get_1t", shoal_get_1t);
    report("shoal_get_2t", shoal_get_2t);
    report("shoal_set_1t", shoal_set_1t);
    report("shoal_set_2t", shoal_set_2t);
    report("dashmap_get_1t", dashmap_get_1t);
    report("dashmap_get_2t", dashmap_get_2t);
    report("dashmap_set_1t", dashmap_set_1t);
    report("dashmap_set_2t", dashmap_set_2t);
    println!("RESULT shoal_bytes_per_key {bytes_per_key:.1}");
    println!("RESULT ratio_get_2t {:.2}", shoal_get_2t / dashmap_get_2t);
    println!("RESULT ratio_set_2t {:.2}", shoal_set_2t / dashmap_set_2t);
    println!("RESULT dram_latency_ns {:.0}", dram_latency_ns());
    println!("# write log bytes appended during the run: {log_bytes}");
    println!("# targets: ratio_get_2t >= 0.7, ratio_set_2t >= 0.6, shoal_bytes_per_key <= 90 (Redis 7: ~105)");
}
