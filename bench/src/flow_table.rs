//! Flows for the flow table benchmarks and memory test: a one-word value
//! (the smallest a real table holds) and as many distinct flow ids as
//! they need.

use opte::engine::flow_table::{EvictionRank, FlowTable, FlowValue};
use opte::engine::{ExpiryClass, FlowId, Moment};
use std::net::{IpAddr, Ipv4Addr};

/// A one-word flow value: a UDP flow, evictable by age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Word(pub u64);

impl FlowValue for Word {
    fn expiry_class(&self) -> ExpiryClass {
        ExpiryClass::Udp
    }

    fn eviction_rank(&self) -> EvictionRank {
        EvictionRank::Idle
    }
}

/// The `n`th flow id: distinct for every `n` below 2^48 (the low 32 bits
/// pick the guest's source address in 10.0.0.0/8 and beyond, the next 16
/// its source port), all towards one server, as a busy guest's flows are.
pub fn flow_id(n: u64) -> FlowId {
    let [_, _, p1, p0, a, b, c, d] = n.to_be_bytes();
    FlowId::new(
        17,
        IpAddr::V4(Ipv4Addr::new(a.wrapping_add(10), b, c, d)),
        IpAddr::V4(Ipv4Addr::new(172, 30, 0, 1)),
        u16::from_be_bytes([p1, p0]),
        53,
    )
}

/// A table with room for `limit` flows holding flows `0..len`, flow `n`
/// created at moment `n` with value `n`.
///
/// # Panics
///
/// If `len > limit`.
pub fn filled_table(name: &'static str, len: u32, limit: u32) -> FlowTable<Word> {
    let mut t = FlowTable::new(name, limit);
    for n in 0..u64::from(len) {
        if let Err(e) = t.insert(flow_id(n), Word(n), Moment(n)) {
            panic!("filling {name} to {len}: {e}");
        }
    }
    t
}
