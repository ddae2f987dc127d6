//! Connection, database and server commands: PING, ECHO, TIME, SELECT, SWAPDB, DBSIZE,
//! FLUSHDB, FLUSHALL, DEBUG, and the transaction commands (run by the engine).

use super::args::{is, parse_float, parse_i64, SYNTAX};
use super::flags::*;
use super::{CmdError, CmdResult, Command, KeySpec, LockScope};
use crate::engine::ctx::Ctx;
use crate::engine::multi::{not_queued, queued_unwatch};
use crate::keyspace::digest::{self, DigestMode};
use crate::reply::{err, Reply};
use crate::slot::{SlotId, SLOT_COUNT};
use std::sync::atomic::Ordering;

const WATCH_KEYS: KeySpec = KeySpec::Range {
    first: 1,
    last: -1,
    step: 1,
};

pub const COMMANDS: &[Command] = &[
    Command::new("ping", -1, FAST | SUBSCRIBED_OK, KeySpec::None, ping),
    Command::new("echo", 2, FAST, KeySpec::None, echo),
    Command::new("time", 1, FAST | LOADING | STALE, KeySpec::None, time),
    Command::new("select", 2, LOADING | STALE | FAST, KeySpec::None, select),
    Command::new("swapdb", 3, WRITE | FAST, KeySpec::None, swapdb)
        .lock(LockScope::All)
        .other_dbs(|argv| super::keys::db_args(&argv[1..])),
    Command::new("dbsize", 1, READONLY | FAST, KeySpec::None, dbsize),
    Command::new("flushdb", -1, WRITE, KeySpec::None, flushdb).lock(LockScope::Db),
    Command::new("flushall", -1, WRITE, KeySpec::None, flushall).lock(LockScope::All),
    Command::new("debug", -2, 0, KeySpec::None, super::no_subcommand).subcommands(DEBUG),
    Command::new(
        "shutdown",
        -1,
        ADMIN | NO_QUEUE | LOADING | STALE,
        KeySpec::None,
        shutdown,
    ),
    Command::new(
        "multi",
        1,
        CLIENT | NO_QUEUE | LOADING | STALE | FAST,
        KeySpec::None,
        not_queued,
    ),
    Command::new(
        "exec",
        1,
        CLIENT | NO_QUEUE | LOADING | STALE,
        KeySpec::None,
        not_queued,
    ),
    Command::new(
        "discard",
        1,
        CLIENT | NO_QUEUE | LOADING | STALE | FAST,
        KeySpec::None,
        not_queued,
    ),
    Command::new(
        "watch",
        -2,
        CLIENT | NO_QUEUE | LOADING | STALE | FAST,
        WATCH_KEYS,
        not_queued,
    )
    .lock(LockScope::None),
    Command::new(
        "reset",
        1,
        CLIENT | NO_QUEUE | NO_AUTH | LOADING | STALE | FAST | SUBSCRIBED_OK,
        KeySpec::None,
        not_queued,
    ),
    Command::new(
        "unwatch",
        1,
        CLIENT | LOADING | STALE | FAST,
        KeySpec::None,
        queued_unwatch,
    ),
];

const DEBUG: &[Command] = &[
    Command::new("digest", 2, ADMIN, KeySpec::None, debug_digest).lock(LockScope::Dynamic),
    Command::new(
        "digest-value",
        -2,
        ADMIN,
        KeySpec::Range {
            first: 2,
            last: -1,
            step: 1,
        },
        debug_digest_value,
    ),
    Command::new(
        "set-active-expire",
        3,
        ADMIN,
        KeySpec::None,
        debug_set_active_expire,
    ),
    Command::new("sleep", 3, ADMIN, KeySpec::None, debug_sleep),
    Command::new(
        "cluster-partition",
        -2,
        ADMIN,
        KeySpec::None,
        debug_cluster_partition,
    ),
    Command::new("log", 3, ADMIN, KeySpec::None, debug_log),
    Command::new(
        "object",
        3,
        ADMIN,
        KeySpec::Range {
            first: 2,
            last: 2,
            step: 1,
        },
        debug_object,
    ),
];

/// The COMMAND DOCS group of the commands in this family that are not server commands.
pub fn group_of(name: &str) -> Option<&'static str> {
    match name {
        "ping" | "echo" | "select" => Some("connection"),
        "multi" | "exec" | "discard" | "watch" | "unwatch" => Some("transactions"),
        "reset" | "auth" | "hello" | "quit" | "client" => Some("connection"),
        _ => None,
    }
}

fn ping(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    if argv.len() > 2 {
        return Err(super::arity_error("ping"));
    }
    // A RESP2 subscriber gets its PONG in the shape of a message, so that it can tell it
    // apart from the messages around it.
    let resp2 = cx.proto == crate::resp::Protocol::Resp2;
    let subscriber = cx
        .conn()
        .is_ok_and(|c| c.info.has_flag(crate::engine::clients::flag::PUBSUB));
    Ok(match argv.get(1) {
        _ if resp2 && subscriber => Reply::Array(vec![
            Reply::bulk(b"pong"),
            Reply::bulk(argv.get(1).copied().unwrap_or_default()),
        ]),
        None => Reply::Status("PONG".into()),
        Some(message) => Reply::bulk(message),
    })
}

fn echo(_cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    Ok(Reply::bulk(argv[1]))
}

fn time(_cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Ok(Reply::Array(vec![
        Reply::bulk(now.as_secs().to_string().as_bytes()),
        Reply::bulk(now.subsec_micros().to_string().as_bytes()),
    ]))
}

/// A database index as SELECT parses it (32-bit integer, then range).
fn parse_db_index(cx: &Ctx<'_, '_>, arg: &[u8], not_int: CmdError) -> Result<usize, CmdError> {
    super::args::parse_db(arg, cx.engine.db_count(), not_int)
}

fn select(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    if cx.engine.config().cluster_enabled && argv[1] != b"0" {
        return Err(CmdError::new(err::SELECT_CLUSTER));
    }
    cx.db = parse_db_index(cx, argv[1], CmdError::new(err::NOT_INT))?;
    Ok(Reply::OK)
}

fn swapdb(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    if cx.engine.config().cluster_enabled {
        return Err(CmdError::new("ERR SWAPDB is not allowed in cluster mode"));
    }
    let a = parse_db_index(cx, argv[1], CmdError::new("ERR invalid first DB index"))?;
    let b = parse_db_index(cx, argv[2], CmdError::new("ERR invalid second DB index"))?;
    cx.propagate(argv);
    if a == b {
        return Ok(Reply::OK);
    }
    let mut ready = Vec::new();
    for index in 0..SLOT_COUNT as u16 {
        let Some(slot) = SlotId::new(index) else {
            continue;
        };
        if let Some((x, y)) = cx.held().pair_mut(a, b, slot) {
            let (ready_a, ready_b) = x.swap_data(y);
            ready.extend(ready_a.into_iter().map(|k| (a, k)));
            ready.extend(ready_b.into_iter().map(|k| (b, k)));
        }
    }
    for (db, key) in ready {
        cx.mark_ready(db, key);
    }
    Ok(Reply::OK)
}

fn dbsize(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    Ok(Reply::Int(cx.dbsize(cx.db) as i64))
}

fn check_flush_args(argv: &[&[u8]]) -> Result<(), CmdError> {
    match argv {
        [_] => Ok(()),
        [_, mode] if is(mode, "sync") || is(mode, "async") => Ok(()),
        _ => Err(SYNTAX),
    }
}

fn flush(cx: &mut Ctx<'_, '_>, db: usize) {
    for held in cx.held().db_slots_mut(db) {
        if let Some(data) = held.guard.data_mut() {
            data.flush();
        }
    }
}

fn flushdb(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    check_flush_args(argv)?;
    flush(cx, cx.db);
    cx.propagate(argv);
    Ok(Reply::OK)
}

fn flushall(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    check_flush_args(argv)?;
    for db in 0..cx.engine.db_count() {
        flush(cx, db);
    }
    cx.propagate(argv);
    Ok(Reply::OK)
}

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: asks the program to stop and closes the
/// connection without a reply, as Redis does. Shutting down starts at once, so there is never
/// a shutdown in progress to abort.
fn shutdown(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let (mut save, mut nosave, mut abort, mut force) = (false, false, false, false);
    for arg in &argv[1..] {
        if is(arg, "save") {
            save = true;
        } else if is(arg, "nosave") {
            nosave = true;
        } else if is(arg, "abort") {
            abort = true;
        } else if is(arg, "force") {
            force = true;
        } else if !is(arg, "now") {
            return Err(SYNTAX);
        }
    }
    if (save && nosave) || (abort && argv.len() > 2) {
        return Err(SYNTAX);
    }
    if abort {
        return Err(CmdError::new("ERR No shutdown in progress."));
    }
    tracing::warn!("User requested shutdown...");
    let forced = (save || nosave).then_some(save);
    if let Err(e) = crate::persist::save_for_shutdown(cx.engine, forced) {
        tracing::warn!("Error trying to save the DB, can't exit: {e}");
        if !force {
            return Err(CmdError::new("ERR Errors trying to SHUTDOWN. Check logs."));
        }
    }
    cx.engine.shutdown.request();
    let conn = cx.conn()?;
    conn.reply_mode = crate::engine::ReplyMode::SkipNext;
    conn.close_after_reply = true;
    Ok(Reply::OK)
}

fn check_debug_enabled(cx: &Ctx<'_, '_>) -> Result<(), CmdError> {
    if cx
        .engine
        .config()
        .enable_debug_command
        .allows(cx.local_client())
    {
        Ok(())
    } else {
        Err(CmdError::new("ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server."))
    }
}

fn debug_digest(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    check_debug_enabled(cx)?;
    let engine = cx.engine;
    let d = digest::dataset_digest(&engine.keyspace, DigestMode::Redis, |db, slot, f| {
        cx.with_slot(db, slot, |data| f(data))
    });
    Ok(Reply::Status(digest::to_hex(&d).into()))
}

fn debug_digest_value(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    check_debug_enabled(cx)?;
    let db = cx.db;
    let mut out = Vec::with_capacity(argv.len() - 2);
    for key in &argv[2..] {
        // Reads the raw entry: a logically expired key still has its digest, as in Redis.
        let d = cx.with_slot(db, SlotId::of_key(key), |data| {
            data.get(key)
                .map_or([0; 20], |e| digest::value_digest(e, DigestMode::Redis))
        });
        out.push(Reply::Status(digest::to_hex(&d).into()));
    }
    Ok(Reply::Array(out))
}

fn debug_set_active_expire(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    check_debug_enabled(cx)?;
    // Like C's atoi: anything that is not a number turns active expiry off.
    let enabled = parse_i64(argv[2]).unwrap_or(0) != 0;
    cx.engine
        .active_expire_enabled
        .store(enabled, Ordering::Relaxed);
    Ok(Reply::OK)
}

/// DEBUG CLUSTER-PARTITION [node-id ...]: fault injection for tests; the bus drops every
/// message to and from the listed nodes (none: the partition heals). Shoal's own.
fn debug_cluster_partition(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    check_debug_enabled(cx)?;
    let mut ids = Vec::new();
    for arg in &argv[2..] {
        let id = crate::cluster::NodeId::parse(arg).ok_or_else(|| {
            CmdError::msg(format!("ERR Unknown node {}", String::from_utf8_lossy(arg)))
        })?;
        ids.push(id);
    }
    crate::cluster::partition(cx.engine, &ids)
        .map_err(|why| CmdError::msg(format!("ERR {why}")))?;
    Ok(Reply::OK)
}

fn debug_log(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    check_debug_enabled(cx)?;
    tracing::warn!("DEBUG LOG: {}", String::from_utf8_lossy(argv[2]));
    Ok(Reply::OK)
}

/// DEBUG OBJECT key: Redis's one-line description. The address is the entry's, the LRU
/// fields come from the access clock; there is no serialized length until RDB exists, so it
/// reports the value's estimated size instead.
fn debug_object(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    check_debug_enabled(cx)?;
    let line = cx.with_slot(cx.db, SlotId::of_key(argv[2]), |data| {
        data.get(argv[2]).map(|e| {
            let refcount = if e.is_shared_integer() { i32::MAX } else { 1 };
            let mut line = format!(
                "Value at:{:p} refcount:{refcount} encoding:{} serializedlength:{} lru:{} lru_seconds_idle:{}",
                e as *const _,
                e.encoding(),
                serialized_len(&e.value),
                e.clock(),
                e.idle_secs()
            );
            if let crate::keyspace::value::Value::List(list) = &e.value {
                line.push_str(&format!(
                    " ql_nodes:1 ql_avg_node:{:.2} ql_listpack_max:-2 ql_compressed:0 ql_uncompressed_size:{}",
                    list.len() as f64,
                    list.iter().map(|v| v.len()).sum::<usize>()
                ));
            }
            line
        })
    });
    line.map(|l| Reply::Status(l.into()))
        .ok_or(CmdError::new("ERR no such key"))
}

/// About the length RDB would give the value: its bytes plus a length prefix each.
fn serialized_len(value: &crate::keyspace::value::Value) -> usize {
    match value {
        crate::keyspace::value::Value::Str(s) => s.len() + 1,
        other => other.heap_bytes(0),
    }
}

fn debug_sleep(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    check_debug_enabled(cx)?;
    let seconds = parse_float(argv[2]).unwrap_or(0.0);
    if seconds.is_finite() && seconds > 0.0 {
        std::thread::sleep(std::time::Duration::from_secs_f64(seconds.min(3600.0)));
    }
    Ok(Reply::OK)
}
