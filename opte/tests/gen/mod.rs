//! Generators of valid packets for the packet-layer property tests
//! (`split_property.rs`, `oracle.rs`).
//!
//! A [`Case`] is one frame of a kind the parser carries: ARP; IPv4 (with
//! options, first and later fragments) and IPv6 (up to four extension
//! headers) carrying TCP with options, UDP, ICMP echo, ICMP errors with
//! their quote, NDP with options, or an unknown protocol; and the same
//! inside Geneve over IPv6 with Oxide and unknown options. Its header
//! values are stated in full here — lengths, next headers, EtherTypes,
//! offsets — independently of the builder and the parser, so a test can
//! compare what the parser reads with what was meant. Only checksums are
//! left to `FrameBuilder`; the oracle test checks those against
//! etherparse.
//!
//! [`Case::read_units`] lists the pieces the parser reads as one unit
//! (a fixed header, an option area, one option), which is what decides
//! whether a block boundary makes it gather a header (`straddled`).
//!
//! [`Mod`] is one header change for `Packet::emit`; [`apply`] makes it.
#![allow(dead_code)] // each test binary uses part of this module

use std::ops::Range;

use opte::ddi::MsgBlk;
use opte::packet::ether::ether_type;
use opte::packet::geneve::{MAX_GENEVE_OPT_LEN, OPT_CRITICAL, OXIDE_OPT_CLASS, oxide_opt};
use opte::packet::icmp::{icmpv4_type, icmpv6_type};
use opte::packet::ip4::protocol;
use opte::packet::ndp::ndp_opt;
use opte::packet::tcp::MAX_TCP_OPTIONS;
use opte::packet::udp::GENEVE_PORT;
use opte::packet::{
    ArpEthIpv4, Embedded, EmbeddedL3, Encap, EtherHdr, FrameBuilder, GeneveHdr, GeneveOptions,
    Headers, IcmpHdr, Ipv4Hdr, Ipv6Ext, Ipv6ExtHdrs, Ipv6Frag, Ipv6Hdr, L3, L4, NdpMsg, NdpOptions,
    Offsets, Packet, PrefixInfo, Replication, TcpHdr, TcpOption, UdpHdr,
};
use opte_api::{Ipv4Addr, Ipv6Addr, MacAddr, Vni};
use proptest::prelude::*;
use proptest::sample::Index;

/// Most blocks a generated split makes.
pub const MAX_SEGMENTS: usize = 8;

/// One generated frame and what the parser must read from it.
#[derive(Debug, Clone)]
pub struct Case {
    /// The headers with every derived field stated (see [`Case::seal`])
    /// and every checksum zero: the builder computes those.
    pub frame: FrameBuilder,
    /// Bytes after the last header (after the NDP options for NDP).
    pub body: Vec<u8>,
    /// Whole NDP options the parser skips (unknown types, repeats),
    /// written after the ones in `frame.ndp`.
    pub ndp_extra: Vec<Vec<u8>>,
    /// Whole Geneve options the parser skips (unknown, not critical).
    pub geneve_extra: Vec<Vec<u8>>,
    /// Where the extra Geneve options go, in options: 0 is before the
    /// first Oxide option the builder writes.
    pub geneve_extra_at: usize,
    /// Send a UDP-over-IPv4 datagram without a checksum (0).
    pub udp_no_csum: bool,
}

impl Case {
    /// A case from a builder's headers and a body; derived fields are
    /// filled in.
    pub fn new(frame: FrameBuilder, body: Vec<u8>) -> Self {
        Self {
            frame,
            body,
            ndp_extra: Vec::new(),
            geneve_extra: Vec::new(),
            geneve_extra_at: 0,
            udp_no_csum: false,
        }
        .seal()
    }

    /// Add NDP options the parser skips.
    pub fn with_ndp_extra(mut self, opts: Vec<Vec<u8>>) -> Self {
        self.ndp_extra = opts;
        self.seal()
    }

    /// Add Geneve options the parser skips, before Oxide option `at`.
    pub fn with_geneve_extra(mut self, at: usize, opts: Vec<Vec<u8>>) -> Self {
        self.geneve_extra_at = at;
        self.geneve_extra = opts;
        self.seal()
    }

    /// True for a frame from the underlay (Geneve).
    pub fn is_underlay(&self) -> bool {
        self.frame.outer.is_some()
    }

    /// State every field a sender derives: EtherTypes, IP lengths and
    /// protocols, IPv6 next headers, the UDP length, the ICMPv6 header of
    /// an NDP message, and the whole outer encapsulation.
    fn seal(mut self) -> Self {
        let ndp_extra_len: usize = self.ndp_extra.iter().map(Vec::len).sum();
        let geneve_extra_len: usize = self.geneve_extra.iter().map(Vec::len).sum();
        let body_len = self.body.len();
        let f = &mut self.frame;
        if let (Some(ndp), Some(L4::Icmpv6(i))) = (&f.ndp, &mut f.l4) {
            i.ty = ndp_type(ndp);
            i.code = 0;
            i.rest = ndp_rest(ndp);
        }
        let quote_len = f.embedded.as_ref().map_or(0, |e| embedded_ip_len(e) + Embedded::ULP_LEN);
        let ndp_len = f.ndp.as_ref().map_or(0, ndp_wire_len) + ndp_extra_len;
        let proto = match &mut f.l4 {
            Some(L4::Tcp(t)) => {
                t.csum = 0;
                Some(protocol::TCP)
            }
            Some(L4::Udp(u)) => {
                u.csum = 0;
                u.len = (UdpHdr::LEN + body_len) as u16;
                Some(protocol::UDP)
            }
            Some(L4::Icmpv4(i)) => {
                i.csum = 0;
                Some(protocol::ICMP)
            }
            Some(L4::Icmpv6(i)) => {
                i.csum = 0;
                Some(protocol::ICMPV6)
            }
            None => None,
        };
        let l4_len = l4_hdr_len(f.l4.as_ref()) + quote_len + ndp_len + body_len;
        let inner_len = EtherHdr::LEN
            + match &mut f.l3 {
                Some(L3::Ipv4(ip)) => {
                    if let Some(p) = proto {
                        ip.proto = p;
                    }
                    ip.total_len = (ip.hdr_len() + l4_len) as u16;
                    ip.csum = 0;
                    f.eth.ether_type = ether_type::IPV4;
                    usize::from(ip.total_len)
                }
                Some(L3::Ipv6(ip)) => {
                    if let Some(p) = proto {
                        ip.proto = p;
                    }
                    ip.next_hdr = ip.ext.iter().next().map_or(ip.proto, Ipv6Ext::protocol);
                    ip.payload_len = (ip.ext.wire_len() + l4_len) as u16;
                    f.eth.ether_type = ether_type::IPV6;
                    Ipv6Hdr::LEN + usize::from(ip.payload_len)
                }
                Some(L3::Arp(_)) => {
                    f.eth.ether_type = ether_type::ARP;
                    ArpEthIpv4::LEN + body_len
                }
                None => body_len,
            };
        if let Some(e) = &mut f.embedded {
            seal_embedded(e);
        }
        if let Some(enc) = &mut f.outer {
            let opts = enc.geneve.options;
            let mut g = GeneveHdr::new(enc.geneve.vni, opts);
            g.oam = enc.geneve.oam;
            g.opt_len_words = ((opts.wire_len() + geneve_extra_len) / 4) as u8;
            g.options.skipped = self.geneve_extra.len() as u8;
            enc.geneve = g;
            let udp_len = UdpHdr::LEN + g.hdr_len() + inner_len;
            enc.eth.ether_type = ether_type::IPV6;
            enc.ip6.ext = Ipv6ExtHdrs::default();
            enc.ip6.next_hdr = protocol::UDP;
            enc.ip6.proto = protocol::UDP;
            enc.ip6.payload_len = udp_len as u16;
            enc.udp.dst_port = GENEVE_PORT;
            enc.udp.len = udp_len as u16;
            enc.udp.csum = 0;
        }
        self.udp_no_csum &=
            matches!((&self.frame.l3, &self.frame.l4), (Some(L3::Ipv4(_)), Some(L4::Udp(_))));
        self
    }

    /// The frame's bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let mut tail = self.ndp_extra.concat();
        tail.extend_from_slice(&self.body);
        let mut b = self.frame.to_bytes(&tail);
        if let Some(enc) = &self.frame.outer
            && !self.geneve_extra.is_empty()
        {
            let at = OUTER_FIXED_LEN
                + known_geneve_option_lens(&enc.geneve.options)
                    .iter()
                    .take(self.geneve_extra_at)
                    .sum::<usize>();
            let extra = self.geneve_extra.concat();
            b.splice(at..at, extra.iter().copied());
            // The builder wrote the lengths without the extra options.
            let words = (extra.len() / 4) as u8;
            let udp_len = enc.udp.len.to_be_bytes();
            b[EtherHdr::LEN + 4..EtherHdr::LEN + 6].copy_from_slice(&udp_len);
            b[UDP_OFF + 4..UDP_OFF + 6].copy_from_slice(&udp_len);
            b[GENEVE_OFF] += words;
        }
        if self.udp_no_csum {
            let at = self.expected().offsets.l4 as usize + 6;
            b[at..at + 2].copy_from_slice(&[0, 0]);
        }
        b
    }

    /// Where the inner frame starts.
    fn inner_eth(&self) -> usize {
        self.frame
            .outer
            .map_or(0, |e| EtherHdr::LEN + Ipv6Hdr::LEN + UdpHdr::LEN + e.geneve.hdr_len())
    }

    /// The headers the parser must read, checksums zero (compare with
    /// [`without_csums`]) and `straddled` 0.
    pub fn expected(&self) -> Headers {
        let f = &self.frame;
        let inner_eth = self.inner_eth();
        let l3 = inner_eth + EtherHdr::LEN;
        let (l4, l4_len) = match &f.l3 {
            Some(L3::Ipv4(ip)) => (l3 + ip.hdr_len(), usize::from(ip.total_len) - ip.hdr_len()),
            Some(L3::Ipv6(ip)) => {
                (l3 + ip.hdr_len(), usize::from(ip.payload_len) - ip.ext.wire_len())
            }
            Some(L3::Arp(_)) => (l3 + ArpEthIpv4::LEN, 0),
            None => (l3, 0),
        };
        let body = l4 + l4_hdr_len(f.l4.as_ref());
        let (embedded_l3, embedded_ulp) = match &f.embedded {
            Some(e) => (body, body + embedded_ip_len(e)),
            None => (0, 0),
        };
        let ndp = f.ndp.map(|mut n| {
            ndp_opts_mut(&mut n).skipped = self.ndp_extra.len() as u8;
            n
        });
        let mut l4_hdr = f.l4;
        if self.udp_no_csum
            && let Some(L4::Udp(u)) = &mut l4_hdr
        {
            u.csum = 0;
        }
        Headers {
            outer: f.outer,
            eth: f.eth,
            l3: f.l3,
            l4: l4_hdr,
            embedded: f.embedded,
            ndp,
            offsets: Offsets {
                inner_eth: inner_eth as u32,
                l3: l3 as u32,
                l4: l4 as u32,
                body: body as u32,
                embedded_l3: embedded_l3 as u32,
                embedded_ulp: embedded_ulp as u32,
            },
            l4_len: l4_len as u32,
            straddled: 0,
        }
    }

    /// The byte ranges the parser reads as one piece, in order: a header
    /// that straddles blocks is gathered (and counted) per piece. Bytes
    /// the parser steps over (the rest of an IPv6 extension header, an
    /// NDP option longer than it reads) are in none.
    pub fn read_units(&self) -> Vec<Range<usize>> {
        let mut u = Units { at: 0, units: Vec::new() };
        let f = &self.frame;
        if let Some(enc) = &f.outer {
            u.read(EtherHdr::LEN);
            u.read(Ipv6Hdr::LEN);
            u.read(UdpHdr::LEN);
            u.read(GeneveHdr::LEN);
            for len in self.geneve_option_lens(&enc.geneve.options) {
                u.read(4);
                u.read(len - 4);
            }
        }
        u.read(EtherHdr::LEN);
        match &f.l3 {
            Some(L3::Arp(_)) => u.read(ArpEthIpv4::LEN),
            Some(L3::Ipv4(ip)) => u.ipv4(ip),
            Some(L3::Ipv6(ip)) => u.ipv6(ip),
            None => {}
        }
        match &f.l4 {
            Some(L4::Tcp(t)) => {
                u.read(TcpHdr::MIN_LEN);
                u.read(usize::from(t.opt_len));
            }
            Some(L4::Udp(_)) | Some(L4::Icmpv4(_)) | Some(L4::Icmpv6(_)) => u.read(8),
            None => {}
        }
        if let Some(e) = &f.embedded {
            match &e.l3 {
                EmbeddedL3::Ipv4(ip) => u.ipv4(ip),
                EmbeddedL3::Ipv6(ip) => u.ipv6(ip),
            }
            u.read(Embedded::ULP_LEN);
        }
        if let Some(n) = &f.ndp {
            u.read(ndp_fixed_len(n));
            let lens = known_ndp_option_lens(ndp_opts(n))
                .into_iter()
                .chain(self.ndp_extra.iter().map(Vec::len));
            for len in lens {
                u.read(2);
                if len - 2 <= NDP_OPT_READ_MAX {
                    u.read(len - 2);
                } else {
                    u.at += len - 2;
                }
            }
        }
        u.units
    }

    /// Whole-option lengths of the Geneve option area in wire order.
    fn geneve_option_lens(&self, opts: &GeneveOptions) -> Vec<usize> {
        let mut lens = known_geneve_option_lens(opts);
        let at = self.geneve_extra_at.min(lens.len());
        lens.splice(at..at, self.geneve_extra.iter().map(Vec::len));
        lens
    }
}

/// Longest NDP option body the parser reads rather than steps over.
const NDP_OPT_READ_MAX: usize = 128;
/// Offset of the outer UDP header of an underlay frame.
const UDP_OFF: usize = EtherHdr::LEN + Ipv6Hdr::LEN;
/// Offset of the Geneve header of an underlay frame.
const GENEVE_OFF: usize = UDP_OFF + UdpHdr::LEN;
/// Offset of the Geneve options of an underlay frame.
const OUTER_FIXED_LEN: usize = GENEVE_OFF + GeneveHdr::LEN;

struct Units {
    at: usize,
    units: Vec<Range<usize>>,
}

impl Units {
    fn read(&mut self, n: usize) {
        if n > 0 {
            self.units.push(self.at..self.at + n);
        }
        self.at += n;
    }

    fn ipv4(&mut self, ip: &Ipv4Hdr) {
        self.read(Ipv4Hdr::MIN_LEN);
        self.read(usize::from(ip.opt_len));
    }

    fn ipv6(&mut self, ip: &Ipv6Hdr) {
        self.read(Ipv6Hdr::LEN);
        for e in ip.ext.iter() {
            self.read(8);
            self.at += e.wire_len() - 8;
        }
    }
}

/// How many of `units` a block boundary at one of `cuts` falls strictly
/// inside: what `Headers::straddled` must count.
pub fn straddles(units: &[Range<usize>], cuts: &[usize]) -> u16 {
    units.iter().filter(|r| cuts.iter().any(|&c| r.start < c && c < r.end)).count() as u16
}

/// Cut points (sorted, repeats allowed: empty blocks) in `0..=len` from
/// generated indexes.
pub fn cut_points(idx: &[Index], len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = idx.iter().map(|i| i.index(len + 1)).collect();
    cuts.sort_unstable();
    cuts
}

/// `bytes` cut at `cuts` into `cuts.len() + 1` segments.
pub fn segments<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut segs = Vec::with_capacity(cuts.len() + 1);
    let mut from = 0;
    for &c in cuts {
        segs.push(&bytes[from..c]);
        from = c;
    }
    segs.push(&bytes[from..]);
    segs
}

/// A message with one block per segment, each with `headroom` free bytes
/// in front.
pub fn chain(segs: &[&[u8]], headroom: usize) -> MsgBlk {
    let mp = fakekernel::msg::chain_from_segments(segs, headroom);
    // SAFETY: chain_from_segments returns NULL or a fresh chain nothing
    // else owns, built by allocb with b_rptr <= b_wptr in every block.
    unsafe { MsgBlk::wrap(mp) }.expect("chain_from_segments allocates")
}

/// `bytes` cut at `cuts` as a message.
pub fn split_chain(bytes: &[u8], cuts: &[usize], headroom: usize) -> MsgBlk {
    chain(&segments(bytes, cuts), headroom)
}

/// Parse a message as the case's kind of frame.
pub fn parse(underlay: bool, m: &MsgBlk) -> Headers {
    let r = if underlay { Headers::parse_underlay(m) } else { Headers::parse_guest(m) };
    r.unwrap_or_else(|e| panic!("valid frame refused: {e}"))
}

/// Parse a message as a `Packet` of the case's kind.
pub fn packet(underlay: bool, m: MsgBlk) -> Packet {
    let r = if underlay { Packet::parse_underlay(m) } else { Packet::parse_guest(m) };
    r.unwrap_or_else(|f| panic!("valid frame refused: {}", f.error))
}

/// The headers with every checksum field zero, the quoted IPv4 header's
/// included (the emitter updates it).
pub fn without_csums(h: &Headers) -> Headers {
    let mut h = *h;
    if let Some(Embedded { l3: EmbeddedL3::Ipv4(ip), .. }) = &mut h.embedded {
        ip.csum = 0;
    }
    if let Some(enc) = &mut h.outer {
        enc.udp.csum = 0;
    }
    if let Some(L3::Ipv4(ip)) = &mut h.l3 {
        ip.csum = 0;
    }
    match &mut h.l4 {
        Some(L4::Tcp(t)) => t.csum = 0,
        Some(L4::Udp(u)) => u.csum = 0,
        Some(L4::Icmpv4(i)) | Some(L4::Icmpv6(i)) => i.csum = 0,
        None => {}
    }
    h
}

/// The headers with `straddled` zero: what a split must not change.
pub fn unstraddled(h: &Headers) -> Headers {
    Headers { straddled: 0, ..*h }
}

/// The Internet checksum (RFC 1071) of `bytes`, written here rather than
/// taken from the crate under test.
pub fn inet_csum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in bytes.chunks(2) {
        let w = u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]);
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

// ---- Field derivations, stated independently of the crate ----

fn l4_hdr_len(l4: Option<&L4>) -> usize {
    match l4 {
        Some(L4::Tcp(t)) => TcpHdr::MIN_LEN + usize::from(t.opt_len),
        Some(L4::Udp(_)) => UdpHdr::LEN,
        Some(L4::Icmpv4(_)) | Some(L4::Icmpv6(_)) => IcmpHdr::LEN,
        None => 0,
    }
}

fn embedded_ip_len(e: &Embedded) -> usize {
    match &e.l3 {
        EmbeddedL3::Ipv4(ip) => ip.hdr_len(),
        EmbeddedL3::Ipv6(ip) => ip.hdr_len(),
    }
}

/// A quoted header's next headers and (IPv4) checksum.
fn seal_embedded(e: &mut Embedded) {
    match &mut e.l3 {
        EmbeddedL3::Ipv4(ip) => {
            ip.csum = 0;
            let mut b = [0u8; 60];
            let n = ip.emit(&mut b);
            ip.csum = inet_csum(&b[..n]);
        }
        EmbeddedL3::Ipv6(ip) => {
            ip.next_hdr = ip.ext.iter().next().map_or(ip.proto, Ipv6Ext::protocol);
        }
    }
}

fn ndp_type(n: &NdpMsg) -> u8 {
    match n {
        NdpMsg::RouterSolicit { .. } => icmpv6_type::ROUTER_SOLICIT,
        NdpMsg::RouterAdvert { .. } => icmpv6_type::ROUTER_ADVERT,
        NdpMsg::NeighborSolicit { .. } => icmpv6_type::NEIGHBOR_SOLICIT,
        NdpMsg::NeighborAdvert { .. } => icmpv6_type::NEIGHBOR_ADVERT,
    }
}

/// The ICMPv6 header's four type-specific bytes of an NDP message.
fn ndp_rest(n: &NdpMsg) -> [u8; 4] {
    match n {
        NdpMsg::RouterAdvert { cur_hop_limit, flags, router_lifetime, .. } => {
            let [a, b] = router_lifetime.to_be_bytes();
            [*cur_hop_limit, *flags, a, b]
        }
        NdpMsg::NeighborAdvert { flags, .. } => [*flags, 0, 0, 0],
        NdpMsg::RouterSolicit { .. } | NdpMsg::NeighborSolicit { .. } => [0; 4],
    }
}

fn ndp_fixed_len(n: &NdpMsg) -> usize {
    match n {
        NdpMsg::RouterSolicit { .. } => 0,
        NdpMsg::RouterAdvert { .. } => 8,
        NdpMsg::NeighborSolicit { .. } | NdpMsg::NeighborAdvert { .. } => 16,
    }
}

pub fn ndp_opts(n: &NdpMsg) -> &NdpOptions {
    match n {
        NdpMsg::RouterSolicit { opts }
        | NdpMsg::RouterAdvert { opts, .. }
        | NdpMsg::NeighborSolicit { opts, .. }
        | NdpMsg::NeighborAdvert { opts, .. } => opts,
    }
}

fn ndp_opts_mut(n: &mut NdpMsg) -> &mut NdpOptions {
    match n {
        NdpMsg::RouterSolicit { opts }
        | NdpMsg::RouterAdvert { opts, .. }
        | NdpMsg::NeighborSolicit { opts, .. }
        | NdpMsg::NeighborAdvert { opts, .. } => opts,
    }
}

/// Option lengths in the order the builder writes them: source and
/// target link-layer address, prefix information, MTU.
fn known_ndp_option_lens(o: &NdpOptions) -> Vec<usize> {
    [
        (o.src_lla.is_some(), 8),
        (o.tgt_lla.is_some(), 8),
        (o.prefix.is_some(), 32),
        (o.mtu.is_some(), 8),
    ]
    .into_iter()
    .filter_map(|(present, len)| present.then_some(len))
    .collect()
}

fn ndp_wire_len(n: &NdpMsg) -> usize {
    ndp_fixed_len(n) + known_ndp_option_lens(ndp_opts(n)).iter().sum::<usize>()
}

/// Option lengths in the order the builder writes them: external,
/// multicast, MSS.
fn known_geneve_option_lens(o: &GeneveOptions) -> Vec<usize> {
    [(o.external, 4), (o.multicast.is_some(), 8), (o.mss.is_some(), 8)]
        .into_iter()
        .filter_map(|(present, len)| present.then_some(len))
        .collect()
}

/// TCP option bytes, padded with End of Option List to whole words.
pub fn encode_tcp_options(opts: &[TcpOption]) -> Vec<u8> {
    let mut v = Vec::new();
    for o in opts {
        match *o {
            TcpOption::Nop => v.push(1),
            TcpOption::Mss(m) => {
                v.extend([2, 4]);
                v.extend(m.to_be_bytes());
            }
            TcpOption::WindowScale(s) => v.extend([3, 3, s]),
            TcpOption::SackPermitted => v.extend([4, 2]),
            TcpOption::Sack { blocks, count } => {
                v.extend([5, 2 + 8 * count]);
                for (l, r) in &blocks[..usize::from(count)] {
                    v.extend(l.to_be_bytes());
                    v.extend(r.to_be_bytes());
                }
            }
            TcpOption::Timestamps { val, ecr } => {
                v.extend([8, 10]);
                v.extend(val.to_be_bytes());
                v.extend(ecr.to_be_bytes());
            }
            TcpOption::Unknown { kind, len } => {
                v.extend([kind, len]);
                v.extend((2..len).map(|i| i.wrapping_mul(17)));
            }
        }
    }
    v.resize(v.len().div_ceil(4) * 4, 0);
    v
}

fn tcp_option_len(o: &TcpOption) -> usize {
    match o {
        TcpOption::Nop => 1,
        TcpOption::Mss(_) => 4,
        TcpOption::WindowScale(_) => 3,
        TcpOption::SackPermitted => 2,
        TcpOption::Sack { count, .. } => 2 + 8 * usize::from(*count),
        TcpOption::Timestamps { .. } => 10,
        TcpOption::Unknown { len, .. } => usize::from(*len),
    }
}

// ---- Plain constructors ----

/// A TCP header with `opts`; checksum zero.
pub fn tcp(
    ports: (u16, u16),
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    opts: &[TcpOption],
) -> TcpHdr {
    let bytes = encode_tcp_options(opts);
    assert!(bytes.len() <= MAX_TCP_OPTIONS, "TCP options too long");
    let mut options = [0u8; MAX_TCP_OPTIONS];
    options[..bytes.len()].copy_from_slice(&bytes);
    TcpHdr {
        src_port: ports.0,
        dst_port: ports.1,
        seq,
        ack,
        reserved: 0,
        flags,
        window,
        csum: 0,
        urgent: 0,
        opt_len: bytes.len() as u8,
        options,
    }
}

/// A UDP header; length and checksum filled in by [`Case::seal`].
pub fn udp(src_port: u16, dst_port: u16) -> UdpHdr {
    UdpHdr { src_port, dst_port, len: 0, csum: 0 }
}

/// An ICMP header.
pub fn icmp(ty: u8, code: u8, rest: [u8; 4]) -> IcmpHdr {
    IcmpHdr { ty, code, csum: 0, rest }
}

/// An IPv4 header with option bytes `opts` (a multiple of 4, at most 40).
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, flags_frag: u16, opts: &[u8]) -> Ipv4Hdr {
    assert!(opts.len() <= 40 && opts.len().is_multiple_of(4), "bad IPv4 options");
    let mut options = [0u8; 40];
    options[..opts.len()].copy_from_slice(opts);
    Ipv4Hdr {
        tos: 0,
        total_len: 0,
        ident: 0x1234,
        flags_frag,
        ttl,
        proto: 0,
        csum: 0,
        src,
        dst,
        opt_len: opts.len() as u8,
        options,
    }
}

/// An IPv6 header with extension headers `exts`.
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8, exts: &[Ipv6Ext]) -> Ipv6Hdr {
    let mut ext = Ipv6ExtHdrs::default();
    for e in exts {
        ext.push(*e).expect("at most MAX_IPV6_EXT_HDRS extension headers");
    }
    Ipv6Hdr {
        traffic_class: 0,
        flow_label: 0,
        payload_len: 0,
        next_hdr: 0,
        hop_limit,
        src,
        dst,
        ext,
        proto: 0,
    }
}

/// An Ethernet header (EtherType filled in by [`Case::seal`]).
pub fn eth(dst: [u8; 6], src: [u8; 6]) -> EtherHdr {
    EtherHdr { dst: MacAddr::from_bytes(dst), src: MacAddr::from_bytes(src), ether_type: 0 }
}

/// A frame with `l3` and `l4` on `eth`.
pub fn frame(eth: EtherHdr, l3: L3, l4: Option<L4>) -> FrameBuilder {
    let mut f = FrameBuilder::new(eth);
    f.l3 = Some(l3);
    f.l4 = l4;
    f
}

/// Underlay encapsulation (lengths filled in by [`Case::seal`]).
pub fn encap(vni: u32, options: GeneveOptions, oam: bool) -> Encap {
    let mut geneve = GeneveHdr::new(Vni::new(vni).expect("24-bit VNI"), options);
    geneve.oam = oam;
    Encap {
        eth: eth([0xa8, 0x40, 0x25, 0, 0, 1], [0xa8, 0x40, 0x25, 0, 0, 2]),
        ip6: Ipv6Hdr {
            traffic_class: 0,
            flow_label: 0x12345,
            ..ipv6("fd00::1".parse().expect("addr"), "fd00::2".parse().expect("addr"), 64, &[])
        },
        udp: udp(40000, GENEVE_PORT),
        geneve,
    }
}

/// A whole unknown NDP option of `units` 8-byte units.
pub fn ndp_unknown_option(ty: u8, units: u8) -> Vec<u8> {
    let mut v = vec![ty, units];
    v.extend((2..usize::from(units) * 8).map(|i| i as u8));
    v
}

/// A whole Geneve option of an unknown class/type (not critical) with
/// `words` 4-byte words of body.
pub fn geneve_unknown_option(class: u16, ty: u8, words: u8) -> Vec<u8> {
    let [a, b] = class.to_be_bytes();
    let mut v = vec![a, b, ty & !OPT_CRITICAL, words & 0x1f];
    v.extend((0..usize::from(words) * 4).map(|i| i as u8 ^ 0x5a));
    v
}

// ---- Strategies ----

pub fn mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(MacAddr::from_bytes)
}

pub fn ether() -> impl Strategy<Value = EtherHdr> {
    (mac(), mac()).prop_map(|(dst, src)| EtherHdr { dst, src, ether_type: 0 })
}

pub fn ip4_addr() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

pub fn ip6_addr() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(Ipv6Addr::from)
}

/// One IPv4 option, whole.
fn ipv4_option() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(vec![1u8]),                                            // No Operation
        Just(vec![148u8, 4, 0, 0]),                                 // Router Alert
        any::<[u8; 2]>().prop_map(|id| vec![136, 4, id[0], id[1]]), // Stream ID
        (1usize..=9).prop_map(|n| {
            // Record Route with n empty slots.
            let mut v = vec![7, (3 + 4 * n) as u8, 4];
            v.resize(3 + 4 * n, 0);
            v
        }),
        (1usize..=4).prop_map(|n| {
            // Timestamp, timestamps only.
            let mut v = vec![68, (4 + 4 * n) as u8, 5, 0];
            v.resize(4 + 4 * n, 0);
            v
        }),
    ]
}

/// An IPv4 option area: options that fit in 40 bytes, padded with End of
/// Option List to whole words.
pub fn ipv4_options() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => Just(Vec::new()),
        2 => prop::collection::vec(ipv4_option(), 1..6).prop_map(|opts| {
            let mut v = Vec::new();
            for o in opts {
                if v.len() + o.len() <= 40 {
                    v.extend(o);
                }
            }
            v.resize(v.len().div_ceil(4) * 4, 0);
            v
        }),
    ]
}

/// How an IP packet is fragmented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frag {
    /// Not a fragment.
    Whole,
    /// Offset 0, more fragments follow.
    First,
    /// Offset > 0 (in 8-byte units).
    Later { offset: u16, more: bool },
    /// IPv6 only: a fragment header with offset 0 and no more fragments.
    Atomic,
}

fn frag_v4() -> impl Strategy<Value = Frag> {
    prop_oneof![
        6 => Just(Frag::Whole),
        1 => Just(Frag::First),
        1 => (1u16..0x2000, any::<bool>()).prop_map(|(offset, more)| Frag::Later { offset, more }),
    ]
}

fn frag_v6() -> impl Strategy<Value = Frag> {
    prop_oneof![
        6 => Just(Frag::Whole),
        1 => Just(Frag::First),
        1 => Just(Frag::Atomic),
        1 => (1u16..0x2000, any::<bool>()).prop_map(|(offset, more)| Frag::Later { offset, more }),
    ]
}

pub fn ipv4_hdr(frag: Frag) -> impl Strategy<Value = Ipv4Hdr> {
    (ip4_addr(), ip4_addr(), any::<u8>(), any::<u8>(), any::<u16>(), any::<bool>(), ipv4_options())
        .prop_map(move |(src, dst, ttl, tos, ident, df, opts)| {
            let flags_frag = match frag {
                Frag::Whole | Frag::Atomic => {
                    if df {
                        Ipv4Hdr::DF
                    } else {
                        0
                    }
                }
                Frag::First => Ipv4Hdr::MF,
                Frag::Later { offset, more } => offset | if more { Ipv4Hdr::MF } else { 0 },
            };
            Ipv4Hdr { tos, ident, ..ipv4(src, dst, ttl, flags_frag, &opts) }
        })
}

/// An option-carrying extension header's length: mostly short, some long.
fn ext_len() -> impl Strategy<Value = u16> {
    prop_oneof![4 => 0u16..4, 1 => 4u16..40].prop_map(|units| (units + 1) * 8)
}

fn ext_hdr() -> impl Strategy<Value = Ipv6Ext> {
    prop_oneof![
        ext_len().prop_map(|len| Ipv6Ext::DestOpts { len }),
        (ext_len(), any::<u8>(), any::<u8>()).prop_map(|(len, routing_type, segments_left)| {
            Ipv6Ext::Routing { len, routing_type, segments_left }
        }),
    ]
}

/// Up to four extension headers: hop-by-hop (only first, RFC 8200 4.1),
/// destination options, routing, and the fragment header `frag` asks for.
pub fn ipv6_exts(frag: Frag) -> impl Strategy<Value = Vec<Ipv6Ext>> {
    (
        prop::option::weighted(0.3, ext_len()),
        prop::collection::vec(ext_hdr(), 0..=3),
        any::<Index>(),
        any::<u32>(),
    )
        .prop_map(move |(hbh, mut rest, at, ident)| {
            let fh = match frag {
                Frag::Whole => None,
                Frag::First => Some(Ipv6Frag { offset: 0, more: true, ident }),
                Frag::Atomic => Some(Ipv6Frag { offset: 0, more: false, ident }),
                Frag::Later { offset, more } => Some(Ipv6Frag { offset, more, ident }),
            };
            let room = 4 - usize::from(hbh.is_some()) - usize::from(fh.is_some());
            rest.truncate(room);
            if let Some(f) = fh {
                let i = at.index(rest.len() + 1);
                rest.insert(i, Ipv6Ext::Fragment(f));
            }
            hbh.map(|len| Ipv6Ext::HopByHop { len }).into_iter().chain(rest).collect()
        })
}

pub fn ipv6_hdr(frag: Frag) -> impl Strategy<Value = Ipv6Hdr> {
    (ip6_addr(), ip6_addr(), any::<u8>(), any::<u8>(), 0u32..0x10_0000, ipv6_exts(frag)).prop_map(
        |(src, dst, hop, tc, flow, exts)| Ipv6Hdr {
            traffic_class: tc,
            flow_label: flow,
            ..ipv6(src, dst, hop, &exts)
        },
    )
}

fn tcp_option() -> impl Strategy<Value = TcpOption> {
    prop_oneof![
        3 => Just(TcpOption::Nop),
        2 => any::<u16>().prop_map(TcpOption::Mss),
        2 => any::<u8>().prop_map(TcpOption::WindowScale),
        2 => Just(TcpOption::SackPermitted),
        2 => (1u8..=4, any::<[(u32, u32); 4]>()).prop_map(|(count, mut blocks)| {
            blocks[usize::from(count)..].fill((0, 0));
            TcpOption::Sack { blocks, count }
        }),
        2 => (any::<u32>(), any::<u32>()).prop_map(|(val, ecr)| TcpOption::Timestamps { val, ecr }),
        1 => (prop::sample::select(vec![6u8, 7, 30, 34, 253, 254]), 2u8..=10)
            .prop_map(|(kind, len)| TcpOption::Unknown { kind, len }),
    ]
}

/// A TCP option list that fits the 40-byte option area.
pub fn tcp_options() -> impl Strategy<Value = Vec<TcpOption>> {
    prop_oneof![
        1 => Just(Vec::new()),
        3 => prop::collection::vec(tcp_option(), 1..8).prop_map(|opts| {
            let mut len = 0;
            opts.into_iter()
                .filter(|o| {
                    let fits = len + tcp_option_len(o) <= MAX_TCP_OPTIONS;
                    if fits {
                        len += tcp_option_len(o);
                    }
                    fits
                })
                .collect()
        }),
    ]
}

pub fn tcp_hdr() -> impl Strategy<Value = TcpHdr> {
    (
        any::<(u16, u16)>(),
        any::<u32>(),
        any::<u32>(),
        any::<u8>(),
        any::<u16>(),
        any::<u16>(),
        0u8..16,
        tcp_options(),
    )
        .prop_map(|(ports, seq, ack, flags, window, urgent, reserved, opts)| TcpHdr {
            urgent,
            reserved,
            ..tcp(ports, seq, ack, flags, window, &opts)
        })
}

pub fn udp_hdr() -> impl Strategy<Value = UdpHdr> {
    (any::<u16>(), any::<u16>()).prop_map(|(s, d)| udp(s, d))
}

/// An ICMPv4 echo request or reply.
pub fn icmpv4_echo() -> impl Strategy<Value = IcmpHdr> {
    (
        prop::sample::select(vec![icmpv4_type::ECHO_REQUEST, icmpv4_type::ECHO_REPLY]),
        any::<[u8; 4]>(),
    )
        .prop_map(|(ty, rest)| icmp(ty, 0, rest))
}

/// An ICMPv6 echo request or reply.
pub fn icmpv6_echo() -> impl Strategy<Value = IcmpHdr> {
    (
        prop::sample::select(vec![icmpv6_type::ECHO_REQUEST, icmpv6_type::ECHO_REPLY]),
        any::<[u8; 4]>(),
    )
        .prop_map(|(ty, rest)| icmp(ty, 0, rest))
}

/// An ICMPv4 error header (destination unreachable, source quench,
/// redirect, time exceeded, parameter problem).
pub fn icmpv4_error() -> impl Strategy<Value = IcmpHdr> {
    use icmpv4_type::*;
    prop_oneof![
        (0u8..16).prop_map(|c| (DEST_UNREACH, c)),
        Just((SOURCE_QUENCH, 0)),
        (0u8..4).prop_map(|c| (REDIRECT, c)),
        (0u8..2).prop_map(|c| (TIME_EXCEEDED, c)),
        (0u8..3).prop_map(|c| (PARAM_PROBLEM, c)),
    ]
    .prop_flat_map(|(ty, code)| any::<[u8; 4]>().prop_map(move |rest| icmp(ty, code, rest)))
}

/// An ICMPv6 error header.
pub fn icmpv6_error() -> impl Strategy<Value = IcmpHdr> {
    use icmpv6_type::*;
    prop_oneof![
        (0u8..7).prop_map(|c| (DEST_UNREACH, c)),
        Just((PACKET_TOO_BIG, 0)),
        (0u8..2).prop_map(|c| (TIME_EXCEEDED, c)),
        (0u8..3).prop_map(|c| (PARAM_PROBLEM, c)),
    ]
    .prop_flat_map(|(ty, code)| any::<[u8; 4]>().prop_map(move |rest| icmp(ty, code, rest)))
}

/// The IPv4 header and transport bytes an ICMPv4 error quotes.
pub fn embedded_v4() -> impl Strategy<Value = Embedded> {
    (
        ipv4_hdr(Frag::Whole),
        prop::sample::select(vec![protocol::TCP, protocol::UDP, protocol::ICMP]),
        0u16..1400,
        any::<[u8; 8]>(),
    )
        .prop_map(|(mut ip, proto, more, ulp)| {
            ip.proto = proto;
            ip.total_len = (ip.hdr_len() + Embedded::ULP_LEN) as u16 + more;
            Embedded { l3: EmbeddedL3::Ipv4(ip), ulp }
        })
}

/// The IPv6 header (with extension headers) and transport bytes an
/// ICMPv6 error quotes.
pub fn embedded_v6() -> impl Strategy<Value = Embedded> {
    (
        ipv6_hdr(Frag::Whole),
        prop::sample::select(vec![protocol::TCP, protocol::UDP, protocol::ICMPV6]),
        any::<u16>(),
        any::<[u8; 8]>(),
    )
        .prop_map(|(mut ip, proto, payload_len, ulp)| {
            ip.proto = proto;
            ip.payload_len = payload_len;
            Embedded { l3: EmbeddedL3::Ipv6(ip), ulp }
        })
}

pub fn ndp_options() -> impl Strategy<Value = NdpOptions> {
    let prefix =
        (any::<u8>(), any::<bool>(), any::<bool>(), any::<u32>(), any::<u32>(), ip6_addr())
            .prop_map(|(prefix_len, l, a, valid_lifetime, preferred_lifetime, prefix)| {
                PrefixInfo {
                    prefix_len,
                    flags: (u8::from(l) << 7) | (u8::from(a) << 6),
                    valid_lifetime,
                    preferred_lifetime,
                    prefix,
                }
            });
    (
        prop::option::of(mac()),
        prop::option::of(mac()),
        prop::option::of(any::<u32>()),
        prop::option::of(prefix),
    )
        .prop_map(|(src_lla, tgt_lla, mtu, prefix)| NdpOptions {
            src_lla,
            tgt_lla,
            mtu,
            prefix,
            skipped: 0,
        })
}

pub fn ndp_msg() -> impl Strategy<Value = NdpMsg> {
    prop_oneof![
        ndp_options().prop_map(|opts| NdpMsg::RouterSolicit { opts }),
        (
            any::<u8>(),
            any::<bool>(),
            any::<bool>(),
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
            ndp_options()
        )
            .prop_map(
                |(cur_hop_limit, m, o, router_lifetime, reachable_time, retrans_timer, opts)| {
                    NdpMsg::RouterAdvert {
                        cur_hop_limit,
                        flags: (u8::from(m) << 7) | (u8::from(o) << 6),
                        router_lifetime,
                        reachable_time,
                        retrans_timer,
                        opts,
                    }
                }
            ),
        (ip6_addr(), ndp_options())
            .prop_map(|(target, opts)| NdpMsg::NeighborSolicit { target, opts }),
        (0u8..8, ip6_addr(), ndp_options()).prop_map(|(f, target, opts)| NdpMsg::NeighborAdvert {
            flags: f << 5,
            target,
            opts
        }),
    ]
}

/// NDP options the parser skips for `msg`: unknown types (some longer
/// than it reads) and repeats of options `msg` already has.
fn ndp_extra(msg: &NdpMsg) -> impl Strategy<Value = Vec<Vec<u8>>> + use<> {
    let o = *ndp_opts(msg);
    let mut kinds: Vec<(u8, u8)> = vec![(14, 1), (25, 3), (31, 2), (200, 17), (201, 20)];
    if o.src_lla.is_some() {
        kinds.push((ndp_opt::SRC_LLA, 1));
    }
    if o.mtu.is_some() {
        kinds.push((ndp_opt::MTU, 1));
    }
    if o.prefix.is_some() {
        kinds.push((ndp_opt::PREFIX_INFO, 4));
    }
    prop::collection::vec(prop::sample::select(kinds), 0..4)
        .prop_map(|v| v.into_iter().map(|(ty, units)| ndp_unknown_option(ty, units)).collect())
}

/// Payload bytes: mostly short, sometimes a full segment's worth.
pub fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..64),
        1 => prop::collection::vec(any::<u8>(), 64..1500),
    ]
}

/// Protocols the guest parser carries without a transport header.
fn unknown_proto() -> impl Strategy<Value = u8> {
    prop::sample::select(vec![47u8, 50, 89, 132, 59])
}

/// A guest ARP frame.
pub fn arp_case() -> BoxedStrategy<Case> {
    (
        ether(),
        any::<u16>(),
        mac(),
        ip4_addr(),
        mac(),
        ip4_addr(),
        prop::collection::vec(any::<u8>(), 0..20),
    )
        .prop_map(|(e, op, sha, spa, tha, tpa, pad)| {
            Case::new(frame(e, L3::Arp(ArpEthIpv4 { op, sha, spa, tha, tpa }), None), pad)
        })
        .boxed()
}

/// What an IPv4 packet carries.
fn ipv4_payload(frag: Frag, inner: bool) -> BoxedStrategy<(Option<L4>, Option<Embedded>, u8)> {
    let tcp = tcp_hdr().prop_map(|t| (Some(L4::Tcp(t)), None, 0));
    let udp = udp_hdr().prop_map(|u| (Some(L4::Udp(u)), None, 0));
    let echo = icmpv4_echo().prop_map(|i| (Some(L4::Icmpv4(i)), None, 0));
    match frag {
        Frag::Later { .. } => {
            prop::sample::select(vec![protocol::TCP, protocol::UDP, protocol::ICMP, 47])
                .prop_map(|p| (None, None, p))
                .boxed()
        }
        Frag::First | Frag::Atomic => prop_oneof![tcp, udp, echo].boxed(),
        Frag::Whole if inner => prop_oneof![3 => tcp, 3 => udp, 1 => echo, 1 => icmpv4_error()
            .prop_flat_map(|i| embedded_v4().prop_map(move |e| (Some(L4::Icmpv4(i)), Some(e), 0)))]
        .boxed(),
        Frag::Whole => prop_oneof![
            3 => tcp,
            3 => udp,
            1 => echo,
            1 => icmpv4_error()
                .prop_flat_map(|i| embedded_v4().prop_map(move |e| (Some(L4::Icmpv4(i)), Some(e), 0))),
            1 => unknown_proto().prop_map(|p| (None, None, p)),
        ]
        .boxed(),
    }
}

/// An IPv4 frame; `inner` (inside Geneve) leaves out what the underlay
/// parser refuses: later fragments and unknown protocols.
pub fn ipv4_case(inner: bool) -> BoxedStrategy<Case> {
    let frag = if inner {
        prop_oneof![6 => Just(Frag::Whole), 1 => Just(Frag::First)].boxed()
    } else {
        frag_v4().boxed()
    };
    frag.prop_flat_map(move |frag| {
        (ether(), ipv4_hdr(frag), ipv4_payload(frag, inner), body(), prop::bool::weighted(0.25))
    })
    .prop_map(|(e, mut ip, (l4, embedded, proto), body, no_csum)| {
        if l4.is_none() {
            ip.proto = proto;
        }
        let mut f = frame(e, L3::Ipv4(ip), l4);
        f.embedded = embedded;
        let mut c = Case::new(f, body);
        c.udp_no_csum = no_csum;
        c.seal()
    })
    .boxed()
}

/// What an IPv6 packet carries: transport, quote, NDP, protocol.
type V6Payload = (Option<L4>, Option<Embedded>, Option<NdpMsg>, u8);

fn ipv6_payload(frag: Frag, inner: bool) -> BoxedStrategy<V6Payload> {
    let tcp = tcp_hdr().prop_map(|t| (Some(L4::Tcp(t)), None, None, 0));
    let udp = udp_hdr().prop_map(|u| (Some(L4::Udp(u)), None, None, 0));
    let echo = icmpv6_echo().prop_map(|i| (Some(L4::Icmpv6(i)), None, None, 0));
    let error = icmpv6_error().prop_flat_map(|i| {
        embedded_v6().prop_map(move |e| (Some(L4::Icmpv6(i)), Some(e), None, 0))
    });
    let ndp = ndp_msg().prop_map(|n| (Some(L4::Icmpv6(icmp(0, 0, [0; 4]))), None, Some(n), 0));
    match frag {
        Frag::Later { .. } => {
            prop::sample::select(vec![protocol::TCP, protocol::UDP, protocol::ICMPV6, 47])
                .prop_map(|p| (None, None, None, p))
                .boxed()
        }
        Frag::First | Frag::Atomic => prop_oneof![tcp, udp, echo].boxed(),
        Frag::Whole if inner => {
            prop_oneof![3 => tcp, 3 => udp, 1 => echo, 1 => error, 1 => ndp].boxed()
        }
        Frag::Whole => prop_oneof![
            3 => tcp,
            3 => udp,
            1 => echo,
            1 => error,
            1 => ndp,
            1 => unknown_proto().prop_map(|p| (None, None, None, p)),
        ]
        .boxed(),
    }
}

/// An IPv6 frame; `inner` as for [`ipv4_case`].
pub fn ipv6_case(inner: bool) -> BoxedStrategy<Case> {
    let frag = if inner {
        prop_oneof![6 => Just(Frag::Whole), 1 => Just(Frag::First), 1 => Just(Frag::Atomic)].boxed()
    } else {
        frag_v6().boxed()
    };
    frag.prop_flat_map(move |frag| (ether(), ipv6_hdr(frag), ipv6_payload(frag, inner), body()))
        .prop_flat_map(|(e, mut ip, (l4, embedded, ndp, proto), body)| {
            if l4.is_none() {
                ip.proto = proto;
            }
            let mut f = frame(e, L3::Ipv6(ip), l4);
            f.embedded = embedded;
            f.ndp = ndp;
            let extra = match &ndp {
                Some(n) => ndp_extra(n).boxed(),
                None => Just(Vec::new()).boxed(),
            };
            // Options run to the end of an NDP message: no body after them.
            let body = if ndp.is_some() { Vec::new() } else { body };
            extra.prop_map(move |extra| Case::new(f, body.clone()).with_ndp_extra(extra))
        })
        .boxed()
}

/// An ICMP frame of either family: echo, error with quote, or NDP.
pub fn icmp_case() -> BoxedStrategy<Case> {
    let v4 = (
        ether(),
        ipv4_hdr(Frag::Whole),
        prop_oneof![
            icmpv4_echo().prop_map(|i| (i, None)),
            icmpv4_error().prop_flat_map(|i| embedded_v4().prop_map(move |e| (i, Some(e)))),
        ],
        body(),
    )
        .prop_map(|(e, ip, (i, embedded), body)| {
            let mut f = frame(e, L3::Ipv4(ip), Some(L4::Icmpv4(i)));
            f.embedded = embedded;
            Case::new(f, body)
        });
    let v6 = ipv6_hdr(Frag::Whole).prop_flat_map(|ip| {
        prop_oneof![
            icmpv6_echo().prop_map(|i| (Some(L4::Icmpv6(i)), None, None, 0)),
            icmpv6_error().prop_flat_map(|i| embedded_v6().prop_map(move |e| (
                Some(L4::Icmpv6(i)),
                Some(e),
                None,
                0
            ))),
            ndp_msg().prop_map(|n| (Some(L4::Icmpv6(icmp(0, 0, [0; 4]))), None, Some(n), 0)),
        ]
        .prop_flat_map(move |(l4, embedded, ndp, _)| {
            let extra = match &ndp {
                Some(n) => ndp_extra(n).boxed(),
                None => Just(Vec::new()).boxed(),
            };
            (ether(), extra, body()).prop_map(move |(e, extra, body)| {
                let mut f = frame(e, L3::Ipv6(ip), l4);
                f.embedded = embedded;
                f.ndp = ndp;
                let body = if ndp.is_some() { Vec::new() } else { body };
                Case::new(f, body).with_ndp_extra(extra)
            })
        })
    });
    prop_oneof![v4, v6].boxed()
}

/// Any guest frame.
pub fn guest_case() -> BoxedStrategy<Case> {
    prop_oneof![1 => arp_case(), 4 => ipv4_case(false), 4 => ipv6_case(false)].boxed()
}

/// A frame the underlay parser accepts inside Geneve.
pub fn inner_case() -> BoxedStrategy<Case> {
    prop_oneof![ipv4_case(true), ipv6_case(true)].boxed()
}

pub fn geneve_options() -> impl Strategy<Value = GeneveOptions> {
    let repl = prop::sample::select(vec![
        Replication::External,
        Replication::Underlay,
        Replication::All,
        Replication::Reserved,
    ]);
    (any::<bool>(), prop::option::of(repl), prop::option::of(any::<u32>())).prop_map(
        |(external, multicast, mss)| GeneveOptions { external, multicast, mss, skipped: 0 },
    )
}

/// Geneve options of other classes, or Oxide types we don't know, none
/// critical.
fn geneve_extra() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let opt = prop_oneof![
        (any::<u16>().prop_filter("not Oxide", |c| *c != OXIDE_OPT_CLASS), any::<u8>(), 0u8..=31)
            .prop_map(|(c, t, w)| geneve_unknown_option(c, t, w)),
        (oxide_opt::MSS + 1..0x80, 0u8..4).prop_map(|(t, w)| geneve_unknown_option(
            OXIDE_OPT_CLASS,
            t,
            w
        )),
    ];
    prop_oneof![2 => Just(Vec::new()), 1 => prop::collection::vec(opt, 1..4)]
}

pub fn encap_strategy() -> impl Strategy<Value = Encap> {
    (
        ether(),
        ip6_addr(),
        ip6_addr(),
        any::<u8>(),
        any::<u8>(),
        0u32..0x10_0000,
        any::<u16>(),
        0u32..1 << 24,
        any::<bool>(),
        geneve_options(),
    )
        .prop_map(|(e, src, dst, hop, tc, flow, sport, vni, oam, opts)| {
            let mut enc = encap(vni, opts, oam);
            enc.eth = e;
            enc.ip6 = Ipv6Hdr { traffic_class: tc, flow_label: flow, ..ipv6(src, dst, hop, &[]) };
            enc.udp.src_port = sport;
            enc
        })
}

/// An underlay frame: Geneve over IPv6 carrying a guest frame.
pub fn underlay_case() -> BoxedStrategy<Case> {
    (inner_case(), encap_strategy(), geneve_extra(), any::<Index>())
        .prop_map(|(mut c, enc, mut extra, at)| {
            c.frame.outer = Some(enc);
            let known = known_geneve_option_lens(&enc.geneve.options);
            // The option area holds at most 63 words.
            let mut room = MAX_GENEVE_OPT_LEN - known.iter().sum::<usize>();
            extra.retain(|o| {
                let fits = o.len() <= room;
                if fits {
                    room -= o.len();
                }
                fits
            });
            c.with_geneve_extra(at.index(known.len() + 1), extra)
        })
        .boxed()
}

/// Any frame, guest or underlay.
pub fn any_case() -> BoxedStrategy<Case> {
    prop_oneof![3 => guest_case(), 2 => underlay_case()].boxed()
}

/// Indexes of up to `MAX_SEGMENTS - 1` cut points.
pub fn cuts() -> impl Strategy<Value = Vec<Index>> {
    prop::collection::vec(any::<Index>(), 0..MAX_SEGMENTS)
}

/// Free bytes in front of each block.
pub fn headroom() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![0usize, 2, 128])
}

// ---- Header changes ----

/// One change to a parsed packet's headers, as the engine would make.
/// A change that doesn't fit the packet (a TCP field of a UDP packet) is
/// skipped.
#[derive(Debug, Clone, Copy)]
pub enum Mod {
    EthSrc(MacAddr),
    EthDst(MacAddr),
    Ip4Src(Ipv4Addr),
    Ip4Dst(Ipv4Addr),
    Ip6Src(Ipv6Addr),
    Ip6Dst(Ipv6Addr),
    /// TTL or hop limit.
    Ttl(u8),
    /// TOS or traffic class.
    Tos(u8),
    FlowLabel(u32),
    ToggleDf,
    SrcPort(u16),
    DstPort(u16),
    TcpSeq(u32),
    TcpAck(u32),
    TcpFlags(u8),
    TcpWindow(u16),
    EchoId(u16),
    /// Echo request to reply and back.
    ToggleEcho,
    QuotedIp4Src(Ipv4Addr),
    QuotedIp4Dst(Ipv4Addr),
    QuotedIp6Src(Ipv6Addr),
    QuotedIp6Dst(Ipv6Addr),
    QuotedTtl(u8),
    QuotedPorts(u16, u16),
    ArpOp(u16),
    ArpSha(MacAddr),
    ArpSpa(Ipv4Addr),
    ArpTpa(Ipv4Addr),
    OuterEthSrc(MacAddr),
    OuterEthDst(MacAddr),
    OuterIp6Src(Ipv6Addr),
    OuterIp6Dst(Ipv6Addr),
    OuterHopLimit(u8),
    OuterUdpSrc(u16),
    Vni(u32),
    ToggleOam,
}

pub fn header_mod() -> impl Strategy<Value = Mod> {
    prop_oneof![
        mac().prop_map(Mod::EthSrc),
        mac().prop_map(Mod::EthDst),
        ip4_addr().prop_map(Mod::Ip4Src),
        ip4_addr().prop_map(Mod::Ip4Dst),
        ip6_addr().prop_map(Mod::Ip6Src),
        ip6_addr().prop_map(Mod::Ip6Dst),
        any::<u8>().prop_map(Mod::Ttl),
        any::<u8>().prop_map(Mod::Tos),
        (0u32..0x10_0000).prop_map(Mod::FlowLabel),
        Just(Mod::ToggleDf),
        any::<u16>().prop_map(Mod::SrcPort),
        any::<u16>().prop_map(Mod::DstPort),
        any::<u32>().prop_map(Mod::TcpSeq),
        any::<u32>().prop_map(Mod::TcpAck),
        any::<u8>().prop_map(Mod::TcpFlags),
        any::<u16>().prop_map(Mod::TcpWindow),
        any::<u16>().prop_map(Mod::EchoId),
        Just(Mod::ToggleEcho),
        ip4_addr().prop_map(Mod::QuotedIp4Src),
        ip4_addr().prop_map(Mod::QuotedIp4Dst),
        ip6_addr().prop_map(Mod::QuotedIp6Src),
        ip6_addr().prop_map(Mod::QuotedIp6Dst),
        any::<u8>().prop_map(Mod::QuotedTtl),
        any::<(u16, u16)>().prop_map(|(s, d)| Mod::QuotedPorts(s, d)),
        any::<u16>().prop_map(Mod::ArpOp),
        mac().prop_map(Mod::ArpSha),
        ip4_addr().prop_map(Mod::ArpSpa),
        ip4_addr().prop_map(Mod::ArpTpa),
        mac().prop_map(Mod::OuterEthSrc),
        mac().prop_map(Mod::OuterEthDst),
        ip6_addr().prop_map(Mod::OuterIp6Src),
        ip6_addr().prop_map(Mod::OuterIp6Dst),
        any::<u8>().prop_map(Mod::OuterHopLimit),
        any::<u16>().prop_map(Mod::OuterUdpSrc),
        (0u32..1 << 24).prop_map(Mod::Vni),
        Just(Mod::ToggleOam),
    ]
}

/// Up to a dozen header changes.
pub fn mods() -> impl Strategy<Value = Vec<Mod>> {
    prop::collection::vec(header_mod(), 0..12)
}

/// Make the changes in `mods` that fit `h`.
pub fn apply(h: &mut Headers, mods: &[Mod]) {
    for m in mods {
        apply_one(h, *m);
    }
}

fn apply_one(h: &mut Headers, m: Mod) {
    match m {
        Mod::EthSrc(a) => h.eth.src = a,
        Mod::EthDst(a) => h.eth.dst = a,
        Mod::Ip4Src(a) => if_v4(h, |ip| ip.src = a),
        Mod::Ip4Dst(a) => if_v4(h, |ip| ip.dst = a),
        Mod::Ip6Src(a) => if_v6(h, |ip| ip.src = a),
        Mod::Ip6Dst(a) => if_v6(h, |ip| ip.dst = a),
        Mod::Ttl(t) => {
            if_v4(h, |ip| ip.ttl = t);
            if_v6(h, |ip| ip.hop_limit = t);
        }
        Mod::Tos(t) => {
            if_v4(h, |ip| ip.tos = t);
            if_v6(h, |ip| ip.traffic_class = t);
        }
        Mod::FlowLabel(f) => if_v6(h, |ip| ip.flow_label = f),
        Mod::ToggleDf => if_v4(h, |ip| ip.flags_frag ^= Ipv4Hdr::DF),
        Mod::SrcPort(p) => match &mut h.l4 {
            Some(L4::Tcp(t)) => t.src_port = p,
            Some(L4::Udp(u)) => u.src_port = p,
            _ => {}
        },
        Mod::DstPort(p) => match &mut h.l4 {
            Some(L4::Tcp(t)) => t.dst_port = p,
            Some(L4::Udp(u)) => u.dst_port = p,
            _ => {}
        },
        Mod::TcpSeq(v) => if_tcp(h, |t| t.seq = v),
        Mod::TcpAck(v) => if_tcp(h, |t| t.ack = v),
        Mod::TcpFlags(v) => if_tcp(h, |t| t.flags = v),
        Mod::TcpWindow(v) => if_tcp(h, |t| t.window = v),
        Mod::EchoId(id) => match &mut h.l4 {
            Some(L4::Icmpv4(i)) if i.is_v4_echo() => i.set_echo_id(id),
            Some(L4::Icmpv6(i)) if i.is_v6_echo() => i.set_echo_id(id),
            _ => {}
        },
        Mod::ToggleEcho => match &mut h.l4 {
            Some(L4::Icmpv4(i)) if i.is_v4_echo() => {
                i.ty ^= icmpv4_type::ECHO_REQUEST ^ icmpv4_type::ECHO_REPLY
            }
            Some(L4::Icmpv6(i)) if i.is_v6_echo() => {
                i.ty ^= icmpv6_type::ECHO_REQUEST ^ icmpv6_type::ECHO_REPLY
            }
            _ => {}
        },
        Mod::QuotedIp4Src(a) => if_quoted_v4(h, |ip| ip.src = a),
        Mod::QuotedIp4Dst(a) => if_quoted_v4(h, |ip| ip.dst = a),
        Mod::QuotedTtl(t) => {
            if_quoted_v4(h, |ip| ip.ttl = t);
            if let Some(Embedded { l3: EmbeddedL3::Ipv6(ip), .. }) = &mut h.embedded {
                ip.hop_limit = t;
            }
        }
        Mod::QuotedIp6Src(a) => {
            if let Some(Embedded { l3: EmbeddedL3::Ipv6(ip), .. }) = &mut h.embedded {
                ip.src = a;
            }
        }
        Mod::QuotedIp6Dst(a) => {
            if let Some(Embedded { l3: EmbeddedL3::Ipv6(ip), .. }) = &mut h.embedded {
                ip.dst = a;
            }
        }
        Mod::QuotedPorts(s, d) => {
            if let Some(e) = &mut h.embedded {
                e.set_src_port(s);
                e.set_dst_port(d);
            }
        }
        Mod::ArpOp(op) => if_arp(h, |a| a.op = op),
        Mod::ArpSha(mac) => if_arp(h, |a| a.sha = mac),
        Mod::ArpSpa(ip) => if_arp(h, |a| a.spa = ip),
        Mod::ArpTpa(ip) => if_arp(h, |a| a.tpa = ip),
        Mod::OuterEthSrc(a) => if_outer(h, |e| e.eth.src = a),
        Mod::OuterEthDst(a) => if_outer(h, |e| e.eth.dst = a),
        Mod::OuterIp6Src(a) => if_outer(h, |e| e.ip6.src = a),
        Mod::OuterIp6Dst(a) => if_outer(h, |e| e.ip6.dst = a),
        Mod::OuterHopLimit(t) => if_outer(h, |e| e.ip6.hop_limit = t),
        Mod::OuterUdpSrc(p) => if_outer(h, |e| e.udp.src_port = p),
        Mod::Vni(v) => if_outer(h, |e| e.geneve.vni = Vni::new(v).expect("24-bit VNI")),
        Mod::ToggleOam => if_outer(h, |e| e.geneve.oam = !e.geneve.oam),
    }
}

fn if_v4(h: &mut Headers, f: impl FnOnce(&mut Ipv4Hdr)) {
    if let Some(L3::Ipv4(ip)) = &mut h.l3 {
        f(ip);
    }
}

fn if_v6(h: &mut Headers, f: impl FnOnce(&mut Ipv6Hdr)) {
    if let Some(L3::Ipv6(ip)) = &mut h.l3 {
        f(ip);
    }
}

fn if_arp(h: &mut Headers, f: impl FnOnce(&mut ArpEthIpv4)) {
    if let Some(L3::Arp(a)) = &mut h.l3 {
        f(a);
    }
}

fn if_tcp(h: &mut Headers, f: impl FnOnce(&mut TcpHdr)) {
    if let Some(L4::Tcp(t)) = &mut h.l4 {
        f(t);
    }
}

fn if_quoted_v4(h: &mut Headers, f: impl FnOnce(&mut Ipv4Hdr)) {
    if let Some(Embedded { l3: EmbeddedL3::Ipv4(ip), .. }) = &mut h.embedded {
        f(ip);
    }
}

fn if_outer(h: &mut Headers, f: impl FnOnce(&mut Encap)) {
    if let Some(e) = &mut h.outer {
        f(e);
    }
}

/// One change of every kind, for tests that go through fixed packets.
pub fn every_mod() -> Vec<Mod> {
    let mac = MacAddr::from_bytes([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
    let v4 = Ipv4Addr::new(192, 168, 77, 3);
    let v6: Ipv6Addr = "2001:db8:77::3".parse().expect("addr");
    vec![
        Mod::EthSrc(mac),
        Mod::EthDst(MacAddr::from_bytes([0x02, 1, 2, 3, 4, 5])),
        Mod::Ip4Src(v4),
        Mod::Ip4Dst(Ipv4Addr::new(172, 16, 0, 9)),
        Mod::Ip6Src(v6),
        Mod::Ip6Dst("fe80::9".parse().expect("addr")),
        Mod::Ttl(7),
        Mod::Tos(0xb8),
        Mod::FlowLabel(0xabcde),
        Mod::ToggleDf,
        Mod::SrcPort(0xfedc),
        Mod::DstPort(443),
        Mod::TcpSeq(0xdead_beef),
        Mod::TcpAck(0x0102_0304),
        Mod::TcpFlags(0x18),
        Mod::TcpWindow(0x7fff),
        Mod::EchoId(0x4242),
        Mod::ToggleEcho,
        Mod::QuotedIp4Src(Ipv4Addr::new(10, 9, 8, 7)),
        Mod::QuotedIp4Dst(v4),
        Mod::QuotedIp6Src(v6),
        Mod::QuotedIp6Dst("2001:db8::99".parse().expect("addr")),
        Mod::QuotedTtl(1),
        Mod::QuotedPorts(5353, 53),
        Mod::ArpOp(2),
        Mod::ArpSha(mac),
        Mod::ArpSpa(v4),
        Mod::ArpTpa(Ipv4Addr::new(10, 0, 0, 254)),
        Mod::OuterEthSrc(MacAddr::from_bytes([0xa8, 0x40, 0x25, 9, 9, 9])),
        Mod::OuterEthDst(mac),
        Mod::OuterIp6Src("fd00:1122::7".parse().expect("addr")),
        Mod::OuterIp6Dst("fd00:3344::8".parse().expect("addr")),
        Mod::OuterHopLimit(3),
        Mod::OuterUdpSrc(51234),
        Mod::Vni(0x00ab_cdef),
        Mod::ToggleOam,
    ]
}

/// Hand-picked frames that together have every header and option kind,
/// for tests that try every split of a frame.
pub fn representative() -> Vec<(&'static str, Case)> {
    let e = eth([2, 8, 0x20, 1, 2, 3], [2, 8, 0x20, 4, 5, 6]);
    let a4 = |s: &str| -> Ipv4Addr { s.parse().expect("addr") };
    let a6 = |s: &str| -> Ipv6Addr { s.parse().expect("addr") };
    let mac = |b: u8| MacAddr::from_bytes([2, 0, 0, 0, 0, b]);
    let ip_opts: Vec<u8> = {
        // Router Alert, Record Route with two slots, padded.
        let mut v = vec![148, 4, 0, 0, 7, 11, 4];
        v.resize(16, 0);
        v
    };
    let tcp_opts = [
        TcpOption::Mss(1460),
        TcpOption::Nop,
        TcpOption::WindowScale(7),
        TcpOption::SackPermitted,
        TcpOption::Timestamps { val: 0x0102_0304, ecr: 0 },
    ];
    let sack = TcpOption::Sack { blocks: [(1, 2), (3, 4), (5, 6), (0, 0)], count: 3 };
    let syn = tcp((40000, 80), 1, 0, 0x02, 65535, &tcp_opts);
    let ack =
        tcp((443, 40001), 0x1000, 0x2000, 0x10, 1024, &[TcpOption::Nop, TcpOption::Nop, sack]);
    let v4 = |flags_frag, opts: &[u8]| ipv4(a4("10.0.0.1"), a4("10.0.0.2"), 64, flags_frag, opts);
    let v6 = |exts: &[Ipv6Ext]| ipv6(a6("fd00::1"), a6("fd00::2"), 255, exts);
    let echo4 = icmp(icmpv4_type::ECHO_REQUEST, 0, [0x12, 0x34, 0, 1]);
    let echo6 = icmp(icmpv6_type::ECHO_REPLY, 0, [0x56, 0x78, 0, 2]);
    let four_exts = [
        Ipv6Ext::HopByHop { len: 8 },
        Ipv6Ext::DestOpts { len: 16 },
        Ipv6Ext::Routing { len: 24, routing_type: 4, segments_left: 1 },
        Ipv6Ext::Fragment(Ipv6Frag { offset: 0, more: false, ident: 0xabcd }),
    ];
    let with = |mut f: FrameBuilder, embedded: Option<Embedded>, ndp: Option<NdpMsg>| {
        f.embedded = embedded;
        f.ndp = ndp;
        f
    };
    let quote4 = Embedded {
        l3: EmbeddedL3::Ipv4(Ipv4Hdr {
            proto: protocol::TCP,
            total_len: 200,
            ..ipv4(a4("10.0.0.2"), a4("93.184.216.34"), 1, Ipv4Hdr::DF, &ip_opts)
        }),
        ulp: [0x9c, 0x40, 0, 80, 0, 0, 0, 1],
    };
    let quote6 = Embedded {
        l3: EmbeddedL3::Ipv6(Ipv6Hdr {
            proto: protocol::UDP,
            payload_len: 100,
            ..ipv6(
                a6("fd00::2"),
                a6("2001:db8::53"),
                1,
                &[Ipv6Ext::HopByHop { len: 8 }, Ipv6Ext::DestOpts { len: 24 }],
            )
        }),
        ulp: [0x14, 0xe9, 0, 53, 0, 100, 0, 0],
    };
    let all_ndp = NdpOptions {
        src_lla: Some(mac(1)),
        tgt_lla: Some(mac(2)),
        mtu: Some(9000),
        prefix: Some(PrefixInfo {
            prefix_len: 64,
            flags: 0xc0,
            valid_lifetime: 86400,
            preferred_lifetime: 14400,
            prefix: a6("fd00:1::"),
        }),
        skipped: 0,
    };
    let ra = NdpMsg::RouterAdvert {
        cur_hop_limit: 64,
        flags: 0x40,
        router_lifetime: 1800,
        reachable_time: 30000,
        retrans_timer: 1000,
        opts: all_ndp,
    };
    let ns = NdpMsg::NeighborSolicit {
        target: a6("fe80::1"),
        opts: NdpOptions { src_lla: Some(mac(3)), ..NdpOptions::default() },
    };
    let na = NdpMsg::NeighborAdvert {
        flags: 0xe0,
        target: a6("fe80::2"),
        opts: NdpOptions { tgt_lla: Some(mac(4)), ..NdpOptions::default() },
    };
    let ndp_icmp = Some(L4::Icmpv6(icmp(0, 0, [0; 4])));
    let every_geneve = GeneveOptions {
        external: true,
        multicast: Some(Replication::All),
        mss: Some(1448),
        skipped: 0,
    };
    let underlay = |inner: Case, opts, extra: Vec<Vec<u8>>| {
        let mut c = inner;
        c.frame.outer = Some(encap(0x00_1234, opts, false));
        c.with_geneve_extra(1, extra)
    };
    vec![
        (
            "arp request",
            Case::new(
                frame(
                    e,
                    L3::Arp(ArpEthIpv4 {
                        op: 1,
                        sha: mac(9),
                        spa: a4("10.0.0.9"),
                        tha: MacAddr::from_bytes([0; 6]),
                        tpa: a4("10.0.0.1"),
                    }),
                    None,
                ),
                vec![0; 18],
            ),
        ),
        (
            "ipv4 tcp syn with ip and tcp options",
            Case::new(
                frame(e, L3::Ipv4(v4(Ipv4Hdr::DF, &ip_opts)), Some(L4::Tcp(syn))),
                b"hello".to_vec(),
            ),
        ),
        (
            "ipv4 tcp ack with sack",
            Case::new(frame(e, L3::Ipv4(v4(0, &[])), Some(L4::Tcp(ack))), vec![7; 33]),
        ),
        (
            "ipv4 udp first fragment",
            Case::new(
                frame(e, L3::Ipv4(v4(Ipv4Hdr::MF, &[])), Some(L4::Udp(udp(5353, 53)))),
                vec![1; 40],
            ),
        ),
        (
            "ipv4 later fragment",
            Case::new(
                frame(
                    e,
                    L3::Ipv4(Ipv4Hdr { proto: protocol::UDP, ..v4(Ipv4Hdr::MF | 6, &ip_opts) }),
                    None,
                ),
                vec![2; 24],
            ),
        ),
        (
            "ipv4 udp without checksum",
            Case {
                udp_no_csum: true,
                ..Case::new(frame(e, L3::Ipv4(v4(0, &[])), Some(L4::Udp(udp(68, 67)))), vec![3; 11])
            }
            .seal(),
        ),
        (
            "ipv4 icmp echo",
            Case::new(frame(e, L3::Ipv4(v4(0, &[])), Some(L4::Icmpv4(echo4))), vec![4; 9]),
        ),
        (
            "ipv4 icmp error quoting tcp",
            Case::new(
                with(
                    frame(
                        e,
                        L3::Ipv4(v4(0, &[])),
                        Some(L4::Icmpv4(icmp(icmpv4_type::DEST_UNREACH, 4, [0, 0, 5, 0xdc]))),
                    ),
                    Some(quote4),
                    None,
                ),
                vec![5; 12],
            ),
        ),
        (
            "ipv4 unknown protocol",
            Case::new(frame(e, L3::Ipv4(Ipv4Hdr { proto: 47, ..v4(0, &[]) }), None), vec![6; 20]),
        ),
        (
            "ipv6 tcp with four extension headers",
            Case::new(frame(e, L3::Ipv6(v6(&four_exts)), Some(L4::Tcp(syn))), vec![8; 3]),
        ),
        (
            "ipv6 udp",
            Case::new(frame(e, L3::Ipv6(v6(&[])), Some(L4::Udp(udp(546, 547)))), vec![9; 17]),
        ),
        (
            "ipv6 later fragment",
            Case::new(
                frame(
                    e,
                    L3::Ipv6(Ipv6Hdr {
                        proto: protocol::TCP,
                        ..v6(&[Ipv6Ext::Fragment(Ipv6Frag { offset: 185, more: true, ident: 7 })])
                    }),
                    None,
                ),
                vec![10; 16],
            ),
        ),
        (
            "ipv6 icmp echo",
            Case::new(frame(e, L3::Ipv6(v6(&[])), Some(L4::Icmpv6(echo6))), vec![11; 5]),
        ),
        (
            "ipv6 icmp error quoting ipv6 with extension headers",
            Case::new(
                with(
                    frame(
                        e,
                        L3::Ipv6(v6(&[Ipv6Ext::DestOpts { len: 8 }])),
                        Some(L4::Icmpv6(icmp(icmpv6_type::PACKET_TOO_BIG, 0, [0, 0, 5, 0]))),
                    ),
                    Some(quote6),
                    None,
                ),
                vec![12; 30],
            ),
        ),
        (
            "ndp router advertisement with every option and skipped ones",
            Case::new(with(frame(e, L3::Ipv6(v6(&[])), ndp_icmp), None, Some(ra)), Vec::new())
                .with_ndp_extra(vec![ndp_unknown_option(14, 1), ndp_unknown_option(200, 17)]),
        ),
        (
            "ndp neighbor solicitation",
            Case::new(with(frame(e, L3::Ipv6(v6(&[])), ndp_icmp), None, Some(ns)), Vec::new())
                .with_ndp_extra(vec![ndp_unknown_option(ndp_opt::SRC_LLA, 1)]),
        ),
        (
            "ndp neighbor advertisement",
            Case::new(with(frame(e, L3::Ipv6(v6(&[])), ndp_icmp), None, Some(na)), Vec::new()),
        ),
        (
            "underlay: every geneve option and an unknown one, ipv4 tcp",
            underlay(
                Case::new(frame(e, L3::Ipv4(v4(0, &ip_opts)), Some(L4::Tcp(ack))), vec![13; 10]),
                every_geneve,
                vec![geneve_unknown_option(0x0102, 0x33, 2)],
            ),
        ),
        (
            "underlay: no options, ipv6 icmp echo",
            underlay(
                Case::new(frame(e, L3::Ipv6(v6(&[])), Some(L4::Icmpv6(echo6))), vec![14; 8]),
                GeneveOptions::default(),
                Vec::new(),
            ),
        ),
        (
            "underlay: mss, ipv6 udp first fragment",
            underlay(
                Case::new(
                    frame(
                        e,
                        L3::Ipv6(v6(&[Ipv6Ext::Fragment(Ipv6Frag {
                            offset: 0,
                            more: true,
                            ident: 1,
                        })])),
                        Some(L4::Udp(udp(1000, 2000))),
                    ),
                    vec![15; 21],
                ),
                GeneveOptions { mss: Some(8948), ..GeneveOptions::default() },
                vec![geneve_unknown_option(OXIDE_OPT_CLASS, 0x7f, 0)],
            ),
        ),
    ]
}
