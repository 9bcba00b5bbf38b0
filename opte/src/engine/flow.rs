//! [`FlowId`]: the 5-tuple that keys every flow table, taken from a
//! packet's (inner) headers.
//!
//! Addresses of both families are held as 16 bytes (IPv4 in the
//! IPv4-mapped form `::ffff:a.b.c.d`), so one fixed-size key serves both
//! and hashes quickly. ICMP and ICMPv6 echo use the echo identifier as
//! both ports; other ICMP messages, and protocols without ports, use 0.

use crate::packet::{Headers, L3};
use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A flow's protocol, addresses and ports, as the guest-side packet
/// carries them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlowId {
    /// IP protocol number.
    pub proto: u8,
    /// True for IPv6 addresses, false for IPv4.
    pub v6: bool,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub src_port: u16,
    pub dst_port: u16,
}

/// Every field, fed to the hasher as three words (a derived `Hash` makes
/// eight calls, two of them for slice lengths): flow tables hash a key
/// for every lookup.
impl core::hash::Hash for FlowId {
    #[inline]
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(u128::from_ne_bytes(self.src));
        state.write_u128(u128::from_ne_bytes(self.dst));
        state.write_u64(
            u64::from(self.proto)
                | u64::from(self.v6) << 8
                | u64::from(self.src_port) << 16
                | u64::from(self.dst_port) << 32,
        );
    }
}

impl FlowId {
    /// A flow id from addresses of the same family and ports.
    pub fn new(proto: u8, src: IpAddr, dst: IpAddr, src_port: u16, dst_port: u16) -> Self {
        let v6 = matches!(src, IpAddr::V6(_));
        Self { proto, v6, src: octets16(src), dst: octets16(dst), src_port, dst_port }
    }

    /// The flow id of a parsed packet's (inner) IP and transport headers;
    /// None for ARP and frames without IP.
    #[inline]
    pub fn from_headers(h: &Headers) -> Option<Self> {
        let (src, dst, proto, v6) = match h.l3.as_ref()? {
            L3::Ipv4(ip) => (
                Ipv4Addr::to_ipv6_mapped(&ip.src).octets(),
                Ipv4Addr::to_ipv6_mapped(&ip.dst).octets(),
                ip.proto,
                false,
            ),
            L3::Ipv6(ip) => (ip.src.octets(), ip.dst.octets(), ip.proto, true),
            L3::Arp(_) => return None,
        };
        let (src_port, dst_port) = h.l4.as_ref().map_or((0, 0), |l4| l4.ports());
        Some(Self { proto, v6, src, dst, src_port, dst_port })
    }

    /// The same flow seen from the other end: addresses and ports swapped.
    pub const fn mirror(&self) -> Self {
        Self {
            proto: self.proto,
            v6: self.v6,
            src: self.dst,
            dst: self.src,
            src_port: self.dst_port,
            dst_port: self.src_port,
        }
    }

    /// A hash of the flow that is the same on every host and every run
    /// (FNV-1a over protocol, addresses and ports): for choices that must
    /// be stable per flow and spread over flows, such as the Geneve UDP
    /// source port (ECMP entropy), a boundary endpoint or a floating IP.
    /// Not for hash tables (peers choose parts of it).
    pub fn stable_hash(&self) -> u32 {
        const OFFSET: u32 = 0x811c_9dc5;
        const PRIME: u32 = 0x0100_0193;
        let mut h = OFFSET;
        let mut eat = |b: u8| h = (h ^ u32::from(b)).wrapping_mul(PRIME);
        eat(self.proto);
        self.src.iter().chain(self.dst.iter()).for_each(|b| eat(*b));
        self.src_port
            .to_be_bytes()
            .iter()
            .chain(self.dst_port.to_be_bytes().iter())
            .for_each(|b| eat(*b));
        h
    }

    /// The source address.
    pub fn src_ip(&self) -> IpAddr {
        ip_of(self.v6, self.src)
    }

    /// The destination address.
    pub fn dst_ip(&self) -> IpAddr {
        ip_of(self.v6, self.dst)
    }
}

fn octets16(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

fn ip_of(v6: bool, b: [u8; 16]) -> IpAddr {
    let a = Ipv6Addr::from(b);
    match (v6, a.to_ipv4_mapped()) {
        (false, Some(v4)) => IpAddr::V4(v4),
        _ => IpAddr::V6(a),
    }
}

impl fmt::Display for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.proto {
            1 => "ICMP",
            6 => "TCP",
            17 => "UDP",
            58 => "ICMPv6",
            _ => "",
        };
        if name.is_empty() {
            write!(f, "proto {} ", self.proto)?;
        } else {
            write!(f, "{name} ")?;
        }
        match (self.src_ip(), self.dst_ip()) {
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                write!(f, "[{s}]:{} -> [{d}]:{}", self.src_port, self.dst_port)
            }
            (s, d) => write!(f, "{s}:{} -> {d}:{}", self.src_port, self.dst_port),
        }
    }
}

impl fmt::Debug for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
