//! The kernel memory allocator, called through the prototypes
//! `illumos-sys-hdrs` declares.

use fakekernel::stream::UNINIT_BYTE;
use fakekernel::{KernelError, Live};
use illumos_sys_hdrs::{
    BPRI_MED, KM_NOSLEEP, KM_NOSLEEP_LAZY, KM_SLEEP, allocb, freeb, kmem_alloc, kmem_free,
    kmem_zalloc,
};
use std::ffi::c_void;
use std::ptr::null_mut;

fn kmem(bufs: usize, bytes: usize) -> Live {
    Live { kmem_bufs: bufs, kmem_bytes: bytes, ..Live::default() }
}

#[test]
fn buffers_are_counted_until_freed_with_their_size() {
    let k = fakekernel::scope();
    // SAFETY: each buffer is used within its size and freed once.
    unsafe {
        let a = kmem_alloc(100, KM_SLEEP).cast::<u8>();
        let z = kmem_zalloc(30, KM_SLEEP).cast::<u8>();
        assert!(!a.is_null() && !z.is_null());
        assert_eq!(a.addr() % 8, 0);
        assert!(std::slice::from_raw_parts(a, 100).iter().all(|b| *b == UNINIT_BYTE));
        assert!(std::slice::from_raw_parts(z, 30).iter().all(|b| *b == 0));
        assert_eq!(k.live(), kmem(2, 130));
        kmem_free(a.cast(), 100);
        assert_eq!(k.live(), kmem(1, 30));
        kmem_free(z.cast(), 30);
    }
    k.assert_clean();
}

#[test]
fn zero_sized_requests_are_null_and_freeing_null_is_fine() {
    let k = fakekernel::scope();
    // SAFETY: nothing is allocated; kmem_free(NULL, 0) is a no-op.
    unsafe {
        assert!(kmem_alloc(0, KM_SLEEP).is_null());
        assert!(kmem_zalloc(0, KM_NOSLEEP).is_null());
        kmem_free(null_mut(), 0);
    }
    k.assert_clean();
}

#[test]
fn freeing_with_the_wrong_size_is_reported_and_keeps_the_buffer() {
    let k = fakekernel::scope();
    // SAFETY: the buffer is freed once with its right size, at the end.
    unsafe {
        let buf = kmem_alloc(32, KM_SLEEP);
        buf.cast::<u8>().write_bytes(7, 32);
        kmem_free(buf, 16);
        assert_eq!(
            k.take_errors(),
            vec![KernelError::KmemBadSize { addr: buf.addr(), allocated: 32, freed: 16 }]
        );
        assert_eq!(k.live(), kmem(1, 32), "a bad-size free frees nothing");
        assert_eq!(*buf.cast::<u8>().add(31), 7, "the buffer is intact");
        kmem_free(buf, 32);
    }
    k.assert_clean();
}

#[test]
fn double_frees_and_wild_frees_are_reported() {
    let k = fakekernel::scope();
    // SAFETY: the misused pointers are rejected before use; each real
    // allocation is freed once.
    unsafe {
        let buf = kmem_alloc(24, KM_SLEEP);
        kmem_free(buf, 24);
        kmem_free(buf, 24);
        let mut local = 0u64;
        let wild = (&raw mut local).cast::<c_void>();
        kmem_free(wild, 8);
        kmem_free(null_mut(), 8);
        let mp = allocb(8, BPRI_MED);
        kmem_free(mp.cast(), 64);
        assert_eq!(
            k.take_errors(),
            vec![
                KernelError::KmemDoubleFree { addr: buf.addr(), size: 24 },
                KernelError::KmemBadAddr { addr: wild.addr(), size: 8 },
                KernelError::KmemBadAddr { addr: 0, size: 8 },
                KernelError::KmemBadAddr { addr: mp.addr(), size: 64 },
            ]
        );
        assert_eq!(local, 0);
        freeb(mp);
    }
    k.assert_clean();
}

#[test]
fn injected_failures_hit_nosleep_requests_only() {
    let k = fakekernel::scope();
    k.fail_next_allocs(2);
    // SAFETY: each buffer is freed once, below.
    unsafe {
        let sleep = kmem_alloc(8, KM_SLEEP);
        assert!(!sleep.is_null(), "KM_SLEEP never fails and does not count");
        assert!(kmem_alloc(8, KM_NOSLEEP).is_null());
        assert!(kmem_zalloc(8, KM_NOSLEEP_LAZY).is_null());
        let after = kmem_alloc(8, KM_NOSLEEP);
        assert!(!after.is_null(), "only the next two fail");
        assert!(k.errors().is_empty(), "an injected failure is not an error");
        kmem_free(sleep, 8);
        kmem_free(after, 8);
    }
    k.assert_clean();
}
