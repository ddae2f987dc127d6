//! `Config`: how a node is built. Every limit lives here, named with its unit.
//!
//! Later features (persistence, listeners, replication, cluster) add their settings to the
//! same builder; `shoal-server` fills it from a `redis.conf`-style file.

mod catalog;
pub(crate) mod directives;
pub mod file;

use crate::engine::{Clock, SystemClock};
use crate::keyspace::value::EncodingLimits;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
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
    /// Whether DEBUG is allowed (`enable-debug-command`). Allowed for embedded use (the
    /// application is trusted); `shoal-server` defaults it to Redis's `no`.
    pub enable_debug_command: Access,
    /// Whether CONFIG SET may change protected directives (`enable-protected-configs`).
    pub enable_protected_configs: Access,
    /// Milliseconds since the epoch; swapped in tests.
    pub clock: Arc<dyn Clock>,
    /// The password clients must give with AUTH (`requirepass`); `None`: no password.
    pub requirepass: Option<String>,
    /// TCP port of the RESP listener (`port`); 0: no TCP listener (the embedded default).
    pub port: u16,
    /// Addresses the listener binds (`bind`); `*` is every IPv4 address, `::*` every IPv6
    /// one, and a leading `-` makes an address optional (skipped if it cannot be bound). The
    /// default is the stock redis.conf's `127.0.0.1 -::1`: loopback only.
    pub bind: Vec<String>,
    /// Refuse clients from other hosts while no password is set (`protected-mode`).
    pub protected_mode: bool,
    /// Most connected clients (`maxclients`).
    pub maxclients: u64,
    /// Worker threads of the listener (`io-threads`); `None`: one per core. Each serves its
    /// clients on its own; set 1 to serve them all on one thread, as Redis does by default
    /// (best when the listener shares a small machine with busy clients).
    pub io_threads: Option<usize>,
    /// Close a client idle for this many seconds (`timeout`); 0: never.
    pub timeout_secs: u64,
    /// TCP keepalive interval for new connections (`tcp-keepalive`); 0: off.
    pub tcp_keepalive_secs: u64,
    /// Output buffer limits per client class (`client-output-buffer-limit`).
    pub output_limits: OutputLimits,
    /// Close a client whose unparsed input passes this (`client-query-buffer-limit`).
    pub query_buffer_bytes_max: usize,
    /// Log commands that take at least this many microseconds (`slowlog-log-slower-than`);
    /// negative: log nothing.
    pub slowlog_log_slower_than_us: i64,
    /// Slow log entries kept (`slowlog-max-len`).
    pub slowlog_len_max: usize,
    /// Record latency events of at least this many milliseconds (`latency-monitor-threshold`);
    /// 0: off.
    pub latency_monitor_threshold_ms: u64,
    /// Keep per-command latency histograms for INFO latencystats (`latency-tracking`).
    pub latency_tracking: bool,
    /// The percentiles INFO latencystats reports (`latency-tracking-info-percentiles`).
    pub latency_tracking_percentiles: Vec<f64>,
    /// The configuration file the settings came from (INFO `config_file`, CONFIG REWRITE).
    pub config_file: Option<std::path::PathBuf>,
    /// Sentinel mode (`--sentinel`): the node serves no data and monitors the groups its
    /// `sentinel ...` directives (each given here without the word `sentinel`) name.
    pub sentinel: Option<Vec<Vec<String>>>,
    /// Reports the bytes the program's allocator holds (INFO `used_memory`); without it,
    /// the process's resident memory is reported.
    pub memory_probe: Option<MemoryProbe>,
    /// Where AOF incr files are written (`None`: the filesystem). Crash tests swap in a
    /// double that keeps written and fsynced bytes apart.
    pub aof_storage: Option<Arc<dyn crate::persist::storage::Storage>>,
    /// How much `shoal-server` logs (`loglevel`).
    pub loglevel: LogLevel,
    /// Where `shoal-server` logs (`logfile`); empty: standard output.
    pub logfile: String,
    /// Detach from the terminal (`daemonize`); `shoal-server` supports only `no`.
    pub daemonize: bool,
    /// Where `shoal-server` writes its process id (`pidfile`).
    pub pidfile: Option<PathBuf>,
    /// The working directory: snapshots and the AOF live here (`dir`).
    pub dir: PathBuf,
    /// Whether the node loads its files from `dir` when it opens and saves by the `save`
    /// points: on for `shoal-server`, off for an embedded node until [`Config::dir`] names a
    /// directory, so that an application does not find a `dump.rdb` in its working directory.
    pub persistence: bool,
    /// Compress snapshot strings with LZF (`rdbcompression`).
    pub rdb_compression: bool,
    /// Write and verify the snapshot's CRC-64 trailer (`rdbchecksum`).
    pub rdb_checksum: bool,
    /// Refuse writes while the last background save failed, if save points exist
    /// (`stop-writes-on-bgsave-error`).
    pub stop_writes_on_bgsave_error: bool,
    /// Keep an append-only file (`appendonly`): every write is logged before it is
    /// acknowledged by the `appendfsync` policy.
    pub append_only: bool,
    /// When the append-only file is fsynced (`appendfsync`).
    pub append_fsync: Fsync,
    /// The append-only files' base name (`appendfilename`).
    pub append_filename: String,
    /// The folder in `dir` holding them (`appenddirname`).
    pub append_dirname: String,
    /// Write an AOF base as RDB rather than commands (`aof-use-rdb-preamble`).
    pub aof_use_rdb_preamble: bool,
    /// Cut a torn tail off the last AOF file at start-up instead of refusing
    /// (`aof-load-truncated`).
    pub aof_load_truncated: bool,
    /// Rewrite the AOF once it grew this much (percent) since the last rewrite
    /// (`auto-aof-rewrite-percentage`; 0: never)...
    pub aof_rewrite_percentage: u64,
    /// ... and is at least this big (`auto-aof-rewrite-min-size`).
    pub aof_rewrite_min_bytes: u64,
    /// The snapshot file's name in `dir` (`dbfilename`).
    pub dbfilename: String,
    /// Snapshot points: save after `secs` seconds if at least `changes` writes (`save`).
    pub save: Vec<(u64, u64)>,
    /// Keyspace event classes to notify (`notify-keyspace-events`), canonical form.
    pub notify_keyspace_events: String,
    /// TLS on the RESP listener (`tls-*`).
    pub tls: TlsSettings,
    /// Replication: what a replica proves to its primary (`masterauth`).
    pub masterauth: Option<String>,
    /// The user it proves it as (`masteruser`; `None`: the default user).
    pub masteruser: Option<String>,
    /// A primary asked for a full sync waits this long for more replicas to share its
    /// snapshot (`repl-diskless-sync-delay`). Embedded nodes default to 0; shoal-server to
    /// Redis's 5.
    pub repl_diskless_sync_delay_secs: u64,
    /// ... and starts as soon as this many wait (`repl-diskless-sync-max-replicas`; 0: no
    /// such limit).
    pub repl_diskless_sync_max_replicas: usize,
    /// Replicas refuse writes from clients (`replica-read-only`).
    pub replica_read_only: bool,
    /// A replica whose link is down still answers reads (`replica-serve-stale-data`).
    pub replica_serve_stale_data: bool,
    /// A primary refuses writes unless this many replicas acknowledged within
    /// `min_replicas_max_lag_secs` (`min-replicas-to-write`; 0: no such rule).
    pub min_replicas_to_write: u64,
    /// (`min-replicas-max-lag`.)
    pub min_replicas_max_lag_secs: u64,
    /// A primary pings its replicas this often when no writes flow (`repl-ping-replica-period`).
    pub repl_ping_period_secs: u64,
    /// A link silent this long is dropped, by either side (`repl-timeout`).
    pub repl_timeout_secs: u64,
    /// A primary without replicas for this long frees its backlog (`repl-backlog-ttl`; 0:
    /// never).
    pub repl_backlog_ttl_secs: u64,
    /// INFO's `slave_priority` (`replica-priority`); 0: never promoted by a failover.
    pub replica_priority: u64,
    /// A cluster replica never starts a failover by itself (`cluster-replica-no-failover`).
    pub cluster_replica_no_failover: bool,
    /// A cluster replica whose link to its failed master was down longer than this many
    /// node timeouts does not fail over (`cluster-replica-validity-factor`; 0: any).
    pub cluster_replica_validity_factor: u64,
    /// A master that loses its last slot to another, and the replicas of such a master,
    /// follow the new owner; a replica moves to a master left without replicas
    /// (`cluster-allow-replica-migration`).
    pub cluster_allow_replica_migration: bool,
    /// A replica moves to an orphaned master only if its own keeps this many
    /// (`cluster-migration-barrier`).
    pub cluster_migration_barrier: u64,
    /// UDP port of the node's QUIC endpoint (`cluster-port`); 0: the RESP port + 10000, as
    /// Redis places its cluster bus.
    pub cluster_port: u16,
    /// nodes.conf, in `dir` (`cluster-config-file`).
    pub cluster_config_file: String,
    /// A node silent this long is suspected (`cluster-node-timeout`).
    pub cluster_node_timeout_ms: u64,
    /// Keys are refused while any slot is unserved (`cluster-require-full-coverage`).
    pub cluster_require_full_coverage: bool,
    /// Reads are served while the cluster is down (`cluster-allow-reads-when-down`).
    pub cluster_allow_reads_when_down: bool,
    /// The IP this node tells other cluster nodes and clients (`cluster-announce-ip`);
    /// `None`: the address peers reach it at.
    pub cluster_announce_ip: Option<String>,
    /// The RESP port it tells them (`cluster-announce-port`, 0: `port`).
    pub cluster_announce_port: u16,
    /// The bus port it tells them (`cluster-announce-bus-port`, 0: the bound one).
    pub cluster_announce_bus_port: u16,
    /// RESP clients get commands for other nodes' slots run there and answered here instead
    /// of MOVED/ASK (`cluster-proxy-mode`, Shoal's own directive).
    pub cluster_proxy_mode: bool,
    /// Embedded callers get MOVED/ASK for other nodes' slots instead of having the command
    /// run there ([`Config::cluster_redirects`]).
    pub cluster_redirects: bool,
    /// The QUIC endpoint's address for a node without a RESP listener (an embedded node that
    /// replicates or is replicated); `None`: from `bind`, `port` and `cluster-port`.
    pub bus_addr: Option<std::net::SocketAddr>,
    /// Directives Shoal accepts for compatibility without acting on them, by canonical name,
    /// in CONFIG GET form; absent ones have their default.
    pub other: BTreeMap<&'static str, String>,
    /// `rename-command` pairs in file order, lower case; an empty new name removes the command.
    pub renamed_commands: Vec<(String, String)>,
}

/// Who may use a protected feature (`enable-debug-command`, `enable-protected-configs`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// Nobody.
    No,
    /// Everybody.
    Yes,
    /// Clients on the loopback interface.
    Local,
}

impl Access {
    fn from_name(name: &str) -> Access {
        match name {
            "yes" => Access::Yes,
            "local" => Access::Local,
            _ => Access::No,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Access::No => "no",
            Access::Yes => "yes",
            Access::Local => "local",
        }
    }

    /// Whether a client (`local`: on the loopback interface, or the embedding program)
    /// may use the feature.
    pub fn allows(self, local: bool) -> bool {
        match self {
            Access::No => false,
            Access::Yes => true,
            Access::Local => local,
        }
    }
}

/// When the append-only file is fsynced (`appendfsync`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Fsync {
    /// After every write, before its reply is released (group commit: one fsync per batch).
    Always,
    /// Once a second: a crash loses at most about a second of writes.
    EverySec,
    /// When the operating system decides.
    No,
}

impl Fsync {
    fn from_name(name: &str) -> Fsync {
        match name {
            "always" => Fsync::Always,
            "no" => Fsync::No,
            _ => Fsync::EverySec,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Fsync::Always => "always",
            Fsync::EverySec => "everysec",
            Fsync::No => "no",
        }
    }
}

/// `loglevel`, least to most selective.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Everything, including per-command detail.
    Debug,
    /// Much, still useful.
    Verbose,
    /// What a production server should log (the default).
    Notice,
    /// Only what needs attention.
    Warning,
    /// Log nothing (Redis 7.2's `nothing`).
    Nothing,
}

impl LogLevel {
    fn from_name(name: &str) -> LogLevel {
        match name {
            "debug" => LogLevel::Debug,
            "verbose" => LogLevel::Verbose,
            "warning" => LogLevel::Warning,
            "nothing" => LogLevel::Nothing,
            _ => LogLevel::Notice,
        }
    }

    fn name(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Verbose => "verbose",
            LogLevel::Notice => "notice",
            LogLevel::Warning => "warning",
            LogLevel::Nothing => "nothing",
        }
    }
}

/// Whether TLS clients must present a certificate (`tls-auth-clients`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TlsAuthClients {
    /// No certificate is asked for.
    No,
    /// A certificate signed by the CA is required.
    Yes,
    /// A certificate is checked if given.
    Optional,
}

impl TlsAuthClients {
    fn from_name(name: &str) -> TlsAuthClients {
        match name {
            "no" => TlsAuthClients::No,
            "optional" => TlsAuthClients::Optional,
            _ => TlsAuthClients::Yes,
        }
    }

    fn name(self) -> &'static str {
        match self {
            TlsAuthClients::No => "no",
            TlsAuthClients::Yes => "yes",
            TlsAuthClients::Optional => "optional",
        }
    }
}

/// TLS settings of the RESP listener.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    /// The TLS port (`tls-port`); 0: no TLS listener.
    pub port: u16,
    /// The server certificate chain, PEM (`tls-cert-file`).
    pub cert_file: Option<PathBuf>,
    /// Its private key, PEM (`tls-key-file`).
    pub key_file: Option<PathBuf>,
    /// CA certificates that client certificates are checked against (`tls-ca-cert-file`).
    pub ca_cert_file: Option<PathBuf>,
    /// Whether clients must present a certificate (`tls-auth-clients`).
    pub auth_clients: TlsAuthClients,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            port: 0,
            cert_file: None,
            key_file: None,
            ca_cert_file: None,
            auth_clients: TlsAuthClients::Yes,
        }
    }
}

/// A function that reports allocated bytes.
pub type MemoryProbe = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Limits on one class of clients' unsent replies: over `hard_bytes`, or over `soft_bytes`
/// for more than `soft_secs`, the client is disconnected. 0 turns a limit off.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct OutputLimit {
    /// Disconnect as soon as unsent replies reach this.
    pub hard_bytes: u64,
    /// Disconnect when unsent replies stay at or above this for `soft_secs`.
    pub soft_bytes: u64,
    /// How long the soft limit may be exceeded.
    pub soft_secs: u64,
}

impl OutputLimit {
    /// Whether `unread` bytes of replies break this limit: at or past the hard limit, or at
    /// or past the soft one for longer than `soft_secs` (`over_soft_since` remembers when it
    /// started; it is cleared when `unread` drops below).
    pub fn exceeded(&self, unread: u64, over_soft_since: &mut Option<std::time::Instant>) -> bool {
        if self.hard_bytes > 0 && unread >= self.hard_bytes {
            return true;
        }
        if self.soft_bytes == 0 || unread < self.soft_bytes {
            *over_soft_since = None;
            return false;
        }
        let since = *over_soft_since.get_or_insert_with(std::time::Instant::now);
        since.elapsed() > std::time::Duration::from_secs(self.soft_secs)
    }
}

/// `client-output-buffer-limit` for each class of client.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct OutputLimits {
    /// Ordinary clients (and monitors).
    pub normal: OutputLimit,
    /// Replicas' replication links.
    pub replica: OutputLimit,
    /// Subscribers.
    pub pubsub: OutputLimit,
}

impl Default for OutputLimits {
    fn default() -> Self {
        const MB: u64 = 1024 * 1024;
        OutputLimits {
            normal: OutputLimit {
                hard_bytes: 0,
                soft_bytes: 0,
                soft_secs: 0,
            },
            replica: OutputLimit {
                hard_bytes: 256 * MB,
                soft_bytes: 64 * MB,
                soft_secs: 60,
            },
            pubsub: OutputLimit {
                hard_bytes: 32 * MB,
                soft_bytes: 8 * MB,
                soft_secs: 60,
            },
        }
    }
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
            enable_debug_command: Access::Yes,
            enable_protected_configs: Access::No,
            clock: Arc::new(SystemClock),
            requirepass: None,
            port: 0,
            bind: vec!["127.0.0.1".into(), "-::1".into()],
            protected_mode: true,
            maxclients: 10_000,
            io_threads: None,
            timeout_secs: 0,
            tcp_keepalive_secs: 300,
            output_limits: OutputLimits::default(),
            query_buffer_bytes_max: 1024 * 1024 * 1024,
            slowlog_log_slower_than_us: 10_000,
            slowlog_len_max: 128,
            latency_monitor_threshold_ms: 0,
            latency_tracking: true,
            latency_tracking_percentiles: vec![50.0, 99.0, 99.9],
            config_file: None,
            sentinel: None,
            memory_probe: None,
            aof_storage: None,
            loglevel: LogLevel::Notice,
            logfile: String::new(),
            daemonize: false,
            pidfile: None,
            dir: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            dbfilename: "dump.rdb".into(),
            persistence: false,
            rdb_compression: true,
            rdb_checksum: true,
            stop_writes_on_bgsave_error: true,
            append_only: false,
            append_fsync: Fsync::EverySec,
            append_filename: "appendonly.aof".into(),
            append_dirname: "appendonlydir".into(),
            aof_use_rdb_preamble: true,
            aof_load_truncated: true,
            aof_rewrite_percentage: 100,
            aof_rewrite_min_bytes: 64 * 1024 * 1024,
            save: vec![(3600, 1), (300, 100), (60, 10_000)],
            notify_keyspace_events: String::new(),
            tls: TlsSettings::default(),
            masterauth: None,
            masteruser: None,
            repl_diskless_sync_delay_secs: 0,
            repl_diskless_sync_max_replicas: 0,
            replica_read_only: true,
            replica_serve_stale_data: true,
            min_replicas_to_write: 0,
            min_replicas_max_lag_secs: 10,
            repl_ping_period_secs: 10,
            repl_timeout_secs: 60,
            replica_priority: 100,
            cluster_replica_no_failover: false,
            cluster_replica_validity_factor: 10,
            cluster_allow_replica_migration: true,
            cluster_migration_barrier: 1,
            repl_backlog_ttl_secs: 3600,
            cluster_port: 0,
            bus_addr: None,
            cluster_config_file: "nodes.conf".into(),
            cluster_node_timeout_ms: 15_000,
            cluster_require_full_coverage: true,
            cluster_allow_reads_when_down: false,
            cluster_announce_ip: None,
            cluster_announce_port: 0,
            cluster_announce_bus_port: 0,
            cluster_proxy_mode: false,
            cluster_redirects: false,
            other: BTreeMap::new(),
            renamed_commands: Vec::new(),
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
    /// The embedded defaults: 16 databases, standalone, active expiry on, no listener.
    pub fn new() -> Config {
        Config::default()
    }

    /// Redis's defaults, as `shoal-server` starts from them: port 6379 on every address
    /// (with protected mode), DEBUG refused.
    pub fn server_defaults() -> Config {
        Config {
            port: 6379,
            enable_debug_command: Access::No,
            persistence: true,
            repl_diskless_sync_delay_secs: 5,
            ..Config::default()
        }
    }

    /// Keeps the node's files in `dir` (`dir`): the snapshot is loaded when the node opens,
    /// and saved by the `save` points and at shutdown.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Config {
        self.dir = dir.into();
        self.persistence = true;
        self
    }

    /// Keeps an append-only file in `dir` (`appendonly yes`) fsynced by `fsync`
    /// (`appendfsync`).
    pub fn append_only(mut self, fsync: Fsync) -> Config {
        self.append_only = true;
        self.append_fsync = fsync;
        self
    }

    /// Sets the snapshot points (`save`): save after `secs` seconds if at least `changes`
    /// writes happened; empty: no automatic snapshots.
    pub fn save_points(mut self, points: &[(u64, u64)]) -> Config {
        self.save = points.to_vec();
        self
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

    /// Sentinel mode with one `sentinel` directive more, written as in a sentinel.conf
    /// without the leading word: `.sentinel("monitor mymaster 127.0.0.1 6379 2")`,
    /// `.sentinel("down-after-milliseconds mymaster 5000")`. The node then serves no data:
    /// it monitors the group and fails it over, and its events (`+switch-master`, ...) are
    /// published on channels named after them, for [`crate::Node::subscribe`].
    pub fn sentinel(mut self, directive: &str) -> Config {
        let words: Vec<String> = directive.split_whitespace().map(str::to_string).collect();
        let directives = self.sentinel.get_or_insert_with(Vec::new);
        if !words.is_empty() {
            directives.push(words);
        }
        self
    }

    /// In cluster mode, a command the embedded API runs for a slot another node serves is
    /// sent to that node over QUIC and its reply returned, by default; with `true` the
    /// caller gets Redis's MOVED or ASK error instead.
    pub fn cluster_redirects(mut self, redirects: bool) -> Config {
        self.cluster_redirects = redirects;
        self
    }

    /// How long a cluster node may be unreachable before it is failed over
    /// (`cluster-node-timeout`).
    pub fn cluster_node_timeout_ms(mut self, ms: u64) -> Config {
        self.cluster_node_timeout_ms = ms;
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

    /// Runs the listener on `threads` worker threads (at least one).
    pub fn io_threads(mut self, threads: usize) -> Config {
        self.io_threads = Some(threads.max(1));
        self
    }

    /// The listener's worker threads: as set, or one per core but one. Like Redis's advice for
    /// `io-threads`, a core is left to the application, the kernel's network processing and
    /// the clients on the same machine: on 2 cores with redis-benchmark beside it, a second
    /// worker adds no throughput and triples the p99 of pipelined runs.
    pub fn worker_count(&self) -> usize {
        self.io_threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
        })
    }

    /// Serves RESP on `port` (0: no listener), on the addresses of [`Config::bind`].
    pub fn port(mut self, port: u16) -> Config {
        self.port = port;
        self
    }

    /// Sets the addresses the listener binds.
    pub fn bind<S: Into<String>>(mut self, addresses: impl IntoIterator<Item = S>) -> Config {
        self.bind = addresses.into_iter().map(Into::into).collect();
        self
    }

    /// Where this node's QUIC endpoint listens, for replication without a RESP listener.
    pub fn bus_addr(mut self, addr: std::net::SocketAddr) -> Config {
        self.bus_addr = Some(addr);
        self
    }

    /// The secret this node proves when it replicates from a primary (`masterauth`).
    pub fn masterauth(mut self, secret: impl Into<String>) -> Config {
        self.masterauth = Some(secret.into());
        self
    }

    /// `tls-replication yes`: peers authenticate with the `tls-*` certificates.
    pub fn tls_replication(&self) -> bool {
        self.other
            .get("tls-replication")
            .is_some_and(|v| v == "yes")
    }

    /// The certificate files peers authenticate with, when all three are set.
    pub fn peer_tls(&self) -> Option<crate::transport::PeerTls> {
        Some(crate::transport::PeerTls {
            cert_file: self.tls.cert_file.clone()?,
            key_file: self.tls.key_file.clone()?,
            ca_cert_file: self.tls.ca_cert_file.clone()?,
        })
    }

    /// The primary named by `replicaof` (host, RESP port), if any.
    pub fn replicaof(&self) -> Option<(String, u16)> {
        let value = self.other.get("replicaof")?;
        let (host, port) = value.rsplit_once(' ')?;
        Some((host.to_string(), port.parse().ok()?))
    }

    /// What this node tells other cluster nodes: its IP if announced, its RESP port and its
    /// bus port (the `cluster-announce-*` values over the bound ones).
    pub fn cluster_announced(&self) -> (Option<&str>, u16, u16) {
        let bound_cport = self.bus_bind_addr().map_or(0, |a| a.port());
        let or = |announced: u16, bound: u16| if announced == 0 { bound } else { announced };
        (
            self.cluster_announce_ip.as_deref(),
            or(self.cluster_announce_port, self.port),
            or(self.cluster_announce_bus_port, bound_cport),
        )
    }

    /// The address the QUIC endpoint binds, if the node has one: [`Config::bus_addr`], or the
    /// first `bind` address at `cluster-port` (the RESP port + 10000 by default).
    pub fn bus_bind_addr(&self) -> Option<std::net::SocketAddr> {
        if let Some(addr) = self.bus_addr {
            return Some(addr);
        }
        if self.port == 0 {
            return None;
        }
        let port = match self.cluster_port {
            0 => self.port.checked_add(10_000)?,
            port => port,
        };
        let host = self
            .bind
            .first()
            .map_or("127.0.0.1", |h| h.trim_start_matches('-'));
        let host = match host {
            "*" => "0.0.0.0",
            "::*" => "::",
            other => other,
        };
        format!("{host}:{port}")
            .parse()
            .ok()
            .or_else(|| format!("[{host}]:{port}").parse().ok())
    }

    /// Requires clients to AUTH with `password`.
    pub fn requirepass(mut self, password: impl Into<String>) -> Config {
        self.requirepass = Some(password.into());
        self
    }

    /// Turns protected mode on or off.
    pub fn protected_mode(mut self, on: bool) -> Config {
        self.protected_mode = on;
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

/// The settings as they are now. CONFIG SET changes a copy and swaps it in whole, so a reader
/// always sees one consistent version and a failed change leaves nothing behind. The few
/// settings read on every command are mirrored in atomics: reading them takes no lock and
/// touches no line that other threads write.
pub struct Live {
    current: parking_lot::RwLock<Arc<Config>>,
    /// Bumped by every change, so a reader can keep its copy until it moves.
    version: AtomicU64,
    hot: Hot,
}

#[derive(Default)]
struct Hot {
    encoding: [AtomicUsize; 5],
    proto_max_bulk_len: AtomicUsize,
    slowlog_log_slower_than_us: AtomicI64,
    slowlog_len_max: AtomicUsize,
    latency_monitor_threshold_ms: AtomicU64,
    latency_tracking: AtomicBool,
    min_replicas_to_write: AtomicU64,
    notify_flags: std::sync::atomic::AtomicU32,
}

impl Hot {
    fn mirror(&self, c: &Config) {
        let e = &c.encoding;
        let values = [
            e.hash_max_listpack_entries,
            e.hash_max_listpack_value,
            e.set_max_intset_entries,
            e.zset_max_listpack_entries,
            e.zset_max_listpack_value,
        ];
        for (cell, v) in self.encoding.iter().zip(values) {
            cell.store(v, Ordering::Relaxed);
        }
        self.proto_max_bulk_len
            .store(c.proto_max_bulk_len, Ordering::Relaxed);
        self.slowlog_log_slower_than_us
            .store(c.slowlog_log_slower_than_us, Ordering::Relaxed);
        self.slowlog_len_max
            .store(c.slowlog_len_max, Ordering::Relaxed);
        self.latency_monitor_threshold_ms
            .store(c.latency_monitor_threshold_ms, Ordering::Relaxed);
        self.latency_tracking
            .store(c.latency_tracking, Ordering::Relaxed);
        self.min_replicas_to_write
            .store(c.min_replicas_to_write, Ordering::Relaxed);
        let notify = crate::engine::notify::flags_of(&c.notify_keyspace_events);
        // Without K or E there is nowhere to publish: notifications are off.
        let channels =
            crate::engine::notify::class::KEYSPACE | crate::engine::notify::class::KEYEVENT;
        self.notify_flags.store(
            if notify & channels == 0 { 0 } else { notify },
            Ordering::Relaxed,
        );
    }
}

impl Live {
    /// Starts from `config`.
    pub fn new(config: Config) -> Live {
        let hot = Hot::default();
        hot.mirror(&config);
        Live {
            current: parking_lot::RwLock::new(Arc::new(config)),
            version: AtomicU64::new(0),
            hot,
        }
    }

    /// The small-encoding thresholds.
    pub fn encoding(&self) -> EncodingLimits {
        let v = |i: usize| self.hot.encoding[i].load(Ordering::Relaxed);
        EncodingLimits {
            hash_max_listpack_entries: v(0),
            hash_max_listpack_value: v(1),
            set_max_intset_entries: v(2),
            zset_max_listpack_entries: v(3),
            zset_max_listpack_value: v(4),
        }
    }

    /// The `notify-keyspace-events` classes (0: off), read on every write.
    pub fn notify_flags(&self) -> u32 {
        self.hot.notify_flags.load(Ordering::Relaxed)
    }

    /// `min-replicas-to-write`, read on every write.
    pub fn min_replicas_to_write(&self) -> u64 {
        self.hot.min_replicas_to_write.load(Ordering::Relaxed)
    }

    /// `proto-max-bulk-len`.
    pub fn proto_max_bulk_len(&self) -> usize {
        self.hot.proto_max_bulk_len.load(Ordering::Relaxed)
    }

    /// `slowlog-log-slower-than` (µs; negative: off) and `slowlog-max-len`.
    pub fn slowlog(&self) -> (i64, usize) {
        (
            self.hot.slowlog_log_slower_than_us.load(Ordering::Relaxed),
            self.hot.slowlog_len_max.load(Ordering::Relaxed),
        )
    }

    /// `latency-monitor-threshold` (ms; 0: off).
    pub fn latency_monitor_threshold_ms(&self) -> u64 {
        self.hot
            .latency_monitor_threshold_ms
            .load(Ordering::Relaxed)
    }

    /// `latency-tracking`.
    pub fn latency_tracking(&self) -> bool {
        self.hot.latency_tracking.load(Ordering::Relaxed)
    }

    /// The current settings.
    pub fn get(&self) -> Arc<Config> {
        self.current.read().clone()
    }

    /// Refreshes `copy` if the settings changed since it was taken (`version` is its
    /// version). Cheap when nothing changed: one load of a line that is almost never written,
    /// where taking a fresh copy would write the shared reference count.
    pub fn refresh(&self, copy: &mut Arc<Config>, version: &mut u64) {
        let now = self.version.load(Ordering::Acquire);
        if now != *version {
            *copy = self.get();
            *version = now;
        }
    }

    /// Applies `change` to a copy of the current settings and makes the copy current if it
    /// succeeds.
    pub fn update<E>(&self, change: impl FnOnce(&mut Config) -> Result<(), E>) -> Result<(), E> {
        let mut current = self.current.write();
        let mut next = Config::clone(&current);
        change(&mut next)?;
        self.hot.mirror(&next);
        *current = Arc::new(next);
        self.version.fetch_add(1, Ordering::Release);
        Ok(())
    }
}
