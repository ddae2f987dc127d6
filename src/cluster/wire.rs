//! Cluster bus messages, framed by [`crate::transport::frame`]. Every field comes from a
//! peer: the state machine checks IDs and bounds what it takes from gossip.

use super::ids::{Epoch, NodeId};
use super::slots::SlotSet;
use serde::{Deserialize, Serialize};

/// What every ping-like message says about its sender.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Who sends it.
    pub sender: NodeId,
    /// The sender's current epoch.
    pub current_epoch: Epoch,
    /// Its own config epoch, or its master's for a replica.
    pub config_epoch: Epoch,
    /// MASTER, SLAVE, NOFAILOVER (the flag bits of `CLUSTER NODES`).
    pub flags: u16,
    /// The master it replicates, if it is a replica.
    pub primary: Option<NodeId>,
    /// The slots it serves (its master's, for a replica).
    pub slots: SlotSet,
    /// The IP it announces (`cluster-announce-ip`); `None`: the address the message came
    /// from.
    pub ip: Option<String>,
    /// Its RESP port and bus port (its IP is the address the message came from).
    pub port: u16,
    /// Its bus port.
    pub cport: u16,
    /// Its replication offset.
    pub repl_offset: u64,
    /// A master in a manual failover: it holds its clients' writes back, so `repl_offset`
    /// is final and its replica may take over once it has applied that much.
    pub paused: bool,
    /// The sender does not count the receiver as a live master: it has it as FAIL, or voted
    /// to replace it. A master does not count such a node toward its majority (fencing).
    pub disputed: bool,
    /// Its shard as it knows it. A replica: the other replicas of its master it knows of. A
    /// master: the replicas whose acknowledgements it counts (WAIT), each known to all the
    /// others, because a replica elected without knowing of another could lose the writes
    /// only that one acknowledged (cluster/state/shard.rs).
    pub siblings: Vec<NodeId>,
}

/// What the sender knows of another node.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Gossip {
    /// The node.
    pub id: NodeId,
    /// Its IP.
    pub ip: String,
    /// Its RESP port.
    pub port: u16,
    /// Its bus port.
    pub cport: u16,
    /// Its flags as the sender sees them (PFAIL, FAIL: a failure report).
    pub flags: u16,
    /// When the sender last heard from it.
    pub pong_received_ms: u64,
}

/// A cluster bus message.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Are you there? (answered by a PONG)
    Ping {
        /// The sender.
        header: Header,
        /// Other nodes.
        gossip: Vec<Gossip>,
    },
    /// A ping that asks the receiver to add the sender (CLUSTER MEET).
    Meet {
        /// The sender.
        header: Header,
        /// Other nodes.
        gossip: Vec<Gossip>,
    },
    /// The answer to a PING or MEET.
    Pong {
        /// The sender.
        header: Header,
        /// Other nodes.
        gossip: Vec<Gossip>,
    },
    /// A node is failing, by a majority of masters.
    Fail {
        /// Who says so (a node the receiver does not know is not listened to).
        sender: NodeId,
        /// The failing node.
        id: NodeId,
    },
    /// The sender's view of `id`'s slots is newer than the receiver's claim.
    Update {
        /// The node that serves `slots`.
        id: NodeId,
        /// Its config epoch.
        config_epoch: Epoch,
        /// Its slots.
        slots: SlotSet,
    },
    /// A replica asks every master for its vote to replace its master, in the epoch its
    /// header carries (answered by an [`Message::AuthAck`] or by nothing).
    AuthRequest {
        /// The replica; `slots` and `config_epoch` are its master's, which it claims.
        header: Header,
        /// A manual failover: vote although the master is not failing.
        force: bool,
    },
    /// A master's vote for the replica whose request it answers.
    AuthAck {
        /// The master.
        header: Header,
    },
    /// A replica asks its master to hand over (CLUSTER FAILOVER without FORCE).
    MfStart {
        /// The replica.
        header: Header,
    },
    /// Messages published on the sender, for the receiver's subscribers (sent only to
    /// nodes whose [`Message::Interest`] matches them), as many as fit a frame.
    Publish {
        /// In the order they were published.
        messages: Vec<Published>,
    },
    /// More of the payload of the last message of the previous frame (a message too large
    /// for one frame is cut in several).
    PublishMore {
        /// The next bytes.
        payload: Vec<u8>,
        /// More frames of it follow.
        more: bool,
    },
    /// What the sender's subscribers listen to, so that publishers elsewhere send it only
    /// what it wants (Redis sends every message to every node).
    Interest {
        /// Who listens.
        sender: NodeId,
        /// The channels, patterns and shard channels with subscribers there.
        interest: Interest,
    },
}

/// One message published on a node, on its way to another.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The channel (a shard channel when `sharded`).
    pub channel: Vec<u8>,
    /// What was published (its first part, when `more`).
    pub payload: Vec<u8>,
    /// SPUBLISH: delivered by the nodes of the channel's shard.
    pub sharded: bool,
    /// The payload goes on in [`Message::PublishMore`] frames.
    pub more: bool,
}

/// The channels, patterns and shard channels a node has subscribers for.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Interest {
    /// Too many names to list in a frame: send it everything.
    pub everything: bool,
    /// Channels.
    pub channels: Vec<Vec<u8>>,
    /// Glob patterns over channels.
    pub patterns: Vec<Vec<u8>>,
    /// Shard channels.
    pub shard: Vec<Vec<u8>>,
}

#[cfg(test)]
impl Header {
    /// A header for tests: from a master (or from `primary`'s replica) at epoch 1, serving
    /// nothing, at port 7001.
    pub(crate) fn for_test(sender: NodeId, primary: Option<NodeId>) -> Header {
        use super::state::flags;
        Header {
            sender,
            current_epoch: Epoch(1),
            config_epoch: Epoch(1),
            flags: if primary.is_some() {
                flags::SLAVE
            } else {
                flags::MASTER
            },
            primary,
            slots: SlotSet::default(),
            ip: None,
            port: 7001,
            cport: 17001,
            repl_offset: 0,
            paused: false,
            disputed: false,
            siblings: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::frame::{decode, encode};

    #[test]
    fn a_full_ping_fits_a_frame_and_garbage_is_refused() {
        let mut slots = SlotSet::default();
        for s in 0..16384 {
            slots.insert(crate::slot::SlotId::new(s).unwrap());
        }
        let header = Header {
            sender: NodeId::random(),
            current_epoch: Epoch(3),
            config_epoch: Epoch(2),
            flags: 2,
            primary: None,
            slots,
            ip: Some("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".into()),
            port: 7000,
            cport: 17000,
            repl_offset: 1 << 40,
            paused: false,
            disputed: false,
            // A large shard's replicas.
            siblings: (0..32).map(|_| NodeId::random()).collect(),
        };
        let gossip = (0..8)
            .map(|_| Gossip {
                id: NodeId::random(),
                ip: "255.255.255.255".into(),
                port: 65535,
                cport: 65535,
                flags: 0xffff,
                pong_received_ms: u64::MAX,
            })
            .collect();
        let message = Message::Ping { header, gossip };
        let frame = encode(&message).unwrap();
        assert_eq!(decode::<Message>(&frame[4..]).unwrap(), message);
        assert!(decode::<Message>(&frame[4..frame.len() - 3]).is_err());
        assert!(decode::<Message>(&[0xff; 64]).is_err());
    }
}
