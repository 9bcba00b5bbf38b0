//! Time one VPC scenario in a plain loop, for profiling with `perf`
//! (criterion's harness gets in the way of a profile):
//!
//! ```text
//! cargo run --release -p bench --example hotloop -- V4-Udp-OUT-0B        # UFT hits
//! cargo run --release -p bench --example hotloop -- V4-Udp-OUT-0B slow   # first packets
//! cargo run --release -p bench --example hotloop -- Hairpin-DHCPv4/Discover
//! ```
//!
//! Packets are made (and, for first packets, the port reset) outside the
//! timed stretch; the figure is a rough mean, the benchmarks are the
//! measure. `HOTLOOP_ROUNDS` (200) sets how many batches of 2000 packets
//! run, for a longer profile.
use bench::Scenario;
use bench::vpc;
use opte::engine::{Direction, Moment};
use std::time::Instant;

fn main() {
    fakekernel::link_kernel_symbols();
    let which = std::env::args().nth(1).unwrap_or_else(|| "V4-Udp-IN-0B".into());
    let slow = std::env::args().nth(2).is_some();
    // More rounds make a longer profile.
    let rounds: u32 =
        std::env::var("HOTLOOP_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let (_net, port) = vpc::port(16);
    if let Some((name, bytes)) = vpc::hairpins().into_iter().find(|(n, _)| *n == which) {
        let mut total = std::time::Duration::ZERO;
        for _ in 0..rounds {
            let mut pkts: Vec<_> = (0..2000).map(|_| vpc::packet(Direction::Out, &bytes)).collect();
            let t = Instant::now();
            for p in &mut pkts {
                let _ = port.process(Direction::Out, p, Moment(2));
            }
            total += t.elapsed();
        }
        println!("{name}: {:.1} ns/packet", total.as_nanos() as f64 / (f64::from(rounds) * 2000.0));
        return;
    }
    let Some(s) = Scenario::all().into_iter().find(|s| s.suffix() == which) else {
        eprintln!("no scenario {which} (try V4-Udp-OUT-0B or Hairpin-DHCPv4/Discover)");
        std::process::exit(2);
    };
    let bytes = vpc::frame(&s, 60000);
    if !slow {
        let _ =
            port.process(s.dir.direction(), &mut vpc::packet(s.dir.direction(), &bytes), Moment(1));
    }
    let mut total = std::time::Duration::ZERO;
    let mut n = 0u64;
    for _ in 0..rounds {
        let mut pkts: Vec<_> = (0..2000u16)
            .map(|i| {
                vpc::packet(
                    s.dir.direction(),
                    &if slow { vpc::frame(&s, i) } else { bytes.clone() },
                )
            })
            .collect();
        let t = Instant::now();
        for p in &mut pkts {
            let _ = port.process(s.dir.direction(), p, Moment(2));
        }
        total += t.elapsed();
        n += pkts.len() as u64;
        drop(pkts);
        if slow {
            port.port().reset();
        }
    }
    println!("{which}: {:.1} ns/packet", total.as_nanos() as f64 / n as f64);
}
