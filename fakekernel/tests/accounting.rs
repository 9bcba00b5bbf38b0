//! Scopes: leak detection, error reporting, failure injection, and
//! charging allocations to the right scope across threads.

use fakekernel::msg::{block_lens, chain_bytes, chain_from_segments};
use fakekernel::{KernelError, Live};
use illumos_sys_hdrs::{
    BPRI_MED, KM_SLEEP, allocb, copyb, copymsg, dupb, dupmsg, freeb, freemsg, kmem_alloc,
    kmem_free, mblk_t, msgpullup, pullupmsg,
};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The message of a caught panic.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_default()
}

/// A raw pointer that may cross threads, for handing a block to another
/// thread to free.
struct SendPtr(*mut mblk_t);

// SAFETY: the fake kernel's blocks may be freed from any thread; the
// tests hand each pointer to exactly one other thread.
unsafe impl Send for SendPtr {}

#[test]
fn a_leak_shows_in_live_and_fails_assert_clean() {
    let k = fakekernel::scope();
    // SAFETY: the block and buffer are freed once, below.
    unsafe {
        let mp = allocb(10, BPRI_MED);
        let buf = kmem_alloc(48, KM_SLEEP);
        assert_eq!(k.live(), Live { mblks: 1, dblks: 1, kmem_bufs: 1, kmem_bytes: 48 });
        assert!(fakekernel::live_total().mblks >= 1);

        let caught = catch_unwind(AssertUnwindSafe(|| k.assert_clean()));
        let msg = panic_message(&*caught.expect_err("assert_clean passed with a leak"));
        assert!(msg.contains("leaked: 1 mblks, 1 dblks, 1 kmem buffers (48 bytes)"), "{msg}");

        freeb(mp);
        kmem_free(buf, 48);
    }
    assert!(k.live().is_zero());
    k.assert_clean();
}

#[test]
fn a_recorded_error_fails_assert_clean() {
    let k = fakekernel::scope();
    // SAFETY: freeb(NULL) is rejected before use.
    unsafe { freeb(std::ptr::null_mut()) };
    let caught = catch_unwind(AssertUnwindSafe(|| k.assert_clean()));
    let msg = panic_message(&*caught.expect_err("assert_clean passed with an error"));
    assert!(msg.contains("freeb(NULL)"), "{msg}");
    assert_eq!(k.take_errors(), vec![KernelError::FreebNull]);
    k.assert_clean();
}

#[test]
fn dropping_a_leaky_scope_panics() {
    let outer = fakekernel::scope();
    let mut leaked = SendPtr(std::ptr::null_mut());
    let caught = catch_unwind(AssertUnwindSafe(|| {
        let _inner = fakekernel::scope();
        // SAFETY: allocb is always safe to call; freed below.
        leaked = SendPtr(unsafe { allocb(4, BPRI_MED) });
    }));
    let msg = panic_message(&*caught.expect_err("a leaky scope dropped quietly"));
    assert!(msg.contains("leaked: 1 mblks"), "{msg}");
    assert!(outer.live().is_zero(), "the inner scope's block is not the outer's");
    // SAFETY: freed once.
    unsafe { freeb(leaked.0) };
    outer.assert_clean();
}

#[test]
fn nested_scopes_charge_the_innermost_only() {
    let outer = fakekernel::scope();
    // SAFETY: each block is freed once.
    unsafe {
        let a = allocb(1, BPRI_MED);
        {
            let inner = fakekernel::scope();
            let b = allocb(1, BPRI_MED);
            assert_eq!(inner.live(), Live { mblks: 1, dblks: 1, ..Live::default() });
            assert_eq!(outer.live(), Live { mblks: 1, dblks: 1, ..Live::default() });
            freeb(b);
        }
        let c = allocb(1, BPRI_MED);
        assert_eq!(outer.live(), Live { mblks: 2, dblks: 2, ..Live::default() });
        freeb(a);
        freeb(c);
    }
    outer.assert_clean();
}

#[test]
fn blocks_freed_on_another_thread_are_credited_to_their_scope() {
    let k = fakekernel::scope();
    let mp = SendPtr(chain_from_segments(&[b"ab", b"cd"], 0));
    let buf = SendPtr(
        // SAFETY: kmem_alloc is always safe to call; freed on the thread.
        unsafe { kmem_alloc(16, KM_SLEEP) }.cast(),
    );
    assert_eq!(k.live(), Live { mblks: 2, dblks: 2, kmem_bufs: 1, kmem_bytes: 16 });
    std::thread::spawn(move || {
        let mine = fakekernel::scope();
        let (mp, buf) = (mp, buf);
        // SAFETY: this thread is handed sole ownership of both.
        unsafe {
            freemsg(mp.0);
            kmem_free(buf.0.cast(), 16);
        }
        assert!(mine.live().is_zero(), "nothing was charged to the freeing thread");
    })
    .join()
    .expect("freeing thread panicked");
    k.assert_clean();
}

#[test]
fn another_threads_allocations_are_not_charged_to_this_scope() {
    let k = fakekernel::scope();
    std::thread::spawn(|| {
        // SAFETY: the block is freed once, below.
        unsafe {
            let mp = allocb(8, BPRI_MED);
            freeb(mp);
        }
    })
    .join()
    .expect("allocating thread panicked");
    let handed_over = std::thread::spawn(|| SendPtr(chain_from_segments(&[b"x"], 0)))
        .join()
        .expect("allocating thread panicked");
    assert!(k.live().is_zero(), "a spawned thread starts outside any scope");
    // SAFETY: ownership came back from the thread; freed once.
    unsafe { freemsg(handed_over.0) };
    k.assert_clean();
}

#[test]
fn injected_failures_make_the_stream_functions_return_null() {
    let k = fakekernel::scope();
    // SAFETY: each block is freed once, below.
    unsafe {
        let mp = chain_from_segments(&[b"abc"], 0);
        k.fail_next_allocs(3);
        assert!(allocb(8, BPRI_MED).is_null());
        assert!(dupb(mp).is_null());
        assert!(copyb(mp).is_null());
        let ok = allocb(8, BPRI_MED);
        assert!(!ok.is_null(), "only the next three fail");
        assert_eq!((*(*mp).b_datap).db_ref, 1, "a failed dupb takes no reference");
        assert!(k.errors().is_empty(), "an injected failure is not an error");
        freeb(ok);
        freemsg(mp);
    }
    k.assert_clean();
}

#[test]
fn a_failure_midway_through_a_message_copy_frees_the_partial_copy() {
    let k = fakekernel::scope();
    // SAFETY: each message is freed once, below.
    unsafe {
        let mp = chain_from_segments(&[b"ab", b"cd", b"ef"], 0);
        let before = k.live();

        k.fail_allocs_after(2, 1);
        assert!(copymsg(mp).is_null());
        assert_eq!(k.live(), before, "the two copied blocks were freed");

        k.fail_allocs_after(1, 1);
        assert!(dupmsg(mp).is_null());
        assert_eq!(k.live(), before);
        assert_eq!((*(*mp).b_datap).db_ref, 1, "the dupb'd reference was dropped");

        // An M_PROTO third block: msgpullup copies two, dupmsg's the third.
        let third = (*(*mp).b_cont).b_cont;
        (*(*third).b_datap).db_type = 0x01;
        k.fail_allocs_after(1, 1);
        assert!(msgpullup(mp, -1).is_null(), "dupmsg of the rest failed");
        assert_eq!(k.live(), before);

        k.fail_next_allocs(1);
        assert_eq!(pullupmsg(mp, -1), 0);
        assert_eq!(block_lens(mp), vec![2, 2, 2], "unchanged");
        assert_eq!(chain_bytes(mp), b"abcdef");

        k.fail_allocs_after(1, 1);
        assert!(chain_from_segments(&[b"a", b"b"], 0).is_null());
        assert_eq!(k.live(), before, "the first segment's block was freed");
        freemsg(mp);
    }
    k.assert_clean();
}
