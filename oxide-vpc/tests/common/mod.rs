//! The packet-level test harness for VPC ports: a standard configuration
//! (the guest at 172.30.0.5 / fd00::5 on 172.30.0.0/22 / fd00::/64,
//! gateway .1 / ::1), frames built with `etherparse` (an independent
//! implementation, so our parser is checked too), Geneve framing, a trace
//! recorder, and a pcap log of every frame in and out that is written to
//! `target/test-pcaps/<test>.pcap` when a test fails.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use etherparse::{PacketBuilder, SlicedPacket};
use opte::ddi::MsgBlk;
use opte::engine::port::ProcessResult;
use opte::engine::stats::DropReason;
use opte::engine::trace::{TraceEvent, Tracer};
use opte::engine::{Direction, Moment, NANOS_PER_SEC};
use opte::packet::Packet;
use opte_api::{MacAddr, Vni};
use oxide_vpc::api::*;
use oxide_vpc::engine::{PortLimits, VpcNetwork, VpcPort};

pub const GUEST_MAC: MacAddr = MacAddr::from_bytes([0xa8, 0x40, 0x25, 0xf7, 0x00, 0x05]);
pub const GW_MAC: MacAddr = MacAddr::from_bytes([0xa8, 0x40, 0x25, 0xff, 0x77, 0x77]);
pub const GUEST_V4: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 5);
pub const GW_V4: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 1);
pub const GUEST_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 5);
pub const GW_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
/// This host's underlay address.
pub const HOST_A: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 0xa);
/// Another host's underlay address.
pub const HOST_B: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 0xb);
/// A boundary switch's underlay address.
pub const BOUNDARY: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 0x99);
/// The peer guest on host B (same VPC).
pub const PEER_MAC: MacAddr = MacAddr::from_bytes([0xa8, 0x40, 0x25, 0xf7, 0x00, 0x09]);
pub const PEER_V4: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 9);
pub const PEER_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 9);
/// SNAT address and port range.
pub const SNAT_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 77, 13);
pub const SNAT_V6: Ipv6Addr = Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 13);
pub const SNAT_FIRST: u16 = 1025;
pub const SNAT_LAST: u16 = 4096;
/// An internet host.
pub const INET_V4: Ipv4Addr = Ipv4Addr::new(93, 184, 216, 34);
pub const INET_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x34);
pub const VNI: u32 = 7777;

pub fn vni(v: u32) -> Vni {
    Vni::new(v).unwrap()
}

/// The standard dual-stack port configuration, with SNAT on both
/// families and no ephemeral or floating IPs.
pub fn cfg() -> VpcCfg {
    VpcCfg {
        guest_mac: GUEST_MAC,
        gateway_mac: GW_MAC,
        vni: vni(VNI),
        phys_ip: HOST_A,
        mtu: 1500,
        ipv4: Some(Ipv4Cfg {
            vpc_subnet: "172.30.0.0/22".parse().unwrap(),
            private_ip: GUEST_V4,
            gateway_ip: GW_V4,
            external: ExternalIps {
                snat: Some(SNatCfg {
                    ip: SNAT_V4,
                    first_port: SNAT_FIRST,
                    last_port: SNAT_LAST,
                    igw: None,
                }),
                ephemeral_ip: None,
                floating_ips: vec![],
            },
        }),
        ipv6: Some(Ipv6Cfg {
            vpc_subnet: "fd00::/64".parse().unwrap(),
            private_ip: GUEST_V6,
            gateway_ip: GW_V6,
            external: ExternalIps {
                snat: Some(SNatCfg {
                    ip: SNAT_V6,
                    first_port: SNAT_FIRST,
                    last_port: SNAT_LAST,
                    igw: None,
                }),
                ephemeral_ip: None,
                floating_ips: vec![],
            },
        }),
        dhcp: DhcpCfg {
            hostname: Some("guest-a".into()),
            domain: Some("vpc.example".into()),
            search: vec!["vpc.example".into(), "example".into()],
            dns4: vec![Ipv4Addr::new(8, 8, 8, 8)],
            dns6: vec!["2001:4860:4860::8888".parse().unwrap()],
            lease_secs: None,
        },
        attached_subnets: vec![],
        transit: vec![],
        peerings: vec![],
    }
}

/// The system routes of the standard configuration: the VPC subnets, and
/// the default routes to any internet gateway.
pub fn system_routes() -> Vec<RouterEntry> {
    let sys = |dest: &str, target| RouterEntry {
        dest: dest.parse().unwrap(),
        target,
        class: RouteClass::System,
    };
    vec![
        sys("172.30.0.0/22", RouterTarget::VpcSubnet("172.30.0.0/22".parse().unwrap())),
        sys("fd00::/64", RouterTarget::VpcSubnet("fd00::/64".parse().unwrap())),
        sys("0.0.0.0/0", RouterTarget::InternetGateway(None)),
        sys("::/0", RouterTarget::InternetGateway(None)),
    ]
}

/// One trace line per event, in a compact form:
/// `entry Out`, `firewall: rule 7 StatefulAllow`, `nat: lft Stateful`,
/// `uft hit`, `return Modified`.
#[derive(Default)]
pub struct TraceLog(Mutex<Vec<String>>);

impl Tracer for TraceLog {
    fn event(&self, ev: &TraceEvent<'_>) {
        self.0.lock().unwrap().push(ev.to_string());
    }
}

impl TraceLog {
    /// The events since the last take.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    /// The layers the events since the last take visited, in order.
    pub fn layers(&self) -> Vec<String> {
        self.take()
            .into_iter()
            .filter_map(|s| s.split_once(':').map(|(l, _)| l.to_string()))
            .collect()
    }
}

/// Every frame a test sent and got back, written as a pcap if the test
/// fails.
#[derive(Default)]
pub struct PcapLog(RefCell<Vec<Vec<u8>>>);

impl PcapLog {
    pub fn record(&self, bytes: &[u8]) {
        self.0.borrow_mut().push(bytes.to_vec());
    }
}

impl Drop for PcapLog {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let name = std::thread::current().name().unwrap_or("test").replace("::", "-");
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-pcaps");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{name}.pcap"));
        let Ok(file) = std::fs::File::create(&path) else { return };
        let Ok(mut w) = pcap_file::pcap::PcapWriter::new(file) else { return };
        for (i, f) in self.0.borrow().iter().enumerate() {
            let pkt = pcap_file::pcap::PcapPacket::new(
                std::time::Duration::from_millis(i as u64),
                f.len() as u32,
                f,
            );
            let _ = w.write_packet(&pkt);
        }
        eprintln!("frames of the failed test written to {}", path.display());
    }
}

/// What a port did with one frame.
#[derive(Debug)]
pub enum Outcome {
    /// Passed, possibly changed: the bytes that leave the port.
    Pass(Vec<u8>),
    /// A reply sent back where the frame came from.
    Hairpin(Vec<u8>),
    /// Dropped, for this reason.
    Drop(DropReason),
    /// The frame did not parse.
    ParseError(String),
}

impl Outcome {
    #[track_caller]
    pub fn pass(self) -> Vec<u8> {
        match self {
            Self::Pass(b) => b,
            o => panic!("expected the frame to pass, got {o:?}"),
        }
    }

    #[track_caller]
    pub fn hairpin(self) -> Vec<u8> {
        match self {
            Self::Hairpin(b) => b,
            o => panic!("expected a hairpin reply, got {o:?}"),
        }
    }

    #[track_caller]
    pub fn dropped(self) -> DropReason {
        match self {
            Self::Drop(r) => r,
            o => panic!("expected a drop, got {o:?}"),
        }
    }
}

/// A port on a fresh network, with a trace, a pcap log and a clock.
pub struct Vpc {
    pub net: Arc<VpcNetwork>,
    pub port: Arc<VpcPort>,
    pub trace: Arc<TraceLog>,
    pub pcap: PcapLog,
    now: Cell<u64>,
}

impl Vpc {
    /// The standard configuration with the system routes.
    pub fn standard() -> Self {
        let v = Self::with(cfg(), PortLimits::default());
        for r in system_routes() {
            v.port.add_route(r).unwrap();
        }
        v
    }

    /// A port with `cfg` and `limits` on a new network (no routes).
    pub fn with(cfg: VpcCfg, limits: PortLimits) -> Self {
        Self::on(Arc::new(VpcNetwork::new()), "xde0", cfg, limits)
    }

    /// A port on an existing network.
    pub fn on(net: Arc<VpcNetwork>, name: &str, cfg: VpcCfg, limits: PortLimits) -> Self {
        let trace = Arc::new(TraceLog::default());
        let port =
            VpcPort::new(name, cfg, net.clone(), limits, Some(trace.clone() as Arc<dyn Tracer>))
                .unwrap();
        Self { net, port, trace, pcap: PcapLog::default(), now: Cell::new(1) }
    }

    /// Add the V2P mappings of the peer guest (both families, on host B).
    pub fn with_peer(self) -> Self {
        for ip in [IpAddr::V4(PEER_V4), IpAddr::V6(PEER_V6)] {
            self.net
                .set_v2p(V2pMapping { vni: vni(VNI), ip, mac: PEER_MAC, host: HOST_B })
                .unwrap();
        }
        self
    }

    /// Move the clock forward.
    pub fn advance(&self, secs: u64) {
        self.now.set(self.now.get() + secs * NANOS_PER_SEC);
    }

    pub fn now(&self) -> Moment {
        Moment(self.now.get())
    }

    /// Run the port's expiry at the current time.
    pub fn expire(&self) -> usize {
        self.port.port().expire(self.now())
    }

    /// A guest frame going out.
    pub fn out(&self, frame: &[u8]) -> Outcome {
        self.run(Direction::Out, frame)
    }

    /// An underlay frame coming in.
    pub fn inb(&self, frame: &[u8]) -> Outcome {
        self.run(Direction::In, frame)
    }

    fn run(&self, dir: Direction, frame: &[u8]) -> Outcome {
        self.pcap.record(frame);
        let m = MsgBlk::from_bytes(64, frame).unwrap();
        let parsed = match dir {
            Direction::Out => Packet::parse_guest(m),
            Direction::In => Packet::parse_underlay(m),
        };
        let mut pkt = match parsed {
            Ok(p) => p,
            Err(f) => {
                let e = f.error;
                drop(f);
                return Outcome::ParseError(format!("{e}"));
            }
        };
        let r = self.port.process(dir, &mut pkt, self.now());
        let out = match r {
            ProcessResult::Modified => Outcome::Pass(pkt.into_mblk().to_vec()),
            ProcessResult::Hairpin(m) => Outcome::Hairpin(m.to_vec()),
            ProcessResult::Drop(r) => Outcome::Drop(r),
        };
        if let Outcome::Pass(b) | Outcome::Hairpin(b) = &out {
            self.pcap.record(b);
        }
        out
    }
}

// ------------------------------------------------------------ frames

fn mac(m: MacAddr) -> [u8; 6] {
    m.bytes()
}

/// UDP over IPv4 or IPv6 (by the addresses' family).
pub fn udp(
    smac: MacAddr,
    dmac: MacAddr,
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(mac(smac), mac(dmac));
    let b = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => b.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => b.ipv6(s.octets(), d.octets(), 64),
        _ => panic!("mixed families"),
    };
    let b = b.udp(sport, dport);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).unwrap();
    out
}

/// TCP over IPv4 or IPv6 with the given flags (`"S"`, `"SA"`, `"A"`,
/// `"FA"`, `"R"`, `"PA"`).
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    smac: MacAddr,
    dmac: MacAddr,
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    flags: &str,
    seq: u32,
    ack: u32,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(mac(smac), mac(dmac));
    let b = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => b.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => b.ipv6(s.octets(), d.octets(), 64),
        _ => panic!("mixed families"),
    };
    let mut b = b.tcp(sport, dport, seq, 64240);
    for c in flags.chars() {
        b = match c {
            'S' => b.syn(),
            'A' => b.ack(ack),
            'F' => b.fin(),
            'R' => b.rst(),
            'P' => b.psh(),
            _ => panic!("flag {c}"),
        };
    }
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).unwrap();
    out
}

/// An ICMP (v4) or ICMPv6 echo request.
pub fn echo(smac: MacAddr, dmac: MacAddr, src: IpAddr, dst: IpAddr, id: u16, seq: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(mac(smac), mac(dmac));
    let payload = b"opte-ping-payload";
    let mut out = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let b = b.ipv4(s.octets(), d.octets(), 64).icmpv4_echo_request(id, seq);
            b.write(&mut out, payload).unwrap();
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let b = b.ipv6(s.octets(), d.octets(), 64).icmpv6_echo_request(id, seq);
            b.write(&mut out, payload).unwrap();
        }
        _ => panic!("mixed families"),
    }
    out
}

/// A guest frame from the standard guest to the gateway MAC.
pub fn from_guest_udp(dst: IpAddr, sport: u16, dport: u16) -> Vec<u8> {
    let src = if dst.is_ipv4() { IpAddr::V4(GUEST_V4) } else { IpAddr::V6(GUEST_V6) };
    udp(GUEST_MAC, GW_MAC, src, sport, dst, dport, b"hello")
}

/// A TCP segment (IPv4) from the standard guest to the peer guest.
pub fn guest_tcp(sport: u16, dport: u16, flags: &str) -> Vec<u8> {
    tcp(
        GUEST_MAC,
        GW_MAC,
        IpAddr::V4(GUEST_V4),
        sport,
        IpAddr::V4(PEER_V4),
        dport,
        flags,
        100,
        1,
        b"",
    )
}

/// A TCP segment (IPv4) from the peer guest to the standard guest, as
/// host B encapsulates it.
pub fn peer_tcp(sport: u16, dport: u16, flags: &str) -> Vec<u8> {
    let f = tcp(
        PEER_MAC,
        GUEST_MAC,
        IpAddr::V4(PEER_V4),
        sport,
        IpAddr::V4(GUEST_V4),
        dport,
        flags,
        900,
        101,
        b"",
    );
    encap(HOST_B, HOST_A, VNI, false, &f)
}

/// What the outer headers of an encapsulated frame said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outer {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub udp_src: u16,
    pub vni: u32,
    pub external: bool,
}

/// Split an underlay frame into its outer headers and the inner frame,
/// reading the outer IPv6 and UDP with `etherparse` and the Geneve
/// header by hand (RFC 8926).
#[track_caller]
pub fn decap(frame: &[u8]) -> (Outer, Vec<u8>) {
    let p = SlicedPacket::from_ethernet(frame).expect("outer frame parses");
    let Some(etherparse::NetSlice::Ipv6(ip)) = p.net else { panic!("outer is not IPv6") };
    let Some(etherparse::TransportSlice::Udp(u)) = p.transport else { panic!("outer is not UDP") };
    assert_eq!(u.destination_port(), 6081, "Geneve port");
    let g = u.payload();
    assert!(g.len() >= 8, "Geneve header");
    let opt_len = usize::from(g[0] & 0x3f) * 4;
    let vni = u32::from_be_bytes([0, g[4], g[5], g[6]]);
    let opts = &g[8..8 + opt_len];
    let mut external = false;
    let mut o = 0;
    while o + 4 <= opts.len() {
        let class = u16::from_be_bytes([opts[o], opts[o + 1]]);
        let ty = opts[o + 2] & 0x7f;
        let len = usize::from(opts[o + 3] & 0x1f) * 4;
        if class == 0x0129 && ty == 0 {
            external = true;
        }
        o += 4 + len;
    }
    let outer = Outer {
        src: ip.header().source_addr(),
        dst: ip.header().destination_addr(),
        udp_src: u.source_port(),
        vni,
        external,
    };
    (outer, g[8 + opt_len..].to_vec())
}

/// Wrap `inner` in Ethernet, IPv6, UDP (with a valid checksum) and
/// Geneve with `vni` (and the Oxide external option if `external`).
pub fn encap(src: Ipv6Addr, dst: Ipv6Addr, vni: u32, external: bool, inner: &[u8]) -> Vec<u8> {
    let mut g = vec![0u8; 8];
    g[2] = 0x65;
    g[3] = 0x58; // Transparent Ethernet Bridging
    g[4..7].copy_from_slice(&vni.to_be_bytes()[1..]);
    if external {
        g[0] = 1; // one word of options
        g[1] = 0;
        g.extend([0x01, 0x29, 0x80, 0x00]); // class 0x0129, type 0 critical, no body
    }
    g.extend_from_slice(inner);
    let b = PacketBuilder::ethernet2([0x02, 0, 0, 0, 0, 0xb], [0x02, 0, 0, 0, 0, 0xa])
        .ipv6(src.octets(), dst.octets(), 64)
        .udp(40000, 6081);
    let mut out = Vec::new();
    b.write(&mut out, &g).unwrap();
    out
}

/// The inner frame's fields most tests check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inner {
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TCP/UDP ports, or the ICMP echo id twice.
    pub sport: u16,
    pub dport: u16,
}

/// Read a guest-side frame with `etherparse`, checking its IP and
/// transport checksums.
#[track_caller]
pub fn inner(frame: &[u8]) -> Inner {
    let p = SlicedPacket::from_ethernet(frame).expect("frame parses");
    let Some(etherparse::LinkSlice::Ethernet2(e)) = &p.link else { panic!("not Ethernet") };
    let (src, dst) = match &p.net {
        Some(etherparse::NetSlice::Ipv4(ip)) => {
            let h = ip.header();
            let hdr = h.to_header();
            assert_eq!(hdr.header_checksum, hdr.calc_header_checksum(), "IPv4 header checksum");
            (IpAddr::V4(h.source_addr()), IpAddr::V4(h.destination_addr()))
        }
        Some(etherparse::NetSlice::Ipv6(ip)) => {
            (IpAddr::V6(ip.header().source_addr()), IpAddr::V6(ip.header().destination_addr()))
        }
        _ => panic!("no IP"),
    };
    let (sport, dport) = match &p.transport {
        Some(etherparse::TransportSlice::Udp(u)) => (u.source_port(), u.destination_port()),
        Some(etherparse::TransportSlice::Tcp(t)) => (t.source_port(), t.destination_port()),
        Some(etherparse::TransportSlice::Icmpv4(i)) => match i.icmp_type() {
            etherparse::Icmpv4Type::EchoRequest(h) | etherparse::Icmpv4Type::EchoReply(h) => {
                (h.id, h.id)
            }
            _ => (0, 0),
        },
        Some(etherparse::TransportSlice::Icmpv6(i)) => match i.icmp_type() {
            etherparse::Icmpv6Type::EchoRequest(h) | etherparse::Icmpv6Type::EchoReply(h) => {
                (h.id, h.id)
            }
            _ => (0, 0),
        },
        _ => (0, 0),
    };
    assert!(transport_checksum_ok(frame), "transport checksum");
    Inner {
        src_mac: MacAddr::from_bytes(e.source()),
        dst_mac: MacAddr::from_bytes(e.destination()),
        src,
        dst,
        sport,
        dport,
    }
}

/// True when the frame's TCP, UDP, ICMP or ICMPv6 checksum verifies (or
/// it has no such header).
pub fn transport_checksum_ok(frame: &[u8]) -> bool {
    let Ok(p) = etherparse::PacketHeaders::from_ethernet_slice(frame) else { return false };
    let payload = p.payload.slice();
    match (&p.net, &p.transport) {
        (Some(etherparse::NetHeaders::Ipv4(ip, _)), Some(etherparse::TransportHeader::Udp(u))) => {
            u.checksum == 0 || u.calc_checksum_ipv4(ip, payload).ok() == Some(u.checksum)
        }
        (Some(etherparse::NetHeaders::Ipv6(ip, _)), Some(etherparse::TransportHeader::Udp(u))) => {
            u.calc_checksum_ipv6(ip, payload).ok() == Some(u.checksum)
        }
        (Some(etherparse::NetHeaders::Ipv4(ip, _)), Some(etherparse::TransportHeader::Tcp(t))) => {
            t.calc_checksum_ipv4(ip, payload).ok() == Some(t.checksum)
        }
        (Some(etherparse::NetHeaders::Ipv6(ip, _)), Some(etherparse::TransportHeader::Tcp(t))) => {
            t.calc_checksum_ipv6(ip, payload).ok() == Some(t.checksum)
        }
        (_, Some(etherparse::TransportHeader::Icmpv4(i))) => {
            i.icmp_type.calc_checksum(payload) == i.checksum
        }
        (
            Some(etherparse::NetHeaders::Ipv6(ip, _)),
            Some(etherparse::TransportHeader::Icmpv6(i)),
        ) => i.icmp_type.calc_checksum(ip.source, ip.destination, payload).ok() == Some(i.checksum),
        _ => true,
    }
}
