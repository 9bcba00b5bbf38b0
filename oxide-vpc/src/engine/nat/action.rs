//! The NAT layer's actions, the per-flow state they create, and the index
//! of that state the ICMP error translation reads.
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
//! again. Every outbound action first asks the [`FlowIndex`] whether this
//! very flow already has a live desc whose address is still configured
//! and valid for the flow's internet gateway, and if so returns that same
//! desc: a flow stays on its address (and SNAT port) as long as the
//! address stays, even when the rule that would pick an address for a
//! new flow changed (a floating IP was added, or another one removed).
//! Flows on an address that went get a new one.
//!
//! # Locking
//!
//! - each [`PortPool`] (mutex): taken to allocate (by an action deciding
//!   a flow) and to release (by a desc's `Drop`, which may run under the
//!   engine's flow table locks). A leaf: nothing is taken while holding
//!   it.
//! - [`FlowIndex`] (mutex): taken to register a new desc, by a desc's
//!   `Drop`, and by lookups. A leaf too; no `Arc<NatDesc>` is ever dropped
//!   while it is held (lookups return the upgraded `Arc` after releasing
//!   it), so a desc's `Drop` never finds it held by its own thread.

use alloc::format;
use alloc::string::String;
use alloc::sync::{Arc, Weak};

use alloc::vec::Vec;
use core::fmt;
use core::net::IpAddr;
use hashbrown::HashMap;

use opte::ddi::sync::KMutex;
use opte::engine::Direction;
use opte::engine::action::{ActionDesc, ActionError, StatefulAction, StaticAction};
use opte::engine::flow::FlowId;
use opte::engine::meta::{Meta, MetaValue};
use opte::engine::transform::{HdrTransform, IpMod, UlpMod};

use super::pool::PortPool;
use crate::api::Uuid;
use crate::engine::meta_keys;

/// Most descs the [`FlowIndex`] indexes (per key kind). A desc created
/// past it still translates its flow; only ICMP errors about that flow
/// cannot be translated (they are dropped, counted).
pub const MAX_INDEXED_FLOWS: usize = 131_072;

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
    index: Arc<FlowIndex>,
    /// The flow as the guest sends it (guest address and port first).
    guest_key: FlowId,
    /// The same flow as it leaves (external address and port first).
    ext_key: FlowId,
}

impl NatDesc {
    /// A desc for `flow` (seen in `dir` at the NAT layer), to register in
    /// `index` ([`FlowIndex::reuse_or_add`]).
    fn new(
        index: &Arc<FlowIndex>,
        addr: &Arc<ExtAddr>,
        private: IpAddr,
        map: PortMap,
        taken: Option<(Arc<KMutex<PortPool>>, u16)>,
        dir: Direction,
        flow: &FlowId,
    ) -> Self {
        let mut d = Self {
            private,
            ext: addr.ip,
            map,
            addr: Arc::downgrade(addr),
            taken,
            index: Arc::clone(index),
            guest_key: *flow,
            ext_key: *flow,
        };
        // The flow as the guest sends it, and as it leaves.
        d.guest_key = match dir {
            Direction::Out => *flow,
            Direction::In => d.gen_ht(Direction::In).apply_to_flow(flow).mirror(),
        };
        d.ext_key = d.gen_ht(Direction::Out).apply_to_flow(&d.guest_key);
        d
    }

    /// Whether the guest's outbound `flow` may keep this desc: its
    /// address is still configured and valid for the internet gateway the
    /// router chose (see the module documentation).
    fn reusable_for(&self, flow: &FlowId, meta: &Meta) -> bool {
        self.private == flow.src_ip()
            && self.addr.upgrade().is_some_and(|a| a.usable_for(route_igw(meta)))
    }

    /// True while its address is still configured.
    pub fn addr_live(&self) -> bool {
        self.addr.strong_count() > 0
    }
}

impl Drop for NatDesc {
    fn drop(&mut self) {
        if let Some((pool, port)) = &self.taken {
            let released = pool.lock().release(*port);
            debug_assert!(released, "SNAT port {port} released twice");
        }
        self.index.remove(self as *const NatDesc, &self.guest_key, &self.ext_key);
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

/// The live descs of one port, by the flow as the guest sends it and by
/// the flow as it leaves: how an ICMP error quoting a translated packet
/// finds its translation. Entries are weak and each desc removes its own
/// when it goes, so the index holds exactly the live descs (at most
/// [`MAX_INDEXED_FLOWS`] per key kind).
pub struct FlowIndex {
    maps: KMutex<IndexMaps>,
}

#[derive(Default)]
struct IndexMaps {
    by_guest: HashMap<FlowId, Weak<NatDesc>>,
    by_ext: HashMap<FlowId, Weak<NatDesc>>,
}

impl IndexMaps {
    fn put(map: &mut HashMap<FlowId, Weak<NatDesc>>, key: FlowId, d: &Arc<NatDesc>) {
        if map.len() < MAX_INDEXED_FLOWS || map.contains_key(&key) {
            map.insert(key, Arc::downgrade(d));
        }
    }

    fn take(map: &mut HashMap<FlowId, Weak<NatDesc>>, key: &FlowId, me: *const NatDesc) {
        if map.get(key).is_some_and(|w| core::ptr::eq(w.as_ptr(), me)) {
            map.remove(key);
        }
    }
}

impl FlowIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self { maps: KMutex::new(IndexMaps::default()) }
    }

    /// The desc the guest's outbound `flow` already has, when `reuse`
    /// gives the flow's metadata and the desc may be kept
    /// ([`NatDesc::reusable_for`]); otherwise the desc `make` builds,
    /// registered. One hold of the index for both (`make` may take a
    /// pool's lock after it).
    fn reuse_or_add(
        &self,
        flow: &FlowId,
        reuse: Option<&Meta>,
        make: impl FnOnce() -> Result<NatDesc, ActionError>,
    ) -> Result<Arc<dyn ActionDesc>, ActionError> {
        // Declared before the guard so that it drops after it: if this is
        // the desc's last reference, its drop takes the index lock.
        let found: Option<Arc<NatDesc>>;
        let mut m = self.maps.lock();
        if let Some(meta) = reuse {
            found = m.by_guest.get(flow).and_then(Weak::upgrade);
            if let Some(d) = &found
                && d.reusable_for(flow, meta)
            {
                return Ok(Arc::clone(d) as Arc<dyn ActionDesc>);
            }
        }
        let d = Arc::new(make()?);
        IndexMaps::put(&mut m.by_guest, d.guest_key, &d);
        IndexMaps::put(&mut m.by_ext, d.ext_key, &d);
        Ok(d)
    }

    /// Forget the desc at `me` (only where a newer one has not replaced
    /// it).
    fn remove(&self, me: *const NatDesc, guest_key: &FlowId, ext_key: &FlowId) {
        let mut m = self.maps.lock();
        IndexMaps::take(&mut m.by_guest, guest_key, me);
        IndexMaps::take(&mut m.by_ext, ext_key, me);
    }

    /// The live desc of the flow the guest sends as `key`.
    pub fn by_guest(&self, key: &FlowId) -> Option<Arc<NatDesc>> {
        let m = self.maps.lock();
        m.by_guest.get(key).and_then(Weak::upgrade)
    }

    /// The live desc of the flow that leaves as `key`.
    pub fn by_ext(&self, key: &FlowId) -> Option<Arc<NatDesc>> {
        let m = self.maps.lock();
        m.by_ext.get(key).and_then(Weak::upgrade)
    }

    /// Descs indexed (by the guest's view).
    pub fn len(&self) -> usize {
        self.maps.lock().by_guest.len()
    }

    /// True with no descs indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for FlowIndex {
    fn default() -> Self {
        Self::new()
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
    index: Arc<FlowIndex>,
}

impl SnatAction {
    /// SNAT onto `addr` with ports `first..=last` for each protocol.
    pub fn new(addr: Arc<ExtAddr>, first: u16, last: u16, index: Arc<FlowIndex>) -> Self {
        let pool = || Arc::new(KMutex::new(PortPool::new(first, last)));
        Self { addr, tcp: pool(), udp: pool(), echo: pool(), index }
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
        self.index.reuse_or_add(flow, Some(meta), || {
            let port = pool.lock().allocate().ok_or(ActionError::Exhausted("SNAT ports"))?;
            let map = if echo {
                PortMap::EchoId { guest: flow.src_port, ext: port }
            } else {
                PortMap::Ports { guest: flow.src_port, ext: port }
            };
            let taken = Some((Arc::clone(pool), port));
            Ok(NatDesc::new(&self.index, &self.addr, flow.src_ip(), map, taken, dir, flow))
        })
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
    index: Arc<FlowIndex>,
}

impl OneToOne {
    /// Translate between `private` and `addr`.
    pub fn new(addr: Arc<ExtAddr>, private: IpAddr, index: Arc<FlowIndex>) -> Self {
        Self { addr, private, index }
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
    ) -> Result<Arc<dyn ActionDesc>, ActionError> {
        if !same_family(flow.src_ip(), self.addr.ip) {
            return Err(ActionError::NotApplicable("external IP of the other family"));
        }
        let reuse = (dir == Direction::Out).then_some(&*meta);
        self.index.reuse_or_add(flow, reuse, || {
            Ok(NatDesc::new(&self.index, &self.addr, self.private, PortMap::Keep, None, dir, flow))
        })
    }
}

/// Outbound one-to-one NAT onto one of the floating IPs: among those
/// valid for the flow's internet gateway, the one a stable hash of the
/// flow picks.
pub struct Floating {
    addrs: Vec<Arc<ExtAddr>>,
    private: IpAddr,
    index: Arc<FlowIndex>,
}

impl Floating {
    /// Spread the flows of `private` over `addrs`.
    pub fn new(addrs: Vec<Arc<ExtAddr>>, private: IpAddr, index: Arc<FlowIndex>) -> Self {
        Self { addrs, private, index }
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
    ) -> Result<Arc<dyn ActionDesc>, ActionError> {
        if dir != Direction::Out {
            return Err(ActionError::NotApplicable("floating IPs are chosen outbound"));
        }
        let igw = route_igw(meta);
        self.index.reuse_or_add(flow, Some(meta), || {
            let addr = self
                .choose(flow, igw)
                .ok_or(ActionError::NotApplicable("no floating IP for this internet gateway"))?;
            if !same_family(flow.src_ip(), addr.ip) {
                return Err(ActionError::NotApplicable("floating IP of the other family"));
            }
            Ok(NatDesc::new(&self.index, addr, self.private, PortMap::Keep, None, dir, flow))
        })
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
        let index = Arc::new(FlowIndex::new());
        let addrs = vec![
            Arc::new(ExtAddr::new(v4(203, 0, 113, 1), None)),
            Arc::new(ExtAddr::new(v4(203, 0, 113, 2), None)),
            Arc::new(ExtAddr::new(v4(203, 0, 113, 3), Some(id))),
        ];
        let fl = Floating::new(addrs, v4(172, 30, 0, 5), index);
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
    fn descs_return_their_port_and_leave_the_index() {
        let k = fakekernel::scope();
        let index = Arc::new(FlowIndex::new());
        let addr = Arc::new(ExtAddr::new(v4(10, 77, 77, 13), None));
        let snat = SnatAction::new(Arc::clone(&addr), 2000, 2001, Arc::clone(&index));
        let mut meta = Meta::new();
        let guest = v4(172, 30, 0, 5);
        let f1 = FlowId::new(6, guest, v4(93, 184, 216, 34), 5000, 80);
        let f2 = FlowId::new(6, guest, v4(93, 184, 216, 34), 5001, 80);
        let f3 = FlowId::new(6, guest, v4(93, 184, 216, 34), 5002, 80);
        let d1 = snat.gen_desc(Direction::Out, &f1, &mut meta).unwrap();
        let d2 = snat.gen_desc(Direction::Out, &f2, &mut meta).unwrap();
        assert_eq!(snat.available(), (0, 2, 2), "TCP ports only");
        assert_eq!(
            snat.gen_desc(Direction::Out, &f3, &mut meta).err(),
            Some(ActionError::Exhausted("SNAT ports"))
        );
        // The same flow decided again gets its own desc back.
        let again = snat.gen_desc(Direction::Out, &f1, &mut meta).unwrap();
        assert!(Arc::ptr_eq(&again, &d1));
        assert_eq!(index.len(), 2);
        let out = d2.gen_ht(Direction::Out).apply_to_flow(&f2);
        assert_eq!((out.src_ip(), out.src_port), (v4(10, 77, 77, 13), 2001));
        assert!(index.by_ext(&out).is_some());
        drop((d1, again, d2));
        assert_eq!(snat.available(), (2, 2, 2));
        assert!(index.is_empty());
        let udp = FlowId::new(17, guest, v4(93, 184, 216, 34), 5000, 53);
        let gre = FlowId::new(47, guest, v4(93, 184, 216, 34), 0, 0);
        let d = snat.gen_desc(Direction::Out, &udp, &mut meta).unwrap();
        assert_eq!(snat.available(), (2, 1, 2));
        assert!(matches!(
            snat.gen_desc(Direction::Out, &gre, &mut meta),
            Err(ActionError::NotApplicable(_))
        ));
        drop(d);
        drop((snat, addr, index));
        k.assert_clean();
    }
}
