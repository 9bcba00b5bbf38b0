//! Memory per flow: a counting global allocator measures what a flow
//! table of one-word values holds once filled, and the test holds it to a
//! budget of 1 KiB per flow (a budget, not a timing). It counts per
//! thread, so the test harness's own threads don't count.
//!
//! The table holds 10^6 flows (about 2 s to fill in a debug build).

use bench::flow_table::{Word, filled_table};
use opte::engine::FlowId;
use opte::engine::flow_table::FlowEntry;

#[global_allocator]
static GLOBAL: bench::alloc_count::Counting = bench::alloc_count::Counting;

/// The most heap a flow may cost.
const BUDGET_BYTES_PER_FLOW: usize = 1024;

#[test]
fn flow_table_bytes_per_flow_within_budget() {
    let k = fakekernel::scope();
    let flows: u32 = 1_000_000;
    let live_before = bench::alloc_count::live_bytes();
    bench::alloc_count::reset_peak();
    let t = filled_table("memory", flows, flows);
    let live = bench::alloc_count::live_bytes().saturating_sub(live_before);
    let peak = bench::alloc_count::peak_bytes().saturating_sub(live_before);
    let reported = t.allocated_bytes();
    assert_eq!(t.len(), flows as usize);
    drop(t);
    // Read before printing: the harness's output capture allocates.
    let live_after_drop = bench::alloc_count::live_bytes().saturating_sub(live_before);
    let per_flow = live as f64 / f64::from(flows);
    eprintln!(
        "flow table of {flows} one-word flows: {live} bytes live ({per_flow:.1} bytes/flow; \
         table reports {reported}), peak while growing {peak} bytes ({:.1} bytes/flow); \
         one (FlowId, FlowEntry<Word>) slot is {} bytes",
        peak as f64 / f64::from(flows),
        std::mem::size_of::<(FlowId, FlowEntry<Word>)>(),
    );
    assert_eq!(
        live, reported,
        "the table holds exactly what allocated_bytes reports (index, chunk directory, chunks)"
    );
    assert!(
        live <= BUDGET_BYTES_PER_FLOW * flows as usize,
        "{per_flow:.1} bytes/flow is over the budget of {BUDGET_BYTES_PER_FLOW}"
    );
    assert_eq!(live_after_drop, 0, "dropping the table frees it all");
    k.assert_clean();
}
