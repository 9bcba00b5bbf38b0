//! opte: the generic packet transformation engine.
//!
//! This crate knows nothing of any particular network (the Oxide VPC lives
//! in `oxide-vpc`) and nothing of DDI, MAC or ioctls (that is `xde`). It is
//! `no_std` + `alloc` because it runs inside the illumos kernel; in a Linux
//! process the same code runs over `fakekernel`.
//!
//! - [`ddi`]: ownership of STREAMS messages (`mblk_t` chains), and kernel
//!   locks that own the data they protect.
//! - [`engine`]: ports, layers, rules, actions and flow tables.
//! - [`packet`]: reading headers in place from an mblk chain, and writing
//!   them back (field changes, checksums, Geneve encapsulation).
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod ddi;
pub mod engine;
pub mod packet;
