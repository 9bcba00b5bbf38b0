//! What the simulator says about each injected packet: the events of its
//! path (each port it crossed, with the per-layer trace and the frame
//! before and after; each underlay hop; deliveries, internet exits,
//! answers) and its verdicts. [`PacketReport`] serializes to the `--json`
//! output; [`render_text`] writes the same for people.

use std::fmt::Write as _;

use serde::Serialize;

use crate::frame::FrameSummary;
use crate::recorder::TraceStep;

/// Everything that happened to one injected frame (and to the answer, if
/// one was asked for).
#[derive(Debug, Clone, Serialize)]
pub struct PacketReport {
    /// 1-based position among the injected frames.
    pub index: usize,
    /// Its label (the config's `name`, or `packet N`).
    pub name: String,
    /// Where it was injected (`HOST/PORT`, `HOST` or a boundary).
    pub at: String,
    /// Seconds since the start of the simulation.
    pub time: u64,
    /// Flows that expired before this packet because their idle time ran
    /// out (`time` moved forward).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expired: Vec<Expiry>,
    /// The injected frame.
    pub input: FrameSummary,
    /// What happened, in order.
    pub events: Vec<Event>,
    /// How each branch of the path ended.
    pub verdicts: Vec<Verdict>,
}

/// A flow that expired from one port's table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expiry {
    /// The port (`HOST/PORT`).
    pub port: String,
    /// The table (`uft_in`, `uft_out`, a layer, `tcp`).
    pub table: String,
    /// The flow that expired.
    pub flow: String,
}

/// One pass of a frame through a port.
#[derive(Debug, Clone, Serialize)]
pub struct PortPass {
    /// `HOST/PORT`.
    pub port: String,
    /// `out` (from the guest) or `in` (from the underlay).
    pub dir: String,
    /// The frame as it entered the port.
    pub before: FrameSummary,
    /// The engine's trace: entry, each layer's decision, UFT hits,
    /// return.
    pub steps: Vec<TraceStep>,
    /// `pass`, `hairpin` or `drop`.
    pub result: String,
    /// Why it was dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The frame that left the port (passed or hairpin reply).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<FrameSummary>,
}

/// One step of a packet's path through the simulated hosts.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A port processed the frame.
    Port(Box<PortPass>),
    /// A frame crossed the simulated underlay.
    Underlay { from: String, to: String, frame: FrameSummary },
    /// A frame reached a guest.
    Deliver {
        port: String,
        /// True for a reply the port made itself (ARP, DHCP, NDP, ping to
        /// the gateway).
        hairpin: bool,
        frame: FrameSummary,
    },
    /// A frame left to the internet through a boundary (the frame as the
    /// internet sees it, without the encapsulation).
    Internet { boundary: String, frame: FrameSummary },
    /// A frame from the internet entered at a boundary.
    FromInternet { boundary: String, to: String, frame: FrameSummary },
    /// The receiver answered (the injection asked for a reply).
    Answer { by: String, frame: FrameSummary },
    /// The receiver had no answer to give.
    NoAnswer { by: String, why: String },
    /// The frame was lost outside any port (no underlay route, no port
    /// for its VNI and MAC, hop limit).
    Lost { at: String, reason: String },
}

/// How one branch of a packet's path ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// Delivered to a guest.
    Delivered { port: String, answer: bool },
    /// Answered by a port itself; the reply went back to the sender.
    Hairpin { port: String, answer: bool },
    /// Left to the internet.
    Internet { boundary: String, answer: bool },
    /// Dropped by a port, with the engine's reason.
    Dropped { port: String, dir: String, reason: String, answer: bool },
    /// Lost outside any port.
    Lost { at: String, reason: String, answer: bool },
}

impl Verdict {
    /// True for the fate of an answer rather than of the injected frame.
    pub fn is_answer(&self) -> bool {
        match self {
            Self::Delivered { answer, .. }
            | Self::Hairpin { answer, .. }
            | Self::Internet { answer, .. }
            | Self::Dropped { answer, .. }
            | Self::Lost { answer, .. } => *answer,
        }
    }

    /// One line for people.
    pub fn text(&self) -> String {
        let s = match self {
            Self::Delivered { port, .. } => format!("DELIVERED to {port}"),
            Self::Hairpin { port, .. } => format!("ANSWERED by {port} (hairpin)"),
            Self::Internet { boundary, .. } => format!("TO INTERNET through {boundary}"),
            Self::Dropped { port, dir, reason, .. } => {
                format!("DROPPED by {port} ({dir}): {reason}")
            }
            Self::Lost { at, reason, .. } => format!("LOST at {at}: {reason}"),
        };
        if self.is_answer() { format!("answer {s}") } else { s }
    }
}

/// The whole run: every packet's report, and the capture files written.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// One report per injected frame, in order.
    pub packets: Vec<PacketReport>,
    /// Capture files written (with `--out`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pcaps: Vec<String>,
}

/// The reports as text: for each packet, its input, each event with the
/// layer trace indented under the port, and the verdicts.
pub fn render_text(run: &RunReport) -> String {
    let mut o = String::new();
    for p in &run.packets {
        let _ = writeln!(o, "#{} {} (at {}, t={}s)", p.index, p.name, p.at, p.time);
        render_expiry(&mut o, &p.expired);
        let _ = writeln!(o, "  input: {}", p.input);
        let mut last = Some(&p.input);
        for e in &p.events {
            last = render_event(&mut o, e, last);
        }
        for v in &p.verdicts {
            let _ = writeln!(o, "  => {}", v.text());
        }
        o.push('\n');
    }
    if !run.pcaps.is_empty() {
        let _ = writeln!(o, "captures written:");
        for f in &run.pcaps {
            let _ = writeln!(o, "  {f}");
        }
    }
    o
}

/// One line per port: how many entries of each table expired.
fn render_expiry(o: &mut String, expired: &[Expiry]) {
    let mut ports: Vec<(&str, Vec<(&str, usize)>)> = Vec::new();
    for e in expired {
        let at = match ports.iter().position(|(p, _)| *p == e.port) {
            Some(i) => i,
            None => {
                ports.push((&e.port, Vec::new()));
                ports.len() - 1
            }
        };
        let tables = &mut ports[at].1;
        match tables.iter_mut().find(|(t, _)| *t == e.table) {
            Some((_, n)) => *n += 1,
            None => tables.push((&e.table, 1)),
        }
    }
    for (port, tables) in ports {
        let list: Vec<String> = tables.iter().map(|(t, n)| format!("{t} {n}")).collect();
        let _ = writeln!(o, "  idle flows expired first on {port}: {}", list.join(", "));
    }
}

/// A frame, or nothing when it is the one just shown.
fn frame_text(f: &FrameSummary, last: Option<&FrameSummary>) -> String {
    if last == Some(f) { String::new() } else { format!(": {f}") }
}

/// Write one event; returns the frame last shown.
fn render_event<'a>(
    o: &mut String,
    e: &'a Event,
    last: Option<&'a FrameSummary>,
) -> Option<&'a FrameSummary> {
    match e {
        Event::Port(pass) => {
            let PortPass { port, dir, before, steps, result, reason, after } = &**pass;
            let _ = writeln!(o, "  {port} {dir}{}", frame_text(before, last));
            for s in steps {
                render_step(o, s);
            }
            match (result.as_str(), reason, after) {
                ("drop", Some(r), _) => {
                    let _ = writeln!(o, "    -> drop: {r}");
                }
                (r, _, Some(a)) => {
                    let _ = writeln!(o, "    -> {r}: {a}");
                    return Some(a);
                }
                (r, _, None) => {
                    let _ = writeln!(o, "    -> {r}");
                }
            }
            Some(before)
        }
        Event::Underlay { from, to, frame } => {
            let _ = writeln!(o, "  underlay {from} -> {to}{}", frame_text(frame, last));
            Some(frame)
        }
        Event::Deliver { port, hairpin, frame } => {
            let what = if *hairpin { "reply to guest" } else { "delivered to guest" };
            let _ = writeln!(o, "  {what} {port}{}", frame_text(frame, last));
            Some(frame)
        }
        Event::Internet { boundary, frame } => {
            let _ = writeln!(o, "  to the internet through {boundary}: {frame}");
            Some(frame)
        }
        Event::FromInternet { boundary, to, frame } => {
            let _ = writeln!(
                o,
                "  from the internet at {boundary} for {to}{}",
                frame_text(frame, last)
            );
            Some(frame)
        }
        Event::Answer { by, frame } => {
            let _ = writeln!(o, "  {by} answers: {frame}");
            Some(frame)
        }
        Event::NoAnswer { by, why } => {
            let _ = writeln!(o, "  {by} does not answer: {why}");
            last
        }
        Event::Lost { at, reason } => {
            let _ = writeln!(o, "  lost at {at}: {reason}");
            last
        }
    }
}

fn render_step(o: &mut String, s: &TraceStep) {
    let line = match s {
        TraceStep::Entry { flow: Some(f), .. } => format!("flow {f}"),
        TraceStep::Entry { flow: None, .. } => String::from("no flow (not IP)"),
        TraceStep::Layer { layer, decision, action, detail, xform, .. } => {
            let what = match detail {
                Some(d) => format!("{layer:<9} {decision} ({d})"),
                None => format!("{layer:<9} {decision}: {action}"),
            };
            match xform {
                Some(x) => format!("{what}\n      {:<9} => {x}", ""),
                None => what,
            }
        }
        TraceStep::UftHit { flow, .. } => format!("UFT hit: cached transformation for {flow}"),
        TraceStep::UftInvalidated { flow, .. } => {
            format!("UFT entry stale (rules or mappings changed) for {flow}")
        }
        TraceStep::Expired { table, flow } => format!("expired from {table}: {flow}"),
        TraceStep::Return { .. } => return,
        TraceStep::Truncated { count } => format!("... {count} more steps not kept"),
    };
    let _ = writeln!(o, "    {line}");
}
