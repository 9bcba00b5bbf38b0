//! Engine benchmarks through the five-layer port of `bench::engine`: a
//! unified flow table hit (one lookup and the stored transformation,
//! including pushing Geneve) and a miss (the first packet of a flow
//! walking all five layers). Per packet, guest UDP/TCP over IPv4.

use bench::engine::{HEADROOM, five_layer_port, must_pass};
use bench::{Dir, Family, Proto, Scenario};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use opte::engine::{Direction, Moment};
use opte::packet::Packet;

fn packet(bytes: &[u8]) -> Packet {
    let m = match opte::ddi::MsgBlk::from_bytes(HEADROOM, bytes) {
        Ok(m) => m,
        Err(e) => panic!("allocation: {e:?}"),
    };
    match Packet::parse_guest(m) {
        Ok(p) => p,
        Err(f) => panic!("parse: {:?}", f.error),
    }
}

fn engine(c: &mut Criterion) {
    fakekernel::link_kernel_symbols();
    let mut g = c.benchmark_group("engine");
    for proto in [Proto::Udp, Proto::Tcp] {
        let s = Scenario { family: Family::V4, proto, dir: Dir::Out, body_len: 0 };
        let bytes = s.frame().to_bytes(&[]);
        let name = format!("{:?}", proto);
        let port = five_layer_port(1 << 16);
        // Establish the flow.
        must_pass(&port, Direction::Out, &mut packet(&bytes), Moment(1));
        g.bench_function(format!("uft-hit/V4-{name}-OUT"), |b| {
            b.iter_batched_ref(
                || packet(&bytes),
                |p| must_pass(&port, Direction::Out, p, Moment(2)),
                BatchSize::SmallInput,
            )
        });
        // The stored transformation alone (no lookup): what a hit costs
        // beyond the flow table and locks, by the general path and by the
        // compiled one.
        let (flow, xform, _) = port.dump_uft(Direction::Out).swap_remove(0);
        let compiled = opte::engine::transform::CompiledTransform::compile(xform.clone(), &flow);
        g.bench_function(format!("apply-general/V4-{name}-OUT"), |b| {
            b.iter_batched_ref(|| packet(&bytes), |p| xform.apply(p).is_ok(), BatchSize::SmallInput)
        });
        g.bench_function(format!("apply-compiled/V4-{name}-OUT"), |b| {
            b.iter_batched_ref(
                || packet(&bytes),
                |p| compiled.apply(p).is_ok(),
                BatchSize::SmallInput,
            )
        });
        // Setup only: what the batched setup costs, to read the others by.
        g.bench_function(format!("parse-only/V4-{name}-OUT"), |b| {
            b.iter_batched_ref(|| (), |_| packet(&bytes), BatchSize::SmallInput)
        });
        g.bench_function(format!("uft-miss/V4-{name}-OUT"), |b| {
            b.iter_batched_ref(
                || {
                    port.reset();
                    packet(&bytes)
                },
                |p| must_pass(&port, Direction::Out, p, Moment(3)),
                // One packet per reset, so every timed packet is a miss.
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

/// A UFT hit on one hot flow while the table holds 10^3, 10^5 and 10^6
/// other flows: the cost must not grow with the table.
fn uft_scaling(c: &mut Criterion) {
    fakekernel::link_kernel_symbols();
    let mut g = c.benchmark_group("engine");
    g.sample_size(30);
    let s = Scenario { family: Family::V4, proto: Proto::Udp, dir: Dir::Out, body_len: 0 };
    let hot = s.frame().to_bytes(&[]);
    for n in [1_000u32, 100_000, 1_000_000] {
        let port = five_layer_port(n + 16);
        let mut fb = s.frame();
        for i in 0..n {
            // Distinct flows: vary the destination and source port.
            if let Some(opte::packet::L3::Ipv4(ip)) = &mut fb.l3 {
                ip.dst = std::net::Ipv4Addr::from(0x0a00_0000 | (i >> 16));
            }
            if let Some(opte::packet::L4::Udp(u)) = &mut fb.l4 {
                u.src_port = i as u16;
            }
            must_pass(&port, Direction::Out, &mut packet(&fb.to_bytes(&[])), Moment(1));
        }
        must_pass(&port, Direction::Out, &mut packet(&hot), Moment(1));
        g.bench_function(format!("uft-hit-hot/{n}"), |b| {
            b.iter_batched_ref(
                || packet(&hot),
                |p| must_pass(&port, Direction::Out, p, Moment(2)),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, engine, uft_scaling);
criterion_main!(benches);
