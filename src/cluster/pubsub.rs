//! Pub/sub across the cluster. Redis sends every PUBLISH to every node; Shoal sends a
//! message only to the nodes that listen for it: each node tells the others what its
//! subscribers listen to (a [`Message::Interest`] when that changes, and again every few
//! seconds for nodes that joined or restarted), and a publisher forwards a message to the
//! nodes whose interest matches. A node not heard from yet gets everything, as in Redis.
//!
//! SPUBLISH goes to the nodes of the channel's shard (its master and replicas), which
//! deliver it to their shard subscribers; when a slot leaves a node, the subscribers of its
//! shard channels there are unsubscribed (Redis 7's SUNSUBSCRIBE).
//!
//! Published messages do not go through the cluster state: each bus link has an [`Outbox`]
//! (bounded in bytes) that its task writes out, many messages per frame, a large one cut in
//! several frames; it keeps its messages while the link reconnects.

use super::ids::NodeId;
use super::wire::{Interest, Message, Published};
use crate::engine::Engine;
use crate::pubsub::Kind;
use crate::slot::SlotId;
use crate::transport::frame::FRAME_BYTES_MAX;
use std::collections::HashMap;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Names listed in one interest message at most; with more, the node asks for everything
/// (a bus frame is bounded).
const INTEREST_BYTES_MAX: usize = 48 * 1024;
/// Channel and payload bytes per bus frame (the rest of the frame is room for framing).
const FRAME_PAYLOAD_BYTES: usize = FRAME_BYTES_MAX - 1024;
/// What a message costs in a frame beyond its channel and payload (their lengths, its flags),
/// at most.
const MESSAGE_FRAMING_BYTES: usize = 24;
/// Bytes of messages waiting for one link; more are dropped with a warning (Redis frees a
/// link past `cluster-link-sendbuf-limit`).
const OUTBOX_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Bus ticks between two unprompted interest messages.
const INTEREST_EVERY_TICKS: u64 = 20;

/// Pub/sub between this node and the others: what they listen to, what this one told them,
/// and the messages on their way to them.
#[derive(Default)]
pub(crate) struct Relay {
    /// Each bus link's outbox, by the peer's bus address.
    outboxes: parking_lot::RwLock<HashMap<SocketAddr, Arc<Outbox>>>,
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

impl Relay {
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
    let relay = &cluster.relay;
    let slot = sharded.then(|| SlotId::of_key(channel));
    let targets = cluster.send_with(|state| state.publish_targets(slot));
    let outboxes = relay.outboxes.read();
    let mut sent = 0;
    for (node, addr) in targets {
        if !relay.wants(&node, channel, sharded) {
            continue;
        }
        let Some(outbox) = outboxes.get(&addr) else {
            continue;
        };
        if outbox.push(channel, payload, sharded) {
            relay.count(SENT, sharded);
            sent += 1;
        }
    }
    sent
}

/// Published messages waiting for one bus link.
#[derive(Default)]
pub(crate) struct Outbox {
    queue: parking_lot::Mutex<Queued>,
    /// Wakes the link's task.
    pub ready: tokio::sync::Notify,
}

#[derive(Default)]
struct Queued {
    messages: VecDeque<Published>,
    bytes: usize,
    /// A message was dropped for want of room (warned once until there is room again).
    overflowed: bool,
}

impl Outbox {
    /// Queues a message; false when the outbox is full (the peer does not keep up).
    fn push(&self, channel: &[u8], payload: &[u8], sharded: bool) -> bool {
        let size = channel.len() + payload.len();
        let mut queue = self.queue.lock();
        if queue.bytes + size > OUTBOX_BYTES_MAX {
            if !std::mem::replace(&mut queue.overflowed, true) {
                tracing::warn!("A cluster bus link has {OUTBOX_BYTES_MAX} bytes of published messages waiting: newer ones are dropped");
            }
            return false;
        }
        queue.overflowed = false;
        queue.bytes += size;
        queue.messages.push_back(Published {
            channel: channel.to_vec(),
            payload: payload.to_vec(),
            sharded,
            more: false,
        });
        drop(queue);
        self.ready.notify_one();
        true
    }

    /// The next frames to write: as many queued messages as fit in one, or a message too
    /// large for one cut in several. Empty when nothing waits.
    pub fn next_frames(&self) -> Vec<Message> {
        let mut queue = self.queue.lock();
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(next) = queue.messages.front() {
            let size = next.channel.len() + next.payload.len();
            // Each message also costs its lengths and flags in the frame.
            if !batch.is_empty() && bytes + size + MESSAGE_FRAMING_BYTES > FRAME_PAYLOAD_BYTES {
                break;
            }
            let Some(message) = queue.messages.pop_front() else {
                break;
            };
            queue.bytes -= size;
            bytes += size + MESSAGE_FRAMING_BYTES;
            batch.push(message);
        }
        drop(queue);
        let mut frames = Vec::new();
        if let [only] = batch.as_mut_slice() {
            if bytes > FRAME_PAYLOAD_BYTES {
                // `bytes` counts the framing too, so the payload is longer than what fits
                // beside the channel: the rest is never empty.
                let room =
                    FRAME_PAYLOAD_BYTES.saturating_sub(MESSAGE_FRAMING_BYTES + only.channel.len());
                let rest = only.payload.split_off(room.min(only.payload.len()));
                only.more = true;
                let mut pieces = rest.chunks(FRAME_PAYLOAD_BYTES).peekable();
                frames.push(Message::Publish { messages: batch });
                while let Some(piece) = pieces.next() {
                    frames.push(Message::PublishMore {
                        payload: piece.to_vec(),
                        more: pieces.peek().is_some(),
                    });
                }
                return frames;
            }
        }
        if !batch.is_empty() {
            frames.push(Message::Publish { messages: batch });
        }
        frames
    }
}

/// The outbox of the bus link to `addr`, made when the link is.
pub(crate) fn outbox(engine: &Engine, addr: SocketAddr) -> Arc<Outbox> {
    let Some(cluster) = engine.cluster.get() else {
        return Arc::default();
    };
    Arc::clone(cluster.relay.outboxes.write().entry(addr).or_default())
}

/// The link to `addr` is gone for good: what waited for it is dropped.
pub(crate) fn drop_outbox(engine: &Engine, addr: SocketAddr, outbox: &Arc<Outbox>) {
    if let Some(cluster) = engine.cluster.get() {
        let mut outboxes = cluster.relay.outboxes.write();
        // A newer link to the same address may have taken over the entry: leave it.
        if outboxes.get(&addr).is_some_and(|o| Arc::ptr_eq(o, outbox)) {
            outboxes.remove(&addr);
        }
    }
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

/// Whether `message` is pub/sub traffic, for [`receive`] rather than the cluster state.
pub(crate) fn is_relayed(message: &Message) -> bool {
    matches!(
        message,
        Message::Publish { .. } | Message::PublishMore { .. } | Message::Interest { .. }
    )
}

/// Takes in pub/sub traffic that came over a link. `partial` is the link's message whose
/// payload goes on in the next frames.
pub(crate) fn receive(engine: &Engine, message: Message, partial: &mut Option<Published>) {
    let Some(cluster) = engine.cluster.get() else {
        return;
    };
    if let Message::Interest { sender, interest } = message {
        cluster.relay.heard(sender, interest);
        return;
    }
    let bytes_max = engine.live.proto_max_bulk_len();
    for published in reassemble(message, partial, bytes_max) {
        deliver(engine, &published);
    }
}

/// The published messages a link's frame completes, in order (`partial` carries a message
/// cut across frames); none for other messages. A message past `bytes_max` is dropped.
fn reassemble(
    message: Message,
    partial: &mut Option<Published>,
    bytes_max: usize,
) -> Vec<Published> {
    let mut complete = Vec::new();
    match message {
        Message::Publish { messages } => {
            *partial = None;
            for published in messages {
                match published.more {
                    true => *partial = Some(published),
                    false => complete.push(published),
                }
            }
        }
        Message::PublishMore { payload, more } => {
            let Some(mut growing) = partial.take() else {
                return complete;
            };
            if growing.payload.len() + payload.len() > bytes_max {
                tracing::warn!(
                    "A message from another node is longer than proto-max-bulk-len: dropped"
                );
                return complete;
            }
            growing.payload.extend_from_slice(&payload);
            match more {
                true => *partial = Some(growing),
                false => complete.push(growing),
            }
        }
        _ => {}
    }
    complete
}

fn deliver(engine: &Engine, published: &Published) {
    if let Some(cluster) = engine.cluster.get() {
        cluster.relay.count(RECEIVED, published.sharded);
    }
    engine
        .pubsub
        .publish(&published.channel, &published.payload, published.sharded);
}

/// On a bus tick: tells the other nodes what this one listens to: every node when that
/// changed or every [`INTEREST_EVERY_TICKS`] ticks (a restarted node forgot), else the
/// nodes not told yet (new ones).
pub(crate) fn advertise(engine: &Engine) {
    let Some(cluster) = engine.cluster.get() else {
        return;
    };
    let tick = cluster.relay.ticks.fetch_add(1, Ordering::Relaxed);
    tell(engine, tick % INTEREST_EVERY_TICKS == 0);
}

/// Between ticks: tells the other nodes at once if what this node listens to changed.
pub(crate) fn advertise_change(engine: &Engine) {
    tell(engine, false);
}

/// Sends this node's interest to the nodes not told its current version (all of them when
/// `everyone`).
fn tell(engine: &Engine, everyone: bool) {
    let Some(cluster) = engine.cluster.get() else {
        return;
    };
    let version = engine.pubsub.interest_version();
    let mut told = cluster.relay.told.lock();
    if told.0 != version || everyone {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::frame::{decode, encode};

    /// Small messages share frames, a large one is cut in several, every frame is within the
    /// limit, and the receiving side puts them back together in order.
    #[test]
    fn outbox_frames_fit_and_reassemble() {
        let outbox = Outbox::default();
        let mut sent = Vec::new();
        for i in 0..20_000 {
            sent.push(format!("m{i}").into_bytes());
        }
        sent.push(vec![7u8; 300_000]);
        // Around the size where a message stops fitting one frame.
        for size in FRAME_PAYLOAD_BYTES - 40..FRAME_PAYLOAD_BYTES + 10 {
            sent.push(vec![size as u8; size]);
        }
        sent.push(b"after".to_vec());
        for payload in &sent {
            assert!(outbox.push(b"ch", payload, false));
        }
        let mut received = Vec::new();
        let mut partial: Option<Published> = None;
        let mut frames = 0;
        loop {
            let batch = outbox.next_frames();
            if batch.is_empty() {
                break;
            }
            for message in batch {
                let bytes = encode(&message).expect("every frame fits");
                frames += 1;
                let message = decode::<Message>(&bytes[4..]).unwrap();
                let complete = reassemble(message, &mut partial, usize::MAX);
                received.extend(complete.into_iter().map(|m| m.payload));
            }
        }
        assert_eq!(received, sent);
        assert!(frames < 120, "{frames} frames");
    }
}
