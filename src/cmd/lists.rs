//! List commands, including the blocking pops.

use super::args::{fmt_int, is, parse_count, parse_i64, parse_side, parse_timeout, SYNTAX};
use super::flags::*;
use super::{CmdError, CmdResult, Command, KeySpec, FIRST_KEY, TWO_KEYS};
use crate::engine::blocking::BlockedOp;
use crate::engine::ctx::Ctx;
use crate::keyspace::bytes::CompactBytes;
use crate::keyspace::value::ListValue;
use crate::reply::{err, Reply};

const ALL_BUT_LAST: KeySpec = KeySpec::Range {
    first: 1,
    last: -2,
    step: 1,
};

pub const COMMANDS: &[Command] = &[
    Command::new("lpush", -3, WRITE | DENYOOM | FAST, FIRST_KEY, lpush),
    Command::new("rpush", -3, WRITE | DENYOOM | FAST, FIRST_KEY, rpush),
    Command::new("lpushx", -3, WRITE | DENYOOM | FAST, FIRST_KEY, lpushx),
    Command::new("rpushx", -3, WRITE | DENYOOM | FAST, FIRST_KEY, rpushx),
    Command::new("lpop", -2, WRITE | FAST, FIRST_KEY, lpop),
    Command::new("rpop", -2, WRITE | FAST, FIRST_KEY, rpop),
    Command::new("llen", 2, READONLY | FAST, FIRST_KEY, llen),
    Command::new("lrange", 4, READONLY, FIRST_KEY, lrange),
    Command::new("lindex", 3, READONLY, FIRST_KEY, lindex),
    Command::new("lset", 4, WRITE | DENYOOM, FIRST_KEY, lset),
    Command::new("lrem", 4, WRITE, FIRST_KEY, lrem),
    Command::new("ltrim", 4, WRITE, FIRST_KEY, ltrim),
    Command::new("linsert", 5, WRITE | DENYOOM, FIRST_KEY, linsert),
    Command::new("lpos", -3, READONLY, FIRST_KEY, lpos),
    Command::new("lmove", 5, WRITE | DENYOOM, TWO_KEYS, lmove),
    Command::new("rpoplpush", 3, WRITE | DENYOOM, TWO_KEYS, rpoplpush),
    Command::new(
        "lmpop",
        -4,
        WRITE,
        KeySpec::NumKeys {
            count_at: 1,
            dest: false,
        },
        lmpop,
    ),
    Command::new("blpop", -3, WRITE | BLOCKING, ALL_BUT_LAST, blpop),
    Command::new("brpop", -3, WRITE | BLOCKING, ALL_BUT_LAST, brpop),
    Command::new("blmove", 6, WRITE | DENYOOM | BLOCKING, TWO_KEYS, blmove),
    Command::new(
        "brpoplpush",
        4,
        WRITE | DENYOOM | BLOCKING,
        TWO_KEYS,
        brpoplpush,
    ),
    Command::new(
        "blmpop",
        -5,
        WRITE | BLOCKING,
        KeySpec::NumKeys {
            count_at: 2,
            dest: false,
        },
        blmpop,
    ),
];

fn push(cx: &mut Ctx<'_, '_>, argv: &[&[u8]], left: bool, only_existing: bool) -> CmdResult {
    let key = argv[1];
    let list = if only_existing {
        match cx.get_mut::<ListValue>(key)? {
            Some(list) => list,
            None => return Ok(Reply::Int(0)),
        }
    } else {
        cx.get_or_create::<ListValue>(key, ListValue::new)?
    };
    for item in &argv[2..] {
        let item = CompactBytes::new(item);
        if left {
            list.push_front(item);
        } else {
            list.push_back(item);
        }
    }
    let len = list.len();
    cx.touch(key)?;
    cx.propagate(argv);
    Ok(Reply::Int(len as i64))
}

fn lpush(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    push(cx, argv, true, false)
}

fn rpush(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    push(cx, argv, false, false)
}

fn lpushx(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    push(cx, argv, true, true)
}

fn rpushx(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    push(cx, argv, false, true)
}

/// Pops up to `count` elements from an existing list (deleting it when emptied). `None` when
/// the key is missing; WRONGTYPE when it is not a list.
pub fn pop_elements(
    cx: &mut Ctx<'_, '_>,
    key: &[u8],
    left: bool,
    count: usize,
) -> Result<Option<Vec<CompactBytes>>, CmdError> {
    let Some(list) = cx.get_mut::<ListValue>(key)? else {
        return Ok(None);
    };
    let n = count.min(list.len());
    let popped: Vec<CompactBytes> = if left {
        list.drain(..n).collect()
    } else {
        (0..n).filter_map(|_| list.pop_back()).collect()
    };
    if n > 0 {
        cx.touch(key)?;
        cx.remove_if_empty(key)?;
    }
    Ok(Some(popped))
}

fn pop(cx: &mut Ctx<'_, '_>, argv: &[&[u8]], left: bool) -> CmdResult {
    if argv.len() > 3 {
        return Err(super::arity_error(if left { "lpop" } else { "rpop" }));
    }
    let count = match argv.get(2) {
        Some(arg) => Some(parse_count(arg, err::MUST_BE_POSITIVE)?),
        None => None,
    };
    let Some(popped) = pop_elements(cx, argv[1], left, count.unwrap_or(1))? else {
        return Ok(if count.is_some() {
            Reply::NilArray
        } else {
            Reply::Nil
        });
    };
    if !popped.is_empty() {
        cx.propagate(argv);
    }
    Ok(match count {
        Some(_) => Reply::bulks(popped.iter().map(|e| e.as_slice())),
        None => Reply::opt_bulk(popped.first().map(|e| e.as_slice())),
    })
}

fn lpop(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    pop(cx, argv, true)
}

fn rpop(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    pop(cx, argv, false)
}

fn llen(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    Ok(Reply::Int(
        cx.get::<ListValue>(argv[1])?.map_or(0, |l| l.len() as i64),
    ))
}

/// Resolves a start/stop pair against `len` (negative counts from the end); `None` if empty.
pub fn resolve_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 {
        (start + len).max(0)
    } else {
        start
    };
    let stop = if stop < 0 { stop + len } else { stop };
    if start > stop || start >= len {
        return None;
    }
    Some((start as usize, stop.min(len - 1) as usize))
}

fn lrange(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let start = parse_i64(argv[2])?;
    let stop = parse_i64(argv[3])?;
    let Some(list) = cx.get::<ListValue>(argv[1])? else {
        return Ok(Reply::Array(Vec::new()));
    };
    Ok(match resolve_range(start, stop, list.len()) {
        None => Reply::Array(Vec::new()),
        Some((a, b)) => Reply::bulks(list.range(a..=b).map(|e| e.as_slice())),
    })
}

/// Index into a list of `len` (negative from the end), if in range.
fn resolve_index(index: i64, len: usize) -> Option<usize> {
    let i = if index < 0 { index + len as i64 } else { index };
    (0..len as i64).contains(&i).then_some(i as usize)
}

fn lindex(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let Some(list) = cx.get::<ListValue>(argv[1])? else {
        return Ok(Reply::Nil);
    };
    let index = parse_i64(argv[2])?;
    Ok(Reply::opt_bulk(
        resolve_index(index, list.len()).map(|i| list[i].as_slice()),
    ))
}

fn lset(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let Some(list) = cx.get_mut::<ListValue>(key)? else {
        return Err(CmdError::new(err::NO_SUCH_KEY));
    };
    let index = parse_i64(argv[2])?;
    let i = resolve_index(index, list.len()).ok_or(CmdError::new(err::INDEX_RANGE))?;
    list[i] = CompactBytes::new(argv[3]);
    cx.touch(key)?;
    cx.propagate(argv);
    Ok(Reply::OK)
}

fn lrem(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let count = parse_i64(argv[2])?;
    let element = argv[3];
    let Some(list) = cx.get_mut::<ListValue>(key)? else {
        return Ok(Reply::Int(0));
    };
    let limit = if count == 0 {
        usize::MAX
    } else {
        count.unsigned_abs() as usize
    };
    // One pass, O(n) whatever is removed: count the matches to drop from the chosen end, then
    // keep everything else.
    let matches = list.iter().filter(|e| e.as_slice() == element).count();
    let removed = matches.min(limit);
    if removed > 0 {
        let mut seen = 0;
        // Scanning from the head, the matches to drop are the first `removed` (count >= 0) or
        // the last `removed` (count < 0).
        let skip_first = if count >= 0 { 0 } else { matches - removed };
        list.retain(|e| {
            if e.as_slice() != element {
                return true;
            }
            seen += 1;
            seen <= skip_first || seen > skip_first + removed
        });
    }
    if removed > 0 {
        cx.touch(key)?;
        cx.remove_if_empty(key)?;
        cx.propagate(argv);
    }
    Ok(Reply::Int(removed as i64))
}

fn ltrim(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let start = parse_i64(argv[2])?;
    let stop = parse_i64(argv[3])?;
    let Some(list) = cx.get_mut::<ListValue>(key)? else {
        return Ok(Reply::OK);
    };
    let before = list.len();
    match resolve_range(start, stop, list.len()) {
        None => list.clear(),
        Some((a, b)) => {
            list.truncate(b + 1);
            list.drain(..a);
        }
    }
    let changed = list.len() != before;
    cx.touch(key)?;
    cx.remove_if_empty(key)?;
    if changed {
        cx.propagate(argv);
    }
    Ok(Reply::OK)
}

fn linsert(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let after = if is(argv[2], "after") {
        true
    } else if is(argv[2], "before") {
        false
    } else {
        return Err(SYNTAX);
    };
    let Some(list) = cx.get_mut::<ListValue>(key)? else {
        return Ok(Reply::Int(0));
    };
    let Some(pos) = list.iter().position(|e| e.as_slice() == argv[3]) else {
        return Ok(Reply::Int(-1));
    };
    list.insert(pos + usize::from(after), CompactBytes::new(argv[4]));
    let len = list.len();
    cx.touch(key)?;
    cx.propagate(argv);
    Ok(Reply::Int(len as i64))
}

fn lpos(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0usize);
    let mut i = 3;
    while i < argv.len() {
        let value = argv.get(i + 1).ok_or(SYNTAX)?;
        if is(argv[i], "rank") {
            rank = parse_i64(value)?;
            if rank == 0 {
                return Err(CmdError::new("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list"));
            }
        } else if is(argv[i], "count") {
            count = Some(parse_count(value, "ERR COUNT can't be negative")?);
        } else if is(argv[i], "maxlen") {
            maxlen = parse_count(value, "ERR MAXLEN can't be negative")?;
        } else {
            return Err(SYNTAX);
        }
        i += 2;
    }
    let Some(list) = cx.get::<ListValue>(argv[1])? else {
        return Ok(if count.is_some() {
            Reply::Array(Vec::new())
        } else {
            Reply::Nil
        });
    };
    let len = list.len();
    let scan_len = if maxlen == 0 { len } else { maxlen.min(len) };
    let from_tail = rank < 0;
    // i64::MIN cannot be negated: Redis keeps it negative, so the first match counts.
    let skip = rank.checked_abs().map_or(0, |r| r as usize - 1);
    let want = match count {
        Some(0) => usize::MAX,
        Some(n) => n,
        None => 1,
    };
    let mut found = Vec::new();
    let mut seen = 0;
    for step in 0..scan_len {
        let idx = if from_tail { len - 1 - step } else { step };
        if list[idx].as_slice() == argv[2] {
            if seen >= skip {
                found.push(Reply::Int(idx as i64));
                if found.len() >= want {
                    break;
                }
            }
            seen += 1;
        }
    }
    Ok(match count {
        Some(_) => Reply::Array(found),
        None => found.into_iter().next().unwrap_or(Reply::Nil),
    })
}

/// Pops from `src` and pushes onto `dst`. `None` when `src` is missing; WRONGTYPE (with nothing
/// popped) when either key holds another type. The source is deleted only after the push, so
/// rotating a one-element list onto itself keeps the key and its TTL, as in Redis.
pub fn move_element(
    cx: &mut Ctx<'_, '_>,
    src: &[u8],
    dst: &[u8],
    from_left: bool,
    to_left: bool,
) -> Result<Option<CompactBytes>, CmdError> {
    if cx.get::<ListValue>(src)?.is_none() {
        return Ok(None);
    }
    cx.get::<ListValue>(dst)?;
    let Some(list) = cx.get_mut::<ListValue>(src)? else {
        return Ok(None);
    };
    let Some(element) = (if from_left {
        list.pop_front()
    } else {
        list.pop_back()
    }) else {
        return Ok(None);
    };
    let target = cx.get_or_create::<ListValue>(dst, ListValue::new)?;
    if to_left {
        target.push_front(element.clone());
    } else {
        target.push_back(element.clone());
    }
    cx.touch(dst)?;
    cx.touch(src)?;
    cx.remove_if_empty(src)?;
    Ok(Some(element))
}

fn side_name(left: bool) -> &'static [u8] {
    if left {
        b"LEFT"
    } else {
        b"RIGHT"
    }
}

fn lmove(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let from_left = parse_side(argv[3])?;
    let to_left = parse_side(argv[4])?;
    let moved = move_element(cx, argv[1], argv[2], from_left, to_left)?;
    if moved.is_some() {
        cx.propagate(argv);
    }
    Ok(Reply::opt_bulk(moved.as_deref()))
}

fn rpoplpush(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let moved = move_element(cx, argv[1], argv[2], false, true)?;
    if moved.is_some() {
        cx.propagate(argv);
    }
    Ok(Reply::opt_bulk(moved.as_deref()))
}

/// The parsed tail of LMPOP/BLMPOP/ZMPOP/BZMPOP: keys, the side (LEFT or MIN: true), count.
pub struct MPop<'a> {
    pub keys: &'a [&'a [u8]],
    pub side: bool,
    pub count: usize,
}

/// Parses `numkeys key... <side> [COUNT n]` starting at `numkeys_at`; `side` reads the
/// LEFT/RIGHT or MIN/MAX word (checked before COUNT, as Redis does).
pub fn parse_mpop<'a>(
    argv: &'a [&'a [u8]],
    numkeys_at: usize,
    side: fn(&[u8]) -> Result<bool, CmdError>,
) -> Result<MPop<'a>, CmdError> {
    let numkeys = match parse_i64(argv[numkeys_at]) {
        Ok(n) if n > 0 => n as usize,
        _ => return Err(CmdError::new(err::NUMKEYS_POSITIVE)),
    };
    let side_at = (numkeys_at + 1).checked_add(numkeys).ok_or(SYNTAX)?;
    let side = side(argv.get(side_at).ok_or(SYNTAX)?)?;
    let mut count = None;
    let mut i = side_at + 1;
    while i < argv.len() {
        if is(argv[i], "count") && count.is_none() && i + 1 < argv.len() {
            let n = parse_i64(argv[i + 1]).ok().filter(|&n| n > 0);
            count = Some(n.ok_or(CmdError::new(err::COUNT_POSITIVE))? as usize);
            i += 2;
        } else {
            return Err(SYNTAX);
        }
    }
    Ok(MPop {
        keys: &argv[numkeys_at + 1..side_at],
        side,
        count: count.unwrap_or(1),
    })
}

/// Pops from the first non-empty list among `keys`: `[key, [elements]]`, propagated as
/// LPOP/RPOP key n.
fn mpop_first(
    cx: &mut Ctx<'_, '_>,
    keys: &[&[u8]],
    left: bool,
    count: usize,
) -> Result<Option<Reply>, CmdError> {
    for key in keys {
        if let Some(popped) = pop_elements(cx, key, left, count)? {
            return Ok(Some(mpop_reply(cx, key, left, popped)));
        }
    }
    Ok(None)
}

fn mpop_reply(cx: &mut Ctx<'_, '_>, key: &[u8], left: bool, popped: Vec<CompactBytes>) -> Reply {
    let n = fmt_int(popped.len() as i64);
    cx.propagate(&[if left { b"LPOP" } else { b"RPOP" }, key, n.as_bytes()]);
    Reply::Array(vec![
        Reply::bulk(key),
        Reply::bulks(popped.iter().map(|e| e.as_slice())),
    ])
}

fn lmpop(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let m = parse_mpop(argv, 1, parse_side)?;
    Ok(mpop_first(cx, m.keys, m.side, m.count)?.unwrap_or(Reply::NilArray))
}

fn bpop(cx: &mut Ctx<'_, '_>, argv: &[&[u8]], left: bool) -> CmdResult {
    let timeout = parse_timeout(argv[argv.len() - 1])?;
    let keys = &argv[1..argv.len() - 1];
    for key in keys {
        if let Some(mut popped) = pop_elements(cx, key, left, 1)? {
            if let Some(element) = popped.pop() {
                cx.propagate(&[if left { b"LPOP" } else { b"RPOP" }, key]);
                return Ok(Reply::Array(vec![Reply::bulk(key), Reply::bulk(&element)]));
            }
        }
    }
    cx.block_or(
        keys,
        timeout,
        BlockedOp::ListPop { left, count: None },
        Reply::NilArray,
    )
}

fn blpop(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    bpop(cx, argv, true)
}

fn brpop(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    bpop(cx, argv, false)
}

fn bmove(
    cx: &mut Ctx<'_, '_>,
    src: &[u8],
    dst: &[u8],
    from_left: bool,
    to_left: bool,
    timeout: &[u8],
) -> CmdResult {
    let timeout = parse_timeout(timeout)?;
    if let Some(element) = move_element(cx, src, dst, from_left, to_left)? {
        propagate_move(cx, src, dst, from_left, to_left);
        return Ok(Reply::bulk(&element));
    }
    let op = BlockedOp::ListMove {
        from_left,
        to_left,
        dest: CompactBytes::new(dst),
    };
    cx.block_or(&[src], timeout, op, Reply::Nil)
}

/// Logs a served move as RPOPLPUSH when it is one (as Redis does for BRPOPLPUSH), else LMOVE.
fn propagate_move(cx: &mut Ctx<'_, '_>, src: &[u8], dst: &[u8], from_left: bool, to_left: bool) {
    if !from_left && to_left {
        cx.propagate(&[b"RPOPLPUSH", src, dst]);
    } else {
        cx.propagate(&[b"LMOVE", src, dst, side_name(from_left), side_name(to_left)]);
    }
}

fn blmove(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let from_left = parse_side(argv[3])?;
    let to_left = parse_side(argv[4])?;
    bmove(cx, argv[1], argv[2], from_left, to_left, argv[5])
}

fn brpoplpush(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    bmove(cx, argv[1], argv[2], false, true, argv[3])
}

fn blmpop(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let m = parse_mpop(argv, 2, parse_side)?;
    let timeout = parse_timeout(argv[1])?;
    if let Some(reply) = mpop_first(cx, m.keys, m.side, m.count)? {
        return Ok(reply);
    }
    let op = BlockedOp::ListPop {
        left: m.side,
        count: Some(m.count),
    };
    cx.block_or(m.keys, timeout, op, Reply::NilArray)
}

/// Serves a client blocked on a list operation from `key`; `None` if there is nothing to pop.
pub fn serve(cx: &mut Ctx<'_, '_>, op: &BlockedOp, key: &[u8]) -> Option<Reply> {
    let result = match op {
        BlockedOp::ListPop { left, count: None } => pop_elements(cx, key, *left, 1).map(|popped| {
            let element = popped?.pop()?;
            cx.propagate(&[if *left { b"LPOP" } else { b"RPOP" }, key]);
            Some(Reply::Array(vec![Reply::bulk(key), Reply::bulk(&element)]))
        }),
        BlockedOp::ListPop {
            left,
            count: Some(n),
        } => pop_elements(cx, key, *left, *n).map(|popped| {
            let popped = popped.filter(|p| !p.is_empty())?;
            Some(mpop_reply(cx, key, *left, popped))
        }),
        BlockedOp::ListMove {
            from_left,
            to_left,
            dest,
        } => move_element(cx, key, dest, *from_left, *to_left).map(|moved| {
            let element = moved?;
            propagate_move(cx, key, dest, *from_left, *to_left);
            Some(Reply::bulk(&element))
        }),
        BlockedOp::ZPop { .. } => Ok(None),
    };
    // A wrong-typed destination is this client's error; the element stays in place.
    result.unwrap_or_else(|e| Some(e.into()))
}
