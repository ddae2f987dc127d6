//! `CompactBytes`: a 24-byte byte string that keeps short contents inline.
//!
//! It is also what the API hands out for values (`Node::get`, `Reply::Bulk`): it derefs to
//! `[u8]`, and a value of up to 22 bytes costs no allocation to return.
//!
//! Keys, string values, list elements, hash fields and set members are mostly short, and a heap
//! allocation per string is what makes a naive map cost 150+ bytes per key. Up to
//! [`INLINE_MAX`] bytes live inside the value itself; longer contents get one exact-size
//! allocation; a string that is being appended to switches to a growable buffer so repeated
//! `APPEND`s stay amortized O(1) (Redis calls that encoding "raw").

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};

/// The longest content stored inline.
pub const INLINE_MAX: usize = 22;

/// A byte string that stores up to 22 bytes inline. It derefs to `[u8]`.
///
/// ```
/// use shoal::CompactBytes;
/// let b = CompactBytes::new(b"hello");
/// assert_eq!(&b[..], b"hello");
/// assert_eq!(b, "hello");
/// ```
pub struct CompactBytes(Repr);

enum Repr {
    /// `len` is at most INLINE_MAX: only `new` builds this variant.
    Inline {
        len: u8,
        data: [u8; INLINE_MAX],
    },
    Boxed(Box<[u8]>),
    // Boxed so that the enum stays 24 bytes; only strings being appended to pay for it.
    #[allow(clippy::box_collection)]
    Growable(Box<Vec<u8>>),
}

impl Clone for CompactBytes {
    #[inline]
    fn clone(&self) -> Self {
        match &self.0 {
            // SAFETY: an inline string owns nothing, so a bitwise copy of all 24 bytes is an
            // independent, valid value (and three word moves, where a field-wise copy of the
            // unaligned inline bytes takes a dozen).
            Repr::Inline { .. } => unsafe { std::ptr::read(self) },
            _ => self.clone_out_of_line(),
        }
    }
}

impl CompactBytes {
    #[inline(never)]
    fn clone_out_of_line(&self) -> CompactBytes {
        CompactBytes(match &self.0 {
            Repr::Growable(v) => Repr::Growable(v.clone()),
            _ => Repr::Boxed(self.as_slice().into()),
        })
    }

    /// The empty string.
    pub const EMPTY: CompactBytes = CompactBytes(Repr::Inline {
        len: 0,
        data: [0; INLINE_MAX],
    });

    /// A copy of `bytes`.
    pub fn new(bytes: &[u8]) -> CompactBytes {
        if bytes.len() <= INLINE_MAX {
            let mut data = [0; INLINE_MAX];
            data[..bytes.len()].copy_from_slice(bytes);
            // The length fits: it is at most INLINE_MAX.
            CompactBytes(Repr::Inline {
                len: bytes.len() as u8,
                data,
            })
        } else {
            CompactBytes(Repr::Boxed(bytes.into()))
        }
    }

    /// Takes ownership of a buffer as a growable string (Redis's "raw": what SETRANGE and
    /// APPEND build).
    pub fn growable(vec: Vec<u8>) -> CompactBytes {
        CompactBytes(Repr::Growable(Box::new(vec)))
    }

    /// The content.
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, data } => &data[..usize::from(*len)],
            Repr::Boxed(b) => b,
            Repr::Growable(v) => v,
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when the content lives in a growable buffer (Redis's "raw" encoding).
    pub fn is_growable(&self) -> bool {
        matches!(self.0, Repr::Growable(_))
    }

    /// The content as a growable buffer, converting in place when needed.
    pub fn make_growable(&mut self) -> &mut Vec<u8> {
        if !self.is_growable() {
            self.0 = Repr::Growable(Box::new(self.as_slice().to_vec()));
        }
        match &mut self.0 {
            Repr::Growable(v) => v,
            // Converted just above.
            _ => unreachable!("converted to growable above"),
        }
    }

    /// Bytes allocated outside the value itself (0 when inline).
    pub fn heap_bytes(&self) -> usize {
        match &self.0 {
            Repr::Inline { .. } => 0,
            Repr::Boxed(b) => b.len(),
            Repr::Growable(v) => std::mem::size_of::<Vec<u8>>() + v.capacity(),
        }
    }

    /// Whether the content is stored inline (no heap allocation).
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }
}

impl Default for CompactBytes {
    fn default() -> Self {
        CompactBytes::EMPTY
    }
}

impl std::ops::Deref for CompactBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for CompactBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Borrow<[u8]> for CompactBytes {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl From<&[u8]> for CompactBytes {
    fn from(b: &[u8]) -> Self {
        CompactBytes::new(b)
    }
}

impl From<&str> for CompactBytes {
    fn from(s: &str) -> Self {
        CompactBytes::new(s.as_bytes())
    }
}

impl From<CompactBytes> for Vec<u8> {
    fn from(b: CompactBytes) -> Vec<u8> {
        match b.0 {
            Repr::Growable(v) => *v,
            other => CompactBytes(other).as_slice().to_vec(),
        }
    }
}

impl PartialEq<[u8]> for CompactBytes {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_slice() == other
    }
}

impl PartialEq<&[u8]> for CompactBytes {
    fn eq(&self, other: &&[u8]) -> bool {
        self.as_slice() == *other
    }
}

impl PartialEq<&str> for CompactBytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_slice() == other.as_bytes()
    }
}

impl PartialEq for CompactBytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for CompactBytes {}

impl PartialOrd for CompactBytes {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for CompactBytes {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl Hash for CompactBytes {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state)
    }
}

impl fmt::Debug for CompactBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_and_round_trip() {
        assert_eq!(std::mem::size_of::<CompactBytes>(), 24);
        for len in [0, 1, 21, 22, 23, 100] {
            let data: Vec<u8> = (0..len as u8).collect();
            let c = CompactBytes::new(&data);
            assert_eq!(c.as_slice(), &data[..]);
            assert_eq!(c.is_inline(), len <= INLINE_MAX);
        }
    }

    #[test]
    fn growable() {
        let mut c = CompactBytes::new(b"abc");
        c.make_growable().extend_from_slice(&[b'x'; 30]);
        assert!(c.is_growable());
        assert_eq!(c.len(), 33);
        assert_eq!(&c[..3], b"abc");
    }
}
