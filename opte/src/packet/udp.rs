//! UDP header (RFC 768).

use super::error::{HeaderKind, ParseError};

/// The UDP port Geneve listens on (RFC 8926).
pub const GENEVE_PORT: u16 = 6081;

/// A UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpHdr {
    pub src_port: u16,
    pub dst_port: u16,
    /// Header plus payload length.
    pub len: u16,
    /// The checksum as read (0: none, IPv4 only); [`Packet::emit`](super::Packet::emit)
    /// owns it on output.
    pub csum: u16,
}

impl UdpHdr {
    /// Header length.
    pub const LEN: usize = 8;

    /// Read the header from its wire bytes.
    #[inline(always)]
    pub fn parse(b: &[u8]) -> Result<Self, ParseError> {
        let b: &[u8; Self::LEN] =
            b.try_into().map_err(|_| ParseError::Truncated(HeaderKind::Udp))?;
        let len = u16::from_be_bytes([b[4], b[5]]);
        if usize::from(len) < Self::LEN {
            return Err(ParseError::BadLength(HeaderKind::Udp));
        }
        Ok(Self {
            src_port: u16::from_be_bytes([b[0], b[1]]),
            dst_port: u16::from_be_bytes([b[2], b[3]]),
            len,
            csum: u16::from_be_bytes([b[6], b[7]]),
        })
    }

    /// Write the header's wire bytes.
    pub fn emit(&self, out: &mut [u8; Self::LEN]) {
        out[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        out[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        out[4..6].copy_from_slice(&self.len.to_be_bytes());
        out[6..8].copy_from_slice(&self.csum.to_be_bytes());
    }
}
