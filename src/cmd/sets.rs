//! Set commands.

use super::args::{parse_count, parse_i64, parse_rand_count, SYNTAX};
use super::flags::*;
use super::keys::{empty_scan, parse_cursor, parse_scan_options, random_items, scan_collection};
use super::{CmdError, CmdResult, Command, KeySpec, ALL_KEYS, FIRST_KEY};
use crate::engine::ctx::Ctx;
use crate::engine::notify::class;
use crate::keyspace::bytes::CompactBytes;
use crate::keyspace::value::{parse_i64_strict, SetMember, SetValue};
use crate::reply::{err, Reply};

pub const COMMANDS: &[Command] = &[
    Command::new("sadd", -3, WRITE | DENYOOM | FAST, FIRST_KEY, sadd),
    Command::new("srem", -3, WRITE | FAST, FIRST_KEY, srem),
    Command::new("scard", 2, READONLY | FAST, FIRST_KEY, scard),
    Command::new("sismember", 3, READONLY | FAST, FIRST_KEY, sismember),
    Command::new("smismember", -3, READONLY | FAST, FIRST_KEY, smismember),
    Command::new("smembers", 2, READONLY, FIRST_KEY, smembers),
    Command::new("spop", -2, WRITE | FAST, FIRST_KEY, spop),
    Command::new("srandmember", -2, READONLY, FIRST_KEY, srandmember),
    Command::new(
        "smove",
        4,
        WRITE | FAST,
        KeySpec::Range {
            first: 1,
            last: 2,
            step: 1,
        },
        smove,
    ),
    Command::new("sinter", -2, READONLY, ALL_KEYS, sinter),
    Command::new(
        "sintercard",
        -3,
        READONLY,
        KeySpec::NumKeys {
            count_at: 1,
            dest: false,
        },
        sintercard,
    ),
    Command::new("sinterstore", -3, WRITE | DENYOOM, ALL_KEYS, sinterstore),
    Command::new("sunion", -2, READONLY, ALL_KEYS, sunion),
    Command::new("sunionstore", -3, WRITE | DENYOOM, ALL_KEYS, sunionstore),
    Command::new("sdiff", -2, READONLY, ALL_KEYS, sdiff),
    Command::new("sdiffstore", -3, WRITE | DENYOOM, ALL_KEYS, sdiffstore),
    Command::new("sscan", -3, READONLY, FIRST_KEY, sscan),
];

fn sadd(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let limits = cx.engine.live.encoding();
    let set = cx.get_or_create::<SetValue>(key, SetValue::new)?;
    let added = argv[2..].iter().filter(|m| set.add(m, &limits)).count();
    if added > 0 {
        cx.touch(key)?;
        cx.propagate(argv);
    }
    Ok(Reply::Int(added as i64))
}

fn srem(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let Some(set) = cx.get_mut::<SetValue>(key)? else {
        return Ok(Reply::Int(0));
    };
    let removed = argv[2..].iter().filter(|m| set.remove(m)).count();
    if removed > 0 {
        cx.touch(key)?;
        cx.remove_if_empty(key)?;
        cx.propagate(argv);
    }
    Ok(Reply::Int(removed as i64))
}

fn scard(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    Ok(Reply::Int(
        cx.get::<SetValue>(argv[1])?.map_or(0, |s| s.len() as i64),
    ))
}

fn sismember(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let set = cx.get::<SetValue>(argv[1])?;
    Ok(Reply::Int(i64::from(
        set.is_some_and(|s| s.contains(argv[2])),
    )))
}

fn smismember(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let set = cx.get::<SetValue>(argv[1])?;
    Ok(Reply::Array(
        argv[2..]
            .iter()
            .map(|m| Reply::Int(i64::from(set.is_some_and(|s| s.contains(m)))))
            .collect(),
    ))
}

/// A set reply (`~` in RESP3), ordered as Redis orders an intset: ascending integers.
fn set_reply(set: Option<&SetValue>) -> Reply {
    let Some(set) = set else {
        return Reply::Set(Vec::new());
    };
    members_reply(set.iter().collect(), set.intset)
}

fn members_reply(mut members: Vec<&[u8]>, intset: bool) -> Reply {
    if intset {
        members.sort_by_key(|m| parse_i64_strict(m).unwrap_or(0));
    }
    Reply::Set(members.into_iter().map(Reply::bulk).collect())
}

fn smembers(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    Ok(set_reply(cx.get::<SetValue>(argv[1])?))
}

fn spop(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    if argv.len() > 3 {
        return Err(SYNTAX);
    }
    let count = match argv.get(2) {
        Some(arg) => Some(parse_count(arg, err::MUST_BE_POSITIVE)?),
        None => None,
    };
    let limits = cx.engine.live.encoding();
    let Some(set) = cx.get_mut::<SetValue>(key)? else {
        return Ok(if count.is_some() {
            Reply::Set(Vec::new())
        } else {
            Reply::Nil
        });
    };
    let Some(count) = count else {
        let Some(member) = set.members.random().cloned() else {
            return Ok(Reply::Nil);
        };
        set.remove(&member);
        cx.touch(key)?;
        cx.remove_if_empty(key)?;
        cx.propagate_quiet(&[b"SREM", key, &member]);
        cx.notify_removal(class::SET, "spop", key);
        return Ok(Reply::bulk(&member));
    };
    if count == 0 {
        return Ok(Reply::Set(Vec::new()));
    }
    let size = set.len();
    if count >= size {
        let reply = set_reply(Some(set));
        cx.remove(key)?;
        cx.propagate_quiet(&[b"DEL", key]);
        cx.notify_removal(class::SET, "spop", key);
        return Ok(reply);
    }
    let mut popped = Vec::with_capacity(count);
    for _ in 0..count {
        if let Some(member) = set.members.random().cloned() {
            set.remove(&member);
            popped.push(member);
        }
    }
    // Redis rebuilds a set it mostly emptied, re-deriving the encoding from the survivors.
    if (size - count) * 5 <= count {
        set.intset = set.len() <= limits.set_max_intset_entries
            && set.iter().all(|m| parse_i64_strict(m).is_some());
    }
    cx.touch(key)?;
    for member in &popped {
        cx.propagate_quiet(&[b"SREM", key, member]);
    }
    cx.notify(class::SET, "spop", key);
    Ok(Reply::Set(popped.iter().map(|m| Reply::bulk(m)).collect()))
}

fn srandmember(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    if argv.len() > 3 {
        return Err(SYNTAX);
    }
    let count = match argv.get(2) {
        Some(arg) => Some(parse_rand_count(arg)?),
        None => None,
    };
    let set = cx.get::<SetValue>(argv[1])?;
    let Some(count) = count else {
        return Ok(Reply::opt_bulk(
            set.and_then(|s| s.members.random()).map(|m| m.as_slice()),
        ));
    };
    let Some(set) = set else {
        return Ok(Reply::Array(Vec::new()));
    };
    let picked = random_items(&set.members, count)?;
    Ok(Reply::bulks(picked.into_iter().map(|m| m.as_slice())))
}

fn smove(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let (src, dst, member) = (argv[1], argv[2], argv[3]);
    if cx.get::<SetValue>(src)?.is_none() {
        return Ok(Reply::Int(0));
    }
    cx.get::<SetValue>(dst)?;
    if src == dst {
        let present = cx.peek::<SetValue>(src).is_some_and(|s| s.contains(member));
        return Ok(Reply::Int(i64::from(present)));
    }
    let removed = cx
        .get_mut::<SetValue>(src)?
        .is_some_and(|s| s.remove(member));
    if !removed {
        return Ok(Reply::Int(0));
    }
    cx.touch(src)?;
    cx.remove_if_empty(src)?;
    // Notified as Redis does: the removal (and deletion) before the destination is made.
    cx.notify_removal(class::SET, "srem", src);
    let limits = cx.engine.live.encoding();
    if cx
        .get_or_create::<SetValue>(dst, SetValue::new)?
        .add(member, &limits)
    {
        cx.touch(dst)?;
        cx.notify(class::SET, "sadd", dst);
    }
    cx.propagate_quiet(argv);
    Ok(Reply::Int(1))
}

#[derive(Copy, Clone, PartialEq, Eq)]
enum SetOp {
    Inter,
    Union,
    Diff,
}

/// Type-checks every key (a missing key is an empty set), then computes the operation.
fn compute(
    cx: &mut Ctx<'_, '_>,
    keys: &[&[u8]],
    op: SetOp,
    limit: usize,
) -> Result<Vec<CompactBytes>, CmdError> {
    for key in keys {
        cx.get::<SetValue>(key)?;
    }
    let sets: Vec<Option<&SetValue>> = keys.iter().map(|k| cx.peek::<SetValue>(k)).collect();
    let mut out = Vec::new();
    match op {
        SetOp::Inter => {
            let Some(mut present) = sets.iter().copied().collect::<Option<Vec<&SetValue>>>() else {
                return Ok(out);
            };
            present.sort_by_key(|s| s.len());
            let (smallest, rest) = present.split_first().ok_or(SYNTAX)?;
            for m in smallest.members.iter() {
                if rest.iter().all(|s| s.contains(m)) {
                    out.push(CompactBytes::clone(m));
                    if limit != 0 && out.len() >= limit {
                        break;
                    }
                }
            }
        }
        SetOp::Union => {
            let mut seen = std::collections::HashSet::new();
            for m in sets.iter().flatten().flat_map(|s| s.members.iter()) {
                if seen.insert(m.as_slice()) {
                    out.push(CompactBytes::clone(m));
                }
            }
        }
        SetOp::Diff => {
            let Some(first) = sets[0] else {
                return Ok(out);
            };
            if keys[1..].contains(&keys[0]) {
                return Ok(out);
            }
            out.extend(
                first
                    .members
                    .iter()
                    .filter(|m| sets[1..].iter().flatten().all(|s| !s.contains(m)))
                    .map(|m| CompactBytes::clone(m)),
            );
        }
    }
    Ok(out)
}

/// A fresh set built from `members`, with the encoding Redis would give it.
fn build_set(members: &[CompactBytes], cx: &Ctx<'_, '_>) -> SetValue {
    let limits = cx.engine.live.encoding();
    let mut set = SetValue::new();
    for m in members {
        set.add(m, &limits);
    }
    set
}

fn reply_members(members: &[CompactBytes], cx: &Ctx<'_, '_>) -> Reply {
    let intset = build_set(members, cx).intset;
    members_reply(members.iter().map(|m| m.as_slice()).collect(), intset)
}

fn store(cx: &mut Ctx<'_, '_>, argv: &[&[u8]], members: Vec<CompactBytes>) -> CmdResult {
    let dst = argv[1];
    if members.is_empty() {
        if cx.remove(dst)?.is_some() {
            cx.propagate(argv);
        }
        return Ok(Reply::Int(0));
    }
    let set = build_set(&members, cx);
    cx.store(dst, crate::keyspace::value::Value::Set(Box::new(set)), 0)?;
    cx.propagate(argv);
    Ok(Reply::Int(members.len() as i64))
}

fn sinter(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let members = compute(cx, &argv[1..], SetOp::Inter, 0)?;
    Ok(reply_members(&members, cx))
}

fn sunion(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let members = compute(cx, &argv[1..], SetOp::Union, 0)?;
    Ok(reply_members(&members, cx))
}

fn sdiff(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let members = compute(cx, &argv[1..], SetOp::Diff, 0)?;
    Ok(reply_members(&members, cx))
}

fn sinterstore(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let members = compute(cx, &argv[2..], SetOp::Inter, 0)?;
    store(cx, argv, members)
}

fn sunionstore(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let members = compute(cx, &argv[2..], SetOp::Union, 0)?;
    store(cx, argv, members)
}

fn sdiffstore(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let members = compute(cx, &argv[2..], SetOp::Diff, 0)?;
    store(cx, argv, members)
}

/// Parses `numkeys key... [LIMIT n]` (SINTERCARD, ZINTERCARD); returns the keys and the limit.
pub fn parse_card_args<'a>(argv: &'a [&'a [u8]]) -> Result<(&'a [&'a [u8]], usize), CmdError> {
    let numkeys = match parse_i64(argv[1]) {
        Ok(n) if n > 0 => n as usize,
        _ => return Err(CmdError::new(err::NUMKEYS_POSITIVE)),
    };
    if numkeys > argv.len() - 2 {
        return Err(CmdError::new(err::NUMKEYS_TOO_MANY));
    }
    let mut limit = 0;
    let mut i = 2 + numkeys;
    while i < argv.len() {
        if super::args::is(argv[i], "limit") && i + 1 < argv.len() {
            limit = parse_count(argv[i + 1], "ERR LIMIT can't be negative")?;
            i += 2;
        } else {
            return Err(SYNTAX);
        }
    }
    Ok((&argv[2..2 + numkeys], limit))
}

fn sintercard(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let (keys, limit) = parse_card_args(argv)?;
    Ok(Reply::Int(
        compute(cx, keys, SetOp::Inter, limit)?.len() as i64
    ))
}

fn sscan(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let cursor = parse_cursor(argv[2])?;
    let Some(set) = cx.get::<SetValue>(argv[1])? else {
        return Ok(empty_scan());
    };
    let options = parse_scan_options(&argv[3..], false)?;
    let small = set.intset.then(|| {
        let mut members: Vec<&SetMember> = set.members.iter().collect();
        members.sort_by_key(|m| parse_i64_strict(m).unwrap_or(0));
        members
    });
    Ok(scan_collection(
        &set.members,
        small,
        cursor,
        &options,
        |m, out| out.push(Reply::bulk(m)),
    ))
}
