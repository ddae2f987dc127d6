//! String commands.

use super::args::{fmt_int, is, parse_i64, NOT_INT, SYNTAX};
use super::flags::*;
use super::longdouble::LongDouble;
use super::{CmdError, CmdResult, Command, KeySpec, FIRST_KEY};
use crate::engine::ctx::Ctx;
use crate::engine::notify::class;
use crate::keyspace::bytes::CompactBytes;
use crate::keyspace::value::{parse_i64_strict, Value};
use crate::reply::{err, Reply};

pub const COMMANDS: &[Command] = &[
    Command::new("get", 2, READONLY | FAST, FIRST_KEY, get),
    Command::new("set", -3, WRITE | DENYOOM, FIRST_KEY, set),
    Command::new("setnx", 3, WRITE | DENYOOM | FAST, FIRST_KEY, setnx),
    Command::new("setex", 4, WRITE | DENYOOM, FIRST_KEY, setex),
    Command::new("psetex", 4, WRITE | DENYOOM, FIRST_KEY, psetex),
    Command::new("getset", 3, WRITE | DENYOOM | FAST, FIRST_KEY, getset),
    Command::new("getdel", 2, WRITE | FAST, FIRST_KEY, getdel),
    Command::new("getex", -2, WRITE | FAST, FIRST_KEY, getex),
    Command::new(
        "mget",
        -2,
        READONLY | FAST,
        KeySpec::Range {
            first: 1,
            last: -1,
            step: 1,
        },
        mget,
    ),
    Command::new(
        "mset",
        -3,
        WRITE | DENYOOM,
        KeySpec::Range {
            first: 1,
            last: -1,
            step: 2,
        },
        mset,
    ),
    Command::new(
        "msetnx",
        -3,
        WRITE | DENYOOM,
        KeySpec::Range {
            first: 1,
            last: -1,
            step: 2,
        },
        msetnx,
    ),
    Command::new("append", 3, WRITE | DENYOOM | FAST, FIRST_KEY, append),
    Command::new("strlen", 2, READONLY | FAST, FIRST_KEY, strlen),
    Command::new("incr", 2, WRITE | DENYOOM | FAST, FIRST_KEY, incr),
    Command::new("decr", 2, WRITE | DENYOOM | FAST, FIRST_KEY, decr),
    Command::new("incrby", 3, WRITE | DENYOOM | FAST, FIRST_KEY, incrby),
    Command::new("decrby", 3, WRITE | DENYOOM | FAST, FIRST_KEY, decrby),
    Command::new(
        "incrbyfloat",
        3,
        WRITE | DENYOOM | FAST,
        FIRST_KEY,
        incrbyfloat,
    ),
    Command::new("getrange", 4, READONLY, FIRST_KEY, getrange),
    Command::new("substr", 4, READONLY, FIRST_KEY, getrange),
    Command::new("setrange", 4, WRITE | DENYOOM, FIRST_KEY, setrange),
    Command::new(
        "lcs",
        -3,
        READONLY,
        KeySpec::Range {
            first: 1,
            last: 2,
            step: 1,
        },
        lcs,
    ),
];

/// The string at `key`, WRONGTYPE for another type.
fn get_string<'a>(
    cx: &'a mut Ctx<'_, '_>,
    key: &[u8],
) -> Result<Option<&'a CompactBytes>, CmdError> {
    cx.get::<CompactBytes>(key)
}

fn get(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    Ok(Reply::opt_value(get_string(cx, argv[1])?))
}

#[derive(Copy, Clone, PartialEq, Eq)]
enum ExpireKind {
    Ex,
    Px,
    ExAt,
    PxAt,
}

#[derive(Default)]
struct SetOptions<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    expire: Option<(ExpireKind, &'a [u8])>,
}

/// Parses SET's options (or GETEX's, with `getex`), applying Redis's compatibility rules.
fn parse_set_options<'a>(options: &[&'a [u8]], getex: bool) -> Result<SetOptions<'a>, CmdError> {
    let mut o = SetOptions::default();
    let mut i = 0;
    while i < options.len() {
        let arg = options[i];
        let kind = if is(arg, "ex") {
            Some(ExpireKind::Ex)
        } else if is(arg, "px") {
            Some(ExpireKind::Px)
        } else if is(arg, "exat") {
            Some(ExpireKind::ExAt)
        } else if is(arg, "pxat") {
            Some(ExpireKind::PxAt)
        } else {
            None
        };
        if let Some(kind) = kind {
            let conflict = o.keepttl || o.persist || o.expire.is_some_and(|(k, _)| k != kind);
            let Some(&value) = options.get(i + 1).filter(|_| !conflict) else {
                return Err(SYNTAX);
            };
            o.expire = Some((kind, value));
            i += 2;
            continue;
        }
        let ok = if !getex && is(arg, "nx") && !o.xx {
            o.nx = true;
            true
        } else if !getex && is(arg, "xx") && !o.nx {
            o.xx = true;
            true
        } else if !getex && is(arg, "get") {
            o.get = true;
            true
        } else if !getex && is(arg, "keepttl") && o.expire.is_none() {
            o.keepttl = true;
            true
        } else if getex && is(arg, "persist") && o.expire.is_none() {
            o.persist = true;
            true
        } else {
            false
        };
        if !ok {
            return Err(SYNTAX);
        }
        i += 1;
    }
    Ok(o)
}

fn invalid_expire(command: &str) -> CmdError {
    CmdError::msg(format!("ERR invalid expire time in '{command}' command"))
}

/// Converts an EX/PX/EXAT/PXAT argument into absolute Unix milliseconds.
fn absolute_expire_ms(
    kind: ExpireKind,
    arg: &[u8],
    now_ms: u64,
    command: &str,
) -> Result<u64, CmdError> {
    let value = parse_i64(arg)?;
    if value <= 0 {
        return Err(invalid_expire(command));
    }
    let seconds = matches!(kind, ExpireKind::Ex | ExpireKind::ExAt);
    let ms = if seconds {
        value
            .checked_mul(1000)
            .ok_or_else(|| invalid_expire(command))?
    } else {
        value
    };
    let relative = matches!(kind, ExpireKind::Ex | ExpireKind::Px);
    let at = if relative {
        ms.checked_add(now_ms as i64)
            .ok_or_else(|| invalid_expire(command))?
    } else {
        ms
    };
    Ok(at as u64)
}

/// Stores a string, keeping or replacing the TTL; logs `SET key value PXAT at` when it has one.
fn store_string(
    cx: &mut Ctx<'_, '_>,
    key: &[u8],
    value: &[u8],
    expire_at_ms: u64,
) -> Result<(), CmdError> {
    cx.store(key, Value::Str(CompactBytes::new(value)), expire_at_ms)?;
    Ok(())
}

fn propagate_set_pxat(cx: &mut Ctx<'_, '_>, key: &[u8], value: &[u8], at: u64) {
    cx.propagate(&[b"SET", key, value, b"PXAT", fmt_int(at as i64).as_bytes()]);
}

fn set(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let (key, value) = (argv[1], argv[2]);
    let o = parse_set_options(&argv[3..], false)?;
    let expire_at = match o.expire {
        Some((kind, arg)) => Some(absolute_expire_ms(kind, arg, cx.now_ms(), "set")?),
        None => None,
    };
    let old = if o.get {
        Some(
            get_string(cx, key)?
                .map(|s| Reply::bulk(s))
                .unwrap_or(Reply::Nil),
        )
    } else {
        None
    };
    if o.nx || o.xx {
        let exists = cx.exists(key)?;
        if (o.nx && exists) || (o.xx && !exists) {
            return Ok(old.unwrap_or(Reply::Nil));
        }
    }
    let keep = if o.keepttl {
        cx.lookup(key)?.and_then(|e| e.expire_at()).unwrap_or(0)
    } else {
        0
    };
    store_string(cx, key, value, expire_at.unwrap_or(keep))?;
    match expire_at {
        Some(at) => propagate_set_pxat(cx, key, value, at),
        None if o.get => {
            let kept: Vec<&[u8]> = argv
                .iter()
                .enumerate()
                .filter(|(i, a)| *i < 3 || !is(a, "get"))
                .map(|(_, a)| *a)
                .collect();
            cx.propagate(&kept);
        }
        None => cx.propagate(argv),
    }
    Ok(old.unwrap_or(Reply::OK))
}

fn setnx(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    if cx.exists(argv[1])? {
        return Ok(Reply::Int(0));
    }
    store_string(cx, argv[1], argv[2], 0)?;
    cx.propagate(argv);
    Ok(Reply::Int(1))
}

fn setex_generic(cx: &mut Ctx<'_, '_>, argv: &[&[u8]], kind: ExpireKind, name: &str) -> CmdResult {
    let at = absolute_expire_ms(kind, argv[2], cx.now_ms(), name)?;
    store_string(cx, argv[1], argv[3], at)?;
    propagate_set_pxat(cx, argv[1], argv[3], at);
    Ok(Reply::OK)
}

fn setex(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    setex_generic(cx, argv, ExpireKind::Ex, "setex")
}

fn psetex(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    setex_generic(cx, argv, ExpireKind::Px, "psetex")
}

fn getset(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let old = Reply::opt_value(get_string(cx, argv[1])?);
    store_string(cx, argv[1], argv[2], 0)?;
    cx.propagate(&[b"SET", argv[1], argv[2]]);
    Ok(old)
}

fn getdel(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let Some(value) = get_string(cx, argv[1])?.map(|s| Reply::bulk(s)) else {
        return Ok(Reply::Nil);
    };
    cx.remove(argv[1])?;
    cx.propagate(&[b"DEL", argv[1]]);
    Ok(value)
}

fn getex(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let o = parse_set_options(&argv[2..], true)?;
    let Some(value) = get_string(cx, key)?.map(|s| Reply::bulk(s)) else {
        return Ok(Reply::Nil);
    };
    if let Some((kind, arg)) = o.expire {
        let now = cx.now_ms();
        let at = absolute_expire_ms(kind, arg, now, "getex")?;
        if at <= now && !cx.replaying {
            cx.remove(key)?;
            cx.propagate(&[b"DEL", key]);
        } else {
            cx.set_expire(key, at)?;
            cx.touch(key)?;
            cx.propagate(&[b"PEXPIREAT", key, fmt_int(at as i64).as_bytes()]);
        }
    } else if o.persist && cx.lookup(key)?.and_then(|e| e.expire_at()).is_some() {
        cx.set_expire(key, 0)?;
        cx.touch(key)?;
        cx.propagate(&[b"PERSIST", key]);
    }
    Ok(value)
}

fn mget(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let mut out = Vec::with_capacity(argv.len() - 1);
    for key in &argv[1..] {
        let value = match cx.lookup(key)?.map(|e| &e.value) {
            Some(Value::Str(s)) => Reply::bulk(s),
            _ => Reply::Nil,
        };
        out.push(value);
    }
    Ok(Reply::Array(out))
}

fn check_pairs(argv: &[&[u8]], name: &str) -> Result<(), CmdError> {
    if argv.len().is_multiple_of(2) {
        return Err(super::arity_error(name));
    }
    Ok(())
}

fn mset(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    check_pairs(argv, "mset")?;
    store_pairs(cx, argv)?;
    Ok(Reply::OK)
}

fn msetnx(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    check_pairs(argv, "msetnx")?;
    for pair in argv[1..].chunks(2) {
        if cx.exists(pair[0])? {
            return Ok(Reply::Int(0));
        }
    }
    store_pairs(cx, argv)?;
    Ok(Reply::Int(1))
}

/// MSET's writes: each key's notification follows its store, as in Redis.
fn store_pairs(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    for pair in argv[1..].chunks(2) {
        store_string(cx, pair[0], pair[1], 0)?;
        cx.notify(class::STRING, "set", pair[0]);
    }
    cx.propagate_quiet(argv);
    Ok(())
}

/// Redis's `checkStringLength`: the result may not exceed proto-max-bulk-len.
/// Applies to replayed streams too: a stream from disk or a peer must not make us allocate
/// beyond the limit either.
fn check_length(cx: &Ctx<'_, '_>, total: u64) -> Result<(), CmdError> {
    if total > cx.engine.live.proto_max_bulk_len() as u64 {
        return Err(CmdError::new(err::STRING_TOO_LONG));
    }
    Ok(())
}

fn append(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let (key, tail) = (argv[1], argv[2]);
    let current = get_string(cx, key)?.map(|s| s.len());
    let len = match current {
        None => {
            store_string(cx, key, tail, 0)?;
            tail.len()
        }
        Some(len) => {
            check_length(cx, len as u64 + tail.len() as u64)?;
            let Some(s) = cx.get_mut::<CompactBytes>(key)? else {
                return Ok(Reply::Int(0));
            };
            let buf = s.make_growable();
            buf.extend_from_slice(tail);
            let len = buf.len();
            cx.touch(key)?;
            len
        }
    };
    cx.propagate(argv);
    Ok(Reply::Int(len as i64))
}

fn strlen(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    Ok(Reply::Int(
        get_string(cx, argv[1])?.map_or(0, |s| s.len() as i64),
    ))
}

/// Adds `delta` to the integer at `key` (0 when missing), keeping its TTL.
fn incr_by(cx: &mut Ctx<'_, '_>, argv: &[&[u8]], delta: i64) -> CmdResult {
    let key = argv[1];
    let current = match get_string(cx, key)? {
        None => None,
        Some(s) => Some(parse_i64_strict(s).ok_or(NOT_INT)?),
    };
    let new = current
        .unwrap_or(0)
        .checked_add(delta)
        .ok_or(CmdError::new(err::OVERFLOW))?;
    replace_string(cx, key, fmt_int(new).as_bytes(), false)?;
    cx.propagate(argv);
    Ok(Reply::Int(new))
}

/// Replaces a string's content keeping its TTL (creating it when missing); `float` marks an
/// INCRBYFLOAT result, which Redis keeps as text.
fn replace_string(
    cx: &mut Ctx<'_, '_>,
    key: &[u8],
    text: &[u8],
    float: bool,
) -> Result<(), CmdError> {
    match cx.lookup_mut(key)? {
        Some(entry) => {
            entry.value = Value::Str(CompactBytes::new(text));
            entry.set_float_string(float);
            cx.touch(key)?;
        }
        None => {
            store_string(cx, key, text, 0)?;
            if let Some(entry) = cx.lookup_mut(key)? {
                entry.set_float_string(float);
            }
        }
    }
    Ok(())
}

fn incr(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    incr_by(cx, argv, 1)
}

fn decr(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    incr_by(cx, argv, -1)
}

fn incrby(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let delta = parse_i64(argv[2])?;
    incr_by(cx, argv, delta)
}

fn decrby(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let delta = parse_i64(argv[2])?;
    let negated = delta
        .checked_neg()
        .ok_or(CmdError::new("ERR decrement would overflow"))?;
    incr_by(cx, argv, negated)
}

/// Adds a long-double increment to a stored number (INCRBYFLOAT, HINCRBYFLOAT).
pub fn add_float(
    current: Option<&[u8]>,
    increment: &[u8],
    not_float: &'static str,
) -> Result<String, CmdError> {
    let base = match current {
        None => LongDouble::ZERO,
        Some(s) => LongDouble::parse(s).ok_or(CmdError::new(not_float))?,
    };
    let incr = LongDouble::parse(increment).ok_or(CmdError::new(err::NOT_FLOAT))?;
    let sum = base + incr;
    if !sum.is_finite() {
        return Err(CmdError::new(err::NAN_OR_INF));
    }
    Ok(sum.to_human())
}

fn incrbyfloat(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let current = get_string(cx, key)?.map(|s| s.to_vec());
    let text = add_float(current.as_deref(), argv[2], err::NOT_FLOAT)?;
    replace_string(cx, key, text.as_bytes(), true)?;
    cx.propagate_quiet(&[b"SET", key, text.as_bytes(), b"KEEPTTL"]);
    cx.notify(class::STRING, "incrbyfloat", key);
    Ok(Reply::bulk(text.as_bytes()))
}

fn getrange(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let start = parse_i64(argv[2])?;
    let end = parse_i64(argv[3])?;
    let Some(s) = get_string(cx, argv[1])? else {
        return Ok(Reply::bulk(b""));
    };
    let len = s.len() as i64;
    if (start < 0 && end < 0 && start > end) || len == 0 {
        return Ok(Reply::bulk(b""));
    }
    let start = if start < 0 {
        start.saturating_add(len).max(0)
    } else {
        start
    };
    let end = if end < 0 {
        end.saturating_add(len).max(0)
    } else {
        end
    };
    let end = end.min(len - 1);
    if start > end {
        return Ok(Reply::bulk(b""));
    }
    Ok(Reply::bulk(&s[start as usize..=end as usize]))
}

fn setrange(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let (key, patch) = (argv[1], argv[3]);
    let offset = parse_i64(argv[2])?;
    if offset < 0 {
        return Err(CmdError::new(err::OFFSET_RANGE));
    }
    let offset = offset as u64;
    let current = get_string(cx, key)?.map(|s| s.len());
    if patch.is_empty() {
        return Ok(Reply::Int(current.unwrap_or(0) as i64));
    }
    check_length(cx, offset + patch.len() as u64)?;
    let offset = offset as usize;
    let len = match current {
        None => {
            let mut buf = vec![0u8; offset + patch.len()];
            buf[offset..].copy_from_slice(patch);
            let len = buf.len();
            cx.store(key, Value::Str(CompactBytes::growable(buf)), 0)?;
            len
        }
        Some(_) => {
            let Some(s) = cx.get_mut::<CompactBytes>(key)? else {
                return Ok(Reply::Int(0));
            };
            let buf = s.make_growable();
            if buf.len() < offset + patch.len() {
                buf.resize(offset + patch.len(), 0);
            }
            buf[offset..offset + patch.len()].copy_from_slice(patch);
            let len = buf.len();
            cx.touch(key)?;
            len
        }
    };
    cx.propagate(argv);
    Ok(Reply::Int(len as i64))
}

fn lcs(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let mut strings = [Vec::new(), Vec::new()];
    for (i, key) in argv[1..3].iter().enumerate() {
        match cx.lookup(key)?.map(|e| &e.value) {
            None => {}
            Some(Value::Str(s)) => strings[i] = s.to_vec(),
            Some(_) => {
                return Err(CmdError::new(
                    "ERR The specified keys must contain string values",
                ))
            }
        }
    }
    let (mut want_len, mut want_idx, mut with_len, mut min_len) = (false, false, false, 0i64);
    let mut i = 3;
    while i < argv.len() {
        let arg = argv[i];
        if is(arg, "idx") {
            want_idx = true;
        } else if is(arg, "len") {
            want_len = true;
        } else if is(arg, "withmatchlen") {
            with_len = true;
        } else if is(arg, "minmatchlen") && i + 1 < argv.len() {
            min_len = parse_i64(argv[i + 1])?.max(0);
            i += 1;
        } else {
            return Err(SYNTAX);
        }
        i += 1;
    }
    if want_len && want_idx {
        return Err(CmdError::new(
            "ERR If you want both the length and indexes, please just use IDX.",
        ));
    }
    let (a, b) = (&strings[0], &strings[1]);
    let cells = (a.len() as u64 + 1) * (b.len() as u64 + 1);
    if cells * 4 > cx.engine.live.proto_max_bulk_len() as u64 {
        return Err(CmdError::new(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    let table = lcs_table(a, b);
    let width = b.len() + 1;
    let total = table[a.len() * width + b.len()];
    if want_len {
        return Ok(Reply::Int(i64::from(total)));
    }
    let (common, matches) = lcs_backtrack(a, b, &table, min_len as usize, with_len);
    if !want_idx {
        return Ok(Reply::bulk(&common));
    }
    let pairs = vec![
        (Reply::bulk(b"matches"), Reply::Array(matches)),
        (Reply::bulk(b"len"), Reply::Int(i64::from(total))),
    ];
    Ok(Reply::Map(pairs))
}

/// The dynamic-programming table: cell (i, j) is the LCS length of a[..i] and b[..j].
fn lcs_table(a: &[u8], b: &[u8]) -> Vec<u32> {
    let width = b.len() + 1;
    let mut table = vec![0u32; (a.len() + 1) * width];
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            table[i * width + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * width + j - 1] + 1
            } else {
                table[(i - 1) * width + j].max(table[i * width + j - 1])
            };
        }
    }
    table
}

/// Walks the table back from the end, collecting the common string and the matched ranges
/// (last match first, as Redis reports them).
fn lcs_backtrack(
    a: &[u8],
    b: &[u8],
    table: &[u32],
    min_len: usize,
    with_len: bool,
) -> (Vec<u8>, Vec<Reply>) {
    let width = b.len() + 1;
    let (mut i, mut j) = (a.len(), b.len());
    let mut common = Vec::new();
    let mut matches = Vec::new();
    // Open range: (a_start, a_end, b_start, b_end).
    let mut open: Option<(usize, usize, usize, usize)> = None;
    let emit = |range: (usize, usize, usize, usize), matches: &mut Vec<Reply>| {
        let len = range.1 - range.0 + 1;
        if min_len == 0 || len >= min_len {
            let mut item = vec![
                Reply::Array(vec![Reply::Int(range.0 as i64), Reply::Int(range.1 as i64)]),
                Reply::Array(vec![Reply::Int(range.2 as i64), Reply::Int(range.3 as i64)]),
            ];
            if with_len {
                item.push(Reply::Int(len as i64));
            }
            matches.push(Reply::Array(item));
        }
    };
    while i > 0 && j > 0 {
        if a[i - 1] == b[j - 1] {
            common.push(a[i - 1]);
            open = Some(match open {
                None => (i - 1, i - 1, j - 1, j - 1),
                Some((_, ae, _, be)) => (i - 1, ae, j - 1, be),
            });
            if i == 1 || j == 1 {
                if let Some(range) = open.take() {
                    emit(range, &mut matches);
                }
            }
            i -= 1;
            j -= 1;
        } else {
            if table[(i - 1) * width + j] > table[i * width + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if let Some(range) = open.take() {
                emit(range, &mut matches);
            }
        }
    }
    common.reverse();
    (common, matches)
}
