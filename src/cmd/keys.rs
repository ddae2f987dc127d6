//! Keyspace commands: DEL, EXISTS, TYPE, the EXPIRE family, RENAME, COPY, MOVE, KEYS, SCAN,
//! RANDOMKEY, TOUCH, OBJECT.

use super::args::{fmt_int, is, parse_i64, SYNTAX};
use super::flags::*;
use super::{CmdError, CmdResult, Command, KeySpec, LockScope, ALL_KEYS, FIRST_KEY, TWO_KEYS};
use crate::engine::ctx::Ctx;
use crate::engine::notify::class;
use crate::glob;
use crate::keyspace::bytes::CompactBytes;
use crate::keyspace::dict::{Dict, DictItem};
use crate::keyspace::value::{parse_i64_strict, ValueType};
use crate::reply::{err, Reply};
use crate::slot::{SlotId, SLOT_COUNT};
use smallvec::SmallVec;

const SUB_KEY: KeySpec = KeySpec::Range {
    first: 2,
    last: 2,
    step: 1,
};

pub const COMMANDS: &[Command] = &[
    Command::new("del", -2, WRITE, ALL_KEYS, del),
    Command::new("unlink", -2, WRITE | FAST, ALL_KEYS, del),
    Command::new("exists", -2, READONLY | FAST, ALL_KEYS, exists),
    Command::new("touch", -2, READONLY | FAST, ALL_KEYS, exists),
    Command::new("type", 2, READONLY | FAST, FIRST_KEY, type_),
    Command::new("expire", -3, WRITE | FAST, FIRST_KEY, expire),
    Command::new("pexpire", -3, WRITE | FAST, FIRST_KEY, pexpire),
    Command::new("expireat", -3, WRITE | FAST, FIRST_KEY, expireat),
    Command::new("pexpireat", -3, WRITE | FAST, FIRST_KEY, pexpireat),
    Command::new("ttl", 2, READONLY | FAST, FIRST_KEY, ttl),
    Command::new("pttl", 2, READONLY | FAST, FIRST_KEY, pttl),
    Command::new("expiretime", 2, READONLY | FAST, FIRST_KEY, expiretime),
    Command::new("pexpiretime", 2, READONLY | FAST, FIRST_KEY, pexpiretime),
    Command::new("persist", 2, WRITE | FAST, FIRST_KEY, persist),
    Command::new("rename", 3, WRITE, TWO_KEYS, rename),
    Command::new("renamenx", 3, WRITE | FAST, TWO_KEYS, renamenx),
    Command::new("copy", -3, WRITE | DENYOOM, TWO_KEYS, copy).other_dbs(copy_target_db),
    Command::new("move", 3, WRITE | FAST, FIRST_KEY, move_).other_dbs(move_target_db),
    Command::new("keys", 2, READONLY, KeySpec::None, keys).lock(LockScope::Dynamic),
    Command::new("scan", -2, READONLY, KeySpec::None, scan).lock(LockScope::Dynamic),
    Command::new("randomkey", 1, READONLY, KeySpec::None, randomkey).lock(LockScope::Dynamic),
    Command::new("object", -2, 0, KeySpec::None, super::no_subcommand).subcommands(OBJECT),
];

const OBJECT: &[Command] = &[
    Command::new("encoding", 3, READONLY, SUB_KEY, object_encoding),
    Command::new("refcount", 3, READONLY, SUB_KEY, object_refcount),
    Command::new("idletime", 3, READONLY, SUB_KEY, object_idletime),
    Command::new("freq", 3, READONLY, SUB_KEY, object_freq),
    Command::new("help", 2, LOADING | STALE, KeySpec::None, object_help),
];

fn del(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let mut deleted = 0;
    for key in &argv[1..] {
        if cx.remove(key)?.is_some() {
            deleted += 1;
            cx.notify(class::GENERIC, "del", key);
        }
    }
    if deleted > 0 {
        cx.propagate_quiet(argv);
    }
    Ok(Reply::Int(deleted))
}

fn exists(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let mut count = 0;
    for key in &argv[1..] {
        if cx.exists(key)? {
            count += 1;
        }
    }
    Ok(Reply::Int(count))
}

fn type_(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let name = cx
        .lookup(argv[1])?
        .map_or("none", |e| e.value.value_type().name());
    Ok(Reply::Status(name.into()))
}

#[derive(Copy, Clone)]
enum Unit {
    Seconds,
    Millis,
}

/// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT with NX/XX/GT/LT.
fn expire_generic(
    cx: &mut Ctx<'_, '_>,
    argv: &[&[u8]],
    unit: Unit,
    relative: bool,
    name: &str,
) -> CmdResult {
    let key = argv[1];
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &argv[3..] {
        if is(opt, "nx") {
            nx = true;
        } else if is(opt, "xx") {
            xx = true;
        } else if is(opt, "gt") {
            gt = true;
        } else if is(opt, "lt") {
            lt = true;
        } else {
            return Err(CmdError::msg(format!(
                "ERR Unsupported option {}",
                String::from_utf8_lossy(opt)
            )));
        }
    }
    if nx && (xx || gt || lt) {
        return Err(CmdError::new(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(CmdError::new(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    let invalid = || CmdError::msg(format!("ERR invalid expire time in '{name}' command"));
    let mut when = parse_i64(argv[2])?;
    if let Unit::Seconds = unit {
        when = when.checked_mul(1000).ok_or_else(invalid)?;
    }
    let now = cx.now_ms();
    if relative {
        when = when.checked_add(now as i64).ok_or_else(invalid)?;
    }
    let Some(current) = cx.lookup(key)?.map(|e| e.expire_at()) else {
        return Ok(Reply::Int(0));
    };
    let blocked = match current {
        None => xx || gt,
        Some(at) => nx || (gt && when <= at as i64) || (lt && when >= at as i64),
    };
    if blocked {
        return Ok(Reply::Int(0));
    }
    if when <= now as i64 && !cx.replaying {
        cx.remove(key)?;
        cx.propagate(&[b"DEL", key]);
        return Ok(Reply::Int(1));
    }
    // 0 means "no TTL" internally; a replayed deadline at or before the epoch is just "past".
    let at = when.max(1) as u64;
    cx.set_expire(key, at)?;
    cx.touch(key)?;
    let at_text = fmt_int(at as i64);
    let mut logged: Vec<&[u8]> = vec![b"PEXPIREAT", key, at_text.as_bytes()];
    logged.extend_from_slice(&argv[3..]);
    cx.propagate(&logged);
    Ok(Reply::Int(1))
}

fn expire(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    expire_generic(cx, argv, Unit::Seconds, true, "expire")
}

fn pexpire(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    expire_generic(cx, argv, Unit::Millis, true, "pexpire")
}

fn expireat(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    expire_generic(cx, argv, Unit::Seconds, false, "expireat")
}

fn pexpireat(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    expire_generic(cx, argv, Unit::Millis, false, "pexpireat")
}

/// TTL-family replies: -2 missing, -1 no TTL, else the remaining time or the deadline.
fn ttl_generic(cx: &mut Ctx<'_, '_>, key: &[u8], unit: Unit, absolute: bool) -> CmdResult {
    let now = cx.now_ms();
    let Some(entry) = cx.lookup(key)? else {
        return Ok(Reply::Int(-2));
    };
    let Some(at) = entry.expire_at() else {
        return Ok(Reply::Int(-1));
    };
    let ms = if absolute { at } else { at.saturating_sub(now) };
    Ok(Reply::Int(match unit {
        Unit::Millis => ms as i64,
        // Redis rounds to the nearest second, in unsigned arithmetic.
        Unit::Seconds => (ms.wrapping_add(500) / 1000) as i64,
    }))
}

fn ttl(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    ttl_generic(cx, argv[1], Unit::Seconds, false)
}

fn pttl(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    ttl_generic(cx, argv[1], Unit::Millis, false)
}

fn expiretime(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    ttl_generic(cx, argv[1], Unit::Seconds, true)
}

fn pexpiretime(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    ttl_generic(cx, argv[1], Unit::Millis, true)
}

fn persist(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    if cx.lookup(key)?.and_then(|e| e.expire_at()).is_none() {
        return Ok(Reply::Int(0));
    }
    cx.set_expire(key, 0)?;
    cx.touch(key)?;
    cx.propagate(argv);
    Ok(Reply::Int(1))
}

/// Moves `src` to `dst` keeping its TTL; `nx` refuses to overwrite. `None`: the source is missing.
fn rename_generic(cx: &mut Ctx<'_, '_>, argv: &[&[u8]], nx: bool) -> Result<bool, CmdError> {
    let (src, dst) = (argv[1], argv[2]);
    if !cx.exists(src)? {
        return Err(CmdError::new(err::NO_SUCH_KEY));
    }
    if src == dst {
        return Ok(!nx);
    }
    if nx && cx.exists(dst)? {
        return Ok(false);
    }
    // Checked just above that the source exists, under the same locks.
    let Some(entry) = cx.remove(src)? else {
        return Err(CmdError::new(err::NO_SUCH_KEY));
    };
    cx.remove(dst)?;
    cx.place(entry.renamed(dst))?;
    cx.propagate(argv);
    Ok(true)
}

fn rename(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    rename_generic(cx, argv, false)?;
    Ok(Reply::OK)
}

fn renamenx(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    Ok(Reply::Int(i64::from(rename_generic(cx, argv, true)?)))
}

/// Parses a database index argument as Redis's `getIntFromObjectOrReply` + range check.
fn parse_db(cx: &Ctx<'_, '_>, arg: &[u8]) -> Result<usize, CmdError> {
    super::args::parse_db(arg, cx.engine.db_count(), super::args::NOT_INT)
}

/// Database index arguments as the lock planner reads them (invalid ones are ignored: the
/// handler reports them).
pub fn db_args<'a>(args: impl IntoIterator<Item = &'a &'a [u8]>) -> SmallVec<[usize; 2]> {
    args.into_iter()
        .filter_map(|a| usize::try_from(parse_i64_strict(a)?).ok())
        .collect()
}

fn copy_target_db(argv: &[&[u8]]) -> SmallVec<[usize; 2]> {
    match argv.iter().rposition(|a| is(a, "db")) {
        Some(i) => db_args(argv.get(i + 1)),
        None => SmallVec::new(),
    }
}

fn copy(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let (src, dst) = (argv[1], argv[2]);
    let mut target = cx.db;
    let mut replace = false;
    let mut i = 3;
    while i < argv.len() {
        if is(argv[i], "replace") {
            replace = true;
        } else if is(argv[i], "db") && i + 1 < argv.len() {
            target = parse_db(cx, argv[i + 1])?;
            i += 1;
        } else {
            return Err(SYNTAX);
        }
        i += 1;
    }
    if cx.engine.config().cluster_enabled && (target != 0 || cx.db != 0) {
        return Err(CmdError::new(
            "ERR Copying to another database is not allowed in cluster mode",
        ));
    }
    if target == cx.db && src == dst {
        return Err(CmdError::new(err::SAME_OBJECT));
    }
    let Some(copy) = cx.lookup(src)?.map(|e| e.duplicate(dst)) else {
        return Ok(Reply::Int(0));
    };
    let copied = cx.in_db(target, |cx| -> Result<bool, CmdError> {
        if cx.exists(dst)? {
            if !replace {
                return Ok(false);
            }
            cx.remove(dst)?;
        }
        cx.place(copy)?;
        cx.notify(class::GENERIC, "copy_to", dst);
        Ok(true)
    })?;
    if copied {
        cx.propagate(argv);
    }
    Ok(Reply::Int(i64::from(copied)))
}

fn move_target_db(argv: &[&[u8]]) -> SmallVec<[usize; 2]> {
    db_args(argv.get(2))
}

fn move_(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    if cx.engine.config().cluster_enabled {
        return Err(CmdError::new("ERR MOVE is not allowed in cluster mode"));
    }
    let target = parse_db(cx, argv[2])?;
    if target == cx.db {
        return Err(CmdError::new(err::SAME_OBJECT));
    }
    if !cx.exists(key)? || cx.in_db(target, |cx| cx.exists(key))? {
        return Ok(Reply::Int(0));
    }
    let Some(entry) = cx.remove(key)? else {
        return Ok(Reply::Int(0));
    };
    cx.in_db(target, |cx| cx.place(entry))?;
    cx.notify(class::GENERIC, "move_from", key);
    cx.in_db(target, |cx| cx.notify(class::GENERIC, "move_to", key));
    cx.propagate(argv);
    Ok(Reply::Int(1))
}

fn keys(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let pattern = argv[1];
    let all = pattern == b"*";
    let db = cx.db;
    let now = cx.now_ms();
    let mut out = Vec::new();
    for index in 0..SLOT_COUNT {
        let slot = SlotId::new(index as u16).ok_or(SYNTAX)?;
        if cx.slot_key_count(db, slot) == 0 {
            continue;
        }
        cx.with_slot(db, slot, |data| {
            for entry in data.entries() {
                if !entry.is_expired(now) && (all || glob::matches(pattern, &entry.key, false)) {
                    out.push(Reply::bulk(&entry.key));
                }
            }
        });
    }
    Ok(Reply::Array(out))
}

/// Redis parses SCAN cursors with `strtoul`: an optional sign (a negative value wraps), digits,
/// nothing else; an empty cursor is 0.
pub fn parse_cursor(arg: &[u8]) -> Result<u64, CmdError> {
    let invalid = CmdError::new(err::INVALID_CURSOR);
    let (negative, digits) = match arg.first() {
        Some(b'-') => (true, &arg[1..]),
        Some(b'+') => (false, &arg[1..]),
        _ => (false, arg),
    };
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(invalid);
    }
    let mut value: u64 = 0;
    for d in digits {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or(invalid.clone())?;
    }
    Ok(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// SCAN/HSCAN/SSCAN/ZSCAN options.
pub struct ScanOptions<'a> {
    pub count: usize,
    pub pattern: Option<&'a [u8]>,
    pub type_filter: Option<&'a [u8]>,
}

pub fn parse_scan_options<'a>(
    options: &[&'a [u8]],
    allow_type: bool,
) -> Result<ScanOptions<'a>, CmdError> {
    let mut o = ScanOptions {
        count: 10,
        pattern: None,
        type_filter: None,
    };
    let mut pairs = options.chunks(2);
    for pair in &mut pairs {
        let [name, value] = pair else {
            return Err(SYNTAX);
        };
        if is(name, "count") {
            let n = parse_i64(value)?;
            if n < 1 {
                return Err(SYNTAX);
            }
            o.count = n as usize;
        } else if is(name, "match") {
            o.pattern = (*value != b"*").then_some(*value);
        } else if allow_type && is(name, "type") {
            o.type_filter = Some(*value);
        } else {
            return Err(SYNTAX);
        }
    }
    Ok(o)
}

/// HSCAN/SSCAN/ZSCAN over one collection: `cursor [MATCH p] [COUNT n]`. A collection Redis
/// would hold in a small encoding (`small`: its items in that encoding's order) is returned
/// whole with cursor 0, as Redis does.
pub fn scan_collection<T: DictItem>(
    dict: &Dict<T>,
    small: Option<Vec<&T>>,
    cursor: u64,
    options: &ScanOptions<'_>,
    mut emit: impl FnMut(&T, &mut Vec<Reply>),
) -> Reply {
    let mut out = Vec::new();
    let mut keep = |item: &T, out: &mut Vec<Reply>| {
        if options
            .pattern
            .is_none_or(|p| glob::matches(p, item.key(), false))
        {
            emit(item, out);
        }
    };
    let next = if let Some(items) = small {
        items.into_iter().for_each(|item| keep(item, &mut out));
        0
    } else {
        let mut cursor = cursor;
        let mut seen = 0usize;
        let mut steps = options.count.saturating_mul(10);
        loop {
            cursor = dict.scan(cursor, |item| {
                seen += 1;
                keep(item, &mut out);
            });
            steps = steps.saturating_sub(1);
            if cursor == 0 || seen >= options.count || steps == 0 {
                break cursor;
            }
        }
    };
    Reply::Array(vec![
        Reply::bulk(next.to_string().as_bytes()),
        Reply::Array(out),
    ])
}

/// The most elements a negative-count random pick (with repetition) may return: such a reply is
/// not bounded by the data, so it is bounded here.
pub const RANDOM_PICKS_MAX: u64 = 1 << 22;

/// Redis's RANDFIELD/RANDMEMBER selection: a negative count picks |count| items with
/// repetition; a count at least the size returns everything; otherwise `count` distinct items.
pub fn random_items<T: DictItem>(dict: &Dict<T>, count: i64) -> Result<Vec<&T>, CmdError> {
    if count < 0 {
        if count.unsigned_abs() > RANDOM_PICKS_MAX {
            return Err(CmdError::new("ERR value is out of range"));
        }
        return Ok((0..count.unsigned_abs())
            .filter_map(|_| dict.random())
            .collect());
    }
    let count = count as usize;
    if count >= dict.len() {
        return Ok(dict.iter().collect());
    }
    if count * 3 > dict.len() {
        let mut all: Vec<&T> = dict.iter().collect();
        fastrand::shuffle(&mut all);
        all.truncate(count);
        return Ok(all);
    }
    let mut picked: Vec<&T> = Vec::with_capacity(count);
    let mut seen = std::collections::HashSet::with_capacity(count);
    while picked.len() < count {
        if let Some(item) = dict.random() {
            if seen.insert(item.key()) {
                picked.push(item);
            }
        }
    }
    Ok(picked)
}

/// The empty scan reply, for a missing key.
pub fn empty_scan() -> Reply {
    Reply::Array(vec![Reply::bulk(b"0"), Reply::Array(Vec::new())])
}

/// Bits of the cursor that hold the slot; the rest is the slot's own dict cursor.
const SLOT_BITS: u32 = 14;

fn scan(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let cursor = parse_cursor(argv[1])?;
    let o = parse_scan_options(&argv[2..], true)?;
    let db = cx.db;
    let mut slot_index = (cursor & (SLOT_COUNT as u64 - 1)) as usize;
    let mut dict_cursor = cursor >> SLOT_BITS;
    let mut found: Vec<(CompactBytes, ValueType, bool)> = Vec::new();
    let now = cx.now_ms();
    let mut steps = o.count.saturating_mul(10);
    let next = loop {
        if slot_index >= SLOT_COUNT {
            break 0;
        }
        let slot = SlotId::new(slot_index as u16).ok_or(SYNTAX)?;
        if cx.slot_key_count(db, slot) > 0 {
            dict_cursor = cx.with_slot(db, slot, |data| {
                data.scan(dict_cursor, |e| {
                    found.push((e.key.clone(), e.value.value_type(), e.is_expired(now)));
                })
            });
            steps = steps.saturating_sub(1);
        } else {
            dict_cursor = 0;
        }
        if dict_cursor == 0 {
            slot_index += 1;
        }
        if found.len() >= o.count || steps == 0 {
            break if slot_index >= SLOT_COUNT {
                0
            } else {
                (dict_cursor << SLOT_BITS) | slot_index as u64
            };
        }
    };
    let wanted_type = o.type_filter.map(ValueType::from_name);
    let mut keys = Vec::new();
    for (key, value_type, expired) in found {
        if o.pattern.is_some_and(|p| !glob::matches(p, &key, false)) {
            continue;
        }
        if expired {
            cx.note_expired(db, key);
            continue;
        }
        if let Some(wanted) = wanted_type {
            if wanted != Some(value_type) {
                continue;
            }
        }
        keys.push(Reply::bulk(&key));
    }
    Ok(Reply::Array(vec![
        Reply::bulk(next.to_string().as_bytes()),
        Reply::Array(keys),
    ]))
}

fn randomkey(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    let db = cx.db;
    let now = cx.now_ms();
    for _ in 0..100 {
        let total = cx.dbsize(db);
        if total == 0 {
            return Ok(Reply::Nil);
        }
        let mut pick = fastrand::usize(..total);
        let Some(slot) = (0..SLOT_COUNT as u16)
            .filter_map(SlotId::new)
            .find(|&slot| {
                let n = cx.slot_key_count(db, slot);
                if pick < n {
                    return true;
                }
                pick -= n;
                false
            })
        else {
            continue;
        };
        let found = cx.with_slot(db, slot, |data| {
            data.random().map(|e| (e.key.clone(), e.is_expired(now)))
        });
        match found {
            Some((key, true)) => cx.note_expired(db, key),
            Some((key, false)) => return Ok(Reply::bulk(&key)),
            None => {}
        }
    }
    Ok(Reply::Nil)
}

fn object_encoding(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    Ok(match cx.lookup_untouched(argv[2])? {
        None => Reply::Nil,
        Some(e) => Reply::bulk(e.encoding().as_bytes()),
    })
}

/// Redis shares the integers 0..9999 and reports INT_MAX for them; everything else is 1.
fn object_refcount(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    Ok(match cx.lookup_untouched(argv[2])? {
        None => Reply::Nil,
        Some(e) if e.is_shared_integer() => Reply::Int(i64::from(i32::MAX)),
        Some(_) => Reply::Int(1),
    })
}

/// Whether the eviction policy tracks access frequency (LFU) rather than recency (LRU).
fn lfu_policy(cx: &Ctx<'_, '_>) -> bool {
    let settings = cx.engine.settings();
    settings
        .other
        .get("maxmemory-policy")
        .is_some_and(|p| p.ends_with("-lfu"))
}

fn object_idletime(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let lfu = lfu_policy(cx);
    let Some(entry) = cx.lookup_untouched(argv[2])? else {
        return Ok(Reply::Nil);
    };
    if lfu {
        return Err(CmdError::new("ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust."));
    }
    Ok(Reply::Int(i64::from(entry.idle_secs())))
}

/// Shoal keeps an access clock, not a frequency counter: under an LFU policy a key reports
/// the counter Redis gives a new key (5), decayed by one per minute idle as Redis decays.
fn object_freq(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    const LFU_INIT: i64 = 5;
    let lfu = lfu_policy(cx);
    let Some(entry) = cx.lookup_untouched(argv[2])? else {
        return Ok(Reply::Nil);
    };
    if !lfu {
        return Err(CmdError::new("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust."));
    }
    Ok(Reply::Int(
        (LFU_INIT - i64::from(entry.idle_secs() / 60)).max(0),
    ))
}

fn object_help(_cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    Ok(super::help(
        &String::from_utf8_lossy(argv[0]),
        &[
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key>. The returned integer is",
            "    proportional to the logarithm of the recent access frequency of the key.",
            "IDLETIME <key>",
            "    Return the idle time of the <key>, that is the approximated number of",
            "    seconds elapsed since the last access to the key.",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key>.",
        ],
    ))
}
