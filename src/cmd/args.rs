//! Argument parsing with Redis's exact rules and error replies.

use super::CmdError;
use crate::keyspace::value::parse_i64_strict;
use crate::reply::err;
use std::time::Duration;

pub const NOT_INT: CmdError = CmdError::new(err::NOT_INT);
pub const NOT_FLOAT: CmdError = CmdError::new(err::NOT_FLOAT);
pub const SYNTAX: CmdError = CmdError::new(err::SYNTAX);

/// An integer argument (Redis's `string2ll`).
pub fn parse_i64(arg: &[u8]) -> Result<i64, CmdError> {
    parse_i64_strict(arg).ok_or(NOT_INT)
}

/// The count of SRANDMEMBER/HRANDFIELD/ZRANDMEMBER: any integer but i64::MIN (whose absolute
/// value does not fit).
pub fn parse_rand_count(arg: &[u8]) -> Result<i64, CmdError> {
    match parse_i64(arg)? {
        i64::MIN => Err(CmdError::new(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        )),
        n => Ok(n),
    }
}

/// A database index (SELECT, MOVE, COPY ... DB, SWAPDB): a 32-bit integer (`not_int` when it
/// is not an integer at all), then in range.
pub fn parse_db(arg: &[u8], db_count: usize, not_int: CmdError) -> Result<usize, CmdError> {
    let n = parse_i64(arg).map_err(|_| not_int)?;
    if i32::try_from(n).is_err() {
        return Err(CmdError::new(
            "ERR value is out of range, value must between -2147483648 and 2147483647",
        ));
    }
    if n < 0 || n as usize >= db_count {
        return Err(CmdError::new(err::DB_RANGE));
    }
    Ok(n as usize)
}

/// A non-negative count in 0..=i64::MAX, with `error` for anything else.
pub fn parse_count(arg: &[u8], error: &'static str) -> Result<usize, CmdError> {
    match parse_i64_strict(arg) {
        Some(n) if n >= 0 => Ok(n as usize),
        _ => Err(CmdError::new(error)),
    }
}

/// A floating-point argument (Redis's `strtod` rules: no spaces, no NaN, no overflow or
/// underflow to zero; `inf`, `-inf`, `+inf` and hex floats accepted).
pub fn parse_f64(arg: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(arg).ok()?;
    if text.is_empty() || text.starts_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    let value = match super::longdouble::hex_float(text) {
        Some(hex) => hex?,
        None => text.parse::<f64>().ok()?,
    };
    if value.is_nan() {
        return None;
    }
    let unsigned = text.trim_start_matches(['+', '-']);
    let named_infinity =
        unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity");
    if value.is_infinite() && !named_infinity {
        return None;
    }
    if value == 0.0 && has_nonzero_digit(unsigned) {
        return None;
    }
    Some(value)
}

/// Whether a decimal number's mantissa has a non-zero digit (so a zero result is underflow).
fn has_nonzero_digit(number: &str) -> bool {
    let mantissa = number.split(['e', 'E']).next().unwrap_or("");
    mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b))
}

/// A float argument, or `ERR value is not a valid float`.
pub fn parse_float(arg: &[u8]) -> Result<f64, CmdError> {
    parse_f64(arg).ok_or(NOT_FLOAT)
}

/// A blocking command's timeout in seconds: `None` means forever (0), as Redis 7.0 parses it.
pub fn parse_timeout(arg: &[u8]) -> Result<Option<Duration>, CmdError> {
    let seconds = super::longdouble::LongDouble::parse(arg)
        .map(|ld| ld.to_f64())
        .ok_or(CmdError::new(err::TIMEOUT_NOT_FLOAT))?;
    let ms = (seconds * 1000.0).ceil();
    // Redis casts to long long: anything beyond its range becomes LLONG_MIN, i.e. negative.
    if ms < 0.0 || ms.is_nan() || ms >= 9.223_372_036_854_776e18 {
        return Err(CmdError::new(err::TIMEOUT_NEGATIVE));
    }
    Ok((ms > 0.0).then(|| Duration::from_millis(ms as u64)))
}

/// A timeout in milliseconds (WAIT, WAITAOF): `None` means forever (0).
pub fn parse_timeout_ms(arg: &[u8]) -> Result<Option<Duration>, CmdError> {
    match parse_i64_strict(arg) {
        None => Err(CmdError::new(
            "ERR timeout is not an integer or out of range",
        )),
        Some(ms) if ms < 0 => Err(CmdError::new(err::TIMEOUT_NEGATIVE)),
        Some(ms) => Ok((ms > 0).then(|| Duration::from_millis(ms as u64))),
    }
}

/// Case-insensitive keyword comparison.
pub fn is(arg: &[u8], keyword: &str) -> bool {
    arg.eq_ignore_ascii_case(keyword.as_bytes())
}

/// `LEFT` or `RIGHT` (true for left).
pub fn parse_side(arg: &[u8]) -> Result<bool, CmdError> {
    if is(arg, "left") {
        Ok(true)
    } else if is(arg, "right") {
        Ok(false)
    } else {
        Err(SYNTAX)
    }
}

/// Formats an integer into a reusable string.
pub fn fmt_int(n: i64) -> String {
    itoa::Buffer::new().format(n).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_follow_strtod() {
        for (text, value) in [
            ("1.5", 1.5),
            ("-2", -2.0),
            (".5", 0.5),
            ("5.", 5.0),
            ("1e3", 1000.0),
            ("+1.5", 1.5),
            ("inf", f64::INFINITY),
            ("-inf", f64::NEG_INFINITY),
            ("+inf", f64::INFINITY),
            ("0x10", 16.0),
            ("0", 0.0),
            ("-0.0", -0.0),
        ] {
            assert_eq!(parse_f64(text.as_bytes()), Some(value), "{text}");
        }
        for bad in ["", " 1", "1 ", "nan", "abc", "1e400", "1e-400", "1e", "--1"] {
            assert_eq!(parse_f64(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout(b"0").unwrap(), None);
        assert_eq!(
            parse_timeout(b"1.5").unwrap(),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_timeout(b"0.0001").unwrap(),
            Some(Duration::from_millis(1))
        );
        assert_eq!(parse_timeout(b"-0.0001").unwrap(), None);
        assert_eq!(parse_timeout(b"-1").unwrap_err().0, err::TIMEOUT_NEGATIVE);
        assert_eq!(parse_timeout(b"1e17").unwrap_err().0, err::TIMEOUT_NEGATIVE);
        assert_eq!(parse_timeout(b"abc").unwrap_err().0, err::TIMEOUT_NOT_FLOAT);
    }
}
