//! Rule predicates: every kind matches the packets it names and no
//! others, a packet without the tested header never matches (and `Not` of
//! that does), combinators and validation behave as documented, `Display`
//! gives the operator form, and the DHCP body predicates recognize
//! hand-built DHCPv4 and DHCPv6 messages whatever the block layout, while
//! staying inside the UDP payload and their documented bounds.

mod frames;

use frames::*;
use opte::ddi::MsgBlk;
use opte::engine::Direction;
use opte::engine::meta::{Meta, MetaValue};
use opte::engine::predicate::*;
use opte::packet::tcp::tcp_flags;
use opte::packet::*;
use opte_api::{Ipv4Addr, Ipv4Cidr, Ipv6Addr, Ipv6Cidr, MacAddr};

use Predicate as P;

/// Evaluate `p` on the frame held in `m` with metadata `meta`.
fn eval_msg(m: &MsgBlk, underlay: bool, meta: &Meta, p: &Predicate) -> bool {
    let hdrs = if underlay { Headers::parse_underlay(m) } else { Headers::parse_guest(m) }
        .expect("frame parses");
    p.matches(&MatchCtx { dir: Direction::Out, hdrs: &hdrs, mblk: m, meta })
}

/// Evaluate `p` on the guest frame `bytes` held in one block.
fn eval(bytes: &[u8], p: &Predicate) -> bool {
    eval_msg(&msg(bytes, 0), false, &Meta::new(), p)
}

/// Evaluate `p` on the guest frame `bytes` split into blocks at `cuts`.
fn eval_split(bytes: &[u8], cuts: &[usize], p: &Predicate) -> bool {
    eval_msg(&chain(bytes, cuts, 0), false, &Meta::new(), p)
}

/// A guest frame from `GUEST_MAC` to `GW_MAC`.
fn frame(l3: L3, l4: Option<L4>) -> FrameBuilder {
    let mut fb = FrameBuilder::new(eth(GUEST_MAC, GW_MAC));
    fb.l3 = Some(l3);
    fb.l4 = l4;
    fb
}

/// A TCP/IPv4 frame between the given addresses and ports.
fn tcp4_frame(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
    let t = tcp(sport, dport, tcp_flags::ACK, &[]);
    frame(L3::Ipv4(ipv4(src, dst)), Some(L4::Tcp(t))).to_bytes(b"data")
}

/// A UDP/IPv4 frame between the given ports.
fn udp4_frame(sport: u16, dport: u16) -> Vec<u8> {
    frame(L3::Ipv4(ipv4(GUEST_V4, REMOTE_V4)), Some(L4::Udp(udp(sport, dport)))).to_bytes(b"data")
}

/// A TCP/IPv6 frame between the given addresses.
fn tcp6_frame(src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
    let t = tcp(49154, 80, tcp_flags::ACK, &[]);
    frame(L3::Ipv6(ipv6(src, dst)), Some(L4::Tcp(t))).to_bytes(b"data")
}

/// `p` inside `nots` `Not`s: depth `nots + 1`.
fn nest_not(p: Predicate, nots: usize) -> Predicate {
    (0..nots).fold(p, |p, _| P::Not(Box::new(p)))
}

fn v4cidr(s: &str) -> Ipv4Cidr {
    s.parse().expect("valid IPv4 CIDR")
}

fn v6cidr(s: &str) -> Ipv6Cidr {
    s.parse().expect("valid IPv6 CIDR")
}

#[test]
fn ether_type_and_exact_addresses() {
    let k = fakekernel::scope();
    let v4 = tcp4().bytes();
    assert!(eval(&v4, &P::EtherType(0x0800)));
    assert!(!eval(&v4, &P::EtherType(0x86dd)));
    assert!(eval(&tcp6().bytes(), &P::EtherType(0x86dd)));
    assert!(!eval(&tcp6().bytes(), &P::EtherType(0x0800)));
    assert!(eval(&arp_request().bytes(), &P::EtherType(0x0806)));

    assert!(eval(&v4, &P::EtherSrc(MacMatch::Exact(GUEST_MAC))));
    assert!(!eval(&v4, &P::EtherSrc(MacMatch::Exact(GW_MAC))));
    assert!(eval(&v4, &P::EtherDst(MacMatch::Exact(GW_MAC))));
    assert!(!eval(&v4, &P::EtherDst(MacMatch::Exact(GUEST_MAC))));
    k.assert_clean();
}

#[test]
fn multicast_mac_is_the_group_bit() {
    let k = fakekernel::scope();
    let cases = [
        (MacAddr::BROADCAST, true),
        (MacAddr::from_bytes([0x33, 0x33, 0, 0, 0, 1]), true),
        (MacAddr::from_bytes([0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb]), true),
        (GW_MAC, false),
        // Locally administered (bit 1) but individual: not a group.
        (MacAddr::from_bytes([0x02, 0, 0, 0, 0, 1]), false),
    ];
    for (dst, group) in cases {
        let mut s = udp4();
        s.fb.eth.dst = dst;
        let bytes = s.bytes();
        assert_eq!(eval(&bytes, &P::EtherDst(MacMatch::Multicast)), group, "{dst}");
        assert!(!eval(&bytes, &P::EtherSrc(MacMatch::Multicast)), "unicast source, dst {dst}");
    }
    k.assert_clean();
}

#[test]
fn ipv4_exact_and_prefix_boundaries() {
    let k = fakekernel::scope();
    let a = Ipv4Addr::new;
    let cases = [
        ("10.0.0.0/24", a(10, 0, 0, 0), true),
        ("10.0.0.0/24", a(10, 0, 0, 255), true),
        ("10.0.0.0/24", a(9, 255, 255, 255), false),
        ("10.0.0.0/24", a(10, 0, 1, 0), false),
        ("10.0.0.0/23", a(10, 0, 1, 255), true),
        ("10.0.0.0/23", a(10, 0, 2, 0), false),
        ("10.0.0.128/25", a(10, 0, 0, 127), false),
        ("10.0.0.128/25", a(10, 0, 0, 128), true),
        ("10.0.0.5/32", a(10, 0, 0, 5), true),
        ("10.0.0.5/32", a(10, 0, 0, 4), false),
        ("10.0.0.5/32", a(10, 0, 0, 6), false),
        ("0.0.0.0/0", a(0, 0, 0, 0), true),
        ("0.0.0.0/0", a(255, 255, 255, 255), true),
    ];
    for (net, dst, inside) in cases {
        let bytes = tcp4_frame(GUEST_V4, dst, 40000, 22);
        let pfx = Ipv4Match::Prefix(v4cidr(net));
        assert_eq!(eval(&bytes, &P::Ipv4Dst(pfx)), inside, "{dst} in {net}");
        assert!(eval(&bytes, &P::Ipv4Dst(Ipv4Match::Exact(dst))), "{dst}");
        // The source (172.30.0.5) lies in none of these but /0.
        assert_eq!(eval(&bytes, &P::Ipv4Src(pfx)), net == "0.0.0.0/0", "src in {net}");
    }
    let bytes = tcp4_frame(GUEST_V4, REMOTE_V4, 40000, 22);
    assert!(eval(&bytes, &P::Ipv4Src(Ipv4Match::Exact(GUEST_V4))));
    assert!(!eval(&bytes, &P::Ipv4Src(Ipv4Match::Exact(Ipv4Addr::new(172, 30, 0, 6)))));
    assert!(!eval(&bytes, &P::Ipv4Dst(Ipv4Match::Exact(GUEST_V4))));
    k.assert_clean();
}

#[test]
fn ipv6_exact_and_prefix_boundaries() {
    let k = fakekernel::scope();
    let ip = |s: &str| s.parse::<Ipv6Addr>().expect("valid IPv6 address");
    let cases = [
        ("fd00:1122:3344:101::/64", "fd00:1122:3344:101::", true),
        ("fd00:1122:3344:101::/64", "fd00:1122:3344:101:ffff:ffff:ffff:ffff", true),
        ("fd00:1122:3344:101::/64", "fd00:1122:3344:100:ffff:ffff:ffff:ffff", false),
        ("fd00:1122:3344:101::/64", "fd00:1122:3344:102::", false),
        ("fd00::/127", "fd00::1", true),
        ("fd00::/127", "fd00::2", false),
        ("2001:db8::34/128", "2001:db8::34", true),
        ("2001:db8::34/128", "2001:db8::35", false),
        ("::/0", "::", true),
        ("::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
    ];
    for (net, dst, inside) in cases {
        let dst = ip(dst);
        let bytes = tcp6_frame(GUEST_V6, dst);
        let pfx = Ipv6Match::Prefix(v6cidr(net));
        assert_eq!(eval(&bytes, &P::Ipv6Dst(pfx)), inside, "{dst} in {net}");
        assert!(eval(&bytes, &P::Ipv6Dst(Ipv6Match::Exact(dst))), "{dst}");
    }
    let bytes = tcp6_frame(GUEST_V6, REMOTE_V6);
    assert!(eval(&bytes, &P::Ipv6Src(Ipv6Match::Exact(GUEST_V6))));
    assert!(eval(&bytes, &P::Ipv6Src(Ipv6Match::Prefix(v6cidr("fd00:1122:3344:101::/64")))));
    assert!(!eval(&bytes, &P::Ipv6Src(Ipv6Match::Exact(REMOTE_V6))));
    assert!(!eval(&bytes, &P::Ipv6Src(Ipv6Match::Prefix(v6cidr("2001:db8::/32")))));
    k.assert_clean();
}

/// A predicate on a header the packet lacks is false, and `Not` of it is
/// true, as the module documentation says.
#[test]
fn absent_headers_never_match_and_their_negation_does() {
    let k = fakekernel::scope();
    let any4 = Ipv4Match::Prefix(v4cidr("0.0.0.0/0"));
    let any6 = Ipv6Match::Prefix(v6cidr("::/0"));
    let all_ports = PortMatch::Range { lo: 0, hi: u16::MAX };
    let cases: Vec<(Sample, Predicate)> = vec![
        (tcp6(), P::Ipv4Src(any4)),
        (tcp6(), P::Ipv4Dst(any4)),
        (tcp4(), P::Ipv6Src(any6)),
        (tcp4(), P::Ipv6Dst(any6)),
        (arp_request(), P::Ipv4Src(any4)),
        (arp_request(), P::IpProto(0)),
        (arp_request(), P::SrcPort(all_ports)),
        (icmp4_echo(), P::SrcPort(all_ports)),
        (icmp4_echo(), P::DstPort(all_ports)),
        (icmp4_echo(), P::Icmpv6Type(8)),
        (icmp6_echo(), P::IcmpType(129)),
        (icmp6_echo(), P::IcmpCode(0)),
        (tcp4(), P::IcmpType(0)),
        (tcp4(), P::IcmpCode(0)),
        (tcp4(), P::Icmpv6Code(0)),
        (ip4_later_fragment(), P::SrcPort(all_ports)),
        (ip4_gre(), P::DstPort(all_ports)),
        (udp4(), P::DhcpMsgType(dhcp_msg_type::DISCOVER)),
        (tcp4(), P::Meta { key: "never-set".into(), value: MetaValue::Bool(false) }),
    ];
    for (s, p) in cases {
        let bytes = s.bytes();
        assert!(!eval(&bytes, &p), "{} on {}", p, s.name);
        let not = P::Not(Box::new(p));
        assert!(eval(&bytes, &not), "{} on {}", not, s.name);
    }
    // The full port range does match every TCP and UDP packet.
    assert!(eval(&tcp4().bytes(), &P::SrcPort(all_ports)));
    assert!(eval(&udp4().bytes(), &P::DstPort(all_ports)));
    // "IPv4 but not from X" is false for IPv6, where the bare Not is true.
    let not_from = P::Not(Box::new(P::Ipv4Src(Ipv4Match::Exact(GUEST_V4))));
    let v4_not_from = P::All(vec![P::EtherType(0x0800), not_from.clone()]);
    assert!(eval(&tcp6().bytes(), &not_from));
    assert!(!eval(&tcp6().bytes(), &v4_not_from));
    assert!(!eval(&tcp4().bytes(), &v4_not_from));
    let other = tcp4_frame(REMOTE_V4, GUEST_V4, 443, 40000);
    assert!(eval(&other, &v4_not_from));
    k.assert_clean();
}

#[test]
fn ip_proto_is_the_upper_layer_protocol() {
    let k = fakekernel::scope();
    let cases = [
        (tcp4(), 6),
        (udp4(), 17),
        (icmp4_echo(), 1),
        (tcp6(), 6),
        (icmp6_echo(), 58),
        (icmp6_too_big(), 58),
        // Past a hop-by-hop and a destination options header.
        (udp6_ext(), 17),
        // Protocols without a parsed transport header still have one.
        (ip4_gre(), 47),
        (ip4_later_fragment(), 17),
    ];
    for (s, proto) in cases {
        let bytes = s.bytes();
        assert!(eval(&bytes, &P::IpProto(proto)), "{} is {proto}", s.name);
        assert!(!eval(&bytes, &P::IpProto(proto.wrapping_add(1))), "{} not {proto}+1", s.name);
    }
    // The fixed header's next-header field (hop-by-hop, 0) is not it.
    assert!(!eval(&udp6_ext().bytes(), &P::IpProto(0)));
    k.assert_clean();
}

#[test]
fn port_exact_and_range_edges() {
    let k = fakekernel::scope();
    let range = PortMatch::Range { lo: 1000, hi: 2000 };
    for port in [0, 1, 999, 1000, 1001, 1999, 2000, 2001, 65534, 65535] {
        let inside = (1000..=2000).contains(&port);
        for bytes in [tcp4_frame(GUEST_V4, REMOTE_V4, 40000, port), udp4_frame(40000, port)] {
            assert_eq!(eval(&bytes, &P::DstPort(range)), inside, "dst {port}");
            assert!(!eval(&bytes, &P::SrcPort(range)), "src 40000, dst {port}");
            assert!(eval(&bytes, &P::DstPort(PortMatch::Exact(port))), "dst {port}");
            assert!(!eval(&bytes, &P::DstPort(PortMatch::Exact(port ^ 1))), "dst {port}");
            assert!(eval(&bytes, &P::SrcPort(PortMatch::Exact(40000))));
        }
        let bytes = tcp4_frame(GUEST_V4, REMOTE_V4, port, 22);
        assert_eq!(eval(&bytes, &P::SrcPort(range)), inside, "src {port}");
        let one = PortMatch::Range { lo: port, hi: port };
        assert!(eval(&bytes, &P::SrcPort(one)), "src {port} in {port}-{port}");
    }
    k.assert_clean();
}

/// `L4::ports` reports an ICMP echo id as both ports; the predicates do
/// not: an echo id is not a port.
#[test]
fn ports_do_not_match_icmp_echo_ids() {
    let k = fakekernel::scope();
    let echo4 = icmp4_echo().bytes();
    let echo6 = icmp6_echo().bytes();
    for (bytes, id) in [(&echo4, 0x1b39), (&echo6, 0x7701)] {
        assert!(!eval(bytes, &P::SrcPort(PortMatch::Exact(id))));
        assert!(!eval(bytes, &P::DstPort(PortMatch::Exact(id))));
    }
    k.assert_clean();
}

#[test]
fn icmp_type_and_code_by_family() {
    let k = fakekernel::scope();
    let unreach = icmp4_unreach().bytes(); // type 3, code 3
    assert!(eval(&unreach, &P::IcmpType(3)));
    assert!(eval(&unreach, &P::IcmpCode(3)));
    assert!(!eval(&unreach, &P::IcmpType(8)));
    assert!(!eval(&unreach, &P::IcmpCode(0)));
    assert!(!eval(&unreach, &P::Icmpv6Type(3)));
    assert!(!eval(&unreach, &P::Icmpv6Code(3)));

    let echo = icmp4_echo().bytes(); // type 8, code 0
    assert!(eval(&echo, &P::IcmpType(8)));
    assert!(eval(&echo, &P::IcmpCode(0)));
    assert!(!eval(&echo, &P::IcmpType(0)));

    let too_big = icmp6_too_big().bytes(); // type 2, code 0
    assert!(eval(&too_big, &P::Icmpv6Type(2)));
    assert!(eval(&too_big, &P::Icmpv6Code(0)));
    assert!(!eval(&too_big, &P::Icmpv6Type(1)));
    assert!(!eval(&too_big, &P::Icmpv6Code(1)));
    assert!(!eval(&too_big, &P::IcmpType(2)));
    assert!(!eval(&too_big, &P::IcmpCode(0)));

    // Code ranges.
    assert!(eval(&unreach, &P::IcmpCodes { lo: 0, hi: 3 }));
    assert!(eval(&unreach, &P::IcmpCodes { lo: 3, hi: 3 }));
    assert!(!eval(&unreach, &P::IcmpCodes { lo: 4, hi: 15 }));
    assert!(!eval(&unreach, &P::Icmpv6Codes { lo: 0, hi: 255 }));
    assert!(eval(&too_big, &P::Icmpv6Codes { lo: 0, hi: 1 }));
    assert!(!eval(&too_big, &P::Icmpv6Codes { lo: 1, hi: 1 }));
    assert!(!eval(&too_big, &P::IcmpCodes { lo: 0, hi: 255 }));
    assert_eq!(
        P::IcmpCodes { lo: 5, hi: 4 }.validate(),
        Err(PredicateError::EmptyCodeRange { lo: 5, hi: 4 })
    );
    assert_eq!(P::Icmpv6Codes { lo: 0, hi: 3 }.to_string(), "icmp6.code=0-3");

    assert!(eval(&icmp6_echo().bytes(), &P::Icmpv6Type(129)));
    assert!(eval(&ndp_ns().bytes(), &P::Icmpv6Type(135)));
    assert!(!eval(&ndp_ns().bytes(), &P::Icmpv6Type(136)));
    k.assert_clean();
}

#[test]
fn metadata_key_and_value() {
    let k = fakekernel::scope();
    let m = msg(&tcp4().bytes(), 0);
    let mut meta = Meta::new();
    let hop = Ipv4Addr::new(172, 30, 0, 1);
    meta.set("router-target", MetaValue::U64(5)).expect("room");
    meta.set("is-internet", MetaValue::Bool(true)).expect("room");
    meta.set("svc", MetaValue::Str("dns".into())).expect("room");
    meta.set("nexthop", MetaValue::Ip(hop.into())).expect("room");
    let is = |key: &str, value: MetaValue| P::Meta { key: key.into(), value };
    let cases = [
        (is("router-target", MetaValue::U64(5)), true),
        (is("router-target", MetaValue::U64(6)), false),
        // Same digits, other variant.
        (is("router-target", MetaValue::Str("5".into())), false),
        (is("is-internet", MetaValue::Bool(true)), true),
        (is("is-internet", MetaValue::Bool(false)), false),
        (is("svc", MetaValue::Str("dns".into())), true),
        (is("svc", MetaValue::Str("DNS".into())), false),
        (is("nexthop", MetaValue::Ip(hop.into())), true),
        (is("nexthop", MetaValue::Ip(GUEST_V4.into())), false),
        (is("Router-Target", MetaValue::U64(5)), false),
        (is("absent", MetaValue::U64(5)), false),
    ];
    for (p, want) in cases {
        assert_eq!(eval_msg(&m, false, &meta, &p), want, "{p}");
    }
    // The same predicate once the key is gone.
    meta.remove("router-target");
    assert!(!eval_msg(&m, false, &meta, &is("router-target", MetaValue::U64(5))));
    drop(m);
    k.assert_clean();
}

#[test]
fn not_any_all_semantics() {
    let k = fakekernel::scope();
    let bytes = tcp4().bytes(); // TCP 172.30.0.5:49152 -> 93.184.216.34:443
    let t = || P::DstPort(PortMatch::Exact(443));
    let f = || P::DstPort(PortMatch::Exact(80));
    let not = |p| P::Not(Box::new(p));
    let cases = [
        (not(t()), false),
        (not(f()), true),
        (not(not(t())), true),
        (P::Any(vec![t()]), true),
        (P::Any(vec![f()]), false),
        (P::Any(vec![f(), t()]), true),
        (P::Any(vec![t(), f()]), true),
        (P::Any(vec![f(), f(), f()]), false),
        (P::All(vec![t()]), true),
        (P::All(vec![t(), t()]), true),
        (P::All(vec![t(), f()]), false),
        (P::All(vec![f(), t()]), false),
        (not(P::All(vec![t(), f()])), true),
        (not(P::Any(vec![f(), f()])), true),
        (
            P::All(vec![
                P::EtherType(0x0800),
                P::Any(vec![f(), t()]),
                not(P::Ipv4Dst(Ipv4Match::Prefix(v4cidr("10.0.0.0/8")))),
            ]),
            true,
        ),
        (
            P::All(vec![
                P::EtherType(0x0800),
                P::Any(vec![f(), t()]),
                not(P::Ipv4Dst(Ipv4Match::Prefix(v4cidr("93.184.0.0/16")))),
            ]),
            false,
        ),
        // An absent header inside a combinator is just false.
        (P::Any(vec![P::IcmpType(8), t()]), true),
        (P::All(vec![P::IcmpType(8), t()]), false),
    ];
    for (p, want) in cases {
        assert_eq!(p.validate(), Ok(()), "{p}");
        assert_eq!(eval(&bytes, &p), want, "{p}");
    }

    // The deepest valid tree is evaluated in full: seven Nots negate.
    let deepest = nest_not(t(), MAX_PREDICATE_DEPTH - 1);
    assert_eq!(deepest.validate(), Ok(()));
    assert!(!eval(&bytes, &deepest));
    assert!(eval(&bytes, &nest_not(t(), MAX_PREDICATE_DEPTH - 2)));
    // One level more was refused by validation; evaluated anyway, it is
    // false whether its Nots would have made it true or false.
    for nots in [MAX_PREDICATE_DEPTH, MAX_PREDICATE_DEPTH + 1] {
        let deep = nest_not(t(), nots);
        assert!(deep.validate().is_err());
        assert!(!eval(&bytes, &deep), "{nots} Nots");
    }
    let deep_any = P::Any(vec![t(), nest_not(t(), MAX_PREDICATE_DEPTH)]);
    assert!(eval(&bytes, &deep_any), "the first branch answers before the deep one is reached");
    let deep_any = P::Any(vec![f(), nest_not(t(), MAX_PREDICATE_DEPTH)]);
    assert!(!eval(&bytes, &deep_any));
    k.assert_clean();
}

#[test]
fn validation_errors() {
    let k = fakekernel::scope();
    let leaf = || P::IpProto(6);
    let not = |p| P::Not(Box::new(p));
    assert_eq!(leaf().validate(), Ok(()));
    assert_eq!(P::Any(vec![]).validate(), Err(PredicateError::EmptyAny));
    assert_eq!(P::All(vec![]).validate(), Err(PredicateError::EmptyAll));
    assert_eq!(not(P::Any(vec![])).validate(), Err(PredicateError::EmptyAny));
    assert_eq!(P::Any(vec![leaf(), P::All(vec![])]).validate(), Err(PredicateError::EmptyAll));

    let backwards = PortMatch::Range { lo: 2000, hi: 1000 };
    let err = PredicateError::EmptyPortRange { lo: 2000, hi: 1000 };
    assert_eq!(P::SrcPort(backwards).validate(), Err(err));
    assert_eq!(P::DstPort(backwards).validate(), Err(err));
    assert_eq!(P::All(vec![leaf(), not(P::DstPort(backwards))]).validate(), Err(err));
    assert_eq!(P::DstPort(PortMatch::Range { lo: 22, hi: 22 }).validate(), Ok(()));
    assert_eq!(P::DstPort(PortMatch::Range { lo: 0, hi: u16::MAX }).validate(), Ok(()));
    assert_eq!(err.to_string(), "port range 2000-1000 is empty (low end above high end)");

    let too_deep = Err(PredicateError::TooDeep { max: MAX_PREDICATE_DEPTH });
    assert_eq!(nest_not(leaf(), MAX_PREDICATE_DEPTH - 1).validate(), Ok(()));
    assert_eq!(nest_not(leaf(), MAX_PREDICATE_DEPTH).validate(), too_deep);
    // Depth counts Any and All levels the same way.
    let mut p = leaf();
    for i in 1..MAX_PREDICATE_DEPTH {
        p = if i % 2 == 0 { P::Any(vec![leaf(), p]) } else { P::All(vec![p, leaf()]) };
    }
    assert_eq!(p.validate(), Ok(()));
    assert_eq!(P::All(vec![leaf(), p]).validate(), too_deep);

    assert_eq!(P::Any(vec![leaf(); MAX_PREDICATE_NODES - 1]).validate(), Ok(()));
    assert_eq!(
        P::Any(vec![leaf(); MAX_PREDICATE_NODES]).validate(),
        Err(PredicateError::TooManyNodes { max: MAX_PREDICATE_NODES })
    );
    k.assert_clean();
}

/// A tree far deeper than the limit is refused, evaluated (false) and
/// shown on a thread with a small stack: none of them recurses to the
/// tree's depth. Building and dropping such a tree does recurse (Rust's
/// drop glue), so that happens on a thread with a large stack.
#[test]
fn deep_trees_use_bounded_stack() {
    let k = fakekernel::scope();
    const DEPTH: usize = 50_000;
    const SMALL_STACK: usize = 128 << 10;
    const LARGE_STACK: usize = 256 << 20;
    let outcome = std::thread::Builder::new()
        .stack_size(LARGE_STACK)
        .spawn(|| {
            let deep = nest_not(P::DstPort(PortMatch::Exact(443)), DEPTH);
            let (deep, outcome) = std::thread::Builder::new()
                .stack_size(SMALL_STACK)
                .spawn(move || {
                    let k = fakekernel::scope();
                    let verdict = deep.validate();
                    let m = msg(&tcp4().bytes(), 0);
                    let hit = eval_msg(&m, false, &Meta::new(), &deep);
                    let shown = deep.to_string();
                    drop(m);
                    k.assert_clean();
                    (deep, (verdict, hit, shown))
                })
                .expect("spawn small-stack thread")
                .join()
                .expect("small-stack thread ran");
            drop(deep);
            outcome
        })
        .expect("spawn large-stack thread")
        .join()
        .expect("large-stack thread ran");
    let (verdict, hit, shown) = outcome;
    assert_eq!(verdict, Err(PredicateError::TooDeep { max: MAX_PREDICATE_DEPTH }));
    assert!(!hit);
    let d = MAX_PREDICATE_DEPTH;
    assert_eq!(shown, format!("{}...{}", "!(".repeat(d), ")".repeat(d)));
    k.assert_clean();
}

#[test]
fn display_is_the_operator_form() {
    let k = fakekernel::scope();
    let not = |p| P::Not(Box::new(p));
    let cases = [
        (P::EtherType(0x0800), "ether.type=ipv4"),
        (P::EtherType(0x86dd), "ether.type=ipv6"),
        (P::EtherType(0x0806), "ether.type=arp"),
        (P::EtherType(0x88cc), "ether.type=0x88cc"),
        (P::EtherSrc(MacMatch::Exact(GUEST_MAC)), "ether.src=02:08:20:01:02:03"),
        (P::EtherDst(MacMatch::Multicast), "ether.dst=multicast"),
        (P::Ipv4Src(Ipv4Match::Exact(Ipv4Addr::new(10, 0, 0, 1))), "ip4.src=10.0.0.1"),
        (P::Ipv4Dst(Ipv4Match::Prefix(v4cidr("10.0.0.0/24"))), "ip4.dst=10.0.0.0/24"),
        (P::Ipv6Src(Ipv6Match::Exact("fd00::1".parse().expect("addr"))), "ip6.src=fd00::1"),
        (P::Ipv6Dst(Ipv6Match::Prefix(v6cidr("fd00::/64"))), "ip6.dst=fd00::/64"),
        (P::IpProto(6), "ip.proto=tcp"),
        (P::IpProto(17), "ip.proto=udp"),
        (P::IpProto(1), "ip.proto=icmp"),
        (P::IpProto(58), "ip.proto=icmp6"),
        (P::IpProto(47), "ip.proto=47"),
        (P::SrcPort(PortMatch::Range { lo: 1024, hi: 65535 }), "l4.src_port=1024-65535"),
        (P::DstPort(PortMatch::Exact(22)), "l4.dst_port=22"),
        (P::IcmpType(8), "icmp.type=8"),
        (P::IcmpCode(3), "icmp.code=3"),
        (P::Icmpv6Type(135), "icmp6.type=135"),
        (P::Icmpv6Code(0), "icmp6.code=0"),
        (P::Meta { key: "router-target".into(), value: MetaValue::U64(5) }, "meta.router-target=5"),
        (P::Meta { key: "svc".into(), value: MetaValue::Str("dns".into()) }, "meta.svc=\"dns\""),
        (P::Meta { key: "ext".into(), value: MetaValue::Bool(true) }, "meta.ext=true"),
        (
            P::Meta { key: "hop".into(), value: MetaValue::Ip(GUEST_V6.into()) },
            "meta.hop=fd00:1122:3344:101::5",
        ),
        (P::DhcpMsgType(dhcp_msg_type::DISCOVER), "dhcp.msg_type=DISCOVER"),
        (P::DhcpMsgType(dhcp_msg_type::INFORM), "dhcp.msg_type=INFORM"),
        (P::DhcpMsgType(42), "dhcp.msg_type=42"),
        (P::Dhcpv6MsgType(dhcpv6_msg_type::SOLICIT), "dhcp6.msg_type=SOLICIT"),
        (
            P::Dhcpv6MsgType(dhcpv6_msg_type::INFORMATION_REQUEST),
            "dhcp6.msg_type=INFORMATION-REQUEST",
        ),
        (P::Dhcpv6MsgType(200), "dhcp6.msg_type=200"),
        (not(P::IpProto(17)), "!(ip.proto=udp)"),
        (
            P::All(vec![
                P::Ipv4Dst(Ipv4Match::Prefix(v4cidr("10.0.0.0/24"))),
                P::DstPort(PortMatch::Exact(22)),
                not(P::IpProto(17)),
            ]),
            "all(ip4.dst=10.0.0.0/24, l4.dst_port=22, !(ip.proto=udp))",
        ),
        (
            P::Any(vec![P::DhcpMsgType(1), P::All(vec![P::IcmpType(8), P::IcmpCode(0)])]),
            "any(dhcp.msg_type=DISCOVER, all(icmp.type=8, icmp.code=0))",
        ),
    ];
    for (p, want) in cases {
        assert_eq!(p.to_string(), want);
    }
    k.assert_clean();
}

// ---- DHCPv4 ----

const BOOTREQUEST: u8 = 1;
const BOOTREPLY: u8 = 2;
/// Where the options start in a DHCPv4 message: 236 fixed bytes and the
/// 4-byte cookie.
const OPTIONS_AT: usize = 240;

/// A DHCPv4 message (RFC 2131 §2): the BOOTP fixed part with `sname` and
/// `file`, the magic cookie, then `options` as given.
fn bootp(op: u8, sname: &[u8], file: &[u8], options: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 236];
    b[0] = op;
    b[1] = 1; // htype: Ethernet
    b[2] = 6; // hlen
    b[4..8].copy_from_slice(&0x3903_f326u32.to_be_bytes()); // xid
    b[8..10].copy_from_slice(&3u16.to_be_bytes()); // secs
    b[10..12].copy_from_slice(&0x8000u16.to_be_bytes()); // flags: broadcast
    b[28..34].copy_from_slice(&GUEST_MAC.bytes()); // chaddr
    b[44..44 + sname.len()].copy_from_slice(sname);
    b[108..108 + file.len()].copy_from_slice(file);
    b.extend_from_slice(&[99, 130, 83, 99]);
    b.extend_from_slice(options);
    b
}

/// The options of a client's DHCPDISCOVER, message type first.
fn discover_options() -> Vec<u8> {
    let mut o = vec![53, 1, dhcp_msg_type::DISCOVER];
    o.extend([61, 7, 1]); // client identifier: type Ethernet, MAC
    o.extend(GUEST_MAC.bytes());
    o.extend([55, 4, 1, 3, 6, 15]); // parameter request list
    o.extend([57, 2, 0x05, 0xdc]); // maximum message size 1500
    o.extend([12, 5]); // host name
    o.extend(b"guest");
    o.push(255);
    o
}

/// The options of a client's DHCPREQUEST, message type third.
fn request_options() -> Vec<u8> {
    let mut o = vec![61, 7, 1];
    o.extend(GUEST_MAC.bytes());
    o.extend([50, 4, 172, 30, 0, 5]); // requested address
    o.extend([53, 1, dhcp_msg_type::REQUEST]);
    o.extend([54, 4, 172, 30, 0, 1]); // server identifier
    o.extend([55, 4, 1, 3, 6, 15]);
    o.extend([0, 0, 0]); // pad
    o.push(255);
    o
}

fn discover() -> Vec<u8> {
    bootp(BOOTREQUEST, &[], &[], &discover_options())
}

/// A UDP/IPv4 broadcast from an unconfigured client carrying `payload`.
fn dhcp4_frame(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut fb = FrameBuilder::new(eth(GUEST_MAC, MacAddr::BROADCAST));
    fb.l3 = Some(L3::Ipv4(ipv4(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST)));
    fb.l4 = Some(L4::Udp(udp(sport, dport)));
    fb.to_bytes(payload)
}

/// Offset of the UDP payload in a [`dhcp4_frame`].
const DHCP4_PAYLOAD_AT: usize = 14 + 20 + 8;

fn is_dhcp(ty: u8) -> Predicate {
    P::DhcpMsgType(ty)
}

#[test]
fn dhcp_discover_and_request_are_told_apart() {
    let k = fakekernel::scope();
    use dhcp_msg_type::*;
    let disc = dhcp4_frame(68, 67, &discover());
    assert!(eval(&disc, &is_dhcp(DISCOVER)));
    assert!(!eval(&disc, &is_dhcp(REQUEST)));
    assert!(!eval(&disc, &P::Dhcpv6MsgType(dhcpv6_msg_type::SOLICIT)));

    let req = dhcp4_frame(68, 67, &bootp(BOOTREQUEST, &[], &[], &request_options()));
    assert!(eval(&req, &is_dhcp(REQUEST)));
    assert!(!eval(&req, &is_dhcp(DISCOVER)));

    // A server's OFFER (67 -> 68) and a relay's forward (67 -> 67).
    let offer_opts = [53, 1, OFFER, 54, 4, 172, 30, 0, 1, 51, 4, 0, 1, 81, 128, 255];
    let offer = bootp(BOOTREPLY, b"gateway", &[], &offer_opts);
    assert!(eval(&dhcp4_frame(67, 68, &offer), &is_dhcp(OFFER)));
    assert!(eval(&dhcp4_frame(67, 67, &discover()), &is_dhcp(DISCOVER)));
    // Combined with header predicates, as a rule would.
    let rule = P::All(vec![
        P::EtherDst(MacMatch::Multicast),
        P::Any(vec![is_dhcp(DISCOVER), is_dhcp(REQUEST)]),
    ]);
    assert_eq!(rule.validate(), Ok(()));
    assert!(eval(&disc, &rule));
    assert!(eval(&req, &rule));
    assert!(!eval(&dhcp4_frame(67, 68, &offer), &rule));
    k.assert_clean();
}

#[test]
fn dhcp_needs_ipv4_udp_ports_and_cookie() {
    let k = fakekernel::scope();
    let disc = is_dhcp(dhcp_msg_type::DISCOVER);
    // Either port off the DHCP pair.
    for (sport, dport) in [(68, 53), (5000, 67), (68, 6767), (546, 547)] {
        assert!(!eval(&dhcp4_frame(sport, dport, &discover()), &disc), "{sport}->{dport}");
    }
    // A wrong cookie.
    let mut bad = discover();
    bad[239] = 98;
    assert!(!eval(&dhcp4_frame(68, 67, &bad), &disc));
    // BOOTP with the cookie but no message type.
    let plain = bootp(BOOTREQUEST, &[], &[], &[1, 4, 255, 255, 255, 0, 255]);
    for ty in 0..=255 {
        assert!(!eval(&dhcp4_frame(68, 67, &plain), &is_dhcp(ty)));
    }
    // The same body over IPv6, and over TCP.
    let mut v6 = frame(L3::Ipv6(ipv6(LINK_LOCAL, REMOTE_V6)), Some(L4::Udp(udp(68, 67))));
    assert!(!eval(&v6.to_bytes(&discover()), &disc));
    v6.l3 = Some(L3::Ipv4(ipv4(GUEST_V4, REMOTE_V4)));
    v6.l4 = Some(L4::Tcp(tcp(68, 67, tcp_flags::ACK, &[])));
    assert!(!eval(&v6.to_bytes(&discover()), &disc));
    k.assert_clean();
}

#[test]
fn dhcp_body_split_across_blocks() {
    let k = fakekernel::scope();
    let disc = is_dhcp(dhcp_msg_type::DISCOVER);
    let req = is_dhcp(dhcp_msg_type::REQUEST);
    let bytes = dhcp4_frame(68, 67, &discover());
    for cut in 1..bytes.len() {
        assert!(eval_split(&bytes, &[cut], &disc), "cut at {cut}");
        assert!(!eval_split(&bytes, &[cut], &req), "cut at {cut}");
        // With an empty block at the cut.
        assert!(eval_split(&bytes, &[cut, cut], &disc), "empty block at {cut}");
    }
    // Every byte in its own block.
    let every: Vec<usize> = (1..bytes.len()).collect();
    assert!(eval_split(&bytes, &every, &disc));

    // The options in the `file` field, split anywhere too.
    let overloaded = bootp(BOOTREQUEST, &[], &[53, 1, 3, 255], &[52, 1, 1, 255]);
    let bytes = dhcp4_frame(68, 67, &overloaded);
    for cut in DHCP4_PAYLOAD_AT..bytes.len() {
        assert!(eval_split(&bytes, &[cut], &req), "cut at {cut}");
    }
    k.assert_clean();
}

#[test]
fn truncated_dhcp_body_is_false() {
    let k = fakekernel::scope();
    let disc = is_dhcp(dhcp_msg_type::DISCOVER);
    let full = discover();
    // Option 53 is whole once the payload holds 243 bytes.
    for n in 0..=full.len() {
        let bytes = dhcp4_frame(68, 67, &full[..n]);
        assert_eq!(eval(&bytes, &disc), n >= OPTIONS_AT + 3, "payload of {n} bytes");
        assert!(eval_split(&bytes, &[DHCP4_PAYLOAD_AT + n / 2], &disc) == (n >= OPTIONS_AT + 3));
    }

    // The option in bytes after the IP payload (Ethernet padding) is not
    // read.
    let mut bytes = dhcp4_frame(68, 67, &bootp(BOOTREQUEST, &[], &[], &[]));
    bytes.extend_from_slice(&[53, 1, dhcp_msg_type::DISCOVER, 255, 0, 0]);
    assert!(!eval(&bytes, &disc));

    // Nor in IP payload bytes past the UDP length.
    let udp_len_at = 14 + 20 + 4;
    let mut bytes = dhcp4_frame(68, 67, &full);
    for (payload, want) in [(OPTIONS_AT, false), (OPTIONS_AT + 2, false), (OPTIONS_AT + 3, true)] {
        let len = u16::try_from(8 + payload).expect("fits");
        bytes[udp_len_at..udp_len_at + 2].copy_from_slice(&len.to_be_bytes());
        assert_eq!(eval(&bytes, &disc), want, "UDP payload of {payload}");
    }

    // A first fragment's UDP length may reach past the fragment: the
    // walk stops at the end of the IP payload all the same.
    let mut fb = FrameBuilder::new(eth(GUEST_MAC, MacAddr::BROADCAST));
    let mut ip = ipv4(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST);
    ip.flags_frag = Ipv4Hdr::MF;
    fb.l3 = Some(L3::Ipv4(ip));
    fb.l4 = Some(L4::Udp(udp(68, 67)));
    let mut bytes = fb.to_bytes(&bootp(BOOTREQUEST, &[], &[], &[]));
    let len = u16::try_from(8 + OPTIONS_AT + 4).expect("fits");
    bytes[udp_len_at..udp_len_at + 2].copy_from_slice(&len.to_be_bytes());
    bytes.extend_from_slice(&[53, 1, dhcp_msg_type::DISCOVER, 255]);
    assert!(!eval(&bytes, &disc));
    // (Had the fragment carried them, they would count.)
    let trailer = bytes.split_off(bytes.len() - 4);
    let whole = fb.to_bytes(&[bootp(BOOTREQUEST, &[], &[], &[]), trailer].concat());
    assert!(eval(&whole, &disc));

    // Malformed option 53, or an option running past the payload.
    for opts in [&[53, 2, 1, 0, 255][..], &[53, 0, 255], &[12, 200, b'a', b'b', 53, 1, 1]] {
        let bytes = dhcp4_frame(68, 67, &bootp(BOOTREQUEST, &[], &[], opts));
        assert!(!eval(&bytes, &disc), "{opts:?}");
    }
    k.assert_clean();
}

#[test]
fn dhcp_option_walk_is_bounded() {
    let k = fakekernel::scope();
    let disc = is_dhcp(dhcp_msg_type::DISCOVER);
    let msg_type = [53, 1, dhcp_msg_type::DISCOVER, 255];
    // Option 224 (site-specific) with no data: two bytes each.
    let with_fillers = |n: usize| {
        let mut o: Vec<u8> = [224, 0].repeat(n);
        o.extend(msg_type);
        dhcp4_frame(68, 67, &bootp(BOOTREQUEST, &[], &[], &o))
    };
    assert!(eval(&with_fillers(MAX_DHCP_OPTIONS - 1), &disc), "option 53 is the 64th");
    assert!(!eval(&with_fillers(MAX_DHCP_OPTIONS), &disc), "option 53 is the 65th");

    // Pad bytes do not count as options.
    let mut o = vec![0u8; 300];
    o.extend(msg_type);
    assert!(eval(&dhcp4_frame(68, 67, &bootp(BOOTREQUEST, &[], &[], &o)), &disc));

    // Only the first MAX_DHCP_SCAN_BYTES of the message are read: fill
    // the options up to option 53, whose value byte is the window's last,
    // then push it one byte further. The message goes on past the window.
    let filler = |len: u8| {
        let mut f = vec![224, len];
        f.extend(std::iter::repeat_n(0xaa, usize::from(len)));
        f
    };
    let mut o = filler(255);
    o.extend(filler(74));
    assert_eq!(OPTIONS_AT + o.len() + 3, MAX_DHCP_SCAN_BYTES);
    for (pads, want) in [(0, true), (1, false)] {
        let mut opts = o.clone();
        opts.extend(std::iter::repeat_n(0, pads));
        opts.extend(msg_type);
        opts.extend([0u8; 100]);
        let payload = bootp(BOOTREQUEST, &[], &[], &opts);
        assert!(payload.len() > MAX_DHCP_SCAN_BYTES + 100);
        assert_eq!(eval(&dhcp4_frame(68, 67, &payload), &disc), want, "{pads} pad bytes");
    }
    k.assert_clean();
}

/// Option 52 (RFC 2132 §9.3) moves options into `file` and `sname`,
/// walked after the options field: `file` first, then `sname`.
#[test]
fn dhcp_overloaded_file_and_sname() {
    let k = fakekernel::scope();
    use dhcp_msg_type::*;
    let check = |sname: &[u8], file: &[u8], opts: &[u8], want: Option<u8>| {
        let bytes = dhcp4_frame(68, 67, &bootp(BOOTREQUEST, sname, file, opts));
        for ty in [DISCOVER, REQUEST, INFORM] {
            assert_eq!(eval(&bytes, &is_dhcp(ty)), want == Some(ty), "{opts:?} {ty}");
        }
    };
    check(&[], &[53, 1, DISCOVER, 255], &[52, 1, 1, 61, 2, 1, 2, 255], Some(DISCOVER));
    check(&[53, 1, REQUEST, 255], &[], &[52, 1, 2, 255], Some(REQUEST));
    check(&[53, 1, INFORM, 255], &[12, 3, b'a', b'b', b'c', 255], &[52, 1, 3, 255], Some(INFORM));
    // `file` before `sname`.
    check(&[53, 1, INFORM, 255], &[53, 1, REQUEST, 255], &[52, 1, 3, 255], Some(REQUEST));
    // The options field before either.
    check(&[], &[53, 1, DISCOVER, 255], &[53, 1, REQUEST, 52, 1, 1, 255], Some(REQUEST));
    // Without option 52 the fields are names, not options.
    check(&[53, 1, REQUEST, 255], &[53, 1, DISCOVER, 255], &[61, 2, 1, 2, 255], None);
    // Option 52 counts only in the options field.
    check(&[53, 1, REQUEST, 255], &[52, 1, 2, 255], &[52, 1, 1, 255], None);
    // A `file` walk that runs out of the field's 128 bytes stops there.
    check(&[53, 1, REQUEST, 255], &[12, 200, b'x'], &[52, 1, 3, 255], None);
    k.assert_clean();
}

/// On the underlay the headers' offsets are the inner frame's, deep in
/// the message: the DHCP walk reads there.
#[test]
fn dhcp_inside_geneve() {
    let k = fakekernel::scope();
    let disc = is_dhcp(dhcp_msg_type::DISCOVER);
    let mut fb = FrameBuilder::new(eth(GUEST_MAC, MacAddr::BROADCAST));
    fb.l3 = Some(L3::Ipv4(ipv4(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST)));
    fb.l4 = Some(L4::Udp(udp(68, 67)));
    fb.outer = Some(encap(77, GeneveOptions::default()));
    let bytes = fb.to_bytes(&discover());
    let m = chain(&bytes, &[OUTER_FIXED + 3, bytes.len() - 200], 0);
    assert!(eval_msg(&m, true, &Meta::new(), &disc));
    assert!(!eval_msg(&m, true, &Meta::new(), &is_dhcp(dhcp_msg_type::REQUEST)));
    drop(m);
    k.assert_clean();
}

/// The outer Geneve VNI and the Oxide external tag, seen only on the
/// underlay.
#[test]
fn geneve_vni_and_external_tag() {
    let k = fakekernel::scope();
    let mut fb = frame(L3::Ipv4(ipv4(GUEST_V4, REMOTE_V4)), Some(L4::Udp(udp(1, 2))));
    let plain = fb.to_bytes(b"x");
    fb.outer = Some(encap(77, GeneveOptions::default()));
    let internal = fb.to_bytes(b"x");
    fb.outer = Some(encap(99, GeneveOptions { external: true, ..GeneveOptions::default() }));
    let external = fb.to_bytes(b"x");
    let m = |b: &[u8]| msg(b, 0);
    let vni = |v| P::GeneveVni(opte_api::Vni::new(v).unwrap());
    assert!(eval_msg(&m(&internal), true, &Meta::new(), &vni(77)));
    assert!(!eval_msg(&m(&internal), true, &Meta::new(), &vni(99)));
    assert!(!eval_msg(&m(&internal), true, &Meta::new(), &P::GeneveExternal));
    assert!(eval_msg(&m(&external), true, &Meta::new(), &vni(99)));
    assert!(eval_msg(&m(&external), true, &Meta::new(), &P::GeneveExternal));
    assert!(!eval(&plain, &vni(0)));
    assert!(!eval(&plain, &P::GeneveExternal));
    assert!(eval(&plain, &P::Not(Box::new(P::GeneveExternal))));
    assert_eq!(vni(77).to_string(), "geneve.vni=77");
    k.assert_clean();
}

// ---- DHCPv6 ----

/// A UDP/IPv6 frame from the guest's link-local address to
/// All_DHCP_Relay_Agents_and_Servers (ff02::1:2) carrying `payload`.
fn dhcp6_frame(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let servers = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
    let mut fb = FrameBuilder::new(eth(GUEST_MAC, MacAddr::ipv6_multicast(&servers.octets())));
    fb.l3 = Some(L3::Ipv6(ipv6(LINK_LOCAL, servers)));
    fb.l4 = Some(L4::Udp(udp(sport, dport)));
    fb.to_bytes(payload)
}

/// Client Identifier option (1) holding a DUID-LL (type 3) of `mac`.
fn duid_option(code: u8, mac: MacAddr) -> Vec<u8> {
    let mut o = vec![0, code, 0, 10, 0, 3, 0, 1];
    o.extend(mac.bytes());
    o
}

/// A client's SOLICIT (RFC 8415 §18.2.1).
fn solicit() -> Vec<u8> {
    let mut m = vec![dhcpv6_msg_type::SOLICIT, 0x5a, 0x3c, 0x01]; // type, transaction id
    m.extend(duid_option(1, GUEST_MAC)); // Client Identifier
    m.extend([0, 8, 0, 2, 0, 0]); // Elapsed Time
    m.extend([0, 6, 0, 4, 0, 23, 0, 24]); // Option Request: DNS servers, domains
    m.extend([0, 3, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]); // IA_NA, IAID 1
    m
}

/// A client's REQUEST (RFC 8415 §18.2.2) for the address it was offered.
fn request6() -> Vec<u8> {
    let mut m = vec![dhcpv6_msg_type::REQUEST, 0x5a, 0x3c, 0x02];
    m.extend(duid_option(1, GUEST_MAC)); // Client Identifier
    m.extend(duid_option(2, GW_MAC)); // Server Identifier
    m.extend([0, 8, 0, 2, 0, 0]);
    // IA_NA with an IA Address option: address, preferred, valid.
    m.extend([0, 3, 0, 40, 0, 0, 0, 1, 0, 0, 0x0e, 0x10, 0, 0, 0x15, 0x18]);
    m.extend([0, 5, 0, 24]);
    m.extend(GUEST_V6.octets());
    m.extend([0, 0, 0x1c, 0x20, 0, 0, 0x2a, 0x30]);
    m
}

#[test]
fn dhcpv6_solicit_and_request() {
    let k = fakekernel::scope();
    use dhcpv6_msg_type::*;
    let sol = dhcp6_frame(546, 547, &solicit());
    assert!(eval(&sol, &P::Dhcpv6MsgType(SOLICIT)));
    assert!(!eval(&sol, &P::Dhcpv6MsgType(REQUEST)));
    assert!(!eval(&sol, &is_dhcp(dhcp_msg_type::DISCOVER)));

    let req = dhcp6_frame(546, 547, &request6());
    assert!(eval(&req, &P::Dhcpv6MsgType(REQUEST)));
    assert!(!eval(&req, &P::Dhcpv6MsgType(SOLICIT)));

    // A server's REPLY (547 -> 546).
    let mut reply = request6();
    reply[0] = REPLY;
    assert!(eval(&dhcp6_frame(547, 546, &reply), &P::Dhcpv6MsgType(REPLY)));

    // A relay message needs its 34-byte header.
    let mut relay = vec![RELAY_FORW, 0];
    relay.extend(GUEST_V6.octets()); // link address
    relay.extend(LINK_LOCAL.octets()); // peer address
    assert!(eval(&dhcp6_frame(547, 547, &relay), &P::Dhcpv6MsgType(RELAY_FORW)));
    assert!(!eval(&dhcp6_frame(547, 547, &relay[..33]), &P::Dhcpv6MsgType(RELAY_FORW)));

    // A client message needs type and transaction id.
    let whole = solicit();
    for n in 0..8 {
        let bytes = dhcp6_frame(546, 547, &whole[..n]);
        assert_eq!(eval(&bytes, &P::Dhcpv6MsgType(SOLICIT)), n >= 4, "{n} bytes");
    }

    // Ports, and family.
    for (sport, dport) in [(546, 53), (5000, 547), (546, 5470), (68, 67)] {
        let bytes = dhcp6_frame(sport, dport, &solicit());
        assert!(!eval(&bytes, &P::Dhcpv6MsgType(SOLICIT)), "{sport}->{dport}");
    }
    let v4 = frame(L3::Ipv4(ipv4(GUEST_V4, REMOTE_V4)), Some(L4::Udp(udp(546, 547))));
    assert!(!eval(&v4.to_bytes(&solicit()), &P::Dhcpv6MsgType(SOLICIT)));

    // The type byte alone in a block, and any other layout.
    let at = 14 + 40 + 8;
    for cuts in [[at, at + 1], [at - 1, at + 1], [at, at]] {
        assert!(eval_split(&sol, &cuts, &P::Dhcpv6MsgType(SOLICIT)), "cuts {cuts:?}");
    }
    k.assert_clean();
}
