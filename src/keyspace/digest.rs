//! Dataset digests: an order-independent fingerprint of keys, types, values and expiries.
//!
//! The algorithm is Redis's `DEBUG DIGEST` (SHA1 based: unordered collections XOR their
//! elements' hashes, ordered ones chain them), so the same dataset gives the same digest in
//! Redis and in Shoal. That lets a test compare a `dump.rdb` loaded by both. Redis mixes in only
//! *whether* a key has a TTL; [`DigestMode::WithExpiry`] mixes in the expiry time itself, which
//! is what log-replay and replica tests use.

use super::value::Value;
use super::Entry;
use crate::reply::format_double;
use sha1::{Digest as _, Sha1};

/// A 160-bit dataset or value digest.
pub type Digest = [u8; 20];

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
/// What a digest covers.
pub enum DigestMode {
    /// Exactly Redis's `DEBUG DIGEST`: a TTL counts by its presence only.
    Redis,
    /// Also the absolute expiry time of every key.
    WithExpiry,
}

fn xor_digest(digest: &mut Digest, data: &[u8]) {
    let hash = Sha1::digest(data);
    for (d, h) in digest.iter_mut().zip(hash.iter()) {
        *d ^= h;
    }
}

/// digest = SHA1(digest xor SHA1(data)): order-sensitive accumulation.
fn mix_digest(digest: &mut Digest, data: &[u8]) {
    xor_digest(digest, data);
    let hash = Sha1::digest(*digest);
    digest.copy_from_slice(&hash);
}

/// Folds the value of `entry` (type, content, expiry) into `digest`.
pub fn mix_value(digest: &mut Digest, entry: &Entry, mode: DigestMode) {
    mix_digest(digest, &entry.value.value_type().redis_code().to_be_bytes());
    match &entry.value {
        Value::Str(s) => mix_digest(digest, s),
        Value::List(list) => list.iter().for_each(|item| mix_digest(digest, item)),
        Value::Set(set) => set.iter().for_each(|m| xor_digest(digest, m)),
        Value::ZSet(z) => {
            for m in z.members.iter() {
                let mut element: Digest = [0; 20];
                mix_digest(&mut element, &m.member);
                mix_digest(&mut element, format_double(m.score).as_bytes());
                xor_digest(digest, &element);
            }
        }
        Value::Hash(h) => {
            for f in h.fields.iter() {
                let mut element: Digest = [0; 20];
                mix_digest(&mut element, &f.field);
                mix_digest(&mut element, &f.value);
                xor_digest(digest, &element);
            }
        }
    }
    if let Some(at) = entry.expire_at() {
        match mode {
            DigestMode::Redis => xor_digest(digest, b"!!expire!!"),
            DigestMode::WithExpiry => mix_digest(digest, &at.to_be_bytes()),
        }
    }
}

/// The digest of one key-value pair, to be XORed into the dataset digest.
pub fn entry_digest(entry: &Entry, mode: DigestMode) -> Digest {
    let mut digest = [0; 20];
    mix_digest(&mut digest, &entry.key);
    mix_value(&mut digest, entry, mode);
    digest
}

/// Accumulates a dataset digest database by database.
pub struct DatasetDigest {
    digest: Digest,
}

impl DatasetDigest {
    pub fn new() -> Self {
        DatasetDigest { digest: [0; 20] }
    }

    /// Starts database `db`; call only for databases with keys, as Redis does.
    pub fn begin_db(&mut self, db: usize) {
        mix_digest(&mut self.digest, &(db as u32).to_be_bytes());
    }

    /// Adds an already computed per-database XOR of entry digests.
    pub fn add_entries(&mut self, xored: &Digest) {
        for (d, x) in self.digest.iter_mut().zip(xored.iter()) {
            *d ^= x;
        }
    }

    pub fn finish(self) -> Digest {
        self.digest
    }
}

/// Folds `entry` into a database's accumulator the way Redis does: XOR of SHA1(entry digest).
pub fn xor_entry(acc: &mut Digest, entry: &Entry, mode: DigestMode) {
    xor_digest(acc, &entry_digest(entry, mode));
}

/// `DEBUG DIGEST-VALUE`: the value's digest without the key name.
pub fn value_digest(entry: &Entry, mode: DigestMode) -> Digest {
    let mut digest = [0; 20];
    mix_value(&mut digest, entry, mode);
    digest
}

/// The digest of a whole dataset. `visit(db, slot, f)` must call `f` with that slot's data
/// (under whatever lock the caller holds); databases that were never used are skipped.
pub fn dataset_digest(
    keyspace: &super::Keyspace,
    mode: DigestMode,
    mut visit: impl FnMut(usize, crate::slot::SlotId, &mut dyn FnMut(&super::SlotData)),
) -> Digest {
    let mut total = DatasetDigest::new();
    for (index, db) in keyspace.dbs().iter().enumerate() {
        if db.slots_if_used().is_none() {
            continue;
        }
        let mut xored = [0u8; 20];
        let mut any = false;
        for slot in 0..crate::slot::SLOT_COUNT as u16 {
            let Some(slot) = crate::slot::SlotId::new(slot) else {
                continue;
            };
            visit(index, slot, &mut |data| {
                for entry in data.entries() {
                    any = true;
                    xor_entry(&mut xored, entry, mode);
                }
            });
        }
        if any {
            total.begin_db(index);
            total.add_entries(&xored);
        }
    }
    total.finish()
}

/// Lowercase hex, as `DEBUG DIGEST` prints.
pub fn to_hex(digest: &Digest) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
