//! Neighbor Discovery for the gateway (RFC 4861).
//!
//! - A Router Solicitation is answered with a Router Advertisement from
//!   the gateway's link-local address: the Managed flag set (addresses
//!   come from DHCPv6), a router lifetime of [`ROUTER_LIFETIME`] seconds,
//!   the gateway MAC (source link-layer address option) and the port's
//!   MTU. It carries no prefix: the guest learns no on-link prefix and
//!   no SLAAC address, so everything it sends goes through the gateway.
//!   The advertisement goes to the solicitor, or to all nodes (ff02::1)
//!   when the solicitation came from the unspecified address.
//! - A Neighbor Solicitation for the gateway's link-local or private
//!   address is answered with a Neighbor Advertisement from that address
//!   with the Router, Solicited and Override flags and the gateway MAC
//!   (target link-layer address option). A duplicate address detection
//!   probe (from `::`) for one of them is answered to all nodes without
//!   the Solicited flag (RFC 4861 7.2.4), telling the guest the address
//!   is taken.
//! - Every other NDP message from the guest (a solicitation for another
//!   target, advertisements, redirects) is denied by a rule.
//!
//! Replies have hop limit 255. A solicitation that RFC 4861 6.1.1 or
//! 7.1.1 says to discard (hop limit not 255; from `::` with a source
//! link-layer option, or a DAD probe not to a solicited-node group) is a
//! counted action drop. The packet parser has already checked the
//! message's length and options.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::net::Ipv6Addr;

use opte::ddi::MsgBlk;
use opte::engine::action::{Action, ActionError, HairpinAction};
use opte::engine::predicate::{Ipv6Match, MatchCtx, Predicate};
use opte::engine::rule::RuleSpec;
use opte::packet::icmp::icmpv6_type;
use opte::packet::ndp::{NA_OVERRIDE, NA_ROUTER, NA_SOLICITED, RA_MANAGED};
use opte::packet::{EtherHdr, FrameBuilder, IcmpHdr, L3, L4, NdpMsg, NdpOptions};
use opte_api::MacAddr;

use super::{PRIO_HAIRPIN, PRIO_REFUSE, link_local, solicited_node};
use crate::api::{Ipv6Cfg, VpcCfg};

/// Hop limit of every NDP message (RFC 4861 6.1.1, 7.1.1).
pub const NDP_HOP_LIMIT: u8 = 255;
/// The router lifetime advertised, in seconds (the most RFC 4861 6.2.1
/// allows).
pub const ROUTER_LIFETIME: u16 = 9000;
/// The all-nodes multicast group.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// The NDP message types (and Redirect, which the parser does not read).
const NDP_TYPES: [u8; 5] = [
    icmpv6_type::ROUTER_SOLICIT,
    icmpv6_type::ROUTER_ADVERT,
    icmpv6_type::NEIGHBOR_SOLICIT,
    icmpv6_type::NEIGHBOR_ADVERT,
    137,
];

/// The NDP rules: answer router solicitations and solicitations for the
/// gateway's addresses; deny every other NDP message.
pub(super) fn rules(cfg: &VpcCfg, v6: &Ipv6Cfg, guest: &Predicate) -> Vec<RuleSpec> {
    let ll = link_local(cfg.gateway_mac);
    let ra = RouterAdvert { gateway_mac: cfg.gateway_mac, link_local: ll, mtu: cfg.mtu };
    let na = NeighborAdvert { gateway_mac: cfg.gateway_mac, targets: [ll, v6.gateway_ip] };
    // A solicitation for the gateway goes to one of its addresses or
    // their solicited-node groups.
    let to_gateway = [ll, v6.gateway_ip, solicited_node(ll), solicited_node(v6.gateway_ip)]
        .into_iter()
        .map(|a| Predicate::Ipv6Dst(Ipv6Match::Exact(a)))
        .collect();
    alloc::vec![
        RuleSpec::new(PRIO_HAIRPIN, Action::Hairpin(Arc::new(ra)))
            .with(guest.clone())
            .with(Predicate::Icmpv6Type(icmpv6_type::ROUTER_SOLICIT))
            .with(Predicate::Icmpv6Code(0)),
        RuleSpec::new(PRIO_HAIRPIN, Action::Hairpin(Arc::new(na)))
            .with(guest.clone())
            .with(Predicate::Icmpv6Type(icmpv6_type::NEIGHBOR_SOLICIT))
            .with(Predicate::Icmpv6Code(0))
            .with(Predicate::Any(to_gateway)),
        RuleSpec::new(PRIO_REFUSE, Action::Deny)
            .with(Predicate::Any(NDP_TYPES.iter().map(|t| Predicate::Icmpv6Type(*t)).collect())),
    ]
}

/// The IPv6 source, destination and hop limit of an NDP message in
/// `ctx`, after the hop limit check.
fn ndp_ip(ctx: &MatchCtx<'_>) -> Result<(Ipv6Addr, Ipv6Addr), ActionError> {
    let Some(L3::Ipv6(ip)) = &ctx.hdrs.l3 else {
        return Err(ActionError::NotApplicable("not IPv6"));
    };
    if ip.hop_limit != NDP_HOP_LIMIT {
        return Err(ActionError::NotApplicable("NDP message with hop limit other than 255"));
    }
    Ok((ip.src, ip.dst))
}

/// Where a reply goes: to the asker, or to all nodes when it asked from
/// the unspecified address.
fn reply_to(src: Ipv6Addr, src_mac: MacAddr) -> (Ipv6Addr, MacAddr) {
    if src.is_unspecified() {
        (ALL_NODES, MacAddr::ipv6_multicast(&ALL_NODES.octets()))
    } else {
        (src, src_mac)
    }
}

/// Build an NDP reply frame.
fn ndp_frame(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    msg: NdpMsg,
) -> Result<MsgBlk, ActionError> {
    let mut b = FrameBuilder::new(EtherHdr { dst: dst_mac, src: src_mac, ether_type: 0 });
    b.l3 = Some(L3::Ipv6(super::ipv6_hdr(src, dst, NDP_HOP_LIMIT)));
    b.l4 = Some(L4::Icmpv6(IcmpHdr { ty: msg.icmp_type(), code: 0, csum: 0, rest: [0; 4] }));
    b.ndp = Some(msg);
    super::reply(&b, &[])
}

/// Answer router solicitations.
pub struct RouterAdvert {
    gateway_mac: MacAddr,
    link_local: Ipv6Addr,
    mtu: u16,
}

impl fmt::Display for RouterAdvert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "router-advert from {}", self.link_local)
    }
}

impl HairpinAction for RouterAdvert {
    fn gen_packet(&self, ctx: &MatchCtx<'_>) -> Result<MsgBlk, ActionError> {
        let (src, _) = ndp_ip(ctx)?;
        let Some(NdpMsg::RouterSolicit { opts }) = &ctx.hdrs.ndp else {
            return Err(ActionError::NotApplicable("not a router solicitation"));
        };
        if src.is_unspecified() && opts.src_lla.is_some() {
            return Err(ActionError::NotApplicable(
                "solicitation from :: with a link-layer address",
            ));
        }
        let (dst, dst_mac) = reply_to(src, ctx.hdrs.eth.src);
        let msg = NdpMsg::RouterAdvert {
            cur_hop_limit: 0,
            flags: RA_MANAGED,
            router_lifetime: ROUTER_LIFETIME,
            reachable_time: 0,
            retrans_timer: 0,
            opts: NdpOptions {
                src_lla: Some(self.gateway_mac),
                mtu: Some(u32::from(self.mtu)),
                ..NdpOptions::default()
            },
        };
        ndp_frame(self.gateway_mac, dst_mac, self.link_local, dst, msg)
    }
}

/// Answer neighbor solicitations for the gateway's addresses.
pub struct NeighborAdvert {
    gateway_mac: MacAddr,
    /// The gateway's link-local and private addresses.
    targets: [Ipv6Addr; 2],
}

impl fmt::Display for NeighborAdvert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "neighbor-advert {} is-at {}", self.targets[1], self.gateway_mac)
    }
}

impl HairpinAction for NeighborAdvert {
    fn gen_packet(&self, ctx: &MatchCtx<'_>) -> Result<MsgBlk, ActionError> {
        let (src, dst) = ndp_ip(ctx)?;
        let Some(NdpMsg::NeighborSolicit { target, opts }) = &ctx.hdrs.ndp else {
            return Err(ActionError::NotApplicable("not a neighbor solicitation"));
        };
        if !self.targets.contains(target) {
            return Err(ActionError::NotApplicable("neighbor solicitation not for the gateway"));
        }
        let dad = src.is_unspecified();
        if dad && (opts.src_lla.is_some() || dst != solicited_node(*target)) {
            return Err(ActionError::NotApplicable("malformed duplicate address detection probe"));
        }
        let (to, to_mac) = reply_to(src, ctx.hdrs.eth.src);
        let flags =
            if dad { NA_ROUTER | NA_OVERRIDE } else { NA_ROUTER | NA_SOLICITED | NA_OVERRIDE };
        let msg = NdpMsg::NeighborAdvert {
            flags,
            target: *target,
            opts: NdpOptions { tgt_lla: Some(self.gateway_mac), ..NdpOptions::default() },
        };
        ndp_frame(self.gateway_mac, to_mac, *target, to, msg)
    }
}
