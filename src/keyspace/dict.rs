//! `Dict`: a chained hash table with Redis's SCAN guarantee.
//!
//! One structure serves the per-slot keyspace, hash fields, set members and the member index of
//! sorted sets. Chaining (rather than open addressing) is what makes Redis's reverse-binary
//! cursor work: an item in bucket `b` of a table of size `2^n` is in bucket `b` or `b + 2^n`
//! after the table doubles, so a cursor that increments its *reversed* bits visits every bucket
//! of every table size it meets, and an item present for the whole scan is returned at least
//! once even while the table grows or shrinks between calls.
//!
//! Keys are hashed with foldhash under a per-process random seed, because keys come from clients.
//! Buckets hold one pointer each and the table keeps `len <= buckets`, so the table itself costs
//! 8 to 16 bytes per item; the items live in their own nodes and never move on resize.

use std::hash::BuildHasher;
use std::sync::LazyLock;

/// Anything a `Dict` can hold: it must expose the bytes it is keyed by.
pub trait DictItem {
    fn key(&self) -> &[u8];
}

type Link<T> = Option<Box<Node<T>>>;

struct Node<T> {
    item: T,
    next: Link<T>,
}

static HASH_STATE: LazyLock<foldhash::fast::RandomState> = LazyLock::new(Default::default);

/// The hash every `Dict` uses for `key`.
pub fn hash_key(key: &[u8]) -> u64 {
    HASH_STATE.hash_one(key)
}

/// The smallest table a non-empty dict allocates.
const BUCKETS_MIN: usize = 4;

pub struct Dict<T> {
    /// Empty, or a power-of-two number of chains.
    buckets: Box<[Link<T>]>,
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

    /// Number of buckets (a power of two, or 0).
    #[cfg(test)]
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    fn bucket_of(&self, key: &[u8]) -> usize {
        (hash_key(key) as usize) & (self.buckets.len() - 1)
    }

    pub fn get(&self, key: &[u8]) -> Option<&T> {
        if self.len == 0 {
            return None;
        }
        let mut link = &self.buckets[self.bucket_of(key)];
        while let Some(node) = link {
            if node.item.key() == key {
                return Some(&node.item);
            }
            link = &node.next;
        }
        None
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut T> {
        if self.len == 0 {
            return None;
        }
        let b = self.bucket_of(key);
        let mut link = &mut self.buckets[b];
        while let Some(node) = link {
            if node.item.key() == key {
                return Some(&mut node.item);
            }
            link = &mut node.next;
        }
        None
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Inserts `item`, returning the item it replaced.
    #[cfg(test)]
    pub fn insert(&mut self, item: T) -> Option<T> {
        if let Some(slot) = self.get_mut(item.key()) {
            return Some(std::mem::replace(slot, item));
        }
        self.insert_new(item);
        None
    }

    /// Inserts an item whose key is known to be absent.
    pub fn insert_new(&mut self, item: T) -> &mut T {
        if self.len >= self.buckets.len() {
            self.resize((self.buckets.len() * 2).max(BUCKETS_MIN));
        }
        let b = self.bucket_of(item.key());
        let next = self.buckets[b].take();
        self.len += 1;
        let node = self.buckets[b].insert(Box::new(Node { item, next }));
        &mut node.item
    }

    /// The item for `key`, inserting `make()` when absent; the flag says whether it was inserted.
    pub fn get_or_insert_with(&mut self, key: &[u8], make: impl FnOnce() -> T) -> (&mut T, bool) {
        if self.contains(key) {
            // Present: checked just above, and nothing ran in between.
            let item = self.get_mut(key).expect("present");
            return (item, false);
        }
        (self.insert_new(make()), true)
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let b = self.bucket_of(key);
        let mut link = &mut self.buckets[b];
        while link.as_ref().is_some_and(|node| node.item.key() != key) {
            // The loop condition just saw a node here.
            link = &mut link.as_mut().expect("checked by the loop condition").next;
        }
        let mut node = link.take()?;
        *link = node.next.take();
        self.len -= 1;
        self.shrink_if_sparse();
        Some(node.item)
    }

    fn shrink_if_sparse(&mut self) {
        let buckets = self.buckets.len();
        if self.len == 0 {
            self.buckets = Box::new([]);
        } else if buckets > BUCKETS_MIN && self.len * 8 < buckets {
            self.resize(self.len.next_power_of_two().max(BUCKETS_MIN));
        }
    }

    fn resize(&mut self, buckets: usize) {
        let old = std::mem::replace(&mut self.buckets, (0..buckets).map(|_| None).collect());
        let mask = buckets - 1;
        for mut link in old.into_vec() {
            while let Some(mut node) = link {
                link = node.next.take();
                let b = (hash_key(node.item.key()) as usize) & mask;
                node.next = self.buckets[b].take();
                self.buckets[b] = Some(node);
            }
        }
    }

    pub fn iter(&self) -> Iter<'_, T> {
        Iter {
            buckets: &self.buckets,
            bucket: 0,
            node: None,
        }
    }

    /// Visits the bucket the cursor names and returns the next cursor (0 when the scan is done).
    ///
    /// Redis's reverse-binary increment: the cursor's low bits are the bucket; incrementing the
    /// reversed cursor moves through buckets so that a table that doubled or halved between
    /// calls is still covered.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&T)) -> u64 {
        if self.buckets.is_empty() {
            return 0;
        }
        let mask = (self.buckets.len() - 1) as u64;
        let mut link = &self.buckets[(cursor & mask) as usize];
        while let Some(node) = link {
            f(&node.item);
            link = &node.next;
        }
        let v = cursor | !mask;
        v.reverse_bits().wrapping_add(1).reverse_bits()
    }

    /// A random item: a random non-empty bucket, then a random node of its chain.
    pub fn random(&self) -> Option<&T> {
        if self.len == 0 {
            return None;
        }
        let mask = self.buckets.len() - 1;
        loop {
            let b = fastrand::usize(..) & mask;
            if let Some(first) = &self.buckets[b] {
                let mut chain_len = 0;
                let mut link = &self.buckets[b];
                while let Some(node) = link {
                    chain_len += 1;
                    link = &node.next;
                }
                let mut node = first;
                for _ in 0..fastrand::usize(..chain_len) {
                    // Within the chain length counted above.
                    node = node.next.as_ref().expect("within chain");
                }
                return Some(&node.item);
            }
        }
    }
}

impl<T: DictItem + Clone> Clone for Dict<T> {
    fn clone(&self) -> Self {
        let mut copy = Dict::new();
        if !self.buckets.is_empty() {
            copy.resize(self.buckets.len());
        }
        for item in self.iter() {
            copy.insert_new(item.clone());
        }
        copy
    }
}

/// Drops chains iteratively: a recursive drop of a long chain could overflow the stack.
fn drop_chains<T>(buckets: Box<[Link<T>]>) {
    for mut link in buckets.into_vec() {
        while let Some(mut node) = link {
            link = node.next.take();
        }
    }
}

impl<T> Drop for Dict<T> {
    fn drop(&mut self) {
        drop_chains(std::mem::take(&mut self.buckets));
    }
}

pub struct Iter<'a, T> {
    buckets: &'a [Link<T>],
    bucket: usize,
    node: Option<&'a Node<T>>,
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        loop {
            if let Some(node) = self.node {
                self.node = node.next.as_deref();
                return Some(&node.item);
            }
            let link = self.buckets.get(self.bucket)?;
            self.bucket += 1;
            self.node = link.as_deref();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[derive(Clone, Debug, PartialEq)]
    struct Item(Vec<u8>, u32);

    impl DictItem for Item {
        fn key(&self) -> &[u8] {
            &self.0
        }
    }

    fn key(i: u32) -> Vec<u8> {
        format!("k{i}").into_bytes()
    }

    #[test]
    fn insert_get_remove() {
        let mut d = Dict::new();
        for i in 0..1000 {
            assert!(d.insert(Item(key(i), i)).is_none());
        }
        assert_eq!(d.len(), 1000);
        assert!(d.bucket_count() >= 1000);
        assert_eq!(d.insert(Item(key(5), 55)).map(|i| i.1), Some(5));
        assert_eq!(d.get(&key(5)).map(|i| i.1), Some(55));
        for i in 0..1000 {
            assert!(d.remove(&key(i)).is_some());
            assert!(d.get(&key(i)).is_none());
        }
        assert_eq!(d.len(), 0);
        assert_eq!(d.bucket_count(), 0);
        assert_eq!(d.iter().count(), 0);
    }

    #[test]
    fn scan_survives_growth_and_shrink() {
        let mut d = Dict::new();
        for i in 0..500 {
            d.insert(Item(key(i), i));
        }
        let present: HashSet<Vec<u8>> = (0..250).map(key).collect();
        let mut seen = HashSet::new();
        let mut cursor = 0;
        let mut step = 0u32;
        loop {
            cursor = d.scan(cursor, |it| {
                seen.insert(it.0.clone());
            });
            // Grow hard, then shrink hard, while scanning; keys 0..250 stay throughout.
            step += 1;
            if step < 20 {
                for i in 0..200 {
                    d.insert(Item(key(10_000 + step * 1000 + i), i));
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
        for k in &present {
            assert!(
                seen.contains(k),
                "scan missed {:?}",
                String::from_utf8_lossy(k)
            );
        }
    }

    #[test]
    fn random_returns_members() {
        let mut d = Dict::new();
        assert!(d.random().is_none());
        for i in 0..10 {
            d.insert(Item(key(i), i));
        }
        let mut seen = HashSet::new();
        for _ in 0..1000 {
            seen.insert(d.random().unwrap().1);
        }
        assert_eq!(seen.len(), 10);
    }
}
