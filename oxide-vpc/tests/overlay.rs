//! The overlay layer, packet by packet: guest-to-guest Geneve through
//! V2P, the VNI check inbound, peering, boundary selection through V2B,
//! and mapping changes reaching existing flows.

mod common;

use common::*;
use opte::engine::action::ActionError;
use opte::engine::stats::DropReason;
use opte_api::{IpCidr, MacAddr};
use oxide_vpc::api::*;
use oxide_vpc::engine::{PortLimits, VpcError};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn guest(dst: IpAddr) -> IpAddr {
    if dst.is_ipv4() { IpAddr::V4(GUEST_V4) } else { IpAddr::V6(GUEST_V6) }
}

#[test]
fn guest_to_guest_is_encapsulated_to_the_peer_host_and_replies_come_back() {
    let k = fakekernel::scope();
    let v = Vpc::standard().with_peer();
    for peer in [IpAddr::V4(PEER_V4), IpAddr::V6(PEER_V6)] {
        let out = v.out(&udp(GUEST_MAC, GW_MAC, guest(peer), 33000, peer, 7000, b"ping")).pass();
        let (o, inner_frame) = decap(&out);
        assert_eq!((o.src, o.dst, o.vni, o.external), (HOST_A, HOST_B, VNI, false));
        assert!(o.udp_src >= 49152, "ECMP source port from the flow hash: {}", o.udp_src);
        let i = inner(&inner_frame);
        assert_eq!((i.src_mac, i.dst_mac), (GUEST_MAC, PEER_MAC), "inner dst MAC is the peer's");
        assert_eq!((i.src, i.dst, i.sport, i.dport), (guest(peer), peer, 33000, 7000));

        // The peer's reply, encapsulated by host B, reaches the guest from
        // the gateway MAC.
        let reply = udp(PEER_MAC, GUEST_MAC, peer, 7000, guest(peer), 33000, b"pong");
        let back = v.inb(&encap(HOST_B, HOST_A, VNI, false, &reply)).pass();
        let i = inner(&back);
        assert_eq!((i.src_mac, i.dst_mac), (GW_MAC, GUEST_MAC));
        assert_eq!((i.src, i.dst, i.sport, i.dport), (peer, guest(peer), 7000, 33000));
    }
    drop(v);
    k.assert_clean();
}

#[test]
fn a_destination_without_a_mapping_is_a_counted_drop() {
    let k = fakekernel::scope();
    let v = Vpc::standard();
    let r = v.out(&from_guest_udp(IpAddr::V4(PEER_V4), 1, 2)).dropped();
    assert_eq!(
        r,
        DropReason::Action {
            layer: "overlay",
            error: ActionError::NotApplicable("no V2P mapping")
        }
    );
    assert_eq!(v.port.port().stats().drop_action, 1);
    drop(v);
    k.assert_clean();
}

#[test]
fn a_v2p_change_redirects_an_existing_flow() {
    let k = fakekernel::scope();
    let v = Vpc::standard().with_peer();
    let f = from_guest_udp(IpAddr::V4(PEER_V4), 40000, 9000);
    assert_eq!(decap(&v.out(&f).pass()).0.dst, HOST_B);
    v.trace.take();
    assert_eq!(decap(&v.out(&f).pass()).0.dst, HOST_B);
    assert!(v.trace.take().contains(&"uft hit".to_string()));
    // The guest moved to host C with a new MAC.
    let host_c: Ipv6Addr = "fd77::c".parse().unwrap();
    let new_mac = MacAddr::from_bytes([0xa8, 0x40, 0x25, 0xf7, 0, 0x99]);
    v.net
        .set_v2p(V2pMapping { vni: vni(VNI), ip: IpAddr::V4(PEER_V4), mac: new_mac, host: host_c })
        .unwrap();
    let (o, i) = decap(&v.out(&f).pass());
    assert_eq!(o.dst, host_c, "the existing flow follows the new mapping");
    assert_eq!(inner(&i).dst_mac, new_mac);
    assert!(v.trace.take().contains(&"uft invalidated".to_string()));
    // Removing the mapping stops the flow.
    v.net.clear_v2p(vni(VNI), IpAddr::V4(PEER_V4)).unwrap();
    assert!(matches!(v.out(&f).dropped(), DropReason::Action { layer: "overlay", .. }));
    drop(v);
    k.assert_clean();
}

/// The V2P table is a hash table, but its dump comes ordered by VNI and
/// address, and setting a mapping again replaces it.
#[test]
fn the_v2p_dump_is_ordered_and_a_mapping_set_twice_is_replaced() {
    let k = fakekernel::scope();
    let net = oxide_vpc::engine::network::VpcNetwork::new();
    let host: Ipv6Addr = "fd77::b".parse().unwrap();
    let map = |v: u32, last: u8, mac: u8| V2pMapping {
        vni: vni(v),
        ip: IpAddr::V4(Ipv4Addr::new(172, 30, 0, last)),
        mac: MacAddr::from_bytes([0xa8, 0x40, 0x25, 0xf7, 0, mac]),
        host,
    };
    for (v, last) in [(9, 3), (7, 200), (9, 1), (7, 5), (8, 9)] {
        net.set_v2p(map(v, last, 1)).unwrap();
    }
    net.set_v2p(map(7, 5, 2)).unwrap();
    let keys: Vec<(u32, IpAddr)> = net.dump_v2p().iter().map(|m| (m.vni.value(), m.ip)).collect();
    let ip = |last| IpAddr::V4(Ipv4Addr::new(172, 30, 0, last));
    assert_eq!(keys, [(7, ip(5)), (7, ip(200)), (8, ip(9)), (9, ip(1)), (9, ip(3))]);
    assert_eq!(net.v2p(vni(7), ip(5)).map(|m| m.mac), Some(map(7, 5, 2).mac), "replaced");
    drop(net);
    k.assert_clean();
}

#[test]
fn the_outer_source_port_is_stable_per_flow_and_spreads_over_flows() {
    let k = fakekernel::scope();
    let v = Vpc::standard().with_peer();
    let mut ports = std::collections::BTreeSet::new();
    for sport in 0..32u16 {
        let f = from_guest_udp(IpAddr::V4(PEER_V4), 20000 + sport, 9000);
        let a = decap(&v.out(&f).pass()).0.udp_src;
        let b = decap(&v.out(&f).pass()).0.udp_src;
        assert_eq!(a, b);
        ports.insert(a);
    }
    assert!(ports.len() > 16, "32 flows used only {} source ports", ports.len());
    drop(v);
    k.assert_clean();
}

#[test]
fn inbound_needs_our_vni_and_a_known_critical_option_set() {
    let k = fakekernel::scope();
    let v = Vpc::standard().with_peer();
    // Open a flow so replies would be allowed by the firewall.
    v.out(&from_guest_udp(IpAddr::V4(PEER_V4), 33000, 7000)).pass();
    let reply =
        udp(PEER_MAC, GUEST_MAC, IpAddr::V4(PEER_V4), 7000, IpAddr::V4(GUEST_V4), 33000, b"x");
    // Another VPC's VNI: denied by the overlay default.
    let r = v.inb(&encap(HOST_B, HOST_A, 4242, false, &reply)).dropped();
    assert_eq!(r, DropReason::Denied { layer: "overlay", rule: None });
    // An unknown critical Geneve option: refused by the parser.
    let mut bad = encap(HOST_B, HOST_A, VNI, false, &reply);
    insert_geneve_option(&mut bad, [0x01, 0x29, 0xff, 0x00]);
    assert!(matches!(v.inb(&bad), Outcome::ParseError(_)));
    // An unknown non-critical option is skipped.
    let mut ok = encap(HOST_B, HOST_A, VNI, false, &reply);
    insert_geneve_option(&mut ok, [0x01, 0x29, 0x7f, 0x00]);
    inner(&v.inb(&ok).pass());
    drop(v);
    k.assert_clean();
}

/// Add one 4-byte Geneve option (no body) to an encapsulated frame,
/// fixing the lengths and the outer UDP checksum.
fn insert_geneve_option(frame: &mut Vec<u8>, opt: [u8; 4]) {
    let geneve = 14 + 40 + 8;
    let opt_words = frame[geneve] & 0x3f;
    let at = geneve + 8 + usize::from(opt_words) * 4;
    frame.splice(at..at, opt);
    frame[geneve] = (frame[geneve] & 0xc0) | (opt_words + 1);
    if opt[2] & 0x80 != 0 {
        frame[geneve + 1] |= 0x40; // the C bit
    }
    rewrite_outer_lengths(frame);
}

/// Recompute the outer IPv6 payload length, UDP length and checksum.
fn rewrite_outer_lengths(frame: &mut [u8]) {
    let ip = 14;
    let Ok(p) = etherparse::PacketHeaders::from_ethernet_slice(frame) else { panic!("outer") };
    let _ = p;
    let ext_len = outer_ext_len(frame);
    let udp = ip + 40 + ext_len;
    let plen = (frame.len() - ip - 40) as u16;
    frame[ip + 4..ip + 6].copy_from_slice(&plen.to_be_bytes());
    let ulen = (frame.len() - udp) as u16;
    frame[udp + 4..udp + 6].copy_from_slice(&ulen.to_be_bytes());
    frame[udp + 6..udp + 8].copy_from_slice(&[0, 0]);
    let src: [u8; 16] = frame[ip + 8..ip + 24].try_into().unwrap();
    let dst: [u8; 16] = frame[ip + 24..ip + 40].try_into().unwrap();
    let h = etherparse::UdpHeader::from_slice(&frame[udp..udp + 8]).unwrap().0;
    let ip6 = etherparse::Ipv6Header {
        source: src,
        destination: dst,
        next_header: etherparse::IpNumber::UDP,
        payload_length: ulen,
        hop_limit: 64,
        ..Default::default()
    };
    let c = h.calc_checksum_ipv6(&ip6, &frame[udp + 8..]).unwrap();
    frame[udp + 6..udp + 8].copy_from_slice(&c.to_be_bytes());
}

/// Bytes of extension headers between the outer IPv6 header and UDP.
fn outer_ext_len(frame: &[u8]) -> usize {
    let mut next = frame[14 + 6];
    let mut at = 14 + 40;
    let mut len = 0;
    while next != 17 {
        let l = (usize::from(frame[at + 1]) + 1) * 8;
        next = frame[at];
        at += l;
        len += l;
    }
    len
}

#[test]
fn geneve_after_an_outer_ipv6_extension_header_is_accepted() {
    let k = fakekernel::scope();
    let v = Vpc::standard().with_peer();
    v.out(&from_guest_udp(IpAddr::V4(PEER_V4), 33000, 7000)).pass();
    let reply =
        udp(PEER_MAC, GUEST_MAC, IpAddr::V4(PEER_V4), 7000, IpAddr::V4(GUEST_V4), 33000, b"x");
    let mut f = encap(HOST_B, HOST_A, VNI, false, &reply);
    // Insert an 8-byte destination options header (next header UDP,
    // PadN) after the outer IPv6 header.
    f[14 + 6] = 60;
    f.splice(14 + 40..14 + 40, [17, 0, 1, 4, 0, 0, 0, 0]);
    rewrite_outer_lengths(&mut f);
    let i = inner(&v.inb(&f).pass());
    assert_eq!((i.src, i.dport), (IpAddr::V4(PEER_V4), 33000));
    drop(v);
    k.assert_clean();
}

#[test]
fn internet_traffic_goes_to_a_boundary_chosen_per_flow_with_the_external_tag() {
    let k = fakekernel::scope();
    let v = Vpc::standard();
    let b2: Ipv6Addr = "fd77::98".parse().unwrap();
    v.net
        .set_v2b(V2bMapping {
            prefix: "0.0.0.0/0".parse().unwrap(),
            boundaries: vec![
                TunnelEndpoint { ip: BOUNDARY, vni: vni(BOUNDARY_VNI) },
                TunnelEndpoint { ip: b2, vni: vni(BOUNDARY_VNI) },
            ],
        })
        .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for sport in 0..16u16 {
        let f = from_guest_udp(IpAddr::V4(INET_V4), 30000 + sport, 443);
        let (o, _) = decap(&v.out(&f).pass());
        assert_eq!((o.src, o.vni, o.external), (HOST_A, BOUNDARY_VNI, true));
        assert_eq!(decap(&v.out(&f).pass()).0.dst, o.dst, "one boundary per flow");
        seen.insert(o.dst);
    }
    assert_eq!(seen.len(), 2, "flows spread over both boundaries");
    // No V2B for IPv6: a counted drop.
    let r = v.out(&from_guest_udp(IpAddr::V6(INET_V6), 30000, 443)).dropped();
    assert_eq!(
        r,
        DropReason::Action {
            layer: "overlay",
            error: ActionError::NotApplicable("no boundary for destination")
        }
    );
    drop(v);
    k.assert_clean();
}

/// A port on VPC 7777 (172.30.0.0/22) peered with VPC 8888
/// (10.1.0.0/24), with a route to it and the V2P of one guest there.
fn peered() -> Vpc {
    let mut c = cfg();
    c.peerings = vec![Peering { vni: vni(8888), subnets: vec!["10.1.0.0/24".parse().unwrap()] }];
    let v = Vpc::with(c, PortLimits::default());
    for r in system_routes() {
        v.port.add_route(r).unwrap();
    }
    v.port
        .add_route(RouterEntry {
            dest: "10.1.0.0/24".parse().unwrap(),
            target: RouterTarget::PeerVpc(vni(8888)),
            class: RouteClass::Custom,
        })
        .unwrap();
    v.net
        .set_v2p(V2pMapping {
            vni: vni(8888),
            ip: IpAddr::V4(PEERED_V4),
            mac: PEERED_MAC,
            host: HOST_B,
        })
        .unwrap();
    v
}

const PEERED_V4: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 7);
const PEERED_MAC: MacAddr = MacAddr::from_bytes([0xa8, 0x40, 0x25, 0xf8, 0, 7]);

#[test]
fn peered_vpcs_exchange_traffic_both_ways_and_others_do_not() {
    let k = fakekernel::scope();
    let v = peered();
    let out = v.out(&from_guest_udp(IpAddr::V4(PEERED_V4), 35000, 53)).pass();
    let (o, i) = decap(&out);
    assert_eq!((o.dst, o.vni), (HOST_B, VNI), "carried on the sender's VNI");
    assert_eq!(inner(&i).dst_mac, PEERED_MAC);
    let reply =
        udp(PEERED_MAC, GUEST_MAC, IpAddr::V4(PEERED_V4), 53, IpAddr::V4(GUEST_V4), 35000, b"r");
    inner(&v.inb(&encap(HOST_B, HOST_A, 8888, false, &reply)).pass());
    // From the peer's VNI but a source outside its subnets: refused.
    let spoof = udp(
        PEERED_MAC,
        GUEST_MAC,
        IpAddr::V4(Ipv4Addr::new(10, 2, 0, 7)),
        53,
        IpAddr::V4(GUEST_V4),
        35000,
        b"r",
    );
    assert_eq!(
        v.inb(&encap(HOST_B, HOST_A, 8888, false, &spoof)).dropped(),
        DropReason::Denied { layer: "overlay", rule: None }
    );
    // Not transitive: VPC 9999 (peered with 8888, not with us) is refused.
    let third = udp(
        PEERED_MAC,
        GUEST_MAC,
        IpAddr::V4(Ipv4Addr::new(10, 9, 0, 7)),
        53,
        IpAddr::V4(GUEST_V4),
        35000,
        b"r",
    );
    assert_eq!(
        v.inb(&encap(HOST_B, HOST_A, 9999, false, &third)).dropped(),
        DropReason::Denied { layer: "overlay", rule: None }
    );
    // Unpeering: the route's target is now a VPC we don't peer with, so
    // the router drops, and the peer's packets are refused.
    v.port.remove_peering(vni(8888)).unwrap();
    assert!(matches!(
        v.out(&from_guest_udp(IpAddr::V4(PEERED_V4), 35001, 53)).dropped(),
        DropReason::Denied { layer: "router", rule: Some(_) }
    ));
    assert_eq!(
        v.inb(&encap(HOST_B, HOST_A, 8888, false, &reply)).dropped(),
        DropReason::Denied { layer: "overlay", rule: None }
    );
    drop(v);
    k.assert_clean();
}

#[test]
fn overlapping_peer_subnets_are_refused_with_a_clear_error() {
    let k = fakekernel::scope();
    let v = peered();
    let before = v.port.spec();
    let e = v
        .port
        .add_peering(Peering { vni: vni(9999), subnets: vec!["172.30.1.0/24".parse().unwrap()] })
        .unwrap_err();
    assert!(matches!(e, VpcError::Cfg(CfgError::Overlap { .. })), "{e:?}");
    assert_eq!(e.to_string(), "peered VPC subnets: 172.30.1.0/24 overlaps 172.30.0.0/22");
    let e = v
        .port
        .add_peering(Peering { vni: vni(9999), subnets: vec!["10.1.0.128/25".parse().unwrap()] })
        .unwrap_err();
    assert!(e.to_string().contains("overlaps 10.1.0.0/24"), "{e}");
    let e = v.port.add_peering(Peering { vni: vni(VNI), subnets: vec![] }).unwrap_err();
    assert_eq!(e, VpcError::Cfg(CfgError::BadPeer(vni(VNI))));
    assert_eq!(v.port.spec(), before, "a refused command changes nothing");
    let _: IpCidr = "10.1.0.0/24".parse().unwrap();
    drop(v);
    k.assert_clean();
}

/// Guest A (VPC 7777, host A) and guest C (VPC 8888, host B) peer both
/// ways; what A's port sends is what C's port receives, and C's firewall
/// sees it come from VPC 7777.
#[test]
fn a_peer_receiver_knows_which_vpc_sent_the_packet() {
    let k = fakekernel::scope();
    let a = peered();
    let mut cc = cfg();
    cc.guest_mac = PEERED_MAC;
    cc.vni = vni(8888);
    cc.phys_ip = HOST_B;
    cc.ipv4 = Some(Ipv4Cfg {
        vpc_subnet: "10.1.0.0/24".parse().unwrap(),
        private_ip: PEERED_V4,
        gateway_ip: Ipv4Addr::new(10, 1, 0, 1),
        external: ExternalIps::default(),
    });
    cc.ipv6 = None;
    cc.peerings = vec![Peering { vni: vni(VNI), subnets: vec!["172.30.0.0/22".parse().unwrap()] }];
    let c = Vpc::with(cc, PortLimits::default());
    let from_vpc = |v| FirewallRule {
        direction: opte::engine::Direction::In,
        priority: 10,
        action: FwAction::Allow,
        hosts: FwHosts::Vni(vni(v)),
        protocol: FwProtocol::Udp,
        ports: vec![],
    };
    // Only VPC 9999 may send UDP: A's packet is refused.
    c.port.set_fw_rules(vec![from_vpc(9999)]).unwrap();
    let sent = a.out(&from_guest_udp(IpAddr::V4(PEERED_V4), 35000, 53)).pass();
    assert_eq!(decap(&sent).0.vni, VNI);
    assert_eq!(c.inb(&sent).dropped(), DropReason::Denied { layer: "firewall", rule: None });
    // Only VPC 7777: accepted, from the gateway MAC.
    c.port.set_fw_rules(vec![from_vpc(VNI)]).unwrap();
    let got = inner(&c.inb(&sent).pass());
    assert_eq!(
        (got.src, got.dst, got.src_mac),
        (
            IpAddr::V4(GUEST_V4),
            IpAddr::V4(PEERED_V4),
            MacAddr::from_bytes(c.port.cfg().gateway_mac.bytes())
        )
    );
    drop((a, c));
    k.assert_clean();
}
