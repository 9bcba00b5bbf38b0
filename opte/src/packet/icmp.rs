//! ICMPv4 (RFC 792) and ICMPv6 (RFC 4443) headers, and the IP header and
//! transport ports an ICMP error quotes from the packet that caused it.
//!
//! Both families share the 8-byte header layout: type, code, checksum and
//! four type-specific bytes (echo id and sequence; MTU; pointer; unused).

use super::error::{HeaderKind, ParseError};
use super::ip4::Ipv4Hdr;
use super::ip6::Ipv6Hdr;

/// ICMPv4 message types.
pub mod icmpv4_type {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACH: u8 = 3;
    pub const SOURCE_QUENCH: u8 = 4;
    pub const REDIRECT: u8 = 5;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAM_PROBLEM: u8 = 12;
}

/// ICMPv6 message types.
pub mod icmpv6_type {
    pub const DEST_UNREACH: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAM_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const ROUTER_SOLICIT: u8 = 133;
    pub const ROUTER_ADVERT: u8 = 134;
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    pub const NEIGHBOR_ADVERT: u8 = 136;
}

/// An ICMPv4 or ICMPv6 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IcmpHdr {
    pub ty: u8,
    pub code: u8,
    /// The checksum as read; [`Packet::emit`](super::Packet::emit) owns it
    /// on output.
    pub csum: u16,
    /// The four type-specific bytes.
    pub rest: [u8; 4],
}

impl IcmpHdr {
    /// Header length.
    pub const LEN: usize = 8;

    /// Read the header (`hdr` names the family for errors).
    #[inline(always)]
    pub fn parse(b: &[u8], hdr: HeaderKind) -> Result<Self, ParseError> {
        let b: &[u8; Self::LEN] = b.try_into().map_err(|_| ParseError::Truncated(hdr))?;
        Ok(Self {
            ty: b[0],
            code: b[1],
            csum: u16::from_be_bytes([b[2], b[3]]),
            rest: [b[4], b[5], b[6], b[7]],
        })
    }

    /// Write the header's wire bytes.
    pub fn emit(&self, out: &mut [u8; Self::LEN]) {
        out[0] = self.ty;
        out[1] = self.code;
        out[2..4].copy_from_slice(&self.csum.to_be_bytes());
        out[4..8].copy_from_slice(&self.rest);
    }

    /// Echo identifier (echo request/reply only).
    pub fn echo_id(&self) -> u16 {
        u16::from_be_bytes([self.rest[0], self.rest[1]])
    }

    /// Echo sequence number (echo request/reply only).
    pub fn echo_seq(&self) -> u16 {
        u16::from_be_bytes([self.rest[2], self.rest[3]])
    }

    /// Set the echo identifier.
    pub fn set_echo_id(&mut self, id: u16) {
        let [a, b] = id.to_be_bytes();
        self.rest[0] = a;
        self.rest[1] = b;
    }

    /// True for ICMPv4 echo request or reply.
    pub fn is_v4_echo(&self) -> bool {
        matches!(self.ty, icmpv4_type::ECHO_REQUEST | icmpv4_type::ECHO_REPLY)
    }

    /// True for ICMPv6 echo request or reply.
    pub fn is_v6_echo(&self) -> bool {
        matches!(self.ty, icmpv6_type::ECHO_REQUEST | icmpv6_type::ECHO_REPLY)
    }

    /// True for ICMPv4 messages that quote the offending packet.
    pub fn is_v4_error(&self) -> bool {
        use icmpv4_type::*;
        matches!(self.ty, DEST_UNREACH | SOURCE_QUENCH | REDIRECT | TIME_EXCEEDED | PARAM_PROBLEM)
    }

    /// True for ICMPv6 messages that quote the offending packet.
    pub fn is_v6_error(&self) -> bool {
        use icmpv6_type::*;
        matches!(self.ty, DEST_UNREACH | PACKET_TOO_BIG | TIME_EXCEEDED | PARAM_PROBLEM)
    }
}

/// The IP header quoted inside an ICMP error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmbeddedL3 {
    Ipv4(Ipv4Hdr),
    Ipv6(Ipv6Hdr),
}

/// What an ICMP error quotes: the offending packet's IP header and the
/// first 8 bytes of its transport header (ports, or ICMP echo id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Embedded {
    pub l3: EmbeddedL3,
    /// The first 8 bytes of the quoted transport header.
    pub ulp: [u8; 8],
}

impl Embedded {
    /// Length of the quoted ULP bytes the parser requires.
    pub const ULP_LEN: usize = 8;

    /// The quoted transport protocol.
    pub fn proto(&self) -> u8 {
        match &self.l3 {
            EmbeddedL3::Ipv4(h) => h.proto,
            EmbeddedL3::Ipv6(h) => h.proto,
        }
    }

    /// Source port of a quoted TCP or UDP header (the first two bytes).
    pub fn src_port(&self) -> u16 {
        u16::from_be_bytes([self.ulp[0], self.ulp[1]])
    }

    /// Destination port of a quoted TCP or UDP header.
    pub fn dst_port(&self) -> u16 {
        u16::from_be_bytes([self.ulp[2], self.ulp[3]])
    }

    /// Set the quoted source port.
    pub fn set_src_port(&mut self, p: u16) {
        let [a, b] = p.to_be_bytes();
        self.ulp[0] = a;
        self.ulp[1] = b;
    }

    /// Set the quoted destination port.
    pub fn set_dst_port(&mut self, p: u16) {
        let [a, b] = p.to_be_bytes();
        self.ulp[2] = a;
        self.ulp[3] = b;
    }

    /// Echo id of a quoted ICMP echo (bytes 4..6).
    pub fn echo_id(&self) -> u16 {
        u16::from_be_bytes([self.ulp[4], self.ulp[5]])
    }

    /// Set the echo id of a quoted ICMP echo.
    pub fn set_echo_id(&mut self, id: u16) {
        let [a, b] = id.to_be_bytes();
        self.ulp[4] = a;
        self.ulp[5] = b;
    }
}
