//! `random_get_pseudo_bytes(9F)` in userland: bytes from the operating
//! system's random source (`/dev/urandom`), or, should that fail, from
//! the standard library's randomly keyed hasher over a counter, so a
//! caller always gets bytes no peer can predict.

use crate::accounting::{KernelError, no_unwind, report};
use illumos_sys_hdrs::size_t;
use std::collections::hash_map::RandomState;
use std::ffi::c_int;
use std::hash::BuildHasher;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

/// Fill `len` bytes at `ptr` with pseudo-random bytes; returns 0.
///
/// # Safety
///
/// `ptr` must be valid for `len` bytes of writes (NULL with `len` 0 is
/// allowed); a NULL `ptr` with a non-zero `len` is reported and returns
/// `EINVAL` (22).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn random_get_pseudo_bytes(ptr: *mut u8, len: size_t) -> c_int {
    const OP: &str = "random_get_pseudo_bytes";
    no_unwind(OP, 22, || {
        if len == 0 {
            return 0;
        }
        if ptr.is_null() {
            report(KernelError::NullBuffer { op: OP });
            return 22;
        }
        // SAFETY: the caller vouches for `len` writable bytes at `ptr`.
        let out = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
        let from_os = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(out));
        if from_os.is_err() {
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let keyed = RandomState::new();
            for chunk in out.chunks_mut(8) {
                let n = COUNTER.fetch_add(1, Ordering::Relaxed);
                let word = keyed.hash_one(n).to_ne_bytes();
                chunk.copy_from_slice(&word[..chunk.len()]);
            }
        }
        0
    })
}
