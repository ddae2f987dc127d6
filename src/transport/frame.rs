//! Messages between nodes on a stream: serde types encoded with bincode 2, each framed by
//! its length (u32, big-endian) and bounded by [`FRAME_BYTES_MAX`]. A frame that is too long,
//! cut short or not exactly one message is an error, which drops the link.

use serde::{Deserialize, Serialize};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Longest frame: a cluster bus ping (its 2 KiB slot map and a few gossip entries) is the
/// largest message.
pub const FRAME_BYTES_MAX: usize = 64 * 1024;

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
