//! Heap bytes per flow in the five-layer benchmark port: every flow has a
//! unified flow table entry, firewall and NAT layer flow table entries
//! (pairs) and its NAT state. Counted with a per-thread counting
//! allocator and printed. (10^5 flows here, to stay quick in debug
//! builds; the tables' per-entry cost depends on their size only through
//! their indexes' load, 8-byte buckets at a power-of-two count.)
//!
//! The budget is where the engine stands today, with a little slack, so
//! a regression fails: 654 bytes per outbound flow at 10^5 flows, 685 at
//! 10^6 (the indexes half empty there), so 10^6 flows take about 0.64
//! GiB, the goal of issue 3 ("well under 1 GiB"). Nearly all of it is the
//! flow tables' slabs: a 208-byte slot (key, unified flow entry, last
//! hit) for the unified flow table and four 80-byte slots for the layer
//! flow tables. `PORT_MEMORY_FLOWS=1000000 cargo test --release -p bench
//! --test port_memory -- --nocapture` measures other sizes.

use bench::engine::{HEADROOM, five_layer_port, must_pass};
use bench::{Dir, Family, Proto, Scenario};
use opte::engine::{Direction, Moment};
use opte::packet::{L3, L4, Packet};

#[global_allocator]
static GLOBAL: bench::alloc_count::Counting = bench::alloc_count::Counting;

/// Bytes per flow the port may use today (654 measured; see the module
/// docs). One more 8-byte field in every flow table entry (40 bytes a
/// flow) breaks it.
const BUDGET_BYTES_PER_FLOW: isize = 680;

#[test]
fn port_bytes_per_flow_within_budget() {
    let k = fakekernel::scope();
    let flows: u32 =
        std::env::var("PORT_MEMORY_FLOWS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let s = Scenario { family: Family::V4, proto: Proto::Udp, dir: Dir::Out, body_len: 0 };
    let port = five_layer_port(flows + 16);
    let mut fb = s.frame();
    let before = bench::alloc_count::live_bytes() as isize;
    for i in 0..flows {
        if let Some(L3::Ipv4(ip)) = &mut fb.l3 {
            ip.dst = std::net::Ipv4Addr::from(0x0a00_0000 | (i >> 16));
        }
        if let Some(L4::Udp(u)) = &mut fb.l4 {
            u.src_port = i as u16;
        }
        let m = opte::ddi::MsgBlk::from_bytes(HEADROOM, &fb.to_bytes(&[])).unwrap();
        let mut p = Packet::parse_guest(m).unwrap();
        must_pass(&port, Direction::Out, &mut p, Moment(1));
    }
    let live = bench::alloc_count::live_bytes() as isize - before;
    let per_flow = live / flows as isize;
    let u = port.table_usage();
    eprintln!("{flows} flows: {live} bytes live, {per_flow} bytes/flow; tables {u:?}");
    assert_eq!(u.uft_out, flows as usize);
    // The budget holds at the default size (other sizes only report).
    if flows == 100_000 {
        assert!(
            per_flow <= BUDGET_BYTES_PER_FLOW,
            "{per_flow} bytes/flow over {BUDGET_BYTES_PER_FLOW}"
        );
    }
    drop(port);
    k.assert_clean();
}
