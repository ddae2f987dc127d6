//! `OrderTree`: an order-statistic treap, the ordered index of sorted sets.
//!
//! Every node knows the size of its subtree, so rank ("how many before this key"), select ("the
//! i-th key") and counting a range are O(log n), as Redis's skiplist with spans gives. Nodes live
//! in one arena and link by `u32` index: no unsafe code, no per-node allocation, and a freed
//! slot is reused by the next insert. Priorities are random, so the expected depth is
//! O(log n) whatever order clients insert in.

const NIL: u32 = u32::MAX;

/// Arenas smaller than this are never compacted (rebuilding would cost more than it saves).
const COMPACT_NODES_MIN: usize = 1024;

struct TreeNode<K> {
    /// `None` only while the slot is on the free list, so a freed key is dropped at once.
    key: Option<K>,
    left: u32,
    right: u32,
    size: u32,
    priority: u32,
}

pub struct OrderTree<K> {
    nodes: Vec<TreeNode<K>>,
    free: Vec<u32>,
    root: u32,
}

impl<K: Ord> Default for OrderTree<K> {
    fn default() -> Self {
        OrderTree::new()
    }
}

impl<K: Ord> OrderTree<K> {
    pub fn new() -> Self {
        OrderTree {
            nodes: Vec::new(),
            free: Vec::new(),
            root: NIL,
        }
    }

    pub fn len(&self) -> usize {
        self.size(self.root) as usize
    }

    /// Bytes the node arena holds (MEMORY USAGE).
    pub fn arena_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<TreeNode<K>>()
            + self.free.capacity() * std::mem::size_of::<u32>()
    }

    fn size(&self, n: u32) -> u32 {
        if n == NIL {
            0
        } else {
            self.nodes[n as usize].size
        }
    }

    fn node(&self, n: u32) -> &TreeNode<K> {
        &self.nodes[n as usize]
    }

    /// The key of a live node (only free-list slots have none, and no link points at those).
    fn key(&self, n: u32) -> &K {
        self.node(n).key.as_ref().expect("linked nodes are live")
    }

    fn fix_size(&mut self, n: u32) {
        let size = 1 + self.size(self.node(n).left) + self.size(self.node(n).right);
        self.nodes[n as usize].size = size;
    }

    /// Splits subtree `t` into (keys before `pivot`, the rest).
    fn split(&mut self, t: u32, pivot: &K) -> (u32, u32) {
        if t == NIL {
            return (NIL, NIL);
        }
        if self.key(t) < pivot {
            let (l, r) = self.split(self.node(t).right, pivot);
            self.nodes[t as usize].right = l;
            self.fix_size(t);
            (t, r)
        } else {
            let (l, r) = self.split(self.node(t).left, pivot);
            self.nodes[t as usize].left = r;
            self.fix_size(t);
            (l, t)
        }
    }

    /// Joins two subtrees where every key of `a` is before every key of `b`.
    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.node(a).priority > self.node(b).priority {
            let r = self.merge(self.node(a).right, b);
            self.nodes[a as usize].right = r;
            self.fix_size(a);
            a
        } else {
            let l = self.merge(a, self.node(b).left);
            self.nodes[b as usize].left = l;
            self.fix_size(b);
            b
        }
    }

    fn alloc(&mut self, key: K) -> u32 {
        let node = TreeNode {
            key: Some(key),
            left: NIL,
            right: NIL,
            size: 1,
            priority: fastrand::u32(..),
        };
        match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        }
    }

    /// Inserts a key that is not present.
    pub fn insert(&mut self, key: K) {
        let (l, r) = self.split(self.root, &key);
        let n = self.alloc(key);
        let left = self.merge(l, n);
        self.root = self.merge(left, r);
    }

    /// Removes `key`; returns whether it was present.
    pub fn remove(&mut self, key: &K) -> bool {
        let (root, removed) = self.remove_in(self.root, key);
        self.root = root;
        if removed && self.root == NIL {
            self.nodes.clear();
            self.free.clear();
        } else if removed
            && self.nodes.len() > COMPACT_NODES_MIN
            && self.len() * 4 < self.nodes.len()
        {
            self.compact();
        }
        removed
    }

    fn remove_in(&mut self, t: u32, key: &K) -> (u32, bool) {
        if t == NIL {
            return (NIL, false);
        }
        let removed = match key.cmp(self.key(t)) {
            std::cmp::Ordering::Less => {
                let (l, removed) = self.remove_in(self.node(t).left, key);
                self.nodes[t as usize].left = l;
                removed
            }
            std::cmp::Ordering::Greater => {
                let (r, removed) = self.remove_in(self.node(t).right, key);
                self.nodes[t as usize].right = r;
                removed
            }
            std::cmp::Ordering::Equal => {
                self.nodes[t as usize].key = None;
                let joined = self.merge(self.node(t).left, self.node(t).right);
                self.free.push(t);
                return (joined, true);
            }
        };
        self.fix_size(t);
        (t, removed)
    }

    /// Rebuilds the arena without its free slots, so a set that shrank gives memory back.
    fn compact(&mut self) {
        let mut keys = Vec::with_capacity(self.len());
        let mut stack = Vec::new();
        let mut n = self.root;
        while n != NIL || !stack.is_empty() {
            while n != NIL {
                stack.push(n);
                n = self.node(n).left;
            }
            // The inner loop pushed at least one node.
            let top = stack.pop().expect("non-empty");
            keys.extend(self.nodes[top as usize].key.take());
            n = self.node(top).right;
        }
        self.nodes.clear();
        self.free.clear();
        self.root = NIL;
        for key in keys {
            self.insert(key);
        }
    }

    /// Number of keys before `key` (its rank when present).
    pub fn rank(&self, key: &K) -> usize {
        self.count_while(|k| k < key)
    }

    /// Number of keys for which `before` holds; `before` must hold for a prefix of the order.
    pub fn count_while(&self, before: impl Fn(&K) -> bool) -> usize {
        let mut count = 0;
        let mut n = self.root;
        while n != NIL {
            let node = self.node(n);
            if before(self.key(n)) {
                count += self.size(node.left) as usize + 1;
                n = node.right;
            } else {
                n = node.left;
            }
        }
        count
    }

    /// The key at `rank` (0-based).
    pub fn select(&self, mut rank: usize) -> Option<&K> {
        let mut n = self.root;
        while n != NIL {
            let node = self.node(n);
            let left = self.size(node.left) as usize;
            match rank.cmp(&left) {
                std::cmp::Ordering::Less => n = node.left,
                std::cmp::Ordering::Equal => return Some(self.key(n)),
                std::cmp::Ordering::Greater => {
                    rank -= left + 1;
                    n = node.right;
                }
            }
        }
        None
    }

    /// Keys in order starting at `rank`, forward or (with `rev`) backward.
    pub fn iter_from(&self, mut rank: usize, rev: bool) -> Iter<'_, K> {
        let mut stack = Vec::new();
        let mut n = self.root;
        while n != NIL {
            let node = self.node(n);
            let left = self.size(node.left) as usize;
            if rank < left {
                if !rev {
                    stack.push(n);
                }
                n = node.left;
            } else if rank == left {
                stack.push(n);
                break;
            } else {
                if rev {
                    stack.push(n);
                }
                rank -= left + 1;
                n = node.right;
            }
        }
        Iter {
            tree: self,
            stack,
            rev,
        }
    }

    pub fn iter(&self) -> Iter<'_, K> {
        self.iter_from(0, false)
    }
}

pub struct Iter<'a, K> {
    tree: &'a OrderTree<K>,
    stack: Vec<u32>,
    rev: bool,
}

impl<'a, K: Ord> Iterator for Iter<'a, K> {
    type Item = &'a K;

    fn next(&mut self) -> Option<&'a K> {
        let n = self.stack.pop()?;
        let node = self.tree.node(n);
        let mut child = if self.rev { node.left } else { node.right };
        while child != NIL {
            self.stack.push(child);
            let c = self.tree.node(child);
            child = if self.rev { c.right } else { c.left };
        }
        Some(self.tree.key(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        #[test]
        fn matches_btreeset(ops in proptest::collection::vec((any::<bool>(), 0u16..300), 1..2000)) {
            let mut tree = OrderTree::new();
            let mut model = BTreeSet::new();
            for (insert, k) in ops {
                if insert {
                    if model.insert(k) { tree.insert(k); }
                } else {
                    prop_assert_eq!(tree.remove(&k), model.remove(&k));
                }
                prop_assert_eq!(tree.len(), model.len());
            }
            let sorted: Vec<u16> = model.iter().copied().collect();
            prop_assert_eq!(tree.iter().copied().collect::<Vec<_>>(), sorted.clone());
            for (i, k) in sorted.iter().enumerate() {
                prop_assert_eq!(tree.rank(k), i);
                prop_assert_eq!(tree.select(i), Some(k));
                let fwd: Vec<u16> = tree.iter_from(i, false).copied().collect();
                prop_assert_eq!(&fwd[..], &sorted[i..]);
                let rev: Vec<u16> = tree.iter_from(i, true).copied().collect();
                let mut expect: Vec<u16> = sorted[..=i].to_vec();
                expect.reverse();
                prop_assert_eq!(rev, expect);
            }
            prop_assert_eq!(tree.select(sorted.len()), None);
            prop_assert_eq!(tree.count_while(|k| *k < 100), sorted.iter().filter(|k| **k < 100).count());
        }
    }

    #[test]
    fn compacts_after_shrinking() {
        let mut tree = OrderTree::new();
        for i in 0..10_000u32 {
            tree.insert(i);
        }
        for i in 0..9_900u32 {
            assert!(tree.remove(&i));
        }
        assert_eq!(tree.len(), 100);
        assert!(tree.nodes.len() < 2000);
        assert_eq!(
            tree.iter().copied().collect::<Vec<_>>(),
            (9_900..10_000).collect::<Vec<_>>()
        );
    }
}
