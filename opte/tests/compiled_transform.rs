//! The compiled fast path of a flow's transformation ([`HeaderPatch`],
//! via [`CompiledTransform`]) writes exactly the bytes the general path
//! does (field changes, then `Packet::emit`), for random flows, random
//! translations and every offload flag combination; and it declines, to
//! the same result, for packets it does not handle (split headers,
//! shared blocks).

use opte::ddi::MsgBlk;
use opte::engine::flow::FlowId;
use opte::engine::transform::{CompiledTransform, EtherMod, HdrTransform, IpMod, OuterOp, UlpMod};
use opte::packet::*;
use opte_api::{Ipv4Addr, Ipv6Addr, MacAddr, Vni};

use illumos_sys_hdrs::{HCK_FULLCKSUM, HCK_IPV4_HDRCKSUM, HCK_PARTIALCKSUM};

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
    fn mac(&mut self) -> MacAddr {
        let b = self.next().to_be_bytes();
        MacAddr::from_bytes([b[0] & 0xfe, b[1], b[2], b[3], b[4], b[5]])
    }
    fn v4(&mut self) -> Ipv4Addr {
        Ipv4Addr::from(self.next() as u32)
    }
    fn v6(&mut self) -> Ipv6Addr {
        Ipv6Addr::from(((self.next() as u128) << 64) | self.next() as u128)
    }
}

fn frame(r: &mut Rng) -> FrameBuilder {
    let mut b = FrameBuilder::new(EtherHdr { dst: r.mac(), src: r.mac(), ether_type: 0 });
    let v6 = r.coin();
    b.l3 = Some(if v6 {
        L3::Ipv6(Ipv6Hdr { hop_limit: 64, src: r.v6(), dst: r.v6(), ..Ipv6Hdr::EMPTY })
    } else {
        L3::Ipv4(Ipv4Hdr {
            ttl: 64,
            src: r.v4(),
            dst: r.v4(),
            ident: r.next() as u16,
            ..Ipv4Hdr::EMPTY
        })
    });
    b.l4 = Some(match r.below(3) {
        0 => L4::Tcp(TcpHdr {
            src_port: r.next() as u16,
            dst_port: r.next() as u16,
            seq: r.next() as u32,
            flags: 0x10,
            window: 100,
            ..TcpHdr::EMPTY
        }),
        1 => L4::Udp(UdpHdr {
            src_port: r.next() as u16,
            dst_port: r.next() as u16,
            len: 0,
            csum: 0,
        }),
        _ => {
            let mut i = IcmpHdr { ty: if v6 { 128 } else { 8 }, code: 0, csum: 0, rest: [0; 4] };
            i.set_echo_id(r.next() as u16);
            if v6 { L4::Icmpv6(i) } else { L4::Icmpv4(i) }
        }
    });
    b
}

fn xform(r: &mut Rng, v6: bool) -> HdrTransform {
    let opt = |r: &mut Rng| r.coin();
    let mut x = HdrTransform::NONE;
    if opt(r) {
        x.inner_eth =
            EtherMod { src: Some(r.mac()), dst: if r.coin() { Some(r.mac()) } else { None } };
    }
    if opt(r) {
        x.inner_ip = Some(if v6 {
            IpMod::V6 { src: r.coin().then(|| r.v6()), dst: r.coin().then(|| r.v6()) }
        } else {
            IpMod::V4 { src: r.coin().then(|| r.v4()), dst: r.coin().then(|| r.v4()) }
        });
    }
    if opt(r) {
        x.inner_ulp = UlpMod {
            src_port: r.coin().then(|| r.next() as u16),
            dst_port: r.coin().then(|| r.next() as u16),
            icmp_id: r.coin().then(|| r.next() as u16),
        };
    }
    if r.below(4) == 0 {
        x.outer = OuterOp::Push(std::sync::Arc::new(Encap {
            eth: EtherHdr { dst: r.mac(), src: r.mac(), ether_type: 0 },
            ip6: Ipv6Hdr { hop_limit: 64, src: r.v6(), dst: r.v6(), ..Ipv6Hdr::EMPTY },
            udp: UdpHdr { src_port: r.next() as u16, dst_port: 6081, len: 0, csum: 0 },
            geneve: GeneveHdr::new(Vni::new(77).unwrap(), GeneveOptions::default()),
        }));
    }
    x
}

fn packet(bytes: &[u8], cuts: &[usize], headroom: usize, flags: u16) -> Packet {
    packet_from(bytes, cuts, headroom, flags, false)
}

/// A packet of `bytes`, parsed as an underlay frame when `underlay`.
fn packet_from(
    bytes: &[u8],
    cuts: &[usize],
    headroom: usize,
    flags: u16,
    underlay: bool,
) -> Packet {
    let mut segs = Vec::new();
    let mut prev = 0;
    for &c in cuts {
        segs.push(&bytes[prev..c]);
        prev = c;
    }
    segs.push(&bytes[prev..]);
    let mp = fakekernel::msg::chain_from_segments(&segs, headroom);
    let mut m = unsafe { MsgBlk::wrap(mp) }.unwrap();
    m.set_offload_flags(flags).unwrap();
    if underlay {
        Packet::parse_underlay(m).map_err(|f| f.error).unwrap()
    } else {
        Packet::parse_guest(m).map_err(|f| f.error).unwrap()
    }
}

#[test]
fn compiled_and_general_paths_write_the_same_bytes() {
    let k = fakekernel::scope();
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let flag_sets = [
        0,
        HCK_FULLCKSUM,
        HCK_PARTIALCKSUM,
        HCK_IPV4_HDRCKSUM,
        HCK_PARTIALCKSUM | HCK_IPV4_HDRCKSUM,
    ];
    let mut fast = 0;
    let mut pops = 0;
    for case in 0..4000 {
        let mut fb = frame(&mut r);
        let v6 = matches!(fb.l3, Some(L3::Ipv6(_)));
        let mut x = xform(&mut r, v6);
        // Sometimes an inbound frame: remove its encapsulation, then the
        // inner changes.
        let pop = x.outer == OuterOp::Keep && r.below(3) == 0;
        if pop {
            fb.outer = Some(Encap {
                eth: EtherHdr { dst: r.mac(), src: r.mac(), ether_type: 0 },
                ip6: Ipv6Hdr { hop_limit: 64, src: r.v6(), dst: r.v6(), ..Ipv6Hdr::EMPTY },
                udp: UdpHdr { src_port: r.next() as u16, dst_port: 6081, len: 0, csum: 0 },
                geneve: GeneveHdr::new(Vni::new(77).unwrap(), GeneveOptions::default()),
            });
            x.outer = OuterOp::Pop;
        }
        let bytes = fb.to_bytes(b"payload bytes!");
        let flags = flag_sets[r.below(flag_sets.len() as u64) as usize];
        // Mostly one block; sometimes split inside the headers.
        let cuts: Vec<usize> =
            if r.below(5) == 0 { vec![1 + r.below(50) as usize] } else { vec![] };
        let headroom = if r.coin() { 128 } else { 0 };

        let mut general = packet_from(&bytes, &cuts, headroom, flags, pop);
        let mut compiled = packet_from(&bytes, &cuts, headroom, flags, pop);
        let flow = FlowId::from_headers(compiled.headers()).unwrap();
        let hdr_end = compiled.headers().offsets.body as usize;
        let one_block = cuts.iter().all(|&c| c >= hdr_end);
        let c = CompiledTransform::compile(x.clone(), &flow);
        assert!(c.has_patch(), "case {case}: simple transformations compile");
        x.apply(&mut general).unwrap();
        let took_fast = c.apply(&mut compiled).unwrap();
        if !pop {
            assert_eq!(
                took_fast, one_block,
                "case {case}: fast path exactly when the headers are in one block"
            );
        }
        pops += usize::from(pop && took_fast);
        fast += usize::from(took_fast);
        assert_eq!(
            compiled.mblk().to_vec(),
            general.mblk().to_vec(),
            "case {case}: {x:?} flags {flags:#x}"
        );
        assert_eq!(compiled.headers(), general.headers(), "case {case}: header values");
    }
    assert!(fast > 3000);
    assert!(pops > 800, "removing encapsulation takes the fast path ({pops})");
    k.assert_clean();
}

#[test]
fn the_fast_path_declines_what_it_does_not_handle() {
    let k = fakekernel::scope();
    let mut r = Rng(7);
    let fb = frame(&mut r);
    let bytes = fb.to_bytes(b"x");
    let mut p = packet(&bytes, &[20], 0, 0);
    let flow = FlowId::from_headers(p.headers()).unwrap();
    let x = HdrTransform {
        inner_eth: EtherMod { src: Some(r.mac()), dst: None },
        ..HdrTransform::NONE
    };
    let c = CompiledTransform::compile(x.clone(), &flow);
    assert!(c.has_patch());
    // Split inside the IP header: the patch declines, nothing changed.
    let patch_from = PatchFrom {
        src: flow.src_ip(),
        dst: flow.dst_ip(),
        src_port: flow.src_port,
        dst_port: flow.dst_port,
        proto: flow.proto,
    };
    let patch = HeaderPatch::compile(
        &patch_from,
        &PatchTo { eth_src: x.inner_eth.src, ..Default::default() },
    )
    .unwrap();
    assert_eq!(p.apply_patch(&patch), Ok(false));
    assert_eq!(p.mblk().to_vec(), bytes);
    // And the compiled transformation still applies (general path).
    assert_eq!(c.apply(&mut p), Ok(false));
    assert_eq!(p.headers().eth.src, x.inner_eth.src.unwrap());
    // A shared first block declines too.
    let mut q = packet(&bytes, &[], 0, 0);
    let dup = unsafe { illumos_sys_hdrs::dupb(q.mblk().as_ptr()) };
    assert_eq!(q.apply_patch(&patch), Ok(false));
    assert_eq!(c.apply(&mut q), Ok(false));
    let other = unsafe { MsgBlk::wrap(dup) }.unwrap();
    assert_eq!(other.to_vec(), bytes, "the other holder's bytes are untouched");
    // An address of the other family does not compile.
    let wrong =
        PatchTo { ip_src: Some(std::net::IpAddr::V6(Ipv6Addr::LOCALHOST)), ..Default::default() };
    let v4from = PatchFrom { src: Ipv4Addr::LOCALHOST.into(), ..patch_from };
    assert!(HeaderPatch::compile(&v4from, &wrong).is_none());
    drop((p, q, other));
    k.assert_clean();
}

/// An ICMP error for a translated flow: the outer destination and the
/// quoted source are translated back (RFC 5508), the flow compiles to the
/// general path, and every checksum (outer IPv4, ICMP, quoted IPv4) is
/// what a full computation gives.
#[test]
fn icmp_error_quotes_are_translated_on_the_general_path() {
    use opte::engine::transform::BodyMod;
    let k = fakekernel::scope();
    let guest = Ipv4Addr::new(10, 0, 0, 5);
    let nat = Ipv4Addr::new(203, 0, 113, 1);
    let router = Ipv4Addr::new(198, 51, 100, 1);
    // What the router sent back for the guest's NATed UDP datagram
    // (203.0.113.1:1024 -> 198.51.100.7:53).
    let mut fb = FrameBuilder::new(EtherHdr {
        dst: MacAddr::from_bytes([2, 0, 0, 0, 0, 1]),
        src: MacAddr::from_bytes([2, 0, 0, 0, 0, 2]),
        ether_type: 0,
    });
    fb.l3 = Some(L3::Ipv4(Ipv4Hdr { ttl: 60, src: router, dst: nat, ..Ipv4Hdr::EMPTY }));
    fb.l4 = Some(L4::Icmpv4(IcmpHdr { ty: 3, code: 3, csum: 0, rest: [0; 4] }));
    let quoted = Ipv4Hdr {
        total_len: 40,
        ttl: 1,
        proto: 17,
        src: nat,
        dst: Ipv4Addr::new(198, 51, 100, 7),
        ..Ipv4Hdr::EMPTY
    };
    let mut quoted = quoted;
    quoted.csum = quoted.compute_csum();
    let mut ulp = [0u8; 8];
    ulp[..2].copy_from_slice(&1024u16.to_be_bytes());
    ulp[2..4].copy_from_slice(&53u16.to_be_bytes());
    fb.embedded = Some(Embedded { l3: EmbeddedL3::Ipv4(quoted), ulp });
    let bytes = fb.to_bytes(&[]);
    let mut p = packet(&bytes, &[], 0, 0);
    let flow = FlowId::from_headers(p.headers()).unwrap();
    let x = HdrTransform {
        inner_ip: Some(IpMod::V4 { src: None, dst: Some(guest) }),
        body: Some(BodyMod {
            ip: Some(IpMod::V4 { src: Some(guest), dst: None }),
            ulp: UlpMod { src_port: Some(5000), ..Default::default() },
        }),
        ..HdrTransform::NONE
    };
    let c = CompiledTransform::compile(x, &flow);
    assert!(!c.has_patch(), "quote translation takes the general path");
    assert_eq!(c.apply(&mut p), Ok(false));
    let h = p.headers();
    let Some(L3::Ipv4(ip)) = &h.l3 else { panic!() };
    assert_eq!(ip.dst, guest);
    let e = h.embedded.unwrap();
    let EmbeddedL3::Ipv4(q) = e.l3 else { panic!() };
    assert_eq!((q.src, e.src_port()), (guest, 5000));
    // Every checksum equals a full computation (the quoted header's too).
    assert_eq!(q.csum, q.compute_csum());
    let out = p.mblk().to_vec();
    let mut again = Packet::parse_guest(MsgBlk::from_bytes(0, &out).unwrap()).unwrap();
    again.compute_checksums().unwrap();
    assert_eq!(again.mblk().to_vec(), out, "incremental checksums equal full ones");
    drop((p, again));
    k.assert_clean();
}

/// An ICMP message that is not an echo shares its flow key (ports 0)
/// with an echo of id 0: a flow compiled from the echo, with a new echo
/// id, must leave the other message's bytes 4..6 alone on the fast path
/// as the general path does, checksum included.
#[test]
fn an_echo_id_change_leaves_other_icmp_messages_alone() {
    let k = fakekernel::scope();
    let mk = |ty: u8, rest: [u8; 4]| {
        let mut b = FrameBuilder::new(EtherHdr {
            dst: MacAddr::from_bytes([2, 0, 0, 0, 0, 1]),
            src: MacAddr::from_bytes([2, 0, 0, 0, 0, 2]),
            ether_type: 0,
        });
        b.l3 = Some(L3::Ipv4(Ipv4Hdr {
            ttl: 64,
            src: Ipv4Addr::new(10, 0, 0, 5),
            dst: Ipv4Addr::new(198, 51, 100, 7),
            ..Ipv4Hdr::EMPTY
        }));
        b.l4 = Some(L4::Icmpv4(IcmpHdr { ty, code: 0, csum: 0, rest }));
        b.to_bytes(&[0u8; 12])
    };
    // The flow, as an echo request with id 0 keys it.
    let echo = packet(&mk(8, [0, 0, 0, 1]), &[], 0, 0);
    let flow = FlowId::from_headers(echo.headers()).unwrap();
    let x = HdrTransform {
        inner_ip: Some(IpMod::V4 { src: Some(Ipv4Addr::new(203, 0, 113, 1)), dst: None }),
        inner_ulp: UlpMod { icmp_id: Some(0x1234), ..Default::default() },
        ..HdrTransform::NONE
    };
    let c = CompiledTransform::compile(x.clone(), &flow);
    assert!(c.has_patch());
    // A timestamp request (type 13) with identifier 0xabcd, same key.
    let bytes = mk(13, [0xab, 0xcd, 0, 7]);
    let mut general = packet(&bytes, &[], 0, 0);
    let mut compiled = packet(&bytes, &[], 0, 0);
    assert_eq!(FlowId::from_headers(compiled.headers()), Some(flow));
    x.apply(&mut general).unwrap();
    c.apply(&mut compiled).unwrap();
    assert_eq!(compiled.mblk().to_vec(), general.mblk().to_vec());
    assert_eq!(compiled.headers(), general.headers());
    let out = compiled.mblk().to_vec();
    let mut again = Packet::parse_guest(MsgBlk::from_bytes(0, &out).unwrap()).unwrap();
    again.compute_checksums().unwrap();
    assert_eq!(again.mblk().to_vec(), out, "checksums are right");
    drop((echo, general, compiled, again));
    k.assert_clean();
}
