//! The value types and their encodings.
//!
//! Each type has one in-memory representation; the Redis encoding name that `OBJECT ENCODING`
//! reports (listpack, intset, hashtable, skiplist, ...) is tracked as a flag that follows Redis's
//! conversion rules, including that a conversion is one-way, so users see what Redis would say.

use super::bytes::CompactBytes;
use super::dict::{dict_item, Dict};
use super::tree::OrderTree;
use std::cmp::Ordering;
use std::collections::VecDeque;

/// Thresholds at which small encodings convert (Redis's `*-max-listpack-*` directives).
#[derive(Copy, Clone, Debug)]
pub struct EncodingLimits {
    pub hash_max_listpack_entries: usize,
    pub hash_max_listpack_value: usize,
    pub set_max_intset_entries: usize,
    pub zset_max_listpack_entries: usize,
    pub zset_max_listpack_value: usize,
}

impl Default for EncodingLimits {
    fn default() -> Self {
        EncodingLimits {
            hash_max_listpack_entries: 512,
            hash_max_listpack_value: 64,
            set_max_intset_entries: 512,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
        }
    }
}

pub type ListValue = VecDeque<CompactBytes>;

pub enum Value {
    Str(CompactBytes),
    List(Box<ListValue>),
    Hash(Box<HashValue>),
    Set(Box<SetValue>),
    ZSet(Box<ZSetValue>),
}

/// The type of a value, as `TYPE` names it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ValueType {
    String,
    List,
    Hash,
    Set,
    ZSet,
}

impl ValueType {
    pub fn name(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::List => "list",
            ValueType::Hash => "hash",
            ValueType::Set => "set",
            ValueType::ZSet => "zset",
        }
    }

    /// The type a `SCAN ... TYPE` argument names (case-insensitive), if any.
    pub fn from_name(name: &[u8]) -> Option<ValueType> {
        [
            ValueType::String,
            ValueType::List,
            ValueType::Hash,
            ValueType::Set,
            ValueType::ZSet,
        ]
        .into_iter()
        .find(|t| t.name().as_bytes().eq_ignore_ascii_case(name))
    }

    /// Redis's numeric object type (used by `DEBUG DIGEST`).
    pub fn redis_code(self) -> u32 {
        match self {
            ValueType::String => 0,
            ValueType::List => 1,
            ValueType::Set => 2,
            ValueType::ZSet => 3,
            ValueType::Hash => 4,
        }
    }
}

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::Str(_) => ValueType::String,
            Value::List(_) => ValueType::List,
            Value::Hash(_) => ValueType::Hash,
            Value::Set(_) => ValueType::Set,
            Value::ZSet(_) => ValueType::ZSet,
        }
    }

    /// What `OBJECT ENCODING` reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s) if s.is_growable() => "raw",
            Value::Str(s) if s.len() <= 20 && parse_i64_strict(s).is_some() => "int",
            Value::Str(s) if s.len() <= 44 => "embstr",
            Value::Str(_) => "raw",
            Value::List(_) => "quicklist",
            Value::Hash(h) if h.listpack => "listpack",
            Value::Hash(_) => "hashtable",
            Value::Set(s) if s.intset => "intset",
            Value::Set(_) => "hashtable",
            Value::ZSet(z) if z.listpack => "listpack",
            Value::ZSet(_) => "skiplist",
        }
    }

    /// Number of elements for aggregate types, 1 for strings.
    pub fn len(&self) -> usize {
        match self {
            Value::Str(_) => 1,
            Value::List(l) => l.len(),
            Value::Hash(h) => h.fields.len(),
            Value::Set(s) => s.members.len(),
            Value::ZSet(z) => z.members.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// MEMORY USAGE's estimate of the bytes the value allocates: its containers exactly, its
    /// elements' own allocations extrapolated from the first `samples` (0: all of them).
    pub fn heap_bytes(&self, samples: usize) -> usize {
        use std::mem::size_of;
        fn extrapolate(len: usize, items: impl Iterator<Item = usize>, samples: usize) -> usize {
            let take = if samples == 0 { len } else { samples.min(len) };
            let (n, sum) = items.take(take).fold((0, 0), |(n, s), b| (n + 1, s + b));
            (sum * len).checked_div(n).unwrap_or(0)
        }
        match self {
            Value::Str(s) => s.heap_bytes(),
            Value::List(l) => {
                let elements = l.iter().map(CompactBytes::heap_bytes);
                size_of::<ListValue>()
                    + l.capacity() * size_of::<CompactBytes>()
                    + extrapolate(l.len(), elements, samples)
            }
            Value::Hash(h) => {
                let fields = h
                    .fields
                    .iter()
                    .map(|f| f.field.heap_bytes() + f.value.heap_bytes());
                size_of::<HashValue>()
                    + h.fields.bucket_count() * size_of::<HashField>()
                    + extrapolate(h.fields.len(), fields, samples)
            }
            Value::Set(s) => {
                let members = s.members.iter().map(|m| m.member.heap_bytes());
                size_of::<SetValue>()
                    + s.members.bucket_count() * size_of::<SetMember>()
                    + extrapolate(s.members.len(), members, samples)
            }
            Value::ZSet(z) => {
                // Each member's bytes are held twice: by the member index and the order.
                let members = z.members.iter().map(|m| 2 * m.member.heap_bytes());
                size_of::<ZSetValue>()
                    + z.members.bucket_count() * size_of::<ZMember>()
                    + z.order.node_bytes()
                    + extrapolate(z.members.len(), members, samples)
            }
        }
    }
}

impl Clone for Value {
    fn clone(&self) -> Self {
        match self {
            Value::Str(s) => Value::Str(s.clone()),
            Value::List(l) => Value::List(l.clone()),
            Value::Hash(h) => Value::Hash(Box::new(HashValue {
                fields: h.fields.clone(),
                listpack: h.listpack,
            })),
            Value::Set(s) => Value::Set(Box::new(SetValue {
                members: s.members.clone(),
                intset: s.intset,
            })),
            Value::ZSet(z) => {
                let mut copy = ZSetValue::new();
                copy.listpack = z.listpack;
                for m in z.members.iter() {
                    copy.insert(&m.member, m.score);
                }
                Value::ZSet(Box::new(copy))
            }
        }
    }
}

/// Redis's `string2ll`: an optional '-', no '+', no leading zeros (but "0"), no spaces, fits i64.
pub fn parse_i64_strict(s: &[u8]) -> Option<i64> {
    let digits = s.strip_prefix(b"-").unwrap_or(s);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if digits[0] == b'0' && (digits.len() > 1 || s.len() > 1) {
        return None;
    }
    // At most 19 digits: the magnitude fits a u64 (every RESP header goes through here, so
    // no UTF-8 check and generic parse).
    let magnitude = digits
        .iter()
        .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
    match digits.len() < s.len() {
        true => 0i64.checked_sub_unsigned(magnitude),
        false => i64::try_from(magnitude).ok(),
    }
}

// ---------------------------------------------------------------------------------------------
// Hashes

#[derive(Clone, Debug)]
pub struct HashField {
    pub field: CompactBytes,
    pub value: CompactBytes,
    filed_hash: u32,
}

dict_item!(HashField, field);

pub struct HashValue {
    pub fields: Dict<HashField>,
    /// Redis would still hold this hash as a listpack.
    pub listpack: bool,
}

impl HashValue {
    pub fn new() -> HashValue {
        HashValue {
            fields: Dict::new(),
            listpack: true,
        }
    }

    /// Sets `field` to `value`; returns true when the field is new.
    pub fn set(&mut self, field: &[u8], value: &[u8], limits: &EncodingLimits) -> bool {
        let (slot, added) = self.fields.get_or_insert_with(field, || HashField {
            field: CompactBytes::new(field),
            value: CompactBytes::EMPTY,
            filed_hash: 0,
        });
        slot.value = CompactBytes::new(value);
        if field.len() > limits.hash_max_listpack_value
            || value.len() > limits.hash_max_listpack_value
            || self.fields.len() > limits.hash_max_listpack_entries
        {
            self.listpack = false;
        }
        added
    }

    pub fn get(&self, field: &[u8]) -> Option<&CompactBytes> {
        self.fields.get(field).map(|f| &f.value)
    }
}

impl Default for HashValue {
    fn default() -> Self {
        HashValue::new()
    }
}

// ---------------------------------------------------------------------------------------------
// Sets

/// A set member, with the hash its dict filed it under.
#[derive(Clone)]
pub struct SetMember {
    member: CompactBytes,
    filed_hash: u32,
}

impl std::ops::Deref for SetMember {
    type Target = CompactBytes;
    fn deref(&self) -> &CompactBytes {
        &self.member
    }
}

dict_item!(SetMember, member);

pub struct SetValue {
    pub members: Dict<SetMember>,
    /// Redis would still hold this set as an intset (every member an integer, few enough).
    pub intset: bool,
}

impl SetValue {
    pub fn new() -> SetValue {
        SetValue {
            members: Dict::new(),
            intset: true,
        }
    }

    /// Adds a member; returns true when it was not there.
    pub fn add(&mut self, member: &[u8], limits: &EncodingLimits) -> bool {
        if self.members.contains(member) {
            return false;
        }
        self.members.insert_new(SetMember {
            member: CompactBytes::new(member),
            filed_hash: 0,
        });
        if self.intset
            && (parse_i64_strict(member).is_none()
                || self.members.len() > limits.set_max_intset_entries)
        {
            self.intset = false;
        }
        true
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        self.members.contains(member)
    }

    pub fn remove(&mut self, member: &[u8]) -> bool {
        self.members.remove(member).is_some()
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.members.iter().map(|m| m.as_slice())
    }
}

impl Default for SetValue {
    fn default() -> Self {
        SetValue::new()
    }
}

// ---------------------------------------------------------------------------------------------
// Sorted sets

#[derive(Clone, Debug)]
pub struct ZMember {
    pub member: CompactBytes,
    pub score: f64,
    filed_hash: u32,
}

dict_item!(ZMember, member);

/// The sorted-set order: by score, then by member bytes. Scores are never NaN.
#[derive(Clone, Debug)]
pub struct ScoreKey {
    pub score: f64,
    pub member: CompactBytes,
}

impl PartialEq for ScoreKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for ScoreKey {}

impl PartialOrd for ScoreKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ScoreKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .partial_cmp(&other.score)
            .unwrap_or(Ordering::Equal)
            .then_with(|| self.member.as_slice().cmp(other.member.as_slice()))
    }
}

pub struct ZSetValue {
    /// member -> score, for O(1) ZSCORE and membership.
    pub members: Dict<ZMember>,
    /// (score, member) in order, for O(log n) rank and range.
    pub order: OrderTree<ScoreKey>,
    /// Redis would still hold this sorted set as a listpack.
    pub listpack: bool,
}

impl ZSetValue {
    pub fn new() -> ZSetValue {
        ZSetValue {
            members: Dict::new(),
            order: OrderTree::new(),
            listpack: true,
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.members.get(member).map(|m| m.score)
    }

    /// Adds or updates `member` as Redis does: a new member that would not fit a listpack
    /// converts the set first, and a listpack stores integral scores as integers, so `-0`
    /// becomes `0` there. Returns the previous score.
    pub fn set_score(&mut self, member: &[u8], score: f64, limits: &EncodingLimits) -> Option<f64> {
        if self.listpack
            && !self.members.contains(member)
            && (self.len() + 1 > limits.zset_max_listpack_entries
                || member.len() > limits.zset_max_listpack_value)
        {
            self.listpack = false;
        }
        let score = if self.listpack && score == 0.0 {
            0.0
        } else {
            score
        };
        self.insert(member, score)
    }

    /// Sets `member`'s score exactly as given; returns the previous score.
    fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        let (slot, added) = self.members.get_or_insert_with(member, || ZMember {
            member: CompactBytes::new(member),
            score,
            filed_hash: 0,
        });
        let old = (!added).then_some(slot.score);
        if old == Some(score) {
            return old;
        }
        slot.score = score;
        if let Some(old_score) = old {
            self.order.remove(&ScoreKey {
                score: old_score,
                member: CompactBytes::new(member),
            });
        }
        self.order.insert(ScoreKey {
            score,
            member: CompactBytes::new(member),
        });
        old
    }

    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let removed = self.members.remove(member)?;
        self.order.remove(&ScoreKey {
            score: removed.score,
            member: removed.member,
        });
        Some(removed.score)
    }

    /// 0-based rank of `member` in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        Some(self.order.rank(&ScoreKey {
            score,
            member: CompactBytes::new(member),
        }))
    }
}

impl Default for ZSetValue {
    fn default() -> Self {
        ZSetValue::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_integers_are_redis_string2ll() {
        let ok: [(&str, i64); 5] = [
            ("0", 0),
            ("-1", -1),
            ("123", 123),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
        ];
        for (text, n) in ok {
            assert_eq!(parse_i64_strict(text.as_bytes()), Some(n), "{text}");
        }
        let refused = [
            "",
            "-",
            "-0",
            "+1",
            "01",
            " 1",
            "1 ",
            "1a",
            "9223372036854775808",
            "-9223372036854775809",
            "18446744073709551616",
            "99999999999999999999",
        ];
        for text in refused {
            assert_eq!(parse_i64_strict(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(std::mem::size_of::<Value>(), 24);
    }

    #[test]
    fn strict_integers() {
        assert_eq!(parse_i64_strict(b"123"), Some(123));
        assert_eq!(parse_i64_strict(b"-5"), Some(-5));
        assert_eq!(parse_i64_strict(b"0"), Some(0));
        for bad in [
            &b"-0"[..],
            b"+1",
            b"01",
            b" 1",
            b"1 ",
            b"",
            b"-",
            b"9223372036854775808",
        ] {
            assert_eq!(parse_i64_strict(bad), None, "{:?}", bad);
        }
        assert_eq!(parse_i64_strict(b"-9223372036854775808"), Some(i64::MIN));
    }

    #[test]
    fn encodings_convert_one_way() {
        let limits = EncodingLimits::default();
        let mut set = SetValue::new();
        set.add(b"1", &limits);
        assert!(set.intset);
        set.add(b"x", &limits);
        set.remove(b"x");
        assert!(!set.intset);
        let mut z = ZSetValue::new();
        z.set_score(b"a", 1.0, &limits);
        z.set_score(b"b", 0.5, &limits);
        z.set_score(b"a", 0.1, &limits);
        assert_eq!(z.rank(b"a"), Some(0));
        assert_eq!(z.rank(b"b"), Some(1));
        assert_eq!(z.order.len(), 2);
        // A listpack stores integral scores as integers: -0 becomes 0.
        z.set_score(b"c", -0.0, &limits);
        assert!(z.score(b"c").is_some_and(|s| s.is_sign_positive()));
    }
}
