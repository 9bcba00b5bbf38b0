//! The Geneve Virtual Network Identifier: 24 bits that keep tenants'
//! overlapping address spaces apart on the underlay.

use core::fmt;

/// A 24-bit VNI. Construction checks the range, so every `Vni` is valid.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Vni(u32);

/// A value does not fit in 24 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VniError(pub u32);

impl fmt::Display for VniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VNI {} is larger than the 24-bit maximum {}", self.0, Vni::MAX)
    }
}

impl Vni {
    /// VNI 0.
    pub const ZERO: Self = Self(0);

    /// Largest VNI.
    pub const MAX: u32 = 0x00ff_ffff;

    /// A VNI from a value, refusing values above 24 bits.
    pub const fn new(v: u32) -> Result<Self, VniError> {
        if v > Self::MAX { Err(VniError(v)) } else { Ok(Self(v)) }
    }

    /// A VNI from the three wire-order bytes of a Geneve header.
    pub const fn from_be_bytes(b: [u8; 3]) -> Self {
        Self(((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32)
    }

    /// The three wire-order bytes.
    pub const fn to_be_bytes(self) -> [u8; 3] {
        [(self.0 >> 16) as u8, (self.0 >> 8) as u8, self.0 as u8]
    }

    /// The numeric value.
    pub const fn value(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Vni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Vni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Vni({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_and_bytes() {
        assert_eq!(Vni::new(Vni::MAX).map(Vni::value), Ok(0xff_ffff));
        assert_eq!(Vni::new(0x0100_0000), Err(VniError(0x0100_0000)));
        let v = Vni::new(0x12_3456).unwrap();
        assert_eq!(v.to_be_bytes(), [0x12, 0x34, 0x56]);
        assert_eq!(Vni::from_be_bytes([0x12, 0x34, 0x56]), v);
    }
}
