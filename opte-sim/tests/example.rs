//! The worked example (`examples/two-hosts.json`, what `cargo xtask demo`
//! runs): every path ends as the example says, and the captures it
//! writes, read back with `etherparse`, carry the addresses, VNIs and
//! ports each path must have.

mod common;

use common::*;

const A_TO_B: &str = "guest A sends UDP to guest B on sled-b, which answers";

#[test]
fn every_path_of_the_worked_example_ends_as_described() {
    let k = fakekernel::scope();
    let r = run_cfg(&example(), None);
    let hairpin = ["ANSWERED by sled-a/xde0 (hairpin)"];
    assert_eq!(verdicts(packet(&r, "guest A asks ARP for its gateway")), hairpin);
    assert_eq!(verdicts(packet(&r, "guest A asks DHCP for its address")), hairpin);
    assert_eq!(verdicts(packet(&r, "guest A pings its gateway")), hairpin);
    assert_eq!(verdicts(packet(&r, "guest A solicits its IPv6 gateway (NDP)")), hairpin);
    let there_and_back = ["DELIVERED to sled-b/xde0", "answer DELIVERED to sled-a/xde0"];
    // The pcap input holds two datagrams; each is a packet of its own.
    assert_eq!(verdicts(packet(&r, &format!("{A_TO_B} #1"))), there_and_back);
    assert_eq!(verdicts(packet(&r, &format!("{A_TO_B} #2"))), there_and_back);
    assert_eq!(
        verdicts(packet(&r, "guest A pings guest B over IPv6, which answers")),
        there_and_back
    );
    assert_eq!(
        verdicts(packet(&r, "guest A pings guest C in the peered VPC, which answers")),
        ["DELIVERED to sled-b/xde1", "answer DELIVERED to sled-a/xde0"]
    );
    assert_eq!(
        verdicts(packet(&r, "guest A pings an internet host, which answers")),
        ["TO INTERNET through boundary", "answer DELIVERED to sled-a/xde0"]
    );
    assert_eq!(
        verdicts(packet(&r, "an internet host opens ssh to guest B's floating IP")),
        ["DELIVERED to sled-b/xde0", "answer TO INTERNET through boundary"]
    );
    assert_eq!(
        verdicts(packet(&r, "guest A spoofs guest B's address")),
        ["DROPPED by sled-a/xde0 (out): denied by layer gateway default"]
    );
    let later =
        packet(&r, "guest A sends UDP to guest B again, ten minutes later (its flow expired)");
    assert_eq!(verdicts(later), ["DELIVERED to sled-b/xde0"]);
    assert!(
        later
            .expired
            .iter()
            .any(|e| e.port == "sled-a/xde0" && e.flow == "UDP 172.30.0.5:5000 -> 172.30.0.9:7000"),
        "the A-to-B flow expired before the late packet: {:?}",
        later.expired
    );
    drop(r);
    k.assert_clean();
}

#[test]
fn the_second_packet_of_a_flow_hits_the_uft_and_the_first_walks_the_layers() {
    let k = fakekernel::scope();
    let r = run_cfg(&example(), None);
    let layers_of = |name: &str| -> Vec<String> {
        let opte_sim::report::Event::Port(pass) = &packet(&r, name).events[0] else {
            panic!("{name}: the first event is not a port pass")
        };
        pass.steps
            .iter()
            .filter_map(|s| match s {
                opte_sim::recorder::TraceStep::Layer { layer, .. } => Some(layer.clone()),
                opte_sim::recorder::TraceStep::UftHit { .. } => Some("uft".into()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        layers_of(&format!("{A_TO_B} #1")),
        ["gateway", "firewall", "router", "nat", "overlay"]
    );
    assert_eq!(layers_of(&format!("{A_TO_B} #2")), ["uft"]);
    // A rule's decision names the rule and what it does.
    let p = packet(&r, "guest A pings an internet host, which answers");
    let opte_sim::report::Event::Port(pass) = &p.events[0] else { panic!() };
    let nat = pass
        .steps
        .iter()
        .find_map(|s| match s {
            opte_sim::recorder::TraceStep::Layer { layer, rule, detail, .. } if layer == "nat" => {
                Some((*rule, detail.clone()))
            }
            _ => None,
        })
        .expect("the NAT layer decided");
    assert!(nat.0.is_some(), "a NAT rule decided");
    assert!(nat.1.unwrap_or_default().contains("10.77.77.13"), "the rule names the SNAT address");
    drop(r);
    k.assert_clean();
}

#[test]
fn the_captures_carry_the_right_addresses_vnis_and_ports() {
    let k = fakekernel::scope();
    let out = scratch("captures");
    let r = run_cfg(&example(), Some(out.clone()));
    assert!(r.pcaps.iter().any(|p| p.ends_with("internet.pcap")));
    drop(r);

    // What sled-a sent on the underlay: A's datagram to B, to sled-b on
    // VNI 7777, its inner destination MAC B's.
    let ul_a = read_pcap(&out.join("sled-a-underlay.pcap"));
    let sent_a: Vec<(Outer, Inner)> = ul_a
        .iter()
        .filter_map(|f| decap(f))
        .filter(|(o, _)| o.src == "fd77::a".parse::<std::net::Ipv6Addr>().unwrap())
        .filter_map(|(o, i)| inner(&i).map(|i| (o, i)))
        .collect();
    let (o, i) = sent_a.iter().find(|(_, i)| i.kind == "udp").expect("A's UDP on the underlay");
    assert_eq!((o.dst, o.vni, o.external), ("fd77::b".parse().unwrap(), 7777, false));
    assert_eq!((i.src_mac, i.dst_mac), (mac(A_MAC), mac(B_MAC)));
    assert_eq!((i.src, i.sport, i.dst, i.dport), (ip("172.30.0.5"), 5000, ip("172.30.0.9"), 7000));
    // The ping to the peered VPC is carried to sled-b with C's MAC.
    let (o, i) = sent_a
        .iter()
        .find(|(_, i)| i.dst == ip("10.20.0.7"))
        .expect("A's ping to C on the underlay");
    assert_eq!((o.dst, i.dst_mac), ("fd77::b".parse().unwrap(), mac(C_MAC)));
    // The internet ping goes to the boundary, tagged external on VNI 99,
    // from the SNAT address with a translated echo id.
    let (o, i) = sent_a
        .iter()
        .find(|(_, i)| i.dst == ip("93.184.216.34"))
        .expect("A's internet ping on the underlay");
    assert_eq!((o.dst, o.vni, o.external), ("fd77::99".parse().unwrap(), 99, true));
    assert_eq!(i.src, ip("10.77.77.13"));
    assert_ne!(i.sport, 13, "the echo id is translated");

    // The internet saw the SNAT address, and the floating IP answering ssh.
    let net: Vec<Inner> =
        read_pcap(&out.join("internet.pcap")).iter().filter_map(|f| inner(f)).collect();
    assert!(net.iter().any(|i| i.kind == "icmp-echo-request"
        && i.src == ip("10.77.77.13")
        && i.dst == ip("93.184.216.34")));
    assert!(net.iter().any(|i| i.kind == "tcp-syn-ack"
        && (i.src, i.sport) == (ip("10.77.77.20"), 22)
        && (i.dst, i.dport) == (ip("93.184.216.34"), 51000)));

    // Guest A's NIC: its requests out, and back: the ARP and ping answers
    // from the gateway, B's UDP answer, and the internet's echo reply with
    // A's own address and echo id restored.
    let a: Vec<Vec<u8>> = read_pcap(&out.join("sled-a-xde0.pcap"));
    let to_a: Vec<Inner> =
        a.iter().filter(|f| f[0..6] == mac(A_MAC)).filter_map(|f| inner(f)).collect();
    assert!(to_a.iter().all(|i| i.src_mac == mac(GW_MAC)), "frames to A come from the gateway MAC");
    assert!(to_a.iter().any(|i| i.kind == "icmp-echo-reply" && i.src == ip("172.30.0.1")));
    assert!(to_a.iter().any(|i| i.kind == "udp"
        && (i.src, i.sport, i.dst, i.dport) == (ip("172.30.0.9"), 7000, ip("172.30.0.5"), 5000)));
    assert!(to_a.iter().any(|i| i.kind == "icmp-echo-reply"
        && (i.src, i.dst, i.sport) == (ip("93.184.216.34"), ip("172.30.0.5"), 13)));
    // The DHCP offer: from the gateway's address to the client port, with
    // A's private address as "your address" (BOOTP yiaddr, RFC 2131).
    let offer = a
        .iter()
        .find_map(|f| {
            let p = etherparse::SlicedPacket::from_ethernet(f).ok()?;
            let Some(etherparse::TransportSlice::Udp(u)) = p.transport else { return None };
            (u.source_port() == 67 && u.destination_port() == 68).then(|| u.payload().to_vec())
        })
        .expect("a DHCP reply reached A");
    assert_eq!(offer[0], 2, "a BOOTP reply");
    assert_eq!(&offer[16..20], &[172, 30, 0, 5], "A's address is offered");
    let arp_reply = a.iter().find(|f| f[12..14] == [0x08, 0x06] && f[0..6] == mac(A_MAC));
    let arp = arp_reply.expect("an ARP reply reached A");
    assert_eq!(&arp[22..28], &mac(GW_MAC), "the gateway's MAC is the answer");

    // Guest B received the internet's SYN on its private address.
    let b: Vec<Inner> =
        read_pcap(&out.join("sled-b-xde0.pcap")).iter().filter_map(|f| inner(f)).collect();
    assert!(b.iter().any(|i| i.kind == "tcp-syn"
        && (i.src, i.dst, i.dport) == (ip("93.184.216.34"), ip("172.30.0.9"), 22)
        && i.dst_mac == mac(B_MAC)));
    k.assert_clean();
}

/// Peering: the receiver must know which VPC a packet came from, so B's
/// firewall rule "only ICMP from VNI 8888" keeps C's UDP out.
#[test]
fn a_peer_is_filtered_by_its_own_vni() {
    let k = fakekernel::scope();
    let r = run_cfg(&example(), None);
    let p = packet(
        &r,
        "guest C in the peered VPC sends UDP to guest B (B allows only ping from VPC 8888)",
    );
    assert_eq!(verdicts(p), ["DROPPED by sled-b/xde0 (in): denied by layer firewall default"]);
    drop(r);
    k.assert_clean();
}
