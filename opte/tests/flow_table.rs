//! The flow table as its owners see it: limits refuse and count, nothing
//! is allocated past a limit, a full table's memory is its entries plus a
//! small index, freed slots are reused, entries expire at exactly their
//! class's timeout, eviction takes the lowest rank and then the least
//! recently hit, replacement starts an entry afresh, compaction keeps
//! every entry, passes made a slice at a time visit a bounded number of
//! slots per slice and still see everything, and the counters add up.
//!
//! A counting global allocator (per thread, so the harness's threads
//! don't count) checks what allocates, and can be told to fail, as the
//! kernel's allocator does under memory pressure.

use opte::engine::flow_table::{
    CHUNK_SLOTS, EvictionChoice, EvictionRank, ExpiryPolicy, FlowEntry, FlowTable, FlowTableError,
    FlowTableStats, FlowValue, MAX_EVICT_BATCH, SLICE_SLOTS, SlotCursor,
};
use opte::engine::{ExpiryClass, FlowId, Moment, NANOS_PER_SEC};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

struct Counting;

thread_local! {
    // Const-initialized with no destructor: reading them never allocates.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
    static FAIL_ALLOCS: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards to the system allocator unchanged, only counting (or
// returning null, which every caller of `alloc` must handle).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if FAIL_ALLOCS.with(Cell::get) {
            return std::ptr::null_mut();
        }
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap allocations this thread made while running `f`.
fn allocations<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = ALLOCS.with(Cell::get);
    let r = f();
    (r, ALLOCS.with(Cell::get) - before)
}

/// A value that says whatever the test wants about its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flow {
    class: ExpiryClass,
    rank: EvictionRank,
    tag: u32,
}

impl FlowValue for Flow {
    fn expiry_class(&self) -> ExpiryClass {
        self.class
    }

    fn eviction_rank(&self) -> EvictionRank {
        self.rank
    }
}

fn udp(tag: u32) -> Flow {
    Flow { class: ExpiryClass::Udp, rank: EvictionRank::Idle, tag }
}

fn ranked(rank: EvictionRank, tag: u32) -> Flow {
    Flow { class: ExpiryClass::Other, rank, tag }
}

/// A distinct TCP flow id per `n`.
fn id(n: u32) -> FlowId {
    let [a, b, c, d] = n.to_be_bytes();
    FlowId::new(
        6,
        IpAddr::V4(Ipv4Addr::new(10, a, b, c)),
        IpAddr::V4(Ipv4Addr::new(172, 30, 0, 1)),
        40000 + u16::from(d),
        443,
    )
}

fn secs(s: u64) -> Moment {
    Moment(s * NANOS_PER_SEC)
}

/// The counters must account for every entry.
fn assert_accounted(stats: &FlowTableStats) {
    assert_eq!(
        u64::from(stats.len),
        stats.inserts - stats.removed - stats.expired - stats.evicted,
        "len = inserts - removed - expired - evicted: {stats:?}"
    );
}

/// Buckets of the largest index a table of `limit` entries may hold: for
/// `limit + limit / 8` entries at hashbrown's 7/8 load.
fn index_buckets(limit: u32) -> usize {
    let ceiling = limit as usize + limit as usize / 8;
    (ceiling * 8 / 7).next_power_of_two()
}

/// The documented bound on a table's memory: `limit` slots the size of
/// a key and its entry, a chunk directory of three words per chunk, and
/// the index's 8-byte buckets with a control byte each and a trailing
/// group of 16 (plus a little alignment padding). A table that kept its
/// entries in the hash table's buckets would hold a whole entry per
/// bucket, and fail this at every size.
fn memory_bound<V>(limit: u32) -> usize {
    let slab = limit as usize * std::mem::size_of::<(FlowId, FlowEntry<V>)>();
    let directory = (limit as usize).div_ceil(CHUNK_SLOTS) * std::mem::size_of::<Vec<u8>>();
    slab + directory + index_buckets(limit) * 9 + 16 + 32
}

#[test]
fn full_table_refuses_counts_and_allocates_nothing() {
    let k = fakekernel::scope();
    let mut t = FlowTable::new("test", 100);
    assert_eq!(t.allocated_bytes(), 0, "nothing allocated before the first insert");
    for n in 0..100 {
        assert!(t.insert(id(n), udp(n), Moment(1)).is_ok());
    }
    assert!(t.is_full());
    let bytes = t.allocated_bytes();
    let (refused, allocs) = allocations(|| {
        (100..1100).filter(|&n| t.insert(id(n), udp(n), Moment(2)).is_err()).count()
    });
    assert_eq!(refused, 1000);
    assert_eq!(allocs, 0, "refusing a flow allocates nothing");
    assert_eq!(t.allocated_bytes(), bytes, "the table did not grow");
    assert_eq!(t.len(), 100);
    assert!(t.get(&id(100)).is_none());

    let err = t.insert(id(5000), udp(0), Moment(3)).map(|_| ()).unwrap_err();
    assert_eq!(err, FlowTableError::Full { table: "test", limit: 100 });
    assert_eq!(err.to_string(), "flow table test full (100 entries)");

    let s = t.stats();
    assert_eq!((s.inserts, s.full_drops, s.len, s.limit), (100, 1001, 100, 100));
    assert_accounted(&s);
    k.assert_clean();
}

#[test]
fn limit_zero_refuses_everything_and_allocates_nothing() {
    let k = fakekernel::scope();
    let mut t = FlowTable::<Flow>::new("none", 0);
    let (r, allocs) = allocations(|| t.insert(id(1), udp(1), Moment(0)).map(|_| ()));
    assert_eq!(r, Err(FlowTableError::Full { table: "none", limit: 0 }));
    assert_eq!(allocs, 0);
    assert_eq!(t.allocated_bytes(), 0);
    assert_eq!(t.stats().full_drops, 1);
    k.assert_clean();
}

#[test]
fn churn_at_the_limit_stays_in_one_bounded_allocation() {
    let k = fakekernel::scope();
    const LIMIT: u32 = 1000;
    let mut t = FlowTable::new("churn", LIMIT);
    for n in 0..LIMIT {
        assert!(t.insert(id(n), udp(n), Moment(u64::from(n))).is_ok());
    }
    let bytes = t.allocated_bytes();
    let buckets = index_buckets(LIMIT);
    let bound = memory_bound::<Flow>(LIMIT);
    assert!(bytes <= bound, "{bytes} > bound {bound} for {buckets} buckets");

    // Remove the oldest flow, add a new one, many times over; and replace
    // a flow's value each time, which must not grow the table either
    // (not even when the new flow took the index's last free bucket).
    let rounds = 100_000u32;
    let ((), allocs) = allocations(|| {
        for n in LIMIT..LIMIT + rounds {
            assert!(t.remove(&id(n - LIMIT)).is_some());
            assert!(t.insert(id(n), udp(n), Moment(u64::from(n))).is_ok());
            assert!(t.insert(id(n - LIMIT / 2), udp(n - LIMIT / 2), Moment(u64::from(n))).is_ok());
            assert!(t.allocated_bytes() <= bytes, "grew past the limit's allocation");
        }
    });
    // Freed slots are reused, so the entries never allocate; an index
    // rebuild (one allocation) happens only once the buckets freed since
    // the last one are used up: at least (capacity - limit) inserts apart.
    let free_after_rebuild = buckets * 7 / 8 - LIMIT as usize;
    assert!(allocs <= rounds as usize / free_after_rebuild + 1, "{allocs} rebuilds");
    assert_eq!(t.len(), LIMIT as usize);
    for n in rounds..LIMIT + rounds {
        assert_eq!(t.get(&id(n)).map(|e| e.value.tag), Some(n));
    }
    let s = t.stats();
    assert_eq!(
        (s.inserts, s.removed, s.replaced, s.full_drops),
        (u64::from(LIMIT + rounds), 100_000, 100_000, 0)
    );
    assert_accounted(&s);
    k.assert_clean();
}

#[test]
fn lookups_hits_and_removes_allocate_nothing() {
    let k = fakekernel::scope();
    let mut t = FlowTable::new("lookup", 10_000);
    for n in 0..5000 {
        assert!(t.insert(id(n), udp(n), Moment(0)).is_ok());
    }
    let ((), allocs) = allocations(|| {
        for n in 0..10_000 {
            assert_eq!(t.get(&id(n)).is_some(), n < 5000);
            assert_eq!(t.hit(&id(n), Moment(1)).is_some(), n < 5000);
            if let Some(e) = t.get_mut(&id(n)) {
                e.value.tag += 1;
            }
        }
        for n in 0..2500 {
            assert_eq!(t.remove(&id(n)).map(|v| v.tag), Some(n + 1));
        }
    });
    assert_eq!(allocs, 0);
    assert_eq!(t.len(), 2500);
    k.assert_clean();
}

#[test]
fn hits_move_last_hit_and_it_never_goes_back() {
    let k = fakekernel::scope();
    let mut t = FlowTable::new("hits", 10);
    assert!(t.insert(id(1), udp(1), secs(10)).is_ok());
    assert_eq!(t.get(&id(1)).map(FlowEntry::last_hit), Some(secs(10)), "inserted counts");
    assert!(t.hit(&id(2), secs(11)).is_none(), "a miss records nothing");
    assert_eq!(t.get(&id(1)).map(FlowEntry::last_hit), Some(secs(10)));
    for s in [12, 20, 15] {
        assert!(t.hit(&id(1), secs(s)).is_some());
    }
    // get and get_mut are not hits.
    assert!(t.get_mut(&id(1)).is_some());
    assert!(t.get(&id(1)).is_some());
    let e = t.get(&id(1)).cloned().unwrap();
    assert_eq!(e.last_hit(), secs(20), "the latest hit, not the last call's");
    assert_eq!(e.idle_ns(secs(25)), 5 * NANOS_PER_SEC);
    assert_eq!(e.idle_ns(secs(5)), 0, "a moment before the last hit is not idle time");
    k.assert_clean();
}

#[test]
fn default_policy_expires_each_class_at_exactly_its_timeout() {
    let k = fakekernel::scope();
    let policy = ExpiryPolicy::default();
    assert_eq!(policy, ExpiryPolicy::DEFAULT);
    let classes = [
        (ExpiryClass::TcpIncipient, 30),
        (ExpiryClass::TcpEstablished, 2 * 3600 + 4 * 60),
        (ExpiryClass::TcpClosing, 60),
        (ExpiryClass::Udp, 120),
        (ExpiryClass::Icmp, 60),
        (ExpiryClass::Other, 60),
    ];
    let t0 = secs(1000);
    let mut t = FlowTable::new("expiry", 100);
    for (n, (class, timeout)) in (0u32..).zip(classes) {
        assert_eq!(policy.timeout_ns(class), timeout * NANOS_PER_SEC);
        let v = Flow { class, rank: EvictionRank::Idle, tag: n };
        assert!(t.insert(id(n), v, t0).is_ok());
    }
    let mut timeouts: Vec<u64> = classes.iter().map(|&(_, s)| s).collect();
    timeouts.dedup();
    timeouts.sort_unstable();
    timeouts.dedup();
    for timeout in timeouts {
        let deadline = t0.plus(timeout * NANOS_PER_SEC);
        let mut gone = Vec::new();
        let early = t.expire(Moment(deadline.0 - 1), &policy, |_, v| gone.push(v.class));
        assert_eq!(early, 0, "nothing expires 1 ns before {timeout} s");
        let n = t.expire(deadline, &policy, |_, v| gone.push(v.class));
        let mut want: Vec<_> =
            classes.iter().filter(|&&(_, s)| s == timeout).map(|&(c, _)| c).collect();
        gone.sort_unstable();
        want.sort_unstable();
        assert_eq!(gone, want, "expired at {timeout} s");
        assert_eq!(n, want.len());
    }
    assert!(t.is_empty());
    let s = t.stats();
    assert_eq!((s.expired, s.removed), (6, 0));
    assert_accounted(&s);
    k.assert_clean();
}

#[test]
fn each_class_uses_its_own_timeout_and_hits_postpone_expiry() {
    let k = fakekernel::scope();
    // Distinct timeouts, so a class mapped to the wrong field shows.
    let policy = ExpiryPolicy {
        tcp_incipient_ns: 10,
        tcp_established_ns: 20,
        tcp_closing_ns: 30,
        udp_ns: 40,
        icmp_ns: 50,
        other_ns: 60,
    };
    let classes = [
        ExpiryClass::TcpIncipient,
        ExpiryClass::TcpEstablished,
        ExpiryClass::TcpClosing,
        ExpiryClass::Udp,
        ExpiryClass::Icmp,
        ExpiryClass::Other,
    ];
    let mut t = FlowTable::new("classes", 100);
    for (n, class) in (0u32..).zip(classes) {
        assert!(
            t.insert(id(n), Flow { class, rank: EvictionRank::Idle, tag: n }, Moment(0)).is_ok()
        );
    }
    // The UDP flow is hit at 35: it now lasts until 75.
    assert!(t.hit(&id(3), Moment(35)).is_some());
    let mut order = Vec::new();
    for now in 0..=80 {
        t.expire(Moment(now), &policy, |_, v| order.push((now, v.class)));
    }
    assert_eq!(
        order,
        [
            (10, ExpiryClass::TcpIncipient),
            (20, ExpiryClass::TcpEstablished),
            (30, ExpiryClass::TcpClosing),
            (50, ExpiryClass::Icmp),
            (60, ExpiryClass::Other),
            (75, ExpiryClass::Udp),
        ]
    );
    k.assert_clean();
}

#[test]
fn a_class_change_takes_effect_at_the_next_expiry() {
    let k = fakekernel::scope();
    let policy = ExpiryPolicy::DEFAULT;
    let mut t = FlowTable::new("class-change", 10);
    let v = Flow { class: ExpiryClass::TcpIncipient, rank: EvictionRank::Incipient, tag: 0 };
    assert!(t.insert(id(0), v, secs(0)).is_ok());
    if let Some(e) = t.get_mut(&id(0)) {
        e.value.class = ExpiryClass::TcpEstablished;
    }
    assert_eq!(t.expire(secs(3600), &policy, |_, _| {}), 0, "established: kept an hour");
    assert!(!t.get(&id(0)).unwrap().is_expired(secs(3600), &policy));
    if let Some(e) = t.get_mut(&id(0)) {
        e.value.class = ExpiryClass::TcpClosing;
    }
    assert_eq!(t.expire(secs(3600), &policy, |_, _| {}), 1, "closing: long past 60 s");
    k.assert_clean();
}

#[test]
fn eviction_takes_lowest_rank_then_least_recently_hit() {
    let k = fakekernel::scope();
    use EvictionRank::*;
    // (tag, rank, last hit in seconds)
    let flows = [
        (0, Established, 1),
        (1, Idle, 5),
        (2, Idle, 2),
        (3, Incipient, 9),
        (4, Closing, 10),
        (5, Misbehaving, 3),
        (6, Closing, 4),
    ];
    let mut t = FlowTable::new("evict", 100);
    for (tag, rank, at) in flows {
        assert!(t.insert(id(tag), ranked(rank, tag), secs(at)).is_ok());
    }
    let batch = |t: &mut FlowTable<Flow>, n: usize| {
        let mut tags = BTreeSet::new();
        let count = t.evict(n, |fid, v| {
            assert_eq!(fid, id(v.tag), "handed back under its own id");
            tags.insert(v.tag);
        });
        assert_eq!(count, tags.len());
        tags
    };
    assert_eq!(batch(&mut t, 1), BTreeSet::from([6]), "oldest closing");
    assert_eq!(batch(&mut t, 2), BTreeSet::from([4, 5]), "then closing, then misbehaving");
    // Hitting flow 2 makes it the more recent of the two idle flows.
    assert!(t.hit(&id(2), secs(20)).is_some());
    assert_eq!(batch(&mut t, 2), BTreeSet::from([3, 1]), "incipient, then the older idle");
    assert_eq!(batch(&mut t, 1), BTreeSet::from([2]));
    assert_eq!(batch(&mut t, 10), BTreeSet::from([0]), "established last");
    assert_eq!(batch(&mut t, 10), BTreeSet::new(), "nothing left");
    assert_eq!(batch(&mut t, 0), BTreeSet::new());
    let s = t.stats();
    assert_eq!((s.evicted, s.len), (7, 0));
    assert_accounted(&s);
    k.assert_clean();
}

#[test]
fn eviction_batches_match_a_full_sort_and_allocate_nothing() {
    let k = fakekernel::scope();
    let ranks = [
        EvictionRank::Closing,
        EvictionRank::Misbehaving,
        EvictionRank::Incipient,
        EvictionRank::Idle,
        EvictionRank::Established,
    ];
    let mut t = FlowTable::new("evict-many", 10_000);
    // A reference list, sorted the slow way: (rank, last hit, tag).
    let mut reference = Vec::new();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for tag in 0..5000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let rank = ranks[(x % 5) as usize];
        // Distinct times: the order is fully determined.
        let at = Moment((x >> 8) % 1_000_000 * 10_000 + u64::from(tag));
        assert!(t.insert(id(tag), ranked(rank, tag), at).is_ok());
        reference.push((rank, at, tag));
    }
    reference.sort_unstable();
    let mut expected = reference.iter().map(|&(_, _, tag)| tag);
    let mut rounds = 0;
    while !t.is_empty() {
        let mut got = Vec::with_capacity(MAX_EVICT_BATCH);
        let (n, allocs) = allocations(|| t.evict(usize::MAX, |_, v| got.push(v.tag)));
        assert_eq!(allocs, 0, "evicting allocates nothing");
        let got: BTreeSet<u32> = got.into_iter().collect();
        let want: BTreeSet<u32> = expected.by_ref().take(MAX_EVICT_BATCH).collect();
        assert_eq!(n, want.len(), "a batch is capped at MAX_EVICT_BATCH");
        assert_eq!(got, want, "batch {rounds}");
        rounds += 1;
    }
    assert_eq!(rounds, 5000_usize.div_ceil(MAX_EVICT_BATCH));
    assert_eq!(t.stats().evicted, 5000);
    k.assert_clean();
}

#[test]
fn eviction_ties_go_to_the_lowest_flow_ids() {
    let k = fakekernel::scope();
    let mut t = FlowTable::new("ties", 1000);
    for n in 0..500 {
        assert!(t.insert(id(n), ranked(EvictionRank::Idle, n), Moment(7)).is_ok());
    }
    // One lower-ranked flow goes first, then ties fill the batch: the
    // lowest flow ids (here, the lowest source ports), whatever the seed.
    assert!(t.insert(id(999), ranked(EvictionRank::Closing, 999), Moment(9)).is_ok());
    let mut got = BTreeSet::new();
    assert_eq!(t.evict(10, |_, v| assert!(got.insert(v.tag))), 10);
    assert_eq!(got, [999].into_iter().chain(0..9).collect());
    assert_eq!(t.len(), 491);
    k.assert_clean();
}

#[test]
fn replacing_a_flow_starts_its_entry_afresh() {
    let k = fakekernel::scope();
    let mut t = FlowTable::new("replace", 2);
    assert!(t.insert(id(1), udp(1), secs(1)).is_ok());
    assert!(t.insert(id(2), udp(2), secs(1)).is_ok());
    for s in 2..5 {
        assert!(t.hit(&id(1), secs(s)).is_some());
    }
    // The table is full, but replacing does not grow it.
    let (r, allocs) = allocations(|| {
        t.insert(id(1), ranked(EvictionRank::Established, 7), secs(9)).map(|e| e.clone())
    });
    assert_eq!(allocs, 0);
    let e = r.unwrap();
    assert_eq!(e.value, ranked(EvictionRank::Established, 7));
    assert_eq!(e.last_hit(), secs(9));
    assert_eq!(t.get(&id(1)), Some(&e));
    assert_eq!(t.len(), 2);
    let s = t.stats();
    assert_eq!((s.inserts, s.replaced, s.full_drops), (2, 1, 0));
    assert_accounted(&s);
    k.assert_clean();
}

#[test]
fn clear_hands_back_everything_and_frees_the_table() {
    let k = fakekernel::scope();
    let mut t = FlowTable::new("clear", 1000);
    for n in 0..300 {
        assert!(t.insert(id(n), udp(n), Moment(0)).is_ok());
    }
    let mut tags = BTreeSet::new();
    t.clear(|fid, v| {
        assert_eq!(fid, id(v.tag));
        tags.insert(v.tag);
    });
    assert_eq!(tags, (0..300).collect());
    assert!(t.is_empty());
    assert_eq!(t.allocated_bytes(), 0, "clear frees the table");
    assert_eq!(t.stats().removed, 300);
    // Still usable afterwards.
    assert!(t.insert(id(1), udp(1), Moment(1)).is_ok());
    assert_accounted(&t.stats());
    k.assert_clean();
}

/// Pinned entries (state other live entries were built from) are never
/// evicted, whatever the pressure.
#[test]
fn pinned_entries_are_never_evicted() {
    let k = fakekernel::scope();
    let mut t = FlowTable::new("pinned", 100);
    for n in 0..10 {
        let rank = if n < 7 { EvictionRank::Pinned } else { EvictionRank::Idle };
        assert!(t.insert(id(n), Flow { class: ExpiryClass::Udp, rank, tag: n }, Moment(0)).is_ok());
    }
    let mut gone = Vec::new();
    assert_eq!(t.evict(10, |_, v| gone.push(v.tag)), 3);
    gone.sort_unstable();
    assert_eq!(gone, [7, 8, 9]);
    assert_eq!(t.evict(10, |_, _| {}), 0);
    assert_eq!(t.len(), 7);
    k.assert_clean();
}

#[test]
fn empty_hands_back_everything_and_keeps_the_allocation() {
    let k = fakekernel::scope();
    let mut t = FlowTable::new("empty", 1000);
    for n in 0..300 {
        assert!(t.insert(id(n), udp(n), Moment(0)).is_ok());
    }
    let bytes = t.allocated_bytes();
    let mut n = 0;
    t.empty(|_, _| n += 1);
    assert_eq!((n, t.len()), (300, 0));
    assert_eq!(t.allocated_bytes(), bytes, "empty keeps the table's memory");
    assert_eq!(t.stats().removed, 300);
    for n in 0..300 {
        assert!(t.insert(id(n), udp(n), Moment(1)).is_ok());
    }
    assert_eq!(t.allocated_bytes(), bytes, "refilling needs no growth");
    // Expiry of a sparse table returns the memory.
    t.empty(|_, _| {});
    t.retain(|_, _| true);
    assert_eq!(t.allocated_bytes(), 0);
    assert_accounted(&t.stats());
    k.assert_clean();
}

#[test]
fn retain_keeps_what_the_predicate_keeps_and_may_change_it() {
    let k = fakekernel::scope();
    let mut t = FlowTable::new("retain", 10_000);
    for n in 0..4000 {
        assert!(t.insert(id(n), udp(n), Moment(0)).is_ok());
    }
    let removed = t.retain(|fid, e| {
        assert_eq!(*fid, id(e.value.tag));
        e.value.tag += 100_000;
        e.value.tag % 2 == 0
    });
    assert_eq!(removed, 2000);
    assert_eq!(t.len(), 2000);
    for n in 0..4000 {
        let want = (n % 2 == 0).then_some(n + 100_000);
        assert_eq!(t.get(&id(n)).map(|e| e.value.tag), want);
    }
    assert_eq!(t.iter().count(), 2000);
    assert!(t.iter().all(|(fid, e)| *fid == id(e.value.tag - 100_000)));
    let s = t.stats();
    assert_eq!((s.removed, s.len), (2000, 2000));
    assert_accounted(&s);
    k.assert_clean();
}

#[test]
fn a_mostly_expired_table_gives_its_memory_back() {
    let k = fakekernel::scope();
    let policy = ExpiryPolicy::DEFAULT;
    let mut t = FlowTable::new("shrink", 100_000);
    for n in 0..50_000 {
        // Ten flows stay busy; the rest go idle.
        let at = if n < 10 { secs(200) } else { secs(0) };
        assert!(t.insert(id(n), udp(n), at).is_ok());
    }
    let big = t.allocated_bytes();
    assert_eq!(t.expire(secs(200), &policy, |_, _| {}), 49_990);
    assert!(t.allocated_bytes() * 100 < big, "{} of {big} bytes kept", t.allocated_bytes());
    for n in 0..10 {
        assert!(t.get(&id(n)).is_some());
    }
    assert_eq!(t.expire(secs(1000), &policy, |_, _| {}), 10);
    assert_eq!(t.allocated_bytes(), 0);
    assert_accounted(&t.stats());
    k.assert_clean();
}

#[test]
fn freed_slots_are_reused_before_the_table_grows() {
    let k = fakekernel::scope();
    // Eight whole chunks, far below the limit, so the slab could grow.
    const N: u32 = 8 * CHUNK_SLOTS as u32;
    let mut t = FlowTable::new("reuse", 100_000);
    for n in 0..N {
        assert!(t.insert(id(n), udp(n), Moment(0)).is_ok());
    }
    let bytes = t.allocated_bytes();
    // Free a quarter of the slots, spread over every chunk, then add as
    // many new flows: they take the freed slots. (The index, grown to
    // twice the live entries on its last growth at 3584, has room for
    // them too.)
    let ((), allocs) = allocations(|| {
        for n in (0..N).step_by(4) {
            assert_eq!(t.remove(&id(n)).map(|v| v.tag), Some(n));
        }
        for n in N..N + N / 4 {
            assert!(t.insert(id(n), udp(n), Moment(1)).is_ok());
        }
    });
    assert_eq!(allocs, 0, "the new flows took freed slots");
    assert_eq!(t.allocated_bytes(), bytes);
    assert_eq!(t.len(), N as usize);
    for n in 0..N + N / 4 {
        let want = (n >= N || !n.is_multiple_of(4)).then_some(n);
        assert_eq!(t.get(&id(n)).map(|e| e.value.tag), want, "flow {n}");
    }
    assert_eq!(t.iter().count(), N as usize);
    assert!(t.iter().all(|(fid, e)| *fid == id(e.value.tag)));
    // One flow more than the slots: now the slab grows, by one chunk.
    assert!(t.insert(id(2 * N), udp(2 * N), Moment(2)).is_ok());
    let grown = t.allocated_bytes() - bytes;
    let chunk = CHUNK_SLOTS * std::mem::size_of::<(FlowId, FlowEntry<Flow>)>();
    assert!(grown >= chunk && grown <= 2 * chunk, "grew by {grown} bytes for one flow");
    let s = t.stats();
    assert_eq!((s.inserts, s.removed), (u64::from(N + N / 4 + 1), u64::from(N / 4)));
    assert_accounted(&s);
    k.assert_clean();
}

#[test]
fn compacting_a_sparse_table_keeps_every_entry() {
    let k = fakekernel::scope();
    let policy = ExpiryPolicy::DEFAULT;
    const N: u32 = 50_000;
    let mut t = FlowTable::new("compact", 100_000);
    for n in 0..N {
        assert!(t.insert(id(n), udp(n), secs(0)).is_ok());
    }
    // Every 97th flow is kept busy, with its own last hit; the rest go
    // idle. Some of those are removed first, leaving free slots behind.
    let busy = |n: u32| n.is_multiple_of(97);
    let hit_at = |n: u32| Moment(secs(200).0 + u64::from(n));
    for n in (0..N).filter(|&n| busy(n)) {
        assert!(t.hit(&id(n), hit_at(n)).is_some());
    }
    let removed = |n: u32| n % 5 == 1 && !busy(n);
    for n in (0..N).filter(|&n| removed(n)) {
        assert!(t.remove(&id(n)).is_some());
    }
    let big = t.allocated_bytes();
    let kept = (0..N).filter(|&n| busy(n)).count();
    let gone = t.expire(secs(200), &policy, |fid, v| assert_eq!(fid, id(v.tag)));
    assert_eq!(gone + kept + (0..N).filter(|&n| removed(n)).count(), N as usize);
    let small = t.allocated_bytes();
    assert!(small * 20 < big, "{small} of {big} bytes kept");
    // Every kept entry survived the move, with its value and last hit.
    assert_eq!(t.len(), kept);
    for n in 0..N {
        let want = busy(n).then(|| (n, hit_at(n)));
        assert_eq!(t.get(&id(n)).map(|e| (e.value.tag, e.last_hit())), want, "flow {n}");
    }
    assert_eq!(t.iter().count(), kept);
    assert!(t.iter().all(|(fid, e)| *fid == id(e.value.tag)));
    // The compacted table works as before: removes, hits, new flows.
    assert_eq!(t.remove(&id(97)).map(|v| v.tag), Some(97));
    assert!(t.hit(&id(0), secs(300)).is_some());
    for n in N..N + 1000 {
        assert!(t.insert(id(n), udp(n), secs(300)).is_ok());
    }
    assert_eq!(t.len(), kept - 1 + 1000);
    assert_eq!(t.get(&id(N + 999)).map(|e| e.value.tag), Some(N + 999));
    assert_eq!(t.get(&id(194)).map(|e| e.value.tag), Some(194));
    assert_accounted(&t.stats());
    k.assert_clean();
}

#[test]
fn failed_growth_refuses_the_flow_and_keeps_the_table() {
    let k = fakekernel::scope();
    let mut t = FlowTable::new("nomem", 1000);
    let n = 5;
    for m in 0..n {
        assert!(t.insert(id(m), udp(m), Moment(0)).is_ok());
    }
    // With the allocator failing, flows go in while the table has room;
    // the first that needs it to grow is refused, and goes in once
    // memory is back. Several rounds, so that both the index and the
    // entries' slab fail to grow (they grow at different sizes).
    let mut next = 10_000;
    for round in 1..=8u64 {
        let before = t.len();
        FAIL_ALLOCS.with(|f| f.set(true));
        let mut r = Ok(());
        let mut tries = 0;
        while r.is_ok() && tries < 1000 {
            r = t.insert(id(next), udp(next), Moment(1)).map(|_| ());
            next += 1;
            tries += 1;
        }
        // Replacing a flow needs no memory: it still works.
        let replaced = t.insert(id(0), udp(0), Moment(1)).map(|_| ());
        FAIL_ALLOCS.with(|f| f.set(false));
        let len = u32::try_from(t.len()).unwrap();
        assert_eq!(r, Err(FlowTableError::NoMemory { table: "nomem", len }), "round {round}");
        assert!(r.unwrap_err().to_string().contains("no memory"));
        assert_eq!(replaced, Ok(()));
        assert!(t.len() >= before);
        assert!(t.get(&id(next - 1)).is_none(), "the refused flow is not in");
        for m in 0..n {
            assert_eq!(t.get(&id(m)).map(|e| e.value.tag), Some(m), "earlier flows survive");
        }
        for m in 10_000..next - 1 {
            assert_eq!(t.get(&id(m)).map(|e| e.value.tag), Some(m), "flows let in survive");
        }
        let s = t.stats();
        assert_eq!((s.alloc_failures, s.full_drops), (round, 0));
        assert_accounted(&s);
        // Once memory is back, the same flow goes in.
        assert!(t.insert(id(next - 1), udp(next - 1), Moment(2)).is_ok());
    }
    assert_eq!(t.iter().count(), t.len());
    k.assert_clean();
}

/// Expiry a slice at a time: each slice visits at most `SLICE_SLOTS`
/// slots, a pass takes as many slices as the slots need (within
/// `max_slices`), and flows added and removed between slices neither
/// stop the pass nor hide an entry that stayed throughout.
#[test]
fn a_pass_in_slices_is_bounded_and_sees_every_entry_that_stays() {
    let k = fakekernel::scope();
    let n = 2 * SLICE_SLOTS as u32 + 100;
    let mut t = FlowTable::new("slices", 4 * n);
    for i in 0..n {
        assert!(t.insert(id(i), udp(i), secs(1)).is_ok());
    }
    let policy = ExpiryPolicy::DEFAULT;
    let late = Moment(secs(1).0 + policy.udp_ns);
    let mut at = Some(SlotCursor::START);
    let (mut slices, mut expired) = (0, BTreeSet::new());
    while let Some(from) = at {
        let mut this = 0;
        let (gone, next) = t.expire_slice(late, &policy, from, |fid, v| {
            assert_eq!(fid, id(v.tag));
            expired.insert(v.tag);
            this += 1;
        });
        assert_eq!(gone, this);
        assert!(this <= SLICE_SLOTS, "a slice visits at most SLICE_SLOTS slots");
        slices += 1;
        assert!(slices <= t.max_slices(), "a pass ends within max_slices");
        // Between slices the table changes: a new flow (not yet idle)
        // arrives, and one of the flows not yet visited leaves.
        assert!(t.insert(id(n + slices as u32), udp(n + slices as u32), late).is_ok());
        if next.is_some() {
            let leaving = n - 1 - slices as u32;
            assert!(t.remove(&id(leaving)).is_some(), "not visited yet");
            expired.insert(leaving);
        }
        at = next;
    }
    assert_eq!(slices, (n as usize).div_ceil(SLICE_SLOTS));
    assert_eq!(expired, (0..n).collect(), "every entry that stayed expired, each once");
    assert_eq!(t.len(), slices, "the flows added meanwhile are not idle");
    assert_accounted(&t.stats());
    k.assert_clean();
}

/// Eviction scanned a slice at a time and removed afterwards: what was
/// hit or replaced between the scan and the removal stays.
#[test]
fn eviction_in_slices_spares_what_changed_since_the_scan() {
    let k = fakekernel::scope();
    let n = SLICE_SLOTS as u32 + 10;
    let mut t = FlowTable::new("evict-slices", n);
    for i in 0..n {
        // Older flows have lower tags: tags 0.. are the first to go.
        assert!(t.insert(id(i), ranked(EvictionRank::Idle, i), Moment(u64::from(i))).is_ok());
    }
    let mut chosen = EvictionChoice::new(4);
    let mut at = Some(SlotCursor::START);
    let mut slices = 0;
    while let Some(from) = at {
        at = t.evict_scan(from, &mut chosen);
        slices += 1;
        assert!(slices <= t.max_slices());
    }
    assert_eq!(slices, 2);
    // Flow 0 is hit and flow 1 replaced after the scan chose them.
    assert!(t.hit(&id(0), Moment(u64::from(n))).is_some());
    assert!(t.insert(id(1), ranked(EvictionRank::Idle, 1), Moment(u64::from(n))).is_ok());
    let mut gone = BTreeSet::new();
    assert_eq!(t.evict_chosen(&chosen, |_, v| assert!(gone.insert(v.tag))), 2);
    assert_eq!(gone, BTreeSet::from([2, 3]));
    assert_eq!(t.stats().evicted, 2);
    assert_accounted(&t.stats());
    k.assert_clean();
}
