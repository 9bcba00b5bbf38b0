//! Raw illumos kernel interfaces: types laid out exactly as the illumos
//! headers define them on amd64 (LP64), constants, and the prototypes of
//! the kernel functions `opte` and `xde` call.
//!
//! This crate has no logic. On illumos the prototypes resolve against
//! `genunix`/`unix` and the modules `xde` depends on; in a Linux process
//! they resolve against `fakekernel`, which implements each with illumos
//! semantics. Compile-time assertions pin every size and field offset we
//! rely on, so a layout mistake fails the build rather than corrupting a
//! kernel data structure.
//!
//! Sources of the facts: `usr/src/uts/common/sys/stream.h` (msgb, datab),
//! `usr/src/uts/common/sys/pattr.h` (checksum and LSO flags),
//! `usr/src/uts/common/sys/strsun.h` (DB_CKSUMFLAGS and friends),
//! `usr/src/uts/common/sys/kmem.h` (KM_* flags), `usr/src/uts/common/sys/mutex.h`
//! and `rwlock.h` (kernel locks), `usr/src/uts/common/sys/time.h` (`hrtime_t`).
#![no_std]
#![allow(non_camel_case_types)]

pub mod kmem;
pub mod random;
pub mod stream;
pub mod sync;

pub use kmem::*;
pub use random::*;
pub use stream::*;
pub use sync::*;

/// C `size_t`.
pub type size_t = usize;
/// C `ssize_t`.
pub type ssize_t = isize;
/// C `uint_t`.
pub type uint_t = core::ffi::c_uint;
/// C `pid_t` (32-bit on illumos).
pub type pid_t = i32;
/// C `intptr_t`.
pub type intptr_t = isize;
