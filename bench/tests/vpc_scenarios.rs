//! The VPC benchmark scenarios do what they claim (so the benchmarks
//! measure real work), and their heap allocations per packet: none on a
//! unified flow table hit; the counts of first packets and hairpins are
//! printed (`--nocapture`) for the record.

use bench::Scenario;
use bench::vpc;
use opte::engine::port::ProcessResult;
use opte::engine::{Direction, Moment};

#[global_allocator]
static GLOBAL: bench::alloc_count::Counting = bench::alloc_count::Counting;

fn pass(r: &ProcessResult, what: &str) {
    assert!(matches!(r, ProcessResult::Modified), "{what}: {r:?}");
}

#[test]
fn ulp_hits_pass_and_allocate_nothing() {
    let k = fakekernel::scope();
    let (net, port) = vpc::port(16);
    for s in Scenario::all() {
        let bytes = vpc::frame(&s, 1);
        pass(
            &port.process(
                s.dir.direction(),
                &mut vpc::packet(s.dir.direction(), &bytes),
                Moment(1),
            ),
            &s.suffix(),
        );
        let mut pkts: Vec<_> = (0..500).map(|_| vpc::packet(s.dir.direction(), &bytes)).collect();
        let before = bench::alloc_count::allocs();
        for p in &mut pkts {
            let r = port.process(s.dir.direction(), p, Moment(2));
            assert!(matches!(r, ProcessResult::Modified), "{}: {r:?}", s.suffix());
        }
        let n = bench::alloc_count::allocs() - before;
        assert_eq!(n, 0, "{}: heap allocations on 500 UFT hits", s.suffix());
        let out = pkts[0].mblk().to_vec();
        match s.dir.direction() {
            // Encapsulated to the boundary, into the headroom.
            Direction::Out => {
                assert_eq!(pkts[0].mblk().seg_count(), 1);
                assert_eq!(&out[12..14], &[0x86, 0xdd], "{}: outer IPv6", s.suffix());
            }
            // Decapsulated: the inner frame, from the gateway MAC.
            Direction::In => assert_eq!(&out[6..12], &vpc::GW_MAC.bytes(), "{}", s.suffix()),
        }
    }
    drop((net, port));
    k.assert_clean();
}

#[test]
fn first_packets_and_hairpins_allocation_counts() {
    let k = fakekernel::scope();
    let (net, port) = vpc::port(16);
    for (i, s) in Scenario::all().into_iter().enumerate() {
        let mut p = vpc::packet(s.dir.direction(), &vpc::frame(&s, 100 + i as u16));
        let before = bench::alloc_count::allocs();
        let r = port.process(s.dir.direction(), &mut p, Moment(1));
        let n = bench::alloc_count::allocs() - before;
        pass(&r, &s.suffix());
        println!("first packet {}: {n} allocations", s.suffix());
    }
    for (name, bytes) in vpc::hairpins() {
        let mut p = vpc::packet(Direction::Out, &bytes);
        let before = bench::alloc_count::allocs();
        let r = port.process(Direction::Out, &mut p, Moment(1));
        let n = bench::alloc_count::allocs() - before;
        assert!(matches!(r, ProcessResult::Hairpin(_)), "{name}: {r:?}");
        println!("{name}: {n} allocations");
    }
    drop((net, port));
    k.assert_clean();
}
