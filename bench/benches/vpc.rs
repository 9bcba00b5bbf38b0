//! The VPC per-packet benchmarks (see `bench::vpc` for the scenario):
//!
//! - `process/ULP-FastPath/{V4,V6}-{Tcp,Udp}-{IN,OUT}-{0B,1400B}`: a
//!   unified flow table hit;
//! - `process/ULP-SlowPath/...`: the first packet of a flow (every timed
//!   packet is a new flow; the port is reset between untimed batches);
//! - `process/Hairpin-*`: the gateway's replies;
//! - `process/ULP-SlowPath-FwRules/{16,256,4096}/V4-Tcp-IN-0B`: the first
//!   packet with that many firewall rules installed.
//! - `process/ULP-SlowPath-Routes/{16,256,4096}/V4-Tcp-OUT-0B`: the first
//!   packet to the internet with that many more custom routes, which the
//!   router must pass over to reach its default route.
//! - `network/v2p-lookup/{1000,100000,1000000}`: the overlay's V2P lookup
//!   (what each first packet to another guest does) in a host's table of
//!   that many mappings, for guests picked at random.
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
    let out = Scenario { family: Family::V4, proto: Proto::Tcp, dir: Dir::Out, body_len: 0 };
    for routes in [16, 256, 4096] {
        let (net, port) = vpc::port_with_routes(16, routes);
        g.bench_function(format!("ULP-SlowPath-Routes/{routes}/{}", out.suffix()), |b| {
            b.iter_custom(|iters| slow_path(&port, &out, iters))
        });
        drop((port, net));
    }
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

/// V2P lookups of random guests in tables of 10^3, 10^5 and 10^6.
fn network(c: &mut Criterion) {
    use oxide_vpc::api::V2pMapping;
    use oxide_vpc::engine::network::VpcNetwork;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    fakekernel::link_kernel_symbols();
    let mut g = c.benchmark_group("network");
    let vni = opte_api::Vni::new(7).expect("a VNI");
    let ip = |n: u32| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | n));
    for size in [1_000u32, 100_000, 1_000_000] {
        let net = VpcNetwork::new();
        for n in 0..size {
            let host = Ipv6Addr::from(0xfd00_u128 << 112 | u128::from(n % 64));
            let m = V2pMapping { vni, ip: ip(n), mac: opte_api::MacAddr::ZERO, host };
            if let Err(e) = net.set_v2p(m) {
                panic!("mapping {n}: {e}");
            }
        }
        // xorshift: the guests looked up, made beforehand.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let keys: Vec<IpAddr> = (0..1 << 16)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ip((x % u64::from(size)) as u32)
            })
            .collect();
        let mut i = 0usize;
        g.bench_function(format!("v2p-lookup/{size}"), |b| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                std::hint::black_box(net.v2p(vni, keys[i]).is_some())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, process, network);
criterion_main!(benches);
