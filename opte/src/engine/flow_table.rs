//! [`FlowTable`]: a bounded hash table of per-flow state keyed by
//! [`FlowId`], the one kind of table every stateful part of the engine
//! keeps (a layer's flow state, the port's unified flow table, TCP state).
//!
//! # Theory
//!
//! **What an entry is.** A [`FlowEntry`] wraps the caller's value with
//! the times the table needs: when the entry was made, when it was last
//! hit, and how often. The value tells the table two things through
//! [`FlowValue`]: which [`ExpiryClass`] it belongs to (how long it may sit
//! idle), and its [`EvictionRank`] (how willing the table is to give it
//! up under pressure). The table never interprets the value otherwise.
//!
//! **Time.** The table never reads a clock: every operation that needs
//! the time takes a [`Moment`]. `last_hit` never moves backwards, even
//! when a caller passes a `now` read slightly earlier than another
//! caller's.
//!
//! **Limits.** Everything is bounded, and hitting a bound is counted:
//!
//! - *Entries.* At most `limit`. Adding a new flow to a full table is
//!   refused with [`FlowTableError::Full`] and counted in
//!   [`FlowTableStats::full_drops`]; the caller drops the packet with a
//!   reason, or makes room (with [`FlowTable::expire`] or
//!   [`FlowTable::evict`]) and tries again. Replacing the value of a flow
//!   already present never fails this way: it does not grow the table.
//! - *Memory.* The table owns one `hashbrown` allocation and grows it
//!   itself, never letting `hashbrown` do so: before adding a new flow it
//!   makes sure there is a free slot, rebuilding the table into a new
//!   allocation sized for twice the live entries when there is none (the
//!   same size again when the slots were used up by removals rather than
//!   by live entries). No allocation is ever sized for more than
//!   `limit + limit / 8` entries (the eighth is headroom, so that churn at
//!   the limit does not rebuild the table on every insert), so a table
//!   holds at most `B * (size_of::<(FlowId, FlowEntry<V>)>() + 1) + 16`
//!   bytes (plus alignment padding), where `B` is the power of two at or
//!   above `(limit + limit / 8) * 8 / 7`: hashbrown keeps an eighth of
//!   its buckets empty, and has one control byte per bucket and a group
//!   of 16 trailing control bytes. [`FlowTable::expire`] and
//!   [`FlowTable::retain`] rebuild the table smaller once it is less than
//!   an eighth full and free it once it is empty; [`FlowTable::clear`]
//!   frees it. While a rebuild runs, the old and the new allocation are
//!   both held.
//! - *Allocation failure.* Growing is fallible: when the kernel has no
//!   memory the insert fails with [`FlowTableError::NoMemory`], counted
//!   in [`FlowTableStats::alloc_failures`], and the table is unchanged.
//!   Nothing here panics or aborts on allocation failure.
//! - *Work per call.* Lookups, hits, inserts and removes are one hash
//!   probe (expected O(1); an insert into a full table or one without a
//!   free slot takes two). An insert that rebuilds moves every entry
//!   once, O(len): the doubling amortizes that to O(1) per insert, but
//!   the one insert pays it all, a pause of milliseconds at 10^5 entries.
//!   [`FlowTable::expire`], [`FlowTable::retain`] and [`FlowTable::clear`]
//!   are one pass over the table, O(len), calling back at most once per
//!   entry. [`FlowTable::evict`] is one pass, O(len log n) for a batch of
//!   n <= [`MAX_EVICT_BATCH`], with a fixed 3 KiB array of candidates on
//!   the stack and no heap allocation; it reads the whole table, so
//!   callers evict in batches when a table nears its limit, off the
//!   per-packet path, not one entry per new flow.
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
//! them from choosing ids that collide.
//!
//! **Locking.** None: a table is a plain value. Its owner (a port) holds
//! the lock that serializes access; every method that changes the table
//! takes `&mut self`.

use super::{ExpiryClass, FlowId, Moment, NANOS_PER_SEC};
use core::fmt;
use foldhash::fast::FixedState;
use hashbrown::HashMap;
use hashbrown::hash_map::Entry;

/// The most entries one call to [`FlowTable::evict`] removes. It sizes the
/// array of candidates kept on the (kernel) stack during the scan: 48
/// bytes each, 3 KiB in all.
pub const MAX_EVICT_BATCH: usize = 64;

/// The smallest allocation a table makes when its first flow arrives, in
/// entries (hashbrown's 16-bucket table).
const MIN_CAPACITY: usize = 14;

/// Tables with room for at most this many entries are never rebuilt
/// smaller (only freed once empty): the rebuild would cost more than it
/// frees.
const MIN_SHRINK_CAPACITY: usize = 128;

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

/// One flow's entry: the caller's value and the times the table keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowEntry<V> {
    /// The caller's per-flow state.
    pub value: V,
    created: Moment,
    last_hit: Moment,
    hits: u64,
}

impl<V> FlowEntry<V> {
    fn new(value: V, now: Moment) -> Self {
        Self { value, created: now, last_hit: now, hits: 0 }
    }

    /// When the entry was inserted (or its value last replaced).
    pub const fn created(&self) -> Moment {
        self.created
    }

    /// When the entry was last hit, or created if never hit.
    pub const fn last_hit(&self) -> Moment {
        self.last_hit
    }

    /// How many times [`FlowTable::hit`] found the entry (saturating).
    pub const fn hits(&self) -> u64 {
        self.hits
    }

    /// Nanoseconds the entry has been idle at `now` (0 if `now` is
    /// earlier than its last hit).
    pub const fn idle_ns(&self, now: Moment) -> u64 {
        now.since(self.last_hit)
    }

    fn record_hit(&mut self, now: Moment) {
        // Never backwards: another caller may already have recorded a
        // later moment than the one this caller read.
        if now > self.last_hit {
            self.last_hit = now;
        }
        self.hits = self.hits.saturating_add(1);
    }
}

impl<V: FlowValue> FlowEntry<V> {
    /// True when the entry has been idle at least as long as `policy`
    /// allows its class at `now`.
    pub fn is_expired(&self, now: Moment, policy: &ExpiryPolicy) -> bool {
        self.idle_ns(now) >= policy.timeout_ns(self.value.expiry_class())
    }

    /// What orders entries for eviction: rank, then least recent hit.
    fn eviction_order(&self) -> (EvictionRank, Moment) {
        (self.value.eviction_rank(), self.last_hit)
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
    map: HashMap<FlowId, FlowEntry<V>, FixedState>,
    stats: FlowTableStats,
}

impl<V> fmt::Debug for FlowTable<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowTable")
            .field("name", &self.name)
            .field("len", &self.map.len())
            .field("limit", &self.limit)
            .field("allocated_bytes", &self.map.allocation_size())
            .field("stats", &self.stats)
            .finish()
    }
}

impl<V: FlowValue> FlowTable<V> {
    /// An empty table named `name` (in errors and stats) that holds at
    /// most `limit` flows. Allocates nothing until the first insert.
    pub fn new(name: &'static str, limit: u32) -> Self {
        Self {
            name,
            limit,
            map: HashMap::with_hasher(FixedState::with_seed(crate::ddi::random::seed())),
            stats: FlowTableStats { limit, ..FlowTableStats::default() },
        }
    }

    /// Add the flow `id` with `value` at `now`, and return its entry.
    ///
    /// If `id` is already present its value is replaced (the old one is
    /// dropped) and the entry starts afresh: created and last hit at
    /// `now`, no hits. That is counted in [`FlowTableStats::replaced`],
    /// not as an insert, and succeeds even when the table is full. A new
    /// flow is refused when the table holds `limit` entries
    /// ([`FlowTableError::Full`]) or growing it fails
    /// ([`FlowTableError::NoMemory`]); both are counted and leave the
    /// table unchanged.
    #[inline]
    pub fn insert(
        &mut self,
        id: FlowId,
        value: V,
        now: Moment,
    ) -> Result<&mut FlowEntry<V>, FlowTableError> {
        // The common case is one probe: the table has room and a free
        // slot, so the entry below neither exceeds the limit nor grows
        // the table. Otherwise a second probe tells a new flow (refused
        // or made room for) from a replacement (always allowed).
        let full = self.is_full();
        if (full || self.map.capacity() <= self.map.len()) && !self.map.contains_key(&id) {
            if full {
                bump(&mut self.stats.full_drops, 1);
                return Err(FlowTableError::Full { table: self.name, limit: self.limit });
            }
            self.make_room()?;
            debug_assert!(self.map.capacity() > self.map.len(), "make_room left no free slot");
        }
        match self.map.entry(id) {
            Entry::Occupied(slot) => {
                bump(&mut self.stats.replaced, 1);
                let entry = slot.into_mut();
                *entry = FlowEntry::new(value, now);
                Ok(entry)
            }
            Entry::Vacant(slot) => {
                bump(&mut self.stats.inserts, 1);
                Ok(slot.insert(FlowEntry::new(value, now)))
            }
        }
    }

    /// The entry of flow `id`, without recording a hit.
    #[inline]
    pub fn get(&self, id: &FlowId) -> Option<&FlowEntry<V>> {
        self.map.get(id)
    }

    /// The entry of flow `id` to change, without recording a hit.
    #[inline]
    pub fn get_mut(&mut self, id: &FlowId) -> Option<&mut FlowEntry<V>> {
        self.map.get_mut(id)
    }

    /// The entry of flow `id`, recording a hit at `now`: what the data
    /// path calls for each packet of a known flow.
    #[inline]
    pub fn hit(&mut self, id: &FlowId, now: Moment) -> Option<&mut FlowEntry<V>> {
        let entry = self.map.get_mut(id)?;
        entry.record_hit(now);
        Some(entry)
    }

    /// Remove flow `id` and return its value (counted as removed).
    #[inline]
    pub fn remove(&mut self, id: &FlowId) -> Option<V> {
        let entry = self.map.remove(id)?;
        bump(&mut self.stats.removed, 1);
        Some(entry.value)
    }

    /// Remove every entry idle at `now` for at least its class's timeout
    /// in `policy`, calling `on_expire` with each (at most once per entry,
    /// so at most `len` times). Returns how many expired. One pass over
    /// the table.
    pub fn expire(
        &mut self,
        now: Moment,
        policy: &ExpiryPolicy,
        mut on_expire: impl FnMut(FlowId, V),
    ) -> usize {
        let mut n = 0usize;
        for (id, entry) in self.map.extract_if(|_, e| e.is_expired(now, policy)) {
            n = n.saturating_add(1);
            on_expire(id, entry.value);
        }
        bump(&mut self.stats.expired, n);
        self.shrink_if_sparse();
        n
    }

    /// Make room under pressure: remove `min(n, MAX_EVICT_BATCH, len)`
    /// entries, the lowest [`EvictionRank`] first and, within a rank, the
    /// least recently hit first (ties broken by the lower [`FlowId`], so
    /// the choice never depends on the hash seed). [`EvictionRank::Pinned`]
    /// entries are never chosen, so fewer may go. Each is handed to
    /// `on_evict` and counted as evicted. Returns how many were evicted.
    ///
    /// Cost: one pass over the table keeping the best candidates in a
    /// fixed array on the stack (a max-heap: O(len log n), about 3 KiB),
    /// then one removal per candidate. No heap allocation. The pass reads
    /// the whole table, milliseconds at 10^5 entries and tens of them at
    /// 10^6: run it off the per-packet path when a table nears its limit
    /// (and let the data path refuse new flows while it is full), or
    /// keep such tables small.
    pub fn evict(&mut self, n: usize, mut on_evict: impl FnMut(FlowId, V)) -> usize {
        let want = n.min(MAX_EVICT_BATCH).min(self.map.len());
        if want == 0 {
            return 0;
        }
        let mut best = Candidates::new(want);
        for (id, entry) in &self.map {
            let (rank, last_hit) = entry.eviction_order();
            if rank != EvictionRank::Pinned {
                best.offer((rank, last_hit, *id));
            }
        }
        let mut evicted = 0usize;
        for &(_, _, id) in best.kept() {
            if let Some(entry) = self.map.remove(&id) {
                on_evict(id, entry.value);
                evicted = evicted.saturating_add(1);
            }
        }
        debug_assert!(evicted <= want, "no more than asked");
        bump(&mut self.stats.evicted, evicted);
        // No shrinking here: a table being evicted from is full, and
        // eviction must not allocate.
        evicted
    }

    /// Remove every entry, calling `on_remove` with each (counted as
    /// removed), and free the table's memory.
    pub fn clear(&mut self, on_remove: impl FnMut(FlowId, V)) {
        self.empty(on_remove);
        self.map = HashMap::with_hasher(self.map.hasher().clone());
    }

    /// Remove every entry like [`FlowTable::clear`], but keep the table's
    /// allocation: for a table about to be refilled (a port reset), so
    /// refilling neither regrows nor faults in fresh memory. Expiry
    /// returns the memory of a table that stays sparse.
    pub fn empty(&mut self, mut on_remove: impl FnMut(FlowId, V)) {
        let mut n = 0usize;
        for (id, entry) in self.map.drain() {
            n = n.saturating_add(1);
            on_remove(id, entry.value);
        }
        bump(&mut self.stats.removed, n);
    }

    /// Keep only the entries for which `f` returns true; the others are
    /// dropped and counted as removed. Returns how many were removed. One
    /// pass over the table.
    pub fn retain(&mut self, mut f: impl FnMut(&FlowId, &mut FlowEntry<V>) -> bool) -> usize {
        let n = self.map.extract_if(|id, e| !f(id, e)).count();
        bump(&mut self.stats.removed, n);
        self.shrink_if_sparse();
        n
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when the table holds no entries.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// True when the table holds `limit` entries: a new flow would be
    /// refused.
    pub fn is_full(&self) -> bool {
        self.map.len() >= self.limit as usize
    }

    /// The most entries the table holds.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The table's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Bytes of heap the table holds now (its one allocation).
    pub fn allocated_bytes(&self) -> usize {
        self.map.allocation_size()
    }

    /// The table's counters, with its current size and limit.
    pub fn stats(&self) -> FlowTableStats {
        FlowTableStats { len: u32::try_from(self.map.len()).unwrap_or(u32::MAX), ..self.stats }
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&FlowId, &FlowEntry<V>)> {
        self.map.iter()
    }

    /// The most entries any allocation is sized for.
    fn ceiling(&self) -> usize {
        let limit = self.limit as usize;
        limit.saturating_add(limit / 8)
    }

    fn no_memory(&mut self) -> FlowTableError {
        bump(&mut self.stats.alloc_failures, 1);
        FlowTableError::NoMemory {
            table: self.name,
            len: u32::try_from(self.map.len()).unwrap_or(u32::MAX),
        }
    }

    /// Make sure one new flow fits without `hashbrown` growing the table
    /// on its own: when no slot is free, rebuild with room for twice the
    /// live entries (at most the ceiling). `capacity()` is the live
    /// entries plus the empty slots `hashbrown` may still fill; slots that
    /// removals left as tombstones are not among them, so when tombstones
    /// have used up the free slots the rebuild may keep the same size (it
    /// clears them).
    fn make_room(&mut self) -> Result<(), FlowTableError> {
        let len = self.map.len();
        if self.map.capacity() > len {
            return Ok(());
        }
        let target =
            len.saturating_mul(2).max(MIN_CAPACITY).min(self.ceiling()).max(len.saturating_add(1));
        self.rebuild(target)
    }

    /// After removals: free the table when it is empty, and rebuild it
    /// for twice the live entries when less than an eighth of it is used.
    /// A failed rebuild is counted and leaves the table as it was.
    fn shrink_if_sparse(&mut self) {
        let len = self.map.len();
        if len == 0 {
            self.map = HashMap::with_hasher(self.map.hasher().clone());
            return;
        }
        let capacity = self.map.capacity();
        if capacity <= MIN_SHRINK_CAPACITY || len.saturating_mul(8) > capacity {
            return;
        }
        // The failure is counted; the old table still works.
        let _ = self.rebuild(len.saturating_mul(2).max(MIN_CAPACITY));
    }

    /// Move every entry into a new allocation with room for `capacity`
    /// entries (`capacity >= len`).
    fn rebuild(&mut self, capacity: usize) -> Result<(), FlowTableError> {
        debug_assert!(capacity >= self.map.len(), "rebuild smaller than the table");
        let mut fresh = HashMap::with_hasher(self.map.hasher().clone());
        if fresh.try_reserve(capacity.max(self.map.len())).is_err() {
            return Err(self.no_memory());
        }
        for (id, entry) in self.map.drain() {
            // Room was reserved for all of them: this never allocates.
            fresh.insert(id, entry);
        }
        self.map = fresh;
        Ok(())
    }
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

/// The `want` lowest eviction keys seen so far, as a max-heap in a fixed
/// array: `keys[0]` is the highest of them, the first to be displaced.
struct Candidates {
    keys: [EvictionKey; MAX_EVICT_BATCH],
    len: usize,
    want: usize,
}

impl Candidates {
    fn new(want: usize) -> Self {
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
