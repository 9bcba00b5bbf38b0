//! An independent oracle for the packet layer: etherparse reads the same
//! bytes our parser reads and must agree with every field we decode, and
//! its checksum calculators must agree with every checksum we write.
//!
//! etherparse shares no code or authors with this crate. It covers
//! Ethernet, ARP, IPv4 with options, IPv6 with extension headers, TCP
//! with options, UDP, ICMPv4 and ICMPv6 (echo, errors, NDP with options).
//! It knows no Geneve, so the Geneve header and options are decoded here
//! from the RFC 8926 layout, apart from the crate's own decoder.
//!
//! Each family of generated frames (see `gen`) is parsed from a chain
//! split at random, compared, changed at random and emitted, and
//! compared again; likewise after `Packet::compute_checksums`, and
//! around `Packet::push_encap` (outer UDP checksum computed or zero) and
//! `Packet::pop_encap`.

#[path = "gen/mod.rs"]
mod r#gen;

use etherparse::icmpv6::{Icmpv6PayloadSlice, NdpOptionSlice};
use etherparse::{
    Icmpv4Slice, Icmpv4Type, Icmpv6Slice, Icmpv6Type, IpNumber, Ipv4Header, Ipv4HeaderSlice,
    Ipv6ExtensionSlice, Ipv6ExtensionsSlice, Ipv6Header, Ipv6HeaderSlice, LinkSlice, NetSlice,
    SlicedPacket, TcpOptionElement, TcpOptionReadError, TcpSlice, UdpHeader, UdpSlice,
};
use r#gen::{
    Case, Mod, apply, arp_case, chain, cut_points, cuts, encap_strategy, headroom, icmp_case,
    inner_case, ipv4_case, ipv6_case, mods, packet, parse, split_chain, underlay_case, unstraddled,
};
use illumos_sys_hdrs::{HCK_FULLCKSUM, HCK_IPV4_HDRCKSUM, HCK_PARTIALCKSUM};
use opte::packet::geneve::{OPT_CRITICAL, OXIDE_OPT_CLASS, oxide_opt};
use opte::packet::{
    ArpEthIpv4, Embedded, EmbeddedL3, Encap, EtherHdr, GeneveOptions, Headers, IcmpHdr, Ipv4Hdr,
    Ipv6Ext, Ipv6Hdr, L3, L4, NdpMsg, NdpOptions, OuterUdpCsum, PrefixInfo, Replication, TcpHdr,
    TcpOption, UdpHdr,
};
use proptest::prelude::*;

/// Generated frames per family of IP frames.
const CASES: u32 = 2000;

/// Offset of `part` (a subslice) within `whole`.
fn offset_in(whole: &[u8], part: &[u8]) -> usize {
    let off = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    assert!(off <= whole.len(), "not a subslice");
    off
}

// ---- Field agreement ----

/// etherparse reads `bytes` as exactly `h` says, field by field.
fn agree(bytes: &[u8], h: &Headers) {
    let frame = match &h.outer {
        Some(enc) => {
            let inner = agree_outer(bytes, enc);
            assert_eq!(offset_in(bytes, inner), h.offsets.inner_eth as usize, "inner frame offset");
            inner
        }
        None => bytes,
    };
    let sp = SlicedPacket::from_ethernet(frame).expect("etherparse reads the frame");
    let Some(LinkSlice::Ethernet2(eth)) = &sp.link else { panic!("not Ethernet II") };
    agree_eth(&h.eth, eth.destination(), eth.source(), eth.ether_type().0);
    assert_eq!(offset_in(bytes, eth.payload_slice()), h.offsets.l3 as usize, "l3 offset");

    let (proto, payload) = match (&h.l3, &sp.net) {
        (Some(L3::Arp(a)), Some(NetSlice::Arp(s))) => {
            agree_arp(a, s);
            assert_eq!(h.offsets.l4, h.offsets.l3 + ArpEthIpv4::LEN as u32);
            assert_eq!(h.l4, None);
            return;
        }
        (Some(L3::Ipv4(ip)), Some(NetSlice::Ipv4(s))) => {
            agree_ipv4(ip, &s.header());
            (s.payload().ip_number, s.payload().payload)
        }
        (Some(L3::Ipv6(ip)), Some(NetSlice::Ipv6(s))) => {
            let p = s.payload();
            agree_ipv6(ip, &s.header(), s.extensions().clone(), p.ip_number);
            (p.ip_number, p.payload)
        }
        (ours, theirs) => panic!("network layer: ours {ours:?}, etherparse {theirs:?}"),
    };
    assert_eq!(offset_in(bytes, payload), h.offsets.l4 as usize, "l4 offset");
    assert_eq!(payload.len(), h.l4_len as usize, "l4 length");
    match &h.l4 {
        None => {
            assert_eq!(h.offsets.body, h.offsets.l4);
            assert!(h.embedded.is_none() && h.ndp.is_none());
            return;
        }
        Some(l4) => {
            let want = match l4 {
                L4::Tcp(_) => IpNumber::TCP,
                L4::Udp(_) => IpNumber::UDP,
                L4::Icmpv4(_) => IpNumber::ICMP,
                L4::Icmpv6(_) => IpNumber::IPV6_ICMP,
            };
            assert_eq!(proto, want, "transport protocol");
        }
    }
    match h.l4 {
        Some(L4::Tcp(t)) => {
            let s = TcpSlice::from_slice(payload).expect("etherparse reads TCP");
            agree_tcp(&t, &s);
            assert_eq!(h.offsets.body - h.offsets.l4, u32::from(s.data_offset()) * 4);
        }
        Some(L4::Udp(u)) => {
            let s = UdpSlice::from_slice(payload).expect("etherparse reads UDP");
            assert_eq!(
                (s.source_port(), s.destination_port(), s.length(), s.checksum()),
                (u.src_port, u.dst_port, u.len, u.csum),
                "UDP header"
            );
            assert_eq!(h.offsets.body, h.offsets.l4 + UdpHdr::LEN as u32);
        }
        Some(L4::Icmpv4(i)) => {
            let s = Icmpv4Slice::from_slice(payload).expect("etherparse reads ICMPv4");
            agree_icmp(&i, s.type_u8(), s.code_u8(), s.checksum(), s.bytes5to8());
            agree_icmpv4_type(&i, &s.icmp_type());
            assert_eq!(h.ndp, None);
            match &h.embedded {
                Some(e) => {
                    assert_eq!(offset_in(bytes, s.payload()), h.offsets.embedded_l3 as usize);
                    agree_quote_v4(e, s.payload(), bytes, h);
                }
                None => assert!(!i.is_v4_error() || is_fragment(h), "ICMPv4 error without quote"),
            }
        }
        Some(L4::Icmpv6(i)) => {
            let s = Icmpv6Slice::from_slice(payload).expect("etherparse reads ICMPv6");
            agree_icmp(&i, s.type_u8(), s.code_u8(), s.checksum(), s.bytes5to8());
            let ty = s.icmp_type();
            agree_icmpv6_type(&i, &ty);
            match (&h.embedded, &h.ndp) {
                (Some(e), None) => {
                    assert_eq!(offset_in(bytes, s.payload()), h.offsets.embedded_l3 as usize);
                    agree_quote_v6(e, s.payload(), bytes, h);
                }
                (None, Some(n)) => agree_ndp(n, &ty, s.payload()),
                (None, None) => {
                    assert!(i.is_v6_echo() || is_fragment(h), "ICMPv6 type {} not read", i.ty)
                }
                (Some(_), Some(_)) => panic!("both a quote and NDP"),
            }
        }
        None => unreachable!(),
    }
}

fn is_fragment(h: &Headers) -> bool {
    match &h.l3 {
        Some(L3::Ipv4(ip)) => ip.flags_frag & (Ipv4Hdr::MF | 0x1fff) != 0,
        // An atomic fragment (offset 0, no more) is a whole packet
        // (RFC 6946).
        Some(L3::Ipv6(ip)) => ip.ext.fragment().is_some_and(|f| f.more || f.offset != 0),
        _ => false,
    }
}

fn agree_eth(e: &EtherHdr, dst: [u8; 6], src: [u8; 6], ty: u16) {
    assert_eq!((e.dst.bytes(), e.src.bytes(), e.ether_type), (dst, src, ty), "Ethernet header");
}

fn agree_arp(a: &ArpEthIpv4, s: &etherparse::ArpPacketSlice<'_>) {
    let p = s.to_packet().try_eth_ipv4().expect("etherparse reads Ethernet/IPv4 ARP");
    assert_eq!(p.operation.0, a.op, "ARP operation");
    assert_eq!(p.sender_mac, a.sha.bytes(), "ARP sender MAC");
    assert_eq!(p.sender_ipv4, a.spa.octets(), "ARP sender IP");
    assert_eq!(p.target_mac, a.tha.bytes(), "ARP target MAC");
    assert_eq!(p.target_ipv4, a.tpa.octets(), "ARP target IP");
}

fn agree_ipv4(ip: &Ipv4Hdr, s: &Ipv4HeaderSlice<'_>) {
    assert_eq!(usize::from(s.ihl()) * 4, ip.hdr_len(), "IHL");
    assert_eq!((s.dcp().value() << 2) | s.ecn().value(), ip.tos, "TOS");
    assert_eq!(s.total_len(), ip.total_len, "total length");
    assert_eq!(s.identification(), ip.ident, "identification");
    assert_eq!(s.dont_fragment(), ip.flags_frag & Ipv4Hdr::DF != 0, "DF");
    assert_eq!(s.more_fragments(), ip.flags_frag & Ipv4Hdr::MF != 0, "MF");
    assert_eq!(s.fragments_offset().value(), ip.flags_frag & 0x1fff, "fragment offset");
    assert_eq!(s.ttl(), ip.ttl, "TTL");
    assert_eq!(s.protocol().0, ip.proto, "protocol");
    assert_eq!(s.header_checksum(), ip.csum, "IPv4 checksum field");
    assert_eq!(s.source(), ip.src.octets(), "IPv4 source");
    assert_eq!(s.destination(), ip.dst.octets(), "IPv4 destination");
    assert_eq!(s.options(), ip.options(), "IPv4 options");
}

fn agree_ipv6(
    ip: &Ipv6Hdr,
    s: &Ipv6HeaderSlice<'_>,
    exts: Ipv6ExtensionsSlice<'_>,
    proto: IpNumber,
) {
    assert_eq!(s.traffic_class(), ip.traffic_class, "traffic class");
    assert_eq!(s.flow_label().value(), ip.flow_label, "flow label");
    assert_eq!(s.payload_length(), ip.payload_len, "payload length");
    assert_eq!(s.next_header().0, ip.next_hdr, "next header");
    assert_eq!(s.hop_limit(), ip.hop_limit, "hop limit");
    assert_eq!(s.source(), ip.src.octets(), "IPv6 source");
    assert_eq!(s.destination(), ip.dst.octets(), "IPv6 destination");
    let theirs: Vec<Ipv6ExtensionSlice<'_>> = exts.into_iter().collect();
    assert_eq!(theirs.len(), ip.ext.len(), "extension header count");
    for (ours, theirs) in ip.ext.iter().zip(&theirs) {
        match (ours, theirs) {
            (Ipv6Ext::HopByHop { len }, Ipv6ExtensionSlice::HopByHop(r))
            | (Ipv6Ext::DestOpts { len }, Ipv6ExtensionSlice::DestinationOptions(r)) => {
                assert_eq!(r.slice().len(), usize::from(*len), "options header length");
            }
            (
                Ipv6Ext::Routing { len, routing_type, segments_left },
                Ipv6ExtensionSlice::Routing(r),
            ) => {
                assert_eq!(r.slice().len(), usize::from(*len), "routing header length");
                assert_eq!(&r.payload()[..2], &[*routing_type, *segments_left], "routing header");
            }
            (Ipv6Ext::Fragment(f), Ipv6ExtensionSlice::Fragment(s)) => {
                assert_eq!(
                    (s.fragment_offset().value(), s.more_fragments(), s.identification()),
                    (f.offset, f.more, f.ident),
                    "fragment header"
                );
            }
            (o, t) => panic!("extension header: ours {o:?}, etherparse {t:?}"),
        }
    }
    assert_eq!(proto.0, ip.proto, "upper-layer protocol");
}

fn agree_tcp(t: &TcpHdr, s: &TcpSlice<'_>) {
    assert_eq!(
        (s.source_port(), s.destination_port(), s.sequence_number(), s.acknowledgment_number()),
        (t.src_port, t.dst_port, t.seq, t.ack),
        "TCP ports and sequence numbers"
    );
    assert_eq!(usize::from(s.data_offset()) * 4, t.hdr_len(), "TCP data offset");
    assert_eq!(u8::from(s.ns()), t.reserved & 1, "TCP NS bit");
    let flags = [s.fin(), s.syn(), s.rst(), s.psh(), s.ack(), s.urg(), s.ece(), s.cwr()]
        .iter()
        .enumerate()
        .fold(0u8, |f, (i, &b)| f | (u8::from(b) << i));
    assert_eq!(flags, t.flags, "TCP flags");
    assert_eq!(
        (s.window_size(), s.checksum(), s.urgent_pointer()),
        (t.window, t.csum, t.urgent),
        "TCP window, checksum, urgent pointer"
    );
    assert_eq!(s.options(), t.options(), "TCP option bytes");
    let mut ours = t.option_iter();
    for theirs in s.options_iterator() {
        let o = ours.next().map(|o| o.expect("our options are well formed"));
        match theirs {
            Ok(e) => assert_eq!(o, Some(tcp_option(&e)), "TCP option"),
            Err(TcpOptionReadError::UnknownId(kind)) => {
                // etherparse stops at an option it doesn't know.
                assert!(matches!(o, Some(TcpOption::Unknown { kind: k, .. }) if k == kind));
                return;
            }
            Err(e) => panic!("etherparse refuses TCP options: {e:?}"),
        }
    }
    assert_eq!(ours.next(), None, "TCP options after etherparse's last");
}

fn tcp_option(e: &TcpOptionElement) -> TcpOption {
    match *e {
        TcpOptionElement::Noop => TcpOption::Nop,
        TcpOptionElement::MaximumSegmentSize(m) => TcpOption::Mss(m),
        TcpOptionElement::WindowScale(s) => TcpOption::WindowScale(s),
        TcpOptionElement::SelectiveAcknowledgementPermitted => TcpOption::SackPermitted,
        TcpOptionElement::SelectiveAcknowledgement(first, rest) => {
            let mut blocks = [(0, 0); 4];
            blocks[0] = first;
            let mut count = 1;
            for b in rest.iter().flatten() {
                blocks[usize::from(count)] = *b;
                count += 1;
            }
            TcpOption::Sack { blocks, count }
        }
        TcpOptionElement::Timestamp(val, ecr) => TcpOption::Timestamps { val, ecr },
    }
}

fn agree_icmp(i: &IcmpHdr, ty: u8, code: u8, csum: u16, rest: [u8; 4]) {
    assert_eq!((ty, code, csum, rest), (i.ty, i.code, i.csum, i.rest), "ICMP header");
}

fn agree_icmpv4_type(i: &IcmpHdr, t: &Icmpv4Type) {
    match t {
        Icmpv4Type::EchoRequest(e) | Icmpv4Type::EchoReply(e) => {
            assert!(i.is_v4_echo());
            assert_eq!((e.id, e.seq), (i.echo_id(), i.echo_seq()), "echo id and sequence");
        }
        Icmpv4Type::DestinationUnreachable(_)
        | Icmpv4Type::Redirect(_)
        | Icmpv4Type::TimeExceeded(_)
        | Icmpv4Type::ParameterProblem(_) => assert!(i.is_v4_error()),
        Icmpv4Type::Unknown { type_u8, .. } => {
            assert_eq!(*type_u8, opte::packet::icmp::icmpv4_type::SOURCE_QUENCH)
        }
        other => panic!("ICMPv4 {other:?} not generated"),
    }
}

fn agree_icmpv6_type(i: &IcmpHdr, t: &Icmpv6Type) {
    match t {
        Icmpv6Type::EchoRequest(e) | Icmpv6Type::EchoReply(e) => {
            assert!(i.is_v6_echo());
            assert_eq!((e.id, e.seq), (i.echo_id(), i.echo_seq()), "echo id and sequence");
        }
        Icmpv6Type::DestinationUnreachable(_)
        | Icmpv6Type::PacketTooBig { .. }
        | Icmpv6Type::TimeExceeded(_)
        | Icmpv6Type::ParameterProblem(_) => assert!(i.is_v6_error()),
        Icmpv6Type::RouterSolicitation
        | Icmpv6Type::RouterAdvertisement(_)
        | Icmpv6Type::NeighborSolicitation
        | Icmpv6Type::NeighborAdvertisement(_) => assert!(NdpMsg::is_ndp(i.ty)),
        other => panic!("ICMPv6 {other:?} not generated"),
    }
}

/// The quoted IPv4 header and the 8 bytes after it.
fn agree_quote_v4(e: &Embedded, quote: &[u8], bytes: &[u8], h: &Headers) {
    let EmbeddedL3::Ipv4(ip) = &e.l3 else { panic!("ICMPv4 quoting IPv6") };
    let s = Ipv4HeaderSlice::from_slice(quote).expect("etherparse reads the quoted IPv4 header");
    agree_ipv4(ip, &s);
    let ulp = &quote[s.slice().len()..][..Embedded::ULP_LEN];
    assert_eq!(offset_in(bytes, ulp), h.offsets.embedded_ulp as usize, "quoted ULP offset");
    assert_eq!(ulp, e.ulp, "quoted transport bytes");
}

/// The quoted IPv6 header, its extension headers, and the 8 bytes after.
fn agree_quote_v6(e: &Embedded, quote: &[u8], bytes: &[u8], h: &Headers) {
    let EmbeddedL3::Ipv6(ip) = &e.l3 else { panic!("ICMPv6 quoting IPv4") };
    let s = Ipv6HeaderSlice::from_slice(quote).expect("etherparse reads the quoted IPv6 header");
    let (exts, proto, rest) = Ipv6ExtensionsSlice::from_slice(s.next_header(), &quote[40..])
        .expect("etherparse reads the quoted extension headers");
    agree_ipv6(ip, &s, exts, proto);
    let ulp = &rest[..Embedded::ULP_LEN];
    assert_eq!(offset_in(bytes, ulp), h.offsets.embedded_ulp as usize, "quoted ULP offset");
    assert_eq!(ulp, e.ulp, "quoted transport bytes");
}

/// The NDP message's fixed fields and options; the first option of each
/// kind we interpret counts, every other is skipped.
fn agree_ndp(n: &NdpMsg, ty: &Icmpv6Type, body: &[u8]) {
    let p = ty.payload_slice(body).expect("etherparse reads the NDP message");
    let (opts_iter, ours) = match (&p, n) {
        (Icmpv6PayloadSlice::RouterSolicitation(s), NdpMsg::RouterSolicit { opts }) => {
            (s.options_iterator(), opts)
        }
        (
            Icmpv6PayloadSlice::RouterAdvertisement(s),
            NdpMsg::RouterAdvert {
                cur_hop_limit,
                flags,
                router_lifetime,
                reachable_time,
                retrans_timer,
                opts,
            },
        ) => {
            let Icmpv6Type::RouterAdvertisement(hdr) = ty else { unreachable!() };
            assert_eq!(hdr.cur_hop_limit, *cur_hop_limit);
            assert_eq!(hdr.managed_address_config, flags & 0x80 != 0);
            assert_eq!(hdr.other_config, flags & 0x40 != 0);
            assert_eq!(hdr.router_lifetime, *router_lifetime);
            assert_eq!((s.reachable_time(), s.retrans_timer()), (*reachable_time, *retrans_timer));
            (s.options_iterator(), opts)
        }
        (Icmpv6PayloadSlice::NeighborSolicitation(s), NdpMsg::NeighborSolicit { target, opts }) => {
            assert_eq!(s.target_address(), *target, "NS target");
            (s.options_iterator(), opts)
        }
        (
            Icmpv6PayloadSlice::NeighborAdvertisement(s),
            NdpMsg::NeighborAdvert { flags, target, opts },
        ) => {
            let Icmpv6Type::NeighborAdvertisement(hdr) = ty else { unreachable!() };
            assert_eq!(
                (hdr.router, hdr.solicited, hdr.r#override),
                (flags & 0x80 != 0, flags & 0x40 != 0, flags & 0x20 != 0),
                "NA flags"
            );
            assert_eq!(s.target_address(), *target, "NA target");
            (s.options_iterator(), opts)
        }
        (p, n) => panic!("NDP: ours {n:?}, etherparse {p:?}"),
    };
    let mut theirs = NdpOptions::default();
    for o in opts_iter {
        match o.expect("etherparse reads the NDP options") {
            NdpOptionSlice::SourceLinkLayerAddress(s) if theirs.src_lla.is_none() => {
                theirs.src_lla = Some(mac_of(s.link_layer_address()));
            }
            NdpOptionSlice::TargetLinkLayerAddress(s) if theirs.tgt_lla.is_none() => {
                theirs.tgt_lla = Some(mac_of(s.link_layer_address()));
            }
            NdpOptionSlice::Mtu(s) if theirs.mtu.is_none() => theirs.mtu = Some(s.mtu()),
            NdpOptionSlice::PrefixInformation(s) if theirs.prefix.is_none() => {
                theirs.prefix = Some(PrefixInfo {
                    prefix_len: s.prefix_length(),
                    flags: (u8::from(s.on_link()) << 7)
                        | (u8::from(s.autonomous_address_configuration()) << 6),
                    valid_lifetime: s.valid_lifetime(),
                    preferred_lifetime: s.preferred_lifetime(),
                    prefix: s.prefix().into(),
                });
            }
            _ => theirs.skipped += 1,
        }
    }
    assert_eq!(*ours, theirs, "NDP options");
}

fn mac_of(b: &[u8]) -> opte_api::MacAddr {
    opte_api::MacAddr::from_bytes(b.try_into().expect("6-byte link-layer address"))
}

/// The outer Ethernet, IPv6 and UDP headers (etherparse) and the Geneve
/// header (decoded here); returns the inner frame.
fn agree_outer<'a>(bytes: &'a [u8], enc: &Encap) -> &'a [u8] {
    let sp = SlicedPacket::from_ethernet(bytes).expect("etherparse reads the underlay frame");
    let Some(LinkSlice::Ethernet2(eth)) = &sp.link else { panic!("outer: not Ethernet II") };
    agree_eth(&enc.eth, eth.destination(), eth.source(), eth.ether_type().0);
    let Some(NetSlice::Ipv6(ip)) = &sp.net else { panic!("outer: not IPv6") };
    agree_ipv6(&enc.ip6, &ip.header(), ip.extensions().clone(), ip.payload().ip_number);
    let Some(etherparse::TransportSlice::Udp(udp)) = &sp.transport else {
        panic!("outer: not UDP")
    };
    assert_eq!(
        (udp.source_port(), udp.destination_port(), udp.length(), udp.checksum()),
        (enc.udp.src_port, enc.udp.dst_port, enc.udp.len, enc.udp.csum),
        "outer UDP header"
    );
    let g = udp.payload();
    let g_len = agree_geneve(enc, g);
    &g[g_len..]
}

/// Decode a Geneve header (RFC 8926 3.4, 3.5) and its Oxide options,
/// compare, and return its length.
fn agree_geneve(enc: &Encap, g: &[u8]) -> usize {
    let geneve = &enc.geneve;
    assert_eq!(g[0] >> 6, 0, "Geneve version");
    let opt_len = usize::from(g[0] & 0x3f) * 4;
    assert_eq!(g[0] & 0x3f, geneve.opt_len_words, "Geneve option length");
    assert_eq!((g[1] & 0x80 != 0, g[1] & 0x40 != 0), (geneve.oam, geneve.critical), "Geneve O, C");
    assert_eq!(u16::from_be_bytes([g[2], g[3]]), geneve.proto, "Geneve protocol");
    assert_eq!([g[4], g[5], g[6]], geneve.vni.to_be_bytes(), "VNI");
    let mut theirs = GeneveOptions::default();
    let mut opts = &g[8..8 + opt_len];
    while !opts.is_empty() {
        let class = u16::from_be_bytes([opts[0], opts[1]]);
        let ty = opts[2] & !OPT_CRITICAL;
        let body = &opts[4..4 + usize::from(opts[3] & 0x1f) * 4];
        match (class, ty, body.len()) {
            (OXIDE_OPT_CLASS, oxide_opt::EXTERNAL, 0) => theirs.external = true,
            (OXIDE_OPT_CLASS, oxide_opt::MULTICAST, 4) => {
                theirs.multicast = Some(match body[0] >> 6 {
                    0 => Replication::External,
                    1 => Replication::Underlay,
                    2 => Replication::All,
                    _ => Replication::Reserved,
                })
            }
            (OXIDE_OPT_CLASS, oxide_opt::MSS, 4) => {
                theirs.mss = Some(u32::from_be_bytes(body.try_into().expect("4 bytes")))
            }
            _ => {
                assert_eq!(opts[2] & OPT_CRITICAL, 0, "unknown critical option");
                theirs.skipped += 1;
            }
        }
        opts = &opts[4 + body.len()..];
    }
    assert_eq!(theirs, geneve.options, "Geneve options");
    8 + opt_len
}

// ---- Checksum agreement ----

/// Every checksum in `bytes` is what etherparse computes: outer UDP
/// (unless zero), IPv4 header, transport (unless a UDP-over-IPv4 zero),
/// and a quoted IPv4 header. `skip_l4` leaves the transport checksum
/// unchecked (fragments after `compute_checksums`).
fn checksums_hold(bytes: &[u8], h: &Headers, skip_l4: bool) {
    if let Some(enc) = &h.outer
        && enc.udp.csum != 0
    {
        let ip = Ipv6Header::from_slice(&bytes[EtherHdr::LEN..]).expect("outer IPv6").0;
        let udp_off = EtherHdr::LEN + Ipv6Hdr::LEN;
        let (udp, payload) = UdpHeader::from_slice(&bytes[udp_off..]).expect("outer UDP");
        assert_eq!(
            udp.calc_checksum_ipv6(&ip, payload).expect("fits"),
            udp.checksum,
            "outer UDP checksum"
        );
    }
    let l3 = &bytes[h.offsets.l3 as usize..];
    let l4 = &bytes[h.offsets.l4 as usize..][..h.l4_len as usize];
    enum Ip {
        V4(Ipv4Header),
        V6(Ipv6Header),
    }
    let ip = match &h.l3 {
        Some(L3::Ipv4(_)) => {
            let ip = Ipv4Header::from_slice(l3).expect("IPv4").0;
            assert_eq!(ip.calc_header_checksum(), ip.header_checksum, "IPv4 header checksum");
            Ip::V4(ip)
        }
        Some(L3::Ipv6(_)) => Ip::V6(Ipv6Header::from_slice(l3).expect("IPv6").0),
        _ => return,
    };
    if skip_l4 {
        return;
    }
    match (&h.l4, &ip) {
        (Some(L4::Tcp(_)), ip) => {
            // TcpSlice sums the header as it is; TcpHeader would drop
            // the reserved bits before summing.
            let t = TcpSlice::from_slice(l4).expect("TCP");
            let c = match ip {
                Ip::V4(ip) => t.calc_checksum_ipv4(ip.source, ip.destination),
                Ip::V6(ip) => t.calc_checksum_ipv6(ip.source, ip.destination),
            };
            assert_eq!(c.expect("fits"), t.checksum(), "TCP checksum");
        }
        (Some(L4::Udp(_)), ip) => {
            let (u, payload) = UdpHeader::from_slice(l4).expect("UDP");
            let c = match ip {
                Ip::V4(_) if u.checksum == 0 => return,
                Ip::V4(ip) => u.calc_checksum_ipv4(ip, payload),
                Ip::V6(ip) => u.calc_checksum_ipv6(ip, payload),
            };
            assert_eq!(c.expect("fits"), u.checksum, "UDP checksum");
        }
        (Some(L4::Icmpv4(_)), _) => {
            let s = Icmpv4Slice::from_slice(l4).expect("ICMPv4");
            // The raw form sums the type-specific bytes as they are.
            let raw = Icmpv4Type::Unknown {
                type_u8: s.type_u8(),
                code_u8: s.code_u8(),
                bytes5to8: s.bytes5to8(),
            };
            assert_eq!(raw.calc_checksum(&l4[8..]), s.checksum(), "ICMPv4 checksum");
        }
        (Some(L4::Icmpv6(_)), Ip::V6(ip)) => {
            let s = Icmpv6Slice::from_slice(l4).expect("ICMPv6");
            let raw = Icmpv6Type::Unknown {
                type_u8: s.type_u8(),
                code_u8: s.code_u8(),
                bytes5to8: s.bytes5to8(),
            };
            let c = raw.calc_checksum(ip.source, ip.destination, &l4[8..]).expect("fits");
            assert_eq!(c, s.checksum(), "ICMPv6 checksum");
        }
        (l4, _) => assert!(l4.is_none(), "transport {l4:?} over the wrong IP"),
    }
    if let Some(Embedded { l3: EmbeddedL3::Ipv4(_), .. }) = &h.embedded {
        let q = Ipv4Header::from_slice(&bytes[h.offsets.embedded_l3 as usize..]).expect("quote").0;
        assert_eq!(q.calc_header_checksum(), q.header_checksum, "quoted IPv4 header checksum");
    }
}

// ---- The checks ----

/// Parse the case from a split chain, compare with etherparse; change,
/// emit, and compare again.
fn check_parse_emit(case: &Case, cuts: &[usize], headroom: usize, mods: &[Mod]) {
    let bytes = case.bytes();
    let ul = case.is_underlay();
    let mut p = packet(ul, split_chain(&bytes, cuts, headroom));
    agree(&bytes, p.headers());
    checksums_hold(&bytes, p.headers(), false);

    apply(p.headers_mut(), mods);
    p.emit().expect("emit");
    let out = p.mblk().to_vec();
    agree(&out, p.headers());
    checksums_hold(&out, p.headers(), false);
    if case.udp_no_csum {
        let at = p.headers().offsets.l4 as usize + 6;
        assert_eq!(&out[at..at + 2], &[0, 0], "a UDP datagram without checksum got one");
    }
}

/// Spoil the checksums, then `compute_checksums` must write etherparse's,
/// except a fragment's transport checksum, which it keeps. With `encap`,
/// the frame is first encapsulated with a computed outer UDP checksum,
/// which must stay right as the inner checksums change under it.
fn check_compute(
    case: &Case,
    cuts: &[usize],
    headroom: usize,
    junk: [u8; 4],
    encap: Option<Encap>,
) {
    let mut bytes = case.bytes();
    let want = case.expected();
    if let Some(L3::Ipv4(_)) = want.l3 {
        let at = want.offsets.l3 as usize + 10;
        bytes[at..at + 2].copy_from_slice(&junk[..2]);
    }
    let field = match want.l4 {
        Some(L4::Tcp(_)) => Some(16),
        Some(L4::Udp(_)) => Some(6),
        Some(L4::Icmpv4(_)) | Some(L4::Icmpv6(_)) => Some(2),
        None => None,
    };
    if let Some(f) = field {
        let at = want.offsets.l4 as usize + f;
        bytes[at..at + 2].copy_from_slice(&junk[2..]);
    }
    let ul = case.is_underlay();
    let mut m = split_chain(&bytes, cuts, headroom);
    m.set_offload_flags(HCK_FULLCKSUM | HCK_IPV4_HDRCKSUM).expect("set flags");
    let mut p = packet(ul, m);
    // The underlay carries only IP with a transport header.
    let carriable = p.headers().l4.is_some();
    if let Some(enc) = encap.filter(|_| carriable) {
        p.push_encap(enc, OuterUdpCsum::Compute).expect("push encapsulation");
    }
    p.compute_checksums().expect("compute checksums");
    let out = p.mblk().to_vec();
    let h = p.headers();
    agree(&out, h);
    let fragment = is_fragment(h);
    checksums_hold(&out, h, fragment);
    if let (true, Some(f)) = (fragment, field) {
        let at = h.offsets.l4 as usize + f;
        assert_eq!(&out[at..at + 2], &junk[2..], "a fragment's transport checksum changed");
    }
    let flags = p.mblk().offload_flags();
    assert_eq!(
        flags & (HCK_FULLCKSUM | HCK_PARTIALCKSUM | HCK_IPV4_HDRCKSUM),
        0,
        "offload requests left"
    );
}

/// Push encapsulation onto a guest frame (from a split chain), check the
/// outer headers and checksum, change inner and outer headers and emit,
/// then pop: what is left is the inner frame.
fn check_encap(
    case: &Case,
    enc: &Encap,
    csum: OuterUdpCsum,
    cuts: &[usize],
    headroom: usize,
    mods: &[Mod],
) {
    let bytes = case.bytes();
    let mut p = packet(false, split_chain(&bytes, cuts, headroom));
    let guest = *p.headers();
    p.push_encap(*enc, csum).expect("push encapsulation");
    let out = p.mblk().to_vec();
    let h = *p.headers();
    let pushed = h.outer.expect("pushed headers");
    assert_eq!(&out[h.offsets.inner_eth as usize..], &bytes[..], "the inner frame changed");
    assert_eq!((pushed.eth.dst, pushed.eth.src), (enc.eth.dst, enc.eth.src));
    assert_eq!(
        (
            pushed.ip6.src,
            pushed.ip6.dst,
            pushed.ip6.hop_limit,
            pushed.ip6.traffic_class,
            pushed.ip6.flow_label
        ),
        (enc.ip6.src, enc.ip6.dst, enc.ip6.hop_limit, enc.ip6.traffic_class, enc.ip6.flow_label)
    );
    assert_eq!(pushed.udp.src_port, enc.udp.src_port);
    assert_eq!((pushed.geneve.vni, pushed.geneve.options), (enc.geneve.vni, enc.geneve.options));
    assert_eq!(pushed.udp.csum == 0, csum == OuterUdpCsum::Zero, "outer UDP checksum {csum:?}");
    agree(&out, &h);
    checksums_hold(&out, &h, false);
    let reparsed = parse(true, &chain(&[&out], 0));
    assert_eq!(unstraddled(&reparsed), unstraddled(&h), "the pushed frame parses differently");
    let shift = h.offsets.inner_eth;
    assert_eq!(
        (h.offsets.l3, h.offsets.l4, h.offsets.body),
        (guest.offsets.l3 + shift, guest.offsets.l4 + shift, guest.offsets.body + shift)
    );

    apply(p.headers_mut(), mods);
    p.emit().expect("emit");
    let out = p.mblk().to_vec();
    let h = *p.headers();
    agree(&out, &h);
    checksums_hold(&out, &h, false);
    assert_eq!(h.outer.expect("outer").udp.csum == 0, csum == OuterUdpCsum::Zero);

    let popped = p.pop_encap().expect("pop encapsulation");
    assert_eq!(Some(popped), h.outer);
    let inner = p.mblk().to_vec();
    assert_eq!(inner, &out[h.offsets.inner_eth as usize..], "pop left other bytes");
    assert_eq!(p.headers().outer, None);
    assert_eq!(p.headers().offsets.inner_eth, 0);
    assert_eq!(unstraddled(&parse(false, p.mblk())), unstraddled(p.headers()));
    agree(&inner, p.headers());
    checksums_hold(&inner, p.headers(), false);
}

fn outer_csum() -> impl Strategy<Value = OuterUdpCsum> {
    prop::sample::select(vec![OuterUdpCsum::Zero, OuterUdpCsum::Compute])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn ipv4_frames_agree(case in ipv4_case(false), idx in cuts(), hr in headroom(), mods in mods()) {
        let k = fakekernel::scope();
        check_parse_emit(&case, &cut_points(&idx, case.bytes().len()), hr, &mods);
        k.assert_clean();
    }

    #[test]
    fn ipv6_frames_agree(case in ipv6_case(false), idx in cuts(), hr in headroom(), mods in mods()) {
        let k = fakekernel::scope();
        check_parse_emit(&case, &cut_points(&idx, case.bytes().len()), hr, &mods);
        k.assert_clean();
    }

    #[test]
    fn icmp_and_ndp_frames_agree(case in icmp_case(), idx in cuts(), hr in headroom(), mods in mods()) {
        let k = fakekernel::scope();
        check_parse_emit(&case, &cut_points(&idx, case.bytes().len()), hr, &mods);
        k.assert_clean();
    }

    #[test]
    fn underlay_frames_agree(case in underlay_case(), idx in cuts(), hr in headroom(), mods in mods()) {
        let k = fakekernel::scope();
        check_parse_emit(&case, &cut_points(&idx, case.bytes().len()), hr, &mods);
        k.assert_clean();
    }

    #[test]
    fn computed_checksums_agree(
        case in prop_oneof![ipv4_case(false), ipv6_case(false), icmp_case(), underlay_case()],
        idx in cuts(),
        hr in headroom(),
        junk in any::<[u8; 4]>(),
        encap in prop::option::of(encap_strategy()),
    ) {
        let k = fakekernel::scope();
        // Only a guest frame can be encapsulated.
        let encap = encap.filter(|_| !case.is_underlay());
        check_compute(&case, &cut_points(&idx, case.bytes().len()), hr, junk, encap);
        k.assert_clean();
    }

    #[test]
    fn encapsulation_agrees(
        case in inner_case(),
        enc in encap_strategy(),
        csum in outer_csum(),
        idx in cuts(),
        hr in headroom(),
        mods in mods(),
    ) {
        let k = fakekernel::scope();
        check_encap(&case, &enc, csum, &cut_points(&idx, case.bytes().len()), hr, &mods);
        k.assert_clean();
    }
}

proptest! {
    // ARP has few fields; fewer cases cover it.
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arp_frames_agree(case in arp_case(), idx in cuts(), hr in headroom(), mods in mods()) {
        let k = fakekernel::scope();
        check_parse_emit(&case, &cut_points(&idx, case.bytes().len()), hr, &mods);
        k.assert_clean();
    }
}

/// The Oxide option values (MSS, multicast replication) are part of the
/// Geneve header's value: changed without changing their length, they
/// must reach the wire like any other field.
#[test]
fn geneve_option_values_are_emitted() {
    let k = fakekernel::scope();
    let frames = r#gen::representative();
    let (_, case) = frames
        .iter()
        .find(|(_, c)| c.frame.outer.is_some_and(|e| e.geneve.options.mss.is_some()))
        .expect("an underlay frame with an MSS option");
    let mut p = packet(true, chain(&[&case.bytes()], 0));
    let Some(enc) = &mut p.headers_mut().outer else { panic!("underlay frame") };
    enc.geneve.options.mss = Some(1200);
    enc.geneve.options.multicast = enc.geneve.options.multicast.map(|_| Replication::Underlay);
    p.emit().expect("emit");
    agree(&p.mblk().to_vec(), p.headers());
    drop(p);
    k.assert_clean();
}
