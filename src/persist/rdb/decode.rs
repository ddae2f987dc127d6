//! Reading an RDB file: every type and encoding Redis 7.0 (and 7.2's listpack sets) writes.
//!
//! The reader works on the whole file in memory and checks every length against what is left,
//! so a truncated or corrupt file is a [`FormatError`] with the byte offset where reading
//! stopped making sense, never a panic or an allocation sized by a corrupt length.

use super::packed::{self, Element};
use super::{op, ty, FormatError, CRC64, RDB_VERSION_MAX};
use crate::keyspace::bytes::CompactBytes;
use crate::keyspace::value::{EncodingLimits, HashValue, ListValue, SetValue, Value, ZSetValue};
use std::borrow::Cow;

/// Items reserved up front for a collection whatever its length field says: a length is
/// only bounded by the bytes left, and each item takes several times its encoded size in
/// memory, so a damaged file could otherwise ask for many times its own size at once.
const PREALLOCATED_ITEMS_MAX: usize = 1 << 16;

/// How to load.
pub struct LoadOptions<'a> {
    pub limits: &'a EncodingLimits,
    /// Databases the node has: a key for a higher one is an error, as in Redis.
    pub databases: usize,
    /// Check the CRC-64 trailer (`rdbchecksum`); a trailer of zero is never checked.
    pub verify_checksum: bool,
    /// Skip keys that expired before this time (Unix ms), as a primary loading its own file
    /// does; `None` keeps them (an AOF base, whose incr file deletes them itself).
    pub drop_expired_before_ms: Option<u64>,
}

/// What a load hands over: keys, and the size hints that precede them.
pub enum Item<'a> {
    Key(Record<'a>),
    /// RESIZEDB: about this many keys are coming for `db` (a hint, bounded by the file size).
    DbSize {
        db: usize,
        keys: u64,
    },
}

/// One key read from the file.
pub struct Record<'a> {
    /// Where the key's record starts in the file (for errors found after reading it).
    pub offset: usize,
    pub db: usize,
    pub key: Cow<'a, [u8]>,
    pub value: Value,
    /// 0: no expiry.
    pub expire_at_ms: u64,
}

/// What a load found besides the keys.
#[derive(Debug, Default)]
pub struct LoadSummary {
    pub keys_loaded: u64,
    pub keys_expired: u64,
    pub empty_keys_skipped: u64,
    pub functions_skipped: u64,
    /// The file's AUX fields (redis-ver, ctime, repl-id, ...).
    pub aux: Vec<(Vec<u8>, Vec<u8>)>,
    /// Bytes the RDB took, trailer included: an AOF with an RDB preamble goes on from here.
    pub consumed: usize,
}

/// Reads every key of an RDB image, handing each to `sink` (which may refuse it, e.g. a
/// duplicate, with a reason that becomes the error).
pub fn load<'a>(
    bytes: &'a [u8],
    opts: &LoadOptions<'_>,
    mut sink: impl FnMut(Item<'a>) -> Result<(), String>,
) -> Result<LoadSummary, FormatError> {
    let mut r = Reader::new(bytes, opts.limits);
    let version = r.header()?;
    let mut summary = LoadSummary::default();
    let (mut db, mut expire_at_ms) = (0usize, 0u64);
    loop {
        let at = r.pos;
        let kind = r.u8()?;
        match kind {
            op::EOF => break,
            op::SELECTDB => {
                let id = r.len()?;
                if id >= opts.databases as u64 {
                    return Err(r.error_at(
                        at,
                        format!(
                            "database {id} is out of range: this node has {}",
                            opts.databases
                        ),
                    ));
                }
                db = id as usize;
            }
            op::RESIZEDB => {
                // Every key takes at least 3 bytes: a larger hint is damage, not a size.
                let keys = r.len()?.min(bytes.len() as u64 / 3);
                r.len()?;
                sink(Item::DbSize { db, keys }).map_err(|why| r.error_at(at, why))?;
            }
            op::EXPIRETIME_MS => expire_at_ms = u64::from_le_bytes(r.array()?),
            op::EXPIRETIME => {
                expire_at_ms = u64::from(u32::from_le_bytes(r.array()?)) * 1000;
            }
            op::AUX => {
                let key = r.string()?.into_owned();
                let value = r.string()?.into_owned();
                summary.aux.push((key, value));
            }
            op::IDLE => {
                r.len()?;
            }
            op::FREQ => {
                r.u8()?;
            }
            op::FUNCTION2 => {
                // A Lua library: there is nothing here to run it with.
                r.string()?;
                summary.functions_skipped += 1;
            }
            op::MODULE_AUX | op::FUNCTION => {
                return Err(r.error_at(at, "module data and 7.0-rc functions are not supported"));
            }
            _ => {
                let key = r.string()?;
                let value = r.value(kind, at)?;
                let expire = std::mem::take(&mut expire_at_ms);
                let Some(value) = value else {
                    summary.empty_keys_skipped += 1;
                    continue;
                };
                if expire != 0 && opts.drop_expired_before_ms.is_some_and(|now| expire < now) {
                    summary.keys_expired += 1;
                    continue;
                }
                sink(Item::Key(Record {
                    offset: at,
                    db,
                    key,
                    value,
                    expire_at_ms: expire,
                }))
                .map_err(|why| r.error_at(at, why))?;
                summary.keys_loaded += 1;
            }
        }
    }
    if version >= 5 {
        let computed = CRC64.checksum(&bytes[..r.pos]);
        let stored = u64::from_le_bytes(r.array()?);
        if opts.verify_checksum && stored != 0 && stored != computed {
            return Err(r.error_at(
                r.pos - 8,
                format!("wrong RDB checksum: stored {stored:016x}, computed {computed:016x}"),
            ));
        }
    }
    summary.consumed = r.pos;
    Ok(summary)
}

/// A length, or the special string encoding that takes its place.
enum Len {
    Plain(u64),
    Encoded(u8),
}

/// The most an LZF-compressed run can expand: a 3-byte back-reference yields 264 bytes.
const LZF_EXPANSION_MAX: u64 = 88;

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    limits: EncodingLimits,
}

/// Why a DUMP payload was refused (RESTORE's two errors).
#[derive(Debug, PartialEq, Eq)]
pub enum DumpError {
    /// Too short, a newer RDB version, or a checksum that does not match.
    VersionOrChecksum,
    /// The value does not decode.
    BadFormat,
}

/// The value of a DUMP payload: its type byte and RDB encoding, then the RDB version (2 bytes)
/// and a CRC-64 of everything before it (8 bytes), all checked. `None` for an empty aggregate.
pub fn undump(payload: &[u8], limits: &EncodingLimits) -> Result<Option<Value>, DumpError> {
    let body_len = payload
        .len()
        .checked_sub(10)
        .ok_or(DumpError::VersionOrChecksum)?;
    let (body, footer) = payload.split_at(body_len);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    let mut crc = [0u8; 8];
    crc.copy_from_slice(&footer[2..]);
    let checksum_ok = CRC64.checksum(&payload[..body_len + 2]) == u64::from_le_bytes(crc);
    if u32::from(version) > RDB_VERSION_MAX || !checksum_ok {
        return Err(DumpError::VersionOrChecksum);
    }
    let mut r = Reader::new(body, limits);
    let kind = r.u8().map_err(|_| DumpError::BadFormat)?;
    let value = r.value(kind, 0).map_err(|_| DumpError::BadFormat)?;
    if r.pos != body.len() {
        return Err(DumpError::BadFormat);
    }
    Ok(value)
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], limits: &EncodingLimits) -> Reader<'a> {
        Reader {
            bytes,
            pos: 0,
            limits: *limits,
        }
    }

    fn error_at(&self, offset: usize, what: impl Into<String>) -> FormatError {
        FormatError {
            offset: offset as u64,
            what: what.into(),
        }
    }

    fn header(&mut self) -> Result<u32, FormatError> {
        let magic = self.take(9)?;
        let version = std::str::from_utf8(&magic[5..])
            .ok()
            .filter(|_| &magic[..5] == b"REDIS")
            .and_then(|v| v.parse::<u32>().ok())
            .ok_or_else(|| self.error_at(0, "not an RDB file (no REDIS magic)"))?;
        if !(1..=RDB_VERSION_MAX).contains(&version) {
            return Err(self.error_at(5, format!("can't handle RDB format version {version}")));
        }
        Ok(version)
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], FormatError> {
        let left = (self.bytes.len() - self.pos) as u64;
        if n > left {
            return Err(self.error_at(
                self.pos,
                format!("unexpected end of file: {n} bytes wanted, {left} left"),
            ));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }

    fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N as u64)?);
        Ok(out)
    }

    fn len_or_encoding(&mut self) -> Result<Len, FormatError> {
        let at = self.pos;
        let b = self.u8()?;
        Ok(match b >> 6 {
            0 => Len::Plain(u64::from(b & 0x3F)),
            1 => Len::Plain((u64::from(b & 0x3F) << 8) | u64::from(self.u8()?)),
            3 => Len::Encoded(b & 0x3F),
            _ => match b {
                0x80 => Len::Plain(u64::from(u32::from_be_bytes(self.array()?))),
                0x81 => Len::Plain(u64::from_be_bytes(self.array()?)),
                _ => return Err(self.error_at(at, format!("unknown length encoding {b:#04x}"))),
            },
        })
    }

    fn len(&mut self) -> Result<u64, FormatError> {
        let at = self.pos;
        match self.len_or_encoding()? {
            Len::Plain(n) => Ok(n),
            Len::Encoded(_) => Err(self.error_at(at, "a string encoding where a length belongs")),
        }
    }

    /// A count of items that each take at least `item_bytes_min` bytes: a count the rest of
    /// the file cannot hold is corrupt (and must not size an allocation).
    fn count(&mut self, item_bytes_min: u64) -> Result<usize, FormatError> {
        let at = self.pos;
        let n = self.len()?;
        let left = (self.bytes.len() - self.pos) as u64;
        if n.saturating_mul(item_bytes_min) > left {
            return Err(self.error_at(at, format!("{n} items cannot fit in the {left} bytes left")));
        }
        Ok(n as usize)
    }

    fn string(&mut self) -> Result<Cow<'a, [u8]>, FormatError> {
        let at = self.pos;
        match self.len_or_encoding()? {
            Len::Plain(n) => Ok(Cow::Borrowed(self.take(n)?)),
            Len::Encoded(0) => Ok(int_text(i64::from(self.u8()? as i8))),
            Len::Encoded(1) => Ok(int_text(i64::from(i16::from_le_bytes(self.array()?)))),
            Len::Encoded(2) => Ok(int_text(i64::from(i32::from_le_bytes(self.array()?)))),
            Len::Encoded(3) => self.lzf_string(at).map(Cow::Owned),
            Len::Encoded(e) => Err(self.error_at(at, format!("unknown string encoding {e}"))),
        }
    }

    fn lzf_string(&mut self, at: usize) -> Result<Vec<u8>, FormatError> {
        let compressed_len = self.len()?;
        let len = self.len()?;
        if len > compressed_len.saturating_mul(LZF_EXPANSION_MAX) || compressed_len == 0 {
            return Err(self.error_at(at, "LZF lengths are inconsistent"));
        }
        let compressed = self.take(compressed_len)?;
        match lzf::decompress(compressed, len as usize) {
            Ok(out) if out.len() as u64 == len => Ok(out),
            _ => Err(self.error_at(at, "LZF data is corrupt")),
        }
    }

    fn double_text(&mut self) -> Result<f64, FormatError> {
        let at = self.pos;
        match self.u8()? {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            n => {
                let text = self.take(u64::from(n))?;
                parse_double(text).ok_or_else(|| self.error_at(at, "score is not a number"))
            }
        }
    }

    fn value(&mut self, kind: u8, at: usize) -> Result<Option<Value>, FormatError> {
        let value = match kind {
            ty::STRING => Value::Str(CompactBytes::new(&self.string()?)),
            ty::LIST => {
                let n = self.count(1)?;
                let mut list = ListValue::with_capacity(n.min(PREALLOCATED_ITEMS_MAX));
                for _ in 0..n {
                    list.push_back(CompactBytes::new(&self.string()?));
                }
                Value::List(Box::new(list))
            }
            ty::SET => {
                let n = self.count(1)?;
                let mut members = Vec::with_capacity(n.min(PREALLOCATED_ITEMS_MAX));
                for _ in 0..n {
                    members.push(self.string()?);
                }
                self.set(members.iter().map(|m| &m[..]), at)?
            }
            ty::ZSET | ty::ZSET_2 => {
                let n = self.count(2)?;
                let mut pairs = Vec::with_capacity(n.min(PREALLOCATED_ITEMS_MAX));
                for _ in 0..n {
                    let member = self.string()?;
                    let score = if kind == ty::ZSET_2 {
                        f64::from_le_bytes(self.array()?)
                    } else {
                        self.double_text()?
                    };
                    pairs.push((member, score));
                }
                self.zset(pairs.iter().map(|(m, s)| (&m[..], *s)), at)?
            }
            ty::HASH => {
                let n = self.count(2)?;
                let mut pairs = Vec::with_capacity(n.min(PREALLOCATED_ITEMS_MAX));
                for _ in 0..n {
                    pairs.push((self.string()?, self.string()?));
                }
                self.hash(pairs.iter().map(|(f, v)| (&f[..], &v[..])), at)?
            }
            ty::HASH_ZIPMAP => self.packed_pairs(packed::zipmap, at, Self::hash_of)?,
            ty::HASH_ZIPLIST => self.packed_pairs(packed::ziplist, at, Self::hash_of)?,
            ty::HASH_LISTPACK => self.packed_pairs(packed::listpack, at, Self::hash_of)?,
            ty::ZSET_ZIPLIST => self.packed_pairs(packed::ziplist, at, Self::zset_of)?,
            ty::ZSET_LISTPACK => self.packed_pairs(packed::listpack, at, Self::zset_of)?,
            ty::LIST_ZIPLIST => {
                let blob = self.blob(packed::ziplist)?;
                list_of(blob.into_iter())
            }
            ty::SET_INTSET => {
                let blob_at = self.pos;
                let blob = self.string()?;
                let members = packed::intset(&blob).map_err(|e| self.blob_error(blob_at, e))?;
                let texts: Vec<_> = members.into_iter().map(int_text).collect();
                self.set(texts.iter().map(|m| &m[..]), at)?
            }
            ty::SET_LISTPACK => {
                let blob = self.blob(packed::listpack)?;
                let texts: Vec<_> = blob.into_iter().map(Element::into_bytes).collect();
                self.set(texts.iter().map(|m| &m[..]), at)?
            }
            ty::LIST_QUICKLIST | ty::LIST_QUICKLIST_2 => self.quicklist(kind)?,
            ty::STREAM_LISTPACKS | ty::STREAM_LISTPACKS_2 => {
                return Err(self.error_at(at, "streams are not supported"));
            }
            ty::MODULE | ty::MODULE_2 => {
                return Err(self.error_at(at, "module values are not supported"));
            }
            _ => return Err(self.error_at(at, format!("unknown value type {kind}"))),
        };
        Ok((!value.is_empty()).then_some(value))
    }

    fn quicklist(&mut self, kind: u8) -> Result<Value, FormatError> {
        let nodes = self.count(2)?;
        let mut list = ListValue::new();
        for _ in 0..nodes {
            let container_at = self.pos;
            let container = if kind == ty::LIST_QUICKLIST_2 {
                self.len()?
            } else {
                QUICKLIST_PACKED
            };
            match container {
                QUICKLIST_PLAIN => list.push_back(CompactBytes::new(&self.string()?)),
                QUICKLIST_PACKED => {
                    let parse = if kind == ty::LIST_QUICKLIST_2 {
                        packed::listpack
                    } else {
                        packed::ziplist
                    };
                    let elements = self.blob(parse)?;
                    list.extend(
                        elements
                            .into_iter()
                            .map(|e| CompactBytes::new(&e.into_bytes())),
                    );
                }
                other => {
                    return Err(
                        self.error_at(container_at, format!("unknown quicklist container {other}"))
                    );
                }
            }
        }
        Ok(Value::List(Box::new(list)))
    }

    /// A packed blob (a string holding a listpack, ziplist, ...) and its parsed elements.
    /// The elements are owned: the blob may have been LZF-compressed.
    fn blob(
        &mut self,
        parse: for<'b> fn(&'b [u8]) -> packed::BlobResult<Vec<Element<'b>>>,
    ) -> Result<Vec<Element<'static>>, FormatError> {
        let blob_at = self.pos;
        let blob = self.string()?;
        let elements = parse(&blob).map_err(|e| self.blob_error(blob_at, e))?;
        Ok(elements.into_iter().map(owned).collect())
    }

    fn blob_error(&self, blob_at: usize, (inner, what): (usize, &str)) -> FormatError {
        self.error_at(blob_at, format!("{what} (byte {inner} of the blob)"))
    }

    fn packed_pairs(
        &mut self,
        parse: for<'b> fn(&'b [u8]) -> packed::BlobResult<Vec<Element<'b>>>,
        at: usize,
        build: fn(&Self, Vec<Element<'static>>, usize) -> Result<Value, FormatError>,
    ) -> Result<Value, FormatError> {
        let elements = self.blob(parse)?;
        if elements.len() % 2 != 0 {
            return Err(self.error_at(at, "a packed map with an odd number of elements"));
        }
        build(self, elements, at)
    }

    fn hash_of(&self, elements: Vec<Element<'static>>, at: usize) -> Result<Value, FormatError> {
        let texts: Vec<_> = elements.into_iter().map(Element::into_bytes).collect();
        self.hash(texts.chunks(2).map(|p| (&p[0][..], &p[1][..])), at)
    }

    fn zset_of(&self, elements: Vec<Element<'static>>, at: usize) -> Result<Value, FormatError> {
        let mut pairs = Vec::with_capacity(elements.len() / 2);
        let mut it = elements.into_iter();
        while let (Some(member), Some(score)) = (it.next(), it.next()) {
            let score = match score {
                Element::Int(i) => Some(i as f64),
                other => parse_double(&other.into_bytes()),
            }
            .ok_or_else(|| self.error_at(at, "score is not a number"))?;
            pairs.push((member.into_bytes(), score));
        }
        self.zset(pairs.iter().map(|(m, s)| (&m[..], *s)), at)
    }

    fn hash<'b>(
        &self,
        pairs: impl Iterator<Item = (&'b [u8], &'b [u8])>,
        at: usize,
    ) -> Result<Value, FormatError> {
        let mut hash = HashValue::new();
        for (field, value) in pairs {
            if !hash.set(field, value, &self.limits) {
                return Err(self.error_at(at, "duplicate hash field"));
            }
        }
        Ok(Value::Hash(Box::new(hash)))
    }

    fn set<'b>(
        &self,
        members: impl Iterator<Item = &'b [u8]>,
        at: usize,
    ) -> Result<Value, FormatError> {
        let mut set = SetValue::new();
        for member in members {
            if !set.add(member, &self.limits) {
                return Err(self.error_at(at, "duplicate set member"));
            }
        }
        Ok(Value::Set(Box::new(set)))
    }

    fn zset<'b>(
        &self,
        pairs: impl Iterator<Item = (&'b [u8], f64)>,
        at: usize,
    ) -> Result<Value, FormatError> {
        let mut zset = ZSetValue::new();
        for (member, score) in pairs {
            if score.is_nan() {
                return Err(self.error_at(at, "sorted set score is NaN"));
            }
            if zset.set_score(member, score, &self.limits).is_some() {
                return Err(self.error_at(at, "duplicate sorted set member"));
            }
        }
        Ok(Value::ZSet(Box::new(zset)))
    }
}

const QUICKLIST_PLAIN: u64 = 1;
const QUICKLIST_PACKED: u64 = 2;

fn list_of(elements: impl Iterator<Item = Element<'static>>) -> Value {
    Value::List(Box::new(
        elements
            .map(|e| CompactBytes::new(&e.into_bytes()))
            .collect(),
    ))
}

fn owned(e: Element<'_>) -> Element<'static> {
    match e {
        Element::Int(i) => Element::Int(i),
        Element::Bytes(b) => Element::Owned(b.to_vec().into_boxed_slice()),
        Element::Owned(b) => Element::Owned(b),
    }
}

fn int_text(i: i64) -> Cow<'static, [u8]> {
    Cow::Owned(itoa::Buffer::new().format(i).as_bytes().to_vec())
}

/// A score as Redis's `strtod` reads it from a file.
fn parse_double(text: &[u8]) -> Option<f64> {
    std::str::from_utf8(text).ok()?.trim().parse().ok()
}
