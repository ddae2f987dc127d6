//! The command table: name, arity, flags, key positions, lock scope and handler of every
//! command, grouped by family.
//!
//! The table is the single source of truth the engine dispatches on: arity errors, which slots
//! to lock, whether a command writes (read or write locks, MULTI propagation), and, later,
//! `COMMAND INFO` and cluster routing all come from here.

pub mod args;
pub mod cluster;
pub mod command;
pub mod config;
pub mod connection;
pub mod hashes;
pub mod info;
pub mod introspect;
pub mod keys;
pub mod lists;
pub mod longdouble;
pub mod migrate;
pub mod persist;
pub mod pubsub;
pub mod replication;
pub mod sentinel;
pub mod server;
pub mod sets;
pub mod strings;
pub mod zsets;

use crate::engine::ctx::Ctx;
use crate::reply::Reply;
use smallvec::SmallVec;
use std::borrow::Cow;

/// A failed command: Redis's error text (without the leading `-`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CmdError(pub Cow<'static, str>);

impl CmdError {
    pub const fn new(msg: &'static str) -> CmdError {
        CmdError(Cow::Borrowed(msg))
    }

    pub fn msg(msg: String) -> CmdError {
        CmdError(Cow::Owned(msg))
    }
}

impl From<CmdError> for Reply {
    fn from(e: CmdError) -> Reply {
        Reply::Error(e.0)
    }
}

pub type CmdResult = Result<Reply, CmdError>;

/// A command's arguments (index 0 is the command name).
pub type Argv<'a> = &'a [&'a [u8]];

/// Finds the other databases a command touches (MOVE's target, COPY's DB option, SWAPDB's
/// pair), so they are opened and locked before it runs.
pub type OtherDbs = fn(&[&[u8]]) -> SmallVec<[usize; 2]>;

/// A command implementation: runs with the command's slots already locked.
pub type Handler = fn(&mut Ctx<'_, '_>, &[&[u8]]) -> CmdResult;

/// Command flags (Redis's names).
pub mod flags {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const FAST: u32 = 1 << 3;
    pub const BLOCKING: u32 = 1 << 4;
    /// Handled by the engine itself (MULTI, EXEC, WATCH, ...), never queued in a transaction.
    pub const NO_QUEUE: u32 = 1 << 5;
    pub const LOADING: u32 = 1 << 6;
    pub const STALE: u32 = 1 << 7;
    /// Not allowed inside MULTI.
    pub const NO_MULTI: u32 = 1 << 8;
    /// Acts on the client's own state (MULTI, EXEC, WATCH, UNWATCH, ...): run by the engine
    /// with the client at hand rather than through a data handler.
    pub const CLIENT: u32 = 1 << 9;
    /// Allowed before AUTH (AUTH, HELLO, QUIT, RESET).
    pub const NO_AUTH: u32 = 1 << 10;
    /// Not a write, but may propagate one (PUBLISH): held back by CLIENT PAUSE WRITE.
    pub const MAY_REPLICATE: u32 = 1 << 11;
    /// An administrative command: not shown to MONITOR.
    pub const ADMIN: u32 = 1 << 12;
    /// Served in a slot being imported as if ASKING had come first (RESTORE-ASKING).
    pub const ASKING: u32 = 1 << 13;
    /// Allowed to a RESP2 client that has subscriptions (the subscribe family, PING, QUIT,
    /// RESET): any other command gets Redis's "only (P|S)SUBSCRIBE ..." error.
    pub const SUBSCRIBED_OK: u32 = 1 << 14;
    /// Its keys are shard channels (SSUBSCRIBE, SUNSUBSCRIBE, SPUBLISH): the slot's replicas
    /// serve it too, without READONLY, and it is never forwarded to another node.
    pub const SHARD_CHANNELS: u32 = 1 << 15;
}

/// Where a command's keys are in its arguments (argument 0 is the command name).
#[derive(Copy, Clone, Debug)]
pub enum KeySpec {
    None,
    /// Keys at `first`, `first + step`, ... up to `last` (negative: counted from the end, -1
    /// being the last argument).
    Range {
        first: usize,
        last: isize,
        step: usize,
    },
    /// MIGRATE's: the key at index 3 unless it is empty, else every argument after KEYS.
    Migrate,
    /// `numkeys` at index `count_at`, keys right after it; plus a destination key at index 1
    /// when `dest` (ZUNIONSTORE dest numkeys key ...).
    NumKeys {
        count_at: usize,
        dest: bool,
    },
}

/// The spec of the commands whose only key is their first argument.
pub const FIRST_KEY: KeySpec = KeySpec::Range {
    first: 1,
    last: 1,
    step: 1,
};

/// Keys at every argument after the name (DEL, EXISTS, MGET...).
pub const ALL_KEYS: KeySpec = KeySpec::Range {
    first: 1,
    last: -1,
    step: 1,
};

/// The first two arguments are keys (RENAME, LMOVE, SMOVE...).
pub const TWO_KEYS: KeySpec = KeySpec::Range {
    first: 1,
    last: 2,
    step: 1,
};

/// What a command locks.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LockScope {
    /// Nothing: connection-level and server commands.
    None,
    /// The slots of its keys (in the client's database, and in `target_db` when it has one).
    Keys,
    /// Every slot of the client's database (FLUSHDB).
    Db,
    /// Every slot of every database (FLUSHALL, SWAPDB).
    All,
    /// It locks slot by slot as it goes (SCAN, KEYS, DBSIZE, RANDOMKEY): consistent per slot,
    /// never holding the whole keyspace.
    Dynamic,
}

pub struct Command {
    /// Lower-case name (`object|encoding` style for subcommands is built from the container).
    pub name: &'static str,
    /// Redis arity: N means exactly N arguments including the name, -N at least N.
    pub arity: i32,
    pub flags: u32,
    pub keys: KeySpec,
    pub lock: LockScope,
    pub handler: Handler,
    /// For commands that also touch other databases (MOVE, COPY ... DB n, SWAPDB).
    pub other_dbs: Option<OtherDbs>,
    pub subcommands: &'static [Command],
}

impl Command {
    pub const fn new(
        name: &'static str,
        arity: i32,
        flags: u32,
        keys: KeySpec,
        handler: Handler,
    ) -> Command {
        Command {
            name,
            arity,
            flags,
            keys,
            lock: if matches!(keys, KeySpec::None) {
                LockScope::None
            } else {
                LockScope::Keys
            },
            handler,
            other_dbs: None,
            subcommands: &[],
        }
    }

    pub const fn lock(mut self, lock: LockScope) -> Command {
        self.lock = lock;
        self
    }

    pub const fn other_dbs(mut self, f: OtherDbs) -> Command {
        self.other_dbs = Some(f);
        self
    }

    pub const fn subcommands(mut self, subs: &'static [Command]) -> Command {
        self.subcommands = subs;
        self
    }

    /// Whether the only key is argument 1 (most commands).
    pub fn single_key(&self) -> bool {
        matches!(
            self.keys,
            KeySpec::Range {
                first: 1,
                last: 1,
                ..
            }
        )
    }

    /// Whether the command locks just the slot of `argv[1]` (in the client's database).
    pub fn locks_first_key_only(&self) -> bool {
        self.lock == LockScope::Keys && self.other_dbs.is_none() && self.single_key()
    }

    pub fn is_write(&self) -> bool {
        self.flags & flags::WRITE != 0
    }

    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let arity = i64::from(self.arity);
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    /// Indexes of the key arguments in `argv`.
    pub fn key_indexes(&self, argv: &[&[u8]], out: &mut impl Extend<usize>) {
        match self.keys {
            KeySpec::None => {}
            KeySpec::Range { first, last, step } => {
                let last = if last < 0 {
                    argv.len() as isize + last
                } else {
                    last
                };
                let mut i = first as isize;
                while i <= last && (i as usize) < argv.len() {
                    out.extend(Some(i as usize));
                    i += step as isize;
                }
            }
            KeySpec::Migrate => match argv.get(3) {
                Some(key) if !key.is_empty() => out.extend(Some(3)),
                _ => {
                    let keys_at = argv.iter().skip(6).position(|a| args::is(a, "keys"));
                    if let Some(at) = keys_at {
                        out.extend(6 + at + 1..argv.len());
                    }
                }
            },
            KeySpec::NumKeys { count_at, dest } => {
                if dest && argv.len() > 1 {
                    out.extend(Some(1));
                }
                let Some(n) = argv.get(count_at).and_then(|a| args::parse_i64(a).ok()) else {
                    return;
                };
                let first = count_at + 1;
                if n > 0 && (n as usize) <= argv.len().saturating_sub(first) {
                    out.extend(first..first + n as usize);
                }
            }
        }
    }
}

/// Name lookup over every family's commands: open addressing on the name folded to lower case
/// and packed into words, so that hashing and comparing a name are a few word operations (this
/// runs on every command).
pub struct CommandTable {
    slots: Box<[Option<(NameKey, CommandId)>]>,
    /// Every command and subcommand, indexed by [`CommandId`]: a container is followed by its
    /// subcommands.
    entries: Vec<CommandEntry>,
}

/// A dense index of a command or subcommand: per-command statistics and CLIENT LIST's
/// `cmd=` refer to commands by it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct CommandId(pub u16);

/// One command or subcommand of the table.
pub struct CommandEntry {
    pub command: &'static Command,
    /// `get`, or `client|list` for a subcommand.
    pub full_name: String,
    /// The container of a subcommand.
    pub container: Option<CommandId>,
    /// The group COMMAND DOCS names (`string`, `generic`, `sorted-set`, ...).
    pub group: &'static str,
}

/// The longest command name looked up (longer names are unknown commands).
const NAME_BYTES_MAX: usize = 31;

/// A command name folded to lower case and zero-padded, with its length in the last byte (so
/// that a name with trailing NULs does not match a shorter one).
#[derive(Clone, Copy, PartialEq, Eq)]
struct NameKey([u64; 4]);

impl NameKey {
    fn of(name: &[u8]) -> Option<NameKey> {
        if name.len() > NAME_BYTES_MAX {
            return None;
        }
        let mut words = [0u64; 4];
        for (i, &b) in name.iter().enumerate() {
            words[i / 8] |= u64::from(b.to_ascii_lowercase()) << (8 * (i % 8));
        }
        words[3] |= (name.len() as u64) << 56;
        Some(NameKey(words))
    }

    fn name(&self) -> String {
        let len = (self.0[3] >> 56) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|i| (self.0[i / 8] >> (8 * (i % 8))) as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn hash(&self) -> usize {
        let [a, b, c, d] = self.0;
        let mixed =
            (a ^ b.rotate_left(21) ^ c.rotate_left(42) ^ d).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (mixed >> 32) as usize
    }
}

impl CommandTable {
    pub fn new() -> CommandTable {
        // Each family with the group COMMAND DOCS files it under.
        let families: [(&'static str, &'static [Command]); 18] = [
            ("connection", connection::COMMANDS),
            ("server", config::COMMANDS),
            ("server", info::COMMANDS),
            ("server", introspect::COMMANDS),
            ("server", command::COMMANDS),
            ("string", strings::COMMANDS),
            ("generic", keys::COMMANDS),
            ("list", lists::COMMANDS),
            ("hash", hashes::COMMANDS),
            ("set", sets::COMMANDS),
            ("sorted-set", zsets::COMMANDS),
            ("server", server::COMMANDS),
            ("server", persist::COMMANDS),
            ("server", replication::COMMANDS),
            ("cluster", cluster::COMMANDS),
            ("generic", migrate::COMMANDS),
            ("pubsub", pubsub::COMMANDS),
            ("sentinel", sentinel::COMMANDS),
        ];
        let mut entries = Vec::new();
        for (group, commands) in families {
            for c in commands {
                let container = CommandId(entries.len() as u16);
                let group = server::group_of(c.name).unwrap_or(group);
                entries.push(CommandEntry {
                    command: c,
                    full_name: c.name.to_string(),
                    container: None,
                    group,
                });
                entries.extend(c.subcommands.iter().map(|s| CommandEntry {
                    command: s,
                    full_name: format!("{}|{}", c.name, s.name),
                    container: Some(container),
                    group,
                }));
            }
        }
        let names = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.container.is_none())
            .map(|(id, e)| (e.command.name.to_string(), CommandId(id as u16)))
            .collect();
        let mut table = CommandTable {
            slots: Box::new([]),
            entries,
        };
        table.index(names);
        table
    }

    /// The table with `rename-command` applied in order (an empty new name removes the command).
    pub fn with_renames(renames: &[(String, String)]) -> Result<CommandTable, String> {
        let mut table = CommandTable::new();
        let mut names: Vec<(String, CommandId)> = table.names().collect();
        for (old, new) in renames {
            let at = names
                .iter()
                .position(|(n, _)| n.eq_ignore_ascii_case(old))
                .ok_or("No such command in rename-command")?;
            if names.iter().any(|(n, _)| n.eq_ignore_ascii_case(new)) {
                return Err("Target command name already exists".into());
            }
            if new.is_empty() {
                names.remove(at);
            } else {
                names[at].0 = new.to_ascii_lowercase();
            }
        }
        table.index(names);
        Ok(table)
    }

    /// The commands clients can call by name (not renamed away), in table order.
    pub fn callable(&self) -> Vec<CommandId> {
        let mut ids: Vec<CommandId> = self.slots.iter().flatten().map(|(_, id)| *id).collect();
        ids.sort_by_key(|id| id.0);
        ids
    }

    /// The subcommands of `container`, with their ids.
    pub fn subcommands(&self, container: CommandId) -> impl Iterator<Item = CommandId> + '_ {
        let first = usize::from(container.0) + 1;
        let count = self.entry(container).command.subcommands.len();
        (first..first + count).map(|i| CommandId(i as u16))
    }

    /// A command or subcommand by its full name (`get`, `config|get`), as COMMAND INFO and
    /// COMMAND DOCS look them up.
    pub fn by_full_name(&self, name: &[u8]) -> Option<CommandId> {
        let mut parts = name.splitn(3, |&b| b == b'|');
        let container = self.get(parts.next()?)?;
        match (parts.next(), parts.next()) {
            (None, _) => Some(container),
            (Some(sub), None) => self.subcommands(container).find(|&id| {
                self.entry(id)
                    .command
                    .name
                    .as_bytes()
                    .eq_ignore_ascii_case(sub)
            }),
            _ => None,
        }
    }

    /// The names clients look commands up by, with their ids.
    fn names(&self) -> impl Iterator<Item = (String, CommandId)> + '_ {
        let slots = self.slots.iter().flatten();
        slots.map(|(key, id)| (key.name(), *id))
    }

    /// Rebuilds the lookup slots from `names`.
    fn index(&mut self, names: Vec<(String, CommandId)>) {
        let size = (names.len() * 4).next_power_of_two();
        let mut slots = vec![None; size].into_boxed_slice();
        for (name, id) in names {
            let Some(key) = NameKey::of(name.as_bytes()) else {
                continue;
            };
            let mut i = key.hash() & (size - 1);
            while slots[i].is_some() {
                i = (i + 1) & (size - 1);
            }
            slots[i] = Some((key, id));
        }
        self.slots = slots;
    }

    /// Number of commands and subcommands.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// A command or subcommand by id.
    pub fn entry(&self, id: CommandId) -> &CommandEntry {
        &self.entries[usize::from(id.0)]
    }

    /// Every command and subcommand, containers before their subcommands.
    pub fn entries(&self) -> impl Iterator<Item = (CommandId, &CommandEntry)> {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, e)| (CommandId(i as u16), e))
    }

    /// Case-insensitive lookup of a command (not a subcommand).
    pub fn get(&self, name: &[u8]) -> Option<CommandId> {
        let key = NameKey::of(name)?;
        let mask = self.slots.len() - 1;
        let mut i = key.hash() & mask;
        loop {
            let (k, id) = self.slots[i]?;
            if k == key {
                return Some(id);
            }
            i = (i + 1) & mask;
        }
    }

    /// The command `argv` runs under `container`: the container itself (when it has no
    /// subcommands, or is called bare, as COMMAND may be), or the subcommand `argv[1]` names;
    /// `Err` is the reply for an unknown subcommand.
    pub fn resolve(&self, container: CommandId, argv: &[&[u8]]) -> Result<CommandId, CmdError> {
        let cmd = self.entry(container).command;
        if cmd.subcommands.is_empty() {
            return Ok(container);
        }
        let Some(sub) = argv.get(1) else {
            return Ok(container);
        };
        let first = usize::from(container.0) + 1;
        cmd.subcommands
            .iter()
            .position(|s| s.name.as_bytes().eq_ignore_ascii_case(sub))
            .map(|i| CommandId((first + i) as u16))
            .ok_or_else(|| {
                CmdError::msg(format!(
                    "ERR unknown subcommand '{}'. Try {} HELP.",
                    truncate_arg(sub),
                    cmd.name.to_ascii_uppercase()
                ))
            })
    }
}

impl Default for CommandTable {
    fn default() -> Self {
        CommandTable::new()
    }
}

/// Serves a blocked client from `key` (see `engine::blocking`); `None` when the key cannot
/// serve this operation now.
pub fn serve_blocked(
    cx: &mut Ctx<'_, '_>,
    op: &crate::engine::blocking::BlockedOp,
    key: &[u8],
) -> Option<Reply> {
    match op {
        crate::engine::blocking::BlockedOp::ZPop { .. } => zsets::serve(cx, op, key),
        _ => lists::serve(cx, op, key),
    }
}

/// Handler of a container command (OBJECT, DEBUG, ...): dispatch always picks a subcommand.
pub fn no_subcommand(_cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    Err(unknown_command(argv))
}

pub fn arity_error(full_name: &str) -> CmdError {
    CmdError::msg(format!(
        "ERR wrong number of arguments for '{full_name}' command"
    ))
}

/// Arguments as MONITOR and SLOWLOG show them: secrets (AUTH and HELLO passwords, CONFIG SET
/// values of sensitive directives) replaced by `(redacted)`.
pub fn redacted<'s, 'a>(argv: &'s [&'a [u8]]) -> std::borrow::Cow<'s, [&'a [u8]]> {
    use std::borrow::Cow;
    const REDACTED: &[u8] = b"(redacted)";
    let name = argv[0];
    let secret = |i: usize| -> bool {
        if args::is(name, "auth") {
            return i >= 1;
        }
        if args::is(name, "hello") {
            return argv[..i].iter().rev().take(2).any(|a| args::is(a, "auth")) && i >= 3;
        }
        if args::is(name, "config") && argv.len() > 2 && args::is(argv[1], "set") {
            return i >= 3
                && (i - 3).is_multiple_of(2)
                && crate::config::directives::lookup(argv[i - 1])
                    .is_some_and(|(spec, _)| crate::config::directives::is_sensitive(spec));
        }
        false
    };
    if !(1..argv.len()).any(secret) {
        return Cow::Borrowed(argv);
    }
    Cow::Owned(
        (0..argv.len())
            .map(|i| if secret(i) { REDACTED } else { argv[i] })
            .collect(),
    )
}

/// A HELP reply: Redis's header line, `lines`, and its HELP entry, as status replies.
pub fn help(command: &str, lines: &[&str]) -> Reply {
    let header = format!(
        "{} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        command.to_ascii_uppercase()
    );
    let mut out = vec![Reply::Status(header.into())];
    out.extend(lines.iter().map(|l| Reply::Status(l.to_string().into())));
    out.push(Reply::Status("HELP".into()));
    out.push(Reply::Status("    Prints this help.".into()));
    Reply::Array(out)
}

/// `ERR unknown subcommand or wrong number of arguments for 'x'. Try CMD HELP.`
pub fn subcommand_syntax_error(argv: &[&[u8]]) -> CmdError {
    CmdError::msg(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
        truncate_arg(argv.get(1).copied().unwrap_or_default()),
        String::from_utf8_lossy(argv[0]).to_ascii_uppercase()
    ))
}

fn truncate_arg(arg: &[u8]) -> String {
    String::from_utf8_lossy(&arg[..arg.len().min(128)]).into_owned()
}

/// `ERR unknown command 'x', with args beginning with: 'a' 'b' `
pub fn unknown_command(argv: &[&[u8]]) -> CmdError {
    let mut msg = format!(
        "ERR unknown command '{}', with args beginning with: ",
        truncate_arg(argv.first().copied().unwrap_or_default())
    );
    for arg in argv.iter().skip(1) {
        if msg.len() >= 128 {
            break;
        }
        msg.push('\'');
        msg.push_str(&truncate_arg(arg));
        msg.push_str("' ");
    }
    CmdError::msg(msg)
}
