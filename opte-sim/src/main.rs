//! The `opte-sim` command: run a simulation from a JSON config and print
//! what happened to each packet (see `opte-sim --help`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;
use opte_sim::config::{Injection, SimConfig};
use opte_sim::report::render_text;
use opte_sim::{RunOptions, run};

const AFTER_HELP: &str = r#"CONFIG FORMAT (JSON; a worked example is examples/two-hosts.json):

  {
    "hosts": [{
      "name": "sled-a",                 // used in "at" and file names
      "phys_ip": "fd77::a",             // the host's underlay IPv6 address
      "ports": [ PortSpec, ... ],       // exactly what `opteadm dump-port` prints:
                                        //   {"name", "cfg": VpcCfg, "fw_rules", "routes"}
                                        //   (cfg.phys_ip must equal the host's)
      "v2p": [ {"vni", "ip", "mac", "host"}, ... ],          // where guests live
      "v2b": [ {"prefix", "boundaries": [{"ip", "vni"}]} ]    // the way to the internet
    }],
    "boundaries": [ {"name": "boundary", "ip": "fd77::99"} ],
    "packets": [{
      "name": "ping the gateway",       // optional label
      "at": "sled-a/xde0",              // where it enters (see below)
      "hex": "ffffffffffff a84025...",  // the frame in hex (spaces and ':' ignored)
      "pcap": "frames.pcap",            //   or a pcap file (relative to the config)
      "time": 0,                        // seconds since the start; never decreasing
      "reply": false                    // the receiver answers once
    }]
  }

WHERE PACKETS ENTER ("at"):
  HOST/PORT   a frame the guest sends (Ethernet, as on its NIC); processed outbound
  HOST        a Geneve frame arriving on the host's underlay; demultiplexed to the
              port with the frame's inner destination MAC whose VPC has the VNI (or
              peers with it, or the boundary VNI 99 with the external tag); inbound
  BOUNDARY    a frame from the internet: a Geneve frame is sent as it is; a plain
              frame is encapsulated (VNI 99, external tag) to the host whose port
              owns its destination address (SNAT, ephemeral, floating IP or an
              external attached subnet), its inner destination MAC set to that guest's

WHAT HAPPENS:
  An encapsulated frame leaving a port is routed on the simulated underlay by its
  outer IPv6 destination: to the host with that phys_ip (then inbound through the
  right port) or to a boundary (it leaves to the internet). A hairpin reply (ARP,
  DHCP, NDP, ping to the gateway) goes back to where the frame came from. With
  "reply": true the guest or internet host that receives the frame answers once
  (echo reply, UDP with ports swapped, SYN-ACK or ACK) and the answer is followed
  too. When "time" moves forward, every port first expires idle flows.

OUTPUT:
  For each packet: the input; every port it crossed, with the frame before and
  after and each layer's decision (rule id, priority and action; default; layer
  flow table; or a UFT hit); underlay hops; and verdicts: DELIVERED, ANSWERED
  (hairpin), TO INTERNET, DROPPED (with the engine's reason) or LOST (outside any
  port: no underlay route, no port for the VNI and MAC, hop limit). With --json
  the same as one JSON document {"packets": [...], "pcaps": [...]}.

  With --out DIR, one pcap per guest port (HOST-PORT.pcap: frames the guest sent
  and frames delivered to it), per host underlay (HOST-underlay.pcap: frames the
  host sent and received, encapsulated) and internet.pcap (frames between the
  boundaries and the internet, without encapsulation).

EXIT STATUS: 0 when the run completed (whatever the verdicts), 1 on bad input.

EXAMPLE:
  cargo run -p opte-sim -- examples/two-hosts.json --out /tmp/sim"#;

/// What would the host do with this packet? Runs the real VPC ports (gateway,
/// firewall, router, NAT, overlay) of one or more simulated hosts on frames
/// given as hex or pcap, and explains each packet's path layer by layer.
#[derive(Parser, Debug)]
#[command(name = "opte-sim", version, after_help = AFTER_HELP)]
struct Cli {
    /// The simulation config (JSON): hosts, ports, mappings, boundaries and
    /// packets.
    config: PathBuf,

    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,

    /// Write pcap captures of every guest port, host underlay and the
    /// internet into this directory (created if missing).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Inject a frame after the config's packets: AT=HEX, where AT is
    /// HOST/PORT, HOST or a boundary name. Repeatable.
    #[arg(long, value_name = "AT=HEX")]
    inject: Vec<String>,

    /// Inject every frame of a pcap file after the config's packets:
    /// AT=FILE (FILE relative to the current directory). Repeatable.
    #[arg(long, value_name = "AT=FILE")]
    inject_pcap: Vec<String>,

    /// The frames given with --inject and --inject-pcap ask for an answer
    /// from whoever receives them.
    #[arg(long)]
    reply: bool,

    /// Seconds since the start at which the --inject and --inject-pcap
    /// frames enter (not before the config's last packet).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    time: u64,

    /// Ignore the packets listed in the config (inject only the ones given
    /// on the command line).
    #[arg(long)]
    no_config_packets: bool,

    /// Show each layer's header changes under its decision, from the port's
    /// dry run (Port::explain) of the frame before it is processed. Note:
    /// the dry run currently advances the SNAT pool's next-fit cursor, so
    /// SNAT ports differ from a run without this flag.
    #[arg(long)]
    layer_xforms: bool,

    /// Most steps (port passes, underlay hops) one injected packet may take
    /// before the simulator stops following it.
    #[arg(long, value_name = "N", default_value_t = opte_sim::sim::DEFAULT_MAX_HOPS)]
    max_hops: usize,
}

fn split_at(arg: &str, flag: &str) -> Result<(String, String)> {
    match arg.split_once('=') {
        Some((at, v)) if !at.is_empty() && !v.is_empty() => Ok((at.to_string(), v.to_string())),
        _ => bail!("{flag} {arg:?}: expected AT=VALUE"),
    }
}

fn main_inner() -> Result<()> {
    let cli = Cli::parse();
    // The engine calls illumos kernel functions; fakekernel provides them.
    fakekernel::link_kernel_symbols();
    let cfg = SimConfig::load(&cli.config)?;
    let base = cli.config.parent().map(PathBuf::from).unwrap_or_default();
    let time = if cli.no_config_packets {
        cli.time
    } else {
        cli.time.max(cfg.packets.last().map_or(0, |p| p.time))
    };
    let mut extra = Vec::new();
    for a in &cli.inject {
        let (at, hex) = split_at(a, "--inject")?;
        extra.push(Injection {
            name: Some(format!("--inject {at}")),
            at,
            hex: Some(hex),
            pcap: None,
            time,
            reply: cli.reply,
        });
    }
    for a in &cli.inject_pcap {
        let (at, file) = split_at(a, "--inject-pcap")?;
        extra.push(Injection {
            name: Some(file.clone()),
            at,
            hex: None,
            pcap: Some(PathBuf::from(file)),
            time,
            reply: cli.reply,
        });
    }
    let opts = RunOptions {
        out: cli.out.clone(),
        max_hops: cli.max_hops,
        explain_layers: cli.layer_xforms,
        skip_config_packets: cli.no_config_packets,
        extra,
    };
    let (report, sim) = run(&cfg, &base, &opts)?;
    let text = if cli.json {
        let mut s =
            serde_json::to_string_pretty(&report).context("cannot write the JSON report")?;
        s.push('\n');
        s
    } else {
        render_text(&report)
    };
    // A reader that stops early (`| head`) is not an error.
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(e).context("cannot write the report");
        }
        _ => {}
    }
    drop(sim);
    Ok(())
}

fn main() -> ExitCode {
    match main_inner() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("opte-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}
