//! The RESP client a sentinel talks to instances and other sentinels with: one command per
//! connection for commands (a PING, INFO or REPLICAOF is small and rare), and a long-lived
//! connection per instance subscribed to the hello channel.

use super::state::Addr;
use crate::reply::Reply;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A hello subscription that hears nothing this long is reconnected.
const IDLE_LINK: Duration = Duration::from_secs(6);
/// A reply this long is refused (INFO is a few KB).
const REPLY_BYTES_MAX: usize = 1 << 20;

/// Connects to `addr` (authenticating with `auth` when given).
async fn connect(addr: &Addr, auth: Option<&str>, timeout: Duration) -> io::Result<TcpStream> {
    let connecting = TcpStream::connect((addr.host.as_str(), addr.port));
    let mut stream = tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    if let Some(password) = auth {
        let mut buf = Vec::new();
        let reply = exchange(&mut stream, &[b"AUTH", password.as_bytes()], &mut buf).await?;
        if let Reply::Error(e) = reply {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                e.into_owned(),
            ));
        }
    }
    Ok(stream)
}

/// Sends one command and reads its reply.
async fn exchange(stream: &mut TcpStream, args: &[&[u8]], buf: &mut Vec<u8>) -> io::Result<Reply> {
    let mut out = Vec::new();
    crate::resp::encode_command(args, &mut out);
    stream.write_all(&out).await?;
    read_reply(stream, buf).await
}

/// Reads one reply, keeping what follows it in `buf`.
async fn read_reply(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Reply> {
    loop {
        if let Some(end) = reply_end(buf) {
            let reply = crate::resp::decode_reply(&buf[..end])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.0))?;
            buf.drain(..end);
            return Ok(reply);
        }
        if buf.len() > REPLY_BYTES_MAX {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "reply too long"));
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Where the first complete reply in `buf` ends, if it is there.
fn reply_end(buf: &[u8]) -> Option<usize> {
    let mut at = 0;
    skip(buf, &mut at, 0).then_some(at)
}

fn skip(buf: &[u8], at: &mut usize, depth: usize) -> bool {
    if depth > 8 {
        return false;
    }
    let Some(&kind) = buf.get(*at) else {
        return false;
    };
    let Some(line_end) = buf[*at..].windows(2).position(|w| w == b"\r\n") else {
        return false;
    };
    let head = &buf[*at + 1..*at + line_end];
    *at += line_end + 2;
    let count = || std::str::from_utf8(head).ok()?.parse::<i64>().ok();
    match kind {
        b'$' | b'=' => match count() {
            Some(n) if n >= 0 => {
                *at += n as usize + 2;
                *at <= buf.len()
            }
            _ => true,
        },
        b'*' | b'>' | b'~' | b'%' => {
            let per = if kind == b'%' { 2 } else { 1 };
            let n = count().unwrap_or(0).clamp(0, REPLY_BYTES_MAX as i64) * per;
            (0..n).all(|_| skip(buf, at, depth + 1))
        }
        _ => true,
    }
}

/// Runs one command at `addr` on a fresh connection, within `timeout`.
pub async fn call(
    addr: &Addr,
    auth: Option<&str>,
    args: &[&[u8]],
    timeout: Duration,
) -> io::Result<Reply> {
    let work = async {
        let mut stream = connect(addr, auth, timeout).await?;
        let mut buf = Vec::new();
        exchange(&mut stream, args, &mut buf).await
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no reply in time"))?
}

/// Subscribes to `channel` at `addr` and hands every message's payload to `on_message`
/// until the connection ends or `on_message` returns false.
pub async fn subscribe(
    addr: &Addr,
    auth: Option<&str>,
    channel: &str,
    timeout: Duration,
    mut on_message: impl FnMut(&[u8]) -> bool,
) -> io::Result<()> {
    let mut stream = connect(addr, auth, timeout).await?;
    let mut buf = Vec::new();
    exchange(&mut stream, &[b"SUBSCRIBE", channel.as_bytes()], &mut buf).await?;
    loop {
        // Hellos come every 2 s from every sentinel, ours included: silence this long means
        // the link is dead (Redis drops an idle pub/sub link likewise).
        let reply = tokio::time::timeout(IDLE_LINK, read_reply(&mut stream, &mut buf))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no hello for too long"))??;
        if let Reply::Array(parts) | Reply::Push(parts) = reply {
            if let [_, _, Reply::Bulk(payload)] = parts.as_slice() {
                if !on_message(payload) {
                    return Ok(());
                }
            }
        }
    }
}
