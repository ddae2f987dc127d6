//! Cluster mode's commands: CLUSTER and its subcommands, ASKING, READONLY, READWRITE, with
//! Redis's replies and errors. The state they read and change is `crate::cluster`.

use super::args::{is, parse_i64};
use super::flags::*;
use super::{CmdError, CmdResult, Command, KeySpec};
use crate::cluster::state::{flags as node_flags, ManualKind, Node, State};
use crate::cluster::{Epoch, NodeId};
use crate::engine::ctx::Ctx;
use crate::reply::Reply;
use crate::slot::SlotId;

pub const COMMANDS: &[Command] = &[
    Command::new("cluster", -2, 0, KeySpec::None, super::no_subcommand).subcommands(CLUSTER),
    Command::new("asking", 1, FAST, KeySpec::None, asking),
    Command::new(
        "readonly",
        1,
        FAST | LOADING | STALE,
        KeySpec::None,
        readonly,
    ),
    Command::new(
        "readwrite",
        1,
        FAST | LOADING | STALE,
        KeySpec::None,
        readwrite,
    ),
];

const CLUSTER: &[Command] = &[
    Command::new("help", 2, LOADING | STALE, KeySpec::None, help),
    Command::new("myid", 2, LOADING | STALE, KeySpec::None, myid),
    Command::new("myshardid", 2, LOADING | STALE, KeySpec::None, myshardid),
    Command::new("keyslot", 3, LOADING | STALE, KeySpec::None, keyslot),
    Command::new("info", 2, LOADING | STALE, KeySpec::None, info),
    Command::new("nodes", 2, LOADING | STALE, KeySpec::None, nodes),
    Command::new("slots", 2, LOADING | STALE, KeySpec::None, slots),
    Command::new("shards", 2, LOADING | STALE, KeySpec::None, shards),
    Command::new("replicas", 3, ADMIN | STALE, KeySpec::None, replicas),
    Command::new("slaves", 3, ADMIN | STALE, KeySpec::None, replicas),
    Command::new("countkeysinslot", 3, STALE, KeySpec::None, countkeysinslot),
    Command::new("getkeysinslot", 4, STALE, KeySpec::None, getkeysinslot),
    Command::new("addslots", -3, ADMIN | STALE, KeySpec::None, addslots),
    Command::new(
        "addslotsrange",
        -4,
        ADMIN | STALE,
        KeySpec::None,
        addslotsrange,
    ),
    Command::new("delslots", -3, ADMIN | STALE, KeySpec::None, delslots),
    Command::new(
        "delslotsrange",
        -4,
        ADMIN | STALE,
        KeySpec::None,
        delslotsrange,
    ),
    Command::new("flushslots", 2, ADMIN | STALE, KeySpec::None, flushslots),
    Command::new("meet", -4, ADMIN | STALE, KeySpec::None, meet),
    Command::new("forget", 3, ADMIN | STALE, KeySpec::None, forget),
    Command::new("setslot", -4, ADMIN | STALE, KeySpec::None, setslot),
    Command::new("replicate", 3, ADMIN | STALE, KeySpec::None, replicate),
    Command::new("reset", -2, ADMIN | STALE, KeySpec::None, reset),
    Command::new("failover", -2, ADMIN | STALE, KeySpec::None, failover),
    Command::new("saveconfig", 2, ADMIN | STALE, KeySpec::None, saveconfig),
    Command::new(
        "set-config-epoch",
        3,
        ADMIN | STALE,
        KeySpec::None,
        set_config_epoch,
    ),
    Command::new("bumpepoch", 2, ADMIN | STALE, KeySpec::None, bumpepoch),
    Command::new(
        "count-failure-reports",
        3,
        ADMIN | STALE,
        KeySpec::None,
        count_failure_reports,
    ),
    Command::new("links", 2, STALE, KeySpec::None, links),
];

const DISABLED: &str = "ERR This instance has cluster support disabled";

/// Runs `f` on the cluster state (committing what it changed); Redis's error in standalone
/// mode.
fn with_state<T>(cx: &Ctx<'_, '_>, f: impl FnOnce(&mut State) -> T) -> Result<T, CmdError> {
    crate::cluster::with_state(cx.engine, f).ok_or(CmdError::new(DISABLED))
}

fn refused(why: String) -> CmdError {
    CmdError::msg(format!("ERR {why}"))
}

fn node_id(arg: &[u8]) -> Option<NodeId> {
    NodeId::parse(arg)
}

fn unknown_node(arg: &[u8]) -> CmdError {
    CmdError::msg(format!("ERR Unknown node {}", String::from_utf8_lossy(arg)))
}

/// A slot argument: `ERR Invalid or out of range slot` otherwise.
fn slot_arg(arg: &[u8]) -> Result<SlotId, CmdError> {
    parse_i64(arg)
        .ok()
        .and_then(|n| u16::try_from(n).ok())
        .and_then(SlotId::new)
        .ok_or(CmdError::new("ERR Invalid or out of range slot"))
}

fn asking(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    with_state(cx, |_| ())?;
    cx.conn()?.cluster.asking = true;
    Ok(Reply::OK)
}

fn readonly(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    with_state(cx, |_| ())?;
    cx.conn()?.cluster.readonly = true;
    Ok(Reply::OK)
}

fn readwrite(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    with_state(cx, |_| ())?;
    cx.conn()?.cluster.readonly = false;
    Ok(Reply::OK)
}

fn help(_cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    Ok(super::help(
        "cluster",
        &[
            "ADDSLOTS <slot> [<slot> ...]",
            "    Assign slots to current node.",
            "ADDSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
            "    Assign slots which are between <start-slot> and <end-slot> to current node.",
            "BUMPEPOCH",
            "    Advance the cluster config epoch.",
            "COUNT-FAILURE-REPORTS <node-id>",
            "    Return number of failure reports for <node-id>.",
            "COUNTKEYSINSLOT <slot>",
            "    Return the number of keys in <slot>.",
            "DELSLOTS <slot> [<slot> ...]",
            "    Delete slots information from current node.",
            "DELSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
            "    Delete slots information which are between <start-slot> and <end-slot> from current node.",
            "FAILOVER [FORCE|TAKEOVER]",
            "    Promote current replica node to being a master.",
            "FLUSHSLOTS",
            "    Delete current node own slots information.",
            "FORGET <node-id>",
            "    Remove a node from the cluster.",
            "GETKEYSINSLOT <slot> <count>",
            "    Return key names stored by current node in a slot.",
            "INFO",
            "    Return information about the cluster.",
            "KEYSLOT <key>",
            "    Return the hash slot for <key>.",
            "MEET <ip> <port> [<bus-port>]",
            "    Connect nodes into a working cluster.",
            "MYID",
            "    Return the node id.",
            "MYSHARDID",
            "    Return the node's shard id.",
            "NODES",
            "    Return cluster configuration seen by node. Output format:",
            "    <id> <ip:port@bus-port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
            "REPLICATE <node-id>",
            "    Configure current node as replica to <node-id>.",
            "RESET [HARD|SOFT]",
            "    Reset current node (default: soft).",
            "SET-CONFIG-EPOCH <epoch>",
            "    Set config epoch of current node.",
            "SETSLOT <slot> (IMPORTING <node-id>|MIGRATING <node-id>|STABLE|NODE <node-id>)",
            "    Set slot state.",
            "REPLICAS <node-id>",
            "    Return <node-id> replicas.",
            "SAVECONFIG",
            "    Force saving cluster configuration on disk.",
            "SLOTS",
            "    Return information about slots range mappings. Each range is made of:",
            "    start, end, master and replicas IP addresses, ports and ids",
            "SHARDS",
            "    Return information about slot range mappings and the nodes associated with them.",
            "LINKS",
            "    Return information about all network links between this node and its peers.",
        ],
    ))
}

fn myid(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    let id = with_state(cx, |s| s.myself_id())?;
    Ok(Reply::bulk(id.as_str().as_bytes()))
}

/// The shard's ID: its master's node ID (every node of a shard answers the same).
fn shard_of(state: &State, node: &Node) -> NodeId {
    node.primary
        .filter(|p| state.node(p).is_some())
        .unwrap_or(node.id)
}

fn myshardid(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    let id = with_state(cx, |s| shard_of(s, s.myself()))?;
    Ok(Reply::bulk(id.as_str().as_bytes()))
}

fn keyslot(_cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    Ok(Reply::Int(i64::from(SlotId::of_key(argv[2]).get())))
}

fn info(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    let full_coverage = cx.engine.settings().cluster_require_full_coverage;
    let mut text = with_state(cx, |s| info_text(s, full_coverage))?;
    if let Some(cluster) = cx.engine.cluster.get() {
        text.push_str(&cluster.relay.stats_text());
    }
    Ok(Reply::Verbatim(text.as_bytes().into()))
}

/// CLUSTER INFO's text (also INFO's view of the state).
pub fn info_text(state: &State, full_coverage: bool) -> String {
    let (mut assigned, mut pfail, mut fail) = (0, 0, 0);
    for slot in (0..16384).filter_map(SlotId::new) {
        let Some(owner) = state.owner(slot).and_then(|id| state.node(&id)) else {
            continue;
        };
        assigned += 1;
        if owner.has(node_flags::FAIL) {
            fail += 1;
        } else if owner.has(node_flags::PFAIL) {
            pfail += 1;
        }
    }
    let size = state
        .nodes()
        .filter(|n| n.is_master() && !state.slots_of(&n.id).is_empty())
        .count();
    let ok = if state.is_ok(full_coverage, &state.owner_runs()) {
        "ok"
    } else {
        "fail"
    };
    let me = state.myself();
    let my_epoch = match me.primary.and_then(|p| state.node(&p)) {
        Some(primary) => primary.config_epoch,
        None => me.config_epoch,
    };
    format!(
        "cluster_state:{ok}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{}\r\n\
         cluster_slots_pfail:{pfail}\r\ncluster_slots_fail:{fail}\r\ncluster_known_nodes:{}\r\n\
         cluster_size:{size}\r\ncluster_current_epoch:{}\r\ncluster_my_epoch:{my_epoch}\r\n\
         total_cluster_links_buffer_limit_exceeded:0\r\n",
        assigned - pfail - fail,
        state.nodes().count(),
        state.current_epoch,
    )
}

fn nodes(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    let text = with_state(cx, |s| s.describe_all(&s.owner_runs()))?;
    Ok(Reply::Verbatim(text.as_bytes().into()))
}

/// A node as CLUSTER SLOTS lists it: ip, port, id, and (Redis 7) a map of extra endpoints.
fn slots_entry(node: &Node) -> Reply {
    Reply::Array(vec![
        Reply::bulk(node.ip.as_bytes()),
        Reply::Int(i64::from(node.port)),
        Reply::bulk(node.id.as_str().as_bytes()),
        Reply::Map(Vec::new()),
    ])
}

/// Replicas of `primary` that are not failing.
fn replicas_of<'s>(state: &'s State, primary: &NodeId) -> Vec<&'s Node> {
    state
        .nodes()
        .filter(|n| n.primary.as_ref() == Some(primary) && n.has(node_flags::SLAVE))
        .filter(|n| !n.has(node_flags::FAIL))
        .collect()
}

fn slots(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    with_state(cx, |state| {
        let mut out = Vec::new();
        for master in state.nodes().filter(|n| n.is_master()) {
            for (first, last) in state.slots_of(&master.id).ranges() {
                let mut entry = vec![
                    Reply::Int(i64::from(first)),
                    Reply::Int(i64::from(last)),
                    slots_entry(master),
                ];
                entry.extend(replicas_of(state, &master.id).into_iter().map(slots_entry));
                out.push(Reply::Array(entry));
            }
        }
        Reply::Array(out)
    })
}

fn shards(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    let offset = cx.engine.log().end().0;
    with_state(cx, |state| {
        let me = state.myself_id();
        let describe = |node: &Node| {
            let role = if node.is_master() {
                "master"
            } else {
                "replica"
            };
            let health = if node.has(node_flags::FAIL | node_flags::PFAIL) {
                "fail"
            } else {
                "online"
            };
            let replication_offset = if node.id == me {
                offset
            } else {
                node.repl_offset
            };
            let pair = |k: &str, v: Reply| (Reply::bulk(k.as_bytes()), v);
            Reply::Map(vec![
                pair("id", Reply::bulk(node.id.as_str().as_bytes())),
                pair("port", Reply::Int(i64::from(node.port))),
                pair("ip", Reply::bulk(node.ip.as_bytes())),
                pair("endpoint", Reply::bulk(node.ip.as_bytes())),
                pair("role", Reply::bulk(role.as_bytes())),
                pair(
                    "replication-offset",
                    Reply::Int(i64::try_from(replication_offset).unwrap_or(i64::MAX)),
                ),
                pair("health", Reply::bulk(health.as_bytes())),
            ])
        };
        let mut out = Vec::new();
        for master in state.nodes().filter(|n| n.is_master()) {
            let ranges = state.slots_of(&master.id).ranges();
            let slots = ranges
                .iter()
                .flat_map(|&(a, b)| [Reply::Int(i64::from(a)), Reply::Int(i64::from(b))])
                .collect();
            let mut members = vec![describe(master)];
            members.extend(
                state
                    .nodes()
                    .filter(|n| n.primary == Some(master.id))
                    .map(describe),
            );
            out.push(Reply::Map(vec![
                (Reply::bulk(b"slots"), Reply::Array(slots)),
                (Reply::bulk(b"nodes"), Reply::Array(members)),
            ]));
        }
        Reply::Array(out)
    })
}

fn replicas(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    with_state(cx, |state| {
        let id = node_id(argv[2]).filter(|id| state.node(id).is_some());
        let Some(primary) = id.and_then(|id| state.node(&id)) else {
            return Err(unknown_node(argv[2]));
        };
        if !primary.is_master() {
            return Err(CmdError::new("ERR The specified node is not a master"));
        }
        let lines = state
            .nodes()
            .filter(|n| n.primary == Some(primary.id))
            .map(|n| Reply::bulk(state.describe(n).as_bytes()))
            .collect();
        Ok(Reply::Array(lines))
    })?
}

fn countkeysinslot(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    with_state(cx, |_| ())?;
    let slot = parse_i64(argv[2])
        .ok()
        .and_then(|n| u16::try_from(n).ok())
        .and_then(SlotId::new)
        .ok_or(CmdError::new("ERR Invalid slot"))?;
    Ok(Reply::Int(cx.engine.count_keys_in_slot(slot) as i64))
}

fn getkeysinslot(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    with_state(cx, |_| ())?;
    let bad = || CmdError::new("ERR Invalid slot or number of keys");
    let slot = parse_i64(argv[2])
        .ok()
        .and_then(|n| u16::try_from(n).ok())
        .and_then(SlotId::new)
        .ok_or_else(bad)?;
    let count = parse_i64(argv[3])
        .ok()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(bad)?;
    let keys = cx.engine.keys_in_slot(slot, count);
    Ok(Reply::Array(keys.into_iter().map(Reply::Bulk).collect()))
}

fn slot_list(argv: &[&[u8]]) -> Result<Vec<SlotId>, CmdError> {
    argv.iter().map(|a| slot_arg(a)).collect()
}

/// `start end [start end ...]` as a list of slots.
fn slot_ranges(argv: &[&[u8]], full_name: &str) -> Result<Vec<SlotId>, CmdError> {
    if !argv.len().is_multiple_of(2) {
        return Err(super::arity_error(full_name));
    }
    let mut out = Vec::new();
    for pair in argv.chunks(2) {
        let (first, last) = (slot_arg(pair[0])?, slot_arg(pair[1])?);
        if first > last {
            return Err(CmdError::msg(format!(
                "ERR start slot number {first} is greater than end slot number {last}"
            )));
        }
        out.extend((first.get()..=last.get()).filter_map(SlotId::new));
    }
    Ok(out)
}

fn change(cx: &Ctx<'_, '_>, f: impl FnOnce(&mut State) -> Result<(), String>) -> CmdResult {
    with_state(cx, f)?.map_err(refused)?;
    Ok(Reply::OK)
}

/// Slots change hands only on masters.
fn on_master(state: &State) -> Result<(), String> {
    match state.myself().is_master() {
        true => Ok(()),
        false => Err("Please use SETSLOT only with masters.".into()),
    }
}

fn addslots(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let slots = slot_list(&argv[2..])?;
    change(cx, |s| s.add_slots(&slots))
}

fn addslotsrange(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let slots = slot_ranges(&argv[2..], "cluster|addslotsrange")?;
    change(cx, |s| s.add_slots(&slots))
}

fn delslots(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let slots = slot_list(&argv[2..])?;
    change(cx, |s| s.del_slots(&slots))
}

fn delslotsrange(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let slots = slot_ranges(&argv[2..], "cluster|delslotsrange")?;
    change(cx, |s| s.del_slots(&slots))
}

fn flushslots(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    if cx.engine.dbsize(0) > 0 {
        with_state(cx, |_| ())?;
        return Err(CmdError::new(
            "ERR DB must be empty to perform CLUSTER FLUSHSLOTS.",
        ));
    }
    change(cx, |s| {
        s.flush_slots();
        Ok(())
    })
}

/// CLUSTER MEET ip port [bus-port].
fn meet(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    if argv.len() > 5 {
        return Err(super::args::SYNTAX);
    }
    let ip_text = String::from_utf8_lossy(argv[2]).into_owned();
    let port_arg = |arg: &[u8]| {
        parse_i64(arg)
            .ok()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| {
                CmdError::msg(format!(
                    "ERR Invalid base port specified: {}",
                    String::from_utf8_lossy(arg)
                ))
            })
    };
    let port = port_arg(argv[3])?;
    let cport = match argv.get(4) {
        Some(arg) => parse_i64(arg)
            .ok()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| {
                CmdError::msg(format!(
                    "ERR Invalid bus port specified: {}",
                    String::from_utf8_lossy(arg)
                ))
            })?,
        None => port.checked_add(10_000).ok_or_else(|| {
            CmdError::msg(format!(
                "ERR Invalid node address specified: {ip_text}:{port}"
            ))
        })?,
    };
    let ip: std::net::IpAddr = ip_text.parse().map_err(|_| {
        CmdError::msg(format!(
            "ERR Invalid node address specified: {ip_text}:{port}"
        ))
    })?;
    let now_ms = crate::cluster::now_ms();
    change(cx, |s| {
        s.meet(ip, port, cport, now_ms);
        Ok(())
    })
}

fn forget(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let now_ms = crate::cluster::now_ms();
    let Some(id) = node_id(argv[2]) else {
        with_state(cx, |_| ())?;
        return Err(unknown_node(argv[2]));
    };
    change(cx, |s| s.forget(&id, now_ms))
}

/// CLUSTER SETSLOT slot IMPORTING id | MIGRATING id | NODE id | STABLE.
fn setslot(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    with_state(cx, |s| on_master(s))?.map_err(refused)?;
    let slot = slot_arg(argv[2])?;
    let action = argv[3];
    if is(action, "stable") {
        return change(cx, |s| {
            s.set_stable(slot);
            Ok(())
        });
    }
    let invalid = || {
        CmdError::new("ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP")
    };
    if !["importing", "migrating", "node"]
        .iter()
        .any(|a| is(action, a))
    {
        return Err(invalid());
    }
    let Some(&id_arg) = argv.get(4).filter(|_| argv.len() == 5) else {
        return Err(invalid());
    };
    let keys_left = cx.engine.count_keys_in_slot(slot);
    let id = node_id(id_arg);
    change(cx, |s| {
        let known = id.filter(|id| s.node(id).is_some());
        let Some(id) = known else {
            let shown = String::from_utf8_lossy(id_arg);
            return Err(match is(action, "node") {
                true => format!("Unknown node {shown}"),
                false => format!("I don't know about node {shown}"),
            });
        };
        if is(action, "importing") {
            s.set_importing(slot, id)
        } else if is(action, "migrating") {
            s.set_migrating(slot, id)
        } else {
            s.set_slot_node(slot, id, keys_left)
        }
    })
}

/// CLUSTER REPLICATE id: this node follows `id` (its slots must be none and its data empty).
fn replicate(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let keys = cx.engine.dbsize(0);
    let id = node_id(argv[2]);
    // Replication follows the new role as the change commits (cluster::reconcile).
    with_state(cx, |s| {
        let Some(id) = id.filter(|id| s.node(id).is_some()) else {
            return Err(unknown_node(argv[2]));
        };
        s.replicate(id, keys).map_err(refused)
    })??;
    Ok(Reply::OK)
}

/// CLUSTER RESET [HARD|SOFT].
fn reset(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let hard = match argv.get(2) {
        None => false,
        Some(a) if is(a, "soft") && argv.len() == 3 => false,
        Some(a) if is(a, "hard") && argv.len() == 3 => true,
        Some(_) => return Err(super::args::SYNTAX),
    };
    let master = with_state(cx, |s| s.myself().is_master())?;
    if master && cx.engine.dbsize(0) > 0 {
        return Err(CmdError::new(
            "ERR CLUSTER RESET can't be called with master nodes containing keys",
        ));
    }
    let now_ms = crate::cluster::now_ms();
    // A replica is a master again from here on (replication stops), then drops its data.
    let reply = change(cx, |s| {
        s.reset(hard, now_ms);
        Ok(())
    })?;
    if !master {
        let mut client = crate::engine::Client::new(cx.proto);
        cx.engine.execute_waiting(&mut client, &[b"FLUSHALL"]);
    }
    Ok(reply)
}

/// CLUSTER FAILOVER [FORCE|TAKEOVER], on a replica: replies at once, the failover follows.
fn failover(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let kind = match argv.get(2) {
        None => ManualKind::Default,
        Some(a) if is(a, "force") && argv.len() == 3 => ManualKind::Force,
        Some(a) if is(a, "takeover") && argv.len() == 3 => ManualKind::Takeover,
        Some(_) => return Err(super::args::SYNTAX),
    };
    let now_ms = crate::cluster::now_ms();
    change(cx, |s| s.manual_failover(kind, now_ms))
}

fn saveconfig(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    change(cx, |s| {
        s.mark_dirty();
        Ok(())
    })
}

fn set_config_epoch(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let epoch = parse_i64(argv[2])?;
    let Ok(epoch) = u64::try_from(epoch) else {
        with_state(cx, |_| ())?;
        return Err(CmdError::msg(format!(
            "ERR Invalid config epoch specified: {epoch}"
        )));
    };
    change(cx, |s| s.set_config_epoch(Epoch(epoch)))
}

fn bumpepoch(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    let (bumped, epoch) = with_state(cx, |s| {
        let bumped = s.bump_epoch();
        (bumped, s.myself().config_epoch)
    })?;
    let word = if bumped { "BUMPED" } else { "STILL" };
    Ok(Reply::Status(format!("{word} {epoch}").into()))
}

fn count_failure_reports(cx: &mut Ctx<'_, '_>, argv: &[&[u8]]) -> CmdResult {
    let id = node_id(argv[2]);
    with_state(cx, |s| {
        id.and_then(|id| s.failure_reports(&id))
            .map(|n| Reply::Int(n as i64))
            .ok_or_else(|| unknown_node(argv[2]))
    })?
}

/// CLUSTER LINKS: one outbound link per known node in Shoal (QUIC carries both directions).
fn links(cx: &mut Ctx<'_, '_>, _argv: &[&[u8]]) -> CmdResult {
    with_state(cx, |s| {
        let me = s.myself_id();
        let links = s
            .nodes()
            .filter(|n| n.id != me && n.link_up)
            .map(|n| {
                let pair = |k: &str, v: Reply| (Reply::bulk(k.as_bytes()), v);
                Reply::Map(vec![
                    pair("direction", Reply::bulk(b"to")),
                    pair("node", Reply::bulk(n.id.as_str().as_bytes())),
                    pair("create-time", Reply::Int(n.created_ms as i64)),
                    pair("events", Reply::bulk(b"rw")),
                    pair("send-buffer-allocated", Reply::Int(0)),
                    pair("send-buffer-used", Reply::Int(0)),
                ])
            })
            .collect();
        Reply::Array(links)
    })
}
