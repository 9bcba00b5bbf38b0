//! A first end-to-end check: build, split, parse, change, emit.

use opte::ddi::MsgBlk;
use opte::packet::*;
use opte_api::{Ipv4Addr, MacAddr};

fn tcp4() -> FrameBuilder {
    let mut b = FrameBuilder::new(EtherHdr {
        dst: MacAddr::from_bytes([2, 0, 0, 0, 0, 1]),
        src: MacAddr::from_bytes([2, 0, 0, 0, 0, 2]),
        ether_type: 0,
    });
    let (ip, _) = Ipv4Hdr::parse_fixed(&[
        0x45, 0, 0, 20, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ])
    .unwrap();
    b.l3 = Some(L3::Ipv4(ip));
    let (tcp, _) = TcpHdr::parse_fixed(&[
        0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ])
    .unwrap();
    b.l4 = Some(L4::Tcp(tcp));
    b
}

#[test]
fn parse_split_emit() {
    let k = fakekernel::scope();
    let bytes = tcp4().to_bytes(b"hello");
    for split in 0..bytes.len() {
        let (a, b) = bytes.split_at(split);
        let mp = fakekernel::msg::chain_from_segments(&[a, b], 0);
        let m = unsafe { MsgBlk::wrap(mp) }.unwrap();
        let mut p = Packet::parse_guest(m).map_err(|f| f.error).unwrap();
        let Some(L3::Ipv4(ip)) = &mut p.headers_mut().l3 else { panic!() };
        ip.src = Ipv4Addr::new(192, 168, 7, 9);
        let Some(L4::Tcp(t)) = &mut p.headers_mut().l4 else { panic!() };
        t.src_port = 1234;
        p.emit().unwrap();
        let out = p.mblk().to_vec();
        let ep = etherparse::SlicedPacket::from_ethernet(&out).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip4)) = ep.net else { panic!() };
        assert_eq!(ip4.header().source(), [192, 168, 7, 9]);
        let h = ip4.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        let Some(etherparse::TransportSlice::Tcp(t)) = ep.transport else { panic!() };
        let th = t.to_header();
        assert_eq!(th.source_port, 1234);
        assert_eq!(th.checksum, th.calc_checksum_ipv4(&h, t.payload()).unwrap(), "split {split}");
    }
    k.assert_clean();
}

/// Found by the `parse-guest` fuzz target: writing back unchanged headers
/// turned an (invalid) all-ones IPv4 header checksum into zero, because an
/// incremental update by "nothing" added ones'-complement negative zero.
/// Unchanged headers must leave every byte as it was.
#[test]
fn unchanged_emit_leaves_invalid_checksums_alone() {
    let k = fakekernel::scope();
    let mut bytes = tcp4().to_bytes(b"x");
    // IPv4 header checksum (bytes 24..26) and TCP checksum (50..52).
    for (at, v) in [(24, [0xff, 0xff]), (50, [0xff, 0xff]), (24, [0, 0]), (50, [0, 0])] {
        bytes[at..at + 2].copy_from_slice(&v);
        let m = MsgBlk::from_bytes(0, &bytes).unwrap();
        let mut p = Packet::parse_guest(m).map_err(|f| f.error).unwrap();
        p.emit().unwrap();
        assert_eq!(p.mblk().to_vec(), bytes, "checksum bytes {v:?} at {at}");
    }
    k.assert_clean();
}

/// An IPv6 "atomic fragment" (fragment header, offset 0, no more
/// fragments) is a whole packet (RFC 6946): its NDP message is read and
/// its transport checksum is computed like any other.
#[test]
fn ipv6_atomic_fragment_is_a_whole_packet() {
    let k = fakekernel::scope();
    let mut b = FrameBuilder::new(EtherHdr {
        dst: MacAddr::from_bytes([0x33, 0x33, 0, 0, 0, 1]),
        src: MacAddr::from_bytes([2, 0, 0, 0, 0, 2]),
        ether_type: 0,
    });
    let mut ip = Ipv6Hdr::parse_fixed(&{
        let mut f = [0u8; 40];
        f[0] = 0x60;
        f[7] = 255;
        f[8] = 0xfe;
        f[9] = 0x80;
        f[23] = 2;
        f[24] = 0xff;
        f[25] = 0x02;
        f[39] = 1;
        f
    })
    .unwrap();
    ip.ext.push(Ipv6Ext::Fragment(Ipv6Frag { offset: 0, more: false, ident: 9 })).unwrap();
    b.l3 = Some(L3::Ipv6(ip));
    let target = "fe80::1".parse().unwrap();
    let opts = NdpOptions { src_lla: Some(b.eth.src), ..Default::default() };
    b.ndp = Some(NdpMsg::NeighborSolicit { target, opts });
    b.l4 = Some(L4::Icmpv6(IcmpHdr { ty: 0, code: 0, csum: 0, rest: [0; 4] }));
    let bytes = b.to_bytes(&[]);
    let m = MsgBlk::from_bytes(0, &bytes).unwrap();
    let p = Packet::parse_guest(m).map_err(|f| f.error).unwrap();
    assert_eq!(p.headers().ndp, b.ndp, "NDP read from an atomic fragment");
    // Spoil the ICMPv6 checksum: a whole packet gets it recomputed.
    let at = p.headers().offsets.l4 as usize + 2;
    let mut spoiled = bytes.clone();
    spoiled[at] ^= 0xff;
    drop(p);
    let mut p = Packet::parse_guest(MsgBlk::from_bytes(0, &spoiled).unwrap()).unwrap();
    p.compute_checksums().unwrap();
    assert_eq!(p.mblk().to_vec(), bytes);
    drop(p);
    k.assert_clean();
}

/// Flow tables are seeded from the kernel's random generator: seeds
/// differ per draw (so two tables, and two boots, hash differently).
#[test]
fn random_seeds_differ() {
    let k = fakekernel::scope();
    let seeds: std::collections::BTreeSet<u64> =
        (0..16).map(|_| opte::ddi::random::seed()).collect();
    assert_eq!(seeds.len(), 16);
    k.assert_clean();
}
