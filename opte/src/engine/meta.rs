//! Packet metadata: typed key/value pairs that actions of one layer write
//! ([`Action::Meta`](crate::engine::action::Action)) and predicates of
//! later layers read. Metadata lives only while one packet is classified
//! (the first packet of a flow); a UFT hit never needs it.
//!
//! At most [`MAX_META_ENTRIES`] pairs: a write past that is refused and
//! the port counts the packet as dropped for it.

use alloc::sync::Arc;
use arrayvec::ArrayVec;
use core::net::IpAddr;

/// Most metadata entries one packet carries.
pub const MAX_META_ENTRIES: usize = 16;

/// A metadata value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MetaValue {
    Bool(bool),
    U64(u64),
    Ip(IpAddr),
    /// A string, shared (cloning the value allocates nothing).
    Str(Arc<str>),
}

/// The metadata table is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaFull;

/// The metadata of one packet being classified. Keys are the names the
/// network's layers define (constants), so setting one allocates nothing
/// for the key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// Inline (a packet's metadata lives on the stack of its walk: no
    /// allocation per packet).
    entries: ArrayVec<(&'static str, MetaValue), MAX_META_ENTRIES>,
}

/// Keys are usually the same static string (one pointer compare); a
/// key spelled elsewhere still matches by its text.
#[inline]
fn same_key(a: &str, b: &str) -> bool {
    core::ptr::eq(a, b) || a == b
}

impl Meta {
    /// Empty metadata.
    pub const fn new() -> Self {
        Self { entries: ArrayVec::new_const() }
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.entries.iter().find(|(k, _)| same_key(k, key)).map(|(_, v)| v)
    }

    /// Set `key` to `value`, replacing an earlier value.
    pub fn set(&mut self, key: &'static str, value: MetaValue) -> Result<(), MetaFull> {
        if let Some(slot) = self.entries.iter_mut().find(|(k, _)| same_key(k, key)) {
            slot.1 = value;
            return Ok(());
        }
        self.entries.try_push((key, value)).map_err(|_| MetaFull)
    }

    /// Remove `key`.
    pub fn remove(&mut self, key: &str) -> Option<MetaValue> {
        let i = self.entries.iter().position(|(k, _)| same_key(k, key))?;
        Some(self.entries.swap_remove(i).1)
    }

    /// Every entry.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &MetaValue)> {
        self.entries.iter().map(|(k, v)| (*k, v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True with no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
