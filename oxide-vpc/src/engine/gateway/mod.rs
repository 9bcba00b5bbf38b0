//! The gateway layer (being written).
use super::RuleSet;
use crate::api::VpcCfg;
use opte::engine::action::DefaultAction;
use opte::engine::layer::LayerSpec;

/// The gateway layer's spec.
pub fn layer_spec(lft: u32) -> LayerSpec {
    super::vpc_port::spec(
        super::layer_names::GATEWAY,
        DefaultAction::Deny,
        DefaultAction::Deny,
        lft,
    )
}

/// The gateway's rules for `cfg`.
pub fn rules(_cfg: &VpcCfg) -> RuleSet {
    RuleSet::default()
}
