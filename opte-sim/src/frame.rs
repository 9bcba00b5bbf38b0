//! Reading frames for people: [`FrameSummary`] says what a frame is
//! (encapsulation, addresses, protocol, ports, ICMP and ARP details) so a
//! report shows a packet before and after each port and the
//! transformation is visible. Frames are read with the engine's own
//! parser (`opte::packet`); one it refuses is summarized by the error.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use opte::ddi::MsgBlk;
use opte::packet::icmp::{icmpv4_type, icmpv6_type};
use opte::packet::tcp::tcp_flags;
use opte::packet::{ArpEthIpv4, Headers, IcmpHdr, L3, L4, NdpMsg, Packet};
use serde::Serialize;

/// What a frame is, in fields (for `--json`) and one line (for text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FrameSummary {
    /// Bytes in the frame.
    pub len: usize,
    /// The Geneve encapsulation, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outer: Option<OuterSummary>,
    /// The (inner) Ethernet source.
    pub src_mac: String,
    /// The (inner) Ethernet destination.
    pub dst_mac: String,
    /// `IPv4`, `IPv6`, `ARP` or the EtherType in hex.
    pub l3: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The (inner) IP source, if IP.
    pub src: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The (inner) IP destination, if IP.
    pub dst: Option<IpAddr>,
    /// `TCP`, `UDP`, `ICMP`, `ICMPv6`, or the protocol number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proto: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The TCP or UDP source port.
    pub src_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The TCP or UDP destination port.
    pub dst_port: Option<u16>,
    /// Protocol details: TCP flags, ICMP type, ARP operation, NDP message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<String>,
    /// Why the engine's parser refused the frame, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parse_error: Option<String>,
}

/// The outer headers of an encapsulated frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OuterSummary {
    /// The outer IPv6 source (the sending host or boundary).
    pub src: Ipv6Addr,
    /// The outer IPv6 destination (where the underlay takes it).
    pub dst: Ipv6Addr,
    /// The outer UDP source port (the flow hash, for ECMP).
    pub udp_src: u16,
    /// The Geneve VNI.
    pub vni: u32,
    /// The Oxide external tag (traffic from or to a boundary).
    pub external: bool,
}

/// The headers of a frame as the engine parses it: underlay (Geneve)
/// frames when they parse as such, guest frames otherwise.
pub fn parse_headers(bytes: &[u8]) -> Result<Headers, String> {
    let mblk = |b: &[u8]| MsgBlk::from_bytes(0, b).map_err(|e| format!("{e:?}"));
    if looks_encapsulated(bytes)
        && let Ok(p) = Packet::parse_underlay(mblk(bytes)?)
    {
        return Ok(*p.headers());
    }
    match Packet::parse_guest(mblk(bytes)?) {
        Ok(p) => Ok(*p.headers()),
        Err(f) => Err(format!("{}", f.error)),
    }
}

/// True when the frame is Ethernet + IPv6 + UDP to the Geneve port (the
/// IPv6 header without extension headers; one with them is still tried
/// as Geneve when the next header is not UDP).
pub fn looks_encapsulated(bytes: &[u8]) -> bool {
    let ethertype = bytes.get(12..14).map(|b| u16::from_be_bytes([b[0], b[1]]));
    if ethertype != Some(0x86dd) {
        return false;
    }
    match bytes.get(20) {
        Some(17) => bytes.get(56..58).map(|b| u16::from_be_bytes([b[0], b[1]])) == Some(6081),
        Some(0 | 43 | 60) => true,
        _ => false,
    }
}

impl FrameSummary {
    /// Summarize a frame.
    pub fn of(bytes: &[u8]) -> Self {
        match parse_headers(bytes) {
            Ok(h) => {
                let mut s = Self::from_headers(bytes.len(), &h);
                if s.proto.as_deref() == Some("UDP")
                    && matches!((s.src_port, s.dst_port), (Some(67 | 68), Some(67 | 68)))
                {
                    s.info = dhcp_info(bytes.get(h.offsets.body as usize..).unwrap_or(&[]));
                }
                s
            }
            Err(e) => Self {
                len: bytes.len(),
                outer: None,
                src_mac: mac_at(bytes, 6),
                dst_mac: mac_at(bytes, 0),
                l3: bytes
                    .get(12..14)
                    .map_or(String::from("?"), |b| format!("0x{:02x}{:02x}", b[0], b[1])),
                src: None,
                dst: None,
                proto: None,
                src_port: None,
                dst_port: None,
                info: None,
                parse_error: Some(e),
            },
        }
    }

    /// Summarize parsed headers of a frame of `len` bytes.
    pub fn from_headers(len: usize, h: &Headers) -> Self {
        let outer = h.outer.as_ref().map(|o| OuterSummary {
            src: o.ip6.src,
            dst: o.ip6.dst,
            udp_src: o.udp.src_port,
            vni: o.geneve.vni.value(),
            external: o.geneve.options.external,
        });
        let mut s = Self {
            len,
            outer,
            src_mac: h.eth.src.to_string(),
            dst_mac: h.eth.dst.to_string(),
            l3: format!("0x{:04x}", h.eth.ether_type),
            src: None,
            dst: None,
            proto: None,
            src_port: None,
            dst_port: None,
            info: None,
            parse_error: None,
        };
        let proto_num = match &h.l3 {
            Some(L3::Ipv4(ip)) => {
                s.l3 = "IPv4".into();
                s.src = Some(IpAddr::V4(ip.src));
                s.dst = Some(IpAddr::V4(ip.dst));
                Some(ip.proto)
            }
            Some(L3::Ipv6(ip)) => {
                s.l3 = "IPv6".into();
                s.src = Some(IpAddr::V6(ip.src));
                s.dst = Some(IpAddr::V6(ip.dst));
                Some(ip.proto)
            }
            Some(L3::Arp(a)) => {
                s.l3 = "ARP".into();
                s.info = Some(arp_info(a));
                None
            }
            None => None,
        };
        match &h.l4 {
            Some(L4::Tcp(t)) => {
                s.proto = Some("TCP".into());
                s.src_port = Some(t.src_port);
                s.dst_port = Some(t.dst_port);
                s.info = Some(format!("flags [{}] seq {} ack {}", flags(t.flags), t.seq, t.ack));
            }
            Some(L4::Udp(u)) => {
                s.proto = Some("UDP".into());
                s.src_port = Some(u.src_port);
                s.dst_port = Some(u.dst_port);
            }
            Some(L4::Icmpv4(i)) => {
                s.proto = Some("ICMP".into());
                s.info = Some(icmp4_info(i));
            }
            Some(L4::Icmpv6(i)) => {
                s.proto = Some("ICMPv6".into());
                s.info = Some(match &h.ndp {
                    Some(n) => ndp_info(n),
                    None => icmp6_info(i),
                });
            }
            None => {
                if let Some(p) = proto_num {
                    s.proto = Some(format!("proto {p}"));
                }
            }
        }
        s
    }
}

/// The DHCP message type and offered address of a BOOTP body (RFC 2131,
/// RFC 2132 option 53), if it is one.
fn dhcp_info(body: &[u8]) -> Option<String> {
    const COOKIE: [u8; 4] = [99, 130, 83, 99];
    const OPTIONS_AT: usize = 240;
    if body.get(236..OPTIONS_AT)? != COOKIE {
        return None;
    }
    let yiaddr = std::net::Ipv4Addr::from(<[u8; 4]>::try_from(body.get(16..20)?).ok()?);
    let mut at = OPTIONS_AT;
    // At most 255 options: a malformed body cannot loop for long.
    for _ in 0..255 {
        match *body.get(at)? {
            0 => at += 1,
            255 => return None,
            code => {
                let len = usize::from(*body.get(at + 1)?);
                if code == 53 {
                    let name = match *body.get(at + 2)? {
                        1 => "DISCOVER",
                        2 => "OFFER",
                        3 => "REQUEST",
                        4 => "DECLINE",
                        5 => "ACK",
                        6 => "NAK",
                        7 => "RELEASE",
                        8 => "INFORM",
                        _ => "message",
                    };
                    return Some(if yiaddr.is_unspecified() {
                        format!("DHCP {name}")
                    } else {
                        format!("DHCP {name} your address {yiaddr}")
                    });
                }
                at += 2 + len;
            }
        }
    }
    None
}

fn mac_at(bytes: &[u8], at: usize) -> String {
    match bytes.get(at..at + 6) {
        Some(m) => m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"),
        None => String::from("?"),
    }
}

fn flags(f: u8) -> String {
    let names = [
        (tcp_flags::SYN, 'S'),
        (tcp_flags::FIN, 'F'),
        (tcp_flags::RST, 'R'),
        (tcp_flags::PSH, 'P'),
        (tcp_flags::ACK, '.'),
    ];
    names.iter().filter(|(bit, _)| f & bit != 0).map(|(_, c)| *c).collect()
}

fn arp_info(a: &ArpEthIpv4) -> String {
    match a.op {
        1 => format!("who-has {} tell {}", a.tpa, a.spa),
        2 => format!("reply {} is-at {}", a.spa, a.sha),
        op => format!("operation {op}"),
    }
}

fn icmp4_info(i: &IcmpHdr) -> String {
    match i.ty {
        icmpv4_type::ECHO_REQUEST => {
            format!("echo request id {} seq {}", i.echo_id(), i.echo_seq())
        }
        icmpv4_type::ECHO_REPLY => format!("echo reply id {} seq {}", i.echo_id(), i.echo_seq()),
        icmpv4_type::DEST_UNREACH => format!("destination unreachable code {}", i.code),
        icmpv4_type::TIME_EXCEEDED => format!("time exceeded code {}", i.code),
        t => format!("type {t} code {}", i.code),
    }
}

fn icmp6_info(i: &IcmpHdr) -> String {
    match i.ty {
        icmpv6_type::ECHO_REQUEST => {
            format!("echo request id {} seq {}", i.echo_id(), i.echo_seq())
        }
        icmpv6_type::ECHO_REPLY => format!("echo reply id {} seq {}", i.echo_id(), i.echo_seq()),
        icmpv6_type::DEST_UNREACH => format!("destination unreachable code {}", i.code),
        icmpv6_type::PACKET_TOO_BIG => {
            format!("packet too big, MTU {}", u32::from_be_bytes(i.rest))
        }
        icmpv6_type::TIME_EXCEEDED => format!("time exceeded code {}", i.code),
        t => format!("type {t} code {}", i.code),
    }
}

fn ndp_info(n: &NdpMsg) -> String {
    match n {
        NdpMsg::RouterSolicit { .. } => "router solicitation".into(),
        NdpMsg::RouterAdvert { flags, opts, .. } => {
            let mut s = format!("router advertisement flags 0x{flags:02x}");
            if let Some(m) = opts.mtu {
                s.push_str(&format!(" mtu {m}"));
            }
            s
        }
        NdpMsg::NeighborSolicit { target, .. } => format!("neighbor solicitation for {target}"),
        NdpMsg::NeighborAdvert { flags, target, opts } => {
            let mut s = format!("neighbor advertisement {target} flags 0x{flags:02x}");
            if let Some(m) = opts.tgt_lla {
                s.push_str(&format!(" is-at {m}"));
            }
            s
        }
    }
}

fn endpoint(ip: Option<IpAddr>, port: Option<u16>) -> String {
    match (ip, port) {
        (Some(IpAddr::V6(a)), Some(p)) => format!("[{a}]:{p}"),
        (Some(a), Some(p)) => format!("{a}:{p}"),
        (Some(a), None) => a.to_string(),
        (None, _) => String::from("?"),
    }
}

impl fmt::Display for FrameSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(o) = &self.outer {
            write!(
                f,
                "Geneve[{} > {} vni {}{} sport {}] ",
                o.src,
                o.dst,
                o.vni,
                if o.external { " external" } else { "" },
                o.udp_src
            )?;
        }
        if let Some(e) = &self.parse_error {
            return write!(
                f,
                "unparsed {} bytes ({} > {}, type {}): {e}",
                self.len, self.src_mac, self.dst_mac, self.l3
            );
        }
        write!(f, "{} > {} ", self.src_mac, self.dst_mac)?;
        if self.src.is_some() {
            write!(
                f,
                "{} {} > {}",
                self.proto.as_deref().unwrap_or(&self.l3),
                endpoint(self.src, self.src_port),
                endpoint(self.dst, self.dst_port)
            )?;
        } else {
            f.write_str(&self.l3)?;
        }
        if let Some(i) = &self.info {
            write!(f, " {i}")?;
        }
        write!(f, " ({} bytes)", self.len)
    }
}
