//! [`HeaderPatch`]: the fast way to change the packets of one flow.
//!
//! Every packet of a flow carries the same addresses and ports (they are
//! the flow's key), so the checksum change a translation causes is the
//! same for all of them. A patch is compiled once per flow, with those
//! deltas precomputed; applying it writes the new field bytes in place and
//! folds the deltas into the stored checksums (RFC 1624). No header is
//! re-read, re-serialized or compared.
//!
//! It applies only in the common case: every header it touches lies in
//! the first block, that block is not shared, the packet has no
//! encapsulation and quotes no ICMP error. Otherwise
//! [`Packet::apply_patch`] declines (`Ok(false)`) and the caller makes the
//! same changes by the general path ([`Packet::emit`]), which gives the
//! same bytes.

use core::net::IpAddr;

use opte_api::MacAddr;

use super::checksum::{Csum, change, update, word};
use super::emit::{Offload, ZeroCsum};
use super::error::EmitError;
use super::{L3, L4, Packet};

/// The field changes a patch makes, and the checksum deltas they cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderPatch {
    eth_src: Option<MacAddr>,
    eth_dst: Option<MacAddr>,
    /// New source and destination addresses (the family of the flow).
    ip_src: Option<IpAddr>,
    ip_dst: Option<IpAddr>,
    src_port: Option<u16>,
    dst_port: Option<u16>,
    icmp_id: Option<u16>,
    /// Change to the addresses: covered by the transport pseudo-header
    /// and, for IPv4, by the IP header checksum.
    addr_delta: Csum,
    /// Change to the transport header's own words (ports, echo id).
    l4_delta: Csum,
}

/// The flow's current values a patch starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchFrom {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Source and destination ports; for ICMP echo, the echo id in both.
    pub src_port: u16,
    pub dst_port: u16,
    pub proto: u8,
}

/// The field changes to compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PatchTo {
    pub eth_src: Option<MacAddr>,
    pub eth_dst: Option<MacAddr>,
    pub ip_src: Option<IpAddr>,
    pub ip_dst: Option<IpAddr>,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    pub icmp_id: Option<u16>,
}

fn ip_words(a: IpAddr) -> Csum {
    let mut c = Csum::new();
    match a {
        IpAddr::V4(a) => c.add_bytes(&a.octets()),
        IpAddr::V6(a) => c.add_bytes(&a.octets()),
    }
    c
}

impl HeaderPatch {
    /// Compile the changes `to` for the packets of the flow `from`. None
    /// when a change does not fit the flow (an address of the other
    /// family).
    pub fn compile(from: &PatchFrom, to: &PatchTo) -> Option<Self> {
        let family_ok = |a: Option<IpAddr>, b: IpAddr| a.is_none_or(|a| a.is_ipv4() == b.is_ipv4());
        if !family_ok(to.ip_src, from.src) || !family_ok(to.ip_dst, from.dst) {
            return None;
        }
        let mut addr_delta = Csum::new();
        if let Some(a) = to.ip_src {
            addr_delta.add_sum(change(ip_words(from.src), ip_words(a)));
        }
        if let Some(a) = to.ip_dst {
            addr_delta.add_sum(change(ip_words(from.dst), ip_words(a)));
        }
        let mut l4_delta = Csum::new();
        let echo = matches!(from.proto, 1 | 58);
        if echo {
            if let Some(id) = to.icmp_id {
                l4_delta.add_sum(change(word(from.src_port), word(id)));
            }
        } else {
            if let Some(p) = to.src_port {
                l4_delta.add_sum(change(word(from.src_port), word(p)));
            }
            if let Some(p) = to.dst_port {
                l4_delta.add_sum(change(word(from.dst_port), word(p)));
            }
        }
        Some(Self {
            eth_src: to.eth_src,
            eth_dst: to.eth_dst,
            ip_src: to.ip_src,
            ip_dst: to.ip_dst,
            src_port: if echo { None } else { to.src_port },
            dst_port: if echo { None } else { to.dst_port },
            icmp_id: if echo { to.icmp_id } else { None },
            addr_delta,
            l4_delta,
        })
    }
}

impl HeaderPatch {
    /// The field changes this patch makes.
    pub fn to(&self) -> PatchTo {
        PatchTo {
            eth_src: self.eth_src,
            eth_dst: self.eth_dst,
            ip_src: self.ip_src,
            ip_dst: self.ip_dst,
            src_port: self.src_port,
            dst_port: self.dst_port,
            icmp_id: self.icmp_id,
        }
    }
}

/// Write `bytes` at `at` of `seg`; false if it does not fit.
#[inline(always)]
fn put(seg: &mut [u8], at: usize, bytes: &[u8]) -> bool {
    match seg.get_mut(at..at + bytes.len()) {
        Some(d) => {
            d.copy_from_slice(bytes);
            true
        }
        None => false,
    }
}

#[inline(always)]
fn get16(seg: &[u8], at: usize) -> Option<u16> {
    match seg.get(at..at + 2) {
        Some(&[a, b]) => Some(u16::from_be_bytes([a, b])),
        _ => None,
    }
}

impl Packet {
    /// Apply a compiled patch in place. Returns Ok(false), having changed
    /// nothing, when the packet is not the common case the patch handles
    /// (see the module docs): the caller then takes the general path.
    pub fn apply_patch(&mut self, p: &HeaderPatch) -> Result<bool, EmitError> {
        let h = &self.hdrs;
        if h.outer.is_some() || h.embedded.is_some() {
            return Ok(false);
        }
        let l3 = h.offsets.l3 as usize;
        let l4 = h.offsets.l4 as usize;
        let eth = h.offsets.inner_eth as usize;
        let (l4_end, csum_at, zero) = match &h.l4 {
            Some(L4::Tcp(t)) => (l4 + t.hdr_len(), 16, ZeroCsum::Ordinary),
            Some(L4::Udp(_)) => (
                l4 + 8,
                6,
                if matches!(h.l3, Some(L3::Ipv4(_))) {
                    ZeroCsum::MeansNone
                } else {
                    ZeroCsum::Forbidden
                },
            ),
            // The echo id (and its precomputed delta) exists only in echo
            // messages; another ICMP message of the flow (its key has
            // ports 0, as an echo with id 0 does) keeps its bytes 4..6, as
            // the general path leaves them.
            Some(L4::Icmpv4(i)) if p.icmp_id.is_some() && !i.is_v4_echo() => return Ok(false),
            Some(L4::Icmpv6(i)) if p.icmp_id.is_some() && !i.is_v6_echo() => return Ok(false),
            Some(L4::Icmpv4(_) | L4::Icmpv6(_)) => (l4 + 8, 2, ZeroCsum::Ordinary),
            None => return Ok(false),
        };
        let (v4, ip_hdr_end) = match &h.l3 {
            Some(L3::Ipv4(ip)) => (true, l3 + ip.hdr_len()),
            Some(L3::Ipv6(_)) => (false, l3 + 40),
            _ => return Ok(false),
        };
        let off = Offload::new(self.mblk.offload_flags(), self.role);
        let icmp_v4 = matches!(h.l4, Some(L4::Icmpv4(_)));
        let Some(seg) = self.mblk.first_block_mut() else { return Ok(false) };
        if seg.len() < l4_end.max(ip_hdr_end) {
            return Ok(false);
        }
        let family_ok = |a: Option<IpAddr>| a.is_none_or(|a| a.is_ipv4() == v4);
        if !family_ok(p.ip_src) || !family_ok(p.ip_dst) {
            return Err(EmitError::WrongFamily);
        }
        // Everything is in reach: from here on, every write succeeds.
        let mut ok = true;
        if let Some(m) = p.eth_src {
            ok &= put(seg, eth + 6, &m.bytes());
        }
        if let Some(m) = p.eth_dst {
            ok &= put(seg, eth, &m.bytes());
        }
        let (src_at, dst_at) = if v4 { (l3 + 12, l3 + 16) } else { (l3 + 8, l3 + 24) };
        for (a, at) in [(p.ip_src, src_at), (p.ip_dst, dst_at)] {
            match a {
                Some(IpAddr::V4(a)) if v4 => ok &= put(seg, at, &a.octets()),
                Some(IpAddr::V6(a)) if !v4 => ok &= put(seg, at, &a.octets()),
                Some(_) => return Err(EmitError::WrongFamily),
                None => {}
            }
        }
        if v4 && !off.nic_fills_ip4 && p.addr_delta.fold() != 0 {
            let old = get16(seg, l3 + 10).unwrap_or(0);
            ok &= put(seg, l3 + 10, &update(old, p.addr_delta).to_be_bytes());
        }
        if let Some(v) = p.src_port {
            ok &= put(seg, l4, &v.to_be_bytes());
        }
        if let Some(v) = p.dst_port {
            ok &= put(seg, l4 + 2, &v.to_be_bytes());
        }
        if let Some(v) = p.icmp_id {
            ok &= put(seg, l4 + 4, &v.to_be_bytes());
        }
        let pseudo = if icmp_v4 { Csum::new() } else { p.addr_delta };
        if pseudo.fold() != 0 || p.l4_delta.fold() != 0 {
            let old = get16(seg, l4 + csum_at).unwrap_or(0);
            let new = off.l4_csum(old, p.l4_delta, pseudo, zero);
            ok &= put(seg, l4 + csum_at, &new.to_be_bytes());
        }
        if !ok {
            // Unreachable given the length check above; refuse rather
            // than leave a half-patched packet unnoticed.
            return Err(EmitError::TooLong);
        }
        // Keep the header values in step with the bytes.
        self.refresh_after_patch(p, v4);
        Ok(true)
    }

    fn refresh_after_patch(&mut self, p: &HeaderPatch, v4: bool) {
        let h = &mut self.hdrs;
        if let Some(m) = p.eth_src {
            h.eth.src = m;
        }
        if let Some(m) = p.eth_dst {
            h.eth.dst = m;
        }
        let seg = self.mblk.segments().next().unwrap_or(&[]);
        match &mut h.l3 {
            Some(L3::Ipv4(ip)) if v4 => {
                if let Some(IpAddr::V4(a)) = p.ip_src {
                    ip.src = a;
                }
                if let Some(IpAddr::V4(a)) = p.ip_dst {
                    ip.dst = a;
                }
                ip.csum = get16(seg, h.offsets.l3 as usize + 10).unwrap_or(ip.csum);
            }
            Some(L3::Ipv6(ip)) => {
                if let Some(IpAddr::V6(a)) = p.ip_src {
                    ip.src = a;
                }
                if let Some(IpAddr::V6(a)) = p.ip_dst {
                    ip.dst = a;
                }
            }
            _ => {}
        }
        let l4 = h.offsets.l4 as usize;
        match &mut h.l4 {
            Some(L4::Tcp(t)) => {
                t.src_port = p.src_port.unwrap_or(t.src_port);
                t.dst_port = p.dst_port.unwrap_or(t.dst_port);
                t.csum = get16(seg, l4 + 16).unwrap_or(t.csum);
            }
            Some(L4::Udp(u)) => {
                u.src_port = p.src_port.unwrap_or(u.src_port);
                u.dst_port = p.dst_port.unwrap_or(u.dst_port);
                u.csum = get16(seg, l4 + 6).unwrap_or(u.csum);
            }
            Some(L4::Icmpv4(i) | L4::Icmpv6(i)) => {
                if let Some(id) = p.icmp_id {
                    i.set_echo_id(id);
                }
                i.csum = get16(seg, l4 + 2).unwrap_or(i.csum);
            }
            None => {}
        }
    }
}
