//! Moving keys between servers: DUMP, RESTORE (and RESTORE-ASKING, for a slot being
//! imported), MIGRATE. Payloads are Redis's (an RDB value, the RDB version, a CRC-64), so
//! keys move between Shoal and Redis both ways.

use super::args::{is, parse_i64, SYNTAX};
use super::flags::*;
use super::{CmdError, CmdResult, Command, KeySpec, FIRST_KEY};
use crate::engine::ctx::Ctx;
use crate::persist::rdb::{decode, encode};
use crate::reply::Reply;
use crate::resp::client::{Answer, Client};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A connection MIGRATE kept is dropped after this long unused (Redis's 10 s).
const SOCKET_IDLE_MAX: Duration = Duration::from_secs(10);
/// Connections kept at most (Redis's 64).
const SOCKETS_MAX: usize = 64;

/// Connections MIGRATE keeps to its targets, as Redis does: a reshard runs thousands of
/// MIGRATEs to one node, and a connection each would cost a TCP handshake each.
#[derive(Default)]
pub struct Sockets(Mutex<HashMap<(String, u16), Kept>>);

struct Kept {
    client: Client,
    /// The database last selected on it.
    db: i64,
    last_used: Instant,
}

impl Sockets {
    /// A kept connection to `host:port` and its selected database, taken out of the cache
    /// (so that two MIGRATEs never share one); idle ones are dropped first.
    fn take(&self, host: &str, port: u16) -> Option<(Client, i64)> {
        let mut kept = self.0.lock();
        kept.retain(|_, k| k.last_used.elapsed() < SOCKET_IDLE_MAX);
        let k = kept.remove(&(host.to_string(), port))?;
        Some((k.client, k.db))
    }

    fn put(&self, host: &str, port: u16, client: Client, db: i64) {
        let mut kept = self.0.lock();
        if kept.len() < SOCKETS_MAX {
            let last_used = Instant::now();
            kept.insert(
                (host.to_string(), port),
                Kept {
                    client,
                    db,
                    last_used,
                },
            );
        }
    }
}

pub const COMMANDS: &[Command] = &[
    Command::new("dump", 2, READONLY, FIRST_KEY, dump),
    Command::new("restore", -4, WRITE | DENYOOM, FIRST_KEY, restore),
    Command::new(
        "restore-asking",
        -4,
        WRITE | DENYOOM | ASKING,
        FIRST_KEY,
        restore,
    ),
    Command::new("migrate", -6, WRITE, KeySpec::Migrate, migrate),
];

/// MIGRATE's wait when its timeout argument is not positive (Redis's default).
const MIGRATE_TIMEOUT_DEFAULT_MS: i64 = 1000;

fn dump(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    Ok(match cx.lookup(argv[1])? {
        Some(entry) => Reply::bulk(&encode::dump(&entry.value)),
        None => Reply::Nil,
    })
}

/// RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency].
fn restore(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let ttl = parse_i64(argv[2])?;
    let (mut replace, mut absolute) = (false, false);
    let mut i = 4;
    while i < argv.len() {
        let has_value = i + 1 < argv.len();
        if is(argv[i], "replace") {
            replace = true;
        } else if is(argv[i], "absttl") {
            absolute = true;
        } else if is(argv[i], "idletime") && has_value {
            if parse_i64(argv[i + 1])? < 0 {
                return Err(CmdError::new("ERR Invalid IDLETIME value, must be >= 0"));
            }
            i += 1;
        } else if is(argv[i], "freq") && has_value {
            if !(0..=255).contains(&parse_i64(argv[i + 1])?) {
                return Err(CmdError::new(
                    "ERR Invalid FREQ value, must be >= 0 and <= 255",
                ));
            }
            i += 1;
        } else {
            return Err(SYNTAX);
        }
        i += 1;
    }
    if ttl < 0 {
        return Err(CmdError::new("ERR Invalid TTL value, must be >= 0"));
    }
    if !replace && cx.exists(key)? {
        return Err(CmdError::new("BUSYKEY Target key name already exists."));
    }
    let limits = cx.engine.live.encoding();
    let value = match decode::undump(argv[3], &limits) {
        Ok(Some(value)) => value,
        Ok(None) | Err(decode::DumpError::BadFormat) => {
            return Err(CmdError::new("ERR Bad data format"))
        }
        Err(decode::DumpError::VersionOrChecksum) => {
            return Err(CmdError::new(
                "ERR DUMP payload version or checksum are wrong",
            ))
        }
    };
    let expire_at_ms = match (ttl, absolute) {
        (0, _) => 0,
        (ttl, true) => ttl as u64,
        (ttl, false) => cx.now_ms().saturating_add(ttl as u64),
    };
    let abs = expire_at_ms.to_string();
    if expire_at_ms != 0 && expire_at_ms <= cx.now_ms() {
        // Already expired: nothing is stored, and what was there is replaced by nothing.
        if cx.remove(key)?.is_some() {
            cx.propagate(&[b"DEL", key]);
        }
        return Ok(Reply::OK);
    }
    cx.store(key, value, expire_at_ms)?;
    // An absolute expiry, so that a replica or the AOF restores the same key.
    cx.propagate(&[
        b"RESTORE",
        key,
        abs.as_bytes(),
        argv[3],
        b"REPLACE",
        b"ABSTTL",
    ]);
    Ok(Reply::OK)
}

/// MIGRATE's arguments.
struct Migration<'a> {
    host: String,
    port: u16,
    db: i64,
    timeout: Duration,
    copy: bool,
    replace: bool,
    auth: Vec<&'a [u8]>,
    keys: Vec<&'a [u8]>,
}

/// MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE] [AUTH password]
/// [AUTH2 username password] [KEYS key ...].
fn parse_migrate<'a>(argv: &[&'a [u8]]) -> Result<Migration<'a>, CmdError> {
    let port = parse_i64(argv[2])?;
    let db = parse_i64(argv[4])?;
    let timeout_ms = match parse_i64(argv[5])? {
        t if t <= 0 => MIGRATE_TIMEOUT_DEFAULT_MS,
        t => t,
    };
    let mut m = Migration {
        host: String::from_utf8_lossy(argv[1]).into_owned(),
        port: u16::try_from(port).map_err(|_| CmdError::new("ERR Invalid port"))?,
        db,
        timeout: Duration::from_millis(timeout_ms as u64),
        copy: false,
        replace: false,
        auth: Vec::new(),
        keys: Vec::new(),
    };
    let mut i = 6;
    while i < argv.len() {
        let left = argv.len() - i - 1;
        if is(argv[i], "copy") {
            m.copy = true;
        } else if is(argv[i], "replace") {
            m.replace = true;
        } else if is(argv[i], "auth") && left >= 1 {
            m.auth = vec![argv[i + 1]];
            i += 1;
        } else if is(argv[i], "auth2") && left >= 2 {
            m.auth = vec![argv[i + 1], argv[i + 2]];
            i += 2;
        } else if is(argv[i], "keys") {
            if !argv[3].is_empty() {
                return Err(CmdError::new("ERR When using MIGRATE KEYS option, the key argument must be set to the empty string"));
            }
            m.keys.extend_from_slice(&argv[i + 1..]);
            break;
        } else {
            return Err(SYNTAX);
        }
        i += 1;
    }
    if m.keys.is_empty() {
        m.keys.push(argv[3]);
    }
    Ok(m)
}

/// MIGRATE: restores the keys on the target (RESTORE-ASKING in cluster mode), then deletes
/// them here unless COPY. The keys' slots stay locked throughout, so no write to them is
/// lost between the copy and the delete.
fn migrate(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let m = parse_migrate(argv)?;
    let now_ms = cx.now_ms();
    let mut found: Vec<(&[u8], Vec<u8>, u64)> = Vec::new();
    for &key in &m.keys {
        if let Some(entry) = cx.lookup(key)? {
            let ttl_ms = entry
                .expire_at()
                .map_or(0, |at| at.saturating_sub(now_ms).max(1));
            found.push((key, encode::dump(&entry.value), ttl_ms));
        }
    }
    if found.is_empty() {
        return Ok(Reply::Status("NOKEY".into()));
    }
    let restore: &[u8] = if cx.engine.config().cluster_enabled {
        b"RESTORE-ASKING"
    } else {
        b"RESTORE"
    };
    let db = m.db.to_string();
    let ttls: Vec<String> = found.iter().map(|(_, _, ttl)| ttl.to_string()).collect();
    let build = |select: bool| {
        let mut commands: Vec<Vec<&[u8]>> = Vec::new();
        if !m.auth.is_empty() {
            let mut auth: Vec<&[u8]> = vec![b"AUTH"];
            auth.extend(&m.auth);
            commands.push(auth);
        }
        if select {
            commands.push(vec![b"SELECT", db.as_bytes()]);
        }
        for ((key, payload, _), ttl) in found.iter().zip(&ttls) {
            let mut command: Vec<&[u8]> = vec![restore, key, ttl.as_bytes(), payload];
            if m.replace {
                command.push(b"REPLACE");
            }
            commands.push(command);
        }
        commands
    };
    let connect = || {
        Client::connect(&m.host, m.port, m.timeout)
            .map_err(|_| CmdError::new("IOERR error or timeout connecting to the client"))
    };
    let write_failed = || CmdError::new("IOERR error or timeout writing to target instance");
    let sockets = &cx.engine.migrate_sockets;
    let fresh = || {
        let (mut client, commands) = (connect()?, build(true));
        client.send(&commands).map_err(|_| write_failed())?;
        Ok::<_, CmdError>((client, commands))
    };
    let (mut client, commands) = match sockets.take(&m.host, m.port) {
        Some((mut kept, kept_db)) if kept.set_timeout(m.timeout).is_ok() => {
            let commands = build(kept_db != m.db);
            match kept.send(&commands) {
                Ok(()) => (kept, commands),
                // The target closed the kept connection: once more on a new one.
                Err(_) => fresh()?,
            }
        }
        _ => fresh()?,
    };
    let preamble = commands.len() - found.len();
    let mut first_error = None;
    let mut refused_preamble = false;
    let mut moved = Vec::new();
    for i in 0..commands.len() {
        let answer = client
            .read()
            .map_err(|_| CmdError::new("IOERR error or timeout reading to target instance"))?;
        match answer {
            Answer::Error(e) => {
                first_error.get_or_insert(e);
            }
            _ if i >= preamble => moved.push(found[i - preamble].0),
            _ => {}
        }
        // A refused AUTH or SELECT means no RESTORE ran.
        if i < preamble && first_error.is_some() {
            refused_preamble = true;
            break;
        }
    }
    // Kept for the next MIGRATE, unless the target refused AUTH or SELECT.
    if !refused_preamble {
        sockets.put(&m.host, m.port, client, m.db);
    }
    if !m.copy {
        for key in &moved {
            if cx.remove(key)?.is_some() {
                cx.propagate(&[b"DEL", key]);
            }
        }
    }
    match first_error {
        Some(e) => Err(CmdError::msg(format!(
            "ERR Target instance replied with error: {e}"
        ))),
        None => Ok(Reply::OK),
    }
}
