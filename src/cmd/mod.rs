//! The command table: name, arity, flags, key positions, lock scope and handler of every
//! command, grouped by family.
//!
//! The table is the single source of truth the engine dispatches on: arity errors, which slots
//! to lock, whether a command writes (read or write locks, MULTI propagation), and, later,
//! `COMMAND INFO` and cluster routing all come from here.

pub mod args;
pub mod hashes;
pub mod keys;
pub mod lists;
pub mod longdouble;
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
    slots: Box<[Option<(NameKey, &'static Command)>]>,
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
        let mut bytes = [0u8; 32];
        for (folded, b) in bytes.iter_mut().zip(name) {
            *folded = b.to_ascii_lowercase();
        }
        bytes[NAME_BYTES_MAX] = name.len() as u8;
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        Some(NameKey([word(0), word(1), word(2), word(3)]))
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
        let families: [&'static [Command]; 7] = [
            strings::COMMANDS,
            keys::COMMANDS,
            lists::COMMANDS,
            hashes::COMMANDS,
            sets::COMMANDS,
            zsets::COMMANDS,
            server::COMMANDS,
        ];
        let commands: Vec<&'static Command> = families.iter().flat_map(|f| f.iter()).collect();
        let size = (commands.len() * 4).next_power_of_two();
        let mut slots = vec![None; size].into_boxed_slice();
        for c in commands {
            let key = NameKey::of(c.name.as_bytes()).expect("command names are short");
            let mut i = key.hash() & (size - 1);
            while slots[i].is_some() {
                i = (i + 1) & (size - 1);
            }
            slots[i] = Some((key, c));
        }
        CommandTable { slots }
    }

    /// Case-insensitive lookup.
    pub fn get(&self, name: &[u8]) -> Option<&'static Command> {
        let key = NameKey::of(name)?;
        let mask = self.slots.len() - 1;
        let mut i = key.hash() & mask;
        loop {
            let (k, c) = self.slots[i]?;
            if k == key {
                return Some(c);
            }
            i = (i + 1) & mask;
        }
    }

    /// Resolves the subcommand of a container command; `Err` is the reply for an unknown one.
    pub fn resolve(cmd: &'static Command, argv: &[&[u8]]) -> Result<&'static Command, CmdError> {
        if cmd.subcommands.is_empty() {
            return Ok(cmd);
        }
        let Some(sub) = argv.get(1) else {
            return Err(arity_error(cmd.name));
        };
        cmd.subcommands
            .iter()
            .find(|s| s.name.as_bytes().eq_ignore_ascii_case(sub))
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

/// The full name used in errors: `object|encoding` for a subcommand.
pub fn full_name(container: &Command, cmd: &Command) -> String {
    if std::ptr::eq(container, cmd) {
        cmd.name.to_string()
    } else {
        format!("{}|{}", container.name, cmd.name)
    }
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
