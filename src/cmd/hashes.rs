//! Hash commands.

use super::args::{is, parse_i64, parse_rand_count, SYNTAX};
use super::flags::*;
use super::keys::{empty_scan, parse_cursor, parse_scan_options, random_items, scan_collection};
use super::strings::add_float;
use super::{CmdError, CmdResult, Command, FIRST_KEY};
use crate::engine::ctx::Ctx;
use crate::keyspace::value::{parse_i64_strict, HashValue};
use crate::reply::{err, Reply};

pub const COMMANDS: &[Command] = &[
    Command::new("hset", -4, WRITE | DENYOOM | FAST, FIRST_KEY, hset),
    Command::new("hmset", -4, WRITE | DENYOOM | FAST, FIRST_KEY, hmset),
    Command::new("hsetnx", 4, WRITE | DENYOOM | FAST, FIRST_KEY, hsetnx),
    Command::new("hget", 3, READONLY | FAST, FIRST_KEY, hget),
    Command::new("hmget", -3, READONLY | FAST, FIRST_KEY, hmget),
    Command::new("hdel", -3, WRITE | FAST, FIRST_KEY, hdel),
    Command::new("hlen", 2, READONLY | FAST, FIRST_KEY, hlen),
    Command::new("hstrlen", 3, READONLY | FAST, FIRST_KEY, hstrlen),
    Command::new("hexists", 3, READONLY | FAST, FIRST_KEY, hexists),
    Command::new("hkeys", 2, READONLY, FIRST_KEY, hkeys),
    Command::new("hvals", 2, READONLY, FIRST_KEY, hvals),
    Command::new("hgetall", 2, READONLY, FIRST_KEY, hgetall),
    Command::new("hincrby", 4, WRITE | DENYOOM | FAST, FIRST_KEY, hincrby),
    Command::new(
        "hincrbyfloat",
        4,
        WRITE | DENYOOM | FAST,
        FIRST_KEY,
        hincrbyfloat,
    ),
    Command::new("hrandfield", -2, READONLY, FIRST_KEY, hrandfield),
    Command::new("hscan", -3, READONLY, FIRST_KEY, hscan),
];

/// Sets every field/value pair of `argv[2..]`; returns how many fields are new.
fn set_pairs(cx: &mut Ctx<'_, '_>, argv: &[&[u8]], name: &str) -> Result<i64, CmdError> {
    if argv.len() % 2 == 1 {
        return Err(super::arity_error(name));
    }
    let key = argv[1];
    let limits = cx.engine.live.encoding();
    let hash = cx.get_or_create::<HashValue>(key, HashValue::new)?;
    let mut added = 0;
    for pair in argv[2..].chunks(2) {
        if hash.set(pair[0], pair[1], &limits) {
            added += 1;
        }
    }
    cx.touch(key)?;
    cx.propagate(argv);
    Ok(added)
}

fn hset(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    Ok(Reply::Int(set_pairs(cx, argv, "hset")?))
}

fn hmset(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    set_pairs(cx, argv, "hmset")?;
    Ok(Reply::OK)
}

fn hsetnx(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let limits = cx.engine.live.encoding();
    let hash = cx.get_or_create::<HashValue>(key, HashValue::new)?;
    if hash.get(argv[2]).is_some() {
        return Ok(Reply::Int(0));
    }
    hash.set(argv[2], argv[3], &limits);
    cx.touch(key)?;
    cx.propagate(argv);
    Ok(Reply::Int(1))
}

fn hget(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let hash = cx.get::<HashValue>(argv[1])?;
    Ok(Reply::opt_value(hash.and_then(|h| h.get(argv[2]))))
}

fn hmget(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let hash = cx.get::<HashValue>(argv[1])?;
    Ok(Reply::Array(
        argv[2..]
            .iter()
            .map(|f| Reply::opt_value(hash.and_then(|h| h.get(f))))
            .collect(),
    ))
}

fn hdel(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let Some(hash) = cx.get_mut::<HashValue>(key)? else {
        return Ok(Reply::Int(0));
    };
    let deleted = argv[2..]
        .iter()
        .filter(|f| hash.fields.remove(f).is_some())
        .count();
    if deleted > 0 {
        cx.touch(key)?;
        cx.remove_if_empty(key)?;
        cx.propagate(argv);
    }
    Ok(Reply::Int(deleted as i64))
}

fn hlen(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    Ok(Reply::Int(
        cx.get::<HashValue>(argv[1])?
            .map_or(0, |h| h.fields.len() as i64),
    ))
}

fn hstrlen(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let hash = cx.get::<HashValue>(argv[1])?;
    Ok(Reply::Int(
        hash.and_then(|h| h.get(argv[2]))
            .map_or(0, |v| v.len() as i64),
    ))
}

fn hexists(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let hash = cx.get::<HashValue>(argv[1])?;
    Ok(Reply::Int(i64::from(
        hash.is_some_and(|h| h.get(argv[2]).is_some()),
    )))
}

fn hkeys(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let hash = cx.get::<HashValue>(argv[1])?;
    Ok(Reply::bulks(
        hash.into_iter()
            .flat_map(|h| h.fields.iter().map(|f| f.field.as_slice())),
    ))
}

fn hvals(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let hash = cx.get::<HashValue>(argv[1])?;
    Ok(Reply::bulks(
        hash.into_iter()
            .flat_map(|h| h.fields.iter().map(|f| f.value.as_slice())),
    ))
}

fn hgetall(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let hash = cx.get::<HashValue>(argv[1])?;
    Ok(Reply::Map(
        hash.into_iter()
            .flat_map(|h| h.fields.iter())
            .map(|f| (Reply::bulk(&f.field), Reply::bulk(&f.value)))
            .collect(),
    ))
}

fn hincrby(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let (key, field) = (argv[1], argv[2]);
    let delta = parse_i64(argv[3])?;
    let limits = cx.engine.live.encoding();
    let hash = cx.get_or_create::<HashValue>(key, HashValue::new)?;
    let current = match hash.get(field) {
        None => 0,
        Some(v) => parse_i64_strict(v).ok_or(CmdError::new(err::HASH_NOT_INT))?,
    };
    let new = current
        .checked_add(delta)
        .ok_or(CmdError::new(err::OVERFLOW))?;
    hash.set(field, itoa::Buffer::new().format(new).as_bytes(), &limits);
    cx.touch(key)?;
    cx.propagate(argv);
    Ok(Reply::Int(new))
}

fn hincrbyfloat(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let (key, field) = (argv[1], argv[2]);
    let increment =
        super::longdouble::LongDouble::parse(argv[3]).ok_or(CmdError::new(err::NOT_FLOAT))?;
    if !increment.is_finite() {
        return Err(CmdError::new("ERR value is NaN or Infinity"));
    }
    let limits = cx.engine.live.encoding();
    let hash = cx.get_or_create::<HashValue>(key, HashValue::new)?;
    let text = add_float(
        hash.get(field).map(|v| v.as_slice()),
        argv[3],
        err::HASH_NOT_FLOAT,
    )?;
    hash.set(field, text.as_bytes(), &limits);
    cx.touch(key)?;
    cx.propagate_quiet(&[b"HSET", key, field, text.as_bytes()]);
    cx.notify(crate::engine::notify::class::HASH, "hincrbyfloat", key);
    Ok(Reply::bulk(text.as_bytes()))
}

fn hrandfield(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let count = match argv.get(2) {
        None => None,
        Some(arg) => Some(parse_rand_count(arg)?),
    };
    let with_values = match argv.len() {
        4 if is(argv[3], "withvalues") => true,
        n if n > 3 => return Err(SYNTAX),
        _ => false,
    };
    if with_values && count.is_some_and(|n| n.unsigned_abs() > (i64::MAX / 2) as u64) {
        return Err(CmdError::new("ERR value is out of range"));
    }
    let resp3 = cx.resp3();
    let hash = cx.get::<HashValue>(argv[1])?;
    let Some(count) = count else {
        return Ok(Reply::opt_bulk(
            hash.and_then(|h| h.fields.random())
                .map(|f| f.field.as_slice()),
        ));
    };
    let Some(hash) = hash else {
        return Ok(Reply::Array(Vec::new()));
    };
    let picked = random_items(&hash.fields, count)?;
    let mut out = Vec::with_capacity(picked.len() * if with_values { 2 } else { 1 });
    for f in picked {
        match (with_values, resp3) {
            (false, _) => out.push(Reply::bulk(&f.field)),
            (true, false) => {
                out.push(Reply::bulk(&f.field));
                out.push(Reply::bulk(&f.value));
            }
            (true, true) => out.push(Reply::Array(vec![
                Reply::bulk(&f.field),
                Reply::bulk(&f.value),
            ])),
        }
    }
    Ok(Reply::Array(out))
}

fn hscan(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let cursor = parse_cursor(argv[2])?;
    let Some(hash) = cx.get::<HashValue>(argv[1])? else {
        return Ok(empty_scan());
    };
    let options = parse_scan_options(&argv[3..], false)?;
    let small = hash.listpack.then(|| hash.fields.iter().collect());
    Ok(scan_collection(
        &hash.fields,
        small,
        cursor,
        &options,
        |f, out| {
            out.push(Reply::bulk(&f.field));
            out.push(Reply::bulk(&f.value));
        },
    ))
}
