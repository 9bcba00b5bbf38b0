//! A userland stand-in for the illumos kernel functions `opte` and `xde`
//! call, in the spirit of illumos's `libfakekernel`: kernel code built
//! for a Linux (or illumos userland) process links against these
//! definitions instead of `genunix`.
//!
//! # Theory
//!
//! `illumos-sys-hdrs` declares the kernel prototypes (`allocb`, `freeb`,
//! `kmem_alloc`, ...) as `extern "C"`. This crate defines each of them
//! with `#[unsafe(no_mangle)]` and the same signature, so any binary that
//! links `fakekernel` resolves them here. The definitions follow the
//! illumos semantics (`usr/src/uts/common/io/stream.c`, `os/kmem.c`),
//! including the awkward parts, so that code which works here works in
//! the kernel: see [`stream`], [`kmem`] and [`sync`] (mutexes, rwlocks,
//! `gethrtime`).
//!
//! Unlike the kernel, the fake keeps books. Every allocation is entered
//! in a sharded table keyed by address with its kind, size and the
//! accounting scope it is charged to. That lets every free check its
//! argument *before* dereferencing it, turning what would be a kernel
//! panic or silent corruption (double free, wrong `kmem_free` size,
//! `freeb(NULL)`, a stale mblk) into a [`KernelError`] that is printed and
//! recorded; and it lets a test ask whether it leaked. Locks are checked
//! the same way: the fake knows which thread holds each, so recursive
//! entry, release by a non-holder or destroying a held lock is reported
//! rather than hanging the test, and an initialized lock that is never
//! destroyed counts as a leak.
//!
//! # Accounting in tests
//!
//! ```
//! use illumos_sys_hdrs::{allocb, freemsg, BPRI_HI};
//!
//! let k = fakekernel::scope();
//! // SAFETY: allocb is always safe to call; freemsg gets the block back.
//! unsafe {
//!     let mp = allocb(64, BPRI_HI);
//!     assert_eq!(k.live().mblks, 1);
//!     freemsg(mp);
//! }
//! k.assert_clean();
//! ```
//!
//! - [`scope()`] opens a [`Scope`] on the current thread. Allocations the
//!   thread makes while it is open are charged to it (the innermost one,
//!   if scopes nest), wherever they are freed; a thread spawned inside a
//!   scope starts outside any. [`Scope::live`] counts
//!   what is still allocated, as a [`Live`]; [`Scope::errors`] lists the
//!   [`KernelError`]s the thread caused; [`Scope::live_locks`] counts
//!   locks initialized and not destroyed; a test that provokes errors on
//!   purpose clears them with [`Scope::take_errors`].
//! - [`Scope::assert_clean`] panics with a list of leaks and errors; a
//!   scope also checks itself when dropped, unless the thread is already
//!   panicking.
//! - [`Scope::fail_next_allocs`] and [`Scope::fail_allocs_after`] make
//!   allocations fail (`allocb` and friends return NULL, `KM_NOSLEEP`
//!   `kmem_alloc` returns NULL) to reach error paths.
//! - [`live_total`] counts everything live in the process, scoped or not.
//!
//! [`msg`] builds and reads message chains for tests.
//!
//! # Linking
//!
//! Rust links a dependency's object code only when something refers to
//! it, and kernel code refers to these functions only through
//! `illumos-sys-hdrs`. [`scope()`] and [`live_total`] therefore refer to
//! every kernel symbol, so a binary that uses either links all of them.
//! A binary that uses neither (a benchmark, say) should call
//! [`link_kernel_symbols`] once.

pub mod kmem;
pub mod msg;
pub mod random;
pub mod stream;
pub mod sync;

mod accounting;
mod alloc_table;

pub use accounting::{KernelError, Live, Scope, live_total, scope};

/// The kernel functions this crate defines, kept in one place so that
/// referring to it links them all (see "Linking" in the crate docs).
struct KernelSymbols([*const (); 31]);

// SAFETY: the table only holds function addresses, which are immutable
// and meaningful on every thread.
unsafe impl Sync for KernelSymbols {}

static KERNEL_SYMBOLS: KernelSymbols = KernelSymbols([
    stream::allocb as *const (),
    stream::freeb as *const (),
    stream::freemsg as *const (),
    stream::freemsgchain as *const (),
    stream::dupb as *const (),
    stream::dupmsg as *const (),
    stream::copyb as *const (),
    stream::copymsg as *const (),
    stream::msgpullup as *const (),
    stream::pullupmsg as *const (),
    stream::msgsize as *const (),
    kmem::kmem_alloc as *const (),
    kmem::kmem_zalloc as *const (),
    kmem::kmem_free as *const (),
    sync::mutex_init as *const (),
    sync::mutex_destroy as *const (),
    sync::mutex_enter as *const (),
    sync::mutex_exit as *const (),
    sync::mutex_tryenter as *const (),
    sync::mutex_owned as *const (),
    sync::rw_init as *const (),
    sync::rw_destroy as *const (),
    sync::rw_enter as *const (),
    sync::rw_exit as *const (),
    sync::rw_tryenter as *const (),
    sync::rw_downgrade as *const (),
    sync::rw_tryupgrade as *const (),
    sync::rw_read_held as *const (),
    sync::rw_write_held as *const (),
    sync::gethrtime as *const (),
    random::random_get_pseudo_bytes as *const (),
]);

/// Refer to every kernel symbol this crate defines so the linker keeps
/// them. Only needed by binaries that never call [`scope()`] or
/// [`live_total`] but link kernel code that calls the `illumos-sys-hdrs`
/// prototypes.
pub fn link_kernel_symbols() {
    keep_kernel_symbols();
}

fn keep_kernel_symbols() {
    std::hint::black_box(&KERNEL_SYMBOLS.0);
}
