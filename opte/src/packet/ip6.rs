//! IPv6 header (RFC 8200) and the extension headers the parser walks:
//! hop-by-hop options, routing, fragment and destination options, at most
//! [`MAX_IPV6_EXT_HDRS`] of them.

use super::checksum::Csum;
use super::error::{HeaderKind, ParseError};
use super::ip4::protocol;
use opte_api::Ipv6Addr;

/// Most extension headers the parser walks before refusing the packet.
pub const MAX_IPV6_EXT_HDRS: usize = 4;

/// An IPv6 fragment header's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Frag {
    /// Offset in 8-byte units.
    pub offset: u16,
    pub more: bool,
    pub ident: u32,
}

/// One extension header. Options and routing data are not interpreted;
/// their bytes stay in the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ipv6Ext {
    /// Hop-by-hop options; `len` in bytes including the 2-byte header.
    HopByHop { len: u16 },
    /// Destination options; `len` in bytes.
    DestOpts { len: u16 },
    /// Routing header; `len` in bytes.
    Routing { len: u16, routing_type: u8, segments_left: u8 },
    /// Fragment header (8 bytes).
    Fragment(Ipv6Frag),
}

impl Ipv6Ext {
    /// The protocol number that names this header.
    pub fn protocol(&self) -> u8 {
        match self {
            Self::HopByHop { .. } => protocol::HOP_BY_HOP,
            Self::DestOpts { .. } => protocol::DEST_OPTS,
            Self::Routing { .. } => protocol::ROUTING,
            Self::Fragment(_) => protocol::FRAGMENT,
        }
    }

    /// Length on the wire in bytes.
    pub fn wire_len(&self) -> usize {
        match self {
            Self::HopByHop { len } | Self::DestOpts { len } | Self::Routing { len, .. } => {
                usize::from(*len)
            }
            Self::Fragment(_) => 8,
        }
    }

    /// True if `proto` names an extension header this parser walks.
    pub fn is_ext(proto: u8) -> bool {
        matches!(
            proto,
            protocol::HOP_BY_HOP | protocol::ROUTING | protocol::FRAGMENT | protocol::DEST_OPTS
        )
    }

    /// Write the header with `next` as its next-header value. Option areas
    /// are filled with PadN/Pad1 and routing data with zeros. Returns the
    /// length written, 0 if `out` is too short.
    pub fn emit(&self, next: u8, out: &mut [u8]) -> usize {
        let n = self.wire_len();
        let Some(out) = out.get_mut(..n) else { return 0 };
        let Some((h, rest)) = out.split_first_chunk_mut::<2>() else { return 0 };
        h[0] = next;
        h[1] = ((n / 8).saturating_sub(1)) as u8;
        match self {
            Self::HopByHop { .. } | Self::DestOpts { .. } => {
                rest.fill(0);
                // One PadN option covering the area (or Pad1 for 1 byte).
                if let Some((pad, _)) = rest.split_first_chunk_mut::<2>() {
                    pad[0] = 1;
                    pad[1] = (n - 4) as u8;
                }
            }
            Self::Routing { routing_type, segments_left, .. } => {
                rest.fill(0);
                if let Some((r, _)) = rest.split_first_chunk_mut::<2>() {
                    r[0] = *routing_type;
                    r[1] = *segments_left;
                }
            }
            Self::Fragment(f) => {
                if let Some(r) = rest.first_chunk_mut::<6>() {
                    let off = (f.offset << 3) | u16::from(f.more);
                    r[0..2].copy_from_slice(&off.to_be_bytes());
                    r[2..6].copy_from_slice(&f.ident.to_be_bytes());
                }
            }
        }
        n
    }
}

/// The extension headers of one IPv6 packet, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Ipv6ExtHdrs {
    count: u8,
    hdrs: [Option<Ipv6Ext>; MAX_IPV6_EXT_HDRS],
}

impl Ipv6ExtHdrs {
    /// Append a header, refusing more than the bound.
    pub fn push(&mut self, ext: Ipv6Ext) -> Result<(), ParseError> {
        let slot =
            self.hdrs.get_mut(usize::from(self.count)).ok_or(ParseError::TooManyExtHeaders)?;
        *slot = Some(ext);
        self.count += 1;
        Ok(())
    }

    /// The headers in wire order.
    pub fn iter(&self) -> impl Iterator<Item = &Ipv6Ext> {
        self.hdrs.iter().flatten()
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// True with no extension headers.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Total bytes of all extension headers.
    pub fn wire_len(&self) -> usize {
        self.iter().map(Ipv6Ext::wire_len).sum()
    }

    /// The fragment header, if any.
    pub fn fragment(&self) -> Option<&Ipv6Frag> {
        self.iter().find_map(|e| match e {
            Ipv6Ext::Fragment(f) => Some(f),
            _ => None,
        })
    }
}

/// An IPv6 header with its extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Hdr {
    pub traffic_class: u8,
    /// 20-bit flow label.
    pub flow_label: u32,
    /// Bytes after the fixed header (extension headers included).
    pub payload_len: u16,
    /// The fixed header's next-header field.
    pub next_hdr: u8,
    pub hop_limit: u8,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    /// The extension headers. Emission writes only the fixed header: the
    /// extension headers stay in the packet as they are.
    pub ext: Ipv6ExtHdrs,
    /// The upper-layer protocol after the extension headers.
    pub proto: u8,
}

impl Ipv6Hdr {
    /// Length of the fixed header.
    pub const LEN: usize = 40;

    /// Length of the fixed header plus extension headers.
    pub fn hdr_len(&self) -> usize {
        Self::LEN + self.ext.wire_len()
    }

    /// True for any fragment but the first: no transport header follows.
    pub fn is_later_fragment(&self) -> bool {
        self.ext.fragment().is_some_and(|f| f.offset != 0)
    }

    /// True when this packet is one fragment of a larger one. An "atomic
    /// fragment" (a fragment header with offset 0 and no more fragments)
    /// is a whole packet, processed as unfragmented (RFC 6946).
    pub fn is_fragment(&self) -> bool {
        self.ext.fragment().is_some_and(|f| f.more || f.offset != 0)
    }

    /// A header with every field zero (the starting point for
    /// [`Ipv6Hdr::read_fixed`]).
    pub const EMPTY: Self = Self {
        traffic_class: 0,
        flow_label: 0,
        payload_len: 0,
        next_hdr: 0,
        hop_limit: 0,
        src: Ipv6Addr::UNSPECIFIED,
        dst: Ipv6Addr::UNSPECIFIED,
        ext: Ipv6ExtHdrs { count: 0, hdrs: [None; MAX_IPV6_EXT_HDRS] },
        proto: 0,
    };

    /// Read the fixed header; the caller walks extension headers next
    /// (starting from `next_hdr`) and fills `ext` and `proto`.
    pub fn parse_fixed(b: &[u8]) -> Result<Self, ParseError> {
        let mut h = Self::EMPTY;
        h.read_fixed(b)?;
        Ok(h)
    }

    /// Read the fixed header into `self` in place; `ext` is emptied and
    /// `proto` set to the fixed header's next header.
    #[inline(always)]
    pub fn read_fixed(&mut self, b: &[u8]) -> Result<(), ParseError> {
        let b: &[u8; Self::LEN] =
            b.try_into().map_err(|_| ParseError::Truncated(HeaderKind::Ipv6))?;
        if b[0] >> 4 != 6 {
            return Err(ParseError::BadValue(HeaderKind::Ipv6));
        }
        let vtf = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let (Some(src), Some(dst)) = (b.get(8..24), b.get(24..40)) else {
            return Err(ParseError::Truncated(HeaderKind::Ipv6));
        };
        let src: [u8; 16] = src.try_into().map_err(|_| ParseError::Truncated(HeaderKind::Ipv6))?;
        let dst: [u8; 16] = dst.try_into().map_err(|_| ParseError::Truncated(HeaderKind::Ipv6))?;
        self.traffic_class = (vtf >> 20) as u8;
        self.flow_label = vtf & 0x000f_ffff;
        self.payload_len = u16::from_be_bytes([b[4], b[5]]);
        self.next_hdr = b[6];
        self.hop_limit = b[7];
        self.src = Ipv6Addr::from(src);
        self.dst = Ipv6Addr::from(dst);
        self.ext.count = 0;
        self.proto = b[6];
        Ok(())
    }

    /// Read one extension header's first 8 bytes (all a fragment header
    /// has, the minimum of the others) and return it with its next header.
    pub fn parse_ext(kind: u8, b: &[u8]) -> Result<(Ipv6Ext, u8), ParseError> {
        let b: &[u8; 8] = b.try_into().map_err(|_| ParseError::Truncated(HeaderKind::Ipv6Ext))?;
        let next = b[0];
        let len = (u16::from(b[1]) + 1) * 8;
        let ext = match kind {
            protocol::HOP_BY_HOP => Ipv6Ext::HopByHop { len },
            protocol::DEST_OPTS => Ipv6Ext::DestOpts { len },
            protocol::ROUTING => Ipv6Ext::Routing { len, routing_type: b[2], segments_left: b[3] },
            protocol::FRAGMENT => {
                let off = u16::from_be_bytes([b[2], b[3]]);
                Ipv6Ext::Fragment(Ipv6Frag {
                    offset: off >> 3,
                    more: off & 1 != 0,
                    ident: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
                })
            }
            _ => return Err(ParseError::UnsupportedProtocol(HeaderKind::Ipv6Ext)),
        };
        Ok((ext, next))
    }

    /// Write the fixed header (not the extension headers).
    pub fn emit_fixed(&self, out: &mut [u8; Self::LEN]) {
        let vtf =
            (6u32 << 28) | (u32::from(self.traffic_class) << 20) | (self.flow_label & 0xf_ffff);
        out[0..4].copy_from_slice(&vtf.to_be_bytes());
        out[4..6].copy_from_slice(&self.payload_len.to_be_bytes());
        out[6] = self.next_hdr;
        out[7] = self.hop_limit;
        out[8..24].copy_from_slice(&self.src.octets());
        out[24..40].copy_from_slice(&self.dst.octets());
    }

    /// Write the fixed header and the extension headers; returns the
    /// length written, 0 if `out` is too short.
    pub fn emit(&self, out: &mut [u8]) -> usize {
        let Some((fixed, mut rest)) = out.split_first_chunk_mut::<{ Self::LEN }>() else {
            return 0;
        };
        self.emit_fixed(fixed);
        let mut n = Self::LEN;
        let mut it = self.ext.iter().peekable();
        while let Some(e) = it.next() {
            let next = it.peek().map_or(self.proto, |n| n.protocol());
            let w = e.emit(next, rest);
            if w == 0 {
                return 0;
            }
            let Some(r) = core::mem::take(&mut rest).get_mut(w..) else { return 0 };
            rest = r;
            n += w;
        }
        n
    }

    /// The transport pseudo-header sum (RFC 8200 8.1) for `l4_len` bytes.
    pub fn pseudo_sum(&self, l4_len: usize) -> Csum {
        let mut c = Csum::new();
        c.add_bytes(&self.src.octets());
        c.add_bytes(&self.dst.octets());
        c.add_u32(l4_len as u32);
        c.add_u16(u16::from(self.proto));
        c
    }
}
