//! The packed blobs Redis stores small values in, read element by element: listpack, ziplist,
//! intset and zipmap. Every read is bounds-checked against the blob, so a corrupt blob is an
//! error naming the byte inside it, never a read past its end.

use std::borrow::Cow;

/// One element of a packed blob: bytes, or an integer Redis stored as one.
pub enum Element<'a> {
    Bytes(&'a [u8]),
    /// Bytes copied out of a blob that does not outlive the element.
    Owned(Box<[u8]>),
    Int(i64),
}

impl<'a> Element<'a> {
    /// The element as Redis hands it to a command: integers as decimal text.
    pub fn into_bytes(self) -> Cow<'a, [u8]> {
        match self {
            Element::Bytes(b) => Cow::Borrowed(b),
            Element::Owned(b) => Cow::Owned(b.into_vec()),
            Element::Int(i) => Cow::Owned(itoa::Buffer::new().format(i).as_bytes().to_vec()),
        }
    }
}

/// What went wrong, and where in the blob.
pub type BlobResult<T> = Result<T, (usize, &'static str)>;

/// A cursor over a blob.
struct Cursor<'a> {
    blob: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> BlobResult<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.blob.len())
            .ok_or((self.pos, "element runs past the end of its blob"))?;
        let bytes = &self.blob[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn byte(&mut self) -> BlobResult<u8> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> BlobResult<[u8; N]> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u16_le(&mut self) -> BlobResult<u16> {
        Ok(u16::from_le_bytes(self.le()?))
    }

    fn u32_le(&mut self) -> BlobResult<u32> {
        Ok(u32::from_le_bytes(self.le()?))
    }

    /// After a blob's end marker: nothing may follow it, and its header's element count (at
    /// byte `count_at`; `u16::MAX`: too many to count) must match what was read.
    fn finish<T>(
        &self,
        elements: Vec<T>,
        declared: u16,
        count_at: usize,
        mismatch: &'static str,
    ) -> BlobResult<Vec<T>> {
        if self.pos != self.blob.len() {
            return Err((self.pos, "bytes after the end marker of a packed blob"));
        }
        if declared != u16::MAX && usize::from(declared) != elements.len() {
            return Err((count_at, mismatch));
        }
        Ok(elements)
    }

    fn i24_le(&mut self) -> BlobResult<i64> {
        let [a, b, c] = self.le()?;
        Ok(i64::from(i32::from_le_bytes([0, a, b, c]) >> 8))
    }
}

/// The elements of a listpack (Redis 7's small lists, hashes and sorted sets).
pub fn listpack(blob: &[u8]) -> BlobResult<Vec<Element<'_>>> {
    let mut c = Cursor { blob, pos: 0 };
    let total = c.u32_le()? as usize;
    if total != blob.len() {
        return Err((0, "listpack header length differs from its blob"));
    }
    let declared = c.u16_le()?;
    let mut out = Vec::new();
    loop {
        let start = c.pos;
        let b = c.byte()?;
        let element = match b {
            0xFF => break,
            0x00..=0x7F => Element::Int(i64::from(b)),
            0x80..=0xBF => Element::Bytes(c.take(usize::from(b & 0x3F))?),
            0xC0..=0xDF => {
                let raw = (u16::from(b & 0x1F) << 8) | u16::from(c.byte()?);
                // A 13-bit two's-complement integer.
                Element::Int(i64::from(((raw << 3) as i16) >> 3))
            }
            0xE0..=0xEF => {
                let len = (usize::from(b & 0x0F) << 8) | usize::from(c.byte()?);
                Element::Bytes(c.take(len)?)
            }
            0xF0 => {
                let len = c.u32_le()? as usize;
                Element::Bytes(c.take(len)?)
            }
            0xF1 => Element::Int(i64::from(i16::from_le_bytes(c.le()?))),
            0xF2 => Element::Int(c.i24_le()?),
            0xF3 => Element::Int(i64::from(i32::from_le_bytes(c.le()?))),
            0xF4 => Element::Int(i64::from_le_bytes(c.le()?)),
            _ => return Err((start, "unknown listpack entry encoding")),
        };
        // The entry's length, stored again backwards so the list can be walked from its end.
        let entry_len = c.pos - start;
        c.take(backlen_bytes(entry_len))?;
        out.push(element);
    }
    c.finish(
        out,
        declared,
        4,
        "listpack element count differs from its entries",
    )
}

fn backlen_bytes(entry_len: usize) -> usize {
    match entry_len {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

/// The elements of a ziplist (what Redis before 7 stored small values in).
pub fn ziplist(blob: &[u8]) -> BlobResult<Vec<Element<'_>>> {
    let mut c = Cursor { blob, pos: 0 };
    let total = c.u32_le()? as usize;
    if total != blob.len() {
        return Err((0, "ziplist header length differs from its blob"));
    }
    let _tail = c.u32_le()?;
    let declared = c.u16_le()?;
    let mut out = Vec::new();
    loop {
        let start = c.pos;
        let prevlen = c.byte()?;
        if prevlen == 0xFF {
            break;
        }
        if prevlen == 0xFE {
            c.u32_le()?;
        }
        let b = c.byte()?;
        let element = match b >> 6 {
            0 => Element::Bytes(c.take(usize::from(b & 0x3F))?),
            1 => {
                let len = (usize::from(b & 0x3F) << 8) | usize::from(c.byte()?);
                Element::Bytes(c.take(len)?)
            }
            2 if b == 0x80 => {
                let len = u32::from_be_bytes(c.le()?) as usize;
                Element::Bytes(c.take(len)?)
            }
            _ => match b {
                0xC0 => Element::Int(i64::from(i16::from_le_bytes(c.le()?))),
                0xD0 => Element::Int(i64::from(i32::from_le_bytes(c.le()?))),
                0xE0 => Element::Int(i64::from_le_bytes(c.le()?)),
                0xF0 => Element::Int(c.i24_le()?),
                0xFE => Element::Int(i64::from(c.byte()? as i8)),
                0xF1..=0xFD => Element::Int(i64::from(b & 0x0F) - 1),
                _ => return Err((start, "unknown ziplist entry encoding")),
            },
        };
        out.push(element);
    }
    c.finish(
        out,
        declared,
        8,
        "ziplist element count differs from its entries",
    )
}

/// The members of an intset: sorted, distinct integers of 2, 4 or 8 bytes.
pub fn intset(blob: &[u8]) -> BlobResult<Vec<i64>> {
    let mut c = Cursor { blob, pos: 0 };
    let width = c.u32_le()? as usize;
    if !matches!(width, 2 | 4 | 8) {
        return Err((0, "intset encoding is not 2, 4 or 8 bytes"));
    }
    let len = c.u32_le()? as usize;
    if len.checked_mul(width) != Some(blob.len() - 8) {
        return Err((4, "intset length differs from its blob"));
    }
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        let at = c.pos;
        let v = match width {
            2 => i64::from(i16::from_le_bytes(c.le()?)),
            4 => i64::from(i32::from_le_bytes(c.le()?)),
            _ => i64::from_le_bytes(c.le()?),
        };
        if out.last().is_some_and(|&last| last >= v) {
            return Err((at, "intset members are not sorted and distinct"));
        }
        out.push(v);
    }
    Ok(out)
}

/// The field/value pairs of a zipmap (hashes of Redis 2.x), flattened.
pub fn zipmap(blob: &[u8]) -> BlobResult<Vec<Element<'_>>> {
    let mut c = Cursor { blob, pos: 0 };
    c.byte()?; // a count that is only a hint past 253
    let mut out = Vec::new();
    while let Some(field_len) = zipmap_len(&mut c)? {
        out.push(Element::Bytes(c.take(field_len)?));
        let at = c.pos;
        let value_len = zipmap_len(&mut c)?.ok_or((at, "zipmap field without a value"))?;
        // A value's length is followed by the count of unused bytes left after the value.
        let free = c.byte()?;
        out.push(Element::Bytes(c.take(value_len)?));
        c.take(usize::from(free))?;
    }
    if c.pos != blob.len() {
        return Err((c.pos, "bytes after the zipmap end marker"));
    }
    Ok(out)
}

fn zipmap_len(c: &mut Cursor<'_>) -> BlobResult<Option<usize>> {
    Ok(match c.byte()? {
        0xFF => None,
        0xFE => Some(c.u32_le()? as usize),
        len => Some(usize::from(len)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(elements: Vec<Element<'_>>) -> Vec<String> {
        elements
            .into_iter()
            .map(|e| String::from_utf8_lossy(&e.into_bytes()).into_owned())
            .collect()
    }

    #[test]
    fn listpack_of_every_encoding() {
        // Built by hand from the listpack spec: 7-bit uint, 6-bit string, 13-bit int,
        // int16, int24, int32, int64, then the end marker.
        let mut lp = vec![0, 0, 0, 0, 7, 0];
        lp.extend([5, 1]); // 5
        lp.extend([0x82, b'h', b'i', 3]); // "hi"
        lp.extend([0xDF, 0xFF, 2]); // -1 as 13 bits
        lp.extend([0xF1, 0x00, 0x80, 3]); // i16::MIN
        lp.extend([0xF2, 0xFF, 0xFF, 0x7F, 4]); // 2^23 - 1
        lp.extend([0xF3, 0xFF, 0xFF, 0xFF, 0xFF, 5]); // -1
        lp.extend([0xF4, 0, 0, 0, 0, 0, 0, 0, 0x80, 9]); // i64::MIN
        lp.push(0xFF);
        let total = lp.len() as u32;
        lp[..4].copy_from_slice(&total.to_le_bytes());
        assert_eq!(
            texts(listpack(&lp).unwrap()),
            [
                "5",
                "hi",
                "-1",
                "-32768",
                "8388607",
                "-1",
                "-9223372036854775808"
            ]
        );
        let cut = &lp[..lp.len() - 3];
        assert!(listpack(cut).is_err());
    }

    #[test]
    fn ziplist_of_every_encoding() {
        let mut zl = vec![0; 10];
        zl.extend([0, 0x02, b'a', b'b']); // "ab"
        zl.extend([4, 0xF1]); // immediate 0
        zl.extend([2, 0xFE, 0xF6]); // int8 -10
        zl.extend([3, 0xC0, 0x39, 0x30]); // int16 12345
        zl.extend([4, 0xF0, 0x00, 0x00, 0x80]); // int24 -2^23
        zl.push(0xFF);
        let total = zl.len() as u32;
        zl[..4].copy_from_slice(&total.to_le_bytes());
        zl[8..10].copy_from_slice(&5u16.to_le_bytes());
        assert_eq!(
            texts(ziplist(&zl).unwrap()),
            ["ab", "0", "-10", "12345", "-8388608"]
        );
    }

    #[test]
    fn intset_must_be_sorted() {
        let mut is = vec![2, 0, 0, 0, 2, 0, 0, 0];
        is.extend([0xFF, 0xFF, 0x05, 0x00]);
        assert_eq!(intset(&is).unwrap(), [-1, 5]);
        is[8..].copy_from_slice(&[0x05, 0x00, 0xFF, 0xFF]);
        assert!(intset(&is).is_err());
    }

    #[test]
    fn zipmap_pairs() {
        let zm = [
            2, 1, b'f', 2, 0, b'v', b'1', 1, b'g', 1, 1, b'w', b'x', 0xFF,
        ];
        assert_eq!(texts(zipmap(&zm).unwrap()), ["f", "v1", "g", "w"]);
    }
}
