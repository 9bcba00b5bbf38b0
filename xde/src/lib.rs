//! xde: the illumos driver that puts VPC ports on the host's network.
//!
//! This crate is built twice: as `no_std` code for the illumos kernel
//! module, and as an ordinary library for the Linux host (`xde-host`)
//! and tests, where `fakekernel` provides the kernel functions.
//!
//! - [`control`]: the portable command handler. Every command, from the
//!   illumos ioctl entry point or the Linux host's socket, is the same
//!   header and request bytes given to [`control::XdeCtl::execute`].
//!
//! The module linkage, MAC providers, underlay and packet paths come in
//! later issues.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod control;
