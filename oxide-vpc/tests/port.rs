//! Whole-port behaviour of a VPC port: layer order both ways, pause and
//! reset, malformed packets, TCP state in both directions with expiry
//! and early reuse, flow expiry, table limits, and cached flows being
//! re-decided when rules change in either direction.

mod common;

use common::*;
use opte::engine::Direction;
use opte::engine::port::PortError;
use opte::engine::stats::DropReason;
use opte::engine::tcp_state::TcpState;
use oxide_vpc::api::*;
use oxide_vpc::engine::PortLimits;
use std::net::IpAddr;

fn tcp_state(v: &Vpc) -> Vec<TcpState> {
    v.port.port().dump_tcp().into_iter().map(|(_, s)| s).collect()
}

#[test]
fn layers_run_in_order_out_and_in_reverse() {
    let k = fakekernel::scope();
    let v = Vpc::standard().with_peer();
    v.trace.take();
    v.out(&from_guest_udp(IpAddr::V4(PEER_V4), 1000, 2000)).pass();
    assert_eq!(v.trace.layers(), ["gateway", "firewall", "router", "nat", "overlay"]);
    let reply =
        udp(PEER_MAC, GUEST_MAC, IpAddr::V4(PEER_V4), 2000, IpAddr::V4(GUEST_V4), 1000, b"r");
    v.inb(&encap(HOST_B, HOST_A, VNI, false, &reply)).pass();
    assert_eq!(v.trace.layers(), ["overlay", "nat", "router", "firewall", "gateway"]);
    // The next packet of each direction visits no layer.
    v.out(&from_guest_udp(IpAddr::V4(PEER_V4), 1000, 2000)).pass();
    v.inb(&encap(HOST_B, HOST_A, VNI, false, &reply)).pass();
    assert!(v.trace.layers().is_empty());
    assert_eq!(v.port.port().stats().uft_hit, 2);
    drop(v);
    k.assert_clean();
}

#[test]
fn a_paused_port_drops_and_a_reset_forgets_flows_but_keeps_rules() {
    let k = fakekernel::scope();
    let v = Vpc::standard().with_peer();
    let f = from_guest_udp(IpAddr::V4(PEER_V4), 1000, 2000);
    v.out(&f).pass();
    v.port.port().pause().unwrap();
    assert_eq!(v.out(&f).dropped(), DropReason::NotRunning);
    assert!(matches!(v.port.port().pause(), Err(PortError::BadState { .. })));
    v.port.port().start().unwrap();
    v.out(&f).pass();
    let before = v.port.port().table_usage();
    assert_eq!(before.uft_out, 1);
    v.port.port().reset();
    let after = v.port.port().table_usage();
    assert_eq!((after.uft_out, after.uft_in, after.tcp), (0, 0, 0));
    assert_eq!(v.port.routes(), system_routes(), "rules survive a reset");
    v.trace.take();
    v.out(&f).pass();
    assert_eq!(v.trace.layers().len(), 5, "the flow is decided afresh");
    drop(v);
    k.assert_clean();
}

#[test]
fn a_bad_ip_length_is_a_counted_parse_drop() {
    let k = fakekernel::scope();
    let v = Vpc::standard().with_peer();
    let mut f = from_guest_udp(IpAddr::V4(PEER_V4), 1000, 2000);
    // IPv4 total length beyond the frame.
    f[16..18].copy_from_slice(&900u16.to_be_bytes());
    assert!(matches!(v.out(&f), Outcome::ParseError(_)));
    // Shorter than its own header.
    f[16..18].copy_from_slice(&12u16.to_be_bytes());
    assert!(matches!(v.out(&f), Outcome::ParseError(_)));
    drop(v);
    k.assert_clean();
}

#[test]
fn tcp_outbound_connection_state_close_and_early_reuse() {
    let k = fakekernel::scope();
    let v = Vpc::standard().with_peer();
    decap(&v.out(&guest_tcp(40000, 80, "S")).pass());
    assert_eq!(tcp_state(&v), [TcpState::SynSent]);
    inner(&v.inb(&peer_tcp(80, 40000, "SA")).pass());
    decap(&v.out(&guest_tcp(40000, 80, "A")).pass());
    assert_eq!(tcp_state(&v), [TcpState::Established]);
    // The guest closes; both FINs acknowledged -> TIME_WAIT.
    decap(&v.out(&guest_tcp(40000, 80, "FA")).pass());
    inner(&v.inb(&peer_tcp(80, 40000, "FA")).pass());
    decap(&v.out(&guest_tcp(40000, 80, "A")).pass());
    let s = tcp_state(&v);
    assert!(s.is_empty() || s == [TcpState::TimeWait], "{s:?}");
    // A new SYN on the same 5-tuple starts a fresh connection at once.
    decap(&v.out(&guest_tcp(40000, 80, "S")).pass());
    assert_eq!(tcp_state(&v), [TcpState::SynSent]);
    drop(v);
    k.assert_clean();
}

#[test]
fn tcp_inbound_connection_is_allowed_by_rule_and_reset_closes_it() {
    let k = fakekernel::scope();
    let v = Vpc::standard().with_peer();
    v.port
        .add_fw_rule(FirewallRule {
            direction: Direction::In,
            priority: 10,
            action: FwAction::Allow,
            hosts: FwHosts::Any,
            protocol: FwProtocol::Tcp,
            ports: vec![PortRange { first: 22, last: 22 }],
        })
        .unwrap();
    inner(&v.inb(&peer_tcp(50000, 22, "S")).pass());
    assert_eq!(tcp_state(&v), [TcpState::Listen]);
    decap(&v.out(&guest_tcp(22, 50000, "SA")).pass());
    inner(&v.inb(&peer_tcp(50000, 22, "A")).pass());
    assert_eq!(tcp_state(&v), [TcpState::Established]);
    // An RST from the peer ends it and reclaims the state.
    inner(&v.inb(&peer_tcp(50000, 22, "R")).pass());
    assert!(tcp_state(&v).is_empty());
    assert!(v.port.port().stats().tcp_closed >= 1);
    drop(v);
    k.assert_clean();
}

#[test]
fn flows_expire_by_protocol_class() {
    let k = fakekernel::scope();
    let v = Vpc::standard().with_peer();
    v.out(&from_guest_udp(IpAddr::V4(PEER_V4), 1000, 2000)).pass();
    v.out(&echo(GUEST_MAC, GW_MAC, IpAddr::V4(GUEST_V4), IpAddr::V4(PEER_V4), 7, 1)).pass();
    v.out(&guest_tcp(40000, 80, "S")).pass();
    inner(&v.inb(&peer_tcp(80, 40000, "SA")).pass());
    v.out(&guest_tcp(40000, 80, "A")).pass();
    assert_eq!(v.port.port().table_usage().uft_out, 3);
    // After 61 s: ICMP (60 s) gone; UDP (120 s) and established TCP stay.
    v.advance(61);
    v.expire();
    assert_eq!(v.port.port().table_usage().uft_out, 2);
    // After 121 s: UDP gone too.
    v.advance(60);
    v.expire();
    assert_eq!(v.port.port().table_usage().uft_out, 1);
    assert_eq!(tcp_state(&v), [TcpState::Established]);
    // After 2 h 4 min idle: the TCP connection as well.
    v.advance(2 * 3600 + 4 * 60);
    v.expire();
    let u = v.port.port().table_usage();
    assert_eq!((u.uft_out, u.uft_in, u.tcp), (0, 0, 0));
    drop(v);
    k.assert_clean();
}

#[test]
fn a_full_table_is_a_counted_drop_not_a_panic() {
    let k = fakekernel::scope();
    let v = Vpc::with(cfg(), PortLimits { uft: 8, lft: 64, tcp: 64 }).with_peer();
    for r in system_routes() {
        v.port.add_route(r).unwrap();
    }
    for i in 0..8 {
        v.out(&from_guest_udp(IpAddr::V4(PEER_V4), 1000 + i, 2000)).pass();
    }
    let r = v.out(&from_guest_udp(IpAddr::V4(PEER_V4), 2000, 2000)).dropped();
    assert_eq!(r, DropReason::TableFull { table: "uft_out" });
    assert_eq!(v.port.port().stats().drop_table_full, 1);
    // Established flows keep working.
    v.out(&from_guest_udp(IpAddr::V4(PEER_V4), 1000, 2000)).pass();
    drop(v);
    k.assert_clean();
}

#[test]
fn rule_changes_redecide_cached_flows_in_both_directions() {
    let k = fakekernel::scope();
    let v = Vpc::standard().with_peer();
    let out = from_guest_udp(IpAddr::V4(PEER_V4), 1000, 2000);
    let reply = encap(
        HOST_B,
        HOST_A,
        VNI,
        false,
        &udp(PEER_MAC, GUEST_MAC, IpAddr::V4(PEER_V4), 2000, IpAddr::V4(GUEST_V4), 1000, b"r"),
    );
    v.out(&out).pass();
    v.inb(&reply).pass();
    v.trace.take();
    // An outbound drop route for the peer: the cached outbound flow is
    // re-decided and dropped by the router.
    let drop_route = RouterEntry {
        dest: "172.30.0.9/32".parse().unwrap(),
        target: RouterTarget::Drop,
        class: RouteClass::Custom,
    };
    v.port.add_route(drop_route).unwrap();
    assert!(matches!(v.out(&out).dropped(), DropReason::Denied { layer: "router", rule: Some(_) }));
    assert!(v.trace.take().contains(&"uft invalidated".to_string()));
    v.port.del_route(drop_route).unwrap();
    v.out(&out).pass();
    // Inbound: replacing the firewall rules re-decides the cached inbound
    // flow, which is no longer a reply of an allowed flow... until the
    // guest sends again.
    v.inb(&reply).pass();
    v.port.set_fw_rules(vec![]).unwrap();
    assert_eq!(v.inb(&reply).dropped(), DropReason::Denied { layer: "firewall", rule: None });
    v.out(&out).pass();
    v.inb(&reply).pass();
    drop(v);
    k.assert_clean();
}
