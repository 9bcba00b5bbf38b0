//! [`VpcPort`]: one guest NIC on the VPC. It owns an `opte` port built
//! with the five VPC layers, the port's configuration, firewall rules and
//! routes, and turns every configuration command into rule changes.
//!
//! # Reconfiguration
//!
//! Every command first builds and checks the complete new rule sets; only
//! when all are valid does anything change, so a refused command leaves
//! the port as it was. Changes are *soft* ([`Port::update_rules`]): rules
//! that stay the same keep their ids, and flows they decided keep their
//! state (firewall passes, NAT addresses and ports). The one *hard*
//! change is replacing the whole firewall rule set
//! ([`VpcPort::set_fw_rules`]), which re-evaluates every flow.
//!
//! # Locking
//!
//! - `ctl` (mutex): the configuration, firewall rules, routes and NAT
//!   state; held by a command for its whole duration, so commands on one
//!   port are serialized. Packets never take it.
//! - the `opte` port has its own locks (see `opte::engine::port`).

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use opte::ddi::MsgBlk;
use opte::ddi::sync::{KMutex, KMutexGuard};
use opte::engine::action::ActionError;
use opte::engine::explain::{ExplainVerdict, Explanation};
use opte::engine::flow_table::ExpiryPolicy;
use opte::engine::layer::LayerSpec;
use opte::engine::port::{Port, PortConfig, PortError, ProcessResult};
use opte::engine::rule::{MAX_RULES, RuleError, RuleId, RuleSpec, RuleTable};
use opte::engine::stats::DropReason;
use opte::engine::trace::Tracer;
use opte::engine::{Direction, Moment};
use opte::packet::Packet;
use opte_api::IpCidr;

use super::network::VpcNetwork;
use super::{RuleSet, firewall, gateway, layer_names, nat, overlay, router};
use crate::api::{
    AttachedSubnet, CfgError, ExternalIps, FirewallRule, Peering, PortSpec, RouterEntry,
    TransitCidr, VpcCfg, limits,
};

/// Headroom of the copy [`VpcPort::explain`] makes (room for the Geneve
/// headers the overlay pushes).
const EXPLAIN_HEADROOM: usize = 128;

/// Flow table sizes of one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortLimits {
    /// Unified flow table entries per direction.
    pub uft: u32,
    /// Layer flow table entries per layer and direction.
    pub lft: u32,
    /// TCP connections.
    pub tcp: u32,
}

impl Default for PortLimits {
    fn default() -> Self {
        Self { uft: 65_536, lft: 65_536, tcp: 65_536 }
    }
}

/// Why a command on a port was refused (the port is unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VpcError {
    /// The configuration is malformed.
    Cfg(CfgError),
    /// The engine refused the change.
    Port(PortError),
    /// No firewall rule has this id in this direction.
    NoSuchFwRule { dir: Direction, id: RuleId },
    /// No route with this destination, target and class.
    NoSuchRoute(RouterEntry),
    /// The CIDR is not attached, or not allowed in that direction.
    NoSuchCidr(IpCidr),
    /// The CIDR is already attached or allowed.
    DuplicateCidr(IpCidr),
    /// No peering with this VNI.
    NoSuchPeering(opte_api::Vni),
}

impl From<CfgError> for VpcError {
    fn from(e: CfgError) -> Self {
        Self::Cfg(e)
    }
}

impl From<PortError> for VpcError {
    fn from(e: PortError) -> Self {
        Self::Port(e)
    }
}

impl fmt::Display for VpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cfg(e) => e.fmt(f),
            Self::Port(e) => e.fmt(f),
            Self::NoSuchFwRule { dir, id } => write!(f, "no {dir}bound firewall rule {id}"),
            Self::NoSuchRoute(r) => {
                write!(f, "no {:?} route to {} via {:?}", r.class, r.dest, r.target)
            }
            Self::NoSuchCidr(c) => write!(f, "{c} is not configured on this port"),
            Self::DuplicateCidr(c) => write!(f, "{c} is already configured on this port"),
            Self::NoSuchPeering(v) => write!(f, "no peering with VNI {v}"),
        }
    }
}

/// What a command may change, under `ctl`.
#[derive(Clone)]
struct Control {
    cfg: VpcCfg,
    /// Firewall rules with the ids the port gave them.
    fw: Vec<(RuleId, FirewallRule)>,
    routes: Vec<RouterEntry>,
    nat: nat::NatState,
}

/// One guest NIC on the VPC.
pub struct VpcPort {
    port: Port,
    net: Arc<VpcNetwork>,
    ctl: KMutex<Control>,
}

/// The rule sets of every layer for a configuration, by layer name.
type LayerSets = [(&'static str, RuleSet); 5];

impl VpcPort {
    /// Build a running port for `cfg` on `net`, with no firewall rules
    /// beyond the defaults and no routes.
    pub fn new(
        name: &str,
        cfg: VpcCfg,
        net: Arc<VpcNetwork>,
        limits: PortLimits,
        tracer: Option<Arc<dyn Tracer>>,
    ) -> Result<Arc<Self>, VpcError> {
        cfg.validate()?;
        let layers = [
            gateway::layer_spec(limits.lft),
            firewall::layer_spec(limits.lft),
            router::layer_spec(limits.lft),
            nat::layer_spec(limits.lft),
            overlay::layer_spec(limits.lft),
        ];
        let port = Port::new(
            PortConfig {
                name: String::from(name),
                layers: Vec::from(layers),
                uft_limit: limits.uft,
                tcp_limit: limits.tcp,
                expiry: ExpiryPolicy::default(),
            },
            tracer,
        );
        let mut ctl =
            Control { cfg, fw: Vec::new(), routes: Vec::new(), nat: nat::NatState::new() };
        let all = Self::build(&mut ctl, &net)?;
        Self::install(&port, all)?;
        port.start()?;
        let p = Arc::new(Self { port, net: Arc::clone(&net), ctl: KMutex::new(ctl) });
        net.register(&p);
        Ok(p)
    }

    /// The engine port (for processing, dumps, stats, pause and reset).
    pub fn port(&self) -> &Port {
        &self.port
    }

    /// The host-wide mappings this port reads.
    pub fn network(&self) -> &Arc<VpcNetwork> {
        &self.net
    }

    /// Process one packet: a guest frame outbound, an underlay (Geneve)
    /// frame inbound.
    pub fn process(&self, dir: Direction, pkt: &mut Packet, now: Moment) -> ProcessResult {
        self.port.process(dir, pkt, now)
    }

    /// What the port would do with `frame` (a guest frame outbound, an
    /// underlay frame inbound), layer by layer, without changing any flow
    /// state: the explanation, and the frame as it would leave (for a
    /// pass). A frame that does not parse is explained as a parse drop.
    pub fn explain(&self, dir: Direction, frame: &[u8]) -> (Explanation, Option<Vec<u8>>) {
        let parsed = MsgBlk::from_bytes(EXPLAIN_HEADROOM, frame).map_err(|_| None).and_then(|m| {
            match dir {
                Direction::Out => Packet::parse_guest(m),
                Direction::In => Packet::parse_underlay(m),
            }
            .map_err(|f| Some(f.error))
        });
        let mut pkt = match parsed {
            Ok(p) => p,
            Err(e) => {
                let reason = match e {
                    Some(e) => DropReason::Parse(e),
                    None => DropReason::Action {
                        layer: "port",
                        error: ActionError::Reply("no memory for a copy of the frame"),
                    },
                };
                let ex = Explanation {
                    dir,
                    flow: None,
                    uft_hit: false,
                    steps: Vec::new(),
                    verdict: ExplainVerdict::Drop(reason),
                };
                return (ex, None);
            }
        };
        let ex = self.port.explain(dir, &mut pkt);
        let out = matches!(ex.verdict, ExplainVerdict::Pass(_)).then(|| pkt.mblk().to_vec());
        (ex, out)
    }

    /// The current configuration.
    pub fn cfg(&self) -> VpcCfg {
        self.ctl.lock().cfg.clone()
    }

    /// The firewall rules with their ids, in the order they were given.
    pub fn fw_rules(&self) -> Vec<(RuleId, FirewallRule)> {
        self.ctl.lock().fw.clone()
    }

    /// The routes.
    pub fn routes(&self) -> Vec<RouterEntry> {
        self.ctl.lock().routes.clone()
    }

    /// Everything needed to recreate this port (see [`PortSpec`]).
    pub fn spec(&self) -> PortSpec {
        let ctl = self.ctl.lock();
        PortSpec {
            name: String::from(self.port.name()),
            cfg: ctl.cfg.clone(),
            fw_rules: ctl.fw.iter().map(|(_, r)| r.clone()).collect(),
            routes: ctl.routes.clone(),
        }
    }

    /// Build a running port from a spec: its configuration, then its
    /// firewall rules and routes.
    pub fn from_spec(
        spec: &PortSpec,
        net: Arc<VpcNetwork>,
        limits: PortLimits,
        tracer: Option<Arc<dyn Tracer>>,
    ) -> Result<Arc<Self>, VpcError> {
        let p = Self::new(&spec.name, spec.cfg.clone(), net, limits, tracer)?;
        p.set_fw_rules(spec.fw_rules.clone())?;
        for r in &spec.routes {
            p.add_route(*r)?;
        }
        Ok(p)
    }

    /// Build every layer's rules for the control state.
    fn build(ctl: &mut Control, net: &Arc<VpcNetwork>) -> Result<LayerSets, VpcError> {
        let fw: Vec<FirewallRule> = ctl.fw.iter().map(|(_, r)| r.clone()).collect();
        let all = [
            (layer_names::GATEWAY, gateway::rules(&ctl.cfg)),
            (layer_names::FIREWALL, firewall::rules(&ctl.cfg, &fw)),
            (layer_names::ROUTER, router::rules(&ctl.cfg, &ctl.routes)),
            (layer_names::NAT, ctl.nat.rules(&ctl.cfg)),
            (layer_names::OVERLAY, overlay::rules(&ctl.cfg, net)),
        ];
        for (_, set) in &all {
            for specs in [&set.rules_in, &set.rules_out] {
                check_specs(specs)?;
            }
        }
        Ok(all)
    }

    /// Install checked rule sets softly; returns the firewall's new ids
    /// (inbound, outbound).
    fn install(port: &Port, all: LayerSets) -> Result<(Vec<RuleId>, Vec<RuleId>), VpcError> {
        let mut fw_ids = (Vec::new(), Vec::new());
        for (name, set) in all {
            let ids_in = port.update_rules(name, Direction::In, set.rules_in)?;
            let ids_out = port.update_rules(name, Direction::Out, set.rules_out)?;
            if name == layer_names::FIREWALL {
                fw_ids = (ids_in, ids_out);
            }
        }
        Ok(fw_ids)
    }

    /// Apply a change to the control state: build and check everything
    /// on a copy, then install it and keep the copy. On any error the
    /// port and its state are unchanged.
    fn change(&self, f: impl FnOnce(&mut Control) -> Result<(), VpcError>) -> Result<(), VpcError> {
        self.change_locked(f).map(drop)
    }

    /// [`VpcPort::change`], returning the lock on the new state for a
    /// caller that reports something of it.
    fn change_locked(
        &self,
        f: impl FnOnce(&mut Control) -> Result<(), VpcError>,
    ) -> Result<KMutexGuard<'_, Control>, VpcError> {
        let mut ctl = self.ctl.lock();
        let mut next = Control::clone(&ctl);
        f(&mut next)?;
        next.cfg.validate()?;
        let all = Self::build(&mut next, &self.net)?;
        let (ids_in, ids_out) = Self::install(&self.port, all)?;
        renumber_fw(&mut next.fw, ids_in, ids_out);
        *ctl = next;
        Ok(ctl)
    }

    /// Add one firewall rule (a soft change: established flows stay).
    /// Returns its id.
    pub fn add_fw_rule(&self, rule: FirewallRule) -> Result<RuleId, VpcError> {
        rule.validate()?;
        let dir = rule.direction;
        let ctl = self.change_locked(|c| {
            if c.fw.len() >= limits::MAX_FW_RULES {
                return Err(CfgError::TooMany {
                    what: "firewall rules",
                    max: limits::MAX_FW_RULES,
                }
                .into());
            }
            c.fw.push((RuleId(0), rule));
            Ok(())
        })?;
        // The rule just added: the last of its direction, numbered by
        // the change (under the same lock).
        let id = ctl.fw.iter().rev().find(|(_, r)| r.direction == dir).map(|(id, _)| *id);
        // Cannot fail (the change just added it); said as an error anyway.
        id.ok_or(VpcError::NoSuchFwRule { dir, id: RuleId(0) })
    }

    /// Remove the firewall rule `id` of direction `dir` (a soft change).
    pub fn rm_fw_rule(&self, dir: Direction, id: RuleId) -> Result<FirewallRule, VpcError> {
        let mut removed = None;
        self.change(|c| {
            let at =
                c.fw.iter()
                    .position(|(i, r)| *i == id && r.direction == dir)
                    .ok_or(VpcError::NoSuchFwRule { dir, id })?;
            removed = Some(c.fw.remove(at).1);
            Ok(())
        })?;
        removed.ok_or(VpcError::NoSuchFwRule { dir, id })
    }

    /// Replace every firewall rule (a hard change: every flow is decided
    /// afresh by the new rules).
    pub fn set_fw_rules(&self, rules: Vec<FirewallRule>) -> Result<(), VpcError> {
        if rules.len() > limits::MAX_FW_RULES {
            return Err(
                CfgError::TooMany { what: "firewall rules", max: limits::MAX_FW_RULES }.into()
            );
        }
        for r in &rules {
            r.validate()?;
        }
        let mut ctl = self.ctl.lock();
        let set = firewall::rules(&ctl.cfg, &rules);
        check_specs(&set.rules_in)?;
        check_specs(&set.rules_out)?;
        let ids_in = self.port.set_rules(layer_names::FIREWALL, Direction::In, set.rules_in)?;
        let ids_out = self.port.set_rules(layer_names::FIREWALL, Direction::Out, set.rules_out)?;
        ctl.fw = rules.into_iter().map(|r| (RuleId(0), r)).collect();
        renumber_fw(&mut ctl.fw, ids_in, ids_out);
        Ok(())
    }

    /// Add a route; one with the same destination and class is replaced.
    pub fn add_route(&self, entry: RouterEntry) -> Result<(), VpcError> {
        entry.validate()?;
        self.change(|c| {
            c.routes.retain(|r| !(r.dest == entry.dest && r.class == entry.class));
            if c.routes.len() >= limits::MAX_ROUTES {
                return Err(CfgError::TooMany { what: "routes", max: limits::MAX_ROUTES }.into());
            }
            c.routes.push(entry);
            Ok(())
        })
    }

    /// Remove a route (destination, target and class must all match).
    pub fn del_route(&self, entry: RouterEntry) -> Result<(), VpcError> {
        self.change(|c| {
            let at =
                c.routes.iter().position(|r| *r == entry).ok_or(VpcError::NoSuchRoute(entry))?;
            c.routes.remove(at);
            Ok(())
        })
    }

    /// Replace the external addresses of both families (`None` leaves a
    /// family's unchanged). Flows on addresses that stay valid keep their
    /// translation.
    pub fn set_external_ips(
        &self,
        v4: Option<ExternalIps<core::net::Ipv4Addr>>,
        v6: Option<ExternalIps<core::net::Ipv6Addr>>,
    ) -> Result<(), VpcError> {
        self.change(|c| {
            if let Some(e) = v4 {
                let Some(cfg) = c.cfg.ipv4.as_mut() else {
                    return Err(CfgError::WrongFamily {
                        what: "IPv4 external IPs on an IPv6-only port",
                    }
                    .into());
                };
                cfg.external = e;
            }
            if let Some(e) = v6 {
                let Some(cfg) = c.cfg.ipv6.as_mut() else {
                    return Err(CfgError::WrongFamily {
                        what: "IPv6 external IPs on an IPv4-only port",
                    }
                    .into());
                };
                cfg.external = e;
            }
            Ok(())
        })
    }

    /// Let the guest forward for `t.cidr` in direction `t.dir`.
    pub fn allow_cidr(&self, t: TransitCidr) -> Result<(), VpcError> {
        self.change(|c| {
            if c.cfg.transit.contains(&t) {
                return Err(VpcError::DuplicateCidr(t.cidr));
            }
            c.cfg.transit.push(t);
            Ok(())
        })
    }

    /// Stop the guest forwarding for `cidr` in direction `dir`.
    pub fn remove_cidr(&self, cidr: IpCidr, dir: Direction) -> Result<(), VpcError> {
        self.change(|c| {
            let t = TransitCidr { cidr, dir };
            let at =
                c.cfg.transit.iter().position(|x| *x == t).ok_or(VpcError::NoSuchCidr(cidr))?;
            c.cfg.transit.remove(at);
            Ok(())
        })
    }

    /// Attach a subnet to the port.
    pub fn attach_subnet(&self, s: AttachedSubnet) -> Result<(), VpcError> {
        self.change(|c| {
            if c.cfg.attached_subnets.iter().any(|x| x.cidr == s.cidr) {
                return Err(VpcError::DuplicateCidr(s.cidr));
            }
            c.cfg.attached_subnets.push(s);
            Ok(())
        })
    }

    /// Detach a subnet from the port.
    pub fn detach_subnet(&self, cidr: IpCidr) -> Result<(), VpcError> {
        self.change(|c| {
            let at = c
                .cfg
                .attached_subnets
                .iter()
                .position(|x| x.cidr == cidr)
                .ok_or(VpcError::NoSuchCidr(cidr))?;
            c.cfg.attached_subnets.remove(at);
            Ok(())
        })
    }

    /// Peer with another VPC (refused if subnets overlap).
    pub fn add_peering(&self, p: Peering) -> Result<(), VpcError> {
        self.change(|c| {
            c.cfg.peerings.push(p);
            Ok(())
        })
    }

    /// Stop peering with the VPC `vni`.
    pub fn remove_peering(&self, vni: opte_api::Vni) -> Result<(), VpcError> {
        self.change(|c| {
            let at = c
                .cfg
                .peerings
                .iter()
                .position(|p| p.vni == vni)
                .ok_or(VpcError::NoSuchPeering(vni))?;
            c.cfg.peerings.remove(at);
            Ok(())
        })
    }
}

/// Check rules as the port would, before changing anything.
fn check_specs(specs: &[RuleSpec]) -> Result<(), VpcError> {
    if specs.len() > MAX_RULES {
        return Err(VpcError::Port(PortError::Rule(RuleError::TooManyRules)));
    }
    for s in specs {
        RuleTable::validate(s).map_err(|e| VpcError::Port(PortError::Rule(e)))?;
    }
    Ok(())
}

/// Give firewall rules the ids the port returned, per direction in order
/// (the firewall layer emits one engine rule per firewall rule, in order).
fn renumber_fw(fw: &mut [(RuleId, FirewallRule)], ids_in: Vec<RuleId>, ids_out: Vec<RuleId>) {
    let mut ins = ids_in.into_iter();
    let mut outs = ids_out.into_iter();
    for (id, r) in fw.iter_mut() {
        let next = match r.direction {
            Direction::In => ins.next(),
            Direction::Out => outs.next(),
        };
        if let Some(n) = next {
            *id = n;
        }
    }
}

/// A layer's spec with the given flow table limit.
pub(crate) fn spec(
    name: &'static str,
    default_in: opte::engine::action::DefaultAction,
    default_out: opte::engine::action::DefaultAction,
    lft_limit: u32,
) -> LayerSpec {
    LayerSpec { name, default_in, default_out, lft_limit, keep_flows: false }
}
