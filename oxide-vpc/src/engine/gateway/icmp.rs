//! Ping the gateway: an ICMPv4 echo request to the gateway's IPv4
//! address, or an ICMPv6 echo request to its private IPv6 or link-local
//! address, is answered with an echo reply (RFC 792, RFC 4443 4.2) from
//! the address that was pinged, carrying the request's identifier,
//! sequence number and data. A fragmented request is not answered (its
//! data is not all here): a counted action drop.

use alloc::vec::Vec;
use core::fmt;

use opte::ddi::MsgBlk;
use opte::engine::action::{ActionError, HairpinAction};
use opte::engine::predicate::MatchCtx;
use opte::packet::icmp::{icmpv4_type, icmpv6_type};
use opte::packet::{EtherHdr, FrameBuilder, IcmpHdr, L3, L4};
use opte_api::MacAddr;

use super::REPLY_HOP_LIMIT;
use crate::api::VpcCfg;

/// Answer echo requests to the gateway (the rules choose which
/// destinations are the gateway's).
pub struct EchoReply {
    gateway_mac: MacAddr,
}

impl EchoReply {
    /// The responder for a port's configuration.
    pub fn new(cfg: &VpcCfg) -> Self {
        Self { gateway_mac: cfg.gateway_mac }
    }
}

impl fmt::Display for EchoReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("echo-reply")
    }
}

impl HairpinAction for EchoReply {
    fn gen_packet(&self, ctx: &MatchCtx<'_>) -> Result<MsgBlk, ActionError> {
        let h = ctx.hdrs;
        let mut b =
            FrameBuilder::new(EtherHdr { dst: h.eth.src, src: self.gateway_mac, ether_type: 0 });
        match (&h.l3, &h.l4) {
            (Some(L3::Ipv4(ip)), Some(L4::Icmpv4(icmp)))
                if icmp.ty == icmpv4_type::ECHO_REQUEST =>
            {
                if ip.is_fragment() {
                    return Err(ActionError::NotApplicable("fragmented echo request"));
                }
                b.l3 = Some(L3::Ipv4(super::ipv4_hdr(ip.dst, ip.src)));
                b.l4 = Some(L4::Icmpv4(IcmpHdr {
                    ty: icmpv4_type::ECHO_REPLY,
                    code: 0,
                    csum: 0,
                    rest: icmp.rest,
                }));
            }
            (Some(L3::Ipv6(ip)), Some(L4::Icmpv6(icmp)))
                if icmp.ty == icmpv6_type::ECHO_REQUEST =>
            {
                if ip.is_fragment() {
                    return Err(ActionError::NotApplicable("fragmented echo request"));
                }
                b.l3 = Some(L3::Ipv6(super::ipv6_hdr(ip.dst, ip.src, REPLY_HOP_LIMIT)));
                b.l4 = Some(L4::Icmpv6(IcmpHdr {
                    ty: icmpv6_type::ECHO_REPLY,
                    code: 0,
                    csum: 0,
                    rest: icmp.rest,
                }));
            }
            _ => return Err(ActionError::NotApplicable("not an echo request")),
        }
        // The echo data: everything after the 8-byte ICMP header.
        let data_len = usize::try_from(h.l4_len)
            .ok()
            .and_then(|n| n.checked_sub(IcmpHdr::LEN))
            .ok_or(ActionError::Reply("echo request truncated"))?;
        let start = usize::try_from(h.offsets.l4)
            .ok()
            .and_then(|o| o.checked_add(IcmpHdr::LEN))
            .ok_or(ActionError::Reply("echo request truncated"))?;
        let mut data = Vec::new();
        data.try_reserve_exact(data_len)
            .map_err(|_| ActionError::Reply("no memory for the reply"))?;
        data.resize(data_len, 0);
        ctx.mblk
            .read_at(start, &mut data)
            .map_err(|_| ActionError::Reply("echo request truncated"))?;
        super::reply(&b, &data)
    }
}
