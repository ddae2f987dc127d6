//! Decoding requests: RESP multibulk arrays and inline commands, exactly as Redis reads them.
//!
//! The rules follow Redis's query-buffer parser, including its leniencies (a header line ends
//! at its `\r`, and the two bytes after a bulk are skipped unread) and its limits (64 KiB for an
//! inline line or a header, `proto-max-bulk-len` for a bulk, and the small sizes an
//! unauthenticated client may send). Arguments are ranges into the caller's buffer, so reading a
//! pipeline of commands allocates nothing once the parser's vectors have grown.

use crate::keyspace::value::parse_i64_strict;
use std::ops::Range;

/// The longest inline line, or `*<count>` / `$<length>` header, buffered without its newline.
const LINE_BYTES_MAX: usize = 64 * 1024;
/// The most arguments an unauthenticated client may send in one command.
const UNAUTH_ARGS_MAX: i64 = 10;
/// The largest argument an unauthenticated client may send.
const UNAUTH_BULK_BYTES_MAX: i64 = 16384;

/// Bounds on what a peer may ask us to buffer while parsing.
#[derive(Copy, Clone, Debug)]
pub struct Limits {
    /// The largest bulk argument (`proto-max-bulk-len`).
    pub bulk_bytes_max: usize,
    /// The peer has not authenticated while a password is required: only small commands
    /// (Redis's fix for CVE-2021-32675).
    pub unauthenticated: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            bulk_bytes_max: 512 * 1024 * 1024,
            unauthenticated: false,
        }
    }
}

/// A protocol violation: the message is Redis's (`Protocol error: ...`). Redis replies with it
/// and closes the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

fn protocol_error<T>(what: &str) -> Result<T, ProtocolError> {
    Err(ProtocolError(format!("Protocol error: {what}")))
}

/// Where the arguments of the last parsed command are.
#[derive(Default, Debug)]
pub struct Parser {
    /// Ranges into the parsed buffer, or into `unescaped` for an inline command.
    args: Vec<Range<usize>>,
    /// The arguments of an inline command, with its quotes and escapes resolved.
    unescaped: Vec<u8>,
    inline: bool,
}

impl Parser {
    /// Parses one command from the start of `buf`: `Ok(Some(consumed))` when a whole command
    /// is there (possibly with no arguments: `*0`, an empty line), `Ok(None)` when more bytes
    /// are needed.
    pub fn parse(&mut self, buf: &[u8], limits: &Limits) -> Result<Option<usize>, ProtocolError> {
        self.args.clear();
        match buf.first() {
            None => Ok(None),
            Some(b'*') => {
                self.inline = false;
                self.parse_multibulk(buf, limits)
            }
            Some(_) => {
                self.inline = true;
                self.parse_inline(buf)
            }
        }
    }

    /// The arguments of the last command parsed from `buf`.
    pub fn args<'a>(&'a self, buf: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        let source = if self.inline {
            &self.unescaped[..]
        } else {
            buf
        };
        self.args.iter().map(move |r| &source[r.clone()])
    }

    /// Number of arguments of the last command.
    pub fn len(&self) -> usize {
        self.args.len()
    }

    /// Whether the last command had no arguments (nothing to run).
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }

    fn parse_multibulk(
        &mut self,
        buf: &[u8],
        limits: &Limits,
    ) -> Result<Option<usize>, ProtocolError> {
        let Some((count, mut pos)) = header_line(buf, 0, "too big mbulk count string")? else {
            return Ok(None);
        };
        let count = match count {
            Some(n) if n <= i64::from(i32::MAX) => n,
            _ => return protocol_error("invalid multibulk length"),
        };
        if count > UNAUTH_ARGS_MAX && limits.unauthenticated {
            return protocol_error("unauthenticated multibulk length");
        }
        for _ in 0..count.max(0) {
            let Some(&marker) = buf.get(pos) else {
                return Ok(None);
            };
            let Some((len, start)) = header_line(buf, pos, "too big bulk count string")? else {
                return Ok(None);
            };
            if marker != b'$' {
                return protocol_error(&format!("expected '$', got '{}'", marker as char));
            }
            let len = match len {
                Some(n) if n >= 0 && n as u64 <= limits.bulk_bytes_max as u64 => n,
                _ => return protocol_error("invalid bulk length"),
            };
            if len > UNAUTH_BULK_BYTES_MAX && limits.unauthenticated {
                return protocol_error("unauthenticated bulk length");
            }
            // Redis skips the two bytes after the data without looking at them.
            let end = start + len as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            self.args.push(start..end);
            pos = end + 2;
        }
        Ok(Some(pos))
    }

    fn parse_inline(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        let Some(newline) = buf.iter().position(|&b| b == b'\n') else {
            if buf.len() > LINE_BYTES_MAX {
                return protocol_error("too big inline request");
            }
            return Ok(None);
        };
        let line_end = if newline > 0 && buf[newline - 1] == b'\r' {
            newline - 1
        } else {
            newline
        };
        self.unescaped.clear();
        if !split_args_into(&buf[..line_end], &mut self.unescaped, &mut self.args) {
            return protocol_error("unbalanced quotes in request");
        }
        Ok(Some(newline + 1))
    }
}

/// Reads the header line at `buf[at]` (`*<n>` or `$<n>`): Redis ends it at the first `\r` and
/// skips one more byte. Returns the number (`None` if it is not one) and where the line's
/// successor starts, or `Ok(None)` when the line is not complete yet.
fn header_line(
    buf: &[u8],
    at: usize,
    too_big: &str,
) -> Result<Option<(Option<i64>, usize)>, ProtocolError> {
    match short_header_line(&buf[at..]) {
        Some((n, len)) => Ok(Some((Some(n), at + len))),
        None => any_header_line(buf, at, too_big),
    }
}

/// [`header_line`] for any line: the general path behind its fast one.
fn any_header_line(
    buf: &[u8],
    at: usize,
    too_big: &str,
) -> Result<Option<(Option<i64>, usize)>, ProtocolError> {
    let rest = &buf[at..];
    let Some(cr) = rest.iter().position(|&b| b == b'\r') else {
        if rest.len() > LINE_BYTES_MAX {
            return protocol_error(too_big);
        }
        return Ok(None);
    };
    if cr + 2 > rest.len() {
        return Ok(None);
    }
    // The line may be empty (`\r` right where a `$` was expected): no number then.
    let digits = rest.get(1..cr).unwrap_or_default();
    Ok(Some((parse_i64_strict(digits), at + cr + 2)))
}

/// [`header_line`]'s common case, read in one pass: the marker, 1 to 18 digits without a
/// leading zero (or a lone "0"), then `\r` and one more byte. Returns the number and the
/// length of the line with its ending; `None` leaves anything else to the general path.
#[inline]
fn short_header_line(line: &[u8]) -> Option<(i64, usize)> {
    // Where the marker should be, a '\r' already ends the line.
    if line.first() == Some(&b'\r') {
        return None;
    }
    let mut n = 0i64;
    let mut end = 1;
    while let Some(&b) = line.get(end).filter(|b| b.is_ascii_digit()) {
        if end > 18 || (end == 2 && line[1] == b'0') {
            return None;
        }
        n = n * 10 + i64::from(b - b'0');
        end += 1;
    }
    let complete = end > 1 && line.get(end) == Some(&b'\r') && line.len() >= end + 2;
    complete.then_some((n, end + 2))
}

/// Splits a line into arguments the way Redis splits inline commands and configuration
/// lines: blanks separate arguments; `"..."` takes escapes (`\n`, `\r`, `\t`, `\b`, `\a`,
/// `\xHH`, and `\` before any other character), `'...'` takes `\'`; a closing quote must end
/// the argument. `None` for unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let (mut bytes, mut ranges) = (Vec::new(), Vec::new());
    split_args_into(line, &mut bytes, &mut ranges)
        .then(|| ranges.into_iter().map(|r| bytes[r].to_vec()).collect())
}

/// [`split_args`] into reusable buffers: the arguments are `out[range]` for each range pushed.
fn split_args_into(line: &[u8], out: &mut Vec<u8>, ranges: &mut Vec<Range<usize>>) -> bool {
    // Redis works on a C string: a NUL ends the line.
    let line = &line[..line.iter().position(|&b| b == 0).unwrap_or(line.len())];
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let mut i = 0;
    loop {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i == line.len() {
            return true;
        }
        let start = out.len();
        let mut quote = None;
        loop {
            let Some(&c) = line.get(i) else {
                if quote.is_some() {
                    return false;
                }
                break;
            };
            match quote {
                Some(b'"') => match (c, line.get(i + 1).copied()) {
                    (b'\\', Some(b'x'))
                        if line.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
                            && line.get(i + 3).is_some_and(u8::is_ascii_hexdigit) =>
                    {
                        out.push(hex(line[i + 2]) * 16 + hex(line[i + 3]));
                        i += 3;
                    }
                    (b'\\', Some(e)) => {
                        out.push(match e {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                        i += 1;
                    }
                    (b'"', next) => {
                        if next.is_some_and(|n| !is_space(n)) {
                            return false;
                        }
                        i += 1;
                        break;
                    }
                    _ => out.push(c),
                },
                Some(_) => match (c, line.get(i + 1).copied()) {
                    (b'\\', Some(b'\'')) => {
                        out.push(b'\'');
                        i += 1;
                    }
                    (b'\'', next) => {
                        if next.is_some_and(|n| !is_space(n)) {
                            return false;
                        }
                        i += 1;
                        break;
                    }
                    _ => out.push(c),
                },
                None => match c {
                    b' ' | b'\n' | b'\r' | b'\t' => break,
                    b'"' | b'\'' => quote = Some(c),
                    _ => out.push(c),
                },
            }
            i += 1;
        }
        ranges.push(start..out.len());
    }
}

fn hex(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

/// One parsed command: its arguments (owned) and the bytes it took. A convenience over
/// [`Parser`] for streams read once (log replay, tests).
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The arguments.
    pub args: Vec<Vec<u8>>,
    /// How many bytes the command took.
    pub consumed: usize,
}

/// Parses one command from the start of `buf`; `Ok(None)` means more bytes are needed.
pub fn parse_command(buf: &[u8], limits: &Limits) -> Result<Option<Parsed>, ProtocolError> {
    let mut parser = Parser::default();
    Ok(parser.parse(buf, limits)?.map(|consumed| Parsed {
        args: parser.args(buf).map(<[u8]>::to_vec).collect(),
        consumed,
    }))
}

#[cfg(test)]
mod tests {
    use super::{any_header_line, header_line};

    /// A header line, and what `header_line` reads: (its number, where the next line starts).
    type Case = (&'static [u8], Option<(Option<i64>, usize)>);

    #[test]
    fn header_lines_read_as_redis_reads_them() {
        let cases: [Case; 14] = [
            (b"*3\r\n", Some((Some(3), 4))),
            (b"$0\r\n", Some((Some(0), 4))),
            (b"$16\r\nx", Some((Some(16), 5))),
            (b"$-1\r\n", Some((Some(-1), 5))),
            (b"$01\r\n", Some((None, 5))),
            (b"$\r\n", Some((None, 3))),
            (b"$ 3\r\n", Some((None, 5))),
            // Redis skips the byte after '\r' unread.
            (b"$3\rX", Some((Some(3), 4))),
            (
                b"*123456789012345678\r\n",
                Some((Some(123456789012345678), 21)),
            ),
            (b"*9223372036854775807\r\n", Some((Some(i64::MAX), 22))),
            (b"*9223372036854775808\r\n", Some((None, 22))),
            (b"$3\r", None),
            (b"$3", None),
            (b"$12345678901234567890123", None),
        ];
        for (line, want) in cases {
            let got = header_line(line, 0, "too big").expect("no error");
            assert_eq!(got, want, "{}", String::from_utf8_lossy(line));
        }
    }

    /// Every line of up to 6 bytes over the bytes that matter, and long runs of digits: the
    /// fast path reads exactly what the general one does.
    #[test]
    fn the_fast_header_path_agrees_with_the_general_one() {
        let alphabet = b"$*019-\r\nx";
        let mut lines: Vec<Vec<u8>> = vec![Vec::new()];
        for len in 1..=6 {
            let shorter: Vec<Vec<u8>> = lines
                .iter()
                .filter(|l| l.len() == len - 1)
                .cloned()
                .collect();
            for line in shorter {
                for &b in alphabet {
                    lines.push([&line[..], &[b]].concat());
                }
            }
        }
        for digits in 15..=21 {
            for lead in [b'1', b'9', b'0'] {
                let mut line = vec![b'*', lead];
                line.extend(std::iter::repeat_n(b'9', digits - 1));
                lines.push([&line[..], b"\r\n"].concat());
            }
        }
        for line in &lines {
            assert_eq!(
                header_line(line, 0, "too big"),
                any_header_line(line, 0, "too big"),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }
}
