//! `random_get_pseudo_bytes(9F)`, called through the prototype
//! `illumos-sys-hdrs` declares.

use fakekernel::KernelError;
use illumos_sys_hdrs::random_get_pseudo_bytes;

fn bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    // SAFETY: `b` has `n` writable bytes.
    assert_eq!(unsafe { random_get_pseudo_bytes(b.as_mut_ptr(), n) }, 0);
    b
}

#[test]
fn fills_the_buffer_with_bytes_that_differ_per_call() {
    let k = fakekernel::scope();
    let (a, b) = (bytes(64), bytes(64));
    assert_ne!(a, b, "two draws of 64 bytes are never equal");
    assert!(a.iter().any(|&x| x != 0), "the buffer was written");
    // Odd lengths and nothing at all.
    assert_eq!(bytes(13).len(), 13);
    // SAFETY: a zero-length request writes nothing.
    assert_eq!(unsafe { random_get_pseudo_bytes(std::ptr::null_mut(), 0) }, 0);
    k.assert_clean();
}

#[test]
fn a_null_buffer_is_reported_and_refused() {
    let k = fakekernel::scope();
    // SAFETY: the fake kernel checks for NULL before writing.
    assert_eq!(unsafe { random_get_pseudo_bytes(std::ptr::null_mut(), 8) }, 22);
    assert_eq!(k.take_errors(), vec![KernelError::NullBuffer { op: "random_get_pseudo_bytes" }]);
    k.assert_clean();
}
