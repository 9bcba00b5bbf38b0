//! The engine on a small toy network built here (not the VPC): a port
//! with a gateway, a firewall, a router and a NAT layer, driven packet by
//! packet, with a tracer recording the path each packet took.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use opte::ddi::MsgBlk;
use opte::engine::action::{
    Action, ActionDesc, ActionError, DefaultAction, HairpinAction, HandlePacket, HandleResult,
    LayerFlows, MetaAction, StatefulAction, StaticAction,
};
use opte::engine::flow::FlowId;
use opte::engine::flow_table::ExpiryPolicy;
use opte::engine::layer::LayerSpec;
use opte::engine::meta::{Meta, MetaValue};
use opte::engine::port::{Port, PortConfig, PortError, PortState, ProcessResult};
use opte::engine::predicate::{Ipv4Match, MatchCtx, PortMatch, Predicate};
use opte::engine::rule::RuleSpec;
use opte::engine::stats::DropReason;
use opte::engine::trace::{Decision, TraceEvent, Tracer};
use opte::engine::transform::{EtherMod, HdrTransform, IpMod, UlpMod};
use opte::engine::{Direction, Moment, NANOS_PER_SEC};
use opte::packet::tcp::tcp_flags::{ACK, FIN, RST, SYN};
use opte::packet::*;
use opte_api::{Ipv4Addr, Ipv4Cidr, MacAddr};

const GUEST_MAC: MacAddr = MacAddr::from_bytes([0xa8, 0x40, 0x25, 0xf0, 0, 1]);
const GW_MAC: MacAddr = MacAddr::from_bytes([0xa8, 0x40, 0x25, 0xff, 0xff, 0xff]);
const ROUTER_MAC: MacAddr = MacAddr::from_bytes([0xa8, 0x40, 0x25, 0xee, 0, 2]);
const GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);
const GW: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);
const REMOTE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const NAT_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

// ---------------------------------------------------------------- tracing

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Tracer for Recorder {
    fn event(&self, ev: &TraceEvent<'_>) {
        self.0.lock().unwrap().push(ev.to_string());
    }
}

impl Recorder {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn layers_visited(trace: &[String]) -> Vec<String> {
    trace.iter().filter(|s| s.contains(": ")).cloned().collect()
}

// ---------------------------------------------------------------- actions

/// A source NAT with a small port pool; a port returns to the pool when
/// the last flow entry holding it goes.
struct Snat {
    ip: Ipv4Addr,
    pool: Arc<Mutex<BTreeSet<u16>>>,
}

struct SnatDesc {
    guest: Ipv4Addr,
    guest_port: u16,
    ip: Ipv4Addr,
    port: u16,
    pool: Arc<Mutex<BTreeSet<u16>>>,
}

impl Drop for SnatDesc {
    fn drop(&mut self) {
        self.pool.lock().unwrap().insert(self.port);
    }
}

impl ActionDesc for SnatDesc {
    fn gen_ht(&self, dir: Direction) -> HdrTransform {
        match dir {
            Direction::Out => HdrTransform {
                inner_ip: Some(IpMod::V4 { src: Some(self.ip), dst: None }),
                inner_ulp: UlpMod { src_port: Some(self.port), ..Default::default() },
                ..HdrTransform::NONE
            },
            Direction::In => HdrTransform {
                inner_ip: Some(IpMod::V4 { src: None, dst: Some(self.guest) }),
                inner_ulp: UlpMod { dst_port: Some(self.guest_port), ..Default::default() },
                ..HdrTransform::NONE
            },
        }
    }

    fn describe(&self) -> String {
        format!("SNAT {}:{}", self.ip, self.port)
    }
}

impl fmt::Display for Snat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "snat {}", self.ip)
    }
}

impl StatefulAction for Snat {
    fn gen_desc(
        &self,
        _dir: Direction,
        flow: &FlowId,
        _meta: &mut Meta,
        _previous: Option<&Arc<dyn ActionDesc>>,
    ) -> Result<Arc<dyn ActionDesc>, ActionError> {
        let port =
            self.pool.lock().unwrap().pop_first().ok_or(ActionError::Exhausted("SNAT ports"))?;
        let std::net::IpAddr::V4(guest) = flow.src_ip() else {
            return Err(ActionError::NotApplicable("IPv4 only"));
        };
        Ok(Arc::new(SnatDesc {
            guest,
            guest_port: flow.src_port,
            ip: self.ip,
            port,
            pool: Arc::clone(&self.pool),
        }))
    }
}

/// Rewrite the destination MAC to the router's.
struct ToRouter;

impl fmt::Display for ToRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("to-router")
    }
}

impl StaticAction for ToRouter {
    fn gen_ht(
        &self,
        dir: Direction,
        _: &FlowId,
        _: &mut Meta,
    ) -> Result<HdrTransform, ActionError> {
        Ok(match dir {
            Direction::Out => HdrTransform {
                inner_eth: EtherMod { dst: Some(ROUTER_MAC), src: None },
                ..HdrTransform::NONE
            },
            Direction::In => HdrTransform {
                inner_eth: EtherMod { src: Some(GW_MAC), dst: None },
                ..HdrTransform::NONE
            },
        })
    }
}

/// Answer ICMP echo requests to the gateway.
struct EchoReply;

impl fmt::Display for EchoReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("echo-reply")
    }
}

impl HairpinAction for EchoReply {
    fn gen_packet(&self, ctx: &MatchCtx<'_>) -> Result<MsgBlk, ActionError> {
        let (Some(L3::Ipv4(ip)), Some(L4::Icmpv4(icmp))) = (&ctx.hdrs.l3, &ctx.hdrs.l4) else {
            return Err(ActionError::NotApplicable("not ICMPv4"));
        };
        let mut b =
            FrameBuilder::new(EtherHdr { dst: ctx.hdrs.eth.src, src: GW_MAC, ether_type: 0 });
        b.l3 = Some(L3::Ipv4(Ipv4Hdr { src: ip.dst, dst: ip.src, ttl: 64, ..Ipv4Hdr::EMPTY }));
        b.l4 = Some(L4::Icmpv4(IcmpHdr { ty: 0, code: 0, csum: 0, rest: icmp.rest }));
        b.to_mblk(0, b"pong").map_err(|_| ActionError::Reply("no memory"))
    }
}

/// Tag packets to the peer so a later layer can match on the tag.
struct TagPeer;

impl fmt::Display for TagPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tag-peer")
    }
}

impl MetaAction for TagPeer {
    fn mod_meta(
        &self,
        _: Direction,
        _: Option<&FlowId>,
        meta: &mut Meta,
    ) -> Result<(), ActionError> {
        meta.set("peer", MetaValue::Bool(true))?;
        Ok(())
    }
}

/// Drop packets whose TTL is 1; decrement the others.
struct TtlHook;

impl fmt::Display for TtlHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ttl")
    }
}

impl HandlePacket for TtlHook {
    fn handle(
        &self,
        _: Direction,
        pkt: &mut Packet,
        _: &mut Meta,
        _: &LayerFlows<'_>,
    ) -> HandleResult {
        match &mut pkt.headers_mut().l3 {
            Some(L3::Ipv4(ip)) if ip.ttl <= 1 => HandleResult::Drop("ttl expired"),
            Some(L3::Ipv4(ip)) => {
                ip.ttl -= 1;
                match pkt.emit() {
                    Ok(()) => HandleResult::Continue,
                    Err(_) => HandleResult::Drop("emit"),
                }
            }
            _ => HandleResult::Continue,
        }
    }
}

// ---------------------------------------------------------------- the toy network

struct Net {
    port: Port,
    trace: Arc<Recorder>,
    pool: Arc<Mutex<BTreeSet<u16>>>,
    /// The NAT layer's action (the same object as in its rule).
    nat: Action,
}

fn layer(name: &'static str, din: DefaultAction, dout: DefaultAction) -> LayerSpec {
    LayerSpec { name, default_in: din, default_out: dout, lft_limit: 64, keep_flows: false }
}

fn net_with(uft_limit: u32, ports: &[u16]) -> Net {
    let trace = Arc::new(Recorder::default());
    let cfg = PortConfig {
        name: "toy0".to_string(),
        layers: vec![
            layer("gateway", DefaultAction::Allow, DefaultAction::Allow),
            layer("firewall", DefaultAction::Deny, DefaultAction::StatefulAllow),
            layer("router", DefaultAction::Allow, DefaultAction::Allow),
            layer("nat", DefaultAction::Allow, DefaultAction::Allow),
        ],
        uft_limit,
        tcp_limit: 64,
        expiry: ExpiryPolicy::default(),
    };
    let port = Port::new(cfg, Some(trace.clone() as Arc<dyn Tracer>));
    let pool = Arc::new(Mutex::new(ports.iter().copied().collect::<BTreeSet<u16>>()));
    let outside: Ipv4Cidr = "198.51.100.0/24".parse().unwrap();
    port.add_rule(
        "gateway",
        Direction::Out,
        RuleSpec::new(10, Action::Hairpin(Arc::new(EchoReply)))
            .with(Predicate::IpProto(1))
            .with(Predicate::Ipv4Dst(Ipv4Match::Exact(GW))),
    )
    .unwrap();
    port.add_rule(
        "router",
        Direction::Out,
        RuleSpec::new(10, Action::Static(Arc::new(ToRouter)))
            .with(Predicate::Ipv4Dst(Ipv4Match::Prefix(outside))),
    )
    .unwrap();
    let nat = Action::Stateful(Arc::new(Snat { ip: NAT_IP, pool: pool.clone() }));
    port.add_rule("nat", Direction::Out, nat_spec(nat.clone())).unwrap();
    port.start().unwrap();
    trace.take();
    Net { port, trace, pool, nat }
}

fn net() -> Net {
    net_with(1024, &[1024, 1025, 1026])
}

fn eth(src: MacAddr, dst: MacAddr) -> EtherHdr {
    EtherHdr { src, dst, ether_type: 0 }
}

fn ip4(src: Ipv4Addr, dst: Ipv4Addr) -> L3 {
    L3::Ipv4(Ipv4Hdr { src, dst, ttl: 64, ..Ipv4Hdr::EMPTY })
}

fn tcp(
    src: Ipv4Addr,
    sp: u16,
    dst: Ipv4Addr,
    dp: u16,
    flags: u8,
    seq: u32,
    ack: u32,
) -> FrameBuilder {
    let mut b = FrameBuilder::new(eth(GUEST_MAC, GW_MAC));
    b.l3 = Some(ip4(src, dst));
    b.l4 = Some(L4::Tcp(TcpHdr {
        src_port: sp,
        dst_port: dp,
        flags,
        seq,
        ack,
        window: 1000,
        ..TcpHdr::EMPTY
    }));
    b
}

fn udp(src: Ipv4Addr, sp: u16, dst: Ipv4Addr, dp: u16) -> FrameBuilder {
    let mut b = FrameBuilder::new(eth(GUEST_MAC, GW_MAC));
    b.l3 = Some(ip4(src, dst));
    b.l4 = Some(L4::Udp(UdpHdr { src_port: sp, dst_port: dp, len: 0, csum: 0 }));
    b
}

fn icmp_echo(src: Ipv4Addr, dst: Ipv4Addr, id: u16) -> FrameBuilder {
    let mut b = FrameBuilder::new(eth(GUEST_MAC, GW_MAC));
    b.l3 = Some(ip4(src, dst));
    let mut i = IcmpHdr { ty: 8, code: 0, csum: 0, rest: [0; 4] };
    i.set_echo_id(id);
    b.l4 = Some(L4::Icmpv4(i));
    b
}

fn packet(b: &FrameBuilder) -> Packet {
    Packet::parse_guest(b.to_mblk(0, b"data").unwrap()).map_err(|f| f.error).unwrap()
}

/// Process one frame; returns the result and the packet after it.
fn send(n: &Net, dir: Direction, b: &FrameBuilder, t: u64) -> (ProcessResult, Packet) {
    let mut p = packet(b);
    let r = n.port.process(dir, &mut p, Moment(t * NANOS_PER_SEC));
    (r, p)
}

fn assert_modified(r: &ProcessResult) {
    assert!(matches!(r, ProcessResult::Modified), "expected Modified, got {r:?}");
}

// ---------------------------------------------------------------- tests

#[test]
fn stateful_allow_lets_replies_in_and_default_deny_keeps_others_out() {
    let k = fakekernel::scope();
    let n = net();
    let (r, _) = send(&n, Direction::Out, &udp(GUEST, 5000, PEER, 53), 1);
    assert_modified(&r);
    // The reply passes the inbound default deny thanks to the stateful allow.
    let (r, _) = send(&n, Direction::In, &udp(PEER, 53, GUEST, 5000), 1);
    assert_modified(&r);
    // An unsolicited inbound packet is denied by the firewall default.
    let (r, _) = send(&n, Direction::In, &udp(PEER, 53, GUEST, 5001), 1);
    assert!(
        matches!(r, ProcessResult::Drop(DropReason::Denied { layer: "firewall", rule: None })),
        "{r:?}"
    );
    let s = n.port.stats();
    assert_eq!((s.modified, s.drop_denied_default), (2, 1));
    drop(n);
    k.assert_clean();
}

#[test]
fn a_uft_hit_visits_no_layer() {
    let k = fakekernel::scope();
    let n = net();
    let b = udp(GUEST, 5000, REMOTE, 53);
    let (r, _) = send(&n, Direction::Out, &b, 1);
    assert_modified(&r);
    let first = n.trace.take();
    assert_eq!(layers_visited(&first).len(), 4, "{first:?}");
    let (r, p) = send(&n, Direction::Out, &b, 2);
    assert_modified(&r);
    let second = n.trace.take();
    assert!(layers_visited(&second).is_empty(), "{second:?}");
    assert!(second.contains(&"uft hit".to_string()), "{second:?}");
    // And the hit applied the same transformation: SNAT and router MAC.
    let h = p.headers();
    assert_eq!(h.eth.dst, ROUTER_MAC);
    let Some(L3::Ipv4(ip)) = &h.l3 else { panic!() };
    assert_eq!(ip.src, NAT_IP);
    assert_eq!(n.port.stats().uft_hit, 1);
    drop((n, p));
    k.assert_clean();
}

#[test]
fn nat_translates_both_ways_and_releases_its_port() {
    let k = fakekernel::scope();
    let n = net();
    let (r, p) = send(&n, Direction::Out, &udp(GUEST, 5000, REMOTE, 53), 1);
    assert_modified(&r);
    let Some(L4::Udp(u)) = p.headers().l4 else { panic!() };
    assert_eq!(u.src_port, 1024);
    assert_eq!(n.pool.lock().unwrap().len(), 2, "one port taken");
    drop(p);
    // The reply to the NAT address comes back to the guest.
    let (r, p) = send(&n, Direction::In, &udp(REMOTE, 53, NAT_IP, 1024), 1);
    assert_modified(&r);
    let Some(L3::Ipv4(ip)) = &p.headers().l3 else { panic!() };
    assert_eq!(ip.dst, GUEST);
    let Some(L4::Udp(u)) = p.headers().l4 else { panic!() };
    assert_eq!(u.dst_port, 5000);
    // Checksums stay right.
    let mut q = Packet::parse_guest(p.into_mblk()).unwrap();
    let before = q.mblk().to_vec();
    q.compute_checksums().unwrap();
    assert_eq!(q.mblk().to_vec(), before, "incremental checksums equal full ones");
    drop(q);
    // Idle past the UDP timeout: every entry goes and the port returns.
    let gone = n.port.expire(Moment(1000 * NANOS_PER_SEC));
    assert!(gone > 0);
    assert_eq!(n.pool.lock().unwrap().len(), 3, "port released");
    drop(n);
    k.assert_clean();
}

#[test]
fn an_exhausted_pool_is_a_counted_drop() {
    let k = fakekernel::scope();
    let n = net_with(1024, &[1024]);
    let (r, _) = send(&n, Direction::Out, &udp(GUEST, 5000, REMOTE, 53), 1);
    assert_modified(&r);
    let (r, _) = send(&n, Direction::Out, &udp(GUEST, 5001, REMOTE, 53), 1);
    assert!(
        matches!(
            &r,
            ProcessResult::Drop(DropReason::Action {
                layer: "nat",
                error: ActionError::Exhausted(_)
            })
        ),
        "{r:?}"
    );
    assert_eq!((n.port.stats().drop_exhausted, n.port.stats().drop_action), (1, 0));
    drop(n);
    k.assert_clean();
}

#[test]
fn hairpin_replies_and_is_never_cached() {
    let k = fakekernel::scope();
    let n = net();
    for t in 1..=2 {
        let (r, _) = send(&n, Direction::Out, &icmp_echo(GUEST, GW, 7), t);
        let ProcessResult::Hairpin(reply) = r else { panic!("{r:?}") };
        let h = Headers::parse_guest(&reply).unwrap();
        assert_eq!(h.eth.dst, GUEST_MAC);
        let Some(L3::Ipv4(ip)) = &h.l3 else { panic!() };
        assert_eq!((ip.src, ip.dst), (GW, GUEST));
        let Some(L4::Icmpv4(i)) = &h.l4 else { panic!() };
        assert_eq!((i.ty, i.echo_id()), (0, 7));
    }
    assert_eq!(n.port.stats().hairpin, 2);
    assert_eq!(n.port.stats().uft_hit, 0, "hairpins never hit the UFT");
    drop(n);
    k.assert_clean();
}

#[test]
fn priority_and_tie_break() {
    let k = fakekernel::scope();
    let n = net();
    let tcp22 = |p| RuleSpec::new(p, Action::Allow).with(Predicate::DstPort(PortMatch::Exact(22)));
    let deny22 = |p| RuleSpec::new(p, Action::Deny).with(Predicate::DstPort(PortMatch::Exact(22)));
    let allow = n.port.add_rule("firewall", Direction::In, tcp22(10)).unwrap();
    let deny = n.port.add_rule("firewall", Direction::In, deny22(10)).unwrap();
    // Equal priority: deny first.
    let (r, _) = send(&n, Direction::In, &tcp(PEER, 4000, GUEST, 22, SYN, 1, 0), 1);
    assert!(
        matches!(r, ProcessResult::Drop(DropReason::Denied { layer: "firewall", rule: Some(id) }) if id == deny),
        "{r:?}"
    );
    // A lower priority number wins over the deny.
    let first = n.port.add_rule("firewall", Direction::In, tcp22(5)).unwrap();
    let (r, _) = send(&n, Direction::In, &tcp(PEER, 4001, GUEST, 22, SYN, 1, 0), 2);
    assert_modified(&r);
    let trace = n.trace.take();
    assert!(trace.iter().any(|s| s == &format!("firewall: rule {first} Allow")), "{trace:?}");
    // Among equal allows, the earlier rule.
    n.port.remove_rule("firewall", Direction::In, deny).unwrap();
    n.port.remove_rule("firewall", Direction::In, first).unwrap();
    let later = n.port.add_rule("firewall", Direction::In, tcp22(10)).unwrap();
    let (r, _) = send(&n, Direction::In, &tcp(PEER, 4002, GUEST, 22, SYN, 1, 0), 3);
    assert_modified(&r);
    let trace = n.trace.take();
    assert!(trace.iter().any(|s| s == &format!("firewall: rule {allow} Allow")), "{trace:?}");
    assert!(later.0 > allow.0);
    let dump = n.port.dump_layer("firewall").unwrap();
    assert_eq!(dump.rules_in.iter().map(|r| r.0).collect::<Vec<_>>(), vec![allow, later]);
    drop(n);
    k.assert_clean();
}

#[test]
fn metadata_flows_between_layers_and_handle_packet_hooks_run() {
    let k = fakekernel::scope();
    let n = net();
    n.port
        .add_rule(
            "gateway",
            Direction::Out,
            RuleSpec::new(20, Action::Meta(Arc::new(TagPeer)))
                .with(Predicate::Ipv4Dst(Ipv4Match::Exact(PEER))),
        )
        .unwrap();
    n.port
        .add_rule(
            "router",
            Direction::Out,
            RuleSpec::new(5, Action::Deny)
                .with(Predicate::Meta { key: "peer".to_string(), value: MetaValue::Bool(true) })
                .with(Predicate::DstPort(PortMatch::Exact(23))),
        )
        .unwrap();
    let (r, _) = send(&n, Direction::Out, &udp(GUEST, 5000, PEER, 23), 1);
    assert!(matches!(r, ProcessResult::Drop(DropReason::Denied { layer: "router", .. })), "{r:?}");
    // Without the tag (another destination) the deny doesn't match.
    let (r, _) = send(&n, Direction::Out, &udp(GUEST, 5000, REMOTE, 23), 1);
    assert_modified(&r);

    n.port
        .add_rule(
            "gateway",
            Direction::In,
            RuleSpec::new(1, Action::HandlePacket(Arc::new(TtlHook))),
        )
        .unwrap();
    let mut b = udp(PEER, 53, GUEST, 5000);
    n.port.add_rule("firewall", Direction::In, RuleSpec::new(1, Action::Allow)).unwrap();
    let (r, p) = send(&n, Direction::In, &b, 2);
    assert_modified(&r);
    let Some(L3::Ipv4(ip)) = &p.headers().l3 else { panic!() };
    assert_eq!(ip.ttl, 63, "the hook decremented the TTL");
    if let Some(L3::Ipv4(ip)) = &mut b.l3 {
        ip.ttl = 1;
    }
    let (r, _) = send(&n, Direction::In, &b, 2);
    assert!(
        matches!(r, ProcessResult::Drop(DropReason::Handled { why: "ttl expired", .. })),
        "{r:?}"
    );
    drop((n, p));
    k.assert_clean();
}

#[test]
fn rule_changes_invalidate_uft_entries() {
    let k = fakekernel::scope();
    let n = net();
    let b = udp(PEER, 53, GUEST, 7000);
    let allow =
        n.port.add_rule("firewall", Direction::In, RuleSpec::new(10, Action::Allow)).unwrap();
    assert_modified(&send(&n, Direction::In, &b, 1).0);
    assert_modified(&send(&n, Direction::In, &b, 1).0);
    assert_eq!(n.port.stats().uft_hit, 1);
    // Add: the entry is stale and rebuilt.
    let epoch = n.port.epoch();
    let deny = n.port.add_rule("firewall", Direction::In, RuleSpec::new(1, Action::Deny)).unwrap();
    assert!(n.port.epoch() > epoch);
    let (r, _) = send(&n, Direction::In, &b, 2);
    assert!(matches!(r, ProcessResult::Drop(DropReason::Denied { .. })), "{r:?}");
    assert!(n.trace.take().contains(&"uft invalidated".to_string()));
    // Remove: allowed again through the layers.
    n.port.remove_rule("firewall", Direction::In, deny).unwrap();
    assert_modified(&send(&n, Direction::In, &b, 3).0);
    // Replace the whole set with nothing: default deny again.
    assert_modified(&send(&n, Direction::In, &b, 3).0);
    n.port.set_rules("firewall", Direction::In, vec![]).unwrap();
    let (r, _) = send(&n, Direction::In, &b, 4);
    assert!(matches!(r, ProcessResult::Drop(DropReason::Denied { rule: None, .. })), "{r:?}");
    let _ = allow;
    drop(n);
    k.assert_clean();
}

#[test]
fn a_soft_update_keeps_valid_state_and_a_replace_does_not() {
    let k = fakekernel::scope();
    let n = net();
    let b = udp(GUEST, 5000, REMOTE, 53);
    let (_, p) = send(&n, Direction::Out, &b, 1);
    let Some(L4::Udp(u)) = p.headers().l4 else { panic!() };
    let nat_port = u.src_port;
    drop(p);
    // An unrelated rule: the flow keeps its NAT port.
    n.port
        .add_rule(
            "nat",
            Direction::Out,
            RuleSpec::new(50, Action::Deny).with(Predicate::IpProto(47)),
        )
        .unwrap();
    let (r, p) = send(&n, Direction::Out, &b, 2);
    assert_modified(&r);
    let Some(L4::Udp(u)) = p.headers().l4 else { panic!() };
    assert_eq!(u.src_port, nat_port, "soft update kept the NAT port");
    drop(p);
    assert!(n.trace.take().iter().any(|s| s == "nat: lft Stateful"));
    // Replacing the set forgets the flow: the next packet is decided by
    // the new rules, not the layer flow table.
    let outside: Ipv4Cidr = "198.51.100.0/24".parse().unwrap();
    let ids = n
        .port
        .set_rules(
            "nat",
            Direction::Out,
            vec![
                RuleSpec::new(
                    10,
                    Action::Stateful(Arc::new(Snat { ip: NAT_IP, pool: n.pool.clone() })),
                )
                .with(Predicate::Ipv4Dst(Ipv4Match::Prefix(outside))),
            ],
        )
        .unwrap();
    n.trace.take();
    let (r, p) = send(&n, Direction::Out, &b, 3);
    assert_modified(&r);
    let t = n.trace.take();
    assert!(t.iter().any(|s| s == &format!("nat: rule {} Stateful", ids[0])), "{t:?}");
    // The old decision's port went back to the pool once nothing used it.
    assert_eq!(n.pool.lock().unwrap().len(), 2, "exactly one port held");
    drop((n, p));
    k.assert_clean();
}

#[test]
fn update_rules_keeps_flows_of_unchanged_rules_and_rechecks_the_rest() {
    let k = fakekernel::scope();
    let n = net();
    let nat_rule = n.port.dump_layer("nat").unwrap().rules_out[0].0;
    let b = udp(GUEST, 5000, REMOTE, 53);
    let (_, p) = send(&n, Direction::Out, &b, 1);
    let Some(L4::Udp(u)) = p.headers().l4 else { panic!() };
    let nat_port = u.src_port;
    drop(p);
    // The same NAT rule (same action object) plus a new one: the NAT rule
    // keeps its id, and the flow its port.
    let same = nat_spec(n.nat.clone());
    let ids = n
        .port
        .update_rules(
            "nat",
            Direction::Out,
            vec![same.clone(), RuleSpec::new(50, Action::Deny).with(Predicate::IpProto(47))],
        )
        .unwrap();
    assert_eq!(ids[0], nat_rule, "an unchanged rule keeps its id");
    assert_ne!(ids[1], nat_rule);
    let (r, p) = send(&n, Direction::Out, &b, 2);
    assert_modified(&r);
    let Some(L4::Udp(u)) = p.headers().l4 else { panic!() };
    assert_eq!(u.src_port, nat_port, "the flow kept its NAT port");
    drop(p);
    assert!(n.trace.take().iter().any(|s| s == "nat: lft Stateful"));
    // Dropping the NAT rule: the flow is re-checked, loses its decision,
    // and its port returns to the pool.
    n.port.update_rules("nat", Direction::Out, vec![]).unwrap();
    let (r, p) = send(&n, Direction::Out, &b, 3);
    assert_modified(&r);
    let Some(L4::Udp(u)) = p.headers().l4 else { panic!() };
    assert_eq!(u.src_port, 5000, "no NAT any more");
    drop(p);
    // The reply half of the withdrawn pair still holds the port until the
    // next expiry pass, which removes withdrawn decisions at once.
    assert_eq!(n.pool.lock().unwrap().len(), 2);
    n.port.expire(Moment(4));
    assert_eq!(n.pool.lock().unwrap().len(), 3, "the port went back");
    // A malformed rule is refused and changes nothing.
    let bad = RuleSpec::new(1, Action::Deny).with(Predicate::Any(vec![]));
    assert!(n.port.update_rules("nat", Direction::Out, vec![same, bad]).is_err());
    assert!(n.port.dump_layer("nat").unwrap().rules_out.is_empty());
    drop(n);
    k.assert_clean();
}

/// The toy network's NAT rule with this action.
fn nat_spec(nat: Action) -> RuleSpec {
    let outside: Ipv4Cidr = "198.51.100.0/24".parse().unwrap();
    RuleSpec::new(10, nat).with(Predicate::Ipv4Dst(Ipv4Match::Prefix(outside)))
}

/// A layer built with `keep_flows` keeps its established flows when the
/// rule that allowed them goes (a firewall); one without re-checks them.
#[test]
fn keep_flows_layers_keep_established_flows_across_soft_changes() {
    let k = fakekernel::scope();
    for keep in [true, false] {
        let port = firewall_port(64, keep);
        let allow = port
            .add_rule(
                "firewall",
                Direction::In,
                RuleSpec::new(10, Action::StatefulAllow).with(Predicate::IpProto(17)),
            )
            .unwrap();
        let b = udp(REMOTE, 4000, GUEST, 53);
        let mut p = packet(&b);
        assert_modified(&port.process(Direction::In, &mut p, Moment(1)));
        drop(p);
        port.remove_rule("firewall", Direction::In, allow).unwrap();
        let mut p = packet(&b);
        let r = port.process(Direction::In, &mut p, Moment(2));
        drop(p);
        if keep {
            assert_modified(&r);
        } else {
            assert!(
                matches!(r, ProcessResult::Drop(DropReason::Denied { rule: None, .. })),
                "{r:?}"
            );
        }
        // A new flow meets the new rules either way.
        let mut p = packet(&udp(REMOTE, 4001, GUEST, 53));
        let r = port.process(Direction::In, &mut p, Moment(3));
        assert!(matches!(r, ProcessResult::Drop(_)), "{r:?}");
        drop((p, port));
    }
    k.assert_clean();
}

/// `explain` shows each layer's decision and the verdict, and changes no
/// flow state, counter or resource.
#[test]
fn explain_walks_the_layers_without_changing_anything() {
    use opte::engine::explain::ExplainVerdict;
    let k = fakekernel::scope();
    let n = net();
    let before = (n.port.stats(), n.port.table_usage(), n.pool.lock().unwrap().len());
    let mut p = packet(&udp(GUEST, 5000, REMOTE, 53));
    let ex = n.port.explain(Direction::Out, &mut p);
    drop(p);
    assert!(!ex.uft_hit);
    let layers: Vec<_> = ex.steps.iter().map(|s| (s.layer, s.decision)).collect();
    assert_eq!(layers[0], ("gateway", Decision::Default));
    assert_eq!(layers[1], ("firewall", Decision::Default));
    assert!(matches!(layers[2], ("router", Decision::Rule(_))));
    assert!(matches!(layers[3], ("nat", Decision::Rule(_))));
    assert!(ex.steps[3].action.starts_with("stateful("), "{}", ex.steps[3].action);
    let ExplainVerdict::Pass(xf) = &ex.verdict else { panic!("{:?}", ex.verdict) };
    assert_eq!(xf.inner_ip, Some(IpMod::V4 { src: Some(NAT_IP), dst: None }));
    assert_eq!((n.port.stats(), n.port.table_usage(), n.pool.lock().unwrap().len()), before);
    assert!(n.trace.take().is_empty(), "explain is not traced as traffic");

    // A hairpin and a denial.
    let mut p = packet(&icmp_echo(GUEST, GW, 7));
    assert!(matches!(n.port.explain(Direction::Out, &mut p).verdict, ExplainVerdict::Hairpin(_)));
    drop(p);
    let mut p = packet(&udp(REMOTE, 53, GUEST, 5000));
    let ex = n.port.explain(Direction::In, &mut p);
    drop(p);
    assert_eq!(
        ex.verdict,
        ExplainVerdict::Drop(DropReason::Denied { layer: "firewall", rule: None })
    );
    assert_eq!(ex.steps.last().map(|s| s.layer), Some("firewall"), "inbound runs in reverse");

    // Once the flow is cached, explain says so.
    let (r, p) = send(&n, Direction::Out, &udp(GUEST, 5000, REMOTE, 53), 1);
    assert_modified(&r);
    drop(p);
    let mut p = packet(&udp(GUEST, 5000, REMOTE, 53));
    let ex = n.port.explain(Direction::Out, &mut p);
    assert!(ex.uft_hit && ex.steps.is_empty());
    drop((p, n));
    k.assert_clean();
}

#[test]
fn a_full_uft_is_a_counted_drop_until_pressure_is_relieved() {
    let k = fakekernel::scope();
    let n = net_with(2, &[1024, 1025, 1026]);
    n.port.add_rule("firewall", Direction::In, RuleSpec::new(1, Action::Allow)).unwrap();
    for sp in [1, 2] {
        assert_modified(&send(&n, Direction::In, &udp(PEER, sp, GUEST, 9), 1).0);
    }
    // Full: a new flow is a counted drop; known flows still pass.
    let (r, _) = send(&n, Direction::In, &udp(PEER, 3, GUEST, 9), 2);
    assert!(matches!(r, ProcessResult::Drop(DropReason::TableFull { table: "uft_in" })), "{r:?}");
    assert_eq!(n.port.stats().drop_table_full, 1);
    assert_modified(&send(&n, Direction::In, &udp(PEER, 2, GUEST, 9), 2).0);
    // Expiry time relieves the pressure (nothing idle long enough to
    // expire): the least recently hit flow is evicted.
    n.port.expire(Moment(3 * NANOS_PER_SEC));
    assert_eq!(n.port.stats().evictions, 1);
    assert_eq!(n.port.table_usage().uft_in, 1);
    assert_eq!(n.port.dump_uft(Direction::In)[0].0.src_port, 2, "the recently hit flow stays");
    assert_modified(&send(&n, Direction::In, &udp(PEER, 3, GUEST, 9), 4).0);
    drop(n);
    k.assert_clean();
}

#[test]
fn eviction_prefers_closing_tcp_flows_over_established_ones() {
    let k = fakekernel::scope();
    let n = net_with(3, &[1024]);
    n.port.add_rule("firewall", Direction::In, RuleSpec::new(1, Action::Allow)).unwrap();
    // Two established flows (hit recently) and one closing (hit earlier
    // than neither... it is hit last, yet goes first).
    for sp in [1, 2, 3] {
        let inn = |f, s, a| tcp(PEER, sp, GUEST, 22, f, s, a);
        let out = |f, s, a| tcp(GUEST, 22, PEER, sp, f, s, a);
        assert_modified(&send(&n, Direction::In, &inn(SYN, 1, 0), 1).0);
        assert_modified(&send(&n, Direction::Out, &out(SYN | ACK, 9, 2), 1).0);
        assert_modified(&send(&n, Direction::In, &inn(ACK, 2, 10), 1).0);
    }
    let fin = tcp(PEER, 3, GUEST, 22, FIN | ACK, 2, 10);
    assert_modified(&send(&n, Direction::In, &fin, 2).0);
    n.port.relieve_pressure();
    let left: Vec<u16> = n.port.dump_uft(Direction::In).iter().map(|e| e.0.src_port).collect();
    assert_eq!(left.len(), 2);
    assert!(!left.contains(&3), "the closing flow was evicted first: {left:?}");
    drop(n);
    k.assert_clean();
}

/// A TCP table past the pressure mark is relieved too, of connections
/// no UFT entry shares any longer (relief evicted theirs first), down to
/// the mark; the port keeps working.
#[test]
fn a_full_tcp_table_is_relieved_of_unshared_connections() {
    let k = fakekernel::scope();
    let n = net_with(64, &[1024]);
    n.port.add_rule("firewall", Direction::In, RuleSpec::new(1, Action::Allow)).unwrap();
    for sp in 1..=62u16 {
        assert_modified(&send(&n, Direction::In, &tcp(PEER, sp, GUEST, 22, SYN, 1, 0), 1).0);
    }
    let before = n.port.table_usage();
    assert_eq!((before.uft_in, before.tcp), (62, 62), "{before:?}");
    let evicted = n.port.relieve_pressure();
    let after = n.port.table_usage();
    // 90% of 64: the UFT entries go first, which frees their
    // connections to go too.
    assert_eq!((after.uft_in, after.tcp), (57, 57), "{after:?}");
    assert_eq!(n.port.stats().evictions, evicted as u64);
    assert!(evicted >= 10, "{evicted}");
    // Known flows still pass, and a new one gets its entries.
    assert_modified(&send(&n, Direction::In, &tcp(PEER, 62, GUEST, 22, ACK, 2, 0), 2).0);
    assert_modified(&send(&n, Direction::In, &tcp(PEER, 63, GUEST, 22, SYN, 1, 0), 2).0);
    drop(n);
    k.assert_clean();
}

#[test]
fn expiry_by_class() {
    let k = fakekernel::scope();
    let n = net();
    let pol = ExpiryPolicy::default();
    n.port.add_rule("firewall", Direction::In, RuleSpec::new(1, Action::Allow)).unwrap();
    assert_modified(&send(&n, Direction::In, &udp(PEER, 1, GUEST, 9), 0).0);
    assert_modified(&send(&n, Direction::In, &icmp_echo(PEER, GUEST, 3), 0).0);
    assert_modified(&send(&n, Direction::In, &tcp(PEER, 4000, GUEST, 22, SYN, 1, 0), 0).0);
    assert_eq!(n.port.table_usage().uft_in, 3);
    let at = |ns: u64| Moment(ns);
    let icmp_t = pol.timeout_ns(opte::engine::ExpiryClass::Icmp);
    let udp_t = pol.timeout_ns(opte::engine::ExpiryClass::Udp);
    let inc_t = pol.timeout_ns(opte::engine::ExpiryClass::TcpIncipient);
    let mut left = 3;
    let mut ts = [(icmp_t, "icmp"), (udp_t, "udp"), (inc_t, "tcp incipient")];
    ts.sort();
    for (t, what) in ts {
        n.port.expire(at(t));
        let now = n.port.table_usage().uft_in;
        assert!(now < left, "{what} expired at its timeout");
        left = now;
    }
    assert_eq!(left, 0);
    drop(n);
    k.assert_clean();
}

#[test]
fn tcp_active_open_close_and_time_wait_reuse() {
    let k = fakekernel::scope();
    let n = net();
    let out = |f, s, a| tcp(GUEST, 40000, PEER, 80, f, s, a);
    let inn = |f, s, a| tcp(PEER, 80, GUEST, 40000, f, s, a);
    assert_modified(&send(&n, Direction::Out, &out(SYN, 100, 0), 1).0);
    assert_modified(&send(&n, Direction::In, &inn(SYN | ACK, 500, 101), 1).0);
    assert_modified(&send(&n, Direction::Out, &out(ACK, 101, 501), 1).0);
    assert_eq!(n.port.dump_tcp()[0].1, opte::engine::tcp_state::TcpState::Established);
    assert_modified(&send(&n, Direction::Out, &out(FIN | ACK, 101, 501), 2).0);
    assert_modified(&send(&n, Direction::In, &inn(FIN | ACK, 501, 102), 2).0);
    assert_modified(&send(&n, Direction::Out, &out(ACK, 102, 502), 2).0);
    let st = n.port.dump_tcp();
    assert!(
        st.is_empty() || st[0].1 == opte::engine::tcp_state::TcpState::TimeWait,
        "closed or TIME_WAIT: {st:?}"
    );
    // A new SYN on the same 5-tuple starts a fresh flow through the layers.
    n.trace.take();
    assert_modified(&send(&n, Direction::Out, &out(SYN, 9000, 0), 3).0);
    let t = n.trace.take();
    assert_eq!(layers_visited(&t).len(), 4, "{t:?}");
    drop(n);
    k.assert_clean();
}

#[test]
fn tcp_passive_open_and_rst() {
    let k = fakekernel::scope();
    let n = net();
    n.port
        .add_rule(
            "firewall",
            Direction::In,
            RuleSpec::new(1, Action::StatefulAllow).with(Predicate::DstPort(PortMatch::Exact(22))),
        )
        .unwrap();
    let inn = |f, s, a| tcp(PEER, 5555, GUEST, 22, f, s, a);
    let out = |f, s, a| tcp(GUEST, 22, PEER, 5555, f, s, a);
    assert_modified(&send(&n, Direction::In, &inn(SYN, 1, 0), 1).0);
    assert_modified(&send(&n, Direction::Out, &out(SYN | ACK, 700, 2), 1).0);
    assert_modified(&send(&n, Direction::In, &inn(ACK, 2, 701), 1).0);
    assert_eq!(n.port.dump_tcp().len(), 1);
    assert_modified(&send(&n, Direction::In, &inn(RST, 2, 0), 2).0);
    assert!(n.port.dump_tcp().is_empty(), "RST reclaims the flow");
    assert!(n.port.stats().tcp_closed >= 1);
    drop(n);
    k.assert_clean();
}

#[test]
fn pause_reset_and_lifecycle_errors() {
    let k = fakekernel::scope();
    let n = net();
    let b = udp(GUEST, 5000, PEER, 53);
    assert_modified(&send(&n, Direction::Out, &b, 1).0);
    assert_eq!(n.port.start(), Err(PortError::BadState { op: "start", state: PortState::Running }));
    n.port.pause().unwrap();
    let (r, _) = send(&n, Direction::Out, &b, 1);
    assert!(matches!(r, ProcessResult::Drop(DropReason::NotRunning)), "{r:?}");
    assert_eq!(n.port.pause(), Err(PortError::BadState { op: "pause", state: PortState::Paused }));
    // Reset keeps rules and state but forgets flows.
    assert!(n.port.table_usage().uft_out > 0);
    n.port.reset();
    assert_eq!(n.port.table_usage().uft_out, 0);
    assert_eq!(n.port.state(), PortState::Paused);
    n.port.start().unwrap();
    assert_modified(&send(&n, Direction::Out, &b, 2).0);
    assert_eq!(n.port.stats().drop_not_running, 1);
    assert!(matches!(
        n.port.add_rule("nope", Direction::In, RuleSpec::new(1, Action::Allow)),
        Err(PortError::NoSuchLayer(_))
    ));
    drop(n);
    k.assert_clean();
}

#[test]
fn a_live_uft_entry_keeps_the_layer_state_it_was_built_from() {
    let k = fakekernel::scope();
    let n = net();
    let udp_t = ExpiryPolicy::default().timeout_ns(opte::engine::ExpiryClass::Udp) / NANOS_PER_SEC;
    // Outbound through the NAT and the firewall's stateful allow.
    assert_modified(&send(&n, Direction::Out, &udp(GUEST, 5000, REMOTE, 53), 0).0);
    // Keep hitting the outbound UFT entry past the UDP timeout: the LFT
    // entries (never hit themselves) stay because the UFT entry holds them.
    for t in (10..=udp_t + 30).step_by(10) {
        assert_modified(&send(&n, Direction::Out, &udp(GUEST, 5000, REMOTE, 53), t).0);
        n.port.expire(Moment(t * NANOS_PER_SEC));
    }
    assert_eq!(n.pool.lock().unwrap().len(), 2, "the NAT port is still held");
    let lfts: u32 = n
        .port
        .flow_table_stats()
        .iter()
        .filter(|(name, _)| name.starts_with("nat/") || name.starts_with("firewall/"))
        .map(|(_, s)| s.len)
        .sum();
    assert_eq!(lfts, 4, "both pairs of layer flow entries are alive");
    // So the reply still finds its way back.
    let (r, p) = send(&n, Direction::In, &udp(REMOTE, 53, NAT_IP, 1024), udp_t + 31);
    assert_modified(&r);
    let Some(L3::Ipv4(ip)) = &p.headers().l3 else { panic!() };
    assert_eq!(ip.dst, GUEST);
    drop(p);
    // Once nothing hits the flow, everything goes and the port returns.
    n.port.expire(Moment((udp_t * 10) * NANOS_PER_SEC));
    n.port.expire(Moment((udp_t * 10) * NANOS_PER_SEC));
    assert_eq!(n.pool.lock().unwrap().len(), 3);
    drop(n);
    k.assert_clean();
}

/// A port with one stateful firewall layer (LFT limit `lft_limit`): out
/// by default stateful allow, in by default deny.
fn firewall_only(lft_limit: u32) -> Port {
    firewall_port(lft_limit, false)
}

/// [`firewall_only`], choosing whether the layer keeps its flows across
/// soft rule changes.
fn firewall_port(lft_limit: u32, keep_flows: bool) -> Port {
    let cfg = PortConfig {
        name: "fw0".to_string(),
        layers: vec![LayerSpec {
            name: "firewall",
            default_in: DefaultAction::Deny,
            default_out: DefaultAction::StatefulAllow,
            lft_limit,
            keep_flows,
        }],
        uft_limit: 64,
        tcp_limit: 64,
        expiry: ExpiryPolicy::default(),
    };
    let port = Port::new(cfg, None);
    port.start().unwrap();
    port
}

fn run(port: &Port, dir: Direction, b: &FrameBuilder) -> ProcessResult {
    port.process(dir, &mut packet(b), Moment(NANOS_PER_SEC))
}

fn deny_out_to_53() -> RuleSpec {
    RuleSpec::new(1, Action::Deny).with(Predicate::DstPort(PortMatch::Exact(53)))
}

#[test]
fn a_revoked_decision_stops_its_replies_even_when_they_came_first() {
    let k = fakekernel::scope();
    let port = firewall_only(64);
    let out = udp(GUEST, 5000, PEER, 53);
    let reply = udp(PEER, 53, GUEST, 5000);
    assert_modified(&run(&port, Direction::Out, &out));
    assert_modified(&run(&port, Direction::In, &reply));
    port.add_rule("firewall", Direction::Out, deny_out_to_53()).unwrap();
    // The reply is first after the change: the decision is not re-checked
    // in the reply direction, so it still passes for now.
    assert_modified(&run(&port, Direction::In, &reply));
    // The flow's own next packet re-checks it and is denied...
    let r = run(&port, Direction::Out, &out);
    assert!(matches!(r, ProcessResult::Drop(DropReason::Denied { .. })), "{r:?}");
    // ...and the replies stop too, cached or not.
    let r = run(&port, Direction::In, &reply);
    assert!(
        matches!(r, ProcessResult::Drop(DropReason::Denied { layer: "firewall", rule: None })),
        "{r:?}"
    );
    drop(port);
    k.assert_clean();
}

/// A stateful action that, while making its state, tells another thread
/// to change the port's rules, and gives it time to try.
struct SignalsWhileDeciding {
    started: std::sync::Mutex<Option<std::sync::mpsc::Sender<()>>>,
}

struct Nothing;

impl ActionDesc for Nothing {
    fn gen_ht(&self, _: Direction) -> HdrTransform {
        HdrTransform::NONE
    }
    fn describe(&self) -> String {
        "nothing".to_string()
    }
}

impl fmt::Display for SignalsWhileDeciding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("signals-while-deciding")
    }
}

impl StatefulAction for SignalsWhileDeciding {
    fn gen_desc(
        &self,
        _: Direction,
        _: &FlowId,
        _: &mut Meta,
        _previous: Option<&Arc<dyn ActionDesc>>,
    ) -> Result<Arc<dyn ActionDesc>, ActionError> {
        if let Some(tx) = self.started.lock().unwrap().take() {
            tx.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(Arc::new(Nothing))
    }
}

#[test]
fn a_rule_change_during_a_decision_still_rechecks_it() {
    let k = fakekernel::scope();
    let port = Arc::new(firewall_only(64));
    let (tx, rx) = std::sync::mpsc::channel();
    let action = Arc::new(SignalsWhileDeciding { started: std::sync::Mutex::new(Some(tx)) });
    port.add_rule("firewall", Direction::Out, RuleSpec::new(10, Action::Stateful(action))).unwrap();
    let out = udp(GUEST, 5000, PEER, 53);
    // Another thread adds a deny rule while the stateful rule decides the
    // first packet: the change waits for the decision or lands before its
    // store, and either way the decision predates the deny rule.
    let changer = {
        let port = Arc::clone(&port);
        std::thread::spawn(move || {
            rx.recv().unwrap();
            port.add_rule("firewall", Direction::Out, deny_out_to_53()).unwrap();
        })
    };
    assert_modified(&run(&port, Direction::Out, &out));
    changer.join().unwrap();
    // So the next packet is re-checked.
    let r = run(&port, Direction::Out, &out);
    assert!(matches!(r, ProcessResult::Drop(DropReason::Denied { .. })), "{r:?}");
    drop(port);
    k.assert_clean();
}

#[test]
fn a_stateful_decision_is_stored_as_a_whole_pair_or_not_at_all() {
    let k = fakekernel::scope();
    let port = firewall_only(1);
    port.add_rule(
        "firewall",
        Direction::Out,
        RuleSpec::new(10, Action::StatefulAllow).with(Predicate::DstPort(PortMatch::Exact(53))),
    )
    .unwrap();
    // A decision, then withdrawn: its flow's entry goes at once, its
    // reply entry lazily, so the inbound table stays full for now.
    let a = udp(GUEST, 5000, PEER, 53);
    assert_modified(&run(&port, Direction::Out, &a));
    port.add_rule("firewall", Direction::Out, deny_out_to_53()).unwrap();
    assert!(matches!(run(&port, Direction::Out, &a), ProcessResult::Drop(_)));
    let d = port.dump_layer("firewall").unwrap();
    assert_eq!((d.lft_out, d.lft_in), (0, 1));
    // A new flow's reply entry does not fit: the packet is a counted
    // drop, and no half pair is left to let the flow's later packets
    // through while its replies are denied.
    let b = udp(GUEST, 5001, PEER, 80);
    for _ in 0..2 {
        let r = run(&port, Direction::Out, &b);
        assert!(matches!(r, ProcessResult::Drop(DropReason::TableFull { .. })), "{r:?}");
    }
    let d = port.dump_layer("firewall").unwrap();
    assert_eq!((d.lft_out, d.lft_in), (0, 1));
    drop(port);
    k.assert_clean();
}

#[test]
fn a_close_seen_on_the_slow_path_reclaims_both_directions() {
    let k = fakekernel::scope();
    let n = net();
    let out = |f, s, a| tcp(GUEST, 41000, PEER, 80, f, s, a);
    let inn = |f, s, a| tcp(PEER, 80, GUEST, 41000, f, s, a);
    assert_modified(&send(&n, Direction::Out, &out(SYN, 100, 0), 1).0);
    assert_eq!(n.port.dump_uft(Direction::Out).len(), 1);
    // The first inbound packet of the flow is a RST: it goes through the
    // layers (no inbound UFT entry yet) and closes the connection.
    assert_modified(&send(&n, Direction::In, &inn(RST | ACK, 0, 101), 1).0);
    assert!(n.port.dump_tcp().is_empty(), "connection state reclaimed");
    assert!(n.port.dump_uft(Direction::Out).is_empty(), "the outbound entry went too");
    assert!(n.port.dump_uft(Direction::In).is_empty(), "nothing cached for the closing packet");
    assert_eq!(n.port.stats().tcp_closed, 1);
    // A new connection on the same 5-tuple starts afresh.
    assert_modified(&send(&n, Direction::Out, &out(SYN, 9000, 0), 2).0);
    assert_eq!(n.port.dump_tcp().len(), 1);
    drop(n);
    k.assert_clean();
}

#[test]
fn an_active_tcp_connection_outlives_its_idle_timeout_in_the_tcp_table() {
    let k = fakekernel::scope();
    let n = net();
    let est = ExpiryPolicy::default().timeout_ns(opte::engine::ExpiryClass::TcpEstablished)
        / NANOS_PER_SEC;
    let out = |f, s, a| tcp(GUEST, 42000, PEER, 80, f, s, a);
    let inn = |f, s, a| tcp(PEER, 80, GUEST, 42000, f, s, a);
    assert_modified(&send(&n, Direction::Out, &out(SYN, 1, 0), 0).0);
    assert_modified(&send(&n, Direction::In, &inn(SYN | ACK, 50, 2), 0).0);
    assert_modified(&send(&n, Direction::Out, &out(ACK, 2, 51), 0).0);
    // Only UFT hits from here on, well past the established timeout.
    let step = est / 4;
    for i in 1..=8 {
        assert_modified(&send(&n, Direction::Out, &out(ACK, 2, 51), i * step).0);
        n.port.expire(Moment(i * step * NANOS_PER_SEC));
    }
    assert_eq!(n.port.dump_tcp().len(), 1, "the connection's state is still tracked");
    // A FIN now still walks the state machine to a close.
    assert_modified(&send(&n, Direction::Out, &out(FIN | ACK, 2, 51), 9 * step).0);
    assert_eq!(n.port.dump_tcp()[0].1, opte::engine::tcp_state::TcpState::FinWait1);
    drop(n);
    k.assert_clean();
}

#[test]
fn a_dropped_first_packet_leaves_no_flow_state_behind() {
    let k = fakekernel::scope();
    // Room for one outbound flow in the UFT.
    let n = net_with(1, &[1024, 1025, 1026]);
    assert_modified(&send(&n, Direction::Out, &udp(GUEST, 5000, REMOTE, 53), 1).0);
    let lft_len = |n: &Net| -> u32 {
        n.port.flow_table_stats().iter().filter(|(t, _)| t.contains('/')).map(|(_, s)| s.len).sum()
    };
    let before = lft_len(&n);
    assert_eq!(n.pool.lock().unwrap().len(), 2);
    // The second flow passes the firewall (a pair) and the NAT (a pair and
    // a port) and is then refused by the full UFT: all of that is undone.
    let (r, _) = send(&n, Direction::Out, &tcp(GUEST, 5001, REMOTE, 443, SYN, 1, 0), 2);
    assert!(matches!(r, ProcessResult::Drop(DropReason::TableFull { table: "uft_out" })), "{r:?}");
    assert_eq!(lft_len(&n), before, "no layer flow entries left");
    assert_eq!(n.pool.lock().unwrap().len(), 2, "the NAT port went back");
    assert!(n.port.dump_tcp().is_empty(), "no TCP connection started");
    // A denied packet after a stateful layer leaves nothing either.
    n.port
        .add_rule(
            "nat",
            Direction::Out,
            RuleSpec::new(1, Action::Deny).with(Predicate::IpProto(17)),
        )
        .unwrap();
    let (r, _) = send(&n, Direction::Out, &udp(GUEST, 5002, PEER, 53), 3);
    assert!(matches!(r, ProcessResult::Drop(DropReason::Denied { layer: "nat", .. })), "{r:?}");
    assert_eq!(lft_len(&n), before, "the firewall's pair was undone");
    drop(n);
    k.assert_clean();
}
