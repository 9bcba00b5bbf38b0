//! CIDR blocks: an address prefix and its length. Construction refuses a
//! prefix length past the family's width and host bits left set, so an
//! operator who types `10.0.0.5/24` learns they meant `10.0.0.0/24`.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::str::FromStr;

/// Why a CIDR was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CidrError {
    /// The prefix length exceeds 32 (IPv4) or 128 (IPv6).
    PrefixTooLong { len: u8, max: u8 },
    /// Bits past the prefix length are set in the address.
    HostBitsSet,
    /// The text is not `ADDRESS/LENGTH`.
    Syntax,
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PrefixTooLong { len, max } => {
                write!(f, "prefix length {len} is longer than {max}")
            }
            Self::HostBitsSet => f.write_str("address has bits set past the prefix length"),
            Self::Syntax => f.write_str("expected ADDRESS/PREFIX-LENGTH"),
        }
    }
}

macro_rules! cidr_type {
    ($name:ident, $addr:ty, $int:ty, $bits:expr, $doc:expr) => {
        #[doc = $doc]
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name {
            addr: $addr,
            len: u8,
        }

        impl $name {
            /// The address width in bits.
            pub const BITS: u8 = $bits;

            /// A CIDR from a network address and prefix length.
            pub fn new(addr: $addr, len: u8) -> Result<Self, CidrError> {
                if len > Self::BITS {
                    return Err(CidrError::PrefixTooLong { len, max: Self::BITS });
                }
                if <$int>::from(addr) & !Self::mask(len) != 0 {
                    return Err(CidrError::HostBitsSet);
                }
                Ok(Self { addr, len })
            }

            /// The block of `len` bits that holds `addr` (its bits past
            /// the prefix cleared); an error past the family's width.
            pub fn containing(addr: $addr, len: u8) -> Result<Self, CidrError> {
                if len > Self::BITS {
                    return Err(CidrError::PrefixTooLong { len, max: Self::BITS });
                }
                Ok(Self { addr: <$addr>::from(<$int>::from(addr) & Self::mask(len)), len })
            }

            /// The block holding exactly `addr` (a /32 or /128).
            pub const fn host(addr: $addr) -> Self {
                Self { addr, len: Self::BITS }
            }

            /// The network mask for a prefix length (at most `BITS`).
            const fn mask(len: u8) -> $int {
                if len == 0 { 0 } else { <$int>::MAX << (Self::BITS - len) }
            }

            /// The network address.
            pub const fn addr(&self) -> $addr {
                self.addr
            }

            /// The prefix length.
            pub const fn prefix_len(&self) -> u8 {
                self.len
            }

            /// True when `ip` lies inside this block.
            pub fn contains(&self, ip: $addr) -> bool {
                <$int>::from(ip) & Self::mask(self.len) == <$int>::from(self.addr)
            }

            /// True when the two blocks share any address.
            pub fn overlaps(&self, other: &Self) -> bool {
                self.contains(other.addr) || other.contains(self.addr)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}/{}", self.addr, self.len)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = CidrError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let (a, l) = s.split_once('/').ok_or(CidrError::Syntax)?;
                let addr: $addr = a.parse().map_err(|_| CidrError::Syntax)?;
                let len: u8 = l.parse().map_err(|_| CidrError::Syntax)?;
                Self::new(addr, len)
            }
        }
    };
}

cidr_type!(Ipv4Cidr, Ipv4Addr, u32, 32, "An IPv4 CIDR block such as `10.0.0.0/24`.");
cidr_type!(Ipv6Cidr, Ipv6Addr, u128, 128, "An IPv6 CIDR block such as `fd00::/64`.");

/// A CIDR block of either family.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum IpCidr {
    V4(Ipv4Cidr),
    V6(Ipv6Cidr),
}

impl IpCidr {
    /// The block holding exactly `ip` (a /32 or /128).
    pub const fn from_host(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Self::V4(Ipv4Cidr::host(a)),
            IpAddr::V6(a) => Self::V6(Ipv6Cidr::host(a)),
        }
    }

    /// The block of `len` bits that holds `ip` (see
    /// [`Ipv4Cidr::containing`]).
    pub fn containing(ip: IpAddr, len: u8) -> Result<Self, CidrError> {
        match ip {
            IpAddr::V4(a) => Ipv4Cidr::containing(a, len).map(Self::V4),
            IpAddr::V6(a) => Ipv6Cidr::containing(a, len).map(Self::V6),
        }
    }

    /// True when `ip` is of this block's family and inside it.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self, ip) {
            (Self::V4(c), IpAddr::V4(a)) => c.contains(a),
            (Self::V6(c), IpAddr::V6(a)) => c.contains(a),
            _ => false,
        }
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        match self {
            Self::V4(c) => c.prefix_len(),
            Self::V6(c) => c.prefix_len(),
        }
    }
}

impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::V4(c) => c.fmt(f),
            Self::V6(c) => c.fmt(f),
        }
    }
}

impl FromStr for IpCidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains(':') { s.parse().map(Self::V6) } else { s.parse().map(Self::V4) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_contains_and_errors() {
        let c: Ipv4Cidr = "10.0.0.0/24".parse().unwrap();
        assert!(c.contains(Ipv4Addr::new(10, 0, 0, 77)));
        assert!(!c.contains(Ipv4Addr::new(10, 0, 1, 0)));
        assert_eq!("10.0.0.5/24".parse::<Ipv4Cidr>(), Err(CidrError::HostBitsSet));
        assert_eq!(
            "10.0.0.0/33".parse::<Ipv4Cidr>(),
            Err(CidrError::PrefixTooLong { len: 33, max: 32 })
        );
        assert_eq!("10.0.0.0".parse::<Ipv4Cidr>(), Err(CidrError::Syntax));
        let all: Ipv4Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(Ipv4Addr::new(255, 1, 2, 3)));
        let host: Ipv4Cidr = "10.0.0.5/32".parse().unwrap();
        assert!(host.contains(Ipv4Addr::new(10, 0, 0, 5)));
        assert_eq!(IpCidr::from_host(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5))), IpCidr::V4(host));
        assert!(c.overlaps(&host) && host.overlaps(&c));
    }

    #[test]
    fn v6_and_either() {
        let c: IpCidr = "fd00:1::/64".parse().unwrap();
        assert!(c.contains("fd00:1::9".parse().unwrap()));
        assert!(!c.contains("fd00:2::9".parse().unwrap()));
        assert!(!c.contains("10.0.0.1".parse().unwrap()));
        assert_eq!(c.to_string(), "fd00:1::/64");
        assert_eq!(c.prefix_len(), 64);
        assert_eq!("::/0".parse::<Ipv6Cidr>().map(|c| c.prefix_len()), Ok(0));
    }
}
