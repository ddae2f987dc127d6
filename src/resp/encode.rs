//! Encoding replies (RESP2 or RESP3) and commands (RESP arrays of bulk strings: the write log's
//! format, and what a client sends).

use super::Protocol;
use crate::reply::{format_double, Reply};

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
            // A newline inside would end the error early and desynchronize the client:
            // Redis writes spaces instead.
            out.extend(
                s.bytes()
                    .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
            );
            out.extend_from_slice(b"\r\n");
        }
        Reply::Int(i) => {
            out.push(b':');
            out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Reply::Bulk(b) => push_bulk(out, b),
        Reply::Verbatim(text) if resp3 => {
            push_header(out, b'=', text.len() + 4);
            out.extend_from_slice(b"txt:");
            out.extend_from_slice(text);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Verbatim(text) => push_bulk(out, text),
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
        Reply::Push(items) => {
            push_header(out, if resp3 { b'>' } else { b'*' }, items.len());
            items.iter().for_each(|r| encode_reply(r, proto, out));
        }
        Reply::Several(replies) => replies.iter().for_each(|r| encode_reply(r, proto, out)),
    }
}
