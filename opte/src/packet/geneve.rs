//! Geneve (RFC 8926) over UDP port 6081, and the Oxide option class.
//!
//! Option TLVs: class (16 bits), type (8 bits, high bit = critical),
//! 3 reserved bits and a 5-bit length in 4-byte words. An option whose
//! length runs past the option area is malformed; an option we don't know
//! is skipped unless its critical bit is set, which refuses the packet
//! (RFC 8926 3.5.1). The Oxide class 0x0129 defines:
//!
//! | type | name | body |
//! | --- | --- | --- |
//! | 0x00 | external | none: the inner packet came from or goes to outside the VPC (boundary services) |
//! | 0x01 | multicast | 4 bytes: replication mode in the top 2 bits of the first byte |
//! | 0x02 | mss | 4 bytes: the TCP MSS the inner flow must respect |
//!
//! We emit `external` and `multicast` with the critical bit set (a
//! receiver that doesn't understand them must drop rather than treat the
//! packet as ordinary VPC traffic) and `mss` without it; we accept either
//! form of all three.

use super::error::{HeaderKind, ParseError};
use super::ether::ether_type;
use opte_api::Vni;

/// The Oxide Geneve option class.
pub const OXIDE_OPT_CLASS: u16 = 0x0129;
/// The critical bit of an option type.
pub const OPT_CRITICAL: u8 = 0x80;

/// Oxide option types (without the critical bit).
pub mod oxide_opt {
    pub const EXTERNAL: u8 = 0x00;
    pub const MULTICAST: u8 = 0x01;
    pub const MSS: u8 = 0x02;
}

/// Largest Geneve option area (6-bit length in 4-byte words).
pub const MAX_GENEVE_OPT_LEN: usize = 63 * 4;

/// How far a multicast packet is replicated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Replication {
    /// To receivers outside the rack (via boundary services).
    External,
    /// To other sleds over the underlay.
    Underlay,
    /// Both.
    All,
    /// Value 3, reserved.
    Reserved,
}

impl Replication {
    fn from_bits(b: u8) -> Self {
        match b >> 6 {
            0 => Self::External,
            1 => Self::Underlay,
            2 => Self::All,
            _ => Self::Reserved,
        }
    }

    fn bits(self) -> u8 {
        (match self {
            Self::External => 0,
            Self::Underlay => 1,
            Self::All => 2,
            Self::Reserved => 3,
        }) << 6
    }
}

/// The Geneve options the engine understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GeneveOptions {
    /// Oxide external-packet tag.
    pub external: bool,
    /// Oxide multicast replication.
    pub multicast: Option<Replication>,
    /// Oxide MSS.
    pub mss: Option<u32>,
    /// Non-critical options of other classes or types that were skipped.
    pub skipped: u8,
}

impl GeneveOptions {
    /// The longest [`GeneveOptions::wire_len`]: every option present.
    pub const MAX_WIRE_LEN: usize = 4 + 8 + 8;

    /// Wire length of the options this struct emits (at most
    /// [`GeneveOptions::MAX_WIRE_LEN`]).
    pub fn wire_len(&self) -> usize {
        4 * usize::from(self.external)
            + 8 * usize::from(self.multicast.is_some())
            + 8 * usize::from(self.mss.is_some())
    }

    /// True if emitting these sets a critical option.
    pub fn any_critical(&self) -> bool {
        self.external || self.multicast.is_some()
    }

    /// Record one option from its 4-byte header and body.
    pub fn add(&mut self, hdr: &[u8; 4], body: &[u8]) -> Result<(), ParseError> {
        let class = u16::from_be_bytes([hdr[0], hdr[1]]);
        let critical = hdr[2] & OPT_CRITICAL != 0;
        let ty = hdr[2] & !OPT_CRITICAL;
        if class == OXIDE_OPT_CLASS {
            match (ty, body.len()) {
                (oxide_opt::EXTERNAL, 0) => {
                    self.external = true;
                    return Ok(());
                }
                (oxide_opt::MULTICAST, 4) => {
                    self.multicast = body.first().map(|b| Replication::from_bits(*b));
                    return Ok(());
                }
                (oxide_opt::MSS, 4) => {
                    let b: &[u8; 4] = body.try_into().map_err(|_| ParseError::BadTunnelOption)?;
                    self.mss = Some(u32::from_be_bytes(*b));
                    return Ok(());
                }
                (oxide_opt::EXTERNAL | oxide_opt::MULTICAST | oxide_opt::MSS, _) => {
                    return Err(ParseError::BadTunnelOption);
                }
                _ => {}
            }
        }
        if critical {
            return Err(ParseError::UnknownCriticalOption);
        }
        self.skipped = self.skipped.saturating_add(1);
        Ok(())
    }

    /// Write these values over an option area as it is on the wire
    /// (`area`, already validated by parsing), leaving options of other
    /// classes and types alone. The area must hold exactly the Oxide
    /// options these values name: returns false, with `area` partly
    /// written, when one would have to be added or removed.
    pub fn write_values(&self, area: &mut [u8]) -> bool {
        let (mut external, mut multicast, mut mss) = (false, false, false);
        let mut rest = area;
        // Each option is at least 4 bytes: at most 63 iterations.
        while let Some((hdr, body)) = rest.split_first_chunk_mut::<4>() {
            let body_len = usize::from(hdr[3] & 0x1f) * 4;
            let Some((body, after)) = body.split_at_mut_checked(body_len) else {
                return false;
            };
            if u16::from_be_bytes([hdr[0], hdr[1]]) == OXIDE_OPT_CLASS {
                match (hdr[2] & !OPT_CRITICAL, &mut *body) {
                    (oxide_opt::EXTERNAL, []) => external = true,
                    (oxide_opt::MULTICAST, [b, ..]) => {
                        let Some(r) = self.multicast else { return false };
                        *b = r.bits() | (*b & 0x3f);
                        multicast = true;
                    }
                    (oxide_opt::MSS, [a, b, c, d]) => {
                        let Some(v) = self.mss else { return false };
                        [*a, *b, *c, *d] = v.to_be_bytes();
                        mss = true;
                    }
                    _ => {}
                }
            }
            rest = after;
        }
        external == self.external
            && multicast == self.multicast.is_some()
            && mss == self.mss.is_some()
    }

    /// Write the options; returns the length, None if `out` is too short.
    pub fn emit(&self, out: &mut [u8]) -> Option<usize> {
        let mut n = 0;
        let class = OXIDE_OPT_CLASS.to_be_bytes();
        if self.external {
            let o = out.get_mut(n..n + 4)?;
            o.copy_from_slice(&[class[0], class[1], OPT_CRITICAL | oxide_opt::EXTERNAL, 0]);
            n += 4;
        }
        if let Some(r) = self.multicast {
            let o = out.get_mut(n..n + 8)?;
            o.copy_from_slice(&[
                class[0],
                class[1],
                OPT_CRITICAL | oxide_opt::MULTICAST,
                1,
                r.bits(),
                0,
                0,
                0,
            ]);
            n += 8;
        }
        if let Some(mss) = self.mss {
            let o = out.get_mut(n..n + 8)?;
            o[..4].copy_from_slice(&[class[0], class[1], oxide_opt::MSS, 1]);
            o[4..].copy_from_slice(&mss.to_be_bytes());
            n += 8;
        }
        Some(n)
    }
}

/// A Geneve header with its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GeneveHdr {
    /// Option area length in 4-byte words, as on the wire.
    pub opt_len_words: u8,
    /// OAM packet (control, not data).
    pub oam: bool,
    /// Critical options present.
    pub critical: bool,
    /// Inner protocol; the parser accepts only Ethernet (0x6558).
    pub proto: u16,
    pub vni: Vni,
    pub options: GeneveOptions,
}

impl GeneveHdr {
    /// Fixed header length.
    pub const LEN: usize = 8;

    /// A header with every field zero.
    pub const EMPTY: Self = Self {
        opt_len_words: 0,
        oam: false,
        critical: false,
        proto: 0,
        vni: Vni::ZERO,
        options: GeneveOptions { external: false, multicast: None, mss: None, skipped: 0 },
    };

    /// A header for an Ethernet payload carrying `options`.
    pub fn new(vni: Vni, options: GeneveOptions) -> Self {
        Self {
            opt_len_words: (options.wire_len() / 4) as u8,
            oam: false,
            critical: options.any_critical(),
            proto: ether_type::TRANSPARENT_ETHERNET_BRIDGING,
            vni,
            options,
        }
    }

    /// Header length including options.
    pub fn hdr_len(&self) -> usize {
        Self::LEN + usize::from(self.opt_len_words) * 4
    }

    /// Read the fixed 8 bytes; the caller reads options next.
    #[inline(always)]
    pub fn parse_fixed(b: &[u8]) -> Result<Self, ParseError> {
        let b: &[u8; Self::LEN] =
            b.try_into().map_err(|_| ParseError::Truncated(HeaderKind::Geneve))?;
        if b[0] >> 6 != 0 {
            return Err(ParseError::BadValue(HeaderKind::Geneve));
        }
        let proto = u16::from_be_bytes([b[2], b[3]]);
        if proto != ether_type::TRANSPARENT_ETHERNET_BRIDGING {
            return Err(ParseError::UnsupportedProtocol(HeaderKind::Geneve));
        }
        Ok(Self {
            opt_len_words: b[0] & 0x3f,
            oam: b[1] & 0x80 != 0,
            critical: b[1] & 0x40 != 0,
            proto,
            vni: Vni::from_be_bytes([b[4], b[5], b[6]]),
            options: GeneveOptions::default(),
        })
    }

    /// Write the fixed 8 bytes (option length as stored).
    pub fn emit_fixed(&self, out: &mut [u8; Self::LEN]) {
        out[0] = self.opt_len_words & 0x3f;
        out[1] = (u8::from(self.oam) << 7) | (u8::from(self.critical) << 6);
        out[2..4].copy_from_slice(&self.proto.to_be_bytes());
        out[4..7].copy_from_slice(&self.vni.to_be_bytes());
        out[7] = 0;
    }

    /// Write the whole header with options; returns its length, 0 when
    /// `out` is too short or the stored option length disagrees with the
    /// options.
    pub fn emit(&self, out: &mut [u8]) -> usize {
        if usize::from(self.opt_len_words) * 4 != self.options.wire_len() {
            return 0;
        }
        let Some((fixed, rest)) = out.split_first_chunk_mut::<{ Self::LEN }>() else {
            return 0;
        };
        self.emit_fixed(fixed);
        match self.options.emit(rest) {
            Some(n) => Self::LEN + n,
            None => 0,
        }
    }
}
