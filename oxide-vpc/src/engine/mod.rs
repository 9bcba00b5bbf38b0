//! The VPC's layers on the `opte` engine, the port that strings them
//! together ([`VpcPort`]) and the host-wide address mappings every port
//! reads ([`VpcNetwork`]).
//!
//! # How the layers talk
//!
//! Layers pass what they decided to later layers through packet metadata
//! (only while a flow's first packet is classified; a UFT hit needs none).
//! The keys, in [`meta_keys`]:
//!
//! | key | value | written by | read by |
//! | --- | --- | --- | --- |
//! | `vpc.route` | `Str`: `igw`, `ip`, `subnet` or `peer` | router (out) | nat, overlay |
//! | `vpc.igw` | `Str`: the internet gateway's UUID, or `any` | router (out, igw routes) | nat |
//! | `vpc.next_hop` | `Ip`: whose V2P mapping to use | router (out) | overlay |
//! | `vpc.dst_vni` | `U64`: the VNI of the V2P lookup | router (out) | overlay |
//! | `vpc.src_vni` | `U64`: the VNI the packet came from | overlay (in) | firewall, gateway |
//! | `vpc.external` | `Bool`: true for traffic from a boundary | overlay (in) | firewall, gateway, nat |

use alloc::vec::Vec;

use opte::engine::rule::RuleSpec;

pub mod firewall;
pub mod gateway;
pub mod nat;
pub mod network;
pub mod overlay;
pub mod router;
pub mod vpc_port;

pub use network::{NetworkError, VpcNetwork};
pub use vpc_port::{PortLimits, VpcError, VpcPort};

/// The layers' names, in outbound order.
pub mod layer_names {
    pub const GATEWAY: &str = "gateway";
    pub const FIREWALL: &str = "firewall";
    pub const ROUTER: &str = "router";
    pub const NAT: &str = "nat";
    pub const OVERLAY: &str = "overlay";
    /// Every layer, in outbound order.
    pub const ALL: [&str; 5] = [GATEWAY, FIREWALL, ROUTER, NAT, OVERLAY];
}

/// The metadata keys the layers pass between them (see the module
/// documentation for who writes and reads each).
pub mod meta_keys {
    pub const ROUTE: &str = "vpc.route";
    pub const IGW: &str = "vpc.igw";
    pub const NEXT_HOP: &str = "vpc.next_hop";
    pub const DST_VNI: &str = "vpc.dst_vni";
    pub const SRC_VNI: &str = "vpc.src_vni";
    pub const EXTERNAL: &str = "vpc.external";

    /// Values of [`ROUTE`].
    pub mod route {
        pub const IGW: &str = "igw";
        pub const IP: &str = "ip";
        pub const SUBNET: &str = "subnet";
        pub const PEER: &str = "peer";
    }

    /// The value of [`IGW`] for a route to any
    /// internet gateway.
    pub const IGW_ANY: &str = "any";
}

/// The rules one layer wants, per direction. A layer module builds one
/// from the configuration; [`VpcPort`] installs it.
#[derive(Debug, Default)]
pub struct RuleSet {
    pub rules_in: Vec<RuleSpec>,
    pub rules_out: Vec<RuleSpec>,
}
