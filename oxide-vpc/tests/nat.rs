//! The NAT layer: SNAT, ephemeral and floating IPs for traffic routed to
//! an internet gateway, inbound translation, ICMP errors about NATed
//! flows, and reconfiguration of the external addresses.

mod common;

use common::*;
use opte::engine::Direction;
use opte::engine::action::ActionError;
use opte::engine::stats::DropReason;
use oxide_vpc::api::*;
use oxide_vpc::engine::PortLimits;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The MAC the boundary's frames carry (the gateway rewrites it).
const BOUNDARY_MAC: opte_api::MacAddr = opte_api::MacAddr::from_bytes([0x02, 0, 0, 0, 0, 0x99]);
const EPH_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const FIP1_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 21);
const FIP2_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 22);
const FIP1_V6: Ipv6Addr = Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 21);
/// A router on the way to the internet host (sends ICMP errors).
const ROUTER_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
const ROUTER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 1);

fn igw(n: u8) -> Uuid {
    Uuid::from_bytes([n; 16])
}

fn ip4(a: Ipv4Addr) -> IpAddr {
    IpAddr::V4(a)
}

fn ip6(a: Ipv6Addr) -> IpAddr {
    IpAddr::V6(a)
}

/// The standard port with boundaries for all of the internet.
fn internet(c: VpcCfg) -> Vpc {
    let v = Vpc::with(c, PortLimits::default());
    for r in system_routes() {
        v.port.add_route(r).unwrap();
    }
    for prefix in ["0.0.0.0/0", "::/0"] {
        v.net
            .set_v2b(V2bMapping {
                prefix: prefix.parse().unwrap(),
                boundaries: vec![TunnelEndpoint { ip: BOUNDARY, vni: vni(BOUNDARY_VNI) }],
            })
            .unwrap();
    }
    v
}

/// Allow inbound traffic of `protocol` from anywhere.
fn allow_in(v: &Vpc, protocol: FwProtocol) {
    v.port
        .add_fw_rule(FirewallRule {
            direction: Direction::In,
            priority: 100,
            action: FwAction::Allow,
            hosts: FwHosts::Any,
            protocol,
            ports: vec![],
        })
        .unwrap();
}

/// Send a guest frame; it must leave for the boundary, tagged external.
/// Returns the inner frame.
#[track_caller]
fn to_internet(v: &Vpc, frame: &[u8]) -> Vec<u8> {
    let (o, f) = decap(&v.out(frame).pass());
    assert_eq!((o.dst, o.vni, o.external), (BOUNDARY, BOUNDARY_VNI, true), "outer headers");
    f
}

/// A frame from the internet, as a boundary delivers it.
fn from_internet(inner: &[u8]) -> Vec<u8> {
    encap(BOUNDARY, HOST_A, BOUNDARY_VNI, true, inner)
}

fn guest_ip(v6: bool) -> IpAddr {
    if v6 { ip6(GUEST_V6) } else { ip4(GUEST_V4) }
}

fn inet(v6: bool) -> IpAddr {
    if v6 { ip6(INET_V6) } else { ip4(INET_V4) }
}

fn snat_ip(v6: bool) -> IpAddr {
    if v6 { ip6(SNAT_V6) } else { ip4(SNAT_V4) }
}

fn guest_udp(dst: IpAddr, sport: u16, dport: u16) -> Vec<u8> {
    let src = if dst.is_ipv4() { ip4(GUEST_V4) } else { ip6(GUEST_V6) };
    udp(GUEST_MAC, GW_MAC, src, sport, dst, dport, b"hello")
}

fn guest_tcp(dst: IpAddr, sport: u16, dport: u16, flags: &str) -> Vec<u8> {
    let src = if dst.is_ipv4() { ip4(GUEST_V4) } else { ip6(GUEST_V6) };
    tcp(GUEST_MAC, GW_MAC, src, sport, dst, dport, flags, 100, 1, b"")
}

/// A UDP datagram from the internet, encapsulated by the boundary.
fn inet_udp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Vec<u8> {
    from_internet(&udp(BOUNDARY_MAC, GW_MAC, src, sport, dst, dport, b"reply"))
}

fn inet_tcp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, flags: &str) -> Vec<u8> {
    from_internet(&tcp(BOUNDARY_MAC, GW_MAC, src, sport, dst, dport, flags, 7000, 101, b""))
}

/// An ICMP or ICMPv6 echo reply.
fn echo_reply(smac: opte_api::MacAddr, src: IpAddr, dst: IpAddr, id: u16) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(smac.bytes(), GW_MAC.bytes());
    let mut out = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            b.ipv4(s.octets(), d.octets(), 64)
                .icmpv4_echo_reply(id, 1)
                .write(&mut out, b"opte-ping-payload")
                .unwrap();
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            b.ipv6(s.octets(), d.octets(), 64)
                .icmpv6_echo_reply(id, 1)
                .write(&mut out, b"opte-ping-payload")
                .unwrap();
        }
        _ => panic!("mixed families"),
    }
    out
}

/// An ICMP error (time exceeded: v4 type 11, v6 type 3; or port
/// unreachable: v4 3/3, v6 1/4) from `src` to `dst` quoting `quoted` (an
/// Ethernet frame; its IP datagram is quoted whole).
fn icmp_error(
    smac: opte_api::MacAddr,
    dmac: opte_api::MacAddr,
    src: IpAddr,
    dst: IpAddr,
    unreachable: bool,
    quoted: &[u8],
) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(smac.bytes(), dmac.bytes());
    let body = &quoted[14..];
    let mut out = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let (ty, code) = if unreachable { (3, 3) } else { (11, 0) };
            b.ipv4(s.octets(), d.octets(), 64).icmpv4_raw(ty, code, [0; 4]).write(&mut out, body)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let (ty, code) = if unreachable { (1, 4) } else { (3, 0) };
            b.ipv6(s.octets(), d.octets(), 64).icmpv6_raw(ty, code, [0; 4]).write(&mut out, body)
        }
        _ => panic!("mixed families"),
    }
    .unwrap();
    out
}

/// The packet an ICMP error frame quotes: addresses, ports, and whether
/// its IPv4 header and UDP checksums verify.
#[derive(Debug, PartialEq, Eq)]
struct Quoted {
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    checksums_ok: bool,
}

#[track_caller]
fn quoted(frame: &[u8]) -> Quoted {
    let p = etherparse::SlicedPacket::from_ethernet(frame).expect("frame parses");
    let payload = match &p.transport {
        Some(etherparse::TransportSlice::Icmpv4(i)) => i.payload(),
        Some(etherparse::TransportSlice::Icmpv6(i)) => i.payload(),
        t => panic!("not ICMP: {t:?}"),
    };
    let q = etherparse::PacketHeaders::from_ip_slice(payload).expect("quote parses");
    let qp = q.payload.slice();
    let (src, dst, ip_ok) = match &q.net {
        Some(etherparse::NetHeaders::Ipv4(h, _)) => (
            ip4(Ipv4Addr::from(h.source)),
            ip4(Ipv4Addr::from(h.destination)),
            h.header_checksum == h.calc_header_checksum(),
        ),
        Some(etherparse::NetHeaders::Ipv6(h, _)) => {
            (ip6(Ipv6Addr::from(h.source)), ip6(Ipv6Addr::from(h.destination)), true)
        }
        _ => panic!("quote without IP"),
    };
    let (sport, dport, ulp_ok) = match (&q.net, &q.transport) {
        (Some(etherparse::NetHeaders::Ipv4(h, _)), Some(etherparse::TransportHeader::Udp(u))) => (
            u.source_port,
            u.destination_port,
            u.calc_checksum_ipv4(h, qp).ok() == Some(u.checksum),
        ),
        (Some(etherparse::NetHeaders::Ipv6(h, _)), Some(etherparse::TransportHeader::Udp(u))) => (
            u.source_port,
            u.destination_port,
            u.calc_checksum_ipv6(h, qp).ok() == Some(u.checksum),
        ),
        (_, Some(etherparse::TransportHeader::Tcp(t))) => (t.source_port, t.destination_port, true),
        (_, Some(etherparse::TransportHeader::Icmpv4(i))) => {
            let etherparse::Icmpv4Type::EchoRequest(e) = i.icmp_type else { panic!("{i:?}") };
            (e.id, e.id, i.icmp_type.calc_checksum(qp) == i.checksum)
        }
        (
            Some(etherparse::NetHeaders::Ipv6(h, _)),
            Some(etherparse::TransportHeader::Icmpv6(i)),
        ) => {
            let etherparse::Icmpv6Type::EchoRequest(e) = i.icmp_type else { panic!("{i:?}") };
            let ok =
                i.icmp_type.calc_checksum(h.source, h.destination, qp).ok() == Some(i.checksum);
            (e.id, e.id, ok)
        }
        t => panic!("quote transport {t:?}"),
    };
    Quoted { src, dst, sport, dport, checksums_ok: ip_ok && ulp_ok }
}

fn nat_drop(error: ActionError) -> DropReason {
    DropReason::Action { layer: "nat", error }
}

#[track_caller]
fn denied_by_nat(r: DropReason) {
    assert!(matches!(r, DropReason::Denied { layer: "nat", rule: Some(_) }), "{r:?}");
}

/// The standard configuration with these external addresses on IPv4
/// (IPv6 keeps its SNAT).
fn cfg_v4(external: ExternalIps<Ipv4Addr>) -> VpcCfg {
    let mut c = cfg();
    c.ipv4.as_mut().unwrap().external = external;
    c
}

fn snat4(first: u16, last: u16, igw: Option<Uuid>) -> Option<SNatCfg<Ipv4Addr>> {
    Some(SNatCfg { ip: SNAT_V4, first_port: first, last_port: last, igw })
}

fn ext4(ip: Ipv4Addr, igw: Option<Uuid>) -> ExternalIp<Ipv4Addr> {
    ExternalIp { ip, igw }
}

// ---------------------------------------------------------------- SNAT

#[test]
fn snat_rewrites_the_source_and_translates_replies_back_on_both_families() {
    let k = fakekernel::scope();
    let v = internet(cfg());
    for v6 in [false, true] {
        // UDP out: the SNAT address and a port of the range.
        let f = to_internet(&v, &guest_udp(inet(v6), 5000, 53));
        let i = inner(&f);
        assert_eq!((i.src, i.dst, i.dport), (snat_ip(v6), inet(v6), 53));
        assert!((SNAT_FIRST..=SNAT_LAST).contains(&i.sport), "port {}", i.sport);
        // The same flow keeps its port.
        assert_eq!(inner(&to_internet(&v, &guest_udp(inet(v6), 5000, 53))).sport, i.sport);
        // The reply comes back to the guest's own address and port.
        let back = inner(&v.inb(&inet_udp(inet(v6), 53, snat_ip(v6), i.sport)).pass());
        assert_eq!(
            (back.src, back.dst, back.sport, back.dport),
            (inet(v6), guest_ip(v6), 53, 5000)
        );
        assert_eq!(back.dst_mac, GUEST_MAC);

        // TCP: handshake through the translation.
        let syn = inner(&to_internet(&v, &guest_tcp(inet(v6), 40000, 443, "S")));
        assert_eq!(syn.src, snat_ip(v6));
        assert!((SNAT_FIRST..=SNAT_LAST).contains(&syn.sport));
        let synack = inner(&v.inb(&inet_tcp(inet(v6), 443, snat_ip(v6), syn.sport, "SA")).pass());
        assert_eq!((synack.dst, synack.dport), (guest_ip(v6), 40000));
        let ack = inner(&to_internet(&v, &guest_tcp(inet(v6), 40000, 443, "A")));
        assert_eq!((ack.src, ack.sport), (snat_ip(v6), syn.sport));
    }
    drop(v);
    k.assert_clean();
}

#[test]
fn icmp_echo_ids_are_translated_out_and_back() {
    let k = fakekernel::scope();
    let v = internet(cfg());
    for v6 in [false, true] {
        let out = to_internet(&v, &echo(GUEST_MAC, GW_MAC, guest_ip(v6), inet(v6), 0x4242, 1));
        let i = inner(&out);
        assert_eq!(i.src, snat_ip(v6));
        assert_ne!(i.sport, 0x4242, "echo id rewritten");
        assert!((SNAT_FIRST..=SNAT_LAST).contains(&i.sport));
        let reply = from_internet(&echo_reply(BOUNDARY_MAC, inet(v6), snat_ip(v6), i.sport));
        let back = inner(&v.inb(&reply).pass());
        assert_eq!((back.src, back.dst, back.sport), (inet(v6), guest_ip(v6), 0x4242));
    }
    drop(v);
    k.assert_clean();
}

#[test]
fn tcp_udp_and_icmp_have_separate_pools_and_exhaustion_is_a_counted_drop() {
    let k = fakekernel::scope();
    let v = internet(cfg_v4(ExternalIps {
        snat: snat4(2000, 2001, None),
        ephemeral_ip: None,
        floating_ips: vec![],
    }));
    let dst = ip4(INET_V4);
    let mut tcp_ports = std::collections::BTreeSet::new();
    for sport in [40000, 40001] {
        tcp_ports.insert(inner(&to_internet(&v, &guest_tcp(dst, sport, 443, "S"))).sport);
    }
    assert_eq!(tcp_ports, [2000, 2001].into());
    // A third TCP flow finds its pool empty...
    let r = v.out(&guest_tcp(dst, 40002, 443, "S")).dropped();
    assert_eq!(r, nat_drop(ActionError::Exhausted("SNAT ports")));
    assert_eq!(v.port.port().stats().drop_exhausted, 1);
    assert_eq!(v.port.port().dump_layer("nat").unwrap().stats.action_errors, 1);
    // ... while UDP and ICMP echo still have theirs.
    for sport in [5000, 5001] {
        let p = inner(&to_internet(&v, &guest_udp(dst, sport, 53))).sport;
        assert!((2000..=2001).contains(&p));
    }
    for id in [7, 8] {
        let p = inner(&to_internet(&v, &echo(GUEST_MAC, GW_MAC, ip4(GUEST_V4), dst, id, 1))).sport;
        assert!((2000..=2001).contains(&p));
    }
    assert_eq!(
        v.out(&guest_udp(dst, 5002, 53)).dropped(),
        nat_drop(ActionError::Exhausted("SNAT ports"))
    );
    assert_eq!(v.port.port().stats().drop_exhausted, 2);
    drop(v);
    k.assert_clean();
}

#[test]
fn snat_ports_return_to_the_pool_when_flows_expire() {
    let k = fakekernel::scope();
    let v = internet(cfg_v4(ExternalIps {
        snat: snat4(3000, 3000, None),
        ephemeral_ip: None,
        floating_ips: vec![],
    }));
    let dst = ip4(INET_V4);
    assert_eq!(inner(&to_internet(&v, &guest_udp(dst, 5000, 53))).sport, 3000);
    assert_eq!(
        v.out(&guest_udp(dst, 5001, 53)).dropped(),
        nat_drop(ActionError::Exhausted("SNAT ports"))
    );
    // A dropped first packet leaves nothing behind; idle time frees the
    // first flow's port.
    v.advance(60);
    v.expire();
    assert_eq!(
        v.out(&guest_udp(dst, 5001, 53)).dropped(),
        nat_drop(ActionError::Exhausted("SNAT ports"))
    );
    v.advance(121);
    assert!(v.expire() > 0);
    assert_eq!(inner(&to_internet(&v, &guest_udp(dst, 5001, 53))).sport, 3000);
    drop(v);
    k.assert_clean();
}

#[test]
fn what_snat_cannot_translate_is_a_counted_drop_and_one_to_one_translates_it() {
    let k = fakekernel::scope();
    let v = internet(cfg());
    // GRE (47): no ports.
    let gre = raw_ipv4(GUEST_V4, INET_V4, 47, b"\x00\x00\x08\x00payload!");
    let r = v.out(&gre).dropped();
    assert!(
        matches!(r, DropReason::Action { layer: "nat", error: ActionError::NotApplicable(_) }),
        "{r:?}"
    );
    // An ICMP timestamp request: no echo identifier to map.
    let mut ts = Vec::new();
    etherparse::PacketBuilder::ethernet2(GUEST_MAC.bytes(), GW_MAC.bytes())
        .ipv4(GUEST_V4.octets(), INET_V4.octets(), 64)
        .icmpv4_raw(13, 0, [0, 1, 0, 1])
        .write(&mut ts, &[0; 12])
        .unwrap();
    let r = v.out(&ts).dropped();
    assert!(
        matches!(r, DropReason::Action { layer: "nat", error: ActionError::NotApplicable(_) }),
        "{r:?}"
    );
    assert_eq!(v.port.port().stats().drop_action, 2);
    drop(v);

    // With an ephemeral IP the address alone is translated.
    let v = internet(cfg_v4(ExternalIps {
        snat: snat4(SNAT_FIRST, SNAT_LAST, None),
        ephemeral_ip: Some(ext4(EPH_V4, None)),
        floating_ips: vec![],
    }));
    let i = inner(&to_internet(&v, &ts));
    assert_eq!((i.src, i.dst), (ip4(EPH_V4), ip4(INET_V4)));
    drop(v);
    k.assert_clean();
}

/// A guest frame of IP protocol `proto` with no transport header we know.
fn raw_ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = etherparse::Ipv4Header::new(
        payload.len() as u16,
        64,
        etherparse::IpNumber(proto),
        src.octets(),
        dst.octets(),
    )
    .unwrap();
    h.header_checksum = h.calc_header_checksum();
    let mut out = Vec::new();
    out.extend(GW_MAC.bytes());
    out.extend(GUEST_MAC.bytes());
    out.extend([0x08, 0x00]);
    h.write(&mut out).unwrap();
    out.extend(payload);
    out
}

// ---------------------------------------------------------------- one-to-one

#[test]
fn the_ephemeral_ip_is_preferred_over_snat_and_keeps_ports() {
    let k = fakekernel::scope();
    let v = internet(cfg_v4(ExternalIps {
        snat: snat4(SNAT_FIRST, SNAT_LAST, None),
        ephemeral_ip: Some(ext4(EPH_V4, None)),
        floating_ips: vec![],
    }));
    let i = inner(&to_internet(&v, &guest_udp(ip4(INET_V4), 5000, 53)));
    assert_eq!((i.src, i.sport), (ip4(EPH_V4), 5000));
    let back = inner(&v.inb(&inet_udp(ip4(INET_V4), 53, ip4(EPH_V4), 5000)).pass());
    assert_eq!((back.dst, back.dport), (ip4(GUEST_V4), 5000));
    // IPv6 has only SNAT.
    assert_eq!(inner(&to_internet(&v, &guest_udp(ip6(INET_V6), 5000, 53))).src, ip6(SNAT_V6));
    drop(v);
    k.assert_clean();
}

#[test]
fn floating_ips_come_first_and_flows_spread_over_them() {
    let k = fakekernel::scope();
    let mut c = cfg_v4(ExternalIps {
        snat: snat4(SNAT_FIRST, SNAT_LAST, None),
        ephemeral_ip: Some(ext4(EPH_V4, None)),
        floating_ips: vec![ext4(FIP1_V4, None), ext4(FIP2_V4, None)],
    });
    c.ipv6.as_mut().unwrap().external.floating_ips = vec![ExternalIp { ip: FIP1_V6, igw: None }];
    let v = internet(c);
    let mut used = BTreeMap::new();
    for sport in 20000..20040u16 {
        let i = inner(&to_internet(&v, &guest_tcp(ip4(INET_V4), sport, 443, "S")));
        assert_eq!(i.sport, sport, "one-to-one keeps ports");
        assert!(i.src == ip4(FIP1_V4) || i.src == ip4(FIP2_V4), "{}", i.src);
        // Every packet of a flow leaves from the same address.
        assert_eq!(inner(&to_internet(&v, &guest_tcp(ip4(INET_V4), sport, 443, "A"))).src, i.src);
        *used.entry(i.src).or_insert(0) += 1;
    }
    assert_eq!(used.len(), 2, "both floating IPs used: {used:?}");
    assert_eq!(inner(&to_internet(&v, &guest_udp(ip6(INET_V6), 5000, 53))).src, ip6(FIP1_V6));
    drop(v);
    k.assert_clean();
}

#[test]
fn inbound_to_each_external_ip_kind() {
    let k = fakekernel::scope();
    let v = internet(cfg_v4(ExternalIps {
        snat: snat4(SNAT_FIRST, SNAT_LAST, None),
        ephemeral_ip: Some(ext4(EPH_V4, None)),
        floating_ips: vec![ext4(FIP1_V4, None), ext4(FIP2_V4, None)],
    }));
    allow_in(&v, FwProtocol::Tcp);
    // To each floating IP and the ephemeral IP: the guest gets it, and its
    // replies leave from the address the flow came in on (whatever the
    // hash would pick for a new outbound flow).
    for (n, ext) in [FIP1_V4, FIP2_V4, EPH_V4].into_iter().enumerate() {
        let rport = 33000 + n as u16;
        let syn = inner(&v.inb(&inet_tcp(ip4(INET_V4), rport, ip4(ext), 22, "S")).pass());
        assert_eq!(
            (syn.src, syn.dst, syn.sport, syn.dport),
            (ip4(INET_V4), ip4(GUEST_V4), rport, 22)
        );
        let synack = inner(&to_internet(&v, &guest_tcp(ip4(INET_V4), 22, rport, "SA")));
        assert_eq!((synack.src, synack.sport, synack.dport), (ip4(ext), 22, rport));
        let ack = inner(&v.inb(&inet_tcp(ip4(INET_V4), rport, ip4(ext), 22, "A")).pass());
        assert_eq!(ack.dst, ip4(GUEST_V4));
    }
    // The SNAT address answers nothing that is no reply.
    denied_by_nat(v.inb(&inet_tcp(ip4(INET_V4), 34000, ip4(SNAT_V4), 2000, "S")).dropped());
    assert_eq!(v.port.port().stats().drop_denied_rule, 1);
    drop(v);
    k.assert_clean();
}

// ---------------------------------------------------------------- gateways

#[test]
fn external_ips_serve_only_their_internet_gateway() {
    let k = fakekernel::scope();
    let (a, b, other) = (igw(0xa), igw(0xb), igw(0xc));
    let v = internet(cfg_v4(ExternalIps {
        snat: snat4(SNAT_FIRST, SNAT_LAST, Some(b)),
        ephemeral_ip: Some(ext4(EPH_V4, Some(a))),
        floating_ips: vec![ext4(FIP1_V4, Some(a))],
    }));
    let route = |dest: &str, target| RouterEntry {
        dest: dest.parse().unwrap(),
        target: RouterTarget::InternetGateway(target),
        class: RouteClass::Custom,
    };
    v.port.add_route(route("203.0.113.0/25", Some(a))).unwrap();
    v.port.add_route(route("203.0.113.128/26", Some(b))).unwrap();
    v.port.add_route(route("203.0.113.192/26", Some(other))).unwrap();
    let src_to = |dst: Ipv4Addr| inner(&to_internet(&v, &guest_udp(ip4(dst), 5000, 53))).src;
    // Gateway a: the floating IP (ephemeral is valid too, but second).
    assert_eq!(src_to(Ipv4Addr::new(203, 0, 113, 10)), ip4(FIP1_V4));
    // Gateway b: only SNAT is valid for it.
    assert_eq!(src_to(Ipv4Addr::new(203, 0, 113, 130)), ip4(SNAT_V4));
    // The system default route is to any gateway: every address is valid.
    assert_eq!(src_to(INET_V4), ip4(FIP1_V4));
    // A gateway none of the addresses serves: refused, not leaked.
    denied_by_nat(v.out(&guest_udp(ip4(Ipv4Addr::new(203, 0, 113, 200)), 5000, 53)).dropped());
    drop(v);
    k.assert_clean();
}

#[test]
fn a_family_without_external_ips_cannot_reach_the_internet() {
    let k = fakekernel::scope();
    let mut c = cfg();
    c.ipv6.as_mut().unwrap().external = ExternalIps::default();
    let v = internet(c);
    denied_by_nat(v.out(&guest_udp(ip6(INET_V6), 5000, 53)).dropped());
    assert_eq!(inner(&to_internet(&v, &guest_udp(ip4(INET_V4), 5000, 53))).src, ip4(SNAT_V4));
    drop(v);
    k.assert_clean();
}

// ---------------------------------------------------------------- reconfiguration

#[test]
fn reconfiguration_keeps_flows_on_addresses_that_stay_and_moves_the_others() {
    let k = fakekernel::scope();
    let v = internet(cfg());
    let dst = ip4(INET_V4);
    let a = inner(&to_internet(&v, &guest_udp(dst, 5000, 53)));
    assert_eq!(a.src, ip4(SNAT_V4));

    // Adding an ephemeral IP: the SNAT flow keeps its address and port,
    // new flows take the ephemeral IP.
    let with_eph = ExternalIps {
        snat: snat4(SNAT_FIRST, SNAT_LAST, None),
        ephemeral_ip: Some(ext4(EPH_V4, None)),
        floating_ips: vec![],
    };
    v.port.set_external_ips(Some(with_eph), None).unwrap();
    let again = inner(&to_internet(&v, &guest_udp(dst, 5000, 53)));
    assert_eq!((again.src, again.sport), (a.src, a.sport));
    let b = inner(&to_internet(&v, &guest_udp(dst, 6000, 53)));
    assert_eq!((b.src, b.sport), (ip4(EPH_V4), 6000));
    // Replies of both still come back.
    assert_eq!(inner(&v.inb(&inet_udp(dst, 53, ip4(SNAT_V4), a.sport)).pass()).dport, 5000);
    assert_eq!(inner(&v.inb(&inet_udp(dst, 53, ip4(EPH_V4), 6000)).pass()).dport, 6000);

    // Removing the ephemeral IP again: its flow moves to SNAT; the SNAT
    // flow stays where it was.
    v.port.set_external_ips(Some(cfg().ipv4.unwrap().external), None).unwrap();
    let moved = inner(&to_internet(&v, &guest_udp(dst, 6000, 53)));
    assert_eq!(moved.src, ip4(SNAT_V4));
    assert!((SNAT_FIRST..=SNAT_LAST).contains(&moved.sport));
    assert_ne!(moved.sport, a.sport);
    let still = inner(&to_internet(&v, &guest_udp(dst, 5000, 53)));
    assert_eq!((still.src, still.sport), (a.src, a.sport));

    // A new SNAT address: every SNAT flow moves to it.
    let new_snat = Ipv4Addr::new(10, 77, 77, 14);
    v.port
        .set_external_ips(
            Some(ExternalIps {
                snat: Some(SNatCfg {
                    ip: new_snat,
                    first_port: SNAT_FIRST,
                    last_port: SNAT_LAST,
                    igw: None,
                }),
                ephemeral_ip: None,
                floating_ips: vec![],
            }),
            None,
        )
        .unwrap();
    // A reply arriving before the guest sends again no longer reaches it
    // through the old address: the flow's reply decision is withdrawn.
    v.inb(&inet_udp(dst, 53, ip4(SNAT_V4), a.sport)).dropped();
    assert_eq!(inner(&to_internet(&v, &guest_udp(dst, 5000, 53))).src, ip4(new_snat));
    assert_eq!(inner(&to_internet(&v, &guest_udp(dst, 6000, 53))).src, ip4(new_snat));
    // Nothing reaches the guest through the old address any more.
    v.inb(&inet_udp(dst, 53, ip4(SNAT_V4), a.sport)).dropped();
    drop(v);
    k.assert_clean();
}

#[test]
fn removing_a_floating_ip_moves_only_its_flows() {
    let k = fakekernel::scope();
    let two = ExternalIps {
        snat: snat4(SNAT_FIRST, SNAT_LAST, None),
        ephemeral_ip: None,
        floating_ips: vec![ext4(FIP1_V4, None), ext4(FIP2_V4, None)],
    };
    let v = internet(cfg_v4(two));
    let dst = ip4(INET_V4);
    let mut on: BTreeMap<u16, IpAddr> = BTreeMap::new();
    for sport in 21000..21016u16 {
        on.insert(sport, inner(&to_internet(&v, &guest_udp(dst, sport, 53))).src);
    }
    assert!(on.values().any(|a| *a == ip4(FIP1_V4)) && on.values().any(|a| *a == ip4(FIP2_V4)));
    // Drop FIP2 and add a third, listed first: flows on FIP1 stay (where
    // a fresh hash would send many of them to the new one), FIP2's move.
    let fip3 = Ipv4Addr::new(198, 51, 100, 23);
    v.port
        .set_external_ips(
            Some(ExternalIps {
                snat: snat4(SNAT_FIRST, SNAT_LAST, None),
                ephemeral_ip: None,
                floating_ips: vec![ext4(fip3, None), ext4(FIP1_V4, None)],
            }),
            None,
        )
        .unwrap();
    for (sport, was) in &on {
        let now = inner(&to_internet(&v, &guest_udp(dst, *sport, 53)));
        assert_eq!(now.sport, *sport);
        if *was == ip4(FIP1_V4) {
            assert_eq!(now.src, *was, "flow from port {sport} kept its address");
        } else {
            assert!(now.src == ip4(FIP1_V4) || now.src == ip4(fip3), "moved to {}", now.src);
        }
    }
    drop(v);
    k.assert_clean();
}

// ---------------------------------------------------------------- ICMP errors

#[test]
fn icmp_errors_about_snat_flows_reach_the_guest_about_its_own_packet() {
    let k = fakekernel::scope();
    let v = internet(cfg());
    allow_in(&v, FwProtocol::Icmp(None));
    allow_in(&v, FwProtocol::Icmpv6(None));
    for v6 in [false, true] {
        let router = if v6 { ip6(ROUTER_V6) } else { ip4(ROUTER_V4) };
        let sent = to_internet(&v, &guest_udp(inet(v6), 5000, 33434));
        let ext_port = inner(&sent).sport;
        // A router on the way says the TTL ran out, quoting what it got.
        let err = icmp_error(BOUNDARY_MAC, GW_MAC, router, snat_ip(v6), false, &sent);
        let got = v.inb(&from_internet(&err)).pass();
        let i = inner(&got); // checks the ICMP checksum
        assert_eq!((i.src, i.dst, i.dst_mac), (router, guest_ip(v6), GUEST_MAC));
        assert_eq!(
            quoted(&got),
            Quoted {
                src: guest_ip(v6),
                dst: inet(v6),
                sport: 5000,
                dport: 33434,
                checksums_ok: true
            }
        );
        // An error quoting a port no flow holds goes nowhere.
        let stray = udp(GUEST_MAC, GW_MAC, snat_ip(v6), ext_port + 1, inet(v6), 33434, b"hello");
        let err = icmp_error(BOUNDARY_MAC, GW_MAC, router, snat_ip(v6), false, &stray);
        let r = v.inb(&from_internet(&err)).dropped();
        assert_eq!(r, DropReason::Handled { layer: "nat", why: "ICMP error quotes no NAT flow" });
    }
    // The guest's own error about a reply that came in on a SNAT flow
    // leaves from the SNAT address, quoting the reply as it arrived.
    let sent = inner(&to_internet(&v, &guest_udp(ip4(INET_V4), 5100, 53)));
    let reply = v.inb(&inet_udp(ip4(INET_V4), 53, ip4(SNAT_V4), sent.sport)).pass();
    let unreach = icmp_error(GUEST_MAC, GW_MAC, ip4(GUEST_V4), ip4(INET_V4), true, &reply);
    let out = to_internet(&v, &unreach);
    assert_eq!((inner(&out).src, inner(&out).dst), (ip4(SNAT_V4), ip4(INET_V4)));
    assert_eq!(
        quoted(&out),
        Quoted {
            src: ip4(INET_V4),
            dst: ip4(SNAT_V4),
            sport: 53,
            dport: sent.sport,
            checksums_ok: true
        }
    );
    // Traceroute by ping: the quoted echo identifier is the guest's again.
    for v6 in [false, true] {
        let router = if v6 { ip6(ROUTER_V6) } else { ip4(ROUTER_V4) };
        let sent = to_internet(&v, &echo(GUEST_MAC, GW_MAC, guest_ip(v6), inet(v6), 0x5150, 3));
        assert_ne!(inner(&sent).sport, 0x5150);
        let err = icmp_error(BOUNDARY_MAC, GW_MAC, router, snat_ip(v6), false, &sent);
        let got = v.inb(&from_internet(&err)).pass();
        assert_eq!(inner(&got).dst, guest_ip(v6));
        let q = quoted(&got);
        assert_eq!((q.src, q.dst, q.sport, q.checksums_ok), (guest_ip(v6), inet(v6), 0x5150, true));
    }
    // A TCP flow's port unreachable, too.
    let sent = to_internet(&v, &guest_tcp(ip4(INET_V4), 41000, 80, "S"));
    let err = icmp_error(BOUNDARY_MAC, GW_MAC, ip4(INET_V4), ip4(SNAT_V4), true, &sent);
    let got = v.inb(&from_internet(&err)).pass();
    inner(&got);
    let q = quoted(&got);
    assert_eq!((q.src, q.sport, q.dport), (ip4(GUEST_V4), 41000, 80));
    assert_eq!(v.port.port().stats().drop_handled, 2);
    drop(v);
    k.assert_clean();
}

#[test]
fn icmp_errors_on_one_to_one_flows_are_translated_both_ways() {
    let k = fakekernel::scope();
    let mut c = cfg_v4(ExternalIps {
        snat: snat4(SNAT_FIRST, SNAT_LAST, None),
        ephemeral_ip: None,
        floating_ips: vec![ext4(FIP1_V4, None), ext4(FIP2_V4, None)],
    });
    c.ipv6.as_mut().unwrap().external.floating_ips = vec![ExternalIp { ip: FIP1_V6, igw: None }];
    let v = internet(c);
    allow_in(&v, FwProtocol::Udp);
    allow_in(&v, FwProtocol::Icmp(None));
    allow_in(&v, FwProtocol::Icmpv6(None));
    let fips: [(IpAddr, IpAddr, IpAddr); 3] = [
        (ip4(FIP1_V4), ip4(INET_V4), ip4(ROUTER_V4)),
        (ip4(FIP2_V4), ip4(INET_V4), ip4(ROUTER_V4)),
        (ip6(FIP1_V6), ip6(INET_V6), ip6(ROUTER_V6)),
    ];
    for (n, (fip, remote, router)) in fips.into_iter().enumerate() {
        let rport = 44000 + n as u16;
        // A datagram to the floating IP reaches the guest, which answers
        // port unreachable: the error leaves from the floating IP,
        // quoting the datagram as it was sent.
        let dgram = v.inb(&inet_udp(remote, rport, fip, 9999)).pass();
        assert_eq!(inner(&dgram).dst, guest_ip(fip.is_ipv6()));
        let unreach = icmp_error(GUEST_MAC, GW_MAC, guest_ip(fip.is_ipv6()), remote, true, &dgram);
        let out = to_internet(&v, &unreach);
        let i = inner(&out);
        assert_eq!((i.src, i.dst), (fip, remote));
        assert_eq!(
            quoted(&out),
            Quoted { src: remote, dst: fip, sport: rport, dport: 9999, checksums_ok: true }
        );

        // Inbound: an error about what the guest sent from the floating
        // IP reaches the guest about its own packet.
        let sent = v.out(&guest_udp(remote, 9999, rport)).pass();
        let (_, sent) = decap(&sent);
        assert_eq!(inner(&sent).src, fip, "the reply left from the floating IP");
        let err = icmp_error(BOUNDARY_MAC, GW_MAC, router, fip, false, &sent);
        let got = v.inb(&from_internet(&err)).pass();
        assert_eq!(inner(&got).dst, guest_ip(fip.is_ipv6()));
        let q = quoted(&got);
        assert_eq!(
            (q.src, q.dst, q.sport, q.checksums_ok),
            (guest_ip(fip.is_ipv6()), remote, 9999, true)
        );
    }
    // An error from the guest about nothing that came through NAT stays in.
    let bogus = udp(BOUNDARY_MAC, GUEST_MAC, ip4(INET_V4), 1, ip4(GUEST_V4), 2, b"x");
    let unreach = icmp_error(GUEST_MAC, GW_MAC, ip4(GUEST_V4), ip4(INET_V4), true, &bogus);
    let r = v.out(&unreach).dropped();
    assert_eq!(r, DropReason::Handled { layer: "nat", why: "ICMP error quotes no NAT flow" });
    drop(v);
    k.assert_clean();
}

// ---------------------------------------------------------------- attached subnets

#[test]
fn external_attached_subnets_are_never_translated() {
    let k = fakekernel::scope();
    let mut c = cfg();
    c.attached_subnets =
        vec![AttachedSubnet { cidr: "203.0.113.0/28".parse().unwrap(), external: true }];
    let v = internet(c);
    let from = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5));
    let f = udp(GUEST_MAC, GW_MAC, from, 5000, ip4(INET_V4), 53, b"hi");
    let i = inner(&to_internet(&v, &f));
    assert_eq!((i.src, i.sport), (from, 5000));
    // Not to VPC-private addresses.
    let f = udp(GUEST_MAC, GW_MAC, from, 5000, ip4(PEER_V4), 53, b"hi");
    denied_by_nat(v.out(&f).dropped());
    // The private address is still translated.
    assert_eq!(inner(&to_internet(&v, &guest_udp(ip4(INET_V4), 5000, 53))).src, ip4(SNAT_V4));
    drop(v);
    k.assert_clean();
}
