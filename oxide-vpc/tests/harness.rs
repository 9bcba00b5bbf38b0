//! The harness itself: a standard port builds, and frames built by the
//! harness read back as built.

mod common;

use common::*;
use std::net::IpAddr;

#[test]
fn the_standard_port_builds_and_frames_read_back() {
    let k = fakekernel::scope();
    let v = Vpc::standard();
    assert_eq!(v.port.port().layer_names(), ["gateway", "firewall", "router", "nat", "overlay"]);
    let f = from_guest_udp(IpAddr::V4(INET_V4), 5000, 53);
    let i = inner(&f);
    assert_eq!(
        (i.src, i.dst, i.sport, i.dport),
        (IpAddr::V4(GUEST_V4), IpAddr::V4(INET_V4), 5000, 53)
    );
    let e = encap(HOST_B, HOST_A, VNI, true, &f);
    let (o, back) = decap(&e);
    assert_eq!(o, Outer { src: HOST_B, dst: HOST_A, udp_src: 40000, vni: VNI, external: true });
    assert_eq!(back, f);
    drop(v);
    k.assert_clean();
}
