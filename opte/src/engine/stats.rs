//! Port and layer statistics: counters bumped on the packet path with
//! relaxed atomics (no locks), and plain snapshots for the dump API.
//!
//! Every drop has a reason ([`DropReason`]) and every reason a counter.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use super::action::ActionError;
use super::rule::RuleId;
use super::transform::TransformError;
use crate::packet::ParseError;

/// Why a port dropped a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    /// The port is not running (ready, paused).
    NotRunning,
    /// The packet could not be parsed.
    Parse(ParseError),
    /// A layer denied it: by a rule, or by its default action (`None`).
    Denied { layer: &'static str, rule: Option<RuleId> },
    /// A flow table was full.
    TableFull { table: &'static str },
    /// An action could not act (for example no NAT port left).
    Action { layer: &'static str, error: ActionError },
    /// A packet hook dropped it.
    Handled { layer: &'static str, why: &'static str },
    /// The header transformation could not be applied.
    Transform(TransformError),
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotRunning => f.write_str("port not running"),
            Self::Parse(e) => write!(f, "parse error: {e}"),
            Self::Denied { layer, rule: Some(r) } => write!(f, "denied by layer {layer} rule {r}"),
            Self::Denied { layer, rule: None } => write!(f, "denied by layer {layer} default"),
            Self::TableFull { table } => write!(f, "flow table {table} full"),
            Self::Action { layer, error } => write!(f, "layer {layer}: {error}"),
            Self::Handled { layer, why } => write!(f, "layer {layer}: {why}"),
            Self::Transform(e) => write!(f, "transform: {e}"),
        }
    }
}

/// A set of counters (atomics) and its snapshot type. Fields listed
/// under `derived` exist only in the snapshot: computed from the others
/// when it is read (so the data path bumps one counter fewer), and 0 in
/// what `read` returns.
macro_rules! counters {
    (
        $(#[$m:meta])* $name:ident, $snap:ident { $($(#[$fm:meta])* $f:ident),* $(,)? }
        $(derived { $($(#[$dm:meta])* $d:ident),* $(,)? })?
    ) => {
        $(#[$m])*
        #[derive(Debug, Default)]
        pub struct $name {
            $($(#[$fm])* pub $f: AtomicU64,)*
        }

        /// A snapshot of the counters.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $snap {
            $($(#[$fm])* pub $f: u64,)*
            $($($(#[$dm])* pub $d: u64,)*)?
        }

        impl $name {
            /// Read every counter (derived fields are 0).
            // A set without derived fields fills the snapshot already.
            #[allow(clippy::needless_update)]
            fn read(&self) -> $snap {
                $snap { $($f: self.$f.load(Ordering::Relaxed),)* ..$snap::default() }
            }
        }
    };
}

counters!(
    /// Per-port counters.
    PortStats, PortStatsSnapshot {
        /// Packets processed inbound.
        in_processed,
        /// Packets processed outbound.
        out_processed,
        /// Packets answered with a hairpin reply.
        hairpin,
        /// Packets that went through the layers.
        uft_miss,
        /// Unified flow table entries found stale and rebuilt.
        uft_invalidated,
        /// Drops: port not running.
        drop_not_running,
        /// Drops: parse errors.
        drop_parse,
        /// Drops: denied by a rule.
        drop_denied_rule,
        /// Drops: denied by a layer default.
        drop_denied_default,
        /// Drops: a flow table was full.
        drop_table_full,
        /// Drops: an action's resource pool was exhausted (no NAT port
        /// left).
        drop_exhausted,
        /// Drops: any other action failure (not applicable, metadata
        /// full, a reply that could not be built).
        drop_action,
        /// Drops: a packet hook dropped it.
        drop_handled,
        /// Drops: the transformation could not be applied.
        drop_transform,
        /// TCP segments that did not fit the flow's state (passed).
        tcp_error,
        /// TCP segments whose connection update lost the race to another
        /// CPU's every time it tried and was stored over it.
        tcp_contended,
        /// TCP flows closed (FIN handshake or RST).
        tcp_closed,
        /// Flow table entries evicted under pressure.
        evictions,
        /// Flow table entries expired.
        expired,
    }
    derived {
        /// Packets passed (possibly modified): every processed packet that
        /// was neither answered (hairpin) nor dropped.
        modified,
        /// Packets that hit the unified flow table: every processed packet
        /// of a running port that did not go through the layers.
        uft_hit,
    }
);

counters!(
    /// Per-layer counters.
    LayerStats, LayerStatsSnapshot {
        /// Inbound packets this layer decided from its flow table.
        in_lft_hit,
        /// Outbound packets this layer decided from its flow table.
        out_lft_hit,
        /// Inbound packets decided by a rule.
        in_rule_match,
        /// Outbound packets decided by a rule.
        out_rule_match,
        /// Inbound packets decided by the default action.
        in_default,
        /// Outbound packets decided by the default action.
        out_default,
        /// Packets denied by a rule.
        denied_rule,
        /// Packets denied by the default action.
        denied_default,
        /// Flow entries refused because the layer flow table was full.
        lft_full,
        /// Action errors.
        action_errors,
    }
);

impl PortStats {
    /// Read every counter. Counters are read one by one while packets
    /// may be counted: a derived count can lag a packet in flight.
    pub fn snapshot(&self) -> PortStatsSnapshot {
        let mut s = self.read();
        let drops = [
            s.drop_not_running,
            s.drop_parse,
            s.drop_denied_rule,
            s.drop_denied_default,
            s.drop_table_full,
            s.drop_exhausted,
            s.drop_action,
            s.drop_handled,
            s.drop_transform,
        ];
        let processed = s.in_processed.saturating_add(s.out_processed);
        let ended = drops.iter().fold(s.hairpin, |a, d| a.saturating_add(*d));
        s.modified = processed.saturating_sub(ended);
        // Parse errors and a stopped port end a packet before the UFT;
        // every other packet is a hit or a miss.
        s.uft_hit = processed
            .saturating_sub(s.drop_parse)
            .saturating_sub(s.drop_not_running)
            .saturating_sub(s.uft_miss);
        s
    }

    /// Count a drop under its reason's counter.
    pub fn count_drop(&self, r: &DropReason) {
        let c = match r {
            DropReason::NotRunning => &self.drop_not_running,
            DropReason::Parse(_) => &self.drop_parse,
            DropReason::Denied { rule: Some(_), .. } => &self.drop_denied_rule,
            DropReason::Denied { rule: None, .. } => &self.drop_denied_default,
            DropReason::TableFull { .. } => &self.drop_table_full,
            DropReason::Action { error: ActionError::Exhausted(_), .. } => &self.drop_exhausted,
            DropReason::Action { .. } => &self.drop_action,
            DropReason::Handled { .. } => &self.drop_handled,
            DropReason::Transform(_) => &self.drop_transform,
        };
        bump(c);
    }
}

/// Add one to a counter.
#[inline(always)]
pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl LayerStats {
    /// Read every counter.
    pub fn snapshot(&self) -> LayerStatsSnapshot {
        self.read()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::HeaderKind;

    /// Every processed packet is a drop, a hairpin or a pass: a drop of
    /// any reason is not counted as passed.
    #[test]
    fn modified_is_what_was_neither_dropped_nor_answered() {
        let reasons = [
            DropReason::NotRunning,
            DropReason::Parse(ParseError::Truncated(HeaderKind::Ether)),
            DropReason::Denied { layer: "l", rule: Some(RuleId(1)) },
            DropReason::Denied { layer: "l", rule: None },
            DropReason::TableFull { table: "t" },
            DropReason::Action { layer: "l", error: ActionError::Exhausted("ports") },
            DropReason::Action { layer: "l", error: ActionError::MetaFull },
            DropReason::Handled { layer: "l", why: "w" },
            DropReason::Transform(TransformError::WrongFamily),
        ];
        for r in &reasons {
            let s = PortStats::default();
            bump(&s.in_processed);
            s.count_drop(r);
            assert_eq!(s.snapshot().modified, 0, "{r}");
        }
        let s = PortStats::default();
        for _ in 0..5 {
            bump(&s.out_processed);
        }
        bump(&s.in_processed);
        bump(&s.hairpin);
        s.count_drop(&DropReason::NotRunning);
        assert_eq!(s.snapshot().modified, 4);
        // Of those six, one was refused before the UFT (the port was not
        // running) and two went through the layers (one was the hairpin).
        bump(&s.uft_miss);
        bump(&s.uft_miss);
        assert_eq!(s.snapshot().uft_hit, 3);
    }
}
