//! `Node`: the embeddable handle.
//!
//! A `Node` owns the engine and its background work (the expiry sweep). Handles are cheap to
//! clone and can be shared across threads; local commands run on the calling thread, so no
//! async runtime is needed. Typed methods cover everyday commands; [`Node::execute`] runs any
//! command and returns its [`Reply`].

use crate::engine::expire::{self, SweepCursor};
use crate::engine::{Client, Engine, Forwarding, Outcome};
use crate::error::{Error, Result};
use crate::keyspace::bytes::CompactBytes;
use crate::keyspace::digest::{self, DigestMode};
use crate::log::Offset;
use crate::reply::Reply;
use crate::resp::Protocol;
use crate::Config;
use parking_lot::{Condvar, Mutex};
use smallvec::SmallVec;
use std::cell::RefCell;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// An embedded Shoal node.
///
/// ```
/// use shoal::{Config, Node};
///
/// let node = Node::open(Config::new())?;
/// node.set("greeting", "hello")?;
/// assert_eq!(node.get("greeting")?.as_deref(), Some(&b"hello"[..]));
/// # Ok::<(), shoal::Error>(())
/// ```
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Arc<Engine>,
    sweeper: Option<JoinHandle<()>>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    /// The RESP listener, when the configuration gives it a port.
    listener: Option<crate::resp::Listener>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Stop serving clients before the engine's background work goes away, and stop the
        // expiry sweep (which writes DELs) before the last save and the AOF's last fsync.
        crate::repl::shutdown(&self.engine);
        self.listener.take();
        crate::cluster::close(&self.engine);
        self.engine.pubsub.close();
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        if let Some(handle) = self.sweeper.take() {
            let _ = handle.join();
        }
        crate::persist::save_on_close(&self.engine);
        crate::persist::aof::close(&self.engine);
        self.engine.log().close();
    }
}

fn not_started(why: crate::persist::NotStarted) -> Error {
    match why {
        crate::persist::NotStarted::AlreadyRunning | crate::persist::NotStarted::Busy => {
            Error::Command("ERR Background save or rewrite already in progress".into())
        }
        crate::persist::NotStarted::Failed(why) => Error::Io(std::io::Error::other(why)),
    }
}

/// Loads `dir`/`dbfilename` if it exists, logging as Redis does.
fn load_snapshot(engine: &Engine) -> Result<()> {
    let started = std::time::Instant::now();
    let path = crate::persist::rdb_path(engine);
    if let Some(summary) = crate::persist::recovery::load_rdb(engine, &path)? {
        tracing::info!(
            "DB loaded from disk: {:.3} seconds ({} keys, {} expired keys skipped)",
            started.elapsed().as_secs_f64(),
            summary.keys_loaded,
            summary.keys_expired
        );
        if summary.functions_skipped > 0 {
            tracing::warn!(
                "{} function libraries in {} were skipped: Shoal has no scripting",
                summary.functions_skipped,
                path.display()
            );
        }
    }
    Ok(())
}

/// How much of each background tick the expiry sweep may use (Redis allows 25%).
const SWEEP_SHARE_PERCENT: u32 = 25;

/// After a sweep that found expired keys, the next one runs this soon: like Redis's fast
/// cycle, it keeps keys with short TTLs from lingering for a whole tick.
const SWEEP_AGAIN_MS: u64 = 1;

fn spawn_sweeper(
    engine: Arc<Engine>,
    stop: Arc<(Mutex<bool>, Condvar)>,
) -> std::io::Result<JoinHandle<()>> {
    let tick = Duration::from_millis(u64::from(1000 / engine.config().hz.max(1)));
    let budget = tick * SWEEP_SHARE_PERCENT / 100;
    std::thread::Builder::new()
        .name("shoal-expire".into())
        .spawn(move || {
            crate::affinity::place_current_thread(
                engine.config(),
                crate::affinity::Threads::Server,
            );
            let mut cursor = SweepCursor::default();
            let (flag, cond) = &*stop;
            let mut stopped = flag.lock();
            let mut pause = tick;
            while !*stopped {
                let _ = cond.wait_for(&mut stopped, pause);
                if *stopped {
                    break;
                }
                drop(stopped);
                engine.cron();
                let deleted = expire::sweep(&engine, &mut cursor, budget);
                pause = if deleted > 0 {
                    Duration::from_millis(SWEEP_AGAIN_MS)
                } else {
                    tick
                };
                stopped = flag.lock();
            }
        })
}

thread_local! {
    /// A client reused by this thread's calls (and reset after each), so that a typed call
    /// allocates nothing beyond its reply.
    static CLIENT: RefCell<Option<Client>> = const { RefCell::new(None) };
}

/// Converts arguments into the engine's argument slices without allocating (up to 8).
fn arg_slices<A: AsRef<[u8]>>(args: &[A]) -> SmallVec<[&[u8]; 8]> {
    args.iter().map(AsRef::as_ref).collect()
}

impl Node {
    /// Opens a node with `config`.
    pub fn open(config: Config) -> Result<Node> {
        config.validate()?;
        let engine = Arc::new(Engine::new(config));
        crate::persist::attach(&engine);
        let config = engine.config();
        if config.cluster_enabled {
            let cluster = crate::cluster::Cluster::open(config)?;
            let _ = engine.cluster.set(cluster);
            if let Some(cluster) = engine.cluster.get() {
                engine.pubsub.watch_interest(Arc::clone(&cluster.wake));
            }
            crate::cluster::start(&engine);
        }
        if config.persistence && config.append_only {
            crate::persist::aof::open(&engine)?;
        } else if config.persistence {
            load_snapshot(&engine)?;
        }
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let sweeper = Some(spawn_sweeper(engine.clone(), stop.clone())?);
        crate::repl::start(&engine)?;
        if let Some(directives) = &engine.config().sentinel {
            crate::sentinel::start(&engine, directives)?;
        }
        let listener = if engine.config().port != 0 || engine.config().tls.port != 0 {
            Some(crate::resp::Listener::start(engine.clone())?)
        } else {
            None
        };
        Ok(Node {
            inner: Arc::new(Inner {
                engine,
                sweeper,
                stop,
                listener,
            }),
        })
    }

    /// The addresses the RESP listener serves (empty without a listener).
    ///
    /// ```
    /// use shoal::{Config, Node};
    /// let node = Node::open(Config::new())?;
    /// assert!(node.resp_addresses().is_empty());
    /// # Ok::<(), shoal::Error>(())
    /// ```
    pub fn resp_addresses(&self) -> &[std::net::SocketAddr] {
        self.inner
            .listener
            .as_ref()
            .map_or(&[], |listener| listener.addresses())
    }

    /// The engine, for adapters (RESP listener, replication) built on top of the node.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.inner.engine
    }

    /// Runs any command in database 0 and returns its reply; a blocking command blocks this
    /// thread. Replies use RESP3 types (maps, doubles, booleans).
    ///
    /// ```
    /// use shoal::{Config, Node, Reply};
    ///
    /// let node = Node::open(Config::new())?;
    /// assert_eq!(node.execute(&["SET", "k", "1"]), Reply::OK);
    /// assert_eq!(node.execute(&["INCRBY", "k", "41"]), Reply::Int(42));
    /// # Ok::<(), shoal::Error>(())
    /// ```
    pub fn execute<A: AsRef<[u8]>>(&self, args: &[A]) -> Reply {
        self.run(&arg_slices(args))
    }

    /// Runs one command as a fresh connection would: database 0, no transaction, RESP3.
    fn run(&self, argv: &[&[u8]]) -> Reply {
        let engine = &self.inner.engine;
        CLIENT.with(|cell| match cell.try_borrow_mut() {
            Ok(mut slot) => {
                let client = slot.get_or_insert_with(|| Client::new(Protocol::Resp3));
                // The thread's client may serve several nodes.
                client.conn.cluster.forwarding = embedded_forwarding(engine);
                let reply = engine.execute_waiting(client, argv);
                client.reset(engine);
                reply
            }
            // Only reachable re-entrantly; a one-off client is as correct.
            Err(_) => engine.execute_waiting(&mut embedded_client(engine), argv),
        })
    }

    /// SAVE: writes a point-in-time snapshot to `dir`/`dbfilename` and returns once it is on
    /// disk. Writes from other threads go on meanwhile.
    pub fn save(&self) -> Result<()> {
        crate::persist::save(&self.inner.engine)
            .map(drop)
            .map_err(Error::Io)
    }

    /// BGSAVE: starts a snapshot in the background, after any snapshot already running
    /// (INFO persistence follows it).
    pub fn bgsave(&self) -> Result<()> {
        crate::persist::bgsave(&self.inner.engine, true)
            .map(drop)
            .map_err(not_started)
    }

    /// BGREWRITEAOF: starts an AOF rewrite in the background.
    pub fn rewrite_aof(&self) -> Result<()> {
        crate::persist::bgrewriteaof(&self.inner.engine).map_err(not_started)
    }

    /// Waits until every write up to `offset` (e.g. [`Session::last_write`]) is fsynced to
    /// the append-only file, at most `timeout`: `Ok(true)` when it is. An error when the AOF
    /// is off or cannot be written.
    pub fn wait_durable(&self, offset: Offset, timeout: Duration) -> Result<bool> {
        crate::persist::aof::wait_durable_for(&self.inner.engine, offset, timeout)
            .map_err(Error::Io)
    }

    /// Makes this node a replica of the node whose QUIC endpoint is at `primary` (its bus
    /// address: [`Node::replication_addr`] of an embedded node, the RESP port + 10000 of a
    /// `shoal-server`). Returns at once; the node connects, synchronizes and follows in the
    /// background, reconnecting after a lost link. Writes are refused while it follows (with
    /// `replica-read-only`).
    pub fn replicate_from(&self, primary: std::net::SocketAddr) -> Result<()> {
        use crate::repl::Control;
        let manager = crate::repl::manager(&self.inner.engine)?;
        manager.replicate_from(primary.ip().to_string(), primary.port(), Some(primary));
        Ok(())
    }

    /// Stops following a primary and accepts writes (REPLICAOF NO ONE). Its own replicas
    /// continue with a partial resync.
    pub fn promote(&self) -> Result<()> {
        use crate::repl::Control;
        crate::repl::manager(&self.inner.engine)?.promote();
        Ok(())
    }

    /// A subscription to this node's role and topology changes: promoted, demoted, following
    /// another primary, slots gained or lost. It receives what happens from now on, in
    /// order; see [`crate::events`] for what happens to one left unread.
    pub fn events(&self) -> crate::EventSubscription {
        self.inner.engine.events.subscribe()
    }

    /// PUBLISH: delivers `payload` to the subscribers of `channel` and of the patterns that
    /// match it, RESP clients and embedded [`Subscription`](crate::Subscription)s alike;
    /// how many received it.
    pub fn publish(&self, channel: impl AsRef<[u8]>, payload: impl AsRef<[u8]>) -> usize {
        self.inner
            .engine
            .publish(channel.as_ref(), payload.as_ref(), false)
    }

    /// SPUBLISH: delivers `payload` to the subscribers of the shard channel `channel`.
    pub fn spublish(&self, channel: impl AsRef<[u8]>, payload: impl AsRef<[u8]>) -> usize {
        self.inner
            .engine
            .publish(channel.as_ref(), payload.as_ref(), true)
    }

    /// SUBSCRIBE: messages published on `channels` from now on, in the order published.
    pub fn subscribe<C: AsRef<[u8]>>(&self, channels: &[C]) -> crate::Subscription {
        self.subscription(crate::pubsub::Kind::Channel, channels)
    }

    /// PSUBSCRIBE: messages on every channel matching one of `patterns` (Redis's globs).
    pub fn psubscribe<C: AsRef<[u8]>>(&self, patterns: &[C]) -> crate::Subscription {
        self.subscription(crate::pubsub::Kind::Pattern, patterns)
    }

    /// SSUBSCRIBE: messages published with SPUBLISH on the shard channels `channels`.
    pub fn ssubscribe<C: AsRef<[u8]>>(&self, channels: &[C]) -> crate::Subscription {
        self.subscription(crate::pubsub::Kind::Shard, channels)
    }

    fn subscription<C: AsRef<[u8]>>(
        &self,
        kind: crate::pubsub::Kind,
        names: &[C],
    ) -> crate::Subscription {
        let engine = &self.inner.engine;
        let names: Vec<&[u8]> = names.iter().map(AsRef::as_ref).collect();
        let bytes_max = engine.settings().output_limits.pubsub.hard_bytes;
        crate::Subscription::new(&engine.pubsub, kind, &names, bytes_max)
    }

    /// The address of this node's QUIC endpoint, once replication started (at open with a
    /// bus address, else at the first [`Node::replicate_from`]).
    pub fn replication_addr(&self) -> Option<std::net::SocketAddr> {
        let manager = self.inner.engine.repl.manager_if_started()?;
        manager.local_addr()
    }

    /// A stateful session, like one client connection: SELECT, MULTI/EXEC and WATCH persist
    /// across its calls.
    pub fn session(&self) -> Session {
        Session {
            engine: self.inner.engine.clone(),
            client: embedded_client(&self.inner.engine),
        }
    }

    /// A transaction: queue commands, then [`Transaction::exec`] runs them atomically.
    ///
    /// ```
    /// use shoal::{Config, Node, Reply};
    ///
    /// let node = Node::open(Config::new())?;
    /// let replies = node.transaction().cmd(&["SET", "a", "1"]).cmd(&["INCR", "a"]).exec()?;
    /// assert_eq!(replies, Some(vec![Reply::OK, Reply::Int(2)]));
    /// # Ok::<(), shoal::Error>(())
    /// ```
    pub fn transaction(&self) -> Transaction {
        Transaction {
            session: self.session(),
            queued: Vec::new(),
        }
    }

    /// The dataset digest, exactly as Redis's `DEBUG DIGEST` computes it (40 hex digits).
    pub fn digest(&self) -> String {
        digest::to_hex(&self.inner.engine.digest(DigestMode::Redis))
    }

    /// A stricter digest that also covers each key's absolute expiry time.
    pub fn digest_with_expiry(&self) -> String {
        digest::to_hex(&self.inner.engine.digest(DigestMode::WithExpiry))
    }

    #[inline]
    fn call(&self, argv: &[&[u8]]) -> Result<Reply> {
        match self.run(argv) {
            Reply::Error(e) => Err(Error::Command(e.into_owned())),
            reply => Ok(reply),
        }
    }

    // ---- strings ----------------------------------------------------------------------------

    /// `GET key`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<CompactBytes>> {
        opt_bulk("GET", self.call(&[b"GET".as_ref(), key.as_ref()])?)
    }

    /// `SET key value`.
    pub fn set(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        self.call(&[b"SET".as_ref(), key.as_ref(), value.as_ref()])
            .map(drop)
    }

    /// `SET key value` with options; returns whether the value was set (NX/XX may refuse).
    ///
    /// ```
    /// use shoal::{Config, Node, SetOptions};
    /// use std::time::Duration;
    ///
    /// let node = Node::open(Config::new())?;
    /// let opts = SetOptions::new().only_if_absent().expire_in(Duration::from_secs(60));
    /// assert!(node.set_with("lock", "me", opts)?);
    /// assert!(!node.set_with("lock", "you", opts)?);
    /// # Ok::<(), shoal::Error>(())
    /// ```
    pub fn set_with(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        options: SetOptions,
    ) -> Result<bool> {
        let mut args: Vec<Vec<u8>> = vec![
            b"SET".to_vec(),
            key.as_ref().to_vec(),
            value.as_ref().to_vec(),
        ];
        options.append_to(&mut args);
        let argv = arg_slices(&args);
        Ok(matches!(self.call(&argv)?, Reply::Status(_)))
    }

    /// `INCRBY key delta`.
    pub fn incr(&self, key: impl AsRef<[u8]>, delta: i64) -> Result<i64> {
        int(
            "INCRBY",
            self.call(&[
                b"INCRBY".as_ref(),
                key.as_ref(),
                itoa::Buffer::new().format(delta).as_bytes(),
            ])?,
        )
    }

    // ---- keys -------------------------------------------------------------------------------

    /// `DEL key...`: the number of keys deleted.
    pub fn del<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<u64> {
        self.with_keys("DEL", keys)
    }

    /// `EXISTS key...`: how many of the keys exist.
    pub fn exists<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<u64> {
        self.with_keys("EXISTS", keys)
    }

    fn with_keys<K: AsRef<[u8]>>(&self, command: &'static str, keys: &[K]) -> Result<u64> {
        let mut args: SmallVec<[&[u8]; 8]> = SmallVec::new();
        args.push(command.as_bytes());
        args.extend(keys.iter().map(AsRef::as_ref));
        int(command, self.call(&args)?).map(|n| n as u64)
    }

    /// `PEXPIRE key ms`: whether the key exists (and now expires).
    pub fn expire(&self, key: impl AsRef<[u8]>, ttl: Duration) -> Result<bool> {
        let ms = ttl.as_millis().min(i64::MAX as u128) as i64;
        let reply = self.call(&[
            b"PEXPIRE".as_ref(),
            key.as_ref(),
            itoa::Buffer::new().format(ms).as_bytes(),
        ])?;
        int("PEXPIRE", reply).map(|n| n == 1)
    }

    /// `PTTL key`: `None` when the key is missing or has no TTL.
    pub fn ttl(&self, key: impl AsRef<[u8]>) -> Result<Option<Duration>> {
        let ms = int("PTTL", self.call(&[b"PTTL".as_ref(), key.as_ref()])?)?;
        Ok((ms >= 0).then(|| Duration::from_millis(ms as u64)))
    }

    // ---- lists ------------------------------------------------------------------------------

    /// `LPUSH key value...`: the new length.
    pub fn lpush<V: AsRef<[u8]>>(&self, key: impl AsRef<[u8]>, values: &[V]) -> Result<u64> {
        self.key_values("LPUSH", key.as_ref(), values)
    }

    /// `RPUSH key value...`: the new length.
    pub fn rpush<V: AsRef<[u8]>>(&self, key: impl AsRef<[u8]>, values: &[V]) -> Result<u64> {
        self.key_values("RPUSH", key.as_ref(), values)
    }

    fn key_values<V: AsRef<[u8]>>(
        &self,
        command: &'static str,
        key: &[u8],
        values: &[V],
    ) -> Result<u64> {
        let mut args: SmallVec<[&[u8]; 8]> = SmallVec::new();
        args.push(command.as_bytes());
        args.push(key);
        args.extend(values.iter().map(AsRef::as_ref));
        int(command, self.call(&args)?).map(|n| n as u64)
    }

    /// `LPOP key`.
    pub fn lpop(&self, key: impl AsRef<[u8]>) -> Result<Option<CompactBytes>> {
        opt_bulk("LPOP", self.call(&[b"LPOP".as_ref(), key.as_ref()])?)
    }

    /// `RPOP key`.
    pub fn rpop(&self, key: impl AsRef<[u8]>) -> Result<Option<CompactBytes>> {
        opt_bulk("RPOP", self.call(&[b"RPOP".as_ref(), key.as_ref()])?)
    }

    /// `LRANGE key start stop`.
    pub fn lrange(
        &self,
        key: impl AsRef<[u8]>,
        start: i64,
        stop: i64,
    ) -> Result<Vec<CompactBytes>> {
        let (a, b) = (start.to_string(), stop.to_string());
        bulks(
            "LRANGE",
            self.call(&[b"LRANGE".as_ref(), key.as_ref(), a.as_bytes(), b.as_bytes()])?,
        )
    }

    /// `LLEN key`.
    pub fn llen(&self, key: impl AsRef<[u8]>) -> Result<u64> {
        int("LLEN", self.call(&[b"LLEN".as_ref(), key.as_ref()])?).map(|n| n as u64)
    }

    /// `BLPOP key... timeout`: blocks this thread until an element arrives or `timeout`
    /// passes (`None`: wait forever). Returns the key and the element.
    ///
    /// ```
    /// use shoal::{Config, Node};
    /// use std::time::Duration;
    ///
    /// let node = Node::open(Config::new())?;
    /// let pusher = node.clone();
    /// std::thread::spawn(move || pusher.rpush("jobs", &["job-1"]));
    /// let (key, job) = node.blpop(&["jobs"], Some(Duration::from_secs(5)))?.expect("pushed");
    /// assert_eq!((&key[..], &job[..]), (&b"jobs"[..], &b"job-1"[..]));
    /// # Ok::<(), shoal::Error>(())
    /// ```
    pub fn blpop<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
        timeout: Option<Duration>,
    ) -> Result<Option<(CompactBytes, CompactBytes)>> {
        self.blocking_pop("BLPOP", keys, timeout)
    }

    /// `BRPOP key... timeout`, like [`Node::blpop`] from the tail.
    pub fn brpop<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
        timeout: Option<Duration>,
    ) -> Result<Option<(CompactBytes, CompactBytes)>> {
        self.blocking_pop("BRPOP", keys, timeout)
    }

    fn blocking_pop<K: AsRef<[u8]>>(
        &self,
        command: &'static str,
        keys: &[K],
        timeout: Option<Duration>,
    ) -> Result<Option<(CompactBytes, CompactBytes)>> {
        let seconds = timeout.map_or("0".to_string(), |t| {
            format!("{:.3}", t.as_secs_f64().max(0.001))
        });
        let mut args: SmallVec<[&[u8]; 8]> = SmallVec::new();
        args.push(command.as_bytes());
        args.extend(keys.iter().map(AsRef::as_ref));
        args.push(seconds.as_bytes());
        match self.call(&args)? {
            Reply::NilArray | Reply::Nil => Ok(None),
            Reply::Array(items) => match <[Reply; 2]>::try_from(items) {
                Ok([Reply::Bulk(k), Reply::Bulk(v)]) => Ok(Some((k, v))),
                Ok(other) => unexpected(command, Reply::Array(other.into())),
                Err(items) => unexpected(command, Reply::Array(items)),
            },
            other => unexpected(command, other),
        }
    }

    // ---- hashes -----------------------------------------------------------------------------

    /// `HSET key field value`: whether the field is new.
    pub fn hset(
        &self,
        key: impl AsRef<[u8]>,
        field: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<bool> {
        let reply = self.call(&[
            b"HSET".as_ref(),
            key.as_ref(),
            field.as_ref(),
            value.as_ref(),
        ])?;
        int("HSET", reply).map(|n| n == 1)
    }

    /// `HGET key field`.
    pub fn hget(
        &self,
        key: impl AsRef<[u8]>,
        field: impl AsRef<[u8]>,
    ) -> Result<Option<CompactBytes>> {
        opt_bulk(
            "HGET",
            self.call(&[b"HGET".as_ref(), key.as_ref(), field.as_ref()])?,
        )
    }

    /// `HGETALL key` as (field, value) pairs.
    pub fn hgetall(&self, key: impl AsRef<[u8]>) -> Result<Vec<(CompactBytes, CompactBytes)>> {
        match self.call(&[b"HGETALL".as_ref(), key.as_ref()])? {
            Reply::Map(pairs) => pairs
                .into_iter()
                .map(|(f, v)| match (f, v) {
                    (Reply::Bulk(f), Reply::Bulk(v)) => Ok((f, v)),
                    (f, v) => unexpected("HGETALL", Reply::Array(vec![f, v])),
                })
                .collect(),
            other => unexpected("HGETALL", other),
        }
    }

    /// `HDEL key field...`: how many fields were removed.
    pub fn hdel<F: AsRef<[u8]>>(&self, key: impl AsRef<[u8]>, fields: &[F]) -> Result<u64> {
        self.key_values("HDEL", key.as_ref(), fields)
    }

    /// `HINCRBY key field delta`.
    pub fn hincr(&self, key: impl AsRef<[u8]>, field: impl AsRef<[u8]>, delta: i64) -> Result<i64> {
        let d = delta.to_string();
        int(
            "HINCRBY",
            self.call(&[
                b"HINCRBY".as_ref(),
                key.as_ref(),
                field.as_ref(),
                d.as_bytes(),
            ])?,
        )
    }

    // ---- sets -------------------------------------------------------------------------------

    /// `SADD key member...`: how many members were new.
    pub fn sadd<M: AsRef<[u8]>>(&self, key: impl AsRef<[u8]>, members: &[M]) -> Result<u64> {
        self.key_values("SADD", key.as_ref(), members)
    }

    /// `SREM key member...`: how many members were removed.
    pub fn srem<M: AsRef<[u8]>>(&self, key: impl AsRef<[u8]>, members: &[M]) -> Result<u64> {
        self.key_values("SREM", key.as_ref(), members)
    }

    /// `SISMEMBER key member`.
    pub fn sismember(&self, key: impl AsRef<[u8]>, member: impl AsRef<[u8]>) -> Result<bool> {
        int(
            "SISMEMBER",
            self.call(&[b"SISMEMBER".as_ref(), key.as_ref(), member.as_ref()])?,
        )
        .map(|n| n == 1)
    }

    /// `SMEMBERS key` (in no particular order).
    pub fn smembers(&self, key: impl AsRef<[u8]>) -> Result<Vec<CompactBytes>> {
        bulks(
            "SMEMBERS",
            self.call(&[b"SMEMBERS".as_ref(), key.as_ref()])?,
        )
    }

    /// `SCARD key`.
    pub fn scard(&self, key: impl AsRef<[u8]>) -> Result<u64> {
        int("SCARD", self.call(&[b"SCARD".as_ref(), key.as_ref()])?).map(|n| n as u64)
    }

    // ---- sorted sets ------------------------------------------------------------------------

    /// `ZADD key score member`: whether the member is new.
    pub fn zadd(
        &self,
        key: impl AsRef<[u8]>,
        score: f64,
        member: impl AsRef<[u8]>,
    ) -> Result<bool> {
        let s = crate::reply::format_double(score);
        int(
            "ZADD",
            self.call(&[
                b"ZADD".as_ref(),
                key.as_ref(),
                s.as_bytes(),
                member.as_ref(),
            ])?,
        )
        .map(|n| n == 1)
    }

    /// `ZINCRBY key delta member`: the new score.
    pub fn zincr(
        &self,
        key: impl AsRef<[u8]>,
        delta: f64,
        member: impl AsRef<[u8]>,
    ) -> Result<f64> {
        let d = crate::reply::format_double(delta);
        double(
            "ZINCRBY",
            self.call(&[
                b"ZINCRBY".as_ref(),
                key.as_ref(),
                d.as_bytes(),
                member.as_ref(),
            ])?,
        )
    }

    /// `ZSCORE key member`.
    pub fn zscore(&self, key: impl AsRef<[u8]>, member: impl AsRef<[u8]>) -> Result<Option<f64>> {
        match self.call(&[b"ZSCORE".as_ref(), key.as_ref(), member.as_ref()])? {
            Reply::Nil => Ok(None),
            reply => double("ZSCORE", reply).map(Some),
        }
    }

    /// `ZRANK key member` (0-based, ascending).
    pub fn zrank(&self, key: impl AsRef<[u8]>, member: impl AsRef<[u8]>) -> Result<Option<u64>> {
        match self.call(&[b"ZRANK".as_ref(), key.as_ref(), member.as_ref()])? {
            Reply::Nil => Ok(None),
            reply => int("ZRANK", reply).map(|n| Some(n as u64)),
        }
    }

    /// `ZREM key member...`: how many members were removed.
    pub fn zrem<M: AsRef<[u8]>>(&self, key: impl AsRef<[u8]>, members: &[M]) -> Result<u64> {
        self.key_values("ZREM", key.as_ref(), members)
    }

    /// `ZCARD key`.
    pub fn zcard(&self, key: impl AsRef<[u8]>) -> Result<u64> {
        int("ZCARD", self.call(&[b"ZCARD".as_ref(), key.as_ref()])?).map(|n| n as u64)
    }

    /// `ZRANGE key start stop WITHSCORES` (with `rev`: highest scores first).
    pub fn zrange_with_scores(
        &self,
        key: impl AsRef<[u8]>,
        start: i64,
        stop: i64,
        rev: bool,
    ) -> Result<Vec<(CompactBytes, f64)>> {
        let (a, b) = (start.to_string(), stop.to_string());
        let mut args: SmallVec<[&[u8]; 8]> = SmallVec::new();
        args.extend([b"ZRANGE".as_ref(), key.as_ref(), a.as_bytes(), b.as_bytes()]);
        if rev {
            args.push(b"REV");
        }
        args.push(b"WITHSCORES");
        match self.call(&args)? {
            Reply::Array(pairs) => pairs
                .into_iter()
                .map(|pair| match pair {
                    Reply::Array(mut p) if p.len() == 2 => match (p.remove(0), p.remove(0)) {
                        (Reply::Bulk(m), Reply::Double(s)) => Ok((m, s)),
                        (m, s) => unexpected("ZRANGE", Reply::Array(vec![m, s])),
                    },
                    other => unexpected("ZRANGE", other),
                })
                .collect(),
            other => unexpected("ZRANGE", other),
        }
    }
}

/// Options of [`Node::set_with`].
#[derive(Copy, Clone, Debug, Default)]
pub struct SetOptions {
    condition: Option<&'static str>,
    expire_ms: Option<u64>,
    keep_ttl: bool,
}

impl SetOptions {
    /// No options: a plain SET.
    pub fn new() -> SetOptions {
        SetOptions::default()
    }

    /// NX: only set a key that does not exist.
    pub fn only_if_absent(mut self) -> SetOptions {
        self.condition = Some("NX");
        self
    }

    /// XX: only set a key that exists.
    pub fn only_if_present(mut self) -> SetOptions {
        self.condition = Some("XX");
        self
    }

    /// PX: expire after `ttl`.
    pub fn expire_in(mut self, ttl: Duration) -> SetOptions {
        self.expire_ms = Some(ttl.as_millis().clamp(1, i64::MAX as u128) as u64);
        self
    }

    /// KEEPTTL: keep the key's current TTL.
    pub fn keep_ttl(mut self) -> SetOptions {
        self.keep_ttl = true;
        self
    }

    fn append_to(self, args: &mut Vec<Vec<u8>>) {
        if let Some(c) = self.condition {
            args.push(c.as_bytes().to_vec());
        }
        if let Some(ms) = self.expire_ms {
            args.push(b"PX".to_vec());
            args.push(ms.to_string().into_bytes());
        }
        if self.keep_ttl {
            args.push(b"KEEPTTL".to_vec());
        }
    }
}

/// A stateful session: the embedded equivalent of one client connection.
///
/// ```
/// use shoal::{Config, Node, Reply};
///
/// let node = Node::open(Config::new())?;
/// let mut s = node.session();
/// s.execute(&["SELECT", "3"]);
/// s.execute(&["SET", "k", "v"]);
/// assert_eq!(node.get("k")?, None); // database 0
/// assert_eq!(s.execute(&["GET", "k"]), Reply::bulk(b"v"));
/// # Ok::<(), shoal::Error>(())
/// ```
pub struct Session {
    engine: Arc<Engine>,
    client: Client,
}

/// A client of the embedded API: RESP3, with its commands for other nodes' slots run there.
fn embedded_client(engine: &Engine) -> Client {
    let mut client = Client::new(Protocol::Resp3);
    client.conn.cluster.forwarding = embedded_forwarding(engine);
    client
}

/// Embedded callers have commands for other nodes' slots run there, unless the node was
/// configured to give them the redirect ([`Config::cluster_redirects`]).
fn embedded_forwarding(engine: &Engine) -> Forwarding {
    if engine.config().cluster_redirects {
        Forwarding::Never
    } else {
        Forwarding::Always
    }
}

impl Session {
    /// Runs one command; a blocking command blocks this thread.
    pub fn execute<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Reply {
        let argv = arg_slices(args);
        self.engine.execute_waiting(&mut self.client, &argv)
    }

    /// Runs one command without waiting: a blocking command returns
    /// [`Outcome::Blocked`](crate::Outcome), for callers with their own event loop.
    pub fn start<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Outcome {
        let argv = arg_slices(args);
        self.engine.execute(&mut self.client, &argv)
    }

    /// The selected database.
    pub fn db(&self) -> usize {
        self.client.db()
    }

    /// The write-log offset after this session's last write: what [`Node::wait_durable`]
    /// waits for.
    pub fn last_write(&self) -> Offset {
        self.client.last_write()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        crate::engine::multi::unwatch(&self.engine, &mut self.client);
    }
}

/// Commands queued for one atomic MULTI/EXEC. See [`Node::transaction`].
pub struct Transaction {
    session: Session,
    queued: Vec<Vec<Vec<u8>>>,
}

impl Transaction {
    /// Watches keys first: [`Transaction::exec`] returns `None` if any of them changes before
    /// it runs (optimistic locking).
    pub fn watch<K: AsRef<[u8]>>(mut self, keys: &[K]) -> Result<Transaction> {
        let mut args: Vec<&[u8]> = vec![b"WATCH"];
        args.extend(keys.iter().map(AsRef::as_ref));
        match self.session.execute(&args) {
            Reply::Error(e) => Err(Error::Command(e.into_owned())),
            _ => Ok(self),
        }
    }

    /// Reads through the transaction's session (for check-then-set after `watch`).
    pub fn read<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Reply {
        self.session.execute(args)
    }

    /// Queues a command.
    pub fn cmd<A: AsRef<[u8]>>(mut self, args: &[A]) -> Transaction {
        self.queued
            .push(args.iter().map(|a| a.as_ref().to_vec()).collect());
        self
    }

    /// Runs the queued commands atomically: their replies, or `None` when a watched key
    /// changed (nothing ran). A command's own failure is an error reply in its slot.
    pub fn exec(mut self) -> Result<Option<Vec<Reply>>> {
        self.session.execute(&["MULTI"]);
        for args in std::mem::take(&mut self.queued) {
            if let Reply::Error(e) = self.session.execute(&args) {
                self.session.execute(&["DISCARD"]);
                return Err(Error::Command(e.into_owned()));
            }
        }
        match self.session.execute(&["EXEC"]) {
            Reply::Array(replies) => Ok(Some(replies)),
            Reply::NilArray | Reply::Nil => Ok(None),
            Reply::Error(e) => Err(Error::Command(e.into_owned())),
            other => unexpected("EXEC", other),
        }
    }
}

fn unexpected<T>(command: &'static str, reply: Reply) -> Result<T> {
    Err(Error::UnexpectedReply { command, reply })
}

fn int(command: &'static str, reply: Reply) -> Result<i64> {
    match reply {
        Reply::Int(n) => Ok(n),
        other => unexpected(command, other),
    }
}

fn double(command: &'static str, reply: Reply) -> Result<f64> {
    match reply {
        Reply::Double(d) => Ok(d),
        other => unexpected(command, other),
    }
}

#[inline]
fn opt_bulk(command: &'static str, reply: Reply) -> Result<Option<CompactBytes>> {
    match reply {
        Reply::Bulk(b) => Ok(Some(b)),
        Reply::Nil => Ok(None),
        other => unexpected(command, other),
    }
}

fn bulks(command: &'static str, reply: Reply) -> Result<Vec<CompactBytes>> {
    match reply {
        Reply::Array(items) | Reply::Set(items) => items
            .into_iter()
            .map(|r| match r {
                Reply::Bulk(b) => Ok(b),
                other => unexpected(command, other),
            })
            .collect(),
        other => unexpected(command, other),
    }
}
