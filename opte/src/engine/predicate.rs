//! Rule predicates: conditions on a packet's headers, its body and its
//! metadata, ANDed together by a rule.
//!
//! # Theory
//!
//! A [`Predicate`] is evaluated against a [`MatchCtx`]: the headers the
//! packet layer parsed once, the message itself, and the metadata earlier
//! layers wrote. Header predicates compare one parsed field; body
//! predicates ([`Predicate::DhcpMsgType`], [`Predicate::Dhcpv6MsgType`])
//! read a few bytes of the UDP payload from the message; [`Predicate::Not`],
//! [`Predicate::Any`] and [`Predicate::All`] combine others. Evaluation
//! allocates nothing and never fails: every question has a yes or no.
//!
//! ## A packet without the header a predicate tests
//!
//! A predicate on a header the packet does not have is false:
//! `Ipv4Src` on an IPv6 or ARP packet, `SrcPort` on ICMP (an echo id is
//! not a port), `IcmpType` on ICMPv6 or TCP, `IpProto` on ARP, a
//! metadata key that was never set. [`Predicate::Not`] negates the whole
//! answer, so `Not(Ipv4Src(10.0.0.1))` is *true* for every IPv6 and ARP
//! packet. To say "IPv4, but not from 10.0.0.1", write
//! `All([EtherType(0x0800), Not(Ipv4Src(10.0.0.1))])`.
//!
//! ## Limits
//!
//! Predicates come from configuration, so their shape is bounded before a
//! rule is accepted: [`Predicate::validate`] refuses nesting deeper than
//! [`MAX_PREDICATE_DEPTH`], more than [`MAX_PREDICATE_NODES`] predicates
//! in one tree, an empty `Any` or `All`, and a port range whose low end is
//! above its high end. Validation itself descends at most one level past
//! the depth limit, so a hostile tree is refused without deep recursion.
//! [`Predicate::matches`] and `Display` carry the depth too: on a tree
//! that skipped validation they stop at the limit (the whole predicate
//! is then false, and the display shows `...`), so neither recurses
//! without bound whatever they are given.
//!
//! ## Body predicates
//!
//! DHCPv4 (RFC 2131) is recognized by UDP ports (both 67 or 68), the BOOTP
//! fixed part (236 bytes), the magic cookie 99.130.83.99, and the
//! message-type option 53 (RFC 2132 §9.6). The option walk reads the
//! message forward through a [`ChainReader`], so a body that straddles
//! blocks costs nothing extra, and it keeps one 128-byte scratch buffer on
//! the stack (for a cookie split between blocks) and nothing on the heap.
//! It reads only inside the UDP payload (bounded by both the UDP length
//! and the IP payload, never Ethernet padding), only its first
//! [`MAX_DHCP_SCAN_BYTES`] bytes, and looks at no more than
//! [`MAX_DHCP_OPTIONS`] options (pad bytes are not counted: the byte bound
//! limits them). When option 52 (RFC 2132 §9.3) says the `file` or `sname`
//! field holds options too, they are walked after the options field, in
//! the order RFC 2131 §4.1 gives, sharing the same option budget. A
//! malformed option (a length running past its area, option 53 not one
//! byte long) ends the walk with no match.
//!
//! DHCPv6 (RFC 8415) is recognized by UDP ports (both 546 or 547) and its
//! message type is the first payload byte; the payload must hold the
//! message's fixed header (4 bytes, or 34 for relay messages).
//!
//! A body predicate classifies well-formed messages. It is not a security
//! boundary against crafted ones: a sender can always put the message
//! type past the walk's bounds. A rule that must stop a guest from acting
//! as a DHCP server should match on the ports.
//!
//! ## Display
//!
//! `Display` gives the operator-facing form shown by `opteadm
//! dump-layer`: `ip4.dst=10.0.0.0/24`, `l4.dst_port=22`,
//! `dhcp.msg_type=DISCOVER`, `!(ip.proto=udp)`, `any(a, b)`, `all(a, b)`.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use opte_api::{IpCidr, Ipv4Cidr, Ipv6Cidr, MacAddr, Vni};

use super::Direction;
use super::meta::{Meta, MetaValue};
use crate::ddi::MsgBlk;
use crate::packet::error::HeaderKind;
use crate::packet::ether::ether_type;
use crate::packet::ip4::protocol;
use crate::packet::reader::{ChainReader, MAX_TAKE, Scratch};
use crate::packet::{Headers, L3, L4};

/// What a predicate looks at: one packet being classified.
pub struct MatchCtx<'a> {
    /// Which way the packet travels.
    pub dir: Direction,
    /// Its parsed headers (inner headers for an underlay frame).
    pub hdrs: &'a Headers,
    /// The message, for body predicates (bytes from `hdrs.offsets.body`).
    pub mblk: &'a MsgBlk,
    /// Metadata written by earlier layers.
    pub meta: &'a Meta,
}

/// Deepest predicate tree [`Predicate::validate`] accepts. A leaf has
/// depth 1 and `Not`, `Any` and `All` one more than their deepest child,
/// so at most seven combinators nest above a leaf.
pub const MAX_PREDICATE_DEPTH: usize = 8;

/// Most predicates (leaves and combinators) in one tree that
/// [`Predicate::validate`] accepts. This bounds the work of one
/// evaluation.
pub const MAX_PREDICATE_NODES: usize = 256;

/// How many bytes from the start of a DHCPv4 message (the UDP payload) the
/// option walk reads at most: the 576 bytes every DHCP client must accept
/// (RFC 2131 §2), which leaves 336 bytes of options after the fixed part
/// and cookie. Option 53 further in is not seen.
pub const MAX_DHCP_SCAN_BYTES: usize = 576;

/// How many DHCPv4 options (other than pad) the walk looks at before it
/// gives up without a match.
pub const MAX_DHCP_OPTIONS: usize = 64;

/// UDP ports of DHCPv4 (RFC 2131 §4.1).
pub mod dhcp_port {
    /// Servers and relay agents listen here.
    pub const SERVER: u16 = 67;
    /// Clients listen here.
    pub const CLIENT: u16 = 68;
}

/// UDP ports of DHCPv6 (RFC 8415 §7.2).
pub mod dhcpv6_port {
    /// Clients listen here.
    pub const CLIENT: u16 = 546;
    /// Servers and relay agents listen here.
    pub const SERVER: u16 = 547;
}

/// DHCPv4 message types: the value of option 53 (RFC 2132 §9.6).
pub mod dhcp_msg_type {
    /// A client looks for servers.
    pub const DISCOVER: u8 = 1;
    /// A server offers an address.
    pub const OFFER: u8 = 2;
    /// A client requests offered parameters, or renews.
    pub const REQUEST: u8 = 3;
    /// A client says the offered address is already in use.
    pub const DECLINE: u8 = 4;
    /// A server confirms the parameters.
    pub const ACK: u8 = 5;
    /// A server refuses the request.
    pub const NAK: u8 = 6;
    /// A client gives its address up.
    pub const RELEASE: u8 = 7;
    /// A client with an address asks for other parameters.
    pub const INFORM: u8 = 8;

    /// The name of a message type, as operators see it.
    pub const fn name(ty: u8) -> Option<&'static str> {
        Some(match ty {
            DISCOVER => "DISCOVER",
            OFFER => "OFFER",
            REQUEST => "REQUEST",
            DECLINE => "DECLINE",
            ACK => "ACK",
            NAK => "NAK",
            RELEASE => "RELEASE",
            INFORM => "INFORM",
            _ => return None,
        })
    }
}

/// DHCPv6 message types: the first byte of the message (RFC 8415 §7.3).
pub mod dhcpv6_msg_type {
    /// A client looks for servers.
    pub const SOLICIT: u8 = 1;
    /// A server says it is available.
    pub const ADVERTISE: u8 = 2;
    /// A client requests addresses or parameters from one server.
    pub const REQUEST: u8 = 3;
    /// A client asks whether its addresses still suit its link.
    pub const CONFIRM: u8 = 4;
    /// A client extends its leases with the server that gave them.
    pub const RENEW: u8 = 5;
    /// A client extends its leases with any server.
    pub const REBIND: u8 = 6;
    /// A server answers.
    pub const REPLY: u8 = 7;
    /// A client gives leases up.
    pub const RELEASE: u8 = 8;
    /// A client says an address is already in use.
    pub const DECLINE: u8 = 9;
    /// A server tells a client to renew or ask again.
    pub const RECONFIGURE: u8 = 10;
    /// A client asks for parameters without addresses.
    pub const INFORMATION_REQUEST: u8 = 11;
    /// A relay agent forwards a message towards servers.
    pub const RELAY_FORW: u8 = 12;
    /// A server sends a message back through a relay agent.
    pub const RELAY_REPL: u8 = 13;

    /// The name of a message type, as RFC 8415 spells it.
    pub const fn name(ty: u8) -> Option<&'static str> {
        Some(match ty {
            SOLICIT => "SOLICIT",
            ADVERTISE => "ADVERTISE",
            REQUEST => "REQUEST",
            CONFIRM => "CONFIRM",
            RENEW => "RENEW",
            REBIND => "REBIND",
            REPLY => "REPLY",
            RELEASE => "RELEASE",
            DECLINE => "DECLINE",
            RECONFIGURE => "RECONFIGURE",
            INFORMATION_REQUEST => "INFORMATION-REQUEST",
            RELAY_FORW => "RELAY-FORW",
            RELAY_REPL => "RELAY-REPL",
            _ => return None,
        })
    }
}

/// How a MAC address predicate compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MacMatch {
    /// This address.
    Exact(MacAddr),
    /// Any group address (the I/G bit set): multicast and broadcast.
    Multicast,
}

impl MacMatch {
    /// True when `mac` matches.
    pub fn matches(&self, mac: MacAddr) -> bool {
        match self {
            Self::Exact(m) => *m == mac,
            Self::Multicast => mac.is_multicast(),
        }
    }
}

impl fmt::Display for MacMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(m) => m.fmt(f),
            Self::Multicast => f.write_str("multicast"),
        }
    }
}

/// Kinds of frame, as bits: what [`Predicate::frame_kinds`] says a
/// predicate can match and [`frame_kind::of`] says a packet is.
pub mod frame_kind {
    use crate::packet::{Headers, L3};

    /// An ARP frame.
    pub const ARP: u8 = 1;
    /// An IPv4 packet.
    pub const IPV4: u8 = 2;
    /// An IPv6 packet.
    pub const IPV6: u8 = 4;
    /// A frame with no network header the parser knows.
    pub const OTHER: u8 = 8;
    /// Either IP family.
    pub const IP: u8 = IPV4 | IPV6;
    /// Every kind.
    pub const ALL: u8 = ARP | IP | OTHER;

    /// The kind of a parsed packet (by its inner network header, which
    /// is what address, protocol and port predicates read).
    pub fn of(h: &Headers) -> u8 {
        match &h.l3 {
            Some(L3::Ipv4(_)) => IPV4,
            Some(L3::Ipv6(_)) => IPV6,
            Some(L3::Arp(_)) => ARP,
            None => OTHER,
        }
    }
}

/// How an IPv4 address predicate compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ipv4Match {
    /// This address.
    Exact(Ipv4Addr),
    /// Any address inside this block.
    Prefix(Ipv4Cidr),
}

impl Ipv4Match {
    /// True when `ip` matches.
    pub fn matches(&self, ip: Ipv4Addr) -> bool {
        match self {
            Self::Exact(a) => *a == ip,
            Self::Prefix(c) => c.contains(ip),
        }
    }
}

impl fmt::Display for Ipv4Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(a) => a.fmt(f),
            Self::Prefix(c) => c.fmt(f),
        }
    }
}

/// How an IPv6 address predicate compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ipv6Match {
    /// This address.
    Exact(Ipv6Addr),
    /// Any address inside this block.
    Prefix(Ipv6Cidr),
}

impl Ipv6Match {
    /// True when `ip` matches.
    pub fn matches(&self, ip: Ipv6Addr) -> bool {
        match self {
            Self::Exact(a) => *a == ip,
            Self::Prefix(c) => c.contains(ip),
        }
    }
}

impl fmt::Display for Ipv6Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(a) => a.fmt(f),
            Self::Prefix(c) => c.fmt(f),
        }
    }
}

/// How a transport port predicate compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortMatch {
    /// This port.
    Exact(u16),
    /// Any port from `lo` to `hi`, both included. [`Predicate::validate`]
    /// refuses `lo > hi`; such a range matches nothing.
    Range { lo: u16, hi: u16 },
}

impl PortMatch {
    /// True when `port` matches.
    pub fn matches(&self, port: u16) -> bool {
        match *self {
            Self::Exact(p) => p == port,
            Self::Range { lo, hi } => lo <= port && port <= hi,
        }
    }
}

impl fmt::Display for PortMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(p) => write!(f, "{p}"),
            Self::Range { lo, hi } => write!(f, "{lo}-{hi}"),
        }
    }
}

/// One condition on a packet. A predicate on a header the packet lacks is
/// false (see the module documentation); `Not` of it is true.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Predicate {
    /// The (inner) Ethernet header's EtherType.
    EtherType(u16),
    /// The (inner) Ethernet source address.
    EtherSrc(MacMatch),
    /// The (inner) Ethernet destination address.
    EtherDst(MacMatch),
    /// The IPv4 source address (false unless the packet is IPv4).
    Ipv4Src(Ipv4Match),
    /// The IPv4 destination address (false unless the packet is IPv4).
    Ipv4Dst(Ipv4Match),
    /// The IPv6 source address (false unless the packet is IPv6).
    Ipv6Src(Ipv6Match),
    /// The IPv6 destination address (false unless the packet is IPv6).
    Ipv6Dst(Ipv6Match),
    /// The IP protocol: IPv4's protocol field, or for IPv6 the upper-layer
    /// protocol after any extension headers (false for ARP).
    IpProto(u8),
    /// The TCP or UDP source port (false for other transports).
    SrcPort(PortMatch),
    /// The TCP or UDP destination port (false for other transports).
    DstPort(PortMatch),
    /// The ICMPv4 type (false unless the packet is ICMPv4).
    IcmpType(u8),
    /// The ICMPv4 code (false unless the packet is ICMPv4).
    IcmpCode(u8),
    /// The ICMPv4 code is within `lo..=hi` (false unless ICMPv4).
    IcmpCodes { lo: u8, hi: u8 },
    /// The ICMPv6 type (false unless the packet is ICMPv6).
    Icmpv6Type(u8),
    /// The ICMPv6 code (false unless the packet is ICMPv6).
    Icmpv6Code(u8),
    /// The ICMPv6 code is within `lo..=hi` (false unless ICMPv6).
    Icmpv6Codes { lo: u8, hi: u8 },
    /// The Geneve VNI of the outer encapsulation (false for a packet
    /// without one). Only the layers before the one that removes the
    /// encapsulation see it.
    GeneveVni(Vni),
    /// The outer Geneve header carries the Oxide `external` option
    /// (traffic from or to the internet through a boundary).
    GeneveExternal,
    /// Metadata `key` is set and equal to `value` (same variant, same
    /// value).
    Meta { key: String, value: MetaValue },
    /// The inner predicate is false.
    Not(Box<Predicate>),
    /// At least one predicate is true (in order; stops at the first).
    /// Must not be empty.
    Any(Vec<Predicate>),
    /// Every predicate is true (in order; stops at the first false).
    /// Must not be empty.
    All(Vec<Predicate>),
    /// A DHCPv4 message of this type ([`dhcp_msg_type`]): IPv4, UDP with
    /// both ports 67 or 68 (client to server, server to client, relay to
    /// server), the BOOTP magic cookie, and option 53 found within
    /// [`MAX_DHCP_SCAN_BYTES`] and [`MAX_DHCP_OPTIONS`].
    DhcpMsgType(u8),
    /// A DHCPv6 message of this type ([`dhcpv6_msg_type`]): IPv6, UDP with
    /// both ports 546 or 547 (client to server, server to client, relay to
    /// server), and a payload holding the message's fixed header.
    Dhcpv6MsgType(u8),
}

/// Why [`Predicate::validate`] refused a predicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PredicateError {
    /// `Not`, `Any` and `All` nest deeper than `max` levels.
    TooDeep { max: usize },
    /// The tree holds more than `max` predicates.
    TooManyNodes { max: usize },
    /// An `Any` with no predicates (it could never match).
    EmptyAny,
    /// An `All` with no predicates (it would match everything; say so
    /// with a rule without predicates instead).
    EmptyAll,
    /// A port range whose low end is above its high end.
    EmptyPortRange { lo: u16, hi: u16 },
    /// An ICMP code range whose low end is above its high end.
    EmptyCodeRange { lo: u8, hi: u8 },
}

impl fmt::Display for PredicateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooDeep { max } => write!(f, "predicates nest deeper than {max} levels"),
            Self::TooManyNodes { max } => write!(f, "more than {max} predicates in one tree"),
            Self::EmptyAny => f.write_str("any() of no predicates can never match"),
            Self::EmptyAll => f.write_str("all() of no predicates; use a rule without predicates"),
            Self::EmptyPortRange { lo, hi } => {
                write!(f, "port range {lo}-{hi} is empty (low end above high end)")
            }
            Self::EmptyCodeRange { lo, hi } => {
                write!(f, "ICMP code range {lo}-{hi} is empty (low end above high end)")
            }
        }
    }
}

impl Predicate {
    /// The source address is inside `c` (of either family).
    pub fn src_in(c: IpCidr) -> Self {
        match c {
            IpCidr::V4(c) => Self::Ipv4Src(Ipv4Match::Prefix(c)),
            IpCidr::V6(c) => Self::Ipv6Src(Ipv6Match::Prefix(c)),
        }
    }

    /// The destination address is inside `c` (of either family).
    pub fn dst_in(c: IpCidr) -> Self {
        match c {
            IpCidr::V4(c) => Self::Ipv4Dst(Ipv4Match::Prefix(c)),
            IpCidr::V6(c) => Self::Ipv6Dst(Ipv6Match::Prefix(c)),
        }
    }

    /// The source address is `ip`.
    pub fn src_is(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Self::Ipv4Src(Ipv4Match::Exact(a)),
            IpAddr::V6(a) => Self::Ipv6Src(Ipv6Match::Exact(a)),
        }
    }

    /// The destination address is `ip`.
    pub fn dst_is(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Self::Ipv4Dst(Ipv4Match::Exact(a)),
            IpAddr::V6(a) => Self::Ipv6Dst(Ipv6Match::Exact(a)),
        }
    }

    /// Check that the predicate is well formed and within the limits (see
    /// [`PredicateError`]). Rule insertion calls this; a predicate that
    /// passes is evaluated with recursion at most [`MAX_PREDICATE_DEPTH`]
    /// deep and at most [`MAX_PREDICATE_NODES`] steps.
    pub fn validate(&self) -> Result<(), PredicateError> {
        let mut nodes = 0;
        self.check(1, &mut nodes)
    }

    /// Validate this node at `depth` (the root is 1), counting nodes.
    /// Recurses only while `depth` is within the limit; every child loop
    /// ends once the node count passes its limit.
    fn check(&self, depth: usize, nodes: &mut usize) -> Result<(), PredicateError> {
        if depth > MAX_PREDICATE_DEPTH {
            return Err(PredicateError::TooDeep { max: MAX_PREDICATE_DEPTH });
        }
        *nodes += 1;
        if *nodes > MAX_PREDICATE_NODES {
            return Err(PredicateError::TooManyNodes { max: MAX_PREDICATE_NODES });
        }
        match self {
            Self::SrcPort(PortMatch::Range { lo, hi })
            | Self::DstPort(PortMatch::Range { lo, hi })
                if lo > hi =>
            {
                Err(PredicateError::EmptyPortRange { lo: *lo, hi: *hi })
            }
            Self::IcmpCodes { lo, hi } | Self::Icmpv6Codes { lo, hi } if lo > hi => {
                Err(PredicateError::EmptyCodeRange { lo: *lo, hi: *hi })
            }
            Self::Not(p) => p.check(depth + 1, nodes),
            Self::Any(ps) | Self::All(ps) => {
                if ps.is_empty() {
                    return Err(if matches!(self, Self::Any(_)) {
                        PredicateError::EmptyAny
                    } else {
                        PredicateError::EmptyAll
                    });
                }
                ps.iter().try_for_each(|p| p.check(depth + 1, nodes))
            }
            _ => Ok(()),
        }
    }

    /// True when the packet in `ctx` satisfies the predicate.
    ///
    /// Evaluation never recurses past [`MAX_PREDICATE_DEPTH`]: should it
    /// reach a deeper node (only possible when [`Predicate::validate`] was
    /// skipped), the whole predicate is false.
    pub fn matches(&self, ctx: &MatchCtx<'_>) -> bool {
        self.eval(ctx, 1).unwrap_or(false)
    }

    /// The kinds of frame ([`frame_kind`] bits) this predicate can match
    /// at all, from what it reads: an IPv4 address or ICMP field only an
    /// IPv4 packet, a port either IP family. Conservative: a predicate
    /// that could match any frame says so. A rule index uses this to skip
    /// rules that cannot match a packet without evaluating them.
    pub fn frame_kinds(&self) -> u8 {
        self.frame_kinds_at(1)
    }

    /// The IP protocol a packet must carry for this predicate to match,
    /// if it names one: [`Predicate::IpProto`] itself, and every predicate
    /// that reads a header the parser gives only that protocol (ICMP
    /// fields need protocol 1, ICMPv6 fields 58, DHCP message types UDP);
    /// an `All` with such a node, an `Any` whose every branch names the
    /// same one. Conservative, as [`Predicate::frame_kinds`]: `None` says
    /// nothing. A rule index files a rule under this protocol.
    pub fn implied_proto(&self) -> Option<u8> {
        self.implied_proto_at(1)
    }

    fn implied_proto_at(&self, depth: usize) -> Option<u8> {
        if depth > MAX_PREDICATE_DEPTH {
            return None;
        }
        match self {
            Self::IpProto(p) => Some(*p),
            Self::IcmpType(_) | Self::IcmpCode(_) | Self::IcmpCodes { .. } => Some(protocol::ICMP),
            Self::Icmpv6Type(_) | Self::Icmpv6Code(_) | Self::Icmpv6Codes { .. } => {
                Some(protocol::ICMPV6)
            }
            Self::DhcpMsgType(_) | Self::Dhcpv6MsgType(_) => Some(protocol::UDP),
            // Every branch must agree (an empty `Any` is refused by
            // validation; unvalidated, it names nothing).
            Self::All(ps) => ps.iter().find_map(|p| p.implied_proto_at(depth + 1)),
            Self::Any(ps) => {
                let (first, rest) = ps.split_first()?;
                let p = first.implied_proto_at(depth + 1)?;
                rest.iter().all(|q| q.implied_proto_at(depth + 1) == Some(p)).then_some(p)
            }
            _ => None,
        }
    }

    fn frame_kinds_at(&self, depth: usize) -> u8 {
        use frame_kind::{ALL, ARP, IP, IPV4, IPV6, OTHER};
        if depth > MAX_PREDICATE_DEPTH {
            return ALL;
        }
        match self {
            Self::Ipv4Src(_)
            | Self::Ipv4Dst(_)
            | Self::IcmpType(_)
            | Self::IcmpCode(_)
            | Self::IcmpCodes { .. }
            | Self::DhcpMsgType(_) => IPV4,
            Self::Ipv6Src(_)
            | Self::Ipv6Dst(_)
            | Self::Icmpv6Type(_)
            | Self::Icmpv6Code(_)
            | Self::Icmpv6Codes { .. }
            | Self::Dhcpv6MsgType(_) => IPV6,
            Self::IpProto(_) | Self::SrcPort(_) | Self::DstPort(_) => IP,
            Self::Any(ps) => ps.iter().fold(0, |k, p| k | p.frame_kinds_at(depth + 1)),
            Self::All(ps) => ps.iter().fold(ALL, |k, p| k & p.frame_kinds_at(depth + 1)),
            // The parser reads the network header the EtherType names (or
            // refuses the frame); a frame without one is `OTHER`.
            Self::EtherType(ether_type::ARP) => ARP | OTHER,
            Self::EtherType(ether_type::IPV4) => IPV4 | OTHER,
            Self::EtherType(ether_type::IPV6) => IPV6 | OTHER,
            Self::EtherType(_)
            | Self::EtherSrc(_)
            | Self::EtherDst(_)
            | Self::GeneveVni(_)
            | Self::GeneveExternal
            | Self::Meta { .. }
            | Self::Not(_) => ALL,
        }
    }

    /// Evaluate this node at `depth` (the root is 1): `None` when the
    /// depth limit was reached.
    fn eval(&self, ctx: &MatchCtx<'_>, depth: usize) -> Option<bool> {
        if depth > MAX_PREDICATE_DEPTH {
            return None;
        }
        let h = ctx.hdrs;
        Some(match self {
            Self::EtherType(t) => h.eth.ether_type == *t,
            Self::EtherSrc(m) => m.matches(h.eth.src),
            Self::EtherDst(m) => m.matches(h.eth.dst),
            Self::Ipv4Src(m) => matches!(&h.l3, Some(L3::Ipv4(ip)) if m.matches(ip.src)),
            Self::Ipv4Dst(m) => matches!(&h.l3, Some(L3::Ipv4(ip)) if m.matches(ip.dst)),
            Self::Ipv6Src(m) => matches!(&h.l3, Some(L3::Ipv6(ip)) if m.matches(ip.src)),
            Self::Ipv6Dst(m) => matches!(&h.l3, Some(L3::Ipv6(ip)) if m.matches(ip.dst)),
            Self::IpProto(p) => match &h.l3 {
                Some(L3::Ipv4(ip)) => ip.proto == *p,
                Some(L3::Ipv6(ip)) => ip.proto == *p,
                Some(L3::Arp(_)) | None => false,
            },
            Self::SrcPort(m) => match &h.l4 {
                Some(L4::Tcp(t)) => m.matches(t.src_port),
                Some(L4::Udp(u)) => m.matches(u.src_port),
                _ => false,
            },
            Self::DstPort(m) => match &h.l4 {
                Some(L4::Tcp(t)) => m.matches(t.dst_port),
                Some(L4::Udp(u)) => m.matches(u.dst_port),
                _ => false,
            },
            Self::IcmpType(t) => matches!(&h.l4, Some(L4::Icmpv4(i)) if i.ty == *t),
            Self::IcmpCode(c) => matches!(&h.l4, Some(L4::Icmpv4(i)) if i.code == *c),
            Self::Icmpv6Type(t) => matches!(&h.l4, Some(L4::Icmpv6(i)) if i.ty == *t),
            Self::Icmpv6Code(c) => matches!(&h.l4, Some(L4::Icmpv6(i)) if i.code == *c),
            Self::IcmpCodes { lo, hi } => {
                matches!(&h.l4, Some(L4::Icmpv4(i)) if *lo <= i.code && i.code <= *hi)
            }
            Self::Icmpv6Codes { lo, hi } => {
                matches!(&h.l4, Some(L4::Icmpv6(i)) if *lo <= i.code && i.code <= *hi)
            }
            Self::GeneveVni(v) => matches!(&h.outer, Some(e) if e.geneve.vni == *v),
            Self::GeneveExternal => matches!(&h.outer, Some(e) if e.geneve.options.external),
            Self::Meta { key, value } => ctx.meta.get(key) == Some(value),
            Self::Not(p) => !p.eval(ctx, depth + 1)?,
            Self::Any(ps) => {
                for p in ps {
                    if p.eval(ctx, depth + 1)? {
                        return Some(true);
                    }
                }
                false
            }
            Self::All(ps) => {
                for p in ps {
                    if !p.eval(ctx, depth + 1)? {
                        return Some(false);
                    }
                }
                true
            }
            Self::DhcpMsgType(t) => dhcp_msg_type_of(ctx) == Some(*t),
            Self::Dhcpv6MsgType(t) => dhcpv6_msg_type_of(ctx) == Some(*t),
        })
    }

    /// Write the operator form of this node at `depth` (the root is 1);
    /// past [`MAX_PREDICATE_DEPTH`] a subtree shows as `...`.
    fn fmt_at(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        if depth > MAX_PREDICATE_DEPTH {
            return f.write_str("...");
        }
        match self {
            Self::EtherType(t) => match *t {
                ether_type::IPV4 => f.write_str("ether.type=ipv4"),
                ether_type::IPV6 => f.write_str("ether.type=ipv6"),
                ether_type::ARP => f.write_str("ether.type=arp"),
                t => write!(f, "ether.type=0x{t:04x}"),
            },
            Self::EtherSrc(m) => write!(f, "ether.src={m}"),
            Self::EtherDst(m) => write!(f, "ether.dst={m}"),
            Self::Ipv4Src(m) => write!(f, "ip4.src={m}"),
            Self::Ipv4Dst(m) => write!(f, "ip4.dst={m}"),
            Self::Ipv6Src(m) => write!(f, "ip6.src={m}"),
            Self::Ipv6Dst(m) => write!(f, "ip6.dst={m}"),
            Self::IpProto(p) => match *p {
                protocol::TCP => f.write_str("ip.proto=tcp"),
                protocol::UDP => f.write_str("ip.proto=udp"),
                protocol::ICMP => f.write_str("ip.proto=icmp"),
                protocol::ICMPV6 => f.write_str("ip.proto=icmp6"),
                p => write!(f, "ip.proto={p}"),
            },
            Self::SrcPort(m) => write!(f, "l4.src_port={m}"),
            Self::DstPort(m) => write!(f, "l4.dst_port={m}"),
            Self::IcmpType(t) => write!(f, "icmp.type={t}"),
            Self::IcmpCode(c) => write!(f, "icmp.code={c}"),
            Self::Icmpv6Type(t) => write!(f, "icmp6.type={t}"),
            Self::Icmpv6Code(c) => write!(f, "icmp6.code={c}"),
            Self::IcmpCodes { lo, hi } => write!(f, "icmp.code={lo}-{hi}"),
            Self::Icmpv6Codes { lo, hi } => write!(f, "icmp6.code={lo}-{hi}"),
            Self::GeneveVni(v) => write!(f, "geneve.vni={v}"),
            Self::GeneveExternal => f.write_str("geneve.external"),
            Self::Meta { key, value } => {
                write!(f, "meta.{}=", key.escape_debug())?;
                match value {
                    MetaValue::Bool(b) => write!(f, "{b}"),
                    MetaValue::U64(n) => write!(f, "{n}"),
                    MetaValue::Ip(ip) => write!(f, "{ip}"),
                    MetaValue::Str(s) => write!(f, "{s:?}"),
                }
            }
            Self::Not(p) => {
                f.write_str("!(")?;
                p.fmt_at(f, depth + 1)?;
                f.write_str(")")
            }
            Self::Any(ps) => Self::fmt_list(f, "any", ps, depth),
            Self::All(ps) => Self::fmt_list(f, "all", ps, depth),
            Self::DhcpMsgType(t) => match dhcp_msg_type::name(*t) {
                Some(n) => write!(f, "dhcp.msg_type={n}"),
                None => write!(f, "dhcp.msg_type={t}"),
            },
            Self::Dhcpv6MsgType(t) => match dhcpv6_msg_type::name(*t) {
                Some(n) => write!(f, "dhcp6.msg_type={n}"),
                None => write!(f, "dhcp6.msg_type={t}"),
            },
        }
    }

    /// Write `name(a, b, ...)` for the children of a node at `depth`.
    fn fmt_list(
        f: &mut fmt::Formatter<'_>,
        name: &str,
        ps: &[Predicate],
        depth: usize,
    ) -> fmt::Result {
        write!(f, "{name}(")?;
        for (i, p) in ps.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            p.fmt_at(f, depth + 1)?;
        }
        f.write_str(")")
    }
}

impl fmt::Display for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_at(f, 1)
    }
}

/// Length of the BOOTP fixed part before the magic cookie (RFC 2131 §2).
const BOOTP_FIXED_LEN: usize = 236;
/// Where the `sname` field starts, and its length.
const BOOTP_SNAME: (usize, usize) = (44, 64);
/// Where the `file` field starts, and its length.
const BOOTP_FILE: (usize, usize) = (108, 128);
/// The magic cookie that starts the options (RFC 2131 §3).
const DHCP_MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Option codes the walk knows (RFC 2132 §3.1, §3.2, §9.3, §9.6).
const OPT_PAD: u8 = 0;
const OPT_END: u8 = 255;
const OPT_OVERLOAD: u8 = 52;
const OPT_MSG_TYPE: u8 = 53;
/// Option 52's bits: `file` holds options, `sname` holds options.
const OVERLOAD_FILE: u8 = 1;
const OVERLOAD_SNAME: u8 = 2;
/// Fixed header of a DHCPv6 client/server message (type, transaction id)
/// and of a relay message (type, hop count, link and peer addresses).
const DHCPV6_HDR_LEN: usize = 4;
const DHCPV6_RELAY_HDR_LEN: usize = 34;

/// The packet's UDP source and destination ports and its payload's
/// absolute offset and length, the length bounded by both the UDP length
/// and the IP payload (a first fragment's UDP length may reach past it).
fn udp_payload(h: &Headers) -> Option<(u16, u16, usize, usize)> {
    let Some(L4::Udp(udp)) = &h.l4 else {
        return None;
    };
    let l4 = usize::try_from(h.offsets.l4).ok()?;
    let body = usize::try_from(h.offsets.body).ok()?;
    let udp_len = usize::from(udp.len).min(usize::try_from(h.l4_len).ok()?);
    let len = l4.checked_add(udp_len)?.checked_sub(body)?;
    Some((udp.src_port, udp.dst_port, body, len))
}

/// The message type of a DHCPv4 message, if the packet is one and option
/// 53 lies within the walk's bounds.
fn dhcp_msg_type_of(ctx: &MatchCtx<'_>) -> Option<u8> {
    if !matches!(ctx.hdrs.l3, Some(L3::Ipv4(_))) {
        return None;
    }
    let (src, dst, start, len) = udp_payload(ctx.hdrs)?;
    let is_dhcp_port = |p| p == dhcp_port::SERVER || p == dhcp_port::CLIENT;
    if !is_dhcp_port(src) || !is_dhcp_port(dst) {
        return None;
    }
    let end = start.checked_add(len.min(MAX_DHCP_SCAN_BYTES))?;
    let mut cur = BodyCursor::new(ctx.mblk, start.checked_add(BOOTP_FIXED_LEN)?, end)?;
    if cur.read::<4>()? != DHCP_MAGIC_COOKIE {
        return None;
    }
    let mut budget = MAX_DHCP_OPTIONS;
    let overload = match walk_dhcp_options(&mut cur, &mut budget) {
        OptionWalk::MsgType(t) => return Some(t),
        OptionWalk::Ended { overload } => overload,
        OptionWalk::Stopped => return None,
    };
    // RFC 2131 §4.1: the options field, then `file`, then `sname`. Only
    // the options field's option 52 counts.
    for (bit, (off, flen)) in [(OVERLOAD_FILE, BOOTP_FILE), (OVERLOAD_SNAME, BOOTP_SNAME)] {
        if overload & bit == 0 {
            continue;
        }
        let from = start.checked_add(off)?;
        let mut cur = BodyCursor::new(ctx.mblk, from, from.checked_add(flen)?.min(end))?;
        match walk_dhcp_options(&mut cur, &mut budget) {
            OptionWalk::MsgType(t) => return Some(t),
            OptionWalk::Ended { .. } => {}
            OptionWalk::Stopped => return None,
        }
    }
    None
}

/// How a walk over one DHCPv4 option area ended.
enum OptionWalk {
    /// Option 53 was found, with this value.
    MsgType(u8),
    /// The end option or the end of the area was reached without option
    /// 53; `overload` holds option 52's value (0 when absent).
    Ended { overload: u8 },
    /// The walk gave up: a malformed option, or the option budget spent.
    Stopped,
}

/// Walk the option area under `cur` looking for option 53, spending one
/// of `budget` per option other than pad, and noting option 52 (the
/// caller heeds it only from the options field proper).
fn walk_dhcp_options(cur: &mut BodyCursor<'_>, budget: &mut usize) -> OptionWalk {
    let mut overload = 0;
    // Each pass reads at least one byte of an area shorter than
    // MAX_DHCP_SCAN_BYTES, so the area ends before the loop bound does.
    for _ in 0..MAX_DHCP_SCAN_BYTES {
        if cur.remaining() == 0 {
            return OptionWalk::Ended { overload };
        }
        let Some([code]) = cur.read::<1>() else {
            return OptionWalk::Stopped;
        };
        match code {
            OPT_PAD => continue,
            OPT_END => return OptionWalk::Ended { overload },
            _ => {}
        }
        let Some(left) = budget.checked_sub(1) else {
            return OptionWalk::Stopped;
        };
        *budget = left;
        let Some([len]) = cur.read::<1>() else {
            return OptionWalk::Stopped;
        };
        match (code, len) {
            (OPT_MSG_TYPE, 1) => {
                return cur.read::<1>().map_or(OptionWalk::Stopped, |[t]| OptionWalk::MsgType(t));
            }
            (OPT_MSG_TYPE, _) => return OptionWalk::Stopped,
            (OPT_OVERLOAD, 1) => match cur.read::<1>() {
                Some([v @ 1..=3]) => overload = v,
                Some(_) => {}
                None => return OptionWalk::Stopped,
            },
            _ => {
                if cur.skip(usize::from(len)).is_none() {
                    return OptionWalk::Stopped;
                }
            }
        }
    }
    OptionWalk::Stopped
}

/// The message type of a DHCPv6 message, if the packet is one.
fn dhcpv6_msg_type_of(ctx: &MatchCtx<'_>) -> Option<u8> {
    if !matches!(ctx.hdrs.l3, Some(L3::Ipv6(_))) {
        return None;
    }
    let (src, dst, start, len) = udp_payload(ctx.hdrs)?;
    let is_dhcpv6_port = |p| p == dhcpv6_port::CLIENT || p == dhcpv6_port::SERVER;
    if !is_dhcpv6_port(src) || !is_dhcpv6_port(dst) {
        return None;
    }
    let mut ty = [0u8; 1];
    if len < DHCPV6_HDR_LEN || ctx.mblk.read_at(start, &mut ty).is_err() {
        return None;
    }
    let [ty] = ty;
    let relay = matches!(ty, dhcpv6_msg_type::RELAY_FORW | dhcpv6_msg_type::RELAY_REPL);
    if relay && len < DHCPV6_RELAY_HDR_LEN {
        return None;
    }
    Some(ty)
}

/// A forward-only reader over one area of a message, from an absolute
/// offset up to (not including) `end`. Reads past `end` or past the
/// message fail.
struct BodyCursor<'a> {
    rdr: ChainReader<'a>,
    end: usize,
    /// Gathers a read that straddles blocks.
    scratch: Scratch,
}

impl<'a> BodyCursor<'a> {
    /// A cursor at absolute offset `from` of `mblk`, ending at `end`.
    fn new(mblk: &'a MsgBlk, from: usize, end: usize) -> Option<Self> {
        let mut rdr = ChainReader::new(mblk);
        rdr.skip(from, HeaderKind::Udp).ok()?;
        Some(Self { rdr, end, scratch: [0; MAX_TAKE] })
    }

    /// Bytes left before `end`.
    fn remaining(&self) -> usize {
        self.end.saturating_sub(self.rdr.pos())
    }

    /// Read the next `N` bytes (`N` at most [`MAX_TAKE`]).
    fn read<const N: usize>(&mut self) -> Option<[u8; N]> {
        if N > self.remaining() {
            return None;
        }
        let b = self.rdr.take(N, &mut self.scratch, HeaderKind::Udp).ok()?;
        b.try_into().ok()
    }

    /// Step over the next `n` bytes.
    fn skip(&mut self, n: usize) -> Option<()> {
        if n > self.remaining() {
            return None;
        }
        self.rdr.skip(n, HeaderKind::Udp).ok()
    }
}
