//! A port: one guest NIC's packet pipeline. An ordered list of layers,
//! fixed when the port is built, and the unified flow table (UFT) that
//! lets every packet after a flow's first skip them.
//!
//! # Theory
//!
//! [`Port::process`] takes a parsed packet and a direction. If the UFT of
//! that direction holds the packet's flow, and the entry was built under
//! the port's current epoch, the stored header transformation is applied
//! and that is all: no layer is visited, no rule is read. Otherwise the
//! packet walks the layers (outbound in order, inbound in reverse), each
//! deciding from its layer flow table or its rules; the layers'
//! transformations are composed into one, applied, and stored in a new
//! UFT entry together with holds on the LFT entries it came from.
//!
//! Every rule change bumps the port's epoch, so UFT entries built before
//! it are rebuilt lazily by the next packet of their flow (and by then
//! the layers' own flow tables decide whether the flow keeps its state;
//! see [`layer`](super::layer)). Hairpin replies and packets a
//! `HandlePacket` hook saw are never cached.
//!
//! TCP flows also carry connection state ([`TcpFlow`]), shared by the
//! UFT entries of both directions and kept in the port's TCP flow table
//! keyed by the flow as the guest sees it (guest address first). A FIN
//! handshake or RST closes the flow and reclaims its entries; a new SYN
//! on a closed or TIME_WAIT flow starts it afresh through the layers.
//!
//! # Lifecycle
//!
//! | state | process | rule changes | start | pause | reset |
//! | --- | --- | --- | --- | --- | --- |
//! | Ready (built) | drop (`NotRunning`) | yes | -> Running | error | yes |
//! | Running | yes | yes | error | -> Paused | yes |
//! | Paused | drop (`NotRunning`) | yes | -> Running | error | yes |
//!
//! `reset` clears every flow table (UFT, LFTs, TCP) and keeps rules and
//! state.
//!
//! # Limits
//!
//! Every flow table has a limit. A packet whose flow would need an entry
//! in a full table is dropped and counted (`TableFull`); nothing is
//! allocated past the limit. [`Port::expire`], which the driver calls
//! periodically, also evicts from tables fuller than
//! [`PRESSURE_PERCENT`], preferring closing and misbehaving TCP flows
//! over established ones. Both go over each table a slice at a time
//! (`flow_table::SLICE_SLOTS` slots per hold of its lock; an eviction
//! scan takes the unified flow table's read lock only), so that a table
//! of 10^6 flows never stops the data path for the whole pass.
//!
//! # Locking
//!
//! - `transitions` (mutex): serializes lifecycle changes of `state` (an
//!   atomic, which packets read without any lock).
//! - `uft_in`, `uft_out` (read/write locks): a UFT hit takes only the read
//!   lock (hit counts and times are atomics in the entry); inserting,
//!   invalidating and expiring take the write lock.
//! - `tcp` (mutex): the TCP flow table, taken by the first packet of a
//!   flow and when a flow closes. Each connection's state is one word
//!   changed by compare-and-swap ([`TcpShared`]): a UFT hit takes no lock
//!   for it.
//! - `rules` (read/write lock): every layer's rule tables, defaults and
//!   generation, in layer order. A first packet takes it for reading once
//!   and holds it through the layer walk (one hold, not one per layer);
//!   only rule changes take it for writing, and no packet waits for one
//!   except behind a writer that is already waiting.
//! - each layer's `lft` (mutex): its two flow tables.
//!
//! Lock order: `rules`, then a layer's LFT mutex, then the state that
//! layer's actions lock (a NAT pool, a network's mappings); a UFT lock, then a
//! TCP flow mutex; the TCP table mutex is never held with a UFT lock. No
//! packet path holds a lock that a rule change takes for writing.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use smallvec::SmallVec;

use super::action::{Action, ActionDesc, HandlePacket, HandleResult, LayerFlows};
use super::flow::FlowId;
use super::flow_table::{
    EvictionChoice, EvictionRank, ExpiryPolicy, FlowTable, FlowTableStats, FlowValue, in_slices,
    scan_in_slices,
};
use super::layer::{
    Layer, LayerRules, LayerSpec, LftChild, LftEntry, LftKind, LftPair, LftToken, class_of_proto,
};
use super::meta::Meta;
use super::predicate::MatchCtx;
use super::rule::{RuleError, RuleId, RuleSpec, RuleTable};
use super::stats::{DropReason, LayerStatsSnapshot, PortStats, PortStatsSnapshot, bump};
use super::tcp_state::{TcpFlow, TcpState, TcpVerdict};
use super::trace::{ActionKind, Decision, Outcome, TraceEvent, Tracer};
use super::transform::{CompiledTransform, HdrTransform};
use super::{Direction, ExpiryClass, Moment};
use crate::ddi::MsgBlk;
use crate::ddi::sync::{KMutex, KMutexGuard, KRwLock};
use crate::packet::tcp::tcp_flags;
use crate::packet::{Headers, L4, Packet};

/// Call the port's tracer, if the `trace` feature is on and one is set.
/// Without the feature the event is still type-checked (inside a closure
/// that is never called) and compiles away.
macro_rules! trace {
    ($port:expr, $ev:expr) => {
        #[cfg(feature = "trace")]
        if let Some(t) = &$port.tracer {
            t.event(&$ev);
        }
        #[cfg(not(feature = "trace"))]
        {
            let _ = || (&$port.tracer, $ev);
        }
    };
}

/// A port's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortState {
    Ready,
    Running,
    Paused,
}

impl PortState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Running,
            2 => Self::Paused,
            _ => Self::Ready,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            Self::Ready => 0,
            Self::Running => 1,
            Self::Paused => 2,
        }
    }
}

/// Why a port operation was refused. The port is unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortError {
    /// The operation is not allowed in the port's state.
    BadState { op: &'static str, state: PortState },
    /// No layer has this name.
    NoSuchLayer(String),
    /// A rule was refused.
    Rule(RuleError),
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadState { op, state } => write!(f, "cannot {op} a port that is {state:?}"),
            Self::NoSuchLayer(l) => write!(f, "no layer named {l}"),
            Self::Rule(e) => e.fmt(f),
        }
    }
}

/// How a port is built.
#[derive(Debug, Clone)]
pub struct PortConfig {
    pub name: String,
    /// Layers in outbound order.
    pub layers: Vec<LayerSpec>,
    /// Entries per direction in the unified flow table.
    pub uft_limit: u32,
    /// Entries in the TCP flow table.
    pub tcp_limit: u32,
    pub expiry: ExpiryPolicy,
}

/// What a port did with a packet.
#[derive(Debug)]
pub enum ProcessResult {
    /// Pass it on (possibly changed).
    Modified,
    /// Drop it, for this reason (already counted).
    Drop(DropReason),
    /// Send this reply back where the packet came from; drop the packet.
    Hairpin(MsgBlk),
}

/// A TCP flow's state, shared by the UFT entries of both directions and
/// the TCP flow table, with the key it has there.
///
/// The state is one word ([`TcpFlow::pack`]) changed by compare-and-swap:
/// no lock to take per segment, and none to initialize per connection. A
/// plain ACK in ESTABLISHED (what nearly every segment is) cannot change
/// it and costs one load. Two CPUs advancing the same connection at once
/// retry; after `MAX_TCP_RETRIES` lost races a segment's update is
/// stored over the other's (counted as `tcp_contended`), so a segment
/// never waits unboundedly.
pub struct TcpShared {
    /// The flow as the guest sees it (guest address first).
    pub key: FlowId,
    /// The packed [`TcpFlow`].
    state: AtomicU64,
}

/// Compare-and-swap attempts one segment makes on its connection's state.
const MAX_TCP_RETRIES: usize = 16;

impl TcpShared {
    fn new(key: FlowId, flow: TcpFlow) -> Self {
        Self { key, state: AtomicU64::new(flow.pack()) }
    }

    /// The connection's state now.
    pub fn flow(&self) -> TcpFlow {
        TcpFlow::unpack(self.state.load(Ordering::Acquire))
    }

    /// Advance the connection by one segment; true in the second place
    /// when the update had to overwrite a racing one.
    fn advance(&self, dir: Direction, hdr: &crate::packet::TcpHdr) -> (TcpVerdict, bool) {
        let flags = hdr.flags;
        let plain_ack = flags & (tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST) == 0
            && flags & tcp_flags::ACK != 0;
        let mut word = self.state.load(Ordering::Acquire);
        if plain_ack && TcpFlow::state_of(word) == TcpState::Established {
            return (TcpVerdict::Ok(TcpState::Established), false);
        }
        for _ in 0..MAX_TCP_RETRIES {
            let mut f = TcpFlow::unpack(word);
            let v = f.process(dir, hdr);
            let new = f.pack();
            if new == word {
                return (v, false);
            }
            match self.state.compare_exchange(word, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return (v, false),
                Err(now) => word = now,
            }
        }
        let mut f = TcpFlow::unpack(word);
        let v = f.process(dir, hdr);
        self.state.store(f.pack(), Ordering::Release);
        (v, true)
    }

    /// Start the connection afresh from this segment.
    fn restart(&self, dir: Direction, hdr: &crate::packet::TcpHdr) {
        self.state.store(TcpFlow::new(dir, hdr).pack(), Ordering::Release);
    }
}

/// A shared TCP flow state.
pub type SharedTcp = Arc<TcpShared>;

/// A unified flow table entry.
pub struct UftEntry {
    xform: CompiledTransform,
    epoch: u64,
    /// Holds on the LFT decisions the entry was built from; a revoked
    /// one makes the entry stale.
    children: Children,
    tcp: Option<SharedTcp>,
    proto: u8,
    hits: AtomicU64,
    last_hit: AtomicU64,
}

impl UftEntry {
    /// The transformation applied to the flow's packets.
    pub fn xform(&self) -> &CompiledTransform {
        &self.xform
    }

    /// Packets that hit this entry (a count CPUs racing on one flow can
    /// leave short, never long: see `Port::fast_path`).
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// The epoch the entry was built under.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// True while the entry may be applied: built under the port's
    /// current `epoch`, and none of the decisions it was built from
    /// withdrawn.
    fn is_current(&self, epoch: u64) -> bool {
        self.epoch == epoch && !self.withdrawn()
    }

    /// True when a decision the entry was built from was withdrawn.
    fn withdrawn(&self) -> bool {
        self.children.iter().any(LftChild::revoked)
    }

    fn tcp_state(&self) -> Option<TcpFlow> {
        self.tcp.as_ref().map(|t| t.flow())
    }
}

impl FlowValue for UftEntry {
    fn expiry_class(&self) -> ExpiryClass {
        match self.tcp_state() {
            Some(t) => t.expiry_class(),
            None => class_of_proto(self.proto),
        }
    }

    fn eviction_rank(&self) -> EvictionRank {
        tcp_rank(self.tcp_state(), self.proto)
    }

    /// Hits land here, under the read lock.
    fn own_last_hit(&self) -> Option<Moment> {
        Some(Moment(self.last_hit.load(Ordering::Relaxed)))
    }
}

fn tcp_rank(t: Option<TcpFlow>, proto: u8) -> EvictionRank {
    match t {
        Some(t) if t.expiry_class() == ExpiryClass::TcpClosing => EvictionRank::Closing,
        Some(t) if t.errors() > 0 => EvictionRank::Misbehaving,
        Some(t) if t.expiry_class() == ExpiryClass::TcpIncipient => EvictionRank::Incipient,
        Some(_) => EvictionRank::Established,
        None if proto == 6 => EvictionRank::Incipient,
        None => EvictionRank::Idle,
    }
}

/// A TCP flow table entry.
pub struct TcpEntry(SharedTcp);

impl FlowValue for TcpEntry {
    fn expiry_class(&self) -> ExpiryClass {
        self.0.flow().expiry_class()
    }

    fn eviction_rank(&self) -> EvictionRank {
        // A connection a live UFT entry shares stays while it does.
        if Arc::strong_count(&self.0) > 1 {
            return EvictionRank::Pinned;
        }
        tcp_rank(Some(self.0.flow()), 6)
    }
}

/// One layer's rules and flow tables, as the dump API reports them.
#[derive(Debug, Clone)]
pub struct LayerDump {
    pub name: &'static str,
    /// (rule id, priority, action, hits) in evaluation order.
    pub rules_in: Vec<(RuleId, u16, String, u64)>,
    pub rules_out: Vec<(RuleId, u16, String, u64)>,
    pub default_in: super::action::DefaultAction,
    pub default_out: super::action::DefaultAction,
    pub lft_in: usize,
    pub lft_out: usize,
    pub stats: LayerStatsSnapshot,
}

/// A port's flow tables' occupancy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableUsage {
    pub uft_in: usize,
    pub uft_out: usize,
    pub uft_limit: u32,
    pub tcp: usize,
    pub tcp_limit: u32,
}

/// A UFT entry's holds on the LFT decisions it was built from: inline
/// for the usual few stateful layers, so storing a flow allocates no list.
type Children = SmallVec<[LftChild; 2]>;

/// The LFT pairs a first packet created (layer index, direction, flow,
/// reply flow), to undo if the packet does not pass: at most one per
/// layer, on the stack for the usual few.
type Created = SmallVec<[(usize, Direction, FlowId, FlowId); 4]>;

/// What a layer did with a packet being classified (a stack value on the
/// slow path: its size doesn't matter).
#[allow(clippy::large_enum_variant)]
enum Step {
    /// Passed unchanged (nothing to compose).
    Allow,
    Pass(HdrTransform),
    Hairpin(MsgBlk),
    Handle(Arc<dyn HandlePacket>),
}

/// What a layer's flow table said about a flow being classified.
enum Remembered {
    /// A current decision: its transformation (None: a stateful allow).
    Decided(Option<HdrTransform>),
    /// No current decision: the rules decide. `previous` is the action
    /// state of a decision just withdrawn, offered to the new one.
    Undecided { previous: Option<Arc<dyn ActionDesc>> },
}

/// What the UFT said about a packet.
enum Fast {
    Done(ProcessResult),
    Miss,
    Stale,
    Restart,
}

/// A guest NIC's pipeline.
pub struct Port {
    name: String,
    layers: Vec<Layer>,
    /// Every layer's rules, indexed as `layers`.
    pub(super) rules: KRwLock<Vec<LayerRules>>,
    /// Serializes lifecycle transitions; the state itself is `state`.
    transitions: KMutex<()>,
    state: AtomicU8,
    epoch: AtomicU64,
    uft_in: KRwLock<FlowTable<UftEntry>>,
    uft_out: KRwLock<FlowTable<UftEntry>>,
    tcp: KMutex<FlowTable<TcpEntry>>,
    next_rule: AtomicU64,
    expiry: ExpiryPolicy,
    stats: PortStats,
    tracer: Option<Arc<dyn Tracer>>,
}

impl Port {
    /// Build a port in the Ready state. Layer names must be unique.
    pub fn new(cfg: PortConfig, tracer: Option<Arc<dyn Tracer>>) -> Self {
        Self {
            layers: cfg.layers.iter().map(Layer::new).collect(),
            rules: KRwLock::new(cfg.layers.iter().map(LayerRules::new).collect()),
            transitions: KMutex::new(()),
            state: AtomicU8::new(PortState::Ready.as_u8()),
            epoch: AtomicU64::new(1),
            uft_in: KRwLock::new(FlowTable::new("uft_in", cfg.uft_limit)),
            uft_out: KRwLock::new(FlowTable::new("uft_out", cfg.uft_limit)),
            tcp: KMutex::new(FlowTable::new("tcp", cfg.tcp_limit)),
            next_rule: AtomicU64::new(1),
            expiry: cfg.expiry,
            stats: PortStats::default(),
            tracer,
            name: cfg.name,
        }
    }

    /// The port's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lifecycle state.
    pub fn state(&self) -> PortState {
        PortState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// The rule epoch (bumped by every rule change).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn transition(
        &self,
        op: &'static str,
        from: &[PortState],
        to: PortState,
    ) -> Result<(), PortError> {
        let _serial = self.transitions.lock();
        let state = self.state();
        if !from.contains(&state) {
            return Err(PortError::BadState { op, state });
        }
        self.state.store(to.as_u8(), Ordering::Release);
        Ok(())
    }

    /// Ready or Paused -> Running.
    pub fn start(&self) -> Result<(), PortError> {
        self.transition("start", &[PortState::Ready, PortState::Paused], PortState::Running)
    }

    /// Running -> Paused: packets are dropped until started again.
    pub fn pause(&self) -> Result<(), PortError> {
        self.transition("pause", &[PortState::Running], PortState::Paused)
    }

    /// Clear every flow table (UFT, LFTs, TCP); rules and state stay.
    pub fn reset(&self) {
        // The tables keep their allocations: a reset port refills them
        // (expiry returns the memory of tables that stay sparse).
        self.uft_in.write().empty(|_, _| {});
        self.uft_out.write().empty(|_, _| {});
        self.tcp.lock().empty(|_, _| {});
        for l in &self.layers {
            let mut lft = l.lft.lock();
            lft.inbound.empty(|_, _| {});
            lft.outbound.empty(|_, _| {});
        }
    }

    fn layer(&self, name: &str) -> Result<(usize, &Layer), PortError> {
        self.layers
            .iter()
            .enumerate()
            .find(|(_, l)| l.name == name)
            .ok_or_else(|| PortError::NoSuchLayer(String::from(name)))
    }

    /// Run `f` on the rules of `layer` (as [`Port::layer`] found it)
    /// under the write lock.
    fn change_rules<T>(
        &self,
        (idx, layer): (usize, &Layer),
        f: impl FnOnce(&mut LayerRules) -> Result<T, PortError>,
    ) -> Result<T, PortError> {
        let mut all = self.rules.write();
        let rules =
            all.get_mut(idx).ok_or_else(|| PortError::NoSuchLayer(String::from(layer.name)))?;
        f(rules)
    }

    fn bump_epoch(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Add one rule (a soft change: flows keep their state while the
    /// rules still give them the same decision).
    pub fn add_rule(
        &self,
        layer: &str,
        dir: Direction,
        spec: RuleSpec,
    ) -> Result<RuleId, PortError> {
        let l = self.layer(layer)?;
        RuleTable::validate(&spec).map_err(PortError::Rule)?;
        let id = RuleId(self.next_rule.fetch_add(1, Ordering::Relaxed));
        self.change_rules(l, |rules| {
            rules.table_mut(dir).add(id, spec).map_err(PortError::Rule)?;
            rules.generation += 1;
            Ok(())
        })?;
        self.bump_epoch();
        Ok(id)
    }

    /// Remove one rule (a soft change).
    pub fn remove_rule(&self, layer: &str, dir: Direction, id: RuleId) -> Result<(), PortError> {
        let l = self.layer(layer)?;
        self.change_rules(l, |rules| {
            rules.table_mut(dir).remove(id).map_err(PortError::Rule)?;
            rules.generation += 1;
            Ok(())
        })?;
        self.bump_epoch();
        Ok(())
    }

    /// Replace every rule of a layer direction (a hard change: the layer
    /// forgets its flows and decides each afresh). All rules are checked
    /// before anything changes.
    pub fn set_rules(
        &self,
        layer: &str,
        dir: Direction,
        specs: Vec<RuleSpec>,
    ) -> Result<Vec<RuleId>, PortError> {
        let found = self.layer(layer)?;
        if specs.len() > super::rule::MAX_RULES {
            return Err(PortError::Rule(RuleError::TooManyRules));
        }
        for s in &specs {
            RuleTable::validate(s).map_err(PortError::Rule)?;
        }
        let mut table = RuleTable::new();
        let ids = table
            .update(specs, || RuleId(self.next_rule.fetch_add(1, Ordering::Relaxed)))
            .map_err(PortError::Rule)?;
        // The flows go under the same write hold, so no first packet
        // decides by the old rules after they are cleared.
        self.change_rules(found, |rules| {
            *rules.table_mut(dir) = table;
            rules.generation += 1;
            found.1.clear_flows();
            Ok(())
        })?;
        self.bump_epoch();
        Ok(ids)
    }

    /// Replace every rule of a layer direction softly: a rule that is the
    /// same as a current one ([`RuleSpec::same_as`]) keeps its id, so the
    /// flows it decided keep their state (their NAT port, their firewall
    /// pass); flows decided by rules that went are re-checked by their
    /// next packet. This is how a network reconfigures a layer without
    /// throwing away flows that are still valid. All rules are checked
    /// before anything changes.
    pub fn update_rules(
        &self,
        layer: &str,
        dir: Direction,
        specs: Vec<RuleSpec>,
    ) -> Result<Vec<RuleId>, PortError> {
        let l = self.layer(layer)?;
        let ids = self.change_rules(l, |rules| {
            let ids = rules
                .table_mut(dir)
                .update(specs, || RuleId(self.next_rule.fetch_add(1, Ordering::Relaxed)))
                .map_err(PortError::Rule)?;
            rules.generation += 1;
            Ok(ids)
        })?;
        self.bump_epoch();
        Ok(ids)
    }

    /// Make every unified flow table entry stale without changing any
    /// rule: each flow's next packet walks the layers again (keeping its
    /// layers' state). For state the layers read from outside the port,
    /// such as a network's address mappings shared by all its ports.
    pub fn invalidate_uft(&self) {
        self.bump_epoch();
    }

    /// Port counters.
    pub fn stats(&self) -> PortStatsSnapshot {
        self.stats.snapshot()
    }

    /// Flow table occupancy and limits.
    pub fn table_usage(&self) -> TableUsage {
        // One lock at a time (the TCP table is never held with a UFT lock).
        let (uft_in, uft_limit) = {
            let t = self.uft_in.read();
            (t.len(), t.limit())
        };
        let uft_out = self.uft_out.read().len();
        let (tcp, tcp_limit) = {
            let t = self.tcp.lock();
            (t.len(), t.limit())
        };
        TableUsage { uft_in, uft_out, uft_limit, tcp, tcp_limit }
    }

    /// Every flow table's counters (inserts, full drops, expiries,
    /// evictions, occupancy and limit), named `uft_in`, `uft_out`, `tcp`
    /// and `LAYER/in`, `LAYER/out`.
    pub fn flow_table_stats(&self) -> Vec<(String, FlowTableStats)> {
        let mut v = Vec::with_capacity(3 + 2 * self.layers.len());
        v.push((String::from("uft_in"), self.uft_in.read().stats()));
        v.push((String::from("uft_out"), self.uft_out.read().stats()));
        v.push((String::from("tcp"), self.tcp.lock().stats()));
        for l in &self.layers {
            let lft = l.lft.lock();
            v.push((alloc::format!("{}/in", l.name), lft.inbound.stats()));
            v.push((alloc::format!("{}/out", l.name), lft.outbound.stats()));
        }
        v
    }

    /// The layer names in outbound order.
    pub fn layer_names(&self) -> Vec<&'static str> {
        self.layers.iter().map(|l| l.name).collect()
    }

    /// One layer's rules, defaults, flow table sizes and counters.
    pub fn dump_layer(&self, name: &str) -> Result<LayerDump, PortError> {
        let (idx, l) = self.layer(name)?;
        let all = self.rules.read();
        let rules = all.get(idx).ok_or_else(|| PortError::NoSuchLayer(String::from(name)))?;
        let (lft_in, lft_out) = {
            let lft = l.lft.lock();
            (lft.inbound.len(), lft.outbound.len())
        };
        let list = |t: &RuleTable| {
            t.iter()
                .map(|r| (r.id, r.spec.priority, alloc::format!("{}", r.spec.action), r.hits()))
                .collect()
        };
        Ok(LayerDump {
            name: l.name,
            rules_in: list(&rules.rules_in),
            rules_out: list(&rules.rules_out),
            default_in: rules.default_in,
            default_out: rules.default_out,
            lft_in,
            lft_out,
            stats: l.stats.snapshot(),
        })
    }

    /// The UFT of a direction: each flow, its transformation and hits.
    pub fn dump_uft(&self, dir: Direction) -> Vec<(FlowId, HdrTransform, u64)> {
        self.uft(dir)
            .read()
            .iter()
            .map(|(id, e)| (*id, e.value.xform.to_transform(), e.value.hits()))
            .collect()
    }

    /// The transformation of a current (not stale) UFT entry for `f`.
    pub(super) fn uft_current(&self, dir: Direction, f: &FlowId) -> Option<HdrTransform> {
        let uft = self.uft(dir).read();
        let e = &uft.get(f)?.value;
        e.is_current(self.epoch.load(Ordering::Acquire)).then(|| e.xform.to_transform())
    }

    /// The layers, with their indices, in the order a packet travelling
    /// `dir` visits them.
    pub(super) fn layers_in_order(&self, dir: Direction) -> impl Iterator<Item = (usize, &Layer)> {
        let n = self.layers.len();
        (0..n).filter_map(move |i| {
            let idx = match dir {
                Direction::Out => i,
                Direction::In => n - 1 - i,
            };
            self.layers.get(idx).map(|l| (idx, l))
        })
    }

    /// The TCP flows and their states.
    pub fn dump_tcp(&self) -> Vec<(FlowId, TcpState)> {
        self.tcp.lock().iter().map(|(id, e)| (*id, e.value.0.flow().state())).collect()
    }

    /// Remove the UFT entries of both directions (they are rebuilt).
    pub fn clear_uft(&self) {
        self.uft_in.write().clear(|_, _| {});
        self.uft_out.write().clear(|_, _| {});
    }

    /// Remove the LFT entries of one layer (or all layers).
    pub fn clear_lft(&self, layer: Option<&str>) -> Result<(), PortError> {
        match layer {
            Some(n) => self.layer(n)?.1.clear_flows(),
            None => self.layers.iter().for_each(Layer::clear_flows),
        }
        Ok(())
    }

    fn uft(&self, dir: Direction) -> &KRwLock<FlowTable<UftEntry>> {
        match dir {
            Direction::In => &self.uft_in,
            Direction::Out => &self.uft_out,
        }
    }

    fn count_processed(&self, dir: Direction) {
        bump(match dir {
            Direction::In => &self.stats.in_processed,
            Direction::Out => &self.stats.out_processed,
        });
    }

    /// Count a packet that could not be parsed (the caller parses).
    pub fn count_parse_error(&self, dir: Direction, e: crate::packet::ParseError) -> DropReason {
        self.count_processed(dir);
        let r = DropReason::Parse(e);
        self.stats.count_drop(&r);
        r
    }

    /// Run one packet through the port.
    pub fn process(&self, dir: Direction, pkt: &mut Packet, now: Moment) -> ProcessResult {
        self.count_processed(dir);
        let flow = FlowId::from_headers(pkt.headers());
        trace!(self, TraceEvent::PortEntry { port: &self.name, dir, flow });
        let res = if self.state() != PortState::Running {
            ProcessResult::Drop(DropReason::NotRunning)
        } else {
            self.process_running(dir, pkt, flow, now)
        };
        let outcome = match &res {
            // Counted as what is neither a drop nor a hairpin (see
            // `PortStats::snapshot`): one atomic fewer per packet.
            ProcessResult::Modified => Outcome::Modified,
            ProcessResult::Drop(r) => {
                self.stats.count_drop(r);
                Outcome::Dropped
            }
            ProcessResult::Hairpin(_) => {
                bump(&self.stats.hairpin);
                Outcome::Hairpin
            }
        };
        trace!(self, TraceEvent::PortReturn { port: &self.name, dir, outcome });
        res
    }

    fn process_running(
        &self,
        dir: Direction,
        pkt: &mut Packet,
        flow: Option<FlowId>,
        now: Moment,
    ) -> ProcessResult {
        if let Some(f) = flow {
            match self.fast_path(dir, pkt, &f, now) {
                Fast::Done(r) => return r,
                Fast::Miss => {}
                Fast::Stale => {
                    self.uft(dir).write().remove(&f);
                    bump(&self.stats.uft_invalidated);
                    trace!(self, TraceEvent::UftInvalidated { dir, flow: f });
                }
                Fast::Restart => {
                    self.forget_flow(dir, &f);
                    bump(&self.stats.uft_invalidated);
                    trace!(self, TraceEvent::UftInvalidated { dir, flow: f });
                }
            }
        }
        self.slow_path(dir, pkt, flow, now)
    }

    /// A UFT hit: apply the stored transformation, nothing else.
    fn fast_path(&self, dir: Direction, pkt: &mut Packet, f: &FlowId, now: Moment) -> Fast {
        let uft = self.uft(dir).read();
        let Some(e) = uft.get(f) else { return Fast::Miss };
        let e = &e.value;
        if !e.is_current(self.epoch.load(Ordering::Acquire)) {
            return Fast::Stale;
        }
        let mut closed = None;
        if let (Some(tcp), Some(L4::Tcp(hdr))) = (&e.tcp, &pkt.headers().l4) {
            match self.advance_tcp(tcp, dir, hdr) {
                TcpVerdict::Ok(_) => {}
                TcpVerdict::Unexpected(_) => bump(&self.stats.tcp_error),
                TcpVerdict::Closed => closed = Some(Arc::clone(tcp)),
                TcpVerdict::NewFlow => return Fast::Restart,
            }
        }
        // A load and a store, not an atomic add: a locked add would
        // cost every packet a full barrier. The count is exact while one
        // CPU handles the flow (as flow fanout arranges); CPUs hitting the
        // same entry at once can lose counts (a store from a stale load
        // undoes the others' since), never add any.
        e.hits.store(e.hits.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
        // Idle time only matters in seconds: a hit within a millisecond
        // of the recorded one leaves it (a plain load, no atomic write
        // per packet); a later one moves it forward, never back.
        if now.0 >= e.last_hit.load(Ordering::Relaxed).saturating_add(LAST_HIT_GRAIN_NS) {
            e.last_hit.fetch_max(now.0, Ordering::Relaxed);
        }
        // Applied under the read lock: the entry is borrowed, not copied.
        let res = match e.xform.apply(pkt) {
            Ok(_) => ProcessResult::Modified,
            Err(e) => ProcessResult::Drop(DropReason::Transform(e)),
        };
        let reverse = closed.as_ref().map(|_| e.xform.apply_to_flow(f).mirror());
        drop(uft);
        trace!(self, TraceEvent::UftHit { dir, flow: *f });
        if let (Some(tcp), Some(reverse)) = (closed, reverse) {
            self.close_tcp(dir, f, &reverse, &tcp);
        }
        Fast::Done(res)
    }

    /// Remove a closed TCP flow: its UFT entries in both directions and
    /// its connection state.
    ///
    /// Entries are removed only while they still hold this connection's
    /// state: another CPU may already have rebuilt one for a new
    /// connection on the same 5-tuple.
    fn close_tcp(&self, dir: Direction, f: &FlowId, reverse: &FlowId, tcp: &SharedTcp) {
        let ours = |e: &UftEntry| e.tcp.as_ref().is_some_and(|t| Arc::ptr_eq(t, tcp));
        for (d, id) in [(dir, f), (dir.reverse(), reverse)] {
            let mut t = self.uft(d).write();
            if t.get(id).is_some_and(|e| ours(&e.value)) {
                t.remove(id);
            }
        }
        let mut t = self.tcp.lock();
        if t.get(&tcp.key).is_some_and(|e| Arc::ptr_eq(&e.value.0, tcp)) {
            t.remove(&tcp.key);
        }
        drop(t);
        bump(&self.stats.tcp_closed);
    }

    /// Forget a flow whose TCP connection restarts (a new SYN on a closed
    /// or TIME_WAIT flow).
    fn forget_flow(&self, dir: Direction, f: &FlowId) {
        let removed = self.uft(dir).write().remove(f);
        if let Some(e) = removed {
            let reverse = e.xform.apply_to_flow(f).mirror();
            self.uft(dir.reverse()).write().remove(&reverse);
            if let Some(t) = &e.tcp {
                self.tcp.lock().remove(&t.key);
            }
        }
    }

    /// The first packet of a flow: walk the layers.
    fn slow_path(
        &self,
        dir: Direction,
        pkt: &mut Packet,
        flow: Option<FlowId>,
        now: Moment,
    ) -> ProcessResult {
        bump(&self.stats.uft_miss);
        let mut created = Created::new();
        let mut new_tcp = None;
        let res = self.slow_walk(dir, pkt, flow, now, &mut created, &mut new_tcp);
        if matches!(res, ProcessResult::Drop(_) | ProcessResult::Hairpin(_)) {
            // Leave no state behind for a packet that didn't pass: the
            // layer flow pairs it created (and so their resources, such
            // as a NAT port) and a TCP connection it started.
            for (idx, d, f, r) in created {
                if let Some(l) = self.layers.get(idx) {
                    let mut lft = l.lft.lock();
                    lft.table_mut(d).remove(&f);
                    lft.table_mut(d.reverse()).remove(&r);
                }
            }
            if let Some(key) = new_tcp {
                self.tcp.lock().remove(&key);
            }
        }
        res
    }

    /// The layer walk of [`Port::slow_path`]; records the LFT pairs
    /// (layer index, direction, flow, reply flow) and the TCP connection
    /// it creates so a failure can undo them.
    fn slow_walk(
        &self,
        dir: Direction,
        pkt: &mut Packet,
        flow: Option<FlowId>,
        now: Moment,
        created: &mut Created,
        new_tcp: &mut Option<FlowId>,
    ) -> ProcessResult {
        let epoch = self.epoch.load(Ordering::Acquire);
        let mut view: Headers = *pkt.headers();
        // What the end of the walk needs of the packet as it arrived.
        let entry_tcp = match &view.l4 {
            Some(L4::Tcp(t)) => Some(*t),
            _ => None,
        };
        // The layers' transformations composed so far (None until one
        // changes anything: nothing to compose with).
        let mut xform: Option<HdrTransform> = None;
        let mut children = Children::new();
        let mut meta = Meta::new();
        let mut cur = flow;
        let mut cacheable = flow.is_some();
        // One read hold for the whole walk (see the module's locking).
        let all_rules = self.rules.read();
        for (idx, layer) in self.layers_in_order(dir) {
            let Some(rules) = all_rules.get(idx) else { continue };
            let step = self.run_layer(
                (idx, layer),
                rules,
                dir,
                pkt,
                &view,
                cur,
                &mut meta,
                now,
                &mut children,
                created,
            );
            let step = match step {
                Ok(s) => s,
                Err(r) => return ProcessResult::Drop(r),
            };
            match step {
                Step::Allow => {}
                Step::Pass(xf) => {
                    if let Err(e) = xf.apply_to_headers(&mut view) {
                        return ProcessResult::Drop(DropReason::Transform(e));
                    }
                    cur = cur.map(|f| xf.apply_to_flow(&f));
                    xform = Some(match xform {
                        Some(x) => match x.then(&xf) {
                            Ok(x) => x,
                            Err(e) => return ProcessResult::Drop(DropReason::Transform(e)),
                        },
                        None => xf,
                    });
                }
                Step::Hairpin(m) => return ProcessResult::Hairpin(m),
                Step::Handle(hook) => {
                    // The hook sees the packet as the layers before it
                    // left it; the flow is not cached.
                    cacheable = false;
                    if let Err(e) = xform.take().unwrap_or(HdrTransform::NONE).apply(pkt) {
                        return ProcessResult::Drop(DropReason::Transform(e));
                    }
                    match hook.handle(dir, pkt, &mut meta, &LayerFlows::new(layer)) {
                        HandleResult::Continue => {}
                        HandleResult::Drop(why) => {
                            return ProcessResult::Drop(DropReason::Handled {
                                layer: layer.name,
                                why,
                            });
                        }
                        HandleResult::Hairpin(m) => return ProcessResult::Hairpin(m),
                    }
                    view = *pkt.headers();
                    cur = FlowId::from_headers(&view);
                }
            }
        }
        drop(all_rules);
        let xform = xform.unwrap_or(HdrTransform::NONE);

        // TCP connection state, keyed by the flow as the guest sees it.
        let mut tcp = None;
        if let (Some(f), Some(hdr)) = (flow, &entry_tcp) {
            let key = match (dir, cur) {
                (Direction::Out, _) => f,
                (Direction::In, Some(c)) => c.mirror(),
                (Direction::In, None) => f.mirror(),
            };
            match self.track_tcp(dir, key, hdr, now) {
                Ok((t, closed, fresh)) => {
                    if fresh {
                        *new_tcp = Some(key);
                    }
                    if closed {
                        // Reclaim the connection: its state and the other
                        // direction's UFT entry (this one is not cached).
                        cacheable = false;
                        if let Some(f) = flow {
                            let reverse = xform.apply_to_flow(&f).mirror();
                            self.close_tcp(dir, &f, &reverse, &t);
                        }
                    } else {
                        tcp = Some(t);
                    }
                }
                Err(r) => return ProcessResult::Drop(r),
            }
        }

        if cacheable && let Some(f) = flow {
            // The packet is written by the compiled form the flow's later
            // packets will use (the same bytes as the general path, and
            // cheaper), then the entry is stored.
            let compiled = CompiledTransform::compile(xform, &f);
            if let Err(e) = compiled.apply(pkt) {
                return ProcessResult::Drop(DropReason::Transform(e));
            }
            let entry = UftEntry {
                xform: compiled,
                epoch,
                children,
                tcp,
                proto: f.proto,
                hits: AtomicU64::new(0),
                last_hit: AtomicU64::new(now.0),
            };
            return match self.insert_uft(dir, f, entry, now) {
                Ok(()) => ProcessResult::Modified,
                Err(r) => ProcessResult::Drop(r),
            };
        }
        match xform.apply(pkt) {
            Ok(()) => ProcessResult::Modified,
            Err(e) => ProcessResult::Drop(DropReason::Transform(e)),
        }
    }

    fn insert_uft(
        &self,
        dir: Direction,
        f: FlowId,
        entry: UftEntry,
        now: Moment,
    ) -> Result<(), DropReason> {
        let mut uft = self.uft(dir).write();
        uft.insert(f, entry, now)
            .map(|_| ())
            .map_err(|_| DropReason::TableFull { table: uft.name() })
    }

    /// Advance a connection by one segment, counting an update that had
    /// to overwrite a racing one.
    fn advance_tcp(
        &self,
        tcp: &TcpShared,
        dir: Direction,
        hdr: &crate::packet::TcpHdr,
    ) -> TcpVerdict {
        let (v, contended) = tcp.advance(dir, hdr);
        if contended {
            bump(&self.stats.tcp_contended);
        }
        v
    }

    /// Find or create the flow's TCP state and advance it by this
    /// segment. Returns the state, whether the flow just closed, and
    /// whether this segment created it.
    fn track_tcp(
        &self,
        dir: Direction,
        key: FlowId,
        hdr: &crate::packet::TcpHdr,
        now: Moment,
    ) -> Result<(SharedTcp, bool, bool), DropReason> {
        let mut tcp = self.tcp.lock();
        if let Some(e) = tcp.hit(&key, now) {
            let shared = Arc::clone(&e.value.0);
            let verdict = self.advance_tcp(&shared, dir, hdr);
            return match verdict {
                TcpVerdict::Ok(_) => Ok((shared, false, false)),
                TcpVerdict::Unexpected(_) => {
                    bump(&self.stats.tcp_error);
                    Ok((shared, false, false))
                }
                TcpVerdict::Closed => Ok((shared, true, false)),
                TcpVerdict::NewFlow => {
                    shared.restart(dir, hdr);
                    Ok((shared, false, false))
                }
            };
        }
        let shared = Arc::new(TcpShared::new(key, TcpFlow::new(dir, hdr)));
        tcp.insert(key, TcpEntry(Arc::clone(&shared)), now)
            .map_err(|_| DropReason::TableFull { table: "tcp" })?;
        Ok((shared, false, true))
    }

    /// One layer's decision for a packet being classified.
    #[allow(clippy::too_many_arguments)]
    fn run_layer(
        &self,
        (idx, layer): (usize, &Layer),
        rules: &LayerRules,
        dir: Direction,
        pkt: &Packet,
        view: &Headers,
        cur: Option<FlowId>,
        meta: &mut Meta,
        now: Moment,
        children: &mut Children,
        created: &mut Created,
    ) -> Result<Step, DropReason> {
        // A layer that stores decisions is locked once for the lookup and,
        // on a miss, held through the decision for its new pair.
        let mut lft = match cur {
            Some(_) if layer.stateful_seen.load(Ordering::Acquire) => Some(layer.lft.lock()),
            _ => None,
        };
        let mut previous = None;
        if let (Some(f), Some(pair)) = (cur, lft.as_deref_mut()) {
            match self.lft_decision(layer, pair, rules, dir, pkt, view, &f, meta, now, children) {
                Remembered::Decided(xf) => return Ok(xf.map_or(Step::Allow, Step::Pass)),
                Remembered::Undecided { previous: p } => previous = p,
            }
        }
        let ctx = MatchCtx { dir, hdrs: view, mblk: pkt.mblk(), meta };
        // Borrowed from the rules, which the walk holds: no reference
        // counting per layer.
        let default;
        let (action, rule) = match rules.table(dir).find(&ctx) {
            Some(r) => (&r.spec.action, Some(r.id)),
            None => {
                default = Action::from(rules.default(dir));
                (&default, None)
            }
        };
        // The generation this decision was made under: a stateful entry
        // must carry it (not the one current when it is stored), or a
        // rule change made meanwhile would never re-check it.
        let generation = rules.generation;
        let counter = match (dir, rule.is_some()) {
            (Direction::In, true) => &layer.stats.in_rule_match,
            (Direction::In, false) => &layer.stats.in_default,
            (Direction::Out, true) => &layer.stats.out_rule_match,
            (Direction::Out, false) => &layer.stats.out_default,
        };
        bump(counter);
        let decision = rule.map_or(Decision::Default, Decision::Rule);
        trace!(
            self,
            TraceEvent::Layer { layer: layer.name, dir, decision, action: kind_of(action) }
        );
        let act_err = |error| {
            bump(&layer.stats.action_errors);
            DropReason::Action { layer: layer.name, error }
        };
        let need_flow = || {
            cur.ok_or(DropReason::Action {
                layer: layer.name,
                error: super::action::ActionError::NotApplicable("no IP flow"),
            })
        };
        match action {
            Action::Allow => Ok(Step::Allow),
            Action::Deny => {
                bump(if rule.is_some() {
                    &layer.stats.denied_rule
                } else {
                    &layer.stats.denied_default
                });
                Err(DropReason::Denied { layer: layer.name, rule })
            }
            Action::StatefulAllow => {
                if let Some(f) = cur {
                    self.insert_pair(
                        (idx, layer),
                        &mut lft,
                        dir,
                        f,
                        f.mirror(),
                        LftKind::Allow,
                        rule,
                        generation,
                        now,
                        children,
                        created,
                    )?;
                }
                Ok(Step::Allow)
            }
            Action::Static(a) => {
                let f = need_flow()?;
                a.gen_ht(dir, &f, meta).map(Step::Pass).map_err(act_err)
            }
            Action::Stateful(a) => {
                let f = need_flow()?;
                let desc = a.gen_desc(dir, &f, meta, previous.as_ref()).map_err(act_err)?;
                let xf = desc.gen_ht(dir);
                let reverse = xf.apply_to_flow(&f).mirror();
                self.insert_pair(
                    (idx, layer),
                    &mut lft,
                    dir,
                    f,
                    reverse,
                    LftKind::Stateful(desc),
                    rule,
                    generation,
                    now,
                    children,
                    created,
                )?;
                Ok(Step::Pass(xf))
            }
            Action::Hairpin(a) => {
                let ctx = MatchCtx { dir, hdrs: view, mblk: pkt.mblk(), meta };
                a.gen_packet(&ctx).map(Step::Hairpin).map_err(act_err)
            }
            Action::Meta(a) => {
                a.mod_meta(dir, cur.as_ref(), meta).map_err(act_err)?;
                Ok(Step::Allow)
            }
            Action::HandlePacket(h) => Ok(Step::Handle(Arc::clone(h))),
        }
    }

    /// The layer's remembered decision for a flow, re-checked against the
    /// rules when they changed softly since it was made.
    #[allow(clippy::too_many_arguments)]
    fn lft_decision(
        &self,
        layer: &Layer,
        pair: &mut LftPair,
        rules: &LayerRules,
        dir: Direction,
        pkt: &Packet,
        view: &Headers,
        f: &FlowId,
        meta: &Meta,
        now: Moment,
        children: &mut Children,
    ) -> Remembered {
        let lft = pair.table_mut(dir);
        let Some(e) = lft.hit(f, now) else {
            return Remembered::Undecided { previous: None };
        };
        let entry = &mut e.value;
        let mut keep = !entry.token.revoked();
        if keep && entry.generation != rules.generation {
            if !layer.keep_flows {
                keep = if entry.origin == dir {
                    // Would the rules still decide this flow the same way?
                    let ctx = MatchCtx { dir, hdrs: view, mblk: pkt.mblk(), meta };
                    rules.table(dir).peek(&ctx).map(|r| r.id) == entry.rule()
                } else {
                    // A reply: the rules decide the other direction, so
                    // the decision's state says whether it still holds.
                    entry.desc().is_none_or(|d| d.valid())
                };
                if !keep {
                    entry.token.revoke();
                }
            }
            entry.generation = rules.generation;
        }
        if !keep {
            // The state lives on while the pair's other entry (or a UFT
            // entry) holds it; the layer's action may keep it.
            let previous = lft.remove(f).and_then(|e| e.desc().cloned());
            return Remembered::Undecided { previous };
        }
        children.push(LftChild::new(&entry.token));
        let (xf, kind) = match entry.desc() {
            None => (None, ActionKind::StatefulAllow),
            Some(d) => (Some(d.gen_ht(dir)), ActionKind::Stateful),
        };
        bump(match dir {
            Direction::In => &layer.stats.in_lft_hit,
            Direction::Out => &layer.stats.out_lft_hit,
        });
        trace!(
            self,
            TraceEvent::Layer {
                layer: layer.name,
                dir,
                decision: Decision::FlowTable,
                action: kind
            }
        );
        Remembered::Decided(xf)
    }

    /// Store a stateful decision for the flow (`f`, seen in `dir`) and its
    /// replies (`reverse`, seen in the other direction), under the layer's
    /// LFT mutex (`lft`: held already, or taken here and left held).
    #[allow(clippy::too_many_arguments)]
    fn insert_pair<'a>(
        &self,
        (idx, layer): (usize, &'a Layer),
        lft: &mut Option<KMutexGuard<'a, LftPair>>,
        dir: Direction,
        f: FlowId,
        reverse: FlowId,
        kind: LftKind,
        rule: Option<RuleId>,
        generation: u64,
        now: Moment,
        children: &mut Children,
        created: &mut Created,
    ) -> Result<(), DropReason> {
        layer.stateful_seen.store(true, Ordering::Release);
        // The token moves into the reply entry: one reference count
        // increment each for the flow's entry and the UFT entry's hold.
        let token = Arc::new(LftToken::new(kind));
        let child = LftChild::new(&token);
        let entry = |token| LftEntry::new(rule, generation, token, f.proto, dir);
        let full = || {
            bump(&layer.stats.lft_full);
            DropReason::TableFull { table: layer.name }
        };
        let pair = lft.get_or_insert_with(|| layer.lft.lock());
        pair.table_mut(dir).insert(f, entry(Arc::clone(&token)), now).map_err(|_| full())?;
        let replies = pair.table_mut(dir.reverse()).insert(reverse, entry(token), now).map(|_| ());
        if replies.is_err() {
            // Never half a pair: the flow's own entry alone would pass
            // its later packets while its replies meet the rules.
            pair.table_mut(dir).remove(&f);
            return Err(full());
        }
        children.push(child);
        created.push((idx, dir, f, reverse));
        Ok(())
    }

    /// Remove every flow idle past its class's timeout (a UFT entry's last
    /// hit is read from the entry; an LFT entry with live UFT children,
    /// and a TCP connection a UFT entry shares, do not expire), and every
    /// entry of a withdrawn decision (an LFT pair whose re-check refused
    /// it, and UFT entries built from it), releasing their resources.
    /// Returns how many entries went.
    pub fn expire(&self, now: Moment) -> usize {
        let policy = self.expiry;
        let mut n = 0;
        // Every pass goes a slice at a time, each slice under its own hold
        // of the table's lock (see the module's limits).
        for (dir, name) in [(Direction::In, "uft_in"), (Direction::Out, "uft_out")] {
            let uft = self.uft(dir);
            // Its own statement: the read hold ends before the slices.
            let max = uft.read().max_slices();
            n += in_slices(max, |at| {
                uft.write().retain_slice(at, |id, e| {
                    // An entry built from a withdrawn decision is dead
                    // weight.
                    let keep = !e.is_expired(now, &policy) && !e.value.withdrawn();
                    if !keep {
                        trace!(self, TraceEvent::FlowExpired { table: name, flow: *id });
                    }
                    keep
                })
            });
        }
        for l in &self.layers {
            for dir in [Direction::In, Direction::Out] {
                let max = l.lft.lock().table(dir).max_slices();
                n += in_slices(max, |at| {
                    l.lft.lock().table_mut(dir).retain_slice(at, |id, e| {
                        // A withdrawn decision (its pair's other half was
                        // re-checked and refused) goes now, with its
                        // resource.
                        let keep = !e.value.token.revoked()
                            && (e.value.has_children() || !e.is_expired(now, &policy));
                        if !keep {
                            trace!(self, TraceEvent::FlowExpired { table: l.name, flow: *id });
                        }
                        keep
                    })
                });
            }
        }
        // A connection's state lives on while a UFT entry shares it (UFT
        // hits don't touch the TCP table).
        let max = self.tcp.lock().max_slices();
        n += in_slices(max, |at| {
            self.tcp.lock().retain_slice(at, |id, e| {
                let keep = Arc::strong_count(&e.value.0) > 1 || !e.is_expired(now, &policy);
                if !keep {
                    trace!(self, TraceEvent::FlowExpired { table: "tcp", flow: *id });
                }
                keep
            })
        });
        self.stats.expired.fetch_add(n as u64, Ordering::Relaxed);
        self.relieve_pressure();
        n
    }

    /// Evict from every table fuller than [`PRESSURE_PERCENT`] of its
    /// limit, down towards that mark (at most one eviction batch per table
    /// per call): closing and misbehaving TCP flows go first, established
    /// ones last (see [`EvictionRank`]). Runs from [`Port::expire`], off
    /// the per-packet path, which meanwhile refuses new flows of a full
    /// table as a counted drop. Returns how many entries were evicted.
    ///
    /// Each table is scanned a slice at a time (the unified flow tables
    /// under their read lock, so packets of known flows keep flowing),
    /// then the chosen entries are removed under one hold of the lock.
    pub fn relieve_pressure(&self) -> usize {
        fn excess<V: FlowValue>(t: &FlowTable<V>) -> Option<(usize, usize)> {
            let mark = (t.limit() as usize).saturating_mul(PRESSURE_PERCENT) / 100;
            let over = t.len().saturating_sub(mark);
            (over > 0).then(|| (over, t.max_slices()))
        }
        let mut n = 0;
        for dir in [Direction::In, Direction::Out] {
            let uft = self.uft(dir);
            let Some((over, max)) = excess(&uft.read()) else { continue };
            let mut chosen = EvictionChoice::new(over);
            scan_in_slices(max, |at| uft.read().evict_scan(at, &mut chosen));
            n += uft.write().evict_chosen(&chosen, |_, _| {});
        }
        for l in &self.layers {
            for dir in [Direction::In, Direction::Out] {
                let Some((over, max)) = excess(l.lft.lock().table(dir)) else { continue };
                let mut chosen = EvictionChoice::new(over);
                scan_in_slices(max, |at| l.lft.lock().table(dir).evict_scan(at, &mut chosen));
                n += l.lft.lock().table_mut(dir).evict_chosen(&chosen, |_, _| {});
            }
        }
        // Its own statement: a guard in an `if let` condition would live
        // through the block, which takes the lock again.
        let tcp = excess(&self.tcp.lock());
        if let Some((over, max)) = tcp {
            let mut chosen = EvictionChoice::new(over);
            scan_in_slices(max, |at| self.tcp.lock().evict_scan(at, &mut chosen));
            n += self.tcp.lock().evict_chosen(&chosen, |_, _| {});
        }
        self.stats.evictions.fetch_add(n as u64, Ordering::Relaxed);
        n
    }
}

/// How far apart two hits of a UFT entry must be for the later one to be
/// recorded as its last hit: expiry counts idle time in seconds.
const LAST_HIT_GRAIN_NS: u64 = 1_000_000;

/// A flow table fuller than this share of its limit (in percent) is
/// relieved by eviction when the port expires flows.
pub const PRESSURE_PERCENT: usize = 90;

fn kind_of(a: &Action) -> ActionKind {
    match a {
        Action::Allow => ActionKind::Allow,
        Action::Deny => ActionKind::Deny,
        Action::StatefulAllow => ActionKind::StatefulAllow,
        Action::Static(_) => ActionKind::Static,
        Action::Stateful(_) => ActionKind::Stateful,
        Action::Hairpin(_) => ActionKind::Hairpin,
        Action::Meta(_) => ActionKind::Meta,
        Action::HandlePacket(_) => ActionKind::HandlePacket,
    }
}
