//! Connection commands: AUTH, HELLO, QUIT and CLIENT. They act on the calling client's
//! connection state (`Ctx::conn`) and on the node's client registry; the driver of the
//! connection (the RESP listener) acts on what they set (close after the reply, reply mode).

use super::args::{is, parse_i64, SYNTAX};
use super::flags::*;
use super::{CmdError, CmdResult, Command, KeySpec};
use crate::cmd::CommandId;
use crate::engine::clients::{flag, ClientId, ClientInfo, ClientKind, PauseScope, Unblock};
use crate::engine::ctx::Ctx;
use crate::engine::ReplyMode;
use crate::keyspace::bytes::CompactBytes;
use crate::reply::Reply;
use crate::resp::Protocol;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub const COMMANDS: &[Command] = &[
    Command::new(
        "auth",
        -2,
        NO_AUTH | LOADING | STALE | FAST,
        KeySpec::None,
        auth,
    ),
    Command::new(
        "hello",
        -1,
        NO_AUTH | LOADING | STALE | FAST,
        KeySpec::None,
        hello,
    ),
    Command::new(
        "quit",
        -1,
        NO_AUTH | NO_QUEUE | LOADING | STALE | FAST | SUBSCRIBED_OK,
        KeySpec::None,
        quit,
    ),
    Command::new("client", -2, 0, KeySpec::None, super::no_subcommand).subcommands(CLIENT),
    Command::new(
        "monitor",
        1,
        ADMIN | LOADING | STALE,
        KeySpec::None,
        monitor,
    ),
];

const CLIENT: &[Command] = &[
    Command::new("help", 2, LOADING | STALE, KeySpec::None, client_help),
    Command::new("id", 2, LOADING | STALE, KeySpec::None, client_id),
    Command::new("info", 2, LOADING | STALE, KeySpec::None, client_info),
    Command::new(
        "list",
        -2,
        ADMIN | LOADING | STALE,
        KeySpec::None,
        client_list,
    ),
    Command::new(
        "kill",
        -3,
        ADMIN | LOADING | STALE,
        KeySpec::None,
        client_kill,
    ),
    Command::new("getname", 2, LOADING | STALE, KeySpec::None, client_getname),
    Command::new("setname", 3, LOADING | STALE, KeySpec::None, client_setname),
    Command::new("setinfo", 4, LOADING | STALE, KeySpec::None, client_setinfo),
    Command::new("reply", 3, LOADING | STALE, KeySpec::None, client_reply),
    Command::new(
        "pause",
        -3,
        ADMIN | LOADING | STALE,
        KeySpec::None,
        client_pause,
    ),
    Command::new(
        "unpause",
        2,
        ADMIN | LOADING | STALE,
        KeySpec::None,
        client_unpause,
    ),
    Command::new(
        "unblock",
        -3,
        ADMIN | LOADING | STALE,
        KeySpec::None,
        client_unblock,
    ),
    Command::new(
        "no-evict",
        3,
        ADMIN | LOADING | STALE,
        KeySpec::None,
        client_no_evict,
    ),
    Command::new(
        "no-touch",
        3,
        LOADING | STALE,
        KeySpec::None,
        client_no_touch,
    ),
    Command::new(
        "getredir",
        2,
        LOADING | STALE,
        KeySpec::None,
        client_getredir,
    ),
    Command::new(
        "trackinginfo",
        2,
        LOADING | STALE,
        KeySpec::None,
        client_trackinginfo,
    ),
    Command::new(
        "tracking",
        -3,
        LOADING | STALE,
        KeySpec::None,
        client_tracking,
    ),
];

/// MONITOR: the connection receives a line per command run from now on; asking again gets
/// no reply, as in Redis.
fn monitor(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    if cx.in_exec {
        return Err(CmdError::new(
            "ERR MONITOR isn't allowed for DENY BLOCKING client",
        ));
    }
    let engine = cx.engine;
    let conn = cx.conn()?;
    if conn.monitor {
        conn.reply_mode = ReplyMode::SkipNext;
        return Ok(Reply::OK);
    }
    conn.monitor = true;
    engine.clients.start_monitor(conn.info.clone());
    Ok(Reply::OK)
}

/// Compares secrets in time independent of where they differ.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// Checks a username and password against the default user (the only user: `requirepass`,
/// or no password at all, when any password is accepted as in Redis's `nopass`).
fn authenticate(cx: &mut Ctx<'_, '_>, user: &[u8], password: &[u8]) -> Result<(), CmdError> {
    let ok = user == b"default"
        && cx
            .engine
            .password
            .read()
            .as_ref()
            .is_none_or(|expected| same_secret(password, expected));
    if !ok {
        return Err(CmdError::new(
            "WRONGPASS invalid username-password pair or user is disabled.",
        ));
    }
    cx.conn()?.authenticated = true;
    Ok(())
}

fn auth(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    match argv {
        [_, password] => {
            if !cx.engine.requires_auth() {
                return Err(CmdError::new("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"));
            }
            authenticate(cx, b"default", password)?;
        }
        [_, user, password] => authenticate(cx, user, password)?,
        _ => return Err(SYNTAX),
    }
    Ok(Reply::OK)
}

fn hello(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let mut protocol = None;
    let mut next = 1;
    if let Some(version) = argv.get(1) {
        let version = parse_i64(version)
            .map_err(|_| CmdError::new("ERR Protocol version is not an integer or out of range"))?;
        protocol = Some(match version {
            2 => Protocol::Resp2,
            3 => Protocol::Resp3,
            _ => return Err(CmdError::new("NOPROTO unsupported protocol version")),
        });
        next = 2;
    }
    while next < argv.len() {
        let more = argv.len() - 1 - next;
        let option = argv[next];
        if is(option, "auth") && more >= 2 {
            authenticate(cx, argv[next + 1], argv[next + 2])?;
            next += 3;
        } else if is(option, "setname") && more >= 1 {
            set_name(cx, argv[next + 1])?;
            next += 2;
        } else {
            return Err(CmdError::msg(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(option)
            )));
        }
    }
    if !cx.conn()?.authenticated {
        return Err(CmdError::new("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"));
    }
    if let Some(protocol) = protocol {
        cx.proto = protocol;
    }
    let id = cx.conn()?.info.id;
    let mode = if cx.engine.config().cluster_enabled {
        "cluster"
    } else {
        "standalone"
    };
    let text = |s: &str| Reply::bulk(s.as_bytes());
    Ok(Reply::Map(vec![
        (text("server"), text("redis")),
        (text("version"), text(crate::REDIS_VERSION)),
        (
            text("proto"),
            Reply::Int(if cx.proto == Protocol::Resp3 { 3 } else { 2 }),
        ),
        (text("id"), Reply::Int(id.0 as i64)),
        (text("mode"), text(mode)),
        (text("role"), text("master")),
        (text("modules"), Reply::Array(Vec::new())),
    ]))
}

fn quit(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    cx.conn()?.close_after_reply = true;
    Ok(Reply::OK)
}

fn client_help(_cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    Ok(super::help(
        &String::from_utf8_lossy(argv[0]),
        &[
            "CACHING (YES|NO)",
            "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
            "GETREDIR",
            "    Return the client ID we are redirecting to when tracking is enabled.",
            "GETNAME",
            "    Return the name of the current connection.",
            "ID",
            "    Return the ID of the current connection.",
            "INFO",
            "    Return information about the current client connection.",
            "KILL <ip:port>",
            "    Kill connection made from <ip:port>.",
            "KILL <option> <value> [<option> <value> [...]]",
            "    Kill connections. Options are:",
            "    * ADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made from the specified address",
            "    * LADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made to specified local address",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Kill connections by type.",
            "    * USER <username>",
            "      Kill connections authenticated by <username>.",
            "    * SKIPME (YES|NO)",
            "      Skip killing current connection (default: yes).",
            "LIST [options ...]",
            "    Return information about client connections. Options:",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Return clients of specified type.",
            "UNPAUSE",
            "    Stop the current client pause, resuming traffic.",
            "PAUSE <timeout> [WRITE|ALL]",
            "    Suspend all, or just write, clients for <timeout> milliseconds.",
            "REPLY (ON|OFF|SKIP)",
            "    Control the replies sent to the current connection.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            "SETINFO <option> <value>",
            "    Set client meta attr. Options are:",
            "    * LIB-NAME: the client lib name.",
            "    * LIB-VER: the client lib version.",
            "UNBLOCK <clientid> [TIMEOUT|ERROR]",
            "    Unblock the specified blocked client.",
            "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
            "         [OPTIN] [OPTOUT] [NOLOOP]",
            "    Control server assisted client side caching.",
            "TRACKINGINFO",
            "    Report tracking status for the current connection.",
            "NO-EVICT (ON|OFF)",
            "    Protect current client connection from eviction.",
            "NO-TOUCH (ON|OFF)",
            "    Will not touch LRU/LFU stats when this mode is on.",
        ],
    ))
}

/// The CLIENT LIST line of one client (without its newline), in Redis's field order.
fn client_line(engine: &crate::engine::Engine, client: &ClientInfo) -> String {
    let now_ms = engine.now_ms();
    let flags = client.flags.load(Ordering::Relaxed);
    let mut letters = String::new();
    if client.class() == ClientKind::PubSub {
        letters.push('P');
    }
    for (bit, letter) in [
        (flag::MONITOR, 'O'),
        (flag::MULTI, 'x'),
        (flag::BLOCKED | flag::PAUSED, 'b'),
        (flag::CLOSE_ASAP, 'A'),
        (flag::NO_EVICT, 'e'),
        (flag::NO_TOUCH, 'T'),
    ] {
        if flags & bit != 0 {
            letters.push(letter);
        }
    }
    if letters.is_empty() {
        letters.push('N');
    }
    let addr = |a: Option<std::net::SocketAddr>| a.map_or_else(String::new, |a| a.to_string());
    let multi = if flags & flag::MULTI != 0 {
        client.multi_len.load(Ordering::Relaxed) as i64
    } else {
        -1
    };
    let command = match client.last_command.load(Ordering::Relaxed) {
        u32::MAX => "NULL".to_string(),
        id => engine
            .commands
            .entry(CommandId(id as u16))
            .full_name
            .clone(),
    };
    let query = client.query_bytes.load(Ordering::Relaxed);
    let output = client.output_bytes.load(Ordering::Relaxed);
    let (lib_name, lib_ver) = client.lib.lock().clone();
    format!(
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={letters} db={} sub={} psub={} ssub={} multi={multi} qbuf={query} qbuf-free=0 argv-mem=0 multi-mem=0 rbs={output} rbp={output} obl=0 oll=0 omem={output} tot-mem={} events=r cmd={command} user=default redir=-1 resp={} lib-name={} lib-ver={}",
        client.id.0,
        addr(client.peer),
        addr(client.local),
        client.fd,
        String::from_utf8_lossy(&client.name()),
        now_ms.saturating_sub(client.created_ms) / 1000,
        now_ms.saturating_sub(client.last_interaction_ms.load(Ordering::Relaxed)) / 1000,
        client.db.load(Ordering::Relaxed),
        client.subscriptions[0].load(Ordering::Relaxed),
        client.subscriptions[1].load(Ordering::Relaxed),
        client.subscriptions[2].load(Ordering::Relaxed),
        query + output,
        client.resp.load(Ordering::Relaxed),
        String::from_utf8_lossy(&lib_name),
        String::from_utf8_lossy(&lib_ver),
    )
}

fn client_info(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    let info = cx.conn()?.info.clone();
    let line = client_line(cx.engine, &info) + "\n";
    Ok(Reply::Verbatim(line.as_bytes().into()))
}

/// A client type name of CLIENT LIST TYPE / CLIENT KILL TYPE.
fn client_kind(arg: &[u8]) -> Result<ClientKind, CmdError> {
    if is(arg, "normal") {
        Ok(ClientKind::Normal)
    } else if is(arg, "replica") || is(arg, "slave") {
        Ok(ClientKind::Replica)
    } else if is(arg, "pubsub") {
        Ok(ClientKind::PubSub)
    } else if is(arg, "master") {
        // No master link is a client of its own here: the type matches nobody listed.
        Ok(ClientKind::Embedded)
    } else {
        Err(CmdError::msg(format!(
            "ERR Unknown client type '{}'",
            String::from_utf8_lossy(arg)
        )))
    }
}

fn client_list(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let all = cx.engine.clients.all();
    let chosen: Vec<&Arc<ClientInfo>> = match argv.get(2) {
        None => all.iter().collect(),
        Some(option) if is(option, "type") && argv.len() == 4 => {
            let kind = client_kind(argv[3])?;
            all.iter().filter(|c| c.class() == kind).collect()
        }
        Some(option) if is(option, "id") && argv.len() > 3 => {
            let mut chosen = Vec::new();
            for arg in &argv[3..] {
                let id = parse_i64(arg).map_err(|_| CmdError::new("ERR Invalid client ID"))?;
                chosen.extend(all.iter().filter(|c| c.id.0 as i64 == id));
            }
            chosen
        }
        Some(_) => return Err(SYNTAX),
    };
    let mut text = String::new();
    for client in chosen {
        text.push_str(&client_line(cx.engine, client));
        text.push('\n');
    }
    Ok(Reply::Verbatim(text.as_bytes().into()))
}

/// CLIENT KILL filters; every one given must match.
#[derive(Default)]
struct KillFilter {
    id: Option<u64>,
    kind: Option<ClientKind>,
    addr: Option<Vec<u8>>,
    laddr: Option<Vec<u8>>,
    skip_me: bool,
}

impl KillFilter {
    fn parse(args: &[&[u8]]) -> Result<KillFilter, CmdError> {
        let mut filter = KillFilter {
            skip_me: true,
            ..KillFilter::default()
        };
        for pair in args.chunks(2) {
            let [option, value] = pair else {
                return Err(SYNTAX);
            };
            if is(option, "id") {
                let id = parse_i64(value)
                    .ok()
                    .filter(|&id| id > 0)
                    .ok_or(CmdError::new("ERR client-id should be greater than 0"))?;
                filter.id = Some(id as u64);
            } else if is(option, "type") {
                filter.kind = Some(client_kind(value)?);
            } else if is(option, "addr") {
                filter.addr = Some(value.to_vec());
            } else if is(option, "laddr") {
                filter.laddr = Some(value.to_vec());
            } else if is(option, "user") {
                // There is one user, `default`, and every client is authenticated as it.
                if *value != b"default" {
                    return Err(CmdError::msg(format!(
                        "ERR No such user '{}'",
                        String::from_utf8_lossy(value)
                    )));
                }
            } else if is(option, "skipme") {
                filter.skip_me = if is(value, "yes") {
                    true
                } else if is(value, "no") {
                    false
                } else {
                    return Err(SYNTAX);
                };
            } else {
                return Err(SYNTAX);
            }
        }
        Ok(filter)
    }

    fn matches(&self, client: &ClientInfo, me: ClientId) -> bool {
        let addr = |a: Option<std::net::SocketAddr>| a.map(|a| a.to_string().into_bytes());
        !(self.skip_me && client.id == me)
            && self.id.is_none_or(|id| client.id.0 == id)
            && self.kind.is_none_or(|k| client.class() == k)
            && self
                .addr
                .as_ref()
                .is_none_or(|a| addr(client.peer).as_ref() == Some(a))
            && self
                .laddr
                .as_ref()
                .is_none_or(|a| addr(client.local).as_ref() == Some(a))
    }
}

fn client_kill(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let me = cx.conn()?.info.id;
    let all = cx.engine.clients.all();
    // The old form, CLIENT KILL addr:port, may kill the caller itself.
    if argv.len() == 3 {
        let victims: Vec<_> = all
            .iter()
            .filter(|c| c.peer.is_some_and(|p| p.to_string().as_bytes() == argv[2]))
            .collect();
        if victims.is_empty() {
            return Err(CmdError::new("ERR No such client"));
        }
        kill_all(cx, &victims, me)?;
        return Ok(Reply::OK);
    }
    let filter = KillFilter::parse(&argv[2..])?;
    let victims: Vec<_> = all.iter().filter(|c| filter.matches(c, me)).collect();
    kill_all(cx, &victims, me)?;
    Ok(Reply::Int(victims.len() as i64))
}

/// Kills `victims`; the caller, if among them, gets its reply first and is closed after it.
fn kill_all(
    cx: &mut Ctx<'_, '_>,
    victims: &[&Arc<ClientInfo>],
    me: ClientId,
) -> Result<(), CmdError> {
    for victim in victims {
        if victim.id == me {
            cx.conn()?.close_after_reply = true;
        } else {
            victim.kill();
        }
    }
    Ok(())
}

fn client_id(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    Ok(Reply::Int(cx.conn()?.info.id.0 as i64))
}

fn client_getname(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    let name = cx.conn()?.info.name();
    Ok(if name.is_empty() {
        Reply::Nil
    } else {
        Reply::Bulk(name)
    })
}

/// Whether every byte of a client name (or library name) is printable and not a space.
fn printable(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

fn set_name(cx: &mut Ctx<'_, '_>, name: &[u8]) -> Result<(), CmdError> {
    if !printable(name) {
        return Err(CmdError::new(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    *cx.conn()?.info.name.lock() = CompactBytes::new(name);
    Ok(())
}

fn client_setname(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    set_name(cx, argv[2])?;
    Ok(Reply::OK)
}

fn client_setinfo(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let (attribute, value) = (argv[2], argv[3]);
    let lib_name = is(attribute, "lib-name");
    if !lib_name && !is(attribute, "lib-ver") {
        return Err(CmdError::msg(format!(
            "ERR Unrecognized option '{}'",
            String::from_utf8_lossy(attribute)
        )));
    }
    if !printable(value) {
        return Err(CmdError::msg(format!(
            "ERR {} cannot contain spaces, newlines or special characters.",
            if lib_name { "lib-name" } else { "lib-ver" }
        )));
    }
    let info = cx.conn()?.info.clone();
    let mut lib = info.lib.lock();
    let slot = if lib_name { &mut lib.0 } else { &mut lib.1 };
    *slot = CompactBytes::new(value);
    Ok(Reply::OK)
}

fn client_reply(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let conn = cx.conn()?;
    let mode = argv[2];
    if is(mode, "on") {
        conn.reply_mode = ReplyMode::On;
    } else if is(mode, "off") {
        conn.reply_mode = ReplyMode::Off;
    } else if is(mode, "skip") {
        if conn.reply_mode != ReplyMode::Off {
            conn.reply_mode = ReplyMode::SkipNext;
        }
    } else {
        return Err(SYNTAX);
    }
    Ok(Reply::OK)
}

fn client_pause(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    if argv.len() > 4 {
        return Err(super::subcommand_syntax_error(argv));
    }
    let scope = match argv.get(3) {
        None => PauseScope::All,
        Some(mode) if is(mode, "all") => PauseScope::All,
        Some(mode) if is(mode, "write") => PauseScope::Write,
        Some(_) => return Err(CmdError::new("ERR CLIENT PAUSE mode must be WRITE or ALL")),
    };
    let timeout_ms = parse_i64(argv[2])
        .map_err(|_| CmdError::new("ERR timeout is not an integer or out of range"))?;
    if timeout_ms < 0 {
        return Err(CmdError::new("ERR timeout is negative"));
    }
    let now = cx.engine.now_ms();
    cx.engine
        .pause
        .start(scope, now.saturating_add(timeout_ms as u64), now);
    Ok(Reply::OK)
}

fn client_unpause(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    cx.engine.pause.end();
    Ok(Reply::OK)
}

fn client_unblock(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    if argv.len() > 4 {
        return Err(super::subcommand_syntax_error(argv));
    }
    let how = match argv.get(3) {
        None => Unblock::Timeout,
        Some(mode) if is(mode, "timeout") => Unblock::Timeout,
        Some(mode) if is(mode, "error") => Unblock::Error,
        Some(_) => {
            return Err(CmdError::new(
                "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
            ))
        }
    };
    let id = parse_i64(argv[2])?;
    let unblocked = u64::try_from(id)
        .ok()
        .and_then(|id| cx.engine.clients.get(ClientId(id)))
        .is_some_and(|client| client.unblock(how));
    Ok(Reply::Int(i64::from(unblocked)))
}

/// `on` or `off`, else a syntax error.
fn on_off(arg: &[u8]) -> Result<bool, CmdError> {
    if is(arg, "on") {
        Ok(true)
    } else if is(arg, "off") {
        Ok(false)
    } else {
        Err(SYNTAX)
    }
}

fn client_no_evict(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let on = on_off(argv[2])?;
    cx.conn()?.info.set_flag(flag::NO_EVICT, on);
    Ok(Reply::OK)
}

fn client_no_touch(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let on = on_off(argv[2])?;
    cx.conn()?.info.set_flag(flag::NO_TOUCH, on);
    Ok(Reply::OK)
}

fn client_getredir(_cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    Ok(Reply::Int(-1))
}

fn client_trackinginfo(_cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    let text = |s: &str| Reply::bulk(s.as_bytes());
    Ok(Reply::Map(vec![
        (text("flags"), Reply::Set(vec![text("off")])),
        (text("redirect"), Reply::Int(-1)),
        (text("prefixes"), Reply::Array(Vec::new())),
    ]))
}

/// Client-side caching is not implemented: turning tracking off is accepted (it is off),
/// turning it on is refused rather than silently ignored.
fn client_tracking(_cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    if on_off(argv[2])? {
        return Err(CmdError::new(
            "ERR client-side caching (CLIENT TRACKING on) is not supported",
        ));
    }
    Ok(Reply::OK)
}
