//! Building and reading message chains in tests.
//!
//! Tests of kernel code need packets laid out the way a NIC or the IP
//! stack would hand them over: split across several blocks, with room
//! in front for headers. These functions build such `b_cont` chains from
//! byte slices through the real [`allocb`], so the blocks are accounted
//! to the current scope like any other, and read them back.

use crate::stream::{allocb, freemsg};
use illumos_sys_hdrs::{BPRI_HI, mblk_t};
use std::ptr::{self, null_mut};

/// Build a message (a `b_cont` chain) with one block per segment. Each
/// block has `headroom` bytes free in front of its data (`b_rptr ==
/// db_base + headroom`) and none after it. Returns NULL if `segs` is
/// empty or an allocation fails (nothing is left allocated); free the
/// message with `freemsg`.
pub fn chain_from_segments(segs: &[&[u8]], headroom: usize) -> *mut mblk_t {
    let mut head: *mut mblk_t = null_mut();
    let mut tail: *mut mblk_t = null_mut();
    for seg in segs {
        let Some(size) = headroom.checked_add(seg.len()) else {
            // SAFETY: `head` is NULL or the message we built.
            unsafe { freemsg(head) };
            return null_mut();
        };
        // SAFETY: allocb is always safe to call.
        let mp = unsafe { allocb(size, BPRI_HI) };
        if mp.is_null() {
            // SAFETY: `head` is NULL or the message we built.
            unsafe { freemsg(head) };
            return null_mut();
        }
        // SAFETY: `mp` is a fresh block with `headroom + seg.len()` bytes
        // of buffer starting at b_rptr.
        unsafe {
            let rptr = (*mp).b_rptr.add(headroom);
            ptr::copy_nonoverlapping(seg.as_ptr(), rptr, seg.len());
            (*mp).b_rptr = rptr;
            (*mp).b_wptr = rptr.add(seg.len());
        }
        if tail.is_null() {
            head = mp;
        } else {
            // SAFETY: `tail` is the last block of the message we built.
            unsafe { (*tail).b_cont = mp };
        }
        tail = mp;
    }
    head
}

/// Each block of a message as `(block, b_rptr, length)`, in order.
///
/// # Safety
///
/// `mp` is NULL or a readable message.
///
/// # Panics
///
/// If a block's `b_wptr` is before its `b_rptr`.
unsafe fn blocks(mp: *const mblk_t) -> Vec<(*const mblk_t, *const u8, usize)> {
    let mut out = Vec::new();
    let mut bp = mp;
    while !bp.is_null() {
        // SAFETY: the caller guarantees the message is readable.
        let (rptr, wptr, cont) = unsafe { ((*bp).b_rptr, (*bp).b_wptr, (*bp).b_cont) };
        let len = wptr
            .addr()
            .checked_sub(rptr.addr())
            .unwrap_or_else(|| panic!("block {bp:p} has b_wptr before b_rptr"));
        out.push((bp, rptr.cast_const(), len));
        bp = cont;
    }
    out
}

/// The bytes of a message: `b_rptr..b_wptr` of each block of the
/// `b_cont` chain, concatenated. Empty for NULL.
///
/// # Safety
///
/// `mp` is NULL or a readable message whose blocks' `b_rptr..b_wptr`
/// are readable.
///
/// # Panics
///
/// If a block's `b_wptr` is before its `b_rptr`.
pub unsafe fn chain_bytes(mp: *const mblk_t) -> Vec<u8> {
    let mut out = Vec::new();
    // SAFETY: as the caller guarantees.
    for (_, rptr, len) in unsafe { blocks(mp) } {
        if len > 0 {
            // SAFETY: the caller guarantees `rptr..wptr` is readable.
            out.extend_from_slice(unsafe { std::slice::from_raw_parts(rptr, len) });
        }
    }
    out
}

/// The byte count of each block of a message, in order. Empty for NULL.
///
/// # Safety
///
/// As for [`chain_bytes`].
///
/// # Panics
///
/// If a block's `b_wptr` is before its `b_rptr`.
pub unsafe fn block_lens(mp: *const mblk_t) -> Vec<usize> {
    // SAFETY: as the caller guarantees.
    unsafe { blocks(mp) }.into_iter().map(|(_, _, len)| len).collect()
}

/// The number of blocks in a message (its `b_cont` chain); 0 for NULL.
///
/// # Safety
///
/// `mp` is NULL or a readable message.
pub unsafe fn block_count(mp: *const mblk_t) -> usize {
    let mut count = 0;
    let mut bp = mp;
    while !bp.is_null() {
        count += 1;
        // SAFETY: the caller guarantees the message is readable.
        bp = unsafe { (*bp).b_cont };
    }
    count
}
