//! x87 80-bit long doubles, for INCRBYFLOAT and HINCRBYFLOAT.
//!
//! Redis does these increments in C `long double` and prints `%.17Lf` with trailing zeros
//! stripped. On x86-64 that is the x87 extended format (64-bit significand), so `0.1 + 0.2`
//! prints `0.3` where f64 arithmetic gives `0.30000000000000004`. Clients see the stored
//! string, so we compute in the same format (software emulation by `rustc_apfloat`, the
//! float library rustc itself uses) and print the exact decimal expansion the same way.

use rustc_apfloat::ieee::{Double, X87DoubleExtended};
use rustc_apfloat::{Float, FloatConvert, Round, Status};

/// Redis's `MAX_LONG_DOUBLE_CHARS`: longer inputs are refused.
const INPUT_BYTES_MAX: usize = 5 * 1024;

#[derive(Copy, Clone, Debug)]
pub struct LongDouble(X87DoubleExtended);

impl std::ops::Add for LongDouble {
    type Output = LongDouble;

    /// Rounds to nearest, ties to even, as the x87 unit does by default.
    fn add(self, other: LongDouble) -> LongDouble {
        LongDouble((self.0 + other.0).value)
    }
}

/// Parses a C hex float (`0x1.8p3`, `0x10`); `None` if `text` is not hex, `Some(None)` if it
/// is malformed hex.
pub fn hex_float(text: &str) -> Option<Option<f64>> {
    let (negative, body) = split_sign(text);
    let digits = body
        .strip_prefix("0x")
        .or_else(|| body.strip_prefix("0X"))?;
    Some(parse_hex::<Double>(digits, negative).map(|d| f64::from_bits(d.to_bits() as u64)))
}

fn split_sign(text: &str) -> (bool, &str) {
    match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    }
}

fn parse_hex<F: Float>(digits: &str, negative: bool) -> Option<F> {
    let valid = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'.');
    let (mantissa, exponent) = match digits.split_once(['p', 'P']) {
        Some((m, e)) => (m, e),
        None => (digits, "0"),
    };
    if mantissa.is_empty()
        || mantissa == "."
        || !valid(mantissa)
        || mantissa.matches('.').count() > 1
    {
        return None;
    }
    let exp_digits = exponent.trim_start_matches(['+', '-']);
    if exp_digits.is_empty() || !exp_digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let parsed = F::from_str_r(
        &format!("0x{mantissa}p{exponent}"),
        Round::NearestTiesToEven,
    )
    .ok()?;
    finite_or_exact(parsed.status, parsed.value).map(|v| if negative { -v } else { v })
}

/// Rejects what `strtold` flags with ERANGE: overflow, and underflow all the way to zero.
fn finite_or_exact<F: Float>(status: Status, value: F) -> Option<F> {
    if status.contains(Status::OVERFLOW) || (status.contains(Status::UNDERFLOW) && value.is_zero())
    {
        return None;
    }
    Some(value)
}

impl LongDouble {
    pub const ZERO: LongDouble = LongDouble(X87DoubleExtended::ZERO);

    /// Redis's `string2ld`: the whole string must be a number (no spaces, no NaN).
    pub fn parse(arg: &[u8]) -> Option<LongDouble> {
        if arg.is_empty() || arg.len() >= INPUT_BYTES_MAX || arg[0].is_ascii_whitespace() {
            return None;
        }
        let text = std::str::from_utf8(arg).ok()?;
        let (negative, body) = split_sign(text);
        let lower = body.to_ascii_lowercase();
        if lower == "inf" || lower == "infinity" {
            let inf = X87DoubleExtended::INFINITY;
            return Some(LongDouble(if negative { -inf } else { inf }));
        }
        if let Some(digits) = lower.strip_prefix("0x") {
            return parse_hex::<X87DoubleExtended>(digits, negative).map(LongDouble);
        }
        if !is_decimal(body) {
            return None;
        }
        let parsed = X87DoubleExtended::from_str_r(body, Round::NearestTiesToEven).ok()?;
        let value = finite_or_exact(parsed.status, parsed.value)?;
        Some(LongDouble(if negative { -value } else { value }))
    }

    pub fn is_finite(self) -> bool {
        self.0.is_finite()
    }

    pub fn to_f64(self) -> f64 {
        let mut loses_info = false;
        let d: Double = self.0.convert(&mut loses_info).value;
        f64::from_bits(d.to_bits() as u64)
    }

    /// `%.17Lf` with trailing zeros (and a trailing point) removed and `-0` printed as `0`:
    /// Redis's `LD_STR_HUMAN`. Only for finite values.
    pub fn to_human(self) -> String {
        let bits = self.0.to_bits();
        let negative = bits >> 79 & 1 == 1;
        let exponent = (bits >> 64 & 0x7fff) as i32;
        let significand = bits as u64;
        // value = significand * 2^(e - 16383 - 63); denormals use e = 1.
        let shift = exponent.max(1) - 16383 - 63;
        let scaled = scaled_by_1e17(significand, shift);
        let mut digits = scaled.to_string();
        if digits.len() <= 17 {
            digits = format!("{}{digits}", "0".repeat(18 - digits.len()));
        }
        let (int_part, frac_part) = digits.split_at(digits.len() - 17);
        let frac = frac_part.trim_end_matches('0');
        let mut out = String::with_capacity(digits.len() + 2);
        let is_zero = int_part.bytes().all(|b| b == b'0') && frac.is_empty();
        if negative && !is_zero {
            out.push('-');
        }
        out.push_str(int_part);
        if !frac.is_empty() {
            out.push('.');
            out.push_str(frac);
        }
        out
    }
}

fn is_decimal(s: &str) -> bool {
    let (mantissa, exponent) = match s.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (s, None),
    };
    let digits = mantissa.bytes().filter(u8::is_ascii_digit).count();
    let dots = mantissa.bytes().filter(|&b| b == b'.').count();
    if digits == 0 || dots > 1 || digits + dots != mantissa.len() {
        return false;
    }
    match exponent {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['+', '-']).unwrap_or(e);
            !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
        }
    }
}

/// round_half_even(significand * 2^shift * 10^17), exactly.
fn scaled_by_1e17(significand: u64, shift: i32) -> BigUint {
    const E17: u128 = 100_000_000_000_000_000;
    let product = u128::from(significand) * E17; // < 2^121
    if shift >= 0 {
        let mut n = BigUint::from_u128(product);
        n.shl(shift as u32);
        return n;
    }
    let k = (-shift) as u32;
    if k >= 128 {
        // product < 2^121 <= 2^(k-1): below one half, rounds to zero.
        return BigUint::from_u128(0);
    }
    let quotient = product >> k;
    let remainder = product & ((1u128 << k) - 1);
    let half = 1u128 << (k - 1);
    let round_up = remainder > half || (remainder == half && quotient & 1 == 1);
    BigUint::from_u128(quotient + u128::from(round_up))
}

/// Just enough of an unsigned big integer to print huge long doubles (up to ~2^16400).
struct BigUint {
    /// Little-endian base-2^32 limbs.
    limbs: Vec<u32>,
}

impl BigUint {
    fn from_u128(mut n: u128) -> BigUint {
        let mut limbs = Vec::new();
        while n > 0 {
            limbs.push(n as u32);
            n >>= 32;
        }
        BigUint { limbs }
    }

    fn shl(&mut self, bits: u32) {
        let (words, bits) = ((bits / 32) as usize, bits % 32);
        if bits > 0 {
            let mut carry = 0u32;
            for limb in &mut self.limbs {
                let next = *limb >> (32 - bits);
                *limb = (*limb << bits) | carry;
                carry = next;
            }
            if carry > 0 {
                self.limbs.push(carry);
            }
        }
        self.limbs.splice(0..0, std::iter::repeat_n(0, words));
    }

    /// Divides in place by `d`, returning the remainder.
    fn div_rem(&mut self, d: u32) -> u32 {
        let mut rem = 0u64;
        for limb in self.limbs.iter_mut().rev() {
            let cur = (rem << 32) | u64::from(*limb);
            *limb = (cur / u64::from(d)) as u32;
            rem = cur % u64::from(d);
        }
        while self.limbs.last() == Some(&0) {
            self.limbs.pop();
        }
        rem as u32
    }
}

impl std::fmt::Display for BigUint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.limbs.is_empty() {
            return f.write_str("0");
        }
        let mut n = BigUint {
            limbs: self.limbs.clone(),
        };
        let mut chunks = Vec::new();
        while !n.limbs.is_empty() {
            chunks.push(n.div_rem(1_000_000_000));
        }
        let mut out = String::new();
        for (i, chunk) in chunks.iter().rev().enumerate() {
            if i == 0 {
                out.push_str(&chunk.to_string());
            } else {
                out.push_str(&format!("{chunk:09}"));
            }
        }
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(values: &[&str]) -> String {
        values
            .iter()
            .map(|v| LongDouble::parse(v.as_bytes()).unwrap())
            .fold(LongDouble::ZERO, |a, b| a + b)
            .to_human()
    }

    /// Vectors checked against redis-server 7.0.15 on x86-64.
    #[test]
    fn matches_redis_incrbyfloat() {
        assert_eq!(sum(&["0.1", "0.1", "0.1"]), "0.3");
        assert_eq!(sum(&["0.1", "0.2"]), "0.3");
        assert_eq!(sum(&["1.1", "1.1", "1.1"]), "3.3");
        assert_eq!(sum(&["12345.678"]), "12345.67799999999999994");
        assert_eq!(sum(&["1234567.891"]), "1234567.89099999999996271");
        assert_eq!(sum(&["3.14159265358979323846"]), "3.14159265358979324");
        assert_eq!(sum(&["1e-17"]), "0.00000000000000001");
        assert_eq!(sum(&["1e-20"]), "0");
        assert_eq!(sum(&["-1e-18"]), "0");
        assert_eq!(sum(&["1.5e-5"]), "0.000015");
        assert_eq!(sum(&["5.0e3", "0x10"]), "5016");
        assert_eq!(sum(&["10.5", "-5e-3"]), "10.495");
        assert_eq!(sum(&["1e18", "0.5"]), "1000000000000000000.5");
        assert_eq!(sum(&["1e20", "1"]), "100000000000000000000");
        assert_eq!(sum(&["9223372036854775807", "1"]), "9223372036854775808");
        assert!(sum(&["1e300"]).starts_with("1000000000000000000008997324079559193870523944273290747938260082321265646596180935755849152083750497190350372508614274835903592556184672983913096260520748646287327135641843653294084255107606016789726652932370030551382947620994540294772781889620606179267611627097410650567187386105690089424915104006144"));
        let huge = sum(&["1e4000"]);
        assert_eq!(huge.len(), 4000);
        assert!(huge.starts_with("999999999999999999996546387309962378493249258350695763130150"));
        assert_eq!(
            sum(&["1e70"]),
            "10000000000000000000222479489586148259025995410601157579323600873193472"
        );
        assert_eq!(sum(&["123.456"]), "123.456");
        assert_eq!(sum(&["99.99"]), "99.99");
        assert_eq!(sum(&["0.3333333333333333333333"]), "0.33333333333333333");
    }

    #[test]
    fn parsing_follows_strtold() {
        for ok in [
            "+1.5", "-2", "007", ".5", "5.", "1e3", "1E2", "0x10", "0x1p-2", "inf", "-inf",
            "infinity", "1e-4950",
        ] {
            assert!(LongDouble::parse(ok.as_bytes()).is_some(), "{ok}");
        }
        for bad in [
            "", " 1", "1 ", "nan", "1abc", "1e5000", "1e-5000", "e5", ".", "0x",
        ] {
            assert!(LongDouble::parse(bad.as_bytes()).is_none(), "{bad}");
        }
        assert!(!LongDouble::parse(b"inf").unwrap().is_finite());
    }
}
