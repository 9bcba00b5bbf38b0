//! [`Simulation`]: hosts with real VPC ports (the kernel code, running
//! over `fakekernel`), joined by a simulated underlay, and the walk of
//! each injected frame through them.
//!
//! # How a frame travels
//!
//! Work is a FIFO queue of `(place, frame)` items, drained until empty or
//! until the injection's hop budget ([`Simulation::max_hops`]) is spent:
//!
//! - **guest** (`HOST/PORT`): the guest sends the frame; the port
//!   processes it outbound. A passed frame is Geneve-encapsulated and
//!   goes on the underlay; a hairpin reply goes back to the guest.
//! - **underlay**: a frame is routed by its outer IPv6 destination, to
//!   the host with that `phys_ip` or to a boundary with that address.
//!   Anything else is lost (no route).
//! - **host**: an arriving frame is demultiplexed to a port by its VNI
//!   and inner destination MAC: the port with that guest MAC whose VPC
//!   has that VNI, peers with it, or (for frames tagged external) the
//!   boundary VNI. The port processes it inbound; a passed frame is
//!   delivered to the guest, a hairpin reply goes back on the underlay.
//! - **boundary**: the frame leaves to the internet (decapsulated). A
//!   frame injected at a boundary comes from the internet: a Geneve
//!   frame is sent as it is; a plain frame is encapsulated (boundary VNI,
//!   external tag) to the host whose port owns its destination address
//!   (a SNAT, ephemeral or floating IP, or an external attached subnet),
//!   its inner destination MAC set to that guest's, as the switch's NAT
//!   table would.
//!
//! When the injection asks for a reply, the first guest or internet host
//! that receives the frame answers once ([`crate::responder`]), and the
//! answer travels back the same way.
//!
//! # Time
//!
//! Injections carry a time in seconds. When it moves forward, every port
//! runs its flow expiry at the new time before the frame is injected, so
//! a flow idle past its timeout is gone (and reported).
//!
//! # Captures
//!
//! Like `snoop` on each link: one capture per guest port (frames the
//! guest sent and frames delivered to it), one per host underlay link
//! (frames the host sent and received), and `internet` (frames between a
//! boundary and the internet, without encapsulation).

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use opte::ddi::MsgBlk;
use opte::engine::port::ProcessResult;
use opte::engine::trace::Tracer;
use opte::engine::{Direction, Moment, NANOS_PER_SEC};
use opte::packet::{
    Encap, EtherHdr, GeneveHdr, GeneveOptions, Headers, Ipv6Hdr, L3, OuterUdpCsum, Packet, UdpHdr,
};
use opte_api::{MacAddr, Vni};
use oxide_vpc::api::{BOUNDARY_VNI, VpcCfg};
use oxide_vpc::engine::{PortLimits, VpcNetwork, VpcPort};

use crate::config::{BoundaryCfg, Entry, SimConfig};
use crate::frame::{FrameSummary, parse_headers};
use crate::recorder::{Recorder, attach_xforms, describe_rules};
use crate::report::{Event, Expiry, PacketReport, PortPass, Verdict};
use crate::responder;

/// Headroom in front of an injected frame (room for the encapsulation,
/// as a NIC driver would leave).
pub const HEADROOM: usize = 128;
/// The default hop budget of one injection.
pub const DEFAULT_MAX_HOPS: usize = 32;
/// The UDP source port of frames a boundary encapsulates.
pub const BOUNDARY_UDP_SRC: u16 = 50_000;
/// Frames one capture keeps.
pub const MAX_CAPTURE_FRAMES: usize = 1_000_000;

/// One frame to inject.
#[derive(Debug, Clone)]
pub struct Injected {
    /// Its label in the report.
    pub name: String,
    /// Where it enters, as written (`HOST/PORT`, `HOST`, a boundary).
    pub at: String,
    /// Where it enters, resolved.
    pub entry: Entry,
    /// The frame's bytes (Ethernet first).
    pub frame: Vec<u8>,
    /// Seconds since the start of the simulation.
    pub time: u64,
    /// Whoever receives it answers once.
    pub reply: bool,
}

/// One capture file's frames.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    /// The file's stem (`sled-a-xde0`, `sled-a-underlay`, `internet`).
    pub name: String,
    /// (timestamp, frame), in the order they were seen.
    pub frames: Vec<(Duration, Vec<u8>)>,
}

struct SimPort {
    name: String,
    port: Arc<VpcPort>,
    trace: Arc<Recorder>,
    cfg: VpcCfg,
    cap: usize,
}

struct SimHost {
    name: String,
    phys_ip: Ipv6Addr,
    /// Kept so the ports' shared tables live as long as the host.
    _net: Arc<VpcNetwork>,
    ports: Vec<SimPort>,
    cap: usize,
}

/// A place a frame is at.
#[derive(Debug, Clone, Copy)]
enum Place {
    /// Sent by this guest.
    Guest(usize, usize),
    /// Arriving on this host's underlay link.
    Host(usize),
    /// Arriving at this boundary from the underlay.
    Boundary(usize),
    /// Arriving at this boundary from the internet.
    Internet(usize),
}

struct Item {
    place: Place,
    frame: Vec<u8>,
    /// Whoever receives it answers (once).
    want_answer: bool,
    /// It is itself an answer.
    is_answer: bool,
}

/// Per-injection state while its frames travel.
struct Walk {
    events: Vec<Event>,
    verdicts: Vec<Verdict>,
    queue: VecDeque<Item>,
}

/// Simulated hosts, boundaries and captures.
pub struct Simulation {
    hosts: Vec<SimHost>,
    boundaries: Vec<BoundaryCfg>,
    captures: Vec<Capture>,
    internet_cap: usize,
    /// The current time, in seconds since the start.
    now_secs: u64,
    /// Frames seen so far (orders capture timestamps within a second).
    seen: u64,
    /// Most queue items one injection may process.
    pub max_hops: usize,
    /// Before each port pass, run the port's dry run
    /// ([`opte::engine::port::Port::explain`]) on a copy of the frame to
    /// show each layer's header changes. Off by default: the dry run is
    /// meant to change nothing, but today it advances the SNAT pool's
    /// next-fit cursor, so the run would pick other SNAT ports than a
    /// host would.
    pub explain_layers: bool,
}

impl Simulation {
    /// Build every host's network and ports from the config.
    pub fn new(cfg: &SimConfig) -> Result<Self> {
        cfg.validate()?;
        let mut captures = Vec::new();
        let mut hosts = Vec::new();
        for h in &cfg.hosts {
            let net = Arc::new(VpcNetwork::new());
            for (j, m) in h.v2p.iter().enumerate() {
                net.set_v2p(*m).map_err(|e| anyhow!("host {}: v2p[{j}]: {e}", h.name))?;
            }
            for (j, m) in h.v2b.iter().enumerate() {
                net.set_v2b(m.clone()).map_err(|e| anyhow!("host {}: v2b[{j}]: {e}", h.name))?;
            }
            let mut ports = Vec::new();
            for spec in &h.ports {
                let trace = Arc::new(Recorder::default());
                let port = VpcPort::from_spec(
                    spec,
                    Arc::clone(&net),
                    PortLimits::default(),
                    Some(Arc::clone(&trace) as Arc<dyn Tracer>),
                )
                .map_err(|e| anyhow!("port {}/{}: {e}", h.name, spec.name))?;
                // Rule installation is not a packet: forget its events.
                trace.take();
                captures
                    .push(Capture { name: format!("{}-{}", h.name, spec.name), frames: vec![] });
                ports.push(SimPort {
                    name: spec.name.clone(),
                    port,
                    trace,
                    cfg: spec.cfg.clone(),
                    cap: captures.len() - 1,
                });
            }
            captures.push(Capture { name: format!("{}-underlay", h.name), frames: vec![] });
            hosts.push(SimHost {
                name: h.name.clone(),
                phys_ip: h.phys_ip,
                _net: net,
                ports,
                cap: captures.len() - 1,
            });
        }
        captures.push(Capture { name: String::from("internet"), frames: vec![] });
        let internet_cap = captures.len() - 1;
        Ok(Self {
            hosts,
            boundaries: cfg.boundaries.clone(),
            captures,
            internet_cap,
            now_secs: 0,
            seen: 0,
            max_hops: DEFAULT_MAX_HOPS,
            explain_layers: false,
        })
    }

    /// The captures so far.
    pub fn captures(&self) -> &[Capture] {
        &self.captures
    }

    /// Write every capture as `<name>.pcap` in `dir` (created if needed);
    /// returns the files written.
    pub fn write_pcaps(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create output directory {}", dir.display()))?;
        let mut written = Vec::new();
        for c in &self.captures {
            let path = dir.join(format!("{}.pcap", c.name));
            crate::pcap::write(&path, &c.frames)?;
            written.push(path);
        }
        Ok(written)
    }

    /// Inject one frame and follow it (and its answer, if asked for) to
    /// the end of its path.
    pub fn inject(&mut self, index: usize, inj: Injected) -> PacketReport {
        let Injected { name, at, entry, frame, time, reply } = inj;
        let expired = self.advance(time);
        let input = FrameSummary::of(&frame);
        let place = match entry {
            Entry::Guest(h, p) => Place::Guest(h, p),
            Entry::Underlay(h) => Place::Host(h),
            Entry::Boundary(b) => Place::Internet(b),
        };
        let mut walk = Walk { events: vec![], verdicts: vec![], queue: VecDeque::new() };
        walk.queue.push_back(Item { place, frame, want_answer: reply, is_answer: false });
        let mut hops = 0;
        while let Some(item) = walk.queue.pop_front() {
            if hops >= self.max_hops {
                let reason = format!("hop limit of {} reached (a loop?)", self.max_hops);
                walk.events
                    .push(Event::Lost { at: String::from("simulator"), reason: reason.clone() });
                walk.verdicts.push(Verdict::Lost {
                    at: String::from("simulator"),
                    reason,
                    answer: item.is_answer,
                });
                break;
            }
            hops += 1;
            match item.place {
                Place::Guest(h, p) => self.sent_by_guest(&mut walk, h, p, item),
                Place::Host(h) => self.arrive_at_host(&mut walk, h, item),
                Place::Boundary(b) => self.arrive_at_boundary(&mut walk, b, item),
                Place::Internet(b) => self.enter_from_internet(&mut walk, b, item),
            }
        }
        PacketReport {
            index,
            name,
            at,
            time,
            expired,
            input,
            events: walk.events,
            verdicts: walk.verdicts,
        }
    }

    /// Move the clock to `time` and run every port's expiry.
    fn advance(&mut self, time: u64) -> Vec<Expiry> {
        let mut out = Vec::new();
        if time <= self.now_secs {
            return out;
        }
        self.now_secs = time;
        let now = self.now();
        for h in &self.hosts {
            for p in &h.ports {
                p.port.port().expire(now);
                for s in p.trace.take() {
                    if let crate::recorder::TraceStep::Expired { table, flow } = s {
                        out.push(Expiry { port: format!("{}/{}", h.name, p.name), table, flow });
                    }
                }
            }
        }
        out
    }

    fn now(&self) -> Moment {
        // Start one second in: no flow is ever stamped at zero.
        Moment(self.now_secs.saturating_add(1).saturating_mul(NANOS_PER_SEC))
    }

    fn capture(&mut self, cap: usize, frame: &[u8]) {
        let ts = Duration::from_secs(self.now_secs) + Duration::from_micros(self.seen);
        self.seen += 1;
        if let Some(c) = self.captures.get_mut(cap)
            && c.frames.len() < MAX_CAPTURE_FRAMES
        {
            c.frames.push((ts, frame.to_vec()));
        }
    }

    fn port_name(&self, h: usize, p: usize) -> String {
        let host = &self.hosts[h];
        format!("{}/{}", host.name, host.ports[p].name)
    }

    /// Run one frame through a port; the event and the result's bytes.
    fn process(
        &self,
        walk: &mut Walk,
        h: usize,
        p: usize,
        dir: Direction,
        frame: &[u8],
    ) -> Option<(ProcessResult, Vec<u8>)> {
        let sp = &self.hosts[h].ports[p];
        let port_name = self.port_name(h, p);
        let before = FrameSummary::of(frame);
        let mblk = match MsgBlk::from_bytes(HEADROOM, frame) {
            Ok(m) => m,
            Err(e) => {
                walk.events.push(Event::Lost {
                    at: port_name,
                    reason: format!("cannot allocate a message block: {e:?}"),
                });
                return None;
            }
        };
        let parse = |m: MsgBlk| match dir {
            Direction::Out => Packet::parse_guest(m),
            Direction::In => Packet::parse_underlay(m),
        };
        // With `explain_layers`, a dry run on a copy first, for each
        // layer's header changes.
        let explained = if self.explain_layers {
            MsgBlk::from_bytes(HEADROOM, frame)
                .ok()
                .and_then(|m| parse(m).ok())
                .map(|mut copy| sp.port.port().explain(dir, &mut copy))
        } else {
            None
        };
        let parsed = parse(mblk);
        let (result, bytes) = match parsed {
            Ok(mut pkt) => {
                let r = sp.port.process(dir, &mut pkt, self.now());
                let bytes = match &r {
                    ProcessResult::Modified => pkt.into_mblk().to_vec(),
                    ProcessResult::Hairpin(m) => m.to_vec(),
                    ProcessResult::Drop(_) => Vec::new(),
                };
                (r, bytes)
            }
            Err(f) => {
                let r = sp.port.port().count_parse_error(dir, f.error);
                (ProcessResult::Drop(r), Vec::new())
            }
        };
        let mut steps = sp.trace.take();
        describe_rules(sp.port.port(), &mut steps);
        if let Some(ex) = &explained {
            attach_xforms(ex, &mut steps);
        }
        let (res, reason, after) = match &result {
            ProcessResult::Modified => ("pass", None, Some(FrameSummary::of(&bytes))),
            ProcessResult::Hairpin(_) => ("hairpin", None, Some(FrameSummary::of(&bytes))),
            ProcessResult::Drop(r) => ("drop", Some(r.to_string()), None),
        };
        walk.events.push(Event::Port(Box::new(PortPass {
            port: port_name,
            dir: dir.to_string(),
            before,
            steps,
            result: res.to_string(),
            reason,
            after,
        })));
        Some((result, bytes))
    }

    fn sent_by_guest(&mut self, walk: &mut Walk, h: usize, p: usize, item: Item) {
        let cap = self.hosts[h].ports[p].cap;
        self.capture(cap, &item.frame);
        let Some((result, bytes)) = self.process(walk, h, p, Direction::Out, &item.frame) else {
            return;
        };
        let port = self.port_name(h, p);
        match result {
            ProcessResult::Modified => {
                let from = self.hosts[h].name.clone();
                self.send_underlay(walk, &from, Some(h), bytes, item.want_answer, item.is_answer);
            }
            ProcessResult::Hairpin(m) => {
                drop(m);
                self.capture(cap, &bytes);
                walk.events.push(Event::Deliver {
                    port: port.clone(),
                    hairpin: true,
                    frame: FrameSummary::of(&bytes),
                });
                walk.verdicts.push(Verdict::Hairpin { port, answer: item.is_answer });
            }
            ProcessResult::Drop(r) => walk.verdicts.push(Verdict::Dropped {
                port,
                dir: String::from("out"),
                reason: r.to_string(),
                answer: item.is_answer,
            }),
        }
    }

    /// Put a frame on the underlay: route it by its outer destination.
    fn send_underlay(
        &mut self,
        walk: &mut Walk,
        from: &str,
        from_host: Option<usize>,
        frame: Vec<u8>,
        want_answer: bool,
        is_answer: bool,
    ) {
        if let Some(h) = from_host {
            let cap = self.hosts[h].cap;
            self.capture(cap, &frame);
        }
        let summary = FrameSummary::of(&frame);
        let Some(dst) = summary.outer.as_ref().map(|o| o.dst) else {
            let reason = String::from("the frame is not Geneve-encapsulated: nowhere to route it");
            walk.events
                .push(Event::Lost { at: format!("{from} underlay"), reason: reason.clone() });
            walk.verdicts.push(Verdict::Lost {
                at: format!("{from} underlay"),
                reason,
                answer: is_answer,
            });
            return;
        };
        let place = if let Some(h) = self.hosts.iter().position(|x| x.phys_ip == dst) {
            Some((Place::Host(h), self.hosts[h].name.clone()))
        } else {
            self.boundaries
                .iter()
                .position(|b| b.ip == dst)
                .map(|b| (Place::Boundary(b), self.boundaries[b].name.clone()))
        };
        match place {
            Some((place, to)) => {
                walk.events.push(Event::Underlay { from: from.to_string(), to, frame: summary });
                walk.queue.push_back(Item { place, frame, want_answer, is_answer });
            }
            None => {
                let reason = format!("no host or boundary has underlay address {dst}");
                walk.events.push(Event::Underlay {
                    from: from.to_string(),
                    to: String::from("nowhere"),
                    frame: summary,
                });
                walk.events
                    .push(Event::Lost { at: String::from("underlay"), reason: reason.clone() });
                walk.verdicts.push(Verdict::Lost {
                    at: String::from("underlay"),
                    reason,
                    answer: is_answer,
                });
            }
        }
    }

    /// The port of host `h` a frame with these headers is for.
    fn demux(&self, h: usize, hdrs: &Headers) -> Result<usize, String> {
        let Some(outer) = hdrs.outer else {
            return Err(String::from("not a Geneve frame"));
        };
        let vni = outer.geneve.vni;
        let external = outer.geneve.options.external;
        let mac = hdrs.eth.dst;
        let accepts = |c: &VpcCfg| {
            c.vni == vni
                || c.peerings.iter().any(|p| p.vni == vni)
                || (external && vni.value() == BOUNDARY_VNI)
        };
        self.hosts[h]
            .ports
            .iter()
            .position(|p| p.cfg.guest_mac == mac && accepts(&p.cfg))
            .ok_or_else(|| format!("no port for VNI {vni} and guest MAC {mac}"))
    }

    fn arrive_at_host(&mut self, walk: &mut Walk, h: usize, item: Item) {
        let cap = self.hosts[h].cap;
        self.capture(cap, &item.frame);
        let at = format!("{} underlay", self.hosts[h].name);
        let p = match parse_headers(&item.frame).and_then(|hdrs| self.demux(h, &hdrs)) {
            Ok(p) => p,
            Err(reason) => {
                walk.events.push(Event::Lost { at: at.clone(), reason: reason.clone() });
                walk.verdicts.push(Verdict::Lost { at, reason, answer: item.is_answer });
                return;
            }
        };
        let Some((result, bytes)) = self.process(walk, h, p, Direction::In, &item.frame) else {
            return;
        };
        let port = self.port_name(h, p);
        match result {
            ProcessResult::Modified => {
                let pcap = self.hosts[h].ports[p].cap;
                self.capture(pcap, &bytes);
                walk.events.push(Event::Deliver {
                    port: port.clone(),
                    hairpin: false,
                    frame: FrameSummary::of(&bytes),
                });
                walk.verdicts
                    .push(Verdict::Delivered { port: port.clone(), answer: item.is_answer });
                if item.want_answer {
                    match responder::answer(&bytes) {
                        Ok(a) => {
                            walk.events.push(Event::Answer {
                                by: format!("guest {port}"),
                                frame: FrameSummary::of(&a),
                            });
                            walk.queue.push_back(Item {
                                place: Place::Guest(h, p),
                                frame: a,
                                want_answer: false,
                                is_answer: true,
                            });
                        }
                        Err(why) => walk.events.push(Event::NoAnswer {
                            by: format!("guest {port}"),
                            why: why.to_string(),
                        }),
                    }
                }
            }
            ProcessResult::Hairpin(m) => {
                drop(m);
                walk.verdicts.push(Verdict::Hairpin { port: port.clone(), answer: item.is_answer });
                let from = self.hosts[h].name.clone();
                self.send_underlay(walk, &from, Some(h), bytes, false, item.is_answer);
            }
            ProcessResult::Drop(r) => walk.verdicts.push(Verdict::Dropped {
                port,
                dir: String::from("in"),
                reason: r.to_string(),
                answer: item.is_answer,
            }),
        }
    }

    fn arrive_at_boundary(&mut self, walk: &mut Walk, b: usize, item: Item) {
        let name = self.boundaries[b].name.clone();
        let hdrs = match parse_headers(&item.frame) {
            Ok(h) if h.outer.is_some() => h,
            Ok(_) | Err(_) => {
                let reason = String::from("not a Geneve frame the boundary can decapsulate");
                walk.events.push(Event::Lost { at: name.clone(), reason: reason.clone() });
                walk.verdicts.push(Verdict::Lost { at: name, reason, answer: item.is_answer });
                return;
            }
        };
        let inner = item.frame.get(hdrs.offsets.inner_eth as usize..).unwrap_or(&[]).to_vec();
        let cap = self.internet_cap;
        self.capture(cap, &inner);
        walk.events
            .push(Event::Internet { boundary: name.clone(), frame: FrameSummary::of(&inner) });
        walk.verdicts.push(Verdict::Internet { boundary: name.clone(), answer: item.is_answer });
        if !item.want_answer {
            return;
        }
        let by = format!("internet host {}", hdrs_dst(&hdrs));
        let answer = match responder::answer(&inner) {
            Ok(a) => a,
            Err(why) => {
                walk.events.push(Event::NoAnswer { by, why: why.to_string() });
                return;
            }
        };
        self.capture(cap, &answer);
        walk.events.push(Event::Answer { by, frame: FrameSummary::of(&answer) });
        let Some(outer) = hdrs.outer else { return };
        // Back to the host the request came from, as the switch's NAT
        // table would send it.
        let vni = Vni::new(BOUNDARY_VNI).unwrap_or(Vni::ZERO);
        match self.encapsulate(b, outer.ip6.src, vni, None, &answer) {
            Ok(f) => self.send_underlay(walk, &name, None, f, false, true),
            Err(reason) => {
                walk.events.push(Event::Lost { at: name.clone(), reason: reason.clone() });
                walk.verdicts.push(Verdict::Lost { at: name, reason, answer: true });
            }
        }
    }

    fn enter_from_internet(&mut self, walk: &mut Walk, b: usize, item: Item) {
        let name = self.boundaries[b].name.clone();
        let from = name.clone();
        if let Ok(h) = parse_headers(&item.frame)
            && h.outer.is_some()
        {
            // Already encapsulated: the boundary sends it as it is.
            self.send_underlay(walk, &from, None, item.frame, item.want_answer, item.is_answer);
            return;
        }
        let cap = self.internet_cap;
        self.capture(cap, &item.frame);
        let summary = FrameSummary::of(&item.frame);
        let owner = summary.dst.and_then(|d| self.owner_of(d));
        let Some((h, p)) = owner else {
            let reason = match summary.dst {
                Some(d) => format!("no port owns external address {d}"),
                None => String::from("not an IP frame"),
            };
            walk.events.push(Event::Lost { at: name.clone(), reason: reason.clone() });
            walk.verdicts.push(Verdict::Lost { at: name, reason, answer: item.is_answer });
            return;
        };
        walk.events.push(Event::FromInternet {
            boundary: name.clone(),
            to: self.port_name(h, p),
            frame: summary,
        });
        let vni = Vni::new(BOUNDARY_VNI).unwrap_or(Vni::ZERO);
        let mac = self.hosts[h].ports[p].cfg.guest_mac;
        let dst = self.hosts[h].phys_ip;
        match self.encapsulate(b, dst, vni, Some(mac), &item.frame) {
            Ok(f) => self.send_underlay(walk, &from, None, f, item.want_answer, item.is_answer),
            Err(reason) => {
                walk.events.push(Event::Lost { at: name.clone(), reason: reason.clone() });
                walk.verdicts.push(Verdict::Lost { at: name, reason, answer: item.is_answer });
            }
        }
    }

    /// The port that owns an external address: its SNAT, ephemeral or a
    /// floating IP, or an external attached subnet containing it.
    fn owner_of(&self, ip: IpAddr) -> Option<(usize, usize)> {
        for (hi, h) in self.hosts.iter().enumerate() {
            for (pi, p) in h.ports.iter().enumerate() {
                if owns_external(&p.cfg, ip) {
                    return Some((hi, pi));
                }
            }
        }
        None
    }

    /// Wrap an internet frame as boundary `b` does: Geneve to `dst` with
    /// `vni` and the external tag, the inner destination MAC replaced if
    /// given.
    fn encapsulate(
        &self,
        b: usize,
        dst: Ipv6Addr,
        vni: Vni,
        inner_dst_mac: Option<MacAddr>,
        frame: &[u8],
    ) -> Result<Vec<u8>, String> {
        let mut inner = frame.to_vec();
        if let (Some(mac), Some(d)) = (inner_dst_mac, inner.get_mut(0..6)) {
            d.copy_from_slice(&mac.bytes());
        }
        let m = MsgBlk::from_bytes(HEADROOM, &inner).map_err(|e| format!("{e:?}"))?;
        let mut pkt = Packet::parse_guest(m).map_err(|f| format!("{}", f.error))?;
        let encap = Encap {
            eth: EtherHdr { dst: MacAddr::ZERO, src: MacAddr::ZERO, ether_type: 0 },
            ip6: Ipv6Hdr { hop_limit: 64, src: self.boundaries[b].ip, dst, ..Ipv6Hdr::EMPTY },
            udp: UdpHdr { src_port: BOUNDARY_UDP_SRC, dst_port: 6081, len: 0, csum: 0 },
            geneve: GeneveHdr::new(vni, GeneveOptions { external: true, ..Default::default() }),
        };
        pkt.push_encap(encap, OuterUdpCsum::Compute)
            .map_err(|e| format!("the boundary cannot encapsulate it: {e}"))?;
        Ok(pkt.into_mblk().to_vec())
    }
}

fn hdrs_dst(h: &Headers) -> String {
    match &h.l3 {
        Some(L3::Ipv4(ip)) => ip.dst.to_string(),
        Some(L3::Ipv6(ip)) => ip.dst.to_string(),
        _ => String::from("?"),
    }
}

/// True when `ip` is one of the port's external addresses.
pub fn owns_external(c: &VpcCfg, ip: IpAddr) -> bool {
    let attached = c.attached_subnets.iter().any(|s| s.external && s.cidr.contains(ip));
    let listed = match ip {
        IpAddr::V4(a) => c.ipv4.as_ref().is_some_and(|v| {
            v.external.snat.is_some_and(|s| s.ip == a)
                || v.external.ephemeral_ip.is_some_and(|e| e.ip == a)
                || v.external.floating_ips.iter().any(|f| f.ip == a)
        }),
        IpAddr::V6(a) => c.ipv6.as_ref().is_some_and(|v| {
            v.external.snat.is_some_and(|s| s.ip == a)
                || v.external.ephemeral_ip.is_some_and(|e| e.ip == a)
                || v.external.floating_ips.iter().any(|f| f.ip == a)
        }),
    };
    attached || listed
}
