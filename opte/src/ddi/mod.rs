//! Safe wrappers over the illumos kernel interfaces the engine uses. All
//! calls into the kernel go through `illumos-sys-hdrs`.

pub mod mblk;

pub use mblk::MsgBlk;
