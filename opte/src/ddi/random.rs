//! Random seeds from the kernel's pseudo-random generator
//! (`random_get_pseudo_bytes(9F)`), for hash tables whose keys remote
//! peers partly choose: a seed they cannot know keeps them from picking
//! keys that collide.

use illumos_sys_hdrs::{gethrtime, random_get_pseudo_bytes};

/// A random 64-bit seed. Should the kernel refuse (it does not for
/// pseudo-random bytes), the time and an address are mixed in instead,
/// so the seed still differs per call and per boot.
pub fn seed() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: `b` is 8 writable bytes for the duration of the call.
    let rc = unsafe { random_get_pseudo_bytes(b.as_mut_ptr(), b.len()) };
    if rc == 0 {
        return u64::from_ne_bytes(b);
    }
    // SAFETY: gethrtime has no preconditions.
    let t = unsafe { gethrtime() } as u64;
    let a = &b as *const _ as usize as u64;
    (t ^ a.rotate_left(32)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}
