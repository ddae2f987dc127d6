//! `Config`: how a node is built. Every limit lives here, named with its unit.
//!
//! Later features (persistence, listeners, replication, cluster) add their settings to the
//! same builder; `shoal-server` fills it from a `redis.conf`-style file.

use crate::engine::{Clock, SystemClock};
use crate::keyspace::value::EncodingLimits;
use std::fmt;
use std::sync::Arc;

/// The most databases a node may have (each used one costs about 1 MiB of slot tables).
pub const DATABASES_MAX: usize = 16384;

/// Everything a node is built from. Start from [`Config::new`] (Redis's defaults) and
/// change what you need:
///
/// ```
/// let config = shoal::Config::new().databases(4).hz(20);
/// assert_eq!(config.database_count(), 4);
/// ```
#[derive(Clone)]
pub struct Config {
    /// Number of databases in standalone mode (`databases`); cluster mode has only database 0.
    pub databases: usize,
    /// Cluster mode (`cluster-enabled`): one database, slots owned per node.
    pub cluster_enabled: bool,
    /// Write-log history kept for late readers (`repl-backlog-size`).
    pub backlog_bytes_max: usize,
    /// How far a reliable log reader (the AOF writer) may lag before writers wait for it.
    pub log_pinned_bytes_max: usize,
    /// Whether the background sweep deletes expired keys (lazy expiry always works).
    pub active_expire: bool,
    /// Background task frequency (`hz`): the expiry sweep runs this often per second.
    pub hz: u32,
    /// Largest string a command may build (`proto-max-bulk-len`).
    pub proto_max_bulk_len: usize,
    /// Thresholds of the small encodings `OBJECT ENCODING` reports.
    pub encoding: EncodingLimits,
    /// Whether DEBUG is allowed. On for embedded use (the application is trusted);
    /// `shoal-server` defaults it to Redis's "no".
    pub enable_debug_command: bool,
    /// Milliseconds since the epoch; swapped in tests.
    pub clock: Arc<dyn Clock>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            databases: 16,
            cluster_enabled: false,
            backlog_bytes_max: 1024 * 1024,
            log_pinned_bytes_max: 64 * 1024 * 1024,
            active_expire: true,
            hz: 10,
            proto_max_bulk_len: 512 * 1024 * 1024,
            encoding: EncodingLimits::default(),
            enable_debug_command: true,
            clock: Arc::new(SystemClock),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("databases", &self.databases)
            .field("cluster_enabled", &self.cluster_enabled)
            .field("backlog_bytes_max", &self.backlog_bytes_max)
            .field("log_pinned_bytes_max", &self.log_pinned_bytes_max)
            .field("active_expire", &self.active_expire)
            .field("hz", &self.hz)
            .field("proto_max_bulk_len", &self.proto_max_bulk_len)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// The defaults: 16 databases, standalone, active expiry on.
    pub fn new() -> Config {
        Config::default()
    }

    /// Sets the number of databases (`databases`).
    pub fn databases(mut self, databases: usize) -> Config {
        self.databases = databases;
        self
    }

    /// Turns cluster mode on or off.
    pub fn cluster_enabled(mut self, enabled: bool) -> Config {
        self.cluster_enabled = enabled;
        self
    }

    /// Sets how much write-log history is kept (`repl-backlog-size`).
    pub fn backlog_bytes_max(mut self, bytes: usize) -> Config {
        self.backlog_bytes_max = bytes;
        self
    }

    /// Turns the active expiry sweep on or off.
    pub fn active_expire(mut self, enabled: bool) -> Config {
        self.active_expire = enabled;
        self
    }

    /// Sets the background task frequency (`hz`).
    pub fn hz(mut self, hz: u32) -> Config {
        self.hz = hz;
        self
    }

    /// Replaces the wall clock (tests, simulation).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Config {
        self.clock = clock;
        self
    }

    /// Databases actually created: 1 in cluster mode.
    pub fn database_count(&self) -> usize {
        if self.cluster_enabled {
            1
        } else {
            self.databases
        }
    }

    /// Checks the settings, naming the first bad one.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let bad = |what: &str| Err(crate::Error::Config(what.to_string()));
        if self.databases == 0 || self.databases > DATABASES_MAX {
            return bad("databases must be between 1 and 16384");
        }
        if self.log_pinned_bytes_max == 0 {
            return bad("the write log's pinned limit must be above 0");
        }
        if self.hz == 0 || self.hz > 500 {
            return bad("hz must be between 1 and 500");
        }
        if self.proto_max_bulk_len < 1024 * 1024 {
            return bad("proto-max-bulk-len must be at least 1mb");
        }
        Ok(())
    }
}
