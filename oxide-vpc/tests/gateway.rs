//! The gateway layer as the guest sees it: ARP, DHCP, DHCPv6, NDP and
//! ping answered by the gateway (every reply read back with etherparse,
//! checksums verified), anti-spoofing, and what inbound traffic reaches
//! the guest.

mod common;
use common::*;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    ArpHardwareId, ArpOperation, ArpPacket, EtherType, Icmpv6Type, PacketBuilder, PacketHeaders,
    SlicedPacket,
};
use opte::ddi::MsgBlk;
use opte::engine::Direction;
use opte::engine::Moment;
use opte::engine::action::ActionError;
use opte::engine::action::{Action, HairpinAction};
use opte::engine::meta::Meta;
use opte::engine::port::ProcessResult;
use opte::engine::predicate::MatchCtx;
use opte::engine::stats::DropReason;
use opte::packet::Packet;
use opte_api::MacAddr;
use oxide_vpc::api::{AttachedSubnet, FirewallRule, FwAction, FwHosts, FwProtocol, TransitCidr};
use oxide_vpc::engine::gateway::link_local;
use oxide_vpc::engine::{PortLimits, VpcNetwork, VpcPort};

// ------------------------------------------------------ allocation count

/// The system allocator, counting allocations per thread (so tests
/// running in parallel do not disturb each other's counts).
struct CountingAlloc;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn count_alloc() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count_alloc();
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        count_alloc();
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from this allocator with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count_alloc();
        // SAFETY: `p` came from this allocator with layout `l`.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocs() -> u64 {
    ALLOCS.with(|c| c.get())
}

// ------------------------------------------------------------- helpers

const BCAST_V4: Ipv4Addr = Ipv4Addr::BROADCAST;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
const ALL_DHCP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
/// The guest's link-local address (EUI-64 of its MAC).
fn guest_ll() -> Ipv6Addr {
    "fe80::aa40:25ff:fef7:5".parse().unwrap()
}
/// The gateway's link-local address, worked out by hand from GW_MAC
/// a8:40:25:ff:77:77 (U/L bit flipped, ff:fe in the middle).
fn gw_ll() -> Ipv6Addr {
    let ll = "fe80::aa40:25ff:feff:7777".parse().unwrap();
    assert_eq!(link_local(GW_MAC), ll);
    ll
}
fn mcast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr::from_bytes([0x33, 0x33, o[12], o[13], o[14], o[15]])
}
fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::from([0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15]])
}

/// The gateway's drop for `error`.
fn action_drop(why: &'static str) -> DropReason {
    DropReason::Action { layer: "gateway", error: ActionError::NotApplicable(why) }
}

/// True for a drop by one of the gateway's deny rules.
#[track_caller]
fn assert_denied_by_rule(r: DropReason) {
    assert!(matches!(r, DropReason::Denied { layer: "gateway", rule: Some(_) }), "{r:?}");
}

const DEFAULT_DENY: DropReason = DropReason::Denied { layer: "gateway", rule: None };

/// An ARP frame from `sha`/`spa` asking for `tpa`.
fn arp(op: ArpOperation, smac: MacAddr, spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
    let a = ArpPacket::new(
        ArpHardwareId::ETHERNET,
        EtherType::IPV4,
        op,
        &smac.bytes(),
        &spa.octets(),
        &[0; 6],
        &tpa.octets(),
    )
    .unwrap();
    let b = PacketBuilder::ethernet2(smac.bytes(), [0xff; 6]).arp(a);
    let mut out = Vec::new();
    b.write(&mut out).unwrap();
    out
}

/// Read an ARP frame: (eth dst, eth src, op, sha, spa, tha, tpa).
fn read_arp(f: &[u8]) -> (MacAddr, MacAddr, ArpOperation, MacAddr, Ipv4Addr, MacAddr, Ipv4Addr) {
    let p = SlicedPacket::from_ethernet(f).expect("ARP frame parses");
    let Some(etherparse::LinkSlice::Ethernet2(e)) = &p.link else { panic!("not Ethernet") };
    let Some(etherparse::NetSlice::Arp(a)) = &p.net else { panic!("not ARP") };
    let a = a.to_packet().try_eth_ipv4().unwrap();
    (
        MacAddr::from_bytes(e.destination()),
        MacAddr::from_bytes(e.source()),
        a.operation,
        MacAddr::from_bytes(a.sender_mac),
        Ipv4Addr::from(a.sender_ipv4),
        MacAddr::from_bytes(a.target_mac),
        Ipv4Addr::from(a.target_ipv4),
    )
}

// --- DHCPv4

const XID: u32 = 0x1234_abcd;

/// A DHCP client message of type `ty` with the options after 53.
fn dhcp4_msg(ty: u8, flags: u16, ciaddr: Ipv4Addr, opts: &[(u8, &[u8])]) -> Vec<u8> {
    let mut m = vec![0u8; 236];
    m[0] = 1;
    m[1] = 1;
    m[2] = 6;
    m[4..8].copy_from_slice(&XID.to_be_bytes());
    m[10..12].copy_from_slice(&flags.to_be_bytes());
    m[12..16].copy_from_slice(&ciaddr.octets());
    m[28..34].copy_from_slice(&GUEST_MAC.bytes());
    m.extend([99, 130, 83, 99, 53, 1, ty]);
    for (c, d) in opts {
        m.push(*c);
        m.push(d.len() as u8);
        m.extend_from_slice(d);
    }
    m.push(255);
    m
}

/// The frame a client without an address broadcasts.
fn dhcp4_bcast(payload: &[u8]) -> Vec<u8> {
    udp(
        GUEST_MAC,
        MacAddr::BROADCAST,
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        68,
        IpAddr::V4(BCAST_V4),
        67,
        payload,
    )
}

/// A DHCP reply read back.
#[derive(Debug)]
struct Dhcp4Reply {
    hdr: Inner,
    op: u8,
    xid: u32,
    flags: u16,
    ciaddr: Ipv4Addr,
    yiaddr: Ipv4Addr,
    chaddr: [u8; 6],
    len: usize,
    /// Options in order; repeated codes concatenated (RFC 3396).
    opts: Vec<(u8, Vec<u8>)>,
}

impl Dhcp4Reply {
    fn opt(&self, code: u8) -> Option<&[u8]> {
        self.opts.iter().find(|(c, _)| *c == code).map(|(_, d)| d.as_slice())
    }
}

#[track_caller]
fn read_dhcp4(f: &[u8]) -> Dhcp4Reply {
    let hdr = inner(f);
    let p = PacketHeaders::from_ethernet_slice(f).unwrap();
    let Some(etherparse::TransportHeader::Udp(u)) = &p.transport else { panic!("not UDP") };
    assert_ne!(u.checksum, 0, "the UDP checksum is computed");
    let m = p.payload.slice();
    assert_eq!(&m[236..240], &[99, 130, 83, 99], "magic cookie");
    let mut opts: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut i = 240;
    loop {
        let c = m[i];
        if c == 255 {
            break;
        }
        if c == 0 {
            i += 1;
            continue;
        }
        let l = m[i + 1] as usize;
        let d = &m[i + 2..i + 2 + l];
        match opts.iter_mut().find(|(x, _)| *x == c) {
            Some((_, v)) => v.extend_from_slice(d),
            None => opts.push((c, d.to_vec())),
        }
        i += 2 + l;
    }
    assert!(m[i + 1..].iter().all(|b| *b == 0), "only pad after the end option");
    Dhcp4Reply {
        hdr,
        op: m[0],
        xid: u32::from_be_bytes(m[4..8].try_into().unwrap()),
        flags: u16::from_be_bytes([m[10], m[11]]),
        ciaddr: Ipv4Addr::from(<[u8; 4]>::try_from(&m[12..16]).unwrap()),
        yiaddr: Ipv4Addr::from(<[u8; 4]>::try_from(&m[16..20]).unwrap()),
        chaddr: m[28..34].try_into().unwrap(),
        len: m.len(),
        opts,
    }
}

/// DNS names in wire form, following compression pointers.
fn dns_names(data: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let mut labels = Vec::new();
        let mut at = i;
        let mut next = None;
        for _ in 0..128 {
            let l = data[at] as usize;
            if l == 0 {
                at += 1;
                break;
            }
            if l & 0xc0 == 0xc0 {
                next.get_or_insert(at + 2);
                at = ((l & 0x3f) << 8) | data[at + 1] as usize;
                continue;
            }
            labels.push(String::from_utf8(data[at + 1..at + 1 + l].to_vec()).unwrap());
            at += 1 + l;
        }
        names.push(labels.join("."));
        i = next.unwrap_or(at);
    }
    names
}

// --- DHCPv6

const XID6: [u8; 3] = [0xa1, 0xb2, 0xc3];
const IAID: [u8; 4] = [0, 0, 0, 7];

fn client_duid() -> Vec<u8> {
    let mut d = vec![0, 3, 0, 1];
    d.extend(GUEST_MAC.bytes());
    d
}

fn server_duid() -> Vec<u8> {
    let mut d = vec![0, 3, 0, 1];
    d.extend(GW_MAC.bytes());
    d
}

fn ia_na(iaid: [u8; 4], addr: Option<Ipv6Addr>) -> Vec<u8> {
    let mut v = iaid.to_vec();
    v.extend([0; 8]);
    if let Some(a) = addr {
        v.extend(5u16.to_be_bytes());
        v.extend(24u16.to_be_bytes());
        v.extend(a.octets());
        v.extend([0; 8]);
    }
    v
}

fn dhcp6_msg(ty: u8, opts: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut m = vec![ty];
    m.extend(XID6);
    for (c, d) in opts {
        m.extend(c.to_be_bytes());
        m.extend((d.len() as u16).to_be_bytes());
        m.extend_from_slice(d);
    }
    m
}

fn dhcp6_frame(payload: &[u8]) -> Vec<u8> {
    udp(
        GUEST_MAC,
        mcast_mac(ALL_DHCP),
        IpAddr::V6(guest_ll()),
        546,
        IpAddr::V6(ALL_DHCP),
        547,
        payload,
    )
}

/// DHCPv6 options: (code, body), in order.
type Opts6 = Vec<(u16, Vec<u8>)>;

/// A DHCPv6 reply read back: header, type, xid, top-level options.
#[track_caller]
fn read_dhcp6(f: &[u8]) -> (Inner, u8, [u8; 3], Opts6) {
    let hdr = inner(f);
    let p = PacketHeaders::from_ethernet_slice(f).unwrap();
    let m = p.payload.slice();
    (hdr, m[0], [m[1], m[2], m[3]], dhcp6_opts(&m[4..]))
}

fn dhcp6_opts(mut d: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut v = Vec::new();
    while !d.is_empty() {
        let c = u16::from_be_bytes([d[0], d[1]]);
        let l = u16::from_be_bytes([d[2], d[3]]) as usize;
        v.push((c, d[4..4 + l].to_vec()));
        d = &d[4 + l..];
    }
    v
}

fn opt6(opts: &[(u16, Vec<u8>)], code: u16) -> Option<&[u8]> {
    opts.iter().find(|(c, _)| *c == code).map(|(_, d)| d.as_slice())
}

/// An IA_NA read back: IAID, T1, T2, and (address, preferred, valid) or
/// a status code.
fn read_ia_na(d: &[u8]) -> ([u8; 4], u32, u32, Opts6) {
    let be = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap());
    (d[..4].try_into().unwrap(), be(&d[4..8]), be(&d[8..12]), dhcp6_opts(&d[12..]))
}

// --- NDP

fn ndp_frame(
    smac: MacAddr,
    dmac: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    ty: Icmpv6Type,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(smac.bytes(), dmac.bytes())
        .ipv6(src.octets(), dst.octets(), hop_limit)
        .icmpv6(ty);
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

fn slla(mac: MacAddr) -> Vec<u8> {
    let mut v = vec![1, 1];
    v.extend(mac.bytes());
    v
}

/// A router solicitation from `src` (with a source link-layer option
/// unless it is from ::).
fn rs(src: Ipv6Addr) -> Vec<u8> {
    let opts = if src.is_unspecified() { vec![] } else { slla(GUEST_MAC) };
    ndp_frame(
        GUEST_MAC,
        mcast_mac(ALL_ROUTERS),
        src,
        ALL_ROUTERS,
        255,
        Icmpv6Type::RouterSolicitation,
        &opts,
    )
}

/// A neighbor solicitation for `target` from `src` to `dst`.
fn ns(src: Ipv6Addr, dst: Ipv6Addr, target: Ipv6Addr, hop_limit: u8) -> Vec<u8> {
    let mut p = target.octets().to_vec();
    if !src.is_unspecified() {
        p.extend(slla(GUEST_MAC));
    }
    let dmac = if dst.is_multicast() { mcast_mac(dst) } else { GW_MAC };
    ndp_frame(GUEST_MAC, dmac, src, dst, hop_limit, Icmpv6Type::NeighborSolicitation, &p)
}

/// NDP options read back: (type, body after the type and length bytes).
fn ndp_opts(mut d: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut v = Vec::new();
    while !d.is_empty() {
        let l = d[1] as usize * 8;
        assert!(l > 0 && l <= d.len(), "NDP option length");
        v.push((d[0], d[2..l].to_vec()));
        d = &d[l..];
    }
    v
}

/// The IPv6 hop limit of a frame.
fn hop_limit(f: &[u8]) -> u8 {
    let p = PacketHeaders::from_ethernet_slice(f).unwrap();
    let Some(etherparse::NetHeaders::Ipv6(ip, _)) = &p.net else { panic!("not IPv6") };
    ip.hop_limit
}

// ------------------------------------------------------------------ ARP

#[test]
fn arp_request_for_the_gateway_gets_the_gateway_mac() {
    let k = fakekernel::scope();
    let v = Vpc::standard();
    let reply = v.out(&arp(ArpOperation::REQUEST, GUEST_MAC, GUEST_V4, GW_V4)).hairpin();
    let (dst, src, op, sha, spa, tha, tpa) = read_arp(&reply);
    assert_eq!((dst, src), (GUEST_MAC, GW_MAC));
    assert_eq!(op, ArpOperation::REPLY);
    assert_eq!((sha, spa), (GW_MAC, GW_V4));
    assert_eq!((tha, tpa), (GUEST_MAC, GUEST_V4));
    assert_eq!(v.port.port().stats().hairpin, 1);
    drop(v);
    k.assert_clean();
}

#[test]
fn other_arp_from_the_guest_is_dropped() {
    let k = fakekernel::scope();
    let v = Vpc::standard();
    // A request for another guest's address: nobody else answers on
    // this link.
    let r = v.out(&arp(ArpOperation::REQUEST, GUEST_MAC, GUEST_V4, PEER_V4)).dropped();
    assert_eq!(r, action_drop("ARP request not for the gateway"));
    // Gratuitous ARP (for its own address) and ARP replies.
    let r = v.out(&arp(ArpOperation::REQUEST, GUEST_MAC, GUEST_V4, GUEST_V4)).dropped();
    assert_eq!(r, action_drop("ARP request not for the gateway"));
    let r = v.out(&arp(ArpOperation::REPLY, GUEST_MAC, GUEST_V4, GW_V4)).dropped();
    assert_eq!(r, action_drop("ARP other than a request"));
    // From another MAC: not the guest, the layer default.
    let r = v.out(&arp(ArpOperation::REQUEST, PEER_MAC, GUEST_V4, GW_V4)).dropped();
    assert_eq!(r, DEFAULT_DENY);
    let s = v.port.port().stats();
    assert_eq!((s.hairpin, s.drop_action, s.drop_denied_default), (0, 3, 1));
    drop(v);
    k.assert_clean();
}

// ---------------------------------------------------------------- DHCPv4

/// Check the options every OFFER and ACK carries.
#[track_caller]
fn check_dhcp4_params(r: &Dhcp4Reply) {
    assert_eq!(r.opt(54), Some(&GW_V4.octets()[..]), "server identifier");
    assert_eq!(r.opt(51), Some(&86_400u32.to_be_bytes()[..]), "lease time");
    assert_eq!(r.opt(1), Some(&[255, 255, 255, 255][..]), "subnet mask /32");
    assert_eq!(r.opt(3), Some(&GW_V4.octets()[..]), "router");
    // RFC 3442: 172.30.0.1/32 via 0.0.0.0, then 0.0.0.0/0 via 172.30.0.1.
    assert_eq!(
        r.opt(121),
        Some(&[32, 172, 30, 0, 1, 0, 0, 0, 0, 0, 172, 30, 0, 1][..]),
        "classless static routes"
    );
    assert_eq!(r.opt(6), Some(&[8, 8, 8, 8][..]), "DNS servers");
    assert_eq!(r.opt(12), Some(&b"guest-a"[..]), "host name");
    assert_eq!(r.opt(15), Some(&b"vpc.example"[..]), "domain name");
    let search = r.opt(119).expect("domain search list");
    assert_eq!(dns_names(search), ["vpc.example", "example"]);
    // The second name is a pointer to the first one's suffix.
    assert_eq!(search, b"\x03vpc\x07example\x00\xc0\x04");
    assert_eq!(r.opt(26), Some(&1500u16.to_be_bytes()[..]), "MTU");
    assert!(r.len >= 300, "BOOTP minimum size");
    assert_eq!((r.op, r.xid, r.chaddr), (2, XID, GUEST_MAC.bytes()));
}

#[test]
fn dhcp_discover_gets_an_offer_with_every_option() {
    let k = fakekernel::scope();
    let v = Vpc::standard();
    let discover = dhcp4_msg(1, 0, Ipv4Addr::UNSPECIFIED, &[(55, &[1, 3, 6, 15, 119, 121])]);
    let r = read_dhcp4(&v.out(&dhcp4_bcast(&discover)).hairpin());
    assert_eq!(r.opt(53), Some(&[2][..]), "OFFER");
    check_dhcp4_params(&r);
    assert_eq!((r.yiaddr, r.ciaddr, r.flags), (GUEST_V4, Ipv4Addr::UNSPECIFIED, 0));
    // No broadcast flag: unicast to the offered address and the MAC.
    assert_eq!((r.hdr.src_mac, r.hdr.dst_mac), (GW_MAC, GUEST_MAC));
    assert_eq!((r.hdr.src, r.hdr.dst), (IpAddr::V4(GW_V4), IpAddr::V4(GUEST_V4)));
    assert_eq!((r.hdr.sport, r.hdr.dport), (67, 68));
    assert_eq!(r.opt(61), None, "no client identifier was sent");
    drop(v);
    k.assert_clean();
}

#[test]
fn dhcp_request_gets_an_ack_and_a_wrong_address_a_nak() {
    let k = fakekernel::scope();
    let v = Vpc::standard();
    let cid: &[u8] = &[1, 0xa8, 0x40, 0x25, 0xf7, 0, 5];
    // SELECTING: requested IP and server id, broadcast flag set.
    let req = dhcp4_msg(
        3,
        0x8000,
        Ipv4Addr::UNSPECIFIED,
        &[(50, &GUEST_V4.octets()), (54, &GW_V4.octets()), (61, cid)],
    );
    let r = read_dhcp4(&v.out(&dhcp4_bcast(&req)).hairpin());
    assert_eq!(r.opt(53), Some(&[5][..]), "ACK");
    check_dhcp4_params(&r);
    assert_eq!(r.yiaddr, GUEST_V4);
    assert_eq!(r.opt(61), Some(cid), "client identifier echoed (RFC 6842)");
    assert_eq!(r.flags, 0x8000);
    assert_eq!((r.hdr.dst_mac, r.hdr.dst), (MacAddr::BROADCAST, IpAddr::V4(BCAST_V4)));

    // RENEWING: unicast from the address, ciaddr set: unicast reply.
    let renew = dhcp4_msg(3, 0, GUEST_V4, &[]);
    let f = udp(GUEST_MAC, GW_MAC, IpAddr::V4(GUEST_V4), 68, IpAddr::V4(GW_V4), 67, &renew);
    let r = read_dhcp4(&v.out(&f).hairpin());
    assert_eq!(r.opt(53), Some(&[5][..]), "ACK");
    assert_eq!((r.ciaddr, r.yiaddr), (GUEST_V4, GUEST_V4));
    assert_eq!((r.hdr.dst_mac, r.hdr.dst), (GUEST_MAC, IpAddr::V4(GUEST_V4)));

    // Another address: NAK, broadcast, without parameters.
    let wrong = dhcp4_msg(3, 0, Ipv4Addr::UNSPECIFIED, &[(50, &[172, 30, 0, 77])]);
    let r = read_dhcp4(&v.out(&dhcp4_bcast(&wrong)).hairpin());
    assert_eq!(r.opt(53), Some(&[6][..]), "NAK");
    assert_eq!(r.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!((r.opt(51), r.opt(1), r.opt(3)), (None, None, None));
    assert_eq!(r.opt(54), Some(&GW_V4.octets()[..]));
    assert_eq!((r.hdr.dst_mac, r.hdr.dst), (MacAddr::BROADCAST, IpAddr::V4(BCAST_V4)));

    // A REQUEST naming another server: the client took another offer.
    let other =
        dhcp4_msg(3, 0, Ipv4Addr::UNSPECIFIED, &[(50, &GUEST_V4.octets()), (54, &[172, 30, 0, 2])]);
    let d = v.out(&dhcp4_bcast(&other)).dropped();
    assert_eq!(d, action_drop("DHCP REQUEST for another server"));
    drop(v);
    k.assert_clean();
}

#[test]
fn dhcp_inform_gets_parameters_without_an_address() {
    let k = fakekernel::scope();
    let v = Vpc::standard();
    let inform = dhcp4_msg(8, 0, GUEST_V4, &[]);
    let f = udp(GUEST_MAC, GW_MAC, IpAddr::V4(GUEST_V4), 68, IpAddr::V4(GW_V4), 67, &inform);
    let r = read_dhcp4(&v.out(&f).hairpin());
    assert_eq!(r.opt(53), Some(&[5][..]), "ACK");
    assert_eq!(r.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(r.opt(51), None, "no lease for an INFORM (RFC 2131 4.3.5)");
    assert_eq!(r.opt(6), Some(&[8, 8, 8, 8][..]));
    assert_eq!(r.hdr.dst, IpAddr::V4(GUEST_V4));
    drop(v);
    k.assert_clean();
}

#[test]
fn long_search_lists_are_split_and_absent_parameters_left_out() {
    let k = fakekernel::scope();
    // Eight long names: more than one option's 255 bytes even compressed.
    let mut c = cfg();
    c.dhcp.search = (0..8).map(|i| format!("{}{i}.example", "x".repeat(60))).collect();
    let v = Vpc::with(c.clone(), PortLimits::default());
    let discover = dhcp4_msg(1, 0, Ipv4Addr::UNSPECIFIED, &[]);
    let reply = v.out(&dhcp4_bcast(&discover)).hairpin();
    let r = read_dhcp4(&reply);
    let search = r.opt(119).unwrap();
    // One instance holds at most 255 bytes: this came in several.
    assert!(search.len() > 255, "{} bytes", search.len());
    assert_eq!(dns_names(search), c.dhcp.search);
    drop(v);

    // Nothing configured: no DNS, names or search list, the rest as ever.
    let mut c = cfg();
    c.dhcp = Default::default();
    let v = Vpc::with(c, PortLimits::default());
    let r = read_dhcp4(&v.out(&dhcp4_bcast(&discover)).hairpin());
    for code in [6, 12, 15, 119] {
        assert_eq!(r.opt(code), None, "option {code}");
    }
    for code in [1, 3, 26, 51, 54, 121] {
        assert!(r.opt(code).is_some(), "option {code}");
    }
    let solicit = dhcp6_msg(1, &[(1, client_duid()), (3, ia_na(IAID, None))]);
    let (_, _, _, opts) = read_dhcp6(&v.out(&dhcp6_frame(&solicit)).hairpin());
    assert_eq!((opt6(&opts, 23), opt6(&opts, 24)), (None, None));
    assert!(opt6(&opts, 3).is_some());
    drop(v);
    k.assert_clean();
}

#[test]
fn a_single_family_port_answers_only_its_family() {
    let k = fakekernel::scope();
    let mut c = cfg();
    c.ipv6 = None;
    let v = Vpc::with(c, PortLimits::default());
    v.out(&arp(ArpOperation::REQUEST, GUEST_MAC, GUEST_V4, GW_V4)).hairpin();
    assert_eq!(v.out(&rs(guest_ll())).dropped(), DEFAULT_DENY);
    let solicit = dhcp6_msg(1, &[(1, client_duid()), (3, ia_na(IAID, None))]);
    assert_eq!(v.out(&dhcp6_frame(&solicit)).dropped(), DEFAULT_DENY);
    drop(v);

    let mut c = cfg();
    c.ipv4 = None;
    let v = Vpc::with(c, PortLimits::default());
    v.out(&rs(guest_ll())).hairpin();
    let r = v.out(&arp(ArpOperation::REQUEST, GUEST_MAC, GUEST_V4, GW_V4)).dropped();
    assert_eq!(r, DEFAULT_DENY);
    let discover = dhcp4_msg(1, 0, Ipv4Addr::UNSPECIFIED, &[]);
    assert_eq!(v.out(&dhcp4_bcast(&discover)).dropped(), DEFAULT_DENY);
    drop(v);
    k.assert_clean();
}

#[test]
fn dhcp_release_and_decline_are_denied() {
    let k = fakekernel::scope();
    let v = Vpc::standard();
    let release = dhcp4_msg(7, 0, GUEST_V4, &[(54, &GW_V4.octets())]);
    let f = udp(GUEST_MAC, GW_MAC, IpAddr::V4(GUEST_V4), 68, IpAddr::V4(GW_V4), 67, &release);
    assert_denied_by_rule(v.out(&f).dropped());
    let decline = dhcp4_msg(4, 0, Ipv4Addr::UNSPECIFIED, &[(50, &GUEST_V4.octets())]);
    assert_denied_by_rule(v.out(&dhcp4_bcast(&decline)).dropped());
    drop(v);
    k.assert_clean();
}

#[test]
fn malformed_dhcp_is_dropped_without_a_reply() {
    let k = fakekernel::scope();
    let v = Vpc::standard();
    // Shorter than the fixed part: not recognized as DHCP at all.
    let short = dhcp4_msg(1, 0, Ipv4Addr::UNSPECIFIED, &[]);
    assert_denied_by_rule(v.out(&dhcp4_bcast(&short[..200])).dropped());

    // An option before 53 runs past the buffer: the message type is never
    // found.
    let mut m = dhcp4_msg(1, 0, Ipv4Addr::UNSPECIFIED, &[]);
    m.truncate(240);
    m.extend([12, 200, b'x']);
    assert_denied_by_rule(v.out(&dhcp4_bcast(&m)).dropped());

    // Option 53 first, then an option whose length runs past the end.
    let mut m = dhcp4_msg(1, 0, Ipv4Addr::UNSPECIFIED, &[]);
    m.pop(); // the end option
    m.extend([61, 250, 1, 2, 3]);
    let r = v.out(&dhcp4_bcast(&m)).dropped();
    assert_eq!(
        r,
        DropReason::Action { layer: "gateway", error: ActionError::Reply("malformed DHCP option") }
    );

    // Options that never end: pads and short options to the end of the
    // datagram, more than the walk looks at.
    let mut m = dhcp4_msg(1, 0, Ipv4Addr::UNSPECIFIED, &[]);
    m.pop();
    for _ in 0..100 {
        m.extend([250, 1, 0]);
    }
    let r = v.out(&dhcp4_bcast(&m)).dropped();
    assert_eq!(
        r,
        DropReason::Action { layer: "gateway", error: ActionError::Reply("too many DHCP options") }
    );

    // Option 52 points into `file`, whose options run past the field.
    let mut m = dhcp4_msg(1, 0, Ipv4Addr::UNSPECIFIED, &[(52, &[1])]);
    m[108] = 12;
    m[109] = 200;
    let r = v.out(&dhcp4_bcast(&m)).dropped();
    assert_eq!(
        r,
        DropReason::Action { layer: "gateway", error: ActionError::Reply("malformed DHCP option") }
    );
    assert_eq!(v.port.port().stats().hairpin, 0);
    drop(v);
    k.assert_clean();
}

// ---------------------------------------------------------------- DHCPv6

/// Check the identifiers and parameters of a DHCPv6 reply.
#[track_caller]
fn check_dhcp6_common(hdr: &Inner, xid: [u8; 3], opts: &[(u16, Vec<u8>)]) {
    assert_eq!((hdr.src_mac, hdr.dst_mac), (GW_MAC, GUEST_MAC));
    assert_eq!((hdr.src, hdr.dst), (IpAddr::V6(gw_ll()), IpAddr::V6(guest_ll())));
    assert_eq!((hdr.sport, hdr.dport), (547, 546));
    assert_eq!(xid, XID6);
    assert_eq!(opt6(opts, 1), Some(&client_duid()[..]), "client id echoed");
    assert_eq!(opt6(opts, 2), Some(&server_duid()[..]), "server id: DUID-LL of the gateway MAC");
    let dns: Ipv6Addr = "2001:4860:4860::8888".parse().unwrap();
    assert_eq!(opt6(opts, 23), Some(&dns.octets()[..]), "DNS servers");
    let domains = opt6(opts, 24).expect("domain list");
    assert_eq!(dns_names(domains), ["vpc.example", "example"]);
    assert!(!domains.iter().any(|b| b & 0xc0 == 0xc0), "DHCPv6 names are not compressed");
}

/// Check the IA_NA of a reply: the guest's address for the lease.
#[track_caller]
fn check_ia_na(opts: &[(u16, Vec<u8>)]) {
    let (iaid, t1, t2, sub) = read_ia_na(opt6(opts, 3).expect("IA_NA"));
    assert_eq!((iaid, t1, t2), (IAID, 43_200, 69_120));
    let addr = opt6(&sub, 5).expect("IA address");
    assert_eq!(&addr[..16], &GUEST_V6.octets());
    assert_eq!(&addr[16..20], &86_400u32.to_be_bytes(), "preferred lifetime");
    assert_eq!(&addr[20..24], &86_400u32.to_be_bytes(), "valid lifetime");
}

#[test]
fn dhcpv6_solicit_gets_an_advertise_or_with_rapid_commit_a_reply() {
    let k = fakekernel::scope();
    let v = Vpc::standard();
    let solicit = dhcp6_msg(1, &[(1, client_duid()), (3, ia_na(IAID, None)), (8, vec![0, 0])]);
    let (hdr, ty, xid, opts) = read_dhcp6(&v.out(&dhcp6_frame(&solicit)).hairpin());
    assert_eq!(ty, 2, "ADVERTISE");
    check_dhcp6_common(&hdr, xid, &opts);
    check_ia_na(&opts);
    assert_eq!(opt6(&opts, 14), None, "no rapid commit");

    let solicit = dhcp6_msg(1, &[(1, client_duid()), (14, vec![]), (3, ia_na(IAID, None))]);
    let (hdr, ty, xid, opts) = read_dhcp6(&v.out(&dhcp6_frame(&solicit)).hairpin());
    assert_eq!(ty, 7, "REPLY");
    check_dhcp6_common(&hdr, xid, &opts);
    check_ia_na(&opts);
    assert_eq!(opt6(&opts, 14), Some(&[][..]), "rapid commit");

    // A SOLICIT without a client identifier, or naming a server, is
    // discarded (RFC 8415 16.2).
    let bad = dhcp6_msg(1, &[(3, ia_na(IAID, None))]);
    let d = v.out(&dhcp6_frame(&bad)).dropped();
    assert_eq!(d, action_drop("DHCPv6 request without a client identifier"));
    let bad = dhcp6_msg(1, &[(1, client_duid()), (2, server_duid()), (3, ia_na(IAID, None))]);
    let d = v.out(&dhcp6_frame(&bad)).dropped();
    assert_eq!(d, action_drop("DHCPv6 request names a server"));
    drop(v);
    k.assert_clean();
}

#[test]
fn dhcpv6_request_renew_and_rebind_get_a_reply_with_the_address() {
    let k = fakekernel::scope();
    let v = Vpc::standard();
    for ty in [3u8, 5] {
        let m = dhcp6_msg(
            ty,
            &[(1, client_duid()), (2, server_duid()), (3, ia_na(IAID, Some(GUEST_V6)))],
        );
        let (hdr, rty, xid, opts) = read_dhcp6(&v.out(&dhcp6_frame(&m)).hairpin());
        assert_eq!(rty, 7, "REPLY to {ty}");
        check_dhcp6_common(&hdr, xid, &opts);
        check_ia_na(&opts);
    }
    let rebind = dhcp6_msg(6, &[(1, client_duid()), (3, ia_na(IAID, Some(GUEST_V6)))]);
    let (_, rty, _, opts) = read_dhcp6(&v.out(&dhcp6_frame(&rebind)).hairpin());
    assert_eq!(rty, 7);
    check_ia_na(&opts);

    // A second IA_NA gets no address: there is one.
    let two = dhcp6_msg(
        3,
        &[
            (1, client_duid()),
            (2, server_duid()),
            (3, ia_na(IAID, None)),
            (3, ia_na([0, 0, 0, 8], None)),
        ],
    );
    let (_, _, _, opts) = read_dhcp6(&v.out(&dhcp6_frame(&two)).hairpin());
    let ias: Vec<_> = opts.iter().filter(|(c, _)| *c == 3).map(|(_, d)| read_ia_na(d)).collect();
    assert_eq!(ias.len(), 2);
    assert_eq!(ias[1].0, [0, 0, 0, 8]);
    assert_eq!(opt6(&ias[1].3, 13), Some(&[0, 2][..]), "NoAddrsAvail");

    // A REQUEST for another server is not ours to answer.
    let mut other = server_duid();
    other[9] ^= 1;
    let m = dhcp6_msg(3, &[(1, client_duid()), (2, other), (3, ia_na(IAID, None))]);
    let d = v.out(&dhcp6_frame(&m)).dropped();
    assert_eq!(d, action_drop("DHCPv6 request for another server"));
    drop(v);
    k.assert_clean();
}

#[test]
fn dhcpv6_confirm_information_request_and_release() {
    let k = fakekernel::scope();
    let v = Vpc::standard();
    let confirm = dhcp6_msg(4, &[(1, client_duid()), (3, ia_na(IAID, Some(GUEST_V6)))]);
    let (_, ty, _, opts) = read_dhcp6(&v.out(&dhcp6_frame(&confirm)).hairpin());
    assert_eq!(ty, 7);
    assert_eq!(opt6(&opts, 13), Some(&[0, 0][..]), "Success");
    let elsewhere: Ipv6Addr = "fd00:99::5".parse().unwrap();
    let confirm = dhcp6_msg(4, &[(1, client_duid()), (3, ia_na(IAID, Some(elsewhere)))]);
    let (_, _, _, opts) = read_dhcp6(&v.out(&dhcp6_frame(&confirm)).hairpin());
    assert_eq!(opt6(&opts, 13), Some(&[0, 4][..]), "NotOnLink");

    let info = dhcp6_msg(11, &[(1, client_duid())]);
    let (hdr, ty, xid, opts) = read_dhcp6(&v.out(&dhcp6_frame(&info)).hairpin());
    assert_eq!(ty, 7);
    check_dhcp6_common(&hdr, xid, &opts);
    assert_eq!(opt6(&opts, 3), None, "no address for an INFORMATION-REQUEST");

    let release =
        dhcp6_msg(8, &[(1, client_duid()), (2, server_duid()), (3, ia_na(IAID, Some(GUEST_V6)))]);
    let (_, ty, _, opts) = read_dhcp6(&v.out(&dhcp6_frame(&release)).hairpin());
    assert_eq!(ty, 7);
    assert_eq!(opt6(&opts, 13), Some(&[0, 0][..]), "Success");
    drop(v);
    k.assert_clean();
}

#[test]
fn malformed_dhcpv6_is_dropped_without_a_reply() {
    let k = fakekernel::scope();
    let v = Vpc::standard();
    // An option running past the message.
    let mut m = dhcp6_msg(1, &[(1, client_duid())]);
    m.extend([0, 3, 0, 40, 0, 0, 0, 7]);
    let d = v.out(&dhcp6_frame(&m)).dropped();
    assert_eq!(
        d,
        DropReason::Action {
            layer: "gateway",
            error: ActionError::Reply("malformed DHCPv6 option")
        }
    );
    // An IA_NA whose inner option runs past the IA_NA.
    let mut ia = ia_na(IAID, None);
    ia.extend([0, 5, 0, 24, 0xfd, 0]);
    let m = dhcp6_msg(1, &[(1, client_duid()), (3, ia)]);
    let d = v.out(&dhcp6_frame(&m)).dropped();
    assert_eq!(
        d,
        DropReason::Action {
            layer: "gateway",
            error: ActionError::Reply("malformed DHCPv6 option")
        }
    );
    // More options than the walk looks at.
    let many: Vec<(u16, Vec<u8>)> = (0..40).map(|_| (8u16, vec![0, 0])).collect();
    let mut opts = vec![(1u16, client_duid())];
    opts.extend(many);
    let d = v.out(&dhcp6_frame(&dhcp6_msg(1, &opts))).dropped();
    assert_eq!(
        d,
        DropReason::Action {
            layer: "gateway",
            error: ActionError::Reply("too many DHCPv6 options")
        }
    );
    // A header only a few bytes long is not recognized as DHCPv6.
    assert_denied_by_rule(v.out(&dhcp6_frame(&[1, 0])).dropped());
    assert_eq!(v.port.port().stats().hairpin, 0);
    drop(v);
    k.assert_clean();
}

// ------------------------------------------------------------------ ping

#[test]
fn ping_the_gateway_on_ipv4_and_ipv6() {
    let k = fakekernel::scope();
    let v = Vpc::standard();
    let f = echo(GUEST_MAC, GW_MAC, IpAddr::V4(GUEST_V4), IpAddr::V4(GW_V4), 77, 3);
    let reply = v.out(&f).hairpin();
    let i = inner(&reply);
    assert_eq!((i.src_mac, i.dst_mac), (GW_MAC, GUEST_MAC));
    assert_eq!((i.src, i.dst, i.sport), (IpAddr::V4(GW_V4), IpAddr::V4(GUEST_V4), 77));
    let p = PacketHeaders::from_ethernet_slice(&reply).unwrap();
    let Some(etherparse::TransportHeader::Icmpv4(h)) = &p.transport else { panic!() };
    let etherparse::Icmpv4Type::EchoReply(e) = h.icmp_type else { panic!("{h:?}") };
    assert_eq!((e.id, e.seq), (77, 3));
    assert_eq!(p.payload.slice(), b"opte-ping-payload");

    for (src, dst) in [(GUEST_V6, GW_V6), (guest_ll(), gw_ll())] {
        let f = echo(GUEST_MAC, GW_MAC, IpAddr::V6(src), IpAddr::V6(dst), 78, 4);
        let reply = v.out(&f).hairpin();
        let i = inner(&reply);
        assert_eq!((i.src_mac, i.dst_mac), (GW_MAC, GUEST_MAC));
        assert_eq!((i.src, i.dst), (IpAddr::V6(dst), IpAddr::V6(src)), "from the pinged address");
        let p = PacketHeaders::from_ethernet_slice(&reply).unwrap();
        let Some(etherparse::TransportHeader::Icmpv6(h)) = &p.transport else { panic!() };
        let Icmpv6Type::EchoReply(e) = h.icmp_type else { panic!("{h:?}") };
        assert_eq!((e.id, e.seq), (78, 4));
        assert_eq!(p.payload.slice(), b"opte-ping-payload");
    }
    assert_eq!(v.port.port().stats().hairpin, 3);
    drop(v);
    k.assert_clean();
}

#[test]
fn other_traffic_to_the_gateway_is_denied() {
    let k = fakekernel::scope();
    let v = Vpc::standard();
    let f =
        tcp(GUEST_MAC, GW_MAC, IpAddr::V4(GUEST_V4), 40000, IpAddr::V4(GW_V4), 22, "S", 1, 0, b"");
    assert_denied_by_rule(v.out(&f).dropped());
    let f = from_guest_udp(IpAddr::V6(GW_V6), 5000, 53);
    assert_denied_by_rule(v.out(&f).dropped());
    drop(v);
    k.assert_clean();
}

// ------------------------------------------------------------------- NDP

#[test]
fn router_solicitation_gets_a_router_advertisement() {
    let k = fakekernel::scope();
    let v = Vpc::standard();
    for (src, dst, dst_mac) in [
        (guest_ll(), guest_ll(), GUEST_MAC),
        (Ipv6Addr::UNSPECIFIED, ALL_NODES, mcast_mac(ALL_NODES)),
    ] {
        let reply = v.out(&rs(src)).hairpin();
        let i = inner(&reply);
        assert_eq!((i.src_mac, i.dst_mac), (GW_MAC, dst_mac));
        assert_eq!((i.src, i.dst), (IpAddr::V6(gw_ll()), IpAddr::V6(dst)));
        assert_eq!(hop_limit(&reply), 255);
        let p = PacketHeaders::from_ethernet_slice(&reply).unwrap();
        let Some(etherparse::TransportHeader::Icmpv6(h)) = &p.transport else { panic!() };
        let Icmpv6Type::RouterAdvertisement(ra) = h.icmp_type else { panic!("{h:?}") };
        assert!(ra.managed_address_config, "addresses by DHCPv6");
        assert_eq!(ra.router_lifetime, 9000);
        let body = p.payload.slice();
        let opts = ndp_opts(&body[8..]);
        assert!(opts.contains(&(1, GW_MAC.bytes().to_vec())), "source link-layer address");
        assert!(opts.contains(&(5, vec![0, 0, 0, 0, 0x05, 0xdc])), "MTU 1500");
        assert!(!opts.iter().any(|(t, _)| *t == 3), "no prefix information");
    }
    drop(v);
    k.assert_clean();
}

#[test]
fn neighbor_solicitation_for_the_gateway_gets_an_advertisement() {
    let k = fakekernel::scope();
    let v = Vpc::standard();
    for target in [gw_ll(), GW_V6] {
        for dst in [solicited_node(target), target] {
            let reply = v.out(&ns(guest_ll(), dst, target, 255)).hairpin();
            let i = inner(&reply);
            assert_eq!((i.src_mac, i.dst_mac), (GW_MAC, GUEST_MAC));
            assert_eq!((i.src, i.dst), (IpAddr::V6(target), IpAddr::V6(guest_ll())));
            assert_eq!(hop_limit(&reply), 255);
            let p = PacketHeaders::from_ethernet_slice(&reply).unwrap();
            let Some(etherparse::TransportHeader::Icmpv6(h)) = &p.transport else { panic!() };
            let Icmpv6Type::NeighborAdvertisement(na) = h.icmp_type else { panic!("{h:?}") };
            assert!(na.router && na.solicited && na.r#override, "{na:?}");
            let body = p.payload.slice();
            assert_eq!(&body[..16], &target.octets());
            assert_eq!(ndp_opts(&body[16..]), [(2, GW_MAC.bytes().to_vec())]);
        }
    }

    // Duplicate address detection for the gateway's address: the answer
    // goes to all nodes, unsolicited.
    let reply = v.out(&ns(Ipv6Addr::UNSPECIFIED, solicited_node(GW_V6), GW_V6, 255)).hairpin();
    let i = inner(&reply);
    assert_eq!((i.src, i.dst), (IpAddr::V6(GW_V6), IpAddr::V6(ALL_NODES)));
    assert_eq!(i.dst_mac, mcast_mac(ALL_NODES));
    let p = PacketHeaders::from_ethernet_slice(&reply).unwrap();
    let Some(etherparse::TransportHeader::Icmpv6(h)) = &p.transport else { panic!() };
    let Icmpv6Type::NeighborAdvertisement(na) = h.icmp_type else { panic!("{h:?}") };
    assert!(na.router && !na.solicited && na.r#override, "{na:?}");
    drop(v);
    k.assert_clean();
}

#[test]
fn other_ndp_from_the_guest_is_dropped() {
    let k = fakekernel::scope();
    let v = Vpc::standard();
    // A solicitation for another address (the guest's own DAD probe, a
    // neighbor's address): denied by rule.
    let f = ns(Ipv6Addr::UNSPECIFIED, solicited_node(GUEST_V6), GUEST_V6, 255);
    assert_denied_by_rule(v.out(&f).dropped());
    let f = ns(guest_ll(), solicited_node(PEER_V6), PEER_V6, 255);
    assert_denied_by_rule(v.out(&f).dropped());
    // Advertisements and redirects from the guest.
    let ra = etherparse::icmpv6::RouterAdvertisementHeader {
        cur_hop_limit: 64,
        managed_address_config: false,
        other_config: false,
        router_lifetime: 1800,
    };
    let f = ndp_frame(
        GUEST_MAC,
        mcast_mac(ALL_NODES),
        guest_ll(),
        ALL_NODES,
        255,
        Icmpv6Type::RouterAdvertisement(ra),
        &[0; 8],
    );
    assert_denied_by_rule(v.out(&f).dropped());
    let na = etherparse::icmpv6::NeighborAdvertisementHeader {
        router: false,
        solicited: false,
        r#override: true,
    };
    let f = ndp_frame(
        GUEST_MAC,
        mcast_mac(ALL_NODES),
        guest_ll(),
        ALL_NODES,
        255,
        Icmpv6Type::NeighborAdvertisement(na),
        &GUEST_V6.octets(),
    );
    assert_denied_by_rule(v.out(&f).dropped());
    let mut redirect = PEER_V6.octets().to_vec();
    redirect.extend(INET_V6.octets());
    let f = ndp_frame(GUEST_MAC, GW_MAC, guest_ll(), gw_ll(), 255, Icmpv6Type::Redirect, &redirect);
    assert_denied_by_rule(v.out(&f).dropped());
    // A solicitation for the gateway with a hop limit that shows it was
    // routed (RFC 4861 7.1.1).
    let f = ns(guest_ll(), solicited_node(GW_V6), GW_V6, 64);
    assert_eq!(v.out(&f).dropped(), action_drop("NDP message with hop limit other than 255"));
    let s = v.port.port().stats();
    assert_eq!((s.hairpin, s.drop_denied_rule, s.drop_action), (0, 5, 1));
    drop(v);
    k.assert_clean();
}

// -------------------------------------------------------- anti-spoofing

/// True when the gateway passed an outbound frame by one of its allow
/// rules (read from the trace: later layers may still drop the frame).
fn gateway_allowed(v: &Vpc, f: &[u8]) -> bool {
    v.trace.take();
    let out = v.out(f);
    let allowed =
        v.trace.take().iter().any(|l| l.starts_with("gateway: rule ") && l.ends_with(" Allow"));
    if let Outcome::Drop(DropReason::Denied { layer: "gateway", .. }) = out {
        assert!(!allowed);
    }
    allowed
}

#[test]
fn spoofed_sources_are_denied_by_the_layer_default() {
    let k = fakekernel::scope();
    let v = Vpc::standard();
    let spoof_mac =
        udp(PEER_MAC, GW_MAC, IpAddr::V4(GUEST_V4), 5000, IpAddr::V4(INET_V4), 53, b"x");
    assert_eq!(v.out(&spoof_mac).dropped(), DEFAULT_DENY);
    let spoof_ip = udp(GUEST_MAC, GW_MAC, IpAddr::V4(PEER_V4), 5000, IpAddr::V4(INET_V4), 53, b"x");
    assert_eq!(v.out(&spoof_ip).dropped(), DEFAULT_DENY);
    let spoof_v6 = udp(GUEST_MAC, GW_MAC, IpAddr::V6(PEER_V6), 5000, IpAddr::V6(INET_V6), 53, b"x");
    assert_eq!(v.out(&spoof_v6).dropped(), DEFAULT_DENY);
    // Link-local sources are for NDP and DHCPv6 only.
    let ll = udp(GUEST_MAC, GW_MAC, IpAddr::V6(guest_ll()), 5000, IpAddr::V6(INET_V6), 53, b"x");
    assert_eq!(v.out(&ll).dropped(), DEFAULT_DENY);
    assert_eq!(v.port.port().stats().drop_denied_default, 4);
    // The guest's own addresses pass the gateway.
    assert!(gateway_allowed(&v, &from_guest_udp(IpAddr::V4(INET_V4), 5000, 53)));
    assert!(gateway_allowed(&v, &from_guest_udp(IpAddr::V6(INET_V6), 5000, 53)));
    drop(v);
    k.assert_clean();
}

#[test]
fn attached_subnets_and_outbound_transit_cidrs_may_be_sources() {
    let k = fakekernel::scope();
    let v = Vpc::standard();
    let from = |src: &str| {
        let src: IpAddr = src.parse().unwrap();
        let dst = if src.is_ipv4() { IpAddr::V4(INET_V4) } else { IpAddr::V6(INET_V6) };
        udp(GUEST_MAC, GW_MAC, src, 5000, dst, 53, b"x")
    };
    for s in ["10.50.0.9", "192.168.7.7", "fd55::9", "fd66::9"] {
        assert!(!gateway_allowed(&v, &from(s)), "{s} before it is configured");
    }
    v.port
        .attach_subnet(AttachedSubnet { cidr: "10.50.0.0/24".parse().unwrap(), external: false })
        .unwrap();
    v.port
        .attach_subnet(AttachedSubnet { cidr: "fd55::/64".parse().unwrap(), external: true })
        .unwrap();
    v.port
        .allow_cidr(TransitCidr { cidr: "192.168.0.0/16".parse().unwrap(), dir: Direction::Out })
        .unwrap();
    // Inbound only: not a source.
    v.port
        .allow_cidr(TransitCidr { cidr: "fd66::/64".parse().unwrap(), dir: Direction::In })
        .unwrap();
    assert!(gateway_allowed(&v, &from("10.50.0.9")));
    assert!(gateway_allowed(&v, &from("fd55::9")));
    assert!(gateway_allowed(&v, &from("192.168.7.7")));
    assert!(!gateway_allowed(&v, &from("fd66::9")));
    assert!(!gateway_allowed(&v, &from("10.50.1.9")), "outside the subnet");
    // Still the guest's MAC only.
    let wrong_mac =
        udp(PEER_MAC, GW_MAC, "10.50.0.9".parse().unwrap(), 5000, IpAddr::V4(INET_V4), 53, b"x");
    assert_eq!(v.out(&wrong_mac).dropped(), DEFAULT_DENY);
    drop(v);
    k.assert_clean();
}

// --------------------------------------------------------------- inbound

/// Let every inbound flow through the firewall, so that the gateway is
/// what decides.
fn allow_all_inbound(v: &Vpc) {
    v.port
        .add_fw_rule(FirewallRule {
            direction: Direction::In,
            priority: 1,
            action: FwAction::Allow,
            hosts: FwHosts::Any,
            protocol: FwProtocol::Any,
            ports: vec![],
        })
        .unwrap();
}

/// An encapsulated frame from the peer (or the boundary, when external)
/// to `dst`.
fn inbound(dst: IpAddr, external: bool) -> Vec<u8> {
    let (src, host, vni) = match (dst, external) {
        (IpAddr::V4(_), false) => (IpAddr::V4(PEER_V4), HOST_B, VNI),
        (IpAddr::V6(_), false) => (IpAddr::V6(PEER_V6), HOST_B, VNI),
        (IpAddr::V4(_), true) => (IpAddr::V4(INET_V4), BOUNDARY, 99),
        (IpAddr::V6(_), true) => (IpAddr::V6(INET_V6), BOUNDARY, 99),
    };
    let f = udp(PEER_MAC, GUEST_MAC, src, 443, dst, 5555, b"inbound");
    encap(host, HOST_A, vni, external, &f)
}

#[test]
fn inbound_traffic_for_the_guest_comes_from_the_gateway() {
    let k = fakekernel::scope();
    let v = Vpc::standard();
    allow_all_inbound(&v);
    for dst in [IpAddr::V4(GUEST_V4), IpAddr::V6(GUEST_V6)] {
        let out = v.inb(&inbound(dst, false)).pass();
        let i = inner(&out);
        assert_eq!((i.src_mac, i.dst_mac), (GW_MAC, GUEST_MAC));
        assert_eq!(i.dst, dst);
    }
    // Not the guest's: the gateway's default.
    for dst in ["172.30.0.77", "fd00::77"] {
        let r = v.inb(&inbound(dst.parse().unwrap(), false)).dropped();
        assert_eq!(r, DEFAULT_DENY, "{dst}");
    }
    drop(v);
    k.assert_clean();
}

#[test]
fn inbound_attached_subnets_and_transit_cidrs() {
    let k = fakekernel::scope();
    let v = Vpc::standard();
    allow_all_inbound(&v);
    v.port
        .attach_subnet(AttachedSubnet { cidr: "10.50.0.0/24".parse().unwrap(), external: false })
        .unwrap();
    v.port
        .attach_subnet(AttachedSubnet { cidr: "fd55::/64".parse().unwrap(), external: true })
        .unwrap();
    v.port
        .allow_cidr(TransitCidr { cidr: "fd66::/64".parse().unwrap(), dir: Direction::In })
        .unwrap();
    v.port
        .allow_cidr(TransitCidr { cidr: "192.168.0.0/16".parse().unwrap(), dir: Direction::Out })
        .unwrap();
    let ok = |dst: &str, external: bool| {
        let out = v.inb(&inbound(dst.parse().unwrap(), external)).pass();
        let i = inner(&out);
        assert_eq!((i.src_mac, i.dst_mac), (GW_MAC, GUEST_MAC), "{dst}");
    };
    ok("10.50.0.9", false);
    ok("fd55::9", true);
    ok("fd66::9", false);
    // An external subnet is not reachable from inside the VPC; an
    // outbound-only transit CIDR is not a destination.
    assert_eq!(v.inb(&inbound("fd55::9".parse().unwrap(), false)).dropped(), DEFAULT_DENY);
    assert_eq!(v.inb(&inbound("192.168.1.1".parse().unwrap(), false)).dropped(), DEFAULT_DENY);
    drop(v);
    k.assert_clean();
}

// ----------------------------------------------------------- allocations

/// Heap allocations `f` makes on this thread.
fn count_allocs<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = allocs();
    let r = f();
    (r, allocs() - before)
}

/// The gateway's hairpin action whose description starts with `prefix`.
fn hairpin_action(prefix: &str) -> std::sync::Arc<dyn HairpinAction> {
    let set = oxide_vpc::engine::gateway::rules(&cfg());
    set.rules_out
        .iter()
        .find_map(|r| match &r.action {
            Action::Hairpin(a) if a.to_string().starts_with(prefix) => Some(a.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no hairpin rule {prefix}"))
}

#[test]
fn a_hairpin_reply_takes_a_handful_of_allocations() {
    let k = fakekernel::scope();
    // What one message block costs in the fake kernel (in the kernel it
    // is allocb's own cache, not the heap). The first calls also set up
    // the fake's books: take the steady cost.
    let per_mblk = (0..4)
        .map(|_| count_allocs(|| MsgBlk::from_bytes(0, &[0u8; 64]).unwrap()).1)
        .min()
        .unwrap();
    let discover = dhcp4_msg(1, 0, Ipv4Addr::UNSPECIFIED, &[]);
    let solicit = dhcp6_msg(1, &[(1, client_duid()), (3, ia_na(IAID, None))]);
    // (action, request, heap allocations the action may make: the
    // payload, the builder's frame and transport buffers, and for IPv6
    // its header buffer)
    let cases = [
        ("arp", arp(ArpOperation::REQUEST, GUEST_MAC, GUEST_V4, GW_V4), 2),
        ("dhcp-reply(DISCOVER)", dhcp4_bcast(&discover), 3),
        ("dhcp6-reply(SOLICIT)", dhcp6_frame(&solicit), 4),
        ("echo-reply", echo(GUEST_MAC, GW_MAC, IpAddr::V4(GUEST_V4), IpAddr::V4(GW_V4), 1, 1), 3),
        ("router-advert", rs(guest_ll()), 3),
    ];
    // A port without a tracer, for the whole path.
    let net = std::sync::Arc::new(VpcNetwork::new());
    let port = VpcPort::new("xde0", cfg(), net, PortLimits::default(), None).unwrap();
    for (name, f, most) in &cases {
        let a = hairpin_action(name);
        let pkt = Packet::parse_guest(MsgBlk::from_bytes(0, f).unwrap()).unwrap();
        let meta = Meta::new();
        let ctx =
            MatchCtx { dir: Direction::Out, hdrs: pkt.headers(), mblk: pkt.mblk(), meta: &meta };
        // The least of a few runs: the fake's books grow now and then.
        let n = (0..4)
            .map(|_| {
                let (reply, n) = count_allocs(|| a.gen_packet(&ctx));
                drop(reply.unwrap());
                n
            })
            .min()
            .unwrap();
        let own = n - per_mblk;
        let mut pkt = Packet::parse_guest(MsgBlk::from_bytes(0, f).unwrap()).unwrap();
        let (r, total) = count_allocs(|| port.process(Direction::Out, &mut pkt, Moment(1)));
        assert!(matches!(r, ProcessResult::Hairpin(_)), "{name}: {r:?}");
        eprintln!(
            "{name}: {own} heap allocations besides the message block ({per_mblk} in the fake \
             kernel); {total} for the whole port path"
        );
        assert!(own <= *most, "{name}: {own} allocations");
    }
    drop(port);
    k.assert_clean();
}
