//! Snapshots: SAVE, BGSAVE and LASTSAVE.

use super::args::is;
use super::flags::*;
use super::{CmdError, CmdResult, Command, KeySpec};
use crate::engine::ctx::Ctx;
use crate::persist::{self, NotStarted};
use crate::reply::Reply;
use std::sync::atomic::Ordering;

pub const COMMANDS: &[Command] = &[
    Command::new("save", 1, ADMIN | NO_MULTI, KeySpec::None, save),
    Command::new("bgsave", -1, ADMIN, KeySpec::None, bgsave),
    Command::new(
        "lastsave",
        1,
        LOADING | STALE | FAST,
        KeySpec::None,
        lastsave,
    ),
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

/// BGSAVE [SCHEDULE]: a snapshot in the background. SCHEDULE waits out other background
/// work in Redis (an AOF rewrite); nothing else here keeps a snapshot from starting at once.
fn bgsave(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    if !matches!(argv, [_] | [_, _]) || argv.get(1).is_some_and(|a| !is(a, "schedule")) {
        return Err(super::args::SYNTAX);
    }
    match persist::bgsave(cx.engine) {
        Ok(()) => Ok(Reply::Status("Background saving started".into())),
        Err(NotStarted::AlreadyRunning) => Err(IN_PROGRESS),
        Err(NotStarted::Failed(why)) => {
            tracing::warn!("Can't save in background: {why}");
            Err(CmdError::new("ERR"))
        }
    }
}

fn lastsave(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    Ok(Reply::Int(
        cx.engine.server.last_save_unix.load(Ordering::Relaxed) as i64,
    ))
}
