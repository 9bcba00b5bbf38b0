//! The firewall layer: defaults, rule fields, stateful replies, and how
//! rule changes treat established flows.

mod common;

use common::*;
use opte::engine::Direction;
use opte::engine::stats::DropReason;
use oxide_vpc::api::*;
use oxide_vpc::engine::VpcError;
use std::net::{IpAddr, Ipv4Addr};

fn rule(
    dir: Direction,
    prio: u16,
    action: FwAction,
    hosts: FwHosts,
    protocol: FwProtocol,
    ports: &[(u16, u16)],
) -> FirewallRule {
    FirewallRule {
        direction: dir,
        priority: prio,
        action,
        hosts,
        protocol,
        ports: ports.iter().map(|&(first, last)| PortRange { first, last }).collect(),
    }
}

#[test]
fn inbound_is_denied_by_default_and_allowed_by_rule_with_replies_out() {
    let k = fakekernel::scope();
    let v = Vpc::standard().with_peer();
    assert_eq!(
        v.inb(&peer_tcp(40000, 22, "S")).dropped(),
        DropReason::Denied { layer: "firewall", rule: None }
    );
    let id = v
        .port
        .add_fw_rule(rule(
            Direction::In,
            10,
            FwAction::Allow,
            FwHosts::Subnet("172.30.0.0/24".parse().unwrap()),
            FwProtocol::Tcp,
            &[(22, 22)],
        ))
        .unwrap();
    inner(&v.inb(&peer_tcp(40000, 22, "S")).pass());
    // The guest's reply passes (stateful), and so does the rest.
    decap(&v.out(&guest_tcp(22, 40000, "SA")).pass());
    inner(&v.inb(&peer_tcp(40000, 22, "A")).pass());
    // Another port is still denied.
    assert_eq!(
        v.inb(&peer_tcp(40001, 23, "S")).dropped(),
        DropReason::Denied { layer: "firewall", rule: None }
    );
    let fw = v.port.port().dump_layer("firewall").unwrap();
    assert!(fw.rules_in.iter().any(|(rid, prio, _, hits)| *rid == id && *prio == 10 && *hits == 1));
    drop(v);
    k.assert_clean();
}

#[test]
fn deny_goes_first_at_equal_priority_and_lower_priority_first() {
    let k = fakekernel::scope();
    let v = Vpc::standard().with_peer();
    let any_tcp =
        |prio, action| rule(Direction::Out, prio, action, FwHosts::Any, FwProtocol::Tcp, &[]);
    v.port.set_fw_rules(vec![any_tcp(20, FwAction::Allow), any_tcp(20, FwAction::Deny)]).unwrap();
    assert!(matches!(
        v.out(&guest_tcp(1000, 80, "S")).dropped(),
        DropReason::Denied { layer: "firewall", rule: Some(_) }
    ));
    v.port.set_fw_rules(vec![any_tcp(10, FwAction::Allow), any_tcp(20, FwAction::Deny)]).unwrap();
    decap(&v.out(&guest_tcp(1000, 80, "S")).pass());
    // UDP is not TCP: the outbound default (stateful allow) applies.
    decap(&v.out(&from_guest_udp(IpAddr::V4(PEER_V4), 1, 2)).pass());
    drop(v);
    k.assert_clean();
}

#[test]
fn host_protocol_and_port_filters() {
    let k = fakekernel::scope();
    let v = Vpc::standard().with_peer();
    let deny = |hosts, protocol, ports: &[(u16, u16)]| {
        rule(Direction::Out, 10, FwAction::Deny, hosts, protocol, ports)
    };
    let peer = IpAddr::V4(PEER_V4);
    let cases: Vec<(FirewallRule, bool)> = vec![
        (deny(FwHosts::Ip(peer), FwProtocol::Any, &[]), true),
        (deny(FwHosts::Ip(IpAddr::V4(Ipv4Addr::new(172, 30, 0, 10))), FwProtocol::Any, &[]), false),
        (deny(FwHosts::Subnet("172.30.0.8/29".parse().unwrap()), FwProtocol::Udp, &[]), true),
        (deny(FwHosts::Any, FwProtocol::Tcp, &[]), false),
        (deny(FwHosts::Any, FwProtocol::Udp, &[(50, 60), (7000, 7000)]), true),
        (deny(FwHosts::Any, FwProtocol::Udp, &[(50, 60)]), false),
        (deny(FwHosts::Vni(vni(VNI)), FwProtocol::Udp, &[]), true),
        (deny(FwHosts::Vni(vni(4242)), FwProtocol::Any, &[]), false),
        (deny(FwHosts::Any, FwProtocol::Other(17), &[]), true),
        (deny(FwHosts::Any, FwProtocol::Icmp(None), &[]), false),
    ];
    for (i, (r, denied)) in cases.into_iter().enumerate() {
        v.port.set_fw_rules(vec![r.clone()]).unwrap();
        let out = v.out(&from_guest_udp(peer, 30000 + i as u16, 7000));
        assert_eq!(
            matches!(out, Outcome::Drop(DropReason::Denied { layer: "firewall", .. })),
            denied,
            "{r:?}: {out:?}"
        );
    }
    drop(v);
    k.assert_clean();
}

#[test]
fn icmp_type_and_code_filters() {
    let k = fakekernel::scope();
    let v = Vpc::standard().with_peer();
    let allow_echo = rule(
        Direction::In,
        10,
        FwAction::Allow,
        FwHosts::Any,
        FwProtocol::Icmp(Some(IcmpFilter { ty: 8, codes: Some((0, 0)) })),
        &[],
    );
    v.port.set_fw_rules(vec![allow_echo]).unwrap();
    let ping = echo(PEER_MAC, GUEST_MAC, IpAddr::V4(PEER_V4), IpAddr::V4(GUEST_V4), 77, 1);
    inner(&v.inb(&encap(HOST_B, HOST_A, VNI, false, &ping)).pass());
    let v6ping = echo(PEER_MAC, GUEST_MAC, IpAddr::V6(PEER_V6), IpAddr::V6(GUEST_V6), 77, 1);
    assert!(matches!(
        v.inb(&encap(HOST_B, HOST_A, VNI, false, &v6ping)).dropped(),
        DropReason::Denied { layer: "firewall", .. }
    ));
    let bad = rule(
        Direction::In,
        1,
        FwAction::Allow,
        FwHosts::Any,
        FwProtocol::Icmp(Some(IcmpFilter { ty: 3, codes: Some((4, 1)) })),
        &[],
    );
    assert_eq!(
        v.port.add_fw_rule(bad),
        Err(VpcError::Cfg(CfgError::BadIcmpCodes { first: 4, last: 1 }))
    );
    drop(v);
    k.assert_clean();
}

#[test]
fn adding_or_removing_a_rule_keeps_established_flows_and_replacing_reevaluates() {
    let k = fakekernel::scope();
    let v = Vpc::standard().with_peer();
    let ssh = rule(Direction::In, 10, FwAction::Allow, FwHosts::Any, FwProtocol::Tcp, &[(22, 22)]);
    let id = v.port.add_fw_rule(ssh.clone()).unwrap();
    inner(&v.inb(&peer_tcp(40000, 22, "S")).pass());
    decap(&v.out(&guest_tcp(22, 40000, "SA")).pass());
    inner(&v.inb(&peer_tcp(40000, 22, "A")).pass());
    // Add a rule denying all TCP: the established flow continues, a new
    // one is denied.
    let deny_tcp = rule(Direction::In, 5, FwAction::Deny, FwHosts::Any, FwProtocol::Tcp, &[]);
    let deny_id = v.port.add_fw_rule(deny_tcp.clone()).unwrap();
    inner(&v.inb(&peer_tcp(40000, 22, "A")).pass());
    assert!(
        matches!(v.inb(&peer_tcp(40002, 22, "S")).dropped(), DropReason::Denied { rule: Some(r), .. } if r == deny_id)
    );
    // Remove the rule that allowed it: the flow still continues.
    v.port.rm_fw_rule(Direction::In, id).unwrap();
    inner(&v.inb(&peer_tcp(40000, 22, "A")).pass());
    assert_eq!(
        v.port.fw_rules().iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(),
        vec![deny_tcp]
    );
    // Replacing the whole set re-evaluates it: denied now.
    v.port
        .set_fw_rules(vec![rule(
            Direction::In,
            5,
            FwAction::Deny,
            FwHosts::Any,
            FwProtocol::Tcp,
            &[],
        )])
        .unwrap();
    assert!(matches!(
        v.inb(&peer_tcp(40000, 22, "A")).dropped(),
        DropReason::Denied { layer: "firewall", .. }
    ));
    // Removing an unknown id is refused.
    assert_eq!(
        v.port.rm_fw_rule(Direction::In, id),
        Err(VpcError::NoSuchFwRule { dir: Direction::In, id })
    );
    drop(v);
    k.assert_clean();
}

#[test]
fn vni_filters_see_the_source_vpc_and_never_external_traffic() {
    let k = fakekernel::scope();
    let mut c = cfg();
    c.peerings = vec![Peering { vni: vni(8888), subnets: vec!["10.1.0.0/24".parse().unwrap()] }];
    let v = Vpc::with(c, Default::default());
    let allow_peer =
        rule(Direction::In, 10, FwAction::Allow, FwHosts::Vni(vni(8888)), FwProtocol::Udp, &[]);
    v.port.add_fw_rule(allow_peer).unwrap();
    let from = |src: Ipv4Addr| {
        udp(PEER_MAC, GUEST_MAC, IpAddr::V4(src), 53, IpAddr::V4(GUEST_V4), 5353, b"q")
    };
    // From the peered VPC: allowed.
    inner(&v.inb(&encap(HOST_B, HOST_A, 8888, false, &from(Ipv4Addr::new(10, 1, 0, 7)))).pass());
    // From our own VPC: not that VNI, denied.
    assert!(matches!(
        v.inb(&encap(HOST_B, HOST_A, VNI, false, &from(PEER_V4))).dropped(),
        DropReason::Denied { layer: "firewall", .. }
    ));
    // External traffic on our VNI: a VNI rule for our VNI does not match.
    v.port
        .add_fw_rule(rule(
            Direction::In,
            10,
            FwAction::Allow,
            FwHosts::Vni(vni(VNI)),
            FwProtocol::Udp,
            &[],
        ))
        .unwrap();
    inner(&v.inb(&encap(HOST_B, HOST_A, VNI, false, &from(PEER_V4))).pass());
    let ext = udp(PEER_MAC, GUEST_MAC, IpAddr::V4(INET_V4), 53, IpAddr::V4(GUEST_V4), 5353, b"q");
    assert!(matches!(
        v.inb(&encap(BOUNDARY, HOST_A, VNI, true, &ext)).dropped(),
        DropReason::Denied { .. }
    ));
    drop(v);
    k.assert_clean();
}
