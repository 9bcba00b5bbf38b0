//! Neighbor Discovery (RFC 4861) messages carried in ICMPv6: router
//! solicitation and advertisement, neighbor solicitation and
//! advertisement, with the options the gateway uses (source and target
//! link-layer address, prefix information, MTU). Other options are
//! skipped and counted. A zero-length option makes the message invalid
//! (RFC 4861 4.6), and at most [`MAX_NDP_OPTIONS`] are walked.

use super::error::{HeaderKind, ParseError};
use super::icmp::icmpv6_type;
use opte_api::{Ipv6Addr, MacAddr};

/// Most NDP options walked in one message.
pub const MAX_NDP_OPTIONS: usize = 16;

/// NDP option types.
pub mod ndp_opt {
    pub const SRC_LLA: u8 = 1;
    pub const TGT_LLA: u8 = 2;
    pub const PREFIX_INFO: u8 = 3;
    pub const MTU: u8 = 5;
}

/// Router advertisement flag: addresses come from DHCPv6.
pub const RA_MANAGED: u8 = 0x80;
/// Router advertisement flag: other configuration comes from DHCPv6.
pub const RA_OTHER: u8 = 0x40;
/// Neighbor advertisement flag: the sender is a router.
pub const NA_ROUTER: u8 = 0x80;
/// Neighbor advertisement flag: sent in response to a solicitation.
pub const NA_SOLICITED: u8 = 0x40;
/// Neighbor advertisement flag: override an existing cache entry.
pub const NA_OVERRIDE: u8 = 0x20;

/// The Prefix Information option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrefixInfo {
    pub prefix_len: u8,
    /// L (0x80) and A (0x40) flags.
    pub flags: u8,
    pub valid_lifetime: u32,
    pub preferred_lifetime: u32,
    pub prefix: Ipv6Addr,
}

/// The options of one NDP message that the parser interprets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NdpOptions {
    pub src_lla: Option<MacAddr>,
    pub tgt_lla: Option<MacAddr>,
    pub mtu: Option<u32>,
    pub prefix: Option<PrefixInfo>,
    /// Options of other types (or repeats) that were skipped.
    pub skipped: u8,
}

/// An NDP message (the part after the ICMPv6 type, code and checksum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NdpMsg {
    RouterSolicit {
        opts: NdpOptions,
    },
    RouterAdvert {
        cur_hop_limit: u8,
        /// M (0x80) and O (0x40) flags.
        flags: u8,
        router_lifetime: u16,
        reachable_time: u32,
        retrans_timer: u32,
        opts: NdpOptions,
    },
    NeighborSolicit {
        target: Ipv6Addr,
        opts: NdpOptions,
    },
    NeighborAdvert {
        /// R (0x80), S (0x40) and O (0x20) flags.
        flags: u8,
        target: Ipv6Addr,
        opts: NdpOptions,
    },
}

impl NdpMsg {
    /// True if an ICMPv6 type is one of the NDP messages parsed here.
    pub fn is_ndp(ty: u8) -> bool {
        (icmpv6_type::ROUTER_SOLICIT..=icmpv6_type::NEIGHBOR_ADVERT).contains(&ty)
    }

    /// Bytes of message-specific data between the ICMPv6 header and the
    /// options, for an NDP type.
    pub fn fixed_len(ty: u8) -> usize {
        match ty {
            icmpv6_type::ROUTER_ADVERT => 8,
            icmpv6_type::NEIGHBOR_SOLICIT | icmpv6_type::NEIGHBOR_ADVERT => 16,
            _ => 0,
        }
    }

    /// The ICMPv6 type.
    pub fn icmp_type(&self) -> u8 {
        match self {
            Self::RouterSolicit { .. } => icmpv6_type::ROUTER_SOLICIT,
            Self::RouterAdvert { .. } => icmpv6_type::ROUTER_ADVERT,
            Self::NeighborSolicit { .. } => icmpv6_type::NEIGHBOR_SOLICIT,
            Self::NeighborAdvert { .. } => icmpv6_type::NEIGHBOR_ADVERT,
        }
    }

    /// The options.
    pub fn options(&self) -> &NdpOptions {
        match self {
            Self::RouterSolicit { opts }
            | Self::RouterAdvert { opts, .. }
            | Self::NeighborSolicit { opts, .. }
            | Self::NeighborAdvert { opts, .. } => opts,
        }
    }

    /// Build the message from the ICMPv6 header's four type-specific
    /// bytes and the fixed data after it (`fixed_len(ty)` bytes); options
    /// are added with [`NdpOptions::add`].
    pub fn parse_fixed(ty: u8, rest: [u8; 4], fixed: &[u8]) -> Result<Self, ParseError> {
        let trunc = ParseError::Truncated(HeaderKind::Ndp);
        let msg = match ty {
            icmpv6_type::ROUTER_SOLICIT => Self::RouterSolicit { opts: NdpOptions::default() },
            icmpv6_type::ROUTER_ADVERT => {
                let f: &[u8; 8] = fixed.try_into().map_err(|_| trunc)?;
                Self::RouterAdvert {
                    cur_hop_limit: rest[0],
                    flags: rest[1],
                    router_lifetime: u16::from_be_bytes([rest[2], rest[3]]),
                    reachable_time: u32::from_be_bytes([f[0], f[1], f[2], f[3]]),
                    retrans_timer: u32::from_be_bytes([f[4], f[5], f[6], f[7]]),
                    opts: NdpOptions::default(),
                }
            }
            icmpv6_type::NEIGHBOR_SOLICIT | icmpv6_type::NEIGHBOR_ADVERT => {
                let f: &[u8; 16] = fixed.try_into().map_err(|_| trunc)?;
                let target = Ipv6Addr::from(*f);
                if ty == icmpv6_type::NEIGHBOR_SOLICIT {
                    Self::NeighborSolicit { target, opts: NdpOptions::default() }
                } else {
                    Self::NeighborAdvert { flags: rest[0], target, opts: NdpOptions::default() }
                }
            }
            _ => return Err(ParseError::UnsupportedProtocol(HeaderKind::Ndp)),
        };
        Ok(msg)
    }

    /// Mutable access to the options.
    pub fn options_mut(&mut self) -> &mut NdpOptions {
        match self {
            Self::RouterSolicit { opts }
            | Self::RouterAdvert { opts, .. }
            | Self::NeighborSolicit { opts, .. }
            | Self::NeighborAdvert { opts, .. } => opts,
        }
    }

    /// The ICMPv6 header's four type-specific bytes for this message.
    pub fn icmp_rest(&self) -> [u8; 4] {
        match self {
            Self::RouterAdvert { cur_hop_limit, flags, router_lifetime, .. } => {
                let [a, b] = router_lifetime.to_be_bytes();
                [*cur_hop_limit, *flags, a, b]
            }
            Self::NeighborAdvert { flags, .. } => [*flags, 0, 0, 0],
            _ => [0; 4],
        }
    }

    /// Write the fixed data and options after the ICMPv6 header. Returns
    /// the length written, 0 if `out` is too short.
    pub fn emit_body(&self, out: &mut [u8]) -> usize {
        let mut n = 0;
        match self {
            Self::RouterAdvert { reachable_time, retrans_timer, .. } => {
                let Some(f) = out.get_mut(..8) else { return 0 };
                f[..4].copy_from_slice(&reachable_time.to_be_bytes());
                f[4..].copy_from_slice(&retrans_timer.to_be_bytes());
                n = 8;
            }
            Self::NeighborSolicit { target, .. } | Self::NeighborAdvert { target, .. } => {
                let Some(f) = out.get_mut(..16) else { return 0 };
                f.copy_from_slice(&target.octets());
                n = 16;
            }
            Self::RouterSolicit { .. } => {}
        }
        let Some(rest) = out.get_mut(n..) else { return 0 };
        match self.options().emit(rest) {
            Some(w) => n + w,
            None => 0,
        }
    }
}

impl NdpOptions {
    /// Wire length of the interpreted options.
    pub fn wire_len(&self) -> usize {
        8 * (usize::from(self.src_lla.is_some())
            + usize::from(self.tgt_lla.is_some())
            + usize::from(self.mtu.is_some()))
            + 32 * usize::from(self.prefix.is_some())
    }

    /// Record one option given its type and its bytes after the 2-byte
    /// type/length header (`len*8 - 2` bytes).
    pub fn add(&mut self, ty: u8, body: &[u8]) -> Result<(), ParseError> {
        let bad = ParseError::BadLength(HeaderKind::Ndp);
        match ty {
            ndp_opt::SRC_LLA | ndp_opt::TGT_LLA if self.lla(ty).is_none() => {
                // Ethernet: the address fills the first 6 bytes of an
                // 8-byte option.
                let mac: &[u8; 6] = body.try_into().map_err(|_| bad)?;
                let mac = Some(MacAddr::from_bytes(*mac));
                if ty == ndp_opt::SRC_LLA {
                    self.src_lla = mac;
                } else {
                    self.tgt_lla = mac;
                }
            }
            ndp_opt::MTU if self.mtu.is_none() => {
                let b: &[u8; 6] = body.try_into().map_err(|_| bad)?;
                self.mtu = Some(u32::from_be_bytes([b[2], b[3], b[4], b[5]]));
            }
            ndp_opt::PREFIX_INFO if self.prefix.is_none() => {
                let b: &[u8; 30] = body.try_into().map_err(|_| bad)?;
                let mut p = [0u8; 16];
                p.copy_from_slice(&b[14..30]);
                self.prefix = Some(PrefixInfo {
                    prefix_len: b[0],
                    flags: b[1],
                    valid_lifetime: u32::from_be_bytes([b[2], b[3], b[4], b[5]]),
                    preferred_lifetime: u32::from_be_bytes([b[6], b[7], b[8], b[9]]),
                    prefix: Ipv6Addr::from(p),
                });
            }
            _ => self.skipped = self.skipped.saturating_add(1),
        }
        Ok(())
    }

    fn lla(&self, ty: u8) -> Option<MacAddr> {
        if ty == ndp_opt::SRC_LLA { self.src_lla } else { self.tgt_lla }
    }

    /// Write the interpreted options (source LLA, target LLA, prefix, MTU
    /// in that order). Returns the length, None if `out` is too short.
    pub fn emit(&self, out: &mut [u8]) -> Option<usize> {
        let mut n = 0;
        for (ty, mac) in [(ndp_opt::SRC_LLA, self.src_lla), (ndp_opt::TGT_LLA, self.tgt_lla)] {
            if let Some(mac) = mac {
                let o = out.get_mut(n..n + 8)?;
                o[0] = ty;
                o[1] = 1;
                o[2..].copy_from_slice(&mac.bytes());
                n += 8;
            }
        }
        if let Some(p) = &self.prefix {
            let o = out.get_mut(n..n + 32)?;
            o[0] = ndp_opt::PREFIX_INFO;
            o[1] = 4;
            o[2] = p.prefix_len;
            o[3] = p.flags;
            o[4..8].copy_from_slice(&p.valid_lifetime.to_be_bytes());
            o[8..12].copy_from_slice(&p.preferred_lifetime.to_be_bytes());
            o[12..16].fill(0);
            o[16..32].copy_from_slice(&p.prefix.octets());
            n += 32;
        }
        if let Some(mtu) = self.mtu {
            let o = out.get_mut(n..n + 8)?;
            o[0] = ndp_opt::MTU;
            o[1] = 1;
            o[2..4].fill(0);
            o[4..8].copy_from_slice(&mtu.to_be_bytes());
            n += 8;
        }
        Some(n)
    }
}
