//! Replication: REPLICAOF (and SLAVEOF), ROLE, REPLCONF.

use super::args::is;
use super::flags::*;
use super::{CmdError, CmdResult, Command, KeySpec};
use crate::engine::ctx::Ctx;
use crate::repl::{LinkStatus, Role};
use crate::reply::Reply;

pub const COMMANDS: &[Command] = &[
    Command::new("replicaof", 3, ADMIN | STALE, KeySpec::None, replicaof),
    Command::new("slaveof", 3, ADMIN | STALE, KeySpec::None, replicaof),
    Command::new("role", 1, FAST | LOADING | STALE, KeySpec::None, role),
    Command::new("failover", -1, ADMIN | STALE, KeySpec::None, failover),
    Command::new(
        "replconf",
        -1,
        ADMIN | NO_AUTH | LOADING | STALE,
        KeySpec::None,
        replconf,
    ),
];

/// The REPLCONF option a Shoal replica asks (`REPLCONF shoal-bus-port *`) before it links:
/// the UDP port of this node's
/// QUIC endpoint (replication does not run over this connection). No secret: it is answered
/// before AUTH, so that a replica never sends `masterauth` over plain TCP.
pub const BUS_PORT_OPTION: &str = "shoal-bus-port";

/// REPLCONF option value [option value ...]: what Redis replicas send is accepted; the bus
/// port query answers with the port.
fn replconf(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    if argv.len().is_multiple_of(2) {
        return Err(CmdError::new(crate::reply::err::SYNTAX));
    }
    if argv.len() == 3 && is(argv[1], BUS_PORT_OPTION) {
        return crate::repl::bus_port(cx.engine)
            .map(|port| Reply::Int(i64::from(port)))
            .ok_or_else(|| CmdError::new("ERR this node has no replication endpoint"));
    }
    if !cx.conn()?.authenticated {
        return Err(CmdError::new(crate::reply::err::NOAUTH));
    }
    for pair in argv[1..].chunks(2) {
        let known = ["listening-port", "ip-address", "capa", "rdb-only"];
        if !known.iter().any(|name| is(pair[0], name)) {
            let option = String::from_utf8_lossy(pair[0]);
            return Err(CmdError(
                format!("ERR Unrecognized REPLCONF option: {option}").into(),
            ));
        }
    }
    Ok(Reply::OK)
}

/// FAILOVER [TO host port] [FORCE] [TIMEOUT ms] | FAILOVER ABORT.
fn failover(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let refused = |why: &str| CmdError(format!("ERR {why}").into());
    if cx.engine.config().cluster_enabled {
        return Err(refused(
            "FAILOVER not allowed in cluster mode. Use CLUSTER FAILOVER command instead.",
        ));
    }
    if argv.len() == 2 && is(argv[1], "abort") {
        crate::repl::failover::abort(cx.engine).map_err(refused)?;
        return Ok(Reply::OK);
    }
    let mut request = crate::repl::failover::Request {
        target: None,
        force: false,
        timeout: None,
    };
    let mut i = 1;
    while i < argv.len() {
        let left = argv.len() - i - 1;
        if is(argv[i], "timeout") && left >= 1 && request.timeout.is_none() {
            let ms = super::args::parse_i64(argv[i + 1])?;
            if ms <= 0 {
                return Err(refused("FAILOVER timeout must be greater than 0"));
            }
            request.timeout = Some(std::time::Duration::from_millis(ms as u64));
            i += 2;
        } else if is(argv[i], "to") && left >= 2 && request.target.is_none() {
            let port = super::args::parse_i64(argv[i + 2])?;
            let host = String::from_utf8_lossy(argv[i + 1]).into_owned();
            request.target = Some((host, u16::try_from(port).unwrap_or(0)));
            i += 3;
        } else if is(argv[i], "force") && !request.force {
            request.force = true;
            i += 1;
        } else {
            return Err(CmdError::new(crate::reply::err::SYNTAX));
        }
    }
    crate::repl::failover::start(cx.engine, request).map_err(|e| refused(&e))?;
    Ok(Reply::OK)
}

/// REPLICAOF host port | NO ONE.
fn replicaof(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    if cx.engine.config().cluster_enabled {
        return Err(CmdError::new("ERR REPLICAOF not allowed in cluster mode."));
    }
    let target = if is(argv[1], "no") && is(argv[2], "one") {
        None
    } else {
        let host = String::from_utf8_lossy(argv[1]).into_owned();
        let port = std::str::from_utf8(argv[2])
            .ok()
            .and_then(|p| p.parse::<u16>().ok())
            .ok_or(super::args::NOT_INT)?;
        if let Role::Replica(up) = cx.engine.repl.role() {
            if up.host == host && up.port == port {
                return Ok(Reply::Status(
                    "OK Already connected to specified master".into(),
                ));
            }
        }
        Some((host, port))
    };
    crate::repl::replicaof(cx.engine, target, None)
        .map_err(|e| CmdError(format!("ERR {e}").into()))?;
    Ok(Reply::OK)
}

/// ROLE: `[master, offset, [[ip, port, offset]...]]` or `[slave, host, port, state, offset]`.
fn role(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    if let Some(sentinel) = super::sentinel::role(cx.engine) {
        return Ok(sentinel);
    }
    let repl = &cx.engine.repl;
    let end = cx.engine.log().end().0 as i64;
    Ok(match repl.role() {
        Role::Primary => {
            let replicas = repl
                .replicas()
                .iter()
                .map(|r| {
                    Reply::Array(vec![
                        Reply::bulk(r.ip.as_bytes()),
                        Reply::bulk(r.port.to_string().as_bytes()),
                        Reply::bulk(r.applied.to_string().as_bytes()),
                    ])
                })
                .collect();
            Reply::Array(vec![
                Reply::bulk(b"master"),
                Reply::Int(end),
                Reply::Array(replicas),
            ])
        }
        Role::Replica(up) => {
            let state: &[u8] = match repl.link().0 {
                LinkStatus::Connecting => b"connecting",
                LinkStatus::Sync => b"sync",
                LinkStatus::Connected => b"connected",
            };
            Reply::Array(vec![
                Reply::bulk(b"slave"),
                Reply::bulk(up.host.as_bytes()),
                Reply::Int(i64::from(up.port)),
                Reply::bulk(state),
                Reply::Int(end),
            ])
        }
    })
}
