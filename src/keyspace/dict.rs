//! `Dict`: an open-addressing hash table kept in hash order, whose SCAN cursor survives resizes.
//!
//! One structure serves the per-slot keyspace, hash fields, set members and the member index of
//! sorted sets. Items live inline in one array of buckets, with no node per item: finding a key
//! costs one cache miss rather than a bucket miss followed by a node miss, and a keyspace entry
//! costs its 64 bytes divided by the load factor (kept between about 0.65 and 0.875) instead of
//! an entry, an allocation header and a bucket pointer.
//!
//! Layout (ordered linear probing, "Robin Hood"): an item with hash `h` belongs at home bucket
//! `h * n >> 32` of `n` buckets, which never decreases as `h` grows; it sits at its home or
//! after it with no empty bucket in between, and going round the ring from the first item that
//! did not wrap, items come in ascending hash order. A lookup therefore stops at the first item
//! that sorts after the key, and the order of the items does not depend on `n`.
//!
//! That order is the SCAN guarantee. A cursor is a hash value and a scan returns items in
//! ascending hash order, so an item present for the whole scan is returned, and returned once,
//! however the table grows or shrinks between calls. (Redis gets "at least once" from
//! reverse-binary cursors over power-of-two chained tables; ordering by hash gives more without
//! tying the table size to a power of two, which is what lets the load factor stay high.)
//!
//! Keys are hashed with foldhash under a per-process random seed, because keys come from
//! clients. Each item keeps the top 32 bits of its hash ([`DictItem::filed_hash`]), so probing
//! compares hashes before keys and a resize never hashes a key again.

use std::hash::BuildHasher;
use std::sync::LazyLock;

/// Anything a `Dict` can hold: the bytes it is keyed by, and room for the hash the dict filed it
/// under (items of the keyspace spend 4 bytes of what was alignment padding on it).
pub trait DictItem {
    fn key(&self) -> &[u8];
    /// The hash set by the last `set_filed_hash`; meaningful only while the item is in a dict.
    fn filed_hash(&self) -> u32;
    fn set_filed_hash(&mut self, hash: u32);
}

/// Implements [`DictItem`] for a struct keyed by the bytes of field `$key` that keeps the dict's
/// hash in a `filed_hash: u32` field.
macro_rules! dict_item {
    ($item:ty, $key:ident) => {
        impl $crate::keyspace::dict::DictItem for $item {
            fn key(&self) -> &[u8] {
                &self.$key
            }
            fn filed_hash(&self) -> u32 {
                self.filed_hash
            }
            fn set_filed_hash(&mut self, hash: u32) {
                self.filed_hash = hash;
            }
        }
    };
}
pub(crate) use dict_item;

static HASH_STATE: LazyLock<foldhash::fast::RandomState> = LazyLock::new(Default::default);

/// The hash every `Dict` files `key` under: the top 32 bits of its seeded foldhash.
fn hash_key(key: &[u8]) -> u32 {
    (HASH_STATE.hash_one(key) >> 32) as u32
}

/// The smallest table a non-empty dict allocates.
const BUCKETS_MIN: usize = 4;

/// The home bucket of `hash` in a table of `n` buckets: monotonic in `hash`.
fn home(hash: u32, n: usize) -> usize {
    ((u64::from(hash) * n as u64) >> 32) as usize
}

pub struct Dict<T> {
    /// Empty, or a ring with at least one empty bucket (the load factor stays below 7/8).
    buckets: Box<[Option<T>]>,
    len: usize,
}

impl<T: DictItem> Default for Dict<T> {
    fn default() -> Self {
        Dict::new()
    }
}

impl<T: DictItem> Dict<T> {
    pub fn new() -> Dict<T> {
        Dict {
            buckets: Box::new([]),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Number of buckets.
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    fn next(&self, bucket: usize) -> usize {
        if bucket + 1 == self.buckets.len() {
            0
        } else {
            bucket + 1
        }
    }

    /// How far past its home bucket `item`, at `bucket`, sits (going round the ring).
    fn displacement(&self, bucket: usize, item: &T) -> usize {
        let n = self.buckets.len();
        let home = home(item.filed_hash(), n);
        if bucket >= home {
            bucket - home
        } else {
            bucket + n - home
        }
    }

    /// `Ok(bucket)` holding `key` (hashed to `hash`), or `Err(bucket)` where it would go. The
    /// table must not be empty.
    fn probe(&self, hash: u32, key: &[u8]) -> Result<usize, usize> {
        let mut bucket = home(hash, self.buckets.len());
        let mut distance = 0;
        loop {
            let Some(item) = &self.buckets[bucket] else {
                return Err(bucket);
            };
            let filed = item.filed_hash();
            if filed == hash && item.key() == key {
                return Ok(bucket);
            }
            // An item closer to its home has a later home; one as close, a larger hash: either
            // sorts after `key`, so `key` is not further on.
            let d = self.displacement(bucket, item);
            if d < distance || (d == distance && filed > hash) {
                return Err(bucket);
            }
            bucket = self.next(bucket);
            distance += 1;
        }
    }

    #[inline]
    fn find(&self, key: &[u8]) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        self.probe(hash_key(key), key).ok()
    }

    /// Starts loading the bucket where `key` would be.
    pub fn prefetch(&self, key: &[u8]) {
        if let Some(bucket) = self.buckets.get(home(hash_key(key), self.buckets.len())) {
            super::prefetch(bucket);
        }
    }

    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&T> {
        let bucket = self.find(key)?;
        self.buckets[bucket].as_ref()
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut T> {
        let bucket = self.find(key)?;
        self.buckets[bucket].as_mut()
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.find(key).is_some()
    }

    /// Inserts `item`, returning the item it replaced.
    #[cfg(test)]
    pub fn insert(&mut self, item: T) -> Option<T> {
        let old = self.remove(item.key());
        self.insert_new(item);
        old
    }

    /// Inserts an item whose key is known to be absent (were it present, it is replaced).
    pub fn insert_new(&mut self, item: T) -> &mut T {
        let hash = hash_key(item.key());
        self.insert_hashed(hash, item)
    }

    /// The item for `key`, inserting `make()` when absent; the flag says whether it was inserted.
    pub fn get_or_insert_with(&mut self, key: &[u8], make: impl FnOnce() -> T) -> (&mut T, bool) {
        let hash = hash_key(key);
        if self.len > 0 {
            if let Ok(bucket) = self.probe(hash, key) {
                // `probe` just found it there.
                return (self.buckets[bucket].as_mut().expect("found"), false);
            }
        }
        (self.insert_hashed(hash, make()), true)
    }

    fn insert_hashed(&mut self, hash: u32, mut item: T) -> &mut T {
        self.reserve_one();
        item.set_filed_hash(hash);
        match self.probe(hash, item.key()) {
            Ok(bucket) => self.buckets[bucket].insert(item),
            Err(bucket) => {
                // Shift the run from `bucket` one step up to the next empty bucket.
                let mut carry = Some(item);
                let mut at = bucket;
                while carry.is_some() {
                    carry = std::mem::replace(&mut self.buckets[at], carry);
                    at = self.next(at);
                }
                self.len += 1;
                // Placed there by the first swap of the loop.
                self.buckets[bucket].as_mut().expect("placed")
            }
        }
    }

    /// Grows the table, if need be, so one more item keeps the load factor at most 7/8.
    fn reserve_one(&mut self) {
        if (self.len + 1) * 8 > self.buckets.len() * 7 {
            self.rebuild(((self.len + 1) * 4 / 3 + 1).max(BUCKETS_MIN));
        }
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<T> {
        let bucket = self.find(key)?;
        let item = self.buckets[bucket].take();
        // Backward-shift deletion: pull the displaced items that follow one step home.
        let mut hole = bucket;
        loop {
            let next = self.next(hole);
            match &self.buckets[next] {
                Some(moved) if self.displacement(next, moved) > 0 => {}
                _ => break,
            }
            self.buckets[hole] = self.buckets[next].take();
            hole = next;
        }
        self.len -= 1;
        self.shrink_if_sparse();
        item
    }

    fn shrink_if_sparse(&mut self) {
        if self.len == 0 {
            self.buckets = Box::new([]);
        } else if self.buckets.len() > BUCKETS_MIN && self.len * 8 < self.buckets.len() {
            self.rebuild((self.len * 2).max(BUCKETS_MIN));
        }
    }

    fn rebuild(&mut self, buckets: usize) {
        let old = std::mem::replace(&mut self.buckets, (0..buckets).map(|_| None).collect());
        self.len = 0;
        for item in old.into_vec().into_iter().flatten() {
            self.insert_hashed(item.filed_hash(), item);
        }
    }

    pub fn iter(&self) -> Iter<'_, T> {
        self.buckets.iter().flatten()
    }

    /// The items whose position round the ring is at least `start` (a bucket index), in that
    /// order, which is ascending hash order. An item at bucket `b` that wrapped past the end
    /// is at position `b + n`.
    fn ring_from(&self, start: usize) -> impl Iterator<Item = &T> {
        let n = self.buckets.len();
        (start..2 * n)
            .map(move |position| {
                let bucket = position % n;
                let item = self.buckets[bucket].as_ref();
                let wrapped = item.map(|it| home(it.filed_hash(), n) > bucket);
                (position < n, item, wrapped)
            })
            // Past the end, only the run of wrapped items continues the ring.
            .take_while(|&(first_lap, _, wrapped)| first_lap || wrapped == Some(true))
            .filter_map(|(first_lap, item, wrapped)| {
                item.filter(|_| first_lap != wrapped.unwrap_or(true))
            })
    }

    /// Visits the items with the smallest hash at or above `cursor` and returns the next
    /// cursor: the hash of the next item in hash order, or 0 when the scan is done.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&T)) -> u64 {
        let Ok(from) = u32::try_from(cursor) else {
            return 0;
        };
        if self.len == 0 {
            return 0;
        }
        let mut items = self
            .ring_from(home(from, self.buckets.len()))
            .skip_while(|item| item.filed_hash() < from);
        let Some(first) = items.next() else {
            return 0;
        };
        f(first);
        for item in items {
            if item.filed_hash() != first.filed_hash() {
                return u64::from(item.filed_hash());
            }
            f(item);
        }
        0
    }

    /// A uniformly random item: random buckets until one is occupied (the load factor is at
    /// least 1/8, so that takes 8 tries at most on average).
    pub fn random(&self) -> Option<&T> {
        if self.len == 0 {
            return None;
        }
        loop {
            if let Some(item) = &self.buckets[fastrand::usize(..self.buckets.len())] {
                return Some(item);
            }
        }
    }
}

impl<T: DictItem + Clone> Clone for Dict<T> {
    fn clone(&self) -> Self {
        Dict {
            buckets: self.buckets.clone(),
            len: self.len,
        }
    }
}

pub type Iter<'a, T> = std::iter::Flatten<std::slice::Iter<'a, Option<T>>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Clone, Debug, PartialEq)]
    struct Item(Vec<u8>, u32, u32);

    impl DictItem for Item {
        fn key(&self) -> &[u8] {
            &self.0
        }
        fn filed_hash(&self) -> u32 {
            self.2
        }
        fn set_filed_hash(&mut self, hash: u32) {
            self.2 = hash;
        }
    }

    fn key(i: u32) -> Vec<u8> {
        format!("k{i}").into_bytes()
    }

    fn item(i: u32, v: u32) -> Item {
        Item(key(i), v, 0)
    }

    /// Every item is found, the load factor is in bounds, and a full scan returns each item
    /// once, in ascending hash order.
    fn check(d: &Dict<Item>) {
        let n = d.bucket_count();
        assert!(d.len() == 0 || (d.len() * 8 <= n * 7 && (n == BUCKETS_MIN || d.len() * 8 >= n)));
        for it in d.iter() {
            assert_eq!(d.get(&it.0).map(|f| f.1), Some(it.1));
        }
        let mut hashes = Vec::new();
        let mut cursor = 0;
        loop {
            cursor = d.scan(cursor, |it| hashes.push(it.2));
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(hashes.len(), d.len());
        assert!(hashes.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn insert_get_remove() {
        let mut d = Dict::new();
        for i in 0..1000 {
            assert!(d.insert(item(i, i)).is_none());
        }
        assert_eq!(d.len(), 1000);
        check(&d);
        assert_eq!(d.insert(item(5, 55)).map(|i| i.1), Some(5));
        assert_eq!(d.get(&key(5)).map(|i| i.1), Some(55));
        assert_eq!(d.len(), 1000);
        for i in 0..1000 {
            assert!(d.remove(&key(i)).is_some(), "{i}");
            assert!(d.get(&key(i)).is_none());
            if i % 97 == 0 {
                check(&d);
            }
        }
        assert_eq!(d.len(), 0);
        assert_eq!(d.bucket_count(), 0);
        assert_eq!(d.iter().count(), 0);
    }

    #[test]
    fn matches_a_hashmap_under_random_operations() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut d = Dict::new();
        let mut model = HashMap::new();
        for step in 0..20_000u32 {
            let k = rng.u32(..600);
            match rng.u8(..3) {
                0 | 1 => {
                    let (it, added) = d.get_or_insert_with(&key(k), || item(k, step));
                    it.1 = step;
                    assert_eq!(added, model.insert(k, step).is_none());
                }
                _ => assert_eq!(d.remove(&key(k)).map(|i| i.1), model.remove(&k)),
            }
            assert_eq!(d.len(), model.len());
            if step % 500 == 0 {
                check(&d);
            }
        }
        for (k, v) in &model {
            assert_eq!(d.get(&key(*k)).map(|i| i.1), Some(*v));
        }
    }

    #[test]
    fn scan_returns_each_survivor_once_across_growth_and_shrink() {
        let mut d = Dict::new();
        for i in 0..500 {
            d.insert(item(i, i));
        }
        let mut seen: HashMap<Vec<u8>, u32> = HashMap::new();
        let mut cursor = 0;
        let mut step = 0u32;
        loop {
            cursor = d.scan(cursor, |it| *seen.entry(it.0.clone()).or_default() += 1);
            // Grow hard, then shrink hard, while scanning; keys 0..250 stay throughout.
            step += 1;
            if step < 20 {
                for i in 0..200 {
                    d.insert(item(10_000 + step * 1000 + i, i));
                }
            } else if step < 40 {
                for i in 250..500 {
                    d.remove(&key(i));
                }
                for i in 0..200 {
                    d.remove(&key(10_000 + (step - 20) * 1000 + i));
                }
            }
            if cursor == 0 {
                break;
            }
        }
        for k in (0..250).map(key) {
            assert_eq!(seen.get(&k), Some(&1), "{:?}", String::from_utf8_lossy(&k));
        }
        assert!(seen.values().all(|&times| times == 1));
    }

    #[test]
    fn random_is_uniform_over_items() {
        let mut d = Dict::new();
        assert!(d.random().is_none());
        for i in 0..10 {
            d.insert(item(i, i));
        }
        let mut counts = [0u32; 10];
        for _ in 0..20_000 {
            counts[d.random().unwrap().1 as usize] += 1;
        }
        // 2000 expected each; 6 standard deviations is about 255.
        assert!(
            counts.iter().all(|&c| (1745..=2255).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn keyspace_entries_stay_one_cache_line() {
        assert_eq!(std::mem::size_of::<Option<crate::keyspace::Entry>>(), 64);
    }
}
