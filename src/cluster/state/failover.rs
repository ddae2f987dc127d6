//! Failure detection and failover: the part of the state machine that decides a master has
//! failed and which of its replicas serves its slots from then on, as the Redis Cluster
//! specification describes it (PFAIL, FAIL by a majority of masters, replica elections with
//! one vote per master per epoch, manual failover), with these differences:
//!
//! - Timers scale with the node timeout: peers are pinged every fifth of it and an election
//!   starts a twentieth of it after the FAIL (Redis: a fixed 500-1000 ms, up to 500 ms).
//! - Fencing: a node that has heard from no majority of masters for half the node timeout
//!   puts its cluster state to fail (CLUSTERDOWN), where Redis waits the whole node timeout.
//!   The other side cannot promote a replacement before the node timeout has passed since
//!   it last heard from the master, plus a ping period at most, so the old master has
//!   stopped taking writes before a new one starts.
//! - A master that leaves the minority waits for the rejoin delay before serving again, as
//!   Redis's does, so that it learns of a replacement before it takes a write. A node that
//!   starts counts as leaving one: a master restarted from nodes.conf does not serve the
//!   slots it had before it has heard from a majority and had time to learn of a
//!   replacement (Redis waits a fixed 2 s, heard or not).

use super::{flags, Epoch, Header, Message, Node, NodeId, Outgoing, SlotId, State};
use std::collections::BTreeSet;
use std::sync::Arc;

/// A manual failover gives up after this long (Redis's CLUSTER_MF_TIMEOUT).
const MANUAL_TIMEOUT_MS: u64 = 5_000;
/// A master left without replicas this long gets one from a master with more (Redis's
/// CLUSTER_SLAVE_MIGRATION_DELAY).
const ORPHAN_MS: u64 = 5_000;

/// What the node's configuration says about failover.
#[derive(Clone, Debug, Default)]
pub struct FailoverSettings {
    /// `cluster-replica-no-failover`, or `replica-priority 0`: never promoted by itself.
    pub no_failover: bool,
    /// `cluster-replica-validity-factor` (0: any data age).
    pub validity_factor: u64,
    /// `repl-ping-replica-period`, in ms.
    pub repl_ping_period_ms: u64,
    /// `cluster-allow-replica-migration`.
    pub allow_replica_migration: bool,
    /// `cluster-migration-barrier`.
    pub migration_barrier: usize,
}

/// CLUSTER FAILOVER's options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManualKind {
    /// The master stops writes, the replica catches up, then an election: nothing is lost.
    Default,
    /// An election now, without the master's agreement (masters vote although it is up).
    Force,
    /// Take the slots now with a new epoch, without an election.
    Takeover,
}

/// A replica's election to replace its master.
#[derive(Debug)]
struct Election {
    primary: NodeId,
    /// When the vote requests go out (or went out).
    start_ms: u64,
    rank: usize,
    /// The epoch asked for, once the requests went out.
    epoch: Option<Epoch>,
    votes: BTreeSet<NodeId>,
    /// A manual failover: no delay, and votes although the master is up.
    force: bool,
}

/// The replica side of a manual failover.
#[derive(Debug)]
struct Manual {
    until_ms: u64,
    /// The paused master's final offset, once it told it.
    primary_offset: Option<u64>,
    /// The election may start.
    ready: bool,
}

/// The master side of a manual failover: writes stay paused until it ends.
#[derive(Debug)]
struct HandOver {
    replica: NodeId,
    until_ms: u64,
    /// The paused offset is told from then on (the pause took effect, and commands that
    /// passed it before have finished).
    tell_from_ms: u64,
    /// That time has come.
    telling: bool,
}

/// Failover state of a node.
#[derive(Default)]
pub(super) struct Failover {
    pub settings: FailoverSettings,
    /// How long this replica's link to its master has been down (0: it is up).
    data_age_ms: u64,
    election: Option<Election>,
    manual: Option<Manual>,
    hand_over: Option<HandOver>,
    /// The last time this node was in a minority (0: never).
    minority_ms: u64,
    /// The cluster state is fail because of that (see the module doc).
    pub fenced: bool,
    /// Why this replica does not fail over, logged once.
    refusal: Option<&'static str>,
}

impl Failover {
    /// A node loaded from nodes.conf at `now_ms` starts as if it just left a minority: it
    /// serves nothing before it hears from a majority and the rejoin delay has passed.
    pub(super) fn loaded(now_ms: u64) -> Failover {
        Failover {
            fenced: true,
            minority_ms: now_ms.max(1),
            ..Failover::default()
        }
    }
}

impl State {
    /// The configuration's failover settings (CONFIG SET may change them).
    pub fn set_failover_settings(&mut self, settings: FailoverSettings) {
        self.failover.settings = settings;
    }

    /// How long this replica's link to its master has been down (0: up).
    pub fn set_data_age(&mut self, age_ms: u64) {
        self.failover.data_age_ms = age_ms;
    }

    /// How often the driver ticks.
    pub fn tick_ms(&self) -> u64 {
        (self.node_timeout_ms / 20).clamp(10, 100)
    }

    /// How often a peer is pinged.
    pub(super) fn ping_period_ms(&self) -> u64 {
        (self.node_timeout_ms / 5).clamp(1, 1_000)
    }

    /// When we last heard from `node` (a node not heard from yet counts from when it was
    /// added or loaded).
    fn heard_ms(node: &Node) -> u64 {
        node.pong_received_ms.max(node.created_ms)
    }

    /// Masters that serve slots: the ones whose votes and failure reports count.
    fn voters(&self) -> Arc<BTreeSet<NodeId>> {
        self.cached(
            |cache| &mut cache.voters,
            || {
                // Owners come in long runs: compare neighbours, collect a few.
                let mut voters = BTreeSet::new();
                let mut last = None;
                for owner in self.owners.iter().flatten() {
                    if last != Some(owner) {
                        voters.insert(*owner);
                        last = Some(owner);
                    }
                }
                Arc::new(voters)
            },
        )
    }

    /// A majority of the voters.
    fn quorum(voters: &BTreeSet<NodeId>) -> usize {
        voters.len() / 2 + 1
    }

    /// The cluster state is fail because this node is in a minority (see the module doc).
    #[cfg(test)]
    pub fn is_fenced(&self) -> bool {
        self.failover.fenced
    }

    /// Whether this node does not count `id` as a live master: FAIL, or we voted for its
    /// replacement and have not seen that election lost.
    pub(super) fn disputes(&self, id: &NodeId) -> bool {
        self.nodes
            .get(id)
            .is_some_and(|n| n.has(flags::FAIL) || n.replaced.is_some())
    }

    /// A header from the replica we voted for: still a replica after the election's time
    /// (of that master, or of another it moved to), it lost, and the master it would have
    /// replaced counts again.
    pub(super) fn settle_vote(&mut self, header: &Header, now_ms: u64) {
        let auth_timeout_ms = (self.node_timeout_ms * 2).max(2_000);
        if header.primary.is_none() || header.flags & flags::SLAVE == 0 {
            return;
        }
        for node in self.nodes.values_mut() {
            let lost = node.replaced.is_some_and(|(candidate, at)| {
                candidate == header.sender && now_ms.saturating_sub(at) > auth_timeout_ms
            });
            if lost {
                node.replaced = None;
            }
        }
    }

    /// Writes are held back for a manual failover (the driver pauses clients).
    pub fn writes_paused(&self) -> bool {
        self.failover.hand_over.is_some()
    }

    /// The periodic part: suspicion, failure, fencing, elections.
    pub(super) fn failover_tick(&mut self, now_ms: u64) {
        self.mark_suspects(now_ms);
        self.decide_failures(now_ms);
        self.clear_failures(now_ms);
        self.fence(now_ms);
        self.manual_tick(now_ms);
        self.admit_replicas();
        self.election_step(now_ms);
        self.migrate_to_orphan(now_ms);
    }

    /// Replicas of `master` that are not suspected.
    fn working_replicas(&self, master: NodeId) -> impl Iterator<Item = &Node> + '_ {
        self.nodes.values().filter(move |n| {
            let ok = !n.has(flags::FAIL | flags::PFAIL);
            n.has(flags::SLAVE) && n.primary == Some(master) && ok
        })
    }

    /// Replica migration, as Redis's: a master serving slots that had replicas and has had
    /// no working one for [`ORPHAN_MS`] gets one from the master with the most, if that
    /// master keeps more than `cluster-migration-barrier`. Of that master's replicas, the one
    /// with the smallest ID moves, so that one moves.
    fn migrate_to_orphan(&mut self, now_ms: u64) {
        let voters = self.voters();
        let orphans: Vec<(NodeId, bool)> = voters
            .iter()
            .filter_map(|id| self.nodes.get(id))
            .filter(|n| n.is_master() && !n.has(flags::FAIL))
            .map(|n| (n.id, self.working_replicas(n.id).next().is_none()))
            .collect();
        let mut target = None;
        for (id, orphaned) in orphans {
            let Some(node) = self.nodes.get_mut(&id) else {
                continue;
            };
            match (orphaned, node.orphaned_ms) {
                (false, _) => {
                    node.orphaned_ms = 0;
                    node.had_replica = true;
                }
                (true, 0) => node.orphaned_ms = now_ms,
                (true, since) if node.had_replica && now_ms.saturating_sub(since) > ORPHAN_MS => {
                    target.get_or_insert(id);
                }
                (true, _) => {}
            }
        }
        let me = self.myself();
        let settings = &self.failover.settings;
        let (Some(target), Some(primary)) = (target, me.primary) else {
            return;
        };
        if !settings.allow_replica_migration || self.failover.fenced || me.is_master() {
            return;
        }
        let ours: Vec<NodeId> = self.working_replicas(primary).map(|n| n.id).collect();
        let most = voters
            .iter()
            .map(|m| self.working_replicas(*m).count())
            .max()
            .unwrap_or(0);
        let moves = ours.iter().min() == Some(&self.myself);
        if ours.len() <= settings.migration_barrier || ours.len() < most || !moves {
            return;
        }
        if !self.leaves_nothing_behind(primary, now_ms) {
            return;
        }
        tracing::info!("Migrating to orphaned master {target}");
        self.become_replica(target);
    }

    /// Whether this replica may leave its master's shard without taking writes away that
    /// its acknowledgement counted: a sibling heard from recently has all of them. (Redis
    /// moves regardless; a failover in its old shard could then elect a replica without
    /// them.) Under a steady write load that waits for a moment the sibling catches up.
    fn leaves_nothing_behind(&self, primary: NodeId, now_ms: u64) -> bool {
        let recent_ms = self.node_timeout_ms / 2;
        let counted = self.counted_by_primary(&primary);
        self.working_replicas(primary).any(|n| {
            let heard = n.seen_ms != 0 && now_ms.saturating_sub(n.seen_ms) <= recent_ms;
            let caught_up = heard && n.repl_offset >= self.repl_offset;
            n.id != self.myself && counted.contains(&n.id) && caught_up
        })
    }

    /// PFAIL for a node not heard from for the node timeout.
    fn mark_suspects(&mut self, now_ms: u64) {
        let timeout_ms = self.node_timeout_ms;
        let myself = self.myself;
        let mut changed = false;
        for node in self.nodes.values_mut() {
            if node.id == myself || node.has(flags::HANDSHAKE | flags::PFAIL | flags::FAIL) {
                continue;
            }
            if now_ms.saturating_sub(Self::heard_ms(node)) > timeout_ms {
                tracing::debug!("*** NODE {} possibly failing", node.id);
                node.flags |= flags::PFAIL;
                changed = true;
            }
        }
        if changed {
            self.changed = true;
            // Tell the others at once: their reports make the FAIL.
            self.ping_all();
        }
    }

    /// Pings every linked node now.
    fn ping_all(&mut self) {
        self.ping_where(|_| true);
    }

    /// Pings the linked nodes `pick` chooses now.
    pub(super) fn ping_where(&mut self, pick: impl Fn(&Node) -> bool) {
        let targets: Vec<(NodeId, std::net::SocketAddr)> = self
            .nodes
            .values()
            .filter(|n| n.id != self.myself && n.link_up && !n.has(flags::HANDSHAKE))
            .filter(|n| pick(n))
            .filter_map(|n| Some((n.id, n.bus_addr()?)))
            .collect();
        for (id, to) in targets {
            let message = self.ping_message(&self.nodes[&id]);
            self.outbox.push(Outgoing { to, message });
        }
    }

    /// FAIL for a suspected node that a majority of masters suspect too (reports younger
    /// than twice the node timeout), told to every node.
    pub(super) fn decide_failures(&mut self, now_ms: u64) {
        let voters = self.voters();
        let quorum = Self::quorum(&voters);
        let validity_ms = self.node_timeout_ms * 2;
        let me_votes = voters.contains(&self.myself);
        let mut failed = Vec::new();
        for node in self.nodes.values_mut() {
            node.fail_reports
                .retain(|(_, at)| now_ms.saturating_sub(*at) <= validity_ms);
            if !node.has(flags::PFAIL) || node.has(flags::FAIL) {
                continue;
            }
            let reports = node
                .fail_reports
                .iter()
                .filter(|(by, _)| voters.contains(by))
                .count();
            if reports + me_votes as usize >= quorum {
                node.flags = (node.flags | flags::FAIL) & !flags::PFAIL;
                node.fail_time_ms = now_ms;
                failed.push(node.id);
            }
        }
        for id in failed {
            tracing::info!("Marking node {id} as failing (quorum reached).");
            self.touch();
            let sender = self.myself;
            self.broadcast(Message::Fail { sender, id }, false);
        }
    }

    /// A FAIL is lifted when the node is reachable again and is a replica or a master
    /// without slots, or a master whose slots nobody took over for twice the node timeout.
    fn clear_failures(&mut self, now_ms: u64) {
        let serving = self.voters();
        let timeout_ms = self.node_timeout_ms;
        let mut cleared = Vec::new();
        for node in self.nodes.values_mut() {
            if !node.has(flags::FAIL) || now_ms.saturating_sub(Self::heard_ms(node)) > timeout_ms {
                continue;
            }
            let undo = !node.is_master()
                || !serving.contains(&node.id)
                || now_ms.saturating_sub(node.fail_time_ms) > timeout_ms * 2;
            if undo {
                node.flags &= !flags::FAIL;
                cleared.push(node.id);
            }
        }
        for id in cleared {
            tracing::info!("Clear FAIL state for node {id}: it is reachable again.");
            self.touch();
        }
    }

    /// Fencing (see the module doc).
    fn fence(&mut self, now_ms: u64) {
        let voters = self.voters();
        let recent_ms = self.node_timeout_ms / 2;
        let reachable = voters
            .iter()
            .filter(|id| {
                **id == self.myself
                    || self.nodes.get(id).is_some_and(|n| {
                        // An owner we know as a replica now lost its slots to a master we
                        // have not heard of: it counts in the size, not as reachable.
                        let recent = now_ms.saturating_sub(Self::heard_ms(n)) <= recent_ms;
                        let disputes_us = n.disputed_me_ms != 0
                            && now_ms.saturating_sub(n.disputed_me_ms) <= recent_ms;
                        n.is_master() && !self.disputes(&n.id) && !disputes_us && recent
                    })
            })
            .count();
        let minority = !voters.is_empty() && reachable < Self::quorum(&voters);
        if minority {
            self.failover.minority_ms = now_ms;
        }
        let rejoin_ms = self.node_timeout_ms.clamp(500, 5_000);
        // Alone with its slots, a master has nobody to learn a replacement from.
        let alone = voters.iter().all(|id| *id == self.myself);
        let rejoining = self.myself().is_master()
            && !alone
            && self.failover.minority_ms != 0
            && now_ms < self.failover.minority_ms + rejoin_ms;
        let fenced = minority || rejoining;
        if fenced != self.failover.fenced {
            match fenced {
                true => tracing::warn!(
                    "Cluster state changed: fail (this node reaches {reachable} of {} masters)",
                    voters.len()
                ),
                false => {
                    tracing::info!("Cluster state changed: ok (a majority of masters is reachable)")
                }
            }
            self.failover.fenced = fenced;
            self.changed = true;
        }
    }

    /// Its rank among its master's replicas: how many have a greater offset.
    fn rank(&self, primary: &NodeId) -> usize {
        self.nodes
            .values()
            .filter(|n| n.primary.as_ref() == Some(primary) && n.id != self.myself)
            .filter(|n| !n.has(flags::FAIL) && n.repl_offset > self.repl_offset)
            .count()
    }

    /// The unit of election delays: a replica of rank r starts between 1+2r and 2+2r units
    /// after its master's FAIL. The first unit gives the FAIL time to reach every master
    /// (one bus hop from the node that decided it) before the vote requests do.
    fn election_unit_ms(&self) -> u64 {
        (self.node_timeout_ms / 20).clamp(10, 500)
    }

    /// Why this replica may not start an election now (`None`: it may).
    fn election_refusal(&self, primary: &Node, manual: bool, now_ms: u64) -> Option<&'static str> {
        if !primary.has(flags::FAIL) && !manual {
            return Some("");
        }
        if !self.owners.contains(&Some(primary.id)) {
            return Some("");
        }
        if manual {
            return None;
        }
        let settings = &self.failover.settings;
        if settings.no_failover {
            return Some("failover is disabled for this replica (cluster-replica-no-failover or replica-priority 0)");
        }
        let age_ms = self
            .failover
            .data_age_ms
            .saturating_sub(self.node_timeout_ms);
        let max_ms = settings.repl_ping_period_ms + self.node_timeout_ms * settings.validity_factor;
        if settings.validity_factor > 0 && age_ms > max_ms {
            return Some("Disconnected from master for longer than allowed. Please check the 'cluster-replica-validity-factor' configuration option.");
        }
        if !self.is_counted() {
            return Some("my master has not counted me among its replicas yet");
        }
        if !self.holds_every_majority_write(&primary.id, now_ms) {
            return Some("waiting for the offsets of enough replicas of the same master");
        }
        None
    }

    /// Whether this replica is sure to hold every write its master acknowledged with WAIT to
    /// a majority of its shard (the master and n replicas): such a write is on at least
    /// k = (n+1)/2 replicas, so this one must have heard recently from more than n - k of
    /// them (itself included) and have no smaller offset than any. With one replica that is
    /// itself; with two, the other one too. Redis elects by rank alone and may lose them.
    fn holds_every_majority_write(&self, primary: &NodeId, now_ms: u64) -> bool {
        let recent_ms = self.node_timeout_ms / 2;
        let siblings: Vec<&Node> = self
            .nodes
            .values()
            .filter(|n| n.id != self.myself && n.has(flags::SLAVE) && n.primary == Some(*primary))
            .collect();
        // Heard: a message told its offset (a node loaded from nodes.conf told nothing), and
        // its master counts it (an uncounted one may lack what a counted one acknowledged).
        let counted = self.counted_by_primary(primary);
        let heard: Vec<&&Node> = siblings
            .iter()
            .filter(|s| s.seen_ms != 0 && now_ms.saturating_sub(s.seen_ms) <= recent_ms)
            .filter(|s| counted.contains(&s.id))
            .collect();
        if heard.iter().any(|s| s.repl_offset > self.repl_offset) {
            return false;
        }
        let n = siblings.len() + 1;
        let k = n.div_ceil(2);
        heard.len() + 1 > n - k
    }

    /// A replica's election: scheduled when its master fails, vote requests sent when the
    /// delay has passed, won with a majority of the masters' votes.
    pub(super) fn election_step(&mut self, now_ms: u64) {
        let me = self.myself();
        let Some(primary) = me.primary.filter(|_| !me.is_master()) else {
            self.failover.election = None;
            return;
        };
        if self
            .failover
            .election
            .as_ref()
            .is_some_and(|e| e.primary != primary)
        {
            self.failover.election = None;
        }
        let Some(primary_node) = self.nodes.get(&primary) else {
            return;
        };
        let manual = self.failover.manual.as_ref().is_some_and(|m| m.ready);
        match self.election_refusal(primary_node, manual, now_ms) {
            None => self.failover.refusal = None,
            Some(why) => {
                if !why.is_empty() && self.failover.refusal != Some(why) {
                    tracing::warn!("Currently unable to failover: {why}");
                }
                self.failover.refusal = Some(why);
                return;
            }
        }
        let auth_timeout_ms = (self.node_timeout_ms * 2).max(2_000);
        self.schedule_election(primary, manual, auth_timeout_ms * 2, now_ms);
        let Some(election) = self.failover.election.as_ref() else {
            return;
        };
        if now_ms < election.start_ms || now_ms - election.start_ms > auth_timeout_ms {
            return;
        }
        match election.epoch {
            None => self.request_votes(election.force),
            Some(epoch) if election.votes.len() >= Self::quorum(&self.voters()) => {
                tracing::info!("Failover election won: I'm the new master.");
                self.take_over(epoch);
            }
            Some(_) => {}
        }
    }

    /// A new election when none is running or the last one is older than the retry time;
    /// the delay grows with the rank until the requests went out.
    fn schedule_election(&mut self, primary: NodeId, manual: bool, retry_ms: u64, now_ms: u64) {
        let unit_ms = self.election_unit_ms();
        let rank = if manual { 0 } else { self.rank(&primary) };
        match self.failover.election.as_mut() {
            Some(e) if now_ms.saturating_sub(e.start_ms) <= retry_ms && (e.force || !manual) => {
                if e.epoch.is_none() && !e.force && rank > e.rank {
                    e.start_ms += (rank - e.rank) as u64 * 2 * unit_ms;
                    e.rank = rank;
                }
            }
            _ => {
                let delay_ms = match manual {
                    true => 0,
                    false => unit_ms + fastrand::u64(0..=unit_ms) + rank as u64 * 2 * unit_ms,
                };
                tracing::info!(
                    "Start of election delayed for {delay_ms} milliseconds (rank #{rank}, offset {}).",
                    self.repl_offset
                );
                self.failover.election = Some(Election {
                    primary,
                    start_ms: now_ms + delay_ms,
                    rank,
                    epoch: None,
                    votes: BTreeSet::new(),
                    force: manual,
                });
            }
        }
    }

    /// Takes a new epoch and asks every master for its vote (the epoch is saved before the
    /// requests leave: the driver writes nodes.conf before it sends).
    fn request_votes(&mut self, force: bool) {
        self.current_epoch.0 += 1;
        let epoch = self.current_epoch;
        if let Some(e) = self.failover.election.as_mut() {
            e.epoch = Some(epoch);
        }
        self.dirty = true;
        tracing::info!("Starting a failover election for epoch {epoch}.");
        let header = self.header();
        self.broadcast(Message::AuthRequest { header, force }, true);
    }

    /// A master's answer to a vote request (the request's header was absorbed, so our
    /// current epoch is at least its). The vote is saved before it is sent.
    pub(super) fn vote(&mut self, header: &Header, force: bool, now_ms: u64) -> Option<Message> {
        if !self.myself().is_master() || !self.owners.contains(&Some(self.myself)) {
            return None;
        }
        let sender = header.sender;
        let refuse = |why: String| {
            tracing::info!("Failover auth denied to {sender}: {why}");
            None
        };
        if header.current_epoch < self.current_epoch {
            return refuse(format!(
                "reqEpoch ({}) < curEpoch({})",
                header.current_epoch, self.current_epoch
            ));
        }
        if self.last_vote_epoch == self.current_epoch {
            return refuse(format!("already voted for epoch {}", self.current_epoch));
        }
        let primary = match header.primary.and_then(|p| self.nodes.get(&p)) {
            Some(p) if header.flags & flags::SLAVE != 0 => p,
            _ => return refuse("it is not a replica of a known master".into()),
        };
        if !primary.has(flags::FAIL) && !force {
            return refuse("its master is up".into());
        }
        // A FAIL outlives the failure (for twice the node timeout): a master we hear from
        // again may be serving, and a second one would take writes beside it.
        if !force && now_ms.saturating_sub(primary.seen_ms) <= self.node_timeout_ms / 2 {
            return refuse("its master is reachable from here".into());
        }
        let recent_ms = self.node_timeout_ms * 2;
        if primary.voted_ms != 0 && now_ms.saturating_sub(primary.voted_ms) < recent_ms {
            return refuse(format!(
                "can't vote for a replica of {} this soon after the last vote",
                primary.id
            ));
        }
        for slot in header.slots.iter() {
            let owner_epoch = self.owner_epoch(slot);
            if owner_epoch > Some(header.config_epoch) {
                return refuse(format!(
                    "slot {slot} has a newer owner (epoch {} > {})",
                    owner_epoch.unwrap_or_default(),
                    header.config_epoch
                ));
            }
        }
        let primary = primary.id;
        self.last_vote_epoch = self.current_epoch;
        if let Some(p) = self.nodes.get_mut(&primary) {
            p.voted_ms = now_ms;
            p.replaced = Some((sender, now_ms));
        }
        self.dirty = true;
        tracing::info!(
            "Failover auth granted to {sender} for epoch {}",
            self.current_epoch
        );
        Some(Message::AuthAck {
            header: self.header(),
        })
    }

    fn owner_epoch(&self, slot: SlotId) -> Option<Epoch> {
        let owner = self.owners[slot.index()]?;
        self.nodes.get(&owner).map(|n| n.config_epoch)
    }

    /// A vote: counted when it comes from a master serving slots, for our election's epoch.
    pub(super) fn count_vote(&mut self, header: &Header, now_ms: u64) {
        let voter = self.nodes.get(&header.sender);
        let serving =
            voter.is_some_and(|n| n.is_master()) && self.owners.contains(&Some(header.sender));
        let Some(election) = self.failover.election.as_mut() else {
            return;
        };
        if serving && election.epoch.is_some_and(|e| header.current_epoch >= e) {
            election.votes.insert(header.sender);
            self.election_step(now_ms);
        }
    }

    /// This replica takes its master's slots with config epoch `epoch` and tells everyone.
    fn take_over(&mut self, epoch: Epoch) {
        let Some(old) = self.myself().primary else {
            return;
        };
        self.become_master();
        self.me_mut().config_epoch = epoch;
        let myself = Some(self.myself);
        for owner in self.owners.iter_mut().filter(|o| **o == Some(old)) {
            *owner = myself;
        }
        self.failover.election = None;
        self.failover.manual = None;
        self.touch();
        tracing::info!("configEpoch set to {epoch} after successful failover");
        let header = self.header();
        let message = Message::Pong {
            header,
            gossip: Vec::new(),
        };
        self.broadcast(message, false);
    }

    /// `message` to every node with an address (only masters: `masters_only`).
    fn broadcast(&mut self, message: Message, masters_only: bool) {
        let targets: Vec<std::net::SocketAddr> = self
            .nodes
            .values()
            .filter(|n| n.id != self.myself && !n.has(flags::HANDSHAKE | flags::NOADDR))
            .filter(|n| !masters_only || n.is_master())
            .filter_map(Node::bus_addr)
            .collect();
        for to in targets {
            self.outbox.push(Outgoing {
                to,
                message: message.clone(),
            });
        }
    }

    /// CLUSTER FAILOVER [FORCE|TAKEOVER] on a replica.
    pub fn manual_failover(&mut self, kind: ManualKind, now_ms: u64) -> Result<(), String> {
        let me = self.myself();
        if me.is_master() {
            return Err("You should send CLUSTER FAILOVER to a replica".into());
        }
        let Some(primary) = me.primary.and_then(|p| self.nodes.get(&p)) else {
            return Err("I'm a replica but my master is unknown to me".into());
        };
        let down = primary.has(flags::FAIL | flags::PFAIL) || !primary.link_up;
        if kind == ManualKind::Default && down {
            return Err("Master is down or failed, please use CLUSTER FAILOVER FORCE".into());
        }
        let primary_addr = primary.bus_addr();
        self.failover.manual = Some(Manual {
            until_ms: now_ms + MANUAL_TIMEOUT_MS,
            primary_offset: None,
            ready: kind == ManualKind::Force,
        });
        match kind {
            ManualKind::Takeover => {
                tracing::info!("Taking over the master (user request).");
                self.current_epoch.0 += 1;
                let epoch = self.current_epoch;
                self.take_over(epoch);
            }
            ManualKind::Force => {
                tracing::info!("Forced failover user request accepted.");
                self.election_step(now_ms);
            }
            ManualKind::Default => {
                tracing::info!("Manual failover user request accepted.");
                if let Some(to) = primary_addr {
                    let header = self.header();
                    self.outbox.push(Outgoing {
                        to,
                        message: Message::MfStart { header },
                    });
                }
            }
        }
        Ok(())
    }

    /// A replica of ours asks for a manual failover: writes stop (the driver pauses
    /// clients), and the final offset is told to it from the next tick on.
    pub(super) fn start_hand_over(&mut self, header: &Header, now_ms: u64) {
        if !self.myself().is_master() || header.primary != Some(self.myself) {
            return;
        }
        tracing::info!("Manual failover requested by replica {}.", header.sender);
        self.failover.hand_over = Some(HandOver {
            replica: header.sender,
            until_ms: now_ms + MANUAL_TIMEOUT_MS,
            tell_from_ms: now_ms + self.tick_ms(),
            telling: false,
        });
    }

    /// Whether this master's header says it is paused for a manual failover.
    pub(super) fn paused(&self) -> bool {
        self.failover.hand_over.as_ref().is_some_and(|h| h.telling)
    }

    /// A ping from our master: during a manual failover, its paused offset.
    pub(super) fn note_primary_offset(&mut self, header: &Header) {
        let ours = self.myself().primary == Some(header.sender);
        if let Some(manual) = self
            .failover
            .manual
            .as_mut()
            .filter(|_| ours && header.paused)
        {
            manual.primary_offset = Some(header.repl_offset);
        }
    }

    /// Manual failover timers; a replica that has applied its paused master's whole log may
    /// start its election; a master pings the replica taking over every tick.
    fn manual_tick(&mut self, now_ms: u64) {
        if self
            .failover
            .manual
            .as_ref()
            .is_some_and(|m| now_ms > m.until_ms)
        {
            tracing::warn!("Manual failover timed out.");
            self.failover.manual = None;
        }
        let master = self.myself().is_master();
        if self
            .failover
            .hand_over
            .as_ref()
            .is_some_and(|h| now_ms > h.until_ms || !master)
        {
            tracing::info!("Manual failover ended: clients unpaused.");
            self.failover.hand_over = None;
        }
        let offset = self.repl_offset;
        if let Some(manual) = self.failover.manual.as_mut() {
            if !manual.ready && manual.primary_offset == Some(offset) {
                tracing::info!(
                    "All master replication stream processed, manual failover can start."
                );
                manual.ready = true;
            }
        }
        if let Some(h) = self.failover.hand_over.as_mut() {
            h.telling |= now_ms >= h.tell_from_ms;
        }
        let replica = self.failover.hand_over.as_ref().map(|h| h.replica);
        let to = replica
            .and_then(|r| self.nodes.get(&r))
            .filter(|_| self.paused());
        if let Some(node) = to {
            if let Some(addr) = node.bus_addr() {
                let message = self.ping_message(node);
                self.outbox.push(Outgoing { to: addr, message });
            }
        }
    }

    /// A claim took slots from us (or from our master): `new_owner` took `taken` of them
    /// and claims `claimed` in all. With none left, we follow the new owner, as Redis
    /// does: it is our replacement after a failover, or took our last slot by a reshard.
    pub(super) fn follow_if_emptied(&mut self, new_owner: NodeId, taken: usize, claimed: usize) {
        let me = self.myself();
        let current = match me.is_master() {
            true => self.myself,
            false => match me.primary {
                Some(p) => p,
                None => return,
            },
        };
        let emptied = taken > 0 && !self.owners.contains(&Some(current));
        let allowed = self.failover.settings.allow_replica_migration || taken == claimed;
        if !emptied || !allowed || new_owner == self.myself {
            return;
        }
        tracing::warn!(
            "Configuration change detected. Reconfiguring myself as a replica of {new_owner}"
        );
        // An election, a manual failover or a hand-over in progress end with the role.
        self.failover.election = None;
        self.failover.manual = None;
        self.failover.hand_over = None;
        self.become_replica(new_owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::slots::SlotSet;
    use std::net::SocketAddr;

    const TIMEOUT_MS: u64 = 1_000;

    fn slots(range: std::ops::Range<u16>) -> SlotSet {
        let mut set = SlotSet::default();
        range.for_each(|s| set.insert(SlotId::new(s).unwrap()));
        set
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// A node known to `state`, serving `served`.
    fn add(state: &mut State, flags: u16, primary: Option<NodeId>, served: &SlotSet) -> NodeId {
        let id = NodeId::random();
        let mut node = Node::new(id, flags, 0);
        (node.ip, node.port, node.cport) =
            ("127.0.0.1".into(), 7000, 17000 + state.nodes.len() as u16);
        node.primary = primary;
        node.config_epoch = Epoch(2);
        state.nodes.insert(id, node);
        for slot in served.iter() {
            state.owners[slot.index()] = Some(id);
        }
        id
    }

    /// Master `a` (this state, slots 0-99, epoch 5) knowing master `m` (100-199, epoch 2)
    /// and `m`'s replica `r`.
    fn view() -> (State, NodeId, NodeId) {
        let mut a = State::new(NodeId::random(), 7000, 17000, TIMEOUT_MS, 0);
        a.add_slots(&slots(0..100).iter().collect::<Vec<_>>())
            .unwrap();
        a.current_epoch = Epoch(5);
        a.me_mut().config_epoch = Epoch(5);
        let m = add(&mut a, flags::MASTER, None, &slots(100..200));
        let r = add(&mut a, flags::SLAVE, Some(m), &SlotSet::default());
        (a, m, r)
    }

    fn header(sender: NodeId, flags: u16, primary: Option<NodeId>, epoch: u64) -> Header {
        Header {
            current_epoch: Epoch(epoch),
            config_epoch: Epoch(2),
            flags,
            slots: slots(100..200),
            port: 7000,
            cport: 17002,
            ..Header::for_test(sender, primary)
        }
    }

    fn request(r: NodeId, m: NodeId, epoch: u64, force: bool) -> Message {
        let header = header(r, flags::SLAVE, Some(m), epoch);
        Message::AuthRequest { header, force }
    }

    fn granted(reply: Option<Message>) -> bool {
        matches!(reply, Some(Message::AuthAck { .. }))
    }

    #[test]
    fn a_master_votes_once_per_epoch_and_only_for_a_replica_of_a_failed_master() {
        let (mut a, m, r) = view();
        let (peer, local) = (addr(17002), addr(17000));
        let now = 10_000;
        assert!(!granted(a.handle_message(
            request(r, m, 6, false),
            peer,
            local,
            now
        )));
        a.nodes.get_mut(&m).unwrap().flags |= flags::FAIL;
        assert!(!granted(a.handle_message(
            request(r, m, 4, false),
            peer,
            local,
            now
        )));
        assert!(granted(a.handle_message(
            request(r, m, 7, false),
            peer,
            local,
            now
        )));
        assert_eq!(a.last_vote_epoch, Epoch(7));
        // Replayed, or another replica of the same master in the same epoch: no second vote.
        assert!(!granted(a.handle_message(
            request(r, m, 7, false),
            peer,
            local,
            now
        )));
        // A later epoch within twice the node timeout: no vote for that master either.
        let soon = now + TIMEOUT_MS;
        assert!(!granted(a.handle_message(
            request(r, m, 8, false),
            peer,
            local,
            soon
        )));
        let later = now + 3 * TIMEOUT_MS;
        assert!(granted(a.handle_message(
            request(r, m, 9, false),
            peer,
            local,
            later
        )));
        // A claim on our own slots (epoch 5) with the master's older epoch: refused.
        let mut claim = header(r, flags::SLAVE, Some(m), 12);
        claim.slots = slots(0..10);
        let message = Message::AuthRequest {
            header: claim,
            force: true,
        };
        assert!(!granted(a.handle_message(message, peer, local, later * 2)));
    }

    #[test]
    fn forged_votes_and_failure_notices_are_ignored() {
        // `a` is now a replica of `m`, in an election for epoch 6 that needs 2 of 2 voters.
        let (mut a, m, _) = view();
        let me = a.myself_id();
        let voter = add(&mut a, flags::MASTER, None, &slots(0..100));
        a.me_mut().flags = flags::MYSELF | flags::SLAVE;
        a.me_mut().primary = Some(m);
        a.failover.election = Some(Election {
            primary: m,
            start_ms: 0,
            rank: 0,
            epoch: Some(Epoch(6)),
            votes: BTreeSet::new(),
            force: false,
        });
        let (peer, local) = (addr(17009), addr(17000));
        let ack = |sender, flags, epoch| Message::AuthAck {
            header: Header {
                slots: SlotSet::default(),
                ..header(sender, flags, None, epoch)
            },
        };
        // From an unknown node, from a replica, for an older epoch: not counted.
        a.handle_message(ack(NodeId::random(), flags::MASTER, 6), peer, local, 1);
        a.handle_message(
            ack(
                a.nodes
                    .keys()
                    .copied()
                    .find(|id| *id != me && *id != m && *id != voter)
                    .unwrap(),
                flags::SLAVE,
                6,
            ),
            peer,
            local,
            1,
        );
        a.handle_message(ack(voter, flags::MASTER, 5), peer, local, 1);
        assert!(a.failover.election.as_ref().unwrap().votes.is_empty());
        a.handle_message(ack(voter, flags::MASTER, 6), peer, local, 1);
        assert_eq!(a.failover.election.as_ref().unwrap().votes.len(), 1);
        // A FAIL about our master from a node we do not know changes nothing.
        let forged = Message::Fail {
            sender: NodeId::random(),
            id: m,
        };
        a.handle_message(forged, peer, local, 1);
        assert!(!a.nodes[&m].has(flags::FAIL));
    }

    #[test]
    fn a_replica_takes_its_failed_masters_slots_with_a_majority_of_votes() {
        let (mut a, m, r) = view();
        // Seen from `r`: masters `a` (0-99) and `m` (100-199) vote; `m` has failed.
        let mut replica = State::new(r, 7002, 17002, TIMEOUT_MS, 0);
        let a_id = a.myself_id();
        for (id, node) in &a.nodes {
            if *id != r {
                let mut node = node.clone();
                node.flags &= !flags::MYSELF;
                node.ip = "127.0.0.1".into();
                replica.nodes.insert(*id, node);
            }
        }
        replica.owners = a.owners.clone();
        replica.me_mut().flags = flags::MYSELF | flags::SLAVE;
        replica.me_mut().primary = Some(m);
        // Its master's last header counted it (state/shard.rs).
        let mut counted = header(m, flags::MASTER, None, 5);
        counted.siblings = vec![r];
        let ping = Message::Ping {
            header: counted,
            gossip: Vec::new(),
        };
        replica.handle_message(ping, addr(17001), addr(17002), 1);
        replica.nodes.get_mut(&m).unwrap().flags |= flags::FAIL;
        replica.current_epoch = Epoch(5);
        let now = 50_000;
        replica.handle_tick(now);
        let later = now + TIMEOUT_MS;
        replica.handle_tick(later);
        let requests: Vec<Message> = replica
            .poll_outgoing()
            .into_iter()
            .map(|o| o.message)
            .filter(|m| matches!(m, Message::AuthRequest { .. }))
            .collect();
        assert_eq!(requests.len(), 2, "one request per master");
        a.nodes.get_mut(&m).unwrap().flags |= flags::FAIL;
        let vote = a.handle_message(requests[0].clone(), addr(17002), addr(17000), later);
        assert!(granted(vote.clone()));
        // One vote of two voters is no majority; it needs two.
        replica.handle_message(vote.unwrap(), addr(17000), addr(17002), later);
        assert!(!replica.myself().is_master());
        let mut header = header(m, flags::MASTER, None, 6);
        header.siblings = vec![r];
        let ack = Message::AuthAck { header };
        // The failed master's own vote counts like any voter's (it serves slots).
        replica.handle_message(ack, addr(17001), addr(17002), later);
        assert!(replica.myself().is_master());
        assert_eq!(replica.owner(SlotId::new(150).unwrap()), Some(r));
        assert_eq!(replica.owner(SlotId::new(50).unwrap()), Some(a_id));
        assert_eq!(replica.myself().config_epoch, Epoch(6));
    }
}
