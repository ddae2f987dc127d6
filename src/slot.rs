//! Hash slots: the unit of sharding, locking, counting and migration.
//!
//! A key maps to one of 16384 slots by CRC16-XMODEM of the key, or of its hash tag: the bytes
//! between the first `{` and the first `}` after it, when that span is non-empty. This is Redis
//! Cluster's rule, so keys land on the same slot in Shoal and in Redis.

use std::fmt;

/// CRC-16/XMODEM, byte-at-a-time table: keys are short, and the wider slice-by-N tables cost
/// more in setup than they save below a few dozen bytes.
static CRC16: crc::Crc<u16, crc::Table<1>> =
    crc::Crc::<u16, crc::Table<1>>::new(&crc::CRC_16_XMODEM);

/// Number of hash slots in the keyspace.
pub const SLOT_COUNT: usize = 16384;

const SLOT_MASK: u16 = SLOT_COUNT as u16 - 1;

/// A hash slot, `0..16384`. Only [`SlotId::of_key`] and [`SlotId::new`] make one, so a `SlotId`
/// is always in range.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlotId(u16);

impl SlotId {
    /// The slot of `key`, honouring hash tags.
    ///
    /// ```
    /// use shoal::SlotId;
    /// assert_eq!(SlotId::of_key(b"foo").get(), 12182);
    /// assert_eq!(SlotId::of_key(b"{user1000}.following"), SlotId::of_key(b"{user1000}.followers"));
    /// ```
    pub fn of_key(key: &[u8]) -> SlotId {
        // One pass for the common key without a '{': checksum while watching for one.
        let table = &CRC16.table()[0];
        let mut crc = 0u16;
        for &b in key {
            if b == b'{' {
                return SlotId(CRC16.checksum(hash_tag(key)) & SLOT_MASK);
            }
            crc = (crc << 8) ^ table[usize::from((crc >> 8) as u8 ^ b)];
        }
        SlotId(crc & SLOT_MASK)
    }

    /// A slot from its number, or `None` when it is not below 16384.
    pub fn new(slot: u16) -> Option<SlotId> {
        (usize::from(slot) < SLOT_COUNT).then_some(SlotId(slot))
    }

    /// The slot number.
    pub fn get(self) -> u16 {
        self.0
    }

    /// The slot number as an index into per-slot arrays.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl fmt::Display for SlotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The part of `key` that is hashed: the content of the first `{...}` when non-empty, else the
/// whole key.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    match key[open + 1..].iter().position(|&b| b == b'}') {
        Some(0) | None => key,
        Some(len) => &key[open + 1..open + 1 + len],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(SlotId::of_key(b"1111").get(), 14366);
        assert_eq!(SlotId::of_key(b"foo").get(), 12182);
        assert_eq!(SlotId::of_key(b"").get(), 0);
    }

    #[test]
    fn hash_tags() {
        assert_eq!(
            SlotId::of_key(b"{user1000}.following"),
            SlotId::of_key(b"{user1000}.followers")
        );
        assert_eq!(SlotId::of_key(b"{user1000}.x"), SlotId::of_key(b"user1000"));
        // An empty tag does not count: the whole key is hashed.
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_ne!(SlotId::of_key(b"foo{}{bar}"), SlotId::of_key(b"bar"));
        // The tag ends at the first '}' after the first '{'.
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(SlotId::of_key(b"foo{{bar}}zap"), SlotId::of_key(b"{bar"));
        assert_eq!(hash_tag(b"foo{bar"), b"foo{bar");
        assert_eq!(hash_tag(b"{a}{b}"), b"a");
    }

    #[test]
    fn one_pass_checksum_matches_the_crate() {
        for key in [
            &b"key:000001"[..],
            b"a",
            b"}x",
            b"a long key without any tag at all, 40b",
        ] {
            assert_eq!(SlotId::of_key(key).get(), CRC16.checksum(key) & SLOT_MASK);
        }
    }

    #[test]
    fn range() {
        assert!(SlotId::new(16383).is_some());
        assert!(SlotId::new(16384).is_none());
    }
}
