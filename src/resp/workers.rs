//! The listener's worker threads (`io-threads`, one per core by default): each runs a
//! single-threaded tokio runtime serving the connections seated on it.
//!
//! A connection stays on its worker, so no task migrates between threads and no thread wakes
//! another to share work (a work-stealing runtime spent about a quarter of its time in futex
//! wake-ups and context switches under redis-benchmark's load). The one exception is a hot
//! slot: a client that keeps waiting for a slot lock another worker holds moves to that worker
//! (see `conn`), so that the clients of a hot key end up served by one thread, one after the
//! other, instead of handing the lock back and forth between threads, where every hand-off
//! parks a thread, and on a loaded machine the wake-up can take milliseconds.
//!
//! Moves go toward the worker with more connections (ties: the lower index), so the clients
//! of a hot key converge on one worker rather than swap sides.

use super::conn::Moving;
use crate::affinity;
use crate::config::Config;
use crate::engine::locks::{self, Wait};
use crate::slot::SlotId;
use std::cell::Cell;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};

/// Connections on their way to one worker; a move that finds it full does not happen.
const INBOX_MAX: usize = 256;

pub(crate) struct Workers {
    handles: Vec<Handle>,
    inboxes: Vec<mpsc::Sender<Moving>>,
    /// Connections seated on each worker.
    seated: Vec<AtomicUsize>,
}

impl Workers {
    /// Starts `count` worker threads, placed as `config`'s `server_cpulist` says, each running
    /// until `stopped`.
    pub fn start(
        count: usize,
        config: &Arc<Config>,
        stopped: &watch::Receiver<bool>,
    ) -> io::Result<(Arc<Workers>, Vec<std::thread::JoinHandle<()>>)> {
        let mut workers = Workers {
            handles: Vec::with_capacity(count),
            inboxes: Vec::with_capacity(count),
            seated: (0..count).map(|_| AtomicUsize::new(0)).collect(),
        };
        let mut threads = Vec::with_capacity(count);
        for index in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                // This worker's appends wake replicas' senders when it runs out of work, as
                // Redis writes to its replicas once per event loop, or under load up to a
                // millisecond later (see `crate::log::wake`).
                .on_thread_park(crate::log::before_park)
                .on_thread_unpark(crate::log::after_park)
                .build()?;
            runtime.spawn(crate::log::flush_deferred_wakes_when_due());
            let (inbox, arrivals) = mpsc::channel(INBOX_MAX);
            workers.handles.push(runtime.handle().clone());
            workers.inboxes.push(inbox);
            let stopped = stopped.clone();
            let config = Arc::clone(config);
            threads.push(
                std::thread::Builder::new()
                    .name("shoal-resp".into())
                    .spawn(move || {
                        affinity::place_current_thread(&config, affinity::Threads::Server);
                        locks::tag_thread(tag_of(index));
                        crate::log::defer_wakes_on_this_thread();
                        runtime.block_on(receive_moves(arrivals, stopped));
                        crate::log::flush_deferred_wakes();
                        // Connections still open are dropped (closed) with the runtime.
                        runtime.shutdown_timeout(Duration::from_secs(1));
                    })?,
            );
        }
        Ok((Arc::new(workers), threads))
    }

    /// Seats a new connection on the worker with the fewest.
    pub fn seat(self: &Arc<Self>) -> Seat {
        let index = (0..self.seated.len())
            .min_by_key(|&i| self.seated[i].load(Ordering::Relaxed))
            .unwrap_or(0);
        self.seated[index].fetch_add(1, Ordering::Relaxed);
        Seat {
            workers: Arc::clone(self),
            index,
        }
    }

    /// The runtime of the first worker (where the accept loops run).
    pub fn first(&self) -> &Handle {
        &self.handles[0]
    }
}

/// The worker's own loop: spawns the connections that move to it, until the listener stops;
/// then closes those still on their way (a queued connection holds its seat, and through it
/// the inbox's sender: left in the queue, it would never be dropped).
async fn receive_moves(mut arrivals: mpsc::Receiver<Moving>, mut stopped: watch::Receiver<bool>) {
    while !*stopped.borrow_and_update() {
        tokio::select! {
            moving = arrivals.recv() => match moving {
                Some(moving) => drop(tokio::spawn(super::conn::resume(moving))),
                None => return,
            },
            changed = stopped.changed() => if changed.is_err() { break },
        }
    }
    arrivals.close();
    // `None` once every reserved place was used or given up.
    while let Some(moving) = arrivals.recv().await {
        super::conn::discard(moving);
    }
}

/// What this worker thread learned from its waits for slot locks. Per thread, because each
/// worker runs on its own thread and only its own connections consult it.
#[derive(Clone, Copy, Default)]
struct Hot {
    /// The last lock it had to wait for.
    last: Option<Wait>,
    /// Whether the wait before that was for the same slot: then the slot is hot, and the
    /// clients using it move to its holder.
    repeated: bool,
}

thread_local! {
    static HOT: Cell<Hot> = const { Cell::new(Hot { last: None, repeated: false }) };
}

fn same_slot(a: &Wait, b: &Wait) -> bool {
    (a.db, a.slot) == (b.db, b.slot)
}

/// The slot-lock tag of worker `index` (0 is left for threads that are no worker).
fn tag_of(index: usize) -> u16 {
    u16::try_from(index + 1).unwrap_or(u16::MAX)
}

/// A connection's place on a worker; counted in [`Workers::seat`] until dropped.
pub(crate) struct Seat {
    workers: Arc<Workers>,
    index: usize,
}

impl Seat {
    /// The runtime of the worker this seat is on.
    pub fn handle(&self) -> &Handle {
        &self.workers.handles[self.index]
    }

    /// Where a client seated here should move after a batch that waited for the lock in
    /// `waited` (if it did) and ended holding `locked` (if one slot): to the worker serving the
    /// slot this worker found taken twice in a row, when the batch used it.
    pub fn after_batch(
        &self,
        waited: Option<Wait>,
        locked: Option<(usize, SlotId)>,
    ) -> Option<usize> {
        let hot = HOT.with(|cell| {
            let mut hot = cell.get();
            if let Some(wait) = waited {
                hot.repeated = hot.last.is_some_and(|last| same_slot(&last, &wait));
                hot.last = Some(wait);
            }
            cell.set(hot);
            hot
        });
        let wait = hot.last.filter(|_| hot.repeated)?;
        if locked != Some((wait.db, wait.slot)) {
            return None;
        }
        self.move_target(wait.holder)
    }

    /// The worker tagged `holder`, when it serves more connections than this one (or as many,
    /// and comes first): clients move toward it, never back.
    fn move_target(&self, holder: u16) -> Option<usize> {
        let to = usize::from(holder).checked_sub(1)?;
        let seated = |i: usize| {
            self.workers
                .seated
                .get(i)
                .map(|n| n.load(Ordering::Relaxed))
        };
        let (there, here) = (seated(to)?, seated(self.index)?);
        (to != self.index && (there > here || (there == here && to < self.index))).then_some(to)
    }

    /// A place in worker `to`'s inbox, and this seat moved there; `None` when the inbox is
    /// full (then nothing moves).
    pub fn move_to(&mut self, to: usize) -> Option<mpsc::OwnedPermit<Moving>> {
        let permit = self.workers.inboxes[to].clone().try_reserve_owned().ok()?;
        self.workers.seated[to].fetch_add(1, Ordering::Relaxed);
        self.workers.seated[self.index].fetch_sub(1, Ordering::Relaxed);
        self.index = to;
        Some(permit)
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.workers.seated[self.index].fetch_sub(1, Ordering::Relaxed);
    }
}
