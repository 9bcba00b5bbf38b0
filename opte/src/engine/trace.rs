//! The trace hook: an observer a port calls at each step of a packet's
//! path, so userland tests (and `opte-sim`, `opteadm trace`) can see
//! exactly which layers and rules decided a packet's fate.
//!
//! Calls are made through [`trace!`](crate::engine::trace) only when the
//! `trace` cargo feature is on (the default in userland); the kernel build
//! turns it off and every call compiles away (the driver has SDT probes
//! instead).

use core::fmt;

use super::Direction;
use super::flow::FlowId;
use super::rule::RuleId;

/// What decided a packet in one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A rule matched.
    Rule(RuleId),
    /// No rule matched: the layer's default action.
    Default,
    /// The layer's flow table already held the flow's decision.
    FlowTable,
}

/// The kind of action taken (without its parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    Allow,
    Deny,
    StatefulAllow,
    Static,
    Stateful,
    Hairpin,
    Meta,
    HandlePacket,
}

/// How a port finished with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Modified,
    Dropped,
    Hairpin,
}

/// One step of a packet's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceEvent<'a> {
    /// The packet entered the port.
    PortEntry { port: &'a str, dir: Direction, flow: Option<FlowId> },
    /// A layer decided.
    Layer { layer: &'a str, dir: Direction, decision: Decision, action: ActionKind },
    /// The unified flow table held the flow: no layer was visited.
    UftHit { dir: Direction, flow: FlowId },
    /// A unified flow table entry was found stale (older epoch, or a TCP
    /// flow restarted) and the packet goes through the layers again.
    UftInvalidated { dir: Direction, flow: FlowId },
    /// A flow expired from a table.
    FlowExpired { table: &'a str, flow: FlowId },
    /// The packet left the port.
    PortReturn { port: &'a str, dir: Direction, outcome: Outcome },
}

/// One line per event, the form tests and tools print:
/// `entry Out`, `firewall: rule 7 StatefulAllow`, `nat: lft Stateful`,
/// `firewall: default Deny`, `uft hit`, `uft invalidated`,
/// `expired uft_out`, `return Modified`.
impl fmt::Display for TraceEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PortEntry { dir, .. } => write!(f, "entry {dir:?}"),
            Self::Layer { layer, decision, action, .. } => {
                write!(f, "{layer}: ")?;
                match decision {
                    Decision::Rule(r) => write!(f, "rule {r}")?,
                    Decision::Default => f.write_str("default")?,
                    Decision::FlowTable => f.write_str("lft")?,
                }
                write!(f, " {action:?}")
            }
            Self::UftHit { .. } => f.write_str("uft hit"),
            Self::UftInvalidated { .. } => f.write_str("uft invalidated"),
            Self::FlowExpired { table, .. } => write!(f, "expired {table}"),
            Self::PortReturn { outcome, .. } => write!(f, "return {outcome:?}"),
        }
    }
}

/// An observer of trace events.
pub trait Tracer: Send + Sync {
    fn event(&self, ev: &TraceEvent<'_>);
}
