//! Kernel locks and the high-resolution clock in userland: `mutex(9F)`
//! (`mutex_init`, `mutex_destroy`, `mutex_enter`, `mutex_exit`,
//! `mutex_tryenter`, `mutex_owned`), `rwlock(9F)` (`rw_init`,
//! `rw_destroy`, `rw_enter`, `rw_exit`, `rw_tryenter`, `rw_downgrade`,
//! `rw_tryupgrade`, `rw_read_held`, `rw_write_held`) and `gethrtime(9F)`,
//! with the semantics of illumos `usr/src/uts/common/os/mutex.c` and
//! `rwlock.c`.
//!
//! # Theory
//!
//! A lock lives entirely in the caller's one-word `kmutex_t` or
//! `krwlock_t`, used as an `AtomicUsize` and encoded as illumos encodes
//! it, so an all-zero word is an unheld lock and a lock in zeroed memory
//! works without `*_init`:
//!
//! - mutex: 0 when free; when held, the owner's thread id, plus bit 0
//!   while threads may be waiting; when destroyed, the destroying
//!   thread's id plus 0x6. After a release that woke one of several
//!   waiters, the word is the waiters bit alone: free, with waiters.
//! - rwlock: bit 0 "waiters", bit 1 "write wanted", bit 2 "write
//!   locked"; above those, the owner's thread id when write-locked, else
//!   the number of readers times 8. A destroyed rwlock is 0xc
//!   (write-locked by thread 0 *and* read-held: a state no lock is in).
//!   A free rwlock is exactly 0: the bits are only ever set while it is
//!   held.
//!
//! Thread ids are handed out on a thread's first lock call, multiples of
//! 8 from 16, never reused. A word naming an id below 16 or not yet
//! handed out is garbage (uninitialized memory, a corrupted lock) and is
//! reported as [`KernelError::BadLock`] rather than waited on forever.
//!
//! Waiting threads sleep in `parking_lot_core`'s queues keyed by the
//! lock's address, as illumos threads sleep on turnstiles found by
//! address. A thread about to sleep sets the waiters bit while it holds
//! the queue's lock, and only if the lock is still busy; a release clears
//! the lock first and then wakes the queue if the bit was set. So either
//! the sleeper sees the release and does not sleep, or it is already
//! queued when the releaser looks, and no wakeup is lost. A mutex
//! release wakes one waiter, which tries again (a running thread may
//! take the lock first, as on illumos); the bit stays set while more
//! wait. An rwlock's final release (or a downgrade) clears every bit and
//! wakes all its waiters to try again; writers set "write wanted" again
//! as they go back to sleep, and `RW_READER` (but not
//! `RW_READER_STARVEWRITER`) waits while it is set, so a stream of
//! readers does not starve a writer. Before sleeping, a thread spins
//! briefly, as an adaptive mutex does while its owner runs.
//!
//! # Checks
//!
//! The fake knows which thread owns a mutex or write-holds an rwlock
//! (the word says), and each thread keeps a list of the rwlocks it
//! read-holds. With that it reports, as a [`KernelError`] charged to the
//! calling thread, what a DEBUG illumos kernel panics or asserts on, and
//! some things it cannot see: recursive entry (which would deadlock the
//! test, so it is refused instead), release by a thread that does not hold
//! the lock, destroying a held lock, using a destroyed one, initializing
//! a lock twice, and garbage or misaligned lock words. A misused lock is
//! left as it was: it belongs to whoever holds it.
//!
//! A read hold belongs to the thread that took it: `rw_exit` of a read
//! hold from another thread is reported, although illumos would accept
//! it. A recursive `RW_READER` entry is reported (illumos forbids it: a
//! writer arriving between the two entries deadlocks the thread) but
//! granted, so the caller's two `rw_exit`s still balance.
//!
//! Initialized locks are entered in a table by address, charged to the
//! initializing thread's account, so a lock that is never destroyed
//! shows in [`Scope::live_locks`](crate::Scope::live_locks). The table is
//! one map behind one mutex, held only to insert or remove an entry:
//! `*_init` and `*_destroy` are not on the data path.
//!
//! `MUTEX_SPIN` and interrupt priorities mean nothing in a process: every
//! mutex here is adaptive.

use crate::accounting::{Account, KernelError, current_account, no_unwind, report};
use crate::alloc_table::AddrHasher;
use illumos_sys_hdrs::{
    RW_READER, RW_READER_STARVEWRITER, RW_WRITER, hrtime_t, kmutex_t, kmutex_type_t, krw_t,
    krw_type_t, krwlock_t,
};
use parking_lot_core::{DEFAULT_PARK_TOKEN, DEFAULT_UNPARK_TOKEN, SpinWait};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ffi::{c_char, c_int, c_void};
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Instant;

/// The first thread id handed out; lower ones never name a thread.
const FIRST_THREAD_ID: usize = 16;

/// Thread ids are multiples of this, leaving the low bits of a lock word
/// for flags.
const THREAD_ID_STEP: usize = 8;

/// Mutex word: threads may be waiting.
const MUTEX_WAITERS: usize = 0x1;
/// Mutex word: low bits of a destroyed mutex.
const MUTEX_DEAD: usize = 0x6;
/// Mutex word: the owner's (or destroyer's) thread id.
const MUTEX_THREAD: usize = !0x7;

/// Rwlock word: threads are waiting.
const RW_HAS_WAITERS: usize = 0x1;
/// Rwlock word: a writer is waiting.
const RW_WRITE_WANTED: usize = 0x2;
/// Rwlock word: held by a writer, whose id is in [`RW_OWNER`].
const RW_WRITE_LOCKED: usize = 0x4;
/// Rwlock word: one reader's share of the hold count.
const RW_READ_LOCK: usize = 0x8;
/// Rwlock word: the writer's thread id, or the hold count times 8.
const RW_OWNER: usize = !0x7;
/// Rwlock word: a destroyed rwlock.
const RW_DOUBLE_LOCK: usize = RW_WRITE_LOCKED | RW_READ_LOCK;
/// More readers than this at once means the word is garbage.
const MAX_READERS: usize = 1 << 32;

/// Source of thread ids.
static NEXT_THREAD_ID: AtomicUsize = AtomicUsize::new(FIRST_THREAD_ID);

thread_local! {
    /// This thread's id, 0 until its first lock call.
    static THREAD_ID: Cell<usize> = const { Cell::new(0) };

    /// The rwlocks this thread read-holds, with how many holds each.
    static READ_HOLDS: RefCell<Vec<ReadHold>> = const { RefCell::new(Vec::new()) };
}

/// Read holds of one rwlock by one thread.
struct ReadHold {
    lock: usize,
    count: usize,
}

/// Initialized, not yet destroyed locks, by address, with the account
/// each is charged to (a hash map: every flow's lock passes through it).
type LockTable = HashMap<usize, Arc<Account>, BuildHasherDefault<AddrHasher>>;
static LOCKS: LazyLock<Mutex<LockTable>> = LazyLock::new(|| Mutex::new(LockTable::default()));

/// The origin of [`gethrtime`].
static HRTIME_ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);

/// The calling thread's id (`curthread` in illumos terms).
fn curthread() -> usize {
    THREAD_ID.with(|id| {
        if id.get() == 0 {
            id.set(NEXT_THREAD_ID.fetch_add(THREAD_ID_STEP, Ordering::Relaxed));
        }
        id.get()
    })
}

/// Whether `id` is a thread id that has been handed out. Every store that
/// puts an id in a lock word releases, and every load that decodes one
/// acquires, so the loader sees the hand-out that came before the store,
/// and a real id always passes.
fn is_thread(id: usize) -> bool {
    id >= FIRST_THREAD_ID && id < NEXT_THREAD_ID.load(Ordering::Relaxed)
}

/// The lock word at `p`, or `None` (reported) for a NULL or misaligned
/// pointer.
///
/// # Safety
///
/// A non-NULL, aligned `p` points to a lock word that stays valid for
/// `'a` and is only accessed atomically meanwhile.
unsafe fn lock_word<'a, T>(op: &'static str, p: *mut T) -> Option<&'a AtomicUsize> {
    if p.is_null() || !p.addr().is_multiple_of(align_of::<AtomicUsize>()) {
        report(KernelError::BadLockAddress { op, lock: p.addr() });
        return None;
    }
    // SAFETY: `p` is non-NULL and aligned for `AtomicUsize` (checked);
    // the caller vouches that it is a valid word accessed atomically.
    Some(unsafe { AtomicUsize::from_ptr(p.cast()) })
}

/// The lock word at `p` when it is non-NULL and aligned, reporting
/// nothing (for the fast paths; the checked paths report).
///
/// # Safety
///
/// As [`lock_word`].
unsafe fn quiet_word<'a, T>(p: *mut T) -> Option<&'a AtomicUsize> {
    if p.is_null() || !p.addr().is_multiple_of(align_of::<AtomicUsize>()) {
        return None;
    }
    // SAFETY: `p` is non-NULL and aligned (checked); the caller vouches
    // that it is a valid word accessed atomically.
    Some(unsafe { AtomicUsize::from_ptr(p.cast()) })
}

/// This thread's id if it has one already (the fast paths neither hand
/// one out nor touch a thread-local that is gone).
fn known_thread() -> Option<usize> {
    THREAD_ID.try_with(Cell::get).ok().filter(|id| *id != 0)
}

// The fast paths below run outside `no_unwind`: they cannot panic (no
// indexing, no unwrapping, thread-locals reached with `try_with`), and
// they take only the commonest transitions, one compare-and-swap each.
// Every other state goes to the checked path.

/// Take a free mutex with no waiters (the word is exactly 0).
fn mutex_enter_fast(lock: &AtomicUsize) -> bool {
    known_thread()
        .is_some_and(|me| lock.compare_exchange(0, me, Ordering::AcqRel, Ordering::Relaxed).is_ok())
}

/// Release a mutex this thread holds with no waiters (the word is
/// exactly its id).
fn mutex_exit_fast(lock: &AtomicUsize) -> bool {
    known_thread().is_some_and(|me| {
        lock.compare_exchange(me, 0, Ordering::Release, Ordering::Relaxed).is_ok()
    })
}

/// Enter `lock` in the table of initialized locks, charged to the
/// calling thread's account; false (and nothing changes) if it is there
/// already: initialized and not destroyed. One hold of the table and one
/// probe: every flow's lock is initialized on the data path.
fn register(lock: usize) -> bool {
    let mut locks = LOCKS.lock().unwrap_or_else(PoisonError::into_inner);
    match locks.entry(lock) {
        Entry::Occupied(_) => false,
        Entry::Vacant(slot) => {
            let account = current_account();
            account.charge_lock();
            slot.insert(account);
            true
        }
    }
}

/// Remove `lock` from the table of initialized locks, crediting its
/// account. A lock that was never initialized (zeroed memory) is not in
/// the table; that is fine.
fn unregister(lock: usize) {
    let old = LOCKS.lock().unwrap_or_else(PoisonError::into_inner).remove(&lock);
    if let Some(account) = old {
        account.credit_lock();
    }
}

// ---------------------------------------------------------------------
// Mutexes
// ---------------------------------------------------------------------

/// What a mutex word says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MutexState {
    /// Unheld; `waiters` if a thread woken by the last release may still
    /// be waiting.
    Free { waiters: bool },
    /// Held by thread `owner`.
    Held { owner: usize, waiters: bool },
    /// Destroyed.
    Destroyed,
    /// Not a mutex state.
    Garbage,
}

fn mutex_state(word: usize) -> MutexState {
    let id = word & MUTEX_THREAD;
    let waiters = word & MUTEX_WAITERS != 0;
    match word & !MUTEX_THREAD {
        0 | MUTEX_WAITERS if id == 0 => MutexState::Free { waiters },
        0 | MUTEX_WAITERS if is_thread(id) => MutexState::Held { owner: id, waiters },
        MUTEX_DEAD if is_thread(id) => MutexState::Destroyed,
        _ => MutexState::Garbage,
    }
}

/// Report a mutex state no operation may proceed from; true if it was
/// one (destroyed or garbage).
fn mutex_unusable(op: &'static str, addr: usize, word: usize) -> bool {
    match mutex_state(word) {
        MutexState::Destroyed => report(KernelError::LockDestroyed { op, lock: addr }),
        MutexState::Garbage => report(KernelError::BadLock { op, lock: addr, word }),
        MutexState::Free { .. } | MutexState::Held { .. } => return false,
    }
    true
}

/// Try once to take a free mutex; the waiters bit is kept.
fn mutex_try_take(lock: &AtomicUsize, word: usize, me: usize) -> bool {
    matches!(mutex_state(word), MutexState::Free { .. })
        && lock.compare_exchange(word, word | me, Ordering::AcqRel, Ordering::Relaxed).is_ok()
}

/// The validation step of sleeping on a mutex, run under the queue lock:
/// set the waiters bit if the mutex is still held; false if it is not
/// (or is unusable), so the thread should look again instead of sleeping.
fn mutex_mark_waiting(lock: &AtomicUsize) -> bool {
    loop {
        let word = lock.load(Ordering::Acquire);
        match mutex_state(word) {
            MutexState::Held { waiters: true, .. } => return true,
            MutexState::Held { waiters: false, .. } => {
                if lock
                    .compare_exchange_weak(
                        word,
                        word | MUTEX_WAITERS,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    return true;
                }
            }
            _ => return false,
        }
    }
}

fn mutex_enter_word(lock: &AtomicUsize, addr: usize) {
    const OP: &str = "mutex_enter";
    let me = curthread();
    let mut spin = SpinWait::new();
    loop {
        let word = lock.load(Ordering::Acquire);
        if mutex_unusable(OP, addr, word) {
            return;
        }
        if mutex_try_take(lock, word, me) {
            return;
        }
        match mutex_state(word) {
            MutexState::Held { owner, .. } if owner == me => {
                report(KernelError::LockRecursive { op: OP, lock: addr });
                return;
            }
            MutexState::Held { waiters: false, .. } if spin.spin() => continue,
            MutexState::Held { .. } => {}
            // The CAS lost a race; look again.
            _ => continue,
        }
        // SAFETY: the key is the address of this lock word, which only
        // this module parks on; the validation closure neither panics nor
        // calls into parking_lot_core.
        unsafe {
            parking_lot_core::park(
                addr,
                || mutex_mark_waiting(lock),
                || {},
                |_, _| {},
                DEFAULT_PARK_TOKEN,
                None,
            );
        }
        spin.reset();
    }
}

fn mutex_exit_word(lock: &AtomicUsize, addr: usize) {
    const OP: &str = "mutex_exit";
    let me = curthread();
    loop {
        let word = lock.load(Ordering::Acquire);
        if mutex_unusable(OP, addr, word) {
            return;
        }
        match mutex_state(word) {
            MutexState::Held { owner, waiters: false } if owner == me => {
                if lock.compare_exchange(word, 0, Ordering::Release, Ordering::Relaxed).is_ok() {
                    return;
                }
                // A thread set the waiters bit; look again.
            }
            MutexState::Held { owner, waiters: true } if owner == me => {
                // While we own the mutex only sleepers change the word,
                // and they do so under the queue lock this callback runs
                // under; so the store cannot lose their bit.
                // SAFETY: the key is this lock's address, which only this
                // module parks on; the callback neither panics nor calls
                // into parking_lot_core.
                unsafe {
                    parking_lot_core::unpark_one(addr, |woken| {
                        let rest = if woken.have_more_threads { MUTEX_WAITERS } else { 0 };
                        lock.store(rest, Ordering::Release);
                        DEFAULT_UNPARK_TOKEN
                    });
                }
                return;
            }
            MutexState::Held { .. } => {
                report(KernelError::LockNotOwner { op: OP, lock: addr });
                return;
            }
            MutexState::Free { .. } | MutexState::Destroyed | MutexState::Garbage => {
                report(KernelError::LockNotHeld { op: OP, lock: addr });
                return;
            }
        }
    }
}

fn mutex_destroy_word(lock: &AtomicUsize, addr: usize) {
    const OP: &str = "mutex_destroy";
    let dead = curthread() | MUTEX_DEAD;
    loop {
        let word = lock.load(Ordering::Acquire);
        if mutex_unusable(OP, addr, word) {
            return;
        }
        match mutex_state(word) {
            MutexState::Free { waiters: false } => {
                if lock.compare_exchange(word, dead, Ordering::Release, Ordering::Relaxed).is_ok() {
                    unregister(addr);
                    return;
                }
            }
            MutexState::Held { owner, waiters: false } if owner == curthread() => {
                // The DDI wants an unheld mutex; illumos destroys one its
                // caller holds all the same, and so do we.
                report(KernelError::LockDestroyedHeld { op: OP, lock: addr });
                if lock.compare_exchange(word, dead, Ordering::Release, Ordering::Relaxed).is_ok() {
                    unregister(addr);
                }
                return;
            }
            _ => {
                report(KernelError::LockDestroyedHeld { op: OP, lock: addr });
                return;
            }
        }
    }
}

/// Initialize a mutex: unheld, adaptive. `name`, `type_` and `arg` are
/// accepted and ignored (every mutex is adaptive in a process).
/// Initializing a lock that was initialized and not destroyed is
/// reported; if it is held it is left alone.
///
/// # Safety
///
/// `mp` points to a `kmutex_t` that stays put until `mutex_destroy`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mutex_init(
    mp: *mut kmutex_t,
    name: *mut c_char,
    type_: kmutex_type_t,
    arg: *mut c_void,
) {
    const OP: &str = "mutex_init";
    let _ = (name, type_, arg);
    no_unwind(OP, (), || {
        // SAFETY: the caller vouches for `mp`.
        let Some(lock) = (unsafe { lock_word(OP, mp) }) else { return };
        let addr = mp.addr();
        let held = matches!(mutex_state(lock.load(Ordering::Acquire)), MutexState::Held { .. });
        if held {
            report(KernelError::LockReinitialized { op: OP, lock: addr });
            return;
        }
        lock.store(0, Ordering::Release);
        if !register(addr) {
            report(KernelError::LockReinitialized { op: OP, lock: addr });
        }
    })
}

/// Destroy a mutex. Destroying one that is held or waited for is
/// reported ([`KernelError::LockDestroyedHeld`]); one held by the caller
/// alone is destroyed anyway, as illumos does. Using it again before
/// `mutex_init` is reported.
///
/// # Safety
///
/// `mp` points to a `kmutex_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mutex_destroy(mp: *mut kmutex_t) {
    const OP: &str = "mutex_destroy";
    no_unwind(OP, (), || {
        // SAFETY: the caller vouches for `mp`.
        if let Some(lock) = unsafe { lock_word(OP, mp) } {
            mutex_destroy_word(lock, mp.addr());
        }
    })
}

/// Acquire a mutex, sleeping while another thread holds it. Entering a
/// mutex the caller holds is reported ([`KernelError::LockRecursive`])
/// and returns at once: illumos would panic, and waiting would hang.
///
/// # Safety
///
/// `mp` points to a `kmutex_t` (initialized, or zeroed) that stays put.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mutex_enter(mp: *mut kmutex_t) {
    const OP: &str = "mutex_enter";
    // SAFETY: the caller vouches for `mp`.
    if unsafe { quiet_word(mp) }.is_some_and(mutex_enter_fast) {
        return;
    }
    no_unwind(OP, (), || {
        // SAFETY: the caller vouches for `mp`.
        if let Some(lock) = unsafe { lock_word(OP, mp) } {
            mutex_enter_word(lock, mp.addr());
        }
    })
}

/// Release a mutex the caller holds, waking one waiter. Releasing a
/// mutex the caller does not hold is reported and changes nothing.
///
/// # Safety
///
/// `mp` points to a `kmutex_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mutex_exit(mp: *mut kmutex_t) {
    const OP: &str = "mutex_exit";
    // SAFETY: the caller vouches for `mp`.
    if unsafe { quiet_word(mp) }.is_some_and(mutex_exit_fast) {
        return;
    }
    no_unwind(OP, (), || {
        // SAFETY: the caller vouches for `mp`.
        if let Some(lock) = unsafe { lock_word(OP, mp) } {
            mutex_exit_word(lock, mp.addr());
        }
    })
}

/// Acquire a mutex if no thread holds it: 1 if acquired, else 0 (also
/// when the caller already holds it, as on illumos).
///
/// # Safety
///
/// `mp` points to a `kmutex_t` (initialized, or zeroed) that stays put.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mutex_tryenter(mp: *mut kmutex_t) -> c_int {
    const OP: &str = "mutex_tryenter";
    no_unwind(OP, 0, || {
        // SAFETY: the caller vouches for `mp`.
        let Some(lock) = (unsafe { lock_word(OP, mp) }) else { return 0 };
        let word = lock.load(Ordering::Acquire);
        if mutex_unusable(OP, mp.addr(), word) {
            return 0;
        }
        c_int::from(mutex_try_take(lock, word, curthread()))
    })
}

/// 1 if the calling thread holds the mutex, else 0.
///
/// # Safety
///
/// `mp` points to a `kmutex_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mutex_owned(mp: *mut kmutex_t) -> c_int {
    const OP: &str = "mutex_owned";
    no_unwind(OP, 0, || {
        // SAFETY: the caller vouches for `mp`.
        let Some(lock) = (unsafe { lock_word(OP, mp) }) else { return 0 };
        let state = mutex_state(lock.load(Ordering::Acquire));
        c_int::from(matches!(state, MutexState::Held { owner, .. } if owner == curthread()))
    })
}

// ---------------------------------------------------------------------
// Readers/writer locks
// ---------------------------------------------------------------------

/// What an rwlock word says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RwState {
    /// Unheld.
    Free,
    /// Held by `count` readers.
    Read { count: usize },
    /// Held by the writer `owner`.
    Write { owner: usize },
    /// Destroyed.
    Destroyed,
    /// Not an rwlock state.
    Garbage,
}

fn rw_state(word: usize) -> RwState {
    if word == RW_DOUBLE_LOCK {
        return RwState::Destroyed;
    }
    if word & RW_WRITE_LOCKED != 0 {
        let owner = word & RW_OWNER;
        return if is_thread(owner) { RwState::Write { owner } } else { RwState::Garbage };
    }
    match word >> RW_READ_LOCK.trailing_zeros() {
        0 if word == 0 => RwState::Free,
        0 => RwState::Garbage,
        count if count <= MAX_READERS => RwState::Read { count },
        _ => RwState::Garbage,
    }
}

/// Report an rwlock state no operation may proceed from; true if it was
/// one (destroyed or garbage).
fn rw_unusable(op: &'static str, addr: usize, word: usize) -> bool {
    match rw_state(word) {
        RwState::Destroyed => report(KernelError::LockDestroyed { op, lock: addr }),
        RwState::Garbage => report(KernelError::BadLock { op, lock: addr, word }),
        RwState::Free | RwState::Read { .. } | RwState::Write { .. } => return false,
    }
    true
}

/// How an rwlock is being entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RwMode {
    Writer,
    Reader,
    ReaderStarveWriter,
}

impl RwMode {
    /// The mode `rw` names, or `None` (reported).
    fn from_krw(op: &'static str, addr: usize, rw: krw_t) -> Option<Self> {
        match rw {
            RW_WRITER => Some(Self::Writer),
            RW_READER => Some(Self::Reader),
            RW_READER_STARVEWRITER => Some(Self::ReaderStarveWriter),
            krw_t(mode) => {
                report(KernelError::BadRwMode { op, lock: addr, mode });
                None
            }
        }
    }

    /// Whether a lock in state `word` keeps a thread entering in this
    /// mode out.
    fn blocked_by(self, word: usize) -> bool {
        let busy = match self {
            Self::Writer => RW_OWNER | RW_WRITE_LOCKED,
            Self::Reader => RW_WRITE_LOCKED | RW_WRITE_WANTED,
            Self::ReaderStarveWriter => RW_WRITE_LOCKED,
        };
        word & busy != 0
    }

    /// The word after thread `me` enters a lock in state `word`.
    fn entered(self, word: usize, me: usize) -> usize {
        match self {
            Self::Writer => word | me | RW_WRITE_LOCKED,
            Self::Reader | Self::ReaderStarveWriter => word + RW_READ_LOCK,
        }
    }
}

/// Run `f` on this thread's list of read holds; `None` if the list is
/// gone (the thread is exiting), when callers skip the bookkeeping.
fn with_read_holds<R>(f: impl FnOnce(&mut Vec<ReadHold>) -> R) -> Option<R> {
    READ_HOLDS.try_with(|holds| holds.try_borrow_mut().ok().map(|mut h| f(&mut h))).ok().flatten()
}

/// Whether this thread read-holds `lock`; `None` if it cannot tell.
fn holds_read(lock: usize) -> Option<bool> {
    with_read_holds(|holds| holds.iter().any(|h| h.lock == lock))
}

/// Note a read hold of `lock` by this thread.
fn note_read_hold(lock: usize) {
    with_read_holds(|holds| match holds.iter_mut().find(|h| h.lock == lock) {
        Some(hold) => hold.count += 1,
        None => holds.push(ReadHold { lock, count: 1 }),
    });
}

/// Forget one of the holds at `pos` of `holds` (the whole entry with its
/// last).
fn drop_hold(holds: &mut Vec<ReadHold>, pos: usize) {
    match holds.get_mut(pos) {
        Some(hold) if hold.count > 1 => hold.count -= 1,
        _ => {
            holds.swap_remove(pos);
        }
    }
}

/// Forget one read hold of `lock` by this thread.
fn forget_read_hold(lock: usize) {
    with_read_holds(|holds| {
        if let Some(pos) = holds.iter().position(|h| h.lock == lock) {
            drop_hold(holds, pos);
        }
    });
}

/// Try once to enter a lock in state `word`; records a read hold.
fn rw_try_take(lock: &AtomicUsize, addr: usize, word: usize, mode: RwMode, me: usize) -> bool {
    if mode.blocked_by(word) {
        return false;
    }
    let entered = mode.entered(word, me);
    if lock.compare_exchange(word, entered, Ordering::AcqRel, Ordering::Relaxed).is_err() {
        return false;
    }
    if mode != RwMode::Writer {
        note_read_hold(addr);
    }
    true
}

/// The validation step of sleeping on an rwlock, run under the queue
/// lock: set the waiters bit (and write-wanted, for a writer) if the
/// lock still keeps `mode` out; false if it does not (or is unusable).
fn rw_mark_waiting(lock: &AtomicUsize, mode: RwMode) -> bool {
    let want = match mode {
        RwMode::Writer => RW_HAS_WAITERS | RW_WRITE_WANTED,
        RwMode::Reader | RwMode::ReaderStarveWriter => RW_HAS_WAITERS,
    };
    loop {
        let word = lock.load(Ordering::Acquire);
        let usable = matches!(rw_state(word), RwState::Read { .. } | RwState::Write { .. });
        if !usable || !mode.blocked_by(word) {
            return false;
        }
        if word & want == want {
            return true;
        }
        if lock
            .compare_exchange_weak(word, word | want, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            return true;
        }
    }
}

/// Wake every thread waiting on the rwlock at `addr`, after a release
/// that cleared its word.
fn rw_wake_all(addr: usize) {
    // SAFETY: the key is this lock's address, which only this module
    // parks on.
    unsafe {
        parking_lot_core::unpark_all(addr, DEFAULT_UNPARK_TOKEN);
    }
}

/// Flag bits of an rwlock word (waiters, write wanted, write locked).
const RW_FLAGS: usize = RW_HAS_WAITERS | RW_WRITE_WANTED | RW_WRITE_LOCKED;

/// The common read entry, in one look at this thread's holds: a lock this
/// thread does not read-hold, free or read-held with no flag set (no
/// writer in or waiting, nobody asleep), with a sane count. True if it
/// was entered (and the hold recorded); false leaves every other state to
/// the checked path.
fn rw_read_fast(lock: &AtomicUsize, addr: usize) -> bool {
    with_read_holds(|holds| {
        if holds.iter().any(|h| h.lock == addr) {
            return false;
        }
        let word = lock.load(Ordering::Acquire);
        if word & RW_FLAGS != 0 || word / RW_READ_LOCK >= MAX_READERS {
            return false;
        }
        let entered = word + RW_READ_LOCK;
        if lock.compare_exchange(word, entered, Ordering::AcqRel, Ordering::Relaxed).is_err() {
            return false;
        }
        holds.push(ReadHold { lock: addr, count: 1 });
        true
    })
    .unwrap_or(false)
}

/// The common read release: a lock this thread read-holds, with no flag
/// set (so nobody to wake). True if it was released (and the hold
/// forgotten); false leaves every other state to the checked path.
fn rw_unread_fast(lock: &AtomicUsize, addr: usize) -> bool {
    with_read_holds(|holds| {
        let Some(pos) = holds.iter().position(|h| h.lock == addr) else {
            return false;
        };
        let word = lock.load(Ordering::Acquire);
        if word & RW_FLAGS != 0 || word < RW_READ_LOCK {
            return false;
        }
        let left = word - RW_READ_LOCK;
        if lock.compare_exchange(word, left, Ordering::Release, Ordering::Relaxed).is_err() {
            return false;
        }
        drop_hold(holds, pos);
        true
    })
    .unwrap_or(false)
}

/// The common write entry: a free lock (the word is exactly 0) that this
/// thread does not read-hold (that would be a recursive entry, which the
/// checked path reports). True if it was entered.
fn rw_write_fast(lock: &AtomicUsize, addr: usize) -> bool {
    let Some(me) = known_thread() else { return false };
    with_read_holds(|holds| {
        !holds.iter().any(|h| h.lock == addr)
            && lock
                .compare_exchange(0, me | RW_WRITE_LOCKED, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    })
    .unwrap_or(false)
}

/// The common write release: the word says this thread write-holds the
/// lock and nobody waits. True if it was released.
fn rw_unwrite_fast(lock: &AtomicUsize) -> bool {
    // A look first: a read release pays for neither the thread id nor a
    // failed swap.
    lock.load(Ordering::Relaxed) & RW_WRITE_LOCKED != 0
        && known_thread().is_some_and(|me| {
            let held = me | RW_WRITE_LOCKED;
            lock.compare_exchange(held, 0, Ordering::Release, Ordering::Relaxed).is_ok()
        })
}

fn rw_enter_word(lock: &AtomicUsize, addr: usize, mut mode: RwMode) {
    const OP: &str = "rw_enter";
    let me = curthread();
    if holds_read(addr) == Some(true) {
        report(KernelError::LockRecursive { op: OP, lock: addr });
        if mode == RwMode::Writer {
            return;
        }
        // Granted without regard to waiting writers, which wait for us.
        mode = RwMode::ReaderStarveWriter;
    }
    let mut spin = SpinWait::new();
    loop {
        let word = lock.load(Ordering::Acquire);
        if rw_unusable(OP, addr, word) {
            return;
        }
        if matches!(rw_state(word), RwState::Write { owner } if owner == me) {
            report(KernelError::LockRecursive { op: OP, lock: addr });
            return;
        }
        if !mode.blocked_by(word) {
            if rw_try_take(lock, addr, word, mode, me) {
                return;
            }
            continue;
        }
        if spin.spin() {
            continue;
        }
        // SAFETY: the key is the address of this lock word, which only
        // this module parks on; the validation closure neither panics nor
        // calls into parking_lot_core.
        unsafe {
            parking_lot_core::park(
                addr,
                || rw_mark_waiting(lock, mode),
                || {},
                |_, _| {},
                DEFAULT_PARK_TOKEN,
                None,
            );
        }
        spin.reset();
    }
}

fn rw_exit_word(lock: &AtomicUsize, addr: usize) {
    const OP: &str = "rw_exit";
    let me = curthread();
    // Whether this thread read-holds the lock cannot change under us.
    let reading = holds_read(addr);
    loop {
        let word = lock.load(Ordering::Acquire);
        if rw_unusable(OP, addr, word) {
            return;
        }
        let released = match rw_state(word) {
            RwState::Write { owner } if owner == me => 0,
            RwState::Write { .. } => {
                report(KernelError::LockNotOwner { op: OP, lock: addr });
                return;
            }
            RwState::Read { count } if reading != Some(false) => {
                if count == 1 {
                    0
                } else {
                    word - RW_READ_LOCK
                }
            }
            RwState::Read { .. } | RwState::Free | RwState::Destroyed | RwState::Garbage => {
                report(KernelError::LockNotHeld { op: OP, lock: addr });
                return;
            }
        };
        if lock.compare_exchange(word, released, Ordering::Release, Ordering::Relaxed).is_ok() {
            if word & RW_WRITE_LOCKED == 0 {
                forget_read_hold(addr);
            }
            if released == 0 && word & RW_HAS_WAITERS != 0 {
                rw_wake_all(addr);
            }
            return;
        }
    }
}

fn rw_downgrade_word(lock: &AtomicUsize, addr: usize) {
    const OP: &str = "rw_downgrade";
    let word = lock.load(Ordering::Acquire);
    if rw_unusable(OP, addr, word) {
        return;
    }
    match rw_state(word) {
        RwState::Write { owner } if owner == curthread() => {
            // Only sleepers touch the word while we hold it, and only to
            // add bits, which this drops and answers by waking them all.
            let old = lock.swap(RW_READ_LOCK, Ordering::Release);
            note_read_hold(addr);
            if old & RW_HAS_WAITERS != 0 {
                rw_wake_all(addr);
            }
        }
        RwState::Write { .. } => report(KernelError::LockNotOwner { op: OP, lock: addr }),
        _ => report(KernelError::LockNotHeld { op: OP, lock: addr }),
    }
}

fn rw_tryupgrade_word(lock: &AtomicUsize, addr: usize) -> bool {
    const OP: &str = "rw_tryupgrade";
    let me = curthread();
    if holds_read(addr) == Some(false) {
        // illumos ASSERTs that the lock is read-held.
        report(KernelError::LockNotHeld { op: OP, lock: addr });
        return false;
    }
    loop {
        let word = lock.load(Ordering::Acquire);
        // Only when we are the one reader and no writer is waiting.
        if word & !RW_HAS_WAITERS != RW_READ_LOCK {
            return false;
        }
        let upgraded = (word & RW_HAS_WAITERS) | me | RW_WRITE_LOCKED;
        if lock.compare_exchange(word, upgraded, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            forget_read_hold(addr);
            return true;
        }
    }
}

fn rw_destroy_word(lock: &AtomicUsize, addr: usize) {
    const OP: &str = "rw_destroy";
    loop {
        let word = lock.load(Ordering::Acquire);
        if rw_unusable(OP, addr, word) {
            return;
        }
        if rw_state(word) != RwState::Free {
            report(KernelError::LockDestroyedHeld { op: OP, lock: addr });
            return;
        }
        if lock.compare_exchange(word, RW_DOUBLE_LOCK, Ordering::Release, Ordering::Relaxed).is_ok()
        {
            unregister(addr);
            return;
        }
    }
}

/// Initialize an rwlock: unheld. `name`, `type_` and `arg` are accepted
/// and ignored. Initializing a lock that was initialized and not
/// destroyed is reported; if it is held it is left alone.
///
/// # Safety
///
/// `rwlp` points to a `krwlock_t` that stays put until `rw_destroy`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_init(
    rwlp: *mut krwlock_t,
    name: *mut c_char,
    type_: krw_type_t,
    arg: *mut c_void,
) {
    const OP: &str = "rw_init";
    let _ = (name, type_, arg);
    no_unwind(OP, (), || {
        // SAFETY: the caller vouches for `rwlp`.
        let Some(lock) = (unsafe { lock_word(OP, rwlp) }) else { return };
        let addr = rwlp.addr();
        let state = rw_state(lock.load(Ordering::Acquire));
        let held = matches!(state, RwState::Read { .. } | RwState::Write { .. });
        if held {
            report(KernelError::LockReinitialized { op: OP, lock: addr });
            return;
        }
        lock.store(0, Ordering::Release);
        if !register(addr) {
            report(KernelError::LockReinitialized { op: OP, lock: addr });
        }
    })
}

/// Destroy an rwlock. Destroying one that is held or waited for is
/// reported and leaves it alone (illumos panics: "lock still active").
///
/// # Safety
///
/// `rwlp` points to a `krwlock_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_destroy(rwlp: *mut krwlock_t) {
    const OP: &str = "rw_destroy";
    no_unwind(OP, (), || {
        // SAFETY: the caller vouches for `rwlp`.
        if let Some(lock) = unsafe { lock_word(OP, rwlp) } {
            rw_destroy_word(lock, rwlp.addr());
        }
    })
}

/// Acquire an rwlock as reader or writer, sleeping until it is
/// available. `RW_READER` also waits while a writer is waiting;
/// `RW_READER_STARVEWRITER` only while a writer holds it. Recursive
/// entry is reported ([`KernelError::LockRecursive`]); a recursive read
/// entry is granted, anything else returns without the lock.
///
/// # Safety
///
/// `rwlp` points to a `krwlock_t` (initialized, or zeroed) that stays put.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_enter(rwlp: *mut krwlock_t, enter_type: krw_t) {
    const OP: &str = "rw_enter";
    let reader = enter_type == RW_READER || enter_type == RW_READER_STARVEWRITER;
    // SAFETY: the caller vouches for `rwlp`.
    if let Some(l) = unsafe { quiet_word(rwlp) } {
        let entered = if reader {
            rw_read_fast(l, rwlp.addr())
        } else {
            enter_type == RW_WRITER && rw_write_fast(l, rwlp.addr())
        };
        if entered {
            return;
        }
    }
    no_unwind(OP, (), || {
        // SAFETY: the caller vouches for `rwlp`.
        let Some(lock) = (unsafe { lock_word(OP, rwlp) }) else { return };
        if let Some(mode) = RwMode::from_krw(OP, rwlp.addr(), enter_type) {
            rw_enter_word(lock, rwlp.addr(), mode);
        }
    })
}

/// Release the caller's hold of an rwlock (read or write); the final
/// release wakes every waiter. Releasing a lock the caller does not hold
/// is reported and changes nothing.
///
/// # Safety
///
/// `rwlp` points to a `krwlock_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_exit(rwlp: *mut krwlock_t) {
    const OP: &str = "rw_exit";
    // SAFETY: the caller vouches for `rwlp`.
    if unsafe { quiet_word(rwlp) }
        .is_some_and(|l| rw_unwrite_fast(l) || rw_unread_fast(l, rwlp.addr()))
    {
        return;
    }
    no_unwind(OP, (), || {
        // SAFETY: the caller vouches for `rwlp`.
        if let Some(lock) = unsafe { lock_word(OP, rwlp) } {
            rw_exit_word(lock, rwlp.addr());
        }
    })
}

/// [`rw_enter`] without sleeping: 1 if the lock was acquired, else 0
/// (also when the caller already holds it as writer).
///
/// # Safety
///
/// `rwlp` points to a `krwlock_t` (initialized, or zeroed) that stays put.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_tryenter(rwlp: *mut krwlock_t, enter_type: krw_t) -> c_int {
    const OP: &str = "rw_tryenter";
    no_unwind(OP, 0, || {
        // SAFETY: the caller vouches for `rwlp`.
        let Some(lock) = (unsafe { lock_word(OP, rwlp) }) else { return 0 };
        let addr = rwlp.addr();
        let Some(mode) = RwMode::from_krw(OP, addr, enter_type) else { return 0 };
        let me = curthread();
        loop {
            let word = lock.load(Ordering::Acquire);
            if rw_unusable(OP, addr, word) || mode.blocked_by(word) {
                return 0;
            }
            if rw_try_take(lock, addr, word, mode, me) {
                return 1;
            }
        }
    })
}

/// Turn the caller's write hold into a read hold, waking waiting
/// threads (readers may then enter). Reported if the caller is not the
/// writer.
///
/// # Safety
///
/// `rwlp` points to a `krwlock_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_downgrade(rwlp: *mut krwlock_t) {
    const OP: &str = "rw_downgrade";
    no_unwind(OP, (), || {
        // SAFETY: the caller vouches for `rwlp`.
        if let Some(lock) = unsafe { lock_word(OP, rwlp) } {
            rw_downgrade_word(lock, rwlp.addr());
        }
    })
}

/// Turn the caller's read hold into a write hold if it is the only
/// reader and no writer is waiting: 1 on success; 0 otherwise, with the
/// read hold kept. Reported (and 0) if the caller holds no read hold.
///
/// # Safety
///
/// `rwlp` points to a `krwlock_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_tryupgrade(rwlp: *mut krwlock_t) -> c_int {
    const OP: &str = "rw_tryupgrade";
    no_unwind(OP, 0, || {
        // SAFETY: the caller vouches for `rwlp`.
        let Some(lock) = (unsafe { lock_word(OP, rwlp) }) else { return 0 };
        c_int::from(rw_tryupgrade_word(lock, rwlp.addr()))
    })
}

/// 1 if the rwlock is held by readers (any threads, as on illumos),
/// else 0.
///
/// # Safety
///
/// `rwlp` points to a `krwlock_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_read_held(rwlp: *mut krwlock_t) -> c_int {
    const OP: &str = "rw_read_held";
    no_unwind(OP, 0, || {
        // SAFETY: the caller vouches for `rwlp`.
        let Some(lock) = (unsafe { lock_word(OP, rwlp) }) else { return 0 };
        c_int::from(matches!(rw_state(lock.load(Ordering::Acquire)), RwState::Read { .. }))
    })
}

/// 1 if the calling thread holds the rwlock as writer, else 0.
///
/// # Safety
///
/// `rwlp` points to a `krwlock_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_write_held(rwlp: *mut krwlock_t) -> c_int {
    const OP: &str = "rw_write_held";
    no_unwind(OP, 0, || {
        // SAFETY: the caller vouches for `rwlp`.
        let Some(lock) = (unsafe { lock_word(OP, rwlp) }) else { return 0 };
        let state = rw_state(lock.load(Ordering::Acquire));
        c_int::from(matches!(state, RwState::Write { owner } if owner == curthread()))
    })
}

// ---------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------

/// Nanoseconds since the process's first call, from the monotonic clock:
/// never decreases, never adjusted. (illumos counts from boot; callers
/// only compare or subtract values.)
///
/// # Safety
///
/// Always safe to call; `unsafe` because it is the C ABI entry point.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gethrtime() -> hrtime_t {
    no_unwind("gethrtime", 0, || {
        hrtime_t::try_from(HRTIME_ORIGIN.elapsed().as_nanos()).unwrap_or(hrtime_t::MAX)
    })
}
