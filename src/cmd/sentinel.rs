//! SENTINEL and the rest of what a node in sentinel mode answers (see [`crate::sentinel`]):
//! the groups it monitors, their replicas and sentinels, as Redis Sentinel lists them.

use super::flags::*;
use super::{CmdError, CmdResult, Command, KeySpec};
use crate::engine::ctx::Ctx;
use crate::reply::Reply;
use crate::sentinel::state::{
    Addr, FailoverRefusal, Group, Instance, Ms, Peer, Sentinel, Settings,
};

pub const COMMANDS: &[Command] = &[Command::new(
    "sentinel",
    -2,
    ADMIN | LOADING | STALE,
    KeySpec::None,
    super::no_subcommand,
)
.subcommands(SENTINEL)];

const SENTINEL: &[Command] = &[
    Command::new("masters", 2, 0, KeySpec::None, masters),
    Command::new("master", 3, 0, KeySpec::None, master),
    Command::new("replicas", 3, 0, KeySpec::None, replicas),
    Command::new("slaves", 3, 0, KeySpec::None, replicas),
    Command::new("sentinels", 3, 0, KeySpec::None, sentinels),
    Command::new("get-master-addr-by-name", 3, 0, KeySpec::None, master_addr),
    Command::new("reset", 3, 0, KeySpec::None, reset),
    Command::new("ckquorum", 3, 0, KeySpec::None, ckquorum),
    Command::new("remove", 3, 0, KeySpec::None, remove),
    Command::new("monitor", 6, 0, KeySpec::None, monitor),
    Command::new("set", -5, 0, KeySpec::None, set),
    Command::new("flushconfig", 2, 0, KeySpec::None, flushconfig),
    Command::new("failover", 3, 0, KeySpec::None, failover),
    Command::new(
        "is-master-down-by-addr",
        6,
        0,
        KeySpec::None,
        is_master_down,
    ),
    Command::new("myid", 2, 0, KeySpec::None, myid),
];

/// The commands a node in sentinel mode serves (others are unknown there, as in Redis).
pub fn serves(name: &str) -> bool {
    matches!(
        name,
        "sentinel"
            | "ping"
            | "info"
            | "role"
            | "client"
            | "command"
            | "hello"
            | "auth"
            | "quit"
            | "reset"
            | "shutdown"
            | "subscribe"
            | "unsubscribe"
            | "psubscribe"
            | "punsubscribe"
            | "publish"
            | "debug"
    )
}

const NO_SUCH_MASTER: CmdError = CmdError::new("ERR No such master with that name");

fn runtime<'a>(cx: &Ctx<'a, '_>) -> Result<&'a crate::sentinel::driver::Runtime, CmdError> {
    cx.engine
        .sentinel
        .get()
        .map(|r| r.as_ref())
        .ok_or(CmdError::new(
            "ERR This instance has sentinel support disabled",
        ))
}

/// Runs `f` on the sentinel's state, with its clock.
fn with_sentinel<T>(
    cx: &Ctx<'_, '_>,
    f: impl FnOnce(&mut Sentinel, Ms) -> Result<T, CmdError>,
) -> Result<T, CmdError> {
    let runtime = runtime(cx)?;
    let now = runtime.now_ms();
    let mut state = runtime.state.lock();
    f(&mut state, now)
}

fn text(s: &[u8]) -> String {
    String::from_utf8_lossy(s).into_owned()
}

fn fields(pairs: Vec<(&str, String)>) -> Reply {
    Reply::Map(
        pairs
            .into_iter()
            .map(|(k, v)| (Reply::bulk(k.as_bytes()), Reply::bulk(v.as_bytes())))
            .collect(),
    )
}

/// The fields every instance shows.
fn instance_fields(
    inst: &Instance,
    kind: &str,
    now: Ms,
    down_after_ms: Ms,
) -> Vec<(&'static str, String)> {
    let mut flags = vec![kind];
    if inst.is_sdown() {
        flags.push("s_down");
    }
    if now.saturating_sub(inst.last_avail_ms) > down_after_ms {
        flags.push("disconnected");
    }
    let since = |t: Ms| now.saturating_sub(t).to_string();
    vec![
        ("name", inst.addr.to_string()),
        ("ip", inst.addr.host.clone()),
        ("port", inst.addr.port.to_string()),
        ("runid", inst.run_id.clone().unwrap_or_default()),
        ("flags", flags.join(",")),
        ("link-pending-commands", "0".into()),
        ("link-refcount", "1".into()),
        (
            "last-ping-sent",
            match inst.ping_sent_ms {
                0 => "0".into(),
                t => since(t),
            },
        ),
        ("last-ok-ping-reply", since(inst.last_ok_ping_ms)),
        ("last-ping-reply", since(inst.last_avail_ms)),
        ("down-after-milliseconds", down_after_ms.to_string()),
        ("info-refresh", since(inst.info_refresh_ms)),
        (
            "role-reported",
            if inst.reported_master {
                "master"
            } else {
                "slave"
            }
            .into(),
        ),
        ("role-reported-time", since(inst.role_reported_ms)),
    ]
}

fn master_fields(g: &Group, now: Ms) -> Reply {
    let s: &Settings = &g.settings;
    let mut f = instance_fields(&g.master, "master", now, s.down_after_ms);
    f[0].1 = g.name.clone();
    let mut flags = f[4].1.clone();
    if g.is_odown() {
        flags.push_str(",o_down");
    }
    if g.failover.is_some() {
        flags.push_str(",failover_in_progress");
    }
    f[4].1 = flags;
    if let Some(since) = g.master.sdown_since_ms {
        f.push(("s-down-time", now.saturating_sub(since).to_string()));
    }
    if let Some(since) = g.odown_since_ms {
        f.push(("o-down-time", now.saturating_sub(since).to_string()));
    }
    f.extend([
        ("config-epoch", g.config_epoch.to_string()),
        ("num-slaves", g.replicas.len().to_string()),
        ("num-other-sentinels", g.sentinels.len().to_string()),
        ("quorum", s.quorum.to_string()),
        ("failover-timeout", s.failover_timeout_ms.to_string()),
        ("parallel-syncs", s.parallel_syncs.to_string()),
    ]);
    if let Some(failover) = &g.failover {
        f.push(("failover-state", failover.step.name().to_string()));
    }
    fields(f)
}

fn replica_fields(g: &Group, r: &Instance, now: Ms) -> Reply {
    let mut f = instance_fields(r, "slave", now, g.settings.down_after_ms);
    let (primary, link_up) = r.primary.clone().unwrap_or((Addr::new("?", 0), false));
    f.extend([
        ("master-link-down-time", r.link_down_ms.to_string()),
        (
            "master-link-status",
            if link_up { "ok" } else { "err" }.into(),
        ),
        ("master-host", primary.host),
        ("master-port", primary.port.to_string()),
        ("slave-priority", r.priority.to_string()),
        ("slave-repl-offset", r.repl_offset.to_string()),
        ("replica-announced", "1".into()),
    ]);
    fields(f)
}

fn sentinel_fields(p: &Peer, now: Ms) -> Reply {
    let (leader, epoch) = p.leader.clone().unwrap_or(("*".into(), 0));
    fields(vec![
        ("name", p.run_id.clone()),
        ("ip", p.addr.host.clone()),
        ("port", p.addr.port.to_string()),
        ("runid", p.run_id.clone()),
        ("flags", "sentinel".into()),
        (
            "last-hello-message",
            now.saturating_sub(p.last_hello_ms).to_string(),
        ),
        ("voted-leader", leader),
        ("voted-leader-epoch", epoch.to_string()),
    ])
}

fn group<'s>(s: &'s Sentinel, name: &[u8]) -> Result<&'s Group, CmdError> {
    s.groups.get(&text(name)).ok_or(NO_SUCH_MASTER)
}

fn masters(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    with_sentinel(cx, |s, now| {
        Ok(Reply::Array(
            s.groups.values().map(|g| master_fields(g, now)).collect(),
        ))
    })
}

fn master(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    with_sentinel(cx, |s, now| Ok(master_fields(group(s, argv[2])?, now)))
}

fn replicas(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    with_sentinel(cx, |s, now| {
        let g = group(s, argv[2])?;
        Ok(Reply::Array(
            g.replicas
                .values()
                .map(|r| replica_fields(g, r, now))
                .collect(),
        ))
    })
}

fn sentinels(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    with_sentinel(cx, |s, now| {
        let g = group(s, argv[2])?;
        Ok(Reply::Array(
            g.sentinels
                .values()
                .map(|p| sentinel_fields(p, now))
                .collect(),
        ))
    })
}

fn master_addr(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    with_sentinel(cx, |s, _| {
        Ok(match s.groups.get(&text(argv[2])) {
            Some(g) => {
                let a = g.current_master();
                Reply::bulks([a.host.as_bytes(), a.port.to_string().as_bytes()])
            }
            None => Reply::NilArray,
        })
    })
}

fn reset(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    with_sentinel(cx, |s, now| Ok(Reply::Int(s.reset(argv[2], now) as i64)))
}

fn ckquorum(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    with_sentinel(cx, |s, now| {
        let g = group(s, argv[2])?;
        let voters = g.sentinels.len() + 1;
        let usable = 1 + g
            .sentinels
            .values()
            .filter(|p| {
                now.saturating_sub(p.last_hello_ms)
                    < 5 * crate::sentinel::state::HELLO_PERIOD_MS * 3
            })
            .count();
        if usable < g.settings.quorum {
            return Err(CmdError::msg(format!(
                "NOQUORUM {usable} usable Sentinels. Not enough available Sentinels to reach the specified quorum for this master"
            )));
        }
        if usable < voters / 2 + 1 {
            return Err(CmdError::msg(format!(
                "NOQUORUM {usable} usable Sentinels. Not enough available Sentinels to reach the majority and authorize a failover"
            )));
        }
        Ok(Reply::Status(
            format!(
                "OK {usable} usable Sentinels. Quorum and failover authorization can be reached"
            )
            .into(),
        ))
    })
}

fn remove(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    with_sentinel(cx, |s, _| match s.remove(&text(argv[2])) {
        true => Ok(Reply::OK),
        false => Err(NO_SUCH_MASTER),
    })
}

fn monitor(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let port = match text(argv[4]).parse::<u16>() {
        Ok(p) if p > 0 => p,
        _ => return Err(CmdError::new("ERR Invalid port number")),
    };
    let quorum = match text(argv[5]).parse::<usize>() {
        Ok(q) if q > 0 => q,
        _ => return Err(CmdError::new("ERR Quorum must be 1 or greater.")),
    };
    let ip = text(argv[3]);
    if ip.parse::<std::net::IpAddr>().is_err() {
        return Err(CmdError::new(
            "ERR Invalid IP address or hostname specified",
        ));
    }
    if !crate::sentinel::config::is_plain_word(&text(argv[2])) {
        return Err(CmdError::new("ERR Invalid master name"));
    }
    with_sentinel(cx, |s, now| {
        match s.monitor(
            &text(argv[2]),
            Addr::new(ip, port),
            Settings::with_quorum(quorum),
            now,
        ) {
            true => Ok(Reply::OK),
            false => Err(CmdError::new("ERR Duplicated master name")),
        }
    })
}

fn set(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    if argv.len().is_multiple_of(2) {
        return Err(super::arity_error("sentinel|set"));
    }
    with_sentinel(cx, |s, now| {
        let g = s.groups.get_mut(&text(argv[2])).ok_or(NO_SUCH_MASTER)?;
        for pair in argv[3..].chunks(2) {
            let (option, value) = (text(pair[0]), text(pair[1]));
            crate::sentinel::config::set_option(g, &option, &[value.as_str()], now).map_err(
                |_| {
                    CmdError::msg(format!(
                        "ERR Invalid argument '{value}' for SENTINEL SET '{option}'"
                    ))
                },
            )?;
        }
        s.mark_dirty();
        Ok(Reply::OK)
    })
}

fn flushconfig(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    let runtime = runtime(cx)?;
    crate::sentinel::config::rewrite(cx.engine, runtime)
        .map_err(|e| CmdError::msg(format!("ERR Failed to save config: {e}")))?;
    Ok(Reply::OK)
}

fn failover(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    with_sentinel(cx, |s, now| match s.force_failover(&text(argv[2]), now) {
        Ok(()) => Ok(Reply::OK),
        Err(FailoverRefusal::NoSuchMaster) => Err(NO_SUCH_MASTER),
        Err(FailoverRefusal::InProgress) => {
            Err(CmdError::new("INPROG Failover already in progress"))
        }
        Err(FailoverRefusal::NoGoodReplica) => {
            Err(CmdError::new("NOGOODSLAVE No suitable replica to promote"))
        }
    })
}

fn is_master_down(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let port = text(argv[3]).parse::<u16>();
    let epoch = text(argv[4]).parse::<u64>();
    let (Ok(port), Ok(epoch)) = (port, epoch) else {
        return Err(CmdError::new("ERR value is not an integer or out of range"));
    };
    let addr = Addr::new(text(argv[2]), port);
    let run_id = text(argv[5]);
    let (reply, voted) = with_sentinel(cx, |s, now| {
        let (down, leader, leader_epoch) = s.vote(&addr, epoch, &run_id, now);
        let reply = Reply::Array(vec![
            Reply::Int(i64::from(down)),
            Reply::bulk(leader.as_bytes()),
            Reply::Int(leader_epoch as i64),
        ]);
        Ok((reply, s.take_dirty()))
    })?;
    // A vote is on disk before it is told, as in Redis: a sentinel that restarts cannot
    // vote twice in one epoch.
    if voted {
        let runtime = runtime(cx)?;
        if let Err(e) = crate::sentinel::config::rewrite(cx.engine, runtime) {
            tracing::warn!("Sentinel could not save its vote: {e}");
            return Err(CmdError::msg(format!("ERR could not save the vote: {e}")));
        }
    }
    Ok(reply)
}

fn myid(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    with_sentinel(cx, |s, _| Ok(Reply::bulk(s.my_id.as_bytes())))
}

/// INFO's `# Sentinel` section (after its title).
pub fn info_section(engine: &crate::engine::Engine, out: &mut String) {
    use std::fmt::Write;
    let Some(runtime) = engine.sentinel.get() else {
        return;
    };
    let s = runtime.state.lock();
    let _ = write!(
        out,
        "sentinel_masters:{}\r\nsentinel_tilt:0\r\nsentinel_tilt_since_seconds:-1\r\n\
         sentinel_running_scripts:0\r\nsentinel_scripts_queue_length:0\r\n\
         sentinel_simulate_failure_flags:0\r\n",
        s.groups.len()
    );
    for (i, g) in s.groups.values().enumerate() {
        let status = if g.is_odown() {
            "odown"
        } else if g.master.is_sdown() {
            "sdown"
        } else {
            "ok"
        };
        let _ = write!(
            out,
            "master{i}:name={},status={status},address={},slaves={},sentinels={}\r\n",
            g.name,
            g.master.addr,
            g.replicas.len(),
            g.sentinels.len() + 1
        );
    }
}

/// ROLE in sentinel mode: `sentinel` and the monitored groups' names.
pub fn role(engine: &crate::engine::Engine) -> Option<Reply> {
    let runtime = engine.sentinel.get()?;
    let s = runtime.state.lock();
    Some(Reply::Array(vec![
        Reply::bulk(b"sentinel"),
        Reply::bulks(s.groups.keys().map(|n| n.as_bytes())),
    ]))
}
