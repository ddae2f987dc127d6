//! COMMAND, COUNT, INFO, DOCS, LIST, GETKEYS, GETKEYSANDFLAGS, HELP: the command table as
//! clients read it. Cluster clients route by the key positions and key specs given here, so
//! they come from the same [`KeySpec`] the engine locks and routes by.

use super::args::{is, SYNTAX};
use super::flags::*;
use super::{CmdError, CmdResult, Command, CommandId, CommandTable, KeySpec};
use crate::engine::ctx::Ctx;
use crate::reply::Reply;

pub const COMMANDS: &[Command] =
    &[
        Command::new("command", -1, LOADING | STALE, KeySpec::None, command_all)
            .subcommands(COMMAND),
    ];

const COMMAND: &[Command] = &[
    Command::new("count", 2, LOADING | STALE, KeySpec::None, command_count),
    Command::new("info", -2, LOADING | STALE, KeySpec::None, command_info),
    Command::new("docs", -2, LOADING | STALE, KeySpec::None, command_docs),
    Command::new("list", -2, LOADING | STALE, KeySpec::None, command_list),
    Command::new(
        "getkeys",
        -4,
        LOADING | STALE,
        KeySpec::None,
        command_getkeys,
    ),
    Command::new(
        "getkeysandflags",
        -4,
        LOADING | STALE,
        KeySpec::None,
        command_getkeysandflags,
    ),
    Command::new("help", 2, LOADING | STALE, KeySpec::None, command_help),
];

fn status_set(names: impl IntoIterator<Item = &'static str>) -> Reply {
    Reply::Set(names.into_iter().map(|n| Reply::Status(n.into())).collect())
}

fn map(pairs: impl IntoIterator<Item = (&'static str, Reply)>) -> Reply {
    Reply::Map(
        pairs
            .into_iter()
            .map(|(k, v)| (Reply::bulk(k.as_bytes()), v))
            .collect(),
    )
}

/// Whether the command's keys can only be found by reading its arguments (a key count).
fn movable_keys(command: &Command) -> bool {
    matches!(command.keys, KeySpec::NumKeys { .. })
}

/// The command's flags as COMMAND INFO names them, in Redis's order.
fn flag_names(command: &Command) -> Vec<&'static str> {
    let table = [
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (ASKING, "asking"),
        (NO_MULTI, "no_multi"),
    ];
    let mut names: Vec<&'static str> = table
        .iter()
        .filter(|(bit, _)| command.has(*bit))
        .map(|&(_, name)| name)
        .collect();
    if movable_keys(command) {
        names.push("movablekeys");
    }
    names
}

/// ACL categories, derived as Redis derives the implicit ones (flags) plus the data type.
fn acl_categories(command: &Command, group: &'static str) -> Vec<&'static str> {
    let has_keys = !matches!(command.keys, KeySpec::None);
    let mut cats = Vec::new();
    if has_keys && group == "generic" {
        cats.push("@keyspace");
    }
    if command.has(READONLY) {
        cats.push("@read");
    }
    if command.has(WRITE) {
        cats.push("@write");
    }
    cats.extend(match group {
        "set" => Some("@set"),
        "sorted-set" => Some("@sortedset"),
        "list" => Some("@list"),
        "hash" => Some("@hash"),
        "string" => Some("@string"),
        _ => None,
    });
    if command.has(ADMIN) {
        cats.push("@admin");
    }
    cats.push(if command.has(FAST) { "@fast" } else { "@slow" });
    if command.has(BLOCKING) {
        cats.push("@blocking");
    }
    if command.has(ADMIN) {
        cats.push("@dangerous");
    }
    match group {
        "connection" => cats.push("@connection"),
        "transactions" => cats.push("@transaction"),
        _ => {}
    }
    cats
}

/// The legacy first key, last key and step of COMMAND INFO.
fn legacy_range(command: &Command) -> (i64, i64, i64) {
    match command.keys {
        KeySpec::None | KeySpec::NumKeys { dest: false, .. } => (0, 0, 0),
        KeySpec::NumKeys { dest: true, .. } => (1, 1, 1),
        KeySpec::Migrate => (3, 3, 1),
        KeySpec::Range { first, last, step } => (first as i64, last as i64, step as i64),
    }
}

fn key_flags(command: &Command) -> [&'static str; 2] {
    if command.has(WRITE) {
        ["RW", "update"]
    } else {
        ["RO", "access"]
    }
}

fn index_spec(flags: [&'static str; 2], index: i64, find_keys: Reply) -> Reply {
    map([
        ("flags", status_set(flags)),
        (
            "begin_search",
            map([
                ("type", Reply::bulk(b"index")),
                ("spec", map([("index", Reply::Int(index))])),
            ]),
        ),
        ("find_keys", find_keys),
    ])
}

fn range_keys(lastkey: i64, keystep: i64) -> Reply {
    map([
        ("type", Reply::bulk(b"range")),
        (
            "spec",
            map([
                ("lastkey", Reply::Int(lastkey)),
                ("keystep", Reply::Int(keystep)),
                ("limit", Reply::Int(0)),
            ]),
        ),
    ])
}

/// Key specs (Redis 7): where the keys start and how to find the rest.
fn key_specs(command: &Command) -> Reply {
    let flags = key_flags(command);
    let specs = match command.keys {
        KeySpec::None => Vec::new(),
        KeySpec::Migrate => vec![index_spec(flags, 3, range_keys(0, 1))],
        KeySpec::Range { first, last, step } => {
            // `lastkey` is relative to the first key; negative counts from the end.
            let lastkey = if last >= 0 {
                last as i64 - first as i64
            } else {
                last as i64
            };
            vec![index_spec(
                flags,
                first as i64,
                range_keys(lastkey, step as i64),
            )]
        }
        KeySpec::NumKeys { count_at, dest } => {
            let keynum = map([
                ("type", Reply::bulk(b"keynum")),
                (
                    "spec",
                    map([
                        ("keynumidx", Reply::Int(0)),
                        ("firstkey", Reply::Int(1)),
                        ("keystep", Reply::Int(1)),
                    ]),
                ),
            ]);
            let mut specs = Vec::new();
            if dest {
                specs.push(index_spec(["OW", "update"], 1, range_keys(0, 1)));
            }
            let source = if dest { ["RO", "access"] } else { flags };
            specs.push(index_spec(source, count_at as i64, keynum));
            specs
        }
    };
    Reply::Set(specs)
}

/// One command's 10-element COMMAND INFO entry (its subcommands nested in the last).
fn info_entry(table: &CommandTable, id: CommandId) -> Reply {
    let entry = table.entry(id);
    let command = entry.command;
    let (first, last, step) = legacy_range(command);
    let subcommands = if command.subcommands.is_empty() {
        Reply::Set(Vec::new())
    } else {
        Reply::Array(
            table
                .subcommands(id)
                .map(|sub| info_entry(table, sub))
                .collect(),
        )
    };
    Reply::Array(vec![
        Reply::bulk(entry.full_name.as_bytes()),
        Reply::Int(i64::from(command.arity)),
        status_set(flag_names(command)),
        Reply::Int(first),
        Reply::Int(last),
        Reply::Int(step),
        status_set(acl_categories(command, entry.group)),
        Reply::Set(Vec::new()),
        key_specs(command),
        subcommands,
    ])
}

fn command_all(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    let table = &cx.engine.commands;
    Ok(Reply::Array(
        table
            .callable()
            .into_iter()
            .map(|id| info_entry(table, id))
            .collect(),
    ))
}

fn command_count(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    Ok(Reply::Int(cx.engine.commands.callable().len() as i64))
}

fn command_info(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    if argv.len() == 2 {
        return command_all(cx, argv);
    }
    let table = &cx.engine.commands;
    Ok(Reply::Array(
        argv[2..]
            .iter()
            .map(|name| {
                table
                    .by_full_name(name)
                    .map_or(Reply::Nil, |id| info_entry(table, id))
            })
            .collect(),
    ))
}

/// COMMAND DOCS: the group of each command and its subcommands. Shoal carries no prose
/// (summaries, argument descriptions) of its own; clients treat those as optional.
fn docs_entry(table: &CommandTable, id: CommandId) -> Reply {
    let entry = table.entry(id);
    let mut pairs = vec![("group", Reply::bulk(entry.group.as_bytes()))];
    if !entry.command.subcommands.is_empty() {
        pairs.push((
            "subcommands",
            Reply::Map(
                table
                    .subcommands(id)
                    .map(|sub| {
                        let name = &table.entry(sub).full_name;
                        (Reply::bulk(name.as_bytes()), docs_entry(table, sub))
                    })
                    .collect(),
            ),
        ));
    }
    map(pairs)
}

fn command_docs(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let table = &cx.engine.commands;
    let ids: Vec<CommandId> = if argv.len() == 2 {
        table.callable()
    } else {
        argv[2..]
            .iter()
            .filter_map(|name| table.by_full_name(name))
            .collect()
    };
    Ok(Reply::Map(
        ids.into_iter()
            .map(|id| {
                let name = &table.entry(id).full_name;
                (Reply::bulk(name.as_bytes()), docs_entry(table, id))
            })
            .collect(),
    ))
}

/// COMMAND LIST [FILTERBY ACLCAT cat | PATTERN pattern | MODULE name].
fn command_list(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let table = &cx.engine.commands;
    let keep: Box<dyn Fn(CommandId) -> bool> = match &argv[2..] {
        [] => Box::new(|_| true),
        [filterby, kind, arg] if is(filterby, "filterby") => {
            if is(kind, "pattern") {
                let pattern = arg.to_vec();
                Box::new(move |id| {
                    crate::glob::matches(&pattern, table.entry(id).full_name.as_bytes(), true)
                })
            } else if is(kind, "aclcat") {
                let category = format!("@{}", String::from_utf8_lossy(arg).to_ascii_lowercase());
                Box::new(move |id| {
                    let entry = table.entry(id);
                    acl_categories(entry.command, entry.group).contains(&category.as_str())
                })
            } else if is(kind, "module") {
                Box::new(|_| false)
            } else {
                return Err(SYNTAX);
            }
        }
        _ => return Err(SYNTAX),
    };
    let mut names = Vec::new();
    for id in table.callable() {
        for one in std::iter::once(id).chain(table.subcommands(id)) {
            if keep(one) {
                names.push(Reply::bulk(table.entry(one).full_name.as_bytes()));
            }
        }
    }
    Ok(Reply::Array(names))
}

/// The keys of the command in `argv[2..]`, checked as Redis checks them.
fn keys_of<'a>(
    cx: &Ctx<'_, '_>,
    argv: &[&'a [u8]],
) -> Result<(&'static Command, Vec<&'a [u8]>), CmdError> {
    let table = &cx.engine.commands;
    let target = &argv[2..];
    let invalid = || CmdError::new("ERR Invalid command specified");
    let container = table.get(target[0]).ok_or_else(invalid)?;
    let id = table.resolve(container, target).map_err(|_| invalid())?;
    let command = table.entry(id).command;
    if matches!(command.keys, KeySpec::None) {
        return Err(CmdError::new("ERR The command has no key arguments"));
    }
    if !command.arity_ok(target.len()) {
        return Err(CmdError::new(
            "ERR Invalid number of arguments specified for command",
        ));
    }
    let mut indexes = Vec::new();
    command.key_indexes(target, &mut indexes);
    if indexes.is_empty() {
        return Err(CmdError::new("ERR Invalid arguments specified for command"));
    }
    Ok((command, indexes.into_iter().map(|i| target[i]).collect()))
}

fn command_getkeys(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let (_, keys) = keys_of(cx, argv)?;
    Ok(Reply::Array(keys.into_iter().map(Reply::bulk).collect()))
}

fn command_getkeysandflags(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let (command, keys) = keys_of(cx, argv)?;
    let flags = key_flags(command);
    Ok(Reply::Array(
        keys.into_iter()
            .map(|k| Reply::Array(vec![Reply::bulk(k), status_set(flags)]))
            .collect(),
    ))
}

fn command_help(_cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    Ok(super::help(
        "command",
        &[
            "(no subcommand)",
            "    Return details about all Redis commands.",
            "COUNT",
            "    Return the total number of commands in this Redis server.",
            "LIST",
            "    Return a list of all commands in this Redis server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "GETKEYS <full-command>",
            "    Return the keys from a full Redis command.",
            "GETKEYSANDFLAGS <full-command>",
            "    Return the keys and the access flags from a full Redis command.",
        ],
    ))
}
