//! The router layer: longest-prefix match, custom over system routes,
//! every target kind, and route changes reaching existing flows.

mod common;

use common::*;
use opte::engine::stats::DropReason;
use opte_api::MacAddr;
use oxide_vpc::api::*;
use oxide_vpc::engine::VpcError;
use std::net::{IpAddr, Ipv4Addr};

const ROUTER_V4: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 20);
const ROUTER_MAC: MacAddr = MacAddr::from_bytes([0xa8, 0x40, 0x25, 0xf7, 0, 0x20]);

fn route(dest: &str, target: RouterTarget, class: RouteClass) -> RouterEntry {
    RouterEntry { dest: dest.parse().unwrap(), target, class }
}

/// The standard port with V2P mappings for the peer guest and for an
/// instance acting as a router, both on host B.
fn vpc() -> Vpc {
    let v = Vpc::standard();
    for (ip, mac) in [(IpAddr::V4(PEER_V4), PEER_MAC), (IpAddr::V4(ROUTER_V4), ROUTER_MAC)] {
        v.net.set_v2p(V2pMapping { vni: vni(VNI), ip, mac, host: HOST_B }).unwrap();
    }
    v
}

#[test]
fn no_route_is_a_counted_drop() {
    let k = fakekernel::scope();
    let v = Vpc::with(cfg(), Default::default());
    let r = v.out(&from_guest_udp(IpAddr::V4(INET_V4), 1000, 53)).dropped();
    assert_eq!(r, DropReason::Denied { layer: "router", rule: None });
    assert_eq!(v.port.port().dump_layer("router").unwrap().stats.denied_default, 1);
    drop(v);
    k.assert_clean();
}

#[test]
fn an_instance_can_be_the_target_of_a_route() {
    let k = fakekernel::scope();
    let v = vpc();
    v.port
        .add_route(route(
            "192.168.0.0/16",
            RouterTarget::Ip(IpAddr::V4(ROUTER_V4)),
            RouteClass::Custom,
        ))
        .unwrap();
    let far = IpAddr::V4(Ipv4Addr::new(192, 168, 3, 4));
    let (o, i) = decap(&v.out(&from_guest_udp(far, 1000, 53)).pass());
    assert_eq!((o.dst, o.vni), (HOST_B, VNI));
    let i = inner(&i);
    assert_eq!(i.dst_mac, ROUTER_MAC, "delivered to the router instance");
    assert_eq!(i.dst, far, "the destination address is kept");
    drop(v);
    k.assert_clean();
}

#[test]
fn longest_prefix_wins_and_custom_beats_system_at_equal_length() {
    let k = fakekernel::scope();
    let v = vpc();
    // The system route for the subnet delivers to the peer itself.
    let f = from_guest_udp(IpAddr::V4(PEER_V4), 1000, 53);
    assert_eq!(inner(&decap(&v.out(&f).pass()).1).dst_mac, PEER_MAC);
    // A custom /22 (same length) through the router instance wins, and
    // the existing flow follows it.
    let custom =
        route("172.30.0.0/22", RouterTarget::Ip(IpAddr::V4(ROUTER_V4)), RouteClass::Custom);
    v.port.add_route(custom).unwrap();
    assert_eq!(inner(&decap(&v.out(&f).pass()).1).dst_mac, ROUTER_MAC);
    // A longer system route (/32 for the peer) wins over the custom /22.
    v.port
        .add_route(route(
            "172.30.0.9/32",
            RouterTarget::VpcSubnet("172.30.0.0/22".parse().unwrap()),
            RouteClass::System,
        ))
        .unwrap();
    assert_eq!(inner(&decap(&v.out(&f).pass()).1).dst_mac, PEER_MAC);
    // A drop route for the /32: denied by that rule.
    v.port.add_route(route("172.30.0.9/32", RouterTarget::Drop, RouteClass::Custom)).unwrap();
    assert!(matches!(v.out(&f).dropped(), DropReason::Denied { layer: "router", rule: Some(_) }));
    // Removing routes brings the system route back.
    v.port.del_route(route("172.30.0.9/32", RouterTarget::Drop, RouteClass::Custom)).unwrap();
    v.port.del_route(custom).unwrap();
    assert_eq!(inner(&decap(&v.out(&f).pass()).1).dst_mac, PEER_MAC);
    drop(v);
    k.assert_clean();
}

#[test]
fn route_commands_are_checked() {
    let k = fakekernel::scope();
    let v = vpc();
    let missing = route("10.9.0.0/16", RouterTarget::Drop, RouteClass::Custom);
    assert_eq!(v.port.del_route(missing), Err(VpcError::NoSuchRoute(missing)));
    let wrong =
        route("10.9.0.0/16", RouterTarget::Ip("fd00::20".parse().unwrap()), RouteClass::Custom);
    assert_eq!(
        v.port.add_route(wrong),
        Err(VpcError::Cfg(CfgError::WrongFamily { what: "route target" }))
    );
    assert_eq!(v.port.routes(), system_routes(), "refused commands change nothing");
    // The same destination and class replaces the route.
    let igw = route(
        "0.0.0.0/0",
        RouterTarget::InternetGateway(Some(Uuid::from_u128(7))),
        RouteClass::System,
    );
    v.port.add_route(igw).unwrap();
    assert_eq!(v.port.routes().len(), system_routes().len());
    assert!(v.port.routes().contains(&igw));
    drop(v);
    k.assert_clean();
}
