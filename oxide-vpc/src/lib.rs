//! oxide-vpc: the Oxide VPC network built on the `opte` engine.
//!
//! Each guest NIC is a [`VpcPort`](engine::VpcPort): an `opte` port with
//! five layers, in outbound order (inbound runs them in reverse):
//!
//! | layer | outbound | inbound |
//! | --- | --- | --- |
//! | `gateway` | anti-spoofing; answers ARP, DHCP, DHCPv6, NDP and ping for the gateway | only traffic for the guest's addresses; rewritten to come from the gateway MAC |
//! | `firewall` | the guest's rules; default stateful allow | the guest's rules; default deny; replies of allowed flows pass |
//! | `router` | longest-prefix match to a target, recorded in metadata; no route is a counted drop | pass |
//! | `nat` | floating, ephemeral or SNAT address for traffic to an internet gateway | translate back to the private address |
//! | `overlay` | Geneve encapsulation through the V2P and V2B tables | check the VNI and remove the encapsulation |
//!
//! - [`api`]: the configuration types the control plane and the
//!   simulator speak (serde), with validation.
//! - [`cmd`]: the request and reply bodies of the driver's commands,
//!   and the firewall rule text syntax.
//! - [`engine`]: the layers, the per-port wrapper and the host-wide
//!   address mappings ([`VpcNetwork`](engine::VpcNetwork)).
//!
//! `no_std` + `alloc`: this crate runs inside the illumos kernel.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod api;
pub mod cmd;
pub mod engine;
