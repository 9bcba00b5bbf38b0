//! IPv4 header (RFC 791) with options.

use super::checksum::Csum;
use super::error::{HeaderKind, ParseError};
use opte_api::Ipv4Addr;

/// IP protocol numbers the parser knows (shared by IPv4 and IPv6).
pub mod protocol {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
    /// IPv6 extension headers.
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const NO_NEXT_HEADER: u8 = 59;
    pub const DEST_OPTS: u8 = 60;
}

/// Longest IPv4 options area (IHL 15).
pub const MAX_IPV4_OPTIONS: usize = 40;

/// An IPv4 header. `options` holds the raw option bytes verbatim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Hdr {
    /// DSCP and ECN (the old TOS byte).
    pub tos: u8,
    pub total_len: u16,
    pub ident: u16,
    /// Flags (DF 0x4000, MF 0x2000) and fragment offset in 8-byte units.
    pub flags_frag: u16,
    pub ttl: u8,
    pub proto: u8,
    /// The header checksum as read; [`Packet::emit`](super::Packet::emit)
    /// owns it on output.
    pub csum: u16,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub opt_len: u8,
    pub options: [u8; MAX_IPV4_OPTIONS],
}

impl Ipv4Hdr {
    /// Length of the header without options.
    pub const MIN_LEN: usize = 20;
    /// Don't Fragment.
    pub const DF: u16 = 0x4000;
    /// More Fragments.
    pub const MF: u16 = 0x2000;

    /// Header length including options.
    #[inline(always)]
    pub fn hdr_len(&self) -> usize {
        Self::MIN_LEN + usize::from(self.opt_len)
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> usize {
        usize::from(self.flags_frag & 0x1fff) * 8
    }

    /// True when this packet is one fragment of a larger one.
    pub fn is_fragment(&self) -> bool {
        self.flags_frag & (Self::MF | 0x1fff) != 0
    }

    /// True for any fragment but the first: no transport header follows.
    pub fn is_later_fragment(&self) -> bool {
        self.flags_frag & 0x1fff != 0
    }

    /// The option bytes.
    pub fn options(&self) -> &[u8] {
        self.options.get(..usize::from(self.opt_len)).unwrap_or(&[])
    }

    /// A header with every field zero (the starting point for
    /// [`Ipv4Hdr::read_fixed`]).
    pub const EMPTY: Self = Self {
        tos: 0,
        total_len: 0,
        ident: 0,
        flags_frag: 0,
        ttl: 0,
        proto: 0,
        csum: 0,
        src: Ipv4Addr::UNSPECIFIED,
        dst: Ipv4Addr::UNSPECIFIED,
        opt_len: 0,
        options: [0; MAX_IPV4_OPTIONS],
    };

    /// Read the fixed 20 bytes. Returns the header (options empty) and the
    /// options length to read next.
    pub fn parse_fixed(b: &[u8]) -> Result<(Self, usize), ParseError> {
        let mut h = Self::EMPTY;
        let opt_len = h.read_fixed(b)?;
        Ok((h, opt_len))
    }

    /// Read the fixed 20 bytes into `self` in place (options untouched);
    /// returns the options length to read next.
    #[inline(always)]
    pub fn read_fixed(&mut self, b: &[u8]) -> Result<usize, ParseError> {
        let b: &[u8; Self::MIN_LEN] =
            b.try_into().map_err(|_| ParseError::Truncated(HeaderKind::Ipv4))?;
        if b[0] >> 4 != 4 {
            return Err(ParseError::BadValue(HeaderKind::Ipv4));
        }
        let ihl = usize::from(b[0] & 0x0f) * 4;
        if ihl < Self::MIN_LEN {
            return Err(ParseError::BadLength(HeaderKind::Ipv4));
        }
        let total_len = u16::from_be_bytes([b[2], b[3]]);
        if usize::from(total_len) < ihl {
            return Err(ParseError::BadLength(HeaderKind::Ipv4));
        }
        self.tos = b[1];
        self.total_len = total_len;
        self.ident = u16::from_be_bytes([b[4], b[5]]);
        self.flags_frag = u16::from_be_bytes([b[6], b[7]]);
        self.ttl = b[8];
        self.proto = b[9];
        self.csum = u16::from_be_bytes([b[10], b[11]]);
        self.src = Ipv4Addr::new(b[12], b[13], b[14], b[15]);
        self.dst = Ipv4Addr::new(b[16], b[17], b[18], b[19]);
        self.opt_len = 0;
        Ok(ihl - Self::MIN_LEN)
    }

    /// Attach the option bytes read after the fixed header.
    pub fn set_options(&mut self, opts: &[u8]) -> Result<(), ParseError> {
        let dst =
            self.options.get_mut(..opts.len()).ok_or(ParseError::BadLength(HeaderKind::Ipv4))?;
        dst.copy_from_slice(opts);
        self.opt_len = opts.len() as u8;
        Ok(())
    }

    /// Read a whole header (fixed part and options) from contiguous bytes.
    pub fn parse(b: &[u8]) -> Result<Self, ParseError> {
        let fixed = b.get(..Self::MIN_LEN).ok_or(ParseError::Truncated(HeaderKind::Ipv4))?;
        let (mut hdr, opt_len) = Self::parse_fixed(fixed)?;
        let opts = b
            .get(Self::MIN_LEN..Self::MIN_LEN + opt_len)
            .ok_or(ParseError::Truncated(HeaderKind::Ipv4))?;
        hdr.set_options(opts)?;
        Ok(hdr)
    }

    /// Write the header (with options and the `csum` field as it stands)
    /// into `out`, returning its length.
    pub fn emit(&self, out: &mut [u8]) -> usize {
        let len = self.hdr_len();
        let Some(out) = out.get_mut(..len) else { return 0 };
        let Some((fixed, opts)) = out.split_first_chunk_mut::<{ Self::MIN_LEN }>() else {
            return 0;
        };
        fixed[0] = 0x40 | (len / 4) as u8;
        fixed[1] = self.tos;
        fixed[2..4].copy_from_slice(&self.total_len.to_be_bytes());
        fixed[4..6].copy_from_slice(&self.ident.to_be_bytes());
        fixed[6..8].copy_from_slice(&self.flags_frag.to_be_bytes());
        fixed[8] = self.ttl;
        fixed[9] = self.proto;
        fixed[10..12].copy_from_slice(&self.csum.to_be_bytes());
        fixed[12..16].copy_from_slice(&self.src.octets());
        fixed[16..20].copy_from_slice(&self.dst.octets());
        opts.copy_from_slice(self.options());
        len
    }

    /// The header checksum of these fields (computed, not the stored one).
    pub fn compute_csum(&self) -> u16 {
        let mut buf = [0u8; Self::MIN_LEN + MAX_IPV4_OPTIONS];
        let mut h = *self;
        h.csum = 0;
        let n = h.emit(&mut buf);
        let mut c = Csum::new();
        c.add_bytes(buf.get(..n).unwrap_or(&[]));
        c.finish()
    }

    /// The transport pseudo-header sum (RFC 793/768) for `l4_len` bytes.
    pub fn pseudo_sum(&self, l4_len: usize) -> Csum {
        let mut c = Csum::new();
        c.add_u32(u32::from(self.src));
        c.add_u32(u32::from(self.dst));
        c.add_u16(u16::from(self.proto));
        c.add_u32(l4_len as u32);
        c
    }
}
