//! Ethernet MAC addresses.

use core::fmt;
use core::str::FromStr;

/// A 48-bit IEEE 802 MAC address, in wire order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddr([u8; 6]);

impl MacAddr {
    /// The broadcast address ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: Self = Self([0xff; 6]);
    /// The all-zero address.
    pub const ZERO: Self = Self([0; 6]);

    /// A MAC address from its six wire-order bytes.
    pub const fn from_bytes(bytes: [u8; 6]) -> Self {
        Self(bytes)
    }

    /// The six wire-order bytes.
    pub const fn bytes(&self) -> [u8; 6] {
        self.0
    }

    /// True for group (multicast or broadcast) addresses: the I/G bit is set.
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// True for ff:ff:ff:ff:ff:ff.
    pub const fn is_broadcast(&self) -> bool {
        matches!(self.0, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
    }

    /// The multicast MAC for an IPv6 multicast group (RFC 2464: 33:33 and
    /// the low 32 bits of the group address).
    pub const fn ipv6_multicast(group: &[u8; 16]) -> Self {
        Self([0x33, 0x33, group[12], group[13], group[14], group[15]])
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(bytes: [u8; 6]) -> Self {
        Self(bytes)
    }
}

impl From<MacAddr> for [u8; 6] {
    fn from(mac: MacAddr) -> Self {
        mac.0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a string is not a MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacParseError {
    /// Not six colon-separated groups.
    WrongGroupCount,
    /// A group is not one or two hexadecimal digits.
    BadGroup,
}

impl fmt::Display for MacParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongGroupCount => f.write_str("a MAC address has six colon-separated groups"),
            Self::BadGroup => f.write_str("each MAC address group is one or two hex digits"),
        }
    }
}

impl FromStr for MacAddr {
    type Err = MacParseError;

    /// Parses `aa:bb:cc:dd:ee:ff` (groups of one or two hex digits).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut groups = s.split(':');
        for byte in out.iter_mut() {
            let g = groups.next().ok_or(MacParseError::WrongGroupCount)?;
            if g.is_empty() || g.len() > 2 {
                return Err(MacParseError::BadGroup);
            }
            *byte = u8::from_str_radix(g, 16).map_err(|_| MacParseError::BadGroup)?;
        }
        if groups.next().is_some() {
            return Err(MacParseError::WrongGroupCount);
        }
        Ok(Self(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        let m: MacAddr = "a8:40:25:0:0:1".parse().unwrap();
        assert_eq!(m.bytes(), [0xa8, 0x40, 0x25, 0, 0, 1]);
        assert_eq!(m.to_string(), "a8:40:25:00:00:01");
        assert_eq!(m.to_string().parse::<MacAddr>(), Ok(m));
    }

    #[test]
    fn parse_errors() {
        assert_eq!("a8:40:25:0:0".parse::<MacAddr>(), Err(MacParseError::WrongGroupCount));
        assert_eq!("a8:40:25:0:0:1:2".parse::<MacAddr>(), Err(MacParseError::WrongGroupCount));
        assert_eq!("a8:40:25:0:0:1g".parse::<MacAddr>(), Err(MacParseError::BadGroup));
        assert_eq!("a8::25:0:0:1".parse::<MacAddr>(), Err(MacParseError::BadGroup));
    }

    #[test]
    fn group_bits() {
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr::BROADCAST.is_broadcast());
        assert!(MacAddr::from_bytes([0x33, 0x33, 0, 0, 0, 1]).is_multicast());
        assert!(!MacAddr::from_bytes([0xa8, 0x40, 0x25, 0, 0, 1]).is_multicast());
    }
}
