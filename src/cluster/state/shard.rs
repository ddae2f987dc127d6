//! Shard membership: which replicas' acknowledgements a master counts, and which replicas
//! may stand for election.
//!
//! A write acknowledged with WAIT to a majority of its shard survives a failover only if the
//! elected replica has it, so a candidate waits for the offsets of enough of its siblings
//! (failover.rs), which needs it to know them all. Nothing in Redis Cluster agrees on a
//! shard's members: a replica that restarts, or a failed master that rejoins, follows a
//! master unseen by the others. So:
//! - a replica tells, in its header, the other replicas of its master it knows of (a promise
//!   kept in nodes.conf);
//! - a master admits a replica when that replica knows every admitted one and every admitted
//!   one knows it, counts only admitted replicas (WAIT, min-replicas-to-write), and tells
//!   them in its header;
//! - a replica stands for election only if its master's last header counted it.
//!
//! An elected replica therefore knows every replica whose acknowledgement counted.

use super::{flags, Header, Node, NodeId, State};

#[derive(Default)]
pub(super) struct Shard {
    /// A master: the replicas it counts.
    counted: Vec<NodeId>,
    /// A replica: the master whose last header counted it.
    counted_by: Option<NodeId>,
}

impl State {
    /// The other replicas of this replica's master, as it knows them (sorted; none for a
    /// master).
    /// Every header tells it: computed once per configuration generation (roles change it).
    pub fn siblings(&self) -> Vec<NodeId> {
        let me = self.myself();
        let Some(primary) = me.primary.filter(|_| !me.is_master()) else {
            return Vec::new();
        };
        self.cached(
            |cache| &mut cache.siblings,
            || {
                let mine = |n: &&Node| n.has(flags::SLAVE) && n.primary == Some(primary);
                let others = self.nodes.values().filter(|n| n.id != self.myself);
                // In ID order: the node map is ordered.
                others.filter(mine).map(|n| n.id).collect()
            },
        )
    }

    /// What this node's header tells of its shard: a master's counted replicas, a replica's
    /// siblings.
    pub(super) fn members_told(&self) -> Vec<NodeId> {
        match self.myself().is_master() {
            true => self.shard.counted.clone(),
            false => self.siblings(),
        }
    }

    /// A master's replicas whose acknowledgements count.
    pub fn counted_replicas(&self) -> &[NodeId] {
        &self.shard.counted
    }

    /// A master drops from its counted replicas those that no longer follow it, and admits
    /// those that know every counted one and that every counted one knows.
    pub(super) fn admit_replicas(&mut self) {
        let myself = self.myself;
        let mine = |n: &Node| n.has(flags::SLAVE) && n.primary == Some(myself);
        let before = self.shard.counted.clone();
        let mut counted = before.clone();
        match self.myself().is_master() {
            true => counted.retain(|id| self.nodes.get(id).is_some_and(mine)),
            false => counted.clear(),
        }
        let mut waiting: Vec<&Node> = match self.myself().is_master() {
            true => self.nodes.values().filter(|n| mine(n)).collect(),
            false => Vec::new(),
        };
        waiting.retain(|n| !counted.contains(&n.id));
        waiting.sort_by_key(|n| n.id);
        for x in waiting {
            let known = |y: &NodeId| {
                let knows_x = self
                    .nodes
                    .get(y)
                    .is_some_and(|y| y.siblings.contains(&x.id));
                x.siblings.contains(y) && knows_x
            };
            if counted.iter().all(known) {
                counted.push(x.id);
            }
        }
        if counted == before {
            return;
        }
        tracing::info!(
            "Counting the acknowledgements of replicas {counted:?} (each known to the others)"
        );
        // The driver tells replication (not the configuration).
        self.changed = true;
        self.shard.counted = counted.clone();
        // Tell the newly counted at once: until they hear it they may not stand for election,
        // and a master failing right after one joined would leave it unable to.
        self.ping_where(|n| counted.contains(&n.id) && !before.contains(&n.id));
    }

    /// A message from one of our replicas (or one we counted) may change whom we count.
    pub(super) fn admit_if_mine(&mut self, header: &Header) {
        let mine = header.primary == Some(self.myself);
        if mine || self.shard.counted.contains(&header.sender) {
            self.admit_replicas();
        }
    }

    /// A replica reads, in its master's header, whether that master counts it.
    pub(super) fn note_counted(&mut self, header: &Header) {
        let me = self.myself();
        let from_a_master = header.flags & flags::MASTER != 0 && header.primary.is_none();
        if me.primary == Some(header.sender) && !me.is_master() && from_a_master {
            let counted = header.siblings.contains(&self.myself);
            self.shard.counted_by = counted.then_some(header.sender);
        }
    }

    /// A new role: whatever a master told about counting us is void.
    pub(super) fn forget_counted(&mut self) {
        self.shard.counted_by = None;
    }

    /// Whether this replica's master last told it counts it, and it knows every replica that
    /// master told it counts (a stale or reordered header could leave one out of its view).
    pub(super) fn is_counted(&self) -> bool {
        let me = self.myself();
        let Some(primary) = me.primary.filter(|p| self.shard.counted_by == Some(*p)) else {
            return false;
        };
        let siblings = self.siblings();
        self.counted_by_primary(&primary)
            .iter()
            .all(|id| *id == self.myself || siblings.contains(id))
    }

    /// The replicas `primary`'s last header said it counts.
    pub(super) fn counted_by_primary(&self, primary: &NodeId) -> &[NodeId] {
        self.nodes.get(primary).map_or(&[], |p| &p.siblings)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Message;
    use super::*;
    use std::net::SocketAddr;

    fn ping(sender: NodeId, primary: Option<NodeId>, siblings: Vec<NodeId>) -> Message {
        let header = Header {
            siblings,
            ..Header::for_test(sender, primary)
        };
        Message::Ping {
            header,
            gossip: Vec::new(),
        }
    }

    /// A master that knows `replicas` as nodes (not yet as its replicas).
    fn master(replicas: &[NodeId]) -> State {
        let mut state = State::new(NodeId::random(), 7000, 17000, 1_000, 0);
        for id in replicas {
            state.nodes.insert(*id, Node::new(*id, flags::MASTER, 0));
        }
        state
    }

    fn tell(state: &mut State, message: Message) {
        let (peer, local) = (
            SocketAddr::from(([127, 0, 0, 1], 17001)),
            SocketAddr::from(([127, 0, 0, 1], 17000)),
        );
        state.handle_message(message, peer, local, 10);
    }

    #[test]
    fn a_master_counts_a_replica_once_its_other_replicas_know_it() {
        let (x, y) = (NodeId::random(), NodeId::random());
        let mut m = master(&[x, y]);
        let me = m.myself_id();
        // The first replica knows of no other: counted at once.
        tell(&mut m, ping(x, Some(me), vec![]));
        assert_eq!(m.counted_replicas(), [x]);
        // A second one knows the first, but the first does not know it yet.
        tell(&mut m, ping(y, Some(me), vec![x]));
        assert_eq!(m.counted_replicas(), [x]);
        tell(&mut m, ping(x, Some(me), vec![y]));
        assert_eq!(m.counted_replicas(), [x, y]);
        assert!(m.take_changed());
        // Its header tells them; one that follows another master is no longer counted.
        assert_eq!(m.members_told(), [x, y]);
        tell(&mut m, ping(y, Some(NodeId::random()), vec![]));
        assert_eq!(m.counted_replicas(), [x]);
    }

    #[test]
    fn a_replica_knows_whether_its_master_counts_it() {
        let (m, other) = (NodeId::random(), NodeId::random());
        let mut r = master(&[m, other]);
        let me = r.myself_id();
        r.replicate(m, 0).unwrap();
        assert!(!r.is_counted());
        tell(&mut r, ping(other, None, vec![me]));
        assert!(!r.is_counted(), "only its own master's word counts");
        tell(&mut r, ping(m, None, vec![me]));
        assert!(r.is_counted());
        tell(&mut r, ping(m, None, vec![]));
        assert!(!r.is_counted());
    }
}
