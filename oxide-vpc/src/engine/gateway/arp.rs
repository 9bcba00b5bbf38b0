//! ARP for the gateway (RFC 826): a request from the guest for the
//! gateway's IPv4 address is answered with the gateway MAC. Every other
//! ARP message from the guest (requests for other addresses, gratuitous
//! ARP, replies) is dropped as not applicable: the guest reaches every
//! address through the gateway, so nobody else on the "link" answers.
//!
//! The engine has no predicate on ARP fields, so the layer's rule matches
//! every ARP frame from the guest's MAC and this action tells them apart;
//! a refusal is an [`ActionError::NotApplicable`], counted as an action
//! drop of the gateway layer.

use core::fmt;
use core::net::Ipv4Addr;

use opte::ddi::MsgBlk;
use opte::engine::action::{ActionError, HairpinAction};
use opte::engine::predicate::MatchCtx;
use opte::packet::arp::arp_op;
use opte::packet::{ArpEthIpv4, EtherHdr, FrameBuilder, L3};
use opte_api::MacAddr;

use crate::api::{Ipv4Cfg, VpcCfg};

/// Answer ARP requests for the gateway's address.
pub struct ArpReply {
    gateway_mac: MacAddr,
    gateway_ip: Ipv4Addr,
}

impl ArpReply {
    /// The responder for a port's configuration.
    pub fn new(cfg: &VpcCfg, v4: &Ipv4Cfg) -> Self {
        Self { gateway_mac: cfg.gateway_mac, gateway_ip: v4.gateway_ip }
    }
}

impl fmt::Display for ArpReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "arp {} is-at {}", self.gateway_ip, self.gateway_mac)
    }
}

impl HairpinAction for ArpReply {
    fn gen_packet(&self, ctx: &MatchCtx<'_>) -> Result<MsgBlk, ActionError> {
        let Some(L3::Arp(req)) = &ctx.hdrs.l3 else {
            return Err(ActionError::NotApplicable("not an ARP packet"));
        };
        if req.op != arp_op::REQUEST {
            return Err(ActionError::NotApplicable("ARP other than a request"));
        }
        if req.tpa != self.gateway_ip {
            return Err(ActionError::NotApplicable("ARP request not for the gateway"));
        }
        // Reply to the asker's hardware and protocol addresses (RFC 826,
        // "swap the hardware and protocol fields"); the frame goes to the
        // asker's Ethernet source.
        let mut b = FrameBuilder::new(EtherHdr {
            dst: ctx.hdrs.eth.src,
            src: self.gateway_mac,
            ether_type: 0,
        });
        b.l3 = Some(L3::Arp(ArpEthIpv4 {
            op: arp_op::REPLY,
            sha: self.gateway_mac,
            spa: self.gateway_ip,
            tha: req.sha,
            tpa: req.spa,
        }));
        super::reply(&b, &[])
    }
}
