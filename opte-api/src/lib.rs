//! The control contract shared by the driver, the engine and userland
//! tools. This first part holds the address types every layer speaks:
//! MAC addresses, IPv4/IPv6 addresses (the `core::net` types), CIDR
//! blocks and the 24-bit Geneve virtual network identifier (VNI).
//!
//! The crate is `no_std` (it is compiled into the kernel module) and
//! allocation-free.
#![cfg_attr(not(test), no_std)]

pub mod cidr;
pub mod mac;
pub mod vni;

pub use cidr::{CidrError, IpCidr, Ipv4Cidr, Ipv6Cidr};
pub use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
pub use mac::{MacAddr, MacParseError};
pub use vni::{Vni, VniError};
