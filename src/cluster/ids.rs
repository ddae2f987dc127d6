//! Node IDs and epochs: the names and the clocks of cluster configuration.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A node's name: 40 lower-case hex characters, random at birth, kept in nodes.conf.
#[derive(Clone, Copy, Eq, PartialOrd, Ord)]
pub struct NodeId([u8; NodeId::LEN]);

/// Word by word: the slot map compares owners 16384 times per rebuild, and the derived
/// comparison is a call to `memcmp` each time.
impl PartialEq for NodeId {
    fn eq(&self, other: &NodeId) -> bool {
        let word = |id: &NodeId, i: usize| {
            u64::from_ne_bytes(id.0[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
        };
        (0..NodeId::LEN / 8).all(|i| word(self, i) == word(other, i))
    }
}

impl std::hash::Hash for NodeId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

/// On the bus as its text: a peer's ID that is not 40 hex characters fails to decode.
impl Serialize for NodeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<NodeId, D::Error> {
        let text = String::deserialize(d)?;
        NodeId::parse(text.as_bytes())
            .ok_or_else(|| serde::de::Error::custom("a node ID is 40 hex characters"))
    }
}

impl NodeId {
    /// Characters in a node ID.
    pub const LEN: usize = 40;

    /// A new random ID.
    pub fn random() -> NodeId {
        let mut id = [0u8; NodeId::LEN];
        for byte in &mut id {
            *byte = b"0123456789abcdef"[fastrand::usize(..16)];
        }
        NodeId(id)
    }

    /// An ID from its text: exactly 40 hex characters (upper case is taken as lower).
    pub fn parse(text: &[u8]) -> Option<NodeId> {
        if text.len() != NodeId::LEN || !text.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        let mut id = [0u8; NodeId::LEN];
        for (out, b) in id.iter_mut().zip(text) {
            *out = b.to_ascii_lowercase();
        }
        Some(NodeId(id))
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        // Only hex digits are ever stored (see `random` and `parse`).
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// Whether the ID is well formed (always, for one made by `random`, `parse` or serde).
    pub fn is_valid(&self) -> bool {
        self.0
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", &self.as_str()[..8])
    }
}

/// A configuration epoch or the cluster's current epoch: the higher one wins a conflict.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Epoch(pub u64);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_forty_hex_characters() {
        let id = NodeId::random();
        assert_eq!(id.as_str().len(), 40);
        assert!(id.is_valid());
        assert_eq!(NodeId::parse(id.as_str().as_bytes()), Some(id));
        let upper = id.as_str().to_uppercase();
        assert_eq!(NodeId::parse(upper.as_bytes()), Some(id));
        assert_eq!(NodeId::parse(b"abc"), None);
        assert_eq!(NodeId::parse(&[b'g'; 40]), None);
    }
}
