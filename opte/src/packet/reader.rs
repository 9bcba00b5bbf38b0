//! [`ChainReader`]: a cursor that reads headers in place from an mblk
//! chain.
//!
//! A header wholly inside the current block is returned as a borrowed
//! slice of that block: no copy. A header that straddles blocks is
//! gathered into a small caller-provided scratch buffer (only that
//! header's bytes, never the packet), and the reader counts it; the
//! port turns the count into a statistic. Empty blocks are skipped.
//! Every read is bounded by the bytes the chain holds.

use super::error::{HeaderKind, ParseError};
use crate::ddi::MsgBlk;
use crate::ddi::mblk::Segments;

/// Largest header the reader gathers across blocks in one take. Every
/// fixed header and option area we read is at most this long (IPv6 fixed
/// header 40 bytes; IPv4 and TCP at most 60; a Geneve option body at most
/// 124).
pub const MAX_TAKE: usize = 128;

/// Scratch space for one straddled header.
pub type Scratch = [u8; MAX_TAKE];

/// A read cursor over a packet's blocks.
pub struct ChainReader<'a> {
    /// The unread rest of the current block.
    cur: &'a [u8],
    /// The blocks after the current one.
    rest: Segments<'a>,
    /// Absolute packet offset of `cur[0]`.
    pos: usize,
    /// Headers that straddled blocks and were gathered.
    straddled: u16,
}

impl<'a> ChainReader<'a> {
    /// A reader at the start of `pkt`.
    #[inline]
    pub fn new(pkt: &'a MsgBlk) -> Self {
        let mut rest = pkt.segments();
        let cur = rest.next().unwrap_or(&[]);
        Self { cur, rest, pos: 0, straddled: 0 }
    }

    /// Absolute offset of the next unread byte.
    #[inline(always)]
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// How many reads gathered a header across blocks.
    #[inline(always)]
    pub fn straddled(&self) -> u16 {
        self.straddled
    }

    /// True when no unread bytes remain.
    pub fn is_at_end(&mut self) -> bool {
        self.skip_empty();
        self.cur.is_empty()
    }

    /// Unread bytes left in the packet.
    pub fn remaining(&self) -> usize {
        self.cur.len() + self.rest.clone().map(<[u8]>::len).sum::<usize>()
    }

    #[inline(always)]
    fn skip_empty(&mut self) {
        while self.cur.is_empty() {
            match self.rest.next() {
                Some(s) => self.cur = s,
                None => return,
            }
        }
    }

    /// Read the next `n` bytes (`n <= MAX_TAKE`). Borrowed from the block
    /// when contiguous, else gathered into `scratch`.
    #[inline(always)]
    pub fn take<'s>(
        &mut self,
        n: usize,
        scratch: &'s mut Scratch,
        hdr: HeaderKind,
    ) -> Result<&'s [u8], ParseError>
    where
        'a: 's,
    {
        if self.cur.len() >= n {
            let (h, t) = self.cur.split_at(n);
            self.cur = t;
            self.pos += n;
            return Ok(h);
        }
        self.take_slow(n, scratch, hdr)
    }

    #[cold]
    #[inline(never)]
    fn take_slow<'s>(
        &mut self,
        n: usize,
        scratch: &'s mut Scratch,
        hdr: HeaderKind,
    ) -> Result<&'s [u8], ParseError>
    where
        'a: 's,
    {
        self.skip_empty();
        if self.cur.len() >= n {
            return self.take(n, scratch, hdr);
        }
        let dst = scratch.get_mut(..n).ok_or(ParseError::BadLength(hdr))?;
        let mut done = 0;
        while done < n {
            self.skip_empty();
            if self.cur.is_empty() {
                return Err(ParseError::Truncated(hdr));
            }
            let k = self.cur.len().min(n - done);
            let (h, t) = self.cur.split_at(k);
            dst[done..done + k].copy_from_slice(h);
            self.cur = t;
            done += k;
        }
        self.pos += n;
        self.straddled = self.straddled.saturating_add(1);
        Ok(dst)
    }

    /// Step over `n` bytes without reading them.
    pub fn skip(&mut self, n: usize, hdr: HeaderKind) -> Result<(), ParseError> {
        let mut left = n;
        while left > 0 {
            self.skip_empty();
            if self.cur.is_empty() {
                return Err(ParseError::Truncated(hdr));
            }
            let k = self.cur.len().min(left);
            self.cur = &self.cur[k..];
            left -= k;
        }
        self.pos += n;
        Ok(())
    }
}
