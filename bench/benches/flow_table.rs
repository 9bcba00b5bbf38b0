//! Flow table benchmarks at 10^3, 10^5 and 10^6 flows, each table built
//! once per size and shared by its scenarios:
//!
//! - `flow_table/lookup-hot/N`: a hit (lookup plus recording the hit, as
//!   the data path does per packet) on one flow, always the same: the
//!   best case, everything in cache.
//! - `flow_table/lookup-random/N`: hits on flows picked at random from
//!   the table (ids generated beforehand): the cache misses of a big
//!   table.
//! - `flow_table/insert/N`: one new flow added and the oldest removed,
//!   so the table stays at N (its limit) and the cost includes the
//!   occasional index rebuild that churn brings (the new flow takes the
//!   slot the old one freed: entries never move).
//! - `flow_table/evict-64/N`: one eviction batch of 64 flows (a pass
//!   over the whole table) plus re-inserting them.
//! - `flow_table/evict-scan-slice/N` and `flow_table/expire-slice/N`:
//!   one slice of an eviction scan or of an expiry pass (nothing idle
//!   enough to go): what one hold of the owner's lock costs when a port
//!   makes those passes a slice at a time.

use bench::flow_table::{Word, filled_table, flow_id};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use opte::engine::flow_table::{EvictionChoice, ExpiryPolicy, MAX_EVICT_BATCH, SlotCursor};
use opte::engine::{FlowId, Moment};
use std::hint::black_box;

const SIZES: [u32; 3] = [1_000, 100_000, 1_000_000];

/// Random flows looked up per size, cycled through.
const RANDOM_IDS: usize = 1 << 16;

fn flow_table(c: &mut Criterion) {
    // Flow tables seed their hashers from the (fake) kernel.
    fakekernel::link_kernel_symbols();
    let mut g = c.benchmark_group("flow_table");
    for size in SIZES {
        let mut t = filled_table("bench", size, size);
        eprintln!(
            "flow_table/{size}: {} bytes allocated, {:.1} bytes/flow",
            t.allocated_bytes(),
            t.allocated_bytes() as f64 / f64::from(size)
        );

        let hot = flow_id(u64::from(size / 2));
        let mut now = 0u64;
        g.bench_function(BenchmarkId::new("lookup-hot", size), |b| {
            b.iter(|| {
                now += 1;
                black_box(t.hit(black_box(&hot), Moment(now)).is_some())
            })
        });

        // xorshift: deterministic, and no pattern the table could exploit.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let ids: Vec<FlowId> = (0..RANDOM_IDS)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                flow_id(x % u64::from(size))
            })
            .collect();
        let mut i = 0usize;
        g.bench_function(BenchmarkId::new("lookup-random", size), |b| {
            b.iter(|| {
                i = (i + 1) % RANDOM_IDS;
                now += 1;
                black_box(t.hit(black_box(&ids[i]), Moment(now)).is_some())
            })
        });

        // Flows 0..size are in the table; the next new one is `size`.
        let mut next = u64::from(size);
        g.bench_function(BenchmarkId::new("insert", size), |b| {
            b.iter(|| {
                black_box(t.remove(&flow_id(next - u64::from(size))));
                let ok = t.insert(flow_id(next), Word(next), Moment(next)).is_ok();
                next += 1;
                black_box(ok)
            })
        });

        let mut evicted = Vec::with_capacity(MAX_EVICT_BATCH);
        g.bench_function(BenchmarkId::new("evict-64", size), |b| {
            b.iter(|| {
                t.evict(MAX_EVICT_BATCH, |id, v| evicted.push((id, v)));
                // Back in as the newest flows, for the next batch to find.
                for (id, v) in evicted.drain(..) {
                    now += 1;
                    black_box(t.insert(id, v, Moment(next + now)).is_ok());
                }
            })
        });
        let mut at = SlotCursor::START;
        let mut choice = EvictionChoice::new(MAX_EVICT_BATCH);
        g.bench_function(BenchmarkId::new("evict-scan-slice", size), |b| {
            b.iter(|| {
                at = t.evict_scan(at, &mut choice).unwrap_or(SlotCursor::START);
            })
        });
        let policy = ExpiryPolicy::DEFAULT;
        let mut at = SlotCursor::START;
        g.bench_function(BenchmarkId::new("expire-slice", size), |b| {
            b.iter(|| {
                // Nothing has been idle for long at this moment.
                let (gone, next) = t.expire_slice(Moment(next), &policy, at, |_, _| {});
                black_box(gone);
                at = next.unwrap_or(SlotCursor::START);
            })
        });
        assert_eq!(t.len(), size as usize, "the table stayed at its size");
    }
    g.finish();
}

criterion_group!(benches, flow_table);
criterion_main!(benches);
