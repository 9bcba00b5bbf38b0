//! The VPC benchmark scenario: one Oxide VPC port with the guest at
//! 172.30.0.5 / fd00::5 on 172.30.0.0/22 / fd00::/64, the gateway at .1 /
//! ::1, SNAT through an external IP (10.77.77.13 / fd99::13), the internet
//! behind one boundary, and a peer guest (.9 / ::9) on another host
//! reached through V2P.
//!
//! - Outbound ULP packets go from the guest to the internet: router,
//!   SNAT, Geneve to the boundary.
//! - Inbound ULP packets come from the peer guest on host B: Geneve
//!   removed, the firewall's inbound rule for the VPC subnet lets them in.
//!
//! Frames are built with the engine's own `FrameBuilder` and handed over
//! in one block with headroom for the encapsulation, as a guest's would.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use opte::ddi::MsgBlk;
use opte::engine::Direction;
use opte::packet::*;
use opte_api::{IpCidr, Ipv4Cidr, Ipv6Cidr, MacAddr, Vni};
use oxide_vpc::api::*;
use oxide_vpc::engine::{PortLimits, VpcNetwork, VpcPort};

use crate::{Dir, Family, Proto, Scenario};

pub const GUEST_MAC: MacAddr = MacAddr::from_bytes([0xa8, 0x40, 0x25, 0xf7, 0x00, 0x05]);
pub const GW_MAC: MacAddr = MacAddr::from_bytes([0xa8, 0x40, 0x25, 0xff, 0x77, 0x77]);
pub const PEER_MAC: MacAddr = MacAddr::from_bytes([0xa8, 0x40, 0x25, 0xf7, 0x00, 0x09]);
pub const GUEST_V4: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 5);
pub const GW_V4: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 1);
pub const PEER_V4: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 9);
pub const GUEST_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 5);
pub const GW_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
pub const PEER_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 9);
pub const INET_V4: Ipv4Addr = Ipv4Addr::new(93, 184, 216, 34);
pub const INET_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x34);
pub const HOST_A: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 0xa);
pub const HOST_B: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 0xb);
pub const BOUNDARY: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 0x99);
pub const VNI: u32 = 7777;
/// Headroom of a guest frame (room for the Geneve headers).
pub const HEADROOM: usize = 128;

/// The port's configuration.
pub fn cfg() -> VpcCfg {
    let snat4 = SNatCfg {
        ip: Ipv4Addr::new(10, 77, 77, 13),
        first_port: 1025,
        last_port: 65535,
        igw: None,
    };
    let snat6 = SNatCfg {
        ip: Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 13),
        first_port: 1025,
        last_port: 65535,
        igw: None,
    };
    VpcCfg {
        guest_mac: GUEST_MAC,
        gateway_mac: GW_MAC,
        vni: vni(VNI),
        phys_ip: HOST_A,
        mtu: 1500,
        ipv4: Some(Ipv4Cfg {
            vpc_subnet: cidr4("172.30.0.0/22"),
            private_ip: GUEST_V4,
            gateway_ip: GW_V4,
            external: ExternalIps { snat: Some(snat4), ephemeral_ip: None, floating_ips: vec![] },
        }),
        ipv6: Some(Ipv6Cfg {
            vpc_subnet: cidr6("fd00::/64"),
            private_ip: GUEST_V6,
            gateway_ip: GW_V6,
            external: ExternalIps { snat: Some(snat6), ephemeral_ip: None, floating_ips: vec![] },
        }),
        dhcp: DhcpCfg {
            hostname: Some("bench".into()),
            domain: Some("vpc.example".into()),
            search: vec!["vpc.example".into()],
            dns4: vec![Ipv4Addr::new(8, 8, 8, 8)],
            dns6: vec![Ipv6Addr::new(0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8888)],
            lease_secs: None,
        },
        attached_subnets: vec![],
        transit: vec![],
        peerings: vec![],
    }
}

fn vni(v: u32) -> Vni {
    Vni::new(v).unwrap_or(Vni::ZERO)
}

fn cidr4(s: &str) -> opte_api::Ipv4Cidr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn cidr6(s: &str) -> opte_api::Ipv6Cidr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn cidr(s: &str) -> opte_api::IpCidr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// `n` firewall rules (at least 2): `n - 2` that the benchmark's packets
/// never match (each allows TCP to its own port from its own /24), then
/// one inbound rule per family letting the VPC subnet in.
pub fn fw_rules(n: usize) -> Vec<FirewallRule> {
    let mut rules: Vec<FirewallRule> = (0..n.saturating_sub(2))
        .map(|i| FirewallRule {
            direction: if i % 2 == 0 {
                opte::engine::Direction::In
            } else {
                opte::engine::Direction::Out
            },
            priority: 100 + (i % 1000) as u16,
            action: FwAction::Allow,
            hosts: FwHosts::Subnet(cidr(&format!("10.{}.{}.0/24", (i / 256) % 256, i % 256))),
            protocol: FwProtocol::Tcp,
            ports: vec![PortRange { first: 1000 + i as u16, last: 1000 + i as u16 }],
        })
        .collect();
    for subnet in ["172.30.0.0/22", "fd00::/64"] {
        rules.push(FirewallRule {
            direction: opte::engine::Direction::In,
            priority: 65000,
            action: FwAction::Allow,
            hosts: FwHosts::Subnet(cidr(subnet)),
            protocol: FwProtocol::Any,
            ports: vec![],
        });
    }
    rules
}

/// The port with `extra_rules` firewall rules (see [`fw_rules`]), the
/// system routes, one boundary for the internet and the peer's V2P.
pub fn port(extra_rules: usize) -> (Arc<VpcNetwork>, Arc<VpcPort>) {
    port_with_routes(extra_rules, 0)
}

/// [`port`] with `extra_routes` more custom routes, half IPv4 and half
/// IPv6, of mixed prefix lengths, none covering the scenarios' internet
/// destinations (which still leave by the default routes, the last a
/// router tries).
pub fn port_with_routes(
    extra_rules: usize,
    extra_routes: usize,
) -> (Arc<VpcNetwork>, Arc<VpcPort>) {
    let (net, p) = base_port(extra_rules);
    for i in 0..extra_routes {
        let n = (i / 2) as u32;
        // Every (length, n) names its own block, inside 10.0.0.0/3 or
        // fd10::/16: no two routes are the same.
        let dest = if i % 2 == 0 {
            let len = [24u8, 20, 28, 16][(n % 4) as usize];
            let addr = 0x0a00_0000 | (n << (32 - len));
            IpCidr::V4(Ipv4Cidr::new(Ipv4Addr::from(addr), len).expect("cidr"))
        } else {
            let len = [48u8, 56, 64, 40][(n % 4) as usize];
            let addr = (0xfd10_u128 << 112) | (u128::from(n) << (128 - len));
            IpCidr::V6(Ipv6Cidr::new(Ipv6Addr::from(addr), len).expect("cidr"))
        };
        let r = RouterEntry { dest, target: RouterTarget::Drop, class: RouteClass::Custom };
        p.add_route(r).unwrap_or_else(|e| panic!("route {i}: {e}"));
    }
    (net, p)
}

fn base_port(extra_rules: usize) -> (Arc<VpcNetwork>, Arc<VpcPort>) {
    let net = Arc::new(VpcNetwork::new());
    let limits = PortLimits { uft: 1 << 20, lft: 1 << 20, tcp: 1 << 20 };
    let p = match VpcPort::new("bench0", cfg(), net.clone(), limits, None) {
        Ok(p) => p,
        Err(e) => panic!("port: {e}"),
    };
    let sys = |d: &str, target| RouterEntry { dest: cidr(d), target, class: RouteClass::System };
    for r in [
        sys("172.30.0.0/22", RouterTarget::VpcSubnet(cidr("172.30.0.0/22"))),
        sys("fd00::/64", RouterTarget::VpcSubnet(cidr("fd00::/64"))),
        sys("0.0.0.0/0", RouterTarget::InternetGateway(None)),
        sys("::/0", RouterTarget::InternetGateway(None)),
    ] {
        p.add_route(r).unwrap_or_else(|e| panic!("route: {e}"));
    }
    p.set_fw_rules(fw_rules(extra_rules)).unwrap_or_else(|e| panic!("firewall: {e}"));
    for prefix in ["0.0.0.0/0", "::/0"] {
        net.set_v2b(V2bMapping {
            prefix: cidr(prefix),
            boundaries: vec![TunnelEndpoint { ip: BOUNDARY, vni: vni(BOUNDARY_VNI) }],
        })
        .unwrap_or_else(|e| panic!("v2b: {e}"));
    }
    for ip in [IpAddr::V4(PEER_V4), IpAddr::V6(PEER_V6)] {
        net.set_v2p(V2pMapping { vni: vni(VNI), ip, mac: PEER_MAC, host: HOST_B })
            .unwrap_or_else(|e| panic!("v2p: {e}"));
    }
    (net, p)
}

/// The frame of ULP scenario `s`, flow number `flow` (its guest-side
/// port varies): outbound from the guest to the internet, inbound from
/// the peer guest on host B.
pub fn frame(s: &Scenario, flow: u16) -> Vec<u8> {
    let (guest, far): (IpAddr, IpAddr) = match (s.family, s.dir.direction()) {
        (Family::V4, Direction::Out) => (GUEST_V4.into(), INET_V4.into()),
        (Family::V6, Direction::Out) => (GUEST_V6.into(), INET_V6.into()),
        (Family::V4, Direction::In) => (GUEST_V4.into(), PEER_V4.into()),
        (Family::V6, Direction::In) => (GUEST_V6.into(), PEER_V6.into()),
    };
    let gport = 10000u16.wrapping_add(flow);
    let (src, dst, sport, dport, smac, dmac) = match s.dir.direction() {
        Direction::Out => (guest, far, gport, 443, GUEST_MAC, GW_MAC),
        Direction::In => (far, guest, 443, gport, PEER_MAC, GUEST_MAC),
    };
    let mut fb = FrameBuilder::new(EtherHdr { dst: dmac, src: smac, ether_type: 0 });
    fb.l3 = Some(l3(
        src,
        dst,
        match s.proto {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        },
    ));
    fb.l4 = Some(match s.proto {
        Proto::Tcp => L4::Tcp(TcpHdr {
            src_port: sport,
            dst_port: dport,
            seq: 1,
            ack: 1,
            reserved: 0,
            flags: opte::packet::tcp::tcp_flags::ACK,
            window: 64000,
            csum: 0,
            urgent: 0,
            opt_len: 0,
            options: [0; 40],
        }),
        Proto::Udp => L4::Udp(UdpHdr { src_port: sport, dst_port: dport, len: 0, csum: 0 }),
    });
    if s.dir == Dir::In {
        fb.outer = Some(Encap {
            eth: EtherHdr { dst: MacAddr::ZERO, src: MacAddr::ZERO, ether_type: 0 },
            ip6: Ipv6Hdr { hop_limit: 64, src: HOST_B, dst: HOST_A, ..Ipv6Hdr::EMPTY },
            udp: UdpHdr { src_port: 51234, dst_port: 6081, len: 0, csum: 0 },
            geneve: GeneveHdr::new(vni(VNI), GeneveOptions::default()),
        });
    }
    fb.to_bytes(&vec![0x5a; s.body_len])
}

fn l3(src: IpAddr, dst: IpAddr, proto: u8) -> L3 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => L3::Ipv4(Ipv4Hdr {
            tos: 0,
            total_len: 0,
            ident: 7,
            flags_frag: Ipv4Hdr::DF,
            ttl: 64,
            proto,
            csum: 0,
            src: s,
            dst: d,
            opt_len: 0,
            options: [0; 40],
        }),
        (IpAddr::V6(s), IpAddr::V6(d)) => L3::Ipv6(Ipv6Hdr {
            hop_limit: 64,
            src: s,
            dst: d,
            next_hdr: proto,
            proto,
            ..Ipv6Hdr::EMPTY
        }),
        _ => panic!("mixed address families"),
    }
}

/// The guest's link-local address (EUI-64 of its MAC).
pub fn guest_link_local() -> Ipv6Addr {
    let m = GUEST_MAC.bytes();
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 2,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ])
}

/// A hairpin scenario: its benchmark name and frame.
pub fn hairpins() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("Hairpin-DHCPv4/Discover", dhcp4(1)),
        ("Hairpin-DHCPv4/Request", dhcp4(3)),
        ("Hairpin-DHCPv6/Solicit", dhcp6(1)),
        ("Hairpin-DHCPv6/Request", dhcp6(3)),
        ("Hairpin-ICMPv4/EchoRequest", echo(IpAddr::V4(GUEST_V4), IpAddr::V4(GW_V4))),
        ("Hairpin-ICMPv6/EchoRequest", echo(IpAddr::V6(GUEST_V6), IpAddr::V6(GW_V6))),
        ("Hairpin-ICMPv6/NeighborSolicit", ndp(true)),
        ("Hairpin-ICMPv6/RouterSolicit", ndp(false)),
    ]
}

fn echo(src: IpAddr, dst: IpAddr) -> Vec<u8> {
    let mut fb = FrameBuilder::new(EtherHdr { dst: GW_MAC, src: GUEST_MAC, ether_type: 0 });
    let (proto, ty) = if src.is_ipv4() { (1, 8) } else { (58, 128) };
    fb.l3 = Some(l3(src, dst, proto));
    fb.l4 = Some(if src.is_ipv4() {
        L4::Icmpv4(IcmpHdr { ty, code: 0, csum: 0, rest: [0x12, 0x34, 0, 1] })
    } else {
        L4::Icmpv6(IcmpHdr { ty, code: 0, csum: 0, rest: [0x12, 0x34, 0, 1] })
    });
    fb.to_bytes(b"abcdefghijklmnopqrstuvwabcdefghi")
}

fn ndp(ns: bool) -> Vec<u8> {
    let opts = NdpOptions { src_lla: Some(GUEST_MAC), ..NdpOptions::default() };
    let (src, dst, msg) = if ns {
        // To the solicited-node group of the gateway address.
        let g = GW_V6.octets();
        let group =
            Ipv6Addr::from([0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, g[13], g[14], g[15]]);
        (GUEST_V6, group, NdpMsg::NeighborSolicit { target: GW_V6, opts })
    } else {
        (
            guest_link_local(),
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2),
            NdpMsg::RouterSolicit { opts },
        )
    };
    let mut fb = FrameBuilder::new(EtherHdr {
        dst: MacAddr::ipv6_multicast(&dst.octets()),
        src: GUEST_MAC,
        ether_type: 0,
    });
    let mut ip = match l3(IpAddr::V6(src), IpAddr::V6(dst), 58) {
        L3::Ipv6(ip) => ip,
        _ => Ipv6Hdr::EMPTY,
    };
    ip.hop_limit = 255;
    fb.l3 = Some(L3::Ipv6(ip));
    fb.l4 = Some(L4::Icmpv6(IcmpHdr {
        ty: if ns { 135 } else { 133 },
        code: 0,
        csum: 0,
        rest: [0; 4],
    }));
    fb.ndp = Some(msg);
    fb.to_bytes(&[])
}

/// A DHCPv4 DISCOVER (1) or REQUEST (3) from the guest.
fn dhcp4(msg_type: u8) -> Vec<u8> {
    let mut b = vec![0u8; 236];
    b[0] = 1; // BOOTREQUEST
    b[1] = 1; // Ethernet
    b[2] = 6;
    b[4..8].copy_from_slice(&0x3903_f326u32.to_be_bytes()); // xid
    b[28..34].copy_from_slice(&GUEST_MAC.bytes()); // chaddr
    b.extend([99, 130, 83, 99]); // magic cookie
    b.extend([53, 1, msg_type]);
    if msg_type == 3 {
        b.extend([50, 4]);
        b.extend(GUEST_V4.octets());
        b.extend([54, 4]);
        b.extend(GW_V4.octets());
    }
    b.extend([55, 4, 1, 3, 6, 121, 255]);
    let mut fb =
        FrameBuilder::new(EtherHdr { dst: MacAddr::BROADCAST, src: GUEST_MAC, ether_type: 0 });
    fb.l3 = Some(l3(IpAddr::V4(Ipv4Addr::UNSPECIFIED), IpAddr::V4(Ipv4Addr::BROADCAST), 17));
    fb.l4 = Some(L4::Udp(UdpHdr { src_port: 68, dst_port: 67, len: 0, csum: 0 }));
    fb.to_bytes(&b)
}

/// A DHCPv6 SOLICIT (1) or REQUEST (3) from the guest's link-local
/// address.
fn dhcp6(msg_type: u8) -> Vec<u8> {
    let mut b = vec![msg_type, 0x5a, 0x3c, 0x01];
    let duid = |code: u8, mac: MacAddr| {
        let mut o = vec![0, code, 0, 10, 0, 3, 0, 1];
        o.extend(mac.bytes());
        o
    };
    b.extend(duid(1, GUEST_MAC)); // Client Identifier
    if msg_type == 3 {
        b.extend(duid(2, GW_MAC)); // Server Identifier
    }
    b.extend([0, 3, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]); // IA_NA, IAID 1
    b.extend([0, 8, 0, 2, 0, 0]); // Elapsed Time
    b.extend([0, 6, 0, 4, 0, 23, 0, 24]); // Option Request
    let servers = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
    let mut fb = FrameBuilder::new(EtherHdr {
        dst: MacAddr::ipv6_multicast(&servers.octets()),
        src: GUEST_MAC,
        ether_type: 0,
    });
    fb.l3 = Some(l3(IpAddr::V6(guest_link_local()), IpAddr::V6(servers), 17));
    fb.l4 = Some(L4::Udp(UdpHdr { src_port: 546, dst_port: 547, len: 0, csum: 0 }));
    fb.to_bytes(&b)
}

/// A packet from `bytes` (a guest frame outbound, an underlay frame
/// inbound), in one block with [`HEADROOM`].
pub fn packet(dir: Direction, bytes: &[u8]) -> Packet {
    let m = match MsgBlk::from_bytes(HEADROOM, bytes) {
        Ok(m) => m,
        Err(e) => panic!("allocation: {e:?}"),
    };
    let p = match dir {
        Direction::Out => Packet::parse_guest(m),
        Direction::In => Packet::parse_underlay(m),
    };
    match p {
        Ok(p) => p,
        Err(f) => panic!("parse: {:?}", f.error),
    }
}
