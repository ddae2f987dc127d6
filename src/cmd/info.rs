//! INFO: Redis's sections and field names, in Redis's order, so that tools that parse INFO
//! (redis-cli, monitoring agents, client libraries checking `redis_version`) read Shoal as
//! they read Redis. Fields about features Shoal does not have (forks, modules, Lua, active
//! defragmentation) are reported with the values Redis reports when they are idle.

use super::flags::*;
use super::{CmdResult, Command, KeySpec};
use crate::engine::clients::flag;
use crate::engine::ctx::Ctx;
use crate::engine::Engine;
use crate::process::{bytes_to_human, cpu_seconds, os_name, rss_bytes, total_memory_bytes};
use crate::pubsub::Kind;
use crate::reply::Reply;
use std::fmt::Write;
use std::sync::atomic::Ordering;

pub const COMMANDS: &[Command] = &[Command::new(
    "info",
    -1,
    LOADING | STALE,
    KeySpec::None,
    info,
)];

/// Every section, in the order Redis prints them.
const SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "commandstats",
    "errorstats",
    "latencystats",
    "cluster",
    "keyspace",
    "sentinel",
];

/// What `INFO` and `INFO default` print.
const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "errorstats",
    "cluster",
    "keyspace",
    "sentinel",
];

fn info(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let wanted = selected_sections(&argv[1..]);
    let mut text = String::new();
    let sentinel_mode = cx.engine.sentinel.get().is_some();
    let shown = |s: &&&str| wanted.contains(s) && (**s != "sentinel" || sentinel_mode);
    for section in SECTIONS.iter().filter(shown) {
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        write_section(cx.engine, section, &mut text);
    }
    Ok(Reply::Verbatim(text.as_bytes().into()))
}

/// The sections the arguments name (case-insensitive, unknown names ignored).
fn selected_sections(args: &[&[u8]]) -> Vec<&'static str> {
    if args.is_empty() {
        return DEFAULT_SECTIONS.to_vec();
    }
    let mut wanted = Vec::new();
    for arg in args {
        let arg = String::from_utf8_lossy(arg).to_ascii_lowercase();
        match arg.as_str() {
            "all" | "everything" => return SECTIONS.to_vec(),
            "default" => wanted.extend_from_slice(DEFAULT_SECTIONS),
            "module_list" => wanted.push("modules"),
            name => wanted.extend(SECTIONS.iter().filter(|s| **s == name)),
        }
    }
    wanted
}

/// Appends `name:value\r\n` lines.
struct Fields<'a>(&'a mut String);

impl Fields<'_> {
    fn put(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Self {
        let _ = write!(self.0, "{name}:{value}\r\n");
        self
    }
}

fn write_section(engine: &Engine, section: &str, out: &mut String) {
    let title = match section {
        "cpu" => "CPU".to_string(),
        other => {
            let mut t = other.to_string();
            t[..1].make_ascii_uppercase();
            t
        }
    };
    let _ = write!(out, "# {title}\r\n");
    let mut f = Fields(out);
    match section {
        "server" => server(engine, &mut f),
        "clients" => clients(engine, &mut f),
        "memory" => memory(engine, &mut f),
        "persistence" => persistence(engine, &mut f),
        "stats" => stats(engine, &mut f),
        "replication" => replication(engine, &mut f),
        "cpu" => cpu(&mut f),
        "commandstats" => commandstats(engine, &mut f),
        "errorstats" => errorstats(engine, &mut f),
        "latencystats" => latencystats(engine, &mut f),
        "cluster" => {
            f.put("cluster_enabled", u8::from(engine.config().cluster_enabled));
        }
        "keyspace" => keyspace(engine, &mut f),
        "sentinel" => super::sentinel::info_section(engine, f.0),
        _ => {}
    }
}

fn server(engine: &Engine, f: &mut Fields<'_>) {
    let settings = engine.settings();
    let uptime = engine.server.started.elapsed().as_secs();
    let now_us = engine.now_ms() * 1000;
    let mode = if engine.config().cluster_enabled {
        "cluster"
    } else {
        "standalone"
    };
    f.put("redis_version", crate::REDIS_VERSION)
        .put("redis_git_sha1", "00000000")
        .put("redis_git_dirty", 0)
        .put("redis_build_id", "0")
        .put("redis_mode", mode)
        .put("shoal_version", crate::VERSION)
        .put("os", os_name())
        .put("arch_bits", usize::BITS)
        .put("monotonic_clock", "POSIX clock_gettime")
        .put("multiplexing_api", "epoll")
        .put("atomicvar_api", "c11-builtin")
        .put("gcc_version", "0.0.0")
        .put("process_id", std::process::id())
        .put("process_supervised", "no")
        .put("run_id", &engine.server.run_id)
        .put("tcp_port", settings.port)
        .put("server_time_usec", now_us)
        .put("uptime_in_seconds", uptime)
        .put("uptime_in_days", uptime / 86_400)
        .put("hz", settings.hz)
        .put("configured_hz", settings.hz)
        .put("lru_clock", (engine.now_ms() / 1000) & 0xff_ffff)
        .put(
            "executable",
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        )
        .put(
            "config_file",
            settings
                .config_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        )
        .put("io_threads_active", 0);
}

fn clients(engine: &Engine, f: &mut Fields<'_>) {
    let all = engine.clients.all();
    let blocked = all
        .iter()
        .filter(|c| c.has_flag(flag::BLOCKED) || c.has_flag(flag::PAUSED))
        .count();
    let max_query = all
        .iter()
        .map(|c| c.query_bytes.load(Ordering::Relaxed))
        .max();
    let max_output = all
        .iter()
        .map(|c| c.output_bytes.load(Ordering::Relaxed))
        .max();
    f.put("connected_clients", all.len())
        .put("cluster_connections", 0)
        .put("maxclients", engine.settings().maxclients)
        .put("client_recent_max_input_buffer", max_query.unwrap_or(0))
        .put("client_recent_max_output_buffer", max_output.unwrap_or(0))
        .put("blocked_clients", blocked)
        .put("tracking_clients", 0)
        .put("clients_in_timeout_table", blocked);
}

/// Memory in use: what the embedding program's allocator reports when it was given a probe
/// (`shoal-server` counts its allocations), else the resident set.
pub(crate) fn used_memory(engine: &Engine) -> u64 {
    engine
        .config()
        .memory_probe
        .as_ref()
        .map_or_else(rss_bytes, |probe| probe())
}

fn memory(engine: &Engine, f: &mut Fields<'_>) {
    let settings = engine.settings();
    let used = used_memory(engine);
    let peak = engine.server.note_memory_peak(used);
    let rss = rss_bytes();
    let total = total_memory_bytes();
    let backlog = settings.backlog_bytes_max as u64;
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let percent = |a: u64, b: u64| format!("{:.2}%", ratio(a, b) * 100.0);
    f.put("used_memory", used)
        .put("used_memory_human", bytes_to_human(used))
        .put("used_memory_rss", rss)
        .put("used_memory_rss_human", bytes_to_human(rss))
        .put("used_memory_peak", peak)
        .put("used_memory_peak_human", bytes_to_human(peak))
        .put("used_memory_peak_perc", percent(used, peak))
        .put("used_memory_overhead", backlog)
        .put("used_memory_startup", 0)
        .put("used_memory_dataset", used.saturating_sub(backlog))
        .put(
            "used_memory_dataset_perc",
            percent(used.saturating_sub(backlog), used),
        )
        .put("allocator_allocated", used)
        .put("allocator_active", used)
        .put("allocator_resident", rss)
        .put("total_system_memory", total)
        .put("total_system_memory_human", bytes_to_human(total));
    for name in ["used_memory_lua", "used_memory_vm_eval"] {
        f.put(name, 0);
    }
    f.put("used_memory_lua_human", "0B");
    for name in [
        "used_memory_scripts_eval",
        "number_of_cached_scripts",
        "number_of_functions",
        "number_of_libraries",
        "used_memory_vm_functions",
        "used_memory_vm_total",
    ] {
        f.put(name, 0);
    }
    f.put("used_memory_vm_total_human", "0B")
        .put("used_memory_functions", 0)
        .put("used_memory_scripts", 0)
        .put("used_memory_scripts_human", "0B")
        .put("maxmemory", 0)
        .put("maxmemory_human", "0B")
        .put("maxmemory_policy", "noeviction")
        .put("allocator_frag_ratio", "1.00")
        .put("allocator_frag_bytes", 0)
        .put("allocator_rss_ratio", format!("{:.2}", ratio(rss, used)))
        .put("allocator_rss_bytes", rss.saturating_sub(used))
        .put("rss_overhead_ratio", "1.00")
        .put("rss_overhead_bytes", 0)
        .put(
            "mem_fragmentation_ratio",
            format!("{:.2}", ratio(rss, used)),
        )
        .put("mem_fragmentation_bytes", rss.saturating_sub(used))
        .put("mem_not_counted_for_evict", 0)
        .put("mem_replication_backlog", backlog)
        .put("mem_total_replication_buffers", 0)
        .put("mem_clients_slaves", 0)
        .put("mem_clients_normal", 0)
        .put("mem_cluster_links", 0)
        .put("mem_aof_buffer", 0)
        .put("mem_allocator", "libc")
        .put("active_defrag_running", 0)
        .put("lazyfree_pending_objects", 0)
        .put("lazyfreed_objects", 0);
}

fn persistence(engine: &Engine, f: &mut Fields<'_>) {
    let changes = crate::persist::changes_since_save(engine);
    let saves = crate::persist::save_info(engine);
    let status = |ok: bool| if ok { "ok" } else { "err" };
    let aof = engine.persist.aof.info();
    f.put("loading", 0)
        .put("async_loading", 0)
        .put("current_cow_peak", 0)
        .put("current_cow_size", 0)
        .put("current_cow_size_age", 0)
        .put("current_fork_perc", "0.00")
        .put("current_save_keys_processed", 0)
        .put("current_save_keys_total", 0)
        .put("rdb_changes_since_last_save", changes)
        .put("rdb_bgsave_in_progress", u8::from(saves.bgsave_in_progress))
        .put(
            "rdb_last_save_time",
            engine.server.last_save_unix.load(Ordering::Relaxed),
        )
        .put("rdb_last_bgsave_status", status(saves.last_bgsave_ok))
        .put("rdb_last_bgsave_time_sec", saves.last_bgsave_secs)
        .put("rdb_current_bgsave_time_sec", saves.current_bgsave_secs)
        .put("rdb_saves", saves.saves)
        .put("rdb_last_cow_size", saves.last_copied_bytes)
        .put("rdb_last_load_keys_expired", saves.last_load_keys_expired)
        .put("rdb_last_load_keys_loaded", saves.last_load_keys_loaded)
        .put("aof_enabled", u8::from(engine.persist.aof.is_configured()))
        .put("aof_rewrite_in_progress", u8::from(aof.rewriting))
        // Set but not running, and no rewrite under way: a start waits for the next try.
        .put(
            "aof_rewrite_scheduled",
            u8::from(
                engine.persist.aof.is_configured()
                    && !engine.persist.aof.is_enabled()
                    && !aof.rewriting,
            ),
        )
        .put("aof_last_rewrite_time_sec", -1)
        .put("aof_current_rewrite_time_sec", -1)
        .put("aof_last_bgrewrite_status", status(aof.last_rewrite_ok))
        .put("aof_rewrites", aof.rewrites)
        .put("aof_rewrites_consecutive_failures", 0)
        .put("aof_last_write_status", status(aof.last_write_ok))
        .put("aof_last_cow_size", 0)
        .put("module_fork_in_progress", 0)
        .put("module_fork_last_cow_size", 0);
    if aof.enabled {
        f.put("aof_current_size", aof.current_bytes)
            .put("aof_base_size", aof.base_bytes)
            .put("aof_pending_rewrite", 0)
            .put("aof_buffer_length", 0)
            .put("aof_pending_bio_fsync", 0)
            .put("aof_delayed_fsync", 0);
    }
}

fn stats(engine: &Engine, f: &mut Fields<'_>) {
    let totals = engine.stats.server_totals();
    let clients = &engine.clients;
    let (ops, input_kbps, output_kbps) = engine.stats.instantaneous();
    f.put(
        "total_connections_received",
        clients.connections_received.load(Ordering::Relaxed),
    )
    .put("total_commands_processed", totals.commands_processed)
    .put("instantaneous_ops_per_sec", ops.round() as u64)
    .put(
        "total_net_input_bytes",
        clients.net_input_bytes.load(Ordering::Relaxed),
    )
    .put(
        "total_net_output_bytes",
        clients.net_output_bytes.load(Ordering::Relaxed),
    )
    .put("total_net_repl_input_bytes", 0)
    .put("total_net_repl_output_bytes", 0)
    .put("instantaneous_input_kbps", format!("{input_kbps:.2}"))
    .put("instantaneous_output_kbps", format!("{output_kbps:.2}"))
    .put("instantaneous_input_repl_kbps", "0.00")
    .put("instantaneous_output_repl_kbps", "0.00")
    .put(
        "rejected_connections",
        clients.connections_rejected.load(Ordering::Relaxed),
    )
    .put("sync_full", engine.repl.sync_full.load(Ordering::Relaxed))
    .put(
        "sync_partial_ok",
        engine.repl.sync_partial_ok.load(Ordering::Relaxed),
    )
    .put(
        "sync_partial_err",
        engine.repl.sync_partial_err.load(Ordering::Relaxed),
    )
    .put(
        "expired_keys",
        engine.stats.expired_keys.load(Ordering::Relaxed),
    )
    .put("expired_stale_perc", "0.00")
    .put("expired_time_cap_reached_count", 0)
    .put("expire_cycle_cpu_milliseconds", 0)
    .put("evicted_keys", 0)
    .put("evicted_clients", 0)
    .put("total_eviction_exceeded_time", 0)
    .put("current_eviction_exceeded_time", 0)
    .put("keyspace_hits", totals.keyspace_hits)
    .put("keyspace_misses", totals.keyspace_misses)
    .put("pubsub_channels", engine.pubsub.len(Kind::Channel))
    .put("pubsub_patterns", engine.pubsub.len(Kind::Pattern))
    .put("pubsubshard_channels", engine.pubsub.len(Kind::Shard))
    .put("latest_fork_usec", 0)
    .put("total_forks", 0)
    .put("migrate_cached_sockets", 0)
    .put("slave_expires_tracked_keys", 0);
    for name in [
        "active_defrag_hits",
        "active_defrag_misses",
        "active_defrag_key_hits",
        "active_defrag_key_misses",
        "total_active_defrag_time",
        "current_active_defrag_time",
        "tracking_total_keys",
        "tracking_total_items",
        "tracking_total_prefixes",
        "unexpected_error_replies",
    ] {
        f.put(name, 0);
    }
    f.put("total_error_replies", engine.stats.error_replies())
        .put("dump_payload_sanitizations", 0);
    for name in [
        "total_reads_processed",
        "total_writes_processed",
        "io_threaded_reads_processed",
        "io_threaded_writes_processed",
        "reply_buffer_shrinks",
        "reply_buffer_expands",
    ] {
        f.put(name, 0);
    }
}

fn replication(engine: &Engine, f: &mut Fields<'_>) {
    crate::repl::info(engine, f.0);
}

fn cpu(f: &mut Fields<'_>) {
    let (sys, user) = cpu_seconds(false);
    let (thread_sys, thread_user) = cpu_seconds(true);
    f.put("used_cpu_sys", format!("{sys:.6}"))
        .put("used_cpu_user", format!("{user:.6}"))
        .put("used_cpu_sys_children", "0.000000")
        .put("used_cpu_user_children", "0.000000")
        .put("used_cpu_sys_main_thread", format!("{thread_sys:.6}"))
        .put("used_cpu_user_main_thread", format!("{thread_user:.6}"));
}

/// A command or error name as INFO prints it: characters that would break the format
/// (`#`, `:`, newlines) become `_`.
fn safe_name(name: &str) -> String {
    name.replace(['#', ':', '\n', '\r'], "_")
}

fn commandstats(engine: &Engine, f: &mut Fields<'_>) {
    for (id, entry) in engine.commands.entries() {
        let t = engine.stats.command_totals(id);
        if t.calls == 0 && t.failed == 0 && t.rejected == 0 {
            continue;
        }
        let per_call = if t.calls == 0 {
            0.0
        } else {
            t.usec as f32 / t.calls as f32
        };
        f.put(
            &format!("cmdstat_{}", safe_name(&entry.full_name)),
            format!(
                "calls={},usec={},usec_per_call={per_call:.2},rejected_calls={},failed_calls={}",
                t.calls, t.usec, t.rejected, t.failed
            ),
        );
    }
}

fn errorstats(engine: &Engine, f: &mut Fields<'_>) {
    for (code, count) in engine.stats.errors() {
        f.put(
            &format!("errorstat_{}", safe_name(&code)),
            format!("count={count}"),
        );
    }
}

/// A percentile as Redis labels it: `%f` with trailing zeros (and a bare dot) removed.
fn percentile_label(p: f64) -> String {
    let text = format!("{p:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn latencystats(engine: &Engine, f: &mut Fields<'_>) {
    let settings = engine.settings();
    if !settings.latency_tracking {
        return;
    }
    let percentiles = &settings.latency_tracking_percentiles;
    for (id, entry) in engine.commands.entries() {
        let Some(values) = engine.stats.latency_percentiles(id, percentiles) else {
            continue;
        };
        let text = percentiles
            .iter()
            .zip(values)
            .map(|(p, v)| format!("p{}={v:.3}", percentile_label(*p)))
            .collect::<Vec<_>>()
            .join(",");
        f.put(
            &format!("latency_percentiles_usec_{}", safe_name(&entry.full_name)),
            text,
        );
    }
}

fn keyspace(engine: &Engine, f: &mut Fields<'_>) {
    for db in 0..engine.db_count() {
        let keys = engine.dbsize(db);
        if keys == 0 {
            continue;
        }
        let (expires, _) = engine.expiry_stats(db);
        f.put(
            &format!("db{db}"),
            format!("keys={keys},expires={expires},avg_ttl=0"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_selection() {
        assert_eq!(selected_sections(&[]), DEFAULT_SECTIONS);
        assert_eq!(selected_sections(&[b"ALL"]), SECTIONS);
        assert_eq!(
            selected_sections(&[b"keyspace", b"Server", b"nosuch"]),
            vec!["keyspace", "server"]
        );
        assert_eq!(percentile_label(99.9), "99.9");
        assert_eq!(percentile_label(50.0), "50");
    }
}
