//! The table of every allocation the fake kernel has handed out: message
//! blocks and kmem buffers, keyed by address.
//!
//! Each entry says what the allocation at its address is (its [`Kind`],
//! with the size it was made with) and which [`Account`] it is charged
//! to. An `allocb` allocation holds two objects, an mblk at its address
//! and the dblk (with its buffer) after it; its entry tracks the two
//! separately, since either may be freed first, and the memory goes when
//! both are. A free looks the address up *before* touching the memory
//! behind it, so a double free, a free of a pointer we never returned,
//! or a free with the wrong kmem size is reported instead of corrupting
//! the heap. When an allocation is freed its entry becomes a tombstone
//! that remembers the kind; a later free of the same address is then
//! recognised as a double free rather than a wild pointer. A tombstone
//! lives until the system allocator hands the address out again, so the
//! table holds at most one entry per address the process has ever used.
//!
//! Locking: the table is split into [`SHARDS`] independently locked
//! shards chosen by address, so threads allocating and freeing different
//! packets rarely contend. Each shard's spin lock protects only its map;
//! no code holds two shard locks at once, and no lock is held while
//! memory is allocated (other than by the map itself), freed or copied.

use crate::accounting::Account;
use spin::mutex::{SpinMutex, SpinMutexGuard};
use spin::relax::Yield;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

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

/// What dropping a reference to a dblk did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unref {
    /// One reference was dropped and others remain.
    Kept,
    /// The last reference was dropped: the dblk is freed and credited to
    /// its owner.
    Last,
    /// The count was already zero; nothing changed.
    Underflow,
    /// There is no live dblk there; nothing changed.
    NotLive,
}

/// What became of an `allocb` allocation after one of its objects was
/// freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Block {
    /// Its mblk or its dblk is still live.
    InUse,
    /// Both are freed: the caller frees the allocation, whose dblk had a
    /// `buf_len`-byte buffer.
    Unused {
        /// The dblk's buffer length.
        buf_len: usize,
    },
}

/// The memory of an mblk that [`AllocTable::free_mblk`] freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MblkMemory {
    /// An allocation of its own (made by `dupb`): the caller frees it.
    Alone,
    /// Part of an `allocb` allocation, in this state.
    InBlock(Block),
}

/// What [`AllocTable::free_mblk`] did.
pub(crate) struct MblkFreed<T> {
    /// What the caller's `read` returned.
    pub(crate) fields: T,
    /// What becomes of the mblk's memory.
    pub(crate) memory: MblkMemory,
    /// When the mblk's dblk was the one of its own allocation, what
    /// dropping its reference did; `None` leaves that to the caller.
    pub(crate) own_dblk: Option<Unref>,
}

/// One entry of a shard, keyed by the allocation's address.
enum Slot {
    /// A live allocation holding one object: a kmem buffer, or an mblk
    /// made by `dupb`.
    Live { kind: Kind, owner: Arc<Account> },
    /// A freed one-object allocation.
    Freed(Kind),
    /// An `allocb` allocation: an mblk at the entry's address, then a
    /// dblk with its `buf_len`-byte buffer, both charged to `owner`.
    Block { mblk_live: bool, dblk_live: bool, buf_len: usize, owner: Arc<Account> },
    /// An `allocb` allocation whose mblk and dblk are both freed.
    FreedBlock { buf_len: usize },
}

impl Slot {
    /// What the entry says about the object at its address (for a block,
    /// its mblk).
    fn found(&self) -> Found {
        match self {
            Self::Live { kind, .. } => Found::Live(*kind),
            Self::Freed(kind) => Found::Freed(*kind),
            Self::Block { mblk_live: true, .. } => Found::Live(Kind::Mblk),
            Self::Block { mblk_live: false, .. } | Self::FreedBlock { .. } => {
                Found::Freed(Kind::Mblk)
            }
        }
    }

    /// For a block with a live dblk, drop one of the dblk's references
    /// with `drop_ref`; on the last one mark it freed and credit it.
    fn unref_dblk(&mut self, drop_ref: impl FnOnce() -> Option<u8>) -> Unref {
        let Self::Block { dblk_live: dblk_live @ true, buf_len, owner, .. } = self else {
            return Unref::NotLive;
        };
        match drop_ref() {
            None => Unref::Underflow,
            Some(1) => {
                *dblk_live = false;
                owner.credit(Kind::Dblk { buf_len: *buf_len });
                Unref::Last
            }
            Some(_) => Unref::Kept,
        }
    }

    /// Turn a block whose mblk and dblk are both freed into a tombstone,
    /// returning the old entry (for the caller to drop once the lock is
    /// released) with what became of the block.
    fn retire_if_unused(&mut self) -> (Option<Slot>, Block) {
        match self {
            Self::Block { mblk_live: false, dblk_live: false, buf_len, .. } => {
                let buf_len = *buf_len;
                let old = std::mem::replace(self, Self::FreedBlock { buf_len });
                (Some(old), Block::Unused { buf_len })
            }
            _ => (None, Block::InUse),
        }
    }
}

/// Number of independently locked shards (a power of two).
const SHARDS: usize = 64;

/// Multiplier for Fibonacci hashing of addresses (2^64 / golden ratio).
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// A shard's map.
type Map = HashMap<usize, Slot, BuildHasherDefault<AddrHasher>>;

/// One shard: a map behind a spin lock (`spin`'s, yielding the CPU while
/// it waits, should the holder have been descheduled). A critical section
/// is one map operation (with the few loads and counter updates that go
/// with it), so a waiter does not sleep; and releasing the lock is a
/// plain store, not a second atomic read-modify-write as a sleeping
/// mutex's release is. A panic while one is held cannot leave the map half
/// updated (HashMap operations are panic safe), and dropping the guard
/// during the unwind releases the lock.
type Shard = SpinMutex<Map, Yield>;

/// The allocation table (see the module documentation).
pub(crate) struct AllocTable {
    shards: [Shard; SHARDS],
}

/// The one table of the process.
pub(crate) static TABLE: AllocTable = AllocTable::new();

impl AllocTable {
    const fn new() -> Self {
        Self {
            shards: [const { SpinMutex::new(HashMap::with_hasher(BuildHasherDefault::new())) };
                SHARDS],
        }
    }

    fn shard(&self, addr: usize) -> SpinMutexGuard<'_, Map> {
        const SHIFT: u32 = u64::BITS - SHARDS.trailing_zeros();
        let index = ((addr as u64).wrapping_mul(GOLDEN) >> SHIFT) as usize;
        // `index < SHARDS` by construction of SHIFT; the `%` states it.
        self.shards[index % SHARDS].lock()
    }

    /// Record a new live one-object allocation at `addr`, charged to
    /// `owner`.
    pub(crate) fn insert(&self, addr: usize, kind: Kind, owner: Arc<Account>) {
        self.shard(addr).insert(addr, Slot::Live { kind, owner });
    }

    /// Record a new `allocb` allocation at `addr` (a live mblk there, and
    /// a live dblk with a `buf_len`-byte buffer), charged to `owner`.
    pub(crate) fn insert_block(&self, addr: usize, buf_len: usize, owner: Arc<Account>) {
        let slot = Slot::Block { mblk_live: true, dblk_live: true, buf_len, owner };
        self.shard(addr).insert(addr, slot);
    }

    /// What the table knows about the object at `addr` (for an `allocb`
    /// allocation, its mblk).
    pub(crate) fn find(&self, addr: usize) -> Found {
        self.shard(addr).get(&addr).map_or(Found::Absent, Slot::found)
    }

    /// What the table knows about the dblk of the `allocb` allocation at
    /// `block`; for any other entry there, what that entry holds.
    pub(crate) fn find_dblk(&self, block: usize) -> Found {
        match self.shard(block).get(&block) {
            Some(Slot::Block { dblk_live, buf_len, .. }) => {
                let kind = Kind::Dblk { buf_len: *buf_len };
                if *dblk_live { Found::Live(kind) } else { Found::Freed(kind) }
            }
            Some(Slot::FreedBlock { buf_len }) => Found::Freed(Kind::Dblk { buf_len: *buf_len }),
            Some(slot) => slot.found(),
            None => Found::Absent,
        }
    }

    /// If the one-object allocation at `addr` is live and `accept`
    /// approves its kind, mark it freed and return its kind and owner;
    /// otherwise leave it alone and say what was found. The check and the
    /// removal are one atomic step, so of two threads freeing the same
    /// address exactly one succeeds.
    pub(crate) fn take(
        &self,
        addr: usize,
        accept: impl FnOnce(Kind) -> bool,
    ) -> Result<(Kind, Arc<Account>), Found> {
        let mut shard = self.shard(addr);
        let Some(slot) = shard.get_mut(&addr) else {
            return Err(Found::Absent);
        };
        let kind = match slot {
            Slot::Live { kind, .. } if accept(*kind) => *kind,
            other => return Err(other.found()),
        };
        match std::mem::replace(slot, Slot::Freed(kind)) {
            Slot::Live { owner, .. } => Ok((kind, owner)),
            // Unreachable: we matched `Live` above under the lock.
            other => Err(other.found()),
        }
    }

    /// If the mblk at `addr` is live, call `read` (to read its fields
    /// while the table still vouches for it), then mark it freed, credit
    /// it to its owner, and say what becomes of its memory; otherwise
    /// leave it alone and say what was found. As with [`Self::take`], of
    /// two threads freeing the same mblk exactly one succeeds.
    ///
    /// `read` also returns the address of the allocation the mblk's dblk
    /// would lie in. When that is the mblk's own (the usual case), its
    /// dblk reference is dropped here too, in the same step, with
    /// `drop_ref` (as by [`Self::unref_dblk`]).
    pub(crate) fn free_mblk<T>(
        &self,
        addr: usize,
        read: impl FnOnce() -> (T, usize),
        drop_ref: impl FnOnce() -> Option<u8>,
    ) -> Result<MblkFreed<T>, Found> {
        let mut shard = self.shard(addr);
        let Some(slot) = shard.get_mut(&addr) else {
            return Err(Found::Absent);
        };
        match slot {
            Slot::Live { kind: Kind::Mblk, .. } => {
                let (fields, _) = read();
                let old = std::mem::replace(slot, Slot::Freed(Kind::Mblk));
                drop(shard);
                if let Slot::Live { owner, .. } = &old {
                    owner.credit(Kind::Mblk);
                }
                Ok(MblkFreed { fields, memory: MblkMemory::Alone, own_dblk: None })
            }
            Slot::Block { mblk_live: mblk_live @ true, owner, .. } => {
                let (fields, dblk_block) = read();
                *mblk_live = false;
                owner.credit(Kind::Mblk);
                let own_dblk = (dblk_block == addr).then(|| slot.unref_dblk(drop_ref));
                let (old, block) = slot.retire_if_unused();
                drop(shard);
                drop(old);
                Ok(MblkFreed { fields, memory: MblkMemory::InBlock(block), own_dblk })
            }
            other => Err(other.found()),
        }
    }

    /// If the `allocb` allocation at `block` has a live dblk, drop one of
    /// its references with `drop_ref` (which returns the count before the
    /// drop, or `None` if it was already zero); on the last one mark the
    /// dblk freed and credit it to its owner. All of it happens under the
    /// shard's lock, so `drop_ref` runs only while the table vouches for
    /// the dblk and nobody can free it meanwhile; the count can be shared
    /// with code that changes it atomically without this lock.
    pub(crate) fn unref_dblk(
        &self,
        block: usize,
        drop_ref: impl FnOnce() -> Option<u8>,
    ) -> (Unref, Block) {
        let mut shard = self.shard(block);
        let Some(slot) = shard.get_mut(&block) else {
            return (Unref::NotLive, Block::InUse);
        };
        let unref = slot.unref_dblk(drop_ref);
        let (old, state) = slot.retire_if_unused();
        drop(shard);
        drop(old);
        (unref, state)
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
