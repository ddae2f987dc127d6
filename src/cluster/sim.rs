//! Deterministic simulation of failure detection and failover: seven nodes (three masters, a
//! replica each and a second one for the first master) running the real cluster state
//! machine ([`State`]) over an in-memory bus and a virtual clock, driven by a seeded
//! scheduler that loses, duplicates, delays and reorders messages, partitions the nodes and
//! crashes and restarts them (from the nodes.conf they last wrote). Replication is modelled:
//! a replica copies its primary's log when it extends its own, and replaces its own otherwise
//! (a full resync), so a write the new primary never had is lost as it would be.
//!
//! Clients write to any node that accepts writes for a slot; a write counts as acknowledged
//! when a replica that node counts (state/shard.rs) has it within the WAIT timeout (WAIT 1:
//! a majority of a two- or three-node shard). Checked after every step: never two nodes
//! accept writes for a slot at once (so never two in one epoch), no slot is written by two
//! nodes in one epoch over the whole run, and no acknowledged write is missing from every
//! node. After the faults heal: every node sees every slot served, all agree on the owners,
//! every replica holds its primary's log, and every acknowledged write is in its slot's
//! owner's log.
//!
//! `cargo test` runs seeds for 15 seconds; `SHOAL_SIM_SEEDS=<n>` runs n seeds (from
//! `SHOAL_SIM_BASE`); a failing seed is printed, and `SHOAL_SIM_SEED=<seed>` replays exactly
//! that run, which `SHOAL_SIM_TRACE=1` narrates (roles, crashes, partitions, writes,
//! acknowledgements, full resyncs and what they lost).

use super::ids::{Epoch, NodeId};
use super::state::{FailoverSettings, State};
use super::wire::Message;
use crate::slot::SlotId;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

/// Three masters with a replica each, and a second replica for the first: a shard whose
/// members can disagree on who is in it (a replica restarts, a failed master rejoins, a
/// replica migrates while the others cannot hear of it).
const NODES: usize = 7;
const MASTERS: usize = 3;
const TIMEOUT_MS: u64 = 1_000;
const STEP_MS: u64 = 5;
/// Faults are injected for this long, then healed for as long.
const FAULTY_MS: u64 = 15_000;
const HEALING_MS: u64 = 15_000;
/// A client's WAIT 1 gives up after this long.
const WAIT_MS: u64 = 200;
/// One slot in each master's range: the keys the clients write.
const SLOTS: [u16; MASTERS] = [100, 5_600, 11_000];
const RANGES: [(u16, u16); MASTERS] = [(0, 5_460), (5_461, 10_922), (10_923, 16_383)];
/// Log entries a replica copies per step.
const COPY_MAX: usize = 20;
/// Default time budget for `cargo test`, and the most seeds it runs in it.
const BUDGET_MS: u128 = 15_000;
const SEEDS_MAX: u64 = 300;

struct SimNode {
    id: NodeId,
    state: State,
    /// Down until then (0: up).
    down_until: u64,
    /// Its nodes.conf as last written.
    config: String,
    log: Vec<u64>,
    /// What `log` holds, for lookups.
    has: HashSet<u64>,
    /// When it last copied from its primary.
    synced_ms: u64,
    next_tick: u64,
}

struct Flight {
    at: u64,
    from: usize,
    to: usize,
    message: Message,
}

struct Pending {
    write: u64,
    node: usize,
    deadline: u64,
}

struct Sim {
    rng: fastrand::Rng,
    now: u64,
    nodes: Vec<SimNode>,
    flights: Vec<Flight>,
    /// The side of each node while partitioned, and until when.
    partition: Option<(Vec<bool>, u64)>,
    next_write: u64,
    /// Slot index (into SLOTS) of each write.
    write_slot: HashMap<u64, usize>,
    pending: Vec<Pending>,
    acked: Vec<u64>,
    /// Who accepted writes for a slot in an epoch.
    writers: HashMap<(usize, Epoch), usize>,
    faults: bool,
    resyncs: usize,
    /// Print what happens (`SHOAL_SIM_TRACE=1` with a replayed seed).
    trace: bool,
    /// Each node's role as last traced.
    roles: Vec<String>,
}

fn bus(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 17_000 + i as u16))
}

fn slot(index: usize) -> SlotId {
    SlotId::new(SLOTS[index]).expect("below 16384")
}

/// nodes.conf of node `me` for the starting cluster: masters 0-2 with a third of the slots
/// each (config epochs 1-3), node 3+i a replica of master i and node 6 another of master 0.
fn initial_config(ids: &[NodeId], me: usize) -> String {
    let mut out = String::new();
    for (i, id) in ids.iter().enumerate() {
        let myself = if i == me { "myself," } else { "" };
        let port = 7_000 + i;
        let cport = 17_000 + i;
        let line = match i < MASTERS {
            true => {
                let (first, last) = RANGES[i];
                let epoch = i + 1;
                format!("{id} 127.0.0.1:{port}@{cport} {myself}master - 0 0 {epoch} connected {first}-{last}\n")
            }
            false => {
                let primary = ids[(i - MASTERS) % MASTERS];
                let epoch = (i - MASTERS) % MASTERS + 1;
                format!(
                    "{id} 127.0.0.1:{port}@{cport} {myself}slave {primary} 0 0 {epoch} connected\n"
                )
            }
        };
        out.push_str(&line);
    }
    out.push_str("vars currentEpoch 3 lastVoteEpoch 0\n");
    out
}

impl Sim {
    fn new(seed: u64) -> Sim {
        // The state machine draws from the thread's generator (gossip order, election
        // delays, IDs): seeded, the run replays exactly.
        fastrand::seed(seed);
        let mut rng = fastrand::Rng::with_seed(seed);
        let ids: Vec<NodeId> = (0..NODES).map(|_| NodeId::random()).collect();
        let nodes = (0..NODES)
            .map(|i| {
                let config = initial_config(&ids, i);
                let mut node = SimNode {
                    id: ids[i],
                    state: State::from_config(&config, TIMEOUT_MS, 0).expect("valid"),
                    down_until: 0,
                    config,
                    log: Vec::new(),
                    has: HashSet::new(),
                    synced_ms: 0,
                    next_tick: rng.u64(0..50),
                };
                node.start(0);
                node
            })
            .collect();
        Sim {
            rng,
            now: 0,
            nodes,
            flights: Vec::new(),
            partition: None,
            next_write: 1,
            write_slot: HashMap::new(),
            pending: Vec::new(),
            acked: Vec::new(),
            writers: HashMap::new(),
            faults: true,
            resyncs: 0,
            trace: std::env::var_os("SHOAL_SIM_TRACE").is_some(),
            roles: vec![String::new(); NODES],
        }
    }

    fn note(&self, what: std::fmt::Arguments) {
        if self.trace {
            println!("{:>6} {what}", self.now);
        }
    }

    /// Traces role changes: master/replica of whom, config epoch, fenced.
    fn note_roles(&mut self) {
        if !self.trace {
            return;
        }
        for i in 0..NODES {
            let state = &self.nodes[i].state;
            let me = state.myself();
            let role = match self.primary_of(i) {
                Some(p) => format!("replica of {p}"),
                None => format!("master e{}", me.config_epoch),
            };
            let role = format!("{role}{}", if state.is_fenced() { " fenced" } else { "" });
            if self.roles[i] != role {
                self.note(format_args!(
                    "node {i}: {role} (log {})",
                    self.nodes[i].log.len()
                ));
                self.roles[i] = role;
            }
        }
    }

    fn up(&self, i: usize) -> bool {
        self.nodes[i].down_until == 0
    }

    /// Whether a message from `from` to `to` gets through the partition.
    fn connected(&self, from: usize, to: usize) -> bool {
        self.partition
            .as_ref()
            .is_none_or(|(side, _)| side[from] == side[to])
    }

    fn send(&mut self, from: usize, to: SocketAddr, message: Message) {
        let Some(to) = (0..NODES).find(|&i| bus(i) == to) else {
            return;
        };
        let copies = match self.faults {
            false => 1,
            true if self.rng.u8(..100) < 3 => 0,
            true if self.rng.u8(..100) < 2 => 2,
            true => 1,
        };
        for _ in 0..copies {
            let delay = if self.faults { self.rng.u64(1..30) } else { 1 };
            self.flights.push(Flight {
                at: self.now + delay,
                from,
                to,
                message: message.clone(),
            });
        }
    }

    fn run(&mut self) {
        while self.now < FAULTY_MS + HEALING_MS {
            if self.now >= FAULTY_MS && self.faults {
                self.heal();
            }
            self.step();
            self.check_step();
            self.now += STEP_MS;
        }
        self.check_converged();
    }

    fn heal(&mut self) {
        self.faults = false;
        self.partition = None;
        for i in 0..NODES {
            if !self.up(i) {
                self.restart(i);
            }
        }
    }

    fn step(&mut self) {
        if self.faults {
            self.inject_faults();
        }
        self.deliver();
        for i in 0..NODES {
            if self.up(i) && self.nodes[i].next_tick <= self.now {
                self.tick(i);
            }
        }
        self.replicate();
        self.write();
        self.acknowledge();
        self.note_roles();
    }

    fn inject_faults(&mut self) {
        if self
            .partition
            .as_ref()
            .is_some_and(|(_, until)| *until <= self.now)
        {
            self.partition = None;
        }
        if self.partition.is_none() && self.rng.u16(..1_000) < 2 {
            let mut side: Vec<bool> = (0..NODES).map(|_| self.rng.bool()).collect();
            side[0] = true;
            side[self.rng.usize(1..NODES)] = false;
            let until = self.now + self.rng.u64(200..4_000);
            self.note(format_args!("partition {side:?} until {until}"));
            self.partition = Some((side, until));
        }
        for i in 0..NODES {
            let down = self.nodes[i].down_until;
            if down != 0 && down <= self.now {
                self.restart(i);
            }
        }
        let crashed = (0..NODES).filter(|&i| !self.up(i)).count();
        if crashed < 2 && self.rng.u16(..1_000) < 1 {
            let i = self.rng.usize(..NODES);
            if self.up(i) {
                self.crash(i);
            }
        }
    }

    fn crash(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.config = node.state.render_config(&node.state.owner_runs());
        node.down_until = self.now + self.rng.u64(200..4_000);
        self.note(format_args!("crash {i}"));
    }

    /// Back from its nodes.conf, with its log (the AOF, fsynced always).
    fn restart(&mut self, i: usize) {
        let now = self.now;
        let node = &mut self.nodes[i];
        node.state = State::from_config(&node.config, TIMEOUT_MS, now)
            .unwrap_or_else(|e| panic!("node {i} cannot load its nodes.conf: {e:?}"));
        node.down_until = 0;
        node.start(now);
        self.note(format_args!("restart {i}"));
    }

    fn deliver(&mut self) {
        let now = self.now;
        let mut due = Vec::new();
        let mut i = 0;
        while i < self.flights.len() {
            if self.flights[i].at <= now {
                due.push(self.flights.swap_remove(i));
            } else {
                i += 1;
            }
        }
        // Same-time messages in a seeded order.
        due.sort_by_key(|f| f.at);
        for flight in due {
            if !self.up(flight.to) || !self.connected(flight.from, flight.to) {
                continue;
            }
            let to = flight.to;
            let node = &mut self.nodes[to];
            node.state.set_repl_offset(node.log.len() as u64);
            let reply = node
                .state
                .handle_message(flight.message, bus(flight.from), bus(to), now);
            self.outgoing(to);
            if let Some(reply) = reply {
                self.send(to, bus(flight.from), reply);
            }
        }
    }

    fn tick(&mut self, i: usize) {
        let now = self.now;
        let node = &mut self.nodes[i];
        node.state.set_repl_offset(node.log.len() as u64);
        let following = !node.state.myself().is_master();
        node.state
            .set_data_age(if following { now - node.synced_ms } else { 0 });
        node.state.handle_tick(now);
        node.next_tick = now + node.state.tick_ms();
        self.outgoing(i);
    }

    fn outgoing(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let out = node.state.poll_outgoing();
        if node.state.take_dirty() {
            node.config = node.state.render_config(&node.state.owner_runs());
        }
        for o in out {
            self.send(i, o.to, o.message);
        }
    }

    /// The node each node follows, by its own state.
    fn primary_of(&self, i: usize) -> Option<usize> {
        let me = self.nodes[i].state.myself();
        let primary = me.primary.filter(|_| !me.is_master())?;
        self.nodes.iter().position(|n| n.id == primary)
    }

    fn replicate(&mut self) {
        for i in 0..NODES {
            let Some(p) = self.primary_of(i) else {
                continue;
            };
            if !self.up(i) || !self.up(p) || !self.connected(i, p) || !self.connected(p, i) {
                continue;
            }
            let (primary_log, log) = (&self.nodes[p].log, &self.nodes[i].log);
            if primary_log.starts_with(log) {
                let end = (log.len() + COPY_MAX).min(primary_log.len());
                let more = primary_log[log.len()..end].to_vec();
                let node = &mut self.nodes[i];
                node.has.extend(more.iter().copied());
                node.log.extend(more);
            } else {
                // A full resync: what only this node had is gone.
                let lost: Vec<u64> = log
                    .iter()
                    .filter(|w| !self.nodes[p].has.contains(w))
                    .copied()
                    .collect();
                self.note(format_args!("full resync of {i} from {p}, losing {lost:?}"));
                let log = primary_log.clone();
                let node = &mut self.nodes[i];
                node.has = log.iter().copied().collect();
                node.log = log;
                self.resyncs += 1;
                self.check_acknowledged_kept();
            }
            self.nodes[i].synced_ms = self.now;
        }
    }

    /// Every acknowledged write is on some node (a full resync is the only way a node loses
    /// writes).
    fn check_acknowledged_kept(&self) {
        let lost = self
            .acked
            .iter()
            .find(|w| !self.nodes.iter().any(|n| n.has.contains(w)));
        if let Some(lost) = lost {
            panic!("at {} ms acknowledged write {lost} is on no node", self.now);
        }
    }

    /// Whether node `i` accepts a write for slot index `s` now: as its routing table would
    /// say, with the coverage rule checked on the written slots (ranges move whole here).
    fn accepts(&self, i: usize, s: usize) -> bool {
        let state = &self.nodes[i].state;
        let served = |s: usize| {
            let owner = state.owner(slot(s));
            owner
                .and_then(|o| state.node(&o))
                .is_some_and(|n| !n.has(super::state::flags::FAIL))
        };
        self.up(i)
            && state.myself().is_master()
            && state.owner(slot(s)) == Some(self.nodes[i].id)
            && !state.is_fenced()
            && (0..MASTERS).all(served)
            && !state.writes_paused()
    }

    fn write(&mut self) {
        // Writes stop a second before the end: replicas catch up for the last check.
        let quiet = self.now + 1_000 > FAULTY_MS + HEALING_MS;
        if quiet || self.rng.u8(..100) >= 30 {
            return;
        }
        let s = self.rng.usize(..MASTERS);
        let open: Vec<usize> = (0..NODES).filter(|&i| self.accepts(i, s)).collect();
        if open.is_empty() {
            return;
        }
        let node = open[self.rng.usize(..open.len())];
        let write = self.next_write;
        self.next_write += 1;
        self.nodes[node].log.push(write);
        self.nodes[node].has.insert(write);
        self.write_slot.insert(write, s);
        self.note(format_args!("write {write} (slot index {s}) on {node}"));
        self.pending.push(Pending {
            write,
            node,
            deadline: self.now + WAIT_MS,
        });
    }

    /// WAIT 1: a replica following the node that took the write has it, and that node
    /// counts its acknowledgements.
    fn acknowledge(&mut self) {
        let now = self.now;
        let mut acked = Vec::new();
        let nodes = &self.nodes;
        let followers = |n: usize| {
            let counted: Vec<NodeId> = nodes[n].state.counted_replicas().to_vec();
            (0..NODES).filter(move |&i| {
                let me = nodes[i].state.myself();
                let follows = !me.is_master() && me.primary == Some(nodes[n].id);
                follows && nodes[i].down_until == 0 && counted.contains(&me.id)
            })
        };
        self.pending.retain(|p| {
            if let Some(by) = followers(p.node).find(|&i| nodes[i].has.contains(&p.write)) {
                if self.trace {
                    println!("{now:>6} write {} acknowledged by {by}", p.write);
                }
                acked.push(p.write);
                return false;
            }
            p.deadline > now
        });
        self.acked.extend(acked);
    }

    fn check_step(&mut self) {
        for (s, &written) in SLOTS.iter().enumerate() {
            let open: Vec<usize> = (0..NODES).filter(|&i| self.accepts(i, s)).collect();
            // Stronger than one writer per epoch: never two at once (fencing).
            assert!(
                open.len() <= 1,
                "at {} ms nodes {open:?} all accept writes for slot {written}:\n{}",
                self.now,
                self.describe()
            );
            for i in open {
                let epoch = self.nodes[i].state.myself().config_epoch;
                let first = *self.writers.entry((s, epoch)).or_insert(i);
                assert_eq!(
                    first, i,
                    "at {} ms nodes {first} and {i} both accept writes for slot {written} in epoch {epoch}",
                    self.now
                );
            }
        }
    }

    fn index(&self, id: &NodeId) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id == *id)
            .unwrap_or(usize::MAX)
    }

    /// Each node's view: flags, config epoch and when it last heard from each node.
    fn describe(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let view: Vec<String> = self
                .nodes
                .iter()
                .enumerate()
                .filter_map(|(j, other)| {
                    let n = node.state.node(&other.id)?;
                    let (flags, epoch) = (n.flag_names(), n.config_epoch);
                    let replaced = n
                        .replaced
                        .map(|(c, at)| format!(":replaced-by-{}@{at}", self.index(&c)))
                        .unwrap_or_default();
                    Some(format!(
                        "{j}:{flags}:e{epoch}:pong{}:disputed-me{}{replaced}",
                        n.pong_received_ms, n.disputed_me_ms
                    ))
                })
                .collect();
            out.push_str(&format!(
                "node {i} (down until {}): {}\n",
                node.down_until,
                view.join(" ")
            ));
        }
        out
    }

    fn check_converged(&self) {
        let owners = |i: usize| -> Vec<Option<NodeId>> {
            (0..MASTERS)
                .map(|s| self.nodes[i].state.owner(slot(s)))
                .collect()
        };
        for i in 0..NODES {
            let state = &self.nodes[i].state;
            assert!(
                state.is_ok(true, &state.owner_runs()),
                "node {i} is not ok after healing:\n{}",
                self.describe()
            );
            assert!(
                (0..MASTERS).all(|s| !self.accepts(i, s) || owners(i)[s] == Some(self.nodes[i].id))
            );
            assert_eq!(
                owners(i),
                owners(0),
                "nodes {i} and 0 disagree on the owners"
            );
            if let Some(p) = self.primary_of(i) {
                let (log, primary) = (&self.nodes[i].log, &self.nodes[p].log);
                let same = log.iter().zip(primary).take_while(|(a, b)| a == b).count();
                assert!(
                    log == primary,
                    "replica {i} ({} writes) differs from its primary {p} ({}) from write #{same}",
                    log.len(),
                    primary.len()
                );
            }
        }
        for write in &self.acked {
            let s = self.write_slot[write];
            let owner = owners(0)[s].expect("served");
            let node = self.nodes.iter().find(|n| n.id == owner).expect("known");
            assert!(
                node.has.contains(write),
                "acknowledged write {write} (slot {}) is not on its owner",
                SLOTS[s]
            );
        }
    }
}

impl SimNode {
    /// Links up to every other node, and the failover settings of a default node.
    fn start(&mut self, now: u64) {
        for i in 0..NODES {
            if self.state.myself().port != 7_000 + i as u16 {
                self.state.handle_link(bus(i), true);
            }
        }
        self.state.set_failover_settings(FailoverSettings {
            no_failover: false,
            validity_factor: 10,
            repl_ping_period_ms: 10_000,
            allow_replica_migration: true,
            migration_barrier: 1,
        });
        self.synced_ms = now;
        self.next_tick = now;
    }
}

/// What a run went through: new writers (a slot written in a new epoch, past the three
/// first), acknowledged writes, full resyncs.
#[derive(Default, Debug)]
struct Tally {
    takeovers: usize,
    acked: usize,
    resyncs: usize,
}

/// Runs one seed, turning a panic into the message that replays it.
fn run_seed(seed: u64) -> Result<Tally, String> {
    let outcome = std::panic::catch_unwind(|| {
        let mut sim = Sim::new(seed);
        sim.run();
        Tally {
            takeovers: sim.writers.len().saturating_sub(MASTERS),
            acked: sim.acked.len(),
            resyncs: sim.resyncs,
        }
    });
    outcome.map_err(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("{why}\nreplay with SHOAL_SIM_SEED={seed}")
    })
}

#[test]
fn failover_keeps_one_writer_per_epoch_and_every_acknowledged_write() {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    if let Some(seed) = var("SHOAL_SIM_SEED") {
        run_seed(seed).unwrap_or_else(|e| panic!("{e}"));
        return;
    }
    let (seeds, budget_ms) = match var("SHOAL_SIM_SEEDS") {
        Some(n) => (n, u128::MAX),
        None => (SEEDS_MAX, BUDGET_MS),
    };
    let base = var("SHOAL_SIM_BASE").unwrap_or(0);
    let started = std::time::Instant::now();
    let (mut ran, mut total) = (0, Tally::default());
    for seed in base..base + seeds {
        if started.elapsed().as_millis() > budget_ms {
            break;
        }
        let tally = run_seed(seed).unwrap_or_else(|e| panic!("{e}"));
        total.takeovers += tally.takeovers;
        total.acked += tally.acked;
        total.resyncs += tally.resyncs;
        ran += 1;
    }
    println!(
        "simulated {ran} seeds in {:?}: {total:?}",
        started.elapsed()
    );
    // The faults must have made failovers happen, or nothing was tested.
    assert!(total.takeovers >= ran / 4, "{total:?} in {ran} seeds");
}
