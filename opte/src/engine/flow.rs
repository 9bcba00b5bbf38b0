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
    /// (protocol, addresses and ports read as five big-endian 64-bit
    /// words, each folded in by a multiply and a shift): for choices that
    /// must be stable per flow and spread over flows, such as the Geneve
    /// UDP source port (ECMP entropy), a boundary endpoint or a floating
    /// IP. Not for hash tables (peers choose parts of it).
    pub fn stable_hash(&self) -> u32 {
        /// 2^64 divided by the golden ratio, odd: spreads every input bit.
        const MIX: u64 = 0x9e37_79b9_7f4a_7c15;
        let src = u128::from_be_bytes(self.src);
        let dst = u128::from_be_bytes(self.dst);
        let last =
            u64::from(self.proto) << 32 | u64::from(self.src_port) << 16 | u64::from(self.dst_port);
        // The halves of each address, then the rest.
        let words = [(src >> 64) as u64, src as u64, (dst >> 64) as u64, dst as u64, last];
        let mut h = MIX;
        for w in words {
            h = (h ^ w).wrapping_mul(MIX);
            h ^= h >> 32;
        }
        (h ^ (h >> 29)) as u32
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Flows that differ in one field spread evenly over buckets
    /// (what a boundary pick or a floating IP choice sees) and over the
    /// low bits a Geneve source port takes.
    #[test]
    fn stable_hash_spreads_flows_that_differ_in_one_field() {
        let base = FlowId::new(
            17,
            IpAddr::V4(Ipv4Addr::new(172, 30, 0, 5)),
            IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)),
            1000,
            53,
        );
        let vary: [&dyn Fn(u16) -> FlowId; 3] =
            [&|i| FlowId { src_port: i, ..base }, &|i| FlowId { dst_port: i, ..base }, &|i| {
                let mut f = base;
                f.dst[14..16].copy_from_slice(&i.to_be_bytes());
                f
            }];
        for (field, make) in vary.iter().enumerate() {
            for buckets in [3u32, 8, 64] {
                let mut counts = vec![0u32; buckets as usize];
                let n = 64 * 256u32;
                for i in 0..n {
                    counts[(make(i as u16).stable_hash() % buckets) as usize] += 1;
                }
                // Within five standard deviations of a uniform pick.
                let mean = n / buckets;
                let bound = 5 * mean.isqrt();
                for c in &counts {
                    assert!(c.abs_diff(mean) < bound, "field {field}, {buckets}: {counts:?}");
                }
            }
        }
        // The same flow, the same hash (every host, every run).
        assert_eq!(base.stable_hash(), base.stable_hash());
        assert_ne!(base.stable_hash(), base.mirror().stable_hash());
    }
}
