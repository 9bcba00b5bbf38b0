//! The simulated far ends: what a guest or an internet host sends back
//! when an injection asks for a reply (`"reply": true`). The answer is
//! the minimal one a real stack would give, built with the engine's
//! [`FrameBuilder`] (lengths and checksums computed):
//!
//! - ICMP or ICMPv6 echo request: the echo reply (same id, sequence and
//!   data);
//! - UDP: a datagram back with the ports swapped and the same payload;
//! - TCP SYN: SYN-ACK; any other segment without RST: ACK of its data;
//! - anything else (ARP, NDP, ICMP errors, RST): no answer.
//!
//! Addresses are mirrored: Ethernet, IP and ports swapped.

use opte::ddi::MsgBlk;
use opte::packet::icmp::{icmpv4_type, icmpv6_type};
use opte::packet::tcp::tcp_flags;
use opte::packet::{FrameBuilder, IcmpHdr, L3, L4, Packet};

/// The reply a receiver sends to `frame` (a plain Ethernet frame, as a
/// guest or the internet sees it), or `None` with the reason there is
/// none.
pub fn answer(frame: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mblk = MsgBlk::from_bytes(0, frame).map_err(|_| "cannot copy the frame")?;
    let pkt = Packet::parse_guest(mblk).map_err(|_| "the frame does not parse")?;
    let h = *pkt.headers();
    drop(pkt);
    // The payload ends where the IP packet does (Ethernet padding is not
    // payload).
    let body_at = h.offsets.body as usize;
    let end = (h.offsets.l4 as usize).saturating_add(h.l4_len as usize).min(frame.len());
    let body = frame.get(body_at..end).unwrap_or(&[]);

    let mut eth = h.eth;
    std::mem::swap(&mut eth.src, &mut eth.dst);
    let l3 = match h.l3 {
        Some(L3::Ipv4(mut ip)) => {
            std::mem::swap(&mut ip.src, &mut ip.dst);
            ip.ttl = 64;
            ip.flags_frag = 0x4000;
            ip.set_options(&[]).map_err(|_| "cannot clear IPv4 options")?;
            L3::Ipv4(ip)
        }
        Some(L3::Ipv6(mut ip)) => {
            std::mem::swap(&mut ip.src, &mut ip.dst);
            ip.hop_limit = 64;
            ip.ext = Default::default();
            L3::Ipv6(ip)
        }
        Some(L3::Arp(_)) => return Err("ARP is answered by the gateway, not the guest"),
        None => return Err("not an IP packet"),
    };
    let (l4, body) = match h.l4 {
        Some(L4::Udp(mut u)) => {
            std::mem::swap(&mut u.src_port, &mut u.dst_port);
            (L4::Udp(u), body)
        }
        Some(L4::Tcp(t)) => {
            if t.flags & tcp_flags::RST != 0 {
                return Err("a TCP reset gets no answer");
            }
            let mut r = t;
            std::mem::swap(&mut r.src_port, &mut r.dst_port);
            r.set_options(&[]).map_err(|_| "cannot clear TCP options")?;
            let seen = u32::try_from(body.len()).unwrap_or(0)
                + u32::from(t.flags & (tcp_flags::SYN | tcp_flags::FIN) != 0);
            r.ack = t.seq.wrapping_add(seen);
            if t.flags & tcp_flags::SYN != 0 && t.flags & tcp_flags::ACK == 0 {
                r.flags = tcp_flags::SYN | tcp_flags::ACK;
                r.seq = 0x5eed_0000;
            } else {
                r.flags = tcp_flags::ACK;
                r.seq = t.ack;
            }
            (L4::Tcp(r), &[][..])
        }
        Some(L4::Icmpv4(i)) if i.ty == icmpv4_type::ECHO_REQUEST => {
            (L4::Icmpv4(IcmpHdr { ty: icmpv4_type::ECHO_REPLY, code: 0, ..i }), body)
        }
        Some(L4::Icmpv6(i)) if i.ty == icmpv6_type::ECHO_REQUEST && h.ndp.is_none() => {
            (L4::Icmpv6(IcmpHdr { ty: icmpv6_type::ECHO_REPLY, code: 0, ..i }), body)
        }
        Some(L4::Icmpv4(_) | L4::Icmpv6(_)) => return Err("only ICMP echo requests are answered"),
        None => return Err("no transport header to answer"),
    };
    let mut b = FrameBuilder::new(eth);
    b.l3 = Some(l3);
    b.l4 = Some(l4);
    Ok(b.to_bytes(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opte::packet::{EtherHdr, Ipv4Hdr, TcpHdr, UdpHdr};
    use opte_api::MacAddr;
    use std::net::Ipv4Addr;

    const A: MacAddr = MacAddr::from_bytes([2, 0, 0, 0, 0, 1]);
    const B: MacAddr = MacAddr::from_bytes([2, 0, 0, 0, 0, 2]);

    fn frame(l4: L4, body: &[u8]) -> Vec<u8> {
        let mut b = FrameBuilder::new(EtherHdr { dst: B, src: A, ether_type: 0 });
        b.l3 = Some(L3::Ipv4(Ipv4Hdr {
            ttl: 64,
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            ..Ipv4Hdr::EMPTY
        }));
        b.l4 = Some(l4);
        b.to_bytes(body)
    }

    fn parsed(f: &[u8]) -> opte::packet::Headers {
        *Packet::parse_guest(MsgBlk::from_bytes(0, f).unwrap()).unwrap().headers()
    }

    #[test]
    fn a_syn_gets_a_syn_ack_and_udp_comes_back_mirrored() {
        let k = fakekernel::scope();
        let syn = TcpHdr {
            src_port: 40000,
            dst_port: 22,
            seq: 77,
            flags: tcp_flags::SYN,
            window: 1000,
            ..TcpHdr::EMPTY
        };
        let h = parsed(&answer(&frame(L4::Tcp(syn), &[])).unwrap());
        assert_eq!((h.eth.src, h.eth.dst), (B, A));
        let Some(L4::Tcp(t)) = h.l4 else { panic!("not TCP") };
        assert_eq!((t.src_port, t.dst_port, t.ack), (22, 40000, 78));
        assert_eq!(t.flags, tcp_flags::SYN | tcp_flags::ACK);

        let u = UdpHdr { src_port: 5000, dst_port: 7000, len: 0, csum: 0 };
        let reply = answer(&frame(L4::Udp(u), b"hello")).unwrap();
        let h = parsed(&reply);
        let Some(L3::Ipv4(ip)) = h.l3 else { panic!("not IPv4") };
        assert_eq!((ip.src, ip.dst), (Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(h.l4.map(|l| l.ports()), Some((7000, 5000)));
        assert!(reply.ends_with(b"hello"));

        let rst = TcpHdr { flags: tcp_flags::RST, ..syn };
        assert_eq!(answer(&frame(L4::Tcp(rst), &[])), Err("a TCP reset gets no answer"));
        k.assert_clean();
    }
}
