//! A layer: one stage of a port's pipeline (the gateway, the firewall,
//! the router, ...). It holds an ordered rule table and a default action
//! per direction, and a layer flow table (LFT) per direction that
//! remembers stateful decisions.
//!
//! # Theory
//!
//! Rules are consulted only for the first packet of a flow (and again
//! when a rule change makes the port re-check it). A stateful decision
//! (`StatefulAllow`, `Stateful`) is stored as a pair of LFT entries: one
//! for the flow in the direction it was seen, one for its replies in the
//! other direction, keyed by the flow as it looks *at this layer* (after
//! the transformations of the layers before it). The pair shares one
//! [`LftToken`]; every unified flow table entry built through an LFT
//! entry holds a clone of its token, and an LFT entry with outstanding
//! clones never expires (parent/child liveness). A stateful action's
//! resource lives in its [`ActionDesc`], shared by the pair and released
//! when the last entry holding it goes.
//!
//! Rule changes come in two strengths. A *soft* change (one rule added or
//! removed) bumps the layer's generation: LFT entries decided under an
//! older generation are re-checked against the rules the next time a
//! packet needs them, and kept (with their state: the NAT port, the
//! firewall pass) when the rules still give the same action; a layer
//! built with [`LayerSpec::keep_flows`] keeps them without a re-check. A *hard*
//! change (the whole rule set replaced) clears the layer's LFTs, so every
//! flow is decided afresh.
//!
//! # Locking
//!
//! - A layer's [`LayerRules`] (rule tables, defaults and generation) live
//!   with every other layer's under the port's one rules lock (see
//!   [`port`](super::port)): a first packet reads all of them under one
//!   read hold; only rule changes take it for writing.
//! - `lft` (mutex): both directions' layer flow tables ([`LftPair`]).
//!   Taken only by the first packet of a flow (never by a unified flow
//!   table hit), by rule changes and by expiry; after the port's rules
//!   lock, never while holding a unified flow table lock. A first packet
//!   at a layer that stores decisions holds it from its lookup through
//!   the layer's decision to the new pair (one hold), so that layer's
//!   actions run under it and take their own locks after it.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use super::action::{ActionDesc, DefaultAction};
use super::flow::FlowId;
use super::flow_table::{EvictionRank, FlowTable, FlowValue};
use super::rule::{RuleId, RuleTable};
use super::stats::LayerStats;
use super::{Direction, ExpiryClass};
use crate::ddi::sync::KMutex;

/// Shared by the two LFT entries of one stateful decision: counts the
/// unified flow table entries built from them.
#[derive(Default)]
pub struct LftToken {
    children: AtomicU32,
    revoked: AtomicBool,
    /// The stateful action's state: held by the token so that the unified
    /// flow table entries using its transformation keep it (and its
    /// resource) alive even after the LFT entries go.
    desc: Option<Arc<dyn ActionDesc>>,
}

impl LftToken {
    /// A token for a decision, holding its action state if any.
    pub fn new(kind: LftKind) -> Self {
        let desc = match kind {
            LftKind::Allow => None,
            LftKind::Stateful(d) => Some(d),
        };
        Self { children: AtomicU32::new(0), revoked: AtomicBool::new(false), desc }
    }

    /// The action state this decision holds.
    pub fn desc(&self) -> Option<&Arc<dyn ActionDesc>> {
        self.desc.as_ref()
    }

    /// Mark the decision withdrawn (a re-check found the rules no longer
    /// make it): the other entry of the pair goes when next looked up.
    pub fn revoke(&self) {
        self.revoked.store(true, Ordering::Relaxed);
    }

    /// True once the decision was withdrawn.
    pub fn revoked(&self) -> bool {
        self.revoked.load(Ordering::Relaxed)
    }
}

/// A unified flow table entry's hold on the LFT entries it was built
/// from: while it exists, they do not expire, and their action state
/// stays alive.
pub struct LftChild(Arc<LftToken>);

impl LftChild {
    /// Register a new child of `token`.
    pub fn new(token: &Arc<LftToken>) -> Self {
        token.children.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(token))
    }

    /// True once the decision this child was built from was withdrawn:
    /// the unified flow table entry holding it must be rebuilt.
    pub fn revoked(&self) -> bool {
        self.0.revoked()
    }
}

impl Drop for LftChild {
    fn drop(&mut self) {
        self.0.children.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What an LFT entry remembers.
#[derive(Clone)]
pub enum LftKind {
    /// The flow is allowed (stateful allow).
    Allow,
    /// The flow is transformed by this action state.
    Stateful(Arc<dyn ActionDesc>),
}

/// A layer flow table entry (32 bytes: one sits in every flow's entry of
/// every stateful layer, twice).
#[derive(Clone)]
pub struct LftEntry {
    /// The id of the rule that decided it; 0 for the default action (rule
    /// ids start at 1). See [`LftEntry::rule`].
    rule: u64,
    /// The layer generation the decision was made (or re-checked) under.
    pub generation: u64,
    pub token: Arc<LftToken>,
    pub proto: u8,
    /// The direction of the packet that made the decision (the other
    /// entry of the pair is for its replies).
    pub origin: Direction,
}

const _: () = assert!(core::mem::size_of::<LftEntry>() <= 32);

impl LftEntry {
    /// An entry for a decision by `rule` (None: the default action).
    pub fn new(
        rule: Option<RuleId>,
        generation: u64,
        token: Arc<LftToken>,
        proto: u8,
        origin: Direction,
    ) -> Self {
        Self { rule: rule.map_or(0, |r| r.0), generation, token, proto, origin }
    }

    /// The rule that decided it (None: the default action).
    pub fn rule(&self) -> Option<RuleId> {
        (self.rule != 0).then_some(RuleId(self.rule))
    }

    /// The action state of a stateful decision (None: a stateful allow).
    pub fn desc(&self) -> Option<&Arc<dyn ActionDesc>> {
        self.token.desc()
    }

    /// True while a unified flow table entry holds this decision.
    pub fn has_children(&self) -> bool {
        self.token.children.load(Ordering::Relaxed) > 0
    }
}

/// The protocol's expiry class for entries that carry no TCP state.
pub fn class_of_proto(proto: u8) -> ExpiryClass {
    match proto {
        6 => ExpiryClass::TcpEstablished,
        17 => ExpiryClass::Udp,
        1 | 58 => ExpiryClass::Icmp,
        _ => ExpiryClass::Other,
    }
}

impl FlowValue for LftEntry {
    fn expiry_class(&self) -> ExpiryClass {
        class_of_proto(self.proto)
    }

    fn eviction_rank(&self) -> EvictionRank {
        // A decision live UFT entries were built from stays while they do.
        if self.has_children() { EvictionRank::Pinned } else { EvictionRank::Idle }
    }
}

/// How a layer is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerSpec {
    pub name: &'static str,
    pub default_in: DefaultAction,
    pub default_out: DefaultAction,
    /// Entries per direction in the layer flow table.
    pub lft_limit: u32,
    /// On a soft rule change, keep the layer's remembered decisions as
    /// they are until their flows end (true: a firewall, where adding or
    /// removing one rule must not disturb established flows), instead of
    /// re-checking each against the new rules (false: a NAT, whose flows
    /// must leave an address that is no longer configured). A hard change
    /// clears them either way.
    pub keep_flows: bool,
}

/// The rules of a layer, under the port's rules lock.
pub struct LayerRules {
    pub rules_in: RuleTable,
    pub rules_out: RuleTable,
    pub default_in: DefaultAction,
    pub default_out: DefaultAction,
    /// Bumped by every soft rule change.
    pub generation: u64,
}

impl LayerRules {
    /// No rules yet, the spec's defaults.
    pub fn new(spec: &LayerSpec) -> Self {
        Self {
            rules_in: RuleTable::new(),
            rules_out: RuleTable::new(),
            default_in: spec.default_in,
            default_out: spec.default_out,
            generation: 0,
        }
    }

    /// The rule table for a direction.
    pub fn table(&self, dir: Direction) -> &RuleTable {
        match dir {
            Direction::In => &self.rules_in,
            Direction::Out => &self.rules_out,
        }
    }

    /// The rule table for a direction, to change.
    pub fn table_mut(&mut self, dir: Direction) -> &mut RuleTable {
        match dir {
            Direction::In => &mut self.rules_in,
            Direction::Out => &mut self.rules_out,
        }
    }

    /// The default action for a direction.
    pub fn default(&self, dir: Direction) -> DefaultAction {
        match dir {
            Direction::In => self.default_in,
            Direction::Out => self.default_out,
        }
    }
}

/// A layer's two flow tables: decisions by the flow as seen inbound and
/// as seen outbound.
pub struct LftPair {
    pub inbound: FlowTable<LftEntry>,
    pub outbound: FlowTable<LftEntry>,
}

impl LftPair {
    /// The table of a direction.
    pub fn table(&self, dir: Direction) -> &FlowTable<LftEntry> {
        match dir {
            Direction::In => &self.inbound,
            Direction::Out => &self.outbound,
        }
    }

    /// The table of a direction, to change.
    pub fn table_mut(&mut self, dir: Direction) -> &mut FlowTable<LftEntry> {
        match dir {
            Direction::In => &mut self.inbound,
            Direction::Out => &mut self.outbound,
        }
    }
}

/// A read-only view of one layer's remembered decisions, for its
/// [`HandlePacket`](super::action::HandlePacket) hooks.
pub struct LayerFlows<'a> {
    layer: &'a Layer,
}

impl<'a> LayerFlows<'a> {
    /// A view of `layer`'s flow tables.
    pub fn new(layer: &'a Layer) -> Self {
        Self { layer }
    }

    /// The action state of the layer's current (not withdrawn) decision
    /// for `flow` as seen travelling `dir`, if it made a stateful one.
    /// Takes the layer's LFT mutex for the lookup; records no hit.
    pub fn decision(&self, dir: Direction, flow: &FlowId) -> Option<Arc<dyn ActionDesc>> {
        let lft = self.layer.lft.lock();
        let e = &lft.table(dir).get(flow)?.value;
        if e.token.revoked() {
            return None;
        }
        e.desc().cloned()
    }
}

/// One stage of a port's pipeline (its rules are kept by the port).
pub struct Layer {
    pub name: &'static str,
    /// See [`LayerSpec::keep_flows`].
    pub keep_flows: bool,
    /// Set once the layer has stored a stateful decision: until then
    /// its flow tables are empty and a first packet need not lock them.
    pub stateful_seen: AtomicBool,
    pub lft: KMutex<LftPair>,
    pub stats: LayerStats,
}

impl Layer {
    /// A layer with empty flow tables.
    pub fn new(spec: &LayerSpec) -> Self {
        Self {
            name: spec.name,
            keep_flows: spec.keep_flows,
            stateful_seen: AtomicBool::new(false),
            lft: KMutex::new(LftPair {
                inbound: FlowTable::new(spec.name, spec.lft_limit),
                outbound: FlowTable::new(spec.name, spec.lft_limit),
            }),
            stats: LayerStats::default(),
        }
    }

    /// Drop every flow entry of both directions.
    pub fn clear_flows(&self) {
        let mut lft = self.lft.lock();
        lft.inbound.clear(|_, _| {});
        lft.outbound.clear(|_, _| {});
    }

    /// Every LFT entry of a direction (for dumps).
    pub fn dump_lft(&self, dir: Direction) -> Vec<(FlowId, Option<RuleId>, bool)> {
        self.lft
            .lock()
            .table(dir)
            .iter()
            .map(|(id, e)| (*id, e.value.rule(), e.value.token.desc().is_some()))
            .collect()
    }
}
