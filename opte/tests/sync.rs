//! The engine's locks over `fakekernel`: `KMutex` and `KRwLock` keep
//! their data consistent across threads, guards release on drop (and on
//! unwinding), the locks move freely, and every lock is destroyed.

use fakekernel::KernelError;
use opte::ddi::sync::{KMutex, KRwLock, KRwLockReadGuard, KRwLockWriteGuard};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

/// Threads in the contention tests.
const THREADS: usize = 4;
/// Lock round trips per thread in the contention tests.
const ROUNDS: usize = 2_000;
/// Most 1 ms polls a test waits for other threads to reach a state.
const MAX_POLLS: usize = 10_000;

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

/// Run `f` on another thread and wait for its result.
fn on_other_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    thread::scope(|s| s.spawn(f).join().expect("helper thread panicked"))
}

#[test]
fn a_kmutex_serializes_threads() {
    let k = fakekernel::scope();
    // Two halves updated separately under the lock: any overlap of two
    // holders shows as lost updates or a mismatch.
    let counter = Arc::new(KMutex::new((0usize, 0usize)));
    assert_eq!(k.live_locks(), 1);
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let counter = Arc::clone(&counter);
            thread::spawn(move || {
                for round in 0..ROUNDS {
                    let mut c = counter.lock();
                    c.0 += 1;
                    if round % 16 == 0 {
                        thread::yield_now();
                    }
                    assert_eq!(c.0, c.1 + 1, "another thread was inside the mutex");
                    c.1 += 1;
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("worker panicked");
    }
    let counter = Arc::into_inner(counter).expect("workers still hold the Arc");
    assert_eq!(counter.into_inner(), (THREADS * ROUNDS, THREADS * ROUNDS));
    assert_eq!(k.live_locks(), 0);
    k.assert_clean();
}

#[test]
fn a_kmutex_guard_releases_on_drop_and_on_unwinding() {
    let k = fakekernel::scope();
    let m = KMutex::new(vec![1u8]);
    {
        let mut g = m.lock();
        g.push(2);
        assert!(m.try_lock().is_none(), "a held mutex was entered again");
        assert!(on_other_thread(|| m.try_lock().is_none()));
        assert_eq!(format!("{m:?}"), "KMutex { value: <locked> }");
    }
    assert!(on_other_thread(|| m.try_lock().map(|g| g.len())) == Some(2));

    // A panic while holding the guard unwinds through its drop.
    let caught = catch_unwind(AssertUnwindSafe(|| {
        let mut g = m.lock();
        g.push(3);
        panic!("while holding the mutex");
    }));
    assert!(caught.is_err());
    assert_eq!(*m.try_lock().expect("the unwound guard kept the mutex"), [1, 2, 3]);
    assert_eq!(format!("{m:?}"), "KMutex { value: [1, 2, 3] }");
    drop(m);
    k.assert_clean();
}

#[test]
fn a_kmutex_moves_freely_because_its_kernel_word_does_not() {
    let k = fakekernel::scope();
    let mut m = KMutex::new(String::from("a"));
    m.get_mut().push('b');
    // Move it around: into a Vec, out, into a Box, to another thread.
    let mut v = vec![m];
    let m = v.pop().expect("just pushed");
    let m = Box::new(m);
    let m = thread::spawn(move || {
        m.lock().push('c');
        m
    })
    .join()
    .expect("mover panicked");
    m.lock().push('d');
    assert_eq!(m.into_inner(), "abcd");
    k.assert_clean();
}

#[test]
fn krwlock_readers_share_and_a_writer_excludes_everyone() {
    let k = fakekernel::scope();
    let lock = KRwLock::new(7u32);
    {
        let r = lock.read();
        assert_eq!(*r, 7);
        // More readers get in from other threads; a writer does not.
        let others = on_other_thread(|| {
            thread::scope(|s| {
                let readers: Vec<_> =
                    (0..THREADS).map(|_| s.spawn(|| lock.try_read().map(|g| *g))).collect();
                readers.into_iter().map(|h| h.join().expect("reader panicked")).collect::<Vec<_>>()
            })
        });
        assert_eq!(others, vec![Some(7); THREADS]);
        assert!(on_other_thread(|| lock.try_write().is_none()));
    }
    {
        let mut w = lock.write();
        *w += 1;
        assert!(on_other_thread(|| lock.try_read().is_none() && lock.try_write().is_none()));
        assert_eq!(format!("{lock:?}"), "KRwLock { value: <locked> }");
    }
    assert_eq!(*lock.try_write().expect("the write guard kept the lock"), 8);
    assert_eq!(format!("{lock:?}"), "KRwLock { value: 8 }");
    drop(lock);
    k.assert_clean();
}

#[test]
fn krwlock_readers_hold_it_together_and_writers_alone_under_contention() {
    let k = fakekernel::scope();
    let lock = KRwLock::new((0usize, 0usize));
    let readers_in = AtomicUsize::new(0);
    let most_readers = AtomicUsize::new(0);
    let writer_in = AtomicBool::new(false);
    let violations = AtomicUsize::new(0);
    thread::scope(|s| {
        for t in 0..THREADS {
            let (lock, readers_in, most_readers, writer_in, violations) =
                (&lock, &readers_in, &most_readers, &writer_in, &violations);
            s.spawn(move || {
                for round in 0..ROUNDS {
                    if t == 0 {
                        let mut w = lock.write();
                        if writer_in.swap(true, Ordering::Relaxed)
                            || readers_in.load(Ordering::Relaxed) != 0
                        {
                            violations.fetch_add(1, Ordering::Relaxed);
                        }
                        w.0 += 1;
                        if round % 16 == 0 {
                            thread::yield_now();
                        }
                        w.1 += 1;
                        writer_in.store(false, Ordering::Relaxed);
                    } else {
                        let r = lock.read();
                        let n = readers_in.fetch_add(1, Ordering::Relaxed) + 1;
                        most_readers.fetch_max(n, Ordering::Relaxed);
                        if writer_in.load(Ordering::Relaxed) || r.0 != r.1 {
                            violations.fetch_add(1, Ordering::Relaxed);
                        }
                        if round % 16 == 0 {
                            thread::yield_now();
                        }
                        readers_in.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(violations.load(Ordering::Relaxed), 0);
    assert_eq!(lock.into_inner(), (ROUNDS, ROUNDS));
    k.assert_clean();
}

#[test]
fn krwlock_readers_are_inside_at_the_same_time() {
    let k = fakekernel::scope();
    let lock = KRwLock::new(());
    let inside = AtomicUsize::new(0);
    let all_inside = thread::scope(|s| {
        let readers: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    let _r = lock.read();
                    inside.fetch_add(1, Ordering::SeqCst);
                    // Each reader waits, holding its guard, for all the
                    // others; exclusive readers would never all get here.
                    eventually(|| inside.load(Ordering::SeqCst) == THREADS)
                })
            })
            .collect();
        readers.into_iter().all(|h| h.join().expect("reader panicked"))
    });
    assert!(all_inside, "readers did not hold the lock at the same time");
    drop(lock);
    k.assert_clean();
}

#[test]
fn krwlock_downgrade_and_try_upgrade() {
    let k = fakekernel::scope();
    let lock = KRwLock::new(1u32);
    let mut w = lock.write();
    *w = 2;
    let r = KRwLockWriteGuard::downgrade(w);
    assert_eq!(*r, 2);
    // Readers may now join; writers still may not.
    assert_eq!(
        on_other_thread(|| (lock.try_read().map(|g| *g), lock.try_write().is_none())),
        (Some(2), true)
    );
    // The only reader upgrades.
    let mut w = KRwLockReadGuard::try_upgrade(r).expect("the only reader could not upgrade");
    *w = 3;
    drop(w);

    // With another reader inside, the upgrade is refused and the read
    // guard comes back.
    let other_in = AtomicBool::new(false);
    let let_go = AtomicBool::new(false);
    thread::scope(|s| {
        let reader = s.spawn(|| {
            let _r = lock.read();
            other_in.store(true, Ordering::SeqCst);
            eventually(|| let_go.load(Ordering::SeqCst))
        });
        assert!(eventually(|| other_in.load(Ordering::SeqCst)));
        let r = lock.read();
        let r = KRwLockReadGuard::try_upgrade(r).expect_err("upgraded past another reader");
        assert_eq!(*r, 3);
        let_go.store(true, Ordering::SeqCst);
        assert!(reader.join().expect("reader panicked"));
        let mut w = KRwLockReadGuard::try_upgrade(r).expect("alone now, but no upgrade");
        *w = 4;
    });
    assert_eq!(lock.into_inner(), 4);
    k.assert_clean();
}

#[test]
fn every_lock_is_destroyed_when_dropped_or_taken_apart() {
    let k = fakekernel::scope();
    let locks: Vec<KMutex<u8>> = (0..8).map(KMutex::new).collect();
    let rwlocks: Vec<KRwLock<u8>> = (0..8).map(KRwLock::new).collect();
    assert_eq!(k.live_locks(), 16);
    drop(locks);
    assert_eq!(k.live_locks(), 8);
    let sum: u32 = rwlocks.into_iter().map(|l| u32::from(l.into_inner())).sum();
    assert_eq!(sum, 28);
    assert_eq!(k.live_locks(), 0);
    k.assert_clean();
}

#[test]
fn dropping_a_kmutex_whose_guard_was_leaked_is_reported() {
    let k = fakekernel::scope();
    let m = KMutex::new(0u8);
    std::mem::forget(m.lock());
    drop(m);
    let errors = k.take_errors();
    assert!(
        matches!(errors.as_slice(), [KernelError::LockDestroyedHeld { op: "mutex_destroy", .. }]),
        "{errors:?}"
    );
    k.assert_clean();
}
