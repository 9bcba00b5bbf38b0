//! Writing packets back: what `Packet::emit`, `compute_checksums`,
//! `push_encap` and `pop_encap` do to the bytes, the blocks, shared data
//! blocks and the offload flags. Expected frames come from `FrameBuilder`
//! (which computes every checksum in full) and from the independent
//! checksum walk in `frames`, never from the emitter itself.

mod frames;

use frames::*;
use illumos_sys_hdrs::{
    HCK_FULLCKSUM, HCK_FULLCKSUM_OK, HCK_IPV4_HDRCKSUM, HCK_PARTIALCKSUM, HW_LSO, dupb, freeb,
    mblk_t,
};
use opte::ddi::MsgBlk;
use opte::packet::*;
use opte_api::{Ipv4Addr, Ipv6Addr, MacAddr};

const NAT_V4: Ipv4Addr = Ipv4Addr::new(45, 154, 216, 9);
const NAT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 9);
const NAT_PORT: u16 = 40404;

/// The rewrite a NAT makes on the way out: the source address and port
/// (or ICMP echo id). Applied alike to built and parsed headers.
fn nat(l3: &mut Option<L3>, l4: &mut Option<L4>) {
    match l3 {
        Some(L3::Ipv4(ip)) => ip.src = NAT_V4,
        Some(L3::Ipv6(ip)) => ip.src = NAT_V6,
        Some(L3::Arp(a)) => a.spa = NAT_V4,
        None => {}
    }
    match l4 {
        Some(L4::Tcp(t)) => t.src_port = NAT_PORT,
        Some(L4::Udp(u)) => u.src_port = NAT_PORT,
        Some(L4::Icmpv4(i)) if i.is_v4_echo() => i.set_echo_id(0x4242),
        Some(L4::Icmpv6(i)) if i.is_v6_echo() => i.set_echo_id(0x4242),
        _ => {}
    }
}

/// A new destination sled for encapsulated frames.
fn resteer(enc: &mut Encap) {
    enc.eth.dst = MacAddr::from_bytes([0xa8, 0x40, 0x25, 0, 0, 0x0c]);
    enc.ip6.dst = Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 0xc);
}

fn sample_pkt(s: &Sample, headroom: usize) -> Packet {
    let m = s.fb.to_mblk(headroom, &s.body).expect("allocation");
    if s.fb.outer.is_some() { parse_underlay(m) } else { parse_guest(m) }
}

fn with_flags(mut m: MsgBlk, flags: u16) -> MsgBlk {
    m.set_offload_flags(flags).expect("allocation");
    m
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Headers with `straddled` cleared, to compare parses of different
/// block layouts.
fn unstraddled(mut h: Headers) -> Headers {
    h.straddled = 0;
    h
}

/// The bytes of one block (a `dupb` holder), read through the kernel
/// structures.
fn block_bytes(mp: *const mblk_t) -> Vec<u8> {
    // SAFETY: callers pass a live block they hold.
    unsafe { fakekernel::msg::chain_bytes(mp) }
}

// ---------------------------------------------------------------------
// Header rewrites and checksums.
// ---------------------------------------------------------------------

#[test]
fn emit_without_changes_leaves_every_frame_as_it_was() {
    let k = fakekernel::scope();
    for s in guest_samples().iter().chain(underlay_samples().iter()) {
        let mut p = sample_pkt(s, 0);
        let before = p.mblk().to_vec();
        let hdrs = *p.headers();
        let live = k.live();
        p.emit().unwrap_or_else(|e| panic!("{}: {e}", s.name));
        assert_eq!(p.mblk().to_vec(), before, "{}", s.name);
        assert_eq!(*p.headers(), hdrs, "{}", s.name);
        assert_eq!(k.live(), live, "{}: nothing allocated", s.name);
    }
    k.assert_clean();
}

#[test]
fn nat_rewrite_matches_a_frame_built_with_the_new_values() {
    let k = fakekernel::scope();
    let mut rng = Rng::new(7);
    for s in guest_samples().iter().chain(underlay_samples().iter()) {
        let mut want = s.clone();
        nat(&mut want.fb.l3, &mut want.fb.l4);
        if let Some(enc) = &mut want.fb.outer {
            resteer(enc);
        }
        let want_bytes = want.bytes();
        let underlay = s.fb.outer.is_some();
        // Contiguous, and split so headers straddle blocks.
        let bytes = s.bytes();
        let layouts = [vec![], vec![15, 37], rng.cuts(bytes.len(), 8), rng.cuts(bytes.len(), 8)];
        for cuts in layouts {
            let m = chain(&bytes, &cuts, 0);
            let mut p = if underlay { parse_underlay(m) } else { parse_guest(m) };
            let h = p.headers_mut();
            nat(&mut h.l3, &mut h.l4);
            if let Some(enc) = &mut h.outer {
                resteer(enc);
            }
            p.emit().unwrap_or_else(|e| panic!("{}: {e}", s.name));
            let out = p.mblk().to_vec();
            assert_eq!(out, want_bytes, "{} cut at {cuts:?}", s.name);
            assert_checksums(&out, underlay, s.name);
            // The header values carry the checksums written.
            let again = if underlay {
                Headers::parse_underlay(p.mblk())
            } else {
                Headers::parse_guest(p.mblk())
            };
            assert_eq!(unstraddled(again.unwrap()), unstraddled(*p.headers()), "{}", s.name);
        }
    }
    k.assert_clean();
}

/// A UDP/IPv4 checksum of zero means "none" and stays so.
#[test]
fn udp_over_ipv4_zero_checksum_stays_zero() {
    let k = fakekernel::scope();
    for s in [udp4(), udp4().encapsulated("geneve-udp4", encap(3, GeneveOptions::default()))] {
        let mut bytes = s.bytes();
        let l4 = s.inner_eth() + 14 + 20;
        bytes[l4 + 6..l4 + 8].fill(0);
        let underlay = s.fb.outer.is_some();
        let m = msg(&bytes, 0);
        let mut p = if underlay { parse_underlay(m) } else { parse_guest(m) };
        let h = p.headers_mut();
        nat(&mut h.l3, &mut h.l4);
        p.emit().unwrap();
        let out = p.mblk().to_vec();
        assert_eq!(be16(&out, l4 + 6), 0, "{}", s.name);
        assert_eq!(be16(&out, l4), NAT_PORT);
        assert_checksums(&out, underlay, s.name);
    }
    k.assert_clean();
}

/// A UDP/IPv6 checksum that comes out zero is sent as 0xffff: zero means
/// "no checksum", which IPv6 receivers drop (RFC 8200 8.1).
#[test]
fn udp_over_ipv6_never_gets_a_zero_checksum() {
    let k = fakekernel::scope();
    let s = udp6_ext();
    let bytes = s.bytes();
    let span = ip_span(&bytes, 14);
    let old_port = be16(&bytes, span.l4);
    let ck = be16(&bytes, span.l4 + 6);
    // Adding the old checksum to the covered sum makes it 0xffff, whose
    // complement is zero.
    let t = u32::from(old_port) + u32::from(ck);
    let port = ((t & 0xffff) + (t >> 16)) as u16;
    let mut p = parse_guest(msg(&bytes, 0));
    let Some(L4::Udp(u)) = &mut p.headers_mut().l4 else { panic!() };
    u.src_port = port;
    p.emit().unwrap();
    let out = p.mblk().to_vec();
    assert_eq!(be16(&out, span.l4 + 6), 0xffff);
    assert_checksums(&out, false, "udp6");
    let mut fresh = parse_guest(msg(&out, 0));
    fresh.compute_checksums().unwrap();
    assert_eq!(be16(&fresh.mblk().to_vec(), span.l4 + 6), 0xffff);
    drop((p, fresh));
    k.assert_clean();
}

#[test]
fn icmp_error_quote_rewrite_updates_both_checksums() {
    let k = fakekernel::scope();
    for s in [icmp4_unreach(), icmp6_too_big()] {
        // The reverse NAT of an error about a packet the guest sent: the
        // quoted source (now the outside address) goes back to the guest's.
        let mut want = s.clone();
        let change = |e: &mut Embedded, l3: &mut Option<L3>| {
            match (&mut e.l3, l3) {
                (EmbeddedL3::Ipv4(q), Some(L3::Ipv4(ip))) => {
                    q.dst = NAT_V4;
                    q.ttl = 1;
                    ip.dst = NAT_V4;
                }
                (EmbeddedL3::Ipv6(q), Some(L3::Ipv6(ip))) => {
                    q.dst = NAT_V6;
                    ip.dst = NAT_V6;
                }
                _ => unreachable!(),
            }
            e.set_dst_port(NAT_PORT);
        };
        let e = want.fb.embedded.as_mut().unwrap();
        change(e, &mut want.fb.l3);
        if let EmbeddedL3::Ipv4(q) = &mut e.l3 {
            q.csum = q.compute_csum();
        }
        let want_bytes = want.bytes();

        for cuts in [vec![], vec![s.bytes().len() - 30, s.bytes().len() - 11]] {
            let mut p = parse_guest(chain(&s.bytes(), &cuts, 0));
            let h = p.headers_mut();
            let e = h.embedded.as_mut().unwrap();
            change(e, &mut h.l3);
            p.emit().unwrap();
            let out = p.mblk().to_vec();
            assert_eq!(out, want_bytes, "{} cut at {cuts:?}", s.name);
            assert_checksums(&out, false, s.name);
            if let Some(EmbeddedL3::Ipv4(q)) = p.headers().embedded.map(|e| e.l3) {
                let at = p.headers().offsets.embedded_l3 as usize;
                assert_eq!(q.csum, be16(&out, at + 10), "value carries the quoted checksum");
                assert_eq!(inet_csum(&[&out[at..at + 10], &out[at + 12..at + 20]]), q.csum);
            }
        }
    }
    k.assert_clean();
}

#[test]
fn header_length_changes_are_refused() {
    let k = fakekernel::scope();
    // IPv4 options added: to a packet with a payload, and to one whose
    // new header would run past its end.
    let mut bare_echo = icmp4_echo();
    bare_echo.body.clear();
    for s in [tcp4_ip_options(), tcp4(), bare_echo] {
        let bytes = s.bytes();
        let mut p = parse_guest(msg(&bytes, 0));
        let Some(L3::Ipv4(ip)) = &mut p.headers_mut().l3 else { panic!() };
        *ip = with_ip4_options(*ip, &[1; 40]);
        assert_eq!(p.emit(), Err(EmitError::HeaderLengthChanged(HeaderKind::Ipv4)), "{}", s.name);
        assert_eq!(p.mblk().to_vec(), bytes, "{}: packet untouched", s.name);
    }
    // TCP options grown (the new header would overwrite the payload) and
    // shrunk.
    for (s, opts) in [(tcp4_ip_options(), vec![TcpOption::Mss(1200)]), (tcp6(), vec![])] {
        let bytes = s.bytes();
        let mut p = parse_guest(msg(&bytes, 0));
        let Some(L4::Tcp(t)) = &mut p.headers_mut().l4 else { panic!() };
        let fresh = tcp(t.src_port, t.dst_port, t.flags, &opts);
        (t.options, t.opt_len) = (fresh.options, fresh.opt_len);
        assert_eq!(p.emit(), Err(EmitError::HeaderLengthChanged(HeaderKind::Tcp)), "{}", s.name);
        assert_eq!(p.mblk().to_vec(), bytes, "{}: packet untouched", s.name);
    }
    // A same-length option change (an MSS clamp) is a plain rewrite.
    let s = tcp4();
    let mut p = parse_guest(msg(&s.bytes(), 0));
    let Some(L4::Tcp(t)) = &mut p.headers_mut().l4 else { panic!() };
    assert_eq!(&t.options[..4], &[2, 4, 0x05, 0xb4]);
    t.options[2..4].copy_from_slice(&1400u16.to_be_bytes());
    p.emit().unwrap();
    let out = p.mblk().to_vec();
    assert_checksums(&out, false, "MSS clamp");
    assert_eq!(&out[54..58], &[2, 4, 0x05, 0x78]);
    drop(p);
    // The quoted IPv4 header of an ICMP error.
    let s = icmp4_unreach();
    let bytes = s.bytes();
    let mut p = parse_guest(msg(&bytes, 0));
    let Some(EmbeddedL3::Ipv4(q)) = p.headers_mut().embedded.as_mut().map(|e| &mut e.l3) else {
        panic!()
    };
    *q = with_ip4_options(*q, &[1, 1, 1, 0]);
    assert_eq!(p.emit(), Err(EmitError::HeaderLengthChanged(HeaderKind::IcmpEmbedded)));
    assert_eq!(p.mblk().to_vec(), bytes);
    drop(p);
    k.assert_clean();
}

// ---------------------------------------------------------------------
// Offload flags.
// ---------------------------------------------------------------------

/// Parse `s` with `flags` set, apply the NAT rewrite and emit; returns the
/// bytes before and after.
fn nat_with_flags(s: &Sample, bytes: &[u8], flags: u16) -> (Vec<u8>, Packet) {
    let mut p = parse_guest(with_flags(msg(bytes, 0), flags));
    let h = p.headers_mut();
    nat(&mut h.l3, &mut h.l4);
    p.emit().unwrap_or_else(|e| panic!("{}: {e}", s.name));
    assert_eq!(p.mblk().offload_flags(), flags, "emit keeps the flags");
    (p.mblk().to_vec(), p)
}

/// Offset of the transport checksum field of a guest frame.
fn l4_csum_at(bytes: &[u8]) -> usize {
    let s = ip_span(bytes, 14);
    s.l4 + match s.proto {
        6 => 16,
        17 => 6,
        _ => 2,
    }
}

#[test]
fn full_checksum_offload_leaves_the_transport_checksum_to_the_nic() {
    let k = fakekernel::scope();
    for s in [tcp4(), udp4(), tcp6(), udp6_ext(), icmp6_echo()] {
        // The sender leaves the field as it likes (here, garbage) for the
        // NIC to fill.
        let mut bytes = s.bytes();
        let at = l4_csum_at(&bytes);
        bytes[at..at + 2].copy_from_slice(&[0xab, 0xcd]);
        let (out, _p) = nat_with_flags(&s, &bytes, HCK_FULLCKSUM);
        assert_eq!(be16(&out, at), 0xabcd, "{}", s.name);
        // The IPv4 header checksum is still ours.
        let mut want = s.clone();
        nat(&mut want.fb.l3, &mut want.fb.l4);
        let mut want = want.bytes();
        want[at..at + 2].copy_from_slice(&[0xab, 0xcd]);
        assert_eq!(out, want, "{}", s.name);
    }
    k.assert_clean();
}

#[test]
fn receive_checksum_verdict_is_not_an_offload_request() {
    let k = fakekernel::scope();
    for s in [tcp4(), udp6_ext(), icmp4_echo()] {
        let (out, _p) = nat_with_flags(&s, &s.bytes(), HCK_FULLCKSUM | HCK_FULLCKSUM_OK);
        assert_checksums(&out, false, s.name);
        let mut want = s.clone();
        nat(&mut want.fb.l3, &mut want.fb.l4);
        assert_eq!(out, want.bytes(), "{}", s.name);
    }
    k.assert_clean();
}

/// The pseudo-header sum a sender stores for `HCK_PARTIALCKSUM` (folded,
/// not inverted), for the frame's current addresses.
fn partial_sum(f: &[u8]) -> u16 {
    let s = ip_span(f, 14);
    let len = ((s.end - s.l4) as u16).to_be_bytes();
    if s.v6 {
        ones_sum(&[&f[s.l3 + 8..s.l3 + 40], &[0, 0, len[0], len[1], 0, 0, 0, s.proto]])
    } else {
        ones_sum(&[&f[s.l3 + 12..s.l3 + 20], &[0, s.proto, len[0], len[1]]])
    }
}

/// What a NIC does under `HCK_PARTIALCKSUM`: sum the transport bytes
/// (field included) and store the complement.
fn nic_finish(f: &mut [u8]) {
    let s = ip_span(f, 14);
    let at = l4_csum_at(f);
    let ck = !ones_sum(&[&f[s.l4..s.end]]);
    f[at..at + 2].copy_from_slice(&ck.to_be_bytes());
}

#[test]
fn partial_checksum_offload_tracks_pseudo_header_changes_only() {
    let k = fakekernel::scope();
    for s in [tcp4(), udp4(), tcp6(), udp6_ext()] {
        let mut bytes = s.bytes();
        let at = l4_csum_at(&bytes);
        let partial = partial_sum(&bytes);
        bytes[at..at + 2].copy_from_slice(&partial.to_be_bytes());

        // Ports alone: the NIC sums them itself, the field stays.
        let mut p = parse_guest(with_flags(msg(&bytes, 0), HCK_PARTIALCKSUM));
        match &mut p.headers_mut().l4 {
            Some(L4::Tcp(t)) => t.src_port = NAT_PORT,
            Some(L4::Udp(u)) => u.src_port = NAT_PORT,
            _ => unreachable!(),
        }
        p.emit().unwrap();
        assert_eq!(be16(&p.mblk().to_vec(), at), partial, "{}", s.name);
        drop(p);

        // Addresses and ports: the field becomes the new pseudo-header sum,
        // and the NIC's finished checksum verifies.
        let (mut out, _p) = nat_with_flags(&s, &bytes, HCK_PARTIALCKSUM);
        assert_eq!(be16(&out, at), partial_sum(&out), "{}", s.name);
        nic_finish(&mut out);
        assert_checksums(&out, false, s.name);
    }
    k.assert_clean();
}

#[test]
fn ipv4_header_checksum_offload_leaves_it_to_the_nic() {
    let k = fakekernel::scope();
    for s in [tcp4(), udp4(), icmp4_unreach()] {
        let bytes = s.bytes();
        let (mut out, _p) = nat_with_flags(&s, &bytes, HCK_IPV4_HDRCKSUM);
        assert_eq!(be16(&out, 24), be16(&bytes, 24), "{}: IPv4 checksum as it was", s.name);
        // The transport checksum is ours and right for the new addresses;
        // once the NIC fills the IPv4 one, everything verifies.
        assert_eq!(checksum_problems(&out, false), ["IPv4 header checksum"], "{}", s.name);
        out[24..26].fill(0);
        let ck = inet_csum(&[&out[14..34]]);
        out[24..26].copy_from_slice(&ck.to_be_bytes());
        assert_checksums(&out, false, s.name);
    }
    k.assert_clean();
}

#[test]
fn compute_checksums_fills_every_checksum_and_clears_the_requests() {
    let k = fakekernel::scope();
    let tx = HCK_FULLCKSUM | HCK_PARTIALCKSUM | HCK_IPV4_HDRCKSUM;
    for s in guest_samples() {
        // Checksums left for a NIC (garbage here).
        let mut bytes = s.bytes();
        let is_ip = ip_like(&bytes);
        if is_ip {
            let span = ip_span(&bytes, 14);
            if !span.v6 {
                bytes[24..26].copy_from_slice(&[0xde, 0xad]);
            }
            if !span.fragment && matches!(span.proto, 1 | 6 | 17 | 58) {
                let at = l4_csum_at(&bytes);
                bytes[at..at + 2].copy_from_slice(&[0xbe, 0xef]);
            }
        }
        let mut p = parse_guest(with_flags(msg(&bytes, 0), tx | HW_LSO));
        p.compute_checksums().unwrap_or_else(|e| panic!("{}: {e}", s.name));
        assert_eq!(p.mblk().offload_flags(), HW_LSO, "{}: requests cleared, LSO kept", s.name);
        let out = p.mblk().to_vec();
        let span_frag = is_ip && ip_span(&out, 14).fragment;
        if span_frag {
            // A fragment keeps its transport checksum (it covers the whole
            // datagram); the IPv4 header checksum is filled.
            assert!(checksum_problems(&out, false).is_empty(), "{}", s.name);
        } else {
            assert_eq!(out, s.bytes(), "{}: as built with full checksums", s.name);
        }
        // The values carry what was written.
        assert_eq!(
            unstraddled(Headers::parse_guest(p.mblk()).unwrap()),
            unstraddled(*p.headers()),
            "{}",
            s.name
        );
    }
    k.assert_clean();
}

fn ip_like(f: &[u8]) -> bool {
    matches!(be16(f, 12), 0x0800 | 0x86dd)
}

#[test]
fn compute_checksums_keeps_an_outer_udp_checksum_right() {
    let k = fakekernel::scope();
    let s = tcp4();
    let mut bytes = s.bytes();
    let at = l4_csum_at(&bytes);
    bytes[at..at + 2].fill(0);
    let mut p = parse_guest(with_flags(msg(&bytes, 0), HCK_FULLCKSUM));
    p.push_encap(encap(5, GeneveOptions::default()), OuterUdpCsum::Compute).unwrap();
    assert!(be16(&p.mblk().to_vec(), 60) != 0);
    p.compute_checksums().unwrap();
    assert_checksums(&p.mblk().to_vec(), true, "encapsulated, then computed");
    drop(p);
    k.assert_clean();
}

// ---------------------------------------------------------------------
// Encapsulation.
// ---------------------------------------------------------------------

fn all_options() -> GeneveOptions {
    GeneveOptions { external: true, multicast: Some(Replication::All), mss: Some(1448), skipped: 0 }
}

#[test]
fn push_encap_uses_the_headroom_when_it_fits() {
    let k = fakekernel::scope();
    // The longest options there are: what the scratch space is sized by.
    assert_eq!(all_options().wire_len(), GeneveOptions::MAX_WIRE_LEN);
    let enc = encap(0x12_3456, all_options());
    let need = enc.wire_len();
    for s in guest_samples().iter().filter(|s| s.fb.l4.is_some()) {
        let mut p = sample_pkt(s, need + 3);
        let live = k.live();
        p.push_encap(enc, OuterUdpCsum::Zero).unwrap();
        assert_eq!(p.mblk().seg_count(), 1, "{}", s.name);
        assert_eq!(p.mblk().headroom(), 3, "{}", s.name);
        assert_eq!(k.live(), live, "{}: nothing allocated", s.name);
        let want = s.encapsulated("x", enc).bytes();
        assert_eq!(p.mblk().to_vec(), want, "{}", s.name);
        // The underlay parser takes only frames with a transport header.
        if s.fb.l4.is_some() {
            let again = Headers::parse_underlay(p.mblk()).unwrap();
            assert_eq!(unstraddled(again), unstraddled(*p.headers()), "{}: offsets moved", s.name);
        }
    }
    k.assert_clean();
}

#[test]
fn push_encap_adds_one_leading_block_without_room() {
    let k = fakekernel::scope();
    let enc = encap(77, GeneveOptions { mss: Some(9000), ..Default::default() });
    let need = enc.wire_len();
    let s = udp6_ext();
    for headroom in [0, need - 1] {
        let mut p = sample_pkt(&s, headroom);
        let inner = p.mblk().to_vec();
        let live = k.live();
        p.push_encap(enc, OuterUdpCsum::Zero).unwrap();
        let segs: Vec<usize> = p.mblk().segments().map(<[u8]>::len).collect();
        assert_eq!(segs, [need, inner.len()], "headroom {headroom}");
        assert_eq!(k.live().mblks, live.mblks + 1);
        assert_eq!(k.live().dblks, live.dblks + 1);
        assert_eq!(p.mblk().to_vec(), s.encapsulated("x", enc).bytes());
    }
    k.assert_clean();
}

#[test]
fn push_encap_into_a_shared_block_leaves_the_other_holder_alone() {
    let k = fakekernel::scope();
    let s = tcp4();
    let enc = encap(9, GeneveOptions::default());
    let m = s.fb.to_mblk(256, &s.body).unwrap();
    let orig = m.to_vec();
    // SAFETY: m's head is a live block; the duplicate is freed below.
    let dup = unsafe { dupb(m.as_ptr()) };
    assert!(!dup.is_null());
    let mut p = parse_guest(m);
    assert_eq!(p.mblk().headroom(), 0, "a shared block has no writable headroom");
    p.push_encap(enc, OuterUdpCsum::Compute).unwrap();
    assert_eq!(p.mblk().seg_count(), 2);
    assert_eq!(block_bytes(dup), orig);
    // Rewrite the inner frame too: its block is copied first.
    let h = p.headers_mut();
    nat(&mut h.l3, &mut h.l4);
    p.emit().unwrap();
    assert_eq!(block_bytes(dup), orig, "other holder unchanged");
    let out = p.mblk().to_vec();
    assert_checksums(&out, true, "pushed and rewritten");
    let mut want = s.clone();
    nat(&mut want.fb.l3, &mut want.fb.l4);
    assert_eq!(&out[enc.wire_len()..], &want.bytes()[..]);
    drop(p);
    // SAFETY: dup is ours and live.
    unsafe { freeb(dup) };
    k.assert_clean();
}

#[test]
fn emit_copies_shared_blocks_before_writing() {
    let k = fakekernel::scope();
    let s = tcp4();
    let bytes = s.bytes();
    // Three blocks: Ethernet + half of IPv4, the rest of the headers, the
    // body. Share the middle one and the head.
    let m = with_flags(chain(&bytes, &[24, 60], 8), HCK_FULLCKSUM | HCK_FULLCKSUM_OK);
    let head = m.as_ptr();
    // SAFETY: m is a live three-block chain; the duplicates are freed
    // below.
    let (dup_head, dup_mid) = unsafe { (dupb(head), dupb((*head).b_cont)) };
    let (orig_head, orig_mid) = (block_bytes(dup_head), block_bytes(dup_mid));
    let mut p = parse_guest(m);
    let live = k.live();
    p.emit().unwrap();
    assert_eq!(k.live(), live, "no change, no copy");
    let h = p.headers_mut();
    nat(&mut h.l3, &mut h.l4);
    h.eth.src = MacAddr::from_bytes([2, 9, 9, 9, 9, 9]);
    p.emit().unwrap();
    assert_eq!((block_bytes(dup_head), block_bytes(dup_mid)), (orig_head, orig_mid));
    assert_eq!(p.mblk().seg_count(), 3);
    assert_eq!(
        p.mblk().offload_flags(),
        HCK_FULLCKSUM | HCK_FULLCKSUM_OK,
        "flags follow the copied head"
    );
    let mut want = s.clone();
    nat(&mut want.fb.l3, &mut want.fb.l4);
    want.fb.eth.src = MacAddr::from_bytes([2, 9, 9, 9, 9, 9]);
    assert_eq!(p.mblk().to_vec(), want.bytes());
    drop(p);
    // SAFETY: the duplicates are ours and live.
    unsafe {
        freeb(dup_head);
        freeb(dup_mid);
    }
    k.assert_clean();
}

#[test]
fn push_encap_computes_the_outer_udp_checksum_and_emit_keeps_it() {
    let k = fakekernel::scope();
    for s in guest_samples().iter().filter(|s| s.fb.l4.is_some()) {
        for (csum, cuts) in [
            (OuterUdpCsum::Compute, vec![]),
            (OuterUdpCsum::Compute, vec![7, 33]),
            (OuterUdpCsum::Zero, vec![20]),
        ] {
            let mut p = parse_guest(chain(&s.bytes(), &cuts, 0));
            p.push_encap(encap(1, all_options()), csum).unwrap();
            let out = p.mblk().to_vec();
            assert_eq!(be16(&out, 60) == 0, csum == OuterUdpCsum::Zero, "{}", s.name);
            assert_checksums(&out, true, s.name);
            // Rewrites inside and outside keep the outer checksum right (or
            // zero).
            let h = p.headers_mut();
            nat(&mut h.l3, &mut h.l4);
            resteer(h.outer.as_mut().unwrap());
            p.emit().unwrap();
            let out = p.mblk().to_vec();
            assert_eq!(be16(&out, 60) == 0, csum == OuterUdpCsum::Zero, "{}", s.name);
            assert_checksums(&out, true, s.name);
            assert_eq!(p.headers().outer.unwrap().udp.csum, be16(&out, 60));
        }
    }
    k.assert_clean();
}

#[test]
fn push_encap_without_memory_leaves_the_packet_intact() {
    let k = fakekernel::scope();
    let s = icmp4_unreach();
    let mut p = sample_pkt(&s, 0);
    let (bytes, hdrs, live) = (p.mblk().to_vec(), *p.headers(), k.live());
    k.fail_next_allocs(1);
    let enc = encap(4, all_options());
    assert_eq!(p.push_encap(enc, OuterUdpCsum::Compute), Err(EmitError::NoMemory));
    assert_eq!((p.mblk().to_vec(), *p.headers(), k.live()), (bytes.clone(), hdrs, live));
    assert_eq!(p.mblk().seg_count(), 1);
    // It works once memory is back.
    p.push_encap(enc, OuterUdpCsum::Compute).unwrap();
    let out = p.mblk().to_vec();
    assert_eq!(&out[enc.wire_len()..], &bytes[..]);
    assert_checksums(&out, true, "after retry");
    drop(p);
    k.assert_clean();
}

#[test]
fn emit_without_memory_to_copy_a_shared_block() {
    let k = fakekernel::scope();
    let s = udp4();
    let m = s.fb.to_mblk(0, &s.body).unwrap();
    // SAFETY: m's head is live; the duplicate is freed below.
    let dup = unsafe { dupb(m.as_ptr()) };
    let mut p = parse_guest(m);
    let before = p.mblk().to_vec();
    let Some(L3::Ipv4(ip)) = &mut p.headers_mut().l3 else { panic!() };
    ip.ttl -= 1;
    k.fail_next_allocs(1);
    assert_eq!(p.emit(), Err(EmitError::NoMemory));
    assert_eq!(p.mblk().to_vec(), before);
    assert_eq!(block_bytes(dup), before);
    p.emit().unwrap();
    assert_eq!(block_bytes(dup), before);
    assert_checksums(&p.mblk().to_vec(), false, "after retry");
    drop(p);
    // SAFETY: dup is ours and live.
    unsafe { freeb(dup) };
    k.assert_clean();
}

#[test]
fn a_second_push_or_a_guest_pop_is_refused() {
    let k = fakekernel::scope();
    let mut p = sample_pkt(&tcp6(), 0);
    assert_eq!(p.pop_encap(), Err(EmitError::MissingHeader(HeaderKind::Geneve)));
    p.push_encap(encap(1, GeneveOptions::default()), OuterUdpCsum::Zero).unwrap();
    let bytes = p.mblk().to_vec();
    assert!(p.push_encap(encap(2, GeneveOptions::default()), OuterUdpCsum::Zero).is_err());
    assert_eq!(p.mblk().to_vec(), bytes);
    drop(p);
    k.assert_clean();
}

#[test]
fn pop_encap_gives_back_exactly_the_inner_frame() {
    let k = fakekernel::scope();
    for s in underlay_samples() {
        let bytes = s.bytes();
        let inner_at = s.inner_eth();
        let mut guest = s.clone();
        guest.fb.outer = None;
        let inner = guest.bytes();
        assert_eq!(&bytes[inner_at..], &inner[..]);
        // Encapsulation in three blocks of its own; the inner frame's first
        // block shares nothing with it; and a layout whose third block
        // holds the end of the encapsulation and the inner Ethernet header.
        for (cuts, freed) in [
            (vec![10, 54, inner_at, inner_at + 30], 3),
            (vec![inner_at], 1),
            (vec![20, 40, inner_at + 14], 2),
            (vec![], 0),
        ] {
            let m = with_flags(chain(&bytes, &cuts, 0), HCK_FULLCKSUM | HCK_FULLCKSUM_OK);
            let mut p = parse_underlay(m);
            let want_outer = p.headers().outer.unwrap();
            let (segs, live) = (p.mblk().seg_count(), k.live());
            assert_eq!(p.pop_encap(), Ok(want_outer), "{}", s.name);
            assert_eq!(p.mblk().to_vec(), inner, "{} cut at {cuts:?}", s.name);
            assert_eq!(p.mblk().seg_count(), segs - freed, "{} cut at {cuts:?}", s.name);
            assert_eq!(k.live().mblks, live.mblks - freed);
            assert_eq!(k.live().dblks, live.dblks - freed);
            assert_eq!(
                p.mblk().offload_flags(),
                HCK_FULLCKSUM | HCK_FULLCKSUM_OK,
                "flags move to the new head"
            );
            assert!(p.headers().outer.is_none());
            let again = Headers::parse_guest(p.mblk()).unwrap();
            assert_eq!(unstraddled(again), unstraddled(*p.headers()), "{}: offsets moved", s.name);
            // The popped packet can be rewritten and pushed again.
            let h = p.headers_mut();
            nat(&mut h.l3, &mut h.l4);
            p.emit().unwrap();
            p.push_encap(want_outer, OuterUdpCsum::Compute).unwrap();
            assert_checksums(&p.mblk().to_vec(), true, s.name);
        }
    }
    k.assert_clean();
}

#[test]
fn push_then_pop_restores_the_frame_and_the_blocks() {
    let k = fakekernel::scope();
    let enc = encap(3, all_options());
    for headroom in [0, 200] {
        let s = tcp4_ip_options();
        let m = with_flags(
            s.fb.to_mblk(headroom, &s.body).unwrap(),
            HCK_PARTIALCKSUM | HCK_IPV4_HDRCKSUM,
        );
        let mut p = parse_guest(m);
        let (bytes, hdrs, live) = (p.mblk().to_vec(), *p.headers(), k.live());
        p.push_encap(enc, OuterUdpCsum::Zero).unwrap();
        assert_eq!(
            p.mblk().offload_flags(),
            HCK_PARTIALCKSUM | HCK_IPV4_HDRCKSUM,
            "headroom {headroom}"
        );
        let popped = p.pop_encap().unwrap();
        assert_eq!(popped.geneve.options, enc.geneve.options);
        assert_eq!(
            (p.mblk().to_vec(), *p.headers(), k.live()),
            (bytes, hdrs, live),
            "headroom {headroom}"
        );
        assert_eq!(p.mblk().seg_count(), 1);
        assert_eq!(p.mblk().offload_flags(), HCK_PARTIALCKSUM | HCK_IPV4_HDRCKSUM);
    }
    k.assert_clean();
}

#[test]
fn pop_encap_into_a_shared_block() {
    let k = fakekernel::scope();
    let s = &underlay_samples()[0];
    let bytes = s.bytes();
    let at = s.inner_eth();
    let inner = bytes[at..].to_vec();
    let flags = HCK_FULLCKSUM | HCK_FULLCKSUM_OK;
    for fail in [true, false] {
        let m = with_flags(chain(&bytes, &[at], 0), flags);
        // SAFETY: the chain has two live blocks; the duplicate is freed
        // below.
        let dup = unsafe { dupb((*m.as_ptr()).b_cont) };
        let mut p = parse_underlay(m);
        let hdrs = *p.headers();
        if fail {
            // The new head's data block is shared, so it is copied to take
            // the offload state; without memory, nothing changes.
            k.fail_next_allocs(1);
            assert_eq!(p.pop_encap(), Err(EmitError::NoMemory));
            assert_eq!((p.mblk().to_vec(), *p.headers()), (bytes.clone(), hdrs));
            assert_eq!(p.mblk().seg_count(), 2);
        } else {
            p.pop_encap().unwrap();
            assert_eq!(p.mblk().to_vec(), inner);
            assert_eq!(p.mblk().offload_flags(), flags);
            let h = p.headers_mut();
            nat(&mut h.l3, &mut h.l4);
            p.emit().unwrap();
        }
        assert_eq!(block_bytes(dup), inner, "other holder unchanged");
        // SAFETY: dup is live; reading its dblk's flags.
        let dup_flags = unsafe { (*(*dup).b_datap).db_struioun.cksum.flags };
        assert_eq!(dup_flags, 0, "other holder's offload state unchanged");
        drop(p);
        // SAFETY: dup is ours and live.
        unsafe { freeb(dup) };
        k.assert_clean();
    }
}

#[test]
fn pop_encap_frees_a_shared_block_without_copying_it() {
    let k = fakekernel::scope();
    let s = &underlay_samples()[1];
    let bytes = s.bytes();
    let at = s.inner_eth();
    let flags = HCK_FULLCKSUM | HCK_FULLCKSUM_OK;
    // The encapsulation's second block is shared; it is trimmed away
    // whole, so nothing needs copying, even with no memory to copy with.
    let m = with_flags(chain(&bytes, &[10, at], 0), flags);
    // SAFETY: the chain has three live blocks; the duplicate is freed
    // below.
    let dup = unsafe { dupb((*m.as_ptr()).b_cont) };
    let mut p = parse_underlay(m);
    let live = k.live();
    k.fail_next_allocs(1);
    p.pop_encap().unwrap();
    k.fail_next_allocs(0);
    assert_eq!(p.mblk().to_vec(), &bytes[at..]);
    assert_eq!(p.mblk().offload_flags(), flags);
    assert_eq!((k.live().mblks, k.live().dblks), (live.mblks - 2, live.dblks - 1));
    assert_eq!(block_bytes(dup), &bytes[10..at]);
    // SAFETY: dup is live; reading its dblk's flags.
    assert_eq!(unsafe { (*(*dup).b_datap).db_struioun.cksum.flags }, 0);
    drop(p);
    // SAFETY: dup is ours and live.
    unsafe { freeb(dup) };
    k.assert_clean();
}

/// The underlay carries only frames its parser accepts (IP with a
/// transport header): ARP, later fragments and unknown protocols are
/// refused before anything is written, and a second encapsulation too.
#[test]
fn push_encap_refuses_what_the_underlay_cannot_carry() {
    let k = fakekernel::scope();
    for s in guest_samples().iter().filter(|s| s.fb.l4.is_none()) {
        let mut p = parse_guest(chain(&s.bytes(), &[], 0));
        let before = p.mblk().to_vec();
        assert_eq!(
            p.push_encap(encap(1, GeneveOptions::default()), OuterUdpCsum::Zero),
            Err(EmitError::NotEncapsulable),
            "{}",
            s.name
        );
        assert_eq!(p.mblk().to_vec(), before, "{}", s.name);
    }
    let mut p = parse_guest(chain(&tcp4().bytes(), &[], 0));
    p.push_encap(encap(1, GeneveOptions::default()), OuterUdpCsum::Zero).unwrap();
    assert_eq!(
        p.push_encap(encap(2, GeneveOptions::default()), OuterUdpCsum::Zero),
        Err(EmitError::AlreadyEncapsulated)
    );
    drop(p);
    k.assert_clean();
}
