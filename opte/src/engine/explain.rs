//! [`Port::explain`]: what the port would do with one packet, layer by
//! layer, without changing any flow state. The operator's `trace`
//! command and the simulator use it to answer "why did my packet
//! vanish?".
//!
//! The walk reads what [`Port::process`] reads (the unified flow table,
//! each layer's flow table and rules) but writes nothing: no flow table
//! entry is created, refreshed or removed, no TCP state advances, no
//! counter or rule hit count moves. A stateful action is asked for its
//! state as on a first packet and the state is dropped at once (so a
//! NAT port it took goes straight back to its pool; the pool's
//! allocation cursor may have moved on, so the next real flow can get a
//! different, equally valid, port than the one shown). A hairpin reply is
//! built and discarded. A packet hook runs on the packet it is given, so
//! callers pass a copy.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::action::{Action, HandleResult, LayerFlows};
use super::flow::FlowId;
use super::meta::Meta;
use super::port::{Port, PortState};
use super::predicate::MatchCtx;
use super::rule::RuleId;
use super::stats::DropReason;
use super::transform::HdrTransform;
use super::{Direction, trace::Decision};
use crate::packet::{Headers, Packet};

/// One layer's decision in an explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainStep {
    /// The layer's name.
    pub layer: &'static str,
    /// What decided: a rule, the default, or the layer's flow table.
    pub decision: Decision,
    /// The action, as the layer dump prints it (`stateful-allow`,
    /// `static(encap from fd77::a)`), or for a flow table decision what
    /// the stored state is.
    pub action: String,
    /// The header transformation this layer contributed (identity for
    /// none).
    pub xform: HdrTransform,
}

/// How an explained packet would end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExplainVerdict {
    /// It would pass with this (composed) transformation.
    Pass(HdrTransform),
    /// It would be answered with a reply of this many bytes.
    Hairpin(usize),
    /// It would be dropped for this reason.
    Drop(DropReason),
}

/// What a port would do with one packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub dir: Direction,
    /// The packet's flow, if it has one.
    pub flow: Option<FlowId>,
    /// True when a current unified flow table entry would handle it: no
    /// layer would be visited (`steps` is empty).
    pub uft_hit: bool,
    /// Each layer visited, in order.
    pub steps: Vec<ExplainStep>,
    pub verdict: ExplainVerdict,
}

impl Port {
    /// Explain what [`Port::process`] would do with `pkt` now, without
    /// changing any flow state (see the module documentation). On a pass,
    /// `pkt` is transformed as it would be.
    pub fn explain(&self, dir: Direction, pkt: &mut Packet) -> Explanation {
        let flow = FlowId::from_headers(pkt.headers());
        let mut ex = Explanation {
            dir,
            flow,
            uft_hit: false,
            steps: Vec::new(),
            verdict: ExplainVerdict::Drop(DropReason::NotRunning),
        };
        if self.state() != PortState::Running {
            return ex;
        }
        if let Some(f) = &flow
            && let Some(xf) = self.uft_current(dir, f)
        {
            ex.uft_hit = true;
            ex.verdict = match xf.apply(pkt) {
                Ok(()) => ExplainVerdict::Pass(xf),
                Err(e) => ExplainVerdict::Drop(DropReason::Transform(e)),
            };
            return ex;
        }
        ex.verdict = self.explain_walk(dir, pkt, flow, &mut ex.steps);
        ex
    }

    fn explain_walk(
        &self,
        dir: Direction,
        pkt: &mut Packet,
        flow: Option<FlowId>,
        steps: &mut Vec<ExplainStep>,
    ) -> ExplainVerdict {
        let mut view: Headers = *pkt.headers();
        let mut xform = HdrTransform::NONE;
        let mut meta = Meta::new();
        let mut cur = flow;
        let all_rules = self.rules.read();
        for (idx, layer) in self.layers_in_order(dir) {
            let Some(rules) = all_rules.get(idx) else { continue };
            let remembered = cur.and_then(|f| {
                let lft = layer.lft.lock();
                let e = lft.table(dir).get(&f)?;
                if e.value.token.revoked() {
                    return None;
                }
                Some(match e.value.desc() {
                    Some(d) => (d.gen_ht(dir), format!("flow table: {}", d.describe())),
                    None => (HdrTransform::NONE, String::from("flow table: stateful-allow")),
                })
            });
            let (decision, action_text, result) = if let Some((xf, text)) = remembered {
                (Decision::FlowTable, text, Ok(Some(xf)))
            } else {
                let ctx = MatchCtx { dir, hdrs: &view, mblk: pkt.mblk(), meta: &meta };
                let (action, rule): (Action, Option<RuleId>) = match rules.table(dir).peek(&ctx) {
                    Some(r) => (r.spec.action.clone(), Some(r.id)),
                    None => (Action::from(rules.default(dir)), None),
                };
                let decision = rule.map_or(Decision::Default, Decision::Rule);
                let text = action.to_string();
                let err = |error| DropReason::Action { layer: layer.name, error };
                let no_flow = || err(super::action::ActionError::NotApplicable("no IP flow"));
                let result = match &action {
                    Action::Allow | Action::StatefulAllow => Ok(Some(HdrTransform::NONE)),
                    Action::Deny => {
                        Err(ExplainVerdict::Drop(DropReason::Denied { layer: layer.name, rule }))
                    }
                    Action::Static(a) => match cur {
                        Some(f) => a
                            .gen_ht(dir, &f, &mut meta)
                            .map(Some)
                            .map_err(|e| ExplainVerdict::Drop(err(e))),
                        None => Err(ExplainVerdict::Drop(no_flow())),
                    },
                    Action::Stateful(a) => match cur {
                        // The state is created as for a first packet and
                        // dropped at once, releasing what it took.
                        Some(f) => a
                            .gen_desc(dir, &f, &mut meta, None)
                            .map(|d| Some(d.gen_ht(dir)))
                            .map_err(|e| ExplainVerdict::Drop(err(e))),
                        None => Err(ExplainVerdict::Drop(no_flow())),
                    },
                    Action::Hairpin(a) => {
                        let ctx = MatchCtx { dir, hdrs: &view, mblk: pkt.mblk(), meta: &meta };
                        Err(match a.gen_packet(&ctx) {
                            Ok(reply) => ExplainVerdict::Hairpin(reply.len()),
                            Err(e) => ExplainVerdict::Drop(err(e)),
                        })
                    }
                    Action::Meta(a) => a
                        .mod_meta(dir, cur.as_ref(), &mut meta)
                        .map(|()| Some(HdrTransform::NONE))
                        .map_err(|e| ExplainVerdict::Drop(err(e))),
                    Action::HandlePacket(h) => {
                        if let Err(e) = xform.apply(pkt) {
                            return ExplainVerdict::Drop(DropReason::Transform(e));
                        }
                        xform = HdrTransform::NONE;
                        match h.handle(dir, pkt, &mut meta, &LayerFlows::new(layer)) {
                            HandleResult::Continue => {
                                view = *pkt.headers();
                                cur = FlowId::from_headers(&view);
                                Ok(None)
                            }
                            HandleResult::Drop(why) => {
                                Err(ExplainVerdict::Drop(DropReason::Handled {
                                    layer: layer.name,
                                    why,
                                }))
                            }
                            HandleResult::Hairpin(m) => Err(ExplainVerdict::Hairpin(m.len())),
                        }
                    }
                };
                (decision, text, result)
            };
            let xf = match result {
                Ok(xf) => xf,
                Err(verdict) => {
                    steps.push(ExplainStep {
                        layer: layer.name,
                        decision,
                        action: action_text,
                        xform: HdrTransform::NONE,
                    });
                    return verdict;
                }
            };
            let xf = xf.unwrap_or(HdrTransform::NONE);
            xform = match xform.then(&xf) {
                Ok(x) => x,
                Err(e) => return ExplainVerdict::Drop(DropReason::Transform(e)),
            };
            if let Err(e) = xf.apply_to_headers(&mut view) {
                return ExplainVerdict::Drop(DropReason::Transform(e));
            }
            cur = cur.map(|f| xf.apply_to_flow(&f));
            steps.push(ExplainStep { layer: layer.name, decision, action: action_text, xform: xf });
        }
        match xform.apply(pkt) {
            Ok(()) => ExplainVerdict::Pass(xform),
            Err(e) => ExplainVerdict::Drop(DropReason::Transform(e)),
        }
    }
}
