//! The firewall layer: the guest's stateful firewall.
//!
//! Each [`FirewallRule`] becomes exactly one engine rule in its
//! direction, in the order given ([`VpcPort`](super::VpcPort) relies on
//! this to map rule ids back to firewall rules). An allow rule is a
//! stateful allow: the flow's replies pass the other way whatever the
//! rules of that direction say. The defaults: inbound deny, outbound
//! stateful allow.
//!
//! What a rule's fields match:
//!
//! - **hosts**: the far end, i.e. the source of inbound traffic and the
//!   destination of outbound traffic. A VNI matches inbound traffic the
//!   overlay accepted from that VPC (metadata `vpc.src_vni`), never
//!   traffic tagged external; outbound it matches destinations inside
//!   that VPC's subnets (ours, or a peer's). A VNI we neither are nor
//!   peer with matches nothing.
//! - **protocol**: TCP, UDP, ICMP or ICMPv6 (optionally a type and code
//!   range), ARP, or any other IP protocol number.
//! - **ports**: destination ports (TCP and UDP), exact or ranges.
//!
//! Adding or removing one rule is a soft change that keeps every
//! established flow as it is (the layer is built with
//! `keep_flows`: its remembered decisions are not re-checked), so new
//! rules apply to new flows; replacing the set is a hard change that
//! re-evaluates every flow.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use opte::engine::Direction;
use opte::engine::action::{Action, DefaultAction};
use opte::engine::layer::LayerSpec;
use opte::engine::meta::MetaValue;
use opte::engine::predicate::{PortMatch, Predicate};
use opte::engine::rule::RuleSpec;
use opte::packet::ether::ether_type;
use opte::packet::ip4::protocol;
use opte_api::{IpCidr, Vni};

use super::{RuleSet, layer_names, meta_keys};
use crate::api::{FirewallRule, FwAction, FwHosts, FwProtocol, IcmpFilter, VpcCfg};

/// A metadata key no layer writes: the predicate of a VNI filter for a
/// VPC this port neither is nor peers with (it matches nothing, and
/// still shows the VNI in dumps).
const UNKNOWN_VNI: &str = "vpc.fw.unknown_vni";

/// The firewall layer's spec: inbound deny, outbound stateful allow.
pub fn layer_spec(lft: u32) -> LayerSpec {
    LayerSpec {
        // Adding or removing one rule keeps established flows.
        keep_flows: true,
        ..super::vpc_port::spec(
            layer_names::FIREWALL,
            DefaultAction::Deny,
            DefaultAction::StatefulAllow,
            lft,
        )
    }
}

/// The firewall's engine rules: one per firewall rule, in order, in its
/// direction.
pub fn rules(cfg: &VpcCfg, rules: &[FirewallRule]) -> RuleSet {
    let mut set = RuleSet::default();
    for r in rules {
        let spec = compile(cfg, r);
        match r.direction {
            Direction::In => set.rules_in.push(spec),
            Direction::Out => set.rules_out.push(spec),
        }
    }
    set
}

/// One firewall rule as an engine rule.
pub fn compile(cfg: &VpcCfg, r: &FirewallRule) -> RuleSpec {
    let action = match r.action {
        FwAction::Allow => Action::StatefulAllow,
        FwAction::Deny => Action::Deny,
    };
    let mut spec = RuleSpec::new(r.priority, action);
    if let Some(p) = hosts(cfg, r.direction, &r.hosts) {
        spec = spec.with(p);
    }
    for p in protocol_predicates(&r.protocol) {
        spec = spec.with(p);
    }
    if !r.ports.is_empty() {
        let ports = r
            .ports
            .iter()
            .map(|p| {
                Predicate::DstPort(if p.first == p.last {
                    PortMatch::Exact(p.first)
                } else {
                    PortMatch::Range { lo: p.first, hi: p.last }
                })
            })
            .collect();
        spec = spec.with(Predicate::Any(ports));
    }
    spec
}

/// The predicate for the far end of the traffic.
fn hosts(cfg: &VpcCfg, dir: Direction, h: &FwHosts) -> Option<Predicate> {
    match *h {
        FwHosts::Any => None,
        FwHosts::Ip(ip) => Some(far_end(dir, IpCidr::from_host(ip))),
        FwHosts::Subnet(c) => Some(far_end(dir, c)),
        FwHosts::Vni(v) => Some(vni_predicate(cfg, dir, v)),
    }
}

/// The far end (source inbound, destination outbound) inside `c`.
fn far_end(dir: Direction, c: IpCidr) -> Predicate {
    match dir {
        Direction::In => Predicate::src_in(c),
        Direction::Out => Predicate::dst_in(c),
    }
}

/// Traffic from (inbound) or to (outbound) the VPC `v`.
fn vni_predicate(cfg: &VpcCfg, dir: Direction, v: Vni) -> Predicate {
    let subnets: Vec<IpCidr> = if v == cfg.vni {
        cfg.vpc_subnets()
    } else {
        cfg.peerings.iter().filter(|p| p.vni == v).flat_map(|p| p.subnets.iter().copied()).collect()
    };
    if subnets.is_empty() {
        return Predicate::Meta {
            key: String::from(UNKNOWN_VNI),
            value: MetaValue::U64(u64::from(v.value())),
        };
    }
    match dir {
        Direction::In => Predicate::All(alloc::vec![
            Predicate::Meta {
                key: String::from(meta_keys::SRC_VNI),
                value: MetaValue::U64(u64::from(v.value())),
            },
            Predicate::Not(Box::new(Predicate::Meta {
                key: String::from(meta_keys::EXTERNAL),
                value: MetaValue::Bool(true),
            })),
        ]),
        Direction::Out => {
            Predicate::Any(subnets.into_iter().map(|c| far_end(Direction::Out, c)).collect())
        }
    }
}

/// The predicates for a protocol filter.
fn protocol_predicates(p: &FwProtocol) -> Vec<Predicate> {
    let icmp = |proto: u8, f: &Option<IcmpFilter>, v6: bool| {
        let mut v = alloc::vec![Predicate::IpProto(proto)];
        if let Some(f) = f {
            v.push(if v6 { Predicate::Icmpv6Type(f.ty) } else { Predicate::IcmpType(f.ty) });
            if let Some((lo, hi)) = f.codes {
                v.push(if v6 {
                    Predicate::Icmpv6Codes { lo, hi }
                } else {
                    Predicate::IcmpCodes { lo, hi }
                });
            }
        }
        v
    };
    match p {
        FwProtocol::Any => Vec::new(),
        FwProtocol::Tcp => alloc::vec![Predicate::IpProto(protocol::TCP)],
        FwProtocol::Udp => alloc::vec![Predicate::IpProto(protocol::UDP)],
        FwProtocol::Icmp(f) => icmp(protocol::ICMP, f, false),
        FwProtocol::Icmpv6(f) => icmp(protocol::ICMPV6, f, true),
        FwProtocol::Arp => alloc::vec![Predicate::EtherType(ether_type::ARP)],
        FwProtocol::Other(n) => alloc::vec![Predicate::IpProto(*n)],
    }
}
