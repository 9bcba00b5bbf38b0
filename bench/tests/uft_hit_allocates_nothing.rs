//! A unified flow table hit allocates nothing on the heap: a counting
//! global allocator (per thread) sees no allocation across thousands of
//! hits through the five-layer benchmark port, encapsulation included
//! (pushed into the packet's headroom).

use bench::engine::{HEADROOM, five_layer_port, must_pass};
use bench::{Dir, Family, Proto, Scenario};
use opte::engine::{Direction, Moment};
use opte::packet::Packet;
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
fn uft_hits_allocate_nothing() {
    let k = fakekernel::scope();
    for proto in [Proto::Udp, Proto::Tcp] {
        let s = Scenario { family: Family::V4, proto, dir: Dir::Out, body_len: 0 };
        let bytes = s.frame().to_bytes(&[]);
        let port = five_layer_port(1024);
        let mk = || {
            let m = opte::ddi::MsgBlk::from_bytes(HEADROOM, &bytes).unwrap();
            Packet::parse_guest(m).unwrap()
        };
        must_pass(&port, Direction::Out, &mut mk(), Moment(1));
        // Packets are made (and the kernel's allocb is heap in userland)
        // outside the counted stretch.
        let mut pkts: Vec<Packet> = (0..2000).map(|_| mk()).collect();
        let before = ALLOCS.with(Cell::get);
        for p in &mut pkts {
            must_pass(&port, Direction::Out, p, Moment(2));
        }
        let after = ALLOCS.with(Cell::get);
        assert_eq!(after - before, 0, "heap allocations on {proto:?} UFT hits");
        assert_eq!(port.stats().uft_hit, 2000);
        assert_eq!(pkts[0].mblk().seg_count(), 1, "encapsulation went into the headroom");
    }
    k.assert_clean();
}
