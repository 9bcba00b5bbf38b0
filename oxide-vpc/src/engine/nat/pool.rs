//! [`PortPool`]: the free SNAT ports (or ICMP echo identifiers) of one
//! protocol on one SNAT address.
//!
//! A bitmap over the configured range (one bit per port, set when free)
//! and a next-fit cursor: allocation resumes after the port handed out
//! last, so a port just released is the last one to be handed out again
//! (the far end may still hold state for the flow that used it). An
//! allocation looks at most every word of the bitmap once, which bounds
//! it by 1024 word tests for the largest range; a free is one bit.
//!
//! The pool only keeps the bitmap; whoever owns a port (a NAT flow's
//! [`NatDesc`](super::action::NatDesc)) returns it by calling
//! [`PortPool::release`] when it goes.

use alloc::vec::Vec;

/// Bits per bitmap word.
const WORD_BITS: usize = 64;

/// The free ports of one range.
#[derive(Debug)]
pub struct PortPool {
    first: u16,
    /// Ports in the range (at most 65536).
    len: usize,
    /// One bit per port of the range, set when the port is free. Bits
    /// past `len` in the last word are never set.
    words: Vec<u64>,
    /// Free ports (the number of set bits).
    free: usize,
    /// Where the next allocation starts looking (an index into the range).
    cursor: usize,
}

impl PortPool {
    /// A pool with every port of `first..=last` free (empty if
    /// `first > last`).
    pub fn new(first: u16, last: u16) -> Self {
        let len = if first <= last { usize::from(last - first) + 1 } else { 0 };
        let n_words = len.div_ceil(WORD_BITS);
        let mut words = Vec::with_capacity(n_words);
        for w in 0..n_words {
            let bits_here = len.saturating_sub(w * WORD_BITS).min(WORD_BITS);
            words.push(if bits_here == WORD_BITS { !0 } else { (1u64 << bits_here) - 1 });
        }
        Self { first, len, words, free: len, cursor: 0 }
    }

    /// Ports free now.
    pub fn available(&self) -> usize {
        self.free
    }

    /// Ports in the range.
    pub fn capacity(&self) -> usize {
        self.len
    }

    /// Take a free port, the first free one at or after the cursor
    /// (wrapping); None when every port is taken.
    pub fn allocate(&mut self) -> Option<u16> {
        if self.free == 0 || self.words.is_empty() {
            return None;
        }
        let n = self.words.len();
        let start = if self.cursor < self.len { self.cursor } else { 0 };
        let mut w = start / WORD_BITS;
        // Only the ports at or after the cursor in its own word, the first
        // time round; the word is visited again, whole, at the end.
        let mut mask = !0u64 << (start % WORD_BITS);
        for _ in 0..=n {
            let word = self.words.get(w).copied().unwrap_or(0) & mask;
            if word != 0 {
                let bit = word.trailing_zeros() as usize;
                let idx = w * WORD_BITS + bit;
                let port = u16::try_from(idx).ok().and_then(|i| self.first.checked_add(i))?;
                if let Some(slot) = self.words.get_mut(w) {
                    *slot &= !(1u64 << bit);
                }
                self.free = self.free.saturating_sub(1);
                self.cursor = if idx + 1 < self.len { idx + 1 } else { 0 };
                return Some(port);
            }
            mask = !0;
            w = if w + 1 < n { w + 1 } else { 0 };
        }
        None
    }

    /// Return `port` to the pool. False (and nothing changes) when the
    /// port is outside the range or already free.
    pub fn release(&mut self, port: u16) -> bool {
        let Some(idx) = port.checked_sub(self.first).map(usize::from) else { return false };
        if idx >= self.len {
            return false;
        }
        let bit = 1u64 << (idx % WORD_BITS);
        match self.words.get_mut(idx / WORD_BITS) {
            Some(word) if *word & bit == 0 => {
                *word |= bit;
                self.free += 1;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeSet;

    #[test]
    fn hands_out_every_port_once_then_runs_dry() {
        let mut p = PortPool::new(1024, 1024 + 199);
        assert_eq!(p.capacity(), 200);
        let mut seen = BTreeSet::new();
        for _ in 0..200 {
            let port = p.allocate().expect("a free port");
            assert!((1024..=1223).contains(&port), "{port} outside the range");
            assert!(seen.insert(port), "{port} handed out twice");
        }
        assert_eq!(p.available(), 0);
        assert_eq!(p.allocate(), None);
        assert!(p.release(1100));
        assert_eq!(p.allocate(), Some(1100));
        assert_eq!(p.allocate(), None);
    }

    #[test]
    fn a_released_port_is_reused_last() {
        let mut p = PortPool::new(5000, 5009);
        let a = p.allocate().unwrap();
        let b = p.allocate().unwrap();
        assert_eq!((a, b), (5000, 5001));
        assert!(p.release(a));
        // Next-fit: the rest of the range comes first.
        let next: Vec<u16> = (0..8).map(|_| p.allocate().unwrap()).collect();
        assert_eq!(next, (5002..=5009).collect::<Vec<_>>());
        assert_eq!(p.allocate(), Some(a));
    }

    #[test]
    fn release_refuses_strangers_and_double_frees() {
        let mut p = PortPool::new(2000, 2063);
        assert!(!p.release(1999), "below the range");
        assert!(!p.release(2064), "above the range");
        assert!(!p.release(2000), "never handed out");
        let port = p.allocate().unwrap();
        assert!(p.release(port));
        assert!(!p.release(port), "double free");
        assert_eq!(p.available(), 64);
    }

    #[test]
    fn the_whole_port_space_and_a_single_port() {
        let mut p = PortPool::new(0, u16::MAX);
        assert_eq!(p.capacity(), 65536);
        for _ in 0..65536 {
            assert!(p.allocate().is_some());
        }
        assert_eq!(p.allocate(), None);
        assert!(p.release(u16::MAX));
        assert_eq!(p.allocate(), Some(u16::MAX));

        let mut one = PortPool::new(40000, 40000);
        assert_eq!(one.allocate(), Some(40000));
        assert_eq!(one.allocate(), None);
        assert!(one.release(40000));
        assert_eq!(one.allocate(), Some(40000));

        let mut empty = PortPool::new(10, 9);
        assert_eq!(empty.capacity(), 0);
        assert_eq!(empty.allocate(), None);
    }

    #[test]
    fn the_cursor_wraps_inside_a_partial_last_word() {
        // 70 ports: one full word and six bits of the next.
        let mut p = PortPool::new(3000, 3069);
        let all: Vec<u16> = (0..70).map(|_| p.allocate().unwrap()).collect();
        assert_eq!(all, (3000..=3069).collect::<Vec<_>>());
        assert!(p.release(3010));
        assert!(p.release(3065));
        // The cursor wrapped to the start: 3010 comes before 3065.
        assert_eq!(p.allocate(), Some(3010));
        assert_eq!(p.allocate(), Some(3065));
        assert_eq!(p.allocate(), None);
    }
}
