//! The NAT layer's actions and the per-flow state they create.
//!
//! - [`SnatAction`]: source NAT of outbound TCP, UDP and ICMP echo onto
//!   a shared address, with a port (or echo identifier) from the
//!   protocol's [`PortPool`].
//! - [`OneToOne`]: an address of this guest alone (the ephemeral IP, or
//!   one floating IP inbound): the address changes, ports stay.
//! - [`Floating`]: outbound onto one of the floating IPs, chosen by a
//!   stable hash of the flow among those valid for its internet gateway.
//! - [`NotSnatable`]: refuses ICMP messages SNAT cannot tell apart (no
//!   echo identifier) with a counted `NotApplicable`.
//!
//! Each stateful decision is a [`NatDesc`]: the private and external
//! address, the port mapping, the port it took (returned to its pool
//! when the last flow entry holding the desc goes), and a weak hold on
//! the [`ExtAddr`] it uses. An `ExtAddr` lives exactly as long as an
//! installed rule's action uses it, so a desc whose address was removed
//! from the configuration can tell (its `addr` no longer upgrades).
//!
//! # Keeping flows across reconfiguration
//!
//! The port keeps a flow's decision when its rule survives a soft rule
//! change unchanged; otherwise the flow's next outbound packet is decided
//! again, and the engine offers the action the desc the flow had (the
//! `previous` state of [`StatefulAction::gen_desc`]). Every outbound
//! action returns that same desc when its address is still configured
//! and valid for the flow's internet gateway: a flow stays on its address
//! (and SNAT port) as long as the address stays, even when the rule that
//! would pick an address for a new flow changed (a floating IP was added,
//! or another one removed). Flows on an address that went get a new one.
//! (An operator's clear of the layer's flow tables forgets the descs'
//! flows too: those flows get new translations.)
//!
//! The engine's layer flow table is the one index of the descs: the ICMP
//! error hook finds the desc of a quoted flow there
//! ([`LayerFlows`](opte::engine::action::LayerFlows)).
//!
//! # Locking
//!
//! - each [`PortPool`] (mutex): taken to allocate (by an action deciding
//!   a flow, under the NAT layer's flow table mutex) and to release (by a
//!   desc's `Drop`, which may run under the engine's flow table locks). A
//!   leaf: nothing is taken while holding it.

use alloc::format;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::any::Any;
use core::fmt;
use core::net::IpAddr;

use opte::ddi::sync::KMutex;
use opte::engine::Direction;
use opte::engine::action::{ActionDesc, ActionError, StatefulAction, StaticAction};
use opte::engine::flow::FlowId;
use opte::engine::meta::{Meta, MetaValue};
use opte::engine::transform::{HdrTransform, IpMod, UlpMod};

use super::pool::PortPool;
use crate::api::Uuid;
use crate::engine::meta_keys;

/// IP protocol numbers the actions tell apart.
mod proto {
    /// ICMP (echo identifiers).
    pub const ICMP: u8 = 1;
    /// TCP (ports).
    pub const TCP: u8 = 6;
    /// UDP (ports).
    pub const UDP: u8 = 17;
    /// ICMPv6 (echo identifiers).
    pub const ICMPV6: u8 = 58;
}

/// One configured external address and the internet gateway it is
/// valid for. Installed actions hold it; descs hold it weakly, to know
/// whether their address is still configured.
#[derive(Debug)]
pub struct ExtAddr {
    /// The external address.
    pub ip: IpAddr,
    /// The internet gateway it serves; `None` for any.
    pub igw: Option<Uuid>,
    /// `igw` as the router writes it in metadata (hyphenated lowercase).
    igw_str: Option<String>,
}

impl ExtAddr {
    /// An address valid for `igw` (`None`: any gateway).
    pub fn new(ip: IpAddr, igw: Option<Uuid>) -> Self {
        Self { ip, igw, igw_str: igw.map(|u| format!("{u}")) }
    }

    /// True when traffic routed to the gateway `route_igw` (the `vpc.igw`
    /// metadata: a UUID or `any`; `None` when the router wrote none) may
    /// leave from this address.
    pub fn usable_for(&self, route_igw: Option<&str>) -> bool {
        match (&self.igw_str, route_igw) {
            (None, _) => true,
            (Some(_), Some(meta_keys::IGW_ANY)) => true,
            (Some(mine), Some(r)) => mine == r,
            (Some(_), None) => false,
        }
    }
}

/// The internet gateway the router chose for this packet, if it said.
pub fn route_igw(meta: &Meta) -> Option<&str> {
    match meta.get(meta_keys::IGW) {
        Some(MetaValue::Str(s)) => Some(&**s),
        _ => None,
    }
}

/// How a desc maps transport ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortMap {
    /// Ports stay (one-to-one NAT).
    Keep,
    /// TCP or UDP: the guest's source port is `guest`, the external one
    /// `ext`.
    Ports { guest: u16, ext: u16 },
    /// ICMP echo: the guest's identifier is `guest`, the external one
    /// `ext`.
    EchoId { guest: u16, ext: u16 },
}

/// One flow's translation (both directions).
pub struct NatDesc {
    /// The guest's private address.
    pub private: IpAddr,
    /// The external address it is translated to.
    pub ext: IpAddr,
    /// How ports (or echo identifiers) are translated.
    pub map: PortMap,
    /// The address this translation uses; dead once it is no longer
    /// configured.
    pub addr: Weak<ExtAddr>,
    /// A port taken from a pool, returned when the desc goes.
    taken: Option<(Arc<KMutex<PortPool>>, u16)>,
}

impl NatDesc {
    /// A desc translating between `private` and `addr`.
    fn new(
        addr: &Arc<ExtAddr>,
        private: IpAddr,
        map: PortMap,
        taken: Option<(Arc<KMutex<PortPool>>, u16)>,
    ) -> Arc<Self> {
        Arc::new(Self { private, ext: addr.ip, map, addr: Arc::downgrade(addr), taken })
    }

    /// The NAT desc behind an engine-held action state, if it is one.
    pub fn of(d: &dyn ActionDesc) -> Option<&NatDesc> {
        let any: &dyn Any = d;
        any.downcast_ref::<NatDesc>()
    }

    /// True while its address is still configured.
    pub fn addr_live(&self) -> bool {
        self.addr.strong_count() > 0
    }

    /// Whether the guest's outbound `flow` may keep this desc: its
    /// address is still configured and valid for the internet gateway the
    /// router chose (see the module documentation).
    fn reusable_for(&self, flow: &FlowId, meta: &Meta) -> bool {
        self.private == flow.src_ip()
            && self.addr.upgrade().is_some_and(|a| a.usable_for(route_igw(meta)))
    }
}

/// The desc an outbound flow had, when it may keep it (see the module
/// documentation).
fn kept(
    previous: Option<&Arc<dyn ActionDesc>>,
    flow: &FlowId,
    meta: &Meta,
) -> Option<Arc<dyn ActionDesc>> {
    let p = previous?;
    NatDesc::of(&**p)?.reusable_for(flow, meta).then(|| Arc::clone(p))
}

impl Drop for NatDesc {
    fn drop(&mut self) {
        if let Some((pool, port)) = &self.taken {
            let released = pool.lock().release(*port);
            debug_assert!(released, "SNAT port {port} released twice");
        }
    }
}

fn ip_mod(src: Option<IpAddr>, dst: Option<IpAddr>) -> Option<IpMod> {
    use IpAddr::{V4, V6};
    match (src, dst) {
        (Some(V4(s)), None) => Some(IpMod::V4 { src: Some(s), dst: None }),
        (None, Some(V4(d))) => Some(IpMod::V4 { src: None, dst: Some(d) }),
        (Some(V6(s)), None) => Some(IpMod::V6 { src: Some(s), dst: None }),
        (None, Some(V6(d))) => Some(IpMod::V6 { src: None, dst: Some(d) }),
        _ => None,
    }
}

impl ActionDesc for NatDesc {
    fn gen_ht(&self, dir: Direction) -> HdrTransform {
        let none = UlpMod::default();
        match dir {
            Direction::Out => HdrTransform {
                inner_ip: ip_mod(Some(self.ext), None),
                inner_ulp: match self.map {
                    PortMap::Keep => none,
                    PortMap::Ports { ext, .. } => UlpMod { src_port: Some(ext), ..none },
                    PortMap::EchoId { ext, .. } => UlpMod { icmp_id: Some(ext), ..none },
                },
                ..HdrTransform::NONE
            },
            Direction::In => HdrTransform {
                inner_ip: ip_mod(None, Some(self.private)),
                inner_ulp: match self.map {
                    PortMap::Keep => none,
                    PortMap::Ports { guest, .. } => UlpMod { dst_port: Some(guest), ..none },
                    PortMap::EchoId { guest, .. } => UlpMod { icmp_id: Some(guest), ..none },
                },
                ..HdrTransform::NONE
            },
        }
    }

    fn valid(&self) -> bool {
        self.addr_live()
    }

    fn describe(&self) -> String {
        match self.map {
            PortMap::Keep => format!("1:1 {} <-> {}", self.private, self.ext),
            PortMap::Ports { guest, ext } => {
                format!("SNAT {}:{guest} <-> {}:{ext}", self.private, self.ext)
            }
            PortMap::EchoId { guest, ext } => {
                format!("SNAT {} id {guest} <-> {} id {ext}", self.private, self.ext)
            }
        }
    }
}

fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

/// Source NAT onto one shared address, with a pool per protocol.
pub struct SnatAction {
    addr: Arc<ExtAddr>,
    tcp: Arc<KMutex<PortPool>>,
    udp: Arc<KMutex<PortPool>>,
    echo: Arc<KMutex<PortPool>>,
}

impl SnatAction {
    /// SNAT onto `addr` with ports `first..=last` for each protocol.
    pub fn new(addr: Arc<ExtAddr>, first: u16, last: u16) -> Self {
        let pool = || Arc::new(KMutex::new(PortPool::new(first, last)));
        Self { addr, tcp: pool(), udp: pool(), echo: pool() }
    }

    /// Free ports of the (TCP, UDP, ICMP echo) pools.
    pub fn available(&self) -> (usize, usize, usize) {
        (self.tcp.lock().available(), self.udp.lock().available(), self.echo.lock().available())
    }
}

impl fmt::Display for SnatAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "snat {}", self.addr.ip)
    }
}

impl StatefulAction for SnatAction {
    fn gen_desc(
        &self,
        dir: Direction,
        flow: &FlowId,
        meta: &mut Meta,
        previous: Option<&Arc<dyn ActionDesc>>,
    ) -> Result<Arc<dyn ActionDesc>, ActionError> {
        if dir != Direction::Out {
            return Err(ActionError::NotApplicable("SNAT starts only outbound flows"));
        }
        if !same_family(flow.src_ip(), self.addr.ip) {
            return Err(ActionError::NotApplicable("SNAT address of the other family"));
        }
        let (pool, echo) = match flow.proto {
            proto::TCP => (&self.tcp, false),
            proto::UDP => (&self.udp, false),
            proto::ICMP | proto::ICMPV6 => (&self.echo, true),
            _ => return Err(ActionError::NotApplicable(NOT_SNATABLE)),
        };
        if let Some(d) = kept(previous, flow, meta) {
            return Ok(d);
        }
        let port = pool.lock().allocate().ok_or(ActionError::Exhausted("SNAT ports"))?;
        let map = if echo {
            PortMap::EchoId { guest: flow.src_port, ext: port }
        } else {
            PortMap::Ports { guest: flow.src_port, ext: port }
        };
        Ok(NatDesc::new(&self.addr, flow.src_ip(), map, Some((Arc::clone(pool), port))))
    }
}

/// Why SNAT refuses a protocol.
const NOT_SNATABLE: &str = "SNAT translates only TCP, UDP and ICMP echo";

/// Refuses what SNAT cannot translate (ICMP other than echo and errors,
/// which carry no identifier), as a counted action error.
pub struct NotSnatable;

impl fmt::Display for NotSnatable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not-snatable")
    }
}

impl StaticAction for NotSnatable {
    fn gen_ht(&self, _: Direction, _: &FlowId, _: &mut Meta) -> Result<HdrTransform, ActionError> {
        Err(ActionError::NotApplicable(NOT_SNATABLE))
    }
}

/// One-to-one NAT between the guest's private address and one external
/// address of its own (the ephemeral IP both ways; a floating IP
/// inbound).
pub struct OneToOne {
    addr: Arc<ExtAddr>,
    private: IpAddr,
}

impl OneToOne {
    /// Translate between `private` and `addr`.
    pub fn new(addr: Arc<ExtAddr>, private: IpAddr) -> Self {
        Self { addr, private }
    }
}

impl fmt::Display for OneToOne {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "1:1 {} <-> {}", self.private, self.addr.ip)
    }
}

impl StatefulAction for OneToOne {
    fn gen_desc(
        &self,
        dir: Direction,
        flow: &FlowId,
        meta: &mut Meta,
        previous: Option<&Arc<dyn ActionDesc>>,
    ) -> Result<Arc<dyn ActionDesc>, ActionError> {
        if !same_family(flow.src_ip(), self.addr.ip) {
            return Err(ActionError::NotApplicable("external IP of the other family"));
        }
        if dir == Direction::Out
            && let Some(d) = kept(previous, flow, meta)
        {
            return Ok(d);
        }
        Ok(NatDesc::new(&self.addr, self.private, PortMap::Keep, None))
    }
}

/// Outbound one-to-one NAT onto one of the floating IPs: among those
/// valid for the flow's internet gateway, the one a stable hash of the
/// flow picks.
pub struct Floating {
    addrs: Vec<Arc<ExtAddr>>,
    private: IpAddr,
}

impl Floating {
    /// Spread the flows of `private` over `addrs`.
    pub fn new(addrs: Vec<Arc<ExtAddr>>, private: IpAddr) -> Self {
        Self { addrs, private }
    }

    /// The address a new flow takes, given the gateway it is routed to.
    pub fn choose(&self, flow: &FlowId, route_igw: Option<&str>) -> Option<&Arc<ExtAddr>> {
        let n = self.addrs.iter().filter(|a| a.usable_for(route_igw)).count();
        let n32 = u32::try_from(n).ok().filter(|n| *n > 0)?;
        let pick = usize::try_from(flow.stable_hash() % n32).ok()?;
        self.addrs.iter().filter(|a| a.usable_for(route_igw)).nth(pick)
    }
}

impl fmt::Display for Floating {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "floating {} <-> [", self.private)?;
        for (i, a) in self.addrs.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", a.ip)?;
        }
        f.write_str("]")
    }
}

impl StatefulAction for Floating {
    fn gen_desc(
        &self,
        dir: Direction,
        flow: &FlowId,
        meta: &mut Meta,
        previous: Option<&Arc<dyn ActionDesc>>,
    ) -> Result<Arc<dyn ActionDesc>, ActionError> {
        if dir != Direction::Out {
            return Err(ActionError::NotApplicable("floating IPs are chosen outbound"));
        }
        if let Some(d) = kept(previous, flow, meta) {
            return Ok(d);
        }
        let addr = self
            .choose(flow, route_igw(meta))
            .ok_or(ActionError::NotApplicable("no floating IP for this internet gateway"))?;
        if !same_family(flow.src_ip(), addr.ip) {
            return Err(ActionError::NotApplicable("floating IP of the other family"));
        }
        Ok(NatDesc::new(addr, self.private, PortMap::Keep, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    #[test]
    fn addresses_are_usable_for_their_gateway_or_any() {
        let id: Uuid = "6f1b3c2a-1d2e-4f50-9a7b-0123456789ab".parse().unwrap();
        let any = ExtAddr::new(v4(203, 0, 113, 1), None);
        let one = ExtAddr::new(v4(203, 0, 113, 2), Some(id));
        let s = "6f1b3c2a-1d2e-4f50-9a7b-0123456789ab";
        let other = "00000000-0000-0000-0000-000000000001";
        assert!(any.usable_for(None) && any.usable_for(Some(other)) && any.usable_for(Some("any")));
        assert!(one.usable_for(Some(s)));
        assert!(one.usable_for(Some("any")));
        assert!(!one.usable_for(Some(other)));
        assert!(!one.usable_for(None));
    }

    #[test]
    fn floating_choice_is_stable_and_spreads_over_valid_addresses() {
        let _k = fakekernel::scope();
        let id: Uuid = "6f1b3c2a-1d2e-4f50-9a7b-0123456789ab".parse().unwrap();
        let addrs = vec![
            Arc::new(ExtAddr::new(v4(203, 0, 113, 1), None)),
            Arc::new(ExtAddr::new(v4(203, 0, 113, 2), None)),
            Arc::new(ExtAddr::new(v4(203, 0, 113, 3), Some(id))),
        ];
        let fl = Floating::new(addrs, v4(172, 30, 0, 5));
        let mut counts = std::collections::BTreeMap::new();
        for sport in 1000..1300u16 {
            let f = FlowId::new(6, v4(172, 30, 0, 5), v4(93, 184, 216, 34), sport, 443);
            let a = fl.choose(&f, Some("00000000-0000-0000-0000-000000000001")).unwrap().ip;
            assert_eq!(fl.choose(&f, Some("00000000-0000-0000-0000-000000000001")).unwrap().ip, a);
            assert_ne!(a, v4(203, 0, 113, 3), "an address of another gateway");
            *counts.entry(a).or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 2, "{counts:?}");
        assert!(counts.values().all(|n| *n > 100), "uneven spread {counts:?}");
        // With the third address's gateway, all three are used.
        let mut seen = std::collections::BTreeMap::new();
        for sport in 1000..1300u16 {
            let f = FlowId::new(17, v4(172, 30, 0, 5), v4(93, 184, 216, 34), sport, 53);
            *seen.entry(fl.choose(&f, Some("any")).unwrap().ip).or_insert(0) += 1;
        }
        assert_eq!(seen.len(), 3, "{seen:?}");
    }

    #[test]
    fn descs_return_their_port_and_a_flow_may_keep_its_own() {
        let k = fakekernel::scope();
        let addr = Arc::new(ExtAddr::new(v4(10, 77, 77, 13), None));
        let snat = SnatAction::new(Arc::clone(&addr), 2000, 2001);
        let mut meta = Meta::new();
        let guest = v4(172, 30, 0, 5);
        let f1 = FlowId::new(6, guest, v4(93, 184, 216, 34), 5000, 80);
        let f2 = FlowId::new(6, guest, v4(93, 184, 216, 34), 5001, 80);
        let f3 = FlowId::new(6, guest, v4(93, 184, 216, 34), 5002, 80);
        let d1 = snat.gen_desc(Direction::Out, &f1, &mut meta, None).unwrap();
        let d2 = snat.gen_desc(Direction::Out, &f2, &mut meta, None).unwrap();
        assert_eq!(snat.available(), (0, 2, 2), "TCP ports only");
        assert_eq!(
            snat.gen_desc(Direction::Out, &f3, &mut meta, None).err(),
            Some(ActionError::Exhausted("SNAT ports"))
        );
        // The same flow decided again, offered its desc, keeps it; another
        // flow offered it does not take it.
        let again = snat.gen_desc(Direction::Out, &f1, &mut meta, Some(&d1)).unwrap();
        assert!(Arc::ptr_eq(&again, &d1));
        let other = v4(172, 30, 0, 6);
        let f4 = FlowId::new(6, other, v4(93, 184, 216, 34), 5000, 80);
        assert_eq!(
            snat.gen_desc(Direction::Out, &f4, &mut meta, Some(&d1)).err(),
            Some(ActionError::Exhausted("SNAT ports"))
        );
        let out = d2.gen_ht(Direction::Out).apply_to_flow(&f2);
        assert_eq!((out.src_ip(), out.src_port), (v4(10, 77, 77, 13), 2001));
        drop((d1, again, d2));
        assert_eq!(snat.available(), (2, 2, 2));
        let udp = FlowId::new(17, guest, v4(93, 184, 216, 34), 5000, 53);
        let gre = FlowId::new(47, guest, v4(93, 184, 216, 34), 0, 0);
        let d = snat.gen_desc(Direction::Out, &udp, &mut meta, None).unwrap();
        assert_eq!(snat.available(), (2, 1, 2));
        assert!(matches!(
            snat.gen_desc(Direction::Out, &gre, &mut meta, None),
            Err(ActionError::NotApplicable(_))
        ));
        // Once its address is no longer configured, a desc is not kept.
        let stale = snat.gen_desc(Direction::Out, &f1, &mut meta, None).unwrap();
        drop(snat);
        drop(addr);
        let addr2 = Arc::new(ExtAddr::new(v4(10, 77, 77, 14), None));
        let snat2 = SnatAction::new(Arc::clone(&addr2), 3000, 3000);
        let fresh = snat2.gen_desc(Direction::Out, &f1, &mut meta, Some(&stale)).unwrap();
        assert!(!Arc::ptr_eq(&fresh, &stale));
        let src = fresh.gen_ht(Direction::Out).apply_to_flow(&f1);
        assert_eq!((src.src_ip(), src.src_port), (v4(10, 77, 77, 14), 3000));
        drop((d, stale, fresh, snat2, addr2));
        k.assert_clean();
    }
}
