//! Parsing: the two entry points, a guest-side frame and an underlay
//! frame, reading every header in place through a [`ChainReader`].
//!
//! Every length a header states is checked against the bytes the packet
//! holds before anything after it is read: IPv4 total length, IPv6
//! payload length, TCP data offset, UDP length (not for fragments, whose
//! UDP length covers the whole datagram), the Geneve option area and each
//! option, ICMP quotes and NDP options. Loops are bounded by
//! [`MAX_IPV6_EXT_HDRS`], [`MAX_NDP_OPTIONS`] and the Geneve option area
//! (at most 63 options).

use super::arp::ArpEthIpv4;
use super::error::{HeaderKind, ParseError};
use super::ether::{EtherHdr, ether_type};
use super::geneve::GeneveHdr;
use super::icmp::{Embedded, EmbeddedL3, IcmpHdr};
use super::ip4::{Ipv4Hdr, protocol};
use super::ip6::{Ipv6Ext, Ipv6Hdr};
use super::ndp::{MAX_NDP_OPTIONS, NdpMsg};
use super::reader::{ChainReader, MAX_TAKE, Scratch};
use super::tcp::TcpHdr;
use super::udp::{GENEVE_PORT, UdpHdr};
use super::{Encap, Headers, L3, L4, Offsets};
use crate::ddi::MsgBlk;

/// Which frame the parser expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// From a guest: Ethernet, then ARP or IP; an unknown IP protocol is
    /// carried without a transport header.
    Guest,
    /// Inside Geneve: IP and a known transport header are required.
    Inner,
}

impl Headers {
    /// Parse a frame a guest sent (no encapsulation).
    pub fn parse_guest(pkt: &MsgBlk) -> Result<Self, ParseError> {
        let mut rdr = ChainReader::new(pkt);
        let total = pkt.len();
        let mut h = Headers::EMPTY;
        parse_frame(&mut rdr, total, Expect::Guest, &mut h)?;
        h.straddled = rdr.straddled();
        Ok(h)
    }

    /// Parse a frame from the underlay: Ethernet, IPv6, UDP to port 6081,
    /// Geneve with options, and the encapsulated Ethernet frame with its
    /// IP and transport headers.
    pub fn parse_underlay(pkt: &MsgBlk) -> Result<Self, ParseError> {
        let mut rdr = ChainReader::new(pkt);
        let total = pkt.len();
        let mut s: Scratch = [0; MAX_TAKE];

        let eth = EtherHdr::parse(rdr.take(EtherHdr::LEN, &mut s, HeaderKind::Ether)?)?;
        if eth.ether_type != ether_type::IPV6 {
            return Err(ParseError::UnsupportedProtocol(HeaderKind::Ether));
        }
        let mut h = Headers::EMPTY;
        let enc = h.outer.insert(Encap {
            eth,
            ip6: Ipv6Hdr::EMPTY,
            udp: UdpHdr { src_port: 0, dst_port: 0, len: 0, csum: 0 },
            geneve: GeneveHdr::EMPTY,
        });
        let ip6 = &mut enc.ip6;
        parse_ipv6(&mut rdr, total, true, ip6)?;
        if ip6.proto != protocol::UDP || ip6.is_later_fragment() {
            return Err(ParseError::UnsupportedProtocol(HeaderKind::Ipv6));
        }
        let udp_off = rdr.pos();
        let udp = UdpHdr::parse(rdr.take(UdpHdr::LEN, &mut s, HeaderKind::Udp)?)?;
        if udp.dst_port != GENEVE_PORT {
            return Err(ParseError::UnsupportedProtocol(HeaderKind::Udp));
        }
        let ip_end = udp_off + usize::from(ip6.payload_len) - ip6.ext.wire_len();
        // The UDP payload must hold the fixed Geneve header.
        if udp_off + usize::from(udp.len) > ip_end
            || usize::from(udp.len) < UdpHdr::LEN + GeneveHdr::LEN
        {
            return Err(ParseError::BadLength(HeaderKind::Udp));
        }
        let udp_end = udp_off + usize::from(udp.len);

        enc.udp = udp;
        let geneve = &mut enc.geneve;
        *geneve = GeneveHdr::parse_fixed(rdr.take(GeneveHdr::LEN, &mut s, HeaderKind::Geneve)?)?;
        let opt_area = usize::from(geneve.opt_len_words) * 4;
        if rdr.pos() + opt_area > udp_end {
            return Err(ParseError::BadTunnelOption);
        }
        let mut left = opt_area;
        while left > 0 {
            // Each option is at least 4 bytes, so this runs at most 63 times.
            let oh = rdr.take(4, &mut s, HeaderKind::Geneve)?;
            let hdr: [u8; 4] = oh.try_into().map_err(|_| ParseError::BadTunnelOption)?;
            let body_len = usize::from(hdr[3] & 0x1f) * 4;
            left = left.checked_sub(4 + body_len).ok_or(ParseError::BadTunnelOption)?;
            let body = rdr.take(body_len, &mut s, HeaderKind::Geneve)?;
            geneve.options.add(&hdr, body)?;
        }

        parse_frame(&mut rdr, udp_end, Expect::Inner, &mut h)?;
        h.straddled = rdr.straddled();
        Ok(h)
    }
}

/// Parse an Ethernet frame (guest frame or Geneve payload) whose bytes end
/// at `end` into `h` (whose inner fields are empty).
#[inline(always)]
fn parse_frame(
    rdr: &mut ChainReader<'_>,
    end: usize,
    expect: Expect,
    h: &mut Headers,
) -> Result<(), ParseError> {
    let mut s: Scratch = [0; MAX_TAKE];
    let eth_off = rdr.pos();
    let eth = EtherHdr::parse(rdr.take(EtherHdr::LEN, &mut s, HeaderKind::Ether)?)?;
    let l3_off = rdr.pos();
    h.eth = eth;
    h.offsets = Offsets {
        inner_eth: eth_off as u32,
        l3: l3_off as u32,
        l4: l3_off as u32,
        body: l3_off as u32,
        embedded_l3: 0,
        embedded_ulp: 0,
    };
    let (l4_len, proto, later_frag) = match eth.ether_type {
        ether_type::IPV4 => {
            let L3::Ipv4(ip) = h.l3.insert(L3::Ipv4(Ipv4Hdr::EMPTY)) else {
                return Err(ParseError::BadValue(HeaderKind::Ipv4));
            };
            parse_ipv4(rdr, ip)?;
            if l3_off + usize::from(ip.total_len) > end {
                return Err(ParseError::BadLength(HeaderKind::Ipv4));
            }
            (usize::from(ip.total_len) - ip.hdr_len(), ip.proto, ip.is_later_fragment())
        }
        ether_type::IPV6 => {
            let L3::Ipv6(ip) = h.l3.insert(L3::Ipv6(Ipv6Hdr::EMPTY)) else {
                return Err(ParseError::BadValue(HeaderKind::Ipv6));
            };
            let l4_len = parse_ipv6(rdr, end, true, ip)?;
            (l4_len, ip.proto, ip.is_later_fragment())
        }
        ether_type::ARP if expect == Expect::Guest => {
            let arp = ArpEthIpv4::parse(rdr.take(ArpEthIpv4::LEN, &mut s, HeaderKind::Arp)?)?;
            h.l3 = Some(L3::Arp(arp));
            let p = rdr.pos() as u32;
            h.offsets.l4 = p;
            h.offsets.body = p;
            return Ok(());
        }
        _ => return Err(ParseError::UnsupportedProtocol(HeaderKind::Ether)),
    };
    let l4_off = rdr.pos();
    h.offsets.l4 = l4_off as u32;
    h.offsets.body = l4_off as u32;
    h.l4_len = l4_len as u32;
    let l3_kind =
        if eth.ether_type == ether_type::IPV4 { HeaderKind::Ipv4 } else { HeaderKind::Ipv6 };
    if later_frag {
        // A later fragment carries no transport header.
        return if expect == Expect::Inner {
            Err(ParseError::UnsupportedProtocol(l3_kind))
        } else {
            Ok(())
        };
    }
    let first_frag = match &h.l3 {
        Some(L3::Ipv4(ip)) => ip.flags_frag & Ipv4Hdr::MF != 0,
        Some(L3::Ipv6(ip)) => ip.is_fragment(),
        _ => false,
    };
    let hdr_len = match (proto, eth.ether_type) {
        (protocol::TCP, _) => {
            let L4::Tcp(tcp) = h.l4.insert(L4::Tcp(TcpHdr::EMPTY)) else {
                return Err(ParseError::BadValue(HeaderKind::Tcp));
            };
            let opt_len = tcp.read_fixed(rdr.take(TcpHdr::MIN_LEN, &mut s, HeaderKind::Tcp)?)?;
            if TcpHdr::MIN_LEN + opt_len > l4_len {
                return Err(ParseError::BadLength(HeaderKind::Tcp));
            }
            if opt_len > 0 {
                tcp.set_options(rdr.take(opt_len, &mut s, HeaderKind::Tcp)?)?;
            }
            tcp.hdr_len()
        }
        (protocol::UDP, _) => {
            let udp = UdpHdr::parse(rdr.take(UdpHdr::LEN, &mut s, HeaderKind::Udp)?)?;
            if !first_frag && usize::from(udp.len) > l4_len {
                return Err(ParseError::BadLength(HeaderKind::Udp));
            }
            h.l4 = Some(L4::Udp(udp));
            UdpHdr::LEN
        }
        (protocol::ICMP, ether_type::IPV4) => {
            let icmp = IcmpHdr::parse(
                rdr.take(IcmpHdr::LEN, &mut s, HeaderKind::Icmpv4)?,
                HeaderKind::Icmpv4,
            )?;
            if icmp.is_v4_error() && !first_frag {
                h.embedded = Some(parse_embedded(rdr, &mut h.offsets, l4_off + l4_len, false)?);
            }
            h.l4 = Some(L4::Icmpv4(icmp));
            IcmpHdr::LEN
        }
        (protocol::ICMPV6, ether_type::IPV6) => {
            let icmp = IcmpHdr::parse(
                rdr.take(IcmpHdr::LEN, &mut s, HeaderKind::Icmpv6)?,
                HeaderKind::Icmpv6,
            )?;
            if first_frag {
                // Quotes and NDP are only read from unfragmented messages.
            } else if icmp.is_v6_error() {
                h.embedded = Some(parse_embedded(rdr, &mut h.offsets, l4_off + l4_len, true)?);
            } else if NdpMsg::is_ndp(icmp.ty) {
                h.ndp = Some(parse_ndp(rdr, &icmp, l4_off + l4_len)?);
            }
            h.l4 = Some(L4::Icmpv6(icmp));
            IcmpHdr::LEN
        }
        _ if expect == Expect::Inner => return Err(ParseError::UnsupportedProtocol(l3_kind)),
        _ => return Ok(()),
    };
    // The transport header lies inside the IP payload, a first fragment's
    // too: read from bytes after it (Ethernet padding), a rewrite would
    // land outside the packet.
    if rdr.pos() > l4_off + l4_len {
        h.l4 = None;
        return Err(ParseError::BadLength(l3_kind));
    }
    h.offsets.body = (l4_off + hdr_len) as u32;
    Ok(())
}

/// Parse an IPv4 header with its options into `ip`.
#[inline(always)]
fn parse_ipv4(rdr: &mut ChainReader<'_>, ip: &mut Ipv4Hdr) -> Result<(), ParseError> {
    let mut s: Scratch = [0; MAX_TAKE];
    let opt_len = ip.read_fixed(rdr.take(Ipv4Hdr::MIN_LEN, &mut s, HeaderKind::Ipv4)?)?;
    if opt_len > 0 {
        ip.set_options(rdr.take(opt_len, &mut s, HeaderKind::Ipv4)?)?;
    }
    Ok(())
}

/// Parse an IPv6 header and its extension headers into `ip`. With
/// `check_len`, the payload length must fit before `end`, and the
/// extension headers inside it; returns the upper-layer length.
#[inline(always)]
fn parse_ipv6(
    rdr: &mut ChainReader<'_>,
    end: usize,
    check_len: bool,
    ip: &mut Ipv6Hdr,
) -> Result<usize, ParseError> {
    let mut s: Scratch = [0; MAX_TAKE];
    let start = rdr.pos();
    ip.read_fixed(rdr.take(Ipv6Hdr::LEN, &mut s, HeaderKind::Ipv6)?)?;
    let payload = usize::from(ip.payload_len);
    if check_len && start + Ipv6Hdr::LEN + payload > end {
        return Err(ParseError::BadLength(HeaderKind::Ipv6));
    }
    let mut next = ip.next_hdr;
    let mut ext_len = 0usize;
    while Ipv6Ext::is_ext(next) {
        if ip.ext.len() == super::MAX_IPV6_EXT_HDRS {
            return Err(ParseError::TooManyExtHeaders);
        }
        let (ext, nh) = Ipv6Hdr::parse_ext(next, rdr.take(8, &mut s, HeaderKind::Ipv6Ext)?)?;
        let len = ext.wire_len();
        ext_len += len;
        if check_len && ext_len > payload {
            return Err(ParseError::BadLength(HeaderKind::Ipv6Ext));
        }
        rdr.skip(len - 8, HeaderKind::Ipv6Ext)?;
        ip.ext.push(ext)?;
        next = nh;
    }
    ip.proto = next;
    Ok(payload.saturating_sub(ext_len))
}

/// Parse the IP header and first 8 transport bytes an ICMP error quotes;
/// the quote must end before `end`.
fn parse_embedded(
    rdr: &mut ChainReader<'_>,
    offsets: &mut Offsets,
    end: usize,
    v6: bool,
) -> Result<Embedded, ParseError> {
    let trunc = |e: ParseError| match e {
        ParseError::Truncated(_) => ParseError::Truncated(HeaderKind::IcmpEmbedded),
        e => e,
    };
    // The quote's fixed IP header and transport bytes must lie before
    // `end`, or they would be read from whatever follows the packet.
    let fixed = if v6 { Ipv6Hdr::LEN } else { Ipv4Hdr::MIN_LEN };
    if rdr.pos() + fixed + Embedded::ULP_LEN > end {
        return Err(ParseError::Truncated(HeaderKind::IcmpEmbedded));
    }
    offsets.embedded_l3 = rdr.pos() as u32;
    let l3 = if v6 {
        let mut ip = Ipv6Hdr::EMPTY;
        parse_ipv6(rdr, end, false, &mut ip).map_err(trunc)?;
        EmbeddedL3::Ipv6(ip)
    } else {
        let mut ip = Ipv4Hdr::EMPTY;
        parse_ipv4(rdr, &mut ip).map_err(trunc)?;
        EmbeddedL3::Ipv4(ip)
    };
    offsets.embedded_ulp = rdr.pos() as u32;
    let mut s: Scratch = [0; MAX_TAKE];
    let ulp: [u8; Embedded::ULP_LEN] = rdr
        .take(Embedded::ULP_LEN, &mut s, HeaderKind::IcmpEmbedded)?
        .try_into()
        .map_err(|_| ParseError::Truncated(HeaderKind::IcmpEmbedded))?;
    if rdr.pos() > end {
        return Err(ParseError::Truncated(HeaderKind::IcmpEmbedded));
    }
    Ok(Embedded { l3, ulp })
}

/// Parse an NDP message's fixed data and options, which end at `end`.
fn parse_ndp(rdr: &mut ChainReader<'_>, icmp: &IcmpHdr, end: usize) -> Result<NdpMsg, ParseError> {
    let mut s: Scratch = [0; MAX_TAKE];
    let fixed = rdr.take(NdpMsg::fixed_len(icmp.ty), &mut s, HeaderKind::Ndp)?;
    let mut msg = NdpMsg::parse_fixed(icmp.ty, icmp.rest, fixed)?;
    if rdr.pos() > end {
        return Err(ParseError::Truncated(HeaderKind::Ndp));
    }
    let mut count = 0;
    while rdr.pos() < end {
        if count == MAX_NDP_OPTIONS {
            return Err(ParseError::TooManyOptions(HeaderKind::Ndp));
        }
        count += 1;
        let oh = rdr.take(2, &mut s, HeaderKind::Ndp)?;
        let (ty, units) = match oh {
            [t, u] => (*t, usize::from(*u)),
            _ => return Err(ParseError::Truncated(HeaderKind::Ndp)),
        };
        if units == 0 || rdr.pos() - 2 + units * 8 > end {
            return Err(ParseError::BadLength(HeaderKind::Ndp));
        }
        let body_len = units * 8 - 2;
        if body_len <= MAX_TAKE {
            let body = rdr.take(body_len, &mut s, HeaderKind::Ndp)?;
            msg.options_mut().add(ty, body)?;
        } else {
            rdr.skip(body_len, HeaderKind::Ndp)?;
            msg.options_mut().add(ty, &[])?;
        }
    }
    Ok(msg)
}
