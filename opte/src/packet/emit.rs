//! Writing a parsed packet back: header changes with incremental
//! checksums, full checksum computation, and pushing and popping the
//! outer Geneve encapsulation. See the theory statement in the parent
//! module.

use super::checksum::{Csum, StreamCsum, change, update, update_partial, word};
use super::error::{EmitError, HeaderKind, ParseError};
use super::ether::{EtherHdr, ether_type};
use super::geneve::{self, GeneveHdr};
use super::icmp::{Embedded, EmbeddedL3, IcmpHdr};
use super::ip4::protocol;
use super::ip6::{Ipv6ExtHdrs, Ipv6Hdr};
use super::udp::UdpHdr;
use super::{Encap, Headers, L3, L4, Packet};
use crate::ddi::MsgBlk;
use illumos_sys_hdrs::{HCK_FULLCKSUM, HCK_FULLCKSUM_OK, HCK_IPV4_HDRCKSUM, HCK_PARTIALCKSUM};

/// A packet that failed to parse, handed back with the reason so the
/// caller can count the drop (or pass the frame on unparsed).
#[derive(Debug)]
pub struct ParseFailure {
    pub error: ParseError,
    pub mblk: MsgBlk,
}

/// What a message's hardware checksum flags (`HCK_*`) mean: illumos uses
/// the same bits for transmit requests and receive verdicts
/// (`HCK_IPV4_HDRCKSUM` is also `HCK_IPV4_HDRCKSUM_OK`), so the packet
/// carries which one applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffloadRole {
    /// On its way to a NIC (a guest's frame): the flags ask the NIC to
    /// finish checksums, and emission leaves those checksums to it.
    Transmit,
    /// From a NIC (an underlay frame): the flags are its verdicts.
    /// Emission keeps every checksum right itself and drops the flags of
    /// sums the NIC attached (`HCK_FULLCKSUM`, `HCK_PARTIALCKSUM`), which
    /// changes would make stale.
    Receive,
}

/// The outer UDP checksum of a pushed Geneve encapsulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OuterUdpCsum {
    /// Zero: allowed for tunnels over IPv6 (RFC 6935, RFC 6936; RFC 8926
    /// 3.3), and what the underlay uses; the inner packet keeps its own.
    Zero,
    /// Computed over the whole encapsulated frame (costs a pass over the
    /// payload).
    Compute,
}

/// Largest header the emitter rewrites in one piece (IPv4 or TCP with
/// options).
const MAX_HDR: usize = 60;

/// Who owns the transport and IPv4 header checksums. On transmit, from
/// the offload flags a sender set for the NIC (a `HCK_FULLCKSUM` that
/// comes with `HCK_FULLCKSUM_OK` is a verdict, not a request); on receive
/// every checksum is ours.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Offload {
    nic_fills_l4: bool,
    partial_l4: bool,
    pub(crate) nic_fills_ip4: bool,
}

impl Offload {
    pub(crate) fn new(f: u16, role: OffloadRole) -> Self {
        match role {
            OffloadRole::Transmit => Self {
                nic_fills_l4: f & HCK_FULLCKSUM != 0 && f & HCK_FULLCKSUM_OK == 0,
                partial_l4: f & HCK_PARTIALCKSUM != 0,
                nic_fills_ip4: f & HCK_IPV4_HDRCKSUM != 0,
            },
            OffloadRole::Receive => {
                Self { nic_fills_l4: false, partial_l4: false, nic_fills_ip4: false }
            }
        }
    }

    /// The new transport checksum, from the old one and the change in the
    /// bytes it covers (`delta`) and in the pseudo-header (`pseudo`).
    pub(crate) fn l4_csum(&self, old: u16, delta: Csum, pseudo: Csum, zero: ZeroCsum) -> u16 {
        if self.nic_fills_l4 {
            old
        } else if self.partial_l4 {
            update_partial(old, pseudo)
        } else if zero == ZeroCsum::MeansNone && old == 0 {
            0
        } else {
            let mut d = delta;
            d.add_sum(pseudo);
            let c = update(old, d);
            if zero != ZeroCsum::Ordinary && c == 0 { 0xffff } else { c }
        }
    }
}

/// What a transport checksum of zero means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ZeroCsum {
    /// An ordinary value (TCP, ICMP).
    Ordinary,
    /// "No checksum" (UDP over IPv4): a zero stays zero, and a computed
    /// zero is sent as 0xffff (RFC 768).
    MeansNone,
    /// Forbidden (UDP over IPv6, RFC 8200 8.1): a computed zero is sent
    /// as 0xffff.
    Forbidden,
}

/// The header length a header's wire bytes state: the 4-bit count of
/// 4-byte words in byte `at` of the header at `off` (the low nibble for
/// the IPv4 IHL, the high one for the TCP data offset).
fn stated_len(m: &MsgBlk, off: usize, at: usize, high: bool) -> Result<usize, EmitError> {
    let mut b = [0u8];
    m.read_at(off + at, &mut b)?;
    let [b] = b;
    Ok(usize::from(if high { b >> 4 } else { b & 0x0f }) * 4)
}

/// One header's old and new bytes at an offset.
struct Rewrite {
    off: usize,
    len: usize,
    old: [u8; MAX_HDR],
    new: [u8; MAX_HDR],
}

impl Rewrite {
    /// Read the old bytes at `off`, and let `emit` write the new ones; the
    /// header must keep its length.
    fn new(
        m: &MsgBlk,
        off: usize,
        len: usize,
        kind: HeaderKind,
        emit: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<Self, EmitError> {
        let mut r = Self { off, len, old: [0; MAX_HDR], new: [0; MAX_HDR] };
        let old = r.old.get_mut(..len).ok_or(EmitError::HeaderLengthChanged(kind))?;
        m.read_at(off, old)?;
        let new = r.new.get_mut(..len).ok_or(EmitError::HeaderLengthChanged(kind))?;
        if emit(new) != len {
            return Err(EmitError::HeaderLengthChanged(kind));
        }
        Ok(r)
    }

    fn old(&self) -> &[u8] {
        self.old.get(..self.len).unwrap_or(&[])
    }

    fn new_bytes(&self) -> &[u8] {
        self.new.get(..self.len).unwrap_or(&[])
    }

    /// The 16-bit word at `at` in the old bytes.
    fn old_u16(&self, at: usize) -> u16 {
        match self.old.get(at..at + 2) {
            Some(&[a, b]) => u16::from_be_bytes([a, b]),
            _ => 0,
        }
    }

    /// Put a 16-bit word at `at` in the new bytes.
    fn set_new_u16(&mut self, at: usize, v: u16) {
        if let Some(w) = self.new.get_mut(at..at + 2) {
            w.copy_from_slice(&v.to_be_bytes());
        }
    }

    /// Sum of new minus old over `range` of the header: exactly zero when
    /// the bytes are equal (not the ones'-complement "negative zero" that
    /// summing `x + !x` gives), so an unchanged header leaves every
    /// checksum, even an invalid one, as it was.
    fn delta(&self, range: core::ops::Range<usize>) -> Csum {
        let mut d = Csum::new();
        if self.new.get(range.clone()) == self.old.get(range.clone()) {
            return d;
        }
        d.add_bytes(self.new.get(range.clone()).unwrap_or(&[]));
        d.sub_bytes(self.old.get(range).unwrap_or(&[]));
        d
    }

    /// Write the new bytes if they differ, adding the change to `outer`
    /// (the sum an enclosing UDP checksum covers).
    fn commit(&self, m: &mut MsgBlk, outer: &mut Csum) -> Result<(), EmitError> {
        if self.old() != self.new_bytes() {
            outer.add_sum(self.delta(0..self.len));
            m.write_at(self.off, self.new_bytes())?;
        }
        Ok(())
    }
}

impl Packet {
    /// Parse a guest frame; on failure the message comes back with the
    /// reason. Its offload flags are read as transmit requests
    /// ([`OffloadRole::Transmit`]).
    pub fn parse_guest(mblk: MsgBlk) -> Result<Self, ParseFailure> {
        match Headers::parse_guest(&mblk) {
            Ok(hdrs) => Ok(Self { mblk, hdrs, role: OffloadRole::Transmit }),
            Err(error) => Err(ParseFailure { error, mblk }),
        }
    }

    /// Parse an underlay frame; on failure the message comes back with
    /// the reason. Its offload flags are read as a NIC's receive verdicts
    /// ([`OffloadRole::Receive`]).
    pub fn parse_underlay(mblk: MsgBlk) -> Result<Self, ParseFailure> {
        match Headers::parse_underlay(&mblk) {
            Ok(hdrs) => Ok(Self { mblk, hdrs, role: OffloadRole::Receive }),
            Err(error) => Err(ParseFailure { error, mblk }),
        }
    }

    /// Write every header's current value into the packet, updating the
    /// checksums incrementally (and the `csum` fields of the header values
    /// to match). Headers must keep their lengths; a length change is an
    /// error and leaves the packet as it was up to that header.
    pub fn emit(&mut self) -> Result<(), EmitError> {
        let flags = self.mblk.offload_flags();
        let off = Offload::new(flags, self.role);
        if self.role == OffloadRole::Receive && flags & (HCK_FULLCKSUM | HCK_PARTIALCKSUM) != 0 {
            // The sums the NIC attached go stale as headers change; its
            // verdicts (`*_OK`) stay true because every checksum is kept
            // right below.
            self.mblk.set_offload_flags(flags & !(HCK_FULLCKSUM | HCK_PARTIALCKSUM))?;
        }
        let m = &mut self.mblk;
        let h = &mut self.hdrs;
        // Changes inside the outer UDP payload, for its checksum.
        let mut inner_delta = Csum::new();

        let inner_eth = h.offsets.inner_eth as usize;
        let r = Rewrite::new(m, inner_eth, EtherHdr::LEN, HeaderKind::Ether, |b| {
            b.first_chunk_mut().map_or(0, |b| {
                h.eth.emit(b);
                EtherHdr::LEN
            })
        })?;
        r.commit(m, &mut inner_delta)?;

        let l3_off = h.offsets.l3 as usize;
        let mut pseudo = Csum::new();
        match &mut h.l3 {
            Some(L3::Ipv4(ip)) => {
                let len = ip.hdr_len();
                // Checked before reading: a longer header may run past the
                // packet.
                if stated_len(m, l3_off, 0, false)? != len {
                    return Err(EmitError::HeaderLengthChanged(HeaderKind::Ipv4));
                }
                let mut r = Rewrite::new(m, l3_off, len, HeaderKind::Ipv4, |b| ip.emit(b))?;
                let old_ck = r.old_u16(10);
                r.set_new_u16(10, old_ck);
                // Pseudo-header: protocol (byte 9, carried in the low
                // lane of its pseudo-header word), source, destination.
                pseudo.add_sum(r.delta(9..10).swapped());
                pseudo.add_sum(r.delta(12..20));
                let ck = if off.nic_fills_ip4 { old_ck } else { update(old_ck, r.delta(0..len)) };
                r.set_new_u16(10, ck);
                ip.csum = ck;
                r.commit(m, &mut inner_delta)?;
            }
            Some(L3::Ipv6(ip)) => {
                let r = Rewrite::new(m, l3_off, Ipv6Hdr::LEN, HeaderKind::Ipv6, |b| {
                    b.first_chunk_mut().map_or(0, |b| {
                        ip.emit_fixed(b);
                        Ipv6Hdr::LEN
                    })
                })?;
                // The pseudo-header's protocol is the upper layer's, which
                // extension headers (left in place) name; only addresses
                // change here.
                pseudo.add_sum(r.delta(8..40));
                if ip.ext.is_empty() {
                    // The next header byte sits in the low lane of its
                    // word, as the pseudo-header carries it.
                    pseudo.add_sum(r.delta(6..7).swapped());
                }
                r.commit(m, &mut inner_delta)?;
            }
            Some(L3::Arp(arp)) => {
                let r = Rewrite::new(m, l3_off, super::ArpEthIpv4::LEN, HeaderKind::Arp, |b| {
                    b.first_chunk_mut().map_or(0, |b| {
                        arp.emit(b);
                        super::ArpEthIpv4::LEN
                    })
                })?;
                r.commit(m, &mut inner_delta)?;
            }
            None => {}
        }

        // The ICMP quote first: its change is part of the ICMP checksum.
        let mut quote_delta = Csum::new();
        if let Some(e) = &mut h.embedded {
            emit_embedded(
                m,
                e,
                h.offsets.embedded_l3 as usize,
                h.offsets.embedded_ulp as usize,
                &mut quote_delta,
            )?;
            inner_delta.add_sum(quote_delta);
        }

        let l4_off = h.offsets.l4 as usize;
        let icmp_v6 = matches!(h.l4, Some(L4::Icmpv6(_)));
        match &mut h.l4 {
            Some(L4::Tcp(t)) => {
                // A longer header would overwrite the payload.
                if stated_len(m, l4_off, 12, true)? != t.hdr_len() {
                    return Err(EmitError::HeaderLengthChanged(HeaderKind::Tcp));
                }
                let mut r = Rewrite::new(m, l4_off, t.hdr_len(), HeaderKind::Tcp, |b| t.emit(b))?;
                let old = r.old_u16(16);
                r.set_new_u16(16, old);
                let ck = off.l4_csum(old, r.delta(0..r.len), pseudo, ZeroCsum::Ordinary);
                r.set_new_u16(16, ck);
                t.csum = ck;
                r.commit(m, &mut inner_delta)?;
            }
            Some(L4::Udp(u)) => {
                let mut r = Rewrite::new(m, l4_off, UdpHdr::LEN, HeaderKind::Udp, |b| {
                    b.first_chunk_mut().map_or(0, |b| {
                        u.emit(b);
                        UdpHdr::LEN
                    })
                })?;
                let old = r.old_u16(6);
                r.set_new_u16(6, old);
                let zero = match h.l3 {
                    Some(L3::Ipv4(_)) => ZeroCsum::MeansNone,
                    _ => ZeroCsum::Forbidden,
                };
                let ck = off.l4_csum(old, r.delta(0..UdpHdr::LEN), pseudo, zero);
                r.set_new_u16(6, ck);
                u.csum = ck;
                r.commit(m, &mut inner_delta)?;
            }
            Some(L4::Icmpv4(i)) | Some(L4::Icmpv6(i)) => {
                let mut r = Rewrite::new(m, l4_off, IcmpHdr::LEN, HeaderKind::Icmpv4, |b| {
                    b.first_chunk_mut().map_or(0, |b| {
                        i.emit(b);
                        IcmpHdr::LEN
                    })
                })?;
                let old = r.old_u16(2);
                r.set_new_u16(2, old);
                let mut d = r.delta(0..IcmpHdr::LEN);
                d.add_sum(quote_delta);
                let ps = if icmp_v6 { pseudo } else { Csum::new() };
                let ck = off.l4_csum(old, d, ps, ZeroCsum::Ordinary);
                r.set_new_u16(2, ck);
                i.csum = ck;
                r.commit(m, &mut inner_delta)?;
            }
            None => {}
        }

        if let Some(enc) = &mut h.outer {
            emit_outer(m, enc, inner_delta)?;
        }
        Ok(())
    }

    /// Compute the IPv4 header checksum and the transport checksum in
    /// full (not from the old values), and clear the transmit offload
    /// requests they satisfy. Fragments keep their transport checksum: it
    /// covers the whole datagram. A non-zero outer UDP checksum is updated
    /// for the changes.
    pub fn compute_checksums(&mut self) -> Result<(), EmitError> {
        let m = &mut self.mblk;
        let h = &mut self.hdrs;
        let l3_off = h.offsets.l3 as usize;
        let l4_off = h.offsets.l4 as usize;
        let l4_len = h.l4_len as usize;
        // Changes inside the outer UDP payload, for its checksum.
        let mut inner_delta = Csum::new();
        let (pseudo, fragment) = match &mut h.l3 {
            Some(L3::Ipv4(ip)) => {
                let old = read_u16(m, l3_off + 10)?;
                ip.csum = ip.compute_csum();
                m.write_at(l3_off + 10, &ip.csum.to_be_bytes())?;
                inner_delta.add_sum(change(word(old), word(ip.csum)));
                (ip.pseudo_sum(l4_len), ip.is_fragment())
            }
            Some(L3::Ipv6(ip)) => (ip.pseudo_sum(l4_len), ip.is_fragment()),
            _ => (Csum::new(), false),
        };
        if !fragment {
            let field = match &h.l4 {
                Some(L4::Tcp(_)) => Some((16, true)),
                Some(L4::Udp(_)) => Some((6, true)),
                Some(L4::Icmpv4(_)) => Some((2, false)),
                Some(L4::Icmpv6(_)) => Some((2, true)),
                None => None,
            };
            if let Some((at, with_pseudo)) = field {
                let old = read_u16(m, l4_off + at)?;
                m.write_at(l4_off + at, &[0, 0])?;
                let mut s = sum_range(m, l4_off, l4_len)?;
                if with_pseudo {
                    s.add_sum(pseudo);
                }
                let mut ck = s.finish();
                let is_udp = matches!(h.l4, Some(L4::Udp(_)));
                if is_udp && ck == 0 {
                    ck = 0xffff;
                }
                m.write_at(l4_off + at, &ck.to_be_bytes())?;
                inner_delta.add_sum(change(word(old), word(ck)));
                match &mut h.l4 {
                    Some(L4::Tcp(t)) => t.csum = ck,
                    Some(L4::Udp(u)) => u.csum = ck,
                    Some(L4::Icmpv4(i)) | Some(L4::Icmpv6(i)) => i.csum = ck,
                    None => {}
                }
            }
        }
        if let Some(enc) = &mut h.outer {
            // Both fields lie at even offsets of the UDP payload.
            let at = EtherHdr::LEN + enc.ip6.hdr_len() + 6;
            let old = read_u16(m, at)?;
            if old != 0 {
                enc.udp.csum = match update(old, inner_delta) {
                    0 => 0xffff,
                    v => v,
                };
                m.write_at(at, &enc.udp.csum.to_be_bytes())?;
            }
        }
        let flags = m.offload_flags();
        let cleared = flags & !(HCK_FULLCKSUM | HCK_PARTIALCKSUM | HCK_IPV4_HDRCKSUM);
        if cleared != flags {
            m.set_offload_flags(cleared)?;
        }
        Ok(())
    }

    /// Push Ethernet/IPv6/UDP/Geneve in front of the frame. Lengths, the
    /// IPv6 next header, the EtherType, the Geneve option length and
    /// critical flag are set here from the frame and the options; the
    /// outer IPv6 header is sent without extension headers.
    pub fn push_encap(&mut self, mut encap: Encap, csum: OuterUdpCsum) -> Result<(), EmitError> {
        if self.hdrs.outer.is_some() {
            return Err(EmitError::AlreadyEncapsulated);
        }
        // The underlay carries only what its parser accepts: IP with a
        // transport header.
        let has_ip = matches!(self.hdrs.l3, Some(L3::Ipv4(_) | L3::Ipv6(_)));
        if !has_ip || self.hdrs.l4.is_none() {
            return Err(EmitError::NotEncapsulable);
        }
        let inner_len = self.mblk.len();
        encap.eth.ether_type = ether_type::IPV6;
        encap.ip6.ext = Ipv6ExtHdrs::default();
        encap.ip6.next_hdr = protocol::UDP;
        encap.ip6.proto = protocol::UDP;
        encap.geneve = GeneveHdr {
            oam: encap.geneve.oam,
            ..GeneveHdr::new(encap.geneve.vni, encap.geneve.options)
        };
        let geneve_len = encap.geneve.hdr_len();
        let udp_len = UdpHdr::LEN + geneve_len + inner_len;
        let udp_len16 = u16::try_from(udp_len).map_err(|_| EmitError::TooLong)?;
        encap.udp.len = udp_len16;
        encap.udp.csum = 0;
        encap.ip6.payload_len = udp_len16;

        let total = EtherHdr::LEN + Ipv6Hdr::LEN + udp_len - inner_len;
        let mut buf = [0u8; Encap::MAX_EMIT_LEN];
        let out = buf.get_mut(..total).ok_or(EmitError::TooLong)?;
        let (eth, rest) =
            out.split_first_chunk_mut::<{ EtherHdr::LEN }>().ok_or(EmitError::TooLong)?;
        encap.eth.emit(eth);
        let (ip, rest) =
            rest.split_first_chunk_mut::<{ Ipv6Hdr::LEN }>().ok_or(EmitError::TooLong)?;
        encap.ip6.emit_fixed(ip);
        let (udp, rest) =
            rest.split_first_chunk_mut::<{ UdpHdr::LEN }>().ok_or(EmitError::TooLong)?;
        if encap.geneve.emit(rest) != geneve_len {
            return Err(EmitError::HeaderLengthChanged(HeaderKind::Geneve));
        }
        if csum == OuterUdpCsum::Compute {
            let mut s = StreamCsum::new();
            encap.udp.emit(udp);
            s.add(udp);
            s.add(rest);
            for seg in self.mblk.segments() {
                s.add(seg);
            }
            let mut c = encap.ip6.pseudo_sum(udp_len);
            c.add_sum(s.sum());
            encap.udp.csum = match c.finish() {
                0 => 0xffff,
                v => v,
            };
        }
        encap.udp.emit(udp);

        let dst = self.mblk.prepend(total)?;
        dst.copy_from_slice(out_bytes(&buf, total));
        let o = &mut self.hdrs.offsets;
        let shift = total as u32;
        o.inner_eth += shift;
        o.l3 += shift;
        o.l4 += shift;
        o.body += shift;
        if self.hdrs.embedded.is_some() {
            o.embedded_l3 += shift;
            o.embedded_ulp += shift;
        }
        self.hdrs.outer = Some(encap);
        Ok(())
    }

    /// Remove the outer encapsulation of an underlay frame and return it.
    pub fn pop_encap(&mut self) -> Result<Encap, EmitError> {
        let enc = self.hdrs.outer.ok_or(EmitError::MissingHeader(HeaderKind::Geneve))?;
        let n = self.hdrs.offsets.inner_eth;
        // Offsets are checked before anything changes: headers a hook
        // edited must still lie after the encapsulation.
        let o = self.hdrs.offsets;
        let back = |v: u32| v.checked_sub(n).ok_or(EmitError::MissingHeader(HeaderKind::Ether));
        let (l3, l4, body) = (back(o.l3)?, back(o.l4)?, back(o.body)?);
        let (el3, eulp) = if self.hdrs.embedded.is_some() {
            (back(o.embedded_l3)?, back(o.embedded_ulp)?)
        } else {
            (o.embedded_l3, o.embedded_ulp)
        };
        self.mblk.trim_front(n as usize)?;
        let o = &mut self.hdrs.offsets;
        o.inner_eth = 0;
        o.l3 = l3;
        o.l4 = l4;
        o.body = body;
        o.embedded_l3 = el3;
        o.embedded_ulp = eulp;
        self.hdrs.outer = None;
        Ok(enc)
    }
}

/// The 16-bit word at `off` of the message.
fn read_u16(m: &MsgBlk, off: usize) -> Result<u16, EmitError> {
    let mut b = [0u8; 2];
    m.read_at(off, &mut b)?;
    Ok(u16::from_be_bytes(b))
}

fn out_bytes(buf: &[u8], n: usize) -> &[u8] {
    buf.get(..n).unwrap_or(&[])
}

/// The sum of `len` bytes of the message from `off`.
fn sum_range(m: &MsgBlk, off: usize, len: usize) -> Result<Csum, EmitError> {
    let mut s = StreamCsum::new();
    let mut pos = 0usize;
    let end = off.checked_add(len).ok_or(EmitError::TooLong)?;
    for seg in m.segments() {
        let seg_end = pos + seg.len();
        let a = off.max(pos);
        let b = end.min(seg_end);
        if a < b {
            s.add(seg.get(a - pos..b - pos).unwrap_or(&[]));
        }
        pos = seg_end;
        if pos >= end {
            break;
        }
    }
    if pos < end {
        return Err(EmitError::TooLong);
    }
    Ok(s.sum())
}

/// Rewrite an ICMP error's quoted IP header (updating its own checksum)
/// and transport bytes; the change is added to `delta`.
fn emit_embedded(
    m: &mut MsgBlk,
    e: &mut Embedded,
    l3_off: usize,
    ulp_off: usize,
    delta: &mut Csum,
) -> Result<(), EmitError> {
    match &mut e.l3 {
        EmbeddedL3::Ipv4(ip) => {
            let len = ip.hdr_len();
            if stated_len(m, l3_off, 0, false)? != len {
                return Err(EmitError::HeaderLengthChanged(HeaderKind::IcmpEmbedded));
            }
            let mut r = Rewrite::new(m, l3_off, len, HeaderKind::IcmpEmbedded, |b| ip.emit(b))?;
            let old = r.old_u16(10);
            r.set_new_u16(10, old);
            let ck = update(old, r.delta(0..len));
            r.set_new_u16(10, ck);
            ip.csum = ck;
            r.commit(m, delta)?;
        }
        EmbeddedL3::Ipv6(ip) => {
            let r = Rewrite::new(m, l3_off, Ipv6Hdr::LEN, HeaderKind::IcmpEmbedded, |b| {
                b.first_chunk_mut().map_or(0, |b| {
                    ip.emit_fixed(b);
                    Ipv6Hdr::LEN
                })
            })?;
            r.commit(m, delta)?;
        }
    }
    let r = Rewrite::new(m, ulp_off, Embedded::ULP_LEN, HeaderKind::IcmpEmbedded, |b| {
        b.first_chunk_mut::<{ Embedded::ULP_LEN }>().map_or(0, |b| {
            *b = e.ulp;
            Embedded::ULP_LEN
        })
    })?;
    r.commit(m, delta)
}

/// Rewrite the outer headers; `inner_delta` is the change already made
/// inside the UDP payload (for a non-zero outer UDP checksum).
fn emit_outer(m: &mut MsgBlk, enc: &mut Encap, inner_delta: Csum) -> Result<(), EmitError> {
    let mut unused = Csum::new();
    Rewrite::new(m, 0, EtherHdr::LEN, HeaderKind::Ether, |b| {
        b.first_chunk_mut().map_or(0, |b| {
            enc.eth.emit(b);
            EtherHdr::LEN
        })
    })?
    .commit(m, &mut unused)?;
    let ip = Rewrite::new(m, EtherHdr::LEN, Ipv6Hdr::LEN, HeaderKind::Ipv6, |b| {
        b.first_chunk_mut().map_or(0, |b| {
            enc.ip6.emit_fixed(b);
            Ipv6Hdr::LEN
        })
    })?;
    let mut d = ip.delta(8..40);
    ip.commit(m, &mut unused)?;
    let g_off = EtherHdr::LEN + enc.ip6.hdr_len() + UdpHdr::LEN;
    let g = Rewrite::new(m, g_off, GeneveHdr::LEN, HeaderKind::Geneve, |b| {
        b.first_chunk_mut().map_or(0, |b| {
            enc.geneve.emit_fixed(b);
            GeneveHdr::LEN
        })
    })?;
    d.add_sum(g.delta(0..GeneveHdr::LEN));
    g.commit(m, &mut unused)?;
    // Option values are written in place; adding or removing an option
    // would change the header's length (push a new encapsulation instead).
    let area_len = usize::from(enc.geneve.opt_len_words) * 4;
    if area_len > 0 {
        let mut old = [0u8; geneve::MAX_GENEVE_OPT_LEN];
        let old =
            old.get_mut(..area_len).ok_or(EmitError::HeaderLengthChanged(HeaderKind::Geneve))?;
        m.read_at(g_off + GeneveHdr::LEN, old)?;
        let mut new = [0u8; geneve::MAX_GENEVE_OPT_LEN];
        let new =
            new.get_mut(..area_len).ok_or(EmitError::HeaderLengthChanged(HeaderKind::Geneve))?;
        new.copy_from_slice(old);
        if !enc.geneve.options.write_values(new) {
            return Err(EmitError::HeaderLengthChanged(HeaderKind::Geneve));
        }
        if new != old {
            d.add_bytes(new);
            d.sub_bytes(old);
            m.write_at(g_off + GeneveHdr::LEN, new)?;
        }
    }
    let mut u = Rewrite::new(m, g_off - UdpHdr::LEN, UdpHdr::LEN, HeaderKind::Udp, |b| {
        b.first_chunk_mut().map_or(0, |b| {
            enc.udp.emit(b);
            UdpHdr::LEN
        })
    })?;
    let old = u.old_u16(6);
    u.set_new_u16(6, old);
    d.add_sum(u.delta(0..UdpHdr::LEN));
    d.add_sum(inner_delta);
    // A zero outer checksum means "none" and stays so.
    let ck = if old == 0 {
        0
    } else {
        match update(old, d) {
            0 => 0xffff,
            v => v,
        }
    };
    u.set_new_u16(6, ck);
    enc.udp.csum = ck;
    u.commit(m, &mut unused)
}
