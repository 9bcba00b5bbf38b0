//! Helpers for the simulator's tests: the worked example, a run of it
//! into a scratch directory, and reading output pcaps back with
//! `etherparse` (an independent parser, so the simulator's output is
//! checked by code that shares nothing with the engine).
#![allow(dead_code)]

use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use opte_sim::config::SimConfig;
use opte_sim::report::{PacketReport, RunReport, Verdict};
use opte_sim::{RunOptions, run};

/// The worked example's path.
pub fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/two-hosts.json")
}

/// The worked example, loaded and checked.
pub fn example() -> SimConfig {
    SimConfig::load(&example_path()).expect("the example loads")
}

/// A fresh scratch directory for one test's output.
pub fn scratch(test: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("opte-sim").join(test);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Run `cfg` (pcap paths relative to the examples directory), writing
/// captures to `out` if given.
pub fn run_cfg(cfg: &SimConfig, out: Option<PathBuf>) -> RunReport {
    let base = example_path().parent().unwrap().to_path_buf();
    let opts = RunOptions { out, ..RunOptions::default() };
    let (report, sim) = run(cfg, &base, &opts).expect("the simulation runs");
    drop(sim);
    report
}

/// The report of the packet with this name.
#[track_caller]
pub fn packet<'a>(r: &'a RunReport, name: &str) -> &'a PacketReport {
    r.packets.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("no packet named {name}"))
}

/// The verdict lines of a packet, as the text report prints them.
pub fn verdicts(p: &PacketReport) -> Vec<String> {
    p.verdicts.iter().map(Verdict::text).collect()
}

/// Every frame of a pcap file.
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut r = pcap_file::pcap::PcapReader::new(f).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.unwrap().data.into_owned());
    }
    out
}

/// The outer headers of a Geneve frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outer {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub vni: u32,
    pub external: bool,
}

/// Split a Geneve frame into its outer headers and inner frame (outer
/// IPv6 and UDP by `etherparse`, Geneve by hand per RFC 8926); `None`
/// for a frame that is not Geneve.
pub fn decap(frame: &[u8]) -> Option<(Outer, Vec<u8>)> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let Some(NetSlice::Ipv6(ip)) = p.net else { return None };
    let Some(TransportSlice::Udp(u)) = p.transport else { return None };
    if u.destination_port() != 6081 {
        return None;
    }
    let g = u.payload();
    let opt_len = usize::from(*g.first()? & 0x3f) * 4;
    let vni = u32::from_be_bytes([0, *g.get(4)?, *g.get(5)?, *g.get(6)?]);
    let opts = g.get(8..8 + opt_len)?;
    let mut external = false;
    let mut o = 0;
    while o + 4 <= opts.len() {
        let class = u16::from_be_bytes([opts[o], opts[o + 1]]);
        if class == 0x0129 && opts[o + 2] & 0x7f == 0 {
            external = true;
        }
        o += 4 + usize::from(opts[o + 3] & 0x1f) * 4;
    }
    let outer = Outer {
        src: ip.header().source_addr(),
        dst: ip.header().destination_addr(),
        vni,
        external,
    };
    Some((outer, g.get(8 + opt_len..)?.to_vec()))
}

/// What a plain frame carries, read by `etherparse`, with its IP and
/// transport checksums verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inner {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: IpAddr,
    pub dst: IpAddr,
    /// `udp`, `tcp`, `icmp-echo-request`, `icmp-echo-reply`, ...
    pub kind: String,
    /// Ports, or the echo id twice.
    pub sport: u16,
    pub dport: u16,
}

/// Read a plain IP frame; `None` for ARP and non-IP frames.
#[track_caller]
pub fn inner(frame: &[u8]) -> Option<Inner> {
    let p = SlicedPacket::from_ethernet(frame).expect("frame parses");
    let Some(etherparse::LinkSlice::Ethernet2(e)) = &p.link else { panic!("not Ethernet") };
    let (src, dst) = match &p.net {
        Some(NetSlice::Ipv4(ip)) => {
            let h = ip.header().to_header();
            assert_eq!(h.header_checksum, h.calc_header_checksum(), "IPv4 header checksum");
            (IpAddr::V4(ip.header().source_addr()), IpAddr::V4(ip.header().destination_addr()))
        }
        Some(NetSlice::Ipv6(ip)) => {
            (IpAddr::V6(ip.header().source_addr()), IpAddr::V6(ip.header().destination_addr()))
        }
        _ => return None,
    };
    assert!(checksum_ok(frame), "transport checksum of {src} > {dst}");
    let (kind, sport, dport) = match &p.transport {
        Some(TransportSlice::Udp(u)) => ("udp".to_string(), u.source_port(), u.destination_port()),
        Some(TransportSlice::Tcp(t)) => {
            let k = match (t.syn(), t.ack()) {
                (true, false) => "tcp-syn",
                (true, true) => "tcp-syn-ack",
                _ => "tcp",
            };
            (k.to_string(), t.source_port(), t.destination_port())
        }
        Some(TransportSlice::Icmpv4(i)) => match i.icmp_type() {
            etherparse::Icmpv4Type::EchoRequest(h) => ("icmp-echo-request".into(), h.id, h.id),
            etherparse::Icmpv4Type::EchoReply(h) => ("icmp-echo-reply".into(), h.id, h.id),
            _ => ("icmp".into(), 0, 0),
        },
        Some(TransportSlice::Icmpv6(i)) => match i.icmp_type() {
            etherparse::Icmpv6Type::EchoRequest(h) => ("icmpv6-echo-request".into(), h.id, h.id),
            etherparse::Icmpv6Type::EchoReply(h) => ("icmpv6-echo-reply".into(), h.id, h.id),
            _ => ("icmpv6".into(), 0, 0),
        },
        _ => ("other".into(), 0, 0),
    };
    Some(Inner { src_mac: e.source(), dst_mac: e.destination(), src, dst, kind, sport, dport })
}

/// True when the frame's TCP, UDP, ICMP or ICMPv6 checksum verifies.
pub fn checksum_ok(frame: &[u8]) -> bool {
    use etherparse::{NetHeaders, TransportHeader};
    let Ok(p) = etherparse::PacketHeaders::from_ethernet_slice(frame) else { return false };
    let payload = p.payload.slice();
    match (&p.net, &p.transport) {
        (Some(NetHeaders::Ipv4(ip, _)), Some(TransportHeader::Udp(u))) => {
            u.checksum == 0 || u.calc_checksum_ipv4(ip, payload).ok() == Some(u.checksum)
        }
        (Some(NetHeaders::Ipv6(ip, _)), Some(TransportHeader::Udp(u))) => {
            u.calc_checksum_ipv6(ip, payload).ok() == Some(u.checksum)
        }
        (Some(NetHeaders::Ipv4(ip, _)), Some(TransportHeader::Tcp(t))) => {
            t.calc_checksum_ipv4(ip, payload).ok() == Some(t.checksum)
        }
        (Some(NetHeaders::Ipv6(ip, _)), Some(TransportHeader::Tcp(t))) => {
            t.calc_checksum_ipv6(ip, payload).ok() == Some(t.checksum)
        }
        (_, Some(TransportHeader::Icmpv4(i))) => i.icmp_type.calc_checksum(payload) == i.checksum,
        (Some(NetHeaders::Ipv6(ip, _)), Some(TransportHeader::Icmpv6(i))) => {
            i.icmp_type.calc_checksum(ip.source, ip.destination, payload).ok() == Some(i.checksum)
        }
        _ => true,
    }
}

/// A MAC address from its text.
pub fn mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s.split(':').map(|b| u8::from_str_radix(b, 16).unwrap()).collect();
    v.try_into().unwrap()
}

pub const A_MAC: &str = "a8:40:25:f7:00:05";
pub const B_MAC: &str = "a8:40:25:f7:00:09";
pub const C_MAC: &str = "a8:40:25:f8:00:07";
pub const GW_MAC: &str = "a8:40:25:ff:77:77";

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
