//! [`FrameBuilder`]: serialize header values and a body into a new frame,
//! with every length and checksum computed. The gateway builds its
//! replies (ARP, NDP, ICMP, DHCP) with it, and tests build packets with it.
//!
//! It shares no code path with the parser: lengths and checksums are
//! computed here from the values, so a parser test can trust its input.

use alloc::vec::Vec;

use super::checksum::Csum;
use super::ether::{EtherHdr, ether_type};
use super::geneve::GeneveHdr;
use super::icmp::{Embedded, EmbeddedL3, IcmpHdr};
use super::ip4::protocol;
use super::ip6::Ipv6Hdr;
use super::ndp::NdpMsg;
use super::udp::UdpHdr;
use super::{Encap, L3, L4};
use crate::ddi::MsgBlk;
use crate::ddi::mblk::MsgBlkError;

/// The headers of a frame to build. Length, checksum, next-header and
/// EtherType fields are filled in by [`FrameBuilder::to_bytes`]; the other
/// fields are written as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameBuilder {
    /// Geneve encapsulation to put in front (outer UDP checksum zero).
    pub outer: Option<Encap>,
    pub eth: EtherHdr,
    pub l3: Option<L3>,
    pub l4: Option<L4>,
    /// The quote of an ICMP error (written after the ICMP header).
    pub embedded: Option<Embedded>,
    /// An NDP message (written after the ICMPv6 header; its type and
    /// type-specific bytes replace the ICMPv6 header's).
    pub ndp: Option<NdpMsg>,
}

impl FrameBuilder {
    /// A frame with only an Ethernet header.
    pub fn new(eth: EtherHdr) -> Self {
        Self { outer: None, eth, l3: None, l4: None, embedded: None, ndp: None }
    }

    /// The frame's bytes, with `body` after the last header.
    pub fn to_bytes(&self, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + body.len());
        if let Some(enc) = &self.outer {
            // Reserve room; filled once the inner length is known.
            let hdr_len = EtherHdr::LEN
                + Ipv6Hdr::LEN
                + UdpHdr::LEN
                + enc.geneve.options.wire_len()
                + GeneveHdr::LEN;
            out.resize(hdr_len, 0);
        }
        let inner_start = out.len();
        self.emit_inner(&mut out, body);
        if let Some(enc) = &self.outer {
            let inner_len = out.len() - inner_start;
            let mut e = *enc;
            e.geneve = GeneveHdr::new(enc.geneve.vni, enc.geneve.options);
            e.geneve.oam = enc.geneve.oam;
            let udp_len = (UdpHdr::LEN + e.geneve.hdr_len() + inner_len) as u16;
            e.eth.ether_type = ether_type::IPV6;
            e.ip6.ext = Default::default();
            e.ip6.next_hdr = protocol::UDP;
            e.ip6.proto = protocol::UDP;
            e.ip6.payload_len = udp_len;
            e.udp.len = udp_len;
            e.udp.csum = 0;
            let mut hdr = [0u8; Encap::MAX_EMIT_LEN];
            let mut n = 0;
            if let Some(b) = hdr.first_chunk_mut() {
                e.eth.emit(b);
                n += EtherHdr::LEN;
            }
            if let Some(b) = hdr.get_mut(n..).and_then(|s| s.first_chunk_mut()) {
                e.ip6.emit_fixed(b);
                n += Ipv6Hdr::LEN;
            }
            if let Some(b) = hdr.get_mut(n..).and_then(|s| s.first_chunk_mut()) {
                e.udp.emit(b);
                n += UdpHdr::LEN;
            }
            n += hdr.get_mut(n..).map_or(0, |s| e.geneve.emit(s));
            if let (Some(dst), Some(src)) = (out.get_mut(..n), hdr.get(..n)) {
                dst.copy_from_slice(src);
            }
        }
        out
    }

    /// The frame as a single-block message with `headroom` bytes free in
    /// front.
    pub fn to_mblk(&self, headroom: usize, body: &[u8]) -> Result<MsgBlk, MsgBlkError> {
        MsgBlk::from_bytes(headroom, &self.to_bytes(body))
    }

    fn emit_inner(&self, out: &mut Vec<u8>, body: &[u8]) {
        let mut eth = self.eth;
        match &self.l3 {
            Some(L3::Ipv4(_)) => eth.ether_type = ether_type::IPV4,
            Some(L3::Ipv6(_)) => eth.ether_type = ether_type::IPV6,
            Some(L3::Arp(_)) => eth.ether_type = ether_type::ARP,
            None => {}
        }
        let mut b = [0u8; EtherHdr::LEN];
        eth.emit(&mut b);
        out.extend_from_slice(&b);

        match &self.l3 {
            Some(L3::Arp(a)) => {
                let mut b = [0u8; super::ArpEthIpv4::LEN];
                a.emit(&mut b);
                out.extend_from_slice(&b);
                out.extend_from_slice(body);
            }
            Some(L3::Ipv4(ip)) => {
                let mut ip = *ip;
                if let Some(p) = self.l4_proto() {
                    ip.proto = p;
                }
                // Room for the header, then the transport bytes in place:
                // the header needs their length, the checksum the header.
                let ip_at = out.len();
                out.resize(ip_at + ip.hdr_len(), 0);
                let l4_at = out.len();
                self.write_l4(out, body);
                let l4_len = out.len() - l4_at;
                ip.total_len = (ip.hdr_len() + l4_len) as u16;
                ip.csum = ip.compute_csum();
                if let Some(h) = out.get_mut(ip_at..l4_at) {
                    ip.emit(h);
                }
                let pseudo = ip.pseudo_sum(l4_len);
                if let Some(l4) = out.get_mut(l4_at..) {
                    self.fill_l4_csum(l4, pseudo, false);
                }
            }
            Some(L3::Ipv6(ip)) => {
                let mut ip = *ip;
                if let Some(p) = self.l4_proto() {
                    ip.proto = p;
                }
                match ip.ext.iter().next() {
                    Some(first) => ip.next_hdr = first.protocol(),
                    None => ip.next_hdr = ip.proto,
                }
                let ip_at = out.len();
                out.resize(ip_at + ip.hdr_len(), 0);
                let l4_at = out.len();
                self.write_l4(out, body);
                let l4_len = out.len() - l4_at;
                ip.payload_len = (ip.ext.wire_len() + l4_len) as u16;
                if let Some(h) = out.get_mut(ip_at..l4_at) {
                    ip.emit(h);
                }
                let pseudo = ip.pseudo_sum(l4_len);
                if let Some(l4) = out.get_mut(l4_at..) {
                    self.fill_l4_csum(l4, pseudo, true);
                }
            }
            None => out.extend_from_slice(body),
        }
    }

    fn l4_proto(&self) -> Option<u8> {
        Some(match self.l4? {
            L4::Tcp(_) => protocol::TCP,
            L4::Udp(_) => protocol::UDP,
            L4::Icmpv4(_) => protocol::ICMP,
            L4::Icmpv6(_) => protocol::ICMPV6,
        })
    }

    /// Append the transport header (checksum zero), quote or NDP data,
    /// and body.
    fn write_l4(&self, v: &mut Vec<u8>, body: &[u8]) {
        match &self.l4 {
            Some(L4::Tcp(t)) => {
                let mut t = *t;
                t.csum = 0;
                let mut b = [0u8; 60];
                let n = t.emit(&mut b);
                v.extend_from_slice(b.get(..n).unwrap_or(&[]));
            }
            Some(L4::Udp(u)) => {
                let mut u = *u;
                u.csum = 0;
                u.len = (UdpHdr::LEN + body.len()) as u16;
                let mut b = [0u8; UdpHdr::LEN];
                u.emit(&mut b);
                v.extend_from_slice(&b);
            }
            Some(L4::Icmpv4(i)) | Some(L4::Icmpv6(i)) => {
                let mut i = *i;
                i.csum = 0;
                if let Some(ndp) = &self.ndp {
                    i.ty = ndp.icmp_type();
                    i.rest = ndp.icmp_rest();
                }
                let mut b = [0u8; IcmpHdr::LEN];
                i.emit(&mut b);
                v.extend_from_slice(&b);
                if let Some(e) = &self.embedded {
                    // A quoted IPv6 header with extension headers can be
                    // longer than any IPv4 header: size the buffer to it.
                    let hdr_len = match &e.l3 {
                        EmbeddedL3::Ipv4(ip) => ip.hdr_len(),
                        EmbeddedL3::Ipv6(ip) => ip.hdr_len(),
                    };
                    let mut q = alloc::vec![0u8; hdr_len];
                    let n = match &e.l3 {
                        EmbeddedL3::Ipv4(ip) => ip.emit(&mut q),
                        EmbeddedL3::Ipv6(ip) => ip.emit(&mut q),
                    };
                    v.extend_from_slice(q.get(..n).unwrap_or(&[]));
                    v.extend_from_slice(&e.ulp);
                }
                if let Some(ndp) = &self.ndp {
                    let mut q = [0u8; 128];
                    let n = ndp.emit_body(&mut q);
                    v.extend_from_slice(q.get(..n).unwrap_or(&[]));
                }
            }
            None => {}
        }
        v.extend_from_slice(body);
    }

    /// Compute the transport checksum over `l4` (header with a zero
    /// checksum, and payload) and store it.
    fn fill_l4_csum(&self, l4: &mut [u8], pseudo: Csum, v6: bool) {
        let (at, with_pseudo, udp) = match &self.l4 {
            Some(L4::Tcp(_)) => (16, true, false),
            Some(L4::Udp(_)) => (6, true, true),
            Some(L4::Icmpv4(_)) => (2, false, false),
            Some(L4::Icmpv6(_)) => (2, v6, false),
            None => return,
        };
        let mut c = Csum::new();
        c.add_bytes(l4);
        if with_pseudo {
            c.add_sum(pseudo);
        }
        let mut ck = c.finish();
        if udp && ck == 0 {
            ck = 0xffff;
        }
        if let Some(f) = l4.get_mut(at..at + 2) {
            f.copy_from_slice(&ck.to_be_bytes());
        }
    }
}
