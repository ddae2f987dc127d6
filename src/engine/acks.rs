//! WAIT and WAITAOF: a client waits until its last write is fsynced here and/or acknowledged
//! by replicas.
//!
//! Nothing is registered anywhere: a waiter compares its offset with how far the log is
//! fsynced (and acknowledged), and listens for the next change of those offsets (an fsync, a
//! replica's acknowledgement). A waiter that
//! needs the local fsync asks the AOF writer for it, so WAITAOF returns within an fsync under
//! every `appendfsync` policy (Redis waits for the next scheduled fsync, forever with `no`).

use crate::log::Offset;
use crate::persist::aof::Aof;
use crate::repl;
use crate::reply::Reply;
use event_listener::EventListener;
use parking_lot::Mutex;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::Instant;

/// WAITAOF numlocal 1 without an AOF.
pub(crate) const AOF_OFF: &str =
    "ERR WAITAOF cannot be used when numlocal is set but appendonly is disabled.";

/// What a client waits for.
#[derive(Clone, Copy, Debug)]
pub enum AckGoal {
    /// WAIT numreplicas: replicas that received the write.
    Received { replicas: i64 },
    /// WAITAOF numlocal numreplicas: the local AOF and replicas' AOFs have it on disk.
    Fsynced { local: bool, replicas: i64 },
}

/// A client's wait for its write at `offset`.
pub struct AckWait {
    aof: Arc<Aof>,
    repl: Arc<repl::State>,
    offset: Offset,
    goal: AckGoal,
    /// Registered before each look, so that a change between the look and the sleep wakes us.
    listeners: Mutex<Vec<EventListener>>,
}

impl AckWait {
    pub(crate) fn new(
        aof: Arc<Aof>,
        repl: Arc<repl::State>,
        offset: Offset,
        goal: AckGoal,
    ) -> AckWait {
        if let AckGoal::Fsynced { local: true, .. } = goal {
            aof.want_fsync(offset);
        }
        AckWait {
            aof,
            repl,
            offset,
            goal,
            listeners: Mutex::new(Vec::new()),
        }
    }

    /// The reply as things stand: WAIT's replica count, WAITAOF's `[local, replicas]`.
    pub fn reply(&self) -> Reply {
        match self.goal {
            AckGoal::Received { .. } => Reply::Int(self.replicas_acked(false)),
            AckGoal::Fsynced { local, .. } => {
                if local && !self.aof.is_configured() {
                    return Reply::error(AOF_OFF);
                }
                // Without an AOF nothing is fsynced here, as Redis counts it.
                let fsynced = self.aof.is_enabled() && self.aof.is_durable(self.offset);
                Reply::Array(vec![
                    Reply::Int(fsynced as i64),
                    Reply::Int(self.replicas_acked(true)),
                ])
            }
        }
    }

    /// The reply if the wait is over: the goal is met, or it can no longer be.
    pub fn settled(&self) -> Option<Reply> {
        let met = match self.goal {
            AckGoal::Received { replicas } => self.replicas_acked(false) >= replicas,
            AckGoal::Fsynced { local, replicas } => {
                if local && !self.aof.is_configured() {
                    return Some(Reply::error(AOF_OFF));
                }
                (!local || self.aof.is_durable(self.offset))
                    && self.replicas_acked(true) >= replicas
            }
        };
        met.then(|| self.reply())
    }

    /// Replicas that acknowledged the offset (as fsynced, for WAITAOF).
    fn replicas_acked(&self, fsynced: bool) -> i64 {
        self.repl.replicas_acked(self.offset, fsynced)
    }

    /// The reply if settled, else arranges for `waker` to be woken at the next change.
    pub fn poll(&self, waker: &Waker) -> Option<Reply> {
        let mut listeners = self.listeners.lock();
        let mut cx = Context::from_waker(waker);
        loop {
            if let Some(reply) = self.settled() {
                listeners.clear();
                return Some(reply);
            }
            if listeners.is_empty() {
                listeners.push(self.aof.listen());
                listeners.push(self.repl.listen_acks());
                // Registered: look once more before sleeping.
                continue;
            }
            let mut changed = false;
            for listener in listeners.iter_mut() {
                changed |= Pin::new(listener).poll(&mut cx).is_ready();
            }
            if !changed {
                return None;
            }
            listeners.clear();
        }
    }

    /// Blocks this thread until settled or `deadline`; then the reply as things stand.
    pub fn wait(&self, deadline: Option<Instant>) -> Reply {
        let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
        loop {
            if let Some(reply) = self.poll(&waker) {
                return reply;
            }
            match deadline {
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return self.reply();
                    }
                    std::thread::park_timeout(deadline - now);
                }
                None => std::thread::park(),
            }
        }
    }
}

/// Wakes a thread parked in [`AckWait::wait`].
struct ThreadWaker(std::thread::Thread);

impl std::task::Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}
