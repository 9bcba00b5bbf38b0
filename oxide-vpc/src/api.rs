//! The VPC's configuration types: what the control plane (through
//! `opteadm` and the driver's commands) and the offline simulator say
//! about a port and about the host's shared address mappings. Every type
//! is serde (postcard on the wire, JSON for people and `opte-sim`), and
//! every whole configuration has a `validate` that names the first
//! problem it finds, so a malformed command is refused before anything
//! changes.
//!
//! Limits ([`limits`]) bound every list a command can carry.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use opte_api::{Direction, IpCidr, Ipv4Cidr, Ipv6Cidr, MacAddr, Vni};
use serde::{Deserialize, Serialize};
pub use uuid::Uuid;

/// Bounds on every list in a configuration. A command past one is
/// refused with [`CfgError::TooMany`].
pub mod limits {
    /// Floating IPs per family on one port.
    pub const MAX_FLOATING_IPS: usize = 64;
    /// Internet gateways one external IP may be used for.
    pub const MAX_IGWS_PER_IP: usize = 16;
    /// DNS servers per family handed out by DHCP.
    pub const MAX_DNS_SERVERS: usize = 8;
    /// Domain search list entries.
    pub const MAX_SEARCH_DOMAINS: usize = 8;
    /// Bytes of a host or domain name (one DHCP option holds 255).
    pub const MAX_NAME_LEN: usize = 253;
    /// Attached subnets on one port.
    pub const MAX_ATTACHED_SUBNETS: usize = 64;
    /// Transit CIDRs on one port.
    pub const MAX_TRANSIT_CIDRS: usize = 64;
    /// VPCs one port's VPC peers with.
    pub const MAX_PEERINGS: usize = 32;
    /// Subnets of one peered VPC.
    pub const MAX_PEER_SUBNETS: usize = 64;
    /// Firewall rules on one port.
    pub const MAX_FW_RULES: usize = 4096;
    /// Destination ports and ranges in one firewall rule.
    pub const MAX_FW_PORTS: usize = 32;
    /// Router entries on one port.
    pub const MAX_ROUTES: usize = 4096;
    /// Boundary tunnel endpoints behind one V2B prefix.
    pub const MAX_BOUNDARIES: usize = 16;
    /// The smallest MTU a port accepts (IPv6's minimum).
    pub const MIN_MTU: u16 = 1280;
    /// The largest MTU a port accepts (jumbo frames less the Geneve
    /// overhead on a 9216-byte underlay).
    pub const MAX_MTU: u16 = 9100;
}

/// The VNI of traffic to and from the internet through a boundary
/// switch.
pub const BOUNDARY_VNI: u32 = 99;

/// A port's whole configuration: one guest NIC on one VPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpcCfg {
    /// The guest NIC's MAC address.
    pub guest_mac: MacAddr,
    /// The MAC address the gateway answers with.
    pub gateway_mac: MacAddr,
    /// The VPC's virtual network identifier.
    pub vni: Vni,
    /// This host's underlay (physical) IPv6 address: the outer source of
    /// the port's encapsulated traffic.
    pub phys_ip: Ipv6Addr,
    /// The guest's MTU (handed out by DHCP and RA).
    pub mtu: u16,
    /// IPv4 settings; `None` for an IPv6-only port.
    pub ipv4: Option<Ipv4Cfg>,
    /// IPv6 settings; `None` for an IPv4-only port.
    pub ipv6: Option<Ipv6Cfg>,
    /// What DHCP and DHCPv6 hand out besides the address.
    #[serde(default)]
    pub dhcp: DhcpCfg,
    /// CIDRs the port owns besides its private IPs.
    #[serde(default)]
    pub attached_subnets: Vec<AttachedSubnet>,
    /// CIDRs the guest forwards for without owning them.
    #[serde(default)]
    pub transit: Vec<TransitCidr>,
    /// VPCs this port's VPC is peered with.
    #[serde(default)]
    pub peerings: Vec<Peering>,
}

/// A port's IPv4 settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipv4Cfg {
    /// The VPC subnet the guest sits on.
    pub vpc_subnet: Ipv4Cidr,
    /// The guest's private address (inside `vpc_subnet`).
    pub private_ip: Ipv4Addr,
    /// The gateway's address (inside `vpc_subnet`).
    pub gateway_ip: Ipv4Addr,
    /// External addresses for the internet.
    #[serde(default)]
    pub external: ExternalIps<Ipv4Addr>,
}

/// A port's IPv6 settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipv6Cfg {
    /// The VPC subnet the guest sits on.
    pub vpc_subnet: Ipv6Cidr,
    /// The guest's private address (inside `vpc_subnet`).
    pub private_ip: Ipv6Addr,
    /// The gateway's address (inside `vpc_subnet`).
    pub gateway_ip: Ipv6Addr,
    /// External addresses for the internet.
    #[serde(default)]
    pub external: ExternalIps<Ipv6Addr>,
}

/// The external addresses of one family. Outbound traffic routed to an
/// internet gateway leaves from, in order of preference: a floating IP,
/// the ephemeral IP, then SNAT; each only if valid for that gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct ExternalIps<T> {
    /// Source NAT: an address shared with other guests, with a port range.
    #[serde(default)]
    pub snat: Option<SNatCfg<T>>,
    /// An address of this guest alone (outbound and inbound).
    #[serde(default)]
    pub ephemeral_ip: Option<ExternalIp<T>>,
    /// Addresses of this guest alone, movable between guests; flows are
    /// spread over them by hash.
    #[serde(default)]
    pub floating_ips: Vec<ExternalIp<T>>,
}

impl<T> Default for ExternalIps<T> {
    fn default() -> Self {
        Self { snat: None, ephemeral_ip: None, floating_ips: Vec::new() }
    }
}

/// An external address and the internet gateways it may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalIp<T> {
    pub ip: T,
    /// The internet gateways this address is valid for; `None` for any.
    #[serde(default)]
    pub igw: Option<Uuid>,
}

/// A source NAT address with the port range this guest owns on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SNatCfg<T> {
    pub ip: T,
    /// First port of the range (at least 1024).
    pub first_port: u16,
    /// Last port of the range (inclusive).
    pub last_port: u16,
    /// The internet gateway this address is valid for; `None` for any.
    #[serde(default)]
    pub igw: Option<Uuid>,
}

/// What DHCP and DHCPv6 hand out besides the address.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DhcpCfg {
    /// The guest's host name (option 12), if any.
    #[serde(default)]
    pub hostname: Option<String>,
    /// The guest's domain name (option 15, and the first DHCPv6 domain).
    #[serde(default)]
    pub domain: Option<String>,
    /// The domain search list (option 119, DHCPv6 option 24).
    #[serde(default)]
    pub search: Vec<String>,
    /// IPv4 DNS servers (option 6).
    #[serde(default)]
    pub dns4: Vec<Ipv4Addr>,
    /// IPv6 DNS servers (DHCPv6 option 23).
    #[serde(default)]
    pub dns6: Vec<Ipv6Addr>,
    /// Lease time in seconds; `None` for the default (one day).
    #[serde(default)]
    pub lease_secs: Option<u32>,
}

/// The lease time DHCP hands out when the configuration names none.
pub const DEFAULT_LEASE_SECS: u32 = 86_400;

/// A CIDR a port owns besides its private IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AttachedSubnet {
    pub cidr: IpCidr,
    /// External: reachable from the internet as it is (never NATed),
    /// through the boundary, and never from or to VPC-private addresses.
    /// Internal: routed inside the VPC like the private IP.
    pub external: bool,
}

/// A range the guest may forward for (a VPN or router appliance) in one
/// direction: `Out` lets it send from addresses in the range, `In` lets
/// it receive for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TransitCidr {
    pub cidr: IpCidr,
    pub dir: Direction,
}

/// A VPC this port's VPC is peered with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peering {
    /// The peer VPC's VNI.
    pub vni: Vni,
    /// The peer VPC's subnets (must not overlap ours or another peer's).
    pub subnets: Vec<IpCidr>,
}

/// What a firewall rule does with what it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FwAction {
    Allow,
    Deny,
}

/// The far end a firewall rule matches: the source of inbound traffic,
/// the destination of outbound traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FwHosts {
    Any,
    Ip(IpAddr),
    Subnet(IpCidr),
    /// Any guest of the VPC with this VNI (ours or a peer's); never
    /// traffic tagged as external.
    Vni(Vni),
}

/// The protocol a firewall rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FwProtocol {
    Any,
    Tcp,
    Udp,
    Icmp(Option<IcmpFilter>),
    Icmpv6(Option<IcmpFilter>),
    Arp,
    /// Any other IP protocol number.
    Other(u8),
}

/// An ICMP type and an optional inclusive code range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IcmpFilter {
    pub ty: u8,
    /// `(first, last)` codes; `None` for every code.
    #[serde(default)]
    pub codes: Option<(u8, u8)>,
}

/// A destination port or inclusive range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

/// One firewall rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FirewallRule {
    pub direction: Direction,
    /// Lower goes first; at equal priority deny before allow.
    pub priority: u16,
    pub action: FwAction,
    pub hosts: FwHosts,
    pub protocol: FwProtocol,
    /// Destination ports (TCP and UDP only); empty for any.
    #[serde(default)]
    pub ports: Vec<PortRange>,
}

/// Which table a route belongs to: system routes are the VPC's own
/// (subnets, the default route); custom routes are the user's, and win
/// over a system route of the same prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteClass {
    System,
    Custom,
}

/// Where a route sends traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouterTarget {
    /// Drop it (counted).
    Drop,
    /// The internet, through an internet gateway (any, or this one).
    InternetGateway(Option<Uuid>),
    /// A guest of this VPC acting as a router (its private IP).
    Ip(IpAddr),
    /// A subnet of this VPC: deliver to the destination guest itself.
    VpcSubnet(IpCidr),
    /// A peered VPC (its VNI): deliver to the destination guest there.
    PeerVpc(Vni),
}

/// One route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RouterEntry {
    pub dest: IpCidr,
    pub target: RouterTarget,
    pub class: RouteClass,
}

/// Where a guest lives: the V2P mapping of a VPC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct V2pMapping {
    /// The guest's VPC.
    pub vni: Vni,
    /// The guest's private address.
    pub ip: IpAddr,
    /// The guest's MAC (the inner destination MAC).
    pub mac: MacAddr,
    /// The underlay address of the host it runs on.
    pub host: Ipv6Addr,
}

/// A boundary tunnel endpoint (a switch that leads to the internet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TunnelEndpoint {
    /// Its underlay address.
    pub ip: Ipv6Addr,
    /// The VNI to use (normally [`BOUNDARY_VNI`]).
    pub vni: Vni,
}

/// A V2B mapping: which boundary endpoints lead to a range of internet
/// addresses. A flow picks one endpoint by hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct V2bMapping {
    pub prefix: IpCidr,
    pub boundaries: Vec<TunnelEndpoint>,
}

/// Everything needed to recreate a port: `opteadm dump-port` prints it
/// as JSON, and `opte-sim` builds ports from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// The port's name (`xde0`).
    pub name: String,
    pub cfg: VpcCfg,
    /// Firewall rules in the order they were given.
    #[serde(default)]
    pub fw_rules: Vec<FirewallRule>,
    #[serde(default)]
    pub routes: Vec<RouterEntry>,
}

/// Why a configuration was refused. Each names the offending value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CfgError {
    /// Neither IPv4 nor IPv6 is configured.
    NoFamily,
    /// An address lies outside the subnet it must be in.
    NotInSubnet { what: &'static str, ip: IpAddr, subnet: IpCidr },
    /// The MTU is outside the accepted range.
    BadMtu(u16),
    /// A MAC that cannot be a unicast NIC address.
    BadMac { what: &'static str, mac: MacAddr },
    /// A SNAT port range that is empty or reaches below 1024.
    BadPortRange { first: u16, last: u16 },
    /// A list is longer than its limit.
    TooMany { what: &'static str, max: usize },
    /// A name is empty, too long, or not a DNS name.
    BadName { what: &'static str, name: String },
    /// Two ranges that must be disjoint overlap.
    Overlap { what: &'static str, a: IpCidr, b: IpCidr },
    /// A peering with our own VNI, or the same VNI twice.
    BadPeer(Vni),
    /// An ICMP filter on a code range that is empty.
    BadIcmpCodes { first: u8, last: u8 },
    /// A firewall port range that is empty.
    BadFwPorts { first: u16, last: u16 },
    /// Ports given for a protocol that has none.
    PortsWithoutProtocol,
    /// A value of the wrong address family for where it is used.
    WrongFamily { what: &'static str },
    /// A boundary mapping without endpoints.
    NoBoundaries(IpCidr),
}

impl fmt::Display for CfgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoFamily => f.write_str("a port needs IPv4 or IPv6 settings (or both)"),
            Self::NotInSubnet { what, ip, subnet } => {
                write!(f, "{what} {ip} is not inside the VPC subnet {subnet}")
            }
            Self::BadMtu(m) => {
                write!(f, "MTU {m} is outside {}-{}", limits::MIN_MTU, limits::MAX_MTU)
            }
            Self::BadMac { what, mac } => {
                write!(f, "{what} {mac} is not a unicast MAC address")
            }
            Self::BadPortRange { first, last } => {
                write!(f, "SNAT port range {first}-{last} is empty or reaches below 1024")
            }
            Self::TooMany { what, max } => write!(f, "more than {max} {what}"),
            Self::BadName { what, name } => write!(f, "{what} {name:?} is not a valid DNS name"),
            Self::Overlap { what, a, b } => write!(f, "{what}: {a} overlaps {b}"),
            Self::BadPeer(v) => {
                write!(f, "cannot peer with VNI {v} (our own VNI, or peered twice)")
            }
            Self::BadIcmpCodes { first, last } => {
                write!(f, "ICMP code range {first}-{last} is empty")
            }
            Self::BadFwPorts { first, last } => write!(f, "port range {first}-{last} is empty"),
            Self::PortsWithoutProtocol => f.write_str("ports apply only to protocol TCP or UDP"),
            Self::WrongFamily { what } => write!(f, "{what} is of the wrong address family"),
            Self::NoBoundaries(p) => write!(f, "V2B mapping for {p} lists no boundary"),
        }
    }
}

fn check_len<T>(v: &[T], what: &'static str, max: usize) -> Result<(), CfgError> {
    if v.len() > max { Err(CfgError::TooMany { what, max }) } else { Ok(()) }
}

fn check_name(what: &'static str, name: &str) -> Result<(), CfgError> {
    let ok = !name.is_empty()
        && name.len() <= limits::MAX_NAME_LEN
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok { Ok(()) } else { Err(CfgError::BadName { what, name: String::from(name) }) }
}

fn check_snat<T>(s: &SNatCfg<T>) -> Result<(), CfgError> {
    if s.first_port < 1024 || s.first_port > s.last_port {
        return Err(CfgError::BadPortRange { first: s.first_port, last: s.last_port });
    }
    Ok(())
}

impl<T> ExternalIps<T> {
    fn validate(&self) -> Result<(), CfgError> {
        if let Some(s) = &self.snat {
            check_snat(s)?;
        }
        check_len(&self.floating_ips, "floating IPs", limits::MAX_FLOATING_IPS)
    }
}

impl VpcCfg {
    /// Check the whole configuration; the first problem found is the
    /// error.
    pub fn validate(&self) -> Result<(), CfgError> {
        if self.ipv4.is_none() && self.ipv6.is_none() {
            return Err(CfgError::NoFamily);
        }
        for (what, mac) in [("guest MAC", self.guest_mac), ("gateway MAC", self.gateway_mac)] {
            if mac.is_multicast() || mac == MacAddr::ZERO {
                return Err(CfgError::BadMac { what, mac });
            }
        }
        if !(limits::MIN_MTU..=limits::MAX_MTU).contains(&self.mtu) {
            return Err(CfgError::BadMtu(self.mtu));
        }
        if let Some(v4) = &self.ipv4 {
            let subnet = IpCidr::V4(v4.vpc_subnet);
            for (what, ip) in [("private IP", v4.private_ip), ("gateway IP", v4.gateway_ip)] {
                if !v4.vpc_subnet.contains(ip) {
                    return Err(CfgError::NotInSubnet { what, ip: IpAddr::V4(ip), subnet });
                }
            }
            v4.external.validate()?;
        }
        if let Some(v6) = &self.ipv6 {
            let subnet = IpCidr::V6(v6.vpc_subnet);
            for (what, ip) in [("private IP", v6.private_ip), ("gateway IP", v6.gateway_ip)] {
                if !v6.vpc_subnet.contains(ip) {
                    return Err(CfgError::NotInSubnet { what, ip: IpAddr::V6(ip), subnet });
                }
            }
            v6.external.validate()?;
        }
        self.dhcp.validate()?;
        check_len(&self.attached_subnets, "attached subnets", limits::MAX_ATTACHED_SUBNETS)?;
        check_len(&self.transit, "transit CIDRs", limits::MAX_TRANSIT_CIDRS)?;
        self.validate_peerings()
    }

    /// The VPC subnets of this port, one per configured family.
    pub fn vpc_subnets(&self) -> Vec<IpCidr> {
        let mut v = Vec::new();
        if let Some(c) = &self.ipv4 {
            v.push(IpCidr::V4(c.vpc_subnet));
        }
        if let Some(c) = &self.ipv6 {
            v.push(IpCidr::V6(c.vpc_subnet));
        }
        v
    }

    /// Peerings: not with ourselves, each VNI once, and no two of our
    /// subnets and the peers' overlapping.
    fn validate_peerings(&self) -> Result<(), CfgError> {
        check_len(&self.peerings, "peerings", limits::MAX_PEERINGS)?;
        let mut seen: Vec<(Vni, IpCidr)> =
            self.vpc_subnets().into_iter().map(|c| (self.vni, c)).collect();
        for p in &self.peerings {
            if p.vni == self.vni || self.peerings.iter().filter(|q| q.vni == p.vni).count() > 1 {
                return Err(CfgError::BadPeer(p.vni));
            }
            check_len(&p.subnets, "subnets of one peer", limits::MAX_PEER_SUBNETS)?;
            for c in &p.subnets {
                if let Some((_, other)) = seen.iter().find(|(_, o)| cidrs_overlap(o, c)) {
                    return Err(CfgError::Overlap { what: "peered VPC subnets", a: *c, b: *other });
                }
                seen.push((p.vni, *c));
            }
        }
        Ok(())
    }
}

/// True when two blocks of the same family share an address.
pub fn cidrs_overlap(a: &IpCidr, b: &IpCidr) -> bool {
    match (a, b) {
        (IpCidr::V4(a), IpCidr::V4(b)) => a.overlaps(b),
        (IpCidr::V6(a), IpCidr::V6(b)) => a.overlaps(b),
        _ => false,
    }
}

impl DhcpCfg {
    fn validate(&self) -> Result<(), CfgError> {
        if let Some(h) = &self.hostname {
            check_name("hostname", h)?;
        }
        if let Some(d) = &self.domain {
            check_name("domain", d)?;
        }
        check_len(&self.search, "search domains", limits::MAX_SEARCH_DOMAINS)?;
        for s in &self.search {
            check_name("search domain", s)?;
        }
        check_len(&self.dns4, "IPv4 DNS servers", limits::MAX_DNS_SERVERS)?;
        check_len(&self.dns6, "IPv6 DNS servers", limits::MAX_DNS_SERVERS)
    }

    /// The lease time to hand out.
    pub fn lease(&self) -> u32 {
        self.lease_secs.unwrap_or(DEFAULT_LEASE_SECS)
    }
}

impl FirewallRule {
    /// Check the rule's ranges and that ports go with TCP or UDP.
    pub fn validate(&self) -> Result<(), CfgError> {
        check_len(&self.ports, "ports in one rule", limits::MAX_FW_PORTS)?;
        for p in &self.ports {
            if p.first > p.last {
                return Err(CfgError::BadFwPorts { first: p.first, last: p.last });
            }
        }
        if !self.ports.is_empty() && !matches!(self.protocol, FwProtocol::Tcp | FwProtocol::Udp) {
            return Err(CfgError::PortsWithoutProtocol);
        }
        if let FwProtocol::Icmp(Some(f)) | FwProtocol::Icmpv6(Some(f)) = self.protocol
            && let Some((first, last)) = f.codes
            && first > last
        {
            return Err(CfgError::BadIcmpCodes { first, last });
        }
        Ok(())
    }
}

impl V2bMapping {
    /// Check that there is at least one boundary and not too many.
    pub fn validate(&self) -> Result<(), CfgError> {
        if self.boundaries.is_empty() {
            return Err(CfgError::NoBoundaries(self.prefix));
        }
        check_len(&self.boundaries, "boundaries for one prefix", limits::MAX_BOUNDARIES)
    }
}

impl RouterEntry {
    /// Check that an IP or subnet target is of the destination's family.
    pub fn validate(&self) -> Result<(), CfgError> {
        let v4 = matches!(self.dest, IpCidr::V4(_));
        let ok = match self.target {
            RouterTarget::Ip(ip) => ip.is_ipv4() == v4,
            RouterTarget::VpcSubnet(c) => matches!(c, IpCidr::V4(_)) == v4,
            _ => true,
        };
        if ok { Ok(()) } else { Err(CfgError::WrongFamily { what: "route target" }) }
    }
}
