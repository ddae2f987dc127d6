//! Snapshots and the AOF: SAVE, BGSAVE, LASTSAVE, BGREWRITEAOF; and the waits for a write to
//! be durable: WAIT, WAITAOF.

use super::args::{is, parse_i64, parse_timeout_ms};
use super::flags::*;
use super::{CmdError, CmdResult, Command, KeySpec};
use crate::engine::acks::AckGoal;
use crate::engine::ctx::Ctx;
use crate::persist::{self, NotStarted};
use crate::reply::Reply;
use std::sync::atomic::Ordering;

pub const COMMANDS: &[Command] = &[
    Command::new("save", 1, ADMIN | NO_MULTI, KeySpec::None, save),
    Command::new("bgsave", -1, ADMIN, KeySpec::None, bgsave),
    Command::new("bgrewriteaof", 1, ADMIN, KeySpec::None, bgrewriteaof),
    Command::new(
        "lastsave",
        1,
        LOADING | STALE | FAST,
        KeySpec::None,
        lastsave,
    ),
    Command::new("wait", 3, 0, KeySpec::None, wait),
    Command::new("waitaof", 4, 0, KeySpec::None, waitaof),
];

const IN_PROGRESS: CmdError = CmdError::new("ERR Background save already in progress");

/// SAVE: Redis blocks every client while it saves; here only the caller waits, and the
/// snapshot is still one point in time.
fn save(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    if cx.engine.persist.bgsave_in_progress() {
        return Err(IN_PROGRESS);
    }
    match persist::save(cx.engine) {
        Ok(_) => Ok(Reply::OK),
        Err(_) => Err(CmdError::new("ERR")),
    }
}

/// BGSAVE [SCHEDULE]: a snapshot in the background. While another snapshot runs (SAVE, an
/// AOF rewrite), SCHEDULE queues it behind that one, as Redis does.
fn bgsave(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    if !matches!(argv, [_] | [_, _]) || argv.get(1).is_some_and(|a| !is(a, "schedule")) {
        return Err(super::args::SYNTAX);
    }
    match persist::bgsave(cx.engine, argv.len() == 2) {
        Ok(true) => Ok(Reply::Status("Background saving started".into())),
        Ok(false) => Ok(Reply::Status("Background saving scheduled".into())),
        Err(NotStarted::AlreadyRunning) => Err(IN_PROGRESS),
        Err(NotStarted::Busy) => Err(CmdError::new("ERR Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.")),
        Err(NotStarted::Failed(why)) => {
            tracing::warn!("Can't save in background: {why}");
            Err(CmdError::new("ERR"))
        }
    }
}

/// BGREWRITEAOF: a new AOF base from a snapshot, in the background. Redis also writes one
/// with `appendonly no`; Shoal keeps no AOF files then and says so.
fn bgrewriteaof(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    if !cx.engine.persist.aof.info().enabled {
        return Err(CmdError::new(
            "ERR The AOF is off (appendonly no): there is nothing to rewrite",
        ));
    }
    match persist::bgrewriteaof(cx.engine) {
        Ok(()) => Ok(Reply::Status(
            "Background append only file rewriting started".into(),
        )),
        Err(NotStarted::AlreadyRunning | NotStarted::Busy) => Err(CmdError::new(
            "ERR Background append only file rewriting already in progress",
        )),
        Err(NotStarted::Failed(why)) => {
            tracing::warn!("Can't rewrite the AOF in background: {why}");
            Err(CmdError::new("ERR Can't execute an AOF background rewriting. Please check the server logs for more information."))
        }
    }
}

/// WAIT numreplicas timeout: replicas that received the caller's last write.
fn wait(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    if cx.engine.repl.is_replica() {
        return Err(CmdError::new("ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated."));
    }
    let replicas = parse_i64(argv[1])?;
    let timeout = parse_timeout_ms(argv[2])?;
    cx.wait_for_acks(AckGoal::Received { replicas }, timeout)
}

/// WAITAOF numlocal numreplicas timeout: `[1 if fsynced here, replicas that fsynced]` for the
/// caller's last write.
fn waitaof(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let local = match parse_i64(argv[1])? {
        0 => false,
        1 => true,
        _ => {
            return Err(CmdError::new(
                "ERR value is out of range, value must between 0 and 1",
            ))
        }
    };
    let replicas = parse_i64(argv[2])?;
    if replicas < 0 {
        return Err(CmdError::new("ERR value is out of range, must be positive"));
    }
    let timeout = parse_timeout_ms(argv[3])?;
    if cx.engine.repl.is_replica() {
        return Err(CmdError::new("ERR WAITAOF cannot be used with replica instances. Please also note that writes to replicas are just local and are not propagated."));
    }
    if local && !cx.engine.persist.aof.is_configured() {
        return Err(CmdError::new(crate::engine::acks::AOF_OFF));
    }
    cx.wait_for_acks(AckGoal::Fsynced { local, replicas }, timeout)
}

fn lastsave(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    Ok(Reply::Int(
        cx.engine.server.last_save_unix.load(Ordering::Relaxed) as i64,
    ))
}
