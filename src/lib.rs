//! Shoal: an embeddable, Redis-Cluster-compatible key-value store.
//!
//! An application links Shoal to get a Redis-style keyspace inside its own process: 16384
//! hash slots, Redis's data types and commands with Redis's exact replies and errors, and a
//! write log that persistence and replication consume.
//!
//! ```
//! use shoal::{Config, Node};
//!
//! let node = Node::open(Config::new())?;
//! node.rpush("queue", &["a", "b"])?;
//! node.zadd("scores", 42.0, "ada")?;
//! assert_eq!(node.lpop("queue")?.as_deref(), Some(&b"a"[..]));
//! assert_eq!(node.zscore("scores", "ada")?, Some(42.0));
//! # Ok::<(), shoal::Error>(())
//! ```
//!
//! # Layout
//!
//! Every request takes one path, top to bottom:
//!
//! ```text
//! node.rs        Node, Session, Transaction: the embedded API (an adapter)
//! resp/          the RESP adapter: decode.rs (frames, limits), encode.rs (RESP2/3 replies),
//!                listener.rs (bind, accept, maxclients, protected mode), conn.rs (one task
//!                per connection: pipelining, blocking waits, output limits)
//! engine/        Engine::execute: lookup, MULTI queueing, lock planning (locks.rs), handler
//!                context (ctx.rs), blocked clients (blocking.rs), transactions (multi.rs),
//!                expiry (expire.rs), clients and pauses (clients.rs), counters, slow log
//!                and latency events (stats.rs)
//! cmd/           the command table and one module per family (strings, keys, lists, hashes,
//!                sets, zsets, server, connection, config, info, introspect); argument
//!                parsing (args.rs, longdouble.rs); resp/client.rs is the blocking RESP
//!                client MIGRATE talks to its target with
//! keyspace/      databases of 16384 locked slots; entries, value types and encodings,
//!                the hash-ordered Dict whose SCAN cursor survives resizes, the
//!                order-statistic tree of sorted sets, the DEBUG DIGEST algorithm
//! log/           the write log: offsets, retained history, reliable readers with back-pressure;
//!                when its async readers (replicas' senders) are woken (wake.rs)
//! persist/       RDB files (rdb/: encode, decode, packed encodings), point-in-time snapshots
//!                by copy-before-write per slot (snapshot.rs), start-up load (recovery.rs),
//!                the multi-part AOF (aof.rs, storage.rs), a dataset as commands
//!                (commands.rs), SAVE/BGSAVE/save points/shutdown policy and INFO (mod.rs)
//! repl/          replication: role, IDs and replicas' acknowledgements (mod.rs), control
//!                messages (wire.rs), the primary's sessions (primary.rs), following a
//!                primary (replica.rs), FAILOVER's hand-over (failover.rs); WAIT/WAITAOF
//!                wait in engine/acks.rs
//! cluster/       cluster mode: the no-I/O cluster state (state.rs: nodes, slots, epochs,
//!                gossip, nodes.conf; state/failover.rs: failure detection, elections,
//!                fencing, manual failover; state/shard.rs: which replicas count and may
//!                stand), bus messages (wire.rs) and their driver
//!                (bus.rs), the routing table every command consults (route.rs), pub/sub
//!                between nodes (pubsub.rs: who listens to what, forwarding); CLUSTER,
//!                DUMP/RESTORE and MIGRATE are in cmd/cluster.rs and cmd/migrate.rs
//! sentinel/      Sentinel mode: the no-I/O core (state.rs: SDOWN/ODOWN, votes, failover
//!                steps), its driver over RESP (driver.rs, client.rs), the sentinel
//!                directives and file rewrite (config.rs); SENTINEL is cmd/sentinel.rs
//! events.rs      role and topology changes told to the embedding application
//! pubsub.rs      pub/sub: who subscribes to which channel, pattern or shard channel, and
//!                delivery into each subscriber's bounded mailbox (RESP) or queue (embedded);
//!                the commands are in cmd/pubsub.rs
//! transport/     the QUIC endpoint between nodes, peer authentication, and message framing
//!                (frame.rs); quic.rs (its socket in quic/udp.rs) is the only module that
//!                imports quinn
//! slot.rs        SlotId and key hashing; glob.rs the pattern matcher; reply.rs Reply
//! config/        Config and its live copy (mod.rs), every Redis directive (catalog.rs),
//!                reading and writing them by name (directives.rs), redis.conf files and
//!                command lines (file.rs); error.rs Error; process.rs RSS and CPU figures;
//!                affinity.rs the *_cpulist directives and pinning threads to CPUs
//! bin/           shoal-server: the library as a redis-server-like process
//! ```

#![warn(missing_docs)]

pub(crate) mod affinity;
pub mod cluster;
pub(crate) mod cmd;
pub mod config;
mod engine;
pub mod error;
pub mod events;
pub(crate) mod glob;
pub(crate) mod keyspace;
pub mod log;
pub mod node;
pub mod persist;
pub(crate) mod process;
pub mod pubsub;
pub mod repl;
pub mod reply;
pub mod resp;
pub(crate) mod sentinel;
pub mod slot;
pub mod transport;

pub use config::{Config, Fsync};
pub use engine::{Applied, Blocked, Client, Clock, Engine, ManualClock, Outcome, SystemClock};
pub use error::{Error, Result};
pub use events::{Event, EventSubscription};
pub use keyspace::bytes::CompactBytes;
pub use keyspace::digest::{Digest, DigestMode};
pub use log::Offset;
pub use node::{Node, Session, SetOptions, Transaction};
pub use pubsub::{Message, Subscription};
pub use reply::Reply;
pub use slot::SlotId;

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The Redis version whose commands, replies and configuration Shoal follows: what HELLO and
/// INFO report as `version` / `redis_version`, so that clients enable the features they know
/// that version has. INFO reports Shoal's own version beside it.
pub const REDIS_VERSION: &str = "7.0.15";
