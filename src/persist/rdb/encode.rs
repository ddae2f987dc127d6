//! Writing RDB: the header, database selectors, entries and the end marker. The CRC-64
//! trailer is computed by whoever writes the bytes out (see `persist::save`), so entries can
//! be encoded into separate buffers, in parallel, and written in any order.

use super::{op, ty, RDB_VERSION};
use crate::keyspace::value::{parse_i64_strict, Value};
use crate::keyspace::Entry;

/// Strings longer than this are tried with LZF when compression is on (Redis's threshold).
const COMPRESS_BYTES_MIN: usize = 21;

/// `REDIS0010`.
pub fn magic(out: &mut Vec<u8>) {
    out.extend_from_slice(format!("REDIS{RDB_VERSION:04}").as_bytes());
}

/// An AUX field (redis-ver, ctime, ...).
pub fn aux(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.push(op::AUX);
    string(out, key.as_bytes(), false);
    string(out, value, false);
}

/// Makes `db` the database of the entries that follow.
pub fn select_db(out: &mut Vec<u8>, db: usize) {
    out.push(op::SELECTDB);
    len(out, db as u64);
}

/// A size hint for the selected database: its keys, and how many of them expire.
pub fn resize_db(out: &mut Vec<u8>, keys: u64, expiring: u64) {
    out.push(op::RESIZEDB);
    len(out, keys);
    len(out, expiring);
}

/// One key with its expiry and value.
pub fn entry(out: &mut Vec<u8>, entry: &Entry, compress: bool) {
    if let Some(at) = entry.expire_at() {
        out.push(op::EXPIRETIME_MS);
        out.extend_from_slice(&at.to_le_bytes());
    }
    out.push(value_type(&entry.value));
    string(out, &entry.key, compress);
    value(out, &entry.value, compress);
}

/// DUMP's payload for `value`: its type byte and RDB encoding, the RDB version (2 bytes, LE)
/// and a CRC-64 of all that (8 bytes, LE), as Redis writes it.
pub fn dump(value: &Value) -> Vec<u8> {
    let mut out = vec![value_type(value)];
    self::value(&mut out, value, true);
    out.extend_from_slice(&(RDB_VERSION as u16).to_le_bytes());
    let crc = super::CRC64.checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The end marker; the 8-byte checksum follows it.
pub fn eof(out: &mut Vec<u8>) {
    out.push(op::EOF);
}

/// The type byte a value is written with.
pub fn value_type(value: &Value) -> u8 {
    match value {
        Value::Str(_) => ty::STRING,
        Value::List(_) => ty::LIST,
        Value::Set(_) => ty::SET,
        Value::ZSet(_) => ty::ZSET_2,
        Value::Hash(_) => ty::HASH,
    }
}

/// A value's body, in the plain encoding of its type.
pub fn value(out: &mut Vec<u8>, value: &Value, compress: bool) {
    match value {
        Value::Str(s) => string(out, s, compress),
        Value::List(list) => {
            len(out, list.len() as u64);
            for item in list.iter() {
                string(out, item, compress);
            }
        }
        Value::Set(set) => {
            len(out, set.len() as u64);
            for member in set.iter() {
                string(out, member, compress);
            }
        }
        Value::ZSet(zset) => {
            len(out, zset.len() as u64);
            for m in zset.members.iter() {
                string(out, &m.member, compress);
                out.extend_from_slice(&m.score.to_le_bytes());
            }
        }
        Value::Hash(hash) => {
            len(out, hash.fields.len() as u64);
            for f in hash.fields.iter() {
                string(out, &f.field, compress);
                string(out, &f.value, compress);
            }
        }
    }
}

/// A length: 6 bits, 14 bits, or a marker byte and 32 or 64 bits big-endian.
pub fn len(out: &mut Vec<u8>, n: u64) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]);
    } else if n <= u64::from(u32::MAX) {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// A string as Redis writes it: as an integer when it is the canonical text of one that fits
/// 32 bits, LZF-compressed when that saves at least 4 bytes, else raw.
pub fn string(out: &mut Vec<u8>, s: &[u8], compress: bool) {
    if s.len() <= 11 {
        if let Some(i) = parse_i64_strict(s) {
            if let Ok(i) = i8::try_from(i) {
                out.extend_from_slice(&[0xC0, i as u8]);
                return;
            }
            if let Ok(i) = i16::try_from(i) {
                out.push(0xC1);
                out.extend_from_slice(&i.to_le_bytes());
                return;
            }
            if let Ok(i) = i32::try_from(i) {
                out.push(0xC2);
                out.extend_from_slice(&i.to_le_bytes());
                return;
            }
        }
    }
    if compress && s.len() >= COMPRESS_BYTES_MIN {
        if let Ok(packed) = lzf::compress(s) {
            if packed.len() + 4 <= s.len() {
                out.push(0xC3);
                len(out, packed.len() as u64);
                len(out, s.len() as u64);
                out.extend_from_slice(&packed);
                return;
            }
        }
    }
    len(out, s.len() as u64);
    out.extend_from_slice(s);
}
