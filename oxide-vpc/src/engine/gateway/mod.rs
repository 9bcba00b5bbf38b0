//! The gateway layer: the first layer a guest's frame meets and the last
//! one an arriving frame leaves by. It makes the guest believe it sits on
//! a routed network whose router (the *gateway*, with the configured MAC
//! and addresses) answers ARP, DHCP, DHCPv6, NDP and ping, and it keeps
//! the guest from sending as anyone but itself.
//!
//! # Theory
//!
//! The layer is stateless: every decision is a rule, and the default is
//! deny in both directions, so anything no rule names is dropped and
//! counted ("denied by layer gateway default").
//!
//! **Outbound** rules, by priority (lower first; at equal priority deny
//! rules are tried first):
//!
//! | priority | rules | action |
//! | --- | --- | --- |
//! | [`PRIO_HAIRPIN`] | ARP, DHCP DISCOVER/REQUEST/INFORM, DHCPv6 client messages, ICMP echo to a gateway address, router and neighbor solicitations for the gateway; all from the guest's MAC | a reply built here and sent straight back ([`Action::Hairpin`]) |
//! | [`PRIO_REFUSE`] | other DHCP and DHCPv6 client messages, every other NDP message (RA, NA, redirect, NS for another target), anything else to a gateway address | deny |
//! | [`PRIO_ANTI_SPOOF`] | the guest's MAC with, as IP source, its private IP, an attached subnet or a transit CIDR allowed outbound | allow |
//!
//! The hairpin rules sit above the anti-spoofing rules because the
//! requests they answer come from addresses the guest does not own yet
//! (`0.0.0.0`, `::`) or from its link-local address. A reply goes only to
//! the guest that asked, so a spoofed request harms nobody but itself.
//!
//! Two kinds of drop are decided by a hairpin action rather than a deny
//! rule, because the engine has no predicate on the field that tells
//! them apart: ARP other than a request for the gateway's address (no
//! predicate reads ARP fields), and a neighbor solicitation sent to one
//! of the gateway's addresses or groups but for another target. Both
//! are counted action drops (`ActionError::NotApplicable`) of this layer.
//! The same holds for requests an RFC says to discard (a DHCPv6 request
//! naming another server, NDP with a hop limit other than 255, ...).
//!
//! **Inbound** (after the overlay removed the encapsulation), a frame
//! passes only when its destination is the guest's: its private IP, an
//! internal attached subnet, an external attached subnet for traffic the
//! overlay tagged external (`vpc.external` = true), or a transit CIDR
//! allowed inbound. A passing frame is rewritten to come from the gateway
//! MAC and go to the guest MAC ([`ToGuest`]).
//!
//! # Replies
//!
//! Each hairpin action (in [`arp`], [`dhcp`], [`dhcpv6`], [`icmp`],
//! [`ndp`]) reads the request from the parsed headers and, for DHCP, from
//! the UDP payload in the message (bounded option walks; a malformed
//! request is a counted `ActionError`), and builds a new frame with
//! [`FrameBuilder`], which computes every length and checksum (the UDP
//! and ICMPv6 checksums over the IPv6 pseudo-header). Whatever a reply
//! says that does not depend on the request (DHCP options, DNS-encoded
//! names, the server DUID) is encoded once, when the rules are built.
//!
//! Building a reply takes the message block and two to four heap
//! allocations: the frame and transport buffers of
//! [`FrameBuilder::to_bytes`] (ARP needs no more), the payload (DHCP,
//! DHCPv6, echo data) and, for IPv6, the builder's header buffer; a DHCP
//! request split across blocks is copied out first. The test
//! `a_hairpin_reply_takes_a_handful_of_allocations` counts them.

use alloc::borrow::Cow;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

use opte::ddi::MsgBlk;
use opte::engine::Direction;
use opte::engine::action::{Action, ActionError, DefaultAction, StaticAction};
use opte::engine::flow::FlowId;
use opte::engine::layer::LayerSpec;
use opte::engine::meta::{Meta, MetaValue};
use opte::engine::predicate::{Ipv4Match, Ipv6Match, MacMatch, Predicate};
use opte::engine::rule::RuleSpec;
use opte::engine::transform::{EtherMod, HdrTransform};
use opte::packet::{FrameBuilder, Headers, L4};
use opte_api::MacAddr;

use super::{RuleSet, layer_names, meta_keys};
use crate::api::VpcCfg;

pub mod arp;
pub mod dhcp;
pub mod dhcpv6;
pub mod dns_name;
pub mod icmp;
pub mod ndp;

/// Priority of the rules that answer the guest.
pub const PRIO_HAIRPIN: u16 = 10;
/// Priority of the rules that refuse what the gateway does not answer.
pub const PRIO_REFUSE: u16 = 20;
/// Priority of the anti-spoofing rules (outbound) and of the rules that
/// accept traffic for the guest (inbound).
pub const PRIO_ANTI_SPOOF: u16 = 100;

/// Hop limit (TTL) of the replies that are not NDP.
pub const REPLY_HOP_LIMIT: u8 = 64;

/// The gateway layer's spec: both directions deny by default.
pub fn layer_spec(lft: u32) -> LayerSpec {
    super::vpc_port::spec(layer_names::GATEWAY, DefaultAction::Deny, DefaultAction::Deny, lft)
}

/// The gateway's link-local IPv6 address: fe80::/64 with the modified
/// EUI-64 interface identifier of its MAC (RFC 4291 2.5.1, appendix A).
pub fn link_local(mac: MacAddr) -> Ipv6Addr {
    let [a, b, c, d, e, f] = mac.bytes();
    Ipv6Addr::from([0xfe, 0x80, 0, 0, 0, 0, 0, 0, a ^ 0x02, b, c, 0xff, 0xfe, d, e, f])
}

/// The solicited-node multicast group of an address (RFC 4291 2.7.1):
/// ff02::1:ff00:0/104 with the address's low 24 bits.
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::from([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15]])
}

/// The gateway's rules for `cfg`.
pub fn rules(cfg: &VpcCfg) -> RuleSet {
    let mut out = Vec::new();
    let guest = Predicate::EtherSrc(MacMatch::Exact(cfg.guest_mac));

    // IPv4: ARP, DHCP and ping answered; anti-spoofing.
    if let Some(v4) = &cfg.ipv4 {
        out.push(
            RuleSpec::new(PRIO_HAIRPIN, Action::Hairpin(Arc::new(arp::ArpReply::new(cfg, v4))))
                .with(guest.clone())
                .with(Predicate::EtherType(opte::packet::ether::ether_type::ARP)),
        );
        out.extend(dhcp::rules(cfg, v4, &guest));
        out.push(
            RuleSpec::new(PRIO_HAIRPIN, Action::Hairpin(Arc::new(icmp::EchoReply::new(cfg))))
                .with(guest.clone())
                .with(Predicate::Ipv4Dst(Ipv4Match::Exact(v4.gateway_ip)))
                .with(Predicate::IcmpType(opte::packet::icmp::icmpv4_type::ECHO_REQUEST)),
        );
        out.push(
            RuleSpec::new(PRIO_REFUSE, Action::Deny)
                .with(Predicate::Ipv4Dst(Ipv4Match::Exact(v4.gateway_ip))),
        );
        out.push(
            RuleSpec::new(PRIO_ANTI_SPOOF, Action::Allow)
                .with(guest.clone())
                .with(Predicate::Ipv4Src(Ipv4Match::Exact(v4.private_ip))),
        );
    }

    // IPv6: NDP, DHCPv6 and ping answered; anti-spoofing.
    if let Some(v6) = &cfg.ipv6 {
        let ll = link_local(cfg.gateway_mac);
        out.extend(ndp::rules(cfg, v6, &guest));
        out.extend(dhcpv6::rules(cfg, v6, &guest));
        let echo = Arc::new(icmp::EchoReply::new(cfg));
        for gw in [v6.gateway_ip, ll] {
            out.push(
                RuleSpec::new(PRIO_HAIRPIN, Action::Hairpin(echo.clone()))
                    .with(guest.clone())
                    .with(Predicate::Ipv6Dst(Ipv6Match::Exact(gw)))
                    .with(Predicate::Icmpv6Type(opte::packet::icmp::icmpv6_type::ECHO_REQUEST)),
            );
            out.push(
                RuleSpec::new(PRIO_REFUSE, Action::Deny)
                    .with(Predicate::Ipv6Dst(Ipv6Match::Exact(gw))),
            );
        }
        out.push(
            RuleSpec::new(PRIO_ANTI_SPOOF, Action::Allow)
                .with(guest.clone())
                .with(Predicate::Ipv6Src(Ipv6Match::Exact(v6.private_ip))),
        );
    }

    // Sources the guest owns or forwards for, of either family.
    let owned = cfg.attached_subnets.iter().map(|s| s.cidr);
    let transit_out = cfg.transit.iter().filter(|t| t.dir == Direction::Out).map(|t| t.cidr);
    for cidr in owned.chain(transit_out) {
        out.push(
            RuleSpec::new(PRIO_ANTI_SPOOF, Action::Allow)
                .with(guest.clone())
                .with(Predicate::src_in(cidr)),
        );
    }

    RuleSet { rules_in: inbound_rules(cfg), rules_out: out }
}

/// Inbound: only traffic for the guest's addresses, rewritten to come
/// from the gateway.
fn inbound_rules(cfg: &VpcCfg) -> Vec<RuleSpec> {
    let to_guest =
        Action::Static(Arc::new(ToGuest { gateway: cfg.gateway_mac, guest: cfg.guest_mac }));
    let rule = |dst: Predicate| RuleSpec::new(PRIO_ANTI_SPOOF, to_guest.clone()).with(dst);
    let mut v = Vec::new();
    if let Some(v4) = &cfg.ipv4 {
        v.push(rule(Predicate::Ipv4Dst(Ipv4Match::Exact(v4.private_ip))));
    }
    if let Some(v6) = &cfg.ipv6 {
        v.push(rule(Predicate::Ipv6Dst(Ipv6Match::Exact(v6.private_ip))));
    }
    for s in &cfg.attached_subnets {
        let r = rule(Predicate::dst_in(s.cidr));
        v.push(if s.external {
            r.with(Predicate::Meta {
                key: alloc::string::String::from(meta_keys::EXTERNAL),
                value: MetaValue::Bool(true),
            })
        } else {
            r
        });
    }
    for t in cfg.transit.iter().filter(|t| t.dir == Direction::In) {
        v.push(rule(Predicate::dst_in(t.cidr)));
    }
    v
}

/// Inbound frames for the guest appear to come from the gateway: the
/// inner Ethernet source becomes the gateway MAC and the destination the
/// guest MAC.
pub struct ToGuest {
    gateway: MacAddr,
    guest: MacAddr,
}

impl fmt::Display for ToGuest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ether {} -> {}", self.gateway, self.guest)
    }
}

impl StaticAction for ToGuest {
    fn gen_ht(
        &self,
        _dir: Direction,
        _flow: &FlowId,
        _meta: &mut Meta,
    ) -> Result<HdrTransform, ActionError> {
        Ok(HdrTransform {
            inner_eth: EtherMod { src: Some(self.gateway), dst: Some(self.guest) },
            ..HdrTransform::NONE
        })
    }
}

/// The UDP payload of a packet: where it starts in the message and how
/// long it is, bounded by both the UDP length and the IP payload (never
/// Ethernet padding).
///
/// When the payload lies in the message's first block (a request the
/// guest sent in one buffer, the usual case) it is kept as a slice and
/// read directly; otherwise each read walks the chain.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UdpPayload<'a> {
    mblk: &'a MsgBlk,
    start: usize,
    len: usize,
    /// The payload's bytes, when they lie in the first block.
    bytes: Option<&'a [u8]>,
}

impl<'a> UdpPayload<'a> {
    /// The payload of `hdrs`'s UDP datagram in `mblk`, if it has one.
    pub(crate) fn of(hdrs: &Headers, mblk: &'a MsgBlk) -> Result<Self, ActionError> {
        let bad = ActionError::NotApplicable("not a UDP datagram");
        let Some(L4::Udp(udp)) = &hdrs.l4 else {
            return Err(bad);
        };
        let l4 = usize::try_from(hdrs.offsets.l4).map_err(|_| bad.clone())?;
        let start = usize::try_from(hdrs.offsets.body).map_err(|_| bad.clone())?;
        let l4_len = usize::try_from(hdrs.l4_len).map_err(|_| bad.clone())?;
        let udp_len = usize::from(udp.len).min(l4_len);
        let len = l4.checked_add(udp_len).and_then(|e| e.checked_sub(start)).ok_or(bad)?;
        let bytes =
            mblk.segments().next().and_then(|first| first.get(start..start.checked_add(len)?));
        Ok(Self { mblk, start, len, bytes })
    }

    /// Bytes in the payload.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Copy `out.len()` bytes from offset `off` of the payload; an error
    /// (the request is malformed) if they run past its end.
    pub(crate) fn read(&self, off: usize, out: &mut [u8]) -> Result<(), ActionError> {
        let truncated = ActionError::Reply("request truncated");
        let end = off.checked_add(out.len()).ok_or(truncated.clone())?;
        if end > self.len {
            return Err(truncated);
        }
        let at = self.start.checked_add(off).ok_or(truncated.clone())?;
        self.mblk.read_at(at, out).map_err(|_| truncated)
    }

    /// The `N` bytes at offset `off`.
    pub(crate) fn array<const N: usize>(&self, off: usize) -> Result<[u8; N], ActionError> {
        let mut b = [0u8; N];
        self.read(off, &mut b)?;
        Ok(b)
    }

    /// The payload's bytes: borrowed when they lie in the first block,
    /// otherwise copied out of the chain.
    pub(crate) fn bytes(&self) -> Result<Cow<'a, [u8]>, ActionError> {
        if let Some(b) = self.bytes {
            return Ok(Cow::Borrowed(b));
        }
        let mut v = Vec::new();
        v.try_reserve_exact(self.len)
            .map_err(|_| ActionError::Reply("no memory for the request"))?;
        v.resize(self.len, 0);
        self.read(0, &mut v)?;
        Ok(Cow::Owned(v))
    }
}

/// A reply frame as a message block.
pub(crate) fn reply(b: &FrameBuilder, body: &[u8]) -> Result<MsgBlk, ActionError> {
    b.to_mblk(0, body).map_err(|_| ActionError::Reply("no memory for the reply"))
}

/// The IPv4 header of a reply (the builder fills in lengths, protocol and
/// checksum).
pub(crate) fn ipv4_hdr(src: Ipv4Addr, dst: Ipv4Addr) -> opte::packet::Ipv4Hdr {
    opte::packet::Ipv4Hdr { ttl: REPLY_HOP_LIMIT, src, dst, ..opte::packet::Ipv4Hdr::EMPTY }
}

/// The IPv6 header of a reply (the builder fills in lengths and next
/// header).
pub(crate) fn ipv6_hdr(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8) -> opte::packet::Ipv6Hdr {
    opte::packet::Ipv6Hdr { hop_limit, src, dst, ..opte::packet::Ipv6Hdr::EMPTY }
}
