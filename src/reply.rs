//! `Reply`: the protocol-neutral result of a command.
//!
//! Replies carry RESP3's richer types (map, set, double, boolean); the RESP adapter downgrades
//! them for RESP2 clients exactly as Redis does, and the Rust API maps them to Rust types.
//! Command failures are `Reply::Error` values holding Redis's exact error text (without the
//! leading `-`), because clients parse those strings.

use crate::keyspace::bytes::CompactBytes;
use std::borrow::Cow;

/// A command's reply. See the module documentation for how each variant is encoded.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// A simple string, `+OK`.
    Status(Cow<'static, str>),
    /// An error: the text after `-`, e.g. `WRONGTYPE Operation against a key ...`.
    Error(Cow<'static, str>),
    /// An integer.
    Int(i64),
    /// A bulk string; up to 22 bytes are held inline, so small replies allocate nothing.
    Bulk(CompactBytes),
    /// Text for humans (INFO, CLIENT LIST): a verbatim string in RESP3, a bulk string in RESP2.
    Verbatim(CompactBytes),
    /// A missing value: `$-1` in RESP2, `_` in RESP3.
    Nil,
    /// A missing aggregate: `*-1` in RESP2, `_` in RESP3.
    NilArray,
    /// An array.
    Array(Vec<Reply>),
    /// A map in RESP3, a flat array of key, value, ... in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// A set in RESP3, an array in RESP2.
    Set(Vec<Reply>),
    /// A double in RESP3, a bulk string in RESP2 (formatted as Redis 7.0 does, `%.17g`).
    Double(f64),
    /// A boolean in RESP3, the integer 1 or 0 in RESP2.
    Bool(bool),
    /// Out-of-band data (pub/sub messages and confirmations): a push in RESP3, an array in
    /// RESP2.
    Push(Vec<Reply>),
    /// Several replies to one command, one after the other (SUBSCRIBE confirms each channel
    /// it was given); none for an empty list.
    Several(Vec<Reply>),
}

impl Reply {
    /// `+OK`
    pub const OK: Reply = Reply::Status(Cow::Borrowed("OK"));
    /// `+QUEUED`, the reply to a command queued inside MULTI.
    pub const QUEUED: Reply = Reply::Status(Cow::Borrowed("QUEUED"));

    /// A bulk string copied from `bytes`.
    pub fn bulk(bytes: &[u8]) -> Reply {
        Reply::Bulk(CompactBytes::new(bytes))
    }

    /// An error reply; `msg` is the text after `-`, e.g. `ERR syntax error`.
    pub fn error(msg: impl Into<Cow<'static, str>>) -> Reply {
        Reply::Error(msg.into())
    }

    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// An array of bulk strings.
    pub fn bulks<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Reply {
        Reply::Array(items.into_iter().map(Reply::bulk).collect())
    }

    /// A bulk string, or nil for `None`.
    pub fn opt_bulk(bytes: Option<&[u8]>) -> Reply {
        bytes.map_or(Reply::Nil, Reply::bulk)
    }

    /// A stored value as a bulk string, or nil for `None`: cloning a stored value copies a
    /// short one as one fixed-size block rather than by its length.
    pub fn opt_value(value: Option<&CompactBytes>) -> Reply {
        value.map_or(Reply::Nil, |v| Reply::Bulk(v.clone()))
    }
}

/// Redis's error replies, verbatim.
pub(crate) mod err {
    pub const NOAUTH: &str = "NOAUTH Authentication required.";
    pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
    pub const SYNTAX: &str = "ERR syntax error";
    pub const NOT_INT: &str = "ERR value is not an integer or out of range";
    pub const NOT_FLOAT: &str = "ERR value is not a valid float";
    pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
    pub const NAN_OR_INF: &str = "ERR increment would produce NaN or Infinity";
    pub const NO_SUCH_KEY: &str = "ERR no such key";
    pub const INDEX_RANGE: &str = "ERR index out of range";
    pub const DB_RANGE: &str = "ERR DB index is out of range";
    pub const MUST_BE_POSITIVE: &str = "ERR value is out of range, must be positive";
    pub const OFFSET_RANGE: &str = "ERR offset is out of range";
    pub const STRING_TOO_LONG: &str =
        "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
    pub const INVALID_CURSOR: &str = "ERR invalid cursor";
    pub const TIMEOUT_NOT_FLOAT: &str = "ERR timeout is not a float or out of range";
    pub const TIMEOUT_NEGATIVE: &str = "ERR timeout is negative";
    pub const MIN_MAX_FLOAT: &str = "ERR min or max is not a float";
    pub const MIN_MAX_LEX: &str = "ERR min or max not valid string range item";
    pub const SCORE_NAN: &str = "ERR resulting score is not a number (NaN)";
    pub const WEIGHT_FLOAT: &str = "ERR weight value is not a float";
    pub const NUMKEYS_POSITIVE: &str = "ERR numkeys should be greater than 0";
    pub const NUMKEYS_TOO_MANY: &str = "ERR Number of keys can't be greater than number of args";
    pub const COUNT_POSITIVE: &str = "ERR count should be greater than 0";
    pub const SAME_OBJECT: &str = "ERR source and destination objects are the same";
    pub const HASH_NOT_INT: &str = "ERR hash value is not an integer";
    pub const HASH_NOT_FLOAT: &str = "ERR hash value is not a float";
    pub const NESTED_MULTI: &str = "ERR MULTI calls can not be nested";
    pub const EXEC_WITHOUT_MULTI: &str = "ERR EXEC without MULTI";
    pub const DISCARD_WITHOUT_MULTI: &str = "ERR DISCARD without MULTI";
    pub const WATCH_IN_MULTI: &str = "ERR WATCH inside MULTI is not allowed";
    pub const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";
    pub const SELECT_CLUSTER: &str = "ERR SELECT is not allowed in cluster mode";
}

/// Formats a double as C's `%.17g` does, which is what Redis 7.0 replies with.
pub fn format_double(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if value.is_nan() {
        return "nan".to_string();
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    const PRECISION: i32 = 17;
    // Scientific form first: its exponent (after rounding to 17 digits) picks the style.
    let sci = format!("{:.*e}", (PRECISION - 1) as usize, value);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..PRECISION).contains(&exp) {
        let fixed = format!("{:.*}", (PRECISION - 1 - exp) as usize, value);
        strip_fraction_zeros(&fixed).to_string()
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!(
            "{}e{}{:02}",
            strip_fraction_zeros(mantissa),
            sign,
            exp.abs()
        )
    }
}

/// Drops trailing zeros after a decimal point, and the point itself when nothing follows.
pub fn strip_fraction_zeros(s: &str) -> &str {
    if !s.contains('.') {
        return s;
    }
    s.trim_end_matches('0').trim_end_matches('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_17g() {
        assert_eq!(format_double(1.0), "1");
        assert_eq!(format_double(1.1), "1.1000000000000001");
        assert_eq!(format_double(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_double(1e20), "1e+20");
        assert_eq!(format_double(1.5e-5), "1.5e-05");
        assert_eq!(format_double(123456.0), "123456");
        assert_eq!(format_double(-2.5), "-2.5");
        assert_eq!(format_double(0.0001), "0.0001");
        assert_eq!(format_double(1e16), "10000000000000000");
        assert_eq!(format_double(1e17), "1e+17");
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(-0.0), "-0");
        assert_eq!(format_double(3.0e300), "3.0000000000000002e+300");
    }
}
