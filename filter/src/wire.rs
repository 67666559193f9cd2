//! The proxy-wasm ABI's serialized header map, read in place.
//!
//! `proxy_get_header_map_pairs` returns every header in one buffer:
//! a little-endian `u32` count, then a `(name length, value length)` pair
//! of `u32`s per header, then each name and value followed by a NUL. The
//! SDK's own reader copies every name and value and panics on a name that
//! is not UTF-8 or a short buffer; this one borrows and never panics.

/// Iterates `(name, value)` pairs of a serialized header map. A malformed
/// buffer ends the iteration early instead of failing.
pub fn pairs(buffer: &[u8]) -> Pairs<'_> {
    let count = read_u32(buffer, 0).unwrap_or(0);
    Pairs {
        buffer,
        count,
        index: 0,
        data: count.saturating_mul(8).saturating_add(4),
    }
}

/// The first value of header `name` in a serialized header map.
pub fn find<'a>(buffer: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    pairs(buffer).find(|(n, _)| *n == name).map(|(_, v)| v)
}

pub struct Pairs<'a> {
    buffer: &'a [u8],
    count: usize,
    index: usize,
    data: usize,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.index >= self.count {
            return None;
        }
        // Checked arithmetic: usize is 32 bits in wasm32, and a lying
        // count must end the iteration, not overflow.
        let sizes = self.index.checked_mul(8)?.checked_add(4)?;
        let name_len = read_u32(self.buffer, sizes)?;
        let value_len = read_u32(self.buffer, sizes + 4)?;
        let name_end = self.data.checked_add(name_len)?;
        let name = self.buffer.get(self.data..name_end)?;
        let value_start = name_end.checked_add(1)?;
        let value_end = value_start.checked_add(value_len)?;
        let value = self.buffer.get(value_start..value_end)?;
        self.data = value_end.checked_add(1)?;
        self.index += 1;
        Some((name, value))
    }
}

/// A header map in the same format, as Envoy would hand it over: for the
/// tests, fuzz targets and benchmarks that feed [`pairs`] and [`find`].
/// A length beyond `u32` (which the format cannot hold) is written as
/// `u32::MAX`, so the result reads back as malformed, not as other headers.
pub fn serialize<N: AsRef<[u8]>, V: AsRef<[u8]>>(map: &[(N, V)]) -> Vec<u8> {
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    let mut out = len(map.len()).to_vec();
    for (n, v) in map {
        out.extend(len(n.as_ref().len()));
        out.extend(len(v.as_ref().len()));
    }
    for (n, v) in map {
        out.extend(n.as_ref());
        out.push(0);
        out.extend(v.as_ref());
        out.push(0);
    }
    out
}

fn read_u32(buffer: &[u8], at: usize) -> Option<usize> {
    let bytes = buffer.get(at..at.checked_add(4)?)?;
    let array: [u8; 4] = bytes.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(array)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_pair_in_place() {
        let map: &[(&[u8], &[u8])] = &[
            (b":path", b"/users?uid=1"),
            (b"x-user-id", b"\xff\xfe"),
            (b"empty", b""),
            (b"x-user-id", b"second"),
        ];
        let buffer = serialize(map);
        assert_eq!(pairs(&buffer).collect::<Vec<_>>(), map.to_vec());
        assert_eq!(find(&buffer, b"x-user-id"), Some(&b"\xff\xfe"[..]));
        assert_eq!(find(&buffer, b"empty"), Some(&b""[..]));
        assert_eq!(find(&buffer, b"missing"), None);
    }

    #[test]
    fn malformed_buffers_end_early() {
        let buffer = serialize(&[(b"a", b"1"), (b"b", b"2")]);
        for cut in 0..buffer.len() {
            let got: Vec<_> = pairs(&buffer[..cut]).collect();
            assert!(got.len() <= 2);
        }
        assert_eq!(pairs(&[]).count(), 0);
        assert_eq!(pairs(&u32::MAX.to_le_bytes()).count(), 0);
        let mut lying = serialize(&[(b"a", b"1")]);
        lying[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(pairs(&lying).count(), 0);
    }
}
