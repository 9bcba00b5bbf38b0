//! Kernel random numbers: `random_get_pseudo_bytes(9F)` (from
//! `misc/kcf`). Used to seed hash tables whose keys remote peers partly
//! choose.

use crate::size_t;
use core::ffi::c_int;

unsafe extern "C" {
    /// Fill `len` bytes at `ptr` with pseudo-random bytes (a CSPRNG that
    /// never blocks); returns 0 on success. See
    /// `random_get_pseudo_bytes(9F)`.
    pub fn random_get_pseudo_bytes(ptr: *mut u8, len: size_t) -> c_int;
}
