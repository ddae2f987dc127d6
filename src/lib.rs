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
//! engine/        Engine::execute: lookup, MULTI queueing, lock planning (locks.rs), handler
//!                context (ctx.rs), blocked clients (blocking.rs), transactions (multi.rs),
//!                expiry (expire.rs)
//! cmd/           the command table and one module per family (strings, keys, lists, hashes,
//!                sets, zsets, server); argument parsing (args.rs, longdouble.rs)
//! keyspace/      databases of 16384 locked slots; entries, value types and encodings,
//!                the hash-ordered Dict whose SCAN cursor survives resizes, the
//!                order-statistic tree of sorted sets, the DEBUG DIGEST algorithm
//! log/           the write log: offsets, retained history, reliable readers with back-pressure
//! resp/          RESP2/RESP3 encoding and command decoding (the log's format)
//! slot.rs        SlotId and key hashing; glob.rs the pattern matcher; reply.rs Reply
//! config.rs      Config, error.rs Error
//! ```

#![warn(missing_docs)]

pub(crate) mod cmd;
pub mod config;
mod engine;
pub mod error;
pub(crate) mod glob;
pub(crate) mod keyspace;
pub mod log;
pub mod node;
pub mod reply;
pub mod resp;
pub mod slot;

pub use config::Config;
pub use engine::{Applied, Blocked, Client, Clock, Engine, ManualClock, Outcome, SystemClock};
pub use error::{Error, Result};
pub use keyspace::bytes::CompactBytes;
pub use keyspace::digest::{Digest, DigestMode};
pub use log::Offset;
pub use node::{Node, Session, SetOptions, Transaction};
pub use reply::Reply;
pub use slot::SlotId;

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
