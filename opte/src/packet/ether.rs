//! Ethernet II header.

use super::error::{HeaderKind, ParseError};
use opte_api::MacAddr;

/// EtherType values the parser knows.
pub mod ether_type {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const IPV6: u16 = 0x86dd;
    /// 802.1Q VLAN tag (not carried: guests and the underlay are untagged).
    pub const VLAN: u16 = 0x8100;
    /// Geneve protocol type for an encapsulated Ethernet frame.
    pub const TRANSPARENT_ETHERNET_BRIDGING: u16 = 0x6558;
}

/// An Ethernet II header: destination, source, EtherType.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EtherHdr {
    pub dst: MacAddr,
    pub src: MacAddr,
    pub ether_type: u16,
}

impl EtherHdr {
    /// Header length on the wire.
    pub const LEN: usize = 14;

    /// Read the header from its wire bytes.
    #[inline(always)]
    pub fn parse(b: &[u8]) -> Result<Self, ParseError> {
        let b: &[u8; Self::LEN] =
            b.try_into().map_err(|_| ParseError::Truncated(HeaderKind::Ether))?;
        Ok(Self {
            dst: MacAddr::from_bytes([b[0], b[1], b[2], b[3], b[4], b[5]]),
            src: MacAddr::from_bytes([b[6], b[7], b[8], b[9], b[10], b[11]]),
            ether_type: u16::from_be_bytes([b[12], b[13]]),
        })
    }

    /// Write the header's wire bytes.
    #[inline]
    pub fn emit(&self, out: &mut [u8; Self::LEN]) {
        let (dst, rest) = out.split_at_mut(6);
        let (src, ty) = rest.split_at_mut(6);
        dst.copy_from_slice(&self.dst.bytes());
        src.copy_from_slice(&self.src.bytes());
        ty.copy_from_slice(&self.ether_type.to_be_bytes());
    }
}
