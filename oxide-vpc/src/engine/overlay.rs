//! The overlay layer (being written).
use super::{RuleSet, VpcNetwork};
use crate::api::VpcCfg;
use alloc::sync::Arc;
use opte::engine::action::DefaultAction;
use opte::engine::layer::LayerSpec;

/// The overlay layer's spec.
pub fn layer_spec(lft: u32) -> LayerSpec {
    super::vpc_port::spec(
        super::layer_names::OVERLAY,
        DefaultAction::Deny,
        DefaultAction::Deny,
        lft,
    )
}

/// The overlay's rules.
pub fn rules(_cfg: &VpcCfg, _net: &Arc<VpcNetwork>) -> RuleSet {
    RuleSet::default()
}
