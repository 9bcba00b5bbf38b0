//! The NAT layer: the guest's external addresses for traffic routed to an
//! internet gateway, and the translation back of what comes in on them.
//!
//! # What it does
//!
//! Outbound, only packets the router sent to an internet gateway
//! (metadata `vpc.route` = `igw`) and only from the guest's private
//! address of their family are translated, to the first of these that is
//! valid for the gateway the router chose (`vpc.igw`: an external IP
//! with `igw: Some(id)` serves only gateway `id` or a route to any
//! gateway; one with `igw: None` serves every gateway):
//!
//! 1. a floating IP: one-to-one, the address picked among the valid
//!    floating IPs by a stable hash of the flow ([`action::Floating`]);
//! 2. the ephemeral IP: one-to-one ([`action::OneToOne`]);
//! 3. SNAT: the shared address with a port (TCP, UDP) or echo identifier
//!    (ICMP echo) from this guest's range, one pool per protocol
//!    ([`action::SnatAction`]). Other protocols cannot be SNATed (a
//!    counted `NotApplicable`); an exhausted pool is a counted
//!    `Exhausted("SNAT ports")`.
//!
//! With none valid the packet is denied by a rule (counted): it must not
//! leave with a private source. Traffic from an *external* attached
//! subnet is never translated: it passes untouched to an internet
//! gateway and is denied anywhere else (inbound, the gateway layer accepts
//! it only from a boundary).
//!
//! Inbound, a packet to a floating or the ephemeral IP is translated back
//! to the private address and starts a flow whose replies leave from that
//! same address; one to the SNAT address that is no reply of a flow is
//! denied (counted). Replies of outbound flows are translated back by the
//! flow state (the layer flow table pair of each decision).
//!
//! ICMP errors, either way, go to a packet hook that translates the
//! quoted packet too ([`icmp`]).
//!
//! # State and reconfiguration
//!
//! [`NatState`] keeps, keyed by external address, weak references to the
//! actions it built; [`NatState::rules`] reuses an action whose address
//! is still configured the same way, so its rules stay the same
//! ([`RuleSpec::same_as`]) and the flows they decided keep their
//! translation (and SNAT port). Only the installed rules hold actions
//! strongly, so an action, and the [`ExtAddr`] it
//! holds, goes the moment rules without it are installed; flows decided
//! by a rule that went are decided again by their next outbound packet,
//! and keep their translation if its address is still configured and
//! valid for their gateway (see [`action`]), else take a new one.
//!
//! Per-flow state lives in [`NatDesc`](action::NatDesc)s, held by the
//! engine's flow tables; a desc returns its port to its pool when the
//! last entry holding it goes (flow expiry). The ICMP error hook finds
//! them in the layer's flow tables.

pub mod action;
pub mod icmp;
pub mod pool;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec;
use alloc::vec::Vec;
use core::net::IpAddr;

use opte::engine::action::{Action, DefaultAction};
use opte::engine::layer::LayerSpec;
use opte::engine::meta::MetaValue;
use opte::engine::predicate::Predicate;
use opte::engine::rule::RuleSpec;
use opte::packet::icmp::{icmpv4_type, icmpv6_type};

use self::action::{ExtAddr, Floating, NotSnatable, OneToOne, SnatAction};
use self::icmp::IcmpErrorNat;
use super::{RuleSet, meta_keys};
use crate::api::{ExternalIp, ExternalIps, SNatCfg, Uuid, VpcCfg};

/// The NAT layer's spec.
pub fn layer_spec(lft: u32) -> LayerSpec {
    super::vpc_port::spec(super::layer_names::NAT, DefaultAction::Allow, DefaultAction::Allow, lft)
}

/// Rule priorities (lower first).
mod prio {
    /// ICMP errors, to the hook.
    pub const ICMP_ERROR: u16 = 10;
    /// External attached subnets to an internet gateway: untranslated.
    pub const EXT_SUBNET_ALLOW: u16 = 20;
    /// External attached subnets anywhere else.
    pub const EXT_SUBNET_DENY: u16 = 21;
    /// Floating IPs (outbound), every one-to-one address (inbound).
    pub const FLOATING: u16 = 30;
    /// The ephemeral IP (outbound).
    pub const EPHEMERAL: u16 = 40;
    /// ICMP that SNAT cannot translate.
    pub const SNAT_REFUSED: u16 = 49;
    /// SNAT (outbound); the SNAT address without flow state (inbound).
    pub const SNAT: u16 = 50;
    /// To an internet gateway with no valid external address.
    pub const NO_EXTERNAL_IP: u16 = 60;
}

/// What identifies an external address's action: the address, its
/// gateway, and for SNAT the port range (a new range is a new pool).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct AddrKey {
    ip: IpAddr,
    igw: Option<Uuid>,
    snat_range: Option<(u16, u16)>,
}

/// One family's external configuration, family-neutral.
struct Family {
    v6: bool,
    private: IpAddr,
    snat: Option<SNatCfg<IpAddr>>,
    ephemeral: Option<ExternalIp<IpAddr>>,
    floating: Vec<ExternalIp<IpAddr>>,
}

impl Family {
    fn new<T: Copy + Into<IpAddr>>(private: T, e: &ExternalIps<T>, v6: bool) -> Self {
        let ext = |x: &ExternalIp<T>| ExternalIp { ip: x.ip.into(), igw: x.igw };
        Self {
            v6,
            private: private.into(),
            snat: e.snat.map(|s| SNatCfg {
                ip: s.ip.into(),
                first_port: s.first_port,
                last_port: s.last_port,
                igw: s.igw,
            }),
            ephemeral: e.ephemeral_ip.as_ref().map(ext),
            floating: e.floating_ips.iter().map(ext).collect(),
        }
    }

    /// Every external address of the family (SNAT included).
    fn all_ips(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self.floating.iter().map(|f| f.ip).collect();
        v.extend(self.ephemeral.iter().map(|e| e.ip));
        v.extend(self.snat.iter().map(|s| s.ip));
        v
    }
}

/// The NAT layer's actions, kept across reconfiguration (see the module
/// documentation). Cloning shares the actions.
#[derive(Clone)]
pub struct NatState {
    addrs: BTreeMap<AddrKey, Weak<ExtAddr>>,
    snat: BTreeMap<AddrKey, Weak<SnatAction>>,
    one_to_one: BTreeMap<(AddrKey, IpAddr), Weak<OneToOne>>,
    floating: BTreeMap<(Vec<AddrKey>, IpAddr), Weak<Floating>>,
    hook: Option<Weak<IcmpErrorNat>>,
    not_snatable: Arc<NotSnatable>,
}

impl Default for NatState {
    fn default() -> Self {
        Self::new()
    }
}

impl NatState {
    /// No addresses yet.
    pub fn new() -> Self {
        Self {
            addrs: BTreeMap::new(),
            snat: BTreeMap::new(),
            one_to_one: BTreeMap::new(),
            floating: BTreeMap::new(),
            hook: None,
            not_snatable: Arc::new(NotSnatable),
        }
    }

    /// The NAT rules for `cfg`: actions of addresses configured as before
    /// are reused, new ones built.
    pub fn rules(&mut self, cfg: &VpcCfg) -> RuleSet {
        self.prune();
        let mut families = Vec::new();
        if let Some(c) = &cfg.ipv4 {
            families.push(Family::new(c.private_ip, &c.external, false));
        }
        if let Some(c) = &cfg.ipv6 {
            families.push(Family::new(c.private_ip, &c.external, true));
        }
        let mut set = RuleSet::default();
        let one_to_one: Vec<(IpAddr, IpAddr)> = families
            .iter()
            .flat_map(|f| {
                f.floating.iter().chain(f.ephemeral.iter()).map(move |e| (e.ip, f.private))
            })
            .collect();
        let hook = self.hook(one_to_one);
        for f in &families {
            self.family_rules(f, &hook, &mut set);
        }
        for s in cfg.attached_subnets.iter().filter(|s| s.external) {
            set.rules_out.push(
                RuleSpec::new(prio::EXT_SUBNET_ALLOW, Action::Allow)
                    .with(routed_to_igw())
                    .with(Predicate::src_in(s.cidr)),
            );
            set.rules_out.push(
                RuleSpec::new(prio::EXT_SUBNET_DENY, Action::Deny).with(Predicate::src_in(s.cidr)),
            );
        }
        set
    }

    /// Forget actions no installed rule holds any more.
    fn prune(&mut self) {
        self.addrs.retain(|_, w| w.strong_count() > 0);
        self.snat.retain(|_, w| w.strong_count() > 0);
        self.one_to_one.retain(|_, w| w.strong_count() > 0);
        self.floating.retain(|_, w| w.strong_count() > 0);
    }

    /// The ICMP error hook for these one-to-one addresses (the installed
    /// one if it has the same).
    fn hook(&mut self, one_to_one: Vec<(IpAddr, IpAddr)>) -> Arc<IcmpErrorNat> {
        if let Some(h) = self.hook.as_ref().and_then(Weak::upgrade)
            && h.one_to_one() == one_to_one.as_slice()
        {
            return h;
        }
        let h = Arc::new(IcmpErrorNat::new(one_to_one));
        self.hook = Some(Arc::downgrade(&h));
        h
    }

    fn addr(&mut self, key: AddrKey) -> Arc<ExtAddr> {
        if let Some(a) = self.addrs.get(&key).and_then(Weak::upgrade) {
            return a;
        }
        let a = Arc::new(ExtAddr::new(key.ip, key.igw));
        self.addrs.insert(key, Arc::downgrade(&a));
        a
    }

    fn snat_action(&mut self, s: &SNatCfg<IpAddr>) -> Arc<SnatAction> {
        let key = AddrKey { ip: s.ip, igw: s.igw, snat_range: Some((s.first_port, s.last_port)) };
        if let Some(a) = self.snat.get(&key).and_then(Weak::upgrade) {
            return a;
        }
        let addr = self.addr(key);
        let a = Arc::new(SnatAction::new(addr, s.first_port, s.last_port));
        self.snat.insert(key, Arc::downgrade(&a));
        a
    }

    fn one_to_one_action(&mut self, e: &ExternalIp<IpAddr>, private: IpAddr) -> Arc<OneToOne> {
        let key = (AddrKey { ip: e.ip, igw: e.igw, snat_range: None }, private);
        if let Some(a) = self.one_to_one.get(&key).and_then(Weak::upgrade) {
            return a;
        }
        let addr = self.addr(key.0);
        let a = Arc::new(OneToOne::new(addr, private));
        self.one_to_one.insert(key, Arc::downgrade(&a));
        a
    }

    fn floating_action(&mut self, fips: &[ExternalIp<IpAddr>], private: IpAddr) -> Arc<Floating> {
        let keys: Vec<AddrKey> =
            fips.iter().map(|e| AddrKey { ip: e.ip, igw: e.igw, snat_range: None }).collect();
        let key = (keys, private);
        if let Some(a) = self.floating.get(&key).and_then(Weak::upgrade) {
            return a;
        }
        let addrs = key.0.iter().map(|k| self.addr(*k)).collect();
        let a = Arc::new(Floating::new(addrs, private));
        self.floating.insert(key, Arc::downgrade(&a));
        a
    }

    /// One family's rules.
    fn family_rules(&mut self, f: &Family, hook: &Arc<IcmpErrorNat>, set: &mut RuleSet) {
        let from_guest = || vec![routed_to_igw(), Predicate::src_is(f.private)];
        let rule = |prio: u16, action: Action, preds: Vec<Predicate>| RuleSpec {
            priority: prio,
            predicates: preds,
            action,
        };
        let ext_ips = f.all_ips();
        if !ext_ips.is_empty() {
            let mut p = from_guest();
            p.push(icmp_error(f.v6));
            set.rules_out.push(rule(prio::ICMP_ERROR, Action::HandlePacket(hook.clone()), p));
            set.rules_in.push(rule(
                prio::ICMP_ERROR,
                Action::HandlePacket(hook.clone()),
                vec![
                    icmp_error(f.v6),
                    Predicate::Any(ext_ips.iter().map(|ip| Predicate::dst_is(*ip)).collect()),
                ],
            ));
        }

        if !f.floating.is_empty() {
            let a = self.floating_action(&f.floating, f.private);
            let mut p = from_guest();
            p.extend(igw_filter(f.floating.iter().map(|e| e.igw)));
            set.rules_out.push(rule(prio::FLOATING, Action::Stateful(a), p));
        }
        if let Some(e) = &f.ephemeral {
            let a = self.one_to_one_action(e, f.private);
            let mut p = from_guest();
            p.extend(igw_filter([e.igw]));
            set.rules_out.push(rule(prio::EPHEMERAL, Action::Stateful(a), p));
        }
        // Inbound to each one-to-one address (an address given twice is
        // translated by its first action).
        let mut seen: Vec<IpAddr> = Vec::new();
        for e in f.floating.iter().chain(f.ephemeral.iter()) {
            if seen.contains(&e.ip) {
                continue;
            }
            seen.push(e.ip);
            let a = self.one_to_one_action(e, f.private);
            set.rules_in.push(rule(
                prio::FLOATING,
                Action::Stateful(a),
                vec![Predicate::dst_is(e.ip)],
            ));
        }
        if let Some(s) = &f.snat {
            let a = self.snat_action(s);
            let mut p = from_guest();
            p.extend(igw_filter([s.igw]));
            let mut refused = p.clone();
            refused.push(icmp_not_echo(f.v6));
            set.rules_out.push(rule(
                prio::SNAT_REFUSED,
                Action::Static(self.not_snatable.clone()),
                refused,
            ));
            set.rules_out.push(rule(prio::SNAT, Action::Stateful(a), p));
            if !seen.contains(&s.ip) {
                set.rules_in.push(rule(prio::SNAT, Action::Deny, vec![Predicate::dst_is(s.ip)]));
            }
        }
        set.rules_out.push(rule(prio::NO_EXTERNAL_IP, Action::Deny, from_guest()));
    }
}

/// The router sent the packet to an internet gateway.
fn routed_to_igw() -> Predicate {
    Predicate::Meta {
        key: String::from(meta_keys::ROUTE),
        value: MetaValue::Str(meta_keys::route::IGW.into()),
    }
}

/// The gateways for which at least one of addresses valid for `igws`
/// may be used; None when one of them serves any gateway.
fn igw_filter(igws: impl IntoIterator<Item = Option<Uuid>>) -> Option<Predicate> {
    let mut ids: Vec<Uuid> = Vec::new();
    for igw in igws {
        match igw {
            None => return None,
            Some(id) if !ids.contains(&id) => ids.push(id),
            Some(_) => {}
        }
    }
    let meta = |s: String| Predicate::Meta {
        key: String::from(meta_keys::IGW),
        value: MetaValue::Str(s.into()),
    };
    let mut any: Vec<Predicate> = ids.iter().map(|id| meta(alloc::format!("{id}"))).collect();
    any.push(meta(String::from(meta_keys::IGW_ANY)));
    Some(Predicate::Any(any))
}

/// An ICMP (v6) error message: one that quotes the packet it is about.
fn icmp_error(v6: bool) -> Predicate {
    if v6 {
        use icmpv6_type::*;
        Predicate::All(vec![
            Predicate::IpProto(58),
            Predicate::Any(
                [DEST_UNREACH, PACKET_TOO_BIG, TIME_EXCEEDED, PARAM_PROBLEM]
                    .into_iter()
                    .map(Predicate::Icmpv6Type)
                    .collect(),
            ),
        ])
    } else {
        use icmpv4_type::*;
        Predicate::All(vec![
            Predicate::IpProto(1),
            Predicate::Any(
                [DEST_UNREACH, SOURCE_QUENCH, REDIRECT, TIME_EXCEEDED, PARAM_PROBLEM]
                    .into_iter()
                    .map(Predicate::IcmpType)
                    .collect(),
            ),
        ])
    }
}

/// ICMP (v6) other than echo: nothing SNAT can map.
fn icmp_not_echo(v6: bool) -> Predicate {
    let (proto, echo) = if v6 {
        (
            58,
            Predicate::Any(vec![
                Predicate::Icmpv6Type(icmpv6_type::ECHO_REQUEST),
                Predicate::Icmpv6Type(icmpv6_type::ECHO_REPLY),
            ]),
        )
    } else {
        (
            1,
            Predicate::Any(vec![
                Predicate::IcmpType(icmpv4_type::ECHO_REQUEST),
                Predicate::IcmpType(icmpv4_type::ECHO_REPLY),
            ]),
        )
    };
    Predicate::All(vec![Predicate::IpProto(proto), Predicate::Not(alloc::boxed::Box::new(echo))])
}
