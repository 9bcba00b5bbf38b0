//! `opte-sim`: the offline simulator. It answers an operator's question
//! "what would the host do with this packet?" by running the real VPC
//! ports (the kernel code of `oxide-vpc` on the `opte` engine, in
//! userland over `fakekernel`) on frames read from hex or pcap files.
//!
//! - [`config`]: the JSON input (hosts, ports as `PortSpec`, V2P/V2B
//!   mappings, boundaries, packets) and its checks.
//! - [`sim`]: the hosts joined by a simulated underlay, and the walk of
//!   each frame through ports, underlay, boundaries and answers.
//! - [`recorder`]: the engine trace hook that records each layer's
//!   decision.
//! - [`frame`]: one-line and structured summaries of frames.
//! - [`responder`]: the answers simulated guests and internet hosts give.
//! - [`report`]: per-packet reports and verdicts, as text or JSON.
//! - [`pcap`]: pcap input and output.
//!
//! [`run`] does a whole run; the `opte-sim` binary wraps it.

pub mod config;
pub mod frame;
pub mod pcap;
pub mod recorder;
pub mod report;
pub mod responder;
pub mod sim;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use config::{Injection, SimConfig, parse_hex, relative_to};
use report::RunReport;
use sim::{Injected, Simulation};

/// How to run a simulation.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Write the captures here.
    pub out: Option<PathBuf>,
    /// The hop budget of one injection (0: the default).
    pub max_hops: usize,
    /// Show each layer's header changes (see
    /// [`Simulation::explain_layers`]).
    pub explain_layers: bool,
    /// Skip the packets listed in the config.
    pub skip_config_packets: bool,
    /// More injections, after the config's (pcap paths as given).
    pub extra: Vec<Injection>,
}

/// One frame to inject, resolved.
struct Frame {
    name: String,
    at: String,
    time: u64,
    reply: bool,
    bytes: Vec<u8>,
}

/// Read every injection's frames (hex or pcap files relative to `base`).
fn frames_of(cfg: &SimConfig, base: &Path) -> Result<Vec<Frame>> {
    let mut out = Vec::new();
    for (i, inj) in cfg.packets.iter().enumerate() {
        let name = inj.name.clone().unwrap_or_else(|| format!("packet {}", i + 1));
        let frames = match (&inj.hex, &inj.pcap) {
            (Some(h), _) => vec![parse_hex(h).with_context(|| format!("packets[{i}] ({name})"))?],
            (None, Some(p)) => pcap::read(&relative_to(base, p))
                .with_context(|| format!("packets[{i}] ({name})"))?,
            (None, None) => vec![],
        };
        let n = frames.len();
        for (j, bytes) in frames.into_iter().enumerate() {
            let name = if n > 1 { format!("{name} #{}", j + 1) } else { name.clone() };
            out.push(Frame { name, at: inj.at.clone(), time: inj.time, reply: inj.reply, bytes });
        }
    }
    Ok(out)
}

/// Build the hosts of `cfg`, inject its packets (and `opts.extra`), and
/// report on each; `base` is the directory config-relative pcap paths
/// start from. Returns the report and the simulation (for its captures).
pub fn run(cfg: &SimConfig, base: &Path, opts: &RunOptions) -> Result<(RunReport, Simulation)> {
    let mut cfg = cfg.clone();
    if opts.skip_config_packets {
        cfg.packets.clear();
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    for inj in &opts.extra {
        let mut inj = inj.clone();
        inj.pcap = inj.pcap.map(|p| relative_to(&cwd, &p));
        cfg.packets.push(inj);
    }
    cfg.validate()?;
    let frames = frames_of(&cfg, base)?;
    let mut sim = Simulation::new(&cfg)?;
    sim.explain_layers = opts.explain_layers;
    if opts.max_hops > 0 {
        sim.max_hops = opts.max_hops;
    }
    let mut packets = Vec::new();
    for (i, f) in frames.into_iter().enumerate() {
        let entry = cfg.entry(&f.at)?;
        let inj = Injected {
            name: f.name,
            at: f.at,
            entry,
            frame: f.bytes,
            time: f.time,
            reply: f.reply,
        };
        packets.push(sim.inject(i + 1, inj));
    }
    let mut pcaps = Vec::new();
    if let Some(dir) = &opts.out {
        for p in sim.write_pcaps(dir)? {
            pcaps.push(p.display().to_string());
        }
    }
    Ok((RunReport { packets, pcaps }, sim))
}
