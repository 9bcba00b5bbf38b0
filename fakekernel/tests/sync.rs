//! Kernel locks and the clock, called through the prototypes
//! `illumos-sys-hdrs` declares: mutual exclusion under contention,
//! reader concurrency and writer exclusion, the try/downgrade/upgrade
//! calls, misuse reported instead of panicking or hanging, and lock
//! leaks.

use fakekernel::KernelError;
use illumos_sys_hdrs::{
    KM_SLEEP, MUTEX_DRIVER, RW_DRIVER, RW_READER, RW_READER_STARVEWRITER, RW_WRITER, gethrtime,
    kmem_alloc, kmem_free, kmem_zalloc, kmutex_t, krw_t, krwlock_t, mutex_destroy, mutex_enter,
    mutex_exit, mutex_init, mutex_owned, mutex_tryenter, rw_destroy, rw_downgrade, rw_enter,
    rw_exit, rw_init, rw_read_held, rw_tryenter, rw_tryupgrade, rw_write_held,
};
use std::cell::UnsafeCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::null_mut;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// Threads in the contention tests.
const THREADS: usize = 4;
/// Lock round trips per thread in the contention tests.
const ROUNDS: usize = 2_000;
/// Most 1 ms polls a test waits for another thread to reach a state.
const MAX_POLLS: usize = 10_000;

/// A lock word on the heap that threads share by reference, with data
/// it protects.
struct Shared<L, T> {
    lock: UnsafeCell<L>,
    data: UnsafeCell<T>,
}

// SAFETY: the lock word is only touched through the kernel lock calls,
// which access it atomically; `data` only under the lock, as each test
// arranges.
unsafe impl<L, T: Send> Sync for Shared<L, T> {}

// SAFETY: as for Sync; a lock word may be used from any thread.
unsafe impl<L, T: Send> Send for Shared<L, T> {}

impl<T> Shared<kmutex_t, T> {
    /// An initialized mutex guarding `data`.
    fn mutex(data: T) -> Arc<Self> {
        let shared = Arc::new(Self {
            lock: UnsafeCell::new(kmutex_t { _opaque: [null_mut()] }),
            data: data.into(),
        });
        // SAFETY: the word is on the heap (it never moves) and fresh.
        unsafe { mutex_init(shared.m(), null_mut(), MUTEX_DRIVER, null_mut()) };
        shared
    }

    fn m(&self) -> *mut kmutex_t {
        self.lock.get()
    }
}

impl<T> Shared<krwlock_t, T> {
    /// An initialized rwlock guarding `data`.
    fn rwlock(data: T) -> Arc<Self> {
        let shared = Arc::new(Self {
            lock: UnsafeCell::new(krwlock_t { _opaque: [null_mut()] }),
            data: data.into(),
        });
        // SAFETY: the word is on the heap (it never moves) and fresh.
        unsafe { rw_init(shared.rw(), null_mut(), RW_DRIVER, null_mut()) };
        shared
    }

    fn rw(&self) -> *mut krwlock_t {
        self.lock.get()
    }
}

/// Poll `cond` every millisecond until it holds; false if it never did.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..MAX_POLLS {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(1));
    }
    false
}

/// The message of a caught panic.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_default()
}

/// Run `f` on another thread while this one waits; `f`'s errors land
/// in that thread's (unscoped) account, not the test's scope.
fn on_other_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    thread::scope(|s| s.spawn(f).join().expect("helper thread panicked"))
}

/// A thread that holds a lock until told to let go.
struct Holder {
    release: mpsc::Sender<()>,
    handle: thread::JoinHandle<()>,
}

impl Holder {
    /// Spawn a thread that runs `take`, reports back, waits for the
    /// word to let go, then runs `give`.
    fn spawn(take: impl FnOnce() + Send + 'static, give: impl FnOnce() + Send + 'static) -> Self {
        let (taken_tx, taken_rx) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let handle = thread::spawn(move || {
            take();
            let _ = taken_tx.send(());
            let _ = release_rx.recv();
            give();
        });
        taken_rx.recv().expect("holder thread died before taking the lock");
        Self { release, handle }
    }

    fn release(self) {
        let _ = self.release.send(());
        self.handle.join().expect("holder thread panicked");
    }
}

// ---------------------------------------------------------------------
// Mutexes
// ---------------------------------------------------------------------

#[test]
fn a_mutex_excludes_every_other_thread_under_contention() {
    let k = fakekernel::scope();
    let shared = Shared::mutex(0usize);
    let inside = AtomicBool::new(false);
    let overlaps = AtomicUsize::new(0);
    thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for round in 0..ROUNDS {
                    // SAFETY: the mutex is initialized and outlives the
                    // threads; `data` is only touched while it is held.
                    unsafe {
                        mutex_enter(shared.m());
                        if inside.swap(true, Ordering::Relaxed) {
                            overlaps.fetch_add(1, Ordering::Relaxed);
                        }
                        assert_eq!(mutex_owned(shared.m()), 1);
                        let seen = *shared.data.get();
                        if round % 16 == 0 {
                            // Hold the lock across a yield so that others
                            // go to sleep on it, not just spin.
                            thread::yield_now();
                        }
                        *shared.data.get() = seen + 1;
                        inside.store(false, Ordering::Relaxed);
                        mutex_exit(shared.m());
                    }
                }
            });
        }
    });
    assert_eq!(overlaps.load(Ordering::Relaxed), 0);
    // SAFETY: every thread has finished; the mutex is unheld.
    unsafe {
        assert_eq!(*shared.data.get(), THREADS * ROUNDS);
        assert_eq!(mutex_owned(shared.m()), 0);
        mutex_destroy(shared.m());
    }
    k.assert_clean();
}

#[test]
fn a_thread_sleeping_on_a_mutex_gets_it_when_the_owner_exits() {
    let k = fakekernel::scope();
    let shared = Shared::mutex(0u32);
    let got_it = AtomicBool::new(false);
    // SAFETY: the mutex is initialized; `data` is only touched under it.
    unsafe { mutex_enter(shared.m()) };
    thread::scope(|s| {
        let waiter = s.spawn(|| {
            // SAFETY: as above.
            unsafe {
                mutex_enter(shared.m());
                *shared.data.get() += 1;
                got_it.store(true, Ordering::Release);
                mutex_exit(shared.m());
            }
        });
        thread::sleep(Duration::from_millis(20));
        assert!(!got_it.load(Ordering::Acquire), "entered a mutex another thread holds");
        // SAFETY: this thread holds the mutex.
        unsafe {
            *shared.data.get() += 10;
            mutex_exit(shared.m());
        }
        waiter.join().expect("waiter panicked");
    });
    assert!(got_it.load(Ordering::Acquire));
    // SAFETY: unheld and no longer shared with a thread.
    unsafe {
        assert_eq!(*shared.data.get(), 11);
        mutex_destroy(shared.m());
    }
    k.assert_clean();
}

#[test]
fn mutex_owned_and_tryenter_see_which_thread_holds_it() {
    let k = fakekernel::scope();
    let shared = Shared::mutex(());
    let m = shared.m() as usize;
    let m = move || m as *mut kmutex_t;
    // SAFETY: the mutex is initialized and outlives every thread here.
    unsafe {
        assert_eq!(mutex_owned(m()), 0);
        assert_eq!(mutex_tryenter(m()), 1);
        assert_eq!(mutex_owned(m()), 1);
        // Held by this thread: tryenter fails without complaint.
        assert_eq!(mutex_tryenter(m()), 0);
        assert_eq!(on_other_thread(|| (mutex_owned(m()), mutex_tryenter(m()))), (0, 0));
        mutex_exit(m());
        assert_eq!(mutex_owned(m()), 0);

        // Held by another thread: not ours, and tryenter fails.
        let holder = Holder::spawn(move || mutex_enter(m()), move || mutex_exit(m()));
        assert_eq!(mutex_owned(m()), 0);
        assert_eq!(mutex_tryenter(m()), 0);
        holder.release();
        assert_eq!(mutex_tryenter(m()), 1);
        mutex_exit(m());
        mutex_destroy(m());
    }
    k.assert_clean();
}

#[test]
fn a_mutex_in_zeroed_memory_works_without_mutex_init() {
    let k = fakekernel::scope();
    // SAFETY: a zeroed kmutex_t is an unheld adaptive mutex; the buffer
    // is freed with its size after the lock is destroyed.
    unsafe {
        let m = kmem_zalloc(size_of::<kmutex_t>(), KM_SLEEP).cast::<kmutex_t>();
        mutex_enter(m);
        assert_eq!(mutex_owned(m), 1);
        mutex_exit(m);
        assert_eq!(k.live_locks(), 0);
        mutex_destroy(m);
        kmem_free(m.cast(), size_of::<kmutex_t>());
    }
    k.assert_clean();
}

#[test]
fn mutex_misuse_is_reported_instead_of_panicking_or_hanging() {
    let k = fakekernel::scope();
    let shared = Shared::mutex(());
    let m = shared.m() as usize;
    let m = move || m as *mut kmutex_t;
    let lock = m() as usize;
    // SAFETY: the mutex is initialized and outlives every thread here;
    // each misuse is one the fake refuses before doing harm.
    unsafe {
        mutex_exit(m());
        assert_eq!(k.take_errors(), vec![KernelError::LockNotHeld { op: "mutex_exit", lock }]);

        // Recursive entry: reported, returns at once, still held once.
        mutex_enter(m());
        mutex_enter(m());
        assert_eq!(k.take_errors(), vec![KernelError::LockRecursive { op: "mutex_enter", lock }]);
        assert_eq!(mutex_owned(m()), 1);
        mutex_exit(m());
        assert_eq!(mutex_owned(m()), 0);
        assert!(k.errors().is_empty());

        // Another thread's mutex: neither released nor destroyed.
        let holder = Holder::spawn(move || mutex_enter(m()), move || mutex_exit(m()));
        mutex_exit(m());
        mutex_destroy(m());
        assert_eq!(
            k.take_errors(),
            vec![
                KernelError::LockNotOwner { op: "mutex_exit", lock },
                KernelError::LockDestroyedHeld { op: "mutex_destroy", lock },
            ]
        );
        holder.release();

        // Initializing twice.
        mutex_init(m(), null_mut(), MUTEX_DRIVER, null_mut());
        assert_eq!(
            k.take_errors(),
            vec![KernelError::LockReinitialized { op: "mutex_init", lock }]
        );

        // Destroying it while we hold it: reported, and destroyed as
        // illumos does; then every use is refused until mutex_init.
        mutex_enter(m());
        mutex_destroy(m());
        assert_eq!(k.live_locks(), 0);
        mutex_enter(m());
        assert_eq!(mutex_tryenter(m()), 0);
        mutex_exit(m());
        mutex_destroy(m());
        assert_eq!(
            k.take_errors(),
            vec![
                KernelError::LockDestroyedHeld { op: "mutex_destroy", lock },
                KernelError::LockDestroyed { op: "mutex_enter", lock },
                KernelError::LockDestroyed { op: "mutex_tryenter", lock },
                KernelError::LockDestroyed { op: "mutex_exit", lock },
                KernelError::LockDestroyed { op: "mutex_destroy", lock },
            ]
        );
        mutex_init(m(), null_mut(), MUTEX_DRIVER, null_mut());
        mutex_enter(m());
        mutex_exit(m());
        mutex_destroy(m());
    }
    k.assert_clean();
}

#[test]
fn a_garbage_or_null_lock_is_reported_not_waited_on() {
    let k = fakekernel::scope();
    // SAFETY: the buffer holds kmem's fill pattern, which the fake
    // recognises as no lock state and does not modify; NULL is refused.
    unsafe {
        let buf = kmem_alloc(16, KM_SLEEP);
        let word = buf.cast::<usize>().read();
        mutex_enter(buf.cast());
        rw_enter(buf.cast(), RW_READER);
        mutex_enter(null_mut());
        rw_exit(buf.cast::<u8>().add(4).cast());
        let addr = buf.addr();
        assert_eq!(
            k.take_errors(),
            vec![
                KernelError::BadLock { op: "mutex_enter", lock: addr, word },
                KernelError::BadLock { op: "rw_enter", lock: addr, word },
                KernelError::BadLockAddress { op: "mutex_enter", lock: 0 },
                KernelError::BadLockAddress { op: "rw_exit", lock: addr + 4 },
            ]
        );
        kmem_free(buf, 16);
    }
    k.assert_clean();
}

#[test]
fn a_lock_never_destroyed_is_a_leak_of_the_scope_that_made_it() {
    let k = fakekernel::scope();
    let m = Shared::mutex(());
    let rw = Shared::rwlock(());
    assert_eq!(k.live_locks(), 2);
    let caught = catch_unwind(AssertUnwindSafe(|| k.assert_clean()));
    let msg = panic_message(&*caught.expect_err("assert_clean passed with live locks"));
    assert!(msg.contains("leaked: 2 locks initialized and never destroyed"), "{msg}");

    // Destroying on another thread credits the scope that initialized.
    let (mp, rwp) = (m.m() as usize, rw.rw() as usize);
    // SAFETY: both locks are initialized and unheld.
    on_other_thread(move || unsafe {
        mutex_destroy(mp as *mut kmutex_t);
        rw_destroy(rwp as *mut krwlock_t);
    });
    assert_eq!(k.live_locks(), 0);
    k.assert_clean();
}

// ---------------------------------------------------------------------
// Readers/writer locks
// ---------------------------------------------------------------------

#[test]
fn readers_share_an_rwlock_and_writers_exclude_them() {
    let k = fakekernel::scope();
    let shared = Shared::rwlock(());
    let rw = shared.rw() as usize;
    let rw = move || rw as *mut krwlock_t;
    // SAFETY: the lock is initialized and outlives every thread here.
    unsafe {
        rw_enter(rw(), RW_READER);
        assert_eq!(rw_read_held(rw()), 1);
        assert_eq!(rw_write_held(rw()), 0);
        // Other readers get in at once; a writer does not.
        let others = on_other_thread(|| {
            thread::scope(|s| {
                let readers: Vec<_> = (0..THREADS)
                    .map(|_| {
                        s.spawn(move || {
                            let got = rw_tryenter(rw(), RW_READER);
                            let held = rw_read_held(rw());
                            if got == 1 {
                                rw_exit(rw());
                            }
                            (got, held)
                        })
                    })
                    .collect();
                readers.into_iter().map(|r| r.join().expect("reader panicked")).collect::<Vec<_>>()
            })
        });
        assert_eq!(others, vec![(1, 1); THREADS]);
        assert_eq!(on_other_thread(|| rw_tryenter(rw(), RW_WRITER)), 0);
        rw_exit(rw());
        assert_eq!(rw_read_held(rw()), 0);

        // Write-held: nobody else gets in, in either mode.
        rw_enter(rw(), RW_WRITER);
        assert_eq!(rw_write_held(rw()), 1);
        assert_eq!(rw_read_held(rw()), 0);
        assert_eq!(
            on_other_thread(|| (
                rw_write_held(rw()),
                rw_tryenter(rw(), RW_READER),
                rw_tryenter(rw(), RW_READER_STARVEWRITER),
                rw_tryenter(rw(), RW_WRITER)
            )),
            (0, 0, 0, 0)
        );
        rw_exit(rw());
        assert_eq!(rw_write_held(rw()), 0);
        rw_destroy(rw());
    }
    k.assert_clean();
}

#[test]
fn many_readers_hold_an_rwlock_at_once() {
    let k = fakekernel::scope();
    let shared = Shared::rwlock(());
    let inside = AtomicUsize::new(0);
    let all_inside = thread::scope(|s| {
        let readers: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    // SAFETY: the lock is initialized and outlives the
                    // threads.
                    unsafe {
                        rw_enter(shared.rw(), RW_READER);
                        inside.fetch_add(1, Ordering::SeqCst);
                        // Every reader waits, holding the lock, until all
                        // are inside; with exclusive readers none would.
                        let all = eventually(|| inside.load(Ordering::SeqCst) == THREADS);
                        rw_exit(shared.rw());
                        all
                    }
                })
            })
            .collect();
        readers.into_iter().all(|r| r.join().expect("reader panicked"))
    });
    assert!(all_inside, "readers did not hold the lock at the same time");
    // SAFETY: every thread has exited the lock.
    unsafe { rw_destroy(shared.rw()) };
    k.assert_clean();
}

#[test]
fn writers_exclude_readers_and_each_other_under_contention() {
    let k = fakekernel::scope();
    // Two halves a writer changes together; a reader must never see them
    // differ.
    let shared = Shared::rwlock((0usize, 0usize));
    let writer_in = AtomicBool::new(false);
    let readers_in = AtomicUsize::new(0);
    let violations = AtomicUsize::new(0);
    let torn_reads = AtomicUsize::new(0);
    thread::scope(|s| {
        for t in 0..THREADS {
            let (shared, writer_in, readers_in, violations, torn_reads) =
                (&shared, &writer_in, &readers_in, &violations, &torn_reads);
            s.spawn(move || {
                for round in 0..ROUNDS {
                    // SAFETY: the lock is initialized and outlives the
                    // threads; `data` is written only under the write
                    // lock and read only under a read lock.
                    unsafe {
                        if t % 2 == 0 {
                            rw_enter(shared.rw(), RW_WRITER);
                            if writer_in.swap(true, Ordering::Relaxed)
                                || readers_in.load(Ordering::Relaxed) != 0
                            {
                                violations.fetch_add(1, Ordering::Relaxed);
                            }
                            let data = &mut *shared.data.get();
                            data.0 += 1;
                            if round % 16 == 0 {
                                thread::yield_now();
                            }
                            data.1 += 1;
                            writer_in.store(false, Ordering::Relaxed);
                            rw_exit(shared.rw());
                        } else {
                            let mode =
                                if round % 2 == 0 { RW_READER } else { RW_READER_STARVEWRITER };
                            rw_enter(shared.rw(), mode);
                            readers_in.fetch_add(1, Ordering::Relaxed);
                            if writer_in.load(Ordering::Relaxed) {
                                violations.fetch_add(1, Ordering::Relaxed);
                            }
                            let data = &*shared.data.get();
                            if data.0 != data.1 {
                                torn_reads.fetch_add(1, Ordering::Relaxed);
                            }
                            readers_in.fetch_sub(1, Ordering::Relaxed);
                            rw_exit(shared.rw());
                        }
                    }
                }
            });
        }
    });
    assert_eq!(violations.load(Ordering::Relaxed), 0);
    assert_eq!(torn_reads.load(Ordering::Relaxed), 0);
    let writers = THREADS.div_ceil(2);
    // SAFETY: every thread has finished.
    unsafe {
        assert_eq!(*shared.data.get(), (writers * ROUNDS, writers * ROUNDS));
        rw_destroy(shared.rw());
    }
    k.assert_clean();
}

#[test]
fn a_waiting_writer_holds_off_rw_reader_but_not_starvewriter() {
    let k = fakekernel::scope();
    let shared = Shared::rwlock(());
    let rw = shared.rw() as usize;
    let rw = move || rw as *mut krwlock_t;
    // SAFETY: the lock is initialized and outlives every thread here.
    unsafe {
        rw_enter(rw(), RW_READER);
        thread::scope(|s| {
            let writer = s.spawn(move || {
                rw_enter(rw(), RW_WRITER);
                let held = rw_write_held(rw());
                rw_exit(rw());
                held
            });
            // Once the writer is waiting, a new RW_READER may not enter
            // (tryenter, so that a failure here cannot hang the test).
            let writer_waits = eventually(|| {
                if rw_tryenter(rw(), RW_READER) == 1 {
                    rw_exit(rw());
                    false
                } else {
                    true
                }
            });
            assert!(writer_waits, "RW_READER kept getting in past a waiting writer");
            assert_eq!(rw_tryenter(rw(), RW_READER_STARVEWRITER), 1);
            rw_exit(rw());
            assert!(!writer.is_finished());
            // Our last read hold goes; the writer gets the lock.
            rw_exit(rw());
            assert_eq!(writer.join().expect("writer panicked"), 1);
        });
        assert_eq!(rw_tryenter(rw(), RW_READER), 1);
        rw_exit(rw());
        rw_destroy(rw());
    }
    k.assert_clean();
}

#[test]
fn downgrade_keeps_the_lock_and_tryupgrade_needs_the_only_reader() {
    let k = fakekernel::scope();
    let shared = Shared::rwlock(());
    let rw = shared.rw() as usize;
    let rw = move || rw as *mut krwlock_t;
    // SAFETY: the lock is initialized and outlives every thread here.
    unsafe {
        rw_enter(rw(), RW_WRITER);
        rw_downgrade(rw());
        assert_eq!((rw_read_held(rw()), rw_write_held(rw())), (1, 0));
        // Now other readers may enter, writers still not.
        assert_eq!(
            on_other_thread(|| {
                let read = rw_tryenter(rw(), RW_READER);
                if read == 1 {
                    rw_exit(rw());
                }
                (read, rw_tryenter(rw(), RW_WRITER))
            }),
            (1, 0)
        );

        // The only reader upgrades.
        assert_eq!(rw_tryupgrade(rw()), 1);
        assert_eq!((rw_read_held(rw()), rw_write_held(rw())), (0, 1));
        rw_exit(rw());

        // With a second reader the upgrade fails and the read hold stays.
        let holder = Holder::spawn(move || rw_enter(rw(), RW_READER), move || rw_exit(rw()));
        rw_enter(rw(), RW_READER);
        assert_eq!(rw_tryupgrade(rw()), 0);
        assert_eq!((rw_read_held(rw()), rw_write_held(rw())), (1, 0));
        holder.release();
        assert_eq!(rw_tryupgrade(rw()), 1);
        rw_exit(rw());
        assert_eq!(rw_read_held(rw()) + rw_write_held(rw()), 0);
        rw_destroy(rw());
    }
    k.assert_clean();
}

#[test]
fn rwlock_misuse_is_reported_instead_of_panicking_or_hanging() {
    let k = fakekernel::scope();
    let shared = Shared::rwlock(());
    let rw = shared.rw() as usize;
    let rw = move || rw as *mut krwlock_t;
    let lock = rw() as usize;
    // SAFETY: the lock is initialized and outlives every thread here;
    // each misuse is one the fake refuses before doing harm.
    unsafe {
        rw_exit(rw());
        rw_downgrade(rw());
        assert_eq!(rw_tryupgrade(rw()), 0);
        rw_enter(rw(), krw_t(7));
        assert_eq!(rw_tryenter(rw(), krw_t(-1)), 0);
        assert_eq!(
            k.take_errors(),
            vec![
                KernelError::LockNotHeld { op: "rw_exit", lock },
                KernelError::LockNotHeld { op: "rw_downgrade", lock },
                KernelError::LockNotHeld { op: "rw_tryupgrade", lock },
                KernelError::BadRwMode { op: "rw_enter", lock, mode: 7 },
                KernelError::BadRwMode { op: "rw_tryenter", lock, mode: -1 },
            ]
        );

        // Recursion as writer, or writer after reader: refused, no hang.
        rw_enter(rw(), RW_WRITER);
        rw_enter(rw(), RW_WRITER);
        rw_enter(rw(), RW_READER);
        rw_exit(rw());
        rw_enter(rw(), RW_READER);
        rw_enter(rw(), RW_WRITER);
        assert_eq!(
            k.take_errors(),
            vec![
                KernelError::LockRecursive { op: "rw_enter", lock },
                KernelError::LockRecursive { op: "rw_enter", lock },
                KernelError::LockRecursive { op: "rw_enter", lock },
            ]
        );
        // Recursive reading: reported, but granted, so two exits balance.
        rw_enter(rw(), RW_READER);
        assert_eq!(k.take_errors(), vec![KernelError::LockRecursive { op: "rw_enter", lock }]);
        rw_exit(rw());
        assert_eq!(rw_read_held(rw()), 1);
        rw_exit(rw());
        assert_eq!(rw_read_held(rw()), 0);
        assert!(k.errors().is_empty());

        // Another thread's holds are not ours to release or destroy.
        let writer = Holder::spawn(move || rw_enter(rw(), RW_WRITER), move || rw_exit(rw()));
        rw_exit(rw());
        rw_downgrade(rw());
        rw_destroy(rw());
        writer.release();
        let reader = Holder::spawn(move || rw_enter(rw(), RW_READER), move || rw_exit(rw()));
        rw_exit(rw());
        rw_destroy(rw());
        assert_eq!(rw_read_held(rw()), 1);
        reader.release();
        assert_eq!(
            k.take_errors(),
            vec![
                KernelError::LockNotOwner { op: "rw_exit", lock },
                KernelError::LockNotOwner { op: "rw_downgrade", lock },
                KernelError::LockDestroyedHeld { op: "rw_destroy", lock },
                KernelError::LockNotHeld { op: "rw_exit", lock },
                KernelError::LockDestroyedHeld { op: "rw_destroy", lock },
            ]
        );

        // Held by us: not destroyed. Once destroyed: not usable.
        rw_enter(rw(), RW_WRITER);
        rw_destroy(rw());
        rw_exit(rw());
        rw_init(rw(), null_mut(), RW_DRIVER, null_mut());
        rw_destroy(rw());
        rw_enter(rw(), RW_READER);
        assert_eq!(rw_tryenter(rw(), RW_WRITER), 0);
        rw_destroy(rw());
        assert_eq!(
            k.take_errors(),
            vec![
                KernelError::LockDestroyedHeld { op: "rw_destroy", lock },
                KernelError::LockReinitialized { op: "rw_init", lock },
                KernelError::LockDestroyed { op: "rw_enter", lock },
                KernelError::LockDestroyed { op: "rw_tryenter", lock },
                KernelError::LockDestroyed { op: "rw_destroy", lock },
            ]
        );
    }
    k.assert_clean();
}

// ---------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------

#[test]
fn gethrtime_never_goes_back_and_counts_nanoseconds() {
    let k = fakekernel::scope();
    // SAFETY: gethrtime has no preconditions.
    unsafe {
        let mut last = gethrtime();
        assert!(last >= 0);
        for _ in 0..10_000 {
            let now = gethrtime();
            assert!(now >= last, "gethrtime went back from {last} to {now}");
            last = now;
        }
        let other = on_other_thread(|| gethrtime());
        assert!(other >= last);
        let before = gethrtime();
        thread::sleep(Duration::from_millis(5));
        let slept = gethrtime() - before;
        assert!(slept >= 5_000_000, "slept 5 ms, gethrtime advanced {slept} ns");
    }
    k.assert_clean();
}
