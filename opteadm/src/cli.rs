//! The command line: every subcommand and its arguments (clap derive),
//! and the parsers of the values an operator types that are not plain
//! addresses (route targets, SNAT ranges, external IPs, flows). The man
//! page is generated from [`Cli`].

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand, ValueEnum};
use opte_api::{Direction, IpCidr, Ipv6Addr, MacAddr};
use oxide_vpc::api::{RouteClass, RouterTarget, Uuid};

/// Configure and inspect opte ports: the VPC network of each guest NIC.
///
/// opteadm talks to the xde driver: on illumos through /dev/xde, elsewhere
/// through the xde-host control socket (--ctl, the OPTE_CTL environment
/// variable, or /run/xde-host/ctl.sock). Read commands print aligned
/// tables, or stable JSON with --json. Errors are one line on standard
/// error and a non-zero exit status.
#[derive(Debug, Parser)]
#[command(name = "opteadm", disable_version_flag = true)]
pub struct Cli {
    /// The xde-host control socket (default: OPTE_CTL, else /dev/xde on
    /// illumos and /run/xde-host/ctl.sock elsewhere).
    #[arg(long, global = true, value_name = "PATH")]
    pub ctl: Option<PathBuf>,
    /// Print opteadm's version and API version, and the driver's API
    /// version.
    #[arg(short = 'V', long)]
    pub version: bool,
    /// The command.
    #[command(subcommand)]
    pub cmd: Option<Command>,
}

/// `--json` on a read command.
#[derive(Debug, Clone, Copy, Args)]
pub struct Output {
    /// Print stable machine-readable JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The port a command is about.
#[derive(Debug, Clone, Args)]
pub struct PortArg {
    /// The port (xde link name, such as xde0).
    #[arg(short, long, value_name = "NAME")]
    pub port: String,
}

/// Every subcommand, one per driver command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the ports and the underlay links.
    ListPorts(Output),
    /// Create a port.
    CreateXde(CreateXde),
    /// Delete a port.
    DeleteXde {
        /// The port's name.
        name: String,
    },
    /// Name the two underlay links encapsulated traffic uses (before any
    /// port is created).
    SetXdeUnderlay {
        /// The first underlay link.
        u1: String,
        /// The second underlay link.
        u2: String,
    },
    /// Forget the underlay links (refused while ports exist).
    ClearXdeUnderlay,
    /// Add one firewall rule; prints its id.
    ///
    /// The rule is words such as: dir=in action=allow priority=10
    /// protocol=TCP port=22 hosts=subnet=10.0.0.0/24. Keys: dir (in, out),
    /// action (allow, deny), priority (0-65535, lower first), protocol
    /// (any, TCP, UDP, ICMP, ICMPv6, ARP or a number), port (any or a
    /// list like 22,80,8000-8080), hosts (any, ip=ADDR, subnet=CIDR,
    /// vni=N), icmp-type, icmp-code.
    AddFwRule {
        #[command(flatten)]
        port: PortArg,
        /// The rule's fields.
        #[arg(required = true, num_args = 1.., value_name = "FIELD")]
        rule: Vec<String>,
    },
    /// Remove the firewall rule with this id (as add-fw-rule and
    /// dump-layer show it).
    RmFwRule {
        #[command(flatten)]
        port: PortArg,
        /// The rule's direction.
        #[arg(value_parser = parse_dir)]
        dir: Direction,
        /// The rule's id.
        id: u64,
    },
    /// Replace every firewall rule with the rules on standard input, one
    /// per line in add-fw-rule's syntax (blank lines and lines starting
    /// with # are skipped).
    SetFwRules {
        #[command(flatten)]
        port: PortArg,
    },
    /// Add a route (one with the same destination and class is replaced).
    ///
    /// TARGET is drop, igw (any internet gateway), igw=UUID, ip=ADDR
    /// (a guest acting as router), subnet=CIDR (a VPC subnet) or peer=VNI.
    AddRouterEntry(RouteArgs),
    /// Remove a route (destination, target and class must match).
    DelRouterEntry(RouteArgs),
    /// Add or replace where a guest lives (virtual to physical).
    SetV2p {
        /// The guest's private address.
        vpc_ip: IpAddr,
        /// The guest's MAC.
        #[arg(value_parser = parse_text::<MacAddr>)]
        vpc_mac: MacAddr,
        /// The underlay address of the guest's host.
        underlay_ip: Ipv6Addr,
        /// The guest's VPC.
        vni: u32,
    },
    /// Remove a V2P mapping.
    ClearV2p {
        /// The guest's private address.
        vpc_ip: IpAddr,
        /// The guest's VPC.
        vni: u32,
    },
    /// Show every V2P mapping.
    DumpV2p(Output),
    /// Add or replace the boundary endpoints of an internet prefix
    /// (virtual to boundary).
    SetV2b {
        /// The prefix.
        #[arg(value_parser = parse_text::<IpCidr>)]
        prefix: IpCidr,
        /// The boundary endpoints' underlay addresses.
        #[arg(required = true, num_args = 1..)]
        tunnel_endpoint: Vec<Ipv6Addr>,
        /// The VNI to reach the boundary with.
        #[arg(long, default_value_t = oxide_vpc::api::BOUNDARY_VNI)]
        vni: u32,
    },
    /// Remove a V2B mapping.
    ClearV2b {
        /// The prefix.
        #[arg(value_parser = parse_text::<IpCidr>)]
        prefix: IpCidr,
    },
    /// Show every V2B mapping.
    DumpV2b(Output),
    /// Replace a port's external addresses of the families named (an
    /// address's family, or --clear).
    SetExternalIps(SetExternalIps),
    /// Let the guest forward for a CIDR in one direction (a transit range).
    AllowCidr(CidrArgs),
    /// Stop the guest forwarding for a CIDR in one direction.
    RemoveCidr(CidrArgs),
    /// Attach a subnet to a port.
    AttachSubnet {
        #[command(flatten)]
        port: PortArg,
        /// The subnet.
        #[arg(value_parser = parse_text::<IpCidr>)]
        cidr: IpCidr,
        /// Reachable from the internet as it is (never NATed).
        #[arg(long)]
        external: bool,
    },
    /// Detach a subnet from a port.
    DetachSubnet {
        #[command(flatten)]
        port: PortArg,
        /// The subnet.
        #[arg(value_parser = parse_text::<IpCidr>)]
        cidr: IpCidr,
    },
    /// Peer the port's VPC with another VPC.
    AddPeering {
        #[command(flatten)]
        port: PortArg,
        /// The peer VPC's VNI.
        vni: u32,
        /// The peer VPC's subnets.
        #[arg(value_parser = parse_text::<IpCidr>, required = true, num_args = 1..)]
        subnets: Vec<IpCidr>,
    },
    /// Stop peering with a VPC.
    RemovePeering {
        #[command(flatten)]
        port: PortArg,
        /// The peer VPC's VNI.
        vni: u32,
    },
    /// List a port's layers in outbound order.
    ListLayers {
        #[command(flatten)]
        port: PortArg,
        #[command(flatten)]
        out: Output,
    },
    /// Show one layer's rules, flow tables and counters.
    DumpLayer {
        #[command(flatten)]
        port: PortArg,
        /// The layer (gateway, firewall, router, nat, overlay).
        layer: String,
        #[command(flatten)]
        out: Output,
    },
    /// Show a port's unified flow table.
    DumpUft {
        #[command(flatten)]
        port: PortArg,
        #[command(flatten)]
        out: Output,
    },
    /// Show a port's TCP flows and their states.
    DumpTcpFlows {
        #[command(flatten)]
        port: PortArg,
        #[command(flatten)]
        out: Output,
    },
    /// Empty a port's unified flow table (flows are rebuilt).
    ClearUft {
        #[command(flatten)]
        port: PortArg,
    },
    /// Empty one layer's flow tables, or every layer's.
    ClearLft {
        #[command(flatten)]
        port: PortArg,
        /// The layer; all when omitted.
        layer: Option<String>,
    },
    /// Show a port's counters: packets, every drop reason, layers, tables.
    Stats {
        #[command(flatten)]
        port: PortArg,
        #[command(flatten)]
        out: Output,
    },
    /// Print a port's whole configuration as the JSON opte-sim reads.
    DumpPort {
        #[command(flatten)]
        port: PortArg,
        #[command(flatten)]
        out: Output,
    },
    /// Explain one packet's path through a port, layer by layer, without
    /// changing any state.
    ///
    /// The packet is --hex BYTES (a whole frame; for --dir in, a Geneve
    /// underlay frame), or a flow from the guest such as
    /// "tcp 172.30.0.5:40000 -> 10.0.0.9:443", "udp [fd00::5]:5353 ->
    /// [fd00::9]:53" or "icmp 172.30.0.5 -> 8.8.8.8" (a TCP SYN, a UDP
    /// datagram, an echo request). Options go before the flow.
    Trace {
        #[command(flatten)]
        port: PortArg,
        /// out: from the guest; in: from the underlay.
        #[arg(long, default_value = "out", value_parser = parse_dir)]
        dir: Direction,
        /// The frame as hexadecimal bytes (spaces and colons ignored).
        #[arg(long, value_name = "HEX", conflicts_with = "flow")]
        hex: Option<String>,
        /// The flow, as words.
        #[arg(
            num_args = 1..,
            value_name = "FLOW",
            required_unless_present = "hex",
            allow_hyphen_values = true,
            trailing_var_arg = true
        )]
        flow: Vec<String>,
        #[command(flatten)]
        out: Output,
    },
}

/// `create-xde`: a configuration file, or the common settings as flags.
#[derive(Debug, Args)]
pub struct CreateXde {
    /// The port's name (an xde link name such as xde0).
    pub name: String,
    /// The whole configuration as JSON (a VpcCfg, as in dump-port's
    /// "cfg"); - reads standard input. Excludes the other flags.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["guest_mac", "vni"])]
    pub cfg: Option<PathBuf>,
    /// The guest's MAC.
    #[arg(value_parser = parse_text::<MacAddr>, long, required_unless_present = "cfg")]
    pub guest_mac: Option<MacAddr>,
    /// The MAC the gateway answers with.
    #[arg(value_parser = parse_text::<MacAddr>, long, default_value = "a8:40:25:ff:77:77")]
    pub gateway_mac: MacAddr,
    /// The VPC's VNI.
    #[arg(long, required_unless_present = "cfg")]
    pub vni: Option<u32>,
    /// This host's underlay address.
    #[arg(long, required_unless_present = "cfg")]
    pub phys_ip: Option<Ipv6Addr>,
    /// The guest's MTU.
    #[arg(long, default_value_t = 1500)]
    pub mtu: u16,
    /// The guest's private IPv4 address.
    #[arg(long, requires_all = ["gateway_ip", "vpc_subnet"])]
    pub private_ip: Option<std::net::Ipv4Addr>,
    /// The IPv4 gateway's address.
    #[arg(long)]
    pub gateway_ip: Option<std::net::Ipv4Addr>,
    /// The IPv4 VPC subnet.
    #[arg(value_parser = parse_text::<opte_api::Ipv4Cidr>, long)]
    pub vpc_subnet: Option<opte_api::Ipv4Cidr>,
    /// The guest's private IPv6 address.
    #[arg(long, requires_all = ["gateway_ipv6", "vpc_subnet6"])]
    pub private_ipv6: Option<Ipv6Addr>,
    /// The IPv6 gateway's address.
    #[arg(long)]
    pub gateway_ipv6: Option<Ipv6Addr>,
    /// The IPv6 VPC subnet.
    #[arg(value_parser = parse_text::<opte_api::Ipv6Cidr>, long)]
    pub vpc_subnet6: Option<opte_api::Ipv6Cidr>,
    #[command(flatten)]
    pub external: ExternalArgs,
    /// A DNS server DHCP hands out (repeatable).
    #[arg(long)]
    pub dns: Vec<IpAddr>,
    /// The guest's host name (DHCP).
    #[arg(long)]
    pub hostname: Option<String>,
    /// The guest's domain name (DHCP).
    #[arg(long)]
    pub domain: Option<String>,
}

/// External addresses (either family; the address says which).
#[derive(Debug, Clone, Args)]
pub struct ExternalArgs {
    /// A source NAT address and port range, IP:FIRST-LAST[@IGW-UUID]
    /// (IPv6 as [ADDR]:FIRST-LAST); at most one per family.
    #[arg(long, value_name = "SNAT")]
    pub snat: Vec<SnatArg>,
    /// The ephemeral address, IP[@IGW-UUID]; at most one per family.
    #[arg(long, value_name = "IP")]
    pub ephemeral_ip: Vec<ExtIpArg>,
    /// A floating address, IP[@IGW-UUID] (repeatable).
    #[arg(long, value_name = "IP")]
    pub floating_ip: Vec<ExtIpArg>,
}

/// `set-external-ips`.
#[derive(Debug, Args)]
pub struct SetExternalIps {
    #[command(flatten)]
    pub port: PortArg,
    #[command(flatten)]
    pub external: ExternalArgs,
    /// Replace this family's addresses even if none are given (so none
    /// remain).
    #[arg(long, value_enum)]
    pub clear: Vec<Family>,
}

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// `add-router-entry` and `del-router-entry`.
#[derive(Debug, Args)]
pub struct RouteArgs {
    #[command(flatten)]
    pub port: PortArg,
    /// The destination prefix.
    #[arg(value_parser = parse_text::<IpCidr>)]
    pub dest: IpCidr,
    /// Where it goes: drop, igw, igw=UUID, ip=ADDR, subnet=CIDR, peer=VNI.
    #[arg(value_parser = parse_target)]
    pub target: RouterTarget,
    /// The route table: system (the VPC's own) or custom (the user's).
    #[arg(long, default_value = "custom", value_parser = parse_class)]
    pub class: RouteClass,
}

/// `allow-cidr` and `remove-cidr`.
#[derive(Debug, Args)]
pub struct CidrArgs {
    #[command(flatten)]
    pub port: PortArg,
    /// The range.
    #[arg(value_parser = parse_text::<IpCidr>)]
    pub cidr: IpCidr,
    /// out: the guest may send from it; in: the guest may receive for it.
    #[arg(value_parser = parse_dir)]
    pub dir: Direction,
}

/// An external address with an optional internet gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtIpArg {
    /// The address.
    pub ip: IpAddr,
    /// The internet gateway it is for; any if `None`.
    pub igw: Option<Uuid>,
}

/// A SNAT address, port range and optional internet gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnatArg {
    /// The address.
    pub ip: IpAddr,
    /// The first port.
    pub first: u16,
    /// The last port.
    pub last: u16,
    /// The internet gateway it is for; any if `None`.
    pub igw: Option<Uuid>,
}

fn split_igw(s: &str) -> Result<(&str, Option<Uuid>), String> {
    match s.split_once('@') {
        Some((a, u)) => {
            let u = Uuid::parse_str(u).map_err(|e| format!("{u:?} is not a UUID: {e}"))?;
            Ok((a, Some(u)))
        }
        None => Ok((s, None)),
    }
}

impl FromStr for ExtIpArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (a, igw) = split_igw(s)?;
        let ip = a.parse().map_err(|_| format!("{a:?} is not an IP address"))?;
        Ok(Self { ip, igw })
    }
}

impl FromStr for SnatArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (a, igw) = split_igw(s)?;
        let (ip, range) = a
            .rsplit_once(':')
            .ok_or_else(|| format!("{a:?} is not IP:FIRST-LAST (IPv6 as [ADDR]:FIRST-LAST)"))?;
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        let ip = ip.parse().map_err(|_| format!("{ip:?} is not an IP address"))?;
        let (f, l) = range.split_once('-').ok_or_else(|| format!("{range:?} is not FIRST-LAST"))?;
        let first = f.parse().map_err(|_| format!("{f:?} is not a port"))?;
        let last = l.parse().map_err(|_| format!("{l:?} is not a port"))?;
        Ok(Self { ip, first, last, igw })
    }
}

/// Any value whose `FromStr` error is `Display` (the no_std address
/// types' errors are not `std::error::Error`).
pub fn parse_text<T: FromStr>(s: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e| format!("{e}"))
}

/// `in` or `out`.
pub fn parse_dir(s: &str) -> Result<Direction, String> {
    s.parse().map_err(|e| format!("{e}"))
}

/// `system` or `custom`.
pub fn parse_class(s: &str) -> Result<RouteClass, String> {
    match s {
        "system" => Ok(RouteClass::System),
        "custom" => Ok(RouteClass::Custom),
        _ => Err("expected system or custom".into()),
    }
}

/// A route target: `drop`, `igw`, `igw=UUID`, `ip=ADDR`, `subnet=CIDR`,
/// `peer=VNI`.
pub fn parse_target(s: &str) -> Result<RouterTarget, String> {
    let (kind, val) = s.split_once('=').unwrap_or((s, ""));
    let need = |what: &str| {
        if val.is_empty() { Err(format!("{kind} needs ={what}")) } else { Ok(()) }
    };
    match kind {
        "drop" if val.is_empty() => Ok(RouterTarget::Drop),
        "igw" if val.is_empty() => Ok(RouterTarget::InternetGateway(None)),
        "igw" => Uuid::parse_str(val)
            .map(|u| RouterTarget::InternetGateway(Some(u)))
            .map_err(|e| format!("{val:?} is not a UUID: {e}")),
        "ip" => {
            need("ADDR")?;
            val.parse().map(RouterTarget::Ip).map_err(|_| format!("{val:?} is not an IP address"))
        }
        "subnet" => {
            need("CIDR")?;
            val.parse().map(RouterTarget::VpcSubnet).map_err(|e| format!("{val:?}: {e}"))
        }
        "peer" => {
            need("VNI")?;
            val.parse::<u32>()
                .ok()
                .and_then(|v| opte_api::Vni::new(v).ok())
                .map(RouterTarget::PeerVpc)
                .ok_or_else(|| format!("{val:?} is not a VNI"))
        }
        _ => Err(format!("{s:?} is not drop, igw, igw=UUID, ip=ADDR, subnet=CIDR or peer=VNI")),
    }
}

/// A route target in the syntax [`parse_target`] reads.
pub fn target_text(t: &RouterTarget) -> String {
    match t {
        RouterTarget::Drop => "drop".into(),
        RouterTarget::InternetGateway(None) => "igw".into(),
        RouterTarget::InternetGateway(Some(u)) => format!("igw={u}"),
        RouterTarget::Ip(ip) => format!("ip={ip}"),
        RouterTarget::VpcSubnet(c) => format!("subnet={c}"),
        RouterTarget::PeerVpc(v) => format!("peer={v}"),
    }
}
