//! The primary side: accepts replicas' links, answers their Sync with a partial or a full
//! resync, streams the write log, and records their acknowledgements.

use super::wire::{self, ToPrimary, ToReplica, LOG_STREAM, SNAPSHOT_STREAM};
use crate::affinity;
use crate::engine::Engine;
use crate::log::{Keep, LogReader, Offset};
use crate::persist::snapshot;
use crate::transport::{Endpoint, Link, RecvStream, SendStream};
use bytes::Bytes;
use std::io::{self, Write};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Bytes of log taken per stream write: many commands per write.
const READ_BYTES_MAX: usize = 256 * 1024;
/// How long an idle log sender waits for an append before it looks again.
const IDLE_WAIT_MAX: Duration = Duration::from_millis(100);
/// Snapshot chunks in flight between the snapshot writer and the link.
const SNAPSHOT_CHUNKS_MAX: usize = 16;
/// How often a session looks for a role change, a silent replica and a ping to send.
const TICK_MS: u64 = 1_000;
/// How often a sender blocked on a replica that reads nothing checks the output limits.
const LIMIT_CHECK_INTERVAL: Duration = Duration::from_millis(250);

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

fn link_error(e: crate::transport::LinkError) -> io::Error {
    io::Error::other(e.to_string())
}

/// Serves every link to `endpoint` until it closes: a replica's, a cluster node's bus, or
/// commands forwarded by a cluster node, as the first byte of its first stream says.
pub(super) async fn accept_loop(engine: Weak<Engine>, endpoint: Endpoint) {
    while let Some(link) = endpoint.accept().await {
        let engine = engine.clone();
        tokio::spawn(async move {
            let addr = link.remote_addr();
            let served = async {
                let (control, mut acks) = link.accept_bi().await.map_err(link_error)?;
                let mut purpose = [0u8; 1];
                tokio::io::AsyncReadExt::read_exact(&mut acks, &mut purpose).await?;
                match purpose[0] {
                    wire::REPLICATION_STREAM => serve(engine, &link, control, acks).await,
                    crate::cluster::bus::BUS_STREAM => {
                        crate::cluster::bus::serve(engine, &link, control, acks).await
                    }
                    crate::cluster::forward::FORWARD_STREAM => {
                        crate::cluster::forward::serve(engine, &link, (control, acks)).await
                    }
                    other => Err(invalid(format!("unknown link purpose {other}"))),
                }
            };
            if let Err(e) = served.await {
                tracing::warn!("Connection with peer {addr} lost: {e}");
            }
            link.close("link closed");
        });
    }
}

/// Removes a replica from INFO and WAIT's count when its session ends, however it ends.
struct Registered(Arc<Engine>, u64);

impl Drop for Registered {
    fn drop(&mut self) {
        self.0.repl.remove_replica(self.1);
    }
}

async fn serve(
    engine: Weak<Engine>,
    link: &Link,
    mut control: SendStream,
    mut acks: RecvStream,
) -> io::Result<()> {
    let Some(ToPrimary::Sync {
        replid,
        offset,
        listening_port,
        node,
        failover,
    }) = wire::read(&mut acks).await?
    else {
        return Err(invalid("the replica did not start with Sync"));
    };
    let engine = engine
        .upgrade()
        .ok_or_else(|| io::Error::other("closing"))?;
    if failover && engine.repl.is_replica() {
        // Our primary hands over (FAILOVER): take over, then serve it as our replica.
        tracing::info!("Failover request received for replid {replid}.");
        super::replicaof(&engine, None, None).map_err(io::Error::other)?;
    }
    let epoch = engine.repl.epoch();
    let addr = link.remote_addr();
    let id = engine
        .repl
        .add_replica(addr.ip().to_string(), listening_port, node);
    let _registered = Registered(engine.clone(), id);
    let repl = &engine.repl;
    let (reader, snapshot) = match offset.filter(|&o| repl.can_continue(&engine, &replid, o)) {
        Some(from) => {
            let backlog = engine.log().end().0 - from;
            tracing::info!("Partial resynchronization request from {addr} accepted. Sending {backlog} bytes of backlog starting from offset {from}.");
            repl.sync_partial_ok
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let replid = repl.ids().replid.0;
            control
                .write_all(&wire::encode(&ToReplica::Continue { replid })?)
                .await?;
            let reader = engine
                .log()
                .reader(Offset(from), replica_keep(&engine))
                .map_err(io::Error::other)?;
            repl.update_replica(id, |r| {
                r.state = "online";
                r.applied = from;
                r.last_ack = std::time::Instant::now();
            });
            (reader, None)
        }
        None => {
            if offset.is_some() {
                repl.sync_partial_err
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            tracing::info!("Replica {addr} asks for synchronization; starting a full resync");
            let (reader, snapshot) = full_resync(&engine, link, &mut control, id).await?;
            (reader, Some(snapshot))
        }
    };
    let mut log_stream = link.open_uni().await.map_err(link_error)?;
    log_stream.write_all(&[LOG_STREAM]).await?;
    let snapshot_sent = async {
        match snapshot {
            Some(task) => task.await.map_err(io::Error::other)?,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        sent = pump_log(&engine, reader, log_stream) => sent,
        acked = read_acks(&engine, id, acks) => acked,
        stopped = watch(&engine, id, epoch, control) => stopped,
        sent = snapshot_sent => sent.and(Err(io::Error::other("snapshot stream ended"))),
    }
}

/// Starts a full resync: the replica joins a snapshot (see [`join_snapshot`]), FullResync
/// names its offset, and a task streams it to the replica. Returns the log reader (placed at
/// the snapshot's offset) and that task, which ends with an error or never (a finished
/// snapshot marks the replica online).
async fn full_resync(
    engine: &Arc<Engine>,
    link: &Link,
    control: &mut SendStream,
    id: u64,
) -> io::Result<(LogReader, tokio::task::JoinHandle<io::Result<()>>)> {
    let repl = &engine.repl;
    if repl.is_loading() {
        // Our own data is being replaced: the replica will try again after the load.
        return Err(io::Error::other("loading the primary's snapshot"));
    }
    repl.sync_full
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let Share {
        offset,
        reader,
        mut pieces,
    } = join_snapshot(engine).await?;
    let reader = reader.map_err(io::Error::other)?;
    let replid = repl.ids().replid.0;
    tracing::info!("Full resync requested by replica: starting BGSAVE for replication (replid {replid}, offset {})", offset.0);
    control
        .write_all(&wire::encode(&ToReplica::FullResync {
            replid,
            offset: offset.0,
        })?)
        .await?;
    let mut stream = link.open_uni().await.map_err(link_error)?;
    repl.update_replica(id, |r| r.state = "send_bulk");
    let engine = engine.clone();
    let task = tokio::spawn(async move {
        stream.write_all(&[SNAPSHOT_STREAM]).await?;
        let (keys, bytes) = loop {
            match pieces.recv().await {
                Some(Piece::Bytes(chunk)) => stream.write_chunk(chunk).await?,
                Some(Piece::End(end)) => break end.map_err(io::Error::other)?,
                None => return Err(io::Error::other("the snapshot stopped")),
            }
        };
        stream.finish();
        tracing::info!("Synchronization with replica succeeded ({keys} keys, {bytes} bytes)");
        engine.repl.update_replica(id, |r| {
            r.state = "online";
            r.last_ack = std::time::Instant::now();
        });
        std::future::pending::<io::Result<()>>().await
    });
    Ok((reader, task))
}

/// Full syncs waiting for a snapshot to share (`repl-diskless-sync-delay`).
#[derive(Default)]
pub(super) struct Waiting {
    /// Numbers the groups, so that a group's timer never starts a later group early.
    group: u64,
    joiners: Vec<oneshot::Sender<Share>>,
}

/// One replica's part of a snapshot.
struct Share {
    offset: Offset,
    reader: Result<LogReader, String>,
    pieces: mpsc::Receiver<Piece>,
}

/// What the snapshot sends each replica: its bytes, then how it ended (keys and bytes).
enum Piece {
    Bytes(Bytes),
    End(Result<(u64, u64), String>),
}

/// Joins the next snapshot for replicas. As in Redis, the first full sync waits
/// `repl-diskless-sync-delay` seconds for others to join, or until
/// `repl-diskless-sync-max-replicas` wait; then one snapshot streams to all of them (its
/// sweep is the cost that is shared; there is no fork to share).
async fn join_snapshot(engine: &Arc<Engine>) -> io::Result<Share> {
    let settings = engine.settings();
    let delay_secs = settings.repl_diskless_sync_delay_secs;
    let max = settings.repl_diskless_sync_max_replicas;
    let (joined, share) = oneshot::channel();
    let ready = {
        let mut waiting = engine.repl.full_syncs.lock();
        let first = waiting.joiners.is_empty();
        if first {
            waiting.group += 1;
        }
        waiting.joiners.push(joined);
        if delay_secs == 0 || (max > 0 && waiting.joiners.len() >= max) {
            Some(std::mem::take(&mut waiting.joiners))
        } else {
            if first {
                tracing::info!("Delay next BGSAVE for diskless SYNC ({delay_secs} s, for other replicas to share it)");
                let delay = Duration::from_secs(delay_secs);
                tokio::spawn(start_after(Arc::downgrade(engine), waiting.group, delay));
            }
            None
        }
    };
    if let Some(joiners) = ready {
        start_snapshot(engine, joiners);
    }
    share
        .await
        .map_err(|_| io::Error::other("the snapshot did not start"))
}

/// Starts group `group` after `delay`, unless it already started.
async fn start_after(engine: Weak<Engine>, group: u64, delay: Duration) {
    tokio::time::sleep(delay).await;
    let Some(engine) = engine.upgrade() else {
        return;
    };
    let joiners = {
        let mut waiting = engine.repl.full_syncs.lock();
        if waiting.group != group {
            return;
        }
        std::mem::take(&mut waiting.joiners)
    };
    if !joiners.is_empty() {
        start_snapshot(&engine, joiners);
    }
}

/// One snapshot for `joiners`: each gets a log reader at its offset (placed while no write
/// can happen) and the stream of its bytes. A replica whose link closes is dropped from it.
fn start_snapshot(engine: &Arc<Engine>, mut joiners: Vec<oneshot::Sender<Share>>) {
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || {
        let senders = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let target = snapshot::Target {
            sweepers: 1,
            format: snapshot::Format::Rdb,
        };
        let on_begin = |at: Offset| {
            for joiner in joiners.drain(..) {
                let (sender, pieces) = mpsc::channel(SNAPSHOT_CHUNKS_MAX);
                let reader = engine
                    .log()
                    .reader(at, replica_keep(&engine))
                    .map_err(|e| e.to_string());
                let share = Share {
                    offset: at,
                    reader,
                    pieces,
                };
                if joiner.send(share).is_ok() {
                    senders.lock().push(sender);
                }
            }
        };
        // Placed as Redis places its replication fork; the pooled thread goes back after.
        affinity::place_current_thread(engine.config(), affinity::Threads::Bgsave);
        let result = snapshot::stream(&engine, target, FanOut(senders.clone()), on_begin);
        affinity::place_current_thread(engine.config(), affinity::Threads::Bio);
        let end = result
            .map(|stats| (stats.keys, stats.bytes))
            .map_err(|e| e.to_string());
        for sender in senders.lock().drain(..) {
            let _ = sender.blocking_send(Piece::End(end.clone()));
        }
    });
}

/// The snapshot writer's output: each chunk to every replica still listening.
struct FanOut(Arc<parking_lot::Mutex<Vec<mpsc::Sender<Piece>>>>);

impl Write for FanOut {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let chunk = Bytes::copy_from_slice(bytes);
        let mut senders = self.0.lock();
        senders.retain(|s| s.blocking_send(Piece::Bytes(chunk.clone())).is_ok());
        if senders.is_empty() {
            return Err(io::Error::other("every replica's link closed"));
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What a replica's sender keeps in the log: what it has not sent, up to
/// `client-output-buffer-limit replica`'s hard limit (0: no limit), as Redis keeps a
/// replica's output buffer. Only the retained history (`repl-backlog-size`, 1 MB by default:
/// a few milliseconds of a busy primary's writes) would make a sender stalled for that long
/// cost its replica a full resync.
fn replica_keep(engine: &Engine) -> Keep {
    match engine.settings().output_limits.replica.hard_bytes {
        0 => Keep::Within(u64::MAX),
        bytes => Keep::Within(bytes),
    }
}

/// Streams the log from the reader's position for as long as the link lasts. A replica that
/// lags past `client-output-buffer-limit replica` (its hard limit, or its soft limit for
/// longer than allowed) is dropped, as Redis drops it; so is one so far behind that the log
/// no longer holds its position. It will resync.
///
/// A sender that finds nothing waits for the next append, which wakes it only then
/// ([`crate::log::WriteLog::listen_appended`]): a wake-up per write would cost the writing
/// threads a system call each, while a busy sender reads whatever accumulated meanwhile, as
/// Redis writes to its replicas once per event loop.
async fn pump_log(engine: &Engine, mut reader: LogReader, mut out: SendStream) -> io::Result<()> {
    let log = engine.log();
    let mut over_soft_since = None;
    loop {
        check_output_limit(engine, &reader, &mut over_soft_since)?;
        let mut chunk = reader
            .read(READ_BYTES_MAX, Duration::ZERO)
            .map_err(io::Error::other)?;
        if chunk.is_empty() {
            let appended = log.listen_appended();
            chunk = reader
                .read(READ_BYTES_MAX, Duration::ZERO)
                .map_err(io::Error::other)?;
            if chunk.is_empty() {
                if log.is_closed() {
                    return Err(io::Error::other("the node is closing"));
                }
                // The timeout only bounds how long a missed close goes unnoticed.
                let _ = tokio::time::timeout(IDLE_WAIT_MAX, appended).await;
                continue;
            }
        }
        // A replica that reads nothing blocks this write while the log grows: the limits are
        // checked meanwhile too, or a soft limit would wait for the replica to read again.
        let write = out.write_chunk(chunk);
        tokio::pin!(write);
        loop {
            tokio::select! {
                // The write first: one that completes at once never arms the timer.
                biased;
                written = &mut write => break written?,
                _ = tokio::time::sleep(LIMIT_CHECK_INTERVAL) => {
                    check_output_limit(engine, &reader, &mut over_soft_since)?;
                }
            }
        }
    }
}

/// Fails once the log not yet sent to a replica breaks `client-output-buffer-limit replica`.
fn check_output_limit(
    engine: &Engine,
    reader: &LogReader,
    over_soft_since: &mut Option<std::time::Instant>,
) -> io::Result<()> {
    let lag_bytes = reader.lag_bytes();
    let limit = engine.settings().output_limits.replica;
    match limit.exceeded(lag_bytes, over_soft_since) {
        true => Err(io::Error::other(format!(
            "{lag_bytes} bytes behind, over client-output-buffer-limit replica"
        ))),
        false => Ok(()),
    }
}

/// Records the replica's acknowledgements; an offset beyond what was sent drops the link.
async fn read_acks(engine: &Engine, id: u64, mut acks: RecvStream) -> io::Result<()> {
    while let Some(message) = wire::read::<ToPrimary>(&mut acks).await? {
        let ToPrimary::Ack { applied, fsynced } = message else {
            return Err(invalid("Sync in the middle of a session"));
        };
        if applied > engine.log().end().0 || fsynced > applied {
            return Err(invalid(format!(
                "impossible acknowledgement (applied {applied}, fsynced {fsynced})"
            )));
        }
        engine.repl.update_replica(id, |r| {
            r.applied = applied;
            r.fsynced = fsynced;
            r.last_ack = std::time::Instant::now();
        });
    }
    Err(io::Error::other("the replica closed the link"))
}

/// Pings the replica every `repl-ping-replica-period`; ends the session when the node's role
/// changes (its replicas reconnect and learn the new replication ID) or when the replica has
/// not acknowledged anything for `repl-timeout`.
async fn watch(engine: &Engine, id: u64, epoch: u64, mut control: SendStream) -> io::Result<()> {
    let mut last_ping = std::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(TICK_MS)).await;
        if engine.repl.epoch() != epoch {
            return Err(io::Error::other("the role changed"));
        }
        let settings = engine.settings();
        let silent = engine.repl.silence(id);
        if silent.is_some_and(|s| s.as_secs() > settings.repl_timeout_secs) {
            return Err(io::Error::other("Disconnecting timedout replica"));
        }
        if last_ping.elapsed().as_secs() >= settings.repl_ping_period_secs.max(1) {
            control.write_all(&wire::encode(&ToReplica::Ping)?).await?;
            last_ping = std::time::Instant::now();
        }
    }
}
