//! Reading and writing directives by name. One path serves the configuration file, the
//! command line and CONFIG GET / SET / REWRITE: a directive's arguments are checked against
//! its [`Kind`] with Redis's error texts, then stored in its typed field of [`Config`] when
//! Shoal acts on it, or kept as text when it does not.

pub use super::catalog::Spec;
use super::catalog::{Kind, CATALOG, HIDDEN, IMMUTABLE, MULTI_ARG, PROTECTED, SENSITIVE};
use super::{Access, Config, Fsync, LogLevel, OutputLimit, TlsAuthClients};
use std::path::PathBuf;

/// Finds a directive by name or alias, ignoring case; also returns the name it matched
/// under (the alias, when the alias was used).
pub fn lookup(name: &[u8]) -> Option<(&'static Spec, &'static str)> {
    CATALOG.iter().find_map(|spec| {
        if spec.name.as_bytes().eq_ignore_ascii_case(name) {
            Some((spec, spec.name))
        } else {
            spec.alias
                .filter(|a| a.as_bytes().eq_ignore_ascii_case(name))
                .map(|a| (spec, a))
        }
    })
}

/// CONFIG SET refuses it.
pub fn is_immutable(spec: &Spec) -> bool {
    spec.flags & IMMUTABLE != 0
}

/// CONFIG SET refuses it unless `enable-protected-configs` allows.
pub fn is_protected(spec: &Spec) -> bool {
    spec.flags & PROTECTED != 0
}

/// MONITOR and SLOWLOG hide its value.
pub fn is_sensitive(spec: &Spec) -> bool {
    spec.flags & SENSITIVE != 0
}

/// CONFIG GET patterns do not match it (only its exact name does).
pub fn is_hidden(spec: &Spec) -> bool {
    spec.flags & HIDDEN != 0
}

/// It takes several arguments (`save 900 1 300 10`).
pub fn is_multi_arg(spec: &Spec) -> bool {
    spec.flags & MULTI_ARG != 0
}

/// A checked value of a plain (non-special) directive.
enum Value {
    Bool(bool),
    Number(i128),
    Text(Option<String>),
    Enum(Vec<&'static str>),
}

fn text(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).into_owned()
}

/// Redis's `string2ll`: an optional `-`, digits, no `+`, no leading zeros, no spaces.
fn strict_int(arg: &[u8]) -> Option<i128> {
    crate::keyspace::value::parse_i64_strict(arg).map(i128::from)
}

/// Redis's `memtoull`: digits and an optional unit (b, k, kb, m, mb, g, gb); "" is 0.
pub fn parse_memory(arg: &[u8]) -> Option<u128> {
    let text = std::str::from_utf8(arg).ok()?.to_ascii_lowercase();
    let units: [(&str, u128); 7] = [
        ("kb", 1024),
        ("mb", 1024 * 1024),
        ("gb", 1024 * 1024 * 1024),
        ("b", 1),
        ("k", 1000),
        ("m", 1000 * 1000),
        ("g", 1000 * 1000 * 1000),
    ];
    let (digits, unit) = units
        .iter()
        .find_map(|(suffix, mul)| text.strip_suffix(suffix).map(|d| (d, *mul)))
        .unwrap_or((&text, 1));
    if digits.is_empty() {
        return (text.is_empty()).then_some(0);
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u128>().ok().map(|n| n.wrapping_mul(unit))
}

fn parse_value(spec: &Spec, args: &[&[u8]]) -> Result<Value, String> {
    let single = || match args {
        [arg] => Ok(*arg),
        _ => Err("wrong number of arguments".to_string()),
    };
    match &spec.kind {
        Kind::Bool(_) => {
            let arg = single()?;
            if arg.eq_ignore_ascii_case(b"yes") {
                Ok(Value::Bool(true))
            } else if arg.eq_ignore_ascii_case(b"no") {
                Ok(Value::Bool(false))
            } else {
                Err("argument must be 'yes' or 'no'".into())
            }
        }
        Kind::Number {
            min,
            max,
            memory,
            percent,
            ..
        } => {
            let arg = single()?;
            let n = if *percent && arg.ends_with(b"%") {
                // Stored negated, as Redis stores percent values.
                let p = strict_int(&arg[..arg.len() - 1])
                    .filter(|p| *p >= 0)
                    .ok_or("argument must be a memory or percent value")?;
                -p
            } else if *memory {
                let n = parse_memory(arg).ok_or(if *percent {
                    "argument must be a memory or percent value"
                } else {
                    "argument must be a memory value"
                })?;
                i128::try_from(n).map_err(|_| "argument must be a memory value")?
            } else {
                strict_int(arg).ok_or("argument couldn't be parsed into an integer")?
            };
            if n < *min || n > *max {
                // Redis words unsigned ranges with %llu: a negative value wrapped around.
                return Err(format!(
                    "argument must be between {min} and {max} inclusive"
                ));
            }
            Ok(Value::Number(n))
        }
        Kind::Text { empty_is_none, .. } => {
            let arg = single()?;
            Ok(Value::Text(if arg.is_empty() && *empty_is_none {
                None
            } else {
                Some(text(arg))
            }))
        }
        Kind::Enum { values, .. } => {
            let multi = spec.flags & MULTI_ARG != 0;
            if !multi && args.len() != 1 {
                return Err("wrong number of arguments".into());
            }
            let mut chosen = Vec::new();
            for arg in args {
                let value = values
                    .iter()
                    .find(|v| v.as_bytes().eq_ignore_ascii_case(arg))
                    .ok_or_else(|| {
                        let mut list = values.join(", ");
                        list.truncate(255);
                        format!("argument(s) must be one of the following: {list}")
                    })?;
                chosen.push(*value);
            }
            Ok(Value::Enum(chosen))
        }
        Kind::Special => Err("internal error: special directive".into()),
    }
}

/// The CONFIG GET text of a plain value.
fn format_value(spec: &Spec, value: &Value) -> String {
    match value {
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::Number(n) => match spec.kind {
            Kind::Number { percent: true, .. } if *n < 0 => format!("{}%", -n),
            _ => n.to_string(),
        },
        Value::Text(t) => t.clone().unwrap_or_default(),
        Value::Enum(v) => v.join(" "),
    }
}

/// The default value of a plain directive, as CONFIG GET shows it.
pub fn default_text(spec: &Spec) -> String {
    match &spec.kind {
        Kind::Bool(b) => format_value(spec, &Value::Bool(*b)),
        Kind::Number { default, .. } => format_value(spec, &Value::Number(*default)),
        Kind::Text { default, .. } => default.unwrap_or_default().to_string(),
        Kind::Enum { default, .. } => (*default).to_string(),
        Kind::Special => String::new(),
    }
}

/// Sets directive `spec` from `args`; the error is Redis's reason text.
pub fn set(config: &mut Config, spec: &'static Spec, args: &[&[u8]]) -> Result<(), String> {
    if let Kind::Special = spec.kind {
        return set_special(config, spec.name, args);
    }
    let value = parse_value(spec, args)?;
    if crate::affinity::Threads::DIRECTIVES.contains(&spec.name) {
        if let Some(list) = optional_text(&value) {
            list.parse::<crate::affinity::CpuList>()?;
        }
    }
    if !set_bound(config, spec.name, &value)? {
        let text = format_value(spec, &value);
        config.other.insert(spec.name, text);
    }
    Ok(())
}

/// The value of directive `spec` as CONFIG GET shows it.
pub fn get(config: &Config, spec: &Spec) -> String {
    get_bound(config, spec.name).unwrap_or_else(|| {
        config
            .other
            .get(spec.name)
            .cloned()
            .unwrap_or_else(|| default_text(spec))
    })
}

fn number<T: TryFrom<i128>>(value: &Value) -> Result<T, String> {
    match value {
        Value::Number(n) => T::try_from(*n).map_err(|_| "argument out of range".to_string()),
        _ => Err("internal error: not a number".into()),
    }
}

fn flag(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        _ => Err("internal error: not a boolean".into()),
    }
}

fn choice(value: &Value) -> &'static str {
    match value {
        Value::Enum(v) => v.first().copied().unwrap_or(""),
        _ => "",
    }
}

fn optional_text(value: &Value) -> Option<String> {
    match value {
        Value::Text(t) => t.clone(),
        _ => None,
    }
}

/// Stores a checked value in the typed field of a directive Shoal acts on; false for the
/// others.
fn set_bound(c: &mut Config, name: &str, v: &Value) -> Result<bool, String> {
    match name {
        "port" => c.port = number(v)?,
        "protected-mode" => c.protected_mode = flag(v)?,
        "requirepass" => c.requirepass = optional_text(v),
        "databases" => c.databases = number(v)?,
        "timeout" => c.timeout_secs = number(v)?,
        "tcp-keepalive" => c.tcp_keepalive_secs = number(v)?,
        "maxclients" => c.maxclients = number(v)?,
        "io-threads" => c.io_threads = Some(number(v)?),
        "proto-max-bulk-len" => c.proto_max_bulk_len = number(v)?,
        "client-query-buffer-limit" => c.query_buffer_bytes_max = number(v)?,
        "slowlog-log-slower-than" => c.slowlog_log_slower_than_us = number(v)?,
        "slowlog-max-len" => c.slowlog_len_max = number(v)?,
        "latency-monitor-threshold" => c.latency_monitor_threshold_ms = number(v)?,
        "latency-tracking" => c.latency_tracking = flag(v)?,
        // Redis clamps hz to 1..=500 rather than refusing.
        "hz" => c.hz = number::<i64>(v)?.clamp(1, 500) as u32,
        "hash-max-listpack-entries" => c.encoding.hash_max_listpack_entries = number(v)?,
        "hash-max-listpack-value" => c.encoding.hash_max_listpack_value = number(v)?,
        "set-max-intset-entries" => c.encoding.set_max_intset_entries = number(v)?,
        "zset-max-listpack-entries" => c.encoding.zset_max_listpack_entries = number(v)?,
        "zset-max-listpack-value" => c.encoding.zset_max_listpack_value = number(v)?,
        "repl-backlog-size" => c.backlog_bytes_max = number(v)?,
        "cluster-enabled" => c.cluster_enabled = flag(v)?,
        "enable-debug-command" => c.enable_debug_command = Access::from_name(choice(v)),
        "enable-protected-configs" => {
            c.enable_protected_configs = Access::from_name(choice(v));
        }
        "loglevel" => c.loglevel = LogLevel::from_name(choice(v)),
        "logfile" => c.logfile = optional_text(v).unwrap_or_default(),
        "daemonize" => c.daemonize = flag(v)?,
        "pidfile" => c.pidfile = optional_text(v).map(PathBuf::from),
        "rdbcompression" => c.rdb_compression = flag(v)?,
        "appendonly" => c.append_only = flag(v)?,
        "stop-writes-on-bgsave-error" => c.stop_writes_on_bgsave_error = flag(v)?,
        "appendfsync" => c.append_fsync = Fsync::from_name(choice(v)),
        "appendfilename" => c.append_filename = optional_text(v).unwrap_or_default(),
        "appenddirname" => c.append_dirname = optional_text(v).unwrap_or_default(),
        "aof-use-rdb-preamble" => c.aof_use_rdb_preamble = flag(v)?,
        "aof-load-truncated" => c.aof_load_truncated = flag(v)?,
        "auto-aof-rewrite-percentage" => c.aof_rewrite_percentage = number(v)?,
        "auto-aof-rewrite-min-size" => c.aof_rewrite_min_bytes = number(v)?,
        "rdbchecksum" => c.rdb_checksum = flag(v)?,
        "dbfilename" => {
            let name = optional_text(v).unwrap_or_default();
            if name.contains('/') {
                return Err("dbfilename can't be a path, just a filename".into());
            }
            c.dbfilename = name;
        }
        "masterauth" => c.masterauth = optional_text(v),
        "masteruser" => c.masteruser = optional_text(v),
        "repl-diskless-sync-delay" => c.repl_diskless_sync_delay_secs = number(v)?,
        "repl-diskless-sync-max-replicas" => c.repl_diskless_sync_max_replicas = number(v)?,
        "replica-read-only" => c.replica_read_only = flag(v)?,
        "replica-serve-stale-data" => c.replica_serve_stale_data = flag(v)?,
        "min-replicas-to-write" => c.min_replicas_to_write = number(v)?,
        "min-replicas-max-lag" => c.min_replicas_max_lag_secs = number(v)?,
        "repl-ping-replica-period" => c.repl_ping_period_secs = number(v)?,
        "repl-timeout" => c.repl_timeout_secs = number(v)?,
        "replica-priority" => c.replica_priority = number(v)?,
        "cluster-replica-no-failover" => c.cluster_replica_no_failover = flag(v)?,
        "cluster-replica-validity-factor" => c.cluster_replica_validity_factor = number(v)?,
        "cluster-allow-replica-migration" => c.cluster_allow_replica_migration = flag(v)?,
        "cluster-migration-barrier" => c.cluster_migration_barrier = number(v)?,
        "repl-backlog-ttl" => c.repl_backlog_ttl_secs = number(v)?,
        "cluster-port" => c.cluster_port = number(v)?,
        "cluster-config-file" => c.cluster_config_file = optional_text(v).unwrap_or_default(),
        "cluster-node-timeout" => c.cluster_node_timeout_ms = number(v)?,
        "cluster-require-full-coverage" => c.cluster_require_full_coverage = flag(v)?,
        "cluster-allow-reads-when-down" => c.cluster_allow_reads_when_down = flag(v)?,
        "cluster-proxy-mode" => c.cluster_proxy_mode = flag(v)?,
        "cluster-announce-ip" => c.cluster_announce_ip = optional_text(v),
        "cluster-announce-port" => c.cluster_announce_port = number(v)?,
        "cluster-announce-bus-port" => c.cluster_announce_bus_port = number(v)?,
        "tls-port" => c.tls.port = number(v)?,
        "tls-cert-file" => c.tls.cert_file = optional_text(v).map(PathBuf::from),
        "tls-key-file" => c.tls.key_file = optional_text(v).map(PathBuf::from),
        "tls-ca-cert-file" => c.tls.ca_cert_file = optional_text(v).map(PathBuf::from),
        "tls-auth-clients" => c.tls.auth_clients = TlsAuthClients::from_name(choice(v)),
        _ => return Ok(false),
    }
    Ok(true)
}

/// The CONFIG GET text of a directive Shoal acts on; `None` for the others.
fn get_bound(c: &Config, name: &str) -> Option<String> {
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    let path = |p: &Option<PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    Some(match name {
        "port" => c.port.to_string(),
        "bind" => c.bind.join(" "),
        "protected-mode" => yes_no(c.protected_mode),
        "requirepass" => c.requirepass.clone().unwrap_or_default(),
        "masterauth" => c.masterauth.clone().unwrap_or_default(),
        "masteruser" => c.masteruser.clone().unwrap_or_default(),
        "repl-diskless-sync-delay" => c.repl_diskless_sync_delay_secs.to_string(),
        "repl-diskless-sync-max-replicas" => c.repl_diskless_sync_max_replicas.to_string(),
        "replica-read-only" => yes_no(c.replica_read_only),
        "replica-serve-stale-data" => yes_no(c.replica_serve_stale_data),
        "min-replicas-to-write" => c.min_replicas_to_write.to_string(),
        "min-replicas-max-lag" => c.min_replicas_max_lag_secs.to_string(),
        "repl-ping-replica-period" => c.repl_ping_period_secs.to_string(),
        "repl-timeout" => c.repl_timeout_secs.to_string(),
        "replica-priority" => c.replica_priority.to_string(),
        "cluster-replica-no-failover" => yes_no(c.cluster_replica_no_failover),
        "cluster-replica-validity-factor" => c.cluster_replica_validity_factor.to_string(),
        "cluster-allow-replica-migration" => yes_no(c.cluster_allow_replica_migration),
        "cluster-migration-barrier" => c.cluster_migration_barrier.to_string(),
        "repl-backlog-ttl" => c.repl_backlog_ttl_secs.to_string(),
        "cluster-port" => c.cluster_port.to_string(),
        "cluster-config-file" => c.cluster_config_file.clone(),
        "cluster-node-timeout" => c.cluster_node_timeout_ms.to_string(),
        "cluster-require-full-coverage" => yes_no(c.cluster_require_full_coverage),
        "cluster-allow-reads-when-down" => yes_no(c.cluster_allow_reads_when_down),
        "cluster-proxy-mode" => yes_no(c.cluster_proxy_mode),
        "cluster-announce-ip" => c.cluster_announce_ip.clone().unwrap_or_default(),
        "cluster-announce-port" => c.cluster_announce_port.to_string(),
        "cluster-announce-bus-port" => c.cluster_announce_bus_port.to_string(),
        "databases" => c.databases.to_string(),
        "timeout" => c.timeout_secs.to_string(),
        "tcp-keepalive" => c.tcp_keepalive_secs.to_string(),
        "maxclients" => c.maxclients.to_string(),
        "io-threads" => c.worker_count().to_string(),
        "proto-max-bulk-len" => c.proto_max_bulk_len.to_string(),
        "client-query-buffer-limit" => c.query_buffer_bytes_max.to_string(),
        "client-output-buffer-limit" => {
            let o = &c.output_limits;
            let class = |name: &str, l: &OutputLimit| {
                format!("{name} {} {} {}", l.hard_bytes, l.soft_bytes, l.soft_secs)
            };
            format!(
                "{} {} {}",
                class("normal", &o.normal),
                class("slave", &o.replica),
                class("pubsub", &o.pubsub)
            )
        }
        "slowlog-log-slower-than" => c.slowlog_log_slower_than_us.to_string(),
        "slowlog-max-len" => c.slowlog_len_max.to_string(),
        "latency-monitor-threshold" => c.latency_monitor_threshold_ms.to_string(),
        "latency-tracking" => yes_no(c.latency_tracking),
        "latency-tracking-info-percentiles" => c
            .latency_tracking_percentiles
            .iter()
            .map(|p| crate::reply::format_double(*p))
            .collect::<Vec<_>>()
            .join(" "),
        "hz" => c.hz.to_string(),
        "hash-max-listpack-entries" => c.encoding.hash_max_listpack_entries.to_string(),
        "hash-max-listpack-value" => c.encoding.hash_max_listpack_value.to_string(),
        "set-max-intset-entries" => c.encoding.set_max_intset_entries.to_string(),
        "zset-max-listpack-entries" => c.encoding.zset_max_listpack_entries.to_string(),
        "zset-max-listpack-value" => c.encoding.zset_max_listpack_value.to_string(),
        "repl-backlog-size" => c.backlog_bytes_max.to_string(),
        "cluster-enabled" => yes_no(c.cluster_enabled),
        "enable-debug-command" => c.enable_debug_command.name().into(),
        "enable-protected-configs" => c.enable_protected_configs.name().into(),
        "loglevel" => c.loglevel.name().into(),
        "logfile" => c.logfile.clone(),
        "daemonize" => yes_no(c.daemonize),
        "pidfile" => path(&c.pidfile),
        "dbfilename" => c.dbfilename.clone(),
        "rdbcompression" => yes_no(c.rdb_compression),
        "appendonly" => yes_no(c.append_only),
        "stop-writes-on-bgsave-error" => yes_no(c.stop_writes_on_bgsave_error),
        "appendfsync" => c.append_fsync.name().into(),
        "appendfilename" => c.append_filename.clone(),
        "appenddirname" => c.append_dirname.clone(),
        "aof-use-rdb-preamble" => yes_no(c.aof_use_rdb_preamble),
        "aof-load-truncated" => yes_no(c.aof_load_truncated),
        "auto-aof-rewrite-percentage" => c.aof_rewrite_percentage.to_string(),
        "auto-aof-rewrite-min-size" => c.aof_rewrite_min_bytes.to_string(),
        "rdbchecksum" => yes_no(c.rdb_checksum),
        "dir" => c.dir.display().to_string(),
        "save" => c
            .save
            .iter()
            .map(|(secs, changes)| format!("{secs} {changes}"))
            .collect::<Vec<_>>()
            .join(" "),
        "notify-keyspace-events" => c.notify_keyspace_events.clone(),
        "tls-port" => c.tls.port.to_string(),
        "tls-cert-file" => path(&c.tls.cert_file),
        "tls-key-file" => path(&c.tls.key_file),
        "tls-ca-cert-file" => path(&c.tls.ca_cert_file),
        "tls-auth-clients" => c.tls.auth_clients.name().into(),
        _ => return None,
    })
}

/// The directives with a syntax of their own.
fn set_special(c: &mut Config, name: &str, args: &[&[u8]]) -> Result<(), String> {
    match name {
        "dir" => {
            let [dir] = args else {
                return Err("wrong number of arguments".into());
            };
            let dir = PathBuf::from(text(dir));
            let dir = std::fs::canonicalize(&dir).map_err(|e| os_reason(&e))?;
            if !dir.is_dir() {
                return Err("Not a directory".into());
            }
            c.dir = dir;
        }
        "save" => c.save = parse_save(args)?,
        "bind" => {
            let addresses: Vec<String> = match args {
                [b""] => Vec::new(),
                _ => args.iter().map(|a| text(a)).collect(),
            };
            if addresses.len() > 16 {
                return Err("Too many bind addresses specified.".into());
            }
            c.bind = addresses;
        }
        "client-output-buffer-limit" => parse_output_limits(c, args)?,
        "notify-keyspace-events" => {
            let [events] = args else {
                return Err("wrong number of arguments".into());
            };
            c.notify_keyspace_events = canonical_events(events)?;
        }
        "latency-tracking-info-percentiles" => {
            let mut percentiles = Vec::new();
            for arg in args.iter().filter(|a| !a.is_empty()) {
                let p = std::str::from_utf8(arg)
                    .ok()
                    .and_then(|s| s.parse::<f64>().ok())
                    .filter(|p| (0.0..=100.0).contains(p))
                    .ok_or("latency-tracking-info-percentiles must be a list of percentiles between 0 and 100")?;
                percentiles.push(p);
            }
            c.latency_tracking_percentiles = percentiles;
        }
        "replicaof" => {
            let value = match args {
                [host, port] if is_no_one(host, port) => String::new(),
                [host, port] => {
                    let port = std::str::from_utf8(port)
                        .ok()
                        .and_then(|p| p.parse::<u16>().ok())
                        .ok_or("Invalid master port")?;
                    format!("{} {port}", text(host))
                }
                _ => return Err("wrong number of arguments".into()),
            };
            c.other.insert("replicaof", value);
        }
        "oom-score-adj-values" => {
            if args.len() != 3 {
                return Err("wrong number of arguments".into());
            }
            let mut values = Vec::new();
            for arg in args {
                let n = strict_int(arg)
                    .filter(|n| (-2000..=2000).contains(n))
                    .ok_or(
                        "Invalid oom-score-adj-values, elements must be between -2000 and 2000.",
                    )?;
                values.push(n.to_string());
            }
            c.other.insert("oom-score-adj-values", values.join(" "));
        }
        _ => return Err("internal error: unknown special directive".into()),
    }
    Ok(())
}

fn is_no_one(host: &[u8], port: &[u8]) -> bool {
    host.eq_ignore_ascii_case(b"no") && port.eq_ignore_ascii_case(b"one")
}

/// The message of an OS error without Rust's "(os error N)" suffix, as strerror prints it.
pub(crate) fn os_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// `save` points: `""` clears them; otherwise pairs of seconds (at least 1) and changes.
pub fn parse_save(args: &[&[u8]]) -> Result<Vec<(u64, u64)>, String> {
    if let [only] = args {
        if only.is_empty() {
            return Ok(Vec::new());
        }
    }
    let invalid = || "Invalid save parameters".to_string();
    if !args.len().is_multiple_of(2) {
        return Err(invalid());
    }
    args.chunks(2)
        .map(|pair| {
            let secs = strict_int(pair[0])
                .filter(|s| *s >= 1)
                .ok_or_else(invalid)?;
            let changes = strict_int(pair[1])
                .filter(|c| *c >= 0)
                .ok_or_else(invalid)?;
            Ok((secs as u64, changes as u64))
        })
        .collect()
}

/// Groups of `<class> <hard> <soft> <seconds>`; classes not named keep their limits. All
/// groups are checked before any is applied.
fn parse_output_limits(c: &mut Config, args: &[&[u8]]) -> Result<(), String> {
    if args.is_empty() || !args.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.".into());
    }
    let mut next = c.output_limits;
    for group in args.chunks(4) {
        let class = group[0];
        let target = if class.eq_ignore_ascii_case(b"normal") {
            &mut next.normal
        } else if class.eq_ignore_ascii_case(b"slave") || class.eq_ignore_ascii_case(b"replica") {
            &mut next.replica
        } else if class.eq_ignore_ascii_case(b"pubsub") {
            &mut next.pubsub
        } else {
            return Err("Invalid client class specified in buffer limit configuration.".into());
        };
        let bad = || {
            "Error in hard, soft or soft_seconds setting in buffer limit configuration.".to_string()
        };
        let hard = parse_memory(group[1])
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(bad)?;
        let soft = parse_memory(group[2])
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(bad)?;
        let secs = std::str::from_utf8(group[3])
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .filter(|s| *s >= 0)
            .ok_or_else(bad)?;
        *target = OutputLimit {
            hard_bytes: hard,
            soft_bytes: soft,
            soft_secs: secs as u64,
        };
    }
    c.output_limits = next;
    Ok(())
}

/// `notify-keyspace-events` in Redis's canonical form: `A` for all the classes it covers,
/// else the class letters in Redis's order, then `K`, `E` and `m`.
fn canonical_events(events: &[u8]) -> Result<String, String> {
    const CLASSES: &str = "g$lshzxetd";
    let mut set = std::collections::BTreeSet::new();
    for &b in events {
        let c = b as char;
        match c {
            'A' => set.extend(CLASSES.chars()),
            'g' | '$' | 'l' | 's' | 'h' | 'z' | 'x' | 'e' | 'K' | 'E' | 't' | 'm' | 'd' | 'n' => {
                set.insert(c);
            }
            _ => return Err("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".into()),
        }
    }
    let mut out = String::new();
    if CLASSES.chars().all(|c| set.contains(&c)) {
        out.push('A');
    } else {
        out.extend(CLASSES.chars().filter(|c| set.contains(c)));
    }
    if set.contains(&'n') {
        out.push('n');
    }
    for c in ['K', 'E', 'm'] {
        if set.contains(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

/// Every name CONFIG GET knows (canonical names and aliases), with its spec.
pub fn names() -> impl Iterator<Item = (&'static str, &'static Spec)> {
    CATALOG
        .iter()
        .flat_map(|spec| std::iter::once((spec.name, spec)).chain(spec.alias.map(|a| (a, spec))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_by_name(c: &mut Config, name: &str, args: &[&[u8]]) -> Result<(), String> {
        let (spec, _) = lookup(name.as_bytes()).expect("known directive");
        set(c, spec, args)
    }

    fn get_by_name(c: &Config, name: &str) -> String {
        let (spec, _) = lookup(name.as_bytes()).expect("known directive");
        get(c, spec)
    }

    #[test]
    fn every_directive_has_a_readable_default() {
        let c = Config::server_defaults();
        assert_eq!(get_by_name(&c, "port"), "6379");
        assert_eq!(get_by_name(&c, "bind"), "127.0.0.1 -::1");
        assert_eq!(
            get_by_name(&c, "client-output-buffer-limit"),
            "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
        );
        assert_eq!(get_by_name(&c, "save"), "3600 1 300 100 60 10000");
        assert_eq!(get_by_name(&c, "maxmemory-policy"), "noeviction");
        assert_eq!(get_by_name(&c, "hash-max-ziplist-entries"), "512");
        assert_eq!(get_by_name(&c, "enable-debug-command"), "no");
        assert_eq!(get_by_name(&c, "appendfsync"), "everysec");
        for (name, spec) in names() {
            let _ = (name, get(&c, spec));
        }
    }

    #[test]
    fn values_are_checked_as_redis_checks_them() {
        let mut c = Config::server_defaults();
        assert_eq!(
            set_by_name(&mut c, "port", &[b"abc"]).unwrap_err(),
            "argument couldn't be parsed into an integer"
        );
        assert_eq!(
            set_by_name(&mut c, "port", &[b"70000"]).unwrap_err(),
            "argument must be between 0 and 65535 inclusive"
        );
        assert_eq!(
            set_by_name(&mut c, "protected-mode", &[b"true"]).unwrap_err(),
            "argument must be 'yes' or 'no'"
        );
        assert_eq!(
            set_by_name(&mut c, "loglevel", &[b"silent"]).unwrap_err(),
            "argument(s) must be one of the following: debug, verbose, notice, warning, nothing"
        );
        assert_eq!(
            set_by_name(&mut c, "maxmemory", &[b"1.5gb"]).unwrap_err(),
            "argument must be a memory value"
        );
        set_by_name(&mut c, "maxmemory", &[b"1gb"]).unwrap();
        assert_eq!(get_by_name(&c, "maxmemory"), "1073741824");
        set_by_name(&mut c, "hz", &[b"1000"]).unwrap();
        assert_eq!(get_by_name(&c, "hz"), "500");
        set_by_name(&mut c, "save", &[b""]).unwrap();
        assert_eq!(get_by_name(&c, "save"), "");
        set_by_name(
            &mut c,
            "client-output-buffer-limit",
            &[b"pubsub", b"64mb", b"16mb", b"120"],
        )
        .unwrap();
        assert!(
            get_by_name(&c, "client-output-buffer-limit").contains("pubsub 67108864 16777216 120")
        );
        set_by_name(&mut c, "notify-keyspace-events", &[b"KEA"]).unwrap();
        assert_eq!(get_by_name(&c, "notify-keyspace-events"), "AKE");
        set_by_name(&mut c, "notify-keyspace-events", &[b"Ex"]).unwrap();
        assert_eq!(get_by_name(&c, "notify-keyspace-events"), "xE");
        assert_eq!(
            set_by_name(&mut c, "io-threads", &[b"0"]).unwrap_err(),
            "argument must be between 1 and 128 inclusive"
        );
        set_by_name(&mut c, "io-threads", &[b"3"]).unwrap();
        assert_eq!(
            (get_by_name(&c, "io-threads"), c.worker_count()),
            ("3".into(), 3)
        );
        set_by_name(&mut c, "slave-read-only", &[b"no"]).unwrap();
        assert_eq!(get_by_name(&c, "replica-read-only"), "no");
    }

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory(b"1k"), Some(1000));
        assert_eq!(parse_memory(b"1KB"), Some(1024));
        assert_eq!(parse_memory(b"2mb"), Some(2 * 1024 * 1024));
        assert_eq!(parse_memory(b""), Some(0));
        assert_eq!(parse_memory(b"-1"), None);
        assert_eq!(parse_memory(b"mb"), None);
    }
}
