//! A five-layer port for the engine benchmarks, shaped like a VPC guest
//! port: gateway (MAC rewrite), firewall (stateful allow out, deny in),
//! router (static), NAT (stateful source NAT with a port per flow) and
//! overlay (Geneve encapsulation pushed outbound).
//!
//! Scenario names: `engine/uft-hit/V4-Udp-OUT`, `engine/uft-miss/...`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use opte::engine::action::{
    Action, ActionDesc, ActionError, DefaultAction, StatefulAction, StaticAction,
};
use opte::engine::flow::FlowId;
use opte::engine::flow_table::ExpiryPolicy;
use opte::engine::layer::LayerSpec;
use opte::engine::meta::Meta;
use opte::engine::port::{Port, PortConfig};
use opte::engine::rule::RuleSpec;
use opte::engine::transform::{EtherMod, HdrTransform, IpMod, OuterOp, UlpMod};
use opte::engine::{Direction, Moment};
use opte::packet::{
    Encap, EtherHdr, GeneveHdr, GeneveOptions, Ipv6Hdr, OuterUdpCsum, Packet, UdpHdr,
};
use opte_api::{Ipv4Addr, MacAddr, Vni};

/// Rewrites one MAC in each direction.
struct SetMac(MacAddr);

impl fmt::Display for SetMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "set-mac {}", self.0)
    }
}

impl StaticAction for SetMac {
    fn gen_ht(
        &self,
        dir: Direction,
        _: &FlowId,
        _: &mut Meta,
    ) -> Result<HdrTransform, ActionError> {
        let m = match dir {
            Direction::Out => EtherMod { dst: Some(self.0), src: None },
            Direction::In => EtherMod { src: Some(self.0), dst: None },
        };
        Ok(HdrTransform { inner_eth: m, ..HdrTransform::NONE })
    }
}

/// Source NAT taking the next port of a counter (never released: the
/// benchmark measures the engine, not a port allocator).
struct Snat {
    ip: Ipv4Addr,
    next: AtomicU16,
}

struct SnatDesc {
    guest: Ipv4Addr,
    guest_port: u16,
    ip: Ipv4Addr,
    port: u16,
}

impl ActionDesc for SnatDesc {
    fn gen_ht(&self, dir: Direction) -> HdrTransform {
        match dir {
            Direction::Out => HdrTransform {
                inner_ip: Some(IpMod::V4 { src: Some(self.ip), dst: None }),
                inner_ulp: UlpMod { src_port: Some(self.port), ..Default::default() },
                ..HdrTransform::NONE
            },
            Direction::In => HdrTransform {
                inner_ip: Some(IpMod::V4 { src: None, dst: Some(self.guest) }),
                inner_ulp: UlpMod { dst_port: Some(self.guest_port), ..Default::default() },
                ..HdrTransform::NONE
            },
        }
    }

    fn describe(&self) -> String {
        format!("SNAT {}:{}", self.ip, self.port)
    }
}

impl fmt::Display for Snat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "snat {}", self.ip)
    }
}

impl StatefulAction for Snat {
    fn gen_desc(
        &self,
        _: Direction,
        flow: &FlowId,
        _: &mut Meta,
        _previous: Option<&Arc<dyn ActionDesc>>,
    ) -> Result<Arc<dyn ActionDesc>, ActionError> {
        let std::net::IpAddr::V4(guest) = flow.src_ip() else {
            return Err(ActionError::NotApplicable("IPv4 only"));
        };
        let port = self.next.fetch_add(1, Ordering::Relaxed) | 1024;
        Ok(Arc::new(SnatDesc { guest, guest_port: flow.src_port, ip: self.ip, port }))
    }
}

/// Pushes Geneve outbound; pops it inbound (one shared encapsulation).
struct Overlay(Arc<Encap>);

impl fmt::Display for Overlay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("overlay")
    }
}

impl StaticAction for Overlay {
    fn gen_ht(
        &self,
        dir: Direction,
        _: &FlowId,
        _: &mut Meta,
    ) -> Result<HdrTransform, ActionError> {
        Ok(HdrTransform {
            outer: match dir {
                Direction::Out => OuterOp::Push(Arc::clone(&self.0)),
                Direction::In => OuterOp::Pop,
            },
            ..HdrTransform::NONE
        })
    }
}

/// The encapsulation the overlay layer pushes.
pub fn encap() -> Encap {
    Encap {
        eth: EtherHdr {
            dst: MacAddr::from_bytes([0xa8, 0x40, 0x25, 0, 0, 2]),
            src: MacAddr::from_bytes([0xa8, 0x40, 0x25, 0, 0, 1]),
            ether_type: 0,
        },
        ip6: Ipv6Hdr {
            hop_limit: 64,
            src: "fd00:1122:3344:101::1".parse().unwrap_or(std::net::Ipv6Addr::LOCALHOST),
            dst: "fd00:1122:3344:102::1".parse().unwrap_or(std::net::Ipv6Addr::LOCALHOST),
            ..Ipv6Hdr::EMPTY
        },
        udp: UdpHdr { src_port: 51234, dst_port: 6081, len: 0, csum: 0 },
        geneve: GeneveHdr::new(Vni::new(0x00ab_cdef).unwrap_or_default(), GeneveOptions::default()),
    }
}

fn layer(name: &'static str, din: DefaultAction, dout: DefaultAction) -> LayerSpec {
    LayerSpec { name, default_in: din, default_out: dout, lft_limit: 1 << 20, keep_flows: false }
}

/// The five-layer port, running.
pub fn five_layer_port(uft_limit: u32) -> Port {
    let cfg = PortConfig {
        name: "bench0".to_string(),
        layers: vec![
            layer("gateway", DefaultAction::Allow, DefaultAction::Allow),
            layer("firewall", DefaultAction::Deny, DefaultAction::StatefulAllow),
            layer("router", DefaultAction::Allow, DefaultAction::Allow),
            layer("nat", DefaultAction::Allow, DefaultAction::Allow),
            layer("overlay", DefaultAction::Allow, DefaultAction::Allow),
        ],
        uft_limit,
        tcp_limit: uft_limit,
        expiry: ExpiryPolicy::default(),
    };
    let port = Port::new(cfg, None);
    let gw = MacAddr::from_bytes([0xa8, 0x40, 0x25, 0xff, 0xff, 0xff]);
    let rules: [(&str, Action); 4] = [
        ("gateway", Action::Static(Arc::new(SetMac(gw)))),
        ("router", Action::Static(Arc::new(SetMac(gw)))),
        (
            "nat",
            Action::Stateful(Arc::new(Snat {
                ip: Ipv4Addr::new(203, 0, 113, 1),
                next: AtomicU16::new(0),
            })),
        ),
        ("overlay", Action::Static(Arc::new(Overlay(Arc::new(encap()))))),
    ];
    for (l, a) in rules {
        if let Err(e) = port.add_rule(l, Direction::Out, RuleSpec::new(10, a)) {
            panic!("benchmark rule refused: {e}");
        }
    }
    if let Err(e) = port.start() {
        panic!("benchmark port: {e}");
    }
    port
}

/// Run one packet through the port; panics unless it passed.
pub fn must_pass(port: &Port, dir: Direction, pkt: &mut Packet, now: Moment) {
    match port.process(dir, pkt, now) {
        opte::engine::port::ProcessResult::Modified => {}
        other => panic!("benchmark packet not passed: {other:?}"),
    }
}

/// Headroom for the overlay's encapsulation to be pushed in place.
pub const HEADROOM: usize = 128;

// Keep OuterUdpCsum referenced for readers of this module: the overlay
// pushes with a zero outer UDP checksum, as the underlay does.
const _: OuterUdpCsum = OuterUdpCsum::Zero;
