//! The engine: ports, layers, rules, actions and flow tables on top of the
//! packet layer.
//!
//! This part holds the vocabulary every engine module shares: which way a
//! packet travels ([`Direction`]), the time the engine is told
//! ([`Moment`]), and the key of every flow table ([`FlowId`]).

pub mod action;
pub mod explain;
pub mod flow;
pub mod flow_table;
pub mod layer;
pub mod meta;
pub mod port;
pub mod predicate;
pub mod rule;
pub mod stats;
pub mod tcp_state;
pub mod trace;
pub mod transform;

pub use flow::FlowId;

/// Which way a packet travels through a port (defined in `opte-api`,
/// since commands name directions too).
pub use opte_api::Direction;

/// A point in time in nanoseconds on a monotonic clock (`gethrtime()` in
/// the kernel). The engine never reads a clock itself: callers pass the
/// time in, so tests control it exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Moment(pub u64);

impl Moment {
    /// Nanoseconds from `earlier` to `self` (0 if `earlier` is later).
    pub const fn since(self, earlier: Moment) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// This moment plus `ns` nanoseconds (saturating).
    pub const fn plus(self, ns: u64) -> Moment {
        Moment(self.0.saturating_add(ns))
    }
}

/// Nanoseconds in a second, for writing timeouts.
pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// How long a flow may sit idle before it expires depends on what it is;
/// each flow table entry reports its class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExpiryClass {
    /// A TCP flow that has not finished its handshake.
    TcpIncipient,
    /// An established TCP flow.
    TcpEstablished,
    /// A TCP flow that is closing (FIN or RST seen) or in TIME_WAIT.
    TcpClosing,
    /// A UDP flow.
    Udp,
    /// An ICMP or ICMPv6 flow (echo id or error).
    Icmp,
    /// Any other IP protocol.
    Other,
}
