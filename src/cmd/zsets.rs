//! Sorted-set commands.

use super::args::{
    is, parse_count, parse_f64, parse_float, parse_i64, parse_rand_count, parse_timeout, SYNTAX,
};
use super::flags::*;
use super::keys::{empty_scan, parse_cursor, parse_scan_options, random_items, scan_collection};
use super::lists::parse_mpop;
use super::{Argv, CmdError, CmdResult, Command, KeySpec, FIRST_KEY};
use crate::engine::blocking::BlockedOp;
use crate::engine::ctx::Ctx;
use crate::keyspace::bytes::CompactBytes;
use crate::keyspace::value::{EncodingLimits, ScoreKey, SetValue, Value, ValueType, ZSetValue};
use crate::reply::{err, format_double, Reply};

pub const COMMANDS: &[Command] = &[
    Command::new("zadd", -4, WRITE | DENYOOM | FAST, FIRST_KEY, zadd),
    Command::new("zincrby", 4, WRITE | DENYOOM | FAST, FIRST_KEY, zincrby),
    Command::new("zrem", -3, WRITE | FAST, FIRST_KEY, zrem),
    Command::new("zcard", 2, READONLY | FAST, FIRST_KEY, zcard),
    Command::new("zscore", 3, READONLY | FAST, FIRST_KEY, zscore),
    Command::new("zmscore", -3, READONLY | FAST, FIRST_KEY, zmscore),
    Command::new("zcount", 4, READONLY | FAST, FIRST_KEY, zcount),
    Command::new("zlexcount", 4, READONLY | FAST, FIRST_KEY, zlexcount),
    Command::new("zrange", -4, READONLY, FIRST_KEY, zrange),
    Command::new(
        "zrangestore",
        -5,
        WRITE | DENYOOM,
        KeySpec::Range {
            first: 1,
            last: 2,
            step: 1,
        },
        zrangestore,
    ),
    Command::new("zrangebyscore", -4, READONLY, FIRST_KEY, zrangebyscore),
    Command::new(
        "zrevrangebyscore",
        -4,
        READONLY,
        FIRST_KEY,
        zrevrangebyscore,
    ),
    Command::new("zrangebylex", -4, READONLY, FIRST_KEY, zrangebylex),
    Command::new("zrevrangebylex", -4, READONLY, FIRST_KEY, zrevrangebylex),
    Command::new("zrevrange", -4, READONLY, FIRST_KEY, zrevrange),
    Command::new("zrank", 3, READONLY | FAST, FIRST_KEY, zrank),
    Command::new("zrevrank", 3, READONLY | FAST, FIRST_KEY, zrevrank),
    Command::new("zpopmin", -2, WRITE | FAST, FIRST_KEY, zpopmin),
    Command::new("zpopmax", -2, WRITE | FAST, FIRST_KEY, zpopmax),
    Command::new(
        "zmpop",
        -4,
        WRITE,
        KeySpec::NumKeys {
            count_at: 1,
            dest: false,
        },
        zmpop,
    ),
    Command::new(
        "bzpopmin",
        -3,
        WRITE | FAST | BLOCKING,
        KeySpec::Range {
            first: 1,
            last: -2,
            step: 1,
        },
        bzpopmin,
    ),
    Command::new(
        "bzpopmax",
        -3,
        WRITE | FAST | BLOCKING,
        KeySpec::Range {
            first: 1,
            last: -2,
            step: 1,
        },
        bzpopmax,
    ),
    Command::new(
        "bzmpop",
        -5,
        WRITE | BLOCKING,
        KeySpec::NumKeys {
            count_at: 2,
            dest: false,
        },
        bzmpop,
    ),
    Command::new("zrandmember", -2, READONLY, FIRST_KEY, zrandmember),
    Command::new("zremrangebyrank", 4, WRITE, FIRST_KEY, zremrangebyrank),
    Command::new("zremrangebyscore", 4, WRITE, FIRST_KEY, zremrangebyscore),
    Command::new("zremrangebylex", 4, WRITE, FIRST_KEY, zremrangebylex),
    Command::new(
        "zunion",
        -3,
        READONLY,
        KeySpec::NumKeys {
            count_at: 1,
            dest: false,
        },
        zunion,
    ),
    Command::new(
        "zinter",
        -3,
        READONLY,
        KeySpec::NumKeys {
            count_at: 1,
            dest: false,
        },
        zinter,
    ),
    Command::new(
        "zdiff",
        -3,
        READONLY,
        KeySpec::NumKeys {
            count_at: 1,
            dest: false,
        },
        zdiff,
    ),
    Command::new(
        "zunionstore",
        -4,
        WRITE | DENYOOM,
        KeySpec::NumKeys {
            count_at: 2,
            dest: true,
        },
        zunionstore,
    ),
    Command::new(
        "zinterstore",
        -4,
        WRITE | DENYOOM,
        KeySpec::NumKeys {
            count_at: 2,
            dest: true,
        },
        zinterstore,
    ),
    Command::new(
        "zdiffstore",
        -4,
        WRITE | DENYOOM,
        KeySpec::NumKeys {
            count_at: 2,
            dest: true,
        },
        zdiffstore,
    ),
    Command::new(
        "zintercard",
        -3,
        READONLY,
        KeySpec::NumKeys {
            count_at: 1,
            dest: false,
        },
        zintercard,
    ),
    Command::new("zscan", -3, READONLY, FIRST_KEY, zscan),
];

// ---- replies ----------------------------------------------------------------------------------

/// Members with optional scores: flat in RESP2, [member, score] pairs in RESP3.
fn scored_reply<'a>(
    cx: &Ctx<'_, '_>,
    items: impl Iterator<Item = (&'a [u8], f64)>,
    with_scores: bool,
) -> Reply {
    let resp3 = cx.resp3();
    let mut out = Vec::new();
    for (member, score) in items {
        match (with_scores, resp3) {
            (false, _) => out.push(Reply::bulk(member)),
            (true, false) => {
                out.push(Reply::bulk(member));
                out.push(Reply::Double(score));
            }
            (true, true) => out.push(Reply::Array(vec![
                Reply::bulk(member),
                Reply::Double(score),
            ])),
        }
    }
    Reply::Array(out)
}

// ---- ranges -----------------------------------------------------------------------------------

#[derive(Copy, Clone)]
struct ScoreBound {
    value: f64,
    exclusive: bool,
}

/// A range bound: optional `(`, then a number as plain `strtod` reads it (Redis's range
/// parser is looser than ZADD's: an empty number is 0, leading spaces are skipped, and
/// overflow saturates to infinity).
fn parse_score_bound(arg: &[u8]) -> Result<ScoreBound, CmdError> {
    let bad = CmdError::new(err::MIN_MAX_FLOAT);
    let (exclusive, text) = match arg.strip_prefix(b"(") {
        Some(rest) => (true, rest),
        None => (false, arg),
    };
    let value = if text.is_empty() {
        0.0
    } else {
        let text = std::str::from_utf8(text).map_err(|_| bad.clone())?;
        let number = text.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
        let value = match super::longdouble::hex_float(number) {
            Some(hex) => hex,
            None => number.parse::<f64>().ok(),
        };
        value.filter(|v| !v.is_nan()).ok_or(bad)?
    };
    Ok(ScoreBound { value, exclusive })
}

#[derive(Copy, Clone)]
struct ScoreRange {
    min: ScoreBound,
    max: ScoreBound,
}

impl ScoreRange {
    fn above_min(&self, score: f64) -> bool {
        if self.min.exclusive {
            score > self.min.value
        } else {
            score >= self.min.value
        }
    }

    fn below_max(&self, score: f64) -> bool {
        if self.max.exclusive {
            score < self.max.value
        } else {
            score <= self.max.value
        }
    }
}

#[derive(Clone)]
enum LexBound {
    NegInf,
    PosInf,
    Inclusive(Vec<u8>),
    Exclusive(Vec<u8>),
}

fn parse_lex_bound(arg: &[u8]) -> Result<LexBound, CmdError> {
    match arg.first() {
        Some(b'-') if arg.len() == 1 => Ok(LexBound::NegInf),
        Some(b'+') if arg.len() == 1 => Ok(LexBound::PosInf),
        Some(b'[') => Ok(LexBound::Inclusive(arg[1..].to_vec())),
        Some(b'(') => Ok(LexBound::Exclusive(arg[1..].to_vec())),
        _ => Err(CmdError::new(err::MIN_MAX_LEX)),
    }
}

#[derive(Clone)]
struct LexRange {
    min: LexBound,
    max: LexBound,
}

impl LexRange {
    fn above_min(&self, m: &[u8]) -> bool {
        match &self.min {
            LexBound::NegInf => true,
            LexBound::PosInf => false,
            LexBound::Inclusive(b) => m >= b.as_slice(),
            LexBound::Exclusive(b) => m > b.as_slice(),
        }
    }

    fn below_max(&self, m: &[u8]) -> bool {
        match &self.max {
            LexBound::NegInf => false,
            LexBound::PosInf => true,
            LexBound::Inclusive(b) => m <= b.as_slice(),
            LexBound::Exclusive(b) => m < b.as_slice(),
        }
    }
}

/// A range over a sorted set, by rank, score or member.
#[derive(Clone)]
enum Range {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

impl Range {
    fn above_min(&self, k: &ScoreKey) -> bool {
        match self {
            Range::Rank(..) => true,
            Range::Score(r) => r.above_min(k.score),
            Range::Lex(r) => r.above_min(&k.member),
        }
    }

    fn below_max(&self, k: &ScoreKey) -> bool {
        match self {
            Range::Rank(..) => true,
            Range::Score(r) => r.below_max(k.score),
            Range::Lex(r) => r.below_max(&k.member),
        }
    }

    fn parse(kind: RangeKind, min: &[u8], max: &[u8]) -> Result<Range, CmdError> {
        Ok(match kind {
            RangeKind::Rank => Range::Rank(parse_i64(min)?, parse_i64(max)?),
            RangeKind::Score => Range::Score(ScoreRange {
                min: parse_score_bound(min)?,
                max: parse_score_bound(max)?,
            }),
            RangeKind::Lex => Range::Lex(LexRange {
                min: parse_lex_bound(min)?,
                max: parse_lex_bound(max)?,
            }),
        })
    }
}

#[derive(Copy, Clone, PartialEq, Eq)]
enum RangeKind {
    Rank,
    Score,
    Lex,
}

/// LIMIT offset count: a negative count means "all after the offset".
#[derive(Copy, Clone)]
struct Limit {
    offset: i64,
    count: i64,
}

const NO_LIMIT: Limit = Limit {
    offset: 0,
    count: -1,
};

/// A lex range over a listpack-sized set, the way Redis walks a listpack: it is only defined
/// when all scores are equal, but then Redis's linear scan gives a deterministic answer for
/// mixed scores too, and we give the same one. (Above the listpack size Redis's answer
/// depends on its skiplist's random levels, so the O(log n) search below is as good.)
fn select_lex_linear<'z>(z: &'z ZSetValue, range: &LexRange, rev: bool) -> Vec<&'z ScoreKey> {
    let all: Vec<&ScoreKey> = z.order.iter().collect();
    let (Some(first), Some(last)) = (all.first(), all.last()) else {
        return Vec::new();
    };
    // Ranges that cannot contain anything, as Redis checks them up front.
    if !range.above_min(&last.member) || !range.below_max(&first.member) {
        return Vec::new();
    }
    if rev {
        let Some(end) = all.iter().rposition(|k| range.below_max(&k.member)) else {
            return Vec::new();
        };
        all[..=end]
            .iter()
            .rev()
            .take_while(|k| range.above_min(&k.member))
            .copied()
            .collect()
    } else {
        let Some(start) = all.iter().position(|k| range.above_min(&k.member)) else {
            return Vec::new();
        };
        all[start..]
            .iter()
            .take_while(|k| range.below_max(&k.member))
            .copied()
            .collect()
    }
}

/// The members of `z` in `range`, in order (reverse with `rev`), after LIMIT.
fn select<'z>(z: &'z ZSetValue, range: &Range, rev: bool, limit: Limit) -> Vec<&'z ScoreKey> {
    let len = z.len();
    if limit.offset < 0 {
        return Vec::new();
    }
    let take = if limit.count < 0 {
        usize::MAX
    } else {
        limit.count as usize
    };
    let skip = limit.offset as usize;
    match range {
        Range::Rank(start, stop) => {
            let Some((a, b)) = super::lists::resolve_range(*start, *stop, len) else {
                return Vec::new();
            };
            let first_rank = if rev { len - 1 - a } else { a };
            z.order.iter_from(first_rank, rev).take(b - a + 1).collect()
        }
        Range::Lex(lex) if z.listpack => {
            let take = if limit.count < 0 {
                usize::MAX
            } else {
                limit.count as usize
            };
            select_lex_linear(z, lex, rev)
                .into_iter()
                .skip(skip)
                .take(take)
                .collect()
        }
        _ => {
            let start = if rev {
                // The last member not above the maximum.
                match z.order.count_while(|k| range.below_max(k)) {
                    0 => return Vec::new(),
                    n => n - 1,
                }
            } else {
                z.order.count_while(|k| !range.above_min(k))
            };
            if start >= len {
                return Vec::new();
            }
            z.order
                .iter_from(start, rev)
                .take_while(|k| range.above_min(k) && range.below_max(k))
                .skip(skip)
                .take(take)
                .collect()
        }
    }
}

/// Number of members in a score or lex range, O(log n).
fn count_in(z: &ZSetValue, range: &Range) -> usize {
    if let Range::Lex(lex) = range {
        if z.listpack {
            return select_lex_linear(z, lex, false).len();
        }
    }
    let below = z.order.count_while(|k| !range.above_min(k));
    let through = z.order.count_while(|k| range.below_max(k));
    through.saturating_sub(below)
}

// ---- ZADD / ZINCRBY -----------------------------------------------------------------------------

#[derive(Default)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

enum AddResult {
    Added,
    Updated,
    Unchanged,
    /// NX/XX/GT/LT refused the change.
    Skipped,
}

/// Adds or updates one member under ZADD's flags; returns what happened and the final score.
fn add_one(
    z: &mut ZSetValue,
    member: &[u8],
    score: f64,
    f: &AddFlags,
    limits: &EncodingLimits,
) -> Result<(AddResult, f64), CmdError> {
    match z.score(member) {
        Some(current) => {
            if f.nx {
                return Ok((AddResult::Skipped, current));
            }
            let new = if f.incr { current + score } else { score };
            if new.is_nan() {
                return Err(CmdError::new(err::SCORE_NAN));
            }
            if (f.gt && new <= current) || (f.lt && new >= current) {
                return Ok((AddResult::Skipped, current));
            }
            if new == current {
                return Ok((AddResult::Unchanged, new));
            }
            z.set_score(member, new, limits);
            Ok((AddResult::Updated, new))
        }
        None => {
            if f.xx {
                return Ok((AddResult::Skipped, 0.0));
            }
            z.set_score(member, score, limits);
            Ok((AddResult::Added, score))
        }
    }
}

fn zadd_generic(cx: &mut Ctx<'_, '_>, argv: &[&[u8]], mut f: AddFlags) -> CmdResult {
    let key = argv[1];
    let mut i = 2;
    while i < argv.len() {
        let a = argv[i];
        if is(a, "nx") {
            f.nx = true;
        } else if is(a, "xx") {
            f.xx = true;
        } else if is(a, "gt") {
            f.gt = true;
        } else if is(a, "lt") {
            f.lt = true;
        } else if is(a, "ch") {
            f.ch = true;
        } else if is(a, "incr") {
            f.incr = true;
        } else {
            break;
        }
        i += 1;
    }
    let pairs = &argv[i..];
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return Err(SYNTAX);
    }
    if f.nx && f.xx {
        return Err(CmdError::new(
            "ERR XX and NX options at the same time are not compatible",
        ));
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return Err(CmdError::new(
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if f.incr && pairs.len() > 2 {
        return Err(CmdError::new(
            "ERR INCR option supports a single increment-element pair",
        ));
    }
    let scores = pairs
        .chunks(2)
        .map(|p| parse_float(p[0]))
        .collect::<Result<Vec<f64>, CmdError>>()?;
    let limits = cx.engine.live.encoding();
    if cx.get::<ZSetValue>(key)?.is_none() {
        if f.xx {
            return Ok(if f.incr { Reply::Nil } else { Reply::Int(0) });
        }
        let mut z = ZSetValue::new();
        if limits.zset_max_listpack_entries == 0 || pairs[1].len() > limits.zset_max_listpack_value
        {
            z.listpack = false;
        }
        cx.store(key, Value::ZSet(Box::new(z)), 0)?;
    }
    let mut reply = Reply::Int(0);
    let (mut added, mut updated) = (0, 0);
    let mut failure = None;
    let z = cx.get_mut::<ZSetValue>(key)?.ok_or(SYNTAX)?;
    for (pair, score) in pairs.chunks(2).zip(scores) {
        let (result, new_score) = match add_one(z, pair[1], score, &f, &limits) {
            Ok(done) => done,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        match result {
            AddResult::Added => added += 1,
            AddResult::Updated => updated += 1,
            AddResult::Unchanged | AddResult::Skipped => {}
        }
        if f.incr {
            reply = match result {
                AddResult::Skipped => Reply::Nil,
                _ => Reply::Double(new_score),
            };
        }
    }
    cx.remove_if_empty(key)?;
    if added + updated > 0 {
        cx.touch(key)?;
        cx.propagate(argv);
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if f.incr {
        return Ok(reply);
    }
    Ok(Reply::Int(if f.ch { added + updated } else { added }))
}

fn zadd(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    zadd_generic(cx, argv, AddFlags::default())
}

fn zincrby(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    zadd_generic(
        cx,
        argv,
        AddFlags {
            incr: true,
            ..AddFlags::default()
        },
    )
}

fn zrem(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let key = argv[1];
    let Some(z) = cx.get_mut::<ZSetValue>(key)? else {
        return Ok(Reply::Int(0));
    };
    let removed = argv[2..].iter().filter(|m| z.remove(m).is_some()).count();
    if removed > 0 {
        cx.touch(key)?;
        cx.remove_if_empty(key)?;
        cx.propagate(argv);
    }
    Ok(Reply::Int(removed as i64))
}

fn zcard(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    Ok(Reply::Int(
        cx.get::<ZSetValue>(argv[1])?.map_or(0, |z| z.len() as i64),
    ))
}

fn zscore(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let z = cx.get::<ZSetValue>(argv[1])?;
    Ok(z.and_then(|z| z.score(argv[2]))
        .map_or(Reply::Nil, Reply::Double))
}

fn zmscore(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let z = cx.get::<ZSetValue>(argv[1])?;
    Ok(Reply::Array(
        argv[2..]
            .iter()
            .map(|m| z.and_then(|z| z.score(m)).map_or(Reply::Nil, Reply::Double))
            .collect(),
    ))
}

fn zcount(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let range = Range::parse(RangeKind::Score, argv[2], argv[3])?;
    let z = cx.get::<ZSetValue>(argv[1])?;
    Ok(Reply::Int(z.map_or(0, |z| count_in(z, &range)) as i64))
}

fn zlexcount(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let range = Range::parse(RangeKind::Lex, argv[2], argv[3])?;
    let z = cx.get::<ZSetValue>(argv[1])?;
    Ok(Reply::Int(z.map_or(0, |z| count_in(z, &range)) as i64))
}

// ---- ZRANGE family ------------------------------------------------------------------------------

struct RangeQuery {
    range: Range,
    rev: bool,
    limit: Limit,
    with_scores: bool,
}

/// Parses ZRANGE-style arguments: `min max` at `at`, then options. `kind`/`rev` preset the
/// legacy forms (ZRANGEBYSCORE, ZREVRANGE, ...); `store` refuses WITHSCORES.
fn parse_range_query(
    argv: &[&[u8]],
    at: usize,
    mut kind: RangeKind,
    mut rev: bool,
    modern: bool,
    store: bool,
) -> Result<RangeQuery, CmdError> {
    let mut limit = None;
    let mut with_scores = false;
    // ZRANGE takes one BY* and one REV at most; the legacy forms fix both.
    let (mut kind_open, mut rev_open) = (modern, modern);
    let mut i = at + 2;
    while i < argv.len() {
        let a = argv[i];
        if !store && is(a, "withscores") {
            with_scores = true;
        } else if is(a, "limit") && i + 2 < argv.len() {
            limit = Some(Limit {
                offset: parse_i64(argv[i + 1])?,
                count: parse_i64(argv[i + 2])?,
            });
            i += 2;
        } else if kind_open && (is(a, "byscore") || is(a, "bylex")) {
            kind = if is(a, "byscore") {
                RangeKind::Score
            } else {
                RangeKind::Lex
            };
            kind_open = false;
        } else if rev_open && is(a, "rev") {
            rev = true;
            rev_open = false;
        } else {
            return Err(SYNTAX);
        }
        i += 1;
    }
    if with_scores && kind == RangeKind::Lex {
        return Err(CmdError::new(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    // Redis only objects when the count is not -1 ("LIMIT x -1" on ranks is ignored).
    if limit.is_some_and(|l| l.count != -1) && kind == RangeKind::Rank {
        return Err(CmdError::new(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    // Reversed score and lex ranges take `max min`.
    let (min, max) = if rev && kind != RangeKind::Rank {
        (argv[at + 1], argv[at])
    } else {
        (argv[at], argv[at + 1])
    };
    Ok(RangeQuery {
        range: Range::parse(kind, min, max)?,
        rev,
        limit: limit.unwrap_or(NO_LIMIT),
        with_scores,
    })
}

fn run_range(cx: &mut Ctx<'_, '_>, key: &[u8], q: &RangeQuery) -> CmdResult {
    let Some(z) = cx.get::<ZSetValue>(key)? else {
        return Ok(Reply::Array(Vec::new()));
    };
    let items: Vec<(Vec<u8>, f64)> = select(z, &q.range, q.rev, q.limit)
        .into_iter()
        .map(|k| (k.member.to_vec(), k.score))
        .collect();
    Ok(scored_reply(
        cx,
        items.iter().map(|(m, s)| (m.as_slice(), *s)),
        q.with_scores,
    ))
}

fn zrange(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let q = parse_range_query(argv, 2, RangeKind::Rank, false, true, false)?;
    run_range(cx, argv[1], &q)
}

fn zrangebyscore(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let q = parse_range_query(argv, 2, RangeKind::Score, false, false, false)?;
    run_range(cx, argv[1], &q)
}

fn zrevrangebyscore(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let q = parse_range_query(argv, 2, RangeKind::Score, true, false, false)?;
    run_range(cx, argv[1], &q)
}

fn zrangebylex(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let q = parse_range_query(argv, 2, RangeKind::Lex, false, false, false)?;
    run_range(cx, argv[1], &q)
}

fn zrevrangebylex(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let q = parse_range_query(argv, 2, RangeKind::Lex, true, false, false)?;
    run_range(cx, argv[1], &q)
}

fn zrevrange(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let q = parse_range_query(argv, 2, RangeKind::Rank, true, false, false)?;
    run_range(cx, argv[1], &q)
}

/// Replaces `dst` with a sorted set of `items` (deleting it when empty); logs `argv` when
/// something changed. Replies with the stored size.
fn store_zset(
    cx: &mut Ctx<'_, '_>,
    argv: &[&[u8]],
    dst: &[u8],
    items: Vec<(CompactBytes, f64)>,
) -> CmdResult {
    if items.is_empty() {
        if cx.remove(dst)?.is_some() {
            cx.propagate(argv);
        }
        return Ok(Reply::Int(0));
    }
    let limits = cx.engine.live.encoding();
    let mut z = ZSetValue::new();
    for (member, score) in &items {
        z.set_score(member, *score, &limits);
    }
    let n = z.len();
    cx.store(dst, Value::ZSet(Box::new(z)), 0)?;
    cx.propagate(argv);
    Ok(Reply::Int(n as i64))
}

fn zrangestore(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let q = parse_range_query(argv, 3, RangeKind::Rank, false, true, true)?;
    let items = match cx.get::<ZSetValue>(argv[2])? {
        None => Vec::new(),
        Some(z) => select(z, &q.range, q.rev, q.limit)
            .into_iter()
            .map(|k| (k.member.clone(), k.score))
            .collect(),
    };
    store_zset(cx, argv, argv[1], items)
}

fn rank_generic(cx: &mut Ctx<'_, '_>, argv: &[&[u8]], rev: bool) -> CmdResult {
    let z = cx.get::<ZSetValue>(argv[1])?;
    Ok(
        match z.and_then(|z| z.rank(argv[2]).map(|r| (r, z.len()))) {
            None => Reply::Nil,
            Some((r, len)) => Reply::Int(if rev { len - 1 - r } else { r } as i64),
        },
    )
}

fn zrank(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    rank_generic(cx, argv, false)
}

fn zrevrank(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    rank_generic(cx, argv, true)
}

// ---- pops ---------------------------------------------------------------------------------------

/// Pops up to `count` lowest (or highest) members; `None` when the key is missing.
fn pop_members(
    cx: &mut Ctx<'_, '_>,
    key: &[u8],
    min: bool,
    count: usize,
) -> Result<Option<Vec<(CompactBytes, f64)>>, CmdError> {
    let Some(z) = cx.get_mut::<ZSetValue>(key)? else {
        return Ok(None);
    };
    let mut popped = Vec::with_capacity(count.min(z.len()));
    while popped.len() < count {
        let edge = if min {
            z.order.select(0)
        } else {
            z.order.select(z.len().wrapping_sub(1))
        };
        let Some(k) = edge.cloned() else {
            break;
        };
        z.remove(&k.member);
        popped.push((k.member, k.score));
    }
    if !popped.is_empty() {
        cx.touch(key)?;
        cx.remove_if_empty(key)?;
    }
    Ok(Some(popped))
}

fn zpop(cx: &mut Ctx<'_, '_>, argv: &[&[u8]], min: bool) -> CmdResult {
    if argv.len() > 3 {
        return Err(SYNTAX);
    }
    let count = match argv.get(2) {
        Some(a) => Some(parse_count(a, err::MUST_BE_POSITIVE)?),
        None => None,
    };
    let popped = pop_members(cx, argv[1], min, count.unwrap_or(1))?.unwrap_or_default();
    if !popped.is_empty() {
        cx.propagate(argv);
    }
    let items = popped.iter().map(|(m, s)| (m.as_slice(), *s));
    if count.is_none() || !cx.resp3() {
        // One pair, or RESP2: a flat member, score, ... array.
        let flat = items
            .flat_map(|(m, s)| [Reply::bulk(m), Reply::Double(s)])
            .collect();
        return Ok(Reply::Array(flat));
    }
    Ok(scored_reply(cx, items, true))
}

fn zpopmin(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    zpop(cx, argv, true)
}

fn zpopmax(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    zpop(cx, argv, false)
}

fn parse_min_max(arg: &[u8]) -> Result<bool, CmdError> {
    if is(arg, "min") {
        Ok(true)
    } else if is(arg, "max") {
        Ok(false)
    } else {
        Err(SYNTAX)
    }
}

/// `[key, [[member, score], ...]]` for ZMPOP/BZMPOP, logged as ZPOPMIN/ZPOPMAX key n.
fn mpop_reply(
    cx: &mut Ctx<'_, '_>,
    key: &[u8],
    min: bool,
    popped: &[(CompactBytes, f64)],
) -> Reply {
    let n = popped.len().to_string();
    cx.propagate(&[if min { b"ZPOPMIN" } else { b"ZPOPMAX" }, key, n.as_bytes()]);
    let pairs = popped
        .iter()
        .map(|(m, s)| Reply::Array(vec![Reply::bulk(m), Reply::Double(*s)]))
        .collect();
    Reply::Array(vec![Reply::bulk(key), Reply::Array(pairs)])
}

fn mpop_first(
    cx: &mut Ctx<'_, '_>,
    keys: &[&[u8]],
    min: bool,
    count: usize,
) -> Result<Option<Reply>, CmdError> {
    for key in keys {
        if let Some(popped) = pop_members(cx, key, min, count)? {
            return Ok(Some(mpop_reply(cx, key, min, &popped)));
        }
    }
    Ok(None)
}

fn zmpop(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let m = parse_mpop(argv, 1, parse_min_max)?;
    Ok(mpop_first(cx, m.keys, m.side, m.count)?.unwrap_or(Reply::NilArray))
}

fn bzpop(cx: &mut Ctx<'_, '_>, argv: &[&[u8]], min: bool) -> CmdResult {
    let timeout = parse_timeout(argv[argv.len() - 1])?;
    let keys = &argv[1..argv.len() - 1];
    for key in keys {
        if let Some(reply) = bzpop_one(cx, key, min)? {
            return Ok(reply);
        }
    }
    cx.block_or(
        keys,
        timeout,
        BlockedOp::ZPop { min, count: None },
        Reply::NilArray,
    )
}

/// Pops one member for BZPOPMIN/BZPOPMAX: `[key, member, score]`, logged as ZPOPMIN/ZPOPMAX key.
fn bzpop_one(cx: &mut Ctx<'_, '_>, key: &[u8], min: bool) -> Result<Option<Reply>, CmdError> {
    let Some(mut popped) = pop_members(cx, key, min, 1)? else {
        return Ok(None);
    };
    let Some((member, score)) = popped.pop() else {
        return Ok(None);
    };
    cx.propagate(&[if min { b"ZPOPMIN" } else { b"ZPOPMAX" }, key]);
    Ok(Some(Reply::Array(vec![
        Reply::bulk(key),
        Reply::bulk(&member),
        Reply::Double(score),
    ])))
}

fn bzpopmin(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    bzpop(cx, argv, true)
}

fn bzpopmax(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    bzpop(cx, argv, false)
}

fn bzmpop(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let m = parse_mpop(argv, 2, parse_min_max)?;
    let timeout = parse_timeout(argv[1])?;
    if let Some(reply) = mpop_first(cx, m.keys, m.side, m.count)? {
        return Ok(reply);
    }
    let op = BlockedOp::ZPop {
        min: m.side,
        count: Some(m.count),
    };
    cx.block_or(m.keys, timeout, op, Reply::NilArray)
}

/// Serves a client blocked on BZPOPMIN/BZPOPMAX/BZMPOP from `key`.
pub fn serve(cx: &mut Ctx<'_, '_>, op: &BlockedOp, key: &[u8]) -> Option<Reply> {
    let result = match op {
        BlockedOp::ZPop { min, count: None } => bzpop_one(cx, key, *min),
        BlockedOp::ZPop {
            min,
            count: Some(n),
        } => pop_members(cx, key, *min, *n).map(|popped| {
            let popped = popped.filter(|p| !p.is_empty())?;
            Some(mpop_reply(cx, key, *min, &popped))
        }),
        _ => Ok(None),
    };
    result.unwrap_or_else(|e| Some(e.into()))
}

// ---- random, remove ranges ----------------------------------------------------------------------

fn zrandmember(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let count = match argv.get(2) {
        None => None,
        Some(arg) => Some(parse_rand_count(arg)?),
    };
    let with_scores = match argv.len() {
        4 if is(argv[3], "withscores") => true,
        n if n > 3 => return Err(SYNTAX),
        _ => false,
    };
    if with_scores && count.is_some_and(|n| n.unsigned_abs() > (i64::MAX / 2) as u64) {
        return Err(CmdError::new("ERR value is out of range"));
    }
    let z = cx.get::<ZSetValue>(argv[1])?;
    let Some(count) = count else {
        return Ok(Reply::opt_bulk(
            z.and_then(|z| z.members.random())
                .map(|m| m.member.as_slice()),
        ));
    };
    let Some(z) = z else {
        return Ok(Reply::Array(Vec::new()));
    };
    // Asked for at least everything, Redis walks the set backwards: highest score first.
    let picked: Vec<(Vec<u8>, f64)> = if count >= z.len() as i64 {
        z.order
            .iter_from(z.len().saturating_sub(1), true)
            .map(|k| (k.member.to_vec(), k.score))
            .collect()
    } else {
        random_items(&z.members, count)?
            .into_iter()
            .map(|m| (m.member.to_vec(), m.score))
            .collect()
    };
    Ok(scored_reply(
        cx,
        picked.iter().map(|(m, s)| (m.as_slice(), *s)),
        with_scores,
    ))
}

fn remrange(cx: &mut Ctx<'_, '_>, argv: &[&[u8]], kind: RangeKind) -> CmdResult {
    let key = argv[1];
    let range = Range::parse(kind, argv[2], argv[3])?;
    let Some(z) = cx.get_mut::<ZSetValue>(key)? else {
        return Ok(Reply::Int(0));
    };
    let doomed: Vec<CompactBytes> = select(z, &range, false, NO_LIMIT)
        .into_iter()
        .map(|k| k.member.clone())
        .collect();
    for member in &doomed {
        z.remove(member);
    }
    if !doomed.is_empty() {
        cx.touch(key)?;
        cx.remove_if_empty(key)?;
        cx.propagate(argv);
    }
    Ok(Reply::Int(doomed.len() as i64))
}

fn zremrangebyrank(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    remrange(cx, argv, RangeKind::Rank)
}

fn zremrangebyscore(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    remrange(cx, argv, RangeKind::Score)
}

fn zremrangebylex(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    remrange(cx, argv, RangeKind::Lex)
}

// ---- union, intersection, difference ------------------------------------------------------------

#[derive(Copy, Clone, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Copy, Clone)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

impl Aggregate {
    fn apply(self, a: f64, b: f64) -> f64 {
        match self {
            // inf + -inf is NaN; Redis makes it 0.
            Aggregate::Sum => {
                let s = a + b;
                if s.is_nan() {
                    0.0
                } else {
                    s
                }
            }
            Aggregate::Min => a.min(b),
            Aggregate::Max => a.max(b),
        }
    }
}

struct Combine<'a> {
    keys: &'a [&'a [u8]],
    weights: Vec<f64>,
    aggregate: Aggregate,
    with_scores: bool,
    /// ZINTERCARD's LIMIT (0: none).
    limit: usize,
}

/// Which options a union/intersection/difference command accepts.
#[derive(Copy, Clone, PartialEq, Eq)]
enum Form {
    Reply,
    Store,
    Cardinality,
}

/// Parses `numkeys key...` at `at`: the keys and the arguments after them.
fn parse_numkeys<'a>(
    argv: Argv<'a>,
    at: usize,
    name: &str,
) -> Result<(Argv<'a>, Argv<'a>), CmdError> {
    let numkeys = parse_i64(argv[at])?;
    if numkeys < 1 {
        return Err(CmdError::msg(format!(
            "ERR at least 1 input key is needed for '{name}' command"
        )));
    }
    let first = at + 1;
    if numkeys as u64 > (argv.len() - first) as u64 {
        return Err(SYNTAX);
    }
    let end = first + numkeys as usize;
    Ok((&argv[first..end], &argv[end..]))
}

/// Parses `[WEIGHTS w...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]` (Redis reads these only after
/// it has type-checked the input keys).
fn parse_combine_options<'a>(
    keys: &'a [&'a [u8]],
    options: &[&[u8]],
    op: SetOp,
    form: Form,
) -> Result<Combine<'a>, CmdError> {
    let numkeys = keys.len();
    let mut c = Combine {
        keys,
        weights: vec![1.0; numkeys],
        aggregate: Aggregate::Sum,
        with_scores: false,
        limit: 0,
    };
    let weighted_op = op != SetOp::Diff && form != Form::Cardinality;
    let mut i = 0;
    while i < options.len() {
        let remaining = options.len() - i - 1;
        if weighted_op && is(options[i], "weights") && remaining >= numkeys {
            for (j, w) in options[i + 1..i + 1 + numkeys].iter().enumerate() {
                c.weights[j] = parse_f64(w).ok_or(CmdError::new(err::WEIGHT_FLOAT))?;
            }
            i += numkeys;
        } else if weighted_op && is(options[i], "aggregate") && remaining >= 1 {
            let a = options[i + 1];
            c.aggregate = if is(a, "sum") {
                Aggregate::Sum
            } else if is(a, "min") {
                Aggregate::Min
            } else if is(a, "max") {
                Aggregate::Max
            } else {
                return Err(SYNTAX);
            };
            i += 1;
        } else if form == Form::Reply && is(options[i], "withscores") {
            c.with_scores = true;
        } else if form == Form::Cardinality && is(options[i], "limit") && remaining >= 1 {
            c.limit = parse_count(options[i + 1], "ERR LIMIT can't be negative")?;
            i += 1;
        } else {
            return Err(SYNTAX);
        }
        i += 1;
    }
    Ok(c)
}

/// Type-checks the inputs of a union/intersection/difference: zsets and sets only.
fn check_inputs(cx: &mut Ctx<'_, '_>, keys: &[&[u8]]) -> Result<(), CmdError> {
    for key in keys {
        if let Some(entry) = cx.lookup(key)? {
            if !matches!(entry.value.value_type(), ValueType::ZSet | ValueType::Set) {
                return Err(crate::engine::ctx::WRONGTYPE);
            }
        }
    }
    Ok(())
}

/// A sorted-set input: a zset, or a set whose members all score 1.
enum Input<'a> {
    ZSet(&'a ZSetValue),
    Set(&'a SetValue),
}

impl Input<'_> {
    fn len(&self) -> usize {
        match self {
            Input::ZSet(z) => z.len(),
            Input::Set(s) => s.len(),
        }
    }

    fn score(&self, member: &[u8]) -> Option<f64> {
        match self {
            Input::ZSet(z) => z.score(member),
            Input::Set(s) => s.contains(member).then_some(1.0),
        }
    }

    fn for_each(&self, mut f: impl FnMut(&CompactBytes, f64)) {
        match self {
            Input::ZSet(z) => z.members.iter().for_each(|m| f(&m.member, m.score)),
            Input::Set(s) => s.members.iter().for_each(|m| f(m, 1.0)),
        }
    }
}

/// A weighted score; 0 * inf (NaN) counts as 0, as in Redis.
fn weighted(score: f64, weight: f64) -> f64 {
    let w = score * weight;
    if w.is_nan() {
        0.0
    } else {
        w
    }
}

fn combine(
    cx: &mut Ctx<'_, '_>,
    c: &Combine<'_>,
    op: SetOp,
) -> Result<Vec<(CompactBytes, f64)>, CmdError> {
    let limit = c.limit;
    let inputs: Vec<Option<Input<'_>>> = c
        .keys
        .iter()
        .map(|k| {
            cx.peek::<ZSetValue>(k)
                .map(Input::ZSet)
                .or_else(|| cx.peek::<SetValue>(k).map(Input::Set))
        })
        .collect();
    let mut out: Vec<(CompactBytes, f64)> = Vec::new();
    match op {
        SetOp::Union => {
            let mut acc: std::collections::HashMap<CompactBytes, f64> =
                std::collections::HashMap::new();
            for (input, weight) in inputs.iter().zip(&c.weights) {
                let Some(input) = input else {
                    continue;
                };
                input.for_each(|m, s| {
                    let s = weighted(s, *weight);
                    acc.entry(m.clone())
                        .and_modify(|cur| *cur = c.aggregate.apply(*cur, s))
                        .or_insert(s);
                });
            }
            out.extend(acc);
        }
        SetOp::Inter => {
            if inputs.iter().any(Option::is_none) {
                return Ok(out);
            }
            let mut order: Vec<usize> = (0..inputs.len()).collect();
            order.sort_by_key(|&i| inputs[i].as_ref().map_or(0, Input::len));
            let (first, rest) = order.split_first().ok_or(SYNTAX)?;
            let Some(smallest) = &inputs[*first] else {
                return Ok(out);
            };
            smallest.for_each(|m, s| {
                if limit != 0 && out.len() >= limit {
                    return;
                }
                let mut score = weighted(s, c.weights[*first]);
                for &j in rest {
                    match inputs[j].as_ref().and_then(|input| input.score(m)) {
                        // Redis cleans NaN (0 x inf) only for the first input; here a NaN makes
                        // SUM 0 and is ignored by MIN/MAX, as there.
                        Some(other) => score = c.aggregate.apply(score, other * c.weights[j]),
                        None => return,
                    }
                }
                out.push((m.clone(), score));
            });
        }
        SetOp::Diff => {
            let Some(first) = &inputs[0] else {
                return Ok(out);
            };
            first.for_each(|m, s| {
                if inputs[1..]
                    .iter()
                    .flatten()
                    .all(|input| input.score(m).is_none())
                {
                    out.push((m.clone(), s));
                }
            });
        }
    }
    out.sort_by(|a, b| {
        a.1.partial_cmp(&b.1)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.0.cmp(&b.0))
    });
    Ok(out)
}

/// Parses, type-checks and computes a union/intersection/difference in Redis's order.
fn combine_command(
    cx: &mut Ctx<'_, '_>,
    argv: &[&[u8]],
    at: usize,
    op: SetOp,
    form: Form,
    name: &str,
) -> Result<(Vec<(CompactBytes, f64)>, bool), CmdError> {
    let (keys, options) = parse_numkeys(argv, at, name)?;
    check_inputs(cx, keys)?;
    let c = parse_combine_options(keys, options, op, form)?;
    Ok((combine(cx, &c, op)?, c.with_scores))
}

fn combine_reply(cx: &mut Ctx<'_, '_>, argv: &[&[u8]], op: SetOp, name: &str) -> CmdResult {
    let (items, with_scores) = combine_command(cx, argv, 1, op, Form::Reply, name)?;
    Ok(scored_reply(
        cx,
        items.iter().map(|(m, s)| (m.as_slice(), *s)),
        with_scores,
    ))
}

fn combine_store(cx: &mut Ctx<'_, '_>, argv: &[&[u8]], op: SetOp, name: &str) -> CmdResult {
    let (items, _) = combine_command(cx, argv, 2, op, Form::Store, name)?;
    store_zset(cx, argv, argv[1], items)
}

fn zunion(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    combine_reply(cx, argv, SetOp::Union, "zunion")
}

fn zinter(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    combine_reply(cx, argv, SetOp::Inter, "zinter")
}

fn zdiff(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    combine_reply(cx, argv, SetOp::Diff, "zdiff")
}

fn zunionstore(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    combine_store(cx, argv, SetOp::Union, "zunionstore")
}

fn zinterstore(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    combine_store(cx, argv, SetOp::Inter, "zinterstore")
}

fn zdiffstore(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    combine_store(cx, argv, SetOp::Diff, "zdiffstore")
}

fn zintercard(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let (items, _) = combine_command(cx, argv, 1, SetOp::Inter, Form::Cardinality, "zintercard")?;
    Ok(Reply::Int(items.len() as i64))
}

fn zscan(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let cursor = parse_cursor(argv[2])?;
    let Some(z) = cx.get::<ZSetValue>(argv[1])? else {
        return Ok(empty_scan());
    };
    let options = parse_scan_options(&argv[3..], false)?;
    let small = z.listpack.then(|| {
        z.order
            .iter()
            .filter_map(|k| z.members.get(&k.member))
            .collect()
    });
    Ok(scan_collection(
        &z.members,
        small,
        cursor,
        &options,
        |m, out| {
            out.push(Reply::bulk(&m.member));
            out.push(Reply::bulk(format_double(m.score).as_bytes()));
        },
    ))
}
