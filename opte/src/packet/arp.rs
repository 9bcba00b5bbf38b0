//! ARP for IPv4 over Ethernet (RFC 826): the only ARP a guest may send.

use super::error::{HeaderKind, ParseError};
use super::ether::ether_type;
use opte_api::{Ipv4Addr, MacAddr};

/// ARP operation codes.
pub mod arp_op {
    pub const REQUEST: u16 = 1;
    pub const REPLY: u16 = 2;
}

/// An ARP packet for Ethernet hardware and IPv4 protocol addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpEthIpv4 {
    pub op: u16,
    pub sha: MacAddr,
    pub spa: Ipv4Addr,
    pub tha: MacAddr,
    pub tpa: Ipv4Addr,
}

impl ArpEthIpv4 {
    /// Length on the wire.
    pub const LEN: usize = 28;
    const HTYPE_ETHERNET: u16 = 1;

    /// Read the packet, refusing other hardware or protocol types.
    pub fn parse(b: &[u8]) -> Result<Self, ParseError> {
        let b: &[u8; Self::LEN] =
            b.try_into().map_err(|_| ParseError::Truncated(HeaderKind::Arp))?;
        let htype = u16::from_be_bytes([b[0], b[1]]);
        let ptype = u16::from_be_bytes([b[2], b[3]]);
        if htype != Self::HTYPE_ETHERNET || ptype != ether_type::IPV4 {
            return Err(ParseError::UnsupportedProtocol(HeaderKind::Arp));
        }
        if b[4] != 6 || b[5] != 4 {
            return Err(ParseError::BadLength(HeaderKind::Arp));
        }
        Ok(Self {
            op: u16::from_be_bytes([b[6], b[7]]),
            sha: MacAddr::from_bytes([b[8], b[9], b[10], b[11], b[12], b[13]]),
            spa: Ipv4Addr::new(b[14], b[15], b[16], b[17]),
            tha: MacAddr::from_bytes([b[18], b[19], b[20], b[21], b[22], b[23]]),
            tpa: Ipv4Addr::new(b[24], b[25], b[26], b[27]),
        })
    }

    /// Write the packet's wire bytes.
    pub fn emit(&self, out: &mut [u8; Self::LEN]) {
        out[0..2].copy_from_slice(&Self::HTYPE_ETHERNET.to_be_bytes());
        out[2..4].copy_from_slice(&ether_type::IPV4.to_be_bytes());
        out[4] = 6;
        out[5] = 4;
        out[6..8].copy_from_slice(&self.op.to_be_bytes());
        out[8..14].copy_from_slice(&self.sha.bytes());
        out[14..18].copy_from_slice(&self.spa.octets());
        out[18..24].copy_from_slice(&self.tha.bytes());
        out[24..28].copy_from_slice(&self.tpa.octets());
    }
}
