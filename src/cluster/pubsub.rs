//! Pub/sub across the cluster. Redis sends every PUBLISH to every node; Shoal sends a
//! message only to the nodes that listen for it: each node tells the others what its
//! subscribers listen to (a [`Message::Interest`] when that changes, and again every few
//! seconds for nodes that joined or restarted), and a publisher forwards a message to the
//! nodes whose interest matches. A node not heard from yet gets everything, as in Redis.
//!
//! SPUBLISH goes to the nodes of the channel's shard (its master and replicas), which
//! deliver it to their shard subscribers; when a slot leaves a node, the subscribers of its
//! shard channels there are unsubscribed (Redis 7's SUNSUBSCRIBE).

use super::ids::NodeId;
use super::wire::{Interest, Message};
use crate::engine::Engine;
use crate::pubsub::Kind;
use crate::slot::SlotId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Names listed in one interest message at most; with more, the node asks for everything
/// (a bus frame is bounded).
const INTEREST_BYTES_MAX: usize = 48 * 1024;
/// Channel and payload bytes of a message sent to other nodes at most: it must fit in one bus
/// frame with room for its framing.
const PUBLISH_BYTES_MAX: usize = crate::transport::frame::FRAME_BYTES_MAX - 1024;
/// Bus ticks between two unprompted interest messages.
const INTEREST_EVERY_TICKS: u64 = 20;

/// What the other nodes listen to, and what this one last told them.
#[derive(Default)]
pub(crate) struct Interests {
    by_node: parking_lot::Mutex<HashMap<NodeId, Heard>>,
    /// The hub's interest version last told, and the nodes told it.
    told: parking_lot::Mutex<(u64, std::collections::HashSet<NodeId>)>,
    ticks: AtomicU64,
    /// Publish messages sent and received, plain and sharded (CLUSTER INFO's
    /// `cluster_stats_messages_publish*`).
    counts: [AtomicU64; 4],
}

const SENT: usize = 0;
const RECEIVED: usize = 2;

/// One node's interest, indexed for matching.
struct Heard {
    everything: bool,
    channels: std::collections::HashSet<Vec<u8>>,
    patterns: Vec<Vec<u8>>,
    shard: std::collections::HashSet<Vec<u8>>,
}

impl Heard {
    fn wants(&self, channel: &[u8], sharded: bool) -> bool {
        if self.everything {
            return true;
        }
        if sharded {
            return self.shard.contains(channel);
        }
        self.channels.contains(channel)
            || self
                .patterns
                .iter()
                .any(|p| crate::glob::matches(p, channel, false))
    }
}

impl Interests {
    fn count(&self, which: usize, sharded: bool) {
        self.counts[which + usize::from(sharded)].fetch_add(1, Ordering::Relaxed);
    }

    /// CLUSTER INFO's publish message counters, those not zero (as Redis lists them).
    pub fn stats_text(&self) -> String {
        let names = [
            "publish_sent",
            "publishshard_sent",
            "publish_received",
            "publishshard_received",
        ];
        names
            .iter()
            .zip(&self.counts)
            .map(|(name, n)| (name, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| format!("cluster_stats_messages_{name}:{n}\r\n"))
            .collect()
    }

    /// Whether `node` may have subscribers for `channel` (yes for a node not heard from).
    fn wants(&self, node: &NodeId, channel: &[u8], sharded: bool) -> bool {
        self.by_node
            .lock()
            .get(node)
            .is_none_or(|heard| heard.wants(channel, sharded))
    }

    fn heard(&self, node: NodeId, interest: Interest) {
        let heard = Heard {
            everything: interest.everything,
            channels: interest.channels.into_iter().collect(),
            patterns: interest.patterns,
            shard: interest.shard.into_iter().collect(),
        };
        self.by_node.lock().insert(node, heard);
    }
}

/// Sends a message published here to the other nodes that listen for it (the nodes of the
/// channel's shard for SPUBLISH); how many it went to.
pub(crate) fn forward(engine: &Engine, channel: &[u8], payload: &[u8], sharded: bool) -> usize {
    let Some(cluster) = engine.cluster.get() else {
        return 0;
    };
    if channel.len() + payload.len() > PUBLISH_BYTES_MAX {
        tracing::warn!(
            "A message of {} bytes published on this node is not sent to the other nodes (at most {PUBLISH_BYTES_MAX} bytes cross the cluster bus)",
            channel.len() + payload.len()
        );
        return 0;
    }
    let slot = sharded.then(|| SlotId::of_key(channel));
    cluster.send_with(|state| {
        let targets = state.publish_targets(slot);
        let mut sent = 0;
        for (node, addr) in targets {
            if cluster.interests.wants(&node, channel, sharded) {
                let message = Message::Publish {
                    channel: channel.to_vec(),
                    payload: payload.to_vec(),
                    sharded,
                };
                state.send(addr, message);
                cluster.interests.count(SENT, sharded);
                sent += 1;
            }
        }
        sent
    })
}

/// Whether this node delivers SPUBLISH messages for `channel` (it is in the shard serving
/// its slot); always in standalone mode.
pub(crate) fn serves_shard_channel(engine: &Engine, channel: &[u8]) -> bool {
    let slot = SlotId::of_key(channel);
    engine
        .cluster
        .get()
        .is_none_or(|cluster| cluster.send_with(|state| state.in_shard_of(slot)))
}

/// A pub/sub message that came over the bus; false if it is not one.
pub(crate) fn receive(engine: &Engine, message: &Message) -> bool {
    match message {
        Message::Publish {
            channel,
            payload,
            sharded,
        } => {
            if let Some(cluster) = engine.cluster.get() {
                cluster.interests.count(RECEIVED, *sharded);
            }
            engine.pubsub.publish(channel, payload, *sharded);
        }
        Message::Interest { sender, interest } => {
            if let Some(cluster) = engine.cluster.get() {
                cluster.interests.heard(*sender, interest.clone());
            }
        }
        _ => return false,
    }
    true
}

/// On a bus tick: tells the other nodes what this one listens to: every node when that
/// changed or every [`INTEREST_EVERY_TICKS`] ticks (a restarted node forgot), else the
/// nodes not told yet (new ones).
pub(crate) fn advertise(engine: &Engine) {
    let Some(cluster) = engine.cluster.get() else {
        return;
    };
    let version = engine.pubsub.interest_version();
    let tick = cluster.interests.ticks.fetch_add(1, Ordering::Relaxed);
    let mut told = cluster.interests.told.lock();
    if told.0 != version || tick % INTEREST_EVERY_TICKS == 0 {
        *told = (version, Default::default());
    }
    let targets: Vec<_> = cluster.send_with(|state| state.publish_targets(None));
    let untold: Vec<_> = targets
        .into_iter()
        .filter(|(id, _)| !told.1.contains(id))
        .collect();
    if untold.is_empty() {
        return;
    }
    let interest = local_interest(engine);
    cluster.send_with(|state| {
        let sender = state.myself_id();
        for (id, addr) in untold {
            let message = Message::Interest {
                sender,
                interest: interest.clone(),
            };
            state.send(addr, message);
            told.1.insert(id);
        }
    });
}

/// What this node's subscribers listen to, or "everything" past what a frame holds.
fn local_interest(engine: &Engine) -> Interest {
    let names = |kind| -> Vec<Vec<u8>> {
        engine
            .pubsub
            .active(kind, None)
            .iter()
            .map(|n| n.to_vec())
            .collect()
    };
    let interest = Interest {
        everything: false,
        channels: names(Kind::Channel),
        patterns: names(Kind::Pattern),
        shard: names(Kind::Shard),
    };
    let bytes: usize = [&interest.channels, &interest.patterns, &interest.shard]
        .iter()
        .flat_map(|names| names.iter())
        .map(|n| n.len() + 4)
        .sum();
    if bytes > INTEREST_BYTES_MAX {
        return Interest {
            everything: true,
            ..Interest::default()
        };
    }
    interest
}

/// The slots in `lost` left this node: their shard channels' subscribers here are
/// unsubscribed.
pub(crate) fn slots_lost(engine: &Engine, lost: &[std::ops::RangeInclusive<u16>]) {
    engine.pubsub.revoke_shard(|channel| {
        let slot = SlotId::of_key(channel).get();
        lost.iter().any(|range| range.contains(&slot))
    });
}
