//! The control contract shared by the driver, the engine and userland
//! tools: the address types every layer speaks (MAC addresses,
//! IPv4/IPv6 addresses from `core::net`, CIDR blocks, the 24-bit Geneve
//! virtual network identifier) and which way a packet travels, each with
//! serde support so commands can carry them; and the command contract
//! itself ([`cmd`]): command codes, the wire header, size limits, the
//! error every command can answer and the body encoding.
//!
//! The crate is `no_std` + `alloc` (it is compiled into the kernel
//! module).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod cidr;
pub mod cmd;
pub mod direction;
pub mod mac;
mod serde_impls;
pub mod vni;

pub use cidr::{CidrError, IpCidr, Ipv4Cidr, Ipv6Cidr};
pub use cmd::{
    API_VERSION, MAX_REQ_LEN, MAX_RESP_LEN, MIN_RESP_LEN, OpteCmd, OpteCmdIoctl, OpteError,
    XDE_IOC_OPTE_CMD,
};
pub use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
pub use direction::{Direction, DirectionError};
pub use mac::{MacAddr, MacParseError};
pub use vni::{Vni, VniError};
