//! Forwarding: a command for a slot another node serves is run there and answered here, for
//! embedded callers (in-process routing) and for RESP clients of a node in
//! `cluster-proxy-mode`. Each command is one stream on a QUIC link to the owner: the tag
//! [`FORWARD_STREAM`], a flags byte, the command in RESP; the owner runs it as a fresh
//! client would and writes the reply in RESP (in the caller's protocol), then ends the stream.
//! A MOVED or ASK in the reply (the slot moved meanwhile) is followed here, a few hops at most.

use super::route::Redirect;
use crate::engine::{Client, Engine};
use crate::reply::Reply;
use crate::resp::{decode_reply, encode_command, encode_reply, parse_command, Limits, Protocol};
use crate::slot::SlotId;
use crate::transport::{Endpoint, Link, RecvStream, SendStream};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use tokio::io::AsyncReadExt;

/// The first byte of every stream that carries a forwarded command.
pub const FORWARD_STREAM: u8 = b'F';
/// Flags: the command follows an ASK (the owner treats it as after ASKING).
const ASKING: u8 = 1;
/// Flags: the caller speaks RESP3.
const RESP3: u8 = 2;
/// Redirections followed for one command before its last one is returned as the reply.
const HOPS_MAX: usize = 5;
/// The longest reply taken from the owner.
const REPLY_BYTES_MAX: usize = 1 << 30;

/// Where a redirected command goes: the owner's bus address, and whether it is an ASK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    /// The owner's QUIC endpoint.
    pub to: SocketAddr,
    /// The slot is being imported there: the command runs as after ASKING.
    pub asking: bool,
}

/// The links this node forwards over, one per owner, opened on first use.
pub(crate) struct Forwarder {
    engine: Weak<Engine>,
    endpoint: Endpoint,
    handle: tokio::runtime::Handle,
    links: Mutex<HashMap<SocketAddr, Link>>,
}

impl Forwarder {
    pub fn new(engine: Weak<Engine>, endpoint: Endpoint, handle: tokio::runtime::Handle) -> Self {
        Forwarder {
            engine,
            endpoint,
            handle,
            links: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `argv` where `first` says and returns the reply's RESP bytes (an error reply
    /// when the owner cannot be reached).
    pub async fn call(&self, first: Forward, argv: &[&[u8]], proto: Protocol) -> Vec<u8> {
        let mut request = Vec::new();
        encode_command(argv, &mut request);
        let mut target = first;
        for _ in 0..HOPS_MAX {
            let reply = match self.once(target, &request, proto).await {
                Ok(reply) => reply,
                Err(e) => return failed(target.to, e, proto),
            };
            match self.redirected(&reply) {
                Some(next) => target = next,
                None => return reply,
            }
        }
        failed(target.to, io::Error::other("too many redirections"), proto)
    }

    /// [`Forwarder::call`] from a thread outside the runtime, decoded.
    fn call_blocking(self: &Arc<Self>, first: Forward, argv: &[&[u8]], proto: Protocol) -> Reply {
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        let forwarder = Arc::clone(self);
        let argv: Vec<Vec<u8>> = argv.iter().map(|a| a.to_vec()).collect();
        self.handle.spawn(async move {
            let argv: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
            let _ = sender.send(forwarder.call(first, &argv, proto).await);
        });
        let Ok(bytes) = receiver.recv() else {
            return Reply::error("ERR forwarding stopped: the node is shutting down");
        };
        decode_reply(&bytes).unwrap_or_else(|e| Reply::error(format!("ERR {}", e.0)))
    }

    /// One round trip on a stream of the link to `target.to`.
    async fn once(&self, target: Forward, request: &[u8], proto: Protocol) -> io::Result<Vec<u8>> {
        let (mut send, mut recv) = self.stream(target.to).await?;
        let mut flags = if target.asking { ASKING } else { 0 };
        if proto == Protocol::Resp3 {
            flags |= RESP3;
        }
        send.write_all(&[FORWARD_STREAM, flags]).await?;
        send.write_all(request).await?;
        send.finish();
        let reply = read_bounded(&mut recv, REPLY_BYTES_MAX).await?;
        if reply.is_empty() {
            return Err(io::Error::other(
                "the node ended the stream without a reply",
            ));
        }
        Ok(reply)
    }

    /// A new stream to `to`, on its link (made again if it was lost).
    async fn stream(&self, to: SocketAddr) -> io::Result<(SendStream, RecvStream)> {
        let cached = self.links.lock().get(&to).cloned();
        if let Some(link) = cached {
            if let Ok(stream) = link.open_bi().await {
                return Ok(stream);
            }
            self.links.lock().remove(&to);
        }
        let link = self.endpoint.connect(to).await.map_err(io::Error::other)?;
        let stream = link.open_bi().await.map_err(io::Error::other)?;
        self.links.lock().insert(to, link);
        Ok(stream)
    }

    /// Where a MOVED or ASK reply sends the command next, if this node knows that node.
    fn redirected(&self, reply: &[u8]) -> Option<Forward> {
        let (asking, rest) = if let Some(rest) = reply.strip_prefix(b"-MOVED ") {
            (false, rest)
        } else {
            (true, reply.strip_prefix(b"-ASK ")?)
        };
        let mut words = std::str::from_utf8(rest).ok()?.trim_end().split(' ');
        let slot = words.next()?.parse().ok().and_then(SlotId::new)?;
        let engine = self.engine.upgrade()?;
        locate(&engine, slot, words.next()?, asking)
    }
}

/// Why a command cannot be forwarded before the node's QUIC endpoint is up.
const NO_BUS: &str = "ERR this node has no cluster bus to forward the command on";

/// Runs `argv` where `forward` says; the reply in RESP.
pub(crate) async fn call(
    engine: &Engine,
    forward: Forward,
    argv: &[&[u8]],
    proto: Protocol,
) -> Vec<u8> {
    match engine.cluster.get().and_then(|c| c.forwarder.get()) {
        Some(forwarder) => forwarder.call(forward, argv, proto).await,
        None => encoded(&Reply::error(NO_BUS), proto),
    }
}

/// [`call`] for a thread outside the runtime (the embedded API), waiting for the reply.
pub(crate) fn call_blocking(
    engine: &Engine,
    forward: Forward,
    argv: &[&[u8]],
    proto: Protocol,
) -> Reply {
    match engine.cluster.get().and_then(|c| c.forwarder.get()) {
        Some(forwarder) => forwarder.call_blocking(forward, argv, proto),
        None => Reply::error(NO_BUS),
    }
}

fn encoded(reply: &Reply, proto: Protocol) -> Vec<u8> {
    let mut out = Vec::new();
    encode_reply(reply, proto, &mut out);
    out
}

/// The error reply for a command that could not be forwarded.
fn failed(to: SocketAddr, e: io::Error, proto: Protocol) -> Vec<u8> {
    let reply = Reply::error(format!("ERR forwarding the command to {to} failed: {e}"));
    encoded(&reply, proto)
}

/// Reads a stream to its end, refusing more than `max_bytes`.
async fn read_bounded(recv: &mut RecvStream, max_bytes: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = recv.read_chunk(64 * 1024).await? {
        if out.len() + chunk.len() > max_bytes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a forwarded message longer than {max_bytes} bytes"),
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Serves a link whose first stream was tagged [`FORWARD_STREAM`]: that stream and every
/// later one carry a command each, run concurrently (QUIC bounds how many streams are open).
pub(crate) async fn serve(
    engine: Weak<Engine>,
    link: &Link,
    first: (SendStream, RecvStream),
) -> io::Result<()> {
    tokio::spawn(answer(engine.clone(), first, false));
    while let Ok(stream) = link.accept_bi().await {
        tokio::spawn(answer(engine.clone(), stream, true));
    }
    Ok(())
}

/// Runs one forwarded command and writes its reply; `tagged`: the stream's tag is still to
/// be read. A malformed request ends the stream without a reply.
async fn answer(
    engine: Weak<Engine>,
    (mut send, mut recv): (SendStream, RecvStream),
    tagged: bool,
) {
    let Some(engine) = engine.upgrade() else {
        return;
    };
    let request = async {
        if tagged && recv.read_u8().await? != FORWARD_STREAM {
            return Err(io::Error::other("a stream that is not a forwarded command"));
        }
        let flags = recv.read_u8().await?;
        let max_bytes = engine.settings().query_buffer_bytes_max;
        let bytes = read_bounded(&mut recv, max_bytes).await?;
        let limits = Limits {
            bulk_bytes_max: engine.settings().proto_max_bulk_len,
            unauthenticated: false,
        };
        match parse_command(&bytes, &limits) {
            Ok(Some(parsed)) if parsed.consumed == bytes.len() && !parsed.args.is_empty() => {
                Ok((flags, parsed.args))
            }
            _ => Err(io::Error::other("a malformed forwarded command")),
        }
    };
    let (flags, argv) = match request.await {
        Ok(request) => request,
        Err(e) => return tracing::debug!("Forwarded command refused: {e}"),
    };
    let proto = if flags & RESP3 != 0 {
        Protocol::Resp3
    } else {
        Protocol::Resp2
    };
    // The command may block (BLPOP) or wait for the disk: off the runtime's threads.
    let run = tokio::task::spawn_blocking(move || {
        let mut client = Client::new(proto);
        client.conn.cluster.asking = flags & ASKING != 0;
        let argv: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
        engine.execute_waiting(&mut client, &argv)
    });
    let reply = run
        .await
        .unwrap_or_else(|_| Reply::error("ERR the forwarded command failed"));
    if send.write_all(&encoded(&reply, proto)).await.is_ok() {
        send.finish();
    }
}

/// Where a redirect sends a client whose commands are forwarded, if anywhere.
pub(crate) fn target(engine: &Engine, redirect: &Redirect) -> Option<Forward> {
    match redirect {
        Redirect::Moved(slot, addr) => locate(engine, *slot, addr, false),
        Redirect::Ask(slot, addr) => locate(engine, *slot, addr, true),
        _ => None,
    }
}

/// The bus address of the node a redirect for `slot` names by `addr`.
fn locate(engine: &Engine, slot: SlotId, addr: &str, asking: bool) -> Option<Forward> {
    let to = engine.cluster.get()?.routes().bus_addr_of(slot, addr)?;
    Some(Forward { to, asking })
}
