//! The simulator's own behaviour, apart from what the VPC layers decide:
//! bad input is refused with the place named, pcap input is injected
//! frame by frame, frames that leave every port are reported as lost with
//! the reason, the hop budget holds, and the JSON report carries the
//! verdicts and layer steps.

mod common;

use common::*;
use opte_sim::config::{Injection, SimConfig};
use opte_sim::report::Verdict;
use opte_sim::{RunOptions, run};

fn inj(at: &str, hex: &str) -> Injection {
    Injection {
        name: Some("test".into()),
        at: at.into(),
        hex: Some(hex.into()),
        pcap: None,
        time: 0,
        reply: false,
    }
}

/// The error a config gets, with its causes.
fn refused(cfg: &SimConfig) -> String {
    let base = example_path().parent().unwrap().to_path_buf();
    match run(cfg, &base, &RunOptions::default()) {
        Ok(_) => panic!("the config was accepted"),
        Err(e) => format!("{e:#}"),
    }
}

/// A UDP frame from guest A to `dst` (etherparse-built).
fn a_udp(dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(mac(A_MAC), mac(GW_MAC))
        .ipv4([172, 30, 0, 5], dst, 64)
        .udp(6000, 7000);
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn bad_configs_are_refused_naming_the_place() {
    let k = fakekernel::scope();
    let mut c = example();
    c.packets = vec![inj("sled-z/xde0", "00")];
    assert!(refused(&c).contains("no host named \"sled-z\""), "{}", refused(&c));

    c.packets = vec![inj("sled-a/xde9", &hex(&a_udp([172, 30, 0, 9], b"x")))];
    assert!(refused(&c).contains("host sled-a has no port named \"xde9\""));

    c.packets = vec![inj("sled-a/xde0", "0102zz")];
    assert!(refused(&c).contains("not a hex digit"), "{}", refused(&c));

    c.packets = vec![inj("sled-a/xde0", "010203")];
    assert!(refused(&c).contains("shorter than an Ethernet header"));

    let mut late = inj("sled-a/xde0", &hex(&a_udp([172, 30, 0, 9], b"x")));
    late.time = 10;
    let early = inj("sled-a/xde0", &hex(&a_udp([172, 30, 0, 9], b"x")));
    c.packets = vec![late, early];
    assert!(refused(&c).contains("goes back"), "{}", refused(&c));

    let mut missing = inj("sled-a/xde0", "");
    missing.hex = None;
    missing.pcap = Some("no-such-file.pcap".into());
    c.packets = vec![missing];
    assert!(refused(&c).contains("cannot open pcap file"), "{}", refused(&c));

    let mut c = example();
    c.hosts[1].name = "sled-a".into();
    assert!(refused(&c).contains("the name \"sled-a\" is used twice"));

    let mut c = example();
    c.hosts[0].ports[0].cfg.mtu = 100;
    let e = refused(&c);
    assert!(e.contains("hosts[0].ports[0] (sled-a/xde0)") && e.contains("MTU 100"), "{e}");

    let mut c = example();
    c.hosts[0].ports[0].cfg.phys_ip = "fd77::b".parse().unwrap();
    assert!(refused(&c).contains("differs from the host's phys_ip"));

    let e = SimConfig::parse("{\"hosts\": [], \"bogus\": 1}").unwrap_err();
    assert!(format!("{e:#}").contains("unknown field `bogus`"), "{e:#}");
    drop(c);
    k.assert_clean();
}

#[test]
fn a_pcap_is_injected_frame_by_frame_and_the_output_reads_back() {
    let k = fakekernel::scope();
    let dir = scratch("pcap-in");
    let input = dir.join("in.pcap");
    {
        let f = std::fs::File::create(&input).unwrap();
        let mut w = pcap_file::pcap::PcapWriter::new(f).unwrap();
        for payload in [&b"one"[..], b"two", b"three"] {
            let fr = a_udp([172, 30, 0, 9], payload);
            let len = fr.len() as u32;
            w.write_packet(&pcap_file::pcap::PcapPacket::new(Default::default(), len, &fr))
                .unwrap();
        }
    }
    let mut c = example();
    c.packets.clear();
    let opts = RunOptions {
        out: Some(dir.join("out")),
        extra: vec![Injection {
            name: Some("three datagrams".into()),
            at: "sled-a/xde0".into(),
            hex: None,
            pcap: Some(input),
            time: 0,
            reply: false,
        }],
        ..RunOptions::default()
    };
    let (r, sim) = run(&c, &dir, &opts).unwrap();
    assert_eq!(r.packets.len(), 3);
    for p in &r.packets {
        assert_eq!(verdicts(p), ["DELIVERED to sled-b/xde0"], "{}", p.name);
    }
    assert_eq!(r.packets[2].name, "three datagrams #3");
    drop((r, sim));
    // Guest B received the three payloads in order.
    let got: Vec<Vec<u8>> = read_pcap(&dir.join("out/sled-b-xde0.pcap"))
        .iter()
        .map(|f| {
            let p = etherparse::SlicedPacket::from_ethernet(f).unwrap();
            let Some(etherparse::TransportSlice::Udp(u)) = p.transport else { panic!("not UDP") };
            u.payload().to_vec()
        })
        .collect();
    assert_eq!(got, [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]);
    k.assert_clean();
}

#[test]
fn frames_outside_every_port_are_lost_with_the_reason() {
    let k = fakekernel::scope();
    let mut c = example();
    // Guest B "moved" to a host that is not simulated.
    for h in &mut c.hosts {
        for m in &mut h.v2p {
            if m.mac.to_string() == B_MAC {
                m.host = "fd77::c".parse().unwrap();
            }
        }
    }
    c.packets = vec![inj("sled-a/xde0", &hex(&a_udp([172, 30, 0, 9], b"x")))];
    let r = run_cfg(&c, None);
    assert_eq!(
        verdicts(&r.packets[0]),
        ["LOST at underlay: no host or boundary has underlay address fd77::c"]
    );

    // A Geneve frame for a MAC no port of sled-b has.
    let inner_frame = etherparse::PacketBuilder::ethernet2(mac(A_MAC), [0xa8, 0x40, 0x25, 0, 0, 1])
        .ipv4([172, 30, 0, 5], [172, 30, 0, 77], 64)
        .udp(1, 2);
    let mut f = Vec::new();
    inner_frame.write(&mut f, b"x").unwrap();
    let mut g = vec![0, 0, 0x65, 0x58, 0, 0x1e, 0x61, 0]; // VNI 7777
    g.extend(f);
    let outer = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xa], [2, 0, 0, 0, 0, 0xb])
        .ipv6(
            "fd77::a".parse::<std::net::Ipv6Addr>().unwrap().octets(),
            "fd77::b".parse::<std::net::Ipv6Addr>().unwrap().octets(),
            64,
        )
        .udp(50000, 6081);
    let mut frame = Vec::new();
    outer.write(&mut frame, &g).unwrap();
    c.packets = vec![inj("sled-b", &hex(&frame))];
    let r = run_cfg(&c, None);
    assert_eq!(
        verdicts(&r.packets[0]),
        ["LOST at sled-b underlay: no port for VNI 7777 and guest MAC a8:40:25:00:00:01"]
    );

    // From the internet to an address no port owns.
    let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([93, 184, 216, 34], [10, 77, 77, 99], 64)
        .udp(1, 2);
    let mut f = Vec::new();
    b.write(&mut f, b"x").unwrap();
    c.packets = vec![inj("boundary", &hex(&f))];
    let r = run_cfg(&c, None);
    assert_eq!(
        verdicts(&r.packets[0]),
        ["LOST at boundary: no port owns external address 10.77.77.99"]
    );
    drop((c, r));
    k.assert_clean();
}

#[test]
fn the_hop_budget_cuts_a_long_path() {
    let k = fakekernel::scope();
    let mut c = example();
    let mut p = inj("sled-a/xde0", &hex(&a_udp([172, 30, 0, 9], b"x")));
    p.reply = true;
    c.packets = vec![p];
    let base = example_path().parent().unwrap().to_path_buf();
    // Guest out, sled-b in, B's answer out: three steps; sled-a in is the
    // fourth.
    let opts = RunOptions { max_hops: 3, ..RunOptions::default() };
    let (r, sim) = run(&c, &base, &opts).unwrap();
    assert_eq!(
        r.packets[0].verdicts,
        [
            Verdict::Delivered { port: "sled-b/xde0".into(), answer: false },
            Verdict::Lost {
                at: "simulator".into(),
                reason: "hop limit of 3 reached (a loop?)".into(),
                answer: true
            },
        ]
    );
    drop((r, sim));
    k.assert_clean();
}

#[test]
fn the_json_report_has_verdicts_layer_steps_and_frames() {
    let k = fakekernel::scope();
    let mut c = example();
    c.packets.retain(|p| p.name.as_deref() == Some("guest A pings its gateway"));
    let r = run_cfg(&c, None);
    let v = serde_json::to_value(&r).unwrap();
    let ping = &v["packets"][0];
    assert_eq!(ping["name"], "guest A pings its gateway");
    assert_eq!(ping["input"]["proto"], "ICMP");
    assert_eq!(ping["input"]["dst"], "172.30.0.1");
    assert_eq!(ping["verdicts"][0]["verdict"], "hairpin");
    let port = &ping["events"][0];
    assert_eq!((port["event"].as_str(), port["result"].as_str()), (Some("port"), Some("hairpin")));
    let gw = port["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "layer")
        .expect("a layer step");
    assert_eq!(gw["layer"], "gateway");
    assert!(gw["rule"].is_u64(), "{gw}");
    assert_eq!(gw["action"], "hairpin");
    assert_eq!(port["after"]["src"], "172.30.0.1");
    assert_eq!(port["after"]["info"], "echo reply id 7 seq 1");
    drop((c, r));
    k.assert_clean();
}
