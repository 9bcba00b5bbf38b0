//! [`Recorder`]: the engine's trace hook on one simulated port, keeping
//! each event as an owned [`TraceStep`] until the simulator takes them
//! for a packet's report.
//!
//! The engine calls the tracer while it holds its own locks, so the
//! recorder only copies the event; anything that needs the port (the
//! rule's description from [`opte::engine::port::Port::dump_layer`]) is
//! looked up afterwards, in [`describe_rules`].

use std::sync::Mutex;

use opte::engine::explain::Explanation;
use opte::engine::port::Port;
use opte::engine::trace::{ActionKind, Decision, Outcome, TraceEvent, Tracer};
use opte::engine::transform::{EtherMod, HdrTransform, IpMod, OuterOp, UlpMod};
use serde::Serialize;

/// Most steps kept between two takes (a packet visits each layer once;
/// expiry may report many flows). Past it, steps are counted, not kept.
pub const MAX_STEPS: usize = 4096;

/// One step of a packet's path through a port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum TraceStep {
    /// The packet entered the port; `flow` is its 5-tuple, if it has one.
    Entry { dir: String, flow: Option<String> },
    /// A layer decided.
    Layer {
        layer: String,
        dir: String,
        /// `rule N`, `default` or `flow table` (an earlier packet's
        /// decision, kept in the layer's flow table).
        decision: String,
        /// The rule's id, when a rule decided.
        #[serde(skip_serializing_if = "Option::is_none")]
        rule: Option<u64>,
        /// The kind of action (`Allow`, `Static`, `Hairpin`, ...).
        action: String,
        /// The rule's priority and action, as the layer dump shows them
        /// (filled in after the packet; absent for defaults and flow
        /// table hits).
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        /// The header changes this layer contributed, from the port's
        /// explanation of the packet (absent when none).
        #[serde(skip_serializing_if = "Option::is_none")]
        xform: Option<String>,
    },
    /// The unified flow table held the flow: no layer was visited, the
    /// cached transformation was applied.
    UftHit { dir: String, flow: String },
    /// A cached flow was stale (rules or mappings changed) and the packet
    /// walks the layers again.
    UftInvalidated { dir: String, flow: String },
    /// A flow expired from a table.
    Expired { table: String, flow: String },
    /// The packet left the port.
    Return { dir: String, outcome: String },
    /// Steps past [`MAX_STEPS`] that were not kept.
    Truncated { count: usize },
}

/// The trace hook of one port.
#[derive(Default)]
pub struct Recorder {
    steps: Mutex<(Vec<TraceStep>, usize)>,
}

impl Tracer for Recorder {
    fn event(&self, ev: &TraceEvent<'_>) {
        let step = match ev {
            TraceEvent::PortEntry { dir, flow, .. } => {
                TraceStep::Entry { dir: dir.to_string(), flow: flow.map(|f| f.to_string()) }
            }
            TraceEvent::Layer { layer, dir, decision, action } => {
                let (decision, rule) = match decision {
                    Decision::Rule(r) => (format!("rule {r}"), Some(r.0)),
                    Decision::Default => (String::from("default"), None),
                    Decision::FlowTable => (String::from("flow table"), None),
                };
                TraceStep::Layer {
                    layer: layer.to_string(),
                    dir: dir.to_string(),
                    decision,
                    rule,
                    action: action_name(*action).to_string(),
                    detail: None,
                    xform: None,
                }
            }
            TraceEvent::UftHit { dir, flow } => {
                TraceStep::UftHit { dir: dir.to_string(), flow: flow.to_string() }
            }
            TraceEvent::UftInvalidated { dir, flow } => {
                TraceStep::UftInvalidated { dir: dir.to_string(), flow: flow.to_string() }
            }
            TraceEvent::FlowExpired { table, flow } => {
                TraceStep::Expired { table: table.to_string(), flow: flow.to_string() }
            }
            TraceEvent::PortReturn { dir, outcome, .. } => TraceStep::Return {
                dir: dir.to_string(),
                outcome: match outcome {
                    Outcome::Modified => "pass",
                    Outcome::Dropped => "drop",
                    Outcome::Hairpin => "hairpin",
                }
                .to_string(),
            },
        };
        // A poisoned lock only means another thread panicked mid-push;
        // the list is still usable.
        let mut g = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        if g.0.len() < MAX_STEPS {
            g.0.push(step);
        } else {
            g.1 += 1;
        }
    }
}

impl Recorder {
    /// The steps recorded since the last take.
    pub fn take(&self) -> Vec<TraceStep> {
        let mut g = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        let (mut steps, dropped) = std::mem::take(&mut *g);
        if dropped > 0 {
            steps.push(TraceStep::Truncated { count: dropped });
        }
        steps
    }
}

fn action_name(a: ActionKind) -> &'static str {
    match a {
        ActionKind::Allow => "allow",
        ActionKind::Deny => "deny",
        ActionKind::StatefulAllow => "stateful-allow",
        ActionKind::Static => "static",
        ActionKind::Stateful => "stateful",
        ActionKind::Hairpin => "hairpin",
        ActionKind::Meta => "meta",
        ActionKind::HandlePacket => "handle-packet",
    }
}

/// Fill in each rule step's `detail` (priority and action) from the
/// port's layer dumps.
pub fn describe_rules(port: &Port, steps: &mut [TraceStep]) {
    for s in steps {
        let TraceStep::Layer { layer, dir, rule: Some(id), detail, .. } = s else { continue };
        let Ok(dump) = port.dump_layer(layer) else { continue };
        let rules = if dir == "in" { &dump.rules_in } else { &dump.rules_out };
        if let Some((_, prio, action, _)) = rules.iter().find(|(r, ..)| r.0 == *id) {
            *detail = Some(format!("priority {prio}: {action}"));
        }
    }
}

/// Attach each layer's header changes from `ex` (the port's dry run of
/// the same packet) to the layer steps, matching layers in order.
pub fn attach_xforms(ex: &Explanation, steps: &mut [TraceStep]) {
    let mut explained = ex.steps.iter();
    for s in steps {
        let TraceStep::Layer { layer, xform, .. } = s else { continue };
        let Some(e) = explained.next() else { return };
        if e.layer != layer.as_str() {
            // The dry run and the real run disagree (the packet made
            // state the dry run could not see): show nothing rather than
            // something wrong.
            return;
        }
        *xform = describe_xform(&e.xform);
    }
}

/// A header transformation in words (`None` for the identity).
pub fn describe_xform(x: &HdrTransform) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    match &x.outer {
        OuterOp::Keep => {}
        OuterOp::Modify(m) => {
            let mut p = Vec::new();
            if let Some(a) = m.ip_src {
                p.push(format!("src {a}"));
            }
            if let Some(a) = m.ip_dst {
                p.push(format!("dst {a}"));
            }
            if let Some(v) = m.vni {
                p.push(format!("vni {v}"));
            }
            parts.push(format!("outer: {}", p.join(" ")));
        }
        OuterOp::Pop => parts.push(String::from("decapsulate")),
        OuterOp::Push(e) | OuterOp::PopPush(e) => {
            let pop = if matches!(x.outer, OuterOp::PopPush(_)) { "decapsulate, " } else { "" };
            parts.push(format!(
                "{pop}encapsulate {} > {} vni {}{}",
                e.ip6.src,
                e.ip6.dst,
                e.geneve.vni,
                if e.geneve.options.external { " external" } else { "" }
            ));
        }
    }
    if let Some(e) = ether_text(&x.inner_eth) {
        parts.push(e);
    }
    if let Some(ip) = &x.inner_ip {
        parts.push(ip_text(ip));
    }
    if let Some(u) = ulp_text(&x.inner_ulp) {
        parts.push(u);
    }
    if let Some(b) = &x.body {
        let mut q = Vec::new();
        if let Some(ip) = &b.ip {
            q.push(ip_text(ip));
        }
        if let Some(u) = ulp_text(&b.ulp) {
            q.push(u);
        }
        if !q.is_empty() {
            parts.push(format!("quoted packet: {}", q.join(", ")));
        }
    }
    if parts.is_empty() { None } else { Some(parts.join(", ")) }
}

fn ether_text(e: &EtherMod) -> Option<String> {
    match (e.src, e.dst) {
        (None, None) => None,
        (Some(s), None) => Some(format!("src MAC {s}")),
        (None, Some(d)) => Some(format!("dst MAC {d}")),
        (Some(s), Some(d)) => Some(format!("src MAC {s}, dst MAC {d}")),
    }
}

fn ip_text(ip: &IpMod) -> String {
    let (src, dst) = match ip {
        IpMod::V4 { src, dst } => (src.map(|a| a.to_string()), dst.map(|a| a.to_string())),
        IpMod::V6 { src, dst } => (src.map(|a| a.to_string()), dst.map(|a| a.to_string())),
    };
    let mut p = Vec::new();
    if let Some(s) = src {
        p.push(format!("src IP {s}"));
    }
    if let Some(d) = dst {
        p.push(format!("dst IP {d}"));
    }
    p.join(", ")
}

fn ulp_text(u: &UlpMod) -> Option<String> {
    let mut p = Vec::new();
    if let Some(s) = u.src_port {
        p.push(format!("src port {s}"));
    }
    if let Some(d) = u.dst_port {
        p.push(format!("dst port {d}"));
    }
    if let Some(i) = u.icmp_id {
        p.push(format!("ICMP id {i}"));
    }
    if p.is_empty() { None } else { Some(p.join(", ")) }
}
