//! The routing table: for each slot, whether this node serves it, and where to send a client
//! that asked the wrong node. Built from the state whenever it changes; read by every command
//! without a lock (clients keep a copy and refresh it by version).

use super::state::{flags, OwnerRun, State};
use crate::slot::{SlotId, SLOT_COUNT};
use std::collections::HashMap;

/// No node serves the slot.
const UNSERVED: u16 = u16::MAX;

/// Where keys are served.
pub struct Routes {
    /// `cluster_state:ok`.
    ok: bool,
    myself: u16,
    /// This node is a replica of this node index.
    my_primary: Option<u16>,
    owner: Box<[u16]>,
    /// `ip:port` of each node index.
    addrs: Vec<String>,
    /// The bus address of each node index, where known.
    bus_addrs: Vec<Option<std::net::SocketAddr>>,
    /// Slots this node gives away (ASK), to the node index.
    migrating: HashMap<u16, u16>,
    /// Slots this node takes in (served to ASKING clients).
    importing: HashMap<u16, u16>,
}

/// Why a command is not served here, as Redis's error replies say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    Moved(SlotId, String),
    Ask(SlotId, String),
    CrossSlot,
    TryAgain,
    /// The slot has no owner.
    Unbound,
    Down,
    /// Down, with reads allowed (`cluster-allow-reads-when-down`).
    DownReadOnly,
}

impl Redirect {
    /// The error reply.
    pub fn message(&self) -> String {
        match self {
            Redirect::Moved(slot, addr) => format!("MOVED {slot} {addr}"),
            Redirect::Ask(slot, addr) => format!("ASK {slot} {addr}"),
            Redirect::CrossSlot => "CROSSSLOT Keys in request don't hash to the same slot".into(),
            Redirect::TryAgain => "TRYAGAIN Multiple keys request during rehashing of slot".into(),
            Redirect::Unbound => "CLUSTERDOWN Hash slot not served".into(),
            Redirect::Down => "CLUSTERDOWN The cluster is down".into(),
            Redirect::DownReadOnly => {
                "CLUSTERDOWN The cluster is down and only accepts read commands".into()
            }
        }
    }
}

/// What the router needs to know about a command and its client.
pub struct Query<'a> {
    /// Its keys and their slots.
    pub keys: &'a [(SlotId, &'a [u8])],
    pub write: bool,
    /// The client sent ASKING just before.
    pub asking: bool,
    /// The client sent READONLY (reads from a replica).
    pub readonly: bool,
    pub allow_reads_when_down: bool,
}

impl Routes {
    /// The table for `state`.
    pub fn build(state: &State, runs: &[OwnerRun], require_full_coverage: bool) -> Routes {
        let mut index = HashMap::new();
        let mut addrs = Vec::new();
        let mut bus_addrs = Vec::new();
        for node in state.nodes() {
            index.insert(node.id, addrs.len() as u16);
            addrs.push(format!("{}:{}", node.ip, node.port));
            bus_addrs.push(node.bus_addr());
        }
        let myself = index[&state.myself_id()];
        let mut owner = vec![UNSERVED; SLOT_COUNT].into_boxed_slice();
        for (id, range) in runs {
            owner[range.clone()].fill(index.get(id).copied().unwrap_or(UNSERVED));
        }
        let me = state.myself();
        let my_primary = me
            .primary
            .filter(|_| me.has(flags::SLAVE))
            .and_then(|p| index.get(&p).copied());
        let map = |m: &std::collections::BTreeMap<u16, super::NodeId>| {
            m.iter()
                .filter_map(|(slot, id)| Some((*slot, *index.get(id)?)))
                .collect()
        };
        Routes {
            ok: state.is_ok(require_full_coverage, runs),
            myself,
            my_primary,
            owner,
            addrs,
            bus_addrs,
            migrating: map(state.migrating()),
            importing: map(state.importing()),
        }
    }

    /// The bus address of the node a MOVED or ASK for `slot` names by `addr` (`ip:port`):
    /// the slot's owner or migration target when that is the node, else the one node with
    /// that address (embedded nodes without a RESP port all show port 0).
    pub fn bus_addr_of(&self, slot: SlotId, addr: &str) -> Option<std::net::SocketAddr> {
        let by_slot = [
            Some(self.owner[slot.index()]),
            self.migrating.get(&slot.get()).copied(),
        ];
        let known = by_slot
            .into_iter()
            .flatten()
            .find(|&i| i != UNSERVED && self.addrs[usize::from(i)] == addr)
            .map(usize::from);
        let index = known.or_else(|| {
            let mut named = self.addrs.iter().enumerate().filter(|(_, a)| *a == addr);
            match (named.next(), named.next()) {
                (Some((i, _)), None) => Some(i),
                _ => None,
            }
        })?;
        self.bus_addrs[index]
    }

    /// Whether a command with `query` is served here; `exists` tells whether a key is here
    /// (asked only for slots being migrated or imported). Redis's rules, in Redis's order.
    pub fn route(
        &self,
        query: &Query<'_>,
        mut exists: impl FnMut(&[u8]) -> bool,
    ) -> Result<(), Redirect> {
        let Some(&(slot, _)) = query.keys.first() else {
            return Ok(());
        };
        if query.keys.iter().any(|(s, _)| *s != slot) {
            return Err(Redirect::CrossSlot);
        }
        let owner = self.owner[slot.index()];
        if owner == UNSERVED {
            return Err(Redirect::Unbound);
        }
        if !self.ok {
            if !query.allow_reads_when_down {
                return Err(Redirect::Down);
            }
            if query.write {
                return Err(Redirect::DownReadOnly);
            }
        }
        let migrating_to = self
            .migrating
            .get(&slot.get())
            .filter(|_| owner == self.myself);
        let importing = self.importing.contains_key(&slot.get());
        if migrating_to.is_some() || importing {
            let missing = query.keys.iter().filter(|(_, k)| !exists(k)).count();
            if let Some(&to) = migrating_to.filter(|_| missing > 0) {
                return Err(Redirect::Ask(slot, self.addrs[usize::from(to)].clone()));
            }
            if importing && query.asking {
                if query.keys.len() > 1 && missing > 0 {
                    return Err(Redirect::TryAgain);
                }
                return Ok(());
            }
        }
        if query.readonly && !query.write && self.my_primary == Some(owner) {
            return Ok(());
        }
        if owner != self.myself {
            return Err(Redirect::Moved(
                slot,
                self.addrs[usize::from(owner)].clone(),
            ));
        }
        Ok(())
    }
}
