//! The cluster bus over the node's QUIC endpoint: a link to every node the state knows, a
//! tick that lets the state ping and time out, and the messages in between. Each message is
//! one frame on a link's bus stream; a node's pings go out on the link it opened, and the
//! pongs come back on it; the pings of others arrive on links they opened, and are answered
//! there.

use super::state::{Outgoing, State};
use super::wire::Message;
use crate::engine::Engine;
use crate::transport::frame;
use crate::transport::{Endpoint, Link, RecvStream, SendStream};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

/// The first byte of a link's first stream when it carries the bus (replication's is
/// [`crate::repl::wire::REPLICATION_STREAM`]).
pub const BUS_STREAM: u8 = b'C';
/// Messages waiting for one link; more are dropped (pings are periodic, and the state
/// resends what matters).
const LINK_QUEUE_MAX: usize = 64;
/// A link that could not be set up is tried again after this long.
const RECONNECT_MS: u64 = 1_000;

/// Runs the bus until the engine goes away: a tick as often as the state asks (Redis's
/// cluster cron runs every 100 ms; ours scales with the node timeout), and what the state
/// has to send as soon as it has it.
pub(crate) async fn run(engine: Weak<Engine>, endpoint: Endpoint) {
    let mut links: HashMap<SocketAddr, mpsc::Sender<Message>> = HashMap::new();
    let mut next_tick = tokio::time::Instant::now();
    let mut clock = crate::engine::JumpWatch::new();
    loop {
        let Some(wake) = engine
            .upgrade()
            .and_then(|e| Some(e.cluster.get()?.wake.clone()))
        else {
            return;
        };
        let ticking = tokio::select! {
            _ = tokio::time::sleep_until(next_tick) => true,
            _ = wake.notified() => false,
        };
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let outgoing = match ticking {
            true => {
                clock.look("the cluster bus");
                super::pubsub::advertise(&engine);
                let (wanted, outgoing, tick_ms) = tick(&engine).unwrap_or_default();
                next_tick = tokio::time::Instant::now() + Duration::from_millis(tick_ms.max(1));
                links.retain(|addr, sender| wanted.contains(addr) && !sender.is_closed());
                for addr in wanted {
                    links.entry(addr).or_insert_with(|| {
                        open_link(Arc::downgrade(&engine), endpoint.clone(), addr)
                    });
                }
                outgoing
            }
            false => {
                // Woken by the state, or by a subscription that changed what this node
                // listens to: the other nodes hear of it now rather than at the next tick.
                super::pubsub::advertise_change(&engine);
                super::with_state(&engine, State::poll_outgoing).unwrap_or_default()
            }
        };
        for out in outgoing {
            if cut_off(&engine, out.to) {
                continue;
            }
            if let Some(link) = links.get(&out.to) {
                let _ = link.try_send(out.message);
            }
        }
    }
}

/// The periodic step, with the settings CONFIG SET may have changed: the links the state
/// wants, what it sends, and when it wants the next tick.
fn tick(engine: &Arc<Engine>) -> Option<(Vec<SocketAddr>, Vec<Outgoing>, u64)> {
    let settings = engine.settings();
    let data_age_ms = match engine.repl.link().1 {
        Some(last_io) => last_io.elapsed().as_millis() as u64,
        None => u64::MAX / 4,
    };
    let now_ms = super::now_ms();
    step(engine, |state| {
        state.set_node_timeout(settings.cluster_node_timeout_ms);
        let (ip, port, cport) = settings.cluster_announced();
        state.announce(ip, port, cport);
        state.set_failover_settings(super::failover_settings(&settings));
        state.set_data_age(data_age_ms);
        state.handle_tick(now_ms);
        (state.wanted_links(), state.poll_outgoing(), state.tick_ms())
    })
}

/// A task that keeps a link to `addr` and sends what it is given; the pongs it receives go
/// to the state. It ends when the sender is dropped.
fn open_link(engine: Weak<Engine>, endpoint: Endpoint, addr: SocketAddr) -> mpsc::Sender<Message> {
    let (sender, mut messages) = mpsc::channel(LINK_QUEUE_MAX);
    let outbox = match engine.upgrade() {
        Some(engine) => super::pubsub::outbox(&engine, addr),
        None => Default::default(),
    };
    tokio::spawn(async move {
        loop {
            match endpoint.connect(addr).await {
                Ok(link) => {
                    set_link(&engine, addr, true);
                    let ended = talk(&engine, &link, addr, &mut messages, &outbox).await;
                    set_link(&engine, addr, false);
                    link.close("bus link closed");
                    match ended {
                        Ok(()) => break,
                        Err(e) => tracing::debug!("Cluster bus link to {addr} lost: {e}"),
                    }
                }
                Err(e) => tracing::debug!("Cluster bus link to {addr} failed: {e}"),
            }
            if messages.is_closed() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(RECONNECT_MS)).await;
            // What queued meanwhile is stale (published messages wait in the outbox).
            while messages.try_recv().is_ok() {}
        }
        if let Some(engine) = engine.upgrade() {
            super::pubsub::drop_outbox(&engine, addr, &outbox);
        }
    });
    sender
}

fn set_link(engine: &Weak<Engine>, addr: SocketAddr, up: bool) {
    if let Some(engine) = engine.upgrade() {
        super::with_state(&engine, |state| state.handle_link(addr, up));
    }
}

/// One step of the state, told this node's replication offset first.
fn step<T>(engine: &Arc<Engine>, f: impl FnOnce(&mut State) -> T) -> Option<T> {
    let offset = engine.log().end().0;
    super::with_state(engine, |state| {
        state.set_repl_offset(offset);
        f(state)
    })
}

/// One established outbound link: our messages out (the state's, and the published ones
/// of `outbox`), the replies in. `Ok` when we stopped wanting the link.
async fn talk(
    engine: &Weak<Engine>,
    link: &Link,
    addr: SocketAddr,
    messages: &mut mpsc::Receiver<Message>,
    outbox: &super::pubsub::Outbox,
) -> io::Result<()> {
    let (mut send, mut recv) = link.open_bi().await.map_err(io::Error::other)?;
    send.write_all(&[BUS_STREAM]).await?;
    let local = local_addr(link);
    let mut partial = None;
    loop {
        tokio::select! {
            message = messages.recv() => {
                let Some(message) = message else {
                    return Ok(());
                };
                send.write_all(&frame::encode(&message)?).await?;
            }
            _ = outbox.ready.notified() => loop {
                let frames = outbox.next_frames();
                if frames.is_empty() {
                    break;
                }
                for message in frames {
                    if engine.upgrade().is_some_and(|e| cut_off(&e, addr)) {
                        continue;
                    }
                    // A frame that cannot be encoded is one message lost, not the link.
                    match frame::encode(&message) {
                        Ok(bytes) => send.write_all(&bytes).await?,
                        Err(e) => tracing::warn!("A published message not sent to {addr}: {e}"),
                    }
                }
            },
            reply = frame::read::<Message>(&mut recv) => {
                let reply = reply?.ok_or_else(|| io::Error::other("the peer closed the bus"))?;
                let Some(engine) = engine.upgrade() else {
                    return Ok(());
                };
                if cut_off(&engine, addr) {
                    continue;
                }
                if super::pubsub::is_relayed(&reply) {
                    super::pubsub::receive(&engine, reply, &mut partial);
                    continue;
                }
                let now_ms = super::now_ms();
                step(&engine, |state| state.handle_message(reply, addr, local, now_ms));
            }
        }
    }
}

/// Serves a link another node opened for the bus: its messages in, our replies out.
pub(crate) async fn serve(
    engine: Weak<Engine>,
    link: &Link,
    mut send: SendStream,
    mut recv: RecvStream,
) -> io::Result<()> {
    let peer = link.remote_addr();
    let local = local_addr(link);
    let mut partial = None;
    while let Some(message) = frame::read::<Message>(&mut recv).await? {
        let Some(engine) = engine.upgrade() else {
            return Ok(());
        };
        if cut_off(&engine, peer) {
            continue;
        }
        if super::pubsub::is_relayed(&message) {
            super::pubsub::receive(&engine, message, &mut partial);
            continue;
        }
        let now_ms = super::now_ms();
        let reply = step(&engine, |state| {
            state.handle_message(message, peer, local, now_ms)
        })
        .flatten();
        if let Some(reply) = reply {
            send.write_all(&frame::encode(&reply)?).await?;
        }
    }
    Ok(())
}

fn cut_off(engine: &Engine, addr: SocketAddr) -> bool {
    engine.cluster.get().is_some_and(|c| c.cut_off(addr))
}

fn local_addr(link: &Link) -> SocketAddr {
    let ip = link
        .local_ip()
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    SocketAddr::new(ip, 0)
}
