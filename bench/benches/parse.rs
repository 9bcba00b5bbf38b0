//! Parse benchmarks: one guest or underlay frame in one block, parsed
//! repeatedly (warm cache). Reported per packet under
//! `parse/ULP-FastPath/...` (see the `bench` crate docs).

use bench::{Dir, Scenario};
use criterion::{Criterion, criterion_group, criterion_main};
use opte::packet::Headers;
use std::hint::black_box;

fn parse(c: &mut Criterion) {
    fakekernel::link_kernel_symbols();
    let mut g = c.benchmark_group("parse");
    for s in Scenario::all() {
        let m = s.mblk();
        g.bench_function(s.name(), |b| {
            b.iter(|| match s.dir {
                Dir::Out => black_box(Headers::parse_guest(black_box(&m))).is_ok(),
                Dir::In => black_box(Headers::parse_underlay(black_box(&m))).is_ok(),
            })
        });
    }
    g.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
