//! Header transformations: what an action does to a packet, composed
//! across layers into one transformation that the unified flow table
//! stores and applies to every later packet of the flow.
//!
//! A [`HdrTransform`] says, per header, whether to leave it, change some
//! of its fields, or (for the outer encapsulation) push or pop it. Layers
//! compose theirs in processing order with [`HdrTransform::then`]: a
//! later field change wins, a push after a pop replaces the
//! encapsulation, a pop after a push cancels it. An encapsulation to push
//! is shared (`Arc`): every flow to the same destination holds the same
//! one. For the unified flow table a transformation is compiled per flow
//! ([`CompiledTransform`]) into precomputed field writes and checksum
//! deltas.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use opte_api::{MacAddr, Vni};

use super::flow::FlowId;
use crate::packet::{
    EmbeddedL3, EmitError, Encap, HeaderPatch, Headers, L3, L4, OuterUdpCsum, Packet, PatchFrom,
    PatchTo,
};

/// Field changes to an Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EtherMod {
    pub src: Option<MacAddr>,
    pub dst: Option<MacAddr>,
}

/// Field changes to an IP header (the family must match the packet's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpMod {
    V4 { src: Option<Ipv4Addr>, dst: Option<Ipv4Addr> },
    V6 { src: Option<Ipv6Addr>, dst: Option<Ipv6Addr> },
}

/// Field changes to the transport header: TCP/UDP ports, or the ICMP
/// echo identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UlpMod {
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    pub icmp_id: Option<u16>,
}

/// Field changes to the outer (underlay) headers of an encapsulated
/// packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OuterMod {
    pub eth: EtherMod,
    pub ip_src: Option<Ipv6Addr>,
    pub ip_dst: Option<Ipv6Addr>,
    pub vni: Option<Vni>,
}

/// What happens to the outer encapsulation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OuterOp {
    /// Leave it (or its absence) as it is.
    #[default]
    Keep,
    /// Change fields of the encapsulation the packet arrived with.
    Modify(OuterMod),
    /// Remove it.
    Pop,
    /// Add this encapsulation.
    Push(Arc<Encap>),
    /// Remove the encapsulation the packet arrived with and add this one.
    PopPush(Arc<Encap>),
}

/// Changes to the headers an ICMP error quotes (so that a translated
/// flow's errors reach the right guest, RFC 5508).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyMod {
    pub ip: Option<IpMod>,
    pub ulp: UlpMod,
}

/// A whole header transformation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HdrTransform {
    pub outer: OuterOp,
    pub inner_eth: EtherMod,
    pub inner_ip: Option<IpMod>,
    pub inner_ulp: UlpMod,
    pub body: Option<BodyMod>,
}

/// Why a transformation could not be applied or composed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransformError {
    /// An IP change of the wrong family for the packet.
    WrongFamily,
    /// A change to outer headers the packet does not have.
    NoEncap,
    /// Changes that cannot follow each other (a change to an encapsulation
    /// that an earlier layer removed).
    Conflict,
    /// Writing the packet failed.
    Emit(EmitError),
}

impl From<EmitError> for TransformError {
    fn from(e: EmitError) -> Self {
        Self::Emit(e)
    }
}

impl fmt::Display for TransformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongFamily => f.write_str("IP change of the wrong family"),
            Self::NoEncap => f.write_str("outer header change on a packet without encapsulation"),
            Self::Conflict => f.write_str("conflicting header changes"),
            Self::Emit(e) => write!(f, "writing the packet: {e}"),
        }
    }
}

impl EtherMod {
    fn then(self, later: Self) -> Self {
        Self { src: later.src.or(self.src), dst: later.dst.or(self.dst) }
    }

    fn is_empty(&self) -> bool {
        self.src.is_none() && self.dst.is_none()
    }
}

impl IpMod {
    fn then(self, later: Self) -> Result<Self, TransformError> {
        match (self, later) {
            (Self::V4 { src: s0, dst: d0 }, Self::V4 { src, dst }) => {
                Ok(Self::V4 { src: src.or(s0), dst: dst.or(d0) })
            }
            (Self::V6 { src: s0, dst: d0 }, Self::V6 { src, dst }) => {
                Ok(Self::V6 { src: src.or(s0), dst: dst.or(d0) })
            }
            _ => Err(TransformError::WrongFamily),
        }
    }
}

impl UlpMod {
    fn then(self, later: Self) -> Self {
        Self {
            src_port: later.src_port.or(self.src_port),
            dst_port: later.dst_port.or(self.dst_port),
            icmp_id: later.icmp_id.or(self.icmp_id),
        }
    }

    fn is_empty(&self) -> bool {
        self.src_port.is_none() && self.dst_port.is_none() && self.icmp_id.is_none()
    }
}

impl OuterMod {
    fn then(self, later: Self) -> Self {
        Self {
            eth: self.eth.then(later.eth),
            ip_src: later.ip_src.or(self.ip_src),
            ip_dst: later.ip_dst.or(self.ip_dst),
            vni: later.vni.or(self.vni),
        }
    }

    fn apply_to(&self, e: &mut Encap) {
        if let Some(m) = self.eth.src {
            e.eth.src = m;
        }
        if let Some(m) = self.eth.dst {
            e.eth.dst = m;
        }
        if let Some(a) = self.ip_src {
            e.ip6.src = a;
        }
        if let Some(a) = self.ip_dst {
            e.ip6.dst = a;
        }
        if let Some(v) = self.vni {
            e.geneve.vni = v;
        }
    }
}

impl OuterOp {
    fn then(&self, later: &Self) -> Result<Self, TransformError> {
        use OuterOp::*;
        Ok(match (self, later) {
            (x, Keep) => x.clone(),
            (Keep, x) => x.clone(),
            (Modify(a), Modify(b)) => Modify(a.then(*b)),
            (Modify(_) | Pop, Push(e)) | (Pop, PopPush(e)) => PopPush(Arc::clone(e)),
            (Modify(_), Pop) => Pop,
            (Modify(_), PopPush(e)) => PopPush(Arc::clone(e)),
            (Push(e), Modify(m)) | (PopPush(e), Modify(m)) => {
                let mut e = Encap::clone(e);
                m.apply_to(&mut e);
                if matches!(self, Push(_)) { Push(Arc::new(e)) } else { PopPush(Arc::new(e)) }
            }
            (Push(_), Pop) => Keep,
            (PopPush(_), Pop) => Pop,
            (Push(_), Push(e) | PopPush(e)) => Push(Arc::clone(e)),
            (PopPush(_), Push(e) | PopPush(e)) => PopPush(Arc::clone(e)),
            (Pop, Modify(_) | Pop) => return Err(TransformError::Conflict),
        })
    }
}

impl HdrTransform {
    /// The identity transformation.
    pub const NONE: Self = Self {
        outer: OuterOp::Keep,
        inner_eth: EtherMod { src: None, dst: None },
        inner_ip: None,
        inner_ulp: UlpMod { src_port: None, dst_port: None, icmp_id: None },
        body: None,
    };

    /// True when applying this changes nothing.
    pub fn is_identity(&self) -> bool {
        self.outer == OuterOp::Keep
            && self.inner_eth.is_empty()
            && self.inner_ip.is_none()
            && self.inner_ulp.is_empty()
            && self.body.is_none()
    }

    /// This transformation followed by `later` (the next layer's).
    pub fn then(&self, later: &Self) -> Result<Self, TransformError> {
        let inner_ip = match (self.inner_ip, later.inner_ip) {
            (Some(a), Some(b)) => Some(a.then(b)?),
            (a, b) => b.or(a),
        };
        let body = match (self.body, later.body) {
            (Some(a), Some(b)) => Some(BodyMod {
                ip: match (a.ip, b.ip) {
                    (Some(x), Some(y)) => Some(x.then(y)?),
                    (x, y) => y.or(x),
                },
                ulp: a.ulp.then(b.ulp),
            }),
            (a, b) => b.or(a),
        };
        Ok(Self {
            outer: self.outer.then(&later.outer)?,
            inner_eth: self.inner_eth.then(later.inner_eth),
            inner_ip,
            inner_ulp: self.inner_ulp.then(later.inner_ulp),
            body,
        })
    }

    /// The flow id a packet of flow `f` has after this transformation
    /// (addresses and ports; encapsulation does not change it).
    pub fn apply_to_flow(&self, f: &FlowId) -> FlowId {
        let mut out = *f;
        match self.inner_ip {
            Some(IpMod::V4 { src, dst }) if !f.v6 => {
                if let Some(a) = src {
                    out.src = a.to_ipv6_mapped().octets();
                }
                if let Some(a) = dst {
                    out.dst = a.to_ipv6_mapped().octets();
                }
            }
            Some(IpMod::V6 { src, dst }) if f.v6 => {
                if let Some(a) = src {
                    out.src = a.octets();
                }
                if let Some(a) = dst {
                    out.dst = a.octets();
                }
            }
            _ => {}
        }
        let echo = matches!(f.proto, 1 | 58);
        if echo {
            if let Some(id) = self.inner_ulp.icmp_id {
                out.src_port = id;
                out.dst_port = id;
            }
        } else {
            if let Some(p) = self.inner_ulp.src_port {
                out.src_port = p;
            }
            if let Some(p) = self.inner_ulp.dst_port {
                out.dst_port = p;
            }
        }
        out
    }

    /// Apply to a packet: pop encapsulation, change fields, write the
    /// headers back with incremental checksums, push encapsulation. On an
    /// error the packet may be partly changed; the caller drops it.
    pub fn apply(&self, pkt: &mut Packet) -> Result<(), TransformError> {
        if matches!(self.outer, OuterOp::Pop | OuterOp::PopPush(_)) {
            if pkt.headers().outer.is_none() {
                return Err(TransformError::NoEncap);
            }
            pkt.pop_encap()?;
        }
        self.apply_fields(pkt.headers_mut())?;
        pkt.emit()?;
        if let OuterOp::Push(e) | OuterOp::PopPush(e) = &self.outer {
            pkt.push_encap(**e, OuterUdpCsum::Zero)?;
        }
        Ok(())
    }

    /// Apply to header values only (no bytes are written): what the
    /// layers after this one see while a packet is classified. A pushed
    /// or popped encapsulation shows in `outer`; offsets are not moved.
    pub fn apply_to_headers(&self, h: &mut Headers) -> Result<(), TransformError> {
        match &self.outer {
            OuterOp::Pop => h.outer = None,
            OuterOp::Push(e) | OuterOp::PopPush(e) => h.outer = Some(**e),
            OuterOp::Keep | OuterOp::Modify(_) => {}
        }
        self.apply_fields(h)
    }

    /// Change the fields of `h` (everything but pushing and popping).
    fn apply_fields(&self, h: &mut Headers) -> Result<(), TransformError> {
        if let OuterOp::Modify(m) = &self.outer {
            let enc = h.outer.as_mut().ok_or(TransformError::NoEncap)?;
            m.apply_to(enc);
        }
        if let Some(m) = self.inner_eth.src {
            h.eth.src = m;
        }
        if let Some(m) = self.inner_eth.dst {
            h.eth.dst = m;
        }
        if let Some(m) = &self.inner_ip {
            apply_ip(m, h.l3.as_mut())?;
        }
        match h.l4.as_mut() {
            Some(L4::Tcp(t)) => {
                set(&mut t.src_port, self.inner_ulp.src_port);
                set(&mut t.dst_port, self.inner_ulp.dst_port);
            }
            Some(L4::Udp(u)) => {
                set(&mut u.src_port, self.inner_ulp.src_port);
                set(&mut u.dst_port, self.inner_ulp.dst_port);
            }
            Some(L4::Icmpv4(i)) | Some(L4::Icmpv6(i)) => {
                if let Some(id) = self.inner_ulp.icmp_id
                    && (i.is_v4_echo() || i.is_v6_echo())
                {
                    i.set_echo_id(id);
                }
            }
            None => {}
        }
        if let (Some(b), Some(e)) = (&self.body, h.embedded.as_mut()) {
            if let Some(m) = &b.ip {
                match (&mut e.l3, m) {
                    (EmbeddedL3::Ipv4(ip), IpMod::V4 { src, dst }) => {
                        set(&mut ip.src, *src);
                        set(&mut ip.dst, *dst);
                    }
                    (EmbeddedL3::Ipv6(ip), IpMod::V6 { src, dst }) => {
                        set(&mut ip.src, *src);
                        set(&mut ip.dst, *dst);
                    }
                    _ => return Err(TransformError::WrongFamily),
                }
            }
            if let Some(p) = b.ulp.src_port {
                e.set_src_port(p);
            }
            if let Some(p) = b.ulp.dst_port {
                e.set_dst_port(p);
            }
            if let Some(id) = b.ulp.icmp_id {
                e.set_echo_id(id);
            }
        }
        Ok(())
    }
}

fn set<T>(field: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *field = v;
    }
}

fn apply_ip(m: &IpMod, l3: Option<&mut L3>) -> Result<(), TransformError> {
    match (l3, m) {
        (Some(L3::Ipv4(ip)), IpMod::V4 { src, dst }) => {
            set(&mut ip.src, *src);
            set(&mut ip.dst, *dst);
            Ok(())
        }
        (Some(L3::Ipv6(ip)), IpMod::V6 { src, dst }) => {
            set(&mut ip.src, *src);
            set(&mut ip.dst, *dst);
            Ok(())
        }
        _ => Err(TransformError::WrongFamily),
    }
}

/// A transformation compiled for one flow, as a unified flow table entry
/// stores it. The common kinds (inner field changes after removing the
/// encapsulation, or before adding one) become a [`HeaderPatch`] with its
/// checksum deltas precomputed, and the encapsulation step; anything
/// else (outer changes, pop-and-push, ICMP quote translation) keeps the
/// general transformation. Both give the same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompiledTransform {
    Patch { patch: HeaderPatch, encap: EncapStep },
    General(Box<HdrTransform>),
}

/// What a compiled transformation does to the encapsulation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncapStep {
    /// Nothing.
    Keep,
    /// Remove it before patching the inner frame.
    Pop,
    /// Add this one after patching.
    Push(Arc<Encap>),
}

impl CompiledTransform {
    /// Compile `xform` for the packets of `flow` (as they arrive at the
    /// port).
    pub fn compile(xform: HdrTransform, flow: &FlowId) -> Self {
        let encap = match &xform.outer {
            OuterOp::Keep => Some(EncapStep::Keep),
            OuterOp::Push(e) => Some(EncapStep::Push(Arc::clone(e))),
            OuterOp::Pop => Some(EncapStep::Pop),
            _ => None,
        };
        let (ip_src, ip_dst) = match xform.inner_ip {
            Some(IpMod::V4 { src, dst }) => (src.map(IpAddr::V4), dst.map(IpAddr::V4)),
            Some(IpMod::V6 { src, dst }) => (src.map(IpAddr::V6), dst.map(IpAddr::V6)),
            None => (None, None),
        };
        let patch = HeaderPatch::compile(
            &PatchFrom {
                src: flow.src_ip(),
                dst: flow.dst_ip(),
                src_port: flow.src_port,
                dst_port: flow.dst_port,
                proto: flow.proto,
            },
            &PatchTo {
                eth_src: xform.inner_eth.src,
                eth_dst: xform.inner_eth.dst,
                ip_src,
                ip_dst,
                src_port: xform.inner_ulp.src_port,
                dst_port: xform.inner_ulp.dst_port,
                icmp_id: xform.inner_ulp.icmp_id,
            },
        );
        match (encap, patch, xform.body.is_none()) {
            (Some(encap), Some(patch), true) => Self::Patch { patch, encap },
            _ => Self::General(Box::new(xform)),
        }
    }

    /// True when the fast path may apply.
    pub fn has_patch(&self) -> bool {
        matches!(self, Self::Patch { .. })
    }

    /// The transformation as layers would state it (for dumps).
    pub fn to_transform(&self) -> HdrTransform {
        match self {
            Self::General(x) => HdrTransform::clone(x),
            Self::Patch { patch, encap } => {
                let to = patch.to();
                HdrTransform {
                    outer: match encap {
                        EncapStep::Keep => OuterOp::Keep,
                        EncapStep::Push(e) => OuterOp::Push(Arc::clone(e)),
                        EncapStep::Pop => OuterOp::Pop,
                    },
                    inner_eth: EtherMod { src: to.eth_src, dst: to.eth_dst },
                    inner_ip: match (to.ip_src, to.ip_dst) {
                        (None, None) => None,
                        (s, d)
                            if s.is_some_and(|a| a.is_ipv4()) || d.is_some_and(|a| a.is_ipv4()) =>
                        {
                            Some(IpMod::V4 { src: v4(s), dst: v4(d) })
                        }
                        (s, d) => Some(IpMod::V6 { src: v6(s), dst: v6(d) }),
                    },
                    inner_ulp: UlpMod {
                        src_port: to.src_port,
                        dst_port: to.dst_port,
                        icmp_id: to.icmp_id,
                    },
                    body: None,
                }
            }
        }
    }

    /// The flow id a packet of flow `f` has after this transformation.
    pub fn apply_to_flow(&self, f: &FlowId) -> FlowId {
        match self {
            Self::General(x) => x.apply_to_flow(f),
            Self::Patch { .. } => self.to_transform().apply_to_flow(f),
        }
    }

    /// Apply to a packet of the flow it was compiled for. Returns true
    /// when the precompiled fast path did the work.
    #[inline]
    pub fn apply(&self, pkt: &mut Packet) -> Result<bool, TransformError> {
        match self {
            Self::Patch { patch, encap } => {
                if let EncapStep::Pop = encap {
                    // The patch is for the inner frame; removing the
                    // encapsulation first leaves exactly that.
                    pkt.pop_encap()?;
                    if !pkt.apply_patch(patch)? {
                        let mut rest = self.to_transform();
                        rest.outer = OuterOp::Keep;
                        return rest.apply(pkt).map(|()| false);
                    }
                    return Ok(true);
                }
                if !pkt.apply_patch(patch)? {
                    // Declined: the same changes by the general path.
                    return self.to_transform().apply(pkt).map(|()| false);
                }
                if let EncapStep::Push(e) = encap {
                    pkt.push_encap(**e, OuterUdpCsum::Zero)?;
                }
                Ok(true)
            }
            Self::General(x) => x.apply(pkt).map(|()| false),
        }
    }
}

fn v4(a: Option<IpAddr>) -> Option<Ipv4Addr> {
    match a {
        Some(IpAddr::V4(a)) => Some(a),
        _ => None,
    }
}

fn v6(a: Option<IpAddr>) -> Option<Ipv6Addr> {
    match a {
        Some(IpAddr::V6(a)) => Some(a),
        _ => None,
    }
}
