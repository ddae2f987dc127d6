//! Waking the log's async readers (replicas' senders), and when.
//!
//! A sender that found nothing waits for the next append, so that a replica receives a write
//! as its client gets the reply (a failover then loses nothing the old primary acknowledged,
//! as Redis's write-then-reply loses nothing). A busy sender never sets `reader_idle`: no
//! wake-up per write.
//!
//! The RESP workers defer that wake-up ([`defer_wakes_on_this_thread`]): a wake-up per append
//! sent the replica a QUIC packet of a kilobyte or so each time (two threads woken, a packet
//! encrypted, sent, received and acknowledged for every few commands), where Redis writes to
//! its replicas once per event loop. A worker that runs out of work after a quiet spell wakes
//! the senders at once ([`before_park`]). A worker under load, whose last park was short,
//! gathers up to [`DEFER_MAX`] of writes or [`WAKE_BYTES`] per wake-up: a sender wake-up costs
//! two context switches, which on a loaded host cost more than the sending itself (SET -P 16:
//! half the sender's CPU per write). Its [`flush_deferred_wakes_when_due`] task keeps the
//! bound when the worker goes to sleep first. The price: under load, a client may have its
//! reply up to [`DEFER_MAX`] before the replica is sent the write (so a primary killed then
//! loses it, as replication without WAIT allows); WAIT flushes at once.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the log wakes its async readers.
#[derive(Default)]
pub(super) struct Wake {
    reader_idle: AtomicBool,
    /// Bytes appended since the reader went idle.
    unsent_bytes: AtomicUsize,
    appended: event_listener::Event,
}

/// An idle reader is woken at once when this much is waiting for it: a full QUIC datagram on
/// a link whose MTU discovery found 64 KB.
const WAKE_BYTES: usize = 64 * 1024;

/// The longest a deferred wake-up waits.
const DEFER_MAX: Duration = Duration::from_millis(1);

/// A worker that was parked for less than this came back to a load rather than to a write
/// after a quiet spell.
const BUSY_PARK_MAX: Duration = Duration::from_micros(100);

/// The wake-ups a deferring thread owes, since when, and whether it is under load.
#[derive(Default)]
struct Deferred {
    wakes: Vec<Arc<Wake>>,
    since: Option<Instant>,
    parked_at: Option<Instant>,
    /// The last park ended within [`BUSY_PARK_MAX`].
    busy: bool,
}

thread_local! {
    static DEFERRING: Cell<bool> = const { Cell::new(false) };
    static DEFERRED: RefCell<Deferred> = RefCell::default();
    /// Starts this thread's [`flush_deferred_wakes_when_due`] on a deferral.
    static DUE: Arc<tokio::sync::Notify> = Arc::default();
}

impl Wake {
    /// After an append of `added_bytes`: wakes the readers that found nothing, now or, on a
    /// deferring thread, later. The flag was set before their last read took the log's lock,
    /// and this runs after the append released it: either that read saw the append, or this
    /// sees the flag.
    pub(super) fn on_append(self: &Arc<Self>, added_bytes: usize) {
        if !self.reader_idle.load(Ordering::Acquire) {
            return;
        }
        let unsent = self.unsent_bytes.fetch_add(added_bytes, Ordering::Relaxed) + added_bytes;
        if unsent < WAKE_BYTES && DEFERRING.with(Cell::get) {
            DEFERRED.with(|d| {
                let mut d = d.borrow_mut();
                if !d.wakes.iter().any(|w| Arc::ptr_eq(w, self)) {
                    d.wakes.push(Arc::clone(self));
                }
                d.since.get_or_insert_with(Instant::now);
            });
            return;
        }
        self.notify();
    }

    /// For a reader that found nothing: a listener the next append fires. Read once more
    /// before awaiting it (an append may have come in between).
    pub(super) fn listen(&self) -> event_listener::EventListener {
        let listener = self.appended.listen();
        self.unsent_bytes.store(0, Ordering::Relaxed);
        self.reader_idle.store(true, Ordering::SeqCst);
        listener
    }

    /// Wakes every reader for good (node shutdown).
    pub(super) fn close(&self) {
        self.appended.notify(usize::MAX);
    }

    fn notify(&self) {
        if self.reader_idle.swap(false, Ordering::AcqRel) {
            self.appended.notify(usize::MAX);
        }
    }
}

/// Makes this thread's appends defer waking idle readers. The thread's runtime calls
/// [`before_park`] and [`after_park`] around its parks and runs
/// [`flush_deferred_wakes_when_due`]; the thread calls [`flush_stale_deferred_wakes`] between
/// units of work.
pub fn defer_wakes_on_this_thread() {
    DEFERRING.with(|d| d.set(true));
}

/// Wakes the readers this thread's appends left waiting.
pub fn flush_deferred_wakes() {
    let wakes = DEFERRED.with(|d| {
        let mut d = d.borrow_mut();
        d.since = None;
        std::mem::take(&mut d.wakes)
    });
    for wake in wakes {
        wake.notify();
    }
}

/// [`flush_deferred_wakes`], when the oldest has waited `DEFER_MAX` (1 ms).
pub fn flush_stale_deferred_wakes() {
    let stale = DEFERRED.with(|d| d.borrow().since.is_some_and(|t| t.elapsed() >= DEFER_MAX));
    if stale {
        flush_deferred_wakes();
    }
}

/// A deferring thread's runtime ran out of ready tasks: wakes the readers its appends left
/// waiting, unless the thread is under load and the oldest has waited less than
/// `DEFER_MAX`; then [`flush_deferred_wakes_when_due`] is woken to keep that bound.
pub fn before_park() {
    let now = Instant::now();
    let hold = DEFERRED.with(|d| {
        let mut d = d.borrow_mut();
        d.parked_at = Some(now);
        d.busy && d.since.is_some_and(|since| now - since < DEFER_MAX)
    });
    if hold {
        DUE.with(|due| due.notify_one());
    } else {
        flush_deferred_wakes();
    }
}

/// A deferring thread's runtime is back from a park: a short one means a load.
pub fn after_park() {
    DEFERRED.with(|d| {
        let mut d = d.borrow_mut();
        d.busy = d.parked_at.is_some_and(|at| at.elapsed() < BUSY_PARK_MAX);
    });
}

/// Runs on a deferring thread's runtime for as long as it runs: wakes the readers that
/// [`before_park`] left waiting once the oldest has waited `DEFER_MAX`, even if the thread
/// sleeps meanwhile.
pub async fn flush_deferred_wakes_when_due() {
    let due = DUE.with(Arc::clone);
    loop {
        due.notified().await;
        while let Some(since) = DEFERRED.with(|d| d.borrow().since) {
            tokio::time::sleep_until((since + DEFER_MAX).into()).await;
            flush_stale_deferred_wakes();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::tests::{log, set};
    use crate::log::Batch;

    fn woken(idle: event_listener::EventListener) -> bool {
        use event_listener::Listener;
        idle.wait_timeout(Duration::ZERO).is_some()
    }

    #[test]
    fn a_deferring_thread_wakes_an_idle_reader_when_it_flushes_or_enough_waits() {
        let log = log(1 << 20, 1 << 20);
        std::thread::spawn(move || {
            defer_wakes_on_this_thread();
            let idle = log.listen_appended();
            log.append(&set(0, "k"), false);
            assert!(!woken(idle), "a small append woke the reader at once");
            let idle = log.listen_appended();
            flush_deferred_wakes();
            assert!(woken(idle), "flushing did not wake the reader");

            let idle = log.listen_appended();
            log.append(&set(0, "k"), false);
            std::thread::sleep(DEFER_MAX);
            flush_stale_deferred_wakes();
            assert!(
                woken(idle),
                "a wake-up deferred past DEFER_MAX stayed deferred"
            );

            let idle = log.listen_appended();
            let mut big = Batch::default();
            big.push(0, &[b"SET", b"k", &vec![b'v'; WAKE_BYTES]]);
            log.append(&big, false);
            assert!(woken(idle), "WAKE_BYTES waiting did not wake the reader");
        })
        .join()
        .unwrap();
    }

    /// A worker that parks after a quiet spell wakes the reader as it parks; under load (short
    /// parks) it holds the wake-up, and its task wakes the reader after DEFER_MAX (tokio's
    /// timer rounds up to the millisecond) when no more work comes.
    #[test]
    fn a_worker_holds_wake_ups_only_under_load_and_within_defer_max() {
        let log = log(1 << 20, 1 << 20);
        let idle_reader = || (log.listen_appended(), Arc::clone(&log.wake));
        let reader_waits = |wake: &Wake| wake.reader_idle.load(Ordering::SeqCst);
        defer_wakes_on_this_thread();

        // Quiet: a long park, then a write; the next park wakes the reader.
        before_park();
        std::thread::sleep(BUSY_PARK_MAX * 2);
        after_park();
        let (idle, wake) = idle_reader();
        log.append(&set(0, "k"), false);
        assert!(
            reader_waits(&wake),
            "a small append woke the reader at once"
        );
        before_park();
        assert!(woken(idle), "a write after a quiet spell was held");
        after_park();

        // Loaded: short parks (repeated, should this thread be preempted in between).
        for _ in 0..100 {
            before_park();
            after_park();
            if DEFERRED.with(|d| d.borrow().busy) {
                break;
            }
        }
        let (idle, wake) = idle_reader();
        let written = Instant::now();
        log.append(&set(0, "k"), false);
        before_park();
        assert!(
            reader_waits(&wake) || written.elapsed() >= DEFER_MAX,
            "a write under load woke the reader at once"
        );
        // The worker's task wakes the reader in time.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            tokio::select! {
                _ = flush_deferred_wakes_when_due() => unreachable!(),
                woken = tokio::time::timeout(Duration::from_secs(5), idle) => {
                    woken.expect("the task never woke the reader");
                }
            }
        });
        let waited = written.elapsed();
        assert!(
            waited >= DEFER_MAX && waited < DEFER_MAX * 50,
            "woken after {waited:?}"
        );
    }
}
