//! Pub/sub: who is subscribed to what (channels, patterns, shard channels), and delivery into
//! each subscriber's bounded queue.
//!
//! Publishing is synchronous and runs on the publisher's thread, as in Redis: the message is
//! encoded once in RESP and appended to every RESP subscriber's mailbox (a byte buffer its
//! connection writes out in one go), or shared (one reference count) into every embedded
//! [`Subscription`]'s queue. A connection is woken only when its mailbox goes from empty to
//! non-empty, so a burst of messages costs one wake-up, not one per message.
//!
//! Nothing grows because a subscriber is slow: a mailbox past its
//! `client-output-buffer-limit pubsub` disconnects its client (as Redis does), an embedded
//! subscription past the same hard limit is told it [`Ended::Lagged`] and dropped.

use crate::config::OutputLimit;
use crate::engine::clients::ClientInfo;
use event_listener::{Event, EventListener, Listener as _};
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, VecDeque};
use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The three namespaces a client subscribes in.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// SUBSCRIBE / PUBLISH.
    Channel,
    /// PSUBSCRIBE: a glob pattern over channel names.
    Pattern,
    /// SSUBSCRIBE / SPUBLISH: a channel that lives in the slot of its name.
    Shard,
}

impl Kind {
    /// The first element of a message delivered through a subscription of this kind.
    fn message_word(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"message",
            Kind::Pattern => b"pmessage",
            Kind::Shard => b"smessage",
        }
    }
}

/// How long a blocking receiver spins for the next message before it parks.
const SPIN_MICROS: u64 = 100;

/// What a queued message is counted beyond its bytes: its slot in the queue and its share
/// of the allocation.
const MESSAGE_OVERHEAD_BYTES: u64 = 64;

type Subscribers = Vec<Arc<Sink>>;
type Names = HashMap<Arc<[u8]>, Subscribers, foldhash::fast::RandomState>;

/// Every subscription of a node.
#[derive(Default)]
pub(crate) struct Hub {
    channels: RwLock<Names>,
    patterns: RwLock<Names>,
    shard: RwLock<Names>,
    /// Patterns subscribed, read on every publish without the lock (none: nothing to match).
    patterns_live: AtomicUsize,
    /// Bumped when a name gets its first subscriber or loses its last: the cluster tells
    /// the other nodes what this one listens to when it moves.
    interest_version: AtomicU64,
    on_interest_change: std::sync::OnceLock<Arc<tokio::sync::Notify>>,
    closed: AtomicBool,
}

impl Hub {
    fn names(&self, kind: Kind) -> &RwLock<Names> {
        match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard,
        }
    }

    /// Adds `sink` to `name`; false if it was there already.
    pub fn add(&self, kind: Kind, name: &[u8], sink: &Arc<Sink>) -> bool {
        let mut names = self.names(kind).write();
        let subscribers = names.entry(Arc::from(name)).or_default();
        if subscribers.iter().any(|s| s.id == sink.id) {
            return false;
        }
        if subscribers.is_empty() {
            self.interest_changed();
        }
        subscribers.push(Arc::clone(sink));
        if kind == Kind::Pattern {
            self.patterns_live.store(names.len(), Ordering::Relaxed);
        }
        true
    }

    /// Removes `sink` from `name`; false if it was not there.
    pub fn remove(&self, kind: Kind, name: &[u8], sink_id: u64) -> bool {
        let mut names = self.names(kind).write();
        let Some(subscribers) = names.get_mut(name) else {
            return false;
        };
        let before = subscribers.len();
        subscribers.retain(|s| s.id != sink_id);
        let removed = subscribers.len() < before;
        if subscribers.is_empty() {
            names.remove(name);
            self.interest_changed();
        }
        if kind == Kind::Pattern {
            self.patterns_live.store(names.len(), Ordering::Relaxed);
        }
        removed
    }

    /// Delivers `payload` on `channel` (a shard channel when `sharded`) to every matching
    /// subscriber; how many received it (a client subscribed by two matching patterns
    /// counts twice, as in Redis).
    pub fn publish(&self, channel: &[u8], payload: &[u8], sharded: bool) -> usize {
        let kind = if sharded { Kind::Shard } else { Kind::Channel };
        let mut receivers = 0;
        if let Some(subscribers) = self.names(kind).read().get(channel) {
            let mut message = Outgoing::new(kind, None, channel, payload);
            for sink in subscribers {
                sink.deliver(&mut message);
            }
            receivers += subscribers.len();
        }
        if sharded || self.patterns_live.load(Ordering::Relaxed) == 0 {
            return receivers;
        }
        for (pattern, subscribers) in self.patterns.read().iter() {
            if crate::glob::matches(pattern, channel, false) {
                let mut message = Outgoing::new(Kind::Pattern, Some(pattern), channel, payload);
                for sink in subscribers {
                    sink.deliver(&mut message);
                }
                receivers += subscribers.len();
            }
        }
        receivers
    }

    /// Names with subscribers matching `pattern` (all without one): PUBSUB CHANNELS.
    pub fn active(&self, kind: Kind, pattern: Option<&[u8]>) -> Vec<Arc<[u8]>> {
        self.names(kind)
            .read()
            .keys()
            .filter(|name| pattern.is_none_or(|p| crate::glob::matches(p, name, false)))
            .cloned()
            .collect()
    }

    /// A name got its first subscriber or lost its last: the version moves, and whoever
    /// tells other nodes (the cluster bus) is woken to do it now.
    fn interest_changed(&self) {
        self.interest_version.fetch_add(1, Ordering::Relaxed);
        if let Some(wake) = self.on_interest_change.get() {
            wake.notify_one();
        }
    }

    /// Has `wake` notified whenever what this node listens to changes.
    pub fn watch_interest(&self, wake: Arc<tokio::sync::Notify>) {
        let _ = self.on_interest_change.set(wake);
    }

    /// Changes with what this node listens to (see [`Hub::active`]).
    pub fn interest_version(&self) -> u64 {
        self.interest_version.load(Ordering::Relaxed)
    }

    /// Subscribers of `name`: PUBSUB NUMSUB.
    pub fn count(&self, kind: Kind, name: &[u8]) -> usize {
        self.names(kind).read().get(name).map_or(0, Vec::len)
    }

    /// Names with at least one subscriber (INFO `pubsub_channels`, PUBSUB NUMPAT...).
    pub fn len(&self, kind: Kind) -> usize {
        self.names(kind).read().len()
    }

    /// Unsubscribes everyone from the shard channels `lost` says left this node (their slot
    /// moved or failed over), as Redis 7 does: RESP clients get an SUNSUBSCRIBE for each,
    /// embedded subscriptions end with [`Ended::Moved`].
    pub fn revoke_shard(&self, lost: impl Fn(&[u8]) -> bool) {
        let mut names = self.shard.write();
        let gone: Vec<Arc<[u8]>> = names.keys().filter(|n| lost(n)).cloned().collect();
        for name in gone {
            self.interest_changed();
            for sink in names.remove(&name).unwrap_or_default() {
                match &sink.target {
                    Target::Resp(mailbox) => mailbox.revoke(Arc::clone(&name)),
                    Target::App(queue) => queue.end(Ended::Moved),
                }
            }
        }
    }

    /// Node shutdown: every embedded subscription ends with [`Ended::Closed`].
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
            for subscribers in self.names(kind).write().drain().map(|(_, s)| s) {
                for sink in subscribers {
                    if let Target::App(queue) = &sink.target {
                        queue.end(Ended::Closed);
                    }
                }
            }
        }
    }
}

/// One message on its way to the subscribers of one name: encoded for RESP and shared for
/// embedded subscribers on first need, then reused for every subscriber.
struct Outgoing<'a> {
    kind: Kind,
    pattern: Option<&'a Arc<[u8]>>,
    channel: &'a [u8],
    payload: &'a [u8],
    resp: Vec<u8>,
    shared: Option<Message>,
}

impl<'a> Outgoing<'a> {
    fn new(
        kind: Kind,
        pattern: Option<&'a Arc<[u8]>>,
        channel: &'a [u8],
        payload: &'a [u8],
    ) -> Self {
        Outgoing {
            kind,
            pattern,
            channel,
            payload,
            resp: Vec::new(),
            shared: None,
        }
    }

    /// The message as a RESP2 array (`*3 message channel payload`, `*4 pmessage ...`).
    fn resp(&mut self) -> &[u8] {
        if self.resp.is_empty() {
            let mut parts: [&[u8]; 4] = [self.kind.message_word(), b"", self.channel, self.payload];
            let parts = match self.pattern {
                Some(pattern) => {
                    parts[1] = pattern;
                    &parts[..]
                }
                None => {
                    parts[1] = self.channel;
                    parts[2] = self.payload;
                    &parts[..3]
                }
            };
            crate::resp::encode_command(parts, &mut self.resp);
        }
        &self.resp
    }

    fn shared(&mut self) -> Message {
        self.shared
            .get_or_insert_with(|| {
                Message::new(self.kind, self.pattern, self.channel, self.payload)
            })
            .clone()
    }
}

static NEXT_SINK: AtomicU64 = AtomicU64::new(1);

/// Where one subscriber's messages go.
pub(crate) struct Sink {
    id: u64,
    target: Target,
}

enum Target {
    Resp(Mailbox),
    App(Arc<Queue>),
}

impl Sink {
    /// A RESP client's: messages are written into its mailbox, encoded.
    pub fn resp(info: Arc<ClientInfo>, resp3: bool, limit: OutputLimit) -> Arc<Sink> {
        Self::new(Target::Resp(Mailbox {
            info,
            resp3: AtomicBool::new(resp3),
            pending: Mutex::new(Pending {
                bytes: Vec::new(),
                limit,
                soft_since: None,
                dropped: false,
                revoked: Vec::new(),
            }),
        }))
    }

    fn new(target: Target) -> Arc<Sink> {
        Arc::new(Sink {
            id: NEXT_SINK.fetch_add(1, Ordering::Relaxed),
            target,
        })
    }

    /// The mailbox of a RESP client's sink.
    pub fn mailbox(&self) -> Option<&Mailbox> {
        match &self.target {
            Target::Resp(mailbox) => Some(mailbox),
            Target::App(_) => None,
        }
    }

    fn deliver(&self, message: &mut Outgoing<'_>) {
        match &self.target {
            Target::Resp(mailbox) => mailbox.push(message.resp()),
            Target::App(queue) => queue.push(message.shared()),
        }
    }
}

/// A RESP subscriber's messages, encoded, waiting for its connection to write them.
pub(crate) struct Mailbox {
    info: Arc<ClientInfo>,
    /// Messages are pushes (`>`) for a RESP3 client, arrays (`*`) for a RESP2 one.
    resp3: AtomicBool,
    pending: Mutex<Pending>,
}

struct Pending {
    bytes: Vec<u8>,
    limit: OutputLimit,
    soft_since: Option<Instant>,
    /// Over its limit: the client is being disconnected, nothing more is kept for it.
    dropped: bool,
    /// Shard channels taken from it (see [`Hub::revoke_shard`]), to confirm.
    revoked: Vec<Arc<[u8]>>,
}

impl Mailbox {
    fn push(&self, frame: &[u8]) {
        let mut pending = self.pending.lock();
        if pending.dropped {
            return;
        }
        let was_empty = pending.bytes.is_empty();
        let at = pending.bytes.len();
        pending.bytes.extend_from_slice(frame);
        if self.resp3.load(Ordering::Relaxed) {
            pending.bytes[at] = b'>';
        }
        // What the connection holds unwritten counts too: it is one client's output.
        let unread = pending.bytes.len() + self.info.output_bytes.load(Ordering::Relaxed);
        let Pending {
            limit, soft_since, ..
        } = &mut *pending;
        if limit.exceeded(unread as u64, soft_since) {
            pending.dropped = true;
            pending.bytes = Vec::new();
            drop(pending);
            tracing::warn!(
                "Client id={} scheduled to be closed ASAP for overcoming of output buffer limits.",
                self.info.id.0
            );
            self.info.kill();
            return;
        }
        drop(pending);
        if was_empty {
            self.info.wake();
        }
    }

    /// Queues a reply of the client's own ahead of the messages to come (a SUBSCRIBE
    /// confirmation, queued before the subscription takes effect, so that it precedes every
    /// message the subscription brings).
    pub fn push_reply(&self, reply: &crate::reply::Reply) {
        let proto = if self.resp3.load(Ordering::Relaxed) {
            crate::resp::Protocol::Resp3
        } else {
            crate::resp::Protocol::Resp2
        };
        crate::resp::encode_reply(reply, proto, &mut self.pending.lock().bytes);
    }

    /// Moves the waiting messages to the end of `out`, and returns the shard channels
    /// revoked since (their slot left this node): the connection confirms those after the
    /// messages. `resp3` and `limit` are the client's protocol and output limit now (HELLO
    /// and CONFIG SET change them), for the messages to come.
    pub fn take(&self, out: &mut Vec<u8>, resp3: bool, limit: OutputLimit) -> Vec<Arc<[u8]>> {
        self.resp3.store(resp3, Ordering::Relaxed);
        let mut pending = self.pending.lock();
        pending.limit = limit;
        if out.is_empty() {
            // Swapping keeps both buffers' allocations in use: nothing is copied.
            std::mem::swap(out, &mut pending.bytes);
        } else {
            out.append(&mut pending.bytes);
        }
        std::mem::take(&mut pending.revoked)
    }

    pub fn is_empty(&self) -> bool {
        let pending = self.pending.lock();
        pending.bytes.is_empty() && pending.revoked.is_empty()
    }

    /// The client no longer receives the shard channel `name`: its slot left this node.
    fn revoke(&self, name: Arc<[u8]>) {
        self.pending.lock().revoked.push(name);
        self.info.wake();
    }
}

/// A message received by an embedded [`Subscription`].
#[derive(Clone, Debug)]
pub struct Message {
    /// `channel ++ payload` in one allocation, shared by every subscriber that receives it.
    data: Arc<[u8]>,
    channel_len: usize,
    pattern: Option<Arc<[u8]>>,
    kind: Kind,
}

impl Message {
    fn new(kind: Kind, pattern: Option<&Arc<[u8]>>, channel: &[u8], payload: &[u8]) -> Message {
        let mut data = Vec::with_capacity(channel.len() + payload.len());
        data.extend_from_slice(channel);
        data.extend_from_slice(payload);
        Message {
            data: data.into(),
            channel_len: channel.len(),
            pattern: pattern.cloned(),
            kind,
        }
    }

    /// The channel it was published on.
    pub fn channel(&self) -> &[u8] {
        &self.data[..self.channel_len]
    }

    /// What was published.
    pub fn payload(&self) -> &[u8] {
        &self.data[self.channel_len..]
    }

    /// The pattern that matched, for a pattern subscription.
    pub fn pattern(&self) -> Option<&[u8]> {
        self.pattern.as_deref()
    }

    /// How it was subscribed to: by channel, pattern or shard channel.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    fn cost_bytes(&self) -> u64 {
        (self.data.len() + self.pattern.as_ref().map_or(0, |p| p.len())) as u64
            + MESSAGE_OVERHEAD_BYTES
    }
}

/// Why an embedded subscription receives nothing more.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    /// It left more unread than `client-output-buffer-limit pubsub` allows (its hard limit)
    /// and was dropped, as Redis disconnects a subscriber that does not read.
    Lagged,
    /// The node closed.
    Closed,
    /// A shard channel's slot left this node (it moved, or failed over to another): Redis
    /// tells a shard subscriber so with an SUNSUBSCRIBE. Subscribe again on its new owner.
    Moved,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Ended::Lagged => "the subscriber fell behind and was dropped",
            Ended::Closed => "the node closed",
            Ended::Moved => "the shard channel's slot left this node",
        })
    }
}

impl std::error::Error for Ended {}

/// An embedded subscriber's queue.
struct Queue {
    state: Mutex<QueueState>,
    /// Something was pushed since the receiver last took the queue: read while spinning.
    filled: AtomicBool,
    ready: Event,
    bytes_max: u64,
}

struct QueueState {
    items: VecDeque<Message>,
    bytes: u64,
    ended: Option<Ended>,
}

impl Queue {
    fn push(&self, message: Message) {
        let mut state = self.state.lock();
        if state.ended.is_some() {
            return;
        }
        state.bytes += message.cost_bytes();
        // A receiver only waits on an empty queue, so only the first message wakes it.
        let was_empty = state.items.is_empty();
        if self.bytes_max > 0 && state.bytes > self.bytes_max {
            state.items = VecDeque::new();
            state.ended = Some(Ended::Lagged);
            tracing::warn!(
                "An embedded subscriber left more than {} bytes unread: dropped",
                self.bytes_max
            );
        } else {
            state.items.push_back(message);
        }
        let lagged = state.ended.is_some();
        self.filled.store(true, Ordering::Relaxed);
        drop(state);
        if was_empty || lagged {
            self.ready.notify(1);
        }
    }

    /// Waits up to [`SPIN_MICROS`] for a message before a blocking receiver parks: under a
    /// stream of messages it finds the next one awake, so the publisher does not pay a
    /// thread wake-up (a system call) per message (4-5x the messages per second with 10
    /// subscriber threads on 2 cores). Whether one came.
    fn spin_until_filled(&self) -> bool {
        let started = Instant::now();
        loop {
            for _ in 0..64 {
                if self.filled.load(Ordering::Relaxed) {
                    return true;
                }
                std::hint::spin_loop();
            }
            if started.elapsed() > Duration::from_micros(SPIN_MICROS) {
                return false;
            }
        }
    }

    fn end(&self, why: Ended) {
        self.state.lock().ended.get_or_insert(why);
        self.filled.store(true, Ordering::Relaxed);
        self.ready.notify(usize::MAX);
    }

    /// Moves every waiting message into `batch` (which is empty): one lock per batch, not
    /// per message, so the publisher rarely finds the queue locked. Whether the
    /// subscription ended, once nothing is left.
    fn take(&self, batch: &mut VecDeque<Message>) -> Option<Ended> {
        let mut state = self.state.lock();
        self.filled.store(false, Ordering::Relaxed);
        std::mem::swap(&mut state.items, batch);
        state.bytes = 0;
        state.ended
    }
}

/// Messages for the embedding application, from [`crate::Node::subscribe`],
/// [`crate::Node::psubscribe`] or [`crate::Node::ssubscribe`]. Dropping it unsubscribes.
///
/// Its queue is bounded by the hard limit of `client-output-buffer-limit pubsub`: a
/// subscriber that leaves more unread is dropped and told so ([`Ended::Lagged`]).
pub struct Subscription {
    hub: Arc<Hub>,
    sink_id: u64,
    queue: Arc<Queue>,
    /// Messages taken from the queue and not yet handed out (at most the queue's bound: a
    /// batch is taken only when this is empty).
    batch: Mutex<VecDeque<Message>>,
    kind: Kind,
    names: Vec<Arc<[u8]>>,
    /// The async [`futures_core::Stream`]'s pending wait.
    listener: Option<EventListener>,
}

impl Subscription {
    pub(crate) fn new(hub: &Arc<Hub>, kind: Kind, names: &[&[u8]], bytes_max: u64) -> Subscription {
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState {
                items: VecDeque::new(),
                bytes: 0,
                ended: hub.closed.load(Ordering::Acquire).then_some(Ended::Closed),
            }),
            filled: AtomicBool::new(false),
            ready: Event::new(),
            bytes_max,
        });
        let sink = Sink::new(Target::App(Arc::clone(&queue)));
        for name in names {
            hub.add(kind, name, &sink);
        }
        Subscription {
            hub: Arc::clone(hub),
            sink_id: sink.id,
            queue,
            batch: Mutex::new(VecDeque::new()),
            kind,
            names: names.iter().map(|n| Arc::from(*n)).collect(),
            listener: None,
        }
    }

    /// The next message, or why there will be none.
    fn pop(&self) -> Poll<Result<Message, Ended>> {
        let mut batch = self.batch.lock();
        if let Some(message) = batch.pop_front() {
            return Poll::Ready(Ok(message));
        }
        let ended = self.queue.take(&mut batch);
        if batch.len() > 1 {
            // Another thread sharing this subscription may be waiting for what is left.
            self.queue.ready.notify(1);
        }
        match (batch.pop_front(), ended) {
            (Some(message), _) => Poll::Ready(Ok(message)),
            (None, Some(why)) => Poll::Ready(Err(why)),
            (None, None) => Poll::Pending,
        }
    }

    /// The next message, waiting for it.
    pub fn recv(&self) -> Result<Message, Ended> {
        loop {
            if let Poll::Ready(next) = self.pop() {
                return next;
            }
            if self.queue.spin_until_filled() {
                continue;
            }
            let listener = self.queue.ready.listen();
            if let Poll::Ready(next) = self.pop() {
                return next;
            }
            listener.wait();
        }
    }

    /// The next message if one is waiting.
    pub fn try_recv(&self) -> Result<Option<Message>, Ended> {
        match self.pop() {
            Poll::Ready(next) => next.map(Some),
            Poll::Pending => Ok(None),
        }
    }

    /// The next message, waiting at most `timeout` (`Ok(None)` when none came).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Message>, Ended> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Poll::Ready(next) = self.pop() {
                return next.map(Some);
            }
            let listener = self.queue.ready.listen();
            if let Poll::Ready(next) = self.pop() {
                return next.map(Some);
            }
            if listener.wait_deadline(deadline).is_none() {
                return self.try_recv();
            }
        }
    }

    /// The next message, awaiting it.
    pub async fn next_message(&mut self) -> Result<Message, Ended> {
        std::future::poll_fn(|cx| self.poll_message(cx)).await
    }

    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message, Ended>> {
        loop {
            if let Poll::Ready(next) = self.pop() {
                self.listener = None;
                return Poll::Ready(next);
            }
            match self.listener.as_mut() {
                None => self.listener = Some(self.queue.ready.listen()),
                Some(listener) => {
                    if Pin::new(listener).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    self.listener = None;
                }
            }
        }
    }
}

impl futures_core::Stream for Subscription {
    /// Messages until the subscription ends; [`Subscription::try_recv`] then tells why.
    type Item = Message;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.get_mut().poll_message(cx).map(Result::ok)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        for name in &self.names {
            self.hub.remove(self.kind, name, self.sink_id);
        }
    }
}

/// A RESP client's subscriptions, kept with its connection state.
pub(crate) struct Subscribed {
    pub sink: Arc<Sink>,
    channels: std::collections::HashSet<Arc<[u8]>, foldhash::fast::RandomState>,
    /// In subscription order: PUNSUBSCRIBE without arguments confirms them in that order.
    patterns: Vec<Arc<[u8]>>,
    shard: std::collections::HashSet<Arc<[u8]>, foldhash::fast::RandomState>,
}

impl Subscribed {
    pub fn new(sink: Arc<Sink>) -> Subscribed {
        Subscribed {
            sink,
            channels: Default::default(),
            patterns: Vec::new(),
            shard: Default::default(),
        }
    }

    /// What a confirmation counts, as Redis does: channels and patterns together, shard
    /// channels apart.
    pub fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Shard => self.shard.len(),
            _ => self.channels.len() + self.patterns.len(),
        }
    }

    /// Subscriptions of any kind.
    pub fn total(&self) -> usize {
        self.channels.len() + self.patterns.len() + self.shard.len()
    }

    /// The names subscribed in `kind`, patterns in subscription order.
    pub fn names(&self, kind: Kind) -> Vec<Arc<[u8]>> {
        match kind {
            Kind::Channel => self.channels.iter().cloned().collect(),
            Kind::Pattern => self.patterns.clone(),
            Kind::Shard => self.shard.iter().cloned().collect(),
        }
    }

    /// Whether `name` is subscribed in `kind`.
    pub fn has(&self, kind: Kind, name: &[u8]) -> bool {
        match kind {
            Kind::Channel => self.channels.contains(name),
            Kind::Pattern => self.patterns.iter().any(|p| &**p == name),
            Kind::Shard => self.shard.contains(name),
        }
    }

    pub fn subscribe(&mut self, hub: &Hub, kind: Kind, name: &[u8]) {
        if !hub.add(kind, name, &self.sink) {
            return;
        }
        let name: Arc<[u8]> = Arc::from(name);
        match kind {
            Kind::Channel => drop(self.channels.insert(name)),
            Kind::Pattern => self.patterns.push(name),
            Kind::Shard => drop(self.shard.insert(name)),
        }
    }

    pub fn unsubscribe(&mut self, hub: &Hub, kind: Kind, name: &[u8]) {
        hub.remove(kind, name, self.sink.id);
        match kind {
            Kind::Channel => drop(self.channels.remove(name)),
            Kind::Pattern => self.patterns.retain(|p| &**p != name),
            Kind::Shard => drop(self.shard.remove(name)),
        }
    }

    /// Forgets a shard channel the hub already took from it (see [`Hub::revoke_shard`]);
    /// its SUNSUBSCRIBE confirmation.
    pub fn revoked(&mut self, name: &[u8]) -> crate::reply::Reply {
        self.shard.remove(name);
        confirmation("sunsubscribe", Some(name), self.shard.len())
    }

    /// Leaves everything (the connection closed, or RESET).
    pub fn leave(&mut self, hub: &Hub) {
        for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
            for name in self.names(kind) {
                self.unsubscribe(hub, kind, &name);
            }
        }
    }

    /// Publishes the counts CLIENT LIST shows, and whether this is a `pubsub` client.
    pub fn publish_counts(&self, info: &ClientInfo) {
        let counts = [self.channels.len(), self.patterns.len(), self.shard.len()];
        for (slot, count) in info.subscriptions.iter().zip(counts) {
            slot.store(count, Ordering::Relaxed);
        }
        info.set_flag(crate::engine::clients::flag::PUBSUB, self.total() > 0);
    }
}

/// The confirmation of one (un)subscription: `[word, name or nil, count]`, a push in RESP3.
pub(crate) fn confirmation(
    word: &'static str,
    name: Option<&[u8]>,
    count: usize,
) -> crate::reply::Reply {
    use crate::reply::Reply;
    Reply::Push(vec![
        Reply::bulk(word.as_bytes()),
        Reply::opt_bulk(name),
        Reply::Int(count as i64),
    ])
}
