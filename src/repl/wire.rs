//! What primary and replica say to each other on a link's control stream, and the tags that
//! name its data streams.
//!
//! Control messages are serde types encoded with bincode 2, each framed by its length (u32,
//! big-endian) and bounded by [`FRAME_BYTES_MAX`]: a frame that is too long, cut short or not
//! a message drops the link. The snapshot and the write log travel on their own
//! unidirectional streams, as raw bytes after a one-byte tag.

use serde::{Deserialize, Serialize};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Longest control frame: the messages are a few dozen bytes.
pub const FRAME_BYTES_MAX: usize = 4096;

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

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<FRAME_BYTES_MAX>()
}

/// A message, framed.
pub fn encode<T: Serialize>(message: &T) -> io::Result<Vec<u8>> {
    let body = bincode::serde::encode_to_vec(message, config()).map_err(io::Error::other)?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// One message from a frame's body; an error for anything that is not exactly one message.
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> io::Result<T> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let (message, used) = bincode::serde::decode_from_slice(body, config())
        .map_err(|e| invalid(format!("malformed peer message: {e}")))?;
    if used != body.len() {
        return Err(invalid("trailing bytes after a peer message".into()));
    }
    Ok(message)
}

/// Reads the next framed message; `None` at a clean end of the stream.
pub async fn read<T: for<'de> Deserialize<'de>>(
    stream: &mut (impl AsyncRead + Unpin),
) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > FRAME_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("peer frame of {len} bytes (at most {FRAME_BYTES_MAX})"),
        ));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    decode(&body).map(Some)
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
