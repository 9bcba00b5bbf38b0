//! Kernel synchronization and time: adaptive mutexes (`mutex(9F)`),
//! readers/writer locks (`rwlock(9F)`) and the high-resolution clock
//! (`gethrtime(9F)`).
//!
//! Both lock types are one pointer-sized word on amd64. The kernel keeps
//! the owner thread (and waiter bits) in that word and finds a lock's
//! sleep queue (its turnstile) by the word's address, so a lock must not
//! move between its `*_init` and its `*_destroy`. An all-zero word is an
//! unheld adaptive mutex or rwlock, so locks in zeroed memory work
//! without `*_init`; the DDI still asks drivers to call it.
//!
//! Sources of the facts: `usr/src/uts/common/sys/mutex.h` (`kmutex_t`,
//! `kmutex_type_t`), `usr/src/uts/common/sys/rwlock.h` (`krwlock_t`,
//! `krw_type_t`, `krw_t`), `usr/src/uts/common/sys/time.h` (`hrtime_t`).

use core::ffi::{c_char, c_int, c_void};
use core::mem::{align_of, size_of};

/// A kernel mutex (`kmutex_t`): one opaque pointer-sized word on LP64.
/// Initialize with [`mutex_init`], and do not move it until
/// [`mutex_destroy`].
#[repr(C)]
pub struct kmutex_t {
    /// Owner thread and waiter bits; only the kernel interprets them.
    pub _opaque: [*mut c_void; 1],
}

/// The kind of mutex `mutex_init` makes (a C enum, `int`-sized).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct kmutex_type_t(pub c_int);

/// Spin if the owner is running, otherwise block.
pub const MUTEX_ADAPTIVE: kmutex_type_t = kmutex_type_t(0);
/// Block interrupts and spin (for locks taken above LOCK_LEVEL).
pub const MUTEX_SPIN: kmutex_type_t = kmutex_type_t(1);
/// A driver (DDI) mutex: adaptive, or spin if the interrupt cookie
/// passed to `mutex_init` is above LOCK_LEVEL. What drivers should use.
pub const MUTEX_DRIVER: kmutex_type_t = kmutex_type_t(4);
/// The kernel default mutex, identical to `MUTEX_ADAPTIVE`.
pub const MUTEX_DEFAULT: kmutex_type_t = kmutex_type_t(6);

/// A kernel readers/writer lock (`krwlock_t`): one opaque pointer-sized
/// word. Initialize with [`rw_init`], and do not move it until
/// [`rw_destroy`].
#[repr(C)]
pub struct krwlock_t {
    /// Owner or hold count, and waiter bits; only the kernel interprets
    /// them.
    pub _opaque: [*mut c_void; 1],
}

/// The kind of rwlock `rw_init` makes (a C enum, `int`-sized).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct krw_type_t(pub c_int);

/// A driver (DDI) rwlock. What drivers should use.
pub const RW_DRIVER: krw_type_t = krw_type_t(2);
/// The kernel default rwlock.
pub const RW_DEFAULT: krw_type_t = krw_type_t(4);

/// How `rw_enter`/`rw_tryenter` acquire an rwlock (a C enum, `int`-sized).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct krw_t(pub c_int);

/// Exclusive (write) access.
pub const RW_WRITER: krw_t = krw_t(0);
/// Shared (read) access; waits while a writer holds *or waits for* the
/// lock, so writers are not starved.
pub const RW_READER: krw_t = krw_t(1);
/// Shared access that waits only while a writer holds the lock, ignoring
/// waiting writers (may starve them; avoids lock-order deadlocks).
pub const RW_READER_STARVEWRITER: krw_t = krw_t(2);

/// High-resolution time in nanoseconds (`hrtime_t`, a `long long`).
pub type hrtime_t = i64;

unsafe extern "C" {
    /// Initialize a mutex; `name` should be NULL, `arg` the interrupt
    /// priority for a lock used in an interrupt handler, else NULL.
    pub fn mutex_init(mp: *mut kmutex_t, name: *mut c_char, type_: kmutex_type_t, arg: *mut c_void);
    /// Release what `mutex_init` set up. The mutex must be unheld and no
    /// thread may use it again (until it is initialized again).
    pub fn mutex_destroy(mp: *mut kmutex_t);
    /// Acquire the mutex, blocking while another thread holds it. Entering
    /// a mutex the caller already holds panics the system.
    pub fn mutex_enter(mp: *mut kmutex_t);
    /// Release a mutex the caller holds, waking a waiter if there is one.
    pub fn mutex_exit(mp: *mut kmutex_t);
    /// Acquire the mutex if it is free; nonzero if it was acquired.
    pub fn mutex_tryenter(mp: *mut kmutex_t) -> c_int;
    /// Nonzero if the calling thread holds the mutex (for assertions).
    pub fn mutex_owned(mp: *mut kmutex_t) -> c_int;

    /// Initialize an rwlock; `name` and `arg` should be NULL.
    pub fn rw_init(rwlp: *mut krwlock_t, name: *mut c_char, type_: krw_type_t, arg: *mut c_void);
    /// Release what `rw_init` set up. The lock must be unheld and no
    /// thread may use it again (until it is initialized again).
    pub fn rw_destroy(rwlp: *mut krwlock_t);
    /// Acquire the lock as reader or writer, blocking until it is
    /// available. Recursive acquisition is not allowed in either mode.
    pub fn rw_enter(rwlp: *mut krwlock_t, enter_type: krw_t);
    /// Release a hold the caller has (read or write).
    pub fn rw_exit(rwlp: *mut krwlock_t);
    /// `rw_enter` without blocking; nonzero if the lock was acquired.
    pub fn rw_tryenter(rwlp: *mut krwlock_t, enter_type: krw_t) -> c_int;
    /// Turn the caller's write hold into a read hold, without letting a
    /// writer in between; waiting readers may then enter.
    pub fn rw_downgrade(rwlp: *mut krwlock_t);
    /// Turn the caller's read hold into a write hold if it is the only
    /// reader and no writer is waiting; nonzero on success. On failure the
    /// caller still holds the lock as reader.
    pub fn rw_tryupgrade(rwlp: *mut krwlock_t) -> c_int;
    /// Nonzero if the lock is held by readers (any thread).
    pub fn rw_read_held(rwlp: *mut krwlock_t) -> c_int;
    /// Nonzero if the calling thread holds the lock as writer.
    pub fn rw_write_held(rwlp: *mut krwlock_t) -> c_int;

    /// Nanoseconds since an arbitrary origin (boot on illumos); monotonic,
    /// never adjusted. Callable from any context.
    pub fn gethrtime() -> hrtime_t;
}

// Layout pins (amd64, LP64): these must match the illumos kernel.
const _: () = {
    assert!(size_of::<kmutex_t>() == 8);
    assert!(align_of::<kmutex_t>() == 8);
    assert!(size_of::<krwlock_t>() == 8);
    assert!(align_of::<krwlock_t>() == 8);
    assert!(size_of::<kmutex_type_t>() == 4);
    assert!(size_of::<krw_type_t>() == 4);
    assert!(size_of::<krw_t>() == 4);
    assert!(size_of::<hrtime_t>() == 8);
};
