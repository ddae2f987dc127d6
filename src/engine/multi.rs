//! MULTI/EXEC/DISCARD/WATCH/UNWATCH.
//!
//! EXEC locks the union of every queued command's slots (and the watched keys) in ascending
//! order before running any of them, so a transaction is atomic against all other commands and
//! the log gets its writes as one MULTI/EXEC record.

use super::ctx::Ctx;
use super::locks::{Held, Kept, LockPlan};
use super::{Client, Engine, Outcome};
use crate::cmd::{self, args, flags, CmdError, Command, CommandId};
use crate::keyspace::bytes::CompactBytes;
use crate::keyspace::{WatchFlag, Watcher};
use crate::reply::{err, Reply};
use crate::slot::SlotId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

struct Queued {
    id: CommandId,
    command: &'static Command,
    argv: Vec<Vec<u8>>,
}

#[derive(Default)]
pub struct MultiState {
    queued: Vec<Queued>,
    /// A command was refused while queueing: EXEC must discard the transaction.
    pub aborted: bool,
}

pub struct WatchState {
    flag: WatchFlag,
    /// (db, key) -> was it logically expired when watched.
    keys: HashMap<(usize, CompactBytes), bool>,
}

impl MultiState {
    /// Number of queued commands.
    pub fn len(&self) -> usize {
        self.queued.len()
    }

    /// The queued commands.
    pub fn commands(&self) -> impl Iterator<Item = &'static Command> + '_ {
        self.queued.iter().map(|q| q.command)
    }

    /// The queued commands with their arguments.
    pub fn calls(&self) -> impl Iterator<Item = (&'static Command, Vec<&[u8]>)> + '_ {
        self.queued
            .iter()
            .map(|q| (q.command, q.argv.iter().map(Vec::as_slice).collect()))
    }

    /// Drops the transaction (an EXEC refused before it ran), as DISCARD does.
    pub fn discard(engine: &Engine, client: &mut Client) {
        client.multi = None;
        unwatch(engine, client);
    }
}

/// Queues a command inside MULTI.
pub fn queue(
    client: &mut Client,
    id: CommandId,
    command: &'static Command,
    argv: &[&[u8]],
) -> Reply {
    let Some(multi) = client.multi.as_mut() else {
        return Reply::error(err::EXEC_WITHOUT_MULTI);
    };
    if command.has(flags::NO_MULTI) {
        multi.aborted = true;
        return Reply::error("ERR Command not allowed inside a transaction");
    }
    multi.queued.push(Queued {
        id,
        command,
        argv: argv.iter().map(|a| a.to_vec()).collect(),
    });
    Reply::QUEUED
}

/// Runs a command that acts on the client's own state.
pub fn run_client_command(
    engine: &Engine,
    client: &mut Client,
    command: &Command,
    argv: &[&[u8]],
) -> Outcome {
    let reply = match command.name {
        "multi" => {
            if client.multi.is_some() {
                Reply::error(err::NESTED_MULTI)
            } else {
                client.multi = Some(MultiState::default());
                Reply::OK
            }
        }
        "discard" => match client.multi {
            None => Reply::error(err::DISCARD_WITHOUT_MULTI),
            Some(_) => {
                MultiState::discard(engine, client);
                Reply::OK
            }
        },
        "exec" => return exec(engine, client),
        "watch" => {
            if client.multi.is_some() {
                Reply::error(err::WATCH_IN_MULTI)
            } else {
                watch(engine, client, &argv[1..]);
                Reply::OK
            }
        }
        "unwatch" => {
            unwatch(engine, client);
            Reply::OK
        }
        "reset" => {
            reset_connection(engine, client);
            Reply::Status("RESET".into())
        }
        _ => Reply::from(cmd::unknown_command(argv)),
    };
    Outcome::Reply(reply)
}

/// RESET: the state of a fresh connection (database 0, RESP2, no transaction, no watches, no
/// name, reply mode on, not a monitor), authenticated only if no password is required.
fn reset_connection(engine: &Engine, client: &mut Client) {
    client.reset(engine);
    client.protocol = crate::resp::Protocol::Resp2;
    let conn = &mut client.conn;
    conn.authenticated = !engine.requires_auth();
    conn.reply_mode = super::ReplyMode::On;
    if conn.monitor {
        engine.clients.stop_monitor(conn.info.id);
        conn.info.set_flag(super::clients::flag::MONITOR, false);
    }
    conn.monitor = false;
    *conn.info.name.lock() = CompactBytes::EMPTY;
}

fn watch(engine: &Engine, client: &mut Client, keys: &[&[u8]]) {
    let db = client.db;
    let state = client.watch.get_or_insert_with(|| WatchState {
        flag: Arc::new(AtomicBool::new(false)),
        keys: HashMap::new(),
    });
    if state.flag.load(Ordering::Relaxed) {
        return;
    }
    let now = engine.now_ms();
    for &key in keys {
        if state.keys.contains_key(&(db, CompactBytes::new(key))) {
            continue;
        }
        // WATCH holds no slot lock here, so opening the database is safe.
        let Some(slots) = engine.keyspace.open(db) else {
            continue;
        };
        let mut data = slots[SlotId::of_key(key).index()].data.write();
        let stale = data.get(key).is_some_and(|e| e.is_expired(now));
        data.extras_mut()
            .watched
            .entry(CompactBytes::new(key))
            .or_default()
            .push(Watcher {
                flag: state.flag.clone(),
                stale,
            });
        state.keys.insert((db, CompactBytes::new(key)), stale);
    }
}

/// Drops every WATCH of `client`.
pub fn unwatch(engine: &Engine, client: &mut Client) {
    let Some(state) = client.watch.take() else {
        return;
    };
    for (db, key) in state.keys.keys() {
        let Some(slot) = engine.keyspace.used_slot(*db, SlotId::of_key(key)) else {
            continue;
        };
        let mut data = slot.data.write();
        let extras = data.extras_mut();
        if let Some(watchers) = extras.watched.get_mut(key.as_slice()) {
            watchers.retain(|w| !Arc::ptr_eq(&w.flag, &state.flag));
            if watchers.is_empty() {
                extras.watched.remove(key.as_slice());
            }
        }
        data.release_extras();
    }
}

/// Whether a WATCH was broken: a watched key was modified, or expired since it was watched.
fn watch_broken(engine: &Engine, client: &Client, held: &Held<'_>) -> bool {
    let Some(state) = &client.watch else {
        return false;
    };
    if state.flag.load(Ordering::Relaxed) {
        return true;
    }
    let now = engine.now_ms();
    state.keys.iter().any(|((db, key), stale)| {
        !stale
            && held
                .get(*db, SlotId::of_key(key))
                .and_then(|h| h.guard.data().get(key))
                .is_some_and(|e| e.is_expired(now))
    })
}

fn exec(engine: &Engine, client: &mut Client) -> Outcome {
    let Some(multi) = client.multi.take() else {
        return Outcome::Reply(Reply::error(err::EXEC_WITHOUT_MULTI));
    };
    if multi.aborted {
        unwatch(engine, client);
        return Outcome::Reply(Reply::error(err::EXECABORT));
    }
    let argvs: Vec<Vec<&[u8]>> = multi
        .queued
        .iter()
        .map(|q| q.argv.iter().map(Vec::as_slice).collect())
        .collect();
    let mut plan = LockPlan::default();
    let mut db = client.db;
    let mut write = false;
    for (q, argv) in multi.queued.iter().zip(&argvs) {
        plan.add_command(engine, q.command, argv, db, None, true);
        write |= q.command.is_write();
        if q.command.name == "select" {
            if let Some(n) = argv.get(1).and_then(|a| args::parse_i64(a).ok()) {
                if n >= 0 && (n as usize) < engine.db_count() {
                    db = n as usize;
                }
            }
        }
    }
    if let Some(state) = &client.watch {
        for (wdb, key) in state.keys.keys() {
            plan.add_key(*wdb, key);
        }
    }
    let mut held = Held::acquire(engine, &plan, write);
    if watch_broken(engine, client, &held) {
        drop(held);
        unwatch(engine, client);
        return Outcome::Reply(Reply::NilArray);
    }
    let info = client.conn.info.clone();
    let replies = engine.with_ctx(client, &mut held, true, |cx| {
        multi
            .queued
            .iter()
            .zip(&argvs)
            .map(|(q, argv)| {
                let started = engine.clock.raw();
                let reply = (q.command.handler)(cx, argv).unwrap_or_else(Reply::from);
                let lookups = cx.take_lookups();
                engine.account(&info, q.id, argv, started, &reply, lookups);
                engine.feed_monitors(&info, cx.db, q.id, argv);
                reply
            })
            .collect()
    });
    // The transaction's locks are released here: nothing is kept past EXEC.
    let outcome = engine.finish(client, held, Reply::Array(replies), &mut Kept::default());
    unwatch(engine, client);
    outcome
}

/// UNWATCH queued inside MULTI: EXEC unwatches anyway, so it only replies OK.
pub fn queued_unwatch(_cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> cmd::CmdResult {
    Ok(Reply::OK)
}

/// Handler slot of the commands that never reach the data path (MULTI, EXEC, ...).
pub fn not_queued(_cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> cmd::CmdResult {
    Err(CmdError::msg(format!(
        "ERR {} cannot run here",
        String::from_utf8_lossy(argv.first().copied().unwrap_or_default())
    )))
}
