//! Safe wrappers over the illumos kernel interfaces the engine uses:
//! STREAMS messages ([`mblk`]), locks ([`sync`]) and random seeds
//! ([`random`]). All calls into the kernel go through `illumos-sys-hdrs`.

pub mod mblk;
pub mod random;
pub mod sync;

pub use mblk::MsgBlk;
pub use sync::{KMutex, KRwLock};
