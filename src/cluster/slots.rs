//! Sets of slots: a 16384-bit map, as the bus carries them and nodes own them.

use crate::slot::{SlotId, SLOT_COUNT};
use serde::{Deserialize, Serialize};

const WORDS: usize = SLOT_COUNT / 64;

/// A set of slots.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotSet(#[serde(with = "words")] Box<[u64; WORDS]>);

impl Default for SlotSet {
    fn default() -> SlotSet {
        SlotSet(Box::new([0; WORDS]))
    }
}

impl std::fmt::Debug for SlotSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SlotSet({})", render_ranges(self.ranges()))
    }
}

impl SlotSet {
    /// Whether `slot` is in the set.
    pub fn contains(&self, slot: SlotId) -> bool {
        self.0[slot.index() / 64] & (1 << (slot.index() % 64)) != 0
    }

    /// Adds `slot`.
    pub fn insert(&mut self, slot: SlotId) {
        self.0[slot.index() / 64] |= 1 << (slot.index() % 64);
    }

    /// Removes `slot`.
    pub fn remove(&mut self, slot: SlotId) {
        self.0[slot.index() / 64] &= !(1 << (slot.index() % 64));
    }

    /// How many slots.
    pub fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether no slot is in the set.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    /// The slots in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = SlotId> + '_ {
        (0..SLOT_COUNT as u16)
            .filter_map(SlotId::new)
            .filter(|&s| self.contains(s))
    }

    /// Runs of consecutive slots, as (first, last).
    pub fn ranges(&self) -> Vec<(u16, u16)> {
        let mut out: Vec<(u16, u16)> = Vec::new();
        for slot in self.iter() {
            match out.last_mut() {
                Some(last) if last.1 + 1 == slot.get() => last.1 = slot.get(),
                _ => out.push((slot.get(), slot.get())),
            }
        }
        out
    }
}

/// `0-5460 5461 ...`: how CLUSTER NODES and nodes.conf list slots.
pub fn render_ranges(ranges: Vec<(u16, u16)>) -> String {
    let parts: Vec<String> = ranges
        .into_iter()
        .map(|(a, b)| match a == b {
            true => a.to_string(),
            false => format!("{a}-{b}"),
        })
        .collect();
    parts.join(" ")
}

/// serde for the fixed array (serde derives arrays only up to 32 elements).
mod words {
    use super::WORDS;
    use serde::{de::Error, Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(words: &[u64; WORDS], s: S) -> Result<S::Ok, S::Error> {
        words.as_slice().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Box<[u64; WORDS]>, D::Error> {
        let words = Vec::<u64>::deserialize(d)?;
        let words: Box<[u64]> = words.into_boxed_slice();
        words
            .try_into()
            .map_err(|_| D::Error::custom("a slot map has 256 words"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_render_as_redis_lists_them() {
        let mut set = SlotSet::default();
        for s in (0..=5460).chain([7000, 16383]) {
            set.insert(SlotId::new(s).unwrap());
        }
        assert_eq!(set.len(), 5463);
        assert_eq!(render_ranges(set.ranges()), "0-5460 7000 16383");
        set.remove(SlotId::new(7000).unwrap());
        assert!(!set.contains(SlotId::new(7000).unwrap()));
    }
}
