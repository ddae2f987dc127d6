//! Looking at the running node: SLOWLOG, LATENCY, MEMORY, and FUNCTION answered
//! for an empty function library (Shoal has no scripting; cluster tools still ask).

use super::args::{is, parse_i64, SYNTAX};
use super::flags::*;
use super::{CmdError, CmdResult, Command, KeySpec};
use crate::engine::ctx::Ctx;
use crate::reply::{err, Reply};

const MEMORY_KEY: KeySpec = KeySpec::Range {
    first: 2,
    last: 2,
    step: 1,
};

pub const COMMANDS: &[Command] = &[
    Command::new("slowlog", -2, 0, KeySpec::None, super::no_subcommand).subcommands(SLOWLOG),
    Command::new("latency", -2, 0, KeySpec::None, super::no_subcommand).subcommands(LATENCY),
    Command::new("memory", -2, 0, KeySpec::None, super::no_subcommand).subcommands(MEMORY),
    Command::new("function", -2, 0, KeySpec::None, super::no_subcommand).subcommands(FUNCTION),
];

const SLOWLOG: &[Command] = &[
    Command::new(
        "get",
        -2,
        ADMIN | LOADING | STALE,
        KeySpec::None,
        slowlog_get,
    ),
    Command::new(
        "len",
        2,
        ADMIN | LOADING | STALE,
        KeySpec::None,
        slowlog_len,
    ),
    Command::new(
        "reset",
        2,
        ADMIN | LOADING | STALE,
        KeySpec::None,
        slowlog_reset,
    ),
    Command::new("help", 2, LOADING | STALE, KeySpec::None, slowlog_help),
];

const LATENCY: &[Command] = &[
    Command::new(
        "latest",
        2,
        ADMIN | LOADING | STALE,
        KeySpec::None,
        latency_latest,
    ),
    Command::new(
        "history",
        3,
        ADMIN | LOADING | STALE,
        KeySpec::None,
        latency_history,
    ),
    Command::new(
        "reset",
        -2,
        ADMIN | LOADING | STALE,
        KeySpec::None,
        latency_reset,
    ),
    Command::new(
        "doctor",
        2,
        ADMIN | LOADING | STALE,
        KeySpec::None,
        latency_doctor,
    ),
    Command::new("help", 2, LOADING | STALE, KeySpec::None, latency_help),
];

const MEMORY: &[Command] = &[
    Command::new("usage", -3, READONLY, MEMORY_KEY, memory_usage),
    Command::new("stats", 2, 0, KeySpec::None, memory_stats),
    Command::new("doctor", 2, 0, KeySpec::None, memory_doctor),
    Command::new("malloc-stats", 2, 0, KeySpec::None, memory_malloc_stats),
    Command::new("purge", 2, 0, KeySpec::None, memory_purge),
    Command::new("help", 2, LOADING | STALE, KeySpec::None, memory_help),
];

const FUNCTION: &[Command] = &[
    Command::new("list", -2, 0, KeySpec::None, function_list),
    Command::new("flush", -2, WRITE, KeySpec::None, function_flush),
    Command::new("dump", 2, 0, KeySpec::None, function_dump),
    Command::new("help", 2, LOADING | STALE, KeySpec::None, function_help),
];

fn slowlog_get(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    const COUNT_DEFAULT: usize = 10;
    let count = match argv {
        [_, _] => Some(COUNT_DEFAULT),
        [_, _, n] => match parse_i64(n) {
            Ok(-1) => None,
            Ok(n) if n >= 0 => Some(n as usize),
            _ => {
                return Err(CmdError::new(
                    "ERR count should be greater than or equal to -1",
                ))
            }
        },
        _ => return Err(super::subcommand_syntax_error(argv)),
    };
    let entries = cx.engine.stats.slow_entries(count);
    Ok(Reply::Array(
        entries
            .into_iter()
            .map(|e| {
                Reply::Array(vec![
                    Reply::Int(e.id as i64),
                    Reply::Int(e.unix_secs as i64),
                    Reply::Int(e.usec as i64),
                    Reply::Array(e.argv.into_iter().map(Reply::Bulk).collect()),
                    Reply::bulk(e.client_addr.as_bytes()),
                    Reply::Bulk(e.client_name),
                ])
            })
            .collect(),
    ))
}

fn slowlog_len(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    Ok(Reply::Int(cx.engine.stats.slowlog_len() as i64))
}

fn slowlog_reset(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    cx.engine.stats.slowlog_reset();
    Ok(Reply::OK)
}

fn slowlog_help(_cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    Ok(super::help(
        "slowlog",
        &[
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "    Entries are made of:",
            "    id, timestamp, time in microseconds, arguments array, client IP and port,",
            "    client name",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
        ],
    ))
}

fn latency_latest(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    let events = cx.engine.stats.latency_events();
    Ok(Reply::Array(
        events
            .into_iter()
            .filter_map(|(name, e)| {
                let &(time, latest) = e.samples.back()?;
                Some(Reply::Array(vec![
                    Reply::bulk(name.as_bytes()),
                    Reply::Int(time as i64),
                    Reply::Int(latest as i64),
                    Reply::Int(e.max_ms as i64),
                ]))
            })
            .collect(),
    ))
}

/// The samples of one event, oldest first; the name is matched exactly, as Redis does.
fn latency_history(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let events = cx.engine.stats.latency_events();
    let samples = events
        .into_iter()
        .find(|(name, _)| name.as_bytes() == argv[2])
        .map(|(_, e)| e.samples)
        .unwrap_or_default();
    Ok(Reply::Array(
        samples
            .into_iter()
            .map(|(t, ms)| Reply::Array(vec![Reply::Int(t as i64), Reply::Int(ms as i64)]))
            .collect(),
    ))
}

fn latency_reset(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    Ok(Reply::Int(cx.engine.stats.latency_reset(&argv[2..]) as i64))
}

/// A human report in Redis's voice: each event's spikes, average, mean deviation, period.
fn latency_doctor(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    let events = cx.engine.stats.latency_events();
    let enabled = cx.engine.live.latency_monitor_threshold_ms() > 0;
    let text = if events.is_empty() && !enabled {
        "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n".to_string()
    } else if events.is_empty() {
        "Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n".to_string()
    } else {
        let mut text = "Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n".to_string();
        for (i, (name, e)) in events.iter().enumerate() {
            let n = e.samples.len().max(1) as u64;
            let avg = e.samples.iter().map(|s| s.1).sum::<u64>() / n;
            let deviation = e.samples.iter().map(|s| s.1.abs_diff(avg)).sum::<u64>() / n;
            let period = match (e.samples.front(), e.samples.back()) {
                (Some(first), Some(last)) => (last.0 - first.0) as f64 / n as f64,
                _ => 0.0,
            };
            text.push_str(&format!(
                "{}. {name}: {} latency spikes (average {avg}ms, mean deviation {deviation}ms, period {period:.2} sec). Worst all time event {}ms.\n",
                i + 1,
                e.samples.len(),
                e.max_ms
            ));
        }
        text.push_str("\nI have a few advices for you:\n\n- Check your system for other processes competing for CPU time, and for commands that take long (SLOWLOG GET).\n");
        text
    };
    Ok(Reply::Verbatim(text.as_bytes().into()))
}

fn latency_help(_cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    Ok(super::help(
        "latency",
        &[
            "DOCTOR",
            "    Return a human readable latency analysis report.",
            "HISTORY <event>",
            "    Return time-latency samples for the <event> class.",
            "LATEST",
            "    Return the latest latency samples for all events.",
            "RESET [<event> ...]",
            "    Reset latency data of one or more <event> classes.",
            "    (default: reset all data for all event classes)",
        ],
    ))
}

/// MEMORY USAGE key [SAMPLES count]: the key's entry, key and value allocations; the
/// options are checked before the key is looked up, as Redis does.
fn memory_usage(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    const SAMPLES_DEFAULT: usize = 5;
    let mut samples = SAMPLES_DEFAULT;
    let mut rest = &argv[3..];
    while let [option, tail @ ..] = rest {
        match tail {
            [n, after @ ..] if is(option, "samples") => {
                let n = parse_i64(n).map_err(|_| CmdError::new(err::NOT_INT))?;
                if n < 0 {
                    return Err(SYNTAX);
                }
                samples = n as usize;
                rest = after;
            }
            _ => return Err(SYNTAX),
        }
    }
    Ok(match cx.lookup_untouched(argv[2])? {
        None => Reply::Nil,
        Some(entry) => Reply::Int(entry.usage_bytes(samples) as i64),
    })
}

fn memory_stats(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    let engine = cx.engine;
    let used = super::info::used_memory(engine);
    let peak = engine.server.note_memory_peak(used);
    let rss = crate::process::rss_bytes();
    let backlog = engine.settings().backlog_bytes_max as u64;
    let keys: usize = (0..engine.db_count()).map(|db| engine.dbsize(db)).sum();
    let dataset = used.saturating_sub(backlog);
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let int = |n: u64| Reply::Int(n as i64);
    // In Redis's order.
    let pairs: Vec<(&str, Reply)> = vec![
        ("peak.allocated", int(peak)),
        ("total.allocated", int(used)),
        ("startup.allocated", int(0)),
        ("replication.backlog", int(backlog)),
        ("clients.slaves", int(0)),
        ("clients.normal", int(0)),
        ("cluster.links", int(0)),
        ("aof.buffer", int(0)),
        ("lua.caches", int(0)),
        ("functions.caches", int(0)),
        ("overhead.total", int(backlog)),
        ("keys.count", int(keys as u64)),
        (
            "keys.bytes-per-key",
            int(if keys == 0 { 0 } else { dataset / keys as u64 }),
        ),
        ("dataset.bytes", int(dataset)),
        (
            "dataset.percentage",
            Reply::Double(ratio(dataset, used) * 100.0),
        ),
        ("peak.percentage", Reply::Double(ratio(used, peak) * 100.0)),
        ("allocator.allocated", int(used)),
        ("allocator.active", int(used)),
        ("allocator.resident", int(rss)),
        ("allocator-fragmentation.ratio", Reply::Double(1.0)),
        ("allocator-fragmentation.bytes", int(0)),
        ("allocator-rss.ratio", Reply::Double(ratio(rss, used))),
        ("allocator-rss.bytes", Reply::Int(rss as i64 - used as i64)),
        ("rss-overhead.ratio", Reply::Double(1.0)),
        ("rss-overhead.bytes", int(0)),
        ("fragmentation", Reply::Double(ratio(rss, used))),
        ("fragmentation.bytes", Reply::Int(rss as i64 - used as i64)),
    ];
    Ok(Reply::Map(
        pairs
            .into_iter()
            .map(|(name, value)| (Reply::bulk(name.as_bytes()), value))
            .collect(),
    ))
}

fn memory_doctor(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    const SMALL_BYTES: u64 = 5 * 1024 * 1024;
    let used = super::info::used_memory(cx.engine);
    let text = if used < SMALL_BYTES {
        "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n"
    } else {
        "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n"
    };
    Ok(Reply::Verbatim(text.as_bytes().into()))
}

fn memory_malloc_stats(_cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    Ok(Reply::bulk(
        b"Stats not supported for the current allocator",
    ))
}

/// Gives the allocator's free memory back to the system, as Redis asks jemalloc to.
fn memory_purge(_cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
    Ok(Reply::OK)
}

fn memory_help(_cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    Ok(super::help(
        "memory",
        &[
            "DOCTOR",
            "    Return memory problems reports.",
            "MALLOC-STATS",
            "    Return internal statistics report from the memory allocator.",
            "PURGE",
            "    Attempt to purge dirty pages for reclamation by the allocator.",
            "STATS",
            "    Return information about the memory usage of the server.",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value. Nested values are",
            "    sampled up to <count> times (default: 5, 0 means sample all).",
        ],
    ))
}

/// FUNCTION LIST [WITHCODE] [LIBRARYNAME pattern]: the library is always empty.
fn function_list(_cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let (mut with_code, mut pattern) = (false, false);
    let mut i = 2;
    while i < argv.len() {
        if is(argv[i], "withcode") && !with_code {
            with_code = true;
        } else if is(argv[i], "libraryname") && !pattern {
            if i + 1 >= argv.len() {
                return Err(CmdError::new("ERR library name argument was not given"));
            }
            pattern = true;
            i += 1;
        } else {
            return Err(CmdError::msg(format!(
                "ERR Unknown argument {}",
                String::from_utf8_lossy(argv[i])
            )));
        }
        i += 1;
    }
    Ok(Reply::Array(Vec::new()))
}

fn function_flush(_cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    match argv {
        [_, _] => Ok(Reply::OK),
        [_, _, mode] if is(mode, "sync") || is(mode, "async") => Ok(Reply::OK),
        [_, _, _] => Err(CmdError::new(
            "ERR FUNCTION FLUSH only supports SYNC|ASYNC option",
        )),
        _ => Err(super::subcommand_syntax_error(argv)),
    }
}

/// Shoal has no function engine, so it has no payload to give: `redis-cli --cluster
/// add-node` takes the error as "nothing to copy" and goes on.
fn function_dump(_cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    Err(CmdError::new(
        "ERR FUNCTION DUMP is not supported: Shoal has no function engine",
    ))
}

fn function_help(_cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    Ok(super::help(
        "function",
        &[
            "LIST [WITHCODE] [LIBRARYNAME <pattern>]",
            "    Return general information on all the libraries:",
            "    * Library name",
            "    * The engine used to run the Library",
            "    * Library description",
            "    * Functions list",
            "    * Library code (if WITHCODE is given)",
            "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
            "FLUSH [ASYNC|SYNC]",
            "    Deletes all the libraries.",
            "DUMP",
            "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
        ],
    ))
}
