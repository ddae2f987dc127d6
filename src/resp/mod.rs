//! RESP2/RESP3: encoding replies and commands, decoding commands.
//!
//! The write log, the AOF and the replication stream are RESP command arrays, so the codec lives
//! here from the start; the TCP listener builds on the same functions.

use crate::reply::{format_double, Reply};
use std::ops::Range;

/// The protocol version a client speaks (`HELLO 2|3`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Protocol {
    /// RESP2, what clients speak until they send `HELLO 3`.
    #[default]
    Resp2,
    /// RESP3: maps, sets, doubles, booleans and nulls as their own types.
    Resp3,
}

fn push_header(out: &mut Vec<u8>, kind: u8, n: usize) {
    // Most lengths and counts are below 100: write those as fixed-size blocks.
    let digit = |d: usize| b'0' + d as u8;
    match n {
        0..=9 => out.extend_from_slice(&[kind, digit(n), b'\r', b'\n']),
        10..=99 => out.extend_from_slice(&[kind, digit(n / 10), digit(n % 10), b'\r', b'\n']),
        _ => {
            out.push(kind);
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

fn push_bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    push_header(out, b'$', bytes.len());
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// Appends a command as a RESP array of bulk strings.
pub fn encode_command(argv: &[&[u8]], out: &mut Vec<u8>) {
    // One reservation for the whole command (a header is at most 1 + 20 digits + CRLF, a
    // bulk adds another CRLF), so the appends below never reallocate one by one.
    let payload: usize = argv.iter().map(|a| a.len()).sum();
    out.reserve(payload + 25 * (argv.len() + 1));
    push_header(out, b'*', argv.len());
    for arg in argv {
        push_bulk(out, arg);
    }
}

/// Appends `reply` encoded for `proto`.
pub fn encode_reply(reply: &Reply, proto: Protocol, out: &mut Vec<u8>) {
    let resp3 = proto == Protocol::Resp3;
    match reply {
        Reply::Status(s) => {
            out.push(b'+');
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Reply::Error(s) => {
            out.push(b'-');
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Reply::Int(i) => {
            out.push(b':');
            out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Reply::Bulk(b) => push_bulk(out, b),
        Reply::Nil if resp3 => out.extend_from_slice(b"_\r\n"),
        Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
        Reply::NilArray if resp3 => out.extend_from_slice(b"_\r\n"),
        Reply::NilArray => out.extend_from_slice(b"*-1\r\n"),
        Reply::Array(items) => {
            push_header(out, b'*', items.len());
            items.iter().for_each(|r| encode_reply(r, proto, out));
        }
        Reply::Set(items) => {
            push_header(out, if resp3 { b'~' } else { b'*' }, items.len());
            items.iter().for_each(|r| encode_reply(r, proto, out));
        }
        Reply::Map(pairs) => {
            if resp3 {
                push_header(out, b'%', pairs.len());
            } else {
                push_header(out, b'*', pairs.len() * 2);
            }
            for (k, v) in pairs {
                encode_reply(k, proto, out);
                encode_reply(v, proto, out);
            }
        }
        Reply::Double(d) if resp3 => {
            out.push(b',');
            out.extend_from_slice(format_double(*d).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Reply::Double(d) => push_bulk(out, format_double(*d).as_bytes()),
        Reply::Bool(b) if resp3 => out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
        Reply::Bool(b) => out.extend_from_slice(if *b { b":1\r\n" } else { b":0\r\n" }),
    }
}

/// The longest `*<count>` or `$<length>` line a peer may send without its CRLF.
const HEADER_LINE_BYTES_MAX: usize = 64 * 1024;

/// Bounds on what a peer may ask us to buffer while parsing.
#[derive(Copy, Clone, Debug)]
pub struct Limits {
    /// The largest bulk argument (`proto-max-bulk-len`).
    pub bulk_bytes_max: usize,
    /// The most arguments in one command.
    pub multibulk_len_max: usize,
    /// The longest inline command line.
    pub inline_bytes_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            bulk_bytes_max: 512 * 1024 * 1024,
            multibulk_len_max: i32::MAX as usize,
            inline_bytes_max: 64 * 1024,
        }
    }
}

/// A protocol violation: the message is Redis's (`Protocol error: ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

/// One parsed command: argument ranges into the buffer and the bytes consumed.
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed {
    /// Where each argument is in the buffer.
    pub args: Vec<Range<usize>>,
    /// How many bytes the command took.
    pub consumed: usize,
}

/// Parses one command (a multibulk array, or an inline line) from the start of `buf`.
/// `Ok(None)` means more bytes are needed.
pub fn parse_command(buf: &[u8], limits: &Limits) -> Result<Option<Parsed>, ProtocolError> {
    match buf.first() {
        None => Ok(None),
        Some(b'*') => parse_multibulk(buf, limits),
        Some(_) => parse_inline(buf, limits),
    }
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| p + from)
}

/// Parses the decimal integer between `start` and the next CRLF; returns it and the index after
/// the CRLF, or `Ok(None)` when the line is incomplete.
fn parse_line_int(
    buf: &[u8],
    start: usize,
    too_big: &str,
) -> Result<Option<(i64, usize)>, ProtocolError> {
    let Some(end) = find_crlf(buf, start) else {
        if buf.len() - start > HEADER_LINE_BYTES_MAX {
            return Err(ProtocolError(format!("Protocol error: {too_big}")));
        }
        return Ok(None);
    };
    let n = std::str::from_utf8(&buf[start..end])
        .ok()
        .and_then(|s| s.parse::<i64>().ok());
    match n {
        Some(n) => Ok(Some((n, end + 2))),
        None => Ok(Some((i64::MIN, end + 2))),
    }
}

fn parse_multibulk(buf: &[u8], limits: &Limits) -> Result<Option<Parsed>, ProtocolError> {
    let Some((count, mut pos)) = parse_line_int(buf, 1, "too big mbulk count string")? else {
        return Ok(None);
    };
    if count == i64::MIN || count > limits.multibulk_len_max as i64 {
        return Err(ProtocolError(
            "Protocol error: invalid multibulk length".into(),
        ));
    }
    if count <= 0 {
        return Ok(Some(Parsed {
            args: Vec::new(),
            consumed: pos,
        }));
    }
    // Do not trust the count for the allocation: a peer could claim a huge array and stop.
    let mut args = Vec::with_capacity((count as usize).min(1024));
    for _ in 0..count {
        match buf.get(pos) {
            None => return Ok(None),
            Some(b'$') => {}
            Some(&c) => {
                return Err(ProtocolError(format!(
                    "Protocol error: expected '$', got '{}'",
                    c as char
                )))
            }
        }
        let Some((len, start)) = parse_line_int(buf, pos + 1, "too big bulk count string")? else {
            return Ok(None);
        };
        if len < 0 || len == i64::MIN || len as u64 > limits.bulk_bytes_max as u64 {
            return Err(ProtocolError("Protocol error: invalid bulk length".into()));
        }
        let end = start + len as usize;
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(ProtocolError("Protocol error: invalid bulk length".into()));
        }
        args.push(start..end);
        pos = end + 2;
    }
    Ok(Some(Parsed {
        args,
        consumed: pos,
    }))
}

fn parse_inline(buf: &[u8], limits: &Limits) -> Result<Option<Parsed>, ProtocolError> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > limits.inline_bytes_max {
            return Err(ProtocolError(
                "Protocol error: too big inline request".into(),
            ));
        }
        return Ok(None);
    };
    let line_end = if nl > 0 && buf[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    let args = split_inline(&buf[..line_end])
        .ok_or_else(|| ProtocolError("Protocol error: unbalanced quotes in request".into()))?;
    Ok(Some(Parsed {
        args,
        consumed: nl + 1,
    }))
}

/// Splits an inline command on whitespace; a quoted argument runs to the matching quote.
/// Escapes inside quotes (`\n`, `\xHH`) are kept as written: arguments are ranges of the
/// input, and the inline form is for humans typing simple commands.
fn split_inline(line: &[u8]) -> Option<Vec<Range<usize>>> {
    let mut args = Vec::new();
    let mut i = 0;
    while i < line.len() {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= line.len() {
            break;
        }
        if line[i] == b'"' || line[i] == b'\'' {
            let quote = line[i];
            let start = i + 1;
            let end = start + line[start..].iter().position(|&b| b == quote)?;
            args.push(start..end);
            i = end + 1;
            if i < line.len() && !line[i].is_ascii_whitespace() {
                return None;
            }
        } else {
            let start = i;
            while i < line.len() && !line[i].is_ascii_whitespace() {
                i += 1;
            }
            args.push(start..i);
        }
    }
    Some(args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn args_of<'a>(buf: &'a [u8], p: &Parsed) -> Vec<&'a [u8]> {
        p.args.iter().map(|r| &buf[r.clone()]).collect()
    }

    #[test]
    fn round_trip_command() {
        let mut buf = Vec::new();
        encode_command(&[b"SET", b"k\r\n", b""], &mut buf);
        assert_eq!(&buf[..], b"*3\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$0\r\n\r\n");
        let p = parse_command(&buf, &Limits::default()).unwrap().unwrap();
        assert_eq!(p.consumed, buf.len());
        assert_eq!(args_of(&buf, &p), vec![&b"SET"[..], b"k\r\n", b""]);
        for cut in 0..buf.len() {
            assert_eq!(
                parse_command(&buf[..cut], &Limits::default()).unwrap(),
                None
            );
        }
    }

    #[test]
    fn protocol_errors() {
        let l = Limits::default();
        let e = |b: &[u8]| parse_command(b, &l).unwrap_err().0;
        assert_eq!(e(b"*x\r\n"), "Protocol error: invalid multibulk length");
        assert_eq!(e(b"*1\r\n:1\r\n"), "Protocol error: expected '$', got ':'");
        assert_eq!(e(b"*1\r\n$-1\r\n"), "Protocol error: invalid bulk length");
        assert_eq!(
            e(b"*1\r\n$3\r\nabcd\r\n"),
            "Protocol error: invalid bulk length"
        );
        let small = Limits {
            bulk_bytes_max: 2,
            ..l
        };
        assert!(parse_command(b"*1\r\n$3\r\n", &small).is_err());
    }

    #[test]
    fn inline() {
        let p = parse_command(b"SET a \"b c\"\r\n", &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(
            args_of(b"SET a \"b c\"\r\n", &p),
            vec![&b"SET"[..], b"a", b"b c"]
        );
        assert!(parse_command(b"SET \"a\r\n", &Limits::default()).is_err());
    }

    #[test]
    fn resp2_and_resp3_downgrades() {
        let r = Reply::Map(vec![(Reply::bulk(b"a"), Reply::Double(1.5))]);
        let mut b2 = Vec::new();
        encode_reply(&r, Protocol::Resp2, &mut b2);
        assert_eq!(&b2[..], b"*2\r\n$1\r\na\r\n$3\r\n1.5\r\n");
        let mut b3 = Vec::new();
        encode_reply(&r, Protocol::Resp3, &mut b3);
        assert_eq!(&b3[..], b"%1\r\n$1\r\na\r\n,1.5\r\n");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_command(&buf, &Limits::default());
        }

        #[test]
        fn encoded_commands_parse_back(args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 1..8)) {
            let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
            let mut buf = Vec::new();
            encode_command(&refs, &mut buf);
            let p = parse_command(&buf, &Limits::default()).unwrap().unwrap();
            prop_assert_eq!(p.consumed, buf.len());
            prop_assert_eq!(args_of(&buf, &p), refs);
        }
    }
}
