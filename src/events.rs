//! Role and topology changes, for the embedding application: [`crate::Node::events`] returns
//! a [`EventSubscription`] that receives every [`Event`] in the order the node went through them.

use parking_lot::Mutex;
use std::ops::RangeInclusive;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::time::Duration;

/// Events a subscriber may leave unread; at one more it is dropped (its `recv` then returns
/// `None`), as Redis drops a client that does not read its replies: a forgotten subscription
/// never holds memory without bound.
pub const EVENTS_QUEUED_MAX: usize = 1024;

/// A change of this node's role or of what it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// This node became a primary (a failover, CLUSTER FAILOVER, REPLICAOF NO ONE,
    /// [`crate::Node::promote`]).
    Promoted,
    /// This primary became a replica of the primary at `primary` (`host:port`).
    Demoted {
        /// The primary it follows.
        primary: String,
    },
    /// This replica follows another primary (`host:port`).
    PrimaryChanged {
        /// The primary it follows now.
        primary: String,
    },
    /// This node serves these slots from now on (cluster mode), as (first, last) runs.
    SlotsGained(Vec<RangeInclusive<u16>>),
    /// This node no longer serves these slots.
    SlotsLost(Vec<RangeInclusive<u16>>),
}

/// The node's subscribers.
#[derive(Default)]
pub(crate) struct Events {
    subscribers: Mutex<Vec<SyncSender<Event>>>,
}

impl Events {
    pub fn subscribe(&self) -> EventSubscription {
        let (sender, receiver) = sync_channel(EVENTS_QUEUED_MAX);
        self.subscribers.lock().push(sender);
        EventSubscription(receiver)
    }

    /// Tells every subscriber; one whose queue is full is dropped.
    pub fn publish(&self, event: Event) {
        tracing::debug!("Event: {event:?}");
        self.subscribers
            .lock()
            .retain(|subscriber| match subscriber.try_send(event.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    tracing::warn!(
                        "An event subscriber left {EVENTS_QUEUED_MAX} events unread: dropped"
                    );
                    false
                }
                Err(TrySendError::Disconnected(_)) => false,
            });
    }
}

/// Events as they happen. `None` from a receiving call: the node closed, or this subscriber
/// left [`EVENTS_QUEUED_MAX`] events unread and was dropped.
pub struct EventSubscription(Receiver<Event>);

impl EventSubscription {
    /// The next event, waiting for it.
    pub fn recv(&self) -> Option<Event> {
        self.0.recv().ok()
    }

    /// The next event if one is waiting.
    pub fn try_recv(&self) -> Option<Event> {
        self.0.try_recv().ok()
    }

    /// The next event, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        self.0.recv_timeout(timeout).ok()
    }
}
