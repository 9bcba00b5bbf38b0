//! The kernel memory allocator in userland: `kmem_alloc(9F)`,
//! `kmem_zalloc(9F)` and `kmem_free(9F)`, with illumos's checks.
//!
//! Every buffer is recorded in the allocation table with its size and
//! account. `kmem_free` checks the table before touching anything, the
//! way a `kmem_flags`-debugging illumos kernel checks its buftags: a
//! size other than the allocated one is `KMERR_BADSIZE` (reported, and
//! the buffer stays allocated), a second free is `KMERR_DUPFREE`, and an
//! address `kmem_alloc` never returned is `KMERR_BADADDR`. Where illumos
//! would panic the system, the fake reports the error (see
//! [`KernelError`]) and carries on.
//!
//! `kmem_alloc(0)` returns NULL, as on illumos. `KM_SLEEP` allocations
//! never return NULL; `KM_NOSLEEP` ones (any flags with the `KM_NOSLEEP`
//! bit, such as `KM_NOSLEEP_LAZY`) return NULL when a scope injects
//! failure. New `kmem_alloc` buffers are filled with
//! [`UNINIT_BYTE`], not zeros.

use crate::accounting::{KernelError, current_account, no_unwind, report};
use crate::alloc_table::{Found, Kind, TABLE};
use crate::stream::UNINIT_BYTE;
use illumos_sys_hdrs::{KM_NOSLEEP, size_t};
use std::alloc::{Layout, alloc, alloc_zeroed, dealloc, handle_alloc_error};
use std::ffi::{c_int, c_void};
use std::io::Write;
use std::ptr::null_mut;

/// Alignment of kmem buffers (illumos `KMEM_ALIGN`).
const KMEM_ALIGN: usize = 8;

fn kmem_layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size, KMEM_ALIGN).ok()
}

/// The body of `kmem_alloc` and `kmem_zalloc`.
fn alloc_buffer(op: &'static str, size: usize, kmflag: c_int, zero: bool) -> *mut c_void {
    if size == 0 {
        return null_mut();
    }
    let nosleep = kmflag & KM_NOSLEEP != 0;
    let owner = current_account();
    if nosleep && owner.inject_failure() {
        return null_mut();
    }
    let Some(layout) = kmem_layout(size) else {
        if nosleep {
            return null_mut();
        }
        // A KM_SLEEP request that can never be satisfied would block
        // forever on illumos; stop loudly instead of hanging the test.
        let _ = writeln!(
            std::io::stderr(),
            "fakekernel: {op}({size}, KM_SLEEP) can never be satisfied; aborting"
        );
        std::process::abort();
    };
    // SAFETY: `size > 0`, so the layout has a nonzero size.
    let buf = unsafe { if zero { alloc_zeroed(layout) } else { alloc(layout) } };
    if buf.is_null() {
        if nosleep {
            return null_mut();
        }
        handle_alloc_error(layout);
    }
    if !zero {
        // SAFETY: `buf` is a fresh `size`-byte allocation.
        unsafe { buf.write_bytes(UNINIT_BYTE, size) };
    }
    let kind = Kind::Kmem { size };
    TABLE.insert(buf.addr(), kind, owner.clone());
    owner.charge(kind);
    buf.cast()
}

/// Allocate `size` bytes (contents [`UNINIT_BYTE`]), charged to the
/// current thread's scope. NULL if `size` is 0, or if `kmflag` has
/// `KM_NOSLEEP` and failure is injected.
///
/// # Safety
///
/// Always safe to call; `unsafe` because it is the C ABI entry point.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_alloc(size: size_t, kmflag: c_int) -> *mut c_void {
    no_unwind("kmem_alloc", null_mut(), || alloc_buffer("kmem_alloc", size, kmflag, false))
}

/// [`kmem_alloc`] with the buffer zeroed.
///
/// # Safety
///
/// Always safe to call; `unsafe` because it is the C ABI entry point.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_zalloc(size: size_t, kmflag: c_int) -> *mut c_void {
    no_unwind("kmem_zalloc", null_mut(), || alloc_buffer("kmem_zalloc", size, kmflag, true))
}

/// Free a buffer from [`kmem_alloc`]/[`kmem_zalloc`]; `size` must be the
/// size it was allocated with. `kmem_free(NULL, 0)` does nothing. A wrong
/// size, a double free or an unknown address is reported (and the
/// memory left alone).
///
/// # Safety
///
/// `buf` is not used again by the caller once freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_free(buf: *mut c_void, size: size_t) {
    no_unwind("kmem_free", (), || {
        if buf.is_null() && size == 0 {
            return;
        }
        let addr = buf.addr();
        match TABLE.take(addr, |kind| kind == Kind::Kmem { size }) {
            Ok((kind, owner)) => {
                if let Some(layout) = kmem_layout(size) {
                    // SAFETY: the table says `buf` is a live kmem buffer
                    // allocated with this size (hence this layout), and
                    // `take` made this thread its only freer.
                    unsafe { dealloc(buf.cast(), layout) };
                }
                owner.credit(kind);
            }
            Err(Found::Live(Kind::Kmem { size: allocated })) => {
                report(KernelError::KmemBadSize { addr, allocated, freed: size });
            }
            Err(Found::Freed(Kind::Kmem { .. })) => {
                report(KernelError::KmemDoubleFree { addr, size });
            }
            Err(_) => report(KernelError::KmemBadAddr { addr, size }),
        }
    })
}
