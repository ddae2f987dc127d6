//! Pub/sub commands: SUBSCRIBE and its family, PUBLISH, SPUBLISH and PUBSUB. The
//! subscriptions live in [`crate::pubsub`]; these handlers keep the calling connection's
//! side of them and reply with Redis's confirmations.

use super::flags::*;
use super::{CmdError, CmdResult, Command, KeySpec, ALL_KEYS, FIRST_KEY};
use crate::engine::clients::ClientKind;
use crate::engine::ctx::Ctx;
use crate::pubsub::{confirmation, Kind, Sink, Subscribed};
use crate::reply::Reply;
use crate::resp::Protocol;

/// Allowed to a RESP2 client with subscriptions, as in Redis.
const SUBSCRIBER: u32 = SUBSCRIBED_OK | LOADING | STALE;

pub const COMMANDS: &[Command] = &[
    Command::new("subscribe", -2, SUBSCRIBER, KeySpec::None, subscribe),
    Command::new("unsubscribe", -1, SUBSCRIBER, KeySpec::None, unsubscribe),
    Command::new("psubscribe", -2, SUBSCRIBER, KeySpec::None, psubscribe),
    Command::new("punsubscribe", -1, SUBSCRIBER, KeySpec::None, punsubscribe),
    Command::new(
        "ssubscribe",
        -2,
        SUBSCRIBER | SHARD_CHANNELS,
        ALL_KEYS,
        ssubscribe,
    ),
    Command::new(
        "sunsubscribe",
        -1,
        SUBSCRIBER | SHARD_CHANNELS,
        ALL_KEYS,
        sunsubscribe,
    ),
    Command::new(
        "publish",
        3,
        LOADING | STALE | FAST | MAY_REPLICATE,
        KeySpec::None,
        publish,
    ),
    Command::new(
        "spublish",
        3,
        LOADING | STALE | FAST | MAY_REPLICATE | SHARD_CHANNELS,
        FIRST_KEY,
        spublish,
    ),
    Command::new("pubsub", -2, 0, KeySpec::None, super::no_subcommand).subcommands(PUBSUB),
];

const PUBSUB: &[Command] = &[
    Command::new("help", 2, LOADING | STALE, KeySpec::None, pubsub_help),
    Command::new("channels", -2, LOADING | STALE, KeySpec::None, channels),
    Command::new("numsub", -2, LOADING | STALE, KeySpec::None, numsub),
    Command::new("numpat", 2, LOADING | STALE, KeySpec::None, numpat),
    Command::new(
        "shardchannels",
        -2,
        LOADING | STALE,
        KeySpec::None,
        shardchannels,
    ),
    Command::new(
        "shardnumsub",
        -2,
        LOADING | STALE,
        KeySpec::None,
        shardnumsub,
    ),
];

fn subscribe(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    join(cx, Kind::Channel, &argv[1..])
}

fn psubscribe(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    join(cx, Kind::Pattern, &argv[1..])
}

fn ssubscribe(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    // Redis refuses it inside a transaction (SUBSCRIBE stays allowed there for old clients).
    if cx.in_exec {
        return Err(CmdError::new(
            "ERR SSUBSCRIBE isn't allowed for a DENY BLOCKING client",
        ));
    }
    join(cx, Kind::Shard, &argv[1..])
}

fn unsubscribe(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    leave(cx, Kind::Channel, &argv[1..])
}

fn punsubscribe(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    leave(cx, Kind::Pattern, &argv[1..])
}

fn sunsubscribe(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    leave(cx, Kind::Shard, &argv[1..])
}

fn words(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Channel => ("subscribe", "unsubscribe"),
        Kind::Pattern => ("psubscribe", "punsubscribe"),
        Kind::Shard => ("ssubscribe", "sunsubscribe"),
    }
}

fn join(cx: &mut Ctx<'_, '_>, kind: Kind, names: &[&[u8]]) -> CmdResult {
    let engine = cx.engine;
    let resp3 = cx.proto == Protocol::Resp3;
    let in_exec = cx.in_exec;
    let limit = engine.settings().output_limits.pubsub;
    let conn = cx.conn()?;
    if conn.info.kind == ClientKind::Embedded {
        return Err(CmdError::new(
            "ERR embedded clients subscribe with Node::subscribe, psubscribe or ssubscribe",
        ));
    }
    let info = conn.info.clone();
    let subscribed = conn
        .pubsub
        .get_or_insert_with(|| Box::new(Subscribed::new(Sink::resp(info, resp3, limit))));
    let (word, _) = words(kind);
    let mut replies = Vec::new();
    for name in names {
        let count = subscribed.count(kind) + usize::from(!subscribed.has(kind, name));
        let reply = confirmation(word, Some(name), count);
        // Outside a transaction the confirmation goes ahead of the messages the
        // subscription brings; inside, it is one of EXEC's replies (so it comes before
        // them too: messages are written after the reply of the command that ran).
        match (in_exec, subscribed.sink.mailbox()) {
            (false, Some(mailbox)) => mailbox.push_reply(&reply),
            _ => replies.push(reply),
        }
        subscribed.subscribe(&engine.pubsub, kind, name);
    }
    subscribed.publish_counts(&conn.info);
    Ok(Reply::Several(replies))
}

fn leave(cx: &mut Ctx<'_, '_>, kind: Kind, names: &[&[u8]]) -> CmdResult {
    let engine = cx.engine;
    let conn = cx.conn()?;
    let (_, word) = words(kind);
    let Some(subscribed) = conn.pubsub.as_mut() else {
        // Nothing to leave: each named one (or the lone "none") is confirmed with 0.
        let replies = match names {
            [] => vec![confirmation(word, None, 0)],
            _ => names
                .iter()
                .map(|n| confirmation(word, Some(n), 0))
                .collect(),
        };
        return Ok(Reply::Several(replies));
    };
    let all;
    let names: Vec<&[u8]> = if names.is_empty() {
        all = subscribed.names(kind);
        all.iter().map(|n| &**n).collect()
    } else {
        names.to_vec()
    };
    let mut replies = Vec::with_capacity(names.len().max(1));
    for name in &names {
        subscribed.unsubscribe(&engine.pubsub, kind, name);
        replies.push(confirmation(word, Some(name), subscribed.count(kind)));
    }
    if replies.is_empty() {
        replies.push(confirmation(word, None, subscribed.count(kind)));
    }
    subscribed.publish_counts(&conn.info);
    Ok(Reply::Several(replies))
}

fn publish(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    Ok(Reply::Int(cx.engine.publish(argv[1], argv[2], false) as i64))
}

fn spublish(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    Ok(Reply::Int(cx.engine.publish(argv[1], argv[2], true) as i64))
}

fn pubsub_help(_cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    Ok(super::help(
        "pubsub",
        &[
            "CHANNELS [<pattern>]",
            "    Return the currently active channels matching a <pattern> (default: '*').",
            "NUMPAT",
            "    Return number of subscriptions to patterns.",
            "NUMSUB [<channel> ...]",
            "    Return the number of subscribers for the specified channels, excluding",
            "    pattern subscriptions(default: no channels).",
            "SHARDCHANNELS [<pattern>]",
            "    Return the currently active shard level channels matching a <pattern> (default: '*').",
            "SHARDNUMSUB [<shardchannel> ...]",
            "    Return the number of subscribers for the specified shard level channel(s)",
        ],
    ))
}

fn channels(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    list_active(cx, Kind::Channel, argv)
}

fn shardchannels(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    list_active(cx, Kind::Shard, argv)
}

/// PUBSUB CHANNELS / SHARDCHANNELS [pattern].
fn list_active(cx: &mut Ctx<'_, '_>, kind: Kind, argv: &[&[u8]]) -> CmdResult {
    let pattern = match argv {
        [_, _] => None,
        [_, _, pattern] => Some(*pattern),
        _ => return Err(super::subcommand_syntax_error(argv)),
    };
    let names = cx.engine.pubsub.active(kind, pattern);
    Ok(Reply::bulks(names.iter().map(|n| &**n)))
}

fn numsub(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    count_each(cx, Kind::Channel, &argv[2..])
}

fn shardnumsub(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    count_each(cx, Kind::Shard, &argv[2..])
}

/// PUBSUB NUMSUB / SHARDNUMSUB: name, subscribers, name, subscribers...
fn count_each(cx: &mut Ctx<'_, '_>, kind: Kind, names: &[&[u8]]) -> CmdResult {
    let hub = &cx.engine.pubsub;
    let mut out = Vec::with_capacity(names.len() * 2);
    for name in names {
        out.push(Reply::bulk(name));
        out.push(Reply::Int(hub.count(kind, name) as i64));
    }
    Ok(Reply::Array(out))
}

fn numpat(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    Ok(Reply::Int(cx.engine.pubsub.len(Kind::Pattern) as i64))
}
