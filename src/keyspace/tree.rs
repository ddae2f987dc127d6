//! `OrderTree`: an order-statistic B+tree, the ordered index of sorted sets.
//!
//! Keys sit in sorted leaves of up to [`LEAF_MAX`]; inner nodes route by separator keys and
//! know how many keys each child holds, so rank ("how many before this key"), select ("the
//! i-th key") and counting a range are O(log n), as Redis's skiplist with spans gives. A lookup
//! touches a handful of nodes, each a few cache lines searched in place, where a binary tree
//! (or a skiplist) takes a cache miss per level, some twenty for 100k members: the misses are
//! what a ZADD on a large set spends its time on.
//!
//! Removal never rebalances: a leaf may run low or empty, and separators stay valid (each is
//! still above everything on its left and at most everything on its right). When the keys fill
//! less than an eighth of the leaves' room, the tree is rebuilt, which keeps memory within a
//! constant factor of the keys at O(1) amortized cost per removal.

/// Keys per leaf; a full leaf splits in two halves.
const LEAF_MAX: usize = 64;
/// Children per inner node; a full inner node splits in two halves.
const INNER_MAX: usize = 64;
/// A leaf's allocation: the key that overflows it is inserted before the split.
const LEAF_ROOM: usize = LEAF_MAX + 1;
/// Keys per leaf when the tree is rebuilt: room for inserts before the first splits.
const LEAF_BUILD: usize = LEAF_MAX * 3 / 4;

enum Node<K> {
    Leaf(Vec<K>),
    Inner(Box<Inner<K>>),
}

struct Inner<K> {
    /// `seps[i]` is above every key of `children[i]` and at most every key of `children[i + 1]`.
    seps: Vec<K>,
    /// Keys under each child.
    counts: Vec<usize>,
    children: Vec<Node<K>>,
}

pub struct OrderTree<K> {
    root: Node<K>,
    len: usize,
    leaves: usize,
}

impl<K: Ord + Clone> Default for OrderTree<K> {
    fn default() -> Self {
        OrderTree::new()
    }
}

impl<K> Inner<K> {
    /// The child whose range holds `key`.
    fn route(&self, key: &K) -> usize
    where
        K: Ord,
    {
        self.seps.partition_point(|s| s <= key)
    }

    /// Splits off the upper half: (separator between the halves, the upper half, its count).
    fn split(&mut self) -> (K, Inner<K>, usize) {
        let half = self.children.len() / 2;
        let children = self.children.split_off(half);
        let counts = self.counts.split_off(half);
        let seps = self.seps.split_off(half - 1);
        let mut seps = seps.into_iter();
        // `seps` had one fewer entry than `children`: the first of the upper part goes up.
        let up = seps
            .next()
            .expect("an inner node over INNER_MAX has separators");
        let count = counts.iter().sum();
        let upper = Inner {
            seps: seps.collect(),
            counts,
            children,
        };
        (up, upper, count)
    }
}

impl<K: Ord + Clone> OrderTree<K> {
    pub fn new() -> Self {
        OrderTree {
            root: Node::Leaf(Vec::new()),
            len: 0,
            leaves: 1,
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes the nodes hold, keys included (MEMORY USAGE).
    pub fn node_bytes(&self) -> usize {
        fn bytes<K>(node: &Node<K>) -> usize {
            match node {
                Node::Leaf(keys) => keys.capacity() * std::mem::size_of::<K>(),
                Node::Inner(inner) => {
                    std::mem::size_of::<Inner<K>>()
                        + inner.seps.capacity() * std::mem::size_of::<K>()
                        + inner.counts.capacity() * std::mem::size_of::<usize>()
                        + inner.children.capacity() * std::mem::size_of::<Node<K>>()
                        + inner.children.iter().map(bytes).sum::<usize>()
                }
            }
        }
        bytes(&self.root)
    }

    /// Inserts a key that is not present.
    pub fn insert(&mut self, key: K) {
        self.len += 1;
        if let Some((sep, upper, upper_count)) = insert_in(&mut self.root, key, &mut self.leaves) {
            let lower = std::mem::replace(&mut self.root, Node::Leaf(Vec::new()));
            let lower_count = self.len - upper_count;
            self.root = Node::Inner(Box::new(Inner {
                seps: vec![sep],
                counts: vec![lower_count, upper_count],
                children: vec![lower, upper],
            }));
        }
    }

    /// Removes `key`; returns whether it was present.
    pub fn remove(&mut self, key: &K) -> bool {
        if !remove_in(&mut self.root, key) {
            return false;
        }
        self.len -= 1;
        if self.len == 0 {
            *self = OrderTree::new();
        } else if self.len * 8 < self.leaves * LEAF_MAX && self.leaves > 1 {
            self.rebuild();
        }
        true
    }

    /// Rebuilds the tree with every leaf [`LEAF_BUILD`] full, so a set that shrank gives its
    /// memory back.
    fn rebuild(&mut self) {
        let mut keys = Vec::with_capacity(self.len);
        drain_into(
            std::mem::replace(&mut self.root, Node::Leaf(Vec::new())),
            &mut keys,
        );
        let mut level: Vec<(Node<K>, usize)> = Vec::new();
        let mut keys = keys.into_iter().peekable();
        while keys.peek().is_some() {
            let mut leaf = Vec::with_capacity(LEAF_ROOM);
            leaf.extend(keys.by_ref().take(LEAF_BUILD));
            let count = leaf.len();
            level.push((Node::Leaf(leaf), count));
        }
        self.leaves = level.len().max(1);
        while level.len() > 1 {
            let mut upper = Vec::with_capacity(level.len() / INNER_MAX + 1);
            let mut nodes = level.into_iter().peekable();
            while nodes.peek().is_some() {
                let group: Vec<(Node<K>, usize)> = nodes.by_ref().take(INNER_MAX * 3 / 4).collect();
                let seps = group
                    .iter()
                    .skip(1)
                    .map(|(n, _)| first_key(n).clone())
                    .collect();
                let count = group.iter().map(|(_, c)| c).sum();
                let (children, counts) = group.into_iter().unzip();
                upper.push((
                    Node::Inner(Box::new(Inner {
                        seps,
                        counts,
                        children,
                    })),
                    count,
                ));
            }
            level = upper;
        }
        self.root = level
            .pop()
            .map_or_else(|| Node::Leaf(Vec::new()), |(node, _)| node);
    }

    /// Number of keys before `key` (its rank when present).
    pub fn rank(&self, key: &K) -> usize {
        self.count_while(|k| k < key)
    }

    /// Number of keys for which `before` holds; `before` must hold for a prefix of the order.
    pub fn count_while(&self, before: impl Fn(&K) -> bool) -> usize {
        let mut count = 0;
        let mut node = &self.root;
        loop {
            match node {
                Node::Leaf(keys) => return count + keys.partition_point(|k| before(k)),
                Node::Inner(inner) => {
                    // Children left of the first separator that fails `before` hold only keys
                    // below it, so they all pass; the child at it may hold some of each.
                    let i = inner.seps.partition_point(|s| before(s));
                    count += inner.counts[..i].iter().sum::<usize>();
                    node = &inner.children[i];
                }
            }
        }
    }

    /// The key at `rank` (0-based).
    pub fn select(&self, mut rank: usize) -> Option<&K> {
        let mut node = &self.root;
        loop {
            match node {
                Node::Leaf(keys) => return keys.get(rank),
                Node::Inner(inner) => {
                    let (i, before) = child_at(inner, rank)?;
                    rank -= before;
                    node = &inner.children[i];
                }
            }
        }
    }

    /// Keys in order starting at `rank`, forward or (with `rev`) backward.
    /// Backward from a rank past the end starts at the last key.
    pub fn iter_from(&self, rank: usize, rev: bool) -> Iter<'_, K> {
        let mut iter = Iter {
            path: Vec::new(),
            leaf: &[],
            pos: 0,
            rev,
        };
        let mut rank = match rank.checked_sub(self.len) {
            None => rank,
            Some(_) if rev && self.len > 0 => self.len - 1,
            Some(_) => return iter,
        };
        let mut node = &self.root;
        loop {
            match node {
                Node::Leaf(keys) => {
                    iter.leaf = keys;
                    iter.pos = rank + usize::from(rev);
                    return iter;
                }
                Node::Inner(inner) => {
                    // `rank` is below this subtree's count, so some child holds it.
                    let (i, before) = child_at(inner, rank).unwrap_or_default();
                    rank -= before;
                    iter.path.push((&**inner, i));
                    node = &inner.children[i];
                }
            }
        }
    }

    pub fn iter(&self) -> Iter<'_, K> {
        self.iter_from(0, false)
    }
}

/// Inserts `key` under `node`; a node that overflowed splits, and the caller gets (the
/// separator, the new upper sibling, its key count) to link in. `leaves` counts leaf splits.
fn insert_in<K: Ord + Clone>(
    node: &mut Node<K>,
    key: K,
    leaves: &mut usize,
) -> Option<(K, Node<K>, usize)> {
    match node {
        Node::Leaf(keys) => {
            let at = keys.partition_point(|k| k < &key);
            if keys.capacity() == keys.len() {
                // Small sets grow their only leaf by doubling, but never past LEAF_ROOM: the
                // half of a split that stays in place keeps its allocation.
                keys.reserve_exact(keys.len().max(4).min(LEAF_ROOM - keys.len()));
            }
            keys.insert(at, key);
            if keys.len() <= LEAF_MAX {
                return None;
            }
            let mut upper = Vec::with_capacity(LEAF_ROOM);
            upper.extend(keys.drain(keys.len() / 2..));
            let count = upper.len();
            *leaves += 1;
            Some((upper[0].clone(), Node::Leaf(upper), count))
        }
        Node::Inner(inner) => {
            let i = inner.route(&key);
            inner.counts[i] += 1;
            let (sep, upper, upper_count) = insert_in(&mut inner.children[i], key, leaves)?;
            inner.counts[i] -= upper_count;
            inner.seps.insert(i, sep);
            inner.counts.insert(i + 1, upper_count);
            inner.children.insert(i + 1, upper);
            if inner.children.len() <= INNER_MAX {
                return None;
            }
            let (sep, upper, count) = inner.split();
            Some((sep, Node::Inner(Box::new(upper)), count))
        }
    }
}

/// Removes `key` from under `node`; whether it was there.
fn remove_in<K: Ord>(node: &mut Node<K>, key: &K) -> bool {
    match node {
        Node::Leaf(keys) => match keys.binary_search(key) {
            Ok(at) => {
                keys.remove(at);
                true
            }
            Err(_) => false,
        },
        Node::Inner(inner) => {
            let i = inner.route(key);
            let removed = remove_in(&mut inner.children[i], key);
            if removed {
                inner.counts[i] -= 1;
            }
            removed
        }
    }
}

/// Which child holds the key at `rank`, and how many keys come before that child.
fn child_at<K>(inner: &Inner<K>, rank: usize) -> Option<(usize, usize)> {
    let mut before = 0;
    for (i, &count) in inner.counts.iter().enumerate() {
        if rank < before + count {
            return Some((i, before));
        }
        before += count;
    }
    None
}

/// The smallest key under `node` (built nodes are never empty).
fn first_key<K>(node: &Node<K>) -> &K {
    match node {
        Node::Leaf(keys) => &keys[0],
        Node::Inner(inner) => first_key(&inner.children[0]),
    }
}

/// Moves every key under `node`, in order, to the end of `out`.
fn drain_into<K>(node: Node<K>, out: &mut Vec<K>) {
    match node {
        Node::Leaf(keys) => out.extend(keys),
        Node::Inner(inner) => {
            for child in inner.children {
                drain_into(child, out);
            }
        }
    }
}

pub struct Iter<'a, K> {
    /// The inner nodes above the current leaf, each with the index of the child taken.
    path: Vec<(&'a Inner<K>, usize)>,
    leaf: &'a [K],
    /// Forward: the next index to yield; backward: one past it.
    pos: usize,
    rev: bool,
}

impl<'a, K> Iter<'a, K> {
    /// Moves to the next (or, backward, previous) leaf; false at the end.
    fn next_leaf(&mut self) -> bool {
        while let Some((inner, i)) = self.path.last_mut() {
            let inner: &'a Inner<K> = inner;
            let next = if self.rev {
                i.checked_sub(1)
            } else {
                Some(*i + 1).filter(|&n| n < inner.children.len())
            };
            let Some(next) = next else {
                self.path.pop();
                continue;
            };
            *i = next;
            let mut node = &inner.children[next];
            loop {
                match node {
                    Node::Leaf(keys) => {
                        self.leaf = keys;
                        self.pos = if self.rev { keys.len() } else { 0 };
                        return true;
                    }
                    Node::Inner(child) => {
                        let at = if self.rev {
                            child.children.len() - 1
                        } else {
                            0
                        };
                        self.path.push((child, at));
                        node = &child.children[at];
                    }
                }
            }
        }
        false
    }
}

impl<'a, K> Iterator for Iter<'a, K> {
    type Item = &'a K;

    fn next(&mut self) -> Option<&'a K> {
        loop {
            if self.rev {
                if self.pos > 0 {
                    self.pos -= 1;
                    return self.leaf.get(self.pos);
                }
            } else if self.pos < self.leaf.len() {
                self.pos += 1;
                return self.leaf.get(self.pos - 1);
            }
            if !self.next_leaf() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn check(tree: &OrderTree<u32>, model: &BTreeSet<u32>) -> Result<(), TestCaseError> {
        prop_assert_eq!(tree.len(), model.len());
        let sorted: Vec<u32> = model.iter().copied().collect();
        prop_assert_eq!(tree.iter().copied().collect::<Vec<_>>(), sorted.clone());
        for (i, k) in sorted.iter().enumerate() {
            prop_assert_eq!(tree.rank(k), i);
            prop_assert_eq!(tree.select(i), Some(k));
            // Iterating from every rank would be quadratic: some forty ranks, ends included.
            if i % (sorted.len() / 40 + 1) != 0 && i + 1 != sorted.len() {
                continue;
            }
            let fwd: Vec<u32> = tree.iter_from(i, false).copied().collect();
            prop_assert_eq!(&fwd[..], &sorted[i..]);
            let rev: Vec<u32> = tree.iter_from(i, true).copied().collect();
            let mut expect: Vec<u32> = sorted[..=i].to_vec();
            expect.reverse();
            prop_assert_eq!(rev, expect);
        }
        prop_assert_eq!(tree.select(sorted.len()), None);
        prop_assert_eq!(tree.iter_from(sorted.len(), false).count(), 0);
        prop_assert_eq!(tree.iter_from(sorted.len() + 3, true).count(), sorted.len());
        prop_assert_eq!(
            tree.count_while(|k| *k < 1000),
            sorted.iter().filter(|k| **k < 1000).count()
        );
        Ok(())
    }

    proptest! {
        // Key ranges small and large, so that runs both stay in one leaf and split into
        // several levels, and removals empty leaves and trigger rebuilds.
        #[test]
        fn matches_btreeset(
            ops in proptest::collection::vec((any::<bool>(), 0u32..300), 1..2000),
            wide in proptest::collection::vec((0u8..3, 0u32..20_000), 1..6000),
        ) {
            for (insert_bias, run) in [(1u8, ops.iter().map(|&(i, k)| (u8::from(i), k)).collect::<Vec<_>>()), (2, wide)] {
                let mut tree = OrderTree::new();
                let mut model = BTreeSet::new();
                for (op, k) in run {
                    if op < insert_bias {
                        if model.insert(k) { tree.insert(k); }
                    } else {
                        prop_assert_eq!(tree.remove(&k), model.remove(&k));
                    }
                    prop_assert_eq!(tree.len(), model.len());
                }
                check(&tree, &model)?;
                // Shrinking to a tenth empties leaves and rebuilds the tree.
                for k in model.clone() {
                    if k % 10 != 0 {
                        prop_assert!(tree.remove(&k));
                        model.remove(&k);
                    }
                }
                check(&tree, &model)?;
            }
        }
    }

    #[test]
    fn rebuilds_after_shrinking() {
        let mut tree = OrderTree::new();
        for i in 0..100_000u32 {
            tree.insert(i);
        }
        let full = tree.node_bytes();
        // Ascending inserts leave every leaf half full: about 65 / 32 slots per key, plus inner
        // nodes. A leaf that kept a doubled allocation after its split would show here.
        let per_key = full as f64 / 100_000.0 / std::mem::size_of::<u32>() as f64;
        assert!(per_key < 3.0, "{per_key} key sizes per key");
        for i in 0..99_000u32 {
            assert!(tree.remove(&i));
        }
        assert_eq!(tree.len(), 1000);
        assert!(
            tree.node_bytes() * 20 < full,
            "{} vs {full}",
            tree.node_bytes()
        );
        assert_eq!(
            tree.iter().copied().collect::<Vec<_>>(),
            (99_000..100_000).collect::<Vec<_>>()
        );
        assert_eq!(tree.rank(&99_500), 500);
    }
}
