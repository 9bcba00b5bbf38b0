//! The table of every allocation the fake kernel has handed out: mblks,
//! dblks and kmem buffers, keyed by address.
//!
//! Each entry says what the address is (its [`Kind`], with the size the
//! allocation was made with) and which [`Account`] it is charged to. A
//! free looks the address up *before* touching the memory behind it, so
//! a double free, a free of a pointer we never returned, or a free with
//! the wrong kmem size is reported instead of corrupting the heap. When
//! an allocation is freed its entry becomes a tombstone that remembers
//! the kind; a later free of the same address is then recognised as a
//! double free rather than a wild pointer. A tombstone lives until the
//! system allocator hands the address out again, so the table holds at
//! most one entry per address the process has ever used.
//!
//! Locking: the table is split into [`SHARDS`] independently locked
//! shards chosen by address, so threads allocating and freeing different
//! packets rarely contend. Each shard's mutex protects only its map; no
//! code holds two shard locks at once, and no lock is held while memory
//! is allocated, freed or copied.

use crate::accounting::Account;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// What an address in the table is, with the size it was allocated with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A message block (`mblk_t`).
    Mblk,
    /// A data block (`dblk_t`) followed by its `buf_len`-byte buffer.
    Dblk {
        /// Bytes in the buffer after the `dblk_t`.
        buf_len: usize,
    },
    /// A `kmem_alloc`/`kmem_zalloc` buffer of `size` bytes.
    Kmem {
        /// The size it was allocated with (and must be freed with).
        size: usize,
    },
}

/// What the table knows about an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// A live allocation of this kind.
    Live(Kind),
    /// An allocation of this kind that has been freed.
    Freed(Kind),
    /// Never handed out by the fake kernel.
    Absent,
}

/// One entry of a shard.
enum Slot {
    Live { kind: Kind, owner: Arc<Account> },
    Freed(Kind),
}

/// Number of independently locked shards (a power of two).
const SHARDS: usize = 64;

/// Multiplier for Fibonacci hashing of addresses (2^64 / golden ratio).
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

type Shard = Mutex<HashMap<usize, Slot, BuildHasherDefault<AddrHasher>>>;

/// The allocation table (see the module documentation).
pub(crate) struct AllocTable {
    shards: [Shard; SHARDS],
}

/// The one table of the process.
pub(crate) static TABLE: AllocTable = AllocTable::new();

impl AllocTable {
    const fn new() -> Self {
        Self {
            shards: [const { Mutex::new(HashMap::with_hasher(BuildHasherDefault::new())) }; SHARDS],
        }
    }

    fn shard(
        &self,
        addr: usize,
    ) -> MutexGuard<'_, HashMap<usize, Slot, BuildHasherDefault<AddrHasher>>> {
        const SHIFT: u32 = u64::BITS - SHARDS.trailing_zeros();
        let index = ((addr as u64).wrapping_mul(GOLDEN) >> SHIFT) as usize;
        // `index < SHARDS` by construction of SHIFT; the `%` states it.
        let shard = &self.shards[index % SHARDS];
        // A panic while holding a shard lock cannot leave a map half
        // updated (HashMap operations are panic safe), so a poisoned
        // lock's data is still good.
        shard.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Record a new live allocation at `addr`, charged to `owner`.
    pub(crate) fn insert(&self, addr: usize, kind: Kind, owner: Arc<Account>) {
        self.shard(addr).insert(addr, Slot::Live { kind, owner });
    }

    /// What the table knows about `addr`.
    pub(crate) fn find(&self, addr: usize) -> Found {
        match self.shard(addr).get(&addr) {
            Some(Slot::Live { kind, .. }) => Found::Live(*kind),
            Some(Slot::Freed(kind)) => Found::Freed(*kind),
            None => Found::Absent,
        }
    }

    /// If `addr` is live and `accept` approves its kind, mark it freed
    /// and return its kind and owner; otherwise leave it alone and say
    /// what was found. The check and the removal are one atomic step, so
    /// of two threads freeing the same address exactly one succeeds.
    pub(crate) fn take(
        &self,
        addr: usize,
        accept: impl FnOnce(Kind) -> bool,
    ) -> Result<(Kind, Arc<Account>), Found> {
        let mut shard = self.shard(addr);
        let Some(slot) = shard.get_mut(&addr) else {
            return Err(Found::Absent);
        };
        match slot {
            Slot::Freed(kind) => Err(Found::Freed(*kind)),
            Slot::Live { kind, .. } if !accept(*kind) => Err(Found::Live(*kind)),
            Slot::Live { kind, .. } => {
                let kind = *kind;
                match std::mem::replace(slot, Slot::Freed(kind)) {
                    Slot::Live { owner, .. } => Ok((kind, owner)),
                    // Unreachable: we matched `Live` above under the lock.
                    Slot::Freed(_) => Err(Found::Freed(kind)),
                }
            }
        }
    }
}

/// A hasher for addresses: Fibonacci hashing, folded so both the high
/// bits (hashbrown's control bytes) and the low bits (bucket index) mix.
#[derive(Default)]
pub(crate) struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*byte)).wrapping_mul(GOLDEN);
        }
    }

    fn write_usize(&mut self, n: usize) {
        let h = (n as u64).wrapping_mul(GOLDEN);
        self.0 = h ^ (h >> 32);
    }
}
