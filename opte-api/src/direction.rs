//! [`Direction`]: which way a packet travels through a port. The engine
//! keys rule tables and flow tables by it; commands name it (a firewall
//! rule's direction, a transit CIDR's).

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which way a packet travels through a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From the network towards the guest.
    In,
    /// From the guest towards the network.
    Out,
}

impl Direction {
    /// The other direction.
    pub const fn reverse(self) -> Self {
        match self {
            Self::In => Self::Out,
            Self::Out => Self::In,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::In => "in",
            Self::Out => "out",
        })
    }
}

/// A direction other than `in` or `out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectionError;

impl fmt::Display for DirectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("direction must be `in` or `out`")
    }
}

impl FromStr for Direction {
    type Err = DirectionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "in" | "In" | "IN" => Ok(Self::In),
            "out" | "Out" | "OUT" => Ok(Self::Out),
            _ => Err(DirectionError),
        }
    }
}
