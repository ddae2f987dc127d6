//! Blocked clients (BLPOP, BLMOVE, BZPOPMIN, ...; WAIT and WAITAOF wait on offsets instead,
//! see [`super::acks`]).
//!
//! A blocking command that finds nothing registers a [`Waiter`] on each of its keys, in the
//! same critical section in which it looked (so a push cannot slip in between and be missed).
//! A write that touches a key with waiters marks it ready; right after that write commits, the
//! writing thread serves the waiters of the key in arrival order, each under the locks its
//! operation needs, and hands each its reply. The pop a waiter receives is logged as the
//! plain command (LPOP, LMOVE, ZPOPMIN...), so replaying the log needs no blocking.
//!
//! A waiter is claimed before its pop runs, and a timeout only cancels an unclaimed waiter, so
//! an element is never popped for a client that already gave up.

use super::acks::AckWait;
use super::ctx::{Ctx, Effects};
use super::locks::{Held, LockPlan};
use super::Engine;
use crate::keyspace::bytes::CompactBytes;
use crate::keyspace::value::ValueType;
use crate::keyspace::SlotData;
use crate::reply::Reply;
use crate::resp::Protocol;
use crate::slot::SlotId;
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

/// What a blocked client does once one of its keys has data.
#[derive(Clone, Debug)]
pub enum BlockedOp {
    /// BLPOP/BRPOP (`count: None`, reply `[key, element]`) and BLMPOP (reply `[key, [elements]]`).
    ListPop { left: bool, count: Option<usize> },
    /// BLMOVE and BRPOPLPUSH.
    ListMove {
        from_left: bool,
        to_left: bool,
        dest: CompactBytes,
    },
    /// BZPOPMIN/BZPOPMAX (`count: None`, reply `[key, member, score]`) and BZMPOP.
    ZPop { min: bool, count: Option<usize> },
}

impl BlockedOp {
    /// The reply when the timeout expires: a null array for every blocking command (BLMOVE
    /// too, as Redis replies; inside EXEC its handler replies a null bulk instead).
    pub fn timeout_reply(&self) -> Reply {
        Reply::NilArray
    }

    /// Whether this operation can be served from a value of `value_type`.
    fn serves(&self, value_type: ValueType) -> bool {
        match self {
            BlockedOp::ListPop { .. } | BlockedOp::ListMove { .. } => value_type == ValueType::List,
            BlockedOp::ZPop { .. } => value_type == ValueType::ZSet,
        }
    }
}

/// A blocking command's request to wait, built by its handler.
pub struct BlockRequest {
    pub keys: Vec<CompactBytes>,
    /// `None`: wait forever.
    pub timeout: Option<Duration>,
    pub op: BlockedOp,
}

enum State {
    /// Registered; holds an async caller's waker.
    Waiting(Option<Waker>),
    /// A server is running this waiter's pop; a timeout now waits for its outcome.
    Claimed(Option<Waker>),
    Done(Reply),
    /// The caller took the reply or gave up: servers skip it and drop it from queues.
    Finished,
}

pub struct Waiter {
    db: usize,
    keys: Vec<CompactBytes>,
    op: BlockedOp,
    proto: Protocol,
    state: Mutex<State>,
    cond: Condvar,
}

impl Waiter {
    fn is_waiting(&self) -> bool {
        matches!(*self.state.lock(), State::Waiting(_))
    }

    fn claim(&self) -> bool {
        let mut state = self.state.lock();
        match std::mem::replace(&mut *state, State::Finished) {
            State::Waiting(waker) => {
                *state = State::Claimed(waker);
                true
            }
            other => {
                *state = other;
                false
            }
        }
    }

    /// Returns a claimed waiter to waiting (nothing could be popped for it after all).
    fn unclaim(&self) {
        let mut state = self.state.lock();
        if let State::Claimed(waker) = std::mem::replace(&mut *state, State::Finished) {
            *state = State::Waiting(waker);
        }
        self.cond.notify_all();
    }

    fn complete(&self, reply: Reply) {
        let mut state = self.state.lock();
        if let State::Claimed(Some(waker)) = std::mem::replace(&mut *state, State::Done(reply)) {
            waker.wake();
        }
        self.cond.notify_all();
    }

    /// Removes this waiter from the queues of all its keys.
    fn unregister(self: &Arc<Self>, engine: &Engine) {
        for key in &self.keys {
            let Some(slot) = engine.keyspace.used_slot(self.db, SlotId::of_key(key)) else {
                continue;
            };
            let mut data = slot.data.write();
            let extras = data.extras_mut();
            if let Some(queue) = extras.blocked.get_mut(key) {
                queue.retain(|w| !Arc::ptr_eq(w, self));
                if queue.is_empty() {
                    extras.blocked.remove(key);
                }
            }
            data.release_extras();
        }
    }
}

/// A blocked command, returned to the caller to wait on.
pub struct Blocked {
    on: On,
    timeout: Option<Duration>,
}

/// What a blocked command waits for.
enum On {
    /// Data in one of its keys.
    Keys(Arc<Waiter>),
    /// Its last write fsynced / acknowledged by replicas.
    Acks(AckWait),
}

impl Blocked {
    pub(crate) fn on_acks(wait: AckWait, timeout: Option<Duration>) -> Blocked {
        Blocked {
            on: On::Acks(wait),
            timeout,
        }
    }

    /// How long the command may block (`None`: forever).
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Blocks this thread until the command is served or times out.
    pub fn wait(self, engine: &Engine) -> Reply {
        let deadline = self.timeout.map(|t| Instant::now() + t);
        let waiter = match &self.on {
            On::Keys(waiter) => waiter,
            On::Acks(wait) => return wait.wait(deadline),
        };
        let mut state = waiter.state.lock();
        loop {
            if let State::Done(_) = &*state {
                if let State::Done(reply) = std::mem::replace(&mut *state, State::Finished) {
                    return reply;
                }
            }
            let expired = deadline.is_some_and(|d| Instant::now() >= d);
            match (&*state, deadline) {
                (State::Waiting(_), Some(_)) if expired => {
                    *state = State::Finished;
                    drop(state);
                    waiter.unregister(engine);
                    return waiter.op.timeout_reply();
                }
                // Not served yet and time left: sleep until served or the deadline.
                (State::Waiting(_), Some(d)) => {
                    waiter.cond.wait_until(&mut state, d);
                }
                // Waiting without a deadline, or claimed by a server: wait for the outcome.
                _ => waiter.cond.wait(&mut state),
            }
        }
    }

    /// Non-blocking check for async callers: the reply if served, else registers `waker`.
    pub fn poll_reply(&self, waker: &Waker) -> Option<Reply> {
        let waiter = match &self.on {
            On::Keys(waiter) => waiter,
            On::Acks(wait) => return wait.poll(waker),
        };
        let mut state = waiter.state.lock();
        match &mut *state {
            State::Done(_) => match std::mem::replace(&mut *state, State::Finished) {
                State::Done(reply) => Some(reply),
                _ => None,
            },
            State::Waiting(w) | State::Claimed(w) => {
                *w = Some(waker.clone());
                None
            }
            State::Finished => None,
        }
    }

    /// Gives up waiting (timeout, disconnect, CLIENT UNBLOCK): returns the reply if the command
    /// was served meanwhile, else `None` after unregistering. A claimed waiter is waited for.
    pub fn cancel(self, engine: &Engine) -> Option<Reply> {
        let waiter = match &self.on {
            On::Keys(waiter) => waiter,
            // Nothing registered, nothing to take back.
            On::Acks(_) => return None,
        };
        let mut state = waiter.state.lock();
        while matches!(*state, State::Claimed(_)) {
            waiter.cond.wait(&mut state);
        }
        match std::mem::replace(&mut *state, State::Finished) {
            State::Done(reply) => Some(reply),
            _ => {
                drop(state);
                waiter.unregister(engine);
                None
            }
        }
    }

    /// The reply this command gives when it times out.
    pub fn timeout_reply(&self) -> Reply {
        match &self.on {
            On::Keys(waiter) => waiter.op.timeout_reply(),
            // WAIT and WAITAOF report how far they got.
            On::Acks(wait) => wait.reply(),
        }
    }
}

impl Drop for Blocked {
    /// A caller that drops a blocked command without waiting or cancelling gives up: servers
    /// skip it from now on (and drop it from the key's queue), so nothing is popped for nobody.
    fn drop(&mut self) {
        let On::Keys(waiter) = &self.on else {
            return;
        };
        let mut state = waiter.state.lock();
        if matches!(*state, State::Waiting(_)) {
            *state = State::Finished;
        }
    }
}

/// Registers a waiter on every key of `request`; the command holds write locks on them.
pub(crate) fn register(
    held: &mut Held<'_>,
    request: BlockRequest,
    db: usize,
    proto: Protocol,
) -> Blocked {
    let waiter = Arc::new(Waiter {
        db,
        keys: request.keys,
        op: request.op,
        proto,
        state: Mutex::new(State::Waiting(None)),
        cond: Condvar::new(),
    });
    for key in &waiter.keys {
        if let Some(data) = held
            .get_mut(db, SlotId::of_key(key))
            .and_then(|h| h.guard.data_mut())
        {
            purge_finished(data, key);
            let queue = data.extras_mut().blocked.entry(key.clone()).or_default();
            if !queue.iter().any(|w| Arc::ptr_eq(w, &waiter)) {
                queue.push_back(waiter.clone());
            }
        }
    }
    Blocked {
        on: On::Keys(waiter),
        timeout: request.timeout,
    }
}

/// Serves clients blocked on `ready` keys, in arrival order per key, until each key has no
/// data or no waiter that can use it. Keys that become ready meanwhile (BLMOVE's destination)
/// are served too.
pub(crate) fn serve(engine: &Engine, ready: Vec<(usize, CompactBytes)>) {
    let mut queue: VecDeque<(usize, CompactBytes)> = ready.into();
    while let Some((db, key)) = queue.pop_front() {
        loop {
            match serve_next(engine, db, &key) {
                Served::Yes(more) => queue.extend(more),
                Served::Retry => {}
                Served::NoData => break,
            }
        }
    }
}

/// The first live waiter on `key` whose operation can use the key's current (unexpired) value.
fn first_servable(data: &SlotData, key: &[u8], now_ms: u64) -> Option<Arc<Waiter>> {
    let entry = data.get(key).filter(|e| !e.is_expired(now_ms))?;
    let value_type = entry.value.value_type();
    let queue = data.extras()?.blocked.get(key)?;
    queue
        .iter()
        .find(|w| w.op.serves(value_type) && w.is_waiting())
        .cloned()
}

/// Drops waiters that finished (gave up or were served elsewhere) from `key`'s queue.
fn purge_finished(data: &mut SlotData, key: &[u8]) {
    let extras = data.extras_mut();
    if let Some(queue) = extras.blocked.get_mut(key) {
        queue.retain(|w| !matches!(*w.state.lock(), State::Finished));
        if queue.is_empty() {
            extras.blocked.remove(key);
        }
    }
    data.release_extras();
}

enum Served {
    /// Served; these keys became ready in turn.
    Yes(Vec<(usize, CompactBytes)>),
    /// The candidate changed between looking and locking; look again.
    Retry,
    /// The key cannot serve anyone now.
    NoData,
}

fn serve_next(engine: &Engine, db: usize, key: &CompactBytes) -> Served {
    let slot = SlotId::of_key(key);
    let now = engine.now_ms();
    let Some(cell) = engine.keyspace.used_slot(db, slot) else {
        return Served::NoData;
    };
    let (candidate, queued) = {
        let data = cell.data.read();
        let queued = data
            .extras()
            .and_then(|e| e.blocked.get(key.as_slice()))
            .map_or(0, |q| q.len());
        (first_servable(&data, key, now), queued)
    };
    let Some(waiter) = candidate else {
        // Nobody can be served; drop any waiters that gave up while we are here.
        if queued > 0 {
            purge_finished(&mut cell.data.write(), key);
        }
        return Served::NoData;
    };
    let mut plan = LockPlan::default();
    plan.add_key(db, key);
    if let BlockedOp::ListMove { dest, .. } = &waiter.op {
        plan.add_key(db, dest);
    }
    let mut held = Held::acquire(engine, &plan, true);
    let Some(data) = held.get_mut(db, slot).and_then(|h| h.guard.data_mut()) else {
        return Served::NoData;
    };
    purge_finished(data, key);
    let still_first = first_servable(data, key, now).is_some_and(|w| Arc::ptr_eq(&w, &waiter));
    if !still_first || !waiter.claim() {
        return Served::Retry;
    }
    let mut fx = Effects::default();
    let reply = {
        let mut cx = Ctx::new(engine, db, waiter.proto, false, &mut held, &mut fx);
        crate::cmd::serve_blocked(&mut cx, &waiter.op, key)
    };
    // Commit whatever the attempt did (a lazily expired key is a logged DEL) before anything
    // else, served or not.
    if !fx.batch.is_empty() {
        engine.log.append(&fx.batch, true);
    }
    held.publish();
    drop(held);
    let Some(reply) = reply else {
        waiter.unclaim();
        return Served::NoData;
    };
    waiter.complete(reply);
    waiter.unregister(engine);
    Served::Yes(std::mem::take(&mut fx.ready))
}
