//! Round trips: a header value written to bytes and read back is the same
//! value, for every header kind and option the packet layer knows; a frame
//! built from values parses back to those values at the right offsets; and
//! known answers (wire bytes written out by hand from the RFC formats, with
//! checksums computed by an independent implementation) pin the encoding,
//! so that a writer and a reader that are wrong in the same way still fail.

mod frames;

use frames::*;
use opte::packet::ether::ether_type;
use opte::packet::geneve::{OPT_CRITICAL, OXIDE_OPT_CLASS};
use opte::packet::icmp::{icmpv4_type, icmpv6_type};
use opte::packet::ip4::protocol;
use opte::packet::ndp::ndp_opt;
use opte::packet::tcp::{MAX_TCP_OPTIONS, emit_tcp_options};
use opte::packet::*;
use opte_api::{Ipv4Addr, Ipv6Addr, MacAddr, Vni};

// ---------------------------------------------------------------------
// Header level.
// ---------------------------------------------------------------------

#[test]
fn ether_roundtrip() {
    let k = fakekernel::scope();
    for (dst, src, ty) in [
        (MacAddr::BROADCAST, GUEST_MAC, ether_type::ARP),
        (GW_MAC, GUEST_MAC, ether_type::IPV4),
        (
            MacAddr::ipv6_multicast(&[0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 1]),
            GW_MAC,
            ether_type::IPV6,
        ),
        (MacAddr::ZERO, MacAddr::ZERO, 0xffff),
    ] {
        let h = EtherHdr { dst, src, ether_type: ty };
        let mut b = [0u8; EtherHdr::LEN];
        h.emit(&mut b);
        assert_eq!(EtherHdr::parse(&b), Ok(h));
    }
    k.assert_clean();
}

#[test]
fn arp_roundtrip() {
    let k = fakekernel::scope();
    for op in [1, 2] {
        let a = ArpEthIpv4 {
            op,
            sha: GUEST_MAC,
            spa: GUEST_V4,
            tha: if op == 1 { MacAddr::ZERO } else { GW_MAC },
            tpa: Ipv4Addr::new(172, 30, 0, 1),
        };
        let mut b = [0u8; ArpEthIpv4::LEN];
        a.emit(&mut b);
        assert_eq!(ArpEthIpv4::parse(&b), Ok(a));
    }
    k.assert_clean();
}

#[test]
fn ipv4_roundtrip_with_each_option_length() {
    let k = fakekernel::scope();
    for words in 0..=10usize {
        let opts: Vec<u8> =
            (0..words * 4).map(|i| (i as u8).wrapping_mul(29).wrapping_add(1)).collect();
        let mut ip = with_ip4_options(ipv4(GUEST_V4, REMOTE_V4), &opts);
        ip.total_len = 1500;
        ip.flags_frag = Ipv4Hdr::MF | 0x0123;
        ip.proto = protocol::UDP;
        ip.csum = ip.compute_csum();
        let mut b = [0u8; 60];
        let n = ip.emit(&mut b);
        assert_eq!(n, 20 + words * 4);
        assert_eq!(usize::from(b[0] & 0xf), 5 + words, "IHL");
        assert_eq!(Ipv4Hdr::parse(&b[..n]), Ok(ip), "{words} option words");
        assert_eq!(ip.options(), &opts[..]);
        assert_eq!(ones_sum(&[&b[..n]]), 0xffff, "compute_csum verifies");
    }
    k.assert_clean();
}

/// Read an IPv6 header and its extension headers from contiguous bytes.
fn parse_ipv6_bytes(b: &[u8]) -> Ipv6Hdr {
    let mut ip = Ipv6Hdr::parse_fixed(&b[..Ipv6Hdr::LEN]).unwrap();
    let mut next = ip.next_hdr;
    let mut at = Ipv6Hdr::LEN;
    while Ipv6Ext::is_ext(next) {
        let (ext, nh) = Ipv6Hdr::parse_ext(next, &b[at..at + 8]).unwrap();
        at += ext.wire_len();
        ip.ext.push(ext).unwrap();
        next = nh;
    }
    assert_eq!(at, b.len(), "extension headers end where written");
    ip.proto = next;
    ip
}

/// One extension header of each kind, in a few sizes and field values.
fn ext_kinds() -> [Vec<Ipv6Ext>; 4] {
    [
        vec![Ipv6Ext::HopByHop { len: 8 }, Ipv6Ext::HopByHop { len: 24 }],
        vec![Ipv6Ext::DestOpts { len: 8 }, Ipv6Ext::DestOpts { len: 2048 }],
        vec![
            Ipv6Ext::Routing { len: 8, routing_type: 0, segments_left: 0 },
            Ipv6Ext::Routing { len: 40, routing_type: 4, segments_left: 2 },
        ],
        vec![
            Ipv6Ext::Fragment(Ipv6Frag { offset: 0, more: true, ident: 1 }),
            Ipv6Ext::Fragment(Ipv6Frag { offset: 0x1fff, more: false, ident: 0xffff_ffff }),
        ],
    ]
}

#[test]
fn ipv6_roundtrip_with_extension_header_chains() {
    let k = fakekernel::scope();
    let kinds = ext_kinds();
    let mut checked = 0;
    // Every sequence of kinds of length 0..=MAX_IPV6_EXT_HDRS, choosing the
    // variant of each kind by position.
    for len in 0..=MAX_IPV6_EXT_HDRS {
        for code in 0..4usize.pow(len as u32) {
            let chain: Vec<Ipv6Ext> = (0..len)
                .map(|i| {
                    let kind = (code / 4usize.pow(i as u32)) % 4;
                    kinds[kind][(code + i) % 2]
                })
                .collect();
            let mut ip = ipv6(GUEST_V6, REMOTE_V6);
            ip.proto = protocol::TCP;
            ip = with_ext(ip, &chain);
            ip.payload_len = (ip.ext.wire_len() + 20) as u16;
            let mut b = vec![0u8; ip.hdr_len()];
            assert_eq!(ip.emit(&mut b), ip.hdr_len());
            assert_eq!(parse_ipv6_bytes(&b), ip, "{chain:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, 1 + 4 + 16 + 64 + 256);
    k.assert_clean();
}

/// Every option kind alone, and full option areas.
fn tcp_option_lists() -> Vec<Vec<TcpOption>> {
    let mut v: Vec<Vec<TcpOption>> = [
        TcpOption::Nop,
        TcpOption::Mss(0),
        TcpOption::Mss(1460),
        TcpOption::Mss(u16::MAX),
        TcpOption::WindowScale(0),
        TcpOption::WindowScale(14),
        TcpOption::SackPermitted,
        sack(&[(1, 2)]),
        sack(&[(1, 2), (3, 4)]),
        sack(&[(1, 2), (3, 4), (5, 6)]),
        sack(&[(1, 2), (3, 4), (5, 6), (u32::MAX, 0)]),
        TcpOption::Timestamps { val: 0xdead_beef, ecr: 0x0102_0304 },
        TcpOption::Unknown { kind: 30, len: 2 },
        TcpOption::Unknown { kind: 34, len: 10 },
        TcpOption::Unknown { kind: 254, len: 4 },
    ]
    .into_iter()
    .map(|o| vec![o])
    .collect();
    // A SYN's usual set, and a 40-byte area (the largest).
    v.push(vec![
        TcpOption::Mss(8948),
        TcpOption::SackPermitted,
        TcpOption::Timestamps { val: 1, ecr: 0 },
        TcpOption::Nop,
        TcpOption::WindowScale(9),
    ]);
    v.push(vec![
        TcpOption::Nop,
        TcpOption::Nop,
        TcpOption::Timestamps { val: 5, ecr: 6 },
        TcpOption::Nop,
        TcpOption::Nop,
        sack(&[(10, 20), (30, 40), (50, 60)]),
    ]);
    v
}

#[test]
fn tcp_roundtrip_with_each_option() {
    let k = fakekernel::scope();
    for opts in tcp_option_lists() {
        let t = tcp(1, 65535, 0xff, &opts);
        let mut b = [0u8; 60];
        let n = t.emit(&mut b);
        assert_eq!(n, t.hdr_len());
        assert_eq!(n % 4, 0);
        let back = TcpHdr::parse(&b[..n]).unwrap_or_else(|e| panic!("{opts:?}: {e}"));
        assert_eq!(back, t, "{opts:?}");
        let read: Vec<TcpOption> = back.option_iter().map(Result::unwrap).collect();
        assert_eq!(read, opts);
    }
    // 41 bytes of options don't fit.
    let mut area = [0u8; MAX_TCP_OPTIONS];
    let too_many =
        [sack(&[(1, 2), (3, 4), (5, 6), (7, 8)]), TcpOption::Timestamps { val: 0, ecr: 0 }];
    assert_eq!(emit_tcp_options(&too_many, &mut area), None);
    k.assert_clean();
}

#[test]
fn udp_roundtrip() {
    let k = fakekernel::scope();
    for (s, d, len, csum) in [(53, 5353, 8, 0), (6081, 6081, 65535, 0xffff), (0, 1, 1200, 0x1234)] {
        let u = UdpHdr { src_port: s, dst_port: d, len, csum };
        let mut b = [0u8; UdpHdr::LEN];
        u.emit(&mut b);
        assert_eq!(UdpHdr::parse(&b), Ok(u));
    }
    k.assert_clean();
}

#[test]
fn icmp_roundtrip_echo_and_errors() {
    let k = fakekernel::scope();
    let cases = [
        (HeaderKind::Icmpv4, icmp(icmpv4_type::ECHO_REQUEST, 0, [0x12, 0x34, 0, 7])),
        (HeaderKind::Icmpv4, icmp(icmpv4_type::ECHO_REPLY, 0, [0xff, 0xff, 0xff, 0xff])),
        (HeaderKind::Icmpv4, icmp(icmpv4_type::DEST_UNREACH, 4, [0, 0, 0x05, 0xdc])),
        (HeaderKind::Icmpv4, icmp(icmpv4_type::TIME_EXCEEDED, 0, [0; 4])),
        (HeaderKind::Icmpv4, icmp(icmpv4_type::PARAM_PROBLEM, 0, [20, 0, 0, 0])),
        (HeaderKind::Icmpv6, icmp(icmpv6_type::ECHO_REQUEST, 0, [0, 1, 0, 2])),
        (HeaderKind::Icmpv6, icmp(icmpv6_type::PACKET_TOO_BIG, 0, 1280u32.to_be_bytes())),
        (HeaderKind::Icmpv6, icmp(icmpv6_type::PARAM_PROBLEM, 1, 40u32.to_be_bytes())),
    ];
    for (kind, mut i) in cases {
        i.csum = 0xbeef;
        let mut b = [0u8; IcmpHdr::LEN];
        i.emit(&mut b);
        let back = IcmpHdr::parse(&b, kind).unwrap();
        assert_eq!(back, i);
        if i.is_v4_echo() || i.is_v6_echo() {
            assert_eq!(
                (back.echo_id(), back.echo_seq()),
                (
                    u16::from_be_bytes([i.rest[0], i.rest[1]]),
                    u16::from_be_bytes([i.rest[2], i.rest[3]])
                )
            );
        }
    }
    k.assert_clean();
}

/// Read an NDP message from the ICMPv6 type, its four type-specific
/// bytes, and the bytes after the ICMPv6 header.
fn parse_ndp_bytes(ty: u8, rest: [u8; 4], body: &[u8]) -> NdpMsg {
    let fixed = NdpMsg::fixed_len(ty);
    let mut m = NdpMsg::parse_fixed(ty, rest, &body[..fixed]).unwrap();
    let mut at = fixed;
    while at < body.len() {
        let end = at + usize::from(body[at + 1]) * 8;
        m.options_mut().add(body[at], &body[at + 2..end]).unwrap();
        at = end;
    }
    m
}

/// Every subset of the options the parser interprets.
fn ndp_option_sets() -> Vec<NdpOptions> {
    (0..16)
        .map(|bits: u8| NdpOptions {
            src_lla: (bits & 1 != 0).then_some(GUEST_MAC),
            tgt_lla: (bits & 2 != 0).then_some(GW_MAC),
            mtu: (bits & 4 != 0).then_some(9000),
            prefix: (bits & 8 != 0).then(prefix_info),
            skipped: 0,
        })
        .collect()
}

#[test]
fn ndp_roundtrip_each_message_and_option() {
    let k = fakekernel::scope();
    for opts in ndp_option_sets() {
        let msgs = [
            NdpMsg::RouterSolicit { opts },
            NdpMsg::RouterAdvert {
                cur_hop_limit: 255,
                flags: 0xc0,
                router_lifetime: 65535,
                reachable_time: 0xffff_ffff,
                retrans_timer: 1,
                opts,
            },
            NdpMsg::NeighborSolicit { target: LINK_LOCAL, opts },
            NdpMsg::NeighborAdvert { flags: 0xe0, target: GUEST_V6, opts },
        ];
        for m in msgs {
            let mut b = [0u8; 128];
            let n = m.emit_body(&mut b);
            assert_eq!(n, NdpMsg::fixed_len(m.icmp_type()) + opts.wire_len(), "{m:?}");
            assert_eq!(parse_ndp_bytes(m.icmp_type(), m.icmp_rest(), &b[..n]), m);
        }
    }
    k.assert_clean();
}

/// Read a Geneve header and its options from contiguous bytes.
fn parse_geneve_bytes(b: &[u8]) -> GeneveHdr {
    let mut g = GeneveHdr::parse_fixed(&b[..GeneveHdr::LEN]).unwrap();
    let mut at = GeneveHdr::LEN;
    while at < g.hdr_len() {
        let hdr: [u8; 4] = b[at..at + 4].try_into().unwrap();
        let end = at + 4 + usize::from(hdr[3] & 0x1f) * 4;
        g.options.add(&hdr, &b[at + 4..end]).unwrap();
        at = end;
    }
    assert_eq!(at, b.len());
    g
}

#[test]
fn geneve_roundtrip_each_oxide_option() {
    let k = fakekernel::scope();
    let reps = [
        None,
        Some(Replication::External),
        Some(Replication::Underlay),
        Some(Replication::All),
        Some(Replication::Reserved),
    ];
    for (i, (external, multicast, mss)) in [false, true]
        .into_iter()
        .flat_map(|e| reps.into_iter().map(move |r| (e, r)))
        .flat_map(|(e, r)| {
            [None, Some(0), Some(1448), Some(u32::MAX)].into_iter().map(move |m| (e, r, m))
        })
        .enumerate()
    {
        let opts = GeneveOptions { external, multicast, mss, skipped: 0 };
        let mut g = GeneveHdr::new(Vni::new((i as u32 * 0x01_0203) & Vni::MAX).unwrap(), opts);
        g.oam = i % 3 == 0;
        let mut b = [0u8; 64];
        let n = g.emit(&mut b);
        assert_eq!(n, GeneveHdr::LEN + opts.wire_len());
        assert_eq!(g.critical, external || multicast.is_some());
        assert_eq!(parse_geneve_bytes(&b[..n]), g, "{opts:?}");
    }
    k.assert_clean();
}

// ---------------------------------------------------------------------
// Packet level.
// ---------------------------------------------------------------------

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The headers parsing `bytes` (built from `s`) must give: the values the
/// frame was built from, with the lengths, protocol numbers and EtherTypes
/// a builder fills in worked out here from sizes, and checksums read from
/// the bytes (their correctness is checked separately).
fn expected_headers(s: &Sample, bytes: &[u8]) -> Headers {
    let total = bytes.len();
    let base = s.inner_eth();
    let fb = s.fb;
    let outer = fb.outer.map(|mut e| {
        e.eth.ether_type = ether_type::IPV6;
        e.ip6.payload_len = (total - 54) as u16;
        e.ip6.next_hdr = protocol::UDP;
        e.ip6.proto = protocol::UDP;
        e.udp.len = (total - 54) as u16;
        e.udp.csum = 0;
        let oam = e.geneve.oam;
        e.geneve = GeneveHdr::new(e.geneve.vni, e.geneve.options);
        e.geneve.oam = oam;
        e
    });
    let l3_off = base + EtherHdr::LEN;
    let l4_proto = match fb.l4 {
        Some(L4::Tcp(_)) => Some(protocol::TCP),
        Some(L4::Udp(_)) => Some(protocol::UDP),
        Some(L4::Icmpv4(_)) => Some(protocol::ICMP),
        Some(L4::Icmpv6(_)) => Some(protocol::ICMPV6),
        None => None,
    };
    let mut eth = fb.eth;
    let (l3, l4_off) = match fb.l3 {
        Some(L3::Ipv4(mut ip)) => {
            eth.ether_type = ether_type::IPV4;
            ip.total_len = (total - l3_off) as u16;
            ip.proto = l4_proto.unwrap_or(ip.proto);
            ip.csum = be16(bytes, l3_off + 10);
            (L3::Ipv4(ip), l3_off + ip.hdr_len())
        }
        Some(L3::Ipv6(mut ip)) => {
            eth.ether_type = ether_type::IPV6;
            ip.payload_len = (total - l3_off - 40) as u16;
            ip.proto = l4_proto.unwrap_or(ip.proto);
            ip.next_hdr = ip.ext.iter().next().map_or(ip.proto, Ipv6Ext::protocol);
            (L3::Ipv6(ip), l3_off + ip.hdr_len())
        }
        Some(L3::Arp(a)) => {
            eth.ether_type = ether_type::ARP;
            (L3::Arp(a), l3_off + ArpEthIpv4::LEN)
        }
        None => unreachable!("samples have a network header"),
    };
    let (l4, hdr_len) = match fb.l4 {
        Some(L4::Tcp(mut t)) => {
            t.csum = be16(bytes, l4_off + 16);
            (Some(L4::Tcp(t)), t.hdr_len())
        }
        Some(L4::Udp(mut u)) => {
            u.len = (total - l4_off) as u16;
            u.csum = be16(bytes, l4_off + 6);
            (Some(L4::Udp(u)), UdpHdr::LEN)
        }
        Some(L4::Icmpv4(mut i)) => {
            i.csum = be16(bytes, l4_off + 2);
            (Some(L4::Icmpv4(i)), IcmpHdr::LEN)
        }
        Some(L4::Icmpv6(mut i)) => {
            i.csum = be16(bytes, l4_off + 2);
            if let Some(n) = &fb.ndp {
                i.ty = n.icmp_type();
                i.rest = n.icmp_rest();
            }
            (Some(L4::Icmpv6(i)), IcmpHdr::LEN)
        }
        None => (None, 0),
    };
    let (embedded_l3, embedded_ulp) = match &fb.embedded {
        Some(e) => {
            let q = l4_off + IcmpHdr::LEN;
            let qlen = match &e.l3 {
                EmbeddedL3::Ipv4(ip) => ip.hdr_len(),
                EmbeddedL3::Ipv6(ip) => ip.hdr_len(),
            };
            (q as u32, (q + qlen) as u32)
        }
        None => (0, 0),
    };
    let is_arp = matches!(l3, L3::Arp(_));
    Headers {
        outer,
        eth,
        l3: Some(l3),
        l4,
        embedded: fb.embedded,
        ndp: fb.ndp,
        offsets: Offsets {
            inner_eth: base as u32,
            l3: l3_off as u32,
            l4: l4_off as u32,
            body: (l4_off + hdr_len) as u32,
            embedded_l3,
            embedded_ulp,
        },
        l4_len: if is_arp { 0 } else { (total - l4_off) as u32 },
        straddled: 0,
    }
}

#[test]
fn guest_frames_parse_to_the_headers_built() {
    let k = fakekernel::scope();
    for s in guest_samples() {
        let bytes = s.bytes();
        assert_checksums(&bytes, false, s.name);
        let m = msg(&bytes, 0);
        let h = Headers::parse_guest(&m).unwrap_or_else(|e| panic!("{}: {e}", s.name));
        assert_eq!(h, expected_headers(&s, &bytes), "{}", s.name);
        // The body is where the offsets say.
        let body_at = h.offsets.body as usize;
        if !s.body.is_empty() && h.embedded.is_none() && h.ndp.is_none() {
            assert_eq!(&bytes[body_at..], &s.body[..], "{}", s.name);
        }
    }
    k.assert_clean();
}

#[test]
fn underlay_frames_parse_to_the_headers_built() {
    let k = fakekernel::scope();
    for s in underlay_samples() {
        let bytes = s.bytes();
        assert_checksums(&bytes, true, s.name);
        let m = msg(&bytes, 0);
        let h = Headers::parse_underlay(&m).unwrap_or_else(|e| panic!("{}: {e}", s.name));
        assert_eq!(h, expected_headers(&s, &bytes), "{}", s.name);
        assert_eq!(h.outer.map(|e| e.wire_len()), Some(s.inner_eth()), "{}", s.name);
    }
    k.assert_clean();
}

#[test]
fn frames_split_into_blocks_parse_the_same() {
    let k = fakekernel::scope();
    let mut rng = Rng::new(0x5eed_0001);
    let samples = guest_samples()
        .into_iter()
        .map(|s| (s, false))
        .chain(underlay_samples().into_iter().map(|s| (s, true)));
    for (s, underlay) in samples {
        let bytes = s.bytes();
        let want = expected_headers(&s, &bytes);
        for _ in 0..20 {
            let cuts = rng.cuts(bytes.len(), 6);
            let m = chain(&bytes, &cuts, 0);
            let mut h =
                if underlay { Headers::parse_underlay(&m) } else { Headers::parse_guest(&m) }
                    .unwrap_or_else(|e| panic!("{} cut at {cuts:?}: {e}", s.name));
            h.straddled = 0;
            assert_eq!(h, want, "{} cut at {cuts:?}", s.name);
        }
    }
    k.assert_clean();
}

// ---------------------------------------------------------------------
// Known answers: wire bytes written out by hand.
// ---------------------------------------------------------------------

#[test]
fn known_answer_ethernet() {
    let k = fakekernel::scope();
    #[rustfmt::skip]
    let wire = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // destination: broadcast
        0x00, 0x1b, 0x21, 0x3a, 0x4c, 0x5d, // source
        0x08, 0x06,                         // EtherType: ARP
    ];
    let h = EtherHdr::parse(&wire).unwrap();
    assert_eq!(h.dst, MacAddr::BROADCAST);
    assert_eq!(h.src, MacAddr::from_bytes([0x00, 0x1b, 0x21, 0x3a, 0x4c, 0x5d]));
    assert_eq!(h.ether_type, ether_type::ARP);
    let mut out = [0u8; EtherHdr::LEN];
    h.emit(&mut out);
    assert_eq!(out, wire);
    k.assert_clean();
}

#[test]
fn known_answer_ipv4_header_checksum() {
    let k = fakekernel::scope();
    // The classic worked example: 192.168.0.1 -> 192.168.0.199, UDP, 115
    // bytes, DF; its header checksum is 0xb861.
    #[rustfmt::skip]
    let wire = [
        0x45, 0x00, 0x00, 0x73, // version 4, IHL 5, TOS 0, total length 115
        0x00, 0x00, 0x40, 0x00, // ident 0, DF
        0x40, 0x11, 0xb8, 0x61, // TTL 64, UDP, checksum
        0xc0, 0xa8, 0x00, 0x01, // source
        0xc0, 0xa8, 0x00, 0xc7, // destination
    ];
    let ip = Ipv4Hdr::parse(&wire).unwrap();
    assert_eq!(
        (ip.total_len, ip.flags_frag, ip.ttl, ip.proto, ip.csum),
        (115, Ipv4Hdr::DF, 64, protocol::UDP, 0xb861)
    );
    assert_eq!((ip.src, ip.dst), (Ipv4Addr::new(192, 168, 0, 1), Ipv4Addr::new(192, 168, 0, 199)));
    assert_eq!(ip.compute_csum(), 0xb861);
    let mut out = [0u8; 20];
    assert_eq!(ip.emit(&mut out), 20);
    assert_eq!(out, wire);
    k.assert_clean();
}

/// A TCP SYN, 10.0.0.1:40000 -> 10.0.0.2:80, with MSS 1460, NOP and
/// window scale 7.
#[rustfmt::skip]
const TCP4_SYN: [u8; 62] = [
    // Ethernet
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00,
    // IPv4: IHL 5, total 48, ident 0x1234, DF, TTL 64, TCP, checksum 0x1492
    0x45, 0x00, 0x00, 0x30, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x14, 0x92,
    0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02,
    // TCP: ports, seq 0x01020304, ack 0, data offset 7, SYN, window 65535,
    // checksum 0xcf7f, urgent 0
    0x9c, 0x40, 0x00, 0x50, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00,
    0x70, 0x02, 0xff, 0xff, 0xcf, 0x7f, 0x00, 0x00,
    // options: MSS 1460, NOP, window scale 7
    0x02, 0x04, 0x05, 0xb4, 0x01, 0x03, 0x03, 0x07,
];

/// A UDP datagram, 10.0.0.1:5353 -> 10.0.0.2:53, carrying "hello".
#[rustfmt::skip]
const UDP4_HELLO: [u8; 47] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00,
    // IPv4: total 33, ident 1, no flags, TTL 64, UDP, checksum 0x66c9
    0x45, 0x00, 0x00, 0x21, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x66, 0xc9,
    0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02,
    // UDP: 5353 -> 53, length 13, checksum 0x92e1
    0x14, 0xe9, 0x00, 0x35, 0x00, 0x0d, 0x92, 0xe1,
    b'h', b'e', b'l', b'l', b'o',
];

fn ka_eth() -> EtherHdr {
    EtherHdr {
        dst: MacAddr::from_bytes([2, 0, 0, 0, 0, 2]),
        src: MacAddr::from_bytes([2, 0, 0, 0, 0, 1]),
        ether_type: 0,
    }
}

fn ka_ipv4(ident: u16, flags_frag: u16) -> Ipv4Hdr {
    let mut ip = ipv4(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    ip.tos = 0;
    ip.ident = ident;
    ip.flags_frag = flags_frag;
    ip
}

#[test]
fn known_answer_tcp() {
    let k = fakekernel::scope();
    let h = Headers::parse_guest(&msg(&TCP4_SYN, 0)).unwrap();
    let Some(L3::Ipv4(ip)) = h.l3 else { panic!("{h:?}") };
    assert_eq!((ip.total_len, ip.ident, ip.csum), (48, 0x1234, 0x1492));
    let Some(L4::Tcp(t)) = h.l4 else { panic!("{h:?}") };
    assert_eq!((t.src_port, t.dst_port, t.seq, t.ack), (40000, 80, 0x0102_0304, 0));
    assert_eq!((t.flags, t.window, t.csum, t.hdr_len()), (0x02, 65535, 0xcf7f, 28));
    let opts: Vec<_> = t.option_iter().map(Result::unwrap).collect();
    assert_eq!(opts, [TcpOption::Mss(1460), TcpOption::Nop, TcpOption::WindowScale(7)]);
    assert_eq!((h.offsets.l4, h.offsets.body, h.l4_len), (34, 62, 28));

    let mut fb = FrameBuilder::new(ka_eth());
    fb.l3 = Some(L3::Ipv4(ka_ipv4(0x1234, Ipv4Hdr::DF)));
    let mut t =
        tcp(40000, 80, 0x02, &[TcpOption::Mss(1460), TcpOption::Nop, TcpOption::WindowScale(7)]);
    (t.seq, t.ack, t.window) = (0x0102_0304, 0, 65535);
    fb.l4 = Some(L4::Tcp(t));
    assert_eq!(fb.to_bytes(&[]), TCP4_SYN);
    k.assert_clean();
}

fn ka_udp4_builder() -> FrameBuilder {
    let mut fb = FrameBuilder::new(ka_eth());
    fb.l3 = Some(L3::Ipv4(ka_ipv4(1, 0)));
    fb.l4 = Some(L4::Udp(udp(5353, 53)));
    fb
}

#[test]
fn known_answer_udp() {
    let k = fakekernel::scope();
    let h = Headers::parse_guest(&msg(&UDP4_HELLO, 0)).unwrap();
    let Some(L4::Udp(u)) = h.l4 else { panic!("{h:?}") };
    assert_eq!(u, UdpHdr { src_port: 5353, dst_port: 53, len: 13, csum: 0x92e1 });
    assert_eq!((h.offsets.body, h.l4_len), (42, 13));
    assert_eq!(ka_udp4_builder().to_bytes(b"hello"), UDP4_HELLO);
    k.assert_clean();
}

/// UDP4_HELLO encapsulated: fd00::1 -> fd00::2, UDP 12345 -> 6081 with
/// checksum zero, Geneve VNI 0x123456 with the Oxide "external" option
/// (critical).
#[rustfmt::skip]
const GENEVE_EXTERNAL: [u8; 121] = [
    // outer Ethernet
    0xa8, 0x40, 0x00, 0x00, 0x00, 0x0b, 0xa8, 0x40, 0x00, 0x00, 0x00, 0x0a, 0x86, 0xdd,
    // IPv6: version 6, payload 67, next header UDP, hop limit 64
    0x60, 0x00, 0x00, 0x00, 0x00, 0x43, 0x11, 0x40,
    0xfd, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
    0xfd, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
    // UDP: 12345 -> 6081, length 67, checksum 0
    0x30, 0x39, 0x17, 0xc1, 0x00, 0x43, 0x00, 0x00,
    // Geneve: version 0, 1 option word; critical; protocol 0x6558; VNI
    0x01, 0x40, 0x65, 0x58, 0x12, 0x34, 0x56, 0x00,
    // option: class 0x0129, type 0x80 (critical | external), length 0
    0x01, 0x29, 0x80, 0x00,
    // the inner frame: UDP4_HELLO
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00,
    0x45, 0x00, 0x00, 0x21, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x66, 0xc9,
    0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02,
    0x14, 0xe9, 0x00, 0x35, 0x00, 0x0d, 0x92, 0xe1,
    b'h', b'e', b'l', b'l', b'o',
];

#[test]
fn known_answer_geneve_with_oxide_option() {
    let k = fakekernel::scope();
    assert_eq!(&GENEVE_EXTERNAL[74..], &UDP4_HELLO[..]);
    assert_eq!(OXIDE_OPT_CLASS, 0x0129);
    assert_eq!(OPT_CRITICAL, 0x80);
    let h = Headers::parse_underlay(&msg(&GENEVE_EXTERNAL, 0)).unwrap();
    let enc = h.outer.unwrap();
    assert_eq!(enc.ip6.src, "fd00::1".parse::<Ipv6Addr>().unwrap());
    assert_eq!(enc.ip6.dst, "fd00::2".parse::<Ipv6Addr>().unwrap());
    assert_eq!((enc.ip6.payload_len, enc.ip6.hop_limit), (67, 64));
    assert_eq!(enc.udp, UdpHdr { src_port: 12345, dst_port: 6081, len: 67, csum: 0 });
    assert_eq!(enc.geneve.vni.value(), 0x12_3456);
    assert_eq!((enc.geneve.opt_len_words, enc.geneve.critical, enc.geneve.oam), (1, true, false));
    assert_eq!(enc.geneve.options, GeneveOptions { external: true, ..Default::default() });
    assert_eq!((h.offsets.inner_eth, h.offsets.l3, h.offsets.l4), (74, 88, 108));
    let Some(L4::Udp(u)) = h.l4 else { panic!("{h:?}") };
    assert_eq!(u.csum, 0x92e1);

    let mut fb = ka_udp4_builder();
    fb.outer = Some(Encap {
        eth: EtherHdr {
            dst: MacAddr::from_bytes([0xa8, 0x40, 0, 0, 0, 0x0b]),
            src: MacAddr::from_bytes([0xa8, 0x40, 0, 0, 0, 0x0a]),
            ether_type: 0,
        },
        ip6: Ipv6Hdr {
            traffic_class: 0,
            flow_label: 0,
            hop_limit: 64,
            ..ipv6("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap())
        },
        udp: udp(12345, 6081),
        geneve: GeneveHdr::new(
            Vni::new(0x12_3456).unwrap(),
            GeneveOptions { external: true, ..Default::default() },
        ),
    });
    assert_eq!(fb.to_bytes(b"hello"), GENEVE_EXTERNAL);
    k.assert_clean();
}

/// A neighbor solicitation from fe80::1 (02:00:00:00:00:01) for fe80::2,
/// to its solicited-node group, with a source link-layer address option.
#[rustfmt::skip]
const NDP_NS: [u8; 86] = [
    // Ethernet: 33:33:ff:00:00:02 <- 02:00:00:00:00:01, IPv6
    0x33, 0x33, 0xff, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0xdd,
    // IPv6: payload 32, next header ICMPv6, hop limit 255
    0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff,
    0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
    0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, 0x00, 0x00, 0x02,
    // ICMPv6: type 135, code 0, checksum 0x7a97, reserved
    0x87, 0x00, 0x7a, 0x97, 0x00, 0x00, 0x00, 0x00,
    // target address fe80::2
    0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
    // option: source link-layer address, 1 unit
    0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
];

#[test]
fn known_answer_ndp_neighbor_solicitation() {
    let k = fakekernel::scope();
    let h = Headers::parse_guest(&msg(&NDP_NS, 0)).unwrap();
    let Some(L4::Icmpv6(i)) = h.l4 else { panic!("{h:?}") };
    assert_eq!((i.ty, i.code, i.csum), (icmpv6_type::NEIGHBOR_SOLICIT, 0, 0x7a97));
    let src_lla = MacAddr::from_bytes([2, 0, 0, 0, 0, 1]);
    let want = NdpMsg::NeighborSolicit {
        target: "fe80::2".parse().unwrap(),
        opts: NdpOptions { src_lla: Some(src_lla), ..Default::default() },
    };
    assert_eq!(h.ndp, Some(want));
    assert_eq!(ndp_opt::SRC_LLA, NDP_NS[78]);

    let mut ip = ipv6("fe80::1".parse().unwrap(), "ff02::1:ff00:2".parse().unwrap());
    (ip.traffic_class, ip.flow_label, ip.hop_limit) = (0, 0, 255);
    let mut fb = FrameBuilder::new(EtherHdr {
        dst: MacAddr::from_bytes([0x33, 0x33, 0xff, 0, 0, 2]),
        src: src_lla,
        ether_type: 0,
    });
    fb.l3 = Some(L3::Ipv6(ip));
    fb.l4 = Some(L4::Icmpv6(icmp(0, 0, [0; 4])));
    fb.ndp = Some(want);
    assert_eq!(fb.to_bytes(&[]), NDP_NS);
    k.assert_clean();
}
