//! The VPC per-packet benchmarks (see `bench::vpc` for the scenario):
//!
//! - `process/ULP-FastPath/{V4,V6}-{Tcp,Udp}-{IN,OUT}-{0B,1400B}`: a
//!   unified flow table hit;
//! - `process/ULP-SlowPath/...`: the first packet of a flow (every timed
//!   packet is a new flow; the port is reset between untimed batches);
//! - `process/Hairpin-*`: the gateway's replies;
//! - `process/ULP-SlowPath-FwRules/{16,256,4096}/V4-Tcp-IN-0B`: the first
//!   packet with that many firewall rules installed.
//!
//! Packet construction is outside the timed stretch.

use std::time::{Duration, Instant};

use bench::vpc;
use bench::{Dir, Family, Proto, Scenario};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use opte::engine::port::ProcessResult;
use opte::engine::{Direction, Moment};
use oxide_vpc::engine::VpcPort;

/// Flows per untimed batch of the slow path (the port is reset after).
const SLOW_BATCH: u64 = 4096;

fn must(r: ProcessResult, what: &str, hairpin: bool) {
    let ok = if hairpin {
        matches!(r, ProcessResult::Hairpin(_))
    } else {
        matches!(r, ProcessResult::Modified)
    };
    assert!(ok, "{what}: {r:?}");
}

/// Time the first packets of `iters` new flows of scenario `s`.
fn slow_path(port: &VpcPort, s: &Scenario, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(SLOW_BATCH);
        let mut pkts: Vec<_> =
            (0..n).map(|i| vpc::packet(s.dir.direction(), &vpc::frame(s, i as u16))).collect();
        let name = s.suffix();
        let start = Instant::now();
        for p in &mut pkts {
            must(port.process(s.dir.direction(), p, Moment(1)), &name, false);
        }
        total += start.elapsed();
        drop(pkts);
        port.port().reset();
        left -= n;
    }
    total
}

fn process(c: &mut Criterion) {
    fakekernel::link_kernel_symbols();
    let mut g = c.benchmark_group("process");
    let (net, port) = vpc::port(16);
    for s in Scenario::all() {
        let bytes = vpc::frame(&s, 60000);
        let name = s.suffix();
        must(
            port.process(s.dir.direction(), &mut vpc::packet(s.dir.direction(), &bytes), Moment(1)),
            &name,
            false,
        );
        g.bench_function(format!("ULP-FastPath/{name}"), |b| {
            b.iter_batched_ref(
                || vpc::packet(s.dir.direction(), &bytes),
                |p| must(port.process(s.dir.direction(), p, Moment(2)), &name, false),
                BatchSize::SmallInput,
            )
        });
    }
    for s in Scenario::all() {
        g.bench_function(format!("ULP-SlowPath/{}", s.suffix()), |b| {
            b.iter_custom(|iters| slow_path(&port, &s, iters))
        });
    }
    for (name, bytes) in vpc::hairpins() {
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || vpc::packet(Direction::Out, &bytes),
                |p| must(port.process(Direction::Out, p, Moment(2)), name, true),
                BatchSize::SmallInput,
            )
        });
    }
    drop((port, net));
    let s = Scenario { family: Family::V4, proto: Proto::Tcp, dir: Dir::In, body_len: 0 };
    for rules in [16, 256, 4096] {
        let (net, port) = vpc::port(rules);
        g.bench_function(format!("ULP-SlowPath-FwRules/{rules}/{}", s.suffix()), |b| {
            b.iter_custom(|iters| slow_path(&port, &s, iters))
        });
        drop((port, net));
    }
    g.finish();
}

criterion_group!(benches, process);
criterion_main!(benches);
