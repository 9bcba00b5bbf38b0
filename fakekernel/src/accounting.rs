//! Accounting scopes: who allocated what, what is still live, and what
//! went wrong.
//!
//! # Theory
//!
//! Every allocation the fake kernel makes (mblk, dblk, kmem buffer) is
//! charged to an [`Account`]. Which one is decided by the allocating
//! thread: each thread keeps a stack of the [`Scope`]s it has opened, and
//! the innermost one is charged; with no scope open, the thread's own
//! *unscoped* account is. The allocation table remembers the account of
//! each allocation, so whichever thread frees it later credits the right
//! one, even after the scope has been dropped.
//!
//! Scopes nest, but do not aggregate: an allocation is charged to the
//! innermost scope only, so an outer scope does not see what an inner
//! one allocated. Scopes are per thread: a thread spawned inside a scope
//! starts with none, and its allocations are unscoped.
//!
//! Locks are charged the same way: `mutex_init`/`rw_init` charge one to
//! the initializing thread's account and `*_destroy` credits it, so a
//! lock that is never destroyed (the DDI requires it before the memory
//! holding the lock is freed) shows as a leak.
//!
//! Errors (a bad `kmem_free` size, a double free, `freeb(NULL)`, ...) are
//! printed to stderr and recorded in the account of the thread that made
//! the bad call, because that is where the bug is.
//!
//! Failure injection lives on the account too: [`Scope::fail_next_allocs`]
//! makes the next allocations charged to the scope fail, as a real kernel
//! does under memory pressure.
//!
//! [`live_total`] sums every account still referenced (by a scope, a
//! thread, or a live allocation), found through a list of weak
//! references; there is no process-wide counter for threads to contend
//! on.
//!
//! Locking: counters are atomics. An account's error log and its
//! injection plan each have their own mutex, held only to push or read.
//! The list of accounts has a mutex, taken to add an account and by
//! [`live_total`]. No code holds two of these at once. The thread-local
//! scope stack needs no lock.

use crate::alloc_table::Kind;
use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError, Weak};

/// Errors kept per account; later ones are counted, not kept.
const MAX_ERRORS_KEPT: usize = 256;

/// Deepest nesting of scopes on one thread.
const MAX_SCOPE_DEPTH: usize = 64;

/// Counts of live allocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Live {
    /// `kmem_alloc`/`kmem_zalloc` buffers not yet freed.
    pub kmem_bufs: usize,
    /// Bytes in those buffers.
    pub kmem_bytes: usize,
    /// Message blocks (`mblk_t`) not yet freed.
    pub mblks: usize,
    /// Data blocks (`dblk_t` and their buffers) not yet freed.
    pub dblks: usize,
}

impl Live {
    /// True when nothing is live.
    pub fn is_zero(&self) -> bool {
        *self == Live::default()
    }
}

impl fmt::Display for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} mblks, {} dblks, {} kmem buffers ({} bytes)",
            self.mblks, self.dblks, self.kmem_bufs, self.kmem_bytes
        )
    }
}

/// A problem the fake kernel detected (bad `kmem_free` size, double
/// free, `freeb(NULL)`, ...). On illumos most of these panic the system
/// or corrupt memory; here the call is refused or completed safely, and
/// the error is printed and recorded for the test to assert on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelError {
    /// `freeb(NULL)`; illumos dereferences the NULL and panics.
    FreebNull,
    /// A function that needs a message got NULL; illumos would panic.
    NullMessage {
        /// The function called.
        op: &'static str,
    },
    /// A function that writes to a buffer got NULL with a non-zero
    /// length; illumos would panic.
    NullBuffer {
        /// The function called.
        op: &'static str,
    },
    /// A message block that was already freed was passed in (use after
    /// free or double free). The call did not touch it.
    MblkFreed {
        /// The function called.
        op: &'static str,
        /// The block's address.
        mblk: usize,
    },
    /// A pointer passed as a message block was never returned by
    /// `allocb` and friends (or is currently some other allocation).
    NotAnMblk {
        /// The function called.
        op: &'static str,
        /// The pointer passed.
        addr: usize,
    },
    /// A live message block's `b_datap` is not a live data block.
    BadDatap {
        /// The function called.
        op: &'static str,
        /// The block's address.
        mblk: usize,
        /// Its `b_datap`.
        dblk: usize,
    },
    /// A block's `b_rptr`/`b_wptr` are reversed or outside its buffer.
    BadBlockPointers {
        /// The function called.
        op: &'static str,
        /// The block's address.
        mblk: usize,
    },
    /// A message block was freed or pulled up while `b_next` or `b_prev`
    /// still linked it into a list (illumos DEBUG kernels assert).
    LinkedMblk {
        /// The function called.
        op: &'static str,
        /// The block's address.
        mblk: usize,
    },
    /// A data block's `db_ref` was already zero when one of its message
    /// blocks was freed.
    DblkRefUnderflow {
        /// The function called.
        op: &'static str,
        /// The data block's address.
        dblk: usize,
    },
    /// A message has more blocks than the fake kernel walks (likely a
    /// `b_cont` cycle); the walk stopped.
    MessageTooLong {
        /// The function called.
        op: &'static str,
        /// The block limit.
        limit: usize,
    },
    /// `kmem_free` with a size other than the allocated one (illumos
    /// `KMERR_BADSIZE`). The buffer was not freed.
    KmemBadSize {
        /// The buffer.
        addr: usize,
        /// The size it was allocated with.
        allocated: usize,
        /// The size passed to `kmem_free`.
        freed: usize,
    },
    /// `kmem_free` of a buffer that was already freed (illumos
    /// `KMERR_DUPFREE`).
    KmemDoubleFree {
        /// The buffer.
        addr: usize,
        /// The size passed to `kmem_free`.
        size: usize,
    },
    /// `kmem_free` of an address `kmem_alloc` never returned (illumos
    /// `KMERR_BADADDR`).
    KmemBadAddr {
        /// The address passed.
        addr: usize,
        /// The size passed to `kmem_free`.
        size: usize,
    },
    /// A fake kernel function panicked (a fakekernel bug); the call
    /// returned its failure value instead of unwinding into C.
    InternalPanic {
        /// The function called.
        op: &'static str,
    },
    /// `mutex_enter` of a mutex the calling thread holds, or `rw_enter`
    /// of an rwlock it already holds (illumos panics "recursive
    /// mutex_enter"/"recursive rw_enter", or the thread deadlocks). The
    /// call returned without acquiring anything, except a recursive
    /// *read* entry, which was granted so that the caller's two
    /// `rw_exit`s balance.
    LockRecursive {
        /// The function called.
        op: &'static str,
        /// The lock's address.
        lock: usize,
    },
    /// A lock was released (or downgraded, or upgraded) by a thread that
    /// does not hold it, while no thread held it or, for an rwlock, only
    /// other threads held it as readers. Nothing was changed.
    LockNotHeld {
        /// The function called.
        op: &'static str,
        /// The lock's address.
        lock: usize,
    },
    /// A mutex was released, or an rwlock released or downgraded, by a
    /// thread other than the one holding it (illumos panics "not owner").
    /// Nothing was changed.
    LockNotOwner {
        /// The function called.
        op: &'static str,
        /// The lock's address.
        lock: usize,
    },
    /// A lock was destroyed while held or waited for (the DDI requires
    /// an unheld lock; illumos panics for an rwlock or for a mutex held
    /// by another thread). A mutex held by the caller alone was destroyed
    /// anyway, as illumos does; anything else was left alone.
    LockDestroyedHeld {
        /// The function called.
        op: &'static str,
        /// The lock's address.
        lock: usize,
    },
    /// A destroyed lock was used (entered, released or destroyed again)
    /// before being initialized again. Nothing was changed.
    LockDestroyed {
        /// The function called.
        op: &'static str,
        /// The lock's address.
        lock: usize,
    },
    /// A lock's word holds no state a lock can be in: uninitialized
    /// memory (kmem's fill pattern, say) or a corrupted lock. Nothing
    /// was changed.
    BadLock {
        /// The function called.
        op: &'static str,
        /// The lock's address.
        lock: usize,
        /// The word found there.
        word: usize,
    },
    /// A lock function got a NULL or misaligned lock pointer (illumos
    /// would fault or corrupt memory). Nothing was done.
    BadLockAddress {
        /// The function called.
        op: &'static str,
        /// The pointer passed.
        lock: usize,
    },
    /// `mutex_init`/`rw_init` of a lock that was initialized and never
    /// destroyed (the DDI forbids initializing a lock twice). A held lock
    /// was left alone; an unheld one was initialized again.
    LockReinitialized {
        /// The function called.
        op: &'static str,
        /// The lock's address.
        lock: usize,
    },
    /// `rw_enter`/`rw_tryenter` with a `krw_t` that is none of
    /// `RW_WRITER`, `RW_READER`, `RW_READER_STARVEWRITER`. The call did
    /// nothing (and `rw_tryenter` returned 0).
    BadRwMode {
        /// The function called.
        op: &'static str,
        /// The lock's address.
        lock: usize,
        /// The mode passed.
        mode: i32,
    },
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FreebNull => write!(f, "freeb(NULL): illumos would panic"),
            Self::NullMessage { op } => write!(f, "{op}(NULL): illumos would panic"),
            Self::NullBuffer { op } => {
                write!(f, "{op}: NULL buffer with a non-zero length: illumos would panic")
            }
            Self::MblkFreed { op, mblk } => {
                write!(f, "{op}: mblk {mblk:#x} was already freed")
            }
            Self::NotAnMblk { op, addr } => {
                write!(f, "{op}: {addr:#x} is not an mblk from allocb/dupb/copyb")
            }
            Self::BadDatap { op, mblk, dblk } => {
                write!(f, "{op}: mblk {mblk:#x} has b_datap {dblk:#x}, not a live dblk")
            }
            Self::BadBlockPointers { op, mblk } => write!(
                f,
                "{op}: mblk {mblk:#x} has b_rptr/b_wptr reversed or outside db_base..db_lim"
            ),
            Self::LinkedMblk { op, mblk } => write!(
                f,
                "{op}: mblk {mblk:#x} still has b_next/b_prev set (illumos DEBUG asserts)"
            ),
            Self::DblkRefUnderflow { op, dblk } => {
                write!(f, "{op}: dblk {dblk:#x} has db_ref 0")
            }
            Self::MessageTooLong { op, limit } => {
                write!(f, "{op}: message longer than {limit} blocks (b_cont cycle?)")
            }
            Self::KmemBadSize { addr, allocated, freed } => write!(
                f,
                "kmem_free({addr:#x}, {freed}): buffer was allocated with size {allocated} \
                 (KMERR_BADSIZE); not freed"
            ),
            Self::KmemDoubleFree { addr, size } => {
                write!(f, "kmem_free({addr:#x}, {size}): buffer already freed (KMERR_DUPFREE)")
            }
            Self::KmemBadAddr { addr, size } => write!(
                f,
                "kmem_free({addr:#x}, {size}): not a buffer from kmem_alloc (KMERR_BADADDR)"
            ),
            Self::InternalPanic { op } => {
                write!(f, "{op}: fakekernel panicked internally (a fakekernel bug)")
            }
            Self::LockRecursive { op, lock } => write!(
                f,
                "{op}({lock:#x}): the calling thread already holds this lock \
                 (illumos panics or deadlocks)"
            ),
            Self::LockNotHeld { op, lock } => {
                write!(f, "{op}({lock:#x}): the calling thread does not hold this lock")
            }
            Self::LockNotOwner { op, lock } => write!(
                f,
                "{op}({lock:#x}): the lock is held by another thread (illumos panics: not owner)"
            ),
            Self::LockDestroyedHeld { op, lock } => {
                write!(f, "{op}({lock:#x}): the lock is still held or waited for")
            }
            Self::LockDestroyed { op, lock } => {
                write!(f, "{op}({lock:#x}): the lock was destroyed and not initialized again")
            }
            Self::BadLock { op, lock, word } => write!(
                f,
                "{op}({lock:#x}): {word:#x} is not a lock state (uninitialized or corrupted lock)"
            ),
            Self::BadLockAddress { op, lock } => {
                write!(f, "{op}({lock:#x}): NULL or misaligned lock pointer")
            }
            Self::LockReinitialized { op, lock } => {
                write!(f, "{op}({lock:#x}): the lock was already initialized and never destroyed")
            }
            Self::BadRwMode { op, lock, mode } => {
                write!(
                    f,
                    "{op}({lock:#x}, {mode}): not RW_WRITER, RW_READER or RW_READER_STARVEWRITER"
                )
            }
        }
    }
}

impl std::error::Error for KernelError {}

/// Atomic counters of live allocations.
struct Counters {
    kmem_bufs: AtomicUsize,
    kmem_bytes: AtomicUsize,
    mblks: AtomicUsize,
    dblks: AtomicUsize,
}

impl Counters {
    const fn new() -> Self {
        Self {
            kmem_bufs: AtomicUsize::new(0),
            kmem_bytes: AtomicUsize::new(0),
            mblks: AtomicUsize::new(0),
            dblks: AtomicUsize::new(0),
        }
    }

    fn add(&self, kind: Kind) {
        match kind {
            Kind::Mblk => {
                self.mblks.fetch_add(1, Ordering::Relaxed);
            }
            Kind::Dblk { .. } => {
                self.dblks.fetch_add(1, Ordering::Relaxed);
            }
            Kind::Kmem { size } => {
                self.kmem_bufs.fetch_add(1, Ordering::Relaxed);
                self.kmem_bytes.fetch_add(size, Ordering::Relaxed);
            }
        }
    }

    fn sub(&self, kind: Kind) {
        match kind {
            Kind::Mblk => {
                self.mblks.fetch_sub(1, Ordering::Relaxed);
            }
            Kind::Dblk { .. } => {
                self.dblks.fetch_sub(1, Ordering::Relaxed);
            }
            Kind::Kmem { size } => {
                self.kmem_bufs.fetch_sub(1, Ordering::Relaxed);
                self.kmem_bytes.fetch_sub(size, Ordering::Relaxed);
            }
        }
    }

    fn snapshot(&self) -> Live {
        Live {
            kmem_bufs: self.kmem_bufs.load(Ordering::Relaxed),
            kmem_bytes: self.kmem_bytes.load(Ordering::Relaxed),
            mblks: self.mblks.load(Ordering::Relaxed),
            dblks: self.dblks.load(Ordering::Relaxed),
        }
    }
}

/// Errors recorded in an account, bounded by [`MAX_ERRORS_KEPT`].
#[derive(Default)]
struct ErrorLog {
    kept: Vec<KernelError>,
    dropped: usize,
}

/// A failure-injection plan: let `skip` allocations succeed, then fail
/// `fail` of them.
#[derive(Default)]
struct Injection {
    skip: usize,
    fail: usize,
}

/// What one scope (or one thread's unscoped allocations) has live,
/// the errors charged to it, and its failure-injection plan.
pub(crate) struct Account {
    id: u64,
    live: Counters,
    /// Locks initialized (`mutex_init`, `rw_init`) and not yet destroyed.
    locks: AtomicUsize,
    errors: Mutex<ErrorLog>,
    /// Set while `injection` has work to do; lets allocations skip the
    /// mutex on the common path.
    injection_armed: AtomicBool,
    injection: Mutex<Injection>,
}

/// Every account that may still have live allocations, for
/// [`live_total`]. Dead entries are pruned as new accounts arrive.
static ACCOUNTS: Mutex<Vec<Weak<Account>>> = Mutex::new(Vec::new());

/// Source of account ids.
static NEXT_ACCOUNT_ID: AtomicU64 = AtomicU64::new(1);

/// The account charged by a thread whose thread-local state is already
/// gone (allocations made from thread-local destructors).
static LATE_UNSCOPED: LazyLock<Arc<Account>> = LazyLock::new(Account::registered);

thread_local! {
    /// This thread's open scopes, innermost last.
    static SCOPES: RefCell<Vec<Arc<Account>>> = const { RefCell::new(Vec::new()) };

    /// The account charged when this thread has no scope open. One per
    /// thread rather than one per process, so threads allocating outside
    /// scopes (a benchmark's workers) do not contend on its counters.
    static UNSCOPED: Arc<Account> = Account::registered();
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data behind these locks is a plain Vec or pair of counts,
    // consistent even if a holder panicked.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Account {
    /// A new account, entered in [`ACCOUNTS`].
    fn registered() -> Arc<Self> {
        let account = Arc::new(Self {
            id: NEXT_ACCOUNT_ID.fetch_add(1, Ordering::Relaxed),
            live: Counters::new(),
            locks: AtomicUsize::new(0),
            errors: Mutex::new(ErrorLog::default()),
            injection_armed: AtomicBool::new(false),
            injection: Mutex::new(Injection::default()),
        });
        let mut accounts = lock(&ACCOUNTS);
        // Prune each time the list reaches a power of two (from 64 on),
        // so it holds at most about twice the accounts alive at the last
        // prune.
        if accounts.len() >= 64 && accounts.len().is_power_of_two() {
            accounts.retain(|a| a.strong_count() > 0);
        }
        accounts.push(Arc::downgrade(&account));
        account
    }

    /// Count a new allocation against this account.
    pub(crate) fn charge(&self, kind: Kind) {
        self.live.add(kind);
    }

    /// Count a freed allocation that was charged to this account.
    pub(crate) fn credit(&self, kind: Kind) {
        self.live.sub(kind);
    }

    /// Count a lock initialized against this account.
    pub(crate) fn charge_lock(&self) {
        self.locks.fetch_add(1, Ordering::Relaxed);
    }

    /// Count a destroyed lock that was charged to this account.
    pub(crate) fn credit_lock(&self) {
        self.locks.fetch_sub(1, Ordering::Relaxed);
    }

    /// Should the allocation being attempted fail? Consumes one step of
    /// the injection plan.
    pub(crate) fn inject_failure(&self) -> bool {
        if !self.injection_armed.load(Ordering::Acquire) {
            return false;
        }
        let mut plan = lock(&self.injection);
        if plan.skip > 0 {
            plan.skip -= 1;
            return false;
        }
        if plan.fail > 0 {
            plan.fail -= 1;
            if plan.fail == 0 {
                self.injection_armed.store(false, Ordering::Release);
            }
            return true;
        }
        self.injection_armed.store(false, Ordering::Release);
        false
    }

    fn record(&self, err: KernelError) {
        let mut log = lock(&self.errors);
        if log.kept.len() < MAX_ERRORS_KEPT {
            log.kept.push(err);
        } else {
            log.dropped = log.dropped.saturating_add(1);
        }
    }
}

/// The account the current thread's allocations are charged to.
pub(crate) fn current_account() -> Arc<Account> {
    SCOPES
        .try_with(|scopes| scopes.try_borrow().ok().and_then(|s| s.last().cloned()))
        .ok()
        .flatten()
        .or_else(|| UNSCOPED.try_with(Arc::clone).ok())
        .unwrap_or_else(|| Arc::clone(&LATE_UNSCOPED))
}

/// Print `err` to stderr and record it in the current thread's account.
pub(crate) fn report(err: KernelError) {
    // `eprintln!` goes through the test harness's output capture, so a
    // test that provokes errors on purpose stays quiet unless it fails.
    // It panics if stderr is unwritable; that must not escape into an
    // extern "C" caller, and there is nowhere left to say so.
    let _ = catch_unwind(|| eprintln!("fakekernel: {err}"));
    current_account().record(err);
}

/// Run the body of an `extern "C"` function so that a panic inside it
/// (a fakekernel bug) is reported and turned into `on_panic` instead of
/// unwinding into C, which would abort the process.
pub(crate) fn no_unwind<R>(op: &'static str, on_panic: R, body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(_) => {
            report(KernelError::InternalPanic { op });
            on_panic
        }
    }
}

/// An accounting scope: while it is alive, every allocation the thread
/// that opened it makes is charged to it (see the module documentation).
/// Dropping it asserts that everything it allocated was freed and no
/// errors were recorded, unless the thread is already panicking.
///
/// A scope belongs to the thread that opened it and cannot be sent to
/// another; allocations it owns can be freed from any thread.
pub struct Scope {
    account: Arc<Account>,
    _not_send: PhantomData<*const ()>,
}

/// Open an accounting scope on the current thread. Allocations this
/// thread makes while it is alive are charged to it, wherever (on
/// whichever thread) they are later freed.
///
/// # Panics
///
/// If the thread already has 64 scopes open.
pub fn scope() -> Scope {
    crate::keep_kernel_symbols();
    let account = Account::registered();
    SCOPES.with(|scopes| {
        let mut scopes = scopes.borrow_mut();
        assert!(
            scopes.len() < MAX_SCOPE_DEPTH,
            "fakekernel: more than {MAX_SCOPE_DEPTH} nested scopes on one thread"
        );
        scopes.push(Arc::clone(&account));
    });
    Scope { account, _not_send: PhantomData }
}

impl Scope {
    /// Allocations charged to this scope that are still live.
    pub fn live(&self) -> Live {
        self.account.live.snapshot()
    }

    /// Locks initialized (`mutex_init`, `rw_init`) while this scope was
    /// the thread's innermost one and not yet destroyed, by any thread.
    pub fn live_locks(&self) -> usize {
        self.account.locks.load(Ordering::Relaxed)
    }

    /// Errors recorded while this scope was the current thread's
    /// innermost scope, oldest first (at most 256 are kept).
    pub fn errors(&self) -> Vec<KernelError> {
        lock(&self.account.errors).kept.clone()
    }

    /// Remove and return the errors recorded so far, for a test that
    /// provokes them on purpose and must still end clean.
    pub fn take_errors(&self) -> Vec<KernelError> {
        let mut log = lock(&self.account.errors);
        log.dropped = 0;
        std::mem::take(&mut log.kept)
    }

    /// Panic with a message listing the live allocations and recorded
    /// errors, if there are any.
    ///
    /// # Panics
    ///
    /// If anything charged to this scope is still live (allocations or
    /// locks) or any error was recorded in it.
    pub fn assert_clean(&self) {
        let live = self.live();
        let locks = self.live_locks();
        let log = lock(&self.account.errors);
        if live.is_zero() && locks == 0 && log.kept.is_empty() && log.dropped == 0 {
            return;
        }
        let mut msg = format!("fakekernel scope #{} is not clean:", self.account.id);
        if !live.is_zero() {
            msg.push_str(&format!("\n  leaked: {live}"));
        }
        if locks > 0 {
            msg.push_str(&format!("\n  leaked: {locks} locks initialized and never destroyed"));
        }
        if !log.kept.is_empty() {
            msg.push_str(&format!("\n  errors ({}):", log.kept.len() + log.dropped));
            for err in &log.kept {
                msg.push_str(&format!("\n    {err}"));
            }
            if log.dropped > 0 {
                msg.push_str(&format!("\n    ... and {} more", log.dropped));
            }
        }
        drop(log);
        panic!("{msg}");
    }

    /// Make the next `n` allocations charged to this scope fail:
    /// `allocb`, `dupb`, `copyb` (and the functions built on them) return
    /// NULL, and `kmem_alloc`/`kmem_zalloc` with `KM_NOSLEEP` return
    /// NULL. `KM_SLEEP` allocations never fail and do not count.
    pub fn fail_next_allocs(&self, n: usize) {
        self.fail_allocs_after(0, n);
    }

    /// Let the next `skip` allocations charged to this scope succeed,
    /// then fail the `n` after them (counted as in
    /// [`Scope::fail_next_allocs`]). Reaches the error paths in the
    /// middle of multi-block operations such as `copymsg`.
    pub fn fail_allocs_after(&self, skip: usize, n: usize) {
        let mut plan = lock(&self.account.injection);
        *plan = Injection { skip, fail: n };
        self.account.injection_armed.store(n > 0, Ordering::Release);
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("id", &self.account.id)
            .field("live", &self.live())
            .field("locks", &self.live_locks())
            .finish()
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let id = self.account.id;
        // The thread-local may already be gone if the scope is dropped
        // during thread teardown; then there is nothing to pop.
        let _ = SCOPES.try_with(|scopes| {
            let mut scopes = scopes.borrow_mut();
            if let Some(pos) = scopes.iter().rposition(|a| a.id == id) {
                scopes.remove(pos);
            }
        });
        if !std::thread::panicking() {
            self.assert_clean();
        }
    }
}

/// Live allocations across all scopes plus those made outside any scope.
/// Tests running in parallel share this total, so it is for a process
/// that has quiesced (the end of a benchmark, a single-test binary).
pub fn live_total() -> Live {
    crate::keep_kernel_symbols();
    let accounts = lock(&ACCOUNTS);
    let mut total = Live::default();
    for live in accounts.iter().filter_map(Weak::upgrade).map(|a| a.live.snapshot()) {
        total.kmem_bufs += live.kmem_bufs;
        total.kmem_bytes += live.kmem_bytes;
        total.mblks += live.mblks;
        total.dblks += live.dblks;
    }
    total
}
