//! [`FlowTable`]: a bounded hash table of per-flow state keyed by
//! [`FlowId`], the one kind of table every stateful part of the engine
//! keeps (a layer's flow state, the port's unified flow table, TCP state).
//!
//! # Theory
//!
//! **What an entry is.** A [`FlowEntry`] wraps the caller's value with
//! the one time the table needs: when the entry was last hit. The value
//! tells the table two things through [`FlowValue`]: which
//! [`ExpiryClass`] it belongs to (how long it may sit idle), and its
//! [`EvictionRank`] (how willing the table is to give it up under
//! pressure). The table never interprets the value otherwise.
//!
//! **Time.** The table never reads a clock: every operation that needs
//! the time takes a [`Moment`]. `last_hit` never moves backwards, even
//! when a caller passes a `now` read slightly earlier than another
//! caller's.
//!
//! **Storage.** A table is two structures, so that a table with 10^6
//! entries costs little more than its entries:
//!
//! - *The slab* holds the entries, densely: each slot is a key and its
//!   [`FlowEntry`], or, when free, the number of the next free slot (the
//!   free list is threaded through the free slots themselves; which of
//!   the two a slot is hides in a niche or the padding of the key, so a
//!   slot is as large as `(FlowId, FlowEntry<V>)`, which the tests
//!   check). Slots live in chunks of
//!   [`CHUNK_SLOTS`] (512): slot `n` is slot `n % 512` of chunk
//!   `n / 512`. A new flow takes the most recently freed slot, else the
//!   next never-used one; only when there is neither does the slab grow,
//!   by one chunk (the first chunk starts at 16 slots and doubles up to
//!   512, so a table of a few flows holds a few slots). No growth moves
//!   more than one chunk (about 100 KiB for the unified flow table's
//!   entries), and an entry never moves while it is in the table except
//!   when a sparse table is compacted (below).
//! - *The index* is a `hashbrown` [`HashTable`] of 8-byte buckets: a
//!   slot number and 32 bits of the key's hash. A lookup hashes the key,
//!   probes the index, compares the stored hash bits and then the key in
//!   the slot they name: one probe and one slab access (the slot the
//!   caller wanted anyway). Growing the index rehashes from the stored
//!   bits and never reads the slab.
//!
//! **Limits.** Everything is bounded, and hitting a bound is counted:
//!
//! - *Entries.* At most `limit`. Adding a new flow to a full table is
//!   refused with [`FlowTableError::Full`] and counted in
//!   [`FlowTableStats::full_drops`]; the caller drops the packet with a
//!   reason, or makes room (with [`FlowTable::expire`] or
//!   [`FlowTable::evict`]) and tries again. Replacing the value of a flow
//!   already present never fails this way: it does not grow the table.
//! - *Memory.* The table grows both structures itself, never letting
//!   `hashbrown` do so: before adding a new flow it makes sure the index
//!   has a free bucket and the slab a free slot. The index, when it has
//!   none, is rebuilt into a new allocation sized for twice the live
//!   entries (the same size again when its room was used up by removals
//!   rather than by live entries), never for more than
//!   `limit + limit / 8` entries (the eighth is headroom, so that churn
//!   at the limit does not rebuild it on every insert). The slab never
//!   holds more than `limit` slots (a chunk is cut short at the limit).
//!   So a table holds at most
//!   `limit * size_of::<(FlowId, FlowEntry<V>)>()` bytes of slab, plus
//!   `ceil(limit / 512) * size_of::<Vec<_>>()` (3 words) of chunk
//!   directory, plus `B * 9 + 16` bytes of index (plus alignment
//!   padding), where `B` is the power of two at or above
//!   `(limit + limit / 8) * 8 / 7`: hashbrown keeps an eighth of its
//!   buckets empty, and has one control byte per 8-byte bucket and a
//!   group of 16 trailing control bytes. For the unified flow table at
//!   10^6 flows that is about 208 bytes of slab and 19 of index per flow.
//!   [`FlowTable::expire`] and [`FlowTable::retain`] compact the table
//!   into fresh chunks and a fresh index sized for twice the live entries
//!   once it is less than an eighth full, and free it once it is empty;
//!   [`FlowTable::clear`] frees it, [`FlowTable::empty`] keeps it. While
//!   a rebuild or a compaction runs, the old and the new allocations are
//!   both held.
//! - *Allocation failure.* Growing is fallible: when the kernel has no
//!   memory the insert fails with [`FlowTableError::NoMemory`], counted
//!   in [`FlowTableStats::alloc_failures`], and the table's entries are
//!   unchanged. Nothing here panics or aborts on allocation failure.
//! - *Work per call.* Lookups, hits, inserts and removes are one hash
//!   probe (expected O(1); an insert into a full table or one without a
//!   free bucket or slot takes two) and one slab access. An insert that
//!   rebuilds the index moves every 8-byte bucket once, O(len): the
//!   doubling amortizes that to O(1) per insert, but the one insert pays
//!   it all, a pause of milliseconds at 10^6 entries (the entries
//!   themselves stay put). [`FlowTable::expire`], [`FlowTable::retain`],
//!   [`FlowTable::evict`], [`FlowTable::empty`] and [`FlowTable::clear`]
//!   are one pass over the slab's slots (at most `limit`, and at most
//!   eight times `len` after an expiry or retain that left the table
//!   sparse), calling back at most once per entry; a compaction is one
//!   more pass, rehashing each live key. [`FlowTable::evict`] keeps its
//!   candidates in a max-heap, O(slots log n) for a batch of
//!   n <= [`MAX_EVICT_BATCH`], in a fixed 3 KiB array on the stack with
//!   no heap allocation; it reads the whole table, so callers evict in
//!   batches when a table nears its limit, off the per-packet path, not
//!   one entry per new flow.
//! - *Work per lock hold.* A whole pass at 10^6 entries takes
//!   milliseconds, too long for the owner to hold a lock the data path
//!   needs. Each pass can be made a slice of [`SLICE_SLOTS`] slots at a
//!   time, the owner taking its lock per slice: [`FlowTable::expire_slice`]
//!   and [`FlowTable::retain_slice`] return a [`SlotCursor`] to resume
//!   from, and eviction splits into a read-only [`FlowTable::evict_scan`]
//!   per slice and one [`FlowTable::evict_chosen`], which removes only the
//!   chosen entries that have not changed since. A pass takes at most
//!   [`FlowTable::max_slices`] slices whatever happens between them, and
//!   compacts a sparse table only at its end.
//!
//! **Expiry and eviction.** Expiry is the normal end of a flow: an entry
//! idle for at least its class's timeout in an [`ExpiryPolicy`] is
//! removed by [`FlowTable::expire`], which the owner calls periodically.
//! Eviction is the abnormal end: when a table is full of flows that are
//! not yet idle long enough, [`FlowTable::evict`] gives up the least
//! valuable ones, lowest [`EvictionRank`] first and, within a rank, the
//! one hit least recently first. Both hand every removed value back
//! through a callback, so the owner can release what the value holds
//! (a NAT port, a counter) and report it.
//!
//! **Hashing.** Keys are hashed with foldhash, seeded per table from
//! the kernel's random generator ([`crate::ddi::random::seed`]). Flow ids
//! are partly chosen by remote peers; only a seed they don't know keeps
//! them from choosing ids that collide. The index keeps the low 32 bits
//! of each hash (foldhash's last step folds the high half of a 128-bit
//! product into the low one, so they depend on the whole key). hashbrown
//! takes the bucket from the low bits of what it is given and a 7-bit tag
//! from the top seven, so it is given the 32 bits twice over, high half
//! and low: the bucket comes from the low bits and the tag from bits
//! 25-31, independent of each other for indexes of up to 2^25 buckets
//! (beyond that the tag filters less, and more stored hashes are
//! compared). That costs two instructions on the lookup path, where a
//! multiplication would cost more.
//!
//! **Locking.** None: a table is a plain value. Its owner (a port) holds
//! the lock that serializes access; every method that changes the table
//! takes `&mut self`.

use super::{ExpiryClass, FlowId, Moment, NANOS_PER_SEC};
use alloc::collections::TryReserveError;
use alloc::vec::Vec;
use core::fmt;
use core::hash::BuildHasher;
use core::ops::Range;
use foldhash::fast::FixedState;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

/// The most entries one call to [`FlowTable::evict`] removes. It sizes the
/// array of candidates kept on the (kernel) stack during the scan: 48
/// bytes each, 3 KiB in all.
pub const MAX_EVICT_BATCH: usize = 64;

/// Slots one slice of a sliced pass visits ([`FlowTable::expire_slice`],
/// [`FlowTable::retain_slice`], [`FlowTable::evict_scan`]): what one hold
/// of the owner's lock costs, tens of microseconds, against tens of
/// milliseconds for a whole pass at 10^6 entries.
pub const SLICE_SLOTS: usize = 4096;

/// A pass made of `slice` calls from [`SlotCursor::START`], each
/// returning how many entries it removed and where the pass resumes; at
/// most `max` of them (a table's [`FlowTable::max_slices`]). Returns the
/// sum removed. The owner of a table whose lock the data path needs lets
/// each call take the lock for itself.
pub fn in_slices(
    max: usize,
    mut slice: impl FnMut(SlotCursor) -> (usize, Option<SlotCursor>),
) -> usize {
    let mut total = 0usize;
    let mut at = Some(SlotCursor::START);
    for _ in 0..max {
        let Some(from) = at else { break };
        let (n, next) = slice(from);
        total = total.saturating_add(n);
        at = next;
    }
    total
}

/// [`in_slices`] for a scan that removes nothing
/// ([`FlowTable::evict_scan`]).
pub fn scan_in_slices(max: usize, mut slice: impl FnMut(SlotCursor) -> Option<SlotCursor>) {
    in_slices(max, |at| (0, slice(at)));
}

/// Where a pass over a table's slots, made a slice at a time, resumes.
/// [`SlotCursor::START`] begins one; a slice returns the next cursor, or
/// `None` once the pass is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotCursor(usize);

impl SlotCursor {
    /// The start of a pass.
    pub const START: Self = Self(0);
}

/// Slots per chunk of a table's slab: every chunk but the last holds
/// exactly this many, so a slot's number says where it is. 512 keeps a
/// chunk of the unified flow table's entries near 100 KiB (one kernel
/// allocation, cheap to make on the packet path) and the chunk directory
/// of a 10^6-entry table under 50 KiB.
pub const CHUNK_SLOTS: usize = 1 << CHUNK_SHIFT;

/// `log2(CHUNK_SLOTS)`.
const CHUNK_SHIFT: u32 = 9;

/// The slots of a table's first chunk when its first flow arrives; the
/// chunk doubles from there up to [`CHUNK_SLOTS`].
const FIRST_CHUNK_SLOTS: usize = 16;

/// The smallest index a table makes when its first flow arrives, in
/// entries (hashbrown's 16-bucket table).
const MIN_CAPACITY: usize = 14;

/// Tables with room for at most this many entries are never compacted
/// (only freed once empty): the rebuild would cost more than it frees.
const MIN_SHRINK_CAPACITY: usize = 128;

/// The end of a slab's free list. Never a slot's number: slots number
/// fewer than `limit <= u32::MAX`.
const NO_SLOT: u32 = u32::MAX;

/// How willing a table is to give an entry up when it must make room:
/// lower ranks go first. Ordered from most to least expendable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EvictionRank {
    /// A flow that is ending anyway (TCP FIN or RST seen, TIME_WAIT).
    Closing,
    /// A flow whose packets broke its protocol's rules (a TCP segment
    /// out of window, an unexpected flag); likely a scan or an attack.
    Misbehaving,
    /// A flow that has not proven itself: a TCP handshake not finished
    /// (what a SYN flood creates).
    Incipient,
    /// A flow without connection state (UDP, ICMP, other protocols):
    /// only how recently it was hit says whether it is still in use.
    Idle,
    /// An established TCP connection: removing it breaks a working
    /// connection, so it goes last.
    Established,
    /// An entry other live state was built from (a layer decision a
    /// unified flow table entry holds, a TCP connection one shares): never
    /// evicted; it becomes evictable when what depends on it goes.
    Pinned,
}

/// What a table's value must tell the table about its entry.
pub trait FlowValue {
    /// Which idle timeout of an [`ExpiryPolicy`] applies to the entry. It
    /// may change over the entry's life (a TCP flow moves from incipient
    /// to established to closing); the table asks when it expires entries.
    fn expiry_class(&self) -> ExpiryClass;

    /// How willing the table is to evict this entry under pressure: lower
    /// goes first. Asked when the table evicts.
    fn eviction_rank(&self) -> EvictionRank;

    /// A hit the value recorded itself, later than the table's own
    /// record: a value hit under its owner's shared lock (the unified
    /// flow table's) cannot move the entry's `last_hit`. Expiry and
    /// eviction go by the later of the two. None by default.
    fn own_last_hit(&self) -> Option<Moment> {
        None
    }
}

/// How long a flow of each [`ExpiryClass`] may sit idle (not hit) before
/// [`FlowTable::expire`] removes it, in nanoseconds.
///
/// An entry last hit at `t` expires at any `now >= t + timeout`. A
/// timeout of 0 expires an entry at the first sweep; `u64::MAX` never in
/// practice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryPolicy {
    /// A TCP flow that has not finished its handshake.
    pub tcp_incipient_ns: u64,
    /// An established TCP flow.
    pub tcp_established_ns: u64,
    /// A TCP flow that is closing or in TIME_WAIT.
    pub tcp_closing_ns: u64,
    /// A UDP flow.
    pub udp_ns: u64,
    /// An ICMP or ICMPv6 flow.
    pub icmp_ns: u64,
    /// Any other IP protocol.
    pub other_ns: u64,
}

impl ExpiryPolicy {
    /// The default timeouts, chosen so that the engine, whose tables also
    /// hold NAT state, behaves as the IETF's NAT behavioural requirements
    /// ask of a NAT:
    ///
    /// - TCP incipient, 30 s: a handshake takes a round trip, and every
    ///   retransmitted SYN hits the entry again; a short timeout keeps
    ///   half-open flows (a SYN flood) from holding the table.
    /// - TCP established, 2 h 4 min: TCP keepalive probes an idle
    ///   connection every 2 hours (RFC 1122 4.2.3.6), and RFC 5382 REQ-5
    ///   asks for at least 2 h 4 min so the probe arrives before the flow
    ///   is forgotten. Idle established connections are common (database
    ///   pools, SSH sessions); expiring them sooner breaks them silently.
    /// - TCP closing or TIME_WAIT, 60 s: illumos's default TIME_WAIT
    ///   (`tcp_time_wait_interval`, 2 MSL).
    /// - UDP, 120 s: RFC 4787 REQ-5, the shortest UDP mapping timeout.
    /// - ICMP, 60 s: RFC 5508 REQ-1, the shortest ICMP query timeout.
    /// - Other protocols, 60 s.
    pub const DEFAULT: Self = Self {
        tcp_incipient_ns: 30 * NANOS_PER_SEC,
        tcp_established_ns: (2 * 3600 + 4 * 60) * NANOS_PER_SEC,
        tcp_closing_ns: 60 * NANOS_PER_SEC,
        udp_ns: 120 * NANOS_PER_SEC,
        icmp_ns: 60 * NANOS_PER_SEC,
        other_ns: 60 * NANOS_PER_SEC,
    };

    /// The idle timeout of `class`, in nanoseconds.
    pub const fn timeout_ns(&self, class: ExpiryClass) -> u64 {
        match class {
            ExpiryClass::TcpIncipient => self.tcp_incipient_ns,
            ExpiryClass::TcpEstablished => self.tcp_established_ns,
            ExpiryClass::TcpClosing => self.tcp_closing_ns,
            ExpiryClass::Udp => self.udp_ns,
            ExpiryClass::Icmp => self.icmp_ns,
            ExpiryClass::Other => self.other_ns,
        }
    }
}

impl Default for ExpiryPolicy {
    /// [`ExpiryPolicy::DEFAULT`].
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// One flow's entry: the caller's value and when the flow was last hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowEntry<V> {
    /// The caller's per-flow state.
    pub value: V,
    last_hit: Moment,
}

impl<V> FlowEntry<V> {
    fn new(value: V, now: Moment) -> Self {
        Self { value, last_hit: now }
    }

    /// When the entry was last hit, or inserted (or its value last
    /// replaced) if not hit since.
    pub const fn last_hit(&self) -> Moment {
        self.last_hit
    }

    /// Nanoseconds the entry has been idle at `now` (0 if `now` is
    /// earlier than its last hit).
    pub const fn idle_ns(&self, now: Moment) -> u64 {
        now.since(self.last_hit)
    }

    #[inline]
    fn record_hit(&mut self, now: Moment) {
        // Never backwards: another caller may already have recorded a
        // later moment than the one this caller read.
        if now > self.last_hit {
            self.last_hit = now;
        }
    }
}

impl<V: FlowValue> FlowEntry<V> {
    /// True when the entry has been idle at least as long as `policy`
    /// allows its class at `now`.
    pub fn is_expired(&self, now: Moment, policy: &ExpiryPolicy) -> bool {
        now.since(self.latest_hit()) >= policy.timeout_ns(self.value.expiry_class())
    }

    /// The later of the entry's last hit and the one its value recorded
    /// ([`FlowValue::own_last_hit`]).
    pub fn latest_hit(&self) -> Moment {
        self.value.own_last_hit().map_or(self.last_hit, |m| m.max(self.last_hit))
    }

    /// What orders entries for eviction: rank, then least recent hit.
    fn eviction_order(&self) -> (EvictionRank, Moment) {
        (self.value.eviction_rank(), self.latest_hit())
    }
}

/// Why a table refused a new flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowTableError {
    /// The table already holds `limit` entries.
    Full {
        /// The table's name.
        table: &'static str,
        /// Its entry limit.
        limit: u32,
    },
    /// The table needed to grow and the allocation failed.
    NoMemory {
        /// The table's name.
        table: &'static str,
        /// Entries it held.
        len: u32,
    },
}

impl fmt::Display for FlowTableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full { table, limit } => {
                write!(f, "flow table {table} full ({limit} entries)")
            }
            Self::NoMemory { table, len } => {
                write!(f, "flow table {table}: no memory to grow past {len} entries")
            }
        }
    }
}

/// A table's counters, and its size and limit when they were read. The
/// counters only grow (saturating); at any time
/// `len == inserts - removed - expired - evicted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowTableStats {
    /// New flows added.
    pub inserts: u64,
    /// Inserts that replaced the value of a flow already present.
    pub replaced: u64,
    /// New flows refused because the table was full.
    pub full_drops: u64,
    /// Allocations that failed: a new flow refused because the table
    /// could not grow, or a table left at its size because it could not
    /// be rebuilt smaller.
    pub alloc_failures: u64,
    /// Entries removed by [`FlowTable::expire`].
    pub expired: u64,
    /// Entries removed by [`FlowTable::evict`].
    pub evicted: u64,
    /// Entries removed by [`FlowTable::remove`], [`FlowTable::retain`] or
    /// [`FlowTable::clear`].
    pub removed: u64,
    /// Entries held.
    pub len: u32,
    /// The entry limit.
    pub limit: u32,
}

/// A bounded hash table of flows (see the module documentation).
pub struct FlowTable<V> {
    name: &'static str,
    limit: u32,
    hasher: FixedState,
    /// Slot numbers by key hash: one bucket per entry.
    index: HashTable<IndexBucket>,
    /// The entries.
    slab: Slab<V>,
    stats: FlowTableStats,
}

impl<V> fmt::Debug for FlowTable<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowTable")
            .field("name", &self.name)
            .field("len", &self.index.len())
            .field("limit", &self.limit)
            .field("allocated_bytes", &self.allocated_bytes())
            .field("stats", &self.stats)
            .finish()
    }
}

impl<V> FlowTable<V> {
    /// Entries held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when the table holds no entries.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// True when the table holds `limit` entries: a new flow would be
    /// refused.
    pub fn is_full(&self) -> bool {
        self.index.len() >= self.limit as usize
    }

    /// The most entries the table holds.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The table's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Bytes of heap the table holds now: its index, its slab's chunks
    /// and their directory.
    pub fn allocated_bytes(&self) -> usize {
        self.index.allocation_size().saturating_add(self.slab.allocation_size())
    }

    /// The table's counters, with its current size and limit.
    pub fn stats(&self) -> FlowTableStats {
        FlowTableStats { len: u32::try_from(self.len()).unwrap_or(u32::MAX), ..self.stats }
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&FlowId, &FlowEntry<V>)> {
        self.slab.iter()
    }
}

impl<V: FlowValue> FlowTable<V> {
    /// An empty table named `name` (in errors and stats) that holds at
    /// most `limit` flows. Allocates nothing until the first insert.
    pub fn new(name: &'static str, limit: u32) -> Self {
        Self {
            name,
            limit,
            hasher: FixedState::with_seed(crate::ddi::random::seed()),
            index: HashTable::new(),
            slab: Slab::new(),
            stats: FlowTableStats { limit, ..FlowTableStats::default() },
        }
    }

    /// Add the flow `id` with `value` at `now`, and return its entry.
    ///
    /// If `id` is already present its value is replaced (the old one is
    /// dropped) and the entry starts afresh: last hit at `now`. That is
    /// counted in [`FlowTableStats::replaced`], not as an insert, and
    /// succeeds even when the table is full. A new flow is refused when
    /// the table holds `limit` entries ([`FlowTableError::Full`]) or
    /// growing it fails ([`FlowTableError::NoMemory`]); both are counted
    /// and leave the table's entries unchanged.
    #[inline]
    pub fn insert(
        &mut self,
        id: FlowId,
        value: V,
        now: Moment,
    ) -> Result<&mut FlowEntry<V>, FlowTableError> {
        let hash = hash32(&self.hasher, &id);
        // The common case is one probe: the table has room, a free bucket
        // and a free slot, so the entry below neither exceeds the limit
        // nor grows anything. Otherwise a first probe tells a replacement
        // (always allowed, done here: `hashbrown`'s entry would grow an
        // index without a free bucket on its own) from a new flow
        // (refused, or made room for).
        let full = self.is_full();
        if full || !self.has_room() {
            if let Some(slot) = self.find(hash, &id) {
                let len = self.len();
                let Self { name, slab, stats, .. } = self;
                return slab
                    .entry_mut(slot)
                    .map(|entry| replace(entry, stats, value, now))
                    .ok_or_else(|| disagree(stats, name, len));
            }
            if full {
                bump(&mut self.stats.full_drops, 1);
                return Err(FlowTableError::Full { table: self.name, limit: self.limit });
            }
            self.make_room()?;
            debug_assert!(self.has_room(), "make_room left no free bucket or slot");
        }
        let len = self.len();
        let Self { name, index, slab, stats, .. } = self;
        // The index has a free bucket (checked or made above), so this
        // probe never grows it.
        let placed = match index.entry(
            table_hash(hash),
            |b| b.hash == hash && slab.holds(b.slot, &id),
            IndexBucket::rehash,
        ) {
            Entry::Occupied(found) => {
                slab.entry_mut(found.get().slot).map(|entry| replace(entry, stats, value, now))
            }
            Entry::Vacant(vacant) => {
                slab.fill(id, FlowEntry::new(value, now)).map(|(slot, entry)| {
                    vacant.insert(IndexBucket { slot, hash });
                    bump(&mut stats.inserts, 1);
                    entry
                })
            }
        };
        placed.ok_or_else(|| disagree(stats, name, len))
    }

    /// The entry of flow `id`, without recording a hit.
    #[inline(always)]
    pub fn get(&self, id: &FlowId) -> Option<&FlowEntry<V>> {
        let slot = self.find(hash32(&self.hasher, id), id)?;
        self.slab.entry(slot)
    }

    /// The entry of flow `id` to change, without recording a hit.
    #[inline(always)]
    pub fn get_mut(&mut self, id: &FlowId) -> Option<&mut FlowEntry<V>> {
        let slot = self.find(hash32(&self.hasher, id), id)?;
        self.slab.entry_mut(slot)
    }

    /// The entry of flow `id`, recording a hit at `now`: what the data
    /// path calls for each packet of a known flow.
    #[inline(always)]
    pub fn hit(&mut self, id: &FlowId, now: Moment) -> Option<&mut FlowEntry<V>> {
        let entry = self.get_mut(id)?;
        entry.record_hit(now);
        Some(entry)
    }

    /// Remove flow `id` and return its value (counted as removed).
    #[inline]
    pub fn remove(&mut self, id: &FlowId) -> Option<V> {
        let entry = self.take(id)?;
        bump(&mut self.stats.removed, 1);
        Some(entry.value)
    }

    /// Remove every entry idle at `now` for at least its class's timeout
    /// in `policy`, calling `on_expire` with each (at most once per entry,
    /// so at most `len` times). Returns how many expired. One pass over
    /// the slab: [`FlowTable::expire_slice`] until it is over.
    pub fn expire(
        &mut self,
        now: Moment,
        policy: &ExpiryPolicy,
        mut on_expire: impl FnMut(FlowId, V),
    ) -> usize {
        self.whole_pass(|t, at| t.expire_slice(now, policy, at, &mut on_expire))
    }

    /// One slice of [`FlowTable::expire`]: the entries among the
    /// [`SLICE_SLOTS`] slots from `at`. Returns how many expired and where
    /// the pass resumes (`None`: it is over, and the table was compacted
    /// if it is sparse; see [`FlowTable::retain_slice`] for what a pass
    /// made of slices sees).
    pub fn expire_slice(
        &mut self,
        now: Moment,
        policy: &ExpiryPolicy,
        at: SlotCursor,
        on_expire: impl FnMut(FlowId, V),
    ) -> (usize, Option<SlotCursor>) {
        let (n, next) = self.remove_where(at, |_, e| e.is_expired(now, policy), on_expire);
        bump(&mut self.stats.expired, n);
        if next.is_none() {
            self.shrink_if_sparse();
        }
        (n, next)
    }

    /// Make room under pressure: remove `min(n, MAX_EVICT_BATCH, len)`
    /// entries, the lowest [`EvictionRank`] first and, within a rank, the
    /// least recently hit first (ties broken by the lower [`FlowId`], so
    /// the choice never depends on the hash seed or where entries sit).
    /// [`EvictionRank::Pinned`] entries are never chosen, so fewer may go.
    /// Each is handed to `on_evict` and counted as evicted. Returns how
    /// many were evicted.
    ///
    /// Cost: one pass over the slab keeping the best candidates in a
    /// fixed array on the stack (a max-heap: O(slots log n), about 3 KiB),
    /// then one removal per candidate. No heap allocation. The pass reads
    /// the whole table, milliseconds at 10^5 entries and tens of them at
    /// 10^6: an owner that must not hold its lock that long scans a slice
    /// at a time ([`FlowTable::evict_scan`], which only reads) and then
    /// removes what it chose ([`FlowTable::evict_chosen`]).
    pub fn evict(&mut self, n: usize, on_evict: impl FnMut(FlowId, V)) -> usize {
        let want = n.min(self.len());
        if want == 0 {
            return 0;
        }
        let mut chosen = EvictionChoice::new(want);
        scan_in_slices(self.max_slices(), |at| self.evict_scan(at, &mut chosen));
        self.evict_chosen(&chosen, on_evict)
    }

    /// One slice of an eviction scan: offer `chosen` the evictable entries
    /// among the [`SLICE_SLOTS`] slots from `at`. Returns where the scan
    /// resumes, `None` once it is over. Changes nothing.
    pub fn evict_scan(&self, at: SlotCursor, chosen: &mut EvictionChoice) -> Option<SlotCursor> {
        let (slots, next) = self.slab.window(at.0);
        for (_, id, entry) in self.slab.used_in(slots) {
            let (rank, last_hit) = entry.eviction_order();
            if rank != EvictionRank::Pinned {
                chosen.offer((rank, last_hit, *id));
            }
        }
        next.map(SlotCursor)
    }

    /// Remove the entries an eviction scan chose, each only if it is
    /// still there with the rank and last hit it was chosen by: an entry
    /// whose rank changed, or whose recorded last hit moved, since the
    /// scan stays (a hit the entry's value keeps may be recorded only
    /// coarsely, see [`FlowValue::own_last_hit`]; a flow replaced at the
    /// very moment it was scanned looks unchanged). Each is handed to
    /// `on_evict` and counted as evicted. Returns how many went.
    pub fn evict_chosen(
        &mut self,
        chosen: &EvictionChoice,
        mut on_evict: impl FnMut(FlowId, V),
    ) -> usize {
        let mut evicted = 0usize;
        for &(rank, last_hit, id) in chosen.kept() {
            let unchanged = self.get(&id).is_some_and(|e| e.eviction_order() == (rank, last_hit));
            if let Some(entry) = unchanged.then(|| self.take(&id)).flatten() {
                on_evict(id, entry.value);
                evicted = evicted.saturating_add(1);
            }
        }
        bump(&mut self.stats.evicted, evicted);
        // No shrinking here: a table being evicted from is full, and
        // eviction must not allocate.
        evicted
    }

    /// Remove every entry, calling `on_remove` with each (counted as
    /// removed), and free the table's memory.
    pub fn clear(&mut self, on_remove: impl FnMut(FlowId, V)) {
        self.empty(on_remove);
        self.release_memory();
    }

    /// Remove every entry like [`FlowTable::clear`], but keep the table's
    /// allocations: for a table about to be refilled (a port reset), so
    /// refilling neither regrows nor faults in fresh memory (it fills the
    /// slab from its first slot again). Expiry returns the memory of a
    /// table that stays sparse.
    pub fn empty(&mut self, mut on_remove: impl FnMut(FlowId, V)) {
        // The index first: should a callback unwind, no bucket is left
        // naming a slot already emptied.
        self.index.clear();
        let n = self.slab.drain(|id, entry| on_remove(id, entry.value));
        bump(&mut self.stats.removed, n);
    }

    /// Keep only the entries for which `f` returns true; the others are
    /// dropped and counted as removed. Returns how many were removed. One
    /// pass over the slab: [`FlowTable::retain_slice`] until it is over.
    pub fn retain(&mut self, mut f: impl FnMut(&FlowId, &mut FlowEntry<V>) -> bool) -> usize {
        self.whole_pass(|t, at| t.retain_slice(at, &mut f))
    }

    /// One slice of [`FlowTable::retain`]: the entries among the
    /// [`SLICE_SLOTS`] slots from `at`. Returns how many were removed and
    /// where the pass resumes; `None` when it is over, and then a sparse
    /// table is compacted.
    ///
    /// Between slices the owner may drop its lock and the table change.
    /// A pass still ends, within [`FlowTable::max_slices`] slices, and
    /// sees every entry that stays in the table throughout, unless the
    /// table is emptied or compacted meanwhile (which renumbers slots);
    /// an entry added meanwhile may or may not be seen.
    pub fn retain_slice(
        &mut self,
        at: SlotCursor,
        mut f: impl FnMut(&FlowId, &mut FlowEntry<V>) -> bool,
    ) -> (usize, Option<SlotCursor>) {
        let (n, next) = self.remove_where(at, |id, e| !f(id, e), |_, _| {});
        bump(&mut self.stats.removed, n);
        if next.is_none() {
            self.shrink_if_sparse();
        }
        (n, next)
    }

    /// The most slices a pass over this table takes: enough for `limit`
    /// slots, the most its slab ever holds, and one more. An owner's loop
    /// over slices is bounded by it.
    pub fn max_slices(&self) -> usize {
        (self.limit as usize).div_ceil(SLICE_SLOTS).saturating_add(1)
    }

    /// A whole pass of `slice` calls, summing what they removed.
    fn whole_pass(
        &mut self,
        mut slice: impl FnMut(&mut Self, SlotCursor) -> (usize, Option<SlotCursor>),
    ) -> usize {
        let max = self.max_slices();
        in_slices(max, |at| slice(self, at))
    }

    /// The slot of flow `id`, whose folded hash is `hash`: one probe of
    /// the index, reading only the slot whose stored hash bits match.
    #[inline(always)]
    fn find(&self, hash: u32, id: &FlowId) -> Option<u32> {
        let slab = &self.slab;
        let found = self.index.find(table_hash(hash), |b| b.hash == hash && slab.holds(b.slot, id));
        found.map(|b| b.slot)
    }

    /// Remove flow `id` from the index and the slab, counting nothing.
    /// The first bucket whose stored hash bits match is almost always the
    /// flow's, and its slot is read once, to check the key and to empty
    /// it; only when it belongs to a flow whose low 32 hash bits collide
    /// does a second probe compare keys all the way.
    #[inline(always)]
    fn take(&mut self, id: &FlowId) -> Option<FlowEntry<V>> {
        let hash = hash32(&self.hasher, id);
        let Self { index, slab, .. } = self;
        let first = index.find_entry(table_hash(hash), |b| b.hash == hash).ok()?;
        if let Some(entry) = slab.release_if(first.get().slot, id) {
            first.remove();
            return Some(entry);
        }
        let found = index
            .find_entry(table_hash(hash), |b| b.hash == hash && slab.holds(b.slot, id))
            .ok()?;
        let (bucket, _) = found.remove();
        let taken = slab.release_if(bucket.slot, id);
        debug_assert!(taken.is_some(), "an index bucket named a free slot");
        taken
    }

    /// One slice of a pass over the slab, from `at`: remove every entry
    /// `doomed` picks (it may change the others), handing each to
    /// `on_remove`. Counts nothing; returns how many went and where the
    /// pass resumes.
    fn remove_where(
        &mut self,
        at: SlotCursor,
        mut doomed: impl FnMut(&FlowId, &mut FlowEntry<V>) -> bool,
        mut on_remove: impl FnMut(FlowId, V),
    ) -> (usize, Option<SlotCursor>) {
        let Self { hasher, index, slab, .. } = self;
        let (slots, next) = slab.window(at.0);
        let n = slab.release_where(slots, &mut doomed, |slot, id, entry| {
            let hash = hash32(hasher, &id);
            match index.find_entry(table_hash(hash), |b| b.slot == slot) {
                Ok(found) => {
                    found.remove();
                }
                Err(_) => debug_assert!(false, "a slot without its index bucket"),
            }
            on_remove(id, entry.value);
        });
        (n, next.map(SlotCursor))
    }
}

impl<V> FlowTable<V> {
    /// True when a new flow fits without growing: the index has a free
    /// bucket (one `hashbrown` fills without growing on its own; buckets
    /// left as tombstones by removals are not free) and the slab a slot.
    #[inline]
    fn has_room(&self) -> bool {
        self.index.capacity() > self.index.len() && self.slab.has_vacancy()
    }

    /// The most entries any index allocation is sized for.
    fn ceiling(&self) -> usize {
        let limit = self.limit as usize;
        limit.saturating_add(limit / 8)
    }

    fn no_memory(&mut self) -> FlowTableError {
        let len = self.len();
        no_memory(&mut self.stats, self.name, len)
    }

    /// Make sure one new flow fits without `hashbrown` growing the index
    /// on its own: when it has no free bucket, rebuild it with room for
    /// twice the live entries (at most the ceiling; the same size again
    /// when tombstones used up the free buckets, which the rebuild
    /// clears); when the slab has no free slot, grow it by a chunk.
    fn make_room(&mut self) -> Result<(), FlowTableError> {
        let len = self.len();
        if self.index.capacity() <= len {
            let target = len
                .saturating_mul(2)
                .max(MIN_CAPACITY)
                .min(self.ceiling())
                .max(len.saturating_add(1));
            self.rebuild_index(target)?;
        }
        if !self.slab.has_vacancy() && self.slab.grow(self.limit as usize).is_err() {
            return Err(self.no_memory());
        }
        Ok(())
    }

    /// Move every index bucket into a new allocation with room for
    /// `capacity` entries (`capacity >= len`). Reads only the buckets.
    fn rebuild_index(&mut self, capacity: usize) -> Result<(), FlowTableError> {
        debug_assert!(capacity >= self.len(), "rebuild smaller than the table");
        let mut fresh = HashTable::new();
        if fresh.try_reserve(capacity.max(self.len()), IndexBucket::rehash).is_err() {
            return Err(self.no_memory());
        }
        for bucket in self.index.drain() {
            // Room was reserved for all of them: this never allocates.
            fresh.insert_unique(bucket.table_hash(), bucket, IndexBucket::rehash);
        }
        self.index = fresh;
        Ok(())
    }

    /// Free the index and the slab.
    fn release_memory(&mut self) {
        self.index = HashTable::new();
        self.slab = Slab::new();
    }

    /// After removals: free the table when it is empty, and compact it
    /// (entries, index) into allocations sized for twice the live entries
    /// when less than an eighth of its slots or index is used. A failed
    /// compaction is counted and leaves the table as it was.
    fn shrink_if_sparse(&mut self) {
        let len = self.len();
        if len == 0 {
            self.release_memory();
            return;
        }
        let capacity = self.slab.capacity().max(self.index.capacity());
        if capacity <= MIN_SHRINK_CAPACITY || len.saturating_mul(8) > capacity {
            return;
        }
        // The failure is counted; the old table still works.
        let _ = self.compact(len.saturating_mul(2));
    }

    /// Move every entry into fresh chunks, and its bucket into a fresh
    /// index, each with room for `capacity` entries (`capacity >= len`,
    /// at most the limit): slots are numbered afresh from 0, densely.
    /// Everything is allocated before anything moves, so a failure
    /// leaves the table as it was.
    fn compact(&mut self, capacity: usize) -> Result<(), FlowTableError> {
        let len = self.len();
        let slots = capacity.max(FIRST_CHUNK_SLOTS).min(self.limit as usize).max(len);
        let Ok(mut slab) = Slab::with_capacity(slots) else {
            return Err(self.no_memory());
        };
        let mut index = HashTable::new();
        let buckets = capacity.max(MIN_CAPACITY).min(self.ceiling()).max(len);
        if index.try_reserve(buckets, IndexBucket::rehash).is_err() {
            return Err(self.no_memory());
        }
        // Old chunks are freed one by one as they are emptied.
        let old = core::mem::replace(&mut self.slab, Slab::new());
        for (id, entry) in old.into_entries() {
            let hash = hash32(&self.hasher, &id);
            // Room was reserved for every entry: neither allocates.
            match slab.fill(id, entry) {
                Some((slot, _)) => {
                    index.insert_unique(
                        table_hash(hash),
                        IndexBucket { slot, hash },
                        IndexBucket::rehash,
                    );
                }
                None => debug_assert!(false, "compaction ran out of reserved slots"),
            }
        }
        self.slab = slab;
        self.index = index;
        Ok(())
    }
}

/// Replace a present flow's value: the entry starts afresh at `now`.
fn replace<'a, V>(
    entry: &'a mut FlowEntry<V>,
    stats: &mut FlowTableStats,
    value: V,
    now: Moment,
) -> &'a mut FlowEntry<V> {
    bump(&mut stats.replaced, 1);
    *entry = FlowEntry::new(value, now);
    entry
}

/// What an insert answers if the index named a free slot, or the slab
/// had no room after `make_room`: neither can happen, but should it, the
/// flow is refused (counted) rather than the table trusted further.
fn disagree(stats: &mut FlowTableStats, table: &'static str, len: usize) -> FlowTableError {
    debug_assert!(false, "flow table {table}: index and slab disagree");
    no_memory(stats, table, len)
}

/// Count an allocation failure and say so.
fn no_memory(stats: &mut FlowTableStats, table: &'static str, len: usize) -> FlowTableError {
    bump(&mut stats.alloc_failures, 1);
    FlowTableError::NoMemory { table, len: u32::try_from(len).unwrap_or(u32::MAX) }
}

/// The low 32 bits of the key's foldhash: what the index keeps.
#[inline(always)]
fn hash32(hasher: &FixedState, id: &FlowId) -> u32 {
    // Truncation intended (see the module documentation).
    hasher.hash_one(id) as u32
}

/// The hash `hashbrown` sees for 32 stored bits (see the module
/// documentation): them twice over, so the bucket comes from the low
/// bits and the tag from the top seven of the 32.
#[inline(always)]
fn table_hash(hash: u32) -> u64 {
    let hash = u64::from(hash);
    hash << 32 | hash
}

/// One entry's bucket in the index: where its entry is, and enough of
/// its hash to rehash the index and to skip most slots that don't match.
#[derive(Debug, Clone, Copy)]
struct IndexBucket {
    /// The slab slot of the entry.
    slot: u32,
    /// The low 32 bits of the entry's key hash ([`hash32`]).
    hash: u32,
}

impl IndexBucket {
    #[inline]
    fn table_hash(&self) -> u64 {
        table_hash(self.hash)
    }

    /// What `hashbrown` calls to rehash a bucket: no slab access.
    fn rehash(bucket: &Self) -> u64 {
        bucket.table_hash()
    }
}

/// A slab slot: an entry, or a link in the free list.
enum Slot<V> {
    /// A live entry under its key.
    Used { id: FlowId, entry: FlowEntry<V> },
    /// A free slot: the next free one, or [`NO_SLOT`].
    Free { next: u32 },
}

/// The entries of a table (see the module documentation): chunks of
/// [`CHUNK_SLOTS`] slots, a free list through the free ones, and the
/// count of slots ever filled.
///
/// Invariants: chunks before the one holding slot `filled` are full
/// (`CHUNK_SLOTS` slots each); that one holds `filled % CHUNK_SLOTS`
/// slots; any after it hold none (room a compaction or an
/// [`Slab::drain`] left allocated). Only the last chunk may have room
/// for fewer than `CHUNK_SLOTS`. Every filled slot is either used, and
/// named by exactly one index bucket, or on the free list exactly once.
struct Slab<V> {
    chunks: Vec<Vec<Slot<V>>>,
    /// The most recently freed slot, or [`NO_SLOT`].
    free: u32,
    /// Slots filled (used or free): the next never-used slot's number.
    filled: usize,
}

impl<V> Slab<V> {
    const fn new() -> Self {
        Self { chunks: Vec::new(), free: NO_SLOT, filled: 0 }
    }

    /// An empty slab with chunks allocated for `slots` slots (and a
    /// directory for just those chunks), or nothing if any allocation
    /// fails.
    fn with_capacity(slots: usize) -> Result<Self, TryReserveError> {
        let mut chunks = Vec::new();
        chunks.try_reserve_exact(slots.div_ceil(CHUNK_SLOTS))?;
        let mut rest = slots;
        // Bounded by the directory's capacity: at most slots / 512 + 1.
        while rest > 0 && chunks.len() < chunks.capacity() {
            let n = rest.min(CHUNK_SLOTS);
            let mut chunk = Vec::new();
            chunk.try_reserve_exact(n)?;
            chunks.push(chunk);
            rest -= n;
        }
        Ok(Self { chunks, free: NO_SLOT, filled: 0 })
    }

    /// Slots allocated (used, free or never used yet).
    fn capacity(&self) -> usize {
        self.chunks.iter().map(|c| c.capacity().min(CHUNK_SLOTS)).sum()
    }

    /// Bytes of heap held: the chunks and their directory.
    fn allocation_size(&self) -> usize {
        let slots: usize = self.chunks.iter().map(Vec::capacity).sum();
        slots
            .saturating_mul(size_of::<Slot<V>>())
            .saturating_add(self.chunks.capacity().saturating_mul(size_of::<Vec<Slot<V>>>()))
    }

    #[inline(always)]
    fn slot(&self, n: u32) -> Option<&Slot<V>> {
        let n = n as usize;
        self.chunks.get(n >> CHUNK_SHIFT)?.get(n & (CHUNK_SLOTS - 1))
    }

    #[inline(always)]
    fn slot_mut(&mut self, n: u32) -> Option<&mut Slot<V>> {
        slot_mut_in(&mut self.chunks, n)
    }

    /// True when slot `n` holds flow `id`.
    #[inline(always)]
    fn holds(&self, n: u32, id: &FlowId) -> bool {
        matches!(self.slot(n), Some(Slot::Used { id: key, .. }) if key == id)
    }

    #[inline(always)]
    fn entry(&self, n: u32) -> Option<&FlowEntry<V>> {
        match self.slot(n)? {
            Slot::Used { entry, .. } => Some(entry),
            Slot::Free { .. } => None,
        }
    }

    #[inline(always)]
    fn entry_mut(&mut self, n: u32) -> Option<&mut FlowEntry<V>> {
        match self.slot_mut(n)? {
            Slot::Used { entry, .. } => Some(entry),
            Slot::Free { .. } => None,
        }
    }

    /// True when [`Slab::fill`] would find a slot without allocating.
    #[inline]
    fn has_vacancy(&self) -> bool {
        self.free != NO_SLOT
            || self
                .chunks
                .get(self.filled >> CHUNK_SHIFT)
                .is_some_and(|c| c.len() < c.capacity().min(CHUNK_SLOTS))
    }

    /// Put an entry in the most recently freed slot, else the next
    /// never-used one, and return its slot number and the entry. Never
    /// allocates: None (the entry dropped) when there is no vacancy.
    #[inline]
    fn fill(&mut self, id: FlowId, entry: FlowEntry<V>) -> Option<(u32, &mut FlowEntry<V>)> {
        let Self { chunks, free, filled } = self;
        let (n, slot) = if *free != NO_SLOT {
            let n = *free;
            let slot = slot_mut_in(chunks, n)?;
            let Slot::Free { next } = *slot else {
                debug_assert!(false, "a used slot on the free list");
                return None;
            };
            *free = next;
            *slot = Slot::Used { id, entry };
            (n, slot)
        } else {
            let k = *filled >> CHUNK_SHIFT;
            let chunk = chunks.get_mut(k)?;
            if chunk.len() >= chunk.capacity().min(CHUNK_SLOTS) {
                return None;
            }
            // From where the slot lands, so the number always finds it.
            let at = k.checked_mul(CHUNK_SLOTS)?.checked_add(chunk.len())?;
            let n = u32::try_from(at).ok().filter(|&n| n != NO_SLOT)?;
            *filled = at.saturating_add(1);
            // Within capacity: the push never allocates.
            chunk.push(Slot::Used { id, entry });
            (n, chunk.last_mut()?)
        };
        match slot {
            Slot::Used { entry, .. } => Some((n, entry)),
            Slot::Free { .. } => None,
        }
    }

    /// Take the entry out of slot `n` if it is flow `id`'s, and put the
    /// slot on the free list.
    #[inline]
    fn release_if(&mut self, n: u32, id: &FlowId) -> Option<FlowEntry<V>> {
        let slot = slot_mut_in(&mut self.chunks, n)?;
        if !matches!(slot, Slot::Used { id: key, .. } if key == id) {
            return None;
        }
        match core::mem::replace(slot, Slot::Free { next: self.free }) {
            Slot::Used { entry, .. } => {
                self.free = n;
                Some(entry)
            }
            // Not reached (checked above): put the link back.
            link @ Slot::Free { .. } => {
                *slot = link;
                None
            }
        }
    }

    /// The slots of one slice from slot `from`: at most [`SLICE_SLOTS`]
    /// of those filled, and where the next slice starts (`None` if these
    /// reach the last filled slot).
    fn window(&self, from: usize) -> (Range<u32>, Option<usize>) {
        let end = from.saturating_add(SLICE_SLOTS).min(self.filled);
        let next = (end < self.filled).then_some(end);
        // Slot numbers fit in 32 bits (`fill` hands out no others).
        let num = |n: usize| u32::try_from(n).unwrap_or(NO_SLOT);
        (num(from.min(end))..num(end), next)
    }

    /// The used slots among `slots`: number, key and entry.
    fn used_in(&self, slots: Range<u32>) -> impl Iterator<Item = (u32, &FlowId, &FlowEntry<V>)> {
        slots.filter_map(|n| match self.slot(n)? {
            Slot::Used { id, entry } => Some((n, id, entry)),
            Slot::Free { .. } => None,
        })
    }

    /// Free every entry among `slots` that `doomed` picks (it may change
    /// the others), handing each with its old slot number to
    /// `on_release`. Returns how many were freed.
    fn release_where(
        &mut self,
        slots: Range<u32>,
        mut doomed: impl FnMut(&FlowId, &mut FlowEntry<V>) -> bool,
        mut on_release: impl FnMut(u32, FlowId, FlowEntry<V>),
    ) -> usize {
        let mut n = 0usize;
        let Self { chunks, free, .. } = self;
        for number in slots {
            let Some(slot) = slot_mut_in(chunks, number) else { continue };
            let Slot::Used { id, entry } = slot else { continue };
            if !doomed(id, entry) {
                continue;
            }
            if let Slot::Used { id, entry } = core::mem::replace(slot, Slot::Free { next: *free }) {
                *free = number;
                n = n.saturating_add(1);
                on_release(number, id, entry);
            }
        }
        n
    }

    /// Take every entry out, handing each to `on_remove`, and leave the
    /// slab empty with its chunks still allocated, to be filled from slot
    /// 0 again. Returns how many there were.
    fn drain(&mut self, mut on_remove: impl FnMut(FlowId, FlowEntry<V>)) -> usize {
        self.free = NO_SLOT;
        self.filled = 0;
        let mut n = 0usize;
        for chunk in &mut self.chunks {
            for slot in chunk.drain(..) {
                if let Slot::Used { id, entry } = slot {
                    n = n.saturating_add(1);
                    on_remove(id, entry);
                }
            }
        }
        n
    }

    /// Every entry, in slot order.
    fn iter(&self) -> impl Iterator<Item = (&FlowId, &FlowEntry<V>)> {
        self.chunks.iter().flatten().filter_map(|slot| match slot {
            Slot::Used { id, entry } => Some((id, entry)),
            Slot::Free { .. } => None,
        })
    }

    /// Every entry, by value, freeing each chunk once it is emptied.
    fn into_entries(self) -> impl Iterator<Item = (FlowId, FlowEntry<V>)> {
        self.chunks.into_iter().flatten().filter_map(|slot| match slot {
            Slot::Used { id, entry } => Some((id, entry)),
            Slot::Free { .. } => None,
        })
    }

    /// Make room for one more slot when there is no vacancy: double the
    /// chunk holding the next never-used slot while it is smaller than a
    /// chunk, or else add a chunk. At most `limit` slots are ever
    /// allocated. Allocates once (twice when the chunk directory is full
    /// too) and moves at most one chunk.
    fn grow(&mut self, limit: usize) -> Result<(), TryReserveError> {
        debug_assert!(!self.has_vacancy(), "growing a slab with room");
        let k = self.filled >> CHUNK_SHIFT;
        let base = k.saturating_mul(CHUNK_SLOTS);
        // Slots chunk `k` may hold: a chunk, cut short at the limit.
        let room = CHUNK_SLOTS.min(limit.saturating_sub(base));
        if let Some(chunk) = self.chunks.get_mut(k) {
            // Full, and smaller than a chunk: double it.
            let want = chunk.capacity().saturating_mul(2).max(FIRST_CHUNK_SLOTS).min(room);
            return chunk.try_reserve_exact(want.saturating_sub(chunk.len()));
        }
        debug_assert_eq!(k, self.chunks.len(), "chunks before the open one are full");
        if self.chunks.len() == self.chunks.capacity() {
            // Double the directory, never past what the limit needs.
            let most = limit.div_ceil(CHUNK_SLOTS);
            let more = self.chunks.len().max(4).min(most.saturating_sub(self.chunks.len())).max(1);
            self.chunks.try_reserve_exact(more)?;
        }
        let first = if k == 0 { FIRST_CHUNK_SLOTS } else { CHUNK_SLOTS };
        let mut chunk = Vec::new();
        chunk.try_reserve_exact(first.min(room).max(1))?;
        // Room was reserved in the directory: this never allocates.
        if self.chunks.len() < self.chunks.capacity() {
            self.chunks.push(chunk);
        }
        Ok(())
    }
}

/// Slot `n` of `chunks`, borrowing only the chunks (so the caller may
/// change the slab's other fields meanwhile).
#[inline]
fn slot_mut_in<V>(chunks: &mut [Vec<Slot<V>>], n: u32) -> Option<&mut Slot<V>> {
    let n = n as usize;
    chunks.get_mut(n >> CHUNK_SHIFT)?.get_mut(n & (CHUNK_SLOTS - 1))
}

/// Add `n` to a counter, saturating.
fn bump(counter: &mut u64, n: usize) {
    *counter = counter.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
}

/// What orders entries for eviction, lower first: rank, last hit, and
/// the flow id to break ties (and to find the entry again).
type EvictionKey = (EvictionRank, Moment, FlowId);

/// A placeholder to fill the candidate array with.
const NO_FLOW: FlowId =
    FlowId { proto: 0, v6: false, src: [0; 16], dst: [0; 16], src_port: 0, dst_port: 0 };

/// What an eviction scan chose ([`FlowTable::evict_scan`]): the `want`
/// lowest eviction keys seen so far, as a max-heap in a fixed array
/// (about 3 KiB, for the kernel stack): `keys[0]` is the highest of
/// them, the first to be displaced.
pub struct EvictionChoice {
    keys: [EvictionKey; MAX_EVICT_BATCH],
    len: usize,
    want: usize,
}

impl EvictionChoice {
    /// An empty choice of at most `min(want, MAX_EVICT_BATCH)` entries.
    pub fn new(want: usize) -> Self {
        Self {
            keys: [(EvictionRank::Closing, Moment(0), NO_FLOW); MAX_EVICT_BATCH],
            len: 0,
            want: want.min(MAX_EVICT_BATCH),
        }
    }

    /// Keep `key` if it is among the `want` lowest seen.
    fn offer(&mut self, key: EvictionKey) {
        if self.len < self.want {
            if let Some(slot) = self.keys.get_mut(self.len) {
                *slot = key;
                self.len += 1;
                self.sift_up(self.len - 1);
            }
        } else if self.worst().is_some_and(|worst| key < worst) {
            if let Some(top) = self.keys.first_mut() {
                *top = key;
            }
            self.sift_down(0);
        }
    }

    /// The highest key kept: the first to be displaced.
    fn worst(&self) -> Option<EvictionKey> {
        self.kept().first().copied()
    }

    fn kept(&self) -> &[EvictionKey] {
        self.keys.get(..self.len).unwrap_or(&[])
    }

    fn key(&self, i: usize) -> Option<EvictionKey> {
        self.kept().get(i).copied()
    }

    fn swap(&mut self, a: usize, b: usize) {
        if let Ok([x, y]) = self.keys.get_disjoint_mut([a, b]) {
            core::mem::swap(x, y);
        }
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.key(i) <= self.key(parent) {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let mut largest = i;
            for child in [2 * i + 1, 2 * i + 2] {
                if child < self.len && self.key(child) > self.key(largest) {
                    largest = child;
                }
            }
            if largest == i {
                break;
            }
            self.swap(i, largest);
            i = largest;
        }
    }
}
