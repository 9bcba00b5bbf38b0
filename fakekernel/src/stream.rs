//! STREAMS message buffers in userland: `allocb(9F)`, `freeb(9F)`,
//! `freemsg(9F)`, `freemsgchain`, `dupb(9F)`, `dupmsg(9F)`, `copyb(9F)`,
//! `copymsg(9F)`, `msgpullup(9F)`, `pullupmsg(9F)` and `msgsize`, with the
//! semantics of illumos `usr/src/uts/common/io/stream.c`.
//!
//! # Theory
//!
//! `allocb` makes one allocation holding an `mblk_t`, then a `dblk_t`
//! immediately followed by its data buffer (as illumos's small dblk
//! caches do, and like them pairing the dblk with an mblk), so `db_base`
//! is 16-byte aligned. The buffer starts out filled with
//! [`UNINIT_BYTE`], not zeros, so code that reads bytes it never wrote
//! sees garbage as it would in the kernel.
//!
//! `dupb` makes another `mblk_t` (an allocation of its own) pointing at
//! the same dblk and bumps `db_ref` with an atomic compare-and-swap,
//! refusing at `DBLK_REFMAX`. Freeing an mblk drops one reference; the
//! thread that drops the last frees the dblk and its buffer. The mblk and
//! the dblk of one `allocb` allocation are freed independently (a `dupb`
//! copy may keep the dblk, `pullupmsg` swaps dblks between mblks); the
//! memory is released when both are. All of these look the pointers up
//! in the allocation table first, so a stale or wild pointer is reported
//! (see [`KernelError`]) and left alone rather than dereferenced.
//!
//! Offload state follows illumos exactly: a new dblk starts with the
//! checksum/LSO fields (`db_cksumstart`, `db_cksumend`, `db_cksumstuff`,
//! `db_struioun`) zeroed, and `copyb`, `copymsg`, `msgpullup` and
//! `pullupmsg` do *not* carry them over (illumos callers use
//! `mac_hcksum_clone` for that). Like `allocb_tmpl`, the copies keep the
//! source's `db_type` and `db_cpid`; credentials (`db_credp`) are not
//! modelled and stay NULL.
//!
//! Each public function here is `extern "C"` with the symbol name and
//! signature `illumos-sys-hdrs` declares, so kernel code calling those
//! prototypes links against these definitions. A panic inside one is
//! caught and reported; it never unwinds into the caller.

use crate::accounting::{KernelError, current_account, no_unwind, report};
use crate::alloc_table::{Block, Found, Kind, MblkMemory, TABLE, Unref};
use illumos_sys_hdrs::{
    DBLK_REFMAX, M_DATA, dblk_struioun_t, dblk_t, mblk_t, size_t, ssize_t, uint_t,
};
use std::alloc::{Layout, alloc, dealloc};
use std::ffi::{c_int, c_long};
use std::mem::size_of;
use std::ptr::{self, null_mut};
use std::sync::atomic::{AtomicU8, Ordering};

/// The byte new buffers are filled with, after illumos kmem's
/// `0xbaddcafe` uninitialized-memory pattern.
pub const UNINIT_BYTE: u8 = 0xBA;

/// Most blocks a message may have before a walk gives up (a `b_cont`
/// cycle, most likely).
pub const MAX_MESSAGE_BLOCKS: usize = 1 << 16;

/// Alignment of an `allocb` allocation; the dblk and `db_base` after it
/// are 16-byte aligned too.
const DBLK_ALIGN: usize = 16;

/// Where the dblk lies in an `allocb` allocation: after the mblk, rounded
/// up to [`DBLK_ALIGN`].
const DBLK_OFFSET: usize = size_of::<mblk_t>().next_multiple_of(DBLK_ALIGN);

// `db_base` (after the dblk) keeps the allocation's alignment.
const _: () = assert!(size_of::<dblk_t>().is_multiple_of(DBLK_ALIGN));

/// The layout of an `allocb` allocation: an mblk, then a dblk followed by
/// a `buf_len`-byte buffer.
fn block_layout(buf_len: usize) -> Option<Layout> {
    let size = (DBLK_OFFSET + size_of::<dblk_t>()).checked_add(buf_len)?;
    Layout::from_size_align(size, DBLK_ALIGN).ok()
}

/// The address of the `allocb` allocation `dbp` would lie in (the key of
/// its entry in the allocation table).
fn block_of(dbp: *const dblk_t) -> usize {
    dbp.addr().wrapping_sub(DBLK_OFFSET)
}

/// The layout of an mblk.
fn mblk_layout() -> Layout {
    Layout::new::<mblk_t>()
}

/// Bytes in one block, if its pointers are in order.
///
/// # Safety
///
/// `mp` points to a readable `mblk_t`.
unsafe fn block_len(mp: *const mblk_t) -> Option<usize> {
    // SAFETY: the caller guarantees `mp` is readable.
    let (rptr, wptr) = unsafe { ((*mp).b_rptr, (*mp).b_wptr) };
    wptr.addr().checked_sub(rptr.addr())
}

/// The error for a pointer that `TABLE` says is not a live mblk.
fn not_live_mblk(op: &'static str, mp: *const mblk_t, found: Found) -> KernelError {
    match found {
        Found::Freed(Kind::Mblk) => KernelError::MblkFreed { op, mblk: mp.addr() },
        _ => KernelError::NotAnMblk { op, addr: mp.addr() },
    }
}

/// Check that `mp` is a live mblk whose `b_datap` is a live dblk;
/// report and return false otherwise. A false return means `mp` must
/// not be dereferenced.
///
/// # Safety
///
/// None beyond Rust's: `mp` is only read after the table vouches for it.
unsafe fn check_block(op: &'static str, mp: *const mblk_t) -> bool {
    match TABLE.find(mp.addr()) {
        Found::Live(Kind::Mblk) => {}
        found => {
            report(not_live_mblk(op, mp, found));
            return false;
        }
    }
    // SAFETY: the table says `mp` is a live mblk.
    let dbp = unsafe { (*mp).b_datap };
    match TABLE.find_dblk(block_of(dbp)) {
        Found::Live(Kind::Dblk { .. }) => true,
        _ => {
            report(KernelError::BadDatap { op, mblk: mp.addr(), dblk: dbp.addr() });
            false
        }
    }
}

/// [`check_block`], and also that `db_base <= b_rptr <= b_wptr <= db_lim`.
///
/// # Safety
///
/// As for [`check_block`].
unsafe fn check_block_bounds(op: &'static str, mp: *const mblk_t) -> bool {
    // SAFETY: as the caller's.
    if !unsafe { check_block(op, mp) } {
        return false;
    }
    // SAFETY: check_block vouched for `mp` and its dblk.
    let (rptr, wptr, base, lim) = unsafe {
        let dbp = (*mp).b_datap;
        ((*mp).b_rptr, (*mp).b_wptr, (*dbp).db_base, (*dbp).db_lim)
    };
    let ok = base.addr() <= rptr.addr() && rptr.addr() <= wptr.addr() && wptr.addr() <= lim.addr();
    if !ok {
        report(KernelError::BadBlockPointers { op, mblk: mp.addr() });
    }
    ok
}

/// Allocate a block with a `size`-byte buffer, charged to the current
/// thread's account; NULL on (injected) failure. This is `allocb`.
fn alloc_block(size: usize) -> *mut mblk_t {
    let owner = current_account();
    if owner.inject_failure() {
        return null_mut();
    }
    let Some(layout) = block_layout(size) else {
        return null_mut();
    };
    // SAFETY: the layout's size is at least size_of::<dblk_t>() > 0.
    let mp = unsafe { alloc(layout) }.cast::<mblk_t>();
    if mp.is_null() {
        return null_mut();
    }
    // SAFETY: the allocation is DBLK_OFFSET + size_of::<dblk_t>() + size
    // bytes, so the dblk after the mblk and the buffer after the dblk are
    // in bounds, the buffer `size` bytes long.
    let (dbp, base) = unsafe {
        let dbp = mp.byte_add(DBLK_OFFSET).cast::<dblk_t>();
        (dbp, dbp.cast::<u8>().add(size_of::<dblk_t>()))
    };
    // SAFETY: as above, `base..base + size` is ours and writable.
    let lim = unsafe {
        base.write_bytes(UNINIT_BYTE, size);
        base.add(size)
    };
    // SAFETY: `mp` and `dbp` lie in a fresh allocation of the right layout.
    unsafe {
        dbp.write(dblk_t {
            db_frtnp: null_mut(),
            db_base: base,
            db_lim: lim,
            db_ref: 1,
            db_type: M_DATA,
            db_flags: 0,
            db_struioflag: 0,
            db_cpid: -1,
            db_cache: null_mut(),
            db_mblk: mp,
            db_free: None,
            db_lastfree: None,
            db_cksumstart: 0,
            db_cksumend: 0,
            db_cksumstuff: 0,
            db_struioun: dblk_struioun_t { data: [0; 8] },
            db_fthdr: null_mut(),
            db_credp: null_mut(),
        });
        mp.write(mblk_t {
            b_next: null_mut(),
            b_prev: null_mut(),
            b_cont: null_mut(),
            b_rptr: base,
            b_wptr: base,
            b_datap: dbp,
            b_band: 0,
            b_tag: 0,
            b_flag: 0,
            b_queue: null_mut(),
        });
    }
    owner.charge(Kind::Dblk { buf_len: size });
    owner.charge(Kind::Mblk);
    TABLE.insert_block(mp.addr(), size, owner);
    mp
}

/// `allocb_tmpl`: [`alloc_block`], then take `db_type` and `db_cpid`
/// from `tmpl`'s dblk.
///
/// # Safety
///
/// `tmpl` is a live mblk with a live dblk (checked by the caller).
unsafe fn alloc_block_like(size: usize, tmpl: *const mblk_t) -> *mut mblk_t {
    let mp = alloc_block(size);
    if !mp.is_null() {
        // SAFETY: `mp` is fresh; the caller vouches for `tmpl`.
        unsafe {
            let (src, dst) = ((*tmpl).b_datap, (*mp).b_datap);
            (*dst).db_type = (*src).db_type;
            (*dst).db_cpid = (*src).db_cpid;
        }
    }
    mp
}

/// Drop one reference to the dblk at `dbp`: `db_ref` minus one, and the
/// count before, or `None` (and no change) if it was already zero.
///
/// # Safety
///
/// `dbp` is a live dblk (the allocation table vouches for it, under the
/// lock that freeing it needs).
unsafe fn drop_dblk_ref(dbp: *mut dblk_t) -> Option<u8> {
    // SAFETY: as the caller guarantees; db_ref is only changed atomically
    // by this crate.
    let refs = unsafe { AtomicU8::from_ptr(&raw mut (*dbp).db_ref) };
    refs.fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(1)).ok()
}

/// Report what dropping `mp`'s reference to `dbp` found wrong, if
/// anything.
fn check_unref(op: &'static str, mp: *mut mblk_t, dbp: *mut dblk_t, unref: Unref) {
    match unref {
        Unref::Kept | Unref::Last => {}
        Unref::Underflow => report(KernelError::DblkRefUnderflow { op, dblk: dbp.addr() }),
        Unref::NotLive => report(KernelError::BadDatap { op, mblk: mp.addr(), dblk: dbp.addr() }),
    }
}

/// Drop `mp`'s reference to `dbp`, freeing the dblk on the last one (and
/// its allocation, if that allocation's mblk is freed too).
///
/// # Safety
///
/// `mp` is a live mblk being freed by this thread, `dbp` its `b_datap`.
unsafe fn release_dblk(op: &'static str, mp: *mut mblk_t, dbp: *mut dblk_t) {
    // SAFETY: `unref_dblk` calls this only while the table vouches for
    // `dbp` as a live dblk, under its lock.
    let drop_ref = || unsafe { drop_dblk_ref(dbp) };
    let (unref, block) = TABLE.unref_dblk(block_of(dbp), drop_ref);
    check_unref(op, mp, dbp, unref);
    // SAFETY: the table says `dbp` is the dblk of an allocb allocation
    // starting DBLK_OFFSET before it.
    unsafe { dealloc_block(dbp.byte_sub(DBLK_OFFSET).cast(), block) };
}

/// Free the allocb allocation starting at `start` if the table found it
/// `Unused` (its mblk and its dblk both freed: nothing refers to it).
///
/// # Safety
///
/// `start` starts the allocb allocation the table reported on.
unsafe fn dealloc_block(start: *mut mblk_t, block: Block) {
    if let Block::Unused { buf_len } = block
        && let Some(layout) = block_layout(buf_len)
    {
        // SAFETY: allocb made the allocation with this layout (the
        // caller vouches for `start`), and it is unused.
        unsafe { dealloc(start.cast(), layout) };
    }
}

/// Free one block. Returns its `b_cont` (read before freeing), or `None`
/// if `mp` was not a live mblk (reported), in which case a walk must stop.
///
/// # Safety
///
/// Any live mblk passed is not used by anyone else afterwards.
unsafe fn free_block(op: &'static str, mp: *mut mblk_t) -> Option<*mut mblk_t> {
    // SAFETY: `free_mblk` reads only once the table says `mp` is a live
    // mblk, and the caller gives it up to this thread.
    let read = || unsafe {
        let dbp = (*mp).b_datap;
        let linked = !(*mp).b_next.is_null() || !(*mp).b_prev.is_null();
        ((linked, (*mp).b_cont, dbp), block_of(dbp))
    };
    // Used only when `mp` starts an allocb allocation and its b_datap is
    // that allocation's dblk, which lies DBLK_OFFSET after it.
    let own_dbp = mp.wrapping_byte_add(DBLK_OFFSET).cast::<dblk_t>();
    // SAFETY: `free_mblk` calls this only while the table vouches for the
    // dblk of `mp`'s allocation as live, under its lock.
    let drop_ref = || unsafe { drop_dblk_ref(own_dbp) };
    let freed = match TABLE.free_mblk(mp.addr(), read, drop_ref) {
        Ok(freed) => freed,
        Err(found) => {
            report(not_live_mblk(op, mp, found));
            return None;
        }
    };
    let (linked, cont, dbp) = freed.fields;
    if linked {
        report(KernelError::LinkedMblk { op, mblk: mp.addr() });
    }
    match freed.own_dblk {
        Some(unref) => check_unref(op, mp, dbp, unref),
        // SAFETY: `mp` is being freed by this thread and `dbp` was its
        // b_datap.
        None => unsafe { release_dblk(op, mp, dbp) },
    }
    match freed.memory {
        // SAFETY: `mp` came from alloc(mblk_layout()) (dupb) and is freed.
        MblkMemory::Alone => unsafe { dealloc(mp.cast(), mblk_layout()) },
        // An allocation still in use is freed by whoever frees its dblk.
        // SAFETY: `mp` starts the allocb allocation the table reported on.
        MblkMemory::InBlock(block) => unsafe { dealloc_block(mp, block) },
    }
    Some(cont)
}

/// Free every block of the message starting at `mp`.
///
/// # Safety
///
/// As for [`free_block`], for every block of the message.
unsafe fn free_message(op: &'static str, mut mp: *mut mblk_t) {
    let mut blocks = 0;
    while !mp.is_null() {
        if blocks == MAX_MESSAGE_BLOCKS {
            report(KernelError::MessageTooLong { op, limit: MAX_MESSAGE_BLOCKS });
            return;
        }
        blocks += 1;
        // SAFETY: as the caller's.
        match unsafe { free_block(op, mp) } {
            Some(cont) => mp = cont,
            None => return,
        }
    }
}

/// `dupb`: a new mblk sharing `mp`'s dblk.
///
/// # Safety
///
/// None beyond Rust's: `mp` is checked before use.
unsafe fn dup_block(op: &'static str, mp: *mut mblk_t) -> *mut mblk_t {
    if mp.is_null() {
        report(KernelError::NullMessage { op });
        return null_mut();
    }
    // SAFETY: check_block only dereferences what the table vouches for.
    if !unsafe { check_block(op, mp) } {
        return null_mut();
    }
    let owner = current_account();
    if owner.inject_failure() {
        return null_mut();
    }
    // SAFETY: mblk_t has a nonzero size.
    let nmp = unsafe { alloc(mblk_layout()) }.cast::<mblk_t>();
    if nmp.is_null() {
        return null_mut();
    }
    // Copy the fields rather than borrow them: other threads may read
    // `mp` concurrently, and mblk_t has no destructor to run twice.
    // SAFETY: check_block vouched for `mp` and its dblk.
    let src = unsafe { mp.read() };
    let dbp = src.b_datap;
    // SAFETY: `dbp` is live and `mp` holds a reference, so it stays live;
    // db_ref is only changed atomically by this crate.
    let refs = unsafe { AtomicU8::from_ptr(&raw mut (*dbp).db_ref) };
    let bumped = refs
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| (r < DBLK_REFMAX).then(|| r + 1));
    if bumped.is_err() {
        // SAFETY: `nmp` came from alloc(mblk_layout()) just above.
        unsafe { dealloc(nmp.cast(), mblk_layout()) };
        return null_mut();
    }
    // SAFETY: `nmp` is a fresh mblk allocation.
    unsafe {
        nmp.write(mblk_t {
            b_next: null_mut(),
            b_prev: null_mut(),
            b_cont: null_mut(),
            b_rptr: src.b_rptr,
            b_wptr: src.b_wptr,
            b_datap: dbp,
            b_band: src.b_band,
            b_tag: src.b_tag,
            b_flag: src.b_flag,
            b_queue: null_mut(),
        });
    }
    owner.charge(Kind::Mblk);
    TABLE.insert(nmp.addr(), Kind::Mblk, owner);
    nmp
}

/// `copyb`: a new block with a private copy of `bp`'s whole buffer and
/// the same read/write offsets (and the same `b_rptr` alignment mod 4).
///
/// # Safety
///
/// None beyond Rust's: `bp` is checked before use.
unsafe fn copy_block(op: &'static str, bp: *mut mblk_t) -> *mut mblk_t {
    if bp.is_null() {
        report(KernelError::NullMessage { op });
        return null_mut();
    }
    // SAFETY: check_block_bounds only dereferences what the table vouches for.
    if !unsafe { check_block_bounds(op, bp) } {
        return null_mut();
    }
    // SAFETY: checked above.
    let (rptr, wptr, base, lim, band, flag) = unsafe {
        let dbp = (*bp).b_datap;
        ((*bp).b_rptr, (*bp).b_wptr, (*dbp).db_base, (*dbp).db_lim, (*bp).b_band, (*bp).b_flag)
    };
    let size = lim.addr() - base.addr();
    let unaligned = base.addr() % size_of::<uint_t>();
    let Some(total) = size.checked_add(unaligned) else {
        return null_mut();
    };
    // SAFETY: `bp` was checked above.
    let nbp = unsafe { alloc_block_like(total, bp) };
    if nbp.is_null() {
        return null_mut();
    }
    // SAFETY: `nbp` is fresh with a `total`-byte buffer; the source
    // buffer is `size` bytes and the offsets are within it (checked).
    unsafe {
        (*nbp).b_band = band;
        (*nbp).b_flag = flag;
        let nbase = (*(*nbp).b_datap).db_base.add(unaligned);
        ptr::copy_nonoverlapping(base, nbase, size);
        (*nbp).b_rptr = nbase.add(rptr.addr() - base.addr());
        (*nbp).b_wptr = (*nbp).b_rptr.add(wptr.addr() - rptr.addr());
    }
    nbp
}

/// Apply `copy` (`dupb` or `copyb`) to every block of a message.
///
/// # Safety
///
/// None beyond Rust's: blocks are checked before use.
unsafe fn copy_message(
    op: &'static str,
    mut bp: *mut mblk_t,
    copy: unsafe fn(&'static str, *mut mblk_t) -> *mut mblk_t,
) -> *mut mblk_t {
    if bp.is_null() {
        return null_mut();
    }
    // SAFETY: `copy` checks `bp` before use.
    let head = unsafe { copy(op, bp) };
    if head.is_null() {
        return null_mut();
    }
    let mut tail = head;
    let mut blocks = 1;
    loop {
        // SAFETY: `copy` succeeded, so `bp` was checked live; `tail` is ours.
        bp = unsafe { (*bp).b_cont };
        if bp.is_null() {
            return head;
        }
        if blocks == MAX_MESSAGE_BLOCKS {
            report(KernelError::MessageTooLong { op, limit: MAX_MESSAGE_BLOCKS });
            // SAFETY: `head` is the message we built and nobody else has.
            unsafe { free_message(op, head) };
            return null_mut();
        }
        blocks += 1;
        // SAFETY: `copy` checks `bp` before use.
        let next = unsafe { copy(op, bp) };
        if next.is_null() {
            // SAFETY: as above.
            unsafe { free_message(op, head) };
            return null_mut();
        }
        // SAFETY: `tail` is the last block of our new message.
        unsafe { (*tail).b_cont = next };
        tail = next;
    }
}

/// `xmsgsize`: bytes in the leading blocks of `mp` that have the same
/// `db_type` as the first, checking each block on the way. `None` if a
/// block was bad (reported).
///
/// # Safety
///
/// None beyond Rust's: blocks are checked before use.
unsafe fn leading_type_size(op: &'static str, mp: *mut mblk_t) -> Option<usize> {
    let mut total = 0usize;
    let mut bp = mp;
    let mut blocks = 0;
    let mut first_type = None;
    while !bp.is_null() {
        if blocks == MAX_MESSAGE_BLOCKS {
            report(KernelError::MessageTooLong { op, limit: MAX_MESSAGE_BLOCKS });
            return None;
        }
        blocks += 1;
        // SAFETY: check_block_bounds only dereferences what it vouches for.
        if !unsafe { check_block_bounds(op, bp) } {
            return None;
        }
        // SAFETY: checked above.
        let db_type = unsafe { (*(*bp).b_datap).db_type };
        if *first_type.get_or_insert(db_type) != db_type {
            break;
        }
        // SAFETY: checked above; the pointers are in order.
        total = total.saturating_add(unsafe { block_len(bp) }.unwrap_or(0));
        // SAFETY: checked above.
        bp = unsafe { (*bp).b_cont };
    }
    Some(total)
}

/// Allocate a message block with a `size`-byte buffer: `db_base ==
/// b_rptr == b_wptr`, `db_lim == db_base + size`, `db_ref == 1`,
/// `db_type == M_DATA`, offload fields zero. The buffer's bytes are
/// [`UNINIT_BYTE`]. `pri` is ignored, as on illumos. Returns NULL only
/// when failure is injected (or the host is out of memory).
///
/// # Safety
///
/// Always safe to call; `unsafe` because it is the C ABI entry point.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn allocb(size: size_t, pri: uint_t) -> *mut mblk_t {
    let _ = pri;
    no_unwind("allocb", null_mut(), || alloc_block(size))
}

/// Free one message block, and its dblk when this was the last
/// reference. `freeb(NULL)` is reported as [`KernelError::FreebNull`];
/// a pointer that is not a live mblk is reported and left alone.
///
/// # Safety
///
/// `mp` is not used again by the caller.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn freeb(mp: *mut mblk_t) {
    no_unwind("freeb", (), || {
        if mp.is_null() {
            report(KernelError::FreebNull);
            return;
        }
        // SAFETY: the caller gives up `mp`; free_block checks it.
        let _ = unsafe { free_block("freeb", mp) };
    })
}

/// Free every block of a message (its `b_cont` chain). `freemsg(NULL)`
/// does nothing, as on illumos. Each block must have `b_next` and
/// `b_prev` NULL (reported otherwise, then freed anyway).
///
/// # Safety
///
/// No block of the message is used again by the caller.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn freemsg(mp: *mut mblk_t) {
    // SAFETY: the caller gives up the message; blocks are checked.
    no_unwind("freemsg", (), || unsafe { free_message("freemsg", mp) })
}

/// Free every message of a `b_next` list, clearing each `b_next` first.
/// NULL does nothing.
///
/// # Safety
///
/// No message of the list is used again by the caller.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn freemsgchain(mp: *mut mblk_t) {
    const OP: &str = "freemsgchain";
    no_unwind(OP, (), || {
        let mut mp = mp;
        while !mp.is_null() {
            match TABLE.find(mp.addr()) {
                Found::Live(Kind::Mblk) => {}
                found => {
                    report(not_live_mblk(OP, mp, found));
                    return;
                }
            }
            // SAFETY: the table says `mp` is live, and the caller gives
            // it up.
            let next = unsafe {
                let next = (*mp).b_next;
                (*mp).b_next = null_mut();
                free_message(OP, mp);
                next
            };
            mp = next;
        }
    })
}

/// A new message block sharing `mp`'s dblk (same `b_rptr`/`b_wptr`,
/// `b_band`, `b_flag`), with `db_ref` incremented atomically. NULL if
/// `db_ref` is already `DBLK_REFMAX`, on injected failure, or (reported)
/// if `mp` is NULL or not a live mblk.
///
/// # Safety
///
/// `mp` is NULL or a message block; stale pointers are detected.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dupb(mp: *mut mblk_t) -> *mut mblk_t {
    // SAFETY: dup_block checks `mp` before use.
    no_unwind("dupb", null_mut(), || unsafe { dup_block("dupb", mp) })
}

/// `dupb` of every block of a message; NULL (with nothing left
/// allocated) if any `dupb` fails, or if `mp` is NULL.
///
/// # Safety
///
/// `mp` is NULL or a message; its blocks are checked.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dupmsg(mp: *mut mblk_t) -> *mut mblk_t {
    // SAFETY: copy_message and dup_block check every block.
    no_unwind("dupmsg", null_mut(), || unsafe { copy_message("dupmsg", mp, dup_block) })
}

/// A new block holding a private copy of `mp`'s whole buffer
/// (`db_base..db_lim`) with the same read/write offsets, `db_type`,
/// `b_band` and `b_flag`. Offload fields are *not* copied (as on
/// illumos). NULL on injected failure, or (reported) if `mp` is NULL or
/// not a live, well-formed mblk.
///
/// # Safety
///
/// `mp` is NULL or a message block; stale pointers are detected.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn copyb(mp: *mut mblk_t) -> *mut mblk_t {
    // SAFETY: copy_block checks `mp` before use.
    no_unwind("copyb", null_mut(), || unsafe { copy_block("copyb", mp) })
}

/// `copyb` of every block of a message; NULL (with nothing left
/// allocated) if any `copyb` fails, or if `mp` is NULL.
///
/// # Safety
///
/// `mp` is NULL or a message; its blocks are checked.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn copymsg(mp: *mut mblk_t) -> *mut mblk_t {
    // SAFETY: copy_message and copy_block check every block.
    no_unwind("copymsg", null_mut(), || unsafe { copy_message("copymsg", mp, copy_block) })
}

/// A new message whose first block holds a copy of *all* the leading
/// blocks of `mp` that share its `db_type` (illumos pulls them all up,
/// whatever `len` is), followed by a `dupmsg` of the blocks after them;
/// `mp` is unchanged. NULL if `len > 0` and the leading blocks hold fewer
/// than `len` bytes, or on injected failure. Offload fields are not
/// copied (as on illumos).
///
/// Quirk kept from illumos: the copy stops as soon as it has the bytes,
/// so zero-length blocks after the data (and the whole message, if it
/// has no bytes at all) are duplicated after the new block.
///
/// # Safety
///
/// `mp` is NULL or a message; its blocks are checked.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msgpullup(mp: *mut mblk_t, len: ssize_t) -> *mut mblk_t {
    const OP: &str = "msgpullup";
    no_unwind(OP, null_mut(), || {
        if mp.is_null() {
            report(KernelError::NullMessage { op: OP });
            return null_mut();
        }
        // SAFETY: leading_type_size checks every block it reads.
        let Some(total) = (unsafe { leading_type_size(OP, mp) }) else {
            return null_mut();
        };
        if len > 0 && len.unsigned_abs() > total {
            return null_mut();
        }
        // SAFETY: `mp` was checked by leading_type_size.
        let newmp = unsafe { alloc_block_like(total, mp) };
        if newmp.is_null() {
            return null_mut();
        }
        // SAFETY: `newmp` is fresh with a `total`-byte buffer; the blocks
        // read were checked by leading_type_size and hold `total` bytes.
        unsafe {
            (*newmp).b_band = (*mp).b_band;
            (*newmp).b_flag = (*mp).b_flag;
            let mut left = total;
            let mut bp = mp;
            while left > 0 && !bp.is_null() {
                let n = block_len(bp).unwrap_or(0).min(left);
                ptr::copy_nonoverlapping((*bp).b_rptr, (*newmp).b_wptr, n);
                (*newmp).b_wptr = (*newmp).b_wptr.add(n);
                left -= n;
                bp = (*bp).b_cont;
            }
            if !bp.is_null() {
                let rest = copy_message(OP, bp, dup_block);
                if rest.is_null() {
                    free_message(OP, newmp);
                    return null_mut();
                }
                (*newmp).b_cont = rest;
            }
        }
        newmp
    })
}

/// Make the first `len` bytes (`-1`: all leading blocks of the first
/// block's type) contiguous in `mp`'s first block, in place. Returns 1 on
/// success; 0, with `mp` unchanged, if the message is shorter than `len`
/// or on injected failure.
///
/// As on illumos: if the first block already holds `len` bytes and its
/// `b_rptr` is 8-byte aligned, nothing changes; otherwise a new dblk is
/// swapped into `mp` (so `mp` itself stays the head), the bytes are
/// copied into it, fully consumed blocks are freed and a partly consumed
/// one has its `b_rptr` advanced and stays linked. When the first block
/// has the bytes but is misaligned, exactly its bytes are moved. The new
/// first dblk's offload fields are zero (illumos does not carry them).
///
/// # Safety
///
/// `mp` is NULL or a message; its blocks are checked.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pullupmsg(mp: *mut mblk_t, len: ssize_t) -> c_int {
    const OP: &str = "pullupmsg";
    no_unwind(OP, 0, || {
        if mp.is_null() {
            report(KernelError::NullMessage { op: OP });
            return 0;
        }
        // SAFETY: check_block_bounds only dereferences what it vouches for.
        if !unsafe { check_block_bounds(OP, mp) } {
            return 0;
        }
        // SAFETY: checked above.
        let (linked, first_len, aligned, has_cont) = unsafe {
            (
                !(*mp).b_next.is_null() || !(*mp).b_prev.is_null(),
                block_len(mp).unwrap_or(0),
                (*mp).b_rptr.addr().is_multiple_of(size_of::<c_long>()),
                !(*mp).b_cont.is_null(),
            )
        };
        if linked {
            report(KernelError::LinkedMblk { op: OP, mblk: mp.addr() });
        }
        let want = if len == -1 {
            if !has_cont && aligned {
                return 1;
            }
            // SAFETY: leading_type_size checks every block it reads.
            match unsafe { leading_type_size(OP, mp) } {
                Some(total) => total,
                None => return 0,
            }
        } else if len <= 0 || len.unsigned_abs() <= first_len {
            if aligned {
                return 1;
            }
            first_len
        } else {
            // SAFETY: leading_type_size checks every block it reads.
            match unsafe { leading_type_size(OP, mp) } {
                Some(total) if total >= len.unsigned_abs() => len.unsigned_abs(),
                _ => return 0,
            }
        };
        // SAFETY: `mp` was checked above.
        let bp = unsafe { alloc_block_like(want, mp) };
        if bp.is_null() {
            return 0;
        }
        // SAFETY: `mp` and the blocks after it were checked (the first
        // `want` bytes lie in checked blocks); `bp` is fresh and ours.
        unsafe {
            // Swap: `bp` takes over the old head's contents and dblk, `mp`
            // gets the new dblk, and stays the head of the message.
            let new_dbp = (*bp).b_datap;
            ptr::copy_nonoverlapping(mp, bp, 1);
            (*bp).b_next = null_mut();
            (*bp).b_prev = null_mut();
            (*mp).b_datap = new_dbp;
            (*new_dbp).db_mblk = mp;
            (*(*bp).b_datap).db_mblk = bp;
            (*mp).b_rptr = (*new_dbp).db_base;
            (*mp).b_wptr = (*new_dbp).db_base;

            let mut left = want;
            let mut cur = bp;
            loop {
                let n = block_len(cur).unwrap_or(0).min(left);
                ptr::copy_nonoverlapping((*cur).b_rptr, (*mp).b_wptr, n);
                (*mp).b_wptr = (*mp).b_wptr.add(n);
                (*cur).b_rptr = (*cur).b_rptr.add(n);
                left -= n;
                if (*cur).b_rptr != (*cur).b_wptr {
                    break;
                }
                let Some(cont) = free_block(OP, cur) else {
                    // Reported; the rest of the chain is unreachable.
                    cur = null_mut();
                    break;
                };
                cur = cont;
                if left == 0 || cur.is_null() {
                    break;
                }
            }
            (*mp).b_cont = cur;
        }
        1
    })
}

/// Bytes in all blocks of a message (`b_wptr - b_rptr` summed over
/// `b_cont`), of any type. A block with reversed pointers counts 0 and
/// is reported. For speed this does not look blocks up in the allocation
/// table.
///
/// # Safety
///
/// `mp` is NULL or a readable message.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msgsize(mp: *mut mblk_t) -> size_t {
    const OP: &str = "msgsize";
    no_unwind(OP, 0, || {
        let mut total = 0usize;
        let mut bp = mp;
        let mut blocks = 0;
        while !bp.is_null() {
            if blocks == MAX_MESSAGE_BLOCKS {
                report(KernelError::MessageTooLong { op: OP, limit: MAX_MESSAGE_BLOCKS });
                break;
            }
            blocks += 1;
            // SAFETY: the caller guarantees the message is readable.
            match unsafe { block_len(bp) } {
                Some(n) => total = total.saturating_add(n),
                None => report(KernelError::BadBlockPointers { op: OP, mblk: bp.addr() }),
            }
            // SAFETY: as above.
            bp = unsafe { (*bp).b_cont };
        }
        total
    })
}
