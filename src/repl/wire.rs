//! What primary and replica say to each other on a link's control stream, and the tags that
//! name its data streams.
//!
//! Control messages are framed by [`crate::transport::frame`]: a frame that is too long, cut
//! short or not a message drops the link. The snapshot and the write log travel on their own
//! unidirectional streams, as raw bytes after a one-byte tag.

use crate::cluster::ids::NodeId;
pub use crate::transport::frame::{decode, encode, read};
use serde::{Deserialize, Serialize};

/// The first byte a replica sends on its link's first stream (the cluster bus sends
/// `cluster::bus::BUS_STREAM`).
pub const REPLICATION_STREAM: u8 = b'R';
/// The first byte of the stream that carries a full resync's snapshot (RDB).
pub const SNAPSHOT_STREAM: u8 = b'S';
/// The first byte of the stream that carries the write log from the sync's offset on.
pub const LOG_STREAM: u8 = b'L';

/// A replica to its primary.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum ToPrimary {
    /// The first message: where the replica's data stands (PSYNC replid offset), and the RESP
    /// port it serves on (REPLCONF listening-port), for INFO and ROLE.
    Sync {
        /// The history the replica's data belongs to.
        replid: String,
        /// The next log byte the replica wants; `None`: it has nothing to continue from.
        offset: Option<u64>,
        /// The replica's RESP port.
        listening_port: u16,
        /// The replica's cluster node ID (cluster mode): its primary counts its
        /// acknowledgements only when the cluster state does.
        node: Option<NodeId>,
        /// PSYNC ... FAILOVER: the sender was the receiver's primary and hands over (FAILOVER):
        /// the receiver takes over before it answers.
        failover: bool,
    },
    /// REPLCONF ACK: everything before `applied` is applied (and before `fsynced`, on disk).
    Ack {
        /// The replica's log end.
        applied: u64,
        /// How much of it is on the replica's disk (0 without an AOF).
        fsynced: u64,
    },
}

/// A primary to a replica.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum ToReplica {
    /// +FULLRESYNC: a snapshot equal to the log at `offset` follows, then the log from there.
    FullResync {
        /// The primary's history, which the replica adopts.
        replid: String,
        /// The log offset the snapshot equals.
        offset: u64,
    },
    /// +CONTINUE: the log follows from the offset the replica asked for.
    Continue {
        /// The primary's current ID (new after a promotion).
        replid: String,
    },
    /// Keeps `master_last_io_seconds_ago` fresh when no writes flow.
    Ping,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_garbage_is_refused() {
        let sync = ToPrimary::Sync {
            replid: "a".repeat(40),
            offset: Some(12345),
            listening_port: 6380,
            node: Some(NodeId::random()),
            failover: true,
        };
        let frame = encode(&sync).unwrap();
        assert_eq!(decode::<ToPrimary>(&frame[4..]).unwrap(), sync);
        assert!(decode::<ToPrimary>(&frame[4..frame.len() - 1]).is_err());
        let mut longer = frame[4..].to_vec();
        longer.push(0);
        assert!(decode::<ToPrimary>(&longer).is_err());
        assert!(decode::<ToReplica>(&[0xff; 9]).is_err());
    }
}
