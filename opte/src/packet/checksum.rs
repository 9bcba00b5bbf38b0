//! The Internet checksum (RFC 1071): ones'-complement sums of 16-bit
//! words, computed in full or updated incrementally (RFC 1624, eq. 3:
//! `HC' = ~(~HC + ~m + m')`) when a few covered bytes change.
//!
//! [`Csum`] is an unfolded 64-bit accumulator: add byte slices and words,
//! subtract old contents with [`Csum::sub_bytes`], then fold. Slices must
//! start at an even offset of the covered region (every header we sum
//! does), and an odd-length slice is padded with a zero byte, as at the
//! end of a packet.

/// A ones'-complement sum in progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Csum(u64);

impl Csum {
    /// An empty sum.
    pub const fn new() -> Self {
        Self(0)
    }

    /// Add bytes starting at an even offset of the covered region.
    #[inline]
    pub fn add_bytes(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(4);
        let mut acc = self.0;
        for c in &mut chunks {
            acc += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
        }
        let rest = chunks.remainder();
        let mut tail = [0u8; 4];
        tail[..rest.len()].copy_from_slice(rest);
        acc += u64::from(u32::from_be_bytes(tail));
        self.0 = acc;
    }

    /// Add one 16-bit word.
    #[inline]
    pub fn add_u16(&mut self, w: u16) {
        self.0 += u64::from(w);
    }

    /// Add a 32-bit value as two words.
    #[inline]
    pub fn add_u32(&mut self, w: u32) {
        self.0 += u64::from(w);
    }

    /// Add another partial sum.
    #[inline]
    pub fn add_sum(&mut self, other: Csum) {
        // Fold first so repeated merges cannot overflow.
        self.0 += u64::from(other.fold());
    }

    /// Subtract bytes (ones'-complement: add their complement).
    #[inline]
    pub fn sub_bytes(&mut self, bytes: &[u8]) {
        let mut s = Csum::new();
        s.add_bytes(bytes);
        self.0 += u64::from(!s.fold());
    }

    /// Subtract one 16-bit word.
    #[inline]
    pub fn sub_u16(&mut self, w: u16) {
        self.0 += u64::from(!w);
    }

    /// This sum with its two byte lanes exchanged: the sum of the same
    /// bytes placed at an odd offset.
    #[inline]
    pub fn swapped(&self) -> Csum {
        Csum(u64::from(self.fold().swap_bytes()))
    }

    /// The folded 16-bit ones'-complement sum (not inverted).
    #[inline]
    pub fn fold(&self) -> u16 {
        let mut s = self.0;
        s = (s & 0xffff_ffff) + (s >> 32);
        s = (s & 0xffff_ffff) + (s >> 32);
        s = (s & 0xffff) + (s >> 16);
        s = (s & 0xffff) + (s >> 16);
        s as u16
    }

    /// The checksum to store: the inverted folded sum.
    #[inline]
    pub fn finish(&self) -> u16 {
        !self.fold()
    }
}

/// A sum over bytes that arrive in pieces of any length (the blocks of a
/// message): a piece that starts at an odd offset of the covered region
/// has its bytes in the other lane of each 16-bit word, which the sum
/// corrects by swapping that piece's folded sum.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamCsum {
    sum: Csum,
    odd: bool,
}

impl StreamCsum {
    /// An empty sum at an even offset.
    pub const fn new() -> Self {
        Self { sum: Csum::new(), odd: false }
    }

    /// Add the next piece of the covered bytes.
    pub fn add(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut piece = Csum::new();
        piece.add_bytes(bytes);
        let folded = piece.fold();
        self.sum.add_u16(if self.odd { folded.swap_bytes() } else { folded });
        self.odd ^= bytes.len() % 2 == 1;
    }

    /// The sum so far.
    pub fn sum(&self) -> Csum {
        self.sum
    }
}

/// The change in a sum when covered contents summing to `old` are
/// replaced by contents summing to `new`: exactly zero when the sums are
/// equal (not the ones'-complement "negative zero" `x + !x` gives), so an
/// unchanged field leaves every checksum as it was.
pub fn change(old: Csum, new: Csum) -> Csum {
    let mut d = Csum::new();
    if old.fold() != new.fold() {
        d.add_sum(new);
        d.add_u16(!old.fold());
    }
    d
}

/// The sum of one 16-bit word.
pub fn word(w: u16) -> Csum {
    let mut c = Csum::new();
    c.add_u16(w);
    c
}

/// Update a stored checksum `old` by a change whose sum difference
/// (new minus old covered contents) is `delta` (RFC 1624, eq. 3).
#[inline]
pub fn update(old: u16, delta: Csum) -> u16 {
    let mut s = Csum::new();
    s.add_u16(!old);
    s.add_sum(delta);
    s.finish()
}

/// Update a stored *partial* (not inverted) sum, as a NIC finishing the
/// checksum expects under `HCK_PARTIALCKSUM`.
#[inline]
pub fn update_partial(old: u16, delta: Csum) -> u16 {
    let mut s = Csum::new();
    s.add_u16(old);
    s.add_sum(delta);
    s.fold()
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 1071 section 3 example: words 0001 f203 f4f5 f6f7 sum to ddf2.
    #[test]
    fn rfc1071_example() {
        let mut c = Csum::new();
        c.add_bytes(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
        assert_eq!(c.fold(), 0xddf2);
        assert_eq!(c.finish(), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        let mut a = Csum::new();
        a.add_bytes(&[0x12, 0x34, 0x56]);
        let mut b = Csum::new();
        b.add_bytes(&[0x12, 0x34, 0x56, 0x00]);
        assert_eq!(a.fold(), b.fold());
    }

    #[test]
    fn stream_matches_contiguous_at_any_split() {
        let data: [u8; 11] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0xff];
        let mut whole = Csum::new();
        whole.add_bytes(&data);
        for a in 0..data.len() {
            for b in a..data.len() {
                let mut s = StreamCsum::new();
                s.add(&data[..a]);
                s.add(&data[a..b]);
                s.add(&data[b..]);
                assert_eq!(s.sum().fold(), whole.fold(), "split at {a},{b}");
            }
        }
    }

    #[test]
    fn incremental_matches_full() {
        let mut data = [0u8; 64];
        for (i, b) in data.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        let mut full = Csum::new();
        full.add_bytes(&data);
        let old_ck = full.finish();
        let old_field = data[10..14].to_vec();
        data[10..14].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let mut delta = Csum::new();
        delta.add_bytes(&data[10..14]);
        delta.sub_bytes(&old_field);
        let mut again = Csum::new();
        again.add_bytes(&data);
        assert_eq!(update(old_ck, delta), again.finish());
    }
}
