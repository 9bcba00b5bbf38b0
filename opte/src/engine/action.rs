//! What a rule does with the packets it matches.
//!
//! | action | effect | state kept |
//! | --- | --- | --- |
//! | `Allow` | pass | none |
//! | `Deny` | drop, counted against the layer and rule | none |
//! | `StatefulAllow` | pass, and let the reply flow pass too | a pair of LFT entries (this direction and the reverse) |
//! | `Static` | a stateless header transformation | none |
//! | `Stateful` | a transformation with a resource (a NAT port) | a pair of LFT entries holding an [`ActionDesc`]; the resource is released when the last entry holding it goes |
//! | `Hairpin` | a reply sent back where the packet came from | never cached |
//! | `Meta` | write metadata for later layers | none |
//! | `HandlePacket` | a network-specific hook that may rewrite, drop or answer | never cached |
//!
//! The traits are what a network (such as the Oxide VPC) implements; the
//! engine calls them only while classifying the first packet of a flow.

use alloc::string::String;
use alloc::sync::Arc;
use core::any::Any;
use core::fmt;

use super::Direction;
use super::flow::FlowId;
pub use super::layer::LayerFlows;
use super::meta::{Meta, MetaFull};
use super::predicate::MatchCtx;
use super::transform::HdrTransform;
use crate::ddi::MsgBlk;
use crate::packet::Packet;

/// Why an action could not produce its result for a packet. The port
/// drops the packet and counts the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionError {
    /// A resource pool is empty (for example no free NAT port).
    Exhausted(&'static str),
    /// The action does not apply to this packet (wrong family, no ports).
    NotApplicable(&'static str),
    /// The metadata table is full.
    MetaFull,
    /// Building a reply failed (allocation, malformed request).
    Reply(&'static str),
}

impl From<MetaFull> for ActionError {
    fn from(_: MetaFull) -> Self {
        Self::MetaFull
    }
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exhausted(what) => write!(f, "{what} exhausted"),
            Self::NotApplicable(why) => write!(f, "action not applicable: {why}"),
            Self::MetaFull => f.write_str("packet metadata full"),
            Self::Reply(why) => write!(f, "could not build reply: {why}"),
        }
    }
}

/// A stateless header transformation.
pub trait StaticAction: Send + Sync + fmt::Display {
    /// The transformation for a packet of `flow` travelling `dir`. It may
    /// also record what it decided in `meta` for later layers (the
    /// overlay notes which VNI a packet came from as it removes the
    /// encapsulation).
    fn gen_ht(
        &self,
        dir: Direction,
        flow: &FlowId,
        meta: &mut Meta,
    ) -> Result<HdrTransform, ActionError>;
}

/// The per-flow state a stateful action created (for example the NAT
/// port it took). Dropping the last reference releases the resource.
///
/// It is `Any`, so the network that made it can see its own type again
/// (`&dyn ActionDesc` coerces to `&dyn Any` for `downcast_ref`): a
/// stateful action offered a flow's previous state, or a hook looking up
/// a layer's decisions ([`LayerFlows`]).
pub trait ActionDesc: Any + Send + Sync {
    /// The transformation for each direction of the flow.
    fn gen_ht(&self, dir: Direction) -> HdrTransform;
    /// A short description for dumps ("SNAT 203.0.113.5:1024").
    fn describe(&self) -> String;
    /// False once the state can no longer serve its flow (a NAT address
    /// that was removed). After a soft rule change the layer asks this of
    /// the entries of a flow's replies, which its rules cannot decide
    /// again (they decide flows in the direction that started them): an
    /// invalid one withdraws the decision in both directions.
    fn valid(&self) -> bool {
        true
    }
}

/// A transformation that holds a resource for the life of the flow.
pub trait StatefulAction: Send + Sync + fmt::Display {
    /// Create the flow's state. Called for the first packet of a flow, in
    /// its direction, and again when a rule change made the layer decide
    /// a flow afresh: then `previous` is the state the flow had at this
    /// layer (its decision withdrawn, the state still alive), which the
    /// action may return again to keep the flow's resource (a NAT port)
    /// rather than take a new one.
    fn gen_desc(
        &self,
        dir: Direction,
        flow: &FlowId,
        meta: &mut Meta,
        previous: Option<&Arc<dyn ActionDesc>>,
    ) -> Result<Arc<dyn ActionDesc>, ActionError>;
}

/// Build a reply sent back where the packet came from (ARP, DHCP, NDP,
/// ICMP to the gateway).
pub trait HairpinAction: Send + Sync + fmt::Display {
    fn gen_packet(&self, ctx: &MatchCtx<'_>) -> Result<MsgBlk, ActionError>;
}

/// Write metadata for later layers.
pub trait MetaAction: Send + Sync + fmt::Display {
    fn mod_meta(
        &self,
        dir: Direction,
        flow: Option<&FlowId>,
        meta: &mut Meta,
    ) -> Result<(), ActionError>;
}

/// What a packet hook decided.
pub enum HandleResult {
    /// Go on to the next layer (the hook may have changed the packet).
    Continue,
    /// Drop the packet.
    Drop(&'static str),
    /// Send this reply back instead.
    Hairpin(MsgBlk),
}

/// A network-specific hook that sees the whole packet, and the decisions
/// its layer keeps (`flows`: how a NAT layer's hook finds the translation
/// an ICMP error quotes).
pub trait HandlePacket: Send + Sync + fmt::Display {
    fn handle(
        &self,
        dir: Direction,
        pkt: &mut Packet,
        meta: &mut Meta,
        flows: &LayerFlows<'_>,
    ) -> HandleResult;
}

/// A rule's (or a layer default's) action.
#[derive(Clone)]
pub enum Action {
    Allow,
    Deny,
    StatefulAllow,
    Static(Arc<dyn StaticAction>),
    Stateful(Arc<dyn StatefulAction>),
    Hairpin(Arc<dyn HairpinAction>),
    Meta(Arc<dyn MetaAction>),
    HandlePacket(Arc<dyn HandlePacket>),
}

impl Action {
    /// True for the actions that deny (at equal priority, deny rules are
    /// tried before the others).
    pub fn is_deny(&self) -> bool {
        matches!(self, Self::Deny)
    }

    /// The same action (the same object for trait actions).
    pub fn same_as(&self, other: &Action) -> bool {
        match (self, other) {
            (Self::Allow, Self::Allow)
            | (Self::Deny, Self::Deny)
            | (Self::StatefulAllow, Self::StatefulAllow) => true,
            (Self::Static(a), Self::Static(b)) => Arc::ptr_eq(a, b),
            (Self::Stateful(a), Self::Stateful(b)) => Arc::ptr_eq(a, b),
            (Self::Hairpin(a), Self::Hairpin(b)) => Arc::ptr_eq(a, b),
            (Self::Meta(a), Self::Meta(b)) => Arc::ptr_eq(a, b),
            (Self::HandlePacket(a), Self::HandlePacket(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Allow => f.write_str("allow"),
            Self::Deny => f.write_str("deny"),
            Self::StatefulAllow => f.write_str("stateful-allow"),
            Self::Static(a) => write!(f, "static({a})"),
            Self::Stateful(a) => write!(f, "stateful({a})"),
            Self::Hairpin(a) => write!(f, "hairpin({a})"),
            Self::Meta(a) => write!(f, "meta({a})"),
            Self::HandlePacket(a) => write!(f, "handle({a})"),
        }
    }
}

impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A layer's default action for a direction: what happens to packets no
/// rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAction {
    Allow,
    Deny,
    StatefulAllow,
}

impl From<DefaultAction> for Action {
    fn from(d: DefaultAction) -> Self {
        match d {
            DefaultAction::Allow => Action::Allow,
            DefaultAction::Deny => Action::Deny,
            DefaultAction::StatefulAllow => Action::StatefulAllow,
        }
    }
}
