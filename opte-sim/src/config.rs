//! The simulator's input: a JSON document naming the hosts, their ports
//! and address mappings, the boundary endpoints, and the packets to
//! inject. The port and mapping types are the control API's own
//! ([`PortSpec`], [`V2pMapping`], [`V2bMapping`] from `oxide_vpc::api`),
//! so the output of `opteadm dump-port` can be pasted into a host's
//! `ports` list and replayed here.
//!
//! [`SimConfig::load`] reads and checks a document; every problem is an
//! error that names where it is (`hosts[1].ports[0]: ...`), never a
//! panic. `examples/two-hosts.json` is a complete example.

use std::collections::BTreeSet;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use oxide_vpc::api::{PortSpec, V2bMapping, V2pMapping};
use serde::{Deserialize, Serialize};

/// Hosts in one simulation.
pub const MAX_HOSTS: usize = 64;
/// Ports on one simulated host.
pub const MAX_PORTS_PER_HOST: usize = 256;
/// Boundary endpoints in one simulation.
pub const MAX_BOUNDARIES: usize = 16;
/// Injections in one simulation (a pcap file counts once per frame).
pub const MAX_INJECTIONS: usize = 100_000;
/// The largest frame accepted as input.
pub const MAX_FRAME_LEN: usize = 65_535;

/// The whole input document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// The hosts (sleds), each with its ports.
    pub hosts: Vec<HostCfg>,
    /// Boundary tunnel endpoints: the way to the internet.
    #[serde(default)]
    pub boundaries: Vec<BoundaryCfg>,
    /// The packets to inject, in order.
    #[serde(default)]
    pub packets: Vec<Injection>,
}

/// One host: its underlay address, its ports and its host-wide mappings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostCfg {
    /// A name for reports and `at` references (`sled-a`).
    pub name: String,
    /// The host's underlay IPv6 address: encapsulated frames to it are
    /// delivered here.
    pub phys_ip: Ipv6Addr,
    /// The host's ports, as `opteadm dump-port` prints them.
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    /// Virtual-to-physical mappings this host knows.
    #[serde(default)]
    pub v2p: Vec<V2pMapping>,
    /// Virtual-to-boundary mappings this host knows.
    #[serde(default)]
    pub v2b: Vec<V2bMapping>,
}

/// A boundary tunnel endpoint (a switch leading to the internet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoundaryCfg {
    /// A name for reports and `at` references (`boundary`).
    pub name: String,
    /// Its underlay address: encapsulated frames to it leave to the
    /// internet.
    pub ip: Ipv6Addr,
}

/// One packet (or pcap file of packets) to inject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Injection {
    /// A label for the report; defaults to the packet's number.
    #[serde(default)]
    pub name: Option<String>,
    /// Where it enters: `HOST/PORT` (a frame the guest sends), `HOST` (a
    /// Geneve frame arriving on the host's underlay), or a boundary's
    /// name (a frame from the internet: either a Geneve frame, or a plain
    /// frame to an external IP, which the boundary encapsulates to the
    /// host whose port owns that address).
    pub at: String,
    /// The frame as hexadecimal (whitespace and `:` are ignored).
    #[serde(default)]
    pub hex: Option<String>,
    /// A pcap file of frames, relative to the config file; each frame is
    /// injected in turn.
    #[serde(default)]
    pub pcap: Option<PathBuf>,
    /// Seconds since the start of the simulation at which it is
    /// injected (flows idle past their timeout expire first). Must not
    /// go backwards.
    #[serde(default)]
    pub time: u64,
    /// If true, whoever receives the packet answers it once (a guest or
    /// the internet): an ICMP echo request gets a reply, a UDP datagram
    /// comes back with its ports swapped, a TCP SYN gets a SYN-ACK and
    /// other TCP segments an ACK.
    #[serde(default)]
    pub reply: bool,
}

/// Where an injection enters, resolved against the hosts and boundaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A guest sends it: `(host, port)` indices.
    Guest(usize, usize),
    /// It arrives on a host's underlay.
    Underlay(usize),
    /// It comes from the internet through this boundary.
    Boundary(usize),
}

impl SimConfig {
    /// Read and check a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        let cfg = Self::parse(&text).with_context(|| format!("config {}", path.display()))?;
        Ok(cfg)
    }

    /// Parse and check a config document.
    pub fn parse(text: &str) -> Result<Self> {
        let cfg: SimConfig = serde_json::from_str(text).context("not a valid simulator config")?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Check names, limits and every port configuration.
    pub fn validate(&self) -> Result<()> {
        if self.hosts.is_empty() {
            bail!("the config has no hosts");
        }
        if self.hosts.len() > MAX_HOSTS {
            bail!("more than {MAX_HOSTS} hosts");
        }
        if self.boundaries.len() > MAX_BOUNDARIES {
            bail!("more than {MAX_BOUNDARIES} boundaries");
        }
        let mut names = BTreeSet::new();
        let mut ips = BTreeSet::new();
        for (i, h) in self.hosts.iter().enumerate() {
            check_name(&h.name).with_context(|| format!("hosts[{i}]"))?;
            if !names.insert(h.name.as_str()) {
                bail!("hosts[{i}]: the name {:?} is used twice", h.name);
            }
            if !ips.insert(h.phys_ip) {
                bail!("hosts[{i}] ({}): underlay address {} is used twice", h.name, h.phys_ip);
            }
            if h.ports.len() > MAX_PORTS_PER_HOST {
                bail!("hosts[{i}] ({}): more than {MAX_PORTS_PER_HOST} ports", h.name);
            }
            let mut port_names = BTreeSet::new();
            for (j, p) in h.ports.iter().enumerate() {
                let at = || format!("hosts[{i}].ports[{j}] ({}/{})", h.name, p.name);
                check_name(&p.name).with_context(at)?;
                if !port_names.insert(p.name.as_str()) {
                    bail!("{}: the port name is used twice", at());
                }
                p.cfg.validate().map_err(|e| anyhow::anyhow!("{e}")).with_context(at)?;
                if p.cfg.phys_ip != h.phys_ip {
                    bail!(
                        "{}: cfg.phys_ip {} differs from the host's phys_ip {}",
                        at(),
                        p.cfg.phys_ip,
                        h.phys_ip
                    );
                }
                if h.ports[..j].iter().any(|q| q.cfg.guest_mac == p.cfg.guest_mac) {
                    bail!("{}: guest MAC {} is used twice on this host", at(), p.cfg.guest_mac);
                }
            }
            for (j, m) in h.v2b.iter().enumerate() {
                m.validate()
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .with_context(|| format!("hosts[{i}].v2b[{j}] ({})", h.name))?;
            }
        }
        for (i, b) in self.boundaries.iter().enumerate() {
            check_name(&b.name).with_context(|| format!("boundaries[{i}]"))?;
            if !names.insert(b.name.as_str()) {
                bail!("boundaries[{i}]: the name {:?} is already a host or boundary", b.name);
            }
            if !ips.insert(b.ip) {
                bail!("boundaries[{i}] ({}): underlay address {} is used twice", b.name, b.ip);
            }
        }
        if self.packets.len() > MAX_INJECTIONS {
            bail!("more than {MAX_INJECTIONS} packets");
        }
        let mut last_time = 0;
        for (i, p) in self.packets.iter().enumerate() {
            let at = || {
                format!(
                    "packets[{i}]{}",
                    p.name.as_ref().map_or(String::new(), |n| format!(" ({n})"))
                )
            };
            self.entry(&p.at).with_context(at)?;
            match (&p.hex, &p.pcap) {
                (Some(_), Some(_)) => bail!("{}: give either hex or pcap, not both", at()),
                (None, None) => bail!("{}: give the frame as hex or a pcap file", at()),
                (Some(h), None) => {
                    parse_hex(h).with_context(at)?;
                }
                (None, Some(_)) => {}
            }
            if p.time < last_time {
                bail!("{}: time {} goes back before {last_time}", at(), p.time);
            }
            last_time = p.time;
        }
        Ok(())
    }

    /// Resolve an `at` reference.
    pub fn entry(&self, at: &str) -> Result<Entry> {
        if let Some((host, port)) = at.split_once('/') {
            let (hi, h) = self
                .hosts
                .iter()
                .enumerate()
                .find(|(_, h)| h.name == host)
                .with_context(|| format!("at {at:?}: no host named {host:?}"))?;
            let pi =
                h.ports.iter().position(|p| p.name == port).with_context(|| {
                    format!("at {at:?}: host {host} has no port named {port:?}")
                })?;
            return Ok(Entry::Guest(hi, pi));
        }
        if let Some(hi) = self.hosts.iter().position(|h| h.name == at) {
            return Ok(Entry::Underlay(hi));
        }
        if let Some(bi) = self.boundaries.iter().position(|b| b.name == at) {
            return Ok(Entry::Boundary(bi));
        }
        bail!("at {at:?}: not HOST/PORT, a host or a boundary")
    }
}

/// Names appear in `at` references and file names: letters, digits, `-`,
/// `_` and `.`, at most 64 bytes.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        bail!("name {name:?}: use 1-64 letters, digits, '-', '_' or '.'");
    }
    Ok(())
}

/// Decode a frame written as hexadecimal; whitespace and `:` separators
/// are ignored.
pub fn parse_hex(text: &str) -> Result<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace() && *b != b':').collect();
    if !digits.len().is_multiple_of(2) {
        bail!("hex frame has an odd number of digits ({})", digits.len());
    }
    if digits.len() / 2 > MAX_FRAME_LEN {
        bail!("hex frame is longer than {MAX_FRAME_LEN} bytes");
    }
    let nibble = |b: u8, at: usize| -> Result<u8> {
        match b {
            b'0'..=b'9' => Ok(b - b'0'),
            b'a'..=b'f' => Ok(b - b'a' + 10),
            b'A'..=b'F' => Ok(b - b'A' + 10),
            _ => bail!("hex frame: {:?} at digit {at} is not a hex digit", b as char),
        }
    };
    let mut out = Vec::with_capacity(digits.len() / 2);
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        if let [hi, lo] = pair {
            out.push(nibble(*hi, 2 * i)? << 4 | nibble(*lo, 2 * i + 1)?);
        }
    }
    if out.len() < 14 {
        bail!("hex frame of {} bytes is shorter than an Ethernet header", out.len());
    }
    Ok(out)
}

/// Encode bytes as lowercase hexadecimal.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Resolve a path given in the config relative to the config file's
/// directory.
pub fn relative_to(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_frames_ignore_separators_and_refuse_junk() {
        let f = parse_hex("a8:40:25:f7:00:05 ffffffffffff\n0806").unwrap();
        assert_eq!(f.len(), 14);
        assert_eq!(f[..3], [0xa8, 0x40, 0x25]);
        assert_eq!(to_hex(&f[12..]), "0806");
        assert!(format!("{}", parse_hex("abc").unwrap_err()).contains("odd number"));
        assert!(format!("{}", parse_hex("0g").unwrap_err()).contains("'g' at digit 1"));
    }

    #[test]
    fn at_references_resolve_to_guests_underlays_and_boundaries() {
        let cfg: SimConfig = serde_json::from_str(
            r#"{"hosts": [{"name": "h", "phys_ip": "fd77::a"}],
                "boundaries": [{"name": "b", "ip": "fd77::99"}]}"#,
        )
        .unwrap();
        assert_eq!(cfg.entry("h").unwrap(), Entry::Underlay(0));
        assert_eq!(cfg.entry("b").unwrap(), Entry::Boundary(0));
        assert!(format!("{}", cfg.entry("h/p").unwrap_err()).contains("no port named \"p\""));
        assert!(format!("{}", cfg.entry("x").unwrap_err()).contains("not HOST/PORT"));
    }
}
