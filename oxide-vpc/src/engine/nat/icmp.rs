//! Translation of ICMP errors about NATed flows (RFC 5508 section 4.2;
//! RFC 4443 for ICMPv6): [`IcmpErrorNat`], a packet hook.
//!
//! An error from the internet about a packet the guest sent through NAT
//! is addressed to the external address and quotes the packet as it
//! left: external source address and port. The guest must see it
//! addressed to its private address and quoting its own packet. The other
//! way, an error the guest sends about a packet that reached it through
//! NAT quotes the private destination; it must leave from the external
//! address and quote that.
//!
//! The engine cannot do this with a flow entry: an error's own flow (its
//! addresses, no ports) says nothing about the flow it quotes. So the NAT
//! layer sends ICMP errors to this hook, which looks the quoted flow up
//! among the NAT layer's live decisions (its flow tables, through
//! [`LayerFlows`]) and rewrites the packet's
//! header values in place; the engine writes them (with incremental
//! checksums for the outer IP header, the ICMP message and the quoted IP
//! header) once the layers are done. A packet a hook saw is never cached,
//! so every error is looked up afresh.
//!
//! Besides addresses and ports (or echo identifiers), the hook keeps the
//! checksum inside the quote right where the quote holds it: UDP's and
//! an ICMP echo's lie in the first 8 quoted bytes. TCP's checksum lies
//! beyond the 8 bytes the engine parses and is left as it was (no
//! receiver checks a quoted checksum).
//!
//! An inbound error to a one-to-one address (ephemeral or floating IP)
//! whose quote matches no live flow is still translated one-to-one: the
//! address is this guest's alone. One to the SNAT address that matches no
//! flow, and an outbound error that quotes no inbound flow, are dropped
//! (counted as `Handled` drops of the NAT layer).

use alloc::vec::Vec;
use core::fmt;
use core::net::IpAddr;

use alloc::sync::Arc;
use opte::engine::Direction;
use opte::engine::action::{ActionDesc, HandlePacket, HandleResult, LayerFlows};
use opte::engine::flow::FlowId;
use opte::engine::meta::Meta;
use opte::packet::checksum::{Csum, update};
use opte::packet::icmp::{icmpv4_type, icmpv6_type};
use opte::packet::{Embedded, EmbeddedL3, L3, Packet};

use super::action::{NatDesc, PortMap};

/// Why the hook drops a packet.
pub mod why {
    /// The rule sent something other than an ICMP error with a quote.
    pub const NO_QUOTE: &str = "ICMP message without a quoted packet";
    /// The quote is not of a packet this end sent.
    pub const FOREIGN_QUOTE: &str = "ICMP error quotes a packet of another address";
    /// No live translation matches the quoted flow.
    pub const NO_FLOW: &str = "ICMP error quotes no NAT flow";
}

/// How the quoted packet's transport identifies its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuotedUlp {
    /// TCP or UDP ports.
    Ports,
    /// An ICMP echo identifier.
    Echo,
    /// Nothing (another protocol, another ICMP message).
    Other,
}

/// The flow of a quoted packet, as it travelled.
#[derive(Debug, Clone, Copy)]
struct Quote {
    flow: FlowId,
    ulp: QuotedUlp,
}

impl Quote {
    fn of(e: &Embedded) -> Self {
        let (src, dst, proto, v6) = match &e.l3 {
            EmbeddedL3::Ipv4(h) => (IpAddr::V4(h.src), IpAddr::V4(h.dst), h.proto, false),
            EmbeddedL3::Ipv6(h) => (IpAddr::V6(h.src), IpAddr::V6(h.dst), h.proto, true),
        };
        let [ty, ..] = e.ulp;
        let ulp = match proto {
            6 | 17 => QuotedUlp::Ports,
            1 if !v6 && matches!(ty, icmpv4_type::ECHO_REQUEST | icmpv4_type::ECHO_REPLY) => {
                QuotedUlp::Echo
            }
            58 if v6 && matches!(ty, icmpv6_type::ECHO_REQUEST | icmpv6_type::ECHO_REPLY) => {
                QuotedUlp::Echo
            }
            _ => QuotedUlp::Other,
        };
        let (sp, dp) = match ulp {
            QuotedUlp::Ports => (e.src_port(), e.dst_port()),
            QuotedUlp::Echo => (e.echo_id(), e.echo_id()),
            QuotedUlp::Other => (0, 0),
        };
        Self { flow: FlowId::new(proto, src, dst, sp, dp), ulp }
    }
}

/// The translation of one ICMP error: the new outer address (destination
/// inbound, source outbound), and the quoted address and port to write
/// in place of the quoted source (inbound) or destination (outbound).
#[derive(Debug, Clone, Copy)]
struct Rewrite {
    outer: IpAddr,
    quoted: IpAddr,
    /// The quoted port or echo identifier (None: leave it).
    port: Option<u16>,
}

/// The ICMP error hook of one port's NAT layer.
pub struct IcmpErrorNat {
    /// The one-to-one addresses: (external, private).
    one_to_one: Vec<(IpAddr, IpAddr)>,
}

/// The live NAT translation the layer decided for `flow` seen travelling
/// `dir` (its address still configured).
fn translation(
    flows: &LayerFlows<'_>,
    dir: Direction,
    flow: &FlowId,
) -> Option<Arc<dyn ActionDesc>> {
    flows.decision(dir, flow).filter(|d| d.valid())
}

impl IcmpErrorNat {
    /// A hook knowing the port's one-to-one addresses.
    pub fn new(one_to_one: Vec<(IpAddr, IpAddr)>) -> Self {
        Self { one_to_one }
    }

    /// The one-to-one addresses it was built for.
    pub fn one_to_one(&self) -> &[(IpAddr, IpAddr)] {
        &self.one_to_one
    }

    /// An inbound error to `dst` quoting `q`.
    fn inbound(
        &self,
        flows: &LayerFlows<'_>,
        dst: IpAddr,
        q: &Quote,
    ) -> Result<Rewrite, &'static str> {
        if q.flow.src_ip() != dst {
            return Err(why::FOREIGN_QUOTE);
        }
        // The quoted packet left; its replies' flow is the mirror.
        let found = translation(flows, Direction::In, &q.flow.mirror());
        if let Some(d) = found.as_deref().and_then(NatDesc::of) {
            let port = match d.map {
                PortMap::Ports { guest, .. } | PortMap::EchoId { guest, .. } => Some(guest),
                PortMap::Keep => None,
            };
            return Ok(Rewrite { outer: d.private, quoted: d.private, port });
        }
        match self.one_to_one.iter().find(|(ext, _)| *ext == dst) {
            Some((_, private)) => Ok(Rewrite { outer: *private, quoted: *private, port: None }),
            None => Err(why::NO_FLOW),
        }
    }

    /// An outbound error from `src` (the private address) quoting `q`.
    fn outbound(
        &self,
        flows: &LayerFlows<'_>,
        src: IpAddr,
        q: &Quote,
    ) -> Result<Rewrite, &'static str> {
        if q.flow.dst_ip() != src {
            return Err(why::FOREIGN_QUOTE);
        }
        // The quoted packet came in; the flow the guest sends is its
        // mirror.
        let found = translation(flows, Direction::Out, &q.flow.mirror());
        let d = found.as_deref().and_then(NatDesc::of).ok_or(why::NO_FLOW)?;
        let port = match d.map {
            PortMap::Ports { ext, .. } | PortMap::EchoId { ext, .. } => Some(ext),
            PortMap::Keep => None,
        };
        Ok(Rewrite { outer: d.ext, quoted: d.ext, port })
    }
}

impl fmt::Display for IcmpErrorNat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("icmp-error-nat")
    }
}

impl HandlePacket for IcmpErrorNat {
    fn handle(
        &self,
        dir: Direction,
        pkt: &mut Packet,
        _meta: &mut Meta,
        flows: &LayerFlows<'_>,
    ) -> HandleResult {
        let h = pkt.headers();
        let Some(e) = h.embedded else { return HandleResult::Drop(why::NO_QUOTE) };
        let (src, dst) = match &h.l3 {
            Some(L3::Ipv4(ip)) => (IpAddr::V4(ip.src), IpAddr::V4(ip.dst)),
            Some(L3::Ipv6(ip)) => (IpAddr::V6(ip.src), IpAddr::V6(ip.dst)),
            _ => return HandleResult::Drop(why::NO_QUOTE),
        };
        let q = Quote::of(&e);
        let rw = match dir {
            Direction::In => self.inbound(flows, dst, &q),
            Direction::Out => self.outbound(flows, src, &q),
        };
        let rw = match rw {
            Ok(r) => r,
            Err(why) => return HandleResult::Drop(why),
        };
        let h = pkt.headers_mut();
        let outer_ok = match (&mut h.l3, rw.outer, dir) {
            (Some(L3::Ipv4(ip)), IpAddr::V4(a), Direction::In) => {
                ip.dst = a;
                true
            }
            (Some(L3::Ipv4(ip)), IpAddr::V4(a), Direction::Out) => {
                ip.src = a;
                true
            }
            (Some(L3::Ipv6(ip)), IpAddr::V6(a), Direction::In) => {
                ip.dst = a;
                true
            }
            (Some(L3::Ipv6(ip)), IpAddr::V6(a), Direction::Out) => {
                ip.src = a;
                true
            }
            _ => false,
        };
        let Some(quote) = h.embedded.as_mut() else { return HandleResult::Drop(why::NO_QUOTE) };
        if !outer_ok || !rewrite_quote(quote, dir, &rw, q.ulp) {
            return HandleResult::Drop(why::FOREIGN_QUOTE);
        }
        HandleResult::Continue
    }
}

/// Rewrite the quoted packet: its source (an inbound error quotes what
/// the guest sent) or its destination (an outbound error quotes what the
/// guest received), with the checksum the quote holds. False when the
/// families differ.
fn rewrite_quote(e: &mut Embedded, dir: Direction, rw: &Rewrite, ulp: QuotedUlp) -> bool {
    // What the quoted transport checksum covers of the change: the
    // address (pseudo-header: UDP, TCP, ICMPv6) and the port or id.
    let (v6, addr_delta) = match (&mut e.l3, rw.quoted) {
        (EmbeddedL3::Ipv4(ip), IpAddr::V4(a)) => {
            let field = if dir == Direction::In { &mut ip.src } else { &mut ip.dst };
            let d = octets_change(&field.octets(), &a.octets());
            *field = a;
            (false, d)
        }
        (EmbeddedL3::Ipv6(ip), IpAddr::V6(a)) => {
            let field = if dir == Direction::In { &mut ip.src } else { &mut ip.dst };
            let d = octets_change(&field.octets(), &a.octets());
            *field = a;
            (true, d)
        }
        _ => return false,
    };
    let old_port = match (ulp, dir) {
        (QuotedUlp::Ports, Direction::In) => e.src_port(),
        (QuotedUlp::Ports, Direction::Out) => e.dst_port(),
        (QuotedUlp::Echo, _) => e.echo_id(),
        (QuotedUlp::Other, _) => 0,
    };
    let new_port = match ulp {
        QuotedUlp::Other => old_port,
        _ => rw.port.unwrap_or(old_port),
    };
    match (ulp, dir) {
        (QuotedUlp::Ports, Direction::In) => e.set_src_port(new_port),
        (QuotedUlp::Ports, Direction::Out) => e.set_dst_port(new_port),
        (QuotedUlp::Echo, _) => e.set_echo_id(new_port),
        (QuotedUlp::Other, _) => {}
    }
    let proto = e.proto();
    // The quoted checksum, where the 8 quoted bytes hold one.
    let (at, pseudo) = match (ulp, proto) {
        (QuotedUlp::Ports, 17) => (6, true),
        (QuotedUlp::Echo, _) => (2, v6),
        _ => return true,
    };
    let mut delta = Csum::new();
    if new_port != old_port {
        delta.add_u16(new_port);
        delta.sub_u16(old_port);
    }
    if pseudo && let Some(d) = addr_delta {
        delta.add_sum(d);
    }
    if delta == Csum::new() {
        return true;
    }
    let Some(&[hi, lo]) = e.ulp.get(at..at + 2) else { return true };
    let old = u16::from_be_bytes([hi, lo]);
    // A zero UDP checksum over IPv4 means none: leave it.
    if proto == 17 && !v6 && old == 0 {
        return true;
    }
    let mut new = update(old, delta);
    if proto == 17 && new == 0 {
        new = 0xffff;
    }
    if let Some(w) = e.ulp.get_mut(at..at + 2) {
        w.copy_from_slice(&new.to_be_bytes());
    }
    true
}

/// The checksum change from `old` to `new` bytes (None when equal).
fn octets_change(old: &[u8], new: &[u8]) -> Option<Csum> {
    if old == new {
        return None;
    }
    let mut d = Csum::new();
    d.add_bytes(new);
    d.sub_bytes(old);
    Some(d)
}
