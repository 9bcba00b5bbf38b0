//! opteadm: the operator's command line for opte ports. Every subcommand
//! ([`cli::Command`]) is one driver command (`opte_api::OpteCmd`) sent
//! through `opte_ioctl`; read commands print an aligned [`table::Table`]
//! or, with `--json`, the reply itself as JSON (the serde form of the
//! `oxide_vpc::cmd` reply types, which is stable: fields are only ever
//! added with a new API version).
//!
//! [`run`] does one invocation and writes what it prints to a writer, so
//! tests can drive it in-process; `main` prints errors as one line.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::IpAddr;

use anyhow::{Context, Result, anyhow, bail};
use opte_api::{API_VERSION, Direction, OpteCmd, Vni};
use opte_ioctl::OpteHdl;
use oxide_vpc::api::*;
use oxide_vpc::cmd::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub mod cli;
pub mod table;

use cli::{Cli, Command, ExternalArgs, Family};
use table::Table;

/// Most lines `set-fw-rules` reads from standard input.
pub const MAX_RULE_LINES: usize = limits::MAX_FW_RULES * 4;

/// Run one invocation; what it prints goes to `out`, standard input (for
/// `set-fw-rules`) comes from `input`.
pub fn run(cli: Cli, out: &mut dyn Write, input: &mut dyn Read) -> Result<()> {
    let hdl = OpteHdl::open(cli.ctl.as_deref());
    if cli.version {
        writeln!(out, "opteadm {} (API version {API_VERSION})", env!("CARGO_PKG_VERSION"))?;
        out.flush()?;
        let v = hdl.api_version().context("cannot ask the driver for its API version")?;
        writeln!(out, "driver API version {v}")?;
        return Ok(());
    }
    let Some(cmd) = cli.cmd else {
        bail!("no command given (see opteadm --help)");
    };
    let text = run_cmd(&hdl, cmd, input)?;
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// Call the driver, naming the command (and port) when it fails.
fn call<Req: Serialize + ?Sized, Resp: DeserializeOwned>(
    hdl: &OpteHdl,
    cmd: OpteCmd,
    what: &str,
    req: &Req,
) -> Result<Resp> {
    hdl.call(cmd, req).map_err(|e| anyhow!("{}{what}: {e}", cmd.name()))
}

fn on(port: &str) -> String {
    format!(" on port {port}")
}

fn json<T: Serialize>(v: &T) -> Result<String> {
    let mut s = serde_json::to_string_pretty(v)?;
    s.push('\n');
    Ok(s)
}

fn vni(v: u32) -> Result<Vni> {
    Vni::new(v).map_err(|e| anyhow!("{e}"))
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".to_string(), T::to_string)
}

/// Run one command; the text to print.
fn run_cmd(hdl: &OpteHdl, cmd: Command, input: &mut dyn Read) -> Result<String> {
    use Command as C;
    use OpteCmd as O;
    let done = String::new();
    Ok(match cmd {
        C::ListPorts(o) => {
            let r: ListPortsResp = call(hdl, O::ListPorts, "", &())?;
            if o.json { json(&r)? } else { list_ports_text(&r) }
        }
        C::CreateXde(c) => {
            let name = c.name.clone();
            let cfg = create_cfg(c, input)?;
            call::<_, ()>(hdl, O::CreateXde, &format!(" {name}"), &CreateXdeReq { name, cfg })?;
            done
        }
        C::DeleteXde { name } => {
            call::<_, ()>(hdl, O::DeleteXde, &format!(" {name}"), &DeleteXdeReq { name })?;
            done
        }
        C::SetXdeUnderlay { u1, u2 } => {
            call::<_, ()>(hdl, O::SetXdeUnderlay, "", &SetXdeUnderlayReq { u1, u2 })?;
            done
        }
        C::ClearXdeUnderlay => {
            call::<_, ()>(hdl, O::ClearXdeUnderlay, "", &())?;
            done
        }
        C::AddFwRule { port, rule } => {
            let text = rule.join(" ");
            let rule: FirewallRule =
                text.parse().map_err(|e| anyhow!("add-fw-rule: bad rule: {e}"))?;
            let r: AddFwRuleResp =
                call(hdl, O::AddFwRule, &on(&port.port), &AddFwRuleReq { port: port.port, rule })?;
            format!("{}\n", r.id)
        }
        C::RmFwRule { port, dir, id } => {
            let req = RmFwRuleReq { port: port.port.clone(), dir, id };
            let _: RmFwRuleResp = call(hdl, O::RmFwRule, &on(&port.port), &req)?;
            done
        }
        C::SetFwRules { port } => {
            let rules = read_rules(input)?;
            let req = SetFwRulesReq { port: port.port.clone(), rules };
            call::<_, ()>(hdl, O::SetFwRules, &on(&port.port), &req)?;
            done
        }
        C::AddRouterEntry(r) => {
            let entry = RouterEntry { dest: r.dest, target: r.target, class: r.class };
            let req = RouterEntryReq { port: r.port.port.clone(), entry };
            call::<_, ()>(hdl, O::AddRouterEntry, &on(&r.port.port), &req)?;
            done
        }
        C::DelRouterEntry(r) => {
            let entry = RouterEntry { dest: r.dest, target: r.target, class: r.class };
            let req = RouterEntryReq { port: r.port.port.clone(), entry };
            call::<_, ()>(hdl, O::DelRouterEntry, &on(&r.port.port), &req)?;
            done
        }
        C::SetV2p { vpc_ip, vpc_mac, underlay_ip, vni: v } => {
            let mapping = V2pMapping { vni: vni(v)?, ip: vpc_ip, mac: vpc_mac, host: underlay_ip };
            call::<_, ()>(hdl, O::SetV2p, "", &SetV2pReq { mapping })?;
            done
        }
        C::ClearV2p { vpc_ip, vni: v } => {
            call::<_, ()>(hdl, O::ClearV2p, "", &ClearV2pReq { vni: vni(v)?, ip: vpc_ip })?;
            done
        }
        C::DumpV2p(o) => {
            let r: DumpV2pResp = call(hdl, O::DumpV2p, "", &())?;
            if o.json {
                json(&r)?
            } else {
                let mut t = Table::new(&["VNI", "IP", "MAC", "HOST"]);
                for m in &r.mappings {
                    t.row(vec![
                        m.vni.to_string(),
                        m.ip.to_string(),
                        m.mac.to_string(),
                        m.host.to_string(),
                    ]);
                }
                t.render()
            }
        }
        C::SetV2b { prefix, tunnel_endpoint, vni: v } => {
            let v = vni(v)?;
            let boundaries =
                tunnel_endpoint.into_iter().map(|ip| TunnelEndpoint { ip, vni: v }).collect();
            let mapping = V2bMapping { prefix, boundaries };
            call::<_, ()>(hdl, O::SetV2b, "", &SetV2bReq { mapping })?;
            done
        }
        C::ClearV2b { prefix } => {
            call::<_, ()>(hdl, O::ClearV2b, "", &ClearV2bReq { prefix })?;
            done
        }
        C::DumpV2b(o) => {
            let r: DumpV2bResp = call(hdl, O::DumpV2b, "", &())?;
            if o.json {
                json(&r)?
            } else {
                let mut t = Table::new(&["PREFIX", "BOUNDARIES"]);
                for m in &r.mappings {
                    let b: Vec<String> =
                        m.boundaries.iter().map(|e| format!("{} (VNI {})", e.ip, e.vni)).collect();
                    t.row(vec![m.prefix.to_string(), b.join(", ")]);
                }
                t.render()
            }
        }
        C::SetExternalIps(s) => {
            let (mut v4, mut v6) = external(&s.external)?;
            for f in &s.clear {
                match f {
                    Family::V4 => v4 = Some(v4.unwrap_or_default()),
                    Family::V6 => v6 = Some(v6.unwrap_or_default()),
                }
            }
            if v4.is_none() && v6.is_none() {
                bail!("set-external-ips: give addresses, or --clear v4/v6 to remove a family's");
            }
            let req = SetExternalIpsReq { port: s.port.port.clone(), v4, v6 };
            call::<_, ()>(hdl, O::SetExternalIps, &on(&s.port.port), &req)?;
            done
        }
        C::AllowCidr(c) => {
            let req = CidrReq {
                port: c.port.port.clone(),
                transit: TransitCidr { cidr: c.cidr, dir: c.dir },
            };
            call::<_, ()>(hdl, O::AllowCidr, &on(&c.port.port), &req)?;
            done
        }
        C::RemoveCidr(c) => {
            let req = CidrReq {
                port: c.port.port.clone(),
                transit: TransitCidr { cidr: c.cidr, dir: c.dir },
            };
            call::<_, ()>(hdl, O::RemoveCidr, &on(&c.port.port), &req)?;
            done
        }
        C::AttachSubnet { port, cidr, external } => {
            let req = AttachSubnetReq {
                port: port.port.clone(),
                subnet: AttachedSubnet { cidr, external },
            };
            call::<_, ()>(hdl, O::AttachSubnet, &on(&port.port), &req)?;
            done
        }
        C::DetachSubnet { port, cidr } => {
            let req = DetachSubnetReq { port: port.port.clone(), cidr };
            call::<_, ()>(hdl, O::DetachSubnet, &on(&port.port), &req)?;
            done
        }
        C::AddPeering { port, vni: v, subnets } => {
            let req = AddPeeringReq {
                port: port.port.clone(),
                peering: Peering { vni: vni(v)?, subnets },
            };
            call::<_, ()>(hdl, O::AddPeering, &on(&port.port), &req)?;
            done
        }
        C::RemovePeering { port, vni: v } => {
            let req = RemovePeeringReq { port: port.port.clone(), vni: vni(v)? };
            call::<_, ()>(hdl, O::RemovePeering, &on(&port.port), &req)?;
            done
        }
        C::ListLayers { port, out } => {
            let r: ListLayersResp =
                call(hdl, O::ListLayers, &on(&port.port), &PortReq { port: port.port.clone() })?;
            if out.json {
                json(&r)?
            } else {
                let mut t = Table::new(&[
                    "NAME",
                    "RULES IN",
                    "RULES OUT",
                    "FLOWS IN",
                    "FLOWS OUT",
                    "DEFAULT IN",
                    "DEFAULT OUT",
                ]);
                for l in &r.layers {
                    t.row(vec![
                        l.name.clone(),
                        l.rules_in.to_string(),
                        l.rules_out.to_string(),
                        l.lft_in.to_string(),
                        l.lft_out.to_string(),
                        l.default_in.clone(),
                        l.default_out.clone(),
                    ]);
                }
                t.render()
            }
        }
        C::DumpLayer { port, layer, out } => {
            let req = DumpLayerReq { port: port.port.clone(), layer };
            let r: DumpLayerResp = call(hdl, O::DumpLayer, &on(&port.port), &req)?;
            if out.json { json(&r)? } else { dump_layer_text(&r) }
        }
        C::DumpUft { port, out } => {
            let r: DumpUftResp =
                call(hdl, O::DumpUft, &on(&port.port), &PortReq { port: port.port.clone() })?;
            if out.json {
                json(&r)?
            } else {
                let mut t = Table::new(&["DIR", "FLOW", "HITS", "TRANSFORMATION"]);
                for (d, flows) in [("in", &r.in_flows), ("out", &r.out_flows)] {
                    for f in flows {
                        t.row(vec![
                            d.to_string(),
                            f.flow.to_string(),
                            f.hits.to_string(),
                            f.xform.clone(),
                        ]);
                    }
                }
                let mut s = format!(
                    "unified flow table: {} in, {} out (limit {} per direction)\n",
                    r.in_flows.len(),
                    r.out_flows.len(),
                    r.limit
                );
                s.push_str(&t.render());
                s
            }
        }
        C::DumpTcpFlows { port, out } => {
            let r: DumpTcpFlowsResp =
                call(hdl, O::DumpTcpFlows, &on(&port.port), &PortReq { port: port.port.clone() })?;
            if out.json {
                json(&r)?
            } else {
                let mut t = Table::new(&["FLOW", "STATE"]);
                for f in &r.flows {
                    t.row(vec![f.flow.to_string(), f.state.clone()]);
                }
                t.render()
            }
        }
        C::ClearUft { port } => {
            call::<_, ()>(hdl, O::ClearUft, &on(&port.port), &PortReq { port: port.port.clone() })?;
            done
        }
        C::ClearLft { port, layer } => {
            let req = ClearLftReq { port: port.port.clone(), layer };
            call::<_, ()>(hdl, O::ClearLft, &on(&port.port), &req)?;
            done
        }
        C::Stats { port, out } => {
            let r: StatsResp =
                call(hdl, O::Stats, &on(&port.port), &PortReq { port: port.port.clone() })?;
            if out.json { json(&r)? } else { stats_text(&r) }
        }
        C::DumpPort { port, out: _ } => {
            let r: DumpPortResp =
                call(hdl, O::DumpPort, &on(&port.port), &PortReq { port: port.port.clone() })?;
            json(&r)?
        }
        C::Trace { port, dir, hex, flow, out } => {
            let frame = match hex {
                Some(h) => parse_hex(&h)?,
                None => {
                    if dir != Direction::Out {
                        bail!(
                            "trace: a flow describes a packet from the guest; use --hex for --dir in"
                        );
                    }
                    let spec: DumpPortResp = call(
                        hdl,
                        O::DumpPort,
                        &on(&port.port),
                        &PortReq { port: port.port.clone() },
                    )?;
                    flow_frame(&flow.join(" "), &spec.0.cfg)?
                }
            };
            let req = TraceReq { port: port.port.clone(), dir, frame };
            let r: TraceResp = call(hdl, O::Trace, &on(&port.port), &req)?;
            if out.json { json(&r)? } else { trace_text(&r) }
        }
    })
}

/// `create-xde`'s configuration: the file, or the flags.
fn create_cfg(c: cli::CreateXde, input: &mut dyn Read) -> Result<VpcCfg> {
    if let Some(path) = &c.cfg {
        let text = if path.as_os_str() == "-" {
            let mut s = String::new();
            input.take(MAX_CFG_BYTES).read_to_string(&mut s)?;
            s
        } else {
            std::fs::read_to_string(path)
                .with_context(|| format!("create-xde: cannot read {}", path.display()))?
        };
        return serde_json::from_str(&text)
            .map_err(|e| anyhow!("create-xde: {}: {e}", path.display()));
    }
    let need = |what: &str| anyhow!("create-xde: --{what} is required without --cfg");
    let (v4, v6) = external(&c.external)?;
    let ipv4 = match (c.private_ip, c.gateway_ip, c.vpc_subnet) {
        (Some(private_ip), Some(gateway_ip), Some(vpc_subnet)) => {
            Some(Ipv4Cfg { vpc_subnet, private_ip, gateway_ip, external: v4.unwrap_or_default() })
        }
        (None, None, None) => None,
        _ => bail!("create-xde: IPv4 needs --private-ip, --gateway-ip and --vpc-subnet"),
    };
    let ipv6 = match (c.private_ipv6, c.gateway_ipv6, c.vpc_subnet6) {
        (Some(private_ip), Some(gateway_ip), Some(vpc_subnet)) => {
            Some(Ipv6Cfg { vpc_subnet, private_ip, gateway_ip, external: v6.unwrap_or_default() })
        }
        (None, None, None) => None,
        _ => bail!("create-xde: IPv6 needs --private-ipv6, --gateway-ipv6 and --vpc-subnet6"),
    };
    let mut dhcp = DhcpCfg { hostname: c.hostname, domain: c.domain, ..Default::default() };
    for d in c.dns {
        match d {
            IpAddr::V4(a) => dhcp.dns4.push(a),
            IpAddr::V6(a) => dhcp.dns6.push(a),
        }
    }
    Ok(VpcCfg {
        guest_mac: c.guest_mac.ok_or_else(|| need("guest-mac"))?,
        gateway_mac: c.gateway_mac,
        vni: vni(c.vni.ok_or_else(|| need("vni"))?)?,
        phys_ip: c.phys_ip.ok_or_else(|| need("phys-ip"))?,
        mtu: c.mtu,
        ipv4,
        ipv6,
        dhcp,
        attached_subnets: Vec::new(),
        transit: Vec::new(),
        peerings: Vec::new(),
    })
}

/// Most bytes of a configuration read from standard input.
const MAX_CFG_BYTES: u64 = 1 << 20;

type Ext4 = ExternalIps<std::net::Ipv4Addr>;
type Ext6 = ExternalIps<std::net::Ipv6Addr>;

/// The external addresses given, per family (`None` for a family none
/// was given for).
fn external(a: &ExternalArgs) -> Result<(Option<Ext4>, Option<Ext6>)> {
    let mut v4: Option<Ext4> = None;
    let mut v6: Option<Ext6> = None;
    for s in &a.snat {
        match s.ip {
            IpAddr::V4(ip) => {
                let e = v4.get_or_insert_with(Default::default);
                if e.snat.is_some() {
                    bail!("only one IPv4 --snat");
                }
                e.snat = Some(SNatCfg { ip, first_port: s.first, last_port: s.last, igw: s.igw });
            }
            IpAddr::V6(ip) => {
                let e = v6.get_or_insert_with(Default::default);
                if e.snat.is_some() {
                    bail!("only one IPv6 --snat");
                }
                e.snat = Some(SNatCfg { ip, first_port: s.first, last_port: s.last, igw: s.igw });
            }
        }
    }
    for x in &a.ephemeral_ip {
        match x.ip {
            IpAddr::V4(ip) => {
                let e = v4.get_or_insert_with(Default::default);
                if e.ephemeral_ip.is_some() {
                    bail!("only one IPv4 --ephemeral-ip");
                }
                e.ephemeral_ip = Some(ExternalIp { ip, igw: x.igw });
            }
            IpAddr::V6(ip) => {
                let e = v6.get_or_insert_with(Default::default);
                if e.ephemeral_ip.is_some() {
                    bail!("only one IPv6 --ephemeral-ip");
                }
                e.ephemeral_ip = Some(ExternalIp { ip, igw: x.igw });
            }
        }
    }
    for x in &a.floating_ip {
        match x.ip {
            IpAddr::V4(ip) => v4
                .get_or_insert_with(Default::default)
                .floating_ips
                .push(ExternalIp { ip, igw: x.igw }),
            IpAddr::V6(ip) => v6
                .get_or_insert_with(Default::default)
                .floating_ips
                .push(ExternalIp { ip, igw: x.igw }),
        }
    }
    Ok((v4, v6))
}

/// The firewall rules on standard input, one per line; an error names the
/// line and the field.
pub fn read_rules(input: &mut dyn Read) -> Result<Vec<FirewallRule>> {
    let mut text = String::new();
    let max = (MAX_RULE_LINES * (MAX_RULE_TEXT + 1)) as u64;
    input.take(max).read_to_string(&mut text).context("set-fw-rules: cannot read the rules")?;
    let mut rules = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if n >= MAX_RULE_LINES {
            bail!("set-fw-rules: more than {MAX_RULE_LINES} lines");
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let rule: FirewallRule =
            line.parse().map_err(|e| anyhow!("set-fw-rules: line {}: {e}", n + 1))?;
        rules.push(rule);
    }
    Ok(rules)
}

fn list_ports_text(r: &ListPortsResp) -> String {
    let mut s = match &r.underlay {
        Some(u) => format!("underlay: {} {}\n", u.u1, u.u2),
        None => "underlay: not set\n".to_string(),
    };
    let mut t = Table::new(&["NAME", "MAC", "VNI", "IPv4", "IPv6", "UNDERLAY IP", "STATE"]);
    for p in &r.ports {
        t.row(vec![
            p.name.clone(),
            p.mac.to_string(),
            p.vni.to_string(),
            opt(&p.ipv4),
            opt(&p.ipv6),
            p.phys_ip.to_string(),
            p.state.clone(),
        ]);
    }
    s.push_str(&t.render());
    s
}

fn dump_layer_text(r: &DumpLayerResp) -> String {
    let mut s = format!("layer {}\n", r.name);
    for (dir, default, rules, flows) in [
        ("inbound", &r.default_in, &r.rules_in, r.lft_in),
        ("outbound", &r.default_out, &r.rules_out, r.lft_out),
    ] {
        let _ = writeln!(s, "\n{dir} rules (default {default}; {flows} flows)");
        let mut t = Table::new(&["ID", "PRIORITY", "HITS", "ACTION", "RULE"]);
        for x in rules {
            t.row(vec![
                x.id.to_string(),
                x.priority.to_string(),
                x.hits.to_string(),
                x.action.clone(),
                x.rule.clone().unwrap_or_default(),
            ]);
        }
        s.push_str(&t.render());
    }
    s.push_str("\ncounters\n");
    let mut t = Table::new(&["COUNTER", "VALUE"]);
    for (k, v) in &r.counters {
        t.row(vec![k.clone(), v.to_string()]);
    }
    s.push_str(&t.render());
    s
}

fn stats_text(r: &StatsResp) -> String {
    let mut t = Table::new(&["COUNTER", "VALUE"]);
    for (k, v) in &r.port {
        t.row(vec![k.clone(), v.to_string()]);
    }
    let mut s = format!("port\n{}", t.render());
    for (name, counters) in &r.layers {
        let mut t = Table::new(&["COUNTER", "VALUE"]);
        for (k, v) in counters {
            t.row(vec![k.clone(), v.to_string()]);
        }
        let _ = write!(s, "\nlayer {name}\n{}", t.render());
    }
    let mut t = Table::new(&[
        "TABLE", "LEN", "LIMIT", "INSERTS", "FULL", "NOMEM", "EXPIRED", "EVICTED", "REMOVED",
    ]);
    for (name, c) in &r.tables {
        t.row(vec![
            name.clone(),
            c.len.to_string(),
            c.limit.to_string(),
            c.inserts.to_string(),
            c.full_drops.to_string(),
            c.alloc_failures.to_string(),
            c.expired.to_string(),
            c.evicted.to_string(),
            c.removed.to_string(),
        ]);
    }
    let _ = write!(s, "\nflow tables\n{}", t.render());
    s
}

/// A trace as lines: the flow, each layer's decision (as `opte-sim`
/// prints them), and the verdict.
pub fn trace_text(r: &TraceResp) -> String {
    let mut s = match &r.flow {
        Some(f) => format!("flow {f}\n"),
        None => "no flow (not IP)\n".to_string(),
    };
    if r.uft_hit {
        s.push_str("UFT hit: cached transformation (no layer visited)\n");
    }
    for step in &r.steps {
        let _ = writeln!(s, "{:<9} {}: {}", step.layer, step.decision, step.action);
    }
    match &r.reason {
        Some(why) => {
            let _ = writeln!(s, "-> {}: {why}", r.verdict);
        }
        None => {
            let _ = writeln!(s, "-> {}", r.verdict);
        }
    }
    s
}

/// Bytes from hexadecimal text (whitespace, `:` and `0x` ignored).
pub fn parse_hex(h: &str) -> Result<Vec<u8>> {
    let digits: Vec<u8> =
        h.replace("0x", "").bytes().filter(|b| !b.is_ascii_whitespace() && *b != b':').collect();
    if !digits.len().is_multiple_of(2) {
        bail!("trace: --hex has an odd number of digits");
    }
    if digits.len() / 2 > MAX_TRACE_FRAME {
        bail!("trace: a frame has at most {MAX_TRACE_FRAME} bytes");
    }
    digits
        .chunks(2)
        .map(|p| {
            std::str::from_utf8(p).ok().and_then(|t| u8::from_str_radix(t, 16).ok()).ok_or_else(
                || anyhow!("trace: --hex: {:?} is not a hex byte", String::from_utf8_lossy(p)),
            )
        })
        .collect()
}

/// An endpoint `ADDR`, `ADDR:PORT` or `[V6ADDR]:PORT`.
fn endpoint(s: &str, want_port: bool) -> Result<(IpAddr, u16)> {
    let bad =
        || anyhow!("trace: {s:?} is not {}", if want_port { "ADDR:PORT" } else { "an address" });
    if !want_port {
        let a = s.trim_start_matches('[').trim_end_matches(']');
        return Ok((a.parse().map_err(|_| bad())?, 0));
    }
    let (a, p) = s.rsplit_once(':').ok_or_else(bad)?;
    let a = a.trim_start_matches('[').trim_end_matches(']');
    Ok((a.parse().map_err(|_| bad())?, p.parse().map_err(|_| bad())?))
}

/// A guest frame for a flow `PROTO SRC -> DST` from the port's guest MAC
/// to its gateway MAC: a TCP SYN, a UDP datagram or an ICMP echo request.
pub fn flow_frame(flow: &str, cfg: &VpcCfg) -> Result<Vec<u8>> {
    use etherparse::PacketBuilder;
    let words: Vec<&str> = flow.split_whitespace().collect();
    let [proto, src, arrow, dst] = words.as_slice() else {
        bail!("trace: a flow is PROTO SRC -> DST, such as: tcp 172.30.0.5:40000 -> 10.0.0.9:443");
    };
    if *arrow != "->" {
        bail!("trace: expected -> between the endpoints, found {arrow:?}");
    }
    let proto = proto.to_ascii_lowercase();
    let ports = matches!(proto.as_str(), "tcp" | "udp");
    if !ports && proto != "icmp" {
        bail!("trace: protocol {proto:?} is not tcp, udp or icmp");
    }
    let (s, sp) = endpoint(src, ports)?;
    let (d, dp) = endpoint(dst, ports)?;
    let eth = PacketBuilder::ethernet2(cfg.guest_mac.into(), cfg.gateway_mac.into());
    let ip = match (s, d) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
        _ => bail!("trace: {s} and {d} are of different families"),
    };
    let payload: &[u8] = if proto == "udp" { b"opteadm trace" } else { &[] };
    let mut out = Vec::new();
    let built = match proto.as_str() {
        "tcp" => ip.tcp(sp, dp, 1, 64240).syn().write(&mut out, payload),
        "udp" => ip.udp(sp, dp).write(&mut out, payload),
        _ if s.is_ipv4() => ip.icmpv4_echo_request(0x0a0b, 1).write(&mut out, payload),
        _ => ip.icmpv6_echo_request(0x0a0b, 1).write(&mut out, payload),
    };
    built.map_err(|e| anyhow!("trace: cannot build the frame: {e}"))?;
    Ok(out)
}

/// The whole CLI, for the man page and tests.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Parse an argument list (for tests).
pub fn parse<I, T>(args: I) -> std::result::Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    <Cli as clap::Parser>::try_parse_from(args)
}

/// The man page `opteadm.8`: clap_mangen's page for the whole command,
/// then a COMMANDS section with every subcommand's usage, description
/// and arguments. Deterministic (no date), so a test can check that the
/// committed page is current.
pub fn man_page() -> Vec<u8> {
    let cmd = command();
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = clap_mangen::Man::new(cmd.clone()).section("8").render(&mut out);
    let mut s = String::from(".SH COMMANDS\n");
    for sub in cmd.get_subcommands() {
        let usage = sub.clone().render_usage().to_string();
        let usage = usage.trim_start_matches("Usage: ").trim();
        let _ = writeln!(s, ".SS \"opteadm {}\"", roff(usage));
        let about = sub.get_long_about().or(sub.get_about()).map(|a| a.to_string());
        for para in about.unwrap_or_default().split("\n\n") {
            let _ = writeln!(s, ".PP\n{}", roff(&para.replace('\n', " ")));
        }
        for a in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            if matches!(a.get_id().as_str(), "help" | "ctl") {
                continue;
            }
            let names: Vec<String> = a
                .get_short()
                .map(|c| format!("-{c}"))
                .into_iter()
                .chain(a.get_long().map(|l| format!("--{l}")))
                .collect();
            let value = a
                .get_value_names()
                .map(|v| v.iter().map(|n| format!("<{n}>")).collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|| format!("<{}>", a.get_id().as_str().to_uppercase()));
            let head = if names.is_empty() {
                value
            } else if a.get_action().takes_values() {
                format!("{} {value}", names.join(", "))
            } else {
                names.join(", ")
            };
            let help =
                a.get_long_help().or(a.get_help()).map(|h| h.to_string()).unwrap_or_default();
            let _ = writeln!(s, ".TP\n\\fB{}\\fR\n{}", roff(&head), roff(&help.replace('\n', " ")));
        }
    }
    out.extend_from_slice(s.as_bytes());
    out
}

/// Text escaped for roff: backslashes and hyphens, and a leading control
/// character.
fn roff(t: &str) -> String {
    let e = t.replace('\\', "\\e").replace('-', "\\-");
    if e.starts_with('.') || e.starts_with('\'') { format!("\\&{e}") } else { e }
}
