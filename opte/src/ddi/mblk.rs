//! [`MsgBlk`]: an owned STREAMS message, the form every packet takes in
//! the illumos kernel.
//!
//! A message is a `b_cont` chain of `mblk_t`s. Each block's bytes are
//! `b_rptr..b_wptr`, inside its data block's `db_base..db_lim`; a header
//! may straddle two blocks at any byte. A data block may be shared with
//! other messages (`dupb`, counted by `db_ref`): its bytes are then
//! read-only, and [`MsgBlk`] copies a shared block (`copyb`) before it
//! writes into it. Offload state (hardware checksum and LSO flags) lives
//! on the first block's dblk and moves with the head when the head
//! changes.
//!
//! Ownership: a `MsgBlk` owns its whole chain and frees it (`freemsg`)
//! when dropped; [`MsgBlk::into_raw`] hands it back to the kernel. Every
//! method bounds its walk by the chain itself and reports out-of-range
//! access as an error, never by panicking.

use alloc::vec::Vec;
use core::marker::PhantomData;
use core::ptr::{self, NonNull};
use illumos_sys_hdrs as sys;
use illumos_sys_hdrs::{dblk_t, mblk_t};

/// Why a message operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgBlkError {
    /// The kernel could not allocate a block.
    NoMemory,
    /// An offset or length lies past the end of the message.
    OutOfRange,
}

/// An owned `mblk_t` chain (one packet). Freed on drop.
#[derive(Debug)]
pub struct MsgBlk {
    head: NonNull<mblk_t>,
}

// SAFETY: a MsgBlk owns its chain outright; nothing else refers to its
// mblks (shared dblks are reference counted by the kernel), so it may move
// between threads.
unsafe impl Send for MsgBlk {}

/// Length in bytes of one block, 0 for a corrupt `b_wptr < b_rptr`.
///
/// # Safety
/// `mp` must point to a live mblk.
#[inline(always)]
unsafe fn blk_len(mp: *const mblk_t) -> usize {
    // SAFETY: the caller guarantees mp is live.
    let (r, w) = unsafe { ((*mp).b_rptr as usize, (*mp).b_wptr as usize) };
    w.saturating_sub(r)
}

impl MsgBlk {
    /// An empty single-block message with room for `cap` bytes.
    pub fn new(cap: usize) -> Result<Self, MsgBlkError> {
        // SAFETY: allocb has no preconditions; NULL is handled.
        let mp = unsafe { sys::allocb(cap, sys::BPRI_HI) };
        NonNull::new(mp).map(|head| Self { head }).ok_or(MsgBlkError::NoMemory)
    }

    /// A single-block message holding `bytes`, with `headroom` free bytes
    /// in front of them for headers pushed later.
    pub fn from_bytes(headroom: usize, bytes: &[u8]) -> Result<Self, MsgBlkError> {
        let total = headroom.checked_add(bytes.len()).ok_or(MsgBlkError::OutOfRange)?;
        let m = Self::new(total)?;
        let mp = m.head.as_ptr();
        // SAFETY: allocb gave a buffer of `total` bytes starting at b_rptr;
        // headroom + bytes.len() == total, so the copy stays inside it.
        unsafe {
            (*mp).b_rptr = (*mp).b_rptr.add(headroom);
            ptr::copy_nonoverlapping(bytes.as_ptr(), (*mp).b_rptr, bytes.len());
            (*mp).b_wptr = (*mp).b_rptr.add(bytes.len());
        }
        Ok(m)
    }

    /// Take ownership of a kernel message.
    ///
    /// # Safety
    /// `mp` must be a valid mblk chain that nothing else owns or will
    /// free, with `b_rptr <= b_wptr` inside each dblk.
    pub unsafe fn wrap(mp: *mut mblk_t) -> Option<Self> {
        NonNull::new(mp).map(|head| Self { head })
    }

    /// Give the message back to the kernel without freeing it.
    pub fn into_raw(self) -> *mut mblk_t {
        let mp = self.head.as_ptr();
        core::mem::forget(self);
        mp
    }

    /// The first block (for kernel calls that take the message).
    pub fn as_ptr(&self) -> *mut mblk_t {
        self.head.as_ptr()
    }

    /// Bytes in all blocks.
    pub fn len(&self) -> usize {
        self.segments().map(<[u8]>::len).sum()
    }

    /// True when the message holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of blocks in the chain.
    pub fn seg_count(&self) -> usize {
        self.segments().count()
    }

    /// The blocks' bytes, in order (empty blocks included).
    pub fn segments(&self) -> Segments<'_> {
        Segments { next: self.head.as_ptr(), _owner: PhantomData }
    }

    /// Copy every byte of the message into a vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        for s in self.segments() {
            v.extend_from_slice(s);
        }
        v
    }

    /// The first block's bytes, writable: None when its dblk is shared
    /// (another message sees the same bytes).
    pub fn first_block_mut(&mut self) -> Option<&mut [u8]> {
        let mp = self.head.as_ptr();
        // SAFETY: mp is our live head; when its dblk is ours alone
        // (db_ref == 1) its bytes b_rptr..b_wptr are ours to write for as
        // long as we are borrowed mutably.
        unsafe {
            if (*(*mp).b_datap).db_ref != 1 {
                return None;
            }
            let len = blk_len(mp);
            if len == 0 {
                return Some(&mut []);
            }
            Some(core::slice::from_raw_parts_mut((*mp).b_rptr, len))
        }
    }

    /// Free bytes in front of the first block's data that may be written
    /// (0 when its dblk is shared).
    pub fn headroom(&self) -> usize {
        let mp = self.head.as_ptr();
        // SAFETY: mp is our live head; b_datap is valid for a live mblk.
        unsafe {
            let db = (*mp).b_datap;
            if (*db).db_ref != 1 {
                return 0;
            }
            ((*mp).b_rptr as usize).saturating_sub((*db).db_base as usize)
        }
    }

    /// The hardware offload flags (`HCK_*`, `HW_LSO`) of the message.
    pub fn offload_flags(&self) -> u16 {
        // SAFETY: head and its dblk are live; cksum is the active reading
        // of the db_struioun union for M_DATA messages.
        unsafe { (*(*self.head.as_ptr()).b_datap).db_struioun.cksum.flags }
    }

    /// Set the hardware offload flags of the message.
    pub fn set_offload_flags(&mut self, flags: u16) -> Result<(), MsgBlkError> {
        self.make_writable_head()?;
        // SAFETY: the head dblk is ours alone (made writable above).
        unsafe {
            (*(*self.head.as_ptr()).b_datap).db_struioun.cksum.flags = flags;
        }
        Ok(())
    }

    /// Append another message's blocks after this one's.
    pub fn append(&mut self, other: MsgBlk) {
        let mut mp = self.head.as_ptr();
        // SAFETY: we walk our own live chain to its last block and link the
        // other chain, whose ownership we take.
        unsafe {
            while !(*mp).b_cont.is_null() {
                mp = (*mp).b_cont;
            }
            (*mp).b_cont = other.into_raw();
        }
    }

    /// Copy `out.len()` bytes starting at `off` out of the message.
    #[inline]
    pub fn read_at(&self, off: usize, out: &mut [u8]) -> Result<(), MsgBlkError> {
        // The common case: the bytes lie in the first block.
        if let Some(first) = self.segments().next()
            && let Some(src) = off.checked_add(out.len()).and_then(|end| first.get(off..end))
        {
            out.copy_from_slice(src);
            return Ok(());
        }
        let mut skip = off;
        let mut done = 0;
        for seg in self.segments() {
            if done == out.len() {
                break;
            }
            if skip >= seg.len() {
                skip -= seg.len();
                continue;
            }
            let avail = &seg[skip..];
            skip = 0;
            let n = avail.len().min(out.len() - done);
            out[done..done + n].copy_from_slice(&avail[..n]);
            done += n;
        }
        if done == out.len() { Ok(()) } else { Err(MsgBlkError::OutOfRange) }
    }

    /// Overwrite `bytes.len()` bytes at `off`, copying any shared block
    /// first so other holders of its dblk never see the change.
    pub fn write_at(&mut self, off: usize, bytes: &[u8]) -> Result<(), MsgBlkError> {
        let end = off.checked_add(bytes.len()).ok_or(MsgBlkError::OutOfRange)?;
        if end > self.len() {
            return Err(MsgBlkError::OutOfRange);
        }
        let mut prev: *mut mblk_t = ptr::null_mut();
        let mut mp = self.head.as_ptr();
        let mut seg_start = 0usize;
        let mut done = 0usize;
        while !mp.is_null() && done < bytes.len() {
            // SAFETY: mp is a live block of our chain.
            let len = unsafe { blk_len(mp) };
            let seg_end = seg_start + len;
            let pos = off + done;
            if pos < seg_end {
                mp = self.make_writable(prev, mp)?;
                let n = (seg_end - pos).min(bytes.len() - done);
                // SAFETY: [pos - seg_start, +n) lies within this block's
                // b_rptr..b_wptr, and the block's dblk is ours alone.
                unsafe {
                    ptr::copy_nonoverlapping(
                        bytes.as_ptr().add(done),
                        (*mp).b_rptr.add(pos - seg_start),
                        n,
                    );
                }
                done += n;
            }
            seg_start = seg_end;
            prev = mp;
            // SAFETY: mp is live.
            mp = unsafe { (*mp).b_cont };
        }
        if done == bytes.len() { Ok(()) } else { Err(MsgBlkError::OutOfRange) }
    }

    /// Open `len` writable bytes in front of the message and return them:
    /// in the first block's headroom when it has enough (and its dblk is
    /// not shared), else in one new leading block. Offload state moves to
    /// the new head.
    pub fn prepend(&mut self, len: usize) -> Result<&mut [u8], MsgBlkError> {
        let head = self.head.as_ptr();
        if self.headroom() >= len {
            // SAFETY: headroom() checked the dblk is ours and that
            // b_rptr - len stays at or after db_base.
            unsafe {
                (*head).b_rptr = (*head).b_rptr.sub(len);
                return Ok(core::slice::from_raw_parts_mut((*head).b_rptr, len));
            }
        }
        let lead = Self::new(len)?.into_raw();
        // SAFETY: lead is a fresh block with `len` bytes of capacity; head
        // is our live head; copying the offload fields between two live
        // dblks is plain data movement.
        unsafe {
            (*lead).b_wptr = (*lead).b_rptr.add(len);
            copy_offload_state((*head).b_datap, (*lead).b_datap);
            (*lead).b_cont = head;
            self.head = NonNull::new_unchecked(lead);
            Ok(core::slice::from_raw_parts_mut((*lead).b_rptr, len))
        }
    }

    /// Remove the first `n` bytes. Blocks left empty at the front are
    /// freed (offload state moves to the new head). On failure (copying a
    /// shared new head) the message is unchanged.
    pub fn trim_front(&mut self, n: usize) -> Result<(), MsgBlkError> {
        if n > self.len() {
            return Err(MsgBlkError::OutOfRange);
        }
        // Find the block that becomes the head, and the one before it.
        let mut prev: *mut mblk_t = ptr::null_mut();
        let mut mp = self.head.as_ptr();
        let mut left = n;
        loop {
            // SAFETY: mp is a live block of our chain.
            let (len, next) = unsafe { (blk_len(mp), (*mp).b_cont) };
            if left < len || next.is_null() {
                break;
            }
            left -= len;
            prev = mp;
            mp = next;
        }
        if !prev.is_null() {
            // The new head takes the offload state: copy it first if its
            // dblk is shared, before anything is freed.
            // SAFETY: mp is a live block of our chain.
            if unsafe { (*(*mp).b_datap).db_ref } != 1 {
                mp = self.make_writable(prev, mp)?;
            }
            let first = self.head.as_ptr();
            // SAFETY: first and mp are live blocks of our chain and mp's
            // dblk is ours alone; prev is the block before mp, so cutting
            // the chain there and freeing from first frees exactly the
            // blocks in front of mp.
            unsafe {
                copy_offload_state((*first).b_datap, (*mp).b_datap);
                (*prev).b_cont = ptr::null_mut();
                sys::freemsg(first);
                self.head = NonNull::new_unchecked(mp);
            }
        }
        // SAFETY: mp is our live head and left <= its length (n <= total
        // length), so rptr stays within b_rptr..=b_wptr. Moving rptr
        // forward doesn't write the (possibly shared) dblk's bytes.
        unsafe { (*mp).b_rptr = (*mp).b_rptr.add(left.min(blk_len(mp))) };
        Ok(())
    }

    fn make_writable_head(&mut self) -> Result<(), MsgBlkError> {
        let head = self.head.as_ptr();
        let new = self.make_writable(ptr::null_mut(), head)?;
        // SAFETY: make_writable returns a live block.
        self.head = unsafe { NonNull::new_unchecked(new) };
        Ok(())
    }

    /// Make block `mp` (whose predecessor is `prev`, NULL for the head)
    /// safe to write: if its dblk is shared, replace it in the chain with a
    /// private copy. Returns the block to write.
    fn make_writable(
        &mut self,
        prev: *mut mblk_t,
        mp: *mut mblk_t,
    ) -> Result<*mut mblk_t, MsgBlkError> {
        // SAFETY: mp is a live block of our chain.
        if unsafe { (*(*mp).b_datap).db_ref } == 1 {
            return Ok(mp);
        }
        // SAFETY: copyb reads a live block; NULL is handled.
        let copy = unsafe { sys::copyb(mp) };
        if copy.is_null() {
            return Err(MsgBlkError::NoMemory);
        }
        // SAFETY: copy is fresh and ours; we splice it where mp was, then
        // free mp alone (its b_cont is cleared first).
        unsafe {
            copy_offload_state((*mp).b_datap, (*copy).b_datap);
            (*copy).b_cont = (*mp).b_cont;
            (*mp).b_cont = ptr::null_mut();
            if prev.is_null() {
                self.head = NonNull::new_unchecked(copy);
            } else {
                (*prev).b_cont = copy;
            }
            sys::freeb(mp);
        }
        Ok(copy)
    }
}

/// Copy the hardware offload state of one dblk to another.
///
/// # Safety
/// Both must be live dblks; `to` must not be shared.
unsafe fn copy_offload_state(from: *const dblk_t, to: *mut dblk_t) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        (*to).db_cksumstart = (*from).db_cksumstart;
        (*to).db_cksumend = (*from).db_cksumend;
        (*to).db_cksumstuff = (*from).db_cksumstuff;
        (*to).db_struioun = (*from).db_struioun;
    }
}

impl Drop for MsgBlk {
    fn drop(&mut self) {
        // SAFETY: we own the whole chain.
        unsafe { sys::freemsg(self.head.as_ptr()) }
    }
}

/// Iterator over a message's blocks as byte slices.
#[derive(Clone)]
pub struct Segments<'a> {
    next: *const mblk_t,
    _owner: PhantomData<&'a MsgBlk>,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a [u8];

    #[inline(always)]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.next.is_null() {
            return None;
        }
        let mp = self.next;
        // SAFETY: mp is a live block of a chain borrowed for 'a; its bytes
        // b_rptr..b_wptr stay valid and unmodified while the borrow lasts.
        unsafe {
            self.next = (*mp).b_cont;
            let len = blk_len(mp);
            if len == 0 {
                return Some(&[]);
            }
            Some(core::slice::from_raw_parts((*mp).b_rptr, len))
        }
    }
}
