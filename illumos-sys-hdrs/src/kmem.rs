//! Kernel memory allocator: `kmem_alloc(9F)`, `kmem_zalloc(9F)`,
//! `kmem_free(9F)`. The caller must free a buffer with the size it
//! allocated it with; illumos reports a mismatch as a kmem error.

use crate::size_t;
use core::ffi::{c_int, c_void};

/// Allocation may block until memory is available; never returns NULL.
pub const KM_SLEEP: c_int = 0x0000;
/// Allocation must not block; may return NULL.
pub const KM_NOSLEEP: c_int = 0x0001;
/// If memory cannot be allocated, panic the system rather than return NULL.
pub const KM_PANIC: c_int = 0x0002;
/// `KM_NOSLEEP | KM_NORMALPRI`: must not block and may return NULL, like
/// `KM_NOSLEEP`, but at normal priority, so it fails rather than dip into the
/// page reserves a plain `KM_NOSLEEP` may use (illumos-private).
pub const KM_NOSLEEP_LAZY: c_int = 0x0008 | KM_NOSLEEP;

unsafe extern "C" {
    /// Allocate `size` bytes; see `kmem_alloc(9F)`.
    pub fn kmem_alloc(size: size_t, kmflag: c_int) -> *mut c_void;
    /// Allocate `size` zeroed bytes; see `kmem_zalloc(9F)`.
    pub fn kmem_zalloc(size: size_t, kmflag: c_int) -> *mut c_void;
    /// Free `size` bytes at `buf`; `size` must equal the allocated size.
    pub fn kmem_free(buf: *mut c_void, size: size_t);
}
