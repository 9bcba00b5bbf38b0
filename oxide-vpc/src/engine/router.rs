//! The router layer: longest-prefix match of the destination over the
//! port's routes, per family, outbound. The chosen target is recorded in
//! metadata for the NAT and overlay layers (see the table in
//! [`engine`](super)); a packet with no route is dropped and counted as
//! denied by the router's default. Inbound traffic passes.
//!
//! Longest-prefix match is rule priority: a route of prefix length `l`
//! gets priority `BASE + 2 * (128 - l)`, plus one for a system route, so
//! longer prefixes go first and a custom route beats a system route of
//! the same length. IPv4 and IPv6 routes never match the same packet, so
//! they share the scale.
//!
//! Targets:
//!
//! | target | effect |
//! | --- | --- |
//! | drop | denied (counted against the route's rule) |
//! | internet gateway | `vpc.route = igw`, `vpc.igw` = its id or `any` |
//! | IP (an instance as router) | `vpc.route = ip`, next hop = that IP on our VNI |
//! | VPC subnet | `vpc.route = subnet`, next hop = the destination on our VNI |
//! | peer VPC | `vpc.route = peer`, next hop = the destination on the peer's VNI; denied if we don't peer with that VNI |

use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::net::IpAddr;

use opte::engine::Direction;
use opte::engine::action::{Action, ActionError, DefaultAction, MetaAction};
use opte::engine::flow::FlowId;
use opte::engine::layer::LayerSpec;
use opte::engine::meta::{Meta, MetaValue};
use opte::engine::predicate::Predicate;
use opte::engine::rule::RuleSpec;
use opte_api::Vni;

use super::{RuleSet, layer_names, meta_keys};
use crate::api::{RouteClass, RouterEntry, RouterTarget, Uuid, VpcCfg};

/// The priority of a /128 custom route; every route's priority is at
/// least this.
const BASE: u16 = 100;

/// The router layer's spec: inbound passes, outbound needs a route.
pub fn layer_spec(lft: u32) -> LayerSpec {
    super::vpc_port::spec(layer_names::ROUTER, DefaultAction::Allow, DefaultAction::Deny, lft)
}

/// The rule priority of a route (see the module documentation).
pub fn priority(r: &RouterEntry) -> u16 {
    let len = u16::from(r.dest.prefix_len().min(128));
    let class = match r.class {
        RouteClass::Custom => 0,
        RouteClass::System => 1,
    };
    BASE + 2 * (128 - len) + class
}

/// The router's rules: one per route, outbound.
pub fn rules(cfg: &VpcCfg, routes: &[RouterEntry]) -> RuleSet {
    let rules_out = routes
        .iter()
        .map(|r| {
            let action = match r.target {
                RouterTarget::Drop => Action::Deny,
                RouterTarget::PeerVpc(v) if !cfg.peerings.iter().any(|p| p.vni == v) => {
                    Action::Deny
                }
                target => Action::Meta(Arc::new(RouteTo::new(target, cfg.vni))),
            };
            RuleSpec::new(priority(r), action).with(Predicate::dst_in(r.dest))
        })
        .collect();
    RuleSet { rules_in: Vec::new(), rules_out }
}

/// Record a route's target for the layers after the router.
struct RouteTo {
    target: RouterTarget,
    /// Our VPC's VNI (the next hop's VNI for IP and subnet targets).
    vni: Vni,
    /// The metadata values it records, made once (recording them then
    /// allocates nothing).
    route: MetaValue,
    igw: MetaValue,
}

impl RouteTo {
    fn new(target: RouterTarget, vni: Vni) -> Self {
        let (route, igw) = match target {
            RouterTarget::InternetGateway(igw) => (meta_keys::route::IGW, igw_value(igw)),
            RouterTarget::Ip(_) => (meta_keys::route::IP, String::new()),
            RouterTarget::PeerVpc(_) => (meta_keys::route::PEER, String::new()),
            RouterTarget::VpcSubnet(_) | RouterTarget::Drop => {
                (meta_keys::route::SUBNET, String::new())
            }
        };
        Self { target, vni, route: MetaValue::Str(route.into()), igw: MetaValue::Str(igw.into()) }
    }
}

impl fmt::Display for RouteTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.target {
            RouterTarget::Drop => f.write_str("drop"),
            RouterTarget::InternetGateway(None) => f.write_str("internet gateway"),
            RouterTarget::InternetGateway(Some(id)) => write!(f, "internet gateway {id}"),
            RouterTarget::Ip(ip) => write!(f, "via instance {ip}"),
            RouterTarget::VpcSubnet(c) => write!(f, "VPC subnet {c}"),
            RouterTarget::PeerVpc(v) => write!(f, "peer VPC {v}"),
        }
    }
}

/// The metadata value naming an internet gateway (`any` for none).
pub fn igw_value(igw: Option<Uuid>) -> String {
    match igw {
        Some(id) => id.to_string(),
        None => String::from(meta_keys::IGW_ANY),
    }
}

impl MetaAction for RouteTo {
    fn mod_meta(
        &self,
        _dir: Direction,
        flow: Option<&FlowId>,
        meta: &mut Meta,
    ) -> Result<(), ActionError> {
        let dst = flow.map(FlowId::dst_ip).ok_or(ActionError::NotApplicable("not IP"))?;
        let (next_hop, vni): (Option<IpAddr>, Vni) = match self.target {
            RouterTarget::InternetGateway(_) => {
                meta.set(meta_keys::IGW, self.igw.clone())?;
                (None, self.vni)
            }
            RouterTarget::Ip(ip) => (Some(ip), self.vni),
            RouterTarget::VpcSubnet(_) => (Some(dst), self.vni),
            RouterTarget::PeerVpc(v) => (Some(dst), v),
            // Drop routes are Deny rules; they never get here.
            RouterTarget::Drop => return Err(ActionError::NotApplicable("drop route")),
        };
        meta.set(meta_keys::ROUTE, self.route.clone())?;
        if let Some(hop) = next_hop {
            meta.set(meta_keys::NEXT_HOP, MetaValue::Ip(hop))?;
            meta.set(meta_keys::DST_VNI, MetaValue::U64(u64::from(vni.value())))?;
        }
        Ok(())
    }
}
