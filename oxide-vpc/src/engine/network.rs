//! [`VpcNetwork`]: the address mappings shared by every port of a host.
//!
//! - **V2P** (virtual to physical): `(VNI, guest IP)` -> the guest's MAC
//!   and the underlay address of the host it runs on. The overlay layer
//!   reads it to encapsulate traffic to another guest.
//! - **V2B** (virtual to boundary): internet prefix -> the boundary
//!   tunnel endpoints that lead there, longest prefix first. The overlay
//!   layer reads it to encapsulate traffic to the internet.
//!
//! Changing a mapping takes effect for existing flows: every registered
//! port's unified flow table is made stale ([`opte::engine::port::Port::invalidate_uft`]),
//! so each flow's next packet walks the layers again and is encapsulated
//! with the new mapping, while keeping its firewall and NAT state.
//!
//! # Locking
//!
//! - `v2p`, `v2b` (read/write locks): the overlay takes them for reading
//!   on the first packet of a flow (never on a UFT hit); commands take
//!   them for writing.
//! - `ports` (mutex): the registered ports, taken by port creation and
//!   removal and after a mapping change (never while `v2p` or `v2b` is
//!   held).

use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::fmt;
use core::hash::BuildHasher;
use core::net::IpAddr;
use hashbrown::{DefaultHashBuilder, HashMap};

use opte::ddi::sync::{KMutex, KRwLock};
use opte_api::{IpCidr, Vni};

use super::vpc_port::VpcPort;
use crate::api::{CfgError, TunnelEndpoint, V2bMapping, V2pMapping};

/// Most V2P mappings one host holds.
pub const MAX_V2P: usize = 1 << 20;
/// Most V2B prefixes one host holds.
pub const MAX_V2B: usize = 4096;

/// Why a mapping command was refused (nothing changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkError {
    /// The table is at its limit.
    TableFull { table: &'static str, max: usize },
    /// The table could not grow: the kernel had no memory for it.
    NoMemory { table: &'static str },
    /// No mapping for this key.
    NoSuchMapping,
    /// The mapping is malformed.
    Cfg(CfgError),
}

impl fmt::Display for NetworkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TableFull { table, max } => write!(f, "{table} table full ({max} mappings)"),
            Self::NoMemory { table } => write!(f, "{table} table cannot grow: no memory"),
            Self::NoSuchMapping => f.write_str("no such mapping"),
            Self::Cfg(e) => e.fmt(f),
        }
    }
}

/// Shards of the V2P table. A host may hold 10^6 mappings: a hash table
/// looks one up without walking a tree of them, and growing one shard
/// rehashes a 64th of them under the write lock (a whole table of 10^6
/// took 65 ms to grow once, stopping every port's first packets).
const V2P_SHARDS: usize = 64;

/// The V2P mappings by (VNI, address), in [`V2P_SHARDS`] hash tables.
struct V2pTable {
    shards: [HashMap<(Vni, IpAddr), V2pMapping>; V2P_SHARDS],
    /// Mappings in all shards.
    len: usize,
    /// Picks a key's shard (seeded apart from the shards' own hashers).
    pick: DefaultHashBuilder,
}

impl V2pTable {
    fn new() -> Self {
        Self {
            shards: core::array::from_fn(|_| HashMap::new()),
            len: 0,
            pick: DefaultHashBuilder::default(),
        }
    }

    /// The shard of `key`: the top six bits of its hash.
    fn index(&self, key: &(Vni, IpAddr)) -> usize {
        (self.pick.hash_one(key) >> 58) as usize
    }

    fn shard(&self, key: &(Vni, IpAddr)) -> Option<&HashMap<(Vni, IpAddr), V2pMapping>> {
        self.shards.get(self.index(key))
    }

    fn shard_mut(
        &mut self,
        key: &(Vni, IpAddr),
    ) -> Option<&mut HashMap<(Vni, IpAddr), V2pMapping>> {
        let i = self.index(key);
        self.shards.get_mut(i)
    }
}

/// The host-wide V2P and V2B tables, and the ports that read them.
pub struct VpcNetwork {
    v2p: KRwLock<V2pTable>,
    /// Sorted by prefix length, longest first (then by prefix).
    v2b: KRwLock<Vec<V2bMapping>>,
    ports: KMutex<Vec<Weak<VpcPort>>>,
}

impl Default for VpcNetwork {
    fn default() -> Self {
        Self::new()
    }
}

impl VpcNetwork {
    /// Empty tables.
    pub fn new() -> Self {
        Self {
            v2p: KRwLock::new(V2pTable::new()),
            v2b: KRwLock::new(Vec::new()),
            ports: KMutex::new(Vec::new()),
        }
    }

    /// Where the guest with `ip` on VPC `vni` lives.
    pub fn v2p(&self, vni: Vni, ip: IpAddr) -> Option<V2pMapping> {
        self.v2p.read().shard(&(vni, ip)).and_then(|s| s.get(&(vni, ip))).copied()
    }

    /// One of the boundary endpoints for internet address `ip` (longest
    /// matching prefix), chosen by
    /// `hash` (a flow's stable hash, so each flow keeps its endpoint and
    /// flows spread over them); allocates nothing.
    pub fn v2b_pick(&self, ip: IpAddr, hash: u32) -> Option<TunnelEndpoint> {
        let t = self.v2b.read();
        let ends = &t.iter().find(|m| m.prefix.contains(ip))?.boundaries;
        let n = u32::try_from(ends.len()).ok().filter(|n| *n > 0)?;
        ends.get(usize::try_from(hash % n).ok()?).copied()
    }

    /// Add or replace a V2P mapping.
    pub fn set_v2p(&self, m: V2pMapping) -> Result<(), NetworkError> {
        {
            let key = (m.vni, m.ip);
            let mut t = self.v2p.write();
            let len = t.len;
            // Always a shard (the index is below `V2P_SHARDS`).
            let shard = t.shard_mut(&key).ok_or(NetworkError::NoMemory { table: "V2P" })?;
            let new = !shard.contains_key(&key);
            if new {
                if len >= MAX_V2P {
                    return Err(NetworkError::TableFull { table: "V2P", max: MAX_V2P });
                }
                // Growing is fallible: the insert below never allocates.
                shard.try_reserve(1).map_err(|_| NetworkError::NoMemory { table: "V2P" })?;
            }
            shard.insert(key, m);
            t.len += usize::from(new);
        }
        self.invalidate_ports();
        Ok(())
    }

    /// Remove the V2P mapping of `ip` on `vni`.
    pub fn clear_v2p(&self, vni: Vni, ip: IpAddr) -> Result<V2pMapping, NetworkError> {
        let m = {
            let mut t = self.v2p.write();
            let m = t.shard_mut(&(vni, ip)).and_then(|s| s.remove(&(vni, ip)));
            let m = m.ok_or(NetworkError::NoSuchMapping)?;
            t.len = t.len.saturating_sub(1);
            m
        };
        self.invalidate_ports();
        Ok(m)
    }

    /// Every V2P mapping, ordered by VNI and address.
    pub fn dump_v2p(&self) -> Vec<V2pMapping> {
        let mut all: Vec<V2pMapping> =
            self.v2p.read().shards.iter().flat_map(|s| s.values().copied()).collect();
        all.sort_unstable_by_key(|m| (m.vni, m.ip));
        all
    }

    /// Add or replace the V2B mapping of a prefix.
    pub fn set_v2b(&self, m: V2bMapping) -> Result<(), NetworkError> {
        m.validate().map_err(NetworkError::Cfg)?;
        {
            let mut t = self.v2b.write();
            if let Some(e) = t.iter_mut().find(|e| e.prefix == m.prefix) {
                *e = m;
            } else {
                if t.len() >= MAX_V2B {
                    return Err(NetworkError::TableFull { table: "V2B", max: MAX_V2B });
                }
                t.push(m);
                t.sort_by(|a, b| {
                    b.prefix.prefix_len().cmp(&a.prefix.prefix_len()).then(a.prefix.cmp(&b.prefix))
                });
            }
        }
        self.invalidate_ports();
        Ok(())
    }

    /// Remove the V2B mapping of `prefix`.
    pub fn clear_v2b(&self, prefix: IpCidr) -> Result<V2bMapping, NetworkError> {
        let m = {
            let mut t = self.v2b.write();
            let at =
                t.iter().position(|e| e.prefix == prefix).ok_or(NetworkError::NoSuchMapping)?;
            t.remove(at)
        };
        self.invalidate_ports();
        Ok(m)
    }

    /// Every V2B mapping, longest prefix first.
    pub fn dump_v2b(&self) -> Vec<V2bMapping> {
        self.v2b.read().clone()
    }

    /// Register a port so mapping changes reach its flows (done by
    /// [`VpcPort::new`]).
    pub(crate) fn register(&self, port: &Arc<VpcPort>) {
        let mut ports = self.ports.lock();
        ports.retain(|w| w.strong_count() > 0);
        ports.push(Arc::downgrade(port));
    }

    /// Make every live port's cached flows stale.
    fn invalidate_ports(&self) {
        let ports: Vec<Arc<VpcPort>> = self.ports.lock().iter().filter_map(Weak::upgrade).collect();
        for p in ports {
            p.port().invalidate_uft();
        }
    }
}
