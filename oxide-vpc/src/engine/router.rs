//! The router layer (being written).
use super::RuleSet;
use crate::api::{RouterEntry, VpcCfg};
use opte::engine::action::DefaultAction;
use opte::engine::layer::LayerSpec;

/// The router layer's spec.
pub fn layer_spec(lft: u32) -> LayerSpec {
    super::vpc_port::spec(
        super::layer_names::ROUTER,
        DefaultAction::Allow,
        DefaultAction::Deny,
        lft,
    )
}

/// The router's rules.
pub fn rules(_cfg: &VpcCfg, _routes: &[RouterEntry]) -> RuleSet {
    RuleSet::default()
}
