//! The firewall layer (being written).
use super::RuleSet;
use crate::api::{FirewallRule, VpcCfg};
use opte::engine::action::DefaultAction;
use opte::engine::layer::LayerSpec;

/// The firewall layer's spec.
pub fn layer_spec(lft: u32) -> LayerSpec {
    super::vpc_port::spec(
        super::layer_names::FIREWALL,
        DefaultAction::Deny,
        DefaultAction::StatefulAllow,
        lft,
    )
}

/// The firewall's rules.
pub fn rules(_cfg: &VpcCfg, _rules: &[FirewallRule]) -> RuleSet {
    RuleSet::default()
}
