//! The NAT layer (being written).
use super::RuleSet;
use crate::api::VpcCfg;
use opte::engine::action::DefaultAction;
use opte::engine::layer::LayerSpec;

/// The NAT layer's spec.
pub fn layer_spec(lft: u32) -> LayerSpec {
    super::vpc_port::spec(super::layer_names::NAT, DefaultAction::Allow, DefaultAction::Allow, lft)
}

/// The NAT layer's actions, kept across reconfiguration.
#[derive(Clone, Default)]
pub struct NatState {}

impl NatState {
    /// No addresses yet.
    pub fn new() -> Self {
        Self {}
    }

    /// The NAT rules for `cfg`.
    pub fn rules(&mut self, _cfg: &VpcCfg) -> RuleSet {
        RuleSet::default()
    }
}
