//! Parsing allocates nothing: a counting global allocator sees no heap
//! allocation across thousands of parses of every benchmark frame. It
//! counts per thread, so the test harness's own threads don't count.

use bench::{Dir, Scenario};
use opte::packet::Headers;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    // Const-initialized with no destructor: reading it never allocates.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator unchanged, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn parse_allocates_nothing() {
    let k = fakekernel::scope();
    let frames: Vec<_> = Scenario::all().into_iter().map(|s| (s, s.mblk())).collect();
    let before = ALLOCS.with(Cell::get);
    let mut ok = 0usize;
    for _ in 0..1000 {
        for (s, m) in &frames {
            let r = match s.dir {
                Dir::Out => Headers::parse_guest(m),
                Dir::In => Headers::parse_underlay(m),
            };
            ok += usize::from(r.is_ok());
        }
    }
    let after = ALLOCS.with(Cell::get);
    assert_eq!(ok, 1000 * frames.len(), "every benchmark frame parses");
    assert_eq!(after - before, 0, "heap allocations during parsing");
    drop(frames);
    k.assert_clean();
}
