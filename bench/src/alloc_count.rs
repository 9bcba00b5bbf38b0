//! A counting global allocator for this crate's tests: heap allocations,
//! live bytes and the peak of live bytes, counted per thread (so the
//! test harness's own threads don't count). A test binary installs it
//! with
//!
//! ```text
//! #[global_allocator]
//! static GLOBAL: bench::alloc_count::Counting = bench::alloc_count::Counting;
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The counting allocator (forwards to the system allocator).
pub struct Counting;

thread_local! {
    // Const-initialized with no destructor: using them never allocates.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator unchanged, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            ALLOCS.with(|c| c.set(c.get() + 1));
            let live = LIVE.with(|c| {
                c.set(c.get() + layout.size());
                c.get()
            });
            PEAK.with(|c| c.set(c.get().max(live)));
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Saturating: memory allocated by another thread may be freed here.
        LIVE.with(|c| c.set(c.get().saturating_sub(layout.size())));
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Heap allocations this thread has made.
pub fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

/// Bytes this thread allocated and has not freed.
pub fn live_bytes() -> usize {
    LIVE.with(Cell::get)
}

/// The most live bytes since the last [`reset_peak`].
pub fn peak_bytes() -> usize {
    PEAK.with(Cell::get)
}

/// Start measuring the peak from the current live bytes.
pub fn reset_peak() {
    PEAK.with(|c| c.set(LIVE.with(Cell::get)));
}
