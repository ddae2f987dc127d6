//! A dataset as RESP commands: the AOF base when `aof-use-rdb-preamble` is `no`, which any
//! Redis replays (and `redis-check-aof` reads) as it would its own rewrite.
//!
//! Collections are rebuilt with one command per [`ITEMS_PER_COMMAND`] elements, as Redis's
//! rewrite does, so that no single command is huge; an expiry follows its key as PEXPIREAT.

use crate::keyspace::value::Value;
use crate::keyspace::{Entry, SlotData};
use crate::reply::format_double;
use crate::resp::encode_command;

/// Elements per rebuilding command (Redis's `AOF_REWRITE_ITEMS_PER_CMD`).
const ITEMS_PER_COMMAND: usize = 64;

/// SELECT `db`, then every key of `data`; returns the keys written.
pub(crate) fn encode_slot(out: &mut Vec<u8>, db: usize, data: &SlotData) -> u64 {
    let db = db.to_string();
    encode_command(&[b"SELECT", db.as_bytes()], out);
    let mut keys = 0;
    for entry in data.entries() {
        encode_entry(out, entry);
        keys += 1;
    }
    keys
}

fn encode_entry(out: &mut Vec<u8>, entry: &Entry) {
    let key: &[u8] = &entry.key;
    match &entry.value {
        Value::Str(s) => encode_command(&[b"SET", key, s], out),
        Value::List(list) => rebuild(out, b"RPUSH", key, list.iter().map(|i| [&i[..]])),
        Value::Set(set) => rebuild(out, b"SADD", key, set.iter().map(|m| [m])),
        Value::Hash(hash) => rebuild(
            out,
            b"HSET",
            key,
            hash.fields.iter().map(|f| [&f.field[..], &f.value[..]]),
        ),
        Value::ZSet(zset) => {
            let scores: Vec<String> = zset
                .members
                .iter()
                .map(|m| format_double(m.score))
                .collect();
            let pairs = zset.members.iter().zip(&scores);
            rebuild(
                out,
                b"ZADD",
                key,
                pairs.map(|(m, score)| [score.as_bytes(), &m.member[..]]),
            );
        }
    }
    if let Some(at_ms) = entry.expire_at() {
        encode_command(&[b"PEXPIREAT", key, at_ms.to_string().as_bytes()], out);
    }
}

/// `command key item...` for every [`ITEMS_PER_COMMAND`] items (an item being one argument,
/// or a field-value / score-member pair).
fn rebuild<'a, const N: usize>(
    out: &mut Vec<u8>,
    command: &'a [u8],
    key: &'a [u8],
    items: impl Iterator<Item = [&'a [u8]; N]>,
) {
    let mut argv: Vec<&[u8]> = vec![command, key];
    for item in items {
        argv.extend_from_slice(&item);
        if argv.len() == 2 + ITEMS_PER_COMMAND * N {
            encode_command(&argv, out);
            argv.truncate(2);
        }
    }
    if argv.len() > 2 {
        encode_command(&argv, out);
    }
}
