//! Every configuration directive of Redis 7.0, with its alias, how it may be changed, and the
//! type and default of its value.
//!
//! A real `redis.conf` is full of directives about features Shoal does not have (or does not
//! have yet): they are accepted, checked as Redis checks them, and reported back by CONFIG GET,
//! so a file written for Redis starts Shoal unchanged. The directives Shoal acts on are bound
//! to typed fields of [`Config`](super::Config) in `directives.rs`; the others keep their
//! value as text.
//!
//! One departure from Redis's flags: `port`, `bind` and the `tls-*` listener settings are
//! immutable here, because the listener is bound once and does not rebind.

/// A directive's description.
pub struct Spec {
    pub name: &'static str,
    /// The old name it is also known by (CONFIG GET reports both).
    pub alias: Option<&'static str>,
    pub flags: u8,
    pub kind: Kind,
}

/// The type of a directive's value, with its bounds and default.
pub enum Kind {
    /// `yes` / `no`.
    Bool(bool),
    /// An integer, `memory`: with units (`1gb`), `percent`: or `N%` (stored negated).
    Number {
        min: i128,
        max: i128,
        default: i128,
        memory: bool,
        percent: bool,
    },
    /// Free text; `empty_is_none`: an empty value means "unset".
    Text {
        default: Option<&'static str>,
        empty_is_none: bool,
    },
    /// One of `values` (`shutdown-on-*` take several).
    Enum {
        values: &'static [&'static str],
        default: &'static str,
    },
    /// A directive with its own syntax (save, bind, dir, client-output-buffer-limit, ...).
    Special,
}

/// CONFIG SET refuses it.
pub const IMMUTABLE: u8 = 1 << 0;
/// Its value is hidden from MONITOR and SLOWLOG.
pub const SENSITIVE: u8 = 1 << 1;
/// CONFIG SET refuses it unless `enable-protected-configs` allows.
pub const PROTECTED: u8 = 1 << 2;
/// Not matched by CONFIG GET patterns.
pub const HIDDEN: u8 = 1 << 3;
/// Refused while loading.
pub const DENY_LOADING: u8 = 1 << 4;
/// Takes several arguments.
pub const MULTI_ARG: u8 = 1 << 5;
/// CONFIG SET may change it.
pub const MUTABLE: u8 = 0;

const fn d(name: &'static str, alias: Option<&'static str>, flags: u8, kind: Kind) -> Spec {
    Spec {
        name,
        alias,
        flags,
        kind,
    }
}

/// Every directive, in Redis's table order.
pub static CATALOG: &[Spec] = &[
    d("rdbchecksum", None, IMMUTABLE, Kind::Bool(true)),
    d("daemonize", None, IMMUTABLE, Kind::Bool(false)),
    d("io-threads-do-reads", None, IMMUTABLE, Kind::Bool(false)),
    d("always-show-logo", None, IMMUTABLE, Kind::Bool(false)),
    d("protected-mode", None, MUTABLE, Kind::Bool(true)),
    d("rdbcompression", None, MUTABLE, Kind::Bool(true)),
    d("rdb-del-sync-files", None, MUTABLE, Kind::Bool(false)),
    d("activerehashing", None, MUTABLE, Kind::Bool(true)),
    d(
        "stop-writes-on-bgsave-error",
        None,
        MUTABLE,
        Kind::Bool(true),
    ),
    d("set-proc-title", None, IMMUTABLE, Kind::Bool(true)),
    d("dynamic-hz", None, MUTABLE, Kind::Bool(true)),
    d("lazyfree-lazy-eviction", None, MUTABLE, Kind::Bool(false)),
    d("lazyfree-lazy-expire", None, MUTABLE, Kind::Bool(false)),
    d("lazyfree-lazy-server-del", None, MUTABLE, Kind::Bool(false)),
    d("lazyfree-lazy-user-del", None, MUTABLE, Kind::Bool(false)),
    d("lazyfree-lazy-user-flush", None, MUTABLE, Kind::Bool(false)),
    d("repl-disable-tcp-nodelay", None, MUTABLE, Kind::Bool(false)),
    d("repl-diskless-sync", None, MUTABLE, Kind::Bool(true)),
    d(
        "aof-rewrite-incremental-fsync",
        None,
        MUTABLE,
        Kind::Bool(true),
    ),
    d(
        "no-appendfsync-on-rewrite",
        None,
        MUTABLE,
        Kind::Bool(false),
    ),
    d(
        "cluster-require-full-coverage",
        None,
        MUTABLE,
        Kind::Bool(true),
    ),
    d(
        "rdb-save-incremental-fsync",
        None,
        MUTABLE,
        Kind::Bool(true),
    ),
    d("aof-load-truncated", None, MUTABLE, Kind::Bool(true)),
    d("aof-use-rdb-preamble", None, MUTABLE, Kind::Bool(true)),
    d("aof-timestamp-enabled", None, MUTABLE, Kind::Bool(false)),
    d(
        "cluster-replica-no-failover",
        Some("cluster-slave-no-failover"),
        MUTABLE,
        Kind::Bool(false),
    ),
    d(
        "replica-lazy-flush",
        Some("slave-lazy-flush"),
        MUTABLE,
        Kind::Bool(false),
    ),
    d(
        "replica-serve-stale-data",
        Some("slave-serve-stale-data"),
        MUTABLE,
        Kind::Bool(true),
    ),
    d(
        "replica-read-only",
        Some("slave-read-only"),
        MUTABLE,
        Kind::Bool(true),
    ),
    d(
        "replica-ignore-maxmemory",
        Some("slave-ignore-maxmemory"),
        MUTABLE,
        Kind::Bool(true),
    ),
    d("jemalloc-bg-thread", None, MUTABLE, Kind::Bool(true)),
    d("activedefrag", None, MUTABLE, Kind::Bool(false)),
    d("syslog-enabled", None, IMMUTABLE, Kind::Bool(false)),
    d("cluster-enabled", None, IMMUTABLE, Kind::Bool(false)),
    d("appendonly", None, DENY_LOADING, Kind::Bool(false)),
    d(
        "cluster-allow-reads-when-down",
        None,
        MUTABLE,
        Kind::Bool(false),
    ),
    // Shoal's own: answer for every slot by forwarding (see Config::cluster_proxy_mode).
    d("cluster-proxy-mode", None, MUTABLE, Kind::Bool(false)),
    d(
        "cluster-allow-pubsubshard-when-down",
        None,
        MUTABLE,
        Kind::Bool(true),
    ),
    d("crash-log-enabled", None, MUTABLE, Kind::Bool(true)),
    d("crash-memcheck-enabled", None, MUTABLE, Kind::Bool(true)),
    d("use-exit-on-panic", None, HIDDEN, Kind::Bool(false)),
    d("disable-thp", None, IMMUTABLE, Kind::Bool(true)),
    d(
        "cluster-allow-replica-migration",
        None,
        MUTABLE,
        Kind::Bool(true),
    ),
    d("replica-announced", None, MUTABLE, Kind::Bool(true)),
    d("latency-tracking", None, MUTABLE, Kind::Bool(true)),
    d("aof-disable-auto-gc", None, MUTABLE, Kind::Bool(false)),
    d(
        "replica-ignore-disk-write-errors",
        None,
        MUTABLE,
        Kind::Bool(false),
    ),
    d(
        "aclfile",
        None,
        IMMUTABLE,
        Kind::Text {
            default: Some(""),
            empty_is_none: false,
        },
    ),
    d(
        "unixsocket",
        None,
        IMMUTABLE,
        Kind::Text {
            default: None,
            empty_is_none: true,
        },
    ),
    d(
        "pidfile",
        None,
        IMMUTABLE,
        Kind::Text {
            default: None,
            empty_is_none: true,
        },
    ),
    d(
        "replica-announce-ip",
        Some("slave-announce-ip"),
        MUTABLE,
        Kind::Text {
            default: None,
            empty_is_none: true,
        },
    ),
    d(
        "masteruser",
        None,
        SENSITIVE,
        Kind::Text {
            default: None,
            empty_is_none: true,
        },
    ),
    d(
        "cluster-announce-ip",
        None,
        MUTABLE,
        Kind::Text {
            default: None,
            empty_is_none: true,
        },
    ),
    d(
        "cluster-config-file",
        None,
        IMMUTABLE,
        Kind::Text {
            default: Some("nodes.conf"),
            empty_is_none: false,
        },
    ),
    d(
        "cluster-announce-hostname",
        None,
        MUTABLE,
        Kind::Text {
            default: None,
            empty_is_none: true,
        },
    ),
    d(
        "syslog-ident",
        None,
        IMMUTABLE,
        Kind::Text {
            default: Some("redis"),
            empty_is_none: false,
        },
    ),
    d(
        "dbfilename",
        None,
        PROTECTED,
        Kind::Text {
            default: Some("dump.rdb"),
            empty_is_none: false,
        },
    ),
    d(
        "appendfilename",
        None,
        IMMUTABLE,
        Kind::Text {
            default: Some("appendonly.aof"),
            empty_is_none: false,
        },
    ),
    d(
        "appenddirname",
        None,
        IMMUTABLE,
        Kind::Text {
            default: Some("appendonlydir"),
            empty_is_none: false,
        },
    ),
    d(
        "server_cpulist",
        None,
        IMMUTABLE,
        Kind::Text {
            default: None,
            empty_is_none: true,
        },
    ),
    d(
        "bio_cpulist",
        None,
        IMMUTABLE,
        Kind::Text {
            default: None,
            empty_is_none: true,
        },
    ),
    d(
        "aof_rewrite_cpulist",
        None,
        IMMUTABLE,
        Kind::Text {
            default: None,
            empty_is_none: true,
        },
    ),
    d(
        "bgsave_cpulist",
        None,
        IMMUTABLE,
        Kind::Text {
            default: None,
            empty_is_none: true,
        },
    ),
    d(
        "ignore-warnings",
        None,
        MUTABLE,
        Kind::Text {
            default: Some(""),
            empty_is_none: false,
        },
    ),
    d(
        "proc-title-template",
        None,
        MUTABLE,
        Kind::Text {
            default: Some("{title} {listen-addr} {server-mode}"),
            empty_is_none: false,
        },
    ),
    d(
        "bind-source-addr",
        None,
        MUTABLE,
        Kind::Text {
            default: None,
            empty_is_none: true,
        },
    ),
    d(
        "logfile",
        None,
        IMMUTABLE,
        Kind::Text {
            default: Some(""),
            empty_is_none: false,
        },
    ),
    d(
        "masterauth",
        None,
        SENSITIVE,
        Kind::Text {
            default: None,
            empty_is_none: true,
        },
    ),
    d(
        "requirepass",
        None,
        SENSITIVE,
        Kind::Text {
            default: None,
            empty_is_none: true,
        },
    ),
    d(
        "supervised",
        None,
        IMMUTABLE,
        Kind::Enum {
            values: &["upstart", "systemd", "auto", "no"],
            default: "no",
        },
    ),
    d(
        "syslog-facility",
        None,
        IMMUTABLE,
        Kind::Enum {
            values: &[
                "user", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
                "local7",
            ],
            default: "local0",
        },
    ),
    d(
        "repl-diskless-load",
        None,
        DENY_LOADING,
        Kind::Enum {
            values: &["disabled", "on-empty-db", "swapdb"],
            default: "disabled",
        },
    ),
    d(
        "loglevel",
        None,
        MUTABLE,
        Kind::Enum {
            values: &["debug", "verbose", "notice", "warning", "nothing"],
            default: "notice",
        },
    ),
    d(
        "maxmemory-policy",
        None,
        MUTABLE,
        Kind::Enum {
            values: &[
                "volatile-lru",
                "volatile-lfu",
                "volatile-random",
                "volatile-ttl",
                "allkeys-lru",
                "allkeys-lfu",
                "allkeys-random",
                "noeviction",
            ],
            default: "noeviction",
        },
    ),
    d(
        "appendfsync",
        None,
        MUTABLE,
        Kind::Enum {
            values: &["everysec", "always", "no"],
            default: "everysec",
        },
    ),
    d(
        "oom-score-adj",
        None,
        MUTABLE,
        Kind::Enum {
            values: &["no", "yes", "relative", "absolute"],
            default: "no",
        },
    ),
    d(
        "acl-pubsub-default",
        None,
        MUTABLE,
        Kind::Enum {
            values: &["allchannels", "resetchannels"],
            default: "resetchannels",
        },
    ),
    d(
        "sanitize-dump-payload",
        None,
        MUTABLE,
        Kind::Enum {
            values: &["no", "yes", "clients"],
            default: "no",
        },
    ),
    d(
        "enable-protected-configs",
        None,
        IMMUTABLE,
        Kind::Enum {
            values: &["no", "yes", "local"],
            default: "no",
        },
    ),
    d(
        "enable-debug-command",
        None,
        IMMUTABLE,
        Kind::Enum {
            values: &["no", "yes", "local"],
            default: "no",
        },
    ),
    d(
        "enable-module-command",
        None,
        IMMUTABLE,
        Kind::Enum {
            values: &["no", "yes", "local"],
            default: "no",
        },
    ),
    d(
        "cluster-preferred-endpoint-type",
        None,
        MUTABLE,
        Kind::Enum {
            values: &["ip", "hostname", "unknown-endpoint"],
            default: "ip",
        },
    ),
    d(
        "propagation-error-behavior",
        None,
        MUTABLE,
        Kind::Enum {
            values: &["ignore", "panic", "panic-on-replicas"],
            default: "ignore",
        },
    ),
    d(
        "shutdown-on-sigint",
        None,
        MULTI_ARG,
        Kind::Enum {
            values: &["default", "save", "nosave", "now", "force"],
            default: "default",
        },
    ),
    d(
        "shutdown-on-sigterm",
        None,
        MULTI_ARG,
        Kind::Enum {
            values: &["default", "save", "nosave", "now", "force"],
            default: "default",
        },
    ),
    d(
        "databases",
        None,
        IMMUTABLE,
        Kind::Number {
            min: 1,
            max: 2147483647,
            default: 16,
            memory: false,
            percent: false,
        },
    ),
    d(
        "port",
        None,
        IMMUTABLE,
        Kind::Number {
            min: 0,
            max: 65535,
            default: 6379,
            memory: false,
            percent: false,
        },
    ),
    d(
        "io-threads",
        None,
        IMMUTABLE,
        Kind::Number {
            min: 1,
            max: 128,
            default: 1,
            memory: false,
            percent: false,
        },
    ),
    d(
        "auto-aof-rewrite-percentage",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 2147483647,
            default: 100,
            memory: false,
            percent: false,
        },
    ),
    d(
        "cluster-replica-validity-factor",
        Some("cluster-slave-validity-factor"),
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 2147483647,
            default: 10,
            memory: false,
            percent: false,
        },
    ),
    d(
        "list-max-listpack-size",
        Some("list-max-ziplist-size"),
        MUTABLE,
        Kind::Number {
            min: -2147483648,
            max: 2147483647,
            default: -2,
            memory: false,
            percent: false,
        },
    ),
    d(
        "tcp-keepalive",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 2147483647,
            default: 300,
            memory: false,
            percent: false,
        },
    ),
    d(
        "cluster-migration-barrier",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 2147483647,
            default: 1,
            memory: false,
            percent: false,
        },
    ),
    d(
        "active-defrag-cycle-min",
        None,
        MUTABLE,
        Kind::Number {
            min: 1,
            max: 99,
            default: 1,
            memory: false,
            percent: false,
        },
    ),
    d(
        "active-defrag-cycle-max",
        None,
        MUTABLE,
        Kind::Number {
            min: 1,
            max: 99,
            default: 25,
            memory: false,
            percent: false,
        },
    ),
    d(
        "active-defrag-threshold-lower",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 1000,
            default: 10,
            memory: false,
            percent: false,
        },
    ),
    d(
        "active-defrag-threshold-upper",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 1000,
            default: 100,
            memory: false,
            percent: false,
        },
    ),
    d(
        "lfu-log-factor",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 2147483647,
            default: 10,
            memory: false,
            percent: false,
        },
    ),
    d(
        "lfu-decay-time",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 2147483647,
            default: 1,
            memory: false,
            percent: false,
        },
    ),
    d(
        "replica-priority",
        Some("slave-priority"),
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 2147483647,
            default: 100,
            memory: false,
            percent: false,
        },
    ),
    d(
        "repl-diskless-sync-delay",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 2147483647,
            default: 5,
            memory: false,
            percent: false,
        },
    ),
    d(
        "maxmemory-samples",
        None,
        MUTABLE,
        Kind::Number {
            min: 1,
            max: 2147483647,
            default: 5,
            memory: false,
            percent: false,
        },
    ),
    d(
        "maxmemory-eviction-tenacity",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 100,
            default: 10,
            memory: false,
            percent: false,
        },
    ),
    d(
        "timeout",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 2147483647,
            default: 0,
            memory: false,
            percent: false,
        },
    ),
    d(
        "replica-announce-port",
        Some("slave-announce-port"),
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 65535,
            default: 0,
            memory: false,
            percent: false,
        },
    ),
    d(
        "tcp-backlog",
        None,
        IMMUTABLE,
        Kind::Number {
            min: 0,
            max: 2147483647,
            default: 511,
            memory: false,
            percent: false,
        },
    ),
    d(
        "cluster-port",
        None,
        IMMUTABLE,
        Kind::Number {
            min: 0,
            max: 65535,
            default: 0,
            memory: false,
            percent: false,
        },
    ),
    d(
        "cluster-announce-bus-port",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 65535,
            default: 0,
            memory: false,
            percent: false,
        },
    ),
    d(
        "cluster-announce-port",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 65535,
            default: 0,
            memory: false,
            percent: false,
        },
    ),
    d(
        "cluster-announce-tls-port",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 65535,
            default: 0,
            memory: false,
            percent: false,
        },
    ),
    d(
        "repl-timeout",
        None,
        MUTABLE,
        Kind::Number {
            min: 1,
            max: 2147483647,
            default: 60,
            memory: false,
            percent: false,
        },
    ),
    d(
        "repl-ping-replica-period",
        Some("repl-ping-slave-period"),
        MUTABLE,
        Kind::Number {
            min: 1,
            max: 2147483647,
            default: 10,
            memory: false,
            percent: false,
        },
    ),
    d(
        "list-compress-depth",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 2147483647,
            default: 0,
            memory: false,
            percent: false,
        },
    ),
    d(
        "rdb-key-save-delay",
        None,
        HIDDEN,
        Kind::Number {
            min: -2147483648,
            max: 2147483647,
            default: 0,
            memory: false,
            percent: false,
        },
    ),
    d(
        "key-load-delay",
        None,
        HIDDEN,
        Kind::Number {
            min: -2147483648,
            max: 2147483647,
            default: 0,
            memory: false,
            percent: false,
        },
    ),
    d(
        "active-expire-effort",
        None,
        MUTABLE,
        Kind::Number {
            min: 1,
            max: 10,
            default: 1,
            memory: false,
            percent: false,
        },
    ),
    d(
        "hz",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 2147483647,
            default: 10,
            memory: false,
            percent: false,
        },
    ),
    d(
        "min-replicas-to-write",
        Some("min-slaves-to-write"),
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 2147483647,
            default: 0,
            memory: false,
            percent: false,
        },
    ),
    d(
        "min-replicas-max-lag",
        Some("min-slaves-max-lag"),
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 2147483647,
            default: 10,
            memory: false,
            percent: false,
        },
    ),
    d(
        "watchdog-period",
        None,
        HIDDEN,
        Kind::Number {
            min: 0,
            max: 2147483647,
            default: 0,
            memory: false,
            percent: false,
        },
    ),
    d(
        "shutdown-timeout",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 2147483647,
            default: 10,
            memory: false,
            percent: false,
        },
    ),
    d(
        "repl-diskless-sync-max-replicas",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 2147483647,
            default: 0,
            memory: false,
            percent: false,
        },
    ),
    d(
        "maxclients",
        None,
        MUTABLE,
        Kind::Number {
            min: 1,
            max: 4294967295,
            default: 10000,
            memory: false,
            percent: false,
        },
    ),
    d(
        "unixsocketperm",
        None,
        IMMUTABLE,
        Kind::Number {
            min: 0,
            max: 511,
            default: 0,
            memory: false,
            percent: false,
        },
    ),
    d(
        "socket-mark-id",
        None,
        IMMUTABLE,
        Kind::Number {
            min: 0,
            max: 4294967295,
            default: 0,
            memory: false,
            percent: false,
        },
    ),
    d(
        "active-defrag-max-scan-fields",
        None,
        MUTABLE,
        Kind::Number {
            min: 1,
            max: 9223372036854775807,
            default: 1000,
            memory: false,
            percent: false,
        },
    ),
    d(
        "slowlog-max-len",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 9223372036854775807,
            default: 128,
            memory: false,
            percent: false,
        },
    ),
    d(
        "acllog-max-len",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 9223372036854775807,
            default: 128,
            memory: false,
            percent: false,
        },
    ),
    d(
        "busy-reply-threshold",
        Some("lua-time-limit"),
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 9223372036854775807,
            default: 5000,
            memory: false,
            percent: false,
        },
    ),
    d(
        "cluster-node-timeout",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 9223372036854775807,
            default: 15000,
            memory: false,
            percent: false,
        },
    ),
    d(
        "slowlog-log-slower-than",
        None,
        MUTABLE,
        Kind::Number {
            min: -1,
            max: 9223372036854775807,
            default: 10000,
            memory: false,
            percent: false,
        },
    ),
    d(
        "latency-monitor-threshold",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 9223372036854775807,
            default: 0,
            memory: false,
            percent: false,
        },
    ),
    d(
        "proto-max-bulk-len",
        None,
        MUTABLE,
        Kind::Number {
            min: 1048576,
            max: 9223372036854775807,
            default: 536870912,
            memory: true,
            percent: false,
        },
    ),
    d(
        "stream-node-max-entries",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 9223372036854775807,
            default: 100,
            memory: false,
            percent: false,
        },
    ),
    d(
        "repl-backlog-size",
        None,
        MUTABLE,
        Kind::Number {
            min: 1,
            max: 9223372036854775807,
            default: 1048576,
            memory: true,
            percent: false,
        },
    ),
    d(
        "maxmemory",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 18446744073709551615,
            default: 0,
            memory: true,
            percent: false,
        },
    ),
    d(
        "cluster-link-sendbuf-limit",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 18446744073709551615,
            default: 0,
            memory: true,
            percent: false,
        },
    ),
    d(
        "hash-max-listpack-entries",
        Some("hash-max-ziplist-entries"),
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 9223372036854775807,
            default: 512,
            memory: false,
            percent: false,
        },
    ),
    d(
        "set-max-intset-entries",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 9223372036854775807,
            default: 512,
            memory: false,
            percent: false,
        },
    ),
    d(
        "zset-max-listpack-entries",
        Some("zset-max-ziplist-entries"),
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 9223372036854775807,
            default: 128,
            memory: false,
            percent: false,
        },
    ),
    d(
        "active-defrag-ignore-bytes",
        None,
        MUTABLE,
        Kind::Number {
            min: 1,
            max: 9223372036854775807,
            default: 104857600,
            memory: true,
            percent: false,
        },
    ),
    d(
        "hash-max-listpack-value",
        Some("hash-max-ziplist-value"),
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 9223372036854775807,
            default: 64,
            memory: true,
            percent: false,
        },
    ),
    d(
        "stream-node-max-bytes",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 9223372036854775807,
            default: 4096,
            memory: true,
            percent: false,
        },
    ),
    d(
        "zset-max-listpack-value",
        Some("zset-max-ziplist-value"),
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 9223372036854775807,
            default: 64,
            memory: true,
            percent: false,
        },
    ),
    d(
        "hll-sparse-max-bytes",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 9223372036854775807,
            default: 3000,
            memory: true,
            percent: false,
        },
    ),
    d(
        "tracking-table-max-keys",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 9223372036854775807,
            default: 1000000,
            memory: false,
            percent: false,
        },
    ),
    d(
        "client-query-buffer-limit",
        None,
        MUTABLE,
        Kind::Number {
            min: 1048576,
            max: 9223372036854775807,
            default: 1073741824,
            memory: true,
            percent: false,
        },
    ),
    d(
        "maxmemory-clients",
        None,
        MUTABLE,
        Kind::Number {
            min: -100,
            max: 9223372036854775807,
            default: 0,
            memory: true,
            percent: true,
        },
    ),
    d(
        "repl-backlog-ttl",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 9223372036854775807,
            default: 3600,
            memory: false,
            percent: false,
        },
    ),
    d(
        "auto-aof-rewrite-min-size",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 9223372036854775807,
            default: 67108864,
            memory: true,
            percent: false,
        },
    ),
    d(
        "loading-process-events-interval-bytes",
        None,
        HIDDEN,
        Kind::Number {
            min: 1024,
            max: 2147483647,
            default: 2097152,
            memory: false,
            percent: false,
        },
    ),
    d(
        "tls-port",
        None,
        IMMUTABLE,
        Kind::Number {
            min: 0,
            max: 65535,
            default: 0,
            memory: false,
            percent: false,
        },
    ),
    d(
        "tls-session-cache-size",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 2147483647,
            default: 20480,
            memory: false,
            percent: false,
        },
    ),
    d(
        "tls-session-cache-timeout",
        None,
        MUTABLE,
        Kind::Number {
            min: 0,
            max: 2147483647,
            default: 300,
            memory: false,
            percent: false,
        },
    ),
    d("tls-cluster", None, MUTABLE, Kind::Bool(false)),
    d("tls-replication", None, MUTABLE, Kind::Bool(false)),
    d(
        "tls-auth-clients",
        None,
        IMMUTABLE,
        Kind::Enum {
            values: &["no", "yes", "optional"],
            default: "yes",
        },
    ),
    d(
        "tls-prefer-server-ciphers",
        None,
        MUTABLE,
        Kind::Bool(false),
    ),
    d("tls-session-caching", None, MUTABLE, Kind::Bool(true)),
    d(
        "tls-cert-file",
        None,
        IMMUTABLE,
        Kind::Text {
            default: None,
            empty_is_none: true,
        },
    ),
    d(
        "tls-key-file",
        None,
        IMMUTABLE,
        Kind::Text {
            default: None,
            empty_is_none: true,
        },
    ),
    d(
        "tls-key-file-pass",
        None,
        MUTABLE,
        Kind::Text {
            default: None,
            empty_is_none: true,
        },
    ),
    d(
        "tls-client-cert-file",
        None,
        MUTABLE,
        Kind::Text {
            default: None,
            empty_is_none: true,
        },
    ),
    d(
        "tls-client-key-file",
        None,
        MUTABLE,
        Kind::Text {
            default: None,
            empty_is_none: true,
        },
    ),
    d(
        "tls-client-key-file-pass",
        None,
        MUTABLE,
        Kind::Text {
            default: None,
            empty_is_none: true,
        },
    ),
    d(
        "tls-dh-params-file",
        None,
        MUTABLE,
        Kind::Text {
            default: None,
            empty_is_none: true,
        },
    ),
    d(
        "tls-ca-cert-file",
        None,
        IMMUTABLE,
        Kind::Text {
            default: None,
            empty_is_none: true,
        },
    ),
    d(
        "tls-ca-cert-dir",
        None,
        MUTABLE,
        Kind::Text {
            default: None,
            empty_is_none: true,
        },
    ),
    d(
        "tls-protocols",
        None,
        MUTABLE,
        Kind::Text {
            default: None,
            empty_is_none: true,
        },
    ),
    d(
        "tls-ciphers",
        None,
        MUTABLE,
        Kind::Text {
            default: None,
            empty_is_none: true,
        },
    ),
    d(
        "tls-ciphersuites",
        None,
        MUTABLE,
        Kind::Text {
            default: None,
            empty_is_none: true,
        },
    ),
    d("dir", None, PROTECTED | DENY_LOADING, Kind::Special),
    d("save", None, MULTI_ARG, Kind::Special),
    d("client-output-buffer-limit", None, MULTI_ARG, Kind::Special),
    d("oom-score-adj-values", None, MULTI_ARG, Kind::Special),
    d("notify-keyspace-events", None, MUTABLE, Kind::Special),
    d("bind", None, IMMUTABLE | MULTI_ARG, Kind::Special),
    d(
        "replicaof",
        Some("slaveof"),
        IMMUTABLE | MULTI_ARG,
        Kind::Special,
    ),
    d(
        "latency-tracking-info-percentiles",
        None,
        MULTI_ARG,
        Kind::Special,
    ),
];
