//! The packet layer: headers read in place from an mblk chain, changed as
//! plain values, and written back.
//!
//! # Theory
//!
//! A packet arrives as a [`MsgBlk`]: a chain of blocks in which any header
//! may straddle two blocks at any byte. Parsing ([`Headers::parse_guest`],
//! [`Headers::parse_underlay`]) walks the chain once with a
//! [`reader::ChainReader`], decoding each header into a plain value struct
//! (`EtherHdr`, `Ipv4Hdr`, `TcpHdr`, ...) and recording where it lies
//! ([`Offsets`]). Nothing is copied but the header bytes being decoded,
//! and only a header that straddles blocks is gathered (into a small stack
//! buffer; counted in [`Headers::straddled`]). Parsing allocates nothing.
//!
//! The values are what the engine reads and changes. [`Packet::emit`]
//! writes them back: it reads each header's current bytes from the
//! packet, writes the new ones where they differ, and updates the
//! checksums incrementally (RFC 1624) from the difference, so a payload is
//! never re-summed. The packet's offload flags decide who owns a
//! checksum: a checksum the NIC will compute (`HCK_FULLCKSUM`,
//! `HCK_IPV4_HDRCKSUM`) is left for it, and a partial one
//! (`HCK_PARTIALCKSUM`: the field holds the pseudo-header sum) is updated
//! for pseudo-header changes only. [`Packet::compute_checksums`] computes
//! them in full instead, for paths with no offload.
//!
//! Encapsulation is pushed in front of the frame ([`Packet::push_encap`]),
//! into the first block's headroom when it has room and its data block is
//! not shared, else into one new leading block; [`Packet::pop_encap`]
//! trims it away. A block whose data is shared with another message
//! (`dupb`) is copied before any write.
//!
//! Errors are values: [`ParseError`] and [`EmitError`]. Nothing here
//! panics on packet contents.

pub mod arp;
pub mod build;
pub mod checksum;
mod emit;
pub mod error;
pub mod ether;
pub mod geneve;
pub mod icmp;
pub mod ip4;
pub mod ip6;
pub mod ndp;
mod parse;
pub mod patch;
pub mod reader;
pub mod tcp;
pub mod udp;

pub use arp::ArpEthIpv4;
pub use build::FrameBuilder;
pub use emit::{OffloadRole, OuterUdpCsum, ParseFailure};
pub use error::{EmitError, HeaderKind, ParseError};
pub use ether::EtherHdr;
pub use geneve::{GeneveHdr, GeneveOptions, Replication};
pub use icmp::{Embedded, EmbeddedL3, IcmpHdr};
pub use ip4::Ipv4Hdr;
pub use ip6::{Ipv6Ext, Ipv6ExtHdrs, Ipv6Frag, Ipv6Hdr, MAX_IPV6_EXT_HDRS};
pub use ndp::{NdpMsg, NdpOptions, PrefixInfo};
pub use patch::{HeaderPatch, PatchFrom, PatchTo};
pub use tcp::{TcpHdr, TcpOption};
pub use udp::UdpHdr;

use crate::ddi::MsgBlk;

/// The network header of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L3 {
    Ipv4(Ipv4Hdr),
    Ipv6(Ipv6Hdr),
    /// ARP stands where the IP header would (guest frames only).
    Arp(ArpEthIpv4),
}

/// The transport (upper-layer) header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L4 {
    Tcp(TcpHdr),
    Udp(UdpHdr),
    Icmpv4(IcmpHdr),
    Icmpv6(IcmpHdr),
}

impl L4 {
    /// Source and destination port (TCP, UDP), or the echo id twice (ICMP
    /// echo), else zeros.
    pub fn ports(&self) -> (u16, u16) {
        match self {
            Self::Tcp(t) => (t.src_port, t.dst_port),
            Self::Udp(u) => (u.src_port, u.dst_port),
            Self::Icmpv4(i) if i.is_v4_echo() => (i.echo_id(), i.echo_id()),
            Self::Icmpv6(i) if i.is_v6_echo() => (i.echo_id(), i.echo_id()),
            Self::Icmpv4(_) | Self::Icmpv6(_) => (0, 0),
        }
    }
}

/// The outer headers of an underlay frame: Ethernet, IPv6, UDP, Geneve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Encap {
    pub eth: EtherHdr,
    pub ip6: Ipv6Hdr,
    pub udp: UdpHdr,
    pub geneve: GeneveHdr,
}

impl Encap {
    /// The most bytes these headers take when we emit them (without
    /// IPv6 extension headers, with every Geneve option we write): what a
    /// scratch buffer for them needs.
    pub const MAX_EMIT_LEN: usize =
        EtherHdr::LEN + Ipv6Hdr::LEN + UdpHdr::LEN + GeneveHdr::LEN + GeneveOptions::MAX_WIRE_LEN;

    /// Bytes these headers occupy on the wire.
    pub fn wire_len(&self) -> usize {
        EtherHdr::LEN + self.ip6.hdr_len() + UdpHdr::LEN + self.geneve.hdr_len()
    }
}

/// Where the headers lie: absolute byte offsets from the packet's start.
/// The outer headers, when present, are at 0 (Ethernet), 14 (IPv6) and
/// after it (UDP, Geneve).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Offsets {
    /// The (inner) Ethernet header.
    pub inner_eth: u32,
    /// The IP or ARP header.
    pub l3: u32,
    /// The transport header (equal to `body` when there is none).
    pub l4: u32,
    /// The first byte after the transport header.
    pub body: u32,
    /// The IP header quoted by an ICMP error (0 when none).
    pub embedded_l3: u32,
    /// The transport bytes quoted by an ICMP error (0 when none).
    pub embedded_ulp: u32,
}

/// Every header of one packet, as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Headers {
    /// Encapsulation (underlay frames only).
    pub outer: Option<Encap>,
    /// The guest's Ethernet header (inner, on the underlay).
    pub eth: EtherHdr,
    pub l3: Option<L3>,
    /// Absent for ARP, IP fragments after the first, and (guest frames
    /// only) IP protocols the parser does not carry.
    pub l4: Option<L4>,
    /// What an ICMP error quotes.
    pub embedded: Option<Embedded>,
    /// The NDP message of an ICMPv6 NDP packet. Read-only: emission does
    /// not write it back (the gateway answers NDP with new frames).
    pub ndp: Option<NdpMsg>,
    pub offsets: Offsets,
    /// Transport bytes: from `offsets.l4` to the end of the IP payload.
    pub l4_len: u32,
    /// Headers that straddled blocks and were gathered to be read.
    pub straddled: u16,
}

impl Headers {
    /// No headers: the starting point parsing fills in.
    pub(crate) const EMPTY: Headers = Headers {
        outer: None,
        eth: EtherHdr { dst: opte_api::MacAddr::ZERO, src: opte_api::MacAddr::ZERO, ether_type: 0 },
        l3: None,
        l4: None,
        embedded: None,
        ndp: None,
        offsets: Offsets { inner_eth: 0, l3: 0, l4: 0, body: 0, embedded_l3: 0, embedded_ulp: 0 },
        l4_len: 0,
        straddled: 0,
    };
}

/// A parsed packet: the message and its headers.
#[derive(Debug)]
pub struct Packet {
    pub(crate) mblk: MsgBlk,
    pub(crate) hdrs: Headers,
    pub(crate) role: OffloadRole,
}

impl Packet {
    /// What the message's offload flags mean.
    pub fn offload_role(&self) -> OffloadRole {
        self.role
    }

    /// Say what the message's offload flags mean from here on (for
    /// example once a received frame is decapsulated and turned around).
    pub fn set_offload_role(&mut self, role: OffloadRole) {
        self.role = role;
    }

    /// The headers.
    pub fn headers(&self) -> &Headers {
        &self.hdrs
    }

    /// The headers, to change before [`Packet::emit`].
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.hdrs
    }

    /// The message.
    pub fn mblk(&self) -> &MsgBlk {
        &self.mblk
    }

    /// The message, giving up the parsed headers.
    pub fn into_mblk(self) -> MsgBlk {
        self.mblk
    }
}
