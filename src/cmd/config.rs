//! CONFIG GET / SET / RESETSTAT / REWRITE / HELP. The directives themselves (names, checks,
//! error texts) live in `config::directives`; this module is the command's reply shapes and
//! its all-or-nothing SET.

use super::flags::*;
use super::{CmdError, CmdResult, Command, KeySpec};
use crate::config::directives::{self, Spec};
use crate::config::Config;
use crate::engine::ctx::Ctx;
use crate::keyspace::bytes::CompactBytes;
use crate::reply::Reply;

pub const COMMANDS: &[Command] =
    &[Command::new("config", -2, 0, KeySpec::None, super::no_subcommand).subcommands(CONFIG)];

const CONFIG: &[Command] = &[
    Command::new("help", 2, LOADING | STALE, KeySpec::None, config_help),
    Command::new(
        "get",
        -3,
        ADMIN | LOADING | STALE,
        KeySpec::None,
        config_get,
    ),
    Command::new(
        "set",
        -4,
        ADMIN | LOADING | STALE,
        KeySpec::None,
        config_set,
    ),
    Command::new(
        "resetstat",
        2,
        ADMIN | LOADING | STALE,
        KeySpec::None,
        config_resetstat,
    ),
    Command::new(
        "rewrite",
        2,
        ADMIN | LOADING | STALE,
        KeySpec::None,
        config_rewrite,
    ),
];

fn config_help(_cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    Ok(super::help(
        "config",
        &[
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
        ],
    ))
}

fn config_get(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let config = cx.engine.settings();
    let mut found: Vec<(String, &'static Spec)> = Vec::new();
    let mut add = |name: String, spec| {
        if !found.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            found.push((name, spec));
        }
    };
    for &arg in &argv[2..] {
        if arg.iter().any(|b| matches!(b, b'*' | b'?' | b'[')) {
            directives::names()
                .filter(|(name, spec)| {
                    !directives::is_hidden(spec) && crate::glob::matches(arg, name.as_bytes(), true)
                })
                .for_each(|(name, spec)| add(name.to_string(), spec));
        } else if let Some((spec, _)) = directives::lookup(arg) {
            add(String::from_utf8_lossy(arg).into_owned(), spec);
        }
    }
    let pairs = found.into_iter().map(|(name, spec)| {
        let value = directives::get(&config, spec);
        (Reply::bulk(name.as_bytes()), Reply::bulk(value.as_bytes()))
    });
    Ok(Reply::Map(pairs.collect()))
}

/// `ERR CONFIG SET failed (possibly related to argument 'name') - reason`.
fn set_failed(name: &str, reason: &str) -> CmdError {
    CmdError::msg(format!(
        "ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}"
    ))
}

/// Finds every directive first, so that nothing changes when one name is wrong; then sets
/// them all on one copy of the settings, which becomes current only if every value is valid.
fn config_set(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    if !argv.len().is_multiple_of(2) {
        return Err(super::args::SYNTAX);
    }
    let protected_ok = cx
        .engine
        .config()
        .enable_protected_configs
        .allows(cx.local_client());
    let mut changes: Vec<(&'static Spec, &'static str, &[u8])> = Vec::new();
    for pair in argv[2..].chunks(2) {
        let typed = String::from_utf8_lossy(pair[0]);
        let Some((spec, name)) = directives::lookup(pair[0]) else {
            return Err(CmdError::msg(format!(
                "ERR Unknown option or number of arguments for CONFIG SET - '{typed}'"
            )));
        };
        if directives::is_immutable(spec) {
            return Err(set_failed(&typed, "can't set immutable config"));
        }
        if directives::is_protected(spec) && !protected_ok {
            return Err(set_failed(&typed, "can't set protected config"));
        }
        if changes
            .iter()
            .any(|(s, n, _)| std::ptr::eq(*s, spec) && *n == name)
        {
            return Err(set_failed(&typed, "duplicate parameter"));
        }
        changes.push((spec, name, pair[1]));
    }
    cx.engine.live.update(|config: &mut Config| {
        for &(spec, name, value) in &changes {
            let args: Vec<&[u8]> = if directives::is_multi_arg(spec) {
                if value.is_empty() {
                    Vec::new()
                } else {
                    value.split(|&b| b == b' ').collect()
                }
            } else {
                vec![value]
            };
            directives::set(config, spec, &args).map_err(|reason| set_failed(name, &reason))?;
        }
        Ok(())
    })?;
    if changes.iter().any(|(spec, ..)| spec.name == "appendonly") {
        let on = cx.engine.settings().append_only;
        crate::persist::set_append_only(cx.engine, on);
    }
    if changes.iter().any(|(spec, ..)| spec.name == "requirepass") {
        let password = cx.engine.settings().requirepass.clone();
        *cx.engine.password.write() = password.map(|p| CompactBytes::new(p.as_bytes()));
    }
    Ok(Reply::OK)
}

fn config_resetstat(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    cx.engine.reset_stats();
    Ok(Reply::OK)
}

fn config_rewrite(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    let config = cx.engine.settings();
    let Some(path) = &config.config_file else {
        return Err(CmdError::new(
            "ERR The server is running without a config file",
        ));
    };
    crate::config::file::rewrite(path, &config)
        .map_err(|e| CmdError::msg(format!("ERR Rewriting config file: {e}")))?;
    tracing::info!("CONFIG REWRITE executed with success.");
    Ok(Reply::OK)
}
