//! Keyspace notifications (`notify-keyspace-events`): for every write, expiry and eviction,
//! a message on `__keyspace@<db>__:<key>` carrying the event, and one on
//! `__keyevent@<db>__:<event>` carrying the key, as Redis publishes them.
//!
//! The events are derived from what a command logs: the write log's command names are
//! Redis's event names (LPUSH is "lpush", PEXPIREAT is "expire"...), so a write cannot forget
//! its notification. The few commands whose logged form hides the event (INCRBYFLOAT logs a
//! SET, SPOP an SREM, DEL names keys that were not there) name their events themselves.

use super::Engine;
use smallvec::SmallVec;

/// Event classes, one bit per `notify-keyspace-events` letter.
pub mod class {
    /// `K`: publish on `__keyspace@<db>__:<key>`.
    pub const KEYSPACE: u32 = 1 << 0;
    /// `E`: publish on `__keyevent@<db>__:<event>`.
    pub const KEYEVENT: u32 = 1 << 1;
    /// `g`: DEL, EXPIRE, RENAME, ...
    pub const GENERIC: u32 = 1 << 2;
    /// `$`: string commands.
    pub const STRING: u32 = 1 << 3;
    /// `l`: list commands.
    pub const LIST: u32 = 1 << 4;
    /// `s`: set commands.
    pub const SET: u32 = 1 << 5;
    /// `h`: hash commands.
    pub const HASH: u32 = 1 << 6;
    /// `z`: sorted set commands.
    pub const ZSET: u32 = 1 << 7;
    /// `x`: a key expired.
    pub const EXPIRED: u32 = 1 << 8;
    /// `e`: a key was evicted.
    pub const EVICTED: u32 = 1 << 9;
    /// `t`: stream commands (Shoal has no streams: never published).
    pub const STREAM: u32 = 1 << 10;
    /// `m`: a read found no key.
    pub const KEY_MISS: u32 = 1 << 11;
    /// `d`: module events (Shoal has no modules: never published).
    pub const MODULE: u32 = 1 << 12;
    /// `n`: a key was created.
    pub const NEW: u32 = 1 << 13;
}

/// The class bits of a `notify-keyspace-events` value.
pub fn flags_of(letters: &str) -> u32 {
    letters.chars().fold(0, |flags, c| {
        flags
            | match c {
                'A' => {
                    class::GENERIC
                        | class::STRING
                        | class::LIST
                        | class::SET
                        | class::HASH
                        | class::ZSET
                        | class::EXPIRED
                        | class::EVICTED
                        | class::STREAM
                        | class::MODULE
                }
                'K' => class::KEYSPACE,
                'E' => class::KEYEVENT,
                'g' => class::GENERIC,
                '$' => class::STRING,
                'l' => class::LIST,
                's' => class::SET,
                'h' => class::HASH,
                'z' => class::ZSET,
                'x' => class::EXPIRED,
                'e' => class::EVICTED,
                't' => class::STREAM,
                'm' => class::KEY_MISS,
                'd' => class::MODULE,
                'n' => class::NEW,
                _ => 0,
            }
    })
}

/// One event of a logged write: its class, its name, the argument holding its key, and
/// whether the key's disappearance (the last element removed) is a "del" event too.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct KeyEvent {
    pub class: u32,
    pub name: &'static str,
    pub key_at: usize,
    pub may_empty: bool,
}

const fn ev(class: u32, name: &'static str, key_at: usize) -> KeyEvent {
    KeyEvent {
        class,
        name,
        key_at,
        may_empty: false,
    }
}

/// An event that may leave its key empty (and so deleted).
pub const fn removing(class: u32, name: &'static str, key_at: usize) -> KeyEvent {
    KeyEvent {
        may_empty: true,
        ..ev(class, name, key_at)
    }
}

/// The events of a command as logged (`argv[0]` in upper case, as the handlers log it).
pub fn events_of(argv: &[&[u8]]) -> SmallVec<[KeyEvent; 2]> {
    use class::*;
    let mut out = SmallVec::new();
    let name = argv[0].to_ascii_lowercase();
    let mut one = |e: KeyEvent| out.push(e);
    match name.as_slice() {
        b"set" | b"setnx" | b"getset" => {
            one(ev(STRING, "set", 1));
            let expiring = argv[3..].iter().any(|a| {
                [&b"pxat"[..], b"px", b"ex", b"exat"]
                    .iter()
                    .any(|o| a.eq_ignore_ascii_case(o))
            });
            if expiring {
                one(ev(GENERIC, "expire", 1));
            }
        }
        b"append" => one(ev(STRING, "append", 1)),
        b"setrange" => one(ev(STRING, "setrange", 1)),
        b"incr" | b"decr" | b"incrby" | b"decrby" => one(ev(STRING, "incrby", 1)),
        b"pexpireat" | b"pexpire" | b"expire" | b"expireat" => one(ev(GENERIC, "expire", 1)),
        b"persist" => one(ev(GENERIC, "persist", 1)),
        b"rename" | b"renamenx" => {
            one(ev(GENERIC, "rename_from", 1));
            one(ev(GENERIC, "rename_to", 2));
        }
        b"restore" => one(ev(GENERIC, "restore", 1)),
        b"lpush" | b"lpushx" => one(ev(LIST, "lpush", 1)),
        b"rpush" | b"rpushx" => one(ev(LIST, "rpush", 1)),
        b"lpop" => one(removing(LIST, "lpop", 1)),
        b"rpop" => one(removing(LIST, "rpop", 1)),
        b"linsert" => one(ev(LIST, "linsert", 1)),
        b"lset" => one(ev(LIST, "lset", 1)),
        b"ltrim" => one(removing(LIST, "ltrim", 1)),
        b"lrem" => one(removing(LIST, "lrem", 1)),
        // Redis tells the push before the pop.
        b"rpoplpush" => {
            one(ev(LIST, "lpush", 2));
            one(removing(LIST, "rpop", 1));
        }
        b"lmove" => {
            let left = |i: usize| argv.get(i).is_some_and(|a| a.eq_ignore_ascii_case(b"left"));
            one(ev(LIST, if left(4) { "lpush" } else { "rpush" }, 2));
            one(removing(LIST, if left(3) { "lpop" } else { "rpop" }, 1));
        }
        b"sadd" => one(ev(SET, "sadd", 1)),
        b"srem" => one(removing(SET, "srem", 1)),
        b"sinterstore" => one(removing(SET, "sinterstore", 1)),
        b"sunionstore" => one(removing(SET, "sunionstore", 1)),
        b"sdiffstore" => one(removing(SET, "sdiffstore", 1)),
        b"hset" | b"hmset" | b"hsetnx" => one(ev(HASH, "hset", 1)),
        b"hdel" => one(removing(HASH, "hdel", 1)),
        b"hincrby" => one(ev(HASH, "hincrby", 1)),
        b"zadd" => {
            let incr = argv[2..].iter().any(|a| a.eq_ignore_ascii_case(b"incr"));
            one(ev(ZSET, if incr { "zincr" } else { "zadd" }, 1));
        }
        b"zincrby" => one(ev(ZSET, "zincr", 1)),
        b"zrem" => one(removing(ZSET, "zrem", 1)),
        b"zremrangebyscore" => one(removing(ZSET, "zremrangebyscore", 1)),
        b"zremrangebyrank" => one(removing(ZSET, "zremrangebyrank", 1)),
        b"zremrangebylex" => one(removing(ZSET, "zremrangebylex", 1)),
        b"zpopmin" => one(removing(ZSET, "zpopmin", 1)),
        b"zpopmax" => one(removing(ZSET, "zpopmax", 1)),
        b"zunionstore" => one(removing(ZSET, "zunionstore", 1)),
        b"zinterstore" => one(removing(ZSET, "zinterstore", 1)),
        b"zdiffstore" => one(removing(ZSET, "zdiffstore", 1)),
        b"zrangestore" => one(removing(ZSET, "zrangestore", 1)),
        b"del" | b"unlink" => (1..argv.len()).for_each(|i| one(ev(GENERIC, "del", i))),
        _ => {}
    }
    out
}

/// Publishes one event of `class` for `key` in `db`, on the channels `flags` asks for.
pub fn publish(engine: &Engine, flags: u32, class: u32, event: &str, db: usize, key: &[u8]) {
    if flags & class == 0 {
        return;
    }
    if flags & class::KEYSPACE != 0 {
        let mut channel = format!("__keyspace@{db}__:").into_bytes();
        channel.extend_from_slice(key);
        engine.pubsub.publish(&channel, event.as_bytes(), false);
    }
    if flags & class::KEYEVENT != 0 {
        let channel = format!("__keyevent@{db}__:{event}");
        engine.pubsub.publish(channel.as_bytes(), key, false);
    }
}

/// A key expired (lazily or by the active sweep): the `x` class's "expired".
pub fn expired(engine: &Engine, db: usize, key: &[u8]) {
    publish_if_on(engine, class::EXPIRED, "expired", db, key);
}

/// A key was created: the `n` class's "new".
pub fn created(engine: &Engine, db: usize, key: &[u8]) {
    publish_if_on(engine, class::NEW, "new", db, key);
}

/// [`publish`] with the node's current classes.
pub fn publish_if_on(engine: &Engine, class: u32, event: &str, db: usize, key: &[u8]) {
    let flags = engine.live.notify_flags();
    if flags != 0 {
        publish(engine, flags, class, event, db, key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_follow_redis_letters() {
        assert_eq!(flags_of(""), 0);
        assert_eq!(flags_of("KEA") & class::KEY_MISS, 0, "A leaves out m and n");
        assert_ne!(flags_of("KEA") & class::EXPIRED, 0);
        assert_eq!(flags_of("Kx"), class::KEYSPACE | class::EXPIRED);
    }

    #[test]
    fn logged_writes_name_their_events() {
        let names =
            |argv: &[&[u8]]| -> Vec<&str> { events_of(argv).iter().map(|e| e.name).collect() };
        assert_eq!(
            names(&[b"SET", b"k", b"v", b"PXAT", b"1"]),
            ["set", "expire"]
        );
        assert_eq!(
            names(&[b"LMOVE", b"a", b"b", b"LEFT", b"RIGHT"]),
            ["rpush", "lpop"]
        );
        assert_eq!(names(&[b"ZADD", b"z", b"INCR", b"1", b"m"]), ["zincr"]);
        assert_eq!(
            names(&[b"RENAME", b"a", b"b"]),
            ["rename_from", "rename_to"]
        );
        assert!(names(&[b"FLUSHALL"]).is_empty());
    }
}
