//! One RESP connection: read what the client sent, run every complete command through the
//! engine, write the replies in one batch.
//!
//! Memory stays bounded per connection: input is read in chunks and executed as it completes
//! (a client cannot make us queue more than `client-query-buffer-limit`), and replies are
//! written out once they pass [`FLUSH_AT_BYTES`] even in the middle of a pipeline, so a client
//! that stops reading stops being read (TCP pushes back) instead of growing our buffers; the
//! `client-output-buffer-limit` of its class then decides when it is disconnected.
//!
//! A blocking command (BLPOP...) parks this task, never a thread; the task keeps watching the
//! socket meanwhile, so a client that goes away is noticed at once.
//!
//! A client whose batches keep waiting for a slot lock held by another worker moves to that
//! worker between two batches (see [`super::workers`]).

use super::workers::Seat;
use super::{encode_reply, Limits, Parser, Protocol};
use crate::cluster::forward::Forward;
use crate::config::OutputLimit;
use crate::engine::blocking::Blocked;
use crate::engine::clients::{flag, ClientInfo, ClientKind, Unblock};
use crate::engine::locks::Kept;
use crate::engine::{Client, Engine, Outcome, ReplyMode};
use crate::reply::Reply;
use bytes::{Buf, BytesMut};
use smallvec::SmallVec;
use std::future::{pending, poll_fn};
use std::io;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// How much is read from the socket at a time.
const READ_CHUNK_BYTES: usize = 16 * 1024;
/// Replies gathered before they are written even though more input is waiting.
const FLUSH_AT_BYTES: usize = 64 * 1024;
/// How often a write the client does not take is checked against its output limit.
const STALL_CHECK: Duration = Duration::from_millis(100);
/// A reply buffer that grew past this is given back after the write.
const OUTPUT_KEEP_BYTES: usize = 1024 * 1024;

/// What a connection runs on. A plain socket can move to another worker (re-registered with
/// its reactor); a TLS stream stays on the worker that accepted it.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    const MOVABLE: bool;
    /// The socket, detached from this worker's reactor (called only when `MOVABLE`).
    fn detach(self) -> io::Result<std::net::TcpStream>;
}

impl Stream for TcpStream {
    const MOVABLE: bool = true;
    fn detach(self) -> io::Result<std::net::TcpStream> {
        self.into_std()
    }
}

impl Stream for tokio_rustls::server::TlsStream<TcpStream> {
    const MOVABLE: bool = false;
    fn detach(self) -> io::Result<std::net::TcpStream> {
        Err(io::Error::other("a TLS connection stays on its worker"))
    }
}

/// A connection on its way to another worker.
pub(crate) type Moving = Conn<std::net::TcpStream>;

/// Serves `client` on `stream` until it quits, fails, is killed, or the listener stops.
pub(crate) async fn serve<S: Stream>(
    engine: Arc<Engine>,
    client: Client,
    stream: S,
    stopped: watch::Receiver<bool>,
    seat: Seat,
) {
    let info = client.info().clone();
    let settings = engine.settings();
    let conn = Conn {
        stream,
        state: State {
            settings,
            settings_version: 0,
            engine,
            client,
            info,
            input: BytesMut::with_capacity(READ_CHUNK_BYTES),
            output: Vec::with_capacity(READ_CHUNK_BYTES),
            parser: Parser::default(),
            stopped,
            soft_limit_since: None,
            seat,
            move_to: None,
        },
    };
    drive(conn).await;
}

/// Goes on serving a connection that moved to this worker.
pub(crate) async fn resume(moving: Moving) {
    let Conn { stream, state } = moving;
    match TcpStream::from_std(stream) {
        Ok(stream) => drive(Conn { stream, state }).await,
        Err(e) => {
            tracing::debug!("client id={} closed on moving: {e}", state.info.id.0);
            state.close();
        }
    }
}

/// Closes a connection that was on its way to a worker when the listener stopped.
pub(crate) fn discard(moving: Moving) {
    moving.state.close();
}

/// Serves until the client goes, or moves to another worker.
async fn drive<S: Stream>(mut conn: Conn<S>) {
    loop {
        match conn.run().await {
            Ok(None) => break,
            Ok(Some(to)) => match conn.relocate(to) {
                None => return,
                Some(stays) => conn = stays,
            },
            Err(e) => {
                tracing::debug!("client id={} closed: {e}", conn.state.info.id.0);
                break;
            }
        }
    }
    conn.state.close();
}

pub(crate) struct Conn<S> {
    stream: S,
    /// Everything else: what stays the same when the connection moves to another worker.
    state: State,
}

struct State {
    engine: Arc<Engine>,
    /// The node's settings as of `settings_version` (refreshed when CONFIG SET changes them).
    settings: Arc<crate::config::Config>,
    settings_version: u64,
    client: Client,
    info: Arc<ClientInfo>,
    input: BytesMut,
    output: Vec<u8>,
    parser: Parser,
    stopped: watch::Receiver<bool>,
    /// When unsent replies first passed the soft output limit (reset when they drop below).
    soft_limit_since: Option<Instant>,
    seat: Seat,
    /// The worker to move to once the current batch is written.
    move_to: Option<usize>,
}

impl State {
    /// Leaves the client list and drops what the client held (its WATCHes).
    fn close(mut self) {
        self.client.reset(&self.engine);
        self.engine.clients.disconnect(self.info.id);
    }
}

/// Whether to go on serving after a batch.
enum Next {
    Serve,
    Close,
}

/// Why [`Conn::run_ready`] stopped running commands.
enum Stop {
    /// Every complete command ran; more input is needed.
    Drained,
    /// The replies passed [`FLUSH_AT_BYTES`]: write them, then go on.
    Flush,
    /// A command blocked (and whether its reply is to be skipped).
    Blocked(Blocked, bool),
    /// A command is held by CLIENT PAUSE; it was not consumed.
    Paused,
    /// A command runs on the node that serves its slot (with its arguments, and whether its
    /// reply is to be skipped).
    Forward(Forward, Vec<Vec<u8>>, bool),
    Close,
}

impl<S: Stream> Conn<S> {
    /// Serves until the client goes (`None`) or is to move to another worker.
    async fn run(&mut self) -> io::Result<Option<usize>> {
        while self.read().await? {
            let next = self.execute_buffered().await?;
            self.take_messages();
            if self.state.client.conn.monitor {
                let id = self.state.info.id;
                self.state
                    .engine
                    .clients
                    .take_monitor_lines(id, &mut self.state.output);
            }
            if !self.state.output.is_empty() {
                // Let the worker's other ready clients run first, so their replies go out in
                // one burst, as Redis writes its pending replies before it sleeps: a peer woken
                // by the first reply is still awake for the next ones. Writing each reply as
                // soon as it is ready woke the peer once per reply and cost a third more CPU
                // per pipelined command.
                tokio::task::yield_now().await;
            }
            // With `appendfsync always` replies wait until their writes are on disk; the
            // worker's other clients go on meanwhile, and one fsync covers all their writes.
            // If the AOF cannot be written the connection closes: nothing is acknowledged.
            let aof = &self.state.engine.persist.aof;
            if aof.must_wait(self.state.client.last_write) {
                aof.wait_durable(self.state.client.last_write).await?;
            }
            self.flush().await?;
            if let Next::Close = next {
                break;
            }
            if let Some(to) = self.state.move_to.take() {
                return Ok(Some(to));
            }
        }
        Ok(None)
    }

    /// Hands the connection to worker `to`; gives it back when that worker's inbox is full.
    fn relocate(mut self, to: usize) -> Option<Self> {
        let Some(permit) = self.state.seat.move_to(to) else {
            return Some(self);
        };
        let Conn { stream, state } = self;
        tracing::debug!("client id={} moves to worker {to}", state.info.id.0);
        match stream.detach() {
            Ok(stream) => drop(permit.send(Conn { stream, state })),
            Err(e) => {
                tracing::debug!("client id={} closed on moving: {e}", state.info.id.0);
                state.close();
            }
        }
        None
    }

    /// Reads more input; false when the client should be closed (end of stream, killed, idle
    /// too long, query buffer over its limit, or the listener stopping).
    async fn read(&mut self) -> io::Result<bool> {
        self.state
            .engine
            .live
            .refresh(&mut self.state.settings, &mut self.state.settings_version);
        let query_bytes_max = self.state.settings.query_buffer_bytes_max;
        self.state.input.reserve(READ_CHUNK_BYTES);
        let signal = self.state.info.signalled();
        if self.state.info.is_killed() {
            return Ok(false);
        }
        if self.state.client.conn.monitor
            && self
                .state
                .engine
                .clients
                .monitor_pending(self.state.info.id)
        {
            return Ok(true);
        }
        if self.mailbox().is_some_and(|m| !m.is_empty()) {
            return Ok(true);
        }
        let idle = self.idle_timeout(self.state.settings.timeout_secs);
        tokio::select! {
            read = self.stream.read_buf(&mut self.state.input) => {
                let n = read?;
                if n == 0 {
                    return Ok(false);
                }
                self.state.engine.clients.count_input(n);
                self.state.info.last_interaction_ms.store(self.state.engine.now_ms(), std::sync::atomic::Ordering::Relaxed);
                if self.state.input.len() > query_bytes_max {
                    tracing::warn!("Closing client that reached max query buffer length: id={}", self.state.info.id.0);
                    return Ok(false);
                }
                Ok(true)
            }
            _ = signal => Ok(!self.state.info.is_killed()),
            _ = sleep_for(idle) => {
                tracing::debug!("Closing idle client id={}", self.state.info.id.0);
                Ok(false)
            }
            _ = self.state.stopped.changed() => Ok(false),
        }
    }

    /// How long this client may stay idle: Redis closes it once more than `timeout` whole
    /// seconds passed, checked about once a second; monitors and subscribers are exempt.
    fn idle_timeout(&self, timeout_secs: u64) -> Option<Duration> {
        let exempt =
            self.state.client.conn.monitor || self.state.info.class() != ClientKind::Normal;
        (timeout_secs > 0 && !exempt).then(|| Duration::from_secs(timeout_secs + 1))
    }

    /// Runs every complete command in the input, waiting where one has to (a blocked command,
    /// a CLIENT PAUSE, replies to write out).
    async fn execute_buffered(&mut self) -> io::Result<Next> {
        loop {
            match self.run_ready() {
                Stop::Drained => return Ok(Next::Serve),
                Stop::Close => return Ok(Next::Close),
                Stop::Flush => self.flush().await?,
                Stop::Blocked(blocked, skip_reply) => {
                    self.flush().await?;
                    let Some(reply) = self.wait_blocked(blocked).await? else {
                        return Ok(Next::Close);
                    };
                    self.take_messages();
                    if let Next::Close = self.deliver(&reply, skip_reply) {
                        return Ok(Next::Close);
                    }
                }
                Stop::Paused => {
                    self.flush().await?;
                    if !self.wait_unpaused().await {
                        return Ok(Next::Close);
                    }
                }
                Stop::Forward(forward, argv, skip_reply) => {
                    let reply = self.forward(forward, argv).await;
                    self.take_messages();
                    if let Next::Close = self.deliver_encoded(&reply, skip_reply) {
                        return Ok(Next::Close);
                    }
                }
            }
        }
    }

    /// Runs complete commands from the input for as long as none has to wait. Consecutive
    /// commands on one slot share one acquisition of its lock, released when this returns:
    /// never across a wait, and never while another lock is taken.
    fn run_ready(&mut self) -> Stop {
        let engine = Arc::clone(&self.state.engine);
        let mut kept = Kept::default();
        let stop = self.run_kept(&engine, &mut kept);
        // A worker busy with other clients may not run out of work for a while.
        crate::log::flush_stale_deferred_wakes();
        if S::MOVABLE {
            self.state.move_to = self.state.seat.after_batch(kept.waited(), kept.slot());
        }
        stop
    }

    fn run_kept<'e>(&mut self, engine: &'e Engine, kept: &mut Kept<'e>) -> Stop {
        loop {
            let limits = Limits {
                bulk_bytes_max: self.state.settings.proto_max_bulk_len,
                unauthenticated: !self.state.client.conn.authenticated,
            };
            let consumed = match self.state.parser.parse(&self.state.input, &limits) {
                Ok(None) => return Stop::Drained,
                Ok(Some(consumed)) => consumed,
                Err(e) => {
                    tracing::debug!(
                        "Protocol error ({}) from client id={}",
                        e.0,
                        self.state.info.id.0
                    );
                    encode_reply(
                        &Reply::error(format!("ERR {}", e.0)),
                        self.state.client.protocol(),
                        &mut self.state.output,
                    );
                    return Stop::Close;
                }
            };
            if self.state.parser.is_empty() {
                self.state.input.advance(consumed);
                continue;
            }
            let argv: SmallVec<[&[u8]; 8]> = self
                .state
                .parser
                .args(&self.state.input[..consumed])
                .collect();
            if is_cross_protocol_attack(argv[0]) {
                tracing::warn!("Possible SECURITY ATTACK detected. It looks like somebody is sending POST or Host: commands to Redis. Connection aborted.");
                return Stop::Close;
            }
            let skip_reply = self.state.client.conn.reply_mode == ReplyMode::SkipNext;
            if skip_reply {
                self.state.client.conn.reply_mode = ReplyMode::On;
            }
            let in_transaction = self.state.client.multi.is_some();
            let outcome = engine.execute_batched(&mut self.state.client, &argv, kept);
            let forwarded: Option<Vec<Vec<u8>>> = matches!(outcome, Outcome::Forward(_))
                .then(|| argv.iter().map(|a| a.to_vec()).collect());
            drop(argv);
            let reply = match outcome {
                Outcome::Reply(reply) => reply,
                Outcome::Blocked(blocked) => {
                    self.state.input.advance(consumed);
                    return Stop::Blocked(blocked, skip_reply);
                }
                Outcome::Paused => {
                    // The same command runs again once the pause is over.
                    if skip_reply {
                        self.state.client.conn.reply_mode = ReplyMode::SkipNext;
                    }
                    return Stop::Paused;
                }
                Outcome::Forward(forward) => {
                    self.state.input.advance(consumed);
                    let argv = forwarded.unwrap_or_default();
                    return Stop::Forward(forward, argv, skip_reply);
                }
            };
            self.state.input.advance(consumed);
            // Inside a transaction (EXEC included) messages wait until after its replies,
            // as Redis 7.2 keeps them out of EXEC's array.
            if !in_transaction {
                self.take_messages();
            }
            if let Next::Close = self.deliver(&reply, skip_reply) {
                return Stop::Close;
            }
            if self.state.output.len() >= FLUSH_AT_BYTES {
                return Stop::Flush;
            }
        }
    }

    /// Adds a command's reply to the output (unless CLIENT REPLY says not to); `Close` when
    /// the client must go (QUIT, or its unread replies passed the output limit).
    fn deliver(&mut self, reply: &Reply, skip_reply: bool) -> Next {
        if !skip_reply && self.state.client.conn.reply_mode == ReplyMode::On {
            encode_reply(reply, self.state.client.protocol(), &mut self.state.output);
        }
        self.delivered()
    }

    /// [`Conn::deliver`] for a reply already in RESP (a forwarded command's).
    fn deliver_encoded(&mut self, reply: &[u8], skip_reply: bool) -> Next {
        if !skip_reply && self.state.client.conn.reply_mode == ReplyMode::On {
            self.state.output.extend_from_slice(reply);
        }
        self.delivered()
    }

    /// The mailbox its subscriptions deliver into, once it subscribed.
    fn mailbox(&self) -> Option<&crate::pubsub::Mailbox> {
        self.state.client.conn.pubsub.as_ref()?.sink.mailbox()
    }

    /// Moves the messages published to this subscriber since the last look into its output.
    /// Called before a command's reply is added, as Redis writes a message into the output
    /// when it is published (a RESP3 client publishing to itself gets the message, then
    /// PUBLISH's count).
    fn take_messages(&mut self) {
        let proto = self.state.client.protocol();
        let limit = self.state.settings.output_limits.pubsub;
        let Some(subscribed) = self.state.client.conn.pubsub.as_mut() else {
            return;
        };
        let Some(mailbox) = subscribed.sink.mailbox() else {
            return;
        };
        let revoked = mailbox.take(&mut self.state.output, proto == Protocol::Resp3, limit);
        if revoked.is_empty() {
            return;
        }
        for name in revoked {
            let reply = subscribed.revoked(&name);
            encode_reply(&reply, proto, &mut self.state.output);
        }
        subscribed.publish_counts(&self.state.info);
    }

    /// After a reply: whether the client must go.
    fn delivered(&mut self) -> Next {
        if self.state.client.conn.close_after_reply {
            return Next::Close;
        }
        if self.over_output_limit() {
            tracing::warn!(
                "Client id={} scheduled to be closed ASAP for overcoming of output buffer limits.",
                self.state.info.id.0
            );
            // Like Redis, the client gets nothing more, not even what was pending.
            self.state.output.clear();
            return Next::Close;
        }
        Next::Serve
    }

    /// The `client-output-buffer-limit` of this client's class.
    fn output_limit(&self) -> OutputLimit {
        let limits = self.state.settings.output_limits;
        match self.state.info.class() {
            ClientKind::Replica => limits.replica,
            ClientKind::PubSub => limits.pubsub,
            _ => limits.normal,
        }
    }

    /// Whether the replies we hold broke the hard limit, or stayed over the soft one too long
    /// (checked after each command; a stalled write also counts the kernel's queue).
    fn over_output_limit(&mut self) -> bool {
        let unread = self.state.output.len() as u64;
        self.state.info.output_bytes.store(
            self.state.output.len(),
            std::sync::atomic::Ordering::Relaxed,
        );
        self.output_limit()
            .exceeded(unread, &mut self.state.soft_limit_since)
    }

    /// Writes the gathered replies. While the client does not take them, its unread bytes
    /// are checked against its output limit every [`STALL_CHECK`]: a client that stopped
    /// reading is disconnected at its limit, as in Redis, while what we hold for it stays
    /// bounded by [`FLUSH_AT_BYTES`] and one reply (we read nothing more from it meanwhile).
    async fn flush(&mut self) -> io::Result<()> {
        if self.state.output.is_empty() {
            return Ok(());
        }
        let limit = self.output_limit();
        let held = self.state.output.len() as u64;
        let fd = self.state.info.fd;
        let (stream, output) = (&mut self.stream, &self.state.output);
        let write = async move {
            stream.write_all(output).await?;
            stream.flush().await
        };
        tokio::pin!(write);
        loop {
            tokio::select! {
                // The write first: when it completes at once, no timer is ever armed.
                biased;
                done = &mut write => {
                    done?;
                    break;
                }
                _ = tokio::time::sleep(STALL_CHECK) => {
                    if self.state.info.is_killed() {
                        return Err(io::Error::other("killed while its output was stalled"));
                    }
                    let unread = held + unsent_in_kernel(fd);
                    if limit.exceeded(unread, &mut self.state.soft_limit_since) {
                        tracing::warn!(
                            "Client id={} scheduled to be closed ASAP for overcoming of output buffer limits.",
                            self.state.info.id.0
                        );
                        return Err(io::Error::other("output buffer limit overcome"));
                    }
                }
            }
        }
        self.state
            .engine
            .clients
            .count_output(self.state.output.len());
        self.state.output.clear();
        self.state
            .info
            .output_bytes
            .store(0, std::sync::atomic::Ordering::Relaxed);
        self.state.soft_limit_since = None;
        if self.state.output.capacity() > OUTPUT_KEEP_BYTES {
            self.state.output.shrink_to(READ_CHUNK_BYTES);
        }
        Ok(())
    }

    /// Waits for a blocked command's reply, its timeout, a CLIENT UNBLOCK or a kill, while
    /// watching the socket; `None` when the connection should close.
    async fn wait_blocked(&mut self, blocked: Blocked) -> io::Result<Option<Reply>> {
        self.state.info.set_flag(flag::BLOCKED, true);
        let outcome = self.wait_blocked_inner(&blocked).await;
        self.state.info.set_flag(flag::BLOCKED, false);
        let engine = &self.state.engine;
        Ok(match outcome? {
            Wake::Served(reply) => Some(reply),
            Wake::Timeout | Wake::Unblocked(Unblock::Timeout) => {
                let timeout_reply = blocked.timeout_reply();
                Some(blocked.cancel(engine).unwrap_or(timeout_reply))
            }
            Wake::Unblocked(Unblock::Error) => {
                Some(blocked.cancel(engine).unwrap_or_else(|| {
                    Reply::error("UNBLOCKED client unblocked via CLIENT UNBLOCK")
                }))
            }
            Wake::Gone => {
                blocked.cancel(engine);
                None
            }
        })
    }

    async fn wait_blocked_inner(&mut self, blocked: &Blocked) -> io::Result<Wake> {
        let deadline = blocked.timeout().map(|t| tokio::time::Instant::now() + t);
        loop {
            let signal = self.state.info.signalled();
            if self.state.info.is_killed() {
                return Ok(Wake::Gone);
            }
            if let Some(how) = self.state.info.take_unblock() {
                return Ok(Wake::Unblocked(how));
            }
            // A RESP3 subscriber gets its pushes while it waits, as in Redis.
            if self.mailbox().is_some_and(|m| !m.is_empty()) {
                self.take_messages();
                self.flush().await?;
                continue;
            }
            let served = poll_fn(|cx| match blocked.poll_reply(cx.waker()) {
                Some(reply) => Poll::Ready(reply),
                None => Poll::Pending,
            });
            tokio::select! {
                reply = served => return Ok(Wake::Served(reply)),
                _ = sleep_until(deadline) => return Ok(Wake::Timeout),
                _ = signal => {}
                read = self.stream.read_buf(&mut self.state.input) => {
                    // Pipelined commands wait their turn; the end of the stream ends it all.
                    if read? == 0 || self.state.input.len() > self.state.settings.query_buffer_bytes_max {
                        return Ok(Wake::Gone);
                    }
                }
                _ = self.state.stopped.changed() => return Ok(Wake::Gone),
            }
        }
    }

    /// Waits for a CLIENT PAUSE to end; false if the client was killed meanwhile.
    /// Runs a command on the node that serves its slot; its reply, in RESP.
    async fn forward(&self, forward: Forward, argv: Vec<Vec<u8>>) -> Vec<u8> {
        let argv: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
        let proto = self.state.client.protocol();
        crate::cluster::forward::call(&self.state.engine, forward, &argv, proto).await
    }

    async fn wait_unpaused(&mut self) -> bool {
        loop {
            let ended = self.state.engine.pause.ended();
            let signal = self.state.info.signalled();
            if self.state.info.is_killed() {
                return false;
            }
            let now = self.state.engine.now_ms();
            if self.state.engine.pause.active(now).is_none() {
                return true;
            }
            let left =
                Duration::from_millis(self.state.engine.pause.until_ms().saturating_sub(now));
            tokio::select! {
                _ = ended => {}
                _ = tokio::time::sleep(left) => {}
                _ = signal => {}
                _ = self.state.stopped.changed() => return false,
            }
        }
    }
}

/// Bytes written to socket `fd` that the peer has not acknowledged yet (0 if unknown).
fn unsent_in_kernel(fd: i64) -> u64 {
    let Ok(fd) = i32::try_from(fd) else {
        return 0;
    };
    if fd < 0 {
        return 0;
    }
    let mut bytes: libc::c_int = 0;
    // SAFETY: TIOCOUTQ writes one int; on a descriptor that is not a socket it fails.
    let ok = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut bytes) } == 0;
    if ok {
        bytes.max(0) as u64
    } else {
        0
    }
}

/// Why a blocked command stopped waiting.
enum Wake {
    Served(Reply),
    Timeout,
    Unblocked(Unblock),
    /// The client went away, was killed, or the listener is stopping.
    Gone,
}

/// Redis drops connections whose first word is `POST` or `Host:`: an HTTP request sent to
/// the port by a browser tricked into it.
fn is_cross_protocol_attack(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"post") || name.eq_ignore_ascii_case(b"host:")
}

async fn sleep_for(duration: Option<Duration>) {
    match duration {
        Some(d) => tokio::time::sleep(d).await,
        None => pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => pending().await,
    }
}
