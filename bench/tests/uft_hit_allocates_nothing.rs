//! A unified flow table hit allocates nothing on the heap: a counting
//! global allocator (per thread) sees no allocation across thousands of
//! hits through the five-layer benchmark port, encapsulation included
//! (pushed into the packet's headroom).

use bench::engine::{HEADROOM, five_layer_port, must_pass};
use bench::{Dir, Family, Proto, Scenario};
use opte::engine::{Direction, Moment};
use opte::packet::Packet;

#[global_allocator]
static GLOBAL: bench::alloc_count::Counting = bench::alloc_count::Counting;

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
        let before = bench::alloc_count::allocs();
        for p in &mut pkts {
            must_pass(&port, Direction::Out, p, Moment(2));
        }
        let after = bench::alloc_count::allocs();
        assert_eq!(after - before, 0, "heap allocations on {proto:?} UFT hits");
        assert_eq!(port.stats().uft_hit, 2000);
        assert_eq!(pkts[0].mblk().seg_count(), 1, "encapsulation went into the headroom");
    }
    k.assert_clean();
}
