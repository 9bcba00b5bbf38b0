//! Hand-written frames and independent checks for the packet-layer tests
//! (`roundtrip`, `malformed`, `emit_behaviour`).
//!
//! - Header constructors ([`ipv4`], [`tcp`], [`encap`], ...) and one
//!   [`Sample`] frame of every kind the parser knows, guest and underlay.
//! - [`chain`]: a frame as a message split into blocks at given offsets.
//! - [`checksum_problems`]: verifies every checksum of a frame by walking
//!   its bytes itself, sharing no code with `opte::packet`, so a test of
//!   the emitter can't be wrong in the same way as the emitter.
//! - [`Rng`]: a small deterministic generator for the random tests.
#![allow(dead_code)]

use opte::ddi::MsgBlk;
use opte::packet::icmp::{icmpv4_type, icmpv6_type};
use opte::packet::ip4::{MAX_IPV4_OPTIONS, protocol};
use opte::packet::ndp::NA_SOLICITED;
use opte::packet::tcp::{MAX_TCP_OPTIONS, emit_tcp_options, tcp_flags};
use opte::packet::*;
use opte_api::{Ipv4Addr, Ipv6Addr, MacAddr, Vni};

pub const GUEST_MAC: MacAddr = MacAddr::from_bytes([0x02, 0x08, 0x20, 0x01, 0x02, 0x03]);
pub const GW_MAC: MacAddr = MacAddr::from_bytes([0xa8, 0x40, 0x25, 0xff, 0x77, 0x77]);
pub const SLED_A_MAC: MacAddr = MacAddr::from_bytes([0xa8, 0x40, 0x25, 0x00, 0x00, 0x0a]);
pub const SLED_B_MAC: MacAddr = MacAddr::from_bytes([0xa8, 0x40, 0x25, 0x00, 0x00, 0x0b]);

pub const GUEST_V4: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 5);
pub const REMOTE_V4: Ipv4Addr = Ipv4Addr::new(93, 184, 216, 34);
pub const GUEST_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x1122, 0x3344, 0x0101, 0, 0, 0, 5);
pub const REMOTE_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x34);
pub const LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x0008, 0x20ff, 0xfe01, 0x0203);
pub const SLED_A_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 0xa);
pub const SLED_B_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 0xb);

/// Bytes of the outer Ethernet, IPv6 and UDP headers before Geneve.
pub const OUTER_FIXED: usize = EtherHdr::LEN + Ipv6Hdr::LEN + UdpHdr::LEN;

/// An Ethernet header (EtherType filled in by the builder).
pub fn eth(src: MacAddr, dst: MacAddr) -> EtherHdr {
    EtherHdr { dst, src, ether_type: 0 }
}

/// An IPv4 header without options (lengths, protocol and checksum are
/// the builder's).
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr) -> Ipv4Hdr {
    Ipv4Hdr {
        tos: 0x10,
        total_len: 0,
        ident: 0x4d2a,
        flags_frag: Ipv4Hdr::DF,
        ttl: 64,
        proto: 0,
        csum: 0,
        src,
        dst,
        opt_len: 0,
        options: [0; MAX_IPV4_OPTIONS],
    }
}

/// `ip` carrying the raw option bytes `opts` (a multiple of 4 long).
pub fn with_ip4_options(mut ip: Ipv4Hdr, opts: &[u8]) -> Ipv4Hdr {
    assert!(opts.len().is_multiple_of(4) && opts.len() <= MAX_IPV4_OPTIONS);
    ip.options = [0; MAX_IPV4_OPTIONS];
    ip.options[..opts.len()].copy_from_slice(opts);
    ip.opt_len = opts.len() as u8;
    ip
}

/// An IPv6 header without extension headers.
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr) -> Ipv6Hdr {
    Ipv6Hdr { traffic_class: 0x28, flow_label: 0x5_4321, hop_limit: 64, src, dst, ..Ipv6Hdr::EMPTY }
}

/// `ip` with extension headers `exts` in order.
pub fn with_ext(mut ip: Ipv6Hdr, exts: &[Ipv6Ext]) -> Ipv6Hdr {
    ip.ext = Ipv6ExtHdrs::default();
    for e in exts {
        ip.ext.push(*e).expect("within MAX_IPV6_EXT_HDRS");
    }
    ip.next_hdr = exts.first().map_or(ip.proto, Ipv6Ext::protocol);
    ip
}

/// A TCP header with `opts` (an ACK segment unless `flags` says else).
pub fn tcp(src_port: u16, dst_port: u16, flags: u8, opts: &[TcpOption]) -> TcpHdr {
    let mut options = [0u8; MAX_TCP_OPTIONS];
    let opt_len = emit_tcp_options(opts, &mut options).expect("options fit");
    TcpHdr {
        src_port,
        dst_port,
        seq: 0x1f2e_3d4c,
        ack: 0x0a0b_0c0d,
        reserved: 0,
        flags,
        window: 0xfaf0,
        csum: 0,
        urgent: 0,
        opt_len: opt_len as u8,
        options,
    }
}

/// A UDP header (length and checksum are the builder's).
pub fn udp(src_port: u16, dst_port: u16) -> UdpHdr {
    UdpHdr { src_port, dst_port, len: 0, csum: 0 }
}

/// An ICMP header of type `ty` with type-specific bytes `rest`.
pub fn icmp(ty: u8, code: u8, rest: [u8; 4]) -> IcmpHdr {
    IcmpHdr { ty, code, csum: 0, rest }
}

/// Geneve encapsulation from sled A to sled B carrying `options`.
pub fn encap(vni: u32, options: GeneveOptions) -> Encap {
    let vni = Vni::new(vni).expect("24-bit VNI");
    Encap {
        eth: eth(SLED_A_MAC, SLED_B_MAC),
        ip6: ipv6(SLED_A_V6, SLED_B_V6),
        udp: udp(0xc1a0, 6081),
        geneve: GeneveHdr::new(vni, options),
    }
}

/// The SACK option with `blocks` (unused slots zero, as parsed).
pub fn sack(blocks: &[(u32, u32)]) -> TcpOption {
    let mut b = [(0, 0); 4];
    b[..blocks.len()].copy_from_slice(blocks);
    TcpOption::Sack { blocks: b, count: blocks.len() as u8 }
}

/// A frame to build, named for failure messages.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: &'static str,
    pub fb: FrameBuilder,
    pub body: Vec<u8>,
}

impl Sample {
    fn new(name: &'static str, fb: FrameBuilder, body: &[u8]) -> Self {
        Self { name, fb, body: body.to_vec() }
    }

    /// The frame's bytes.
    pub fn bytes(&self) -> Vec<u8> {
        self.fb.to_bytes(&self.body)
    }

    /// Offset of the (inner) Ethernet header.
    pub fn inner_eth(&self) -> usize {
        self.fb.outer.map_or(0, |e| OUTER_FIXED + GeneveHdr::LEN + e.geneve.options.wire_len())
    }

    /// The same frame encapsulated.
    pub fn encapsulated(&self, name: &'static str, enc: Encap) -> Self {
        let mut fb = self.fb;
        fb.outer = Some(enc);
        Self { name, fb, body: self.body.clone() }
    }
}

fn guest_fb(l3: L3, l4: Option<L4>) -> FrameBuilder {
    let mut fb = FrameBuilder::new(eth(GUEST_MAC, GW_MAC));
    fb.l3 = Some(l3);
    fb.l4 = l4;
    fb
}

pub fn tcp4() -> Sample {
    let opts = [
        TcpOption::Mss(1460),
        TcpOption::SackPermitted,
        TcpOption::Timestamps { val: 0x0102_0304, ecr: 0 },
        TcpOption::Nop,
        TcpOption::WindowScale(7),
    ];
    let t = tcp(49152, 443, tcp_flags::SYN, &opts);
    Sample::new("tcp4", guest_fb(L3::Ipv4(ipv4(GUEST_V4, REMOTE_V4)), Some(L4::Tcp(t))), b"")
}

pub fn tcp4_ip_options() -> Sample {
    // Router Alert (RFC 2113), then NOPs and End of Options List.
    let ip = with_ip4_options(ipv4(GUEST_V4, REMOTE_V4), &[148, 4, 0, 0, 1, 1, 1, 0]);
    let t = tcp(49153, 22, tcp_flags::ACK | tcp_flags::PSH, &[]);
    Sample::new("tcp4+ipopts", guest_fb(L3::Ipv4(ip), Some(L4::Tcp(t))), b"SSH-2.0-OpenSSH\r\n")
}

pub fn udp4() -> Sample {
    let b =
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01";
    Sample::new(
        "udp4",
        guest_fb(L3::Ipv4(ipv4(GUEST_V4, REMOTE_V4)), Some(L4::Udp(udp(5353, 53)))),
        b,
    )
}

pub fn icmp4_echo() -> Sample {
    let i = icmp(icmpv4_type::ECHO_REQUEST, 0, [0x1b, 0x39, 0, 1]);
    Sample::new(
        "icmp4-echo",
        guest_fb(L3::Ipv4(ipv4(GUEST_V4, REMOTE_V4)), Some(L4::Icmpv4(i))),
        b"ping payload 0123456789",
    )
}

/// The IPv4 header a quoted packet had (checksum filled in).
pub fn quoted_ipv4(proto: u8) -> Ipv4Hdr {
    let mut q = ipv4(REMOTE_V4, GUEST_V4);
    q.proto = proto;
    q.total_len = 576;
    q.csum = q.compute_csum();
    q
}

pub fn icmp4_unreach() -> Sample {
    let i = icmp(icmpv4_type::DEST_UNREACH, 3, [0; 4]);
    let mut fb = guest_fb(L3::Ipv4(ipv4(GUEST_V4, REMOTE_V4)), Some(L4::Icmpv4(i)));
    fb.embedded = Some(Embedded {
        l3: EmbeddedL3::Ipv4(quoted_ipv4(protocol::UDP)),
        ulp: [0x14, 0xe9, 0x00, 0x35, 0x02, 0x40, 0xab, 0xcd],
    });
    Sample::new("icmp4-unreach", fb, b"")
}

pub fn tcp6() -> Sample {
    let t = tcp(
        49154,
        80,
        tcp_flags::ACK,
        &[TcpOption::Timestamps { val: 7, ecr: 9 }, TcpOption::Nop, TcpOption::Nop],
    );
    Sample::new(
        "tcp6",
        guest_fb(L3::Ipv6(ipv6(GUEST_V6, REMOTE_V6)), Some(L4::Tcp(t))),
        b"GET / HTTP/1.1\r\n\r\n",
    )
}

pub fn udp6_ext() -> Sample {
    let ip = with_ext(
        ipv6(GUEST_V6, REMOTE_V6),
        &[Ipv6Ext::HopByHop { len: 8 }, Ipv6Ext::DestOpts { len: 16 }],
    );
    Sample::new(
        "udp6+ext",
        guest_fb(L3::Ipv6(ip), Some(L4::Udp(udp(40000, 4789)))),
        b"odd-length body",
    )
}

pub fn udp6_first_fragment() -> Sample {
    let frag = Ipv6Frag { offset: 0, more: true, ident: 0xdead_beef };
    let ip = with_ext(ipv6(GUEST_V6, REMOTE_V6), &[Ipv6Ext::Fragment(frag)]);
    Sample::new("udp6-frag0", guest_fb(L3::Ipv6(ip), Some(L4::Udp(udp(40001, 9999)))), &[0x5a; 24])
}

pub fn icmp6_echo() -> Sample {
    let i = icmp(icmpv6_type::ECHO_REPLY, 0, [0x77, 0x01, 0x00, 0x2a]);
    Sample::new(
        "icmp6-echo",
        guest_fb(L3::Ipv6(ipv6(GUEST_V6, REMOTE_V6)), Some(L4::Icmpv6(i))),
        b"abcdefgh",
    )
}

/// The IPv6 header a quoted packet had.
pub fn quoted_ipv6(proto: u8) -> Ipv6Hdr {
    let mut q = ipv6(REMOTE_V6, GUEST_V6);
    q.proto = proto;
    q.next_hdr = proto;
    q.payload_len = 1400;
    q
}

pub fn icmp6_too_big() -> Sample {
    let i = icmp(icmpv6_type::PACKET_TOO_BIG, 0, 1280u32.to_be_bytes());
    let mut fb = guest_fb(L3::Ipv6(ipv6(GUEST_V6, REMOTE_V6)), Some(L4::Icmpv6(i)));
    fb.embedded = Some(Embedded {
        l3: EmbeddedL3::Ipv6(quoted_ipv6(protocol::TCP)),
        ulp: [0x00, 0x50, 0xc0, 0x02, 0, 0, 0, 1],
    });
    Sample::new("icmp6-too-big", fb, b"")
}

fn ndp_fb(src: Ipv6Addr, dst: Ipv6Addr, msg: NdpMsg) -> FrameBuilder {
    let mut ip = ipv6(src, dst);
    ip.hop_limit = 255;
    let mut fb = guest_fb(L3::Ipv6(ip), Some(L4::Icmpv6(icmp(0, 0, [0; 4]))));
    fb.ndp = Some(msg);
    fb
}

/// Router solicitation with a source link-layer address.
pub fn ndp_rs() -> Sample {
    let opts = NdpOptions { src_lla: Some(GUEST_MAC), ..Default::default() };
    let all_routers = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
    Sample::new("ndp-rs", ndp_fb(LINK_LOCAL, all_routers, NdpMsg::RouterSolicit { opts }), b"")
}

/// The prefix information the gateway advertises.
pub fn prefix_info() -> PrefixInfo {
    PrefixInfo {
        prefix_len: 64,
        flags: 0xc0,
        valid_lifetime: 86_400,
        preferred_lifetime: 14_400,
        prefix: Ipv6Addr::new(0xfd00, 0x1122, 0x3344, 0x0101, 0, 0, 0, 0),
    }
}

/// Router advertisement with every option the parser reads.
pub fn ndp_ra() -> Sample {
    let opts = NdpOptions {
        src_lla: Some(GW_MAC),
        tgt_lla: None,
        mtu: Some(1500),
        prefix: Some(prefix_info()),
        skipped: 0,
    };
    let msg = NdpMsg::RouterAdvert {
        cur_hop_limit: 64,
        flags: 0x40,
        router_lifetime: 9000,
        reachable_time: 30_000,
        retrans_timer: 1000,
        opts,
    };
    Sample::new("ndp-ra", ndp_fb(LINK_LOCAL, Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1), msg), b"")
}

/// Neighbor solicitation for the gateway with a source link-layer address.
pub fn ndp_ns() -> Sample {
    let opts = NdpOptions { src_lla: Some(GUEST_MAC), ..Default::default() };
    let target = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    let msg = NdpMsg::NeighborSolicit { target, opts };
    let solicited = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 1);
    Sample::new("ndp-ns", ndp_fb(LINK_LOCAL, solicited, msg), b"")
}

/// Neighbor advertisement with a target link-layer address.
pub fn ndp_na() -> Sample {
    let opts = NdpOptions { tgt_lla: Some(GUEST_MAC), ..Default::default() };
    let msg = NdpMsg::NeighborAdvert { flags: NA_SOLICITED, target: LINK_LOCAL, opts };
    Sample::new("ndp-na", ndp_fb(LINK_LOCAL, Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1), msg), b"")
}

pub fn arp_request() -> Sample {
    let arp = ArpEthIpv4 {
        op: 1,
        sha: GUEST_MAC,
        spa: GUEST_V4,
        tha: MacAddr::ZERO,
        tpa: Ipv4Addr::new(172, 30, 0, 1),
    };
    let mut fb = guest_fb(L3::Arp(arp), None);
    fb.eth.dst = MacAddr::BROADCAST;
    Sample::new("arp", fb, b"")
}

/// A later IPv4 fragment: no transport header.
pub fn ip4_later_fragment() -> Sample {
    let mut ip = ipv4(GUEST_V4, REMOTE_V4);
    ip.flags_frag = 185; // offset 1480 bytes, last fragment
    ip.proto = protocol::UDP;
    Sample::new("ip4-frag1", guest_fb(L3::Ipv4(ip), None), &[0xa5; 40])
}

/// An IPv4 protocol the parser doesn't carry (GRE).
pub fn ip4_gre() -> Sample {
    let mut ip = ipv4(GUEST_V4, REMOTE_V4);
    ip.proto = 47;
    Sample::new("ip4-gre", guest_fb(L3::Ipv4(ip), None), &[0, 0, 0x65, 0x58, 1, 2, 3, 4])
}

/// Every guest frame kind.
pub fn guest_samples() -> Vec<Sample> {
    vec![
        tcp4(),
        tcp4_ip_options(),
        udp4(),
        icmp4_echo(),
        icmp4_unreach(),
        tcp6(),
        udp6_ext(),
        udp6_first_fragment(),
        icmp6_echo(),
        icmp6_too_big(),
        ndp_rs(),
        ndp_ra(),
        ndp_ns(),
        ndp_na(),
        arp_request(),
        ip4_later_fragment(),
        ip4_gre(),
    ]
}

/// Every underlay frame kind: each inner transport and several option sets.
pub fn underlay_samples() -> Vec<Sample> {
    let mss = GeneveOptions { mss: Some(1448), ..Default::default() };
    let ext = GeneveOptions { external: true, ..Default::default() };
    let all = GeneveOptions {
        external: true,
        multicast: Some(Replication::Underlay),
        mss: Some(8948),
        skipped: 0,
    };
    vec![
        tcp4().encapsulated("geneve-tcp4", encap(0x00_1234, GeneveOptions::default())),
        tcp4_ip_options().encapsulated("geneve-tcp4+ipopts", encap(77, mss)),
        udp4().encapsulated("geneve-udp4", encap(0xff_ffff, ext)),
        icmp4_unreach().encapsulated("geneve-icmp4-unreach", encap(5, all)),
        tcp6().encapsulated("geneve-tcp6", encap(6, mss)),
        udp6_ext().encapsulated("geneve-udp6+ext", encap(7, all)),
        icmp6_echo().encapsulated("geneve-icmp6-echo", encap(8, ext)),
        ndp_na().encapsulated("geneve-ndp-na", encap(9, GeneveOptions::default())),
    ]
}

/// A message holding `bytes` split into blocks at the offsets `cuts`
/// (ascending; a repeated cut makes an empty block), each block with
/// `headroom` free bytes in front.
pub fn chain(bytes: &[u8], cuts: &[usize], headroom: usize) -> MsgBlk {
    let mut segs = Vec::with_capacity(cuts.len() + 1);
    let mut at = 0;
    for &c in cuts {
        segs.push(&bytes[at..c]);
        at = c;
    }
    segs.push(&bytes[at..]);
    let mp = fakekernel::msg::chain_from_segments(&segs, headroom);
    // SAFETY: chain_from_segments returns a fresh message nothing else
    // holds (or NULL, which wrap refuses).
    unsafe { MsgBlk::wrap(mp) }.expect("allocation")
}

/// A single-block message holding `bytes` with `headroom` free in front.
pub fn msg(bytes: &[u8], headroom: usize) -> MsgBlk {
    MsgBlk::from_bytes(headroom, bytes).expect("allocation")
}

/// Parse a guest frame, panicking with the reason on failure.
pub fn parse_guest(m: MsgBlk) -> Packet {
    Packet::parse_guest(m).map_err(|f| f.error).expect("guest frame parses")
}

/// Parse an underlay frame, panicking with the reason on failure.
pub fn parse_underlay(m: MsgBlk) -> Packet {
    Packet::parse_underlay(m).map_err(|f| f.error).expect("underlay frame parses")
}

/// Deterministic pseudo-random numbers (SplitMix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    /// Up to `max_cuts` ascending cut points in `0..=len` (repeats allowed).
    pub fn cuts(&mut self, len: usize, max_cuts: usize) -> Vec<usize> {
        let n = self.below(max_cuts + 1);
        let mut c: Vec<usize> = (0..n).map(|_| self.below(len + 1)).collect();
        c.sort_unstable();
        c
    }
}

/// The ones'-complement sum of `parts` as 16-bit big-endian words,
/// folded to 16 bits. Only the last part may have an odd length (it is
/// padded with a zero byte).
pub fn ones_sum(parts: &[&[u8]]) -> u16 {
    let mut s: u64 = 0;
    for p in parts {
        for w in p.chunks(2) {
            s += (u64::from(w[0]) << 8) | u64::from(*w.get(1).unwrap_or(&0));
        }
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The Internet checksum to store for `parts` (checksum field zero).
pub fn inet_csum(parts: &[&[u8]]) -> u16 {
    !ones_sum(parts)
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn pseudo4(ip: &[u8], proto: u8, len: usize) -> Vec<u8> {
    let mut p = ip[12..20].to_vec();
    p.extend_from_slice(&[0, proto]);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p
}

fn pseudo6(ip: &[u8], proto: u8, len: usize) -> Vec<u8> {
    let mut p = ip[8..40].to_vec();
    p.extend_from_slice(&(len as u32).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, proto]);
    p
}

/// Where a frame's IP packet lies, found by walking its bytes.
#[derive(Debug, Clone, Copy)]
pub struct IpSpan {
    pub l3: usize,
    pub v6: bool,
    /// Upper-layer protocol.
    pub proto: u8,
    pub l4: usize,
    /// End of the IP payload.
    pub end: usize,
    /// A fragment (the transport checksum covers other packets too).
    pub fragment: bool,
}

/// Walk the IP header at `l3` (IPv4, or IPv6 and its extension headers).
pub fn ip_span(f: &[u8], l3: usize) -> IpSpan {
    if f[l3] >> 4 == 4 {
        let ihl = usize::from(f[l3] & 0xf) * 4;
        let ff = be16(f, l3 + 6);
        IpSpan {
            l3,
            v6: false,
            proto: f[l3 + 9],
            l4: l3 + ihl,
            end: l3 + usize::from(be16(f, l3 + 2)),
            fragment: ff & 0x3fff != 0,
        }
    } else {
        let end = l3 + 40 + usize::from(be16(f, l3 + 4));
        let mut nh = f[l3 + 6];
        let mut at = l3 + 40;
        let mut fragment = false;
        while matches!(nh, 0 | 43 | 44 | 60) {
            fragment |= nh == 44;
            let len = if nh == 44 { 8 } else { (usize::from(f[at + 1]) + 1) * 8 };
            nh = f[at];
            at += len;
        }
        IpSpan { l3, v6: true, proto: nh, l4: at, end, fragment }
    }
}

/// Every checksum of a frame that doesn't verify, described; empty when
/// all do. `underlay`: the frame is Geneve-encapsulated (the outer UDP
/// checksum may be zero). Walks the bytes itself (no `opte` code).
pub fn checksum_problems(f: &[u8], underlay: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut inner = 0;
    if underlay {
        let s = ip_span(f, 14);
        let udp = &f[s.l4..s.end];
        if be16(udp, 6) != 0 && ones_sum(&[&pseudo6(&f[14..], 17, udp.len()), udp]) != 0xffff {
            out.push("outer UDP checksum".to_string());
        }
        inner = s.l4 + 8 + 8 + usize::from(udp[8] & 0x3f) * 4;
    }
    let ty = be16(f, inner + 12);
    if ty != 0x0800 && ty != 0x86dd {
        return out;
    }
    let s = ip_span(f, inner + 14);
    if !s.v6 && ones_sum(&[&f[s.l3..s.l4]]) != 0xffff {
        out.push("IPv4 header checksum".to_string());
    }
    if s.fragment {
        return out;
    }
    let l4 = &f[s.l4..s.end];
    let ip = &f[s.l3..];
    let pseudo = if s.v6 { pseudo6(ip, s.proto, l4.len()) } else { pseudo4(ip, s.proto, l4.len()) };
    match (s.proto, s.v6) {
        (6, _) | (58, true) if ones_sum(&[&pseudo, l4]) != 0xffff => {
            out.push(format!("protocol {} checksum", s.proto));
        }
        (17, _) => {
            let ck = be16(l4, 6);
            if s.v6 && ck == 0 {
                out.push("UDP/IPv6 checksum zero".to_string());
            } else if ck != 0 && ones_sum(&[&pseudo, l4]) != 0xffff {
                out.push("UDP checksum".to_string());
            }
        }
        (1, false) => {
            if ones_sum(&[l4]) != 0xffff {
                out.push("ICMPv4 checksum".to_string());
            }
            if matches!(l4[0], 3 | 4 | 5 | 11 | 12) {
                let q = &l4[8..];
                let ihl = usize::from(q[0] & 0xf) * 4;
                if ones_sum(&[&q[..ihl]]) != 0xffff {
                    out.push("quoted IPv4 header checksum".to_string());
                }
            }
        }
        _ => {}
    }
    out
}

/// Assert every checksum of `f` verifies.
#[track_caller]
pub fn assert_checksums(f: &[u8], underlay: bool, what: &str) {
    let p = checksum_problems(f, underlay);
    assert!(p.is_empty(), "{what}: bad {p:?}");
}
