//! WAIT and WAITAOF: a client waits until its last write is fsynced here and/or acknowledged
//! by replicas.
//!
//! Nothing is registered anywhere: a waiter compares its offset with how far the log is
//! fsynced (and acknowledged), and listens for the next change of those offsets. A waiter that
//! needs the local fsync asks the AOF writer for it, so WAITAOF returns within an fsync under
//! every `appendfsync` policy (Redis waits for the next scheduled fsync, forever with `no`).

use crate::log::Offset;
use crate::persist::aof::Aof;
use crate::reply::Reply;
use event_listener::{EventListener, Listener};
use parking_lot::Mutex;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
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
    offset: Offset,
    goal: AckGoal,
    /// Registered before each look, so that a change between the look and the sleep wakes us.
    listener: Mutex<Option<EventListener>>,
}

impl AckWait {
    pub(crate) fn new(aof: Arc<Aof>, offset: Offset, goal: AckGoal) -> AckWait {
        if let AckGoal::Fsynced { local: true, .. } = goal {
            aof.want_fsync(offset);
        }
        AckWait {
            aof,
            offset,
            goal,
            listener: Mutex::new(None),
        }
    }

    /// The reply as things stand: WAIT's replica count, WAITAOF's `[local, replicas]`.
    pub fn reply(&self) -> Reply {
        match self.goal {
            AckGoal::Received { .. } => Reply::Int(self.replicas_acked()),
            AckGoal::Fsynced { local, .. } => {
                if local && !self.aof.is_configured() {
                    return Reply::error(AOF_OFF);
                }
                // Without an AOF nothing is fsynced here, as Redis counts it.
                let fsynced = self.aof.is_enabled() && self.aof.is_durable(self.offset);
                Reply::Array(vec![
                    Reply::Int(fsynced as i64),
                    Reply::Int(self.replicas_acked()),
                ])
            }
        }
    }

    /// The reply if the wait is over: the goal is met, or it can no longer be.
    pub fn settled(&self) -> Option<Reply> {
        let met = match self.goal {
            AckGoal::Received { replicas } => self.replicas_acked() >= replicas,
            AckGoal::Fsynced { local, replicas } => {
                if local && !self.aof.is_configured() {
                    return Some(Reply::error(AOF_OFF));
                }
                (!local || self.aof.is_durable(self.offset)) && self.replicas_acked() >= replicas
            }
        };
        met.then(|| self.reply())
    }

    /// Replicas that acknowledged the offset. Until replication exists a node has none.
    fn replicas_acked(&self) -> i64 {
        0
    }

    /// The reply if settled, else arranges for `waker` to be woken at the next change.
    pub fn poll(&self, waker: &Waker) -> Option<Reply> {
        let mut slot = self.listener.lock();
        loop {
            if let Some(reply) = self.settled() {
                *slot = None;
                return Some(reply);
            }
            let listener = slot.get_or_insert_with(|| self.aof.listen());
            let mut cx = Context::from_waker(waker);
            match Pin::new(listener).poll(&mut cx) {
                Poll::Pending => return None,
                // Something changed: look again with a fresh listener.
                Poll::Ready(()) => *slot = None,
            }
        }
    }

    /// Blocks this thread until settled or `deadline`; then the reply as things stand.
    pub fn wait(&self, deadline: Option<Instant>) -> Reply {
        loop {
            let listener = self.aof.listen();
            if let Some(reply) = self.settled() {
                return reply;
            }
            match deadline {
                Some(deadline) => {
                    if listener.wait_deadline(deadline).is_none() && Instant::now() >= deadline {
                        return self.reply();
                    }
                }
                None => listener.wait(),
            }
        }
    }
}
