//! The replica side: links to the primary, asks to continue from its own offset, loads a
//! snapshot when it must, then applies the primary's log and appends it verbatim to its own
//! (so that its offsets, its AOF and its own replicas follow the primary byte for byte).

use super::wire::{self, ToPrimary, ToReplica, LOG_STREAM, SNAPSHOT_STREAM};
use super::{LinkStatus, ReplId, Upstream};
use crate::engine::{Client, Engine};
use crate::log::Offset;
use crate::resp::Protocol;
use crate::transport::{Endpoint, Link, RecvStream, SendStream};
use bytes::Bytes;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

/// After a lost link the replica tries again this soon (Redis reconnects every second).
const RETRY_MS: u64 = 1_000;
/// How long the primary's RESP port has to tell where its QUIC endpoint is.
const BUS_QUERY_TIMEOUT_MS: u64 = 2_000;
/// Largest piece of the log taken from the link at a time.
const CHUNK_BYTES_MAX: usize = 1 << 20;
/// Log bytes a replica holds while it loads a snapshot (Redis's `client-output-buffer-limit
/// replica` hard limit is 256mb); past this the sync fails and starts again.
const BUFFERED_BYTES_MAX: usize = 256 << 20;

fn closed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, what.to_string())
}

fn link_error(e: crate::transport::LinkError) -> io::Error {
    io::Error::other(e.to_string())
}

/// Follows `upstream` until aborted: links, synchronizes, applies; after a failure, again.
pub(super) async fn follow(engine: Weak<Engine>, endpoint: Endpoint, upstream: Upstream) {
    loop {
        let Some(node) = engine.upgrade() else {
            return;
        };
        node.repl.set_link(LinkStatus::Connecting);
        let outcome = sync(&node, &endpoint, &upstream).await;
        node.repl.set_link(LinkStatus::Connecting);
        if let Err(e) = outcome {
            tracing::warn!(
                "Connection with master {}:{} lost: {e}",
                upstream.host,
                upstream.port
            );
        }
        drop(node);
        tokio::time::sleep(Duration::from_millis(RETRY_MS)).await;
    }
}

async fn sync(engine: &Arc<Engine>, endpoint: &Endpoint, upstream: &Upstream) -> io::Result<()> {
    let bus = match upstream.bus {
        Some(bus) => bus,
        None => find_bus(&upstream.host, upstream.port).await?,
    };
    let link = endpoint.connect(bus).await.map_err(link_error)?;
    let outcome = run(engine, &link).await;
    // Whatever ended the session, the link goes with it (the task buffering the log
    // stream would otherwise keep it open).
    link.close("replication stopped");
    outcome
}

/// The primary's QUIC endpoint: its RESP port tells (REPLCONF shoal-bus-port); a primary
/// that cannot be asked (TLS only, or not a Shoal) is taken to be at the RESP port + 10000,
/// where Redis places its cluster bus.
async fn find_bus(host: &str, port: u16) -> io::Result<SocketAddr> {
    let fallback = port.checked_add(10_000);
    let asked = tokio::time::timeout(Duration::from_millis(BUS_QUERY_TIMEOUT_MS), async {
        let mut conn = tokio::net::TcpStream::connect((host, port)).await?;
        ask_bus_port(&mut conn).await
    })
    .await
    .unwrap_or_else(|_| Err(io::Error::other("no answer")));
    let bus_port = match (asked, fallback) {
        (Ok(port), _) => port,
        (Err(e), Some(guess)) => {
            tracing::debug!("{host}:{port} did not tell its bus port ({e}); trying {guess}");
            guess
        }
        (Err(e), None) => return Err(e),
    };
    tokio::net::lookup_host((host, bus_port))
        .await?
        .next()
        .ok_or_else(|| io::Error::other(format!("can't resolve {host}")))
}

/// Sends the query and reads its integer reply (at most a short line).
async fn ask_bus_port(conn: &mut tokio::net::TcpStream) -> io::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let option = crate::cmd::replication::BUS_PORT_OPTION;
    let query = format!(
        "*3\r\n$8\r\nREPLCONF\r\n${}\r\n{option}\r\n$1\r\n*\r\n",
        option.len()
    );
    conn.write_all(query.as_bytes()).await?;
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") {
        let mut byte = [0u8; 1];
        if conn.read(&mut byte).await? == 0 || line.len() > 32 {
            return Err(io::Error::other("no integer reply"));
        }
        line.push(byte[0]);
    }
    std::str::from_utf8(&line)
        .ok()
        .and_then(|l| l.strip_prefix(':')?.trim_end().parse().ok())
        .ok_or_else(|| io::Error::other(String::from_utf8_lossy(&line).trim_end().to_string()))
}

/// One session on an established link: the handshake, a sync, then the live log.
async fn run(engine: &Arc<Engine>, link: &Link) -> io::Result<()> {
    tracing::info!("MASTER <-> REPLICA sync started");
    let (mut control, mut from_primary) = link.open_bi().await.map_err(link_error)?;
    control.write_all(&[wire::REPLICATION_STREAM]).await?;
    let ids = engine.repl.ids();
    let sync = ToPrimary::Sync {
        replid: ids.replid.0,
        offset: Some(engine.log().end().0),
        listening_port: engine.config().port,
        node: engine.cluster.get().map(|c| c.state().myself_id()),
        failover: engine.repl.handing_over.load(Ordering::Acquire),
    };
    control.write_all(&wire::encode(&sync)?).await?;
    let answer = wire::read::<ToReplica>(&mut from_primary)
        .await?
        .ok_or_else(|| closed("the primary closed the link"))?;
    // Answered: the hand-over, if this sync asked for one, happened.
    engine.repl.handing_over.store(false, Ordering::Release);
    let mut streams = TaggedStreams::new(link);
    let log = match answer {
        ToReplica::Continue { replid } => {
            tracing::info!("Successful partial resynchronization with master.");
            let log = streams.take(LOG_STREAM).await?;
            engine.repl.shift(ReplId(replid), engine.log().end().0);
            buffer(log)
        }
        ToReplica::FullResync { replid, offset } => {
            tracing::info!("Full resync from master: {replid}:{offset}");
            engine.repl.set_link(LinkStatus::Sync);
            let snapshot = streams.take(SNAPSHOT_STREAM).await?;
            // The log streams meanwhile; it is held until the snapshot is loaded.
            let log = buffer(streams.take(LOG_STREAM).await?);
            let path = receive_snapshot(engine, snapshot).await?;
            let loaded = {
                let engine = engine.clone();
                let path = path.clone();
                tokio::task::spawn_blocking(move || load(&engine, &path, offset, ReplId(replid)))
                    .await
                    .map_err(io::Error::other)?
            };
            let _ = std::fs::remove_file(&path);
            loaded?;
            log
        }
        ToReplica::Ping => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the primary answered Sync with a ping",
            ))
        }
    };
    engine.repl.set_link(LinkStatus::Connected);
    engine.repl.touch_link();
    apply_log(engine, log, control, from_primary).await
}

/// The link's unidirectional streams, told apart by their first byte.
struct TaggedStreams<'a> {
    link: &'a Link,
    early: Vec<(u8, RecvStream)>,
}

impl<'a> TaggedStreams<'a> {
    fn new(link: &'a Link) -> TaggedStreams<'a> {
        TaggedStreams {
            link,
            early: Vec::new(),
        }
    }

    /// The stream tagged `tag` (streams may arrive in either order).
    async fn take(&mut self, tag: u8) -> io::Result<RecvStream> {
        if let Some(i) = self.early.iter().position(|(t, _)| *t == tag) {
            return Ok(self.early.swap_remove(i).1);
        }
        loop {
            let mut stream = self.link.accept_uni().await.map_err(link_error)?;
            let mut first = [0u8; 1];
            tokio::io::AsyncReadExt::read_exact(&mut stream, &mut first).await?;
            match first[0] {
                t if t == tag => return Ok(stream),
                t @ (LOG_STREAM | SNAPSHOT_STREAM) if self.early.len() < 2 => {
                    self.early.push((t, stream));
                }
                t => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("unknown stream tag {t}"),
                    ))
                }
            }
        }
    }
}

/// Log chunks up to this size are applied without handing the runtime's thread over.
const INLINE_APPLY_BYTES_MAX: usize = 64 * 1024;

/// A burst from the primary is applied in pieces of this size (about 200 SETs, a tenth of a
/// millisecond), and the applier yields its core between them. Otherwise the scheduler lets
/// it run for whole slices (milliseconds) while threads woken on its core wait, and on a host
/// shared with the application or with a primary those are the threads that produce the
/// writes. A yield only reorders: the applier keeps its fair share of CPU time.
const APPLY_SLICE_BYTES: usize = 8 * 1024;

/// The primary's log as received and not yet applied.
struct LogFeed {
    chunks: mpsc::UnboundedReceiver<io::Result<Bytes>>,
    /// Bytes in `chunks`: the reader stops at [`BUFFERED_BYTES_MAX`].
    held: Arc<AtomicUsize>,
}

impl LogFeed {
    fn taken(&self, chunk: io::Result<Bytes>) -> io::Result<Bytes> {
        let chunk = chunk?;
        self.held.fetch_sub(chunk.len(), Ordering::AcqRel);
        Ok(chunk)
    }

    /// The next chunk, waiting for it.
    async fn next(&mut self) -> io::Result<Bytes> {
        let chunk = self.chunks.recv().await;
        self.taken(chunk.ok_or_else(|| closed("the log stream ended"))?)
    }

    /// The next chunk if one already arrived.
    fn next_ready(&mut self) -> Option<io::Result<Bytes>> {
        let chunk = self.chunks.try_recv().ok()?;
        Some(self.taken(chunk))
    }
}

/// Reads the log stream into a channel as fast as it comes, holding at most
/// [`BUFFERED_BYTES_MAX`] not yet applied.
fn buffer(mut stream: RecvStream) -> LogFeed {
    let (sender, chunks) = mpsc::unbounded_channel();
    let held = Arc::new(AtomicUsize::new(0));
    let feed = LogFeed {
        chunks,
        held: held.clone(),
    };
    tokio::spawn(async move {
        loop {
            let next = match stream.read_chunk(CHUNK_BYTES_MAX).await {
                Ok(Some(chunk)) => Ok(chunk),
                Ok(None) => Err(closed("the primary ended the log stream")),
                Err(e) => Err(e),
            };
            let failed = next.is_err();
            if let Ok(chunk) = &next {
                if held.fetch_add(chunk.len(), Ordering::AcqRel) > BUFFERED_BYTES_MAX {
                    let _ = sender.send(Err(io::Error::other(
                        "the log arrived faster than it could be applied (256mb held)",
                    )));
                    return;
                }
            }
            if sender.send(next).is_err() || failed {
                return;
            }
        }
    });
    feed
}

/// Receives the snapshot into a temporary file in `dir` (Redis's disk-based load).
async fn receive_snapshot(engine: &Engine, mut stream: RecvStream) -> io::Result<PathBuf> {
    let path = engine.settings().dir.join(format!(
        "temp-{}-{}.sync.rdb",
        std::process::id(),
        fastrand::u32(..)
    ));
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
    let received = async {
        while let Some(chunk) = stream.read_chunk(CHUNK_BYTES_MAX).await? {
            file.write_all(&chunk)?;
        }
        file.flush()
    };
    match received.await {
        Ok(()) => Ok(path),
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}

/// Replaces the dataset with the snapshot at `path`, equal to the primary's log at `offset`.
/// Clients get LOADING meanwhile. A snapshot damaged on the way fails its checksum and is
/// refused before anything is dropped; one that still fails to decode leaves the node empty
/// (never half loaded), and the sync starts over.
fn load(
    engine: &Arc<Engine>,
    path: &std::path::Path,
    offset: u64,
    replid: ReplId,
) -> io::Result<()> {
    let image = std::fs::read(path)?;
    // A damaged snapshot is refused while the old data is still there.
    if !crate::persist::rdb::checksum_matches(&image) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the snapshot from the primary fails its checksum",
        ));
    }
    let repl = &engine.repl;
    // A role change while loading (REPLICAOF NO ONE, another primary) ends this history.
    let epoch = repl.epoch();
    repl.loading.store(true, Ordering::Release);
    // The AOF pauses: its files would describe a history the load replaces. The rewrite
    // claim keeps CONFIG SET appendonly and BGREWRITEAOF from starting a writer meanwhile.
    let aof = &engine.persist.aof;
    while !aof.begin_rewrite() {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    crate::persist::aof::pause(engine);
    let loaded = {
        let mut client = Applier::new(engine).client;
        engine.execute_waiting(&mut client, &[b"FLUSHALL"]);
        // Keys already expired stay: the primary's DELs remove them, as on a Redis replica.
        let result = crate::persist::recovery::load_rdb_bytes(engine, path, &image, false);
        // Loaded, the data is the primary's history at `offset`; not loaded, it is no
        // history at all (a new ID), so that the next sync cannot continue from it.
        let (at, id) = match &result {
            Ok(_) if repl.epoch() == epoch => (offset, replid),
            Ok(_) => (offset, ReplId::random()),
            Err(_) => {
                // What the failed load inserted goes too: never a half dataset.
                engine.execute_waiting(&mut client, &[b"FLUSHALL"]);
                (0, ReplId::random())
            }
        };
        engine.log().reset(Offset(at));
        repl.adopt(id);
        // Our own replicas follow a history that just ended.
        repl.epoch.fetch_add(1, Ordering::AcqRel);
        result
            .map(|_| ())
            .map_err(|e| io::Error::other(e.to_string()))
    };
    repl.loading.store(false, Ordering::Release);
    // As Redis does after a sync: a new AOF from the dataset as loaded (if it fails, the
    // node's tick tries again).
    let restarted = crate::persist::aof::restart(engine);
    aof.end_rewrite(restarted.is_ok());
    if let Err(e) = restarted {
        tracing::warn!("Turning the AOF back on after the sync failed: {e}");
    }
    if loaded.is_ok() {
        tracing::info!("MASTER <-> REPLICA sync: Finished with success");
    }
    loaded
}

/// Applies the primary's stream and appends it to our log verbatim. A transaction reaches
/// the log only once its EXEC has been applied, and the applier starts in the database the
/// log left selected: after a lost link, the primary continues from our log's end, so our
/// log must end exactly where our dataset does.
struct Applier {
    client: Client,
    /// Received bytes not yet applied (a command cut by the chunk boundary).
    pending: Vec<u8>,
    /// Applied bytes of a transaction whose EXEC has not arrived.
    open_transaction: Vec<u8>,
    /// Bytes applied since the applier last yielded or acknowledged.
    unyielded_bytes: usize,
}

impl Applier {
    fn new(engine: &Engine) -> Applier {
        let mut client = Client::new(Protocol::Resp2);
        // Never refused, no expiry judgement, and not logged: the primary's bytes are.
        client.replaying = true;
        client.effects.batch = crate::log::Batch::unlogged();
        client.db = engine.log().last_db().unwrap_or(0);
        Applier {
            client,
            pending: Vec::new(),
            open_transaction: Vec::new(),
            unyielded_bytes: 0,
        }
    }

    /// Applies a chunk from the runtime's thread: a small one in place, a large one
    /// (a burst; milliseconds of work) with the thread handed over meanwhile, as the hand-over
    /// costs more than applying a few commands.
    fn apply_chunk(&mut self, engine: &Engine, chunk: &[u8]) -> io::Result<()> {
        let mut apply = || self.apply_yielding(engine, chunk);
        match chunk.len() <= INLINE_APPLY_BYTES_MAX {
            true => apply(),
            false => tokio::task::block_in_place(apply),
        }
    }

    /// Applies `chunk` in pieces, yielding the core every [`APPLY_SLICE_BYTES`].
    fn apply_yielding(&mut self, engine: &Engine, chunk: &[u8]) -> io::Result<()> {
        let mut at = 0;
        while at < chunk.len() {
            if self.unyielded_bytes >= APPLY_SLICE_BYTES {
                std::thread::yield_now();
                self.unyielded_bytes = 0;
            }
            let end = chunk.len().min(at + APPLY_SLICE_BYTES);
            let taken = self.apply(engine, &chunk[at..end], end == chunk.len())?;
            self.unyielded_bytes += taken;
            at += taken;
        }
        Ok(())
    }

    /// Applies and logs the whole commands of `chunk` (after the bytes held from before),
    /// and returns how many of its bytes were taken. A command cut at its end is held for the
    /// next call when `chunk` ends the received bytes (`last`) or holds no whole command;
    /// otherwise it is left to the caller, whose next piece starts there instead of being
    /// copied in after it.
    fn apply(&mut self, engine: &Engine, chunk: &[u8], last: bool) -> io::Result<usize> {
        // Applied and appended as one step for snapshots (see `State::applying`).
        let _applying = engine.repl.applying.read();
        // Straight from the chunk, unless the last one ended inside a command.
        let mut pending = std::mem::take(&mut self.pending);
        let held = pending.len();
        let stream = match pending.is_empty() {
            true => chunk,
            false => {
                pending.extend_from_slice(chunk);
                &pending[..]
            }
        };
        let applied = engine.apply_stream(&mut self.client, stream);
        if applied.errors > 0 {
            tracing::warn!(
                "{} commands from the primary failed here (first: {})",
                applied.errors,
                applied.first_error.unwrap_or_default()
            );
        }
        let consumed = applied.consumed;
        // Whole up to here: everything before an unfinished MULTI.
        let whole = match (self.client.multi.is_some(), applied.open_multi_at) {
            (false, _) => consumed,
            (true, Some(multi_at)) => multi_at,
            (true, None) => 0,
        };
        if whole > 0 || self.client.multi.is_none() {
            let log = engine.log();
            let db = self.client.db;
            if self.open_transaction.is_empty() {
                log.append_raw(&stream[..whole], applied.commands, db);
            } else {
                self.open_transaction.extend_from_slice(&stream[..whole]);
                log.append_raw(&self.open_transaction, applied.commands, db);
                self.open_transaction.clear();
            }
        }
        self.open_transaction
            .extend_from_slice(&stream[whole..consumed]);
        // Leave the unconsumed tail to the caller's next piece, or hold it.
        let taken = if consumed > held && !last {
            pending.clear();
            consumed - held
        } else {
            if held == 0 {
                pending.extend_from_slice(&chunk[consumed..]);
            } else {
                pending.drain(..consumed);
            }
            chunk.len()
        };
        self.pending = pending;
        // What came before the bad bytes is applied and logged above, so that the offset
        // this replica resumes from counts exactly what its dataset holds.
        match applied.malformed {
            Some(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e.0)),
            None => Ok(taken),
        }
    }
}

/// Tells the primary how far our log is applied and fsynced (REPLCONF ACK).
async fn acknowledge(engine: &Engine, control: &mut SendStream) -> io::Result<()> {
    let applied = engine.log().end().0;
    let aof = &engine.persist.aof;
    let fsynced = if aof.is_enabled() {
        aof.durable_offset().min(applied)
    } else {
        0
    };
    let ack = ToPrimary::Ack { applied, fsynced };
    control.write_all(&wire::encode(&ack)?).await
}

/// Applies the log as it comes and acknowledges what is applied (and fsynced).
async fn apply_log(
    engine: &Arc<Engine>,
    mut log: LogFeed,
    mut control: SendStream,
    mut from_primary: RecvStream,
) -> io::Result<()> {
    let mut applier = Applier::new(engine);
    // Redis's replicas send REPLCONF ACK every second besides after each write.
    let mut every_second = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = every_second.tick() => {
                let silent = engine.repl.link().1.map(|t| t.elapsed().as_secs());
                if silent.is_some_and(|s| s > engine.settings().repl_timeout_secs) {
                    return Err(closed("MASTER timeout: no data nor PING received"));
                }
                acknowledge(engine, &mut control).await?;
            }
            chunk = log.next() => {
                applier.apply_chunk(engine, &chunk?)?;
                // Take whatever else already arrived: one acknowledgement for all of it.
                while let Some(more) = log.next_ready() {
                    applier.apply_chunk(engine, &more?)?;
                }
                engine.repl.touch_link();
                acknowledge(engine, &mut control).await?;
                // A burst has been applied: the next write, if alone, is acknowledged without
                // a yield before it.
                applier.unyielded_bytes = 0;
            }
            message = wire::read::<ToReplica>(&mut from_primary) => {
                match message? {
                    Some(ToReplica::Ping) => engine.repl.touch_link(),
                    Some(other) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("unexpected {other:?} from the primary"),
                        ))
                    }
                    None => return Err(closed("the primary closed the link")),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Applier;
    use crate::log::{Keep, Offset};
    use crate::{Config, Node};
    use std::time::Duration;

    /// The log of `node` from its start.
    fn log_bytes(node: &Node) -> Vec<u8> {
        let log = node.engine().log();
        let mut reader = log.reader(Offset(0), Keep::All).expect("reader");
        let mut bytes = Vec::new();
        while reader.position() < log.end() {
            let chunk = reader.read(1 << 20, Duration::ZERO).expect("kept");
            bytes.extend_from_slice(&chunk);
        }
        bytes
    }

    #[test]
    fn chunks_cut_anywhere_apply_and_log_as_the_whole_stream() {
        let primary = Node::open(Config::new()).expect("open");
        let mut s = primary.session();
        // Longer than APPLY_SLICE_BYTES, so that a whole-stream chunk is applied in pieces.
        for i in 0..200 {
            s.execute(&["SET", &format!("k{i}"), &"v".repeat(i)]);
            s.execute(&["MULTI"]);
            s.execute(&["INCR", "n"]);
            s.execute(&["RPUSH", "l", &i.to_string()]);
            s.execute(&["EXEC"]);
            s.execute(&["SELECT", &(i % 3).to_string()]);
        }
        let stream = log_bytes(&primary);
        assert!(stream.len() > 2 * super::APPLY_SLICE_BYTES);
        for chunk_bytes in [1, 2, 5, 17, 64, 10_000, stream.len()] {
            let replica = Node::open(Config::new()).expect("open");
            let engine = replica.engine();
            let mut applier = Applier::new(engine);
            for chunk in stream.chunks(chunk_bytes) {
                applier.apply_yielding(engine, chunk).expect("applies");
            }
            assert_eq!(log_bytes(&replica), stream, "chunks of {chunk_bytes}");
            assert_eq!(
                replica.digest(),
                primary.digest(),
                "chunks of {chunk_bytes}"
            );
        }
    }

    /// Bad bytes after good commands: the commands are applied and logged, so that the offset
    /// the replica resumes from (its log's end) counts exactly what its dataset holds; were
    /// they applied without being logged, a resumed stream would apply them twice.
    #[test]
    fn commands_before_bad_bytes_are_applied_and_logged() {
        let primary = Node::open(Config::new()).expect("open");
        let mut s = primary.session();
        for i in 0..20 {
            s.execute(&["INCR", &format!("n{}", i % 3)]);
        }
        let good = log_bytes(&primary);
        let replica = Node::open(Config::new()).expect("open");
        let engine = replica.engine();
        let mut applier = Applier::new(engine);
        let stream = [&good[..], b"*2\r\n$x\r\n"].concat();
        let refused = applier
            .apply_yielding(engine, &stream)
            .expect_err("bad bytes refused");
        assert_eq!(refused.kind(), std::io::ErrorKind::InvalidData);
        assert_eq!(log_bytes(&replica), good);
        assert_eq!(replica.digest(), primary.digest());
    }
}
