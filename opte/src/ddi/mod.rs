//! Safe wrappers over the illumos kernel interfaces the engine uses:
//! STREAMS messages ([`mblk`]) and locks ([`sync`]). All calls into the
//! kernel go through `illumos-sys-hdrs`.

pub mod mblk;
pub mod sync;

pub use mblk::MsgBlk;
pub use sync::{KMutex, KRwLock};
