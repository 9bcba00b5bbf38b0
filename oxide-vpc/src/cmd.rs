//! The VPC's command bodies: the request and reply type of every
//! [`OpteCmd`](opte_api::OpteCmd) (postcard on the wire, JSON for
//! `opteadm --json`), the builders that turn a live port's state into
//! replies, the link-name rules, and the text syntax of a firewall rule
//! that `opteadm` reads (`dir=in action=allow priority=10 protocol=TCP
//! port=22 hosts=subnet=10.0.0.0/24`, see [`FirewallRule`]'s `FromStr`).
//!
//! | command | request | reply |
//! | --- | --- | --- |
//! | `version` | `()` | `u64` |
//! | `list-ports` | `()` | [`ListPortsResp`] |
//! | `create-xde` | [`CreateXdeReq`] | `()` |
//! | `delete-xde` | [`DeleteXdeReq`] | `()` |
//! | `set-xde-underlay` | [`SetXdeUnderlayReq`] | `()` |
//! | `clear-xde-underlay` | `()` | `()` |
//! | `add-fw-rule` | [`AddFwRuleReq`] | [`AddFwRuleResp`] |
//! | `rm-fw-rule` | [`RmFwRuleReq`] | [`RmFwRuleResp`] |
//! | `set-fw-rules` | [`SetFwRulesReq`] | `()` |
//! | `add-router-entry`, `del-router-entry` | [`RouterEntryReq`] | `()` |
//! | `set-v2p` | [`SetV2pReq`] | `()` |
//! | `clear-v2p` | [`ClearV2pReq`] | `()` |
//! | `dump-v2p` | `()` | [`DumpV2pResp`] |
//! | `set-v2b` | [`SetV2bReq`] | `()` |
//! | `clear-v2b` | [`ClearV2bReq`] | `()` |
//! | `dump-v2b` | `()` | [`DumpV2bResp`] |
//! | `set-external-ips` | [`SetExternalIpsReq`] | `()` |
//! | `allow-cidr`, `remove-cidr` | [`CidrReq`] | `()` |
//! | `attach-subnet` | [`AttachSubnetReq`] | `()` |
//! | `detach-subnet` | [`DetachSubnetReq`] | `()` |
//! | `add-peering` | [`AddPeeringReq`] | `()` |
//! | `remove-peering` | [`RemovePeeringReq`] | `()` |
//! | `list-layers` | [`PortReq`] | [`ListLayersResp`] |
//! | `dump-layer` | [`DumpLayerReq`] | [`DumpLayerResp`] |
//! | `dump-uft` | [`PortReq`] | [`DumpUftResp`] |
//! | `dump-tcp-flows` | [`PortReq`] | [`DumpTcpFlowsResp`] |
//! | `clear-uft` | [`PortReq`] | `()` |
//! | `clear-lft` | [`ClearLftReq`] | `()` |
//! | `stats` | [`PortReq`] | [`StatsResp`] |
//! | `dump-port` | [`PortReq`] | [`DumpPortResp`] |
//! | `trace` | [`TraceReq`] | [`TraceResp`] |
//!
//! Lists in requests are bounded while decoding (`bounded_vec`), so a
//! request cannot make the driver allocate past a limit.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::str::FromStr;

use opte::engine::action::DefaultAction;
use opte::engine::explain::{ExplainVerdict, Explanation};
use opte::engine::flow::FlowId;
use opte::engine::flow_table::FlowTableStats;
use opte::engine::port::{LayerDump, PortError, PortState};
use opte::engine::stats::{LayerStatsSnapshot, PortStatsSnapshot};
use opte::engine::trace::Decision;
use opte_api::cmd::bounded_vec;
use opte_api::{Direction, IpCidr, MacAddr, Vni};
use serde::{Deserialize, Serialize};

use crate::api::{
    AttachedSubnet, ExternalIps, FirewallRule, FwAction, FwHosts, FwProtocol, IcmpFilter, Peering,
    PortRange, PortSpec, RouterEntry, TransitCidr, V2bMapping, V2pMapping, VpcCfg, limits,
};
use crate::engine::VpcPort;

/// Longest port or underlay link name (illumos `MAXLINKNAMELEN` less
/// the terminating NUL).
pub const MAX_LINK_NAME: usize = 31;

/// Longest frame a `trace` request carries (a jumbo frame).
pub const MAX_TRACE_FRAME: usize = 9216 + 128;

/// Check an illumos data-link name: 1 to [`MAX_LINK_NAME`] bytes of ASCII
/// letters, digits, `_` and `.`, starting with a letter and ending with a
/// digit (the provider's instance number), as `dladm` requires.
pub fn check_link_name(name: &str) -> Result<(), &'static str> {
    let b = name.as_bytes();
    if b.is_empty() {
        return Err("a link name cannot be empty");
    }
    if b.len() > MAX_LINK_NAME {
        return Err("a link name has at most 31 characters");
    }
    if !b.first().is_some_and(u8::is_ascii_alphabetic) {
        return Err("a link name starts with a letter");
    }
    if !b.last().is_some_and(u8::is_ascii_digit) {
        return Err("a link name ends with a digit (its instance number)");
    }
    if !b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'.') {
        return Err("a link name holds only letters, digits, '_' and '.'");
    }
    Ok(())
}

// ---------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------

/// `create-xde`: a new port named `name` with configuration `cfg`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateXdeReq {
    /// The port's link name (`xde0`).
    pub name: String,
    /// The port's configuration.
    pub cfg: VpcCfg,
}

/// `delete-xde`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteXdeReq {
    /// The port to delete.
    pub name: String,
}

/// `set-xde-underlay`: the two links encapsulated traffic leaves by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetXdeUnderlayReq {
    /// The first underlay link.
    pub u1: String,
    /// The second underlay link.
    pub u2: String,
}

/// Any command about one port and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortReq {
    /// The port.
    pub port: String,
}

/// `add-fw-rule`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddFwRuleReq {
    /// The port.
    pub port: String,
    /// The rule to add.
    pub rule: FirewallRule,
}

/// `rm-fw-rule`: the rule `id` of direction `dir` (ids as `dump-layer`
/// and `add-fw-rule` report them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RmFwRuleReq {
    /// The port.
    pub port: String,
    /// The rule's direction.
    pub dir: Direction,
    /// The rule's id.
    pub id: u64,
}

/// `set-fw-rules`: replace every firewall rule of a port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetFwRulesReq {
    /// The port.
    pub port: String,
    /// The new rules (at most [`limits::MAX_FW_RULES`]).
    #[serde(deserialize_with = "bounded_vec::<_, _, { limits::MAX_FW_RULES }>")]
    pub rules: Vec<FirewallRule>,
}

/// `add-router-entry` and `del-router-entry`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterEntryReq {
    /// The port.
    pub port: String,
    /// The route.
    pub entry: RouterEntry,
}

/// `set-v2p`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetV2pReq {
    /// The mapping to add or replace.
    pub mapping: V2pMapping,
}

/// `clear-v2p`: the mapping of `ip` on VPC `vni`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearV2pReq {
    /// The guest's VPC.
    pub vni: Vni,
    /// The guest's private address.
    pub ip: IpAddr,
}

/// `set-v2b`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetV2bReq {
    /// The mapping to add or replace.
    pub mapping: V2bMapping,
}

/// `clear-v2b`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearV2bReq {
    /// The prefix whose mapping to remove.
    pub prefix: IpCidr,
}

/// `set-external-ips`: replace the external addresses of the families
/// given (`None` leaves a family's unchanged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetExternalIpsReq {
    /// The port.
    pub port: String,
    /// New IPv4 external addresses.
    pub v4: Option<ExternalIps<Ipv4Addr>>,
    /// New IPv6 external addresses.
    pub v6: Option<ExternalIps<Ipv6Addr>>,
}

/// `allow-cidr` and `remove-cidr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CidrReq {
    /// The port.
    pub port: String,
    /// The range and direction.
    pub transit: TransitCidr,
}

/// `attach-subnet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachSubnetReq {
    /// The port.
    pub port: String,
    /// The subnet.
    pub subnet: AttachedSubnet,
}

/// `detach-subnet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachSubnetReq {
    /// The port.
    pub port: String,
    /// The subnet's CIDR.
    pub cidr: IpCidr,
}

/// `add-peering`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddPeeringReq {
    /// The port.
    pub port: String,
    /// The peer VPC.
    pub peering: Peering,
}

/// `remove-peering`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovePeeringReq {
    /// The port.
    pub port: String,
    /// The peer VPC's VNI.
    pub vni: Vni,
}

/// `dump-layer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpLayerReq {
    /// The port.
    pub port: String,
    /// The layer's name.
    pub layer: String,
}

/// `clear-lft`: one layer's flow tables, or every layer's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearLftReq {
    /// The port.
    pub port: String,
    /// The layer; `None` for all.
    pub layer: Option<String>,
}

/// `trace`: explain one frame's path through a port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceReq {
    /// The port.
    pub port: String,
    /// `out` for a guest frame, `in` for an underlay (Geneve) frame.
    pub dir: Direction,
    /// The frame (at most [`MAX_TRACE_FRAME`] bytes).
    #[serde(deserialize_with = "bounded_vec::<_, _, MAX_TRACE_FRAME>")]
    pub frame: Vec<u8>,
}

// ---------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------

/// The underlay links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Underlay {
    /// The first underlay link.
    pub u1: String,
    /// The second underlay link.
    pub u2: String,
}

/// One port as `list-ports` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortInfo {
    /// The port's link name.
    pub name: String,
    /// The guest's MAC.
    pub mac: MacAddr,
    /// The VPC's VNI.
    pub vni: Vni,
    /// The guest's private IPv4 address.
    pub ipv4: Option<Ipv4Addr>,
    /// The guest's private IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
    /// The host's underlay address.
    pub phys_ip: Ipv6Addr,
    /// `ready`, `running` or `paused`.
    pub state: String,
}

impl PortInfo {
    /// The summary of a live port.
    pub fn of(p: &VpcPort) -> Self {
        let cfg = p.cfg();
        Self {
            name: String::from(p.port().name()),
            mac: cfg.guest_mac,
            vni: cfg.vni,
            ipv4: cfg.ipv4.as_ref().map(|c| c.private_ip),
            ipv6: cfg.ipv6.as_ref().map(|c| c.private_ip),
            phys_ip: cfg.phys_ip,
            state: String::from(state_name(p.port().state())),
        }
    }
}

/// `list-ports`: the underlay and every port, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPortsResp {
    /// The underlay links, if set.
    pub underlay: Option<Underlay>,
    /// The ports, ordered by name.
    pub ports: Vec<PortInfo>,
}

/// `add-fw-rule`: the new rule's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddFwRuleResp {
    /// The id `rm-fw-rule` takes.
    pub id: u64,
}

/// `rm-fw-rule`: the rule removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RmFwRuleResp {
    /// The rule.
    pub rule: FirewallRule,
}

/// `dump-v2p`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpV2pResp {
    /// Every mapping, ordered by VNI and address.
    pub mappings: Vec<V2pMapping>,
}

/// `dump-v2b`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpV2bResp {
    /// Every mapping, longest prefix first.
    pub mappings: Vec<V2bMapping>,
}

/// One layer as `list-layers` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSummary {
    /// The layer's name.
    pub name: String,
    /// Inbound rules.
    pub rules_in: u64,
    /// Outbound rules.
    pub rules_out: u64,
    /// Inbound layer flow table entries.
    pub lft_in: u64,
    /// Outbound layer flow table entries.
    pub lft_out: u64,
    /// What inbound packets no rule matches get.
    pub default_in: String,
    /// What outbound packets no rule matches get.
    pub default_out: String,
}

/// `list-layers`: the layers in outbound order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListLayersResp {
    /// The layers.
    pub layers: Vec<LayerSummary>,
}

impl ListLayersResp {
    /// The layers of a live port.
    pub fn of(p: &VpcPort) -> Self {
        let layers = p
            .port()
            .layer_names()
            .into_iter()
            .filter_map(|n| p.port().dump_layer(n).ok())
            .map(|d| LayerSummary {
                name: String::from(d.name),
                rules_in: d.rules_in.len() as u64,
                rules_out: d.rules_out.len() as u64,
                lft_in: d.lft_in as u64,
                lft_out: d.lft_out as u64,
                default_in: String::from(default_name(d.default_in)),
                default_out: String::from(default_name(d.default_out)),
            })
            .collect();
        Self { layers }
    }
}

/// One rule of a layer, in evaluation order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleDump {
    /// The rule's id (unique within the port).
    pub id: u64,
    /// Its priority (lower first).
    pub priority: u16,
    /// Its action, as text.
    pub action: String,
    /// Packets it decided.
    pub hits: u64,
    /// For a firewall rule, the rule as configured (in the text syntax).
    pub rule: Option<String>,
}

/// `dump-layer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpLayerResp {
    /// The layer's name.
    pub name: String,
    /// What inbound packets no rule matches get.
    pub default_in: String,
    /// What outbound packets no rule matches get.
    pub default_out: String,
    /// Inbound rules in evaluation order.
    pub rules_in: Vec<RuleDump>,
    /// Outbound rules in evaluation order.
    pub rules_out: Vec<RuleDump>,
    /// Inbound layer flow table entries.
    pub lft_in: u64,
    /// Outbound layer flow table entries.
    pub lft_out: u64,
    /// The layer's counters by name.
    pub counters: BTreeMap<String, u64>,
}

impl DumpLayerResp {
    /// Layer `layer` of a live port; firewall rules carry their text.
    pub fn of(p: &VpcPort, layer: &str) -> Result<Self, PortError> {
        let mut d = Self::from(p.port().dump_layer(layer)?);
        if layer == crate::engine::layer_names::FIREWALL {
            let fw = p.fw_rules();
            for r in d.rules_in.iter_mut().chain(d.rules_out.iter_mut()) {
                r.rule = fw.iter().find(|(id, _)| id.0 == r.id).map(|(_, f)| f.to_string());
            }
        }
        Ok(d)
    }
}

impl From<LayerDump> for DumpLayerResp {
    fn from(d: LayerDump) -> Self {
        let rules = |v: Vec<(opte::engine::rule::RuleId, u16, String, u64)>| {
            v.into_iter()
                .map(|(id, priority, action, hits)| RuleDump {
                    id: id.0,
                    priority,
                    action,
                    hits,
                    rule: None,
                })
                .collect()
        };
        Self {
            name: String::from(d.name),
            default_in: String::from(default_name(d.default_in)),
            default_out: String::from(default_name(d.default_out)),
            rules_in: rules(d.rules_in),
            rules_out: rules(d.rules_out),
            lft_in: d.lft_in as u64,
            lft_out: d.lft_out as u64,
            counters: layer_counters(&d.stats),
        }
    }
}

/// A flow as the tables key it (addresses as the port sees the packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowDesc {
    /// The IP protocol number.
    pub proto: u8,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (ICMP: the echo identifier).
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl From<&FlowId> for FlowDesc {
    fn from(f: &FlowId) -> Self {
        Self {
            proto: f.proto,
            src: f.src_ip(),
            dst: f.dst_ip(),
            src_port: f.src_port,
            dst_port: f.dst_port,
        }
    }
}

impl fmt::Display for FlowDesc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.proto {
            1 => f.write_str("ICMP ")?,
            6 => f.write_str("TCP ")?,
            17 => f.write_str("UDP ")?,
            58 => f.write_str("ICMPv6 ")?,
            p => write!(f, "proto {p} ")?,
        }
        match (self.src, self.dst) {
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                write!(f, "[{s}]:{} -> [{d}]:{}", self.src_port, self.dst_port)
            }
            (s, d) => write!(f, "{s}:{} -> {d}:{}", self.src_port, self.dst_port),
        }
    }
}

/// One unified flow table entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UftFlow {
    /// The flow.
    pub flow: FlowDesc,
    /// The stored transformation, as text.
    pub xform: String,
    /// Packets that hit the entry.
    pub hits: u64,
}

/// `dump-uft`: both directions' unified flow tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpUftResp {
    /// Entries per direction at most.
    pub limit: u32,
    /// Inbound flows.
    pub in_flows: Vec<UftFlow>,
    /// Outbound flows.
    pub out_flows: Vec<UftFlow>,
}

impl DumpUftResp {
    /// The unified flow tables of a live port, ordered by flow text.
    pub fn of(p: &VpcPort) -> Self {
        let dump = |dir| {
            let mut v: Vec<UftFlow> = p
                .port()
                .dump_uft(dir)
                .into_iter()
                .map(|(id, x, hits)| UftFlow {
                    flow: FlowDesc::from(&id),
                    xform: format!("{x:?}"),
                    hits,
                })
                .collect();
            v.sort_by_cached_key(|f| f.flow.to_string());
            v
        };
        Self {
            limit: p.port().table_usage().uft_limit,
            in_flows: dump(Direction::In),
            out_flows: dump(Direction::Out),
        }
    }
}

/// One TCP flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpFlowDump {
    /// The flow as the guest sees it (guest address first).
    pub flow: FlowDesc,
    /// Its connection state (`ESTABLISHED`, ...).
    pub state: String,
}

/// `dump-tcp-flows`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpTcpFlowsResp {
    /// The TCP flows, ordered by flow text.
    pub flows: Vec<TcpFlowDump>,
}

impl DumpTcpFlowsResp {
    /// The TCP flows of a live port.
    pub fn of(p: &VpcPort) -> Self {
        let mut flows: Vec<TcpFlowDump> = p
            .port()
            .dump_tcp()
            .into_iter()
            .map(|(id, s)| TcpFlowDump { flow: FlowDesc::from(&id), state: s.to_string() })
            .collect();
        flows.sort_by_cached_key(|f| f.flow.to_string());
        Self { flows }
    }
}

/// One flow table's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCounters {
    /// Entries held.
    pub len: u32,
    /// The entry limit.
    pub limit: u32,
    /// New flows added.
    pub inserts: u64,
    /// Inserts that replaced a flow's value.
    pub replaced: u64,
    /// New flows refused because the table was full.
    pub full_drops: u64,
    /// New flows refused because memory could not be had.
    pub alloc_failures: u64,
    /// Entries expired.
    pub expired: u64,
    /// Entries evicted under pressure.
    pub evicted: u64,
    /// Entries removed by commands or flow closes.
    pub removed: u64,
}

impl From<FlowTableStats> for TableCounters {
    fn from(s: FlowTableStats) -> Self {
        let FlowTableStats {
            inserts,
            replaced,
            full_drops,
            alloc_failures,
            expired,
            evicted,
            removed,
            len,
            limit,
        } = s;
        Self {
            len,
            limit,
            inserts,
            replaced,
            full_drops,
            alloc_failures,
            expired,
            evicted,
            removed,
        }
    }
}

/// `stats`: every counter of a port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsResp {
    /// The port's counters by name, every drop reason among them
    /// (`drop_exhausted`: NAT ports exhausted; `drop_table_full`: a flow
    /// table full).
    pub port: BTreeMap<String, u64>,
    /// Each layer's counters, in outbound order.
    pub layers: Vec<(String, BTreeMap<String, u64>)>,
    /// Each flow table's counters (`uft_in`, `uft_out`, `tcp`,
    /// `LAYER/in`, `LAYER/out`).
    pub tables: Vec<(String, TableCounters)>,
}

impl StatsResp {
    /// The counters of a live port.
    pub fn of(p: &VpcPort) -> Self {
        let port = p.port();
        Self {
            port: port_counters(&port.stats()),
            layers: port
                .layer_names()
                .into_iter()
                .filter_map(|n| port.dump_layer(n).ok())
                .map(|d| (String::from(d.name), layer_counters(&d.stats)))
                .collect(),
            tables: port
                .flow_table_stats()
                .into_iter()
                .map(|(n, s)| (n, TableCounters::from(s)))
                .collect(),
        }
    }
}

/// `dump-port`: everything needed to recreate the port (the JSON that
/// `opte-sim` reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpPortResp(pub PortSpec);

/// `trace`: what each layer would decide about one frame (nothing in
/// the port changes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceResp {
    /// The direction it was explained in.
    pub dir: Direction,
    /// The frame's flow, if it has one.
    pub flow: Option<FlowDesc>,
    /// True when a current unified flow table entry would handle it (no
    /// layer is visited).
    pub uft_hit: bool,
    /// Each layer visited, in processing order.
    pub steps: Vec<TraceStep>,
    /// `pass`, `hairpin` or `drop`.
    pub verdict: String,
    /// Why it would be dropped, or the reply's size for a hairpin.
    pub reason: Option<String>,
}

/// One layer's decision in a [`TraceResp`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceStep {
    /// The layer.
    pub layer: String,
    /// `rule N`, `default` or `flow table` (the opte-sim trace's words).
    pub decision: String,
    /// The deciding rule's id, if a rule decided.
    pub rule: Option<u64>,
    /// The action, as `dump-layer` prints it.
    pub action: String,
    /// The header transformation this layer contributed (`none` for
    /// none).
    pub xform: String,
}

impl From<&Explanation> for TraceResp {
    fn from(ex: &Explanation) -> Self {
        let steps = ex
            .steps
            .iter()
            .map(|s| {
                let (decision, rule) = match s.decision {
                    Decision::Rule(r) => (format!("rule {r}"), Some(r.0)),
                    Decision::Default => (String::from("default"), None),
                    Decision::FlowTable => (String::from("flow table"), None),
                };
                TraceStep {
                    layer: String::from(s.layer),
                    decision,
                    rule,
                    action: s.action.clone(),
                    xform: if s.xform.is_identity() {
                        String::from("none")
                    } else {
                        format!("{:?}", s.xform)
                    },
                }
            })
            .collect();
        let (verdict, reason) = match &ex.verdict {
            ExplainVerdict::Pass(_) => ("pass", None),
            ExplainVerdict::Hairpin(n) => ("hairpin", Some(format!("a reply of {n} bytes"))),
            ExplainVerdict::Drop(r) => ("drop", Some(r.to_string())),
        };
        Self {
            dir: ex.dir,
            flow: ex.flow.as_ref().map(FlowDesc::from),
            uft_hit: ex.uft_hit,
            steps,
            verdict: String::from(verdict),
            reason,
        }
    }
}

/// A port state's name.
fn state_name(s: PortState) -> &'static str {
    match s {
        PortState::Ready => "ready",
        PortState::Running => "running",
        PortState::Paused => "paused",
    }
}

/// A default action's name.
fn default_name(d: DefaultAction) -> &'static str {
    match d {
        DefaultAction::Allow => "allow",
        DefaultAction::Deny => "deny",
        DefaultAction::StatefulAllow => "stateful-allow",
    }
}

/// A port's counters by name (every field, so a new counter is a compile
/// error here until it is named).
pub fn port_counters(s: &PortStatsSnapshot) -> BTreeMap<String, u64> {
    let PortStatsSnapshot {
        in_processed,
        out_processed,
        modified,
        hairpin,
        uft_hit,
        uft_miss,
        uft_invalidated,
        drop_not_running,
        drop_parse,
        drop_denied_rule,
        drop_denied_default,
        drop_table_full,
        drop_exhausted,
        drop_action,
        drop_handled,
        drop_transform,
        tcp_error,
        tcp_contended,
        tcp_closed,
        evictions,
        expired,
    } = *s;
    [
        ("in_processed", in_processed),
        ("out_processed", out_processed),
        ("modified", modified),
        ("hairpin", hairpin),
        ("uft_hit", uft_hit),
        ("uft_miss", uft_miss),
        ("uft_invalidated", uft_invalidated),
        ("drop_not_running", drop_not_running),
        ("drop_parse", drop_parse),
        ("drop_denied_rule", drop_denied_rule),
        ("drop_denied_default", drop_denied_default),
        ("drop_table_full", drop_table_full),
        ("drop_exhausted", drop_exhausted),
        ("drop_action", drop_action),
        ("drop_handled", drop_handled),
        ("drop_transform", drop_transform),
        ("tcp_error", tcp_error),
        ("tcp_contended", tcp_contended),
        ("tcp_closed", tcp_closed),
        ("evictions", evictions),
        ("expired", expired),
    ]
    .into_iter()
    .map(|(k, v)| (String::from(k), v))
    .collect()
}

/// A layer's counters by name (every field).
pub fn layer_counters(s: &LayerStatsSnapshot) -> BTreeMap<String, u64> {
    let LayerStatsSnapshot {
        in_lft_hit,
        out_lft_hit,
        in_rule_match,
        out_rule_match,
        in_default,
        out_default,
        denied_rule,
        denied_default,
        lft_full,
        action_errors,
    } = *s;
    [
        ("in_lft_hit", in_lft_hit),
        ("out_lft_hit", out_lft_hit),
        ("in_rule_match", in_rule_match),
        ("out_rule_match", out_rule_match),
        ("in_default", in_default),
        ("out_default", out_default),
        ("denied_rule", denied_rule),
        ("denied_default", denied_default),
        ("lft_full", lft_full),
        ("action_errors", action_errors),
    ]
    .into_iter()
    .map(|(k, v)| (String::from(k), v))
    .collect()
}

// ---------------------------------------------------------------------
// Firewall rule text
// ---------------------------------------------------------------------

/// Longest firewall rule text accepted.
pub const MAX_RULE_TEXT: usize = 1024;

/// Most `key=value` fields in one rule's text.
const MAX_RULE_FIELDS: usize = 16;

/// Why a firewall rule's text was refused: the field as typed and what
/// is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleParseError {
    /// The offending field as typed (`port=abc`), or the missing key.
    pub field: String,
    /// What is wrong.
    pub why: String,
}

impl fmt::Display for RuleParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}`: {}", self.field, self.why)
    }
}

fn bad(field: &str, why: impl Into<String>) -> RuleParseError {
    let mut end = field.len().min(64);
    while !field.is_char_boundary(end) {
        end -= 1;
    }
    RuleParseError { field: String::from(field.get(..end).unwrap_or("")), why: why.into() }
}

fn parse_port_range(s: &str) -> Option<PortRange> {
    match s.split_once('-') {
        Some((a, b)) => Some(PortRange { first: a.parse().ok()?, last: b.parse().ok()? }),
        None => s.parse().ok().map(|p| PortRange { first: p, last: p }),
    }
}

fn parse_hosts(v: &str) -> Result<FwHosts, &'static str> {
    if v.eq_ignore_ascii_case("any") {
        return Ok(FwHosts::Any);
    }
    let (kind, val) = v.split_once('=').ok_or("expected any, ip=ADDR, subnet=CIDR or vni=N")?;
    match kind.to_ascii_lowercase().as_str() {
        "ip" => val.parse().map(FwHosts::Ip).map_err(|_| "not an IP address"),
        "subnet" => val.parse().map(FwHosts::Subnet).map_err(|_| "not a CIDR block"),
        "vni" => val
            .parse::<u32>()
            .ok()
            .and_then(|n| Vni::new(n).ok())
            .map(FwHosts::Vni)
            .ok_or("not a VNI (0 to 16777215)"),
        _ => Err("expected any, ip=ADDR, subnet=CIDR or vni=N"),
    }
}

/// The text syntax of a rule: whitespace-separated `key=value` fields.
///
/// | key | values | default |
/// | --- | --- | --- |
/// | `dir` | `in`, `out` | required |
/// | `action` | `allow`, `deny` | required |
/// | `priority` | 0-65535 (lower first) | required |
/// | `protocol` | `any`, `TCP`, `UDP`, `ICMP`, `ICMPv6`, `ARP` or a number | `any` |
/// | `port` (or `ports`) | `any` or a list like `22,80,8000-8080` | `any` |
/// | `hosts` | `any`, `ip=ADDR`, `subnet=CIDR`, `vni=N` | `any` |
/// | `icmp-type` | 0-255 (ICMP and ICMPv6 only) | any type |
/// | `icmp-code` | a code or range like `0-3` (needs `icmp-type`) | any code |
///
/// The rule is also checked ([`FirewallRule::validate`]); every error
/// names the field it is about.
impl FromStr for FirewallRule {
    type Err = RuleParseError;

    fn from_str(s: &str) -> Result<Self, RuleParseError> {
        if s.len() > MAX_RULE_TEXT {
            return Err(bad("rule", format!("longer than {MAX_RULE_TEXT} characters")));
        }
        let mut dir = None;
        let mut action = None;
        let mut priority = None;
        let mut protocol = None;
        let mut ports = None;
        let mut hosts = None;
        let mut icmp_type = None;
        let mut icmp_code = None;
        for (n, field) in s.split_whitespace().enumerate() {
            if n >= MAX_RULE_FIELDS {
                return Err(bad(field, format!("more than {MAX_RULE_FIELDS} fields")));
            }
            let Some((key, value)) = field.split_once('=') else {
                return Err(bad(field, "expected key=value"));
            };
            let lower = value.to_ascii_lowercase();
            let dup = |set: bool| if set { Err(bad(field, "given twice")) } else { Ok(()) };
            match key {
                "dir" | "direction" => {
                    dup(dir.is_some())?;
                    dir = Some(value.parse().map_err(|_| bad(field, "expected in or out"))?);
                }
                "action" => {
                    dup(action.is_some())?;
                    action = Some(match lower.as_str() {
                        "allow" => FwAction::Allow,
                        "deny" => FwAction::Deny,
                        _ => return Err(bad(field, "expected allow or deny")),
                    });
                }
                "priority" => {
                    dup(priority.is_some())?;
                    priority =
                        Some(value.parse::<u16>().map_err(|_| bad(field, "expected 0 to 65535"))?);
                }
                "protocol" | "proto" => {
                    dup(protocol.is_some())?;
                    protocol = Some(match lower.as_str() {
                        "any" => FwProtocol::Any,
                        "tcp" => FwProtocol::Tcp,
                        "udp" => FwProtocol::Udp,
                        "icmp" => FwProtocol::Icmp(None),
                        "icmpv6" | "icmp6" => FwProtocol::Icmpv6(None),
                        "arp" => FwProtocol::Arp,
                        _ => match value.parse::<u8>() {
                            Ok(1) => FwProtocol::Icmp(None),
                            Ok(6) => FwProtocol::Tcp,
                            Ok(17) => FwProtocol::Udp,
                            Ok(58) => FwProtocol::Icmpv6(None),
                            Ok(n) => FwProtocol::Other(n),
                            Err(_) => {
                                return Err(bad(
                                    field,
                                    "expected any, TCP, UDP, ICMP, ICMPv6, ARP or 0-255",
                                ));
                            }
                        },
                    });
                }
                "port" | "ports" => {
                    dup(ports.is_some())?;
                    if lower == "any" {
                        ports = Some(Vec::new());
                        continue;
                    }
                    let mut v = Vec::new();
                    for p in value.split(',') {
                        if v.len() >= limits::MAX_FW_PORTS {
                            return Err(bad(
                                field,
                                format!("more than {} ports", limits::MAX_FW_PORTS),
                            ));
                        }
                        let r = parse_port_range(p).ok_or_else(|| {
                            bad(field, format!("{p:?} is not a port or a range like 1000-2000"))
                        })?;
                        if r.first > r.last {
                            return Err(bad(field, format!("port range {p} is empty")));
                        }
                        v.push(r);
                    }
                    ports = Some(v);
                }
                "hosts" | "host" => {
                    dup(hosts.is_some())?;
                    hosts = Some(parse_hosts(value).map_err(|w| bad(field, w))?);
                }
                "icmp-type" => {
                    dup(icmp_type.is_some())?;
                    icmp_type =
                        Some(value.parse::<u8>().map_err(|_| bad(field, "expected 0 to 255"))?);
                }
                "icmp-code" => {
                    dup(icmp_code.is_some())?;
                    let (a, b) = value.split_once('-').unwrap_or((value, value));
                    let (Ok(a), Ok(b)) = (a.parse::<u8>(), b.parse::<u8>()) else {
                        return Err(bad(field, "expected a code or a range like 0-3"));
                    };
                    if a > b {
                        return Err(bad(field, "empty code range"));
                    }
                    icmp_code = Some((a, b));
                }
                _ => {
                    return Err(bad(
                        field,
                        "unknown field (dir, action, priority, protocol, port, hosts, icmp-type, icmp-code)",
                    ));
                }
            }
        }
        let direction = dir.ok_or_else(|| bad("dir", "missing (dir=in or dir=out)"))?;
        let action =
            action.ok_or_else(|| bad("action", "missing (action=allow or action=deny)"))?;
        let priority = priority.ok_or_else(|| bad("priority", "missing (priority=0-65535)"))?;
        let mut protocol = protocol.unwrap_or(FwProtocol::Any);
        if icmp_code.is_some() && icmp_type.is_none() {
            return Err(bad("icmp-code", "needs icmp-type"));
        }
        if let Some(ty) = icmp_type {
            let f = Some(IcmpFilter { ty, codes: icmp_code });
            protocol = match protocol {
                FwProtocol::Icmp(_) => FwProtocol::Icmp(f),
                FwProtocol::Icmpv6(_) => FwProtocol::Icmpv6(f),
                _ => return Err(bad("icmp-type", "needs protocol=ICMP or protocol=ICMPv6")),
            };
        }
        let ports = ports.unwrap_or_default();
        if !ports.is_empty() && !matches!(protocol, FwProtocol::Tcp | FwProtocol::Udp) {
            return Err(bad("port", "ports need protocol=TCP or protocol=UDP"));
        }
        let rule = FirewallRule {
            direction,
            priority,
            action,
            hosts: hosts.unwrap_or(FwHosts::Any),
            protocol,
            ports,
        };
        rule.validate().map_err(|e| bad("rule", e.to_string()))?;
        Ok(rule)
    }
}

/// A rule in the text syntax its `FromStr` reads (so the two round-trip).
impl fmt::Display for FirewallRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = match self.action {
            FwAction::Allow => "allow",
            FwAction::Deny => "deny",
        };
        write!(f, "dir={} action={action} priority={}", self.direction, self.priority)?;
        let icmp = match self.protocol {
            FwProtocol::Any => None,
            FwProtocol::Tcp => {
                f.write_str(" protocol=TCP")?;
                None
            }
            FwProtocol::Udp => {
                f.write_str(" protocol=UDP")?;
                None
            }
            FwProtocol::Icmp(x) => {
                f.write_str(" protocol=ICMP")?;
                x
            }
            FwProtocol::Icmpv6(x) => {
                f.write_str(" protocol=ICMPv6")?;
                x
            }
            FwProtocol::Arp => {
                f.write_str(" protocol=ARP")?;
                None
            }
            FwProtocol::Other(n) => {
                write!(f, " protocol={n}")?;
                None
            }
        };
        if let Some(i) = icmp {
            write!(f, " icmp-type={}", i.ty)?;
            if let Some((a, b)) = i.codes {
                if a == b {
                    write!(f, " icmp-code={a}")?;
                } else {
                    write!(f, " icmp-code={a}-{b}")?;
                }
            }
        }
        if !self.ports.is_empty() {
            f.write_str(" port=")?;
            for (i, p) in self.ports.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                if p.first == p.last {
                    write!(f, "{}", p.first)?;
                } else {
                    write!(f, "{}-{}", p.first, p.last)?;
                }
            }
        }
        match self.hosts {
            FwHosts::Any => Ok(()),
            FwHosts::Ip(ip) => write!(f, " hosts=ip={ip}"),
            FwHosts::Subnet(c) => write!(f, " hosts=subnet={c}"),
            FwHosts::Vni(v) => write!(f, " hosts=vni={v}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_text_round_trips() {
        for text in [
            "dir=in action=allow priority=10 protocol=TCP port=22 hosts=subnet=10.0.0.0/24",
            "dir=out action=deny priority=0",
            "dir=in action=allow priority=65535 protocol=UDP port=53,1000-2000 hosts=ip=fd00::9",
            "dir=in action=allow priority=5 protocol=ICMP icmp-type=8 icmp-code=0",
            "dir=in action=allow priority=5 protocol=ICMPv6 icmp-type=1 icmp-code=0-4",
            "dir=in action=deny priority=7 protocol=ARP hosts=vni=77",
            "dir=out action=allow priority=7 protocol=47",
        ] {
            let r: FirewallRule = text.parse().unwrap();
            assert_eq!(r.to_string(), text);
        }
    }

    #[test]
    fn rule_text_errors_name_the_field() {
        let e = |s: &str| s.parse::<FirewallRule>().unwrap_err();
        let x = e("dir=in action=allow priority=10 protocol=TCP port=abc");
        assert_eq!(x.field, "port=abc");
        assert!(x.to_string().contains("`port=abc`"), "{x}");
        assert_eq!(e("dir=sideways action=allow priority=1").field, "dir=sideways");
        assert_eq!(e("action=allow priority=1").field, "dir");
        assert_eq!(e("dir=in action=allow priority=99999").field, "priority=99999");
        assert_eq!(
            e("dir=in action=allow priority=1 hosts=subnet=10.0.0.1/24").field,
            "hosts=subnet=10.0.0.1/24"
        );
        assert_eq!(e("dir=in action=allow priority=1 port=22").field, "port");
        assert_eq!(e("dir=in action=allow priority=1 colour=red").field, "colour=red");
        assert_eq!(e("dir=in dir=out action=allow priority=1").field, "dir=out");
        assert_eq!(e("dir=in action=allow priority=1 protocol=TCP port=9-3").field, "port=9-3");
        assert_eq!(e("dir=in action=allow priority=1 icmp-type=3").field, "icmp-type");
        assert_eq!(e("dir=in action=allow priority=1 nonsense").field, "nonsense");
    }

    #[test]
    fn link_names_follow_dladm() {
        assert!(check_link_name("xde0").is_ok());
        assert!(check_link_name("net-0").is_err());
        assert!(check_link_name("vioif_1").is_ok() && check_link_name("ixgbe.12").is_ok());
        assert!(check_link_name("").is_err());
        assert!(check_link_name("0xde").is_err());
        assert!(check_link_name("xde").is_err());
        assert!(check_link_name("xde/0").is_err());
        assert!(check_link_name(&"a".repeat(31)).is_err());
        assert!(check_link_name(&format!("{}1", "a".repeat(30))).is_ok());
        assert!(check_link_name(&format!("{}1", "a".repeat(31))).is_err());
    }
}
