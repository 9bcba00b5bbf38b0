//! The rule table's index never changes the outcome: for random rule
//! sets (protocols, exact ports, port lists and ranges, addresses, ether
//! types, ICMP types and codes of either family and DHCP message types,
//! alone or in `Any`/`All`/`Not`, priorities,
//! deny and allow) and random packets (IPv4, IPv6, ARP, DHCP and DHCPv6,
//! and every kind the guest parser takes), the rule
//! `find`/`peek` returns is the first rule in evaluation order whose
//! predicates match (a full scan).

mod frames;

use frames::*;
use opte::engine::Direction;
use opte::engine::action::Action;
use opte::engine::meta::Meta;
use opte::engine::predicate::{MatchCtx, PortMatch, Predicate};
use opte::engine::rule::{RuleId, RuleSpec, RuleTable};
use opte::packet::tcp::tcp_flags;
use opte::packet::*;

const PROTOS: [u8; 4] = [6, 17, 1, 58];

fn port(r: &mut Rng) -> u16 {
    20 + r.below(12) as u16
}

fn random_rule(r: &mut Rng) -> RuleSpec {
    let action = if r.below(3) == 0 { Action::Deny } else { Action::Allow };
    let mut s = RuleSpec::new(r.below(8) as u16, action);
    if r.below(4) != 0 {
        s = s.with(Predicate::IpProto(PROTOS[r.below(4)]));
    }
    match r.below(5) {
        0 => s = s.with(Predicate::DstPort(PortMatch::Exact(port(r)))),
        1 => {
            let alts = (0..1 + r.below(3)).map(|_| Predicate::DstPort(PortMatch::Exact(port(r))));
            s = s.with(Predicate::Any(alts.collect()));
        }
        2 => {
            let lo = port(r);
            s = s.with(Predicate::DstPort(PortMatch::Range { lo, hi: lo + r.below(4) as u16 }));
        }
        _ => {}
    }
    if r.below(6) == 0 {
        s = s.with(Predicate::SrcPort(PortMatch::Exact(port(r))));
    }
    if r.below(2) == 0 {
        s = s.with(match r.below(4) {
            0 => Predicate::Any(vec![family_predicate(r), family_predicate(r)]),
            1 => Predicate::All(vec![family_predicate(r), family_predicate(r)]),
            2 => Predicate::Not(Box::new(family_predicate(r))),
            _ => family_predicate(r),
        });
    }
    s
}

/// A predicate that reads one family's fields (or the ether type).
fn family_predicate(r: &mut Rng) -> Predicate {
    use opte::engine::predicate::{Ipv4Match, Ipv6Match};
    match r.below(12) {
        0 => Predicate::Ipv4Dst(Ipv4Match::Exact(REMOTE_V4)),
        1 => Predicate::Ipv6Dst(Ipv6Match::Exact(REMOTE_V6)),
        2 => Predicate::IcmpType(8),
        3 => Predicate::Icmpv6Type(128),
        4 => Predicate::EtherType(0x0806),
        5 => Predicate::EtherType(0x0800),
        6 => Predicate::EtherType(0x86dd),
        // Fields that imply a protocol, alone and in an `Any` whose
        // branches agree or do not.
        7 => Predicate::Icmpv6Codes { lo: 0, hi: 1 },
        8 => Predicate::Any(vec![Predicate::Icmpv6Type(128), Predicate::Icmpv6Type(129)]),
        9 => Predicate::Any(vec![Predicate::IcmpType(8), Predicate::Icmpv6Type(128)]),
        10 if r.below(2) == 0 => Predicate::DhcpMsgType(1),
        10 => Predicate::Dhcpv6MsgType(1),
        _ => Predicate::Ipv4Src(Ipv4Match::Exact(GUEST_V4)),
    }
}

fn random_packet(r: &mut Rng) -> Vec<u8> {
    match r.below(12) {
        0 => arp_request().bytes(),
        1 => icmp6_echo().bytes(),
        // Every kind the guest parser takes: IPv4 options, IPv6
        // extension headers and fragments, ICMP errors, NDP, ARP, GRE.
        2 => {
            let all = guest_samples();
            all[r.below(all.len())].bytes()
        }
        3 => dhcp_packet(r),
        _ => {
            let mut fb = FrameBuilder::new(eth(GUEST_MAC, GW_MAC));
            fb.l3 = Some(if r.below(3) == 0 {
                L3::Ipv6(ipv6(GUEST_V6, random_v6(r)))
            } else {
                L3::Ipv4(ipv4(GUEST_V4, random_v4(r)))
            });
            let v4 = matches!(fb.l3, Some(L3::Ipv4(_)));
            let (sp, dp) = (port(r), port(r));
            fb.l4 = Some(match r.below(3) {
                0 => L4::Tcp(tcp(sp, dp, tcp_flags::SYN, &[])),
                1 => L4::Udp(udp(sp, dp)),
                _ if v4 => L4::Icmpv4(icmp(8, 0, [0, 1, 0, 1])),
                _ => L4::Udp(udp(sp, dp)),
            });
            fb.to_bytes(b"x")
        }
    }
}

/// A destination the rules' blocks are built around, or another.
fn random_v4(r: &mut Rng) -> std::net::Ipv4Addr {
    match r.below(3) {
        0 => REMOTE_V4,
        1 => GUEST_V4,
        _ => std::net::Ipv4Addr::new(198, 51, 100, r.below(256) as u8),
    }
}

fn random_v6(r: &mut Rng) -> std::net::Ipv6Addr {
    match r.below(3) {
        0 => REMOTE_V6,
        1 => GUEST_V6,
        _ => std::net::Ipv6Addr::new(0x2001, 0xdb8, r.below(9) as u16, 0, 0, 0, 0, 1),
    }
}

/// A DHCP DISCOVER or a DHCPv6 SOLICIT from the guest.
fn dhcp_packet(r: &mut Rng) -> Vec<u8> {
    let mut fb = FrameBuilder::new(eth(GUEST_MAC, GW_MAC));
    let body = if r.below(2) == 0 {
        fb.l3 =
            Some(L3::Ipv4(ipv4(std::net::Ipv4Addr::UNSPECIFIED, std::net::Ipv4Addr::BROADCAST)));
        fb.l4 = Some(L4::Udp(udp(68, 67)));
        // BOOTP's fixed part, the magic cookie, message type 1, end.
        let mut b = vec![0u8; 236];
        b[0] = 1;
        b.extend_from_slice(&[99, 130, 83, 99, 53, 1, 1, 255]);
        b
    } else {
        fb.l3 = Some(L3::Ipv6(ipv6(LINK_LOCAL, "ff02::1:2".parse().unwrap())));
        fb.l4 = Some(L4::Udp(udp(546, 547)));
        // SOLICIT and a transaction id.
        vec![1, 0, 0, 7]
    };
    fb.to_bytes(&body)
}

/// A table of `specs`, ids numbered after `first`; and the last id.
fn table(specs: Vec<RuleSpec>, first: u64) -> (RuleTable, u64) {
    let mut t = RuleTable::new();
    let mut next = first;
    t.update(specs, || {
        next += 1;
        RuleId(next)
    })
    .unwrap();
    (t, next)
}

/// Check `n` random packets: `peek` finds what a full scan finds.
/// Returns how many matched a rule.
fn agree_on_packets(t: &RuleTable, r: &mut Rng, n: usize, round: u64) -> usize {
    let mut matched = 0;
    for _ in 0..n {
        let bytes = random_packet(r);
        let m = msg(&bytes, 0);
        let hdrs = Headers::parse_guest(&m).unwrap();
        let meta = Meta::new();
        let ctx = MatchCtx { dir: Direction::Out, hdrs: &hdrs, mblk: &m, meta: &meta };
        let scan = t.iter().find(|rule| rule.matches(&ctx)).map(|rule| rule.id);
        assert_eq!(t.peek(&ctx).map(|rule| rule.id), scan, "round {round}");
        matched += usize::from(scan.is_some());
    }
    matched
}

#[test]
fn the_index_finds_what_a_full_scan_finds() {
    let k = fakekernel::scope();
    let mut r = Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut matched = 0;
    for round in 0..200 {
        let n = 1 + r.below(40);
        let specs: Vec<RuleSpec> = (0..n).map(|_| random_rule(&mut r)).collect();
        let (mut t, last) = table(specs, round * 100);
        // Exercise add and remove too.
        let extra = RuleId(last + 1);
        t.add(extra, random_rule(&mut r)).unwrap();
        if r.below(2) == 0 {
            t.remove(extra).unwrap();
        }
        matched += agree_on_packets(&t, &mut r, 20, round);
    }
    assert!(matched > 1000, "the generator must produce matches ({matched})");
    k.assert_clean();
}

/// What the index files a rule under: the protocol its fields imply and
/// the frames its ether type admits.
#[test]
fn a_predicate_implies_the_protocol_its_fields_need() {
    use opte::engine::predicate::frame_kind;
    let k = fakekernel::scope();
    let cases = [
        (Predicate::IpProto(6), Some(6)),
        (Predicate::IcmpType(8), Some(1)),
        (Predicate::IcmpCodes { lo: 0, hi: 3 }, Some(1)),
        (Predicate::Icmpv6Type(135), Some(58)),
        (Predicate::DhcpMsgType(1), Some(17)),
        (Predicate::Dhcpv6MsgType(1), Some(17)),
        (Predicate::Any(vec![Predicate::Icmpv6Type(133), Predicate::Icmpv6Type(134)]), Some(58)),
        (Predicate::Any(vec![Predicate::IcmpType(8), Predicate::Icmpv6Type(128)]), None),
        (Predicate::Any(vec![Predicate::IcmpType(8), Predicate::EtherType(0x0806)]), None),
        (Predicate::All(vec![Predicate::EtherType(0x86dd), Predicate::IpProto(58)]), Some(58)),
        (Predicate::Not(Box::new(Predicate::IpProto(6))), None),
        (Predicate::DstPort(PortMatch::Exact(80)), None),
    ];
    for (p, want) in cases {
        assert_eq!(p.implied_proto(), want, "{p:?}");
    }
    assert_eq!(Predicate::EtherType(0x0806).frame_kinds(), frame_kind::ARP | frame_kind::OTHER);
    assert_eq!(Predicate::EtherType(0x86dd).frame_kinds(), frame_kind::IPV6 | frame_kind::OTHER);
    assert_eq!(Predicate::EtherType(0x88cc).frame_kinds(), frame_kind::ALL);
    k.assert_clean();
}

/// A destination block of `len` bits around `near` (of its family).
fn block(near: std::net::IpAddr, len: u8) -> Predicate {
    use opte::engine::predicate::{Ipv4Match, Ipv6Match};
    use opte_api::{Ipv4Cidr, Ipv6Cidr};
    match near {
        std::net::IpAddr::V4(a) => {
            let len = len % 33;
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            let net = std::net::Ipv4Addr::from(u32::from(a) & mask);
            Predicate::Ipv4Dst(Ipv4Match::Prefix(Ipv4Cidr::new(net, len).unwrap()))
        }
        std::net::IpAddr::V6(a) => {
            let len = len % 129;
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            let net = std::net::Ipv6Addr::from(u128::from(a) & mask);
            Predicate::Ipv6Dst(Ipv6Match::Prefix(Ipv6Cidr::new(net, len).unwrap()))
        }
    }
}

/// Tables big enough to file rules by destination block (routes of
/// every length around the packets' destinations and elsewhere, hosts,
/// with and without protocols and ports): the index still finds what a
/// full scan finds.
#[test]
fn the_destination_index_finds_what_a_full_scan_finds() {
    use opte::engine::predicate::{Ipv4Match, Ipv6Match};
    use opte::engine::rule::DST_INDEX_MIN_RULES;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let k = fakekernel::scope();
    let mut r = Rng::new(0x2545_f491_4f6c_dd1d);
    let mut matched = 0;
    for round in 0..100 {
        let n = DST_INDEX_MIN_RULES + r.below(200);
        let specs: Vec<RuleSpec> = (0..n)
            .map(|_| {
                let near: IpAddr = match r.below(6) {
                    0 => IpAddr::V4(REMOTE_V4),
                    1 => IpAddr::V6(REMOTE_V6),
                    2 => IpAddr::V4(GUEST_V4),
                    3 => IpAddr::V4(Ipv4Addr::new(198, 51, 100, r.below(256) as u8)),
                    4 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, r.below(9) as u16, 0, 0, 0, 0, 1)),
                    _ => IpAddr::V6(GUEST_V6),
                };
                let len = r.below(129) as u8;
                let mut s = random_rule(&mut r);
                s = match r.below(8) {
                    0 => s,
                    1 => s.with(match near {
                        IpAddr::V4(a) => Predicate::Ipv4Dst(Ipv4Match::Exact(a)),
                        IpAddr::V6(a) => Predicate::Ipv6Dst(Ipv6Match::Exact(a)),
                    }),
                    _ => s.with(block(near, len)),
                };
                s
            })
            .collect();
        let (t, _) = table(specs, round * 1000);
        matched += agree_on_packets(&t, &mut r, 30, round);
    }
    assert!(matched > 500, "the generator must produce matches ({matched})");
    k.assert_clean();
}
