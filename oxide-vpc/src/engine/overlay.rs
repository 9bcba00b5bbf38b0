//! The overlay layer: Geneve over the IPv6 underlay.
//!
//! **Outbound**, after the router decided where a packet goes (metadata
//! `vpc.route`, `vpc.next_hop`, `vpc.dst_vni`):
//!
//! - to another guest (route `ip`, `subnet` or `peer`): the V2P table
//!   (keyed by the next hop's VNI, which for a peered VPC is the peer's)
//!   gives the next hop's MAC and host; the packet is encapsulated to that
//!   host with *our* VNI, so the receiver knows which VPC sent it, and its
//!   inner destination MAC becomes the next hop's;
//! - to the internet (route `igw`): the V2B table gives the boundary
//!   endpoints for the destination (longest prefix); one is chosen per
//!   flow by hash, and the packet is encapsulated to it with its VNI
//!   (normally 99) and the Oxide `external` option.
//!
//! The outer UDP source port is taken from a hash of the inner flow
//! (49152-65535), so the underlay's ECMP spreads flows and keeps each on
//! one path. The outer Ethernet addresses are left zero: the driver's
//! underlay step fills them from its route to the outer destination. A
//! destination without a mapping is a counted drop
//! (`ActionError::NotApplicable`).
//!
//! **Inbound**: the VNI must be ours (internal or tagged external), the
//! boundary VNI with the external tag, or the VNI of a VPC we peer with
//! with an inner source inside that VPC's subnets (peering is not
//! transitive: only direct peers are accepted). Anything else is denied
//! by the layer default. Accepted packets are decapsulated, and the
//! layer records the source VNI and whether the packet is external in
//! metadata for the firewall and gateway. Unknown critical Geneve options
//! never get here: the parser refuses them (a counted parse drop).
//!
//! Mapping changes take effect on existing flows: the shared
//! [`VpcNetwork`] makes every port's cached flows stale, and their next
//! packets come back here.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::net::Ipv6Addr;

use opte::engine::Direction;
use opte::engine::action::{Action, ActionError, DefaultAction, StaticAction};
use opte::engine::flow::FlowId;
use opte::engine::layer::LayerSpec;
use opte::engine::meta::{Meta, MetaValue};
use opte::engine::predicate::Predicate;
use opte::engine::rule::RuleSpec;
use opte::engine::transform::{EtherMod, HdrTransform, OuterOp};
use opte::packet::{Encap, EtherHdr, GeneveHdr, GeneveOptions, Ipv6Hdr, UdpHdr};
use opte_api::{MacAddr, Vni};

use super::{RuleSet, VpcNetwork, layer_names, meta_keys};
use crate::api::{BOUNDARY_VNI, VpcCfg};

/// The Geneve UDP port (RFC 8926).
pub const GENEVE_PORT: u16 = 6081;
/// Hop limit of the outer IPv6 header.
pub const UNDERLAY_HOP_LIMIT: u8 = 64;

/// The overlay layer's spec: nothing passes without a decision.
pub fn layer_spec(lft: u32) -> LayerSpec {
    super::vpc_port::spec(layer_names::OVERLAY, DefaultAction::Deny, DefaultAction::Deny, lft)
}

/// The overlay's rules for `cfg` on `net`.
pub fn rules(cfg: &VpcCfg, net: &Arc<VpcNetwork>) -> RuleSet {
    let encap = Encapsulate { phys_ip: cfg.phys_ip, vni: cfg.vni, net: Arc::clone(net) };
    let rules_out = alloc::vec![RuleSpec::new(10, Action::Static(Arc::new(encap)))];

    let decap = |vni: Vni, external: bool| Action::Static(Arc::new(Decapsulate { vni, external }));
    let internal = Predicate::Not(alloc::boxed::Box::new(Predicate::GeneveExternal));
    let bvni = Vni::new(BOUNDARY_VNI).unwrap_or(Vni::ZERO);
    let mut rules_in = alloc::vec![
        RuleSpec::new(10, decap(cfg.vni, false))
            .with(Predicate::GeneveVni(cfg.vni))
            .with(internal.clone()),
        RuleSpec::new(10, decap(cfg.vni, true))
            .with(Predicate::GeneveVni(cfg.vni))
            .with(Predicate::GeneveExternal),
        RuleSpec::new(10, decap(bvni, true))
            .with(Predicate::GeneveVni(bvni))
            .with(Predicate::GeneveExternal),
    ];
    for p in &cfg.peerings {
        let from_peer: Vec<Predicate> = p.subnets.iter().map(|c| Predicate::src_in(*c)).collect();
        if from_peer.is_empty() {
            continue;
        }
        rules_in.push(
            RuleSpec::new(20, decap(p.vni, false))
                .with(Predicate::GeneveVni(p.vni))
                .with(internal.clone())
                .with(Predicate::Any(from_peer)),
        );
    }
    RuleSet { rules_in, rules_out }
}

/// Encapsulate to the next hop's host or to a boundary.
struct Encapsulate {
    phys_ip: Ipv6Addr,
    /// Our VPC's VNI: the Geneve VNI of guest-to-guest traffic.
    vni: Vni,
    net: Arc<VpcNetwork>,
}

impl fmt::Display for Encapsulate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "encap from {}", self.phys_ip)
    }
}

/// The outer UDP source port for a flow: 49152-65535 by hash.
pub fn udp_src_port(flow: &FlowId) -> u16 {
    src_port_of(flow.stable_hash())
}

/// The outer UDP source port for a flow whose stable hash is `h`.
fn src_port_of(h: u32) -> u16 {
    49152 | ((h ^ (h >> 16)) as u16 & 0x3fff)
}

impl Encapsulate {
    /// The encapsulation to `dst` for a flow whose stable hash is `h`.
    fn encap(&self, dst: Ipv6Addr, vni: Vni, external: bool, h: u32) -> Arc<Encap> {
        Arc::new(Encap {
            eth: EtherHdr { dst: MacAddr::ZERO, src: MacAddr::ZERO, ether_type: 0 },
            ip6: Ipv6Hdr {
                hop_limit: UNDERLAY_HOP_LIMIT,
                src: self.phys_ip,
                dst,
                ..Ipv6Hdr::EMPTY
            },
            udp: UdpHdr { src_port: src_port_of(h), dst_port: GENEVE_PORT, len: 0, csum: 0 },
            geneve: GeneveHdr::new(vni, GeneveOptions { external, ..GeneveOptions::default() }),
        })
    }
}

impl StaticAction for Encapsulate {
    fn gen_ht(
        &self,
        _dir: Direction,
        flow: &FlowId,
        meta: &mut Meta,
    ) -> Result<HdrTransform, ActionError> {
        let route = match meta.get(meta_keys::ROUTE) {
            Some(MetaValue::Str(s)) => &**s,
            _ => return Err(ActionError::NotApplicable("no route decision")),
        };
        // One hash per flow: the boundary pick and the source port.
        let h = flow.stable_hash();
        if route == meta_keys::route::IGW {
            let end = self
                .net
                .v2b_pick(flow.dst_ip(), h)
                .ok_or(ActionError::NotApplicable("no boundary for destination"))?;
            return Ok(HdrTransform {
                outer: OuterOp::Push(self.encap(end.ip, end.vni, true, h)),
                ..HdrTransform::NONE
            });
        }
        let Some(MetaValue::Ip(hop)) = meta.get(meta_keys::NEXT_HOP) else {
            return Err(ActionError::NotApplicable("no next hop"));
        };
        let vni = match meta.get(meta_keys::DST_VNI) {
            Some(MetaValue::U64(v)) => u32::try_from(*v).ok().and_then(|v| Vni::new(v).ok()),
            _ => None,
        }
        .ok_or(ActionError::NotApplicable("no destination VNI"))?;
        let m = self.net.v2p(vni, *hop).ok_or(ActionError::NotApplicable("no V2P mapping"))?;
        Ok(HdrTransform {
            outer: OuterOp::Push(self.encap(m.host, self.vni, false, h)),
            inner_eth: EtherMod { src: None, dst: Some(m.mac) },
            ..HdrTransform::NONE
        })
    }
}

/// Remove the encapsulation of an accepted packet, noting where it came
/// from.
struct Decapsulate {
    vni: Vni,
    external: bool,
}

impl fmt::Display for Decapsulate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.external { "external" } else { "internal" };
        write!(f, "decap {kind} VNI {}", self.vni)
    }
}

impl StaticAction for Decapsulate {
    fn gen_ht(
        &self,
        _dir: Direction,
        _flow: &FlowId,
        meta: &mut Meta,
    ) -> Result<HdrTransform, ActionError> {
        meta.set(meta_keys::SRC_VNI, MetaValue::U64(u64::from(self.vni.value())))?;
        meta.set(meta_keys::EXTERNAL, MetaValue::Bool(self.external))?;
        Ok(HdrTransform { outer: OuterOp::Pop, ..HdrTransform::NONE })
    }
}
