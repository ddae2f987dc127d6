//! The RDB file format of Redis 7: what `SAVE` writes, what start-up loads, and (later) the
//! body of `DUMP` payloads and full resynchronization.
//!
//! Shoal writes version 10 with the plain encodings (string, list, set, zset2, hash), which
//! every Redis since 2.x loads and re-encodes by its own size rules, so `OBJECT ENCODING`
//! agrees after a round trip. It reads every encoding Redis 7.0 writes, and 7.2's listpack
//! sets: a `dump.rdb` moves from Redis to Shoal and back.

pub mod decode;
pub mod encode;
mod packed;

/// The version Shoal writes: Redis 7.0's.
pub const RDB_VERSION: u32 = 10;
/// The newest version Shoal reads: Redis 7.2's, whose only new type is the listpack set.
pub const RDB_VERSION_MAX: u32 = 11;

/// CRC-64/REDIS (Jones polynomial), the trailer of every RDB file and DUMP payload.
pub static CRC64: crc::Crc<u64, crc::Table<16>> =
    crc::Crc::<u64, crc::Table<16>>::new(&crc::CRC_64_REDIS);

/// Whether an RDB image ends with a CRC-64 trailer that matches the rest (a zero trailer
/// means the writer computed none). Checked before a replica drops its data for a snapshot
/// that arrived whole but damaged.
pub fn checksum_matches(image: &[u8]) -> bool {
    let Some(body_len) = image.len().checked_sub(8) else {
        return false;
    };
    let (body, trailer) = image.split_at(body_len);
    let mut stored = [0u8; 8];
    stored.copy_from_slice(trailer);
    let stored = u64::from_le_bytes(stored);
    stored == 0 || CRC64.checksum(body) == stored
}

/// What is wrong with an RDB image, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("byte {offset}: {what}")]
pub struct FormatError {
    /// Where reading stopped making sense.
    pub offset: u64,
    /// What was wrong there.
    pub what: String,
}

/// Opcodes that may stand where a value type does.
pub mod op {
    pub const FUNCTION2: u8 = 245;
    pub const FUNCTION: u8 = 246;
    pub const MODULE_AUX: u8 = 247;
    pub const IDLE: u8 = 248;
    pub const FREQ: u8 = 249;
    pub const AUX: u8 = 250;
    pub const RESIZEDB: u8 = 251;
    pub const EXPIRETIME_MS: u8 = 252;
    pub const EXPIRETIME: u8 = 253;
    pub const SELECTDB: u8 = 254;
    pub const EOF: u8 = 255;
}

/// Value types.
pub mod ty {
    pub const STRING: u8 = 0;
    pub const LIST: u8 = 1;
    pub const SET: u8 = 2;
    pub const ZSET: u8 = 3;
    pub const HASH: u8 = 4;
    pub const ZSET_2: u8 = 5;
    pub const MODULE: u8 = 6;
    pub const MODULE_2: u8 = 7;
    pub const HASH_ZIPMAP: u8 = 9;
    pub const LIST_ZIPLIST: u8 = 10;
    pub const SET_INTSET: u8 = 11;
    pub const ZSET_ZIPLIST: u8 = 12;
    pub const HASH_ZIPLIST: u8 = 13;
    pub const LIST_QUICKLIST: u8 = 14;
    pub const STREAM_LISTPACKS: u8 = 15;
    pub const HASH_LISTPACK: u8 = 16;
    pub const ZSET_LISTPACK: u8 = 17;
    pub const LIST_QUICKLIST_2: u8 = 18;
    pub const STREAM_LISTPACKS_2: u8 = 19;
    pub const SET_LISTPACK: u8 = 20;
}
