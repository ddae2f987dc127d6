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
//! Resizing is incremental, as in Redis, so that no single command stalls every client of a
//! slot while a table of a million fields is copied (and its new pages faulted in): the old
//! table stays beside the new one, and each write moves a few of its runs over, in ascending
//! hash order, so a lookup knows from the hash alone which table can hold an item that has
//! not been inserted since (below the old table's boundary: only the new one).
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

/// Tables with at most this many items are resized at once; larger ones move to the new table
/// a little at a time, so that no single command pays for moving a big hash or set.
const RESIZE_AT_ONCE_MAX: usize = 128;

/// Buckets of the old table examined per write while a resize is under way. The new table is
/// sized so that the old one (at most 8/7 buckets per item) empties long before the new one
/// fills up (room for a sixth of its items), even when every write inserts.
const MOVE_STEP_BUCKETS: usize = 16;

/// The home bucket of `hash` in a table of `n` buckets: monotonic in `hash`.
fn home(hash: u32, n: usize) -> usize {
    ((u64::from(hash) * n as u64) >> 32) as usize
}

/// A hash-ordered set of items, resized incrementally: while it grows or shrinks, the items
/// move from the old table to the new one in ascending hash order, whole runs at a time, so
/// every item with a hash below the old table's `boundary` is in the new table.
pub struct Dict<T> {
    table: Table<T>,
    /// The previous table, while a resize is under way.
    old: Option<Box<Old<T>>>,
}

/// One open-addressing table with the layout described above.
struct Table<T> {
    /// Empty, or a ring with at least one empty bucket.
    buckets: Box<[Option<T>]>,
    len: usize,
}

/// The table a resize is moving items out of.
struct Old<T> {
    table: Table<T>,
    /// The next bucket to move from, in array order. Items before it have moved, except the
    /// run of wrapped items at the start of the array, which sort last and move last.
    next: usize,
    /// Every item with a hash below this has moved; every item still here is at or above it.
    boundary: u64,
}

/// Which table holds an item, and at which bucket.
#[derive(Clone, Copy)]
enum Place {
    New(usize),
    Old(usize),
}

impl<T: DictItem> Table<T> {
    fn new() -> Table<T> {
        Table {
            buckets: Box::new([]),
            len: 0,
        }
    }

    fn with_buckets(n: usize) -> Table<T> {
        Table {
            buckets: (0..n).map(|_| None).collect(),
            len: 0,
        }
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

    /// Whether the item at `bucket` went round the end of the array to get there.
    fn wrapped(&self, bucket: usize) -> bool {
        let n = self.buckets.len();
        self.buckets[bucket]
            .as_ref()
            .is_some_and(|it| home(it.filed_hash(), n) > bucket)
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
    fn find(&self, hash: u32, key: &[u8]) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        self.probe(hash, key).ok()
    }

    /// Places `item` (filed under `hash`), replacing the item with its key or shifting the
    /// run after it one step up to the next empty bucket. The table must have room.
    fn insert(&mut self, hash: u32, mut item: T) -> &mut T {
        item.set_filed_hash(hash);
        let bucket = match self.probe(hash, item.key()) {
            Ok(bucket) => return self.buckets[bucket].insert(item),
            Err(bucket) => bucket,
        };
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

    /// Whether one more item would take the load factor past 7/8.
    fn full(&self) -> bool {
        (self.len + 1) * 8 > self.buckets.len() * 7
    }

    /// Takes the item at `bucket` out; backward-shift deletion pulls the displaced items that
    /// follow it one step home.
    fn remove_at(&mut self, bucket: usize) -> Option<T> {
        let item = self.buckets[bucket].take();
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
        item
    }

    fn iter(&self) -> Flat<'_, T> {
        self.buckets.iter().flatten()
    }

    /// The items with a hash at or above `from`, in ascending hash order.
    fn ring_from(&self, from: u32) -> impl Iterator<Item = &T> {
        let n = self.buckets.len();
        (home(from, n)..2 * n)
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
            .skip_while(move |item| item.filed_hash() < from)
    }

    /// A uniformly random item among the buckets in `range` (random buckets until one is
    /// occupied).
    fn random_in(&self, range: std::ops::Range<usize>) -> &T {
        loop {
            if let Some(item) = &self.buckets[fastrand::usize(range.clone())] {
                return item;
            }
        }
    }
}

impl<T: DictItem> Old<T> {
    /// Starts moving `table`'s items out, smallest hash first.
    fn new(table: Table<T>) -> Old<T> {
        Old {
            table,
            next: 0,
            boundary: 0,
        }
    }

    /// Moves whole runs to `to`, in ascending hash order, until about `budget` buckets were
    /// examined (all of them when `None`); true once nothing is left.
    ///
    /// A run is moved whole because a lookup walks from an item's home to the item: taking
    /// the head of a run away would cut the path to the rest. The one exception is the run at
    /// the start of the array: its wrapped items (the largest hashes) stay until the run they
    /// continue, at the end of the array, moves with them.
    fn move_runs(&mut self, to: &mut Table<T>, budget: Option<usize>) -> bool {
        let n = self.table.buckets.len();
        let mut examined = 0;
        while self.next < n && budget.is_none_or(|b| examined < b) {
            let start = self.next;
            let mut end = start;
            while end < n && self.table.buckets[end].is_some() {
                end += 1;
            }
            if end == n && self.table.wrapped(0) {
                // The last run goes round the end into the wrapped items: the rest, in order.
                self.move_range(to, start..n);
                self.next = n;
                break;
            }
            self.move_range(to, start..end);
            self.next = end + 1;
            examined += end + 1 - start;
        }
        if self.next >= n {
            self.next = n;
            let wrapped = (0..n).take_while(|&b| self.table.wrapped(b)).count();
            self.move_range(to, 0..wrapped);
        }
        self.table.len == 0
    }

    /// Moves the unwrapped items of buckets `range` (one run, or the tail of one) to `to`.
    fn move_range(&mut self, to: &mut Table<T>, range: std::ops::Range<usize>) {
        for bucket in range {
            if self.table.wrapped(bucket) && self.next < self.table.buckets.len() {
                continue;
            }
            if let Some(item) = self.table.buckets[bucket].take() {
                self.table.len -= 1;
                let hash = item.filed_hash();
                self.boundary = self.boundary.max(u64::from(hash) + 1);
                to.insert(hash, item);
            }
        }
    }
}

impl<T: DictItem> Default for Dict<T> {
    fn default() -> Self {
        Dict::new()
    }
}

impl<T: DictItem> Dict<T> {
    pub fn new() -> Dict<T> {
        Dict {
            table: Table::new(),
            old: None,
        }
    }

    pub fn len(&self) -> usize {
        self.table.len + self.old.as_ref().map_or(0, |o| o.table.len)
    }

    /// Sizes an empty dict for `items` at once (a loader that knows what is coming), so that
    /// filling it resizes nothing; a dict with items is left as it is.
    pub fn reserve_empty(&mut self, items: usize) {
        if self.len() == 0 && self.old.is_none() {
            self.table = Table::with_buckets((items * 4 / 3 + 1).max(BUCKETS_MIN));
        }
    }

    /// Number of buckets (of both tables, during a resize).
    pub fn bucket_count(&self) -> usize {
        self.table.buckets.len() + self.old.as_ref().map_or(0, |o| o.table.buckets.len())
    }

    /// Where `key`, hashed to `hash`, is.
    #[inline]
    fn locate(&self, hash: u32, key: &[u8]) -> Option<Place> {
        if let Some(old) = &self.old {
            if u64::from(hash) >= old.boundary {
                if let Some(bucket) = old.table.find(hash, key) {
                    return Some(Place::Old(bucket));
                }
            }
        }
        self.table.find(hash, key).map(Place::New)
    }

    fn at(&self, place: Place) -> Option<&T> {
        match (place, &self.old) {
            (Place::New(b), _) => self.table.buckets[b].as_ref(),
            (Place::Old(b), Some(old)) => old.table.buckets[b].as_ref(),
            (Place::Old(_), None) => None,
        }
    }

    fn at_mut(&mut self, place: Place) -> Option<&mut T> {
        match (place, &mut self.old) {
            (Place::New(b), _) => self.table.buckets[b].as_mut(),
            (Place::Old(b), Some(old)) => old.table.buckets[b].as_mut(),
            (Place::Old(_), None) => None,
        }
    }

    /// Starts loading the bucket where `key` would be.
    pub fn prefetch(&self, key: &[u8]) {
        let hash = hash_key(key);
        if let Some(bucket) = self.table.buckets.get(home(hash, self.table.buckets.len())) {
            super::prefetch(bucket);
        }
    }

    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&T> {
        let place = self.locate(hash_key(key), key)?;
        self.at(place)
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut T> {
        let place = self.locate(hash_key(key), key)?;
        self.at_mut(place)
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.locate(hash_key(key), key).is_some()
    }

    /// Inserts `item`, returning the item it replaced.
    #[cfg(test)]
    pub fn insert(&mut self, item: T) -> Option<T> {
        let old = self.remove(item.key());
        self.insert_new(item);
        old
    }

    /// Inserts an item whose key is known to be absent (were it present, it is replaced).
    pub fn insert_new(&mut self, mut item: T) -> &mut T {
        let hash = hash_key(item.key());
        if self.old.is_none() && !self.table.full() {
            // One table, nothing to move: one probe finds the key or its place.
            return self.table.insert(hash, item);
        }
        // Looked up before anything moves: inserting may start a resize that moves the key.
        match self.locate(hash, item.key()) {
            Some(place) => {
                item.set_filed_hash(hash);
                let slot = self.at_mut(place).expect("located");
                *slot = item;
                slot
            }
            None => self.insert_hashed(hash, item),
        }
    }

    /// The item for `key`, inserting `make()` when absent; the flag says whether it was inserted.
    pub fn get_or_insert_with(&mut self, key: &[u8], make: impl FnOnce() -> T) -> (&mut T, bool) {
        let hash = hash_key(key);
        match self.locate(hash, key) {
            Some(place) => (self.at_mut(place).expect("located"), false),
            None => (self.insert_hashed(hash, make()), true),
        }
    }

    /// Inserts an absent item into the current table, after a step of any resize under way
    /// and a resize if the table is full.
    fn insert_hashed(&mut self, hash: u32, item: T) -> &mut T {
        self.step();
        if self.table.full() {
            self.finish_resize();
            if self.table.full() {
                self.start_resize(((self.len() + 1) * 4 / 3 + 1).max(BUCKETS_MIN));
            }
        }
        self.table.insert(hash, item)
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<T> {
        let item = match self.locate(hash_key(key), key)? {
            Place::New(bucket) => self.table.remove_at(bucket),
            // The bucket before the cursor is always empty (it ended the last run moved), so the
            // backward shift never pulls an unmoved item behind the cursor.
            Place::Old(bucket) => self.old.as_mut()?.table.remove_at(bucket),
        };
        self.step();
        self.shrink_if_sparse();
        item
    }

    fn shrink_if_sparse(&mut self) {
        if self.old.is_some() {
            return;
        }
        let len = self.table.len;
        if len == 0 {
            self.table = Table::new();
        } else if self.table.buckets.len() > BUCKETS_MIN && len * 8 < self.table.buckets.len() {
            self.start_resize((len * 2).max(BUCKETS_MIN));
        }
    }

    /// Starts moving the items into a table of `buckets` buckets; small tables move at once.
    fn start_resize(&mut self, buckets: usize) {
        self.finish_resize();
        let table = std::mem::replace(&mut self.table, Table::with_buckets(buckets));
        let mut old = Box::new(Old::new(table));
        if old.table.len <= RESIZE_AT_ONCE_MAX {
            old.move_runs(&mut self.table, None);
        } else {
            self.old = Some(old);
        }
    }

    /// One step of the resize under way.
    fn step(&mut self) {
        if let Some(old) = &mut self.old {
            if old.move_runs(&mut self.table, Some(MOVE_STEP_BUCKETS)) {
                self.old = None;
            }
        }
    }

    fn finish_resize(&mut self) {
        if let Some(mut old) = self.old.take() {
            old.move_runs(&mut self.table, None);
        }
    }

    pub fn iter(&self) -> Iter<'_, T> {
        let old: &[Option<T>] = self.old.as_ref().map_or(&[], |o| &o.table.buckets);
        self.table.iter().chain(old.iter().flatten())
    }

    /// Visits the items with the smallest hash at or above `cursor` and returns the next
    /// cursor: the hash of the next item in hash order, or 0 when the scan is done.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&T)) -> u64 {
        let Ok(from) = u32::try_from(cursor) else {
            return 0;
        };
        let mut items = self.ascending_from(from);
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

    /// The items with a hash at or above `from`, in ascending hash order, from both tables.
    fn ascending_from(&self, from: u32) -> impl Iterator<Item = &T> {
        let mut new = self.table.ring_from(from).peekable();
        let mut old = self
            .old
            .as_ref()
            .map(|o| o.table.ring_from(from).peekable());
        std::iter::from_fn(move || {
            let Some(old) = old.as_mut() else {
                return new.next();
            };
            match (new.peek(), old.peek()) {
                (Some(a), Some(b)) if a.filed_hash() <= b.filed_hash() => new.next(),
                (_, Some(_)) => old.next(),
                (_, None) => new.next(),
            }
        })
    }

    /// A uniformly random item: a table chosen in proportion to its items, then random
    /// buckets until one is occupied (the new table holds at least 1/8 of its buckets once
    /// the old one is gone; during a resize only the old table's unmoved buckets are drawn).
    pub fn random(&self) -> Option<&T> {
        let len = self.len();
        if len == 0 {
            return None;
        }
        if let Some(old) = &self.old {
            if fastrand::usize(..len) < old.table.len {
                return Some(old.random());
            }
        }
        Some(self.table.random_in(0..self.table.buckets.len()))
    }
}

impl<T: DictItem> Old<T> {
    /// A uniformly random unmoved item: random buckets at or after the cursor or among the
    /// wrapped ones at the start (where every unmoved item is) until one is occupied.
    fn random(&self) -> &T {
        let n = self.table.buckets.len();
        let wrapped = (0..n).take_while(|&b| self.table.wrapped(b)).count();
        loop {
            let pick = fastrand::usize(..wrapped + n - self.next);
            let bucket = if pick < wrapped {
                pick
            } else {
                self.next + pick - wrapped
            };
            if let Some(item) = &self.table.buckets[bucket] {
                return item;
            }
        }
    }
}

impl<T: Clone> Clone for Table<T> {
    fn clone(&self) -> Self {
        Table {
            buckets: self.buckets.clone(),
            len: self.len,
        }
    }
}

impl<T: Clone> Clone for Old<T> {
    fn clone(&self) -> Self {
        Old {
            table: self.table.clone(),
            next: self.next,
            boundary: self.boundary,
        }
    }
}

impl<T: DictItem + Clone> Clone for Dict<T> {
    fn clone(&self) -> Self {
        Dict {
            table: self.table.clone(),
            old: self.old.clone(),
        }
    }
}

type Flat<'a, T> = std::iter::Flatten<std::slice::Iter<'a, Option<T>>>;
pub type Iter<'a, T> = std::iter::Chain<Flat<'a, T>, Flat<'a, T>>;

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

    /// Every item is found, the load factor is in bounds (once no resize is under way), and a
    /// full scan returns each item once, in ascending hash order.
    fn check(d: &Dict<Item>) {
        let n = d.bucket_count();
        assert!(
            d.old.is_some()
                || d.len() == 0
                || (d.len() * 8 <= n * 7 && (n == BUCKETS_MIN || d.len() * 8 >= n))
        );
        assert_eq!(d.iter().count(), d.len());
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

    /// Large tables resize a little per write: lookups, scans and random draws stay right
    /// while items sit in two tables, through growth and shrinking.
    #[test]
    fn big_tables_resize_incrementally() {
        let mut rng = fastrand::Rng::with_seed(11);
        let mut d = Dict::new();
        let mut model = HashMap::new();
        let mut seen_resizing = 0;
        for step in 0..60_000u32 {
            // Grow to about 8000 keys, then shrink back toward a few hundred.
            let k = rng.u32(..10_000);
            let grow = step < 30_000;
            if (grow && rng.u8(..4) != 0) || (!grow && rng.u8(..4) == 0) {
                let (it, added) = d.get_or_insert_with(&key(k), || item(k, step));
                it.1 = step;
                assert_eq!(added, model.insert(k, step).is_none());
            } else if rng.bool() {
                // Replacing a present key, possibly as the insert that starts a resize.
                d.insert_new(item(k, step));
                model.insert(k, step);
            } else {
                assert_eq!(d.remove(&key(k)).map(|i| i.1), model.remove(&k));
            }
            assert_eq!(d.len(), model.len());
            if d.old.is_some() {
                seen_resizing += 1;
                if seen_resizing % 1000 == 0 {
                    check(&d);
                    let drawn = d.random().unwrap();
                    assert_eq!(
                        model.get(
                            &drawn.0[1..]
                                .iter()
                                .fold(0, |n, c| n * 10 + u32::from(c - b'0'))
                        ),
                        Some(&drawn.1)
                    );
                }
            }
        }
        assert!(
            seen_resizing > 1000,
            "resizes were incremental: {seen_resizing}"
        );
        check(&d);
        for (k, v) in &model {
            assert_eq!(d.get(&key(*k)).map(|i| i.1), Some(*v));
        }
    }

    #[test]
    fn keyspace_entries_and_slots_stay_one_cache_line() {
        assert_eq!(std::mem::size_of::<Option<crate::keyspace::Entry>>(), 64);
        // A slot holds its lock, a dict and the counters; a bigger dict header would double it.
        assert_eq!(std::mem::size_of::<crate::keyspace::Slot>(), 64);
    }
}
