//! Parsing allocates nothing: a counting global allocator sees no heap
//! allocation across thousands of parses of every benchmark frame. It
//! counts per thread, so the test harness's own threads don't count.

use bench::{Dir, Scenario};
use opte::packet::Headers;

#[global_allocator]
static GLOBAL: bench::alloc_count::Counting = bench::alloc_count::Counting;

#[test]
fn parse_allocates_nothing() {
    let k = fakekernel::scope();
    let frames: Vec<_> = Scenario::all().into_iter().map(|s| (s, s.mblk())).collect();
    let before = bench::alloc_count::allocs();
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
    let after = bench::alloc_count::allocs();
    assert_eq!(ok, 1000 * frames.len(), "every benchmark frame parses");
    assert_eq!(after - before, 0, "heap allocations during parsing");
    drop(frames);
    k.assert_clean();
}
