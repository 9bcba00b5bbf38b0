//! [`KMutex`] and [`KRwLock`]: the engine's locks. Each is an illumos
//! kernel lock (`mutex(9F)`, `rwlock(9F)`) that owns the data it
//! protects, so the data can only be reached through a guard, and the
//! guard releases the lock when it goes out of scope.
//!
//! # Theory
//!
//! An illumos lock is identified by its address: the kernel keeps the
//! owner in the lock word and finds the lock's sleep queue (turnstile)
//! by hashing the word's address, so a `kmutex_t` or `krwlock_t` must
//! stay where it is from `*_init` to `*_destroy`. A Rust value moves
//! whenever its owner does, so these types do not hold the word inline:
//! each allocates its word on the heap in [`KMutex::new`] /
//! [`KRwLock::new`], initializes it there, and destroys and frees it
//! when dropped. The wrapper itself may then move freely (into an `Arc`,
//! a table, another thread); the word never does. Moving it requires
//! ownership, and ownership means no guard borrows it, so the lock is
//! unheld whenever it moves or is dropped.
//!
//! The data sits in an `UnsafeCell` next to the word pointer, and the
//! only ways to it are a guard (whose existence proves the lock is held
//! in the right mode), `get_mut` (which proves by `&mut self` that no
//! guard exists) and `into_inner`.
//!
//! Guards are not `Send`: illumos records which thread holds a mutex or
//! write-holds an rwlock, and only that thread may release it. A guard
//! is released by the thread that took it, when it is dropped.
//!
//! Rules the types cannot enforce, as for any illumos lock:
//!
//! - Do not lock what the thread already holds: recursive `mutex_enter`
//!   panics illumos, and a recursive read hold deadlocks against a
//!   waiting writer. Drop a guard before calling code that takes the
//!   same lock.
//! - Take locks in one global order (documented where the locks live).
//! - Locking may sleep: not from high-level interrupt context. The
//!   locks are `MUTEX_DRIVER`/`RW_DRIVER` with no interrupt cookie,
//!   hence adaptive.
//! - Leaking a guard (`mem::forget`) leaves the lock held; dropping the
//!   lock afterwards is a `mutex_destroy`/`rw_destroy` of a held lock,
//!   which the DDI forbids.

use alloc::boxed::Box;
use core::cell::UnsafeCell;
use core::fmt;
use core::marker::PhantomData;
use core::mem::{self, ManuallyDrop};
use core::ops::{Deref, DerefMut};
use core::ptr::{self, NonNull};
use illumos_sys_hdrs as sys;
use illumos_sys_hdrs::{kmutex_t, krwlock_t};

/// Marks a guard as neither `Send` nor (by default) `Sync`.
type NotSend = PhantomData<*const ()>;

// ---------------------------------------------------------------------
// KMutex
// ---------------------------------------------------------------------

/// A kernel mutex (`kmutex_t`) owning the `T` it protects.
pub struct KMutex<T> {
    /// The lock word, on the heap so it never moves; freed on drop.
    lock: NonNull<kmutex_t>,
    value: UnsafeCell<T>,
}

// SAFETY: a KMutex owns its value and its lock word outright. Sending it
// sends the value (hence `T: Send`); the word stays at its heap address,
// and is unheld, because no guard can borrow a KMutex that is being moved.
unsafe impl<T: Send> Send for KMutex<T> {}

// SAFETY: through `&KMutex<T>` the value is reached only by a guard, and
// the kernel mutex admits one guard at a time, so the value passes
// between threads but is never shared: `T: Send` suffices (as for
// `std::sync::Mutex`).
unsafe impl<T: Send> Sync for KMutex<T> {}

impl<T> KMutex<T> {
    /// A new, unheld mutex protecting `value`.
    pub fn new(value: T) -> Self {
        let lock = NonNull::from(Box::leak(Box::new(kmutex_t { _opaque: [ptr::null_mut()] })));
        // SAFETY: `lock` is a fresh, aligned kmutex_t on the heap that
        // stays at this address until `Drop` destroys and frees it.
        unsafe {
            sys::mutex_init(lock.as_ptr(), ptr::null_mut(), sys::MUTEX_DRIVER, ptr::null_mut());
        }
        Self { lock, value: UnsafeCell::new(value) }
    }

    /// Acquire the mutex, sleeping while another thread holds it. The
    /// calling thread must not already hold it.
    pub fn lock(&self) -> KMutexGuard<'_, T> {
        // SAFETY: the word was initialized in `new` and lives as long as
        // `self`.
        unsafe { sys::mutex_enter(self.lock.as_ptr()) };
        KMutexGuard { mutex: self, _not_send: PhantomData }
    }

    /// Acquire the mutex if no thread holds it (this one included).
    pub fn try_lock(&self) -> Option<KMutexGuard<'_, T>> {
        // SAFETY: as in `lock`.
        let entered = unsafe { sys::mutex_tryenter(self.lock.as_ptr()) } != 0;
        // Not `then_some`: that would build (and drop, releasing the lock)
        // a guard on failure too.
        entered.then(|| KMutexGuard { mutex: self, _not_send: PhantomData })
    }

    /// The value, without locking: `&mut self` proves no guard exists.
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    /// Destroy the mutex and return the value.
    pub fn into_inner(self) -> T {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so the word is
        // destroyed and freed once, here, and the value moved out once.
        unsafe {
            free_mutex(this.lock);
            ptr::read(&this.value).into_inner()
        }
    }
}

/// Destroy a mutex word made by [`KMutex::new`] and free it.
///
/// # Safety
///
/// `lock` came from `KMutex::new` and is not used again.
unsafe fn free_mutex(lock: NonNull<kmutex_t>) {
    // SAFETY: the caller hands over the word, which `new` initialized and
    // allocated with `Box`.
    unsafe {
        sys::mutex_destroy(lock.as_ptr());
        drop(Box::from_raw(lock.as_ptr()));
    }
}

impl<T> Drop for KMutex<T> {
    fn drop(&mut self) {
        // SAFETY: the word is ours and dropped once; `&mut self` means no
        // guard holds it.
        unsafe { free_mutex(self.lock) };
    }
}

impl<T: fmt::Debug> fmt::Debug for KMutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("KMutex");
        match self.try_lock() {
            Some(guard) => d.field("value", &&*guard),
            None => d.field("value", &format_args!("<locked>")),
        };
        d.finish()
    }
}

/// Proof that the calling thread holds a [`KMutex`]: dereferences to
/// the value, and releases the mutex when dropped.
#[must_use = "the mutex is released as soon as the guard is dropped"]
pub struct KMutexGuard<'a, T> {
    mutex: &'a KMutex<T>,
    _not_send: NotSend,
}

// SAFETY: `&KMutexGuard` only gives out `&T`, so sharing a guard between
// threads shares `&T`, which `T: Sync` allows.
unsafe impl<T: Sync> Sync for KMutexGuard<'_, T> {}

impl<T> Deref for KMutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the guard proves this thread holds the mutex, so no
        // other reference to the value is live outside this guard.
        unsafe { &*self.mutex.value.get() }
    }
}

impl<T> DerefMut for KMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only
        // reference through the guard.
        unsafe { &mut *self.mutex.value.get() }
    }
}

impl<T> Drop for KMutexGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this thread entered the mutex when it made the guard
        // (guards are not Send), and exits it once, here.
        unsafe { sys::mutex_exit(self.mutex.lock.as_ptr()) };
    }
}

impl<T: fmt::Debug> fmt::Debug for KMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

// ---------------------------------------------------------------------
// KRwLock
// ---------------------------------------------------------------------

/// A kernel readers/writer lock (`krwlock_t`) owning the `T` it
/// protects: many readers at once, or one writer.
///
/// Readers enter as `RW_READER`, which waits while a writer is waiting,
/// so a stream of readers cannot starve a writer. The flip side: a
/// thread must never take a second read guard on a lock it already
/// reads (a writer arriving in between deadlocks it).
pub struct KRwLock<T> {
    /// The lock word, on the heap so it never moves; freed on drop.
    lock: NonNull<krwlock_t>,
    value: UnsafeCell<T>,
}

// SAFETY: as for KMutex: sending the lock sends the value, and the
// unheld word stays at its heap address.
unsafe impl<T: Send> Send for KRwLock<T> {}

// SAFETY: through `&KRwLock<T>`, read guards on several threads share
// `&T` at once (hence `T: Sync`), and a write guard passes `&mut T` to
// one thread at a time (hence `T: Send`), as for `std::sync::RwLock`.
unsafe impl<T: Send + Sync> Sync for KRwLock<T> {}

impl<T> KRwLock<T> {
    /// A new, unheld rwlock protecting `value`.
    pub fn new(value: T) -> Self {
        let lock = NonNull::from(Box::leak(Box::new(krwlock_t { _opaque: [ptr::null_mut()] })));
        // SAFETY: `lock` is a fresh, aligned krwlock_t on the heap that
        // stays at this address until `Drop` destroys and frees it.
        unsafe {
            sys::rw_init(lock.as_ptr(), ptr::null_mut(), sys::RW_DRIVER, ptr::null_mut());
        }
        Self { lock, value: UnsafeCell::new(value) }
    }

    /// Acquire the lock as a reader, sleeping while a writer holds it or
    /// waits for it. The calling thread must not already hold it.
    pub fn read(&self) -> KRwLockReadGuard<'_, T> {
        // SAFETY: the word was initialized in `new` and lives as long as
        // `self`.
        unsafe { sys::rw_enter(self.lock.as_ptr(), sys::RW_READER) };
        KRwLockReadGuard { rwlock: self, _not_send: PhantomData }
    }

    /// Acquire the lock as the writer, sleeping while anyone holds it.
    /// The calling thread must not already hold it.
    pub fn write(&self) -> KRwLockWriteGuard<'_, T> {
        // SAFETY: as in `read`.
        unsafe { sys::rw_enter(self.lock.as_ptr(), sys::RW_WRITER) };
        KRwLockWriteGuard { rwlock: self, _not_send: PhantomData }
    }

    /// Acquire the lock as a reader if no writer holds or waits for it.
    pub fn try_read(&self) -> Option<KRwLockReadGuard<'_, T>> {
        // SAFETY: as in `read`.
        let entered = unsafe { sys::rw_tryenter(self.lock.as_ptr(), sys::RW_READER) } != 0;
        // `then`, not `then_some`: see `KMutex::try_lock`.
        entered.then(|| KRwLockReadGuard { rwlock: self, _not_send: PhantomData })
    }

    /// Acquire the lock as the writer if nobody holds it.
    pub fn try_write(&self) -> Option<KRwLockWriteGuard<'_, T>> {
        // SAFETY: as in `read`.
        let entered = unsafe { sys::rw_tryenter(self.lock.as_ptr(), sys::RW_WRITER) } != 0;
        // `then`, not `then_some`: see `KMutex::try_lock`.
        entered.then(|| KRwLockWriteGuard { rwlock: self, _not_send: PhantomData })
    }

    /// The value, without locking: `&mut self` proves no guard exists.
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    /// Destroy the lock and return the value.
    pub fn into_inner(self) -> T {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so the word is
        // destroyed and freed once, here, and the value moved out once.
        unsafe {
            free_rwlock(this.lock);
            ptr::read(&this.value).into_inner()
        }
    }
}

/// Destroy an rwlock word made by [`KRwLock::new`] and free it.
///
/// # Safety
///
/// `lock` came from `KRwLock::new` and is not used again.
unsafe fn free_rwlock(lock: NonNull<krwlock_t>) {
    // SAFETY: the caller hands over the word, which `new` initialized and
    // allocated with `Box`.
    unsafe {
        sys::rw_destroy(lock.as_ptr());
        drop(Box::from_raw(lock.as_ptr()));
    }
}

impl<T> Drop for KRwLock<T> {
    fn drop(&mut self) {
        // SAFETY: the word is ours and dropped once; `&mut self` means no
        // guard holds it.
        unsafe { free_rwlock(self.lock) };
    }
}

impl<T: fmt::Debug> fmt::Debug for KRwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("KRwLock");
        match self.try_read() {
            Some(guard) => d.field("value", &&*guard),
            None => d.field("value", &format_args!("<locked>")),
        };
        d.finish()
    }
}

/// Proof that the calling thread holds a [`KRwLock`] as a reader:
/// dereferences to the value (shared), and releases the hold when
/// dropped.
#[must_use = "the read hold is released as soon as the guard is dropped"]
pub struct KRwLockReadGuard<'a, T> {
    rwlock: &'a KRwLock<T>,
    _not_send: NotSend,
}

// SAFETY: `&KRwLockReadGuard` only gives out `&T`, which `T: Sync` lets
// threads share.
unsafe impl<T: Sync> Sync for KRwLockReadGuard<'_, T> {}

impl<'a, T> KRwLockReadGuard<'a, T> {
    /// Turn this read hold into the write hold if it is the only reader
    /// and no writer is waiting (`rw_tryupgrade(9F)`); otherwise give the
    /// read guard back. An associated function, so that it cannot be
    /// confused with a method of `T`.
    pub fn try_upgrade(this: Self) -> Result<KRwLockWriteGuard<'a, T>, Self> {
        // SAFETY: the guard proves this thread read-holds the lock.
        let upgraded = unsafe { sys::rw_tryupgrade(this.rwlock.lock.as_ptr()) } != 0;
        if !upgraded {
            return Err(this);
        }
        let rwlock = this.rwlock;
        // The hold is now the write guard's to release.
        mem::forget(this);
        Ok(KRwLockWriteGuard { rwlock, _not_send: PhantomData })
    }
}

impl<T> Deref for KRwLockReadGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the guard proves this thread read-holds the lock, so no
        // writer (and no `&mut T`) exists until it is released.
        unsafe { &*self.rwlock.value.get() }
    }
}

impl<T> Drop for KRwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this thread entered the lock as reader when it made the
        // guard (guards are not Send), and exits it once, here.
        unsafe { sys::rw_exit(self.rwlock.lock.as_ptr()) };
    }
}

impl<T: fmt::Debug> fmt::Debug for KRwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Proof that the calling thread holds a [`KRwLock`] as the writer:
/// dereferences to the value (exclusive), and releases the lock when
/// dropped.
#[must_use = "the write hold is released as soon as the guard is dropped"]
pub struct KRwLockWriteGuard<'a, T> {
    rwlock: &'a KRwLock<T>,
    _not_send: NotSend,
}

// SAFETY: `&KRwLockWriteGuard` only gives out `&T`, which `T: Sync` lets
// threads share.
unsafe impl<T: Sync> Sync for KRwLockWriteGuard<'_, T> {}

impl<'a, T> KRwLockWriteGuard<'a, T> {
    /// Turn this write hold into a read hold without letting a writer in
    /// between (`rw_downgrade(9F)`); waiting readers may then enter. An
    /// associated function, so that it cannot be confused with a method
    /// of `T`.
    pub fn downgrade(this: Self) -> KRwLockReadGuard<'a, T> {
        let rwlock = this.rwlock;
        // The hold becomes the read guard's to release.
        mem::forget(this);
        // SAFETY: the guard proved this thread write-holds the lock.
        unsafe { sys::rw_downgrade(rwlock.lock.as_ptr()) };
        KRwLockReadGuard { rwlock, _not_send: PhantomData }
    }
}

impl<T> Deref for KRwLockWriteGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the guard proves this thread write-holds the lock, so no
        // other reference to the value is live outside this guard.
        unsafe { &*self.rwlock.value.get() }
    }
}

impl<T> DerefMut for KRwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only
        // reference through the guard.
        unsafe { &mut *self.rwlock.value.get() }
    }
}

impl<T> Drop for KRwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this thread entered the lock as writer when it made the
        // guard (guards are not Send), and exits it once, here.
        unsafe { sys::rw_exit(self.rwlock.lock.as_ptr()) };
    }
}

impl<T: fmt::Debug> fmt::Debug for KRwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
