//! Why a packet could not be parsed or written. Each variant becomes a
//! drop counter in the port statistics, so the set stays small and each
//! names one kind of fault.

use core::fmt;

/// A header that a [`ParseError`] refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderKind {
    Ether,
    Arp,
    Ipv4,
    Ipv6,
    Ipv6Ext,
    Tcp,
    Udp,
    Icmpv4,
    Icmpv6,
    Ndp,
    Geneve,
    /// The IP header and transport ports quoted inside an ICMP error.
    IcmpEmbedded,
}

/// Why parsing a packet failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParseError {
    /// The packet ends inside this header.
    Truncated(HeaderKind),
    /// A length field disagrees with the header or the packet (IHL, total
    /// length, payload length, data offset, UDP length, option length).
    BadLength(HeaderKind),
    /// A field holds a value the protocol forbids (IP version, ARP
    /// hardware type, Geneve version, ...).
    BadValue(HeaderKind),
    /// A protocol this parser does not carry (EtherType, IP protocol on the
    /// underlay, Geneve inner protocol, VLAN tags).
    UnsupportedProtocol(HeaderKind),
    /// A Geneve option is malformed or runs past the option area.
    BadTunnelOption,
    /// A Geneve option is marked critical and its class/type is unknown.
    UnknownCriticalOption,
    /// More IPv6 extension headers than [`MAX_IPV6_EXT_HDRS`](crate::packet::MAX_IPV6_EXT_HDRS).
    TooManyExtHeaders,
    /// More NDP or Geneve options than the parser's bound.
    TooManyOptions(HeaderKind),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated(h) => write!(f, "packet truncated in {h:?} header"),
            Self::BadLength(h) => write!(f, "bad length in {h:?} header"),
            Self::BadValue(h) => write!(f, "bad field value in {h:?} header"),
            Self::UnsupportedProtocol(h) => write!(f, "unsupported protocol after {h:?} header"),
            Self::BadTunnelOption => f.write_str("malformed Geneve option"),
            Self::UnknownCriticalOption => f.write_str("unknown critical Geneve option"),
            Self::TooManyExtHeaders => f.write_str("too many IPv6 extension headers"),
            Self::TooManyOptions(h) => write!(f, "too many options in {h:?} header"),
        }
    }
}

/// Why writing a packet's headers back failed. The packet is unchanged
/// unless the variant says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmitError {
    /// A block could not be allocated (for encapsulation or to copy a
    /// shared block before writing it).
    NoMemory,
    /// A header no longer fits where it was parsed (its length changed).
    HeaderLengthChanged(HeaderKind),
    /// The operation needs a header the packet doesn't have (for example
    /// popping encapsulation from a guest frame).
    MissingHeader(HeaderKind),
    /// The packet would exceed the largest length the headers can state.
    TooLong,
    /// Encapsulation was pushed onto a packet that already has it.
    AlreadyEncapsulated,
    /// An address change of the other IP family than the packet's.
    WrongFamily,
    /// The frame lacks the IP and transport headers the underlay
    /// requires of an encapsulated frame (ARP, an unknown protocol, a
    /// later IP fragment).
    NotEncapsulable,
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoMemory => f.write_str("out of memory writing packet"),
            Self::HeaderLengthChanged(h) => write!(f, "{h:?} header changed length"),
            Self::MissingHeader(h) => write!(f, "packet has no {h:?} header"),
            Self::TooLong => f.write_str("packet too long for its headers"),
            Self::AlreadyEncapsulated => f.write_str("packet is already encapsulated"),
            Self::WrongFamily => f.write_str("address of the other IP family"),
            Self::NotEncapsulable => {
                f.write_str("frame has no IP and transport headers to encapsulate")
            }
        }
    }
}

impl From<crate::ddi::mblk::MsgBlkError> for EmitError {
    fn from(e: crate::ddi::mblk::MsgBlkError) -> Self {
        match e {
            crate::ddi::mblk::MsgBlkError::NoMemory => Self::NoMemory,
            crate::ddi::mblk::MsgBlkError::OutOfRange => Self::TooLong,
        }
    }
}
